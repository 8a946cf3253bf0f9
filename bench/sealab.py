"""The per-run host work of a confined ``proxy exec``'s git seal, this tree against another
avfs source tree in the same run (docs/benchmarks.md, "git deletes refs in bulk in the
sandbox").

:func:`avfs_git.proxy.seal.prepare` (under the exec lock, before the command) and
:func:`~avfs_git.proxy.seal.carry_back` (after it) run on every warm ``proxy exec``, on the
daemon's critical path. Each side gets a vault of its own with ``--forks`` forks (loose
branches; the vault's packed-refs holds a tag) and a linked worktree standing in for the
mount's git dir, then times ``--calls`` pairs of prepare + carry_back of a run that changed
nothing (the common case), in a process of that tree's own ``.venv``; the rounds alternate
which side goes first. Reported: CPU (``time.process_time``) and wall per pair, medians of
the rounds' medians, with the load.

Run: ``.venv/bin/python -m bench.sealab --baseline SRC [--rounds N] [--forks N]``; the
result goes to ``bench/results/seal-ab-<time>.json`` and its medians are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# run in each side's own interpreter: argv DIR FORKS CALLS
CHILD = r"""
import json, os, subprocess, sys, time
from avfs_git.core.vaults.home import Home
from avfs_git.mount.side import MOUNT_SIDE
from avfs_git.policy.pathsource import POLICY_PATHS
from avfs_git.proxy import seal
d, forks, calls = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
home = Home(os.path.join(d, "home"), author=("B", "b@x"), mounts=MOUNT_SIDE, paths=POLICY_PATHS, layers="off")
try:
    vault = home.vault("v")
except Exception:
    vault = home.create_vault("v")
    vault.workspace("main").write("f", b"1\n")
    from avfs_git.core.operations import checkpoint
    checkpoint.save(vault, name="one")
    for i in range(forks):
        vault.fork("main", f"f{i}")
    git = ["git", "--git-dir", vault.path]
    subprocess.run([*git, "tag", "v1", "main"], check=True)
    subprocess.run([*git, "pack-refs"], check=True)
    subprocess.run([*git, "worktree", "add", "-q", "--detach", os.path.join(d, "wt"), "main"], check=True)
git_dir = os.path.join(vault.path, "worktrees", "wt")
for _ in range(20):  # warm: the manifests, the page cache
    seal.carry_back(vault, seal.prepare(vault, "f3", git_dir))
cpu, wall = [], []
for _ in range(calls):
    c0, w0 = time.process_time(), time.perf_counter()
    carried = seal.carry_back(vault, seal.prepare(vault, "f3", git_dir))
    cpu.append((time.process_time() - c0) * 1e3)
    wall.append((time.perf_counter() - w0) * 1e3)
    assert carried.moved is None and carried.refused == [], carried
home.close()
print(json.dumps({"cpu_ms": cpu, "wall_ms": wall}))
"""


def _side(tree: Path, d: str, forks: int, calls: int) -> dict[str, float]:
    py = str(tree / ".venv" / "bin" / "python")
    proc = subprocess.run(
        [py, "-c", CHILD, d, str(forks), str(calls)], cwd=tree, capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-3000:])
    out = proc.stdout
    got = json.loads(out.strip().splitlines()[-1])
    return {k: statistics.median(v) for k, v in got.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline", required=True, help="another avfs source tree, timed in the same run")
    ap.add_argument("--rounds", type=int, default=11)
    ap.add_argument("--forks", type=int, default=40)
    ap.add_argument("--calls", type=int, default=50)
    args = ap.parse_args()
    sides = {"this": ROOT, "baseline": Path(args.baseline).resolve()}
    load0 = os.getloadavg()[0]
    per: dict[str, list[dict[str, float]]] = {s: [] for s in sides}
    with tempfile.TemporaryDirectory(prefix="avfs-sealab-") as tmp:
        dirs = {s: os.path.join(tmp, s) for s in sides}
        for i in range(args.rounds):
            order = list(sides) if i % 2 == 0 else list(reversed(sides))
            for s in order:
                per[s].append(_side(sides[s], dirs[s], args.forks, args.calls))
    median = {
        s: {k: round(statistics.median(r[k] for r in rows), 3) for k in rows[0]} for s, rows in per.items()
    }
    doc = {
        "case": "seal.prepare + seal.carry_back of a run that changed nothing",
        "baseline": str(sides["baseline"]),
        "forks": args.forks,
        "calls_per_round": args.calls,
        "rounds": args.rounds,
        "load_average_before_after": [load0, os.getloadavg()[0]],
        "median": median,
        "ratio_cpu": round(median["this"]["cpu_ms"] / median["baseline"]["cpu_ms"], 3),
        "per_round": per,
    }
    out = ROOT / "bench" / "results" / f"seal-ab-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    out.write_text(json.dumps(doc, indent=1) + "\n")
    print(json.dumps({k: doc[k] for k in ("median", "ratio_cpu", "load_average_before_after")}, indent=1))
    print(out)


if __name__ == "__main__":
    main()
