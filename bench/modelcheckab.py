"""The git model's check (tests/test_git_model.py ``GitModel.check``), A/B between worktrees,
in CPU: each side's own process makes one model (attrs 24.2.0 mounted, a plain clone
beside it) in a cpuacct cgroup of its own, changes a file and adds one on both sides (a
state the check reads as most steps leave it: nothing staged), then runs ``--checks``
checks, the cgroup's CPU read around them (the mount's daemon, git and the process
itself), interleaved with the order alternating.

    python -m bench.modelcheckab --rounds 5 --checks 24 base=/work/x-base new=/work/x [--backend overlay]

Printed: per side the median CPU of a check, and the ratio of medians. Needs cgroup v1's
``cpuacct`` writable (root). Written to ``bench/results/modelcheckab-<time>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

CGROUPS = Path("/sys/fs/cgroup/cpuacct")

# run in the side's worktree by its own python (as a pytest run would import the tests)
CHILD = r"""
import json, os, sys
from pathlib import Path
group = Path(sys.argv[1]); checks = int(sys.argv[2]); backend = sys.argv[3]
os.environ.setdefault("AVFS_HOME", "/nonexistent")
from tests import conftest  # noqa: F401  (the suite's environment)
from tests import test_git_model as tgm
tgm.BACKEND = backend
model = tgm.GitModel()
try:
    model.check()
    model.write_all({"README.md": "changed on both sides\n", "new.txt": "new on both\n"})
    model.check()
    use = lambda: int((group / "cpuacct.usage").read_text())
    t0 = use()
    for _ in range(checks):
        model.check()
    print(json.dumps({"cpu_ms_per_check": (use() - t0) / 1e6 / checks}))
finally:
    model.teardown()
"""


def _one(tree: str, name: str, checks: int, backend: str, tag: str) -> float:
    group = CGROUPS / f"{tag}-{name}-{os.getpid()}"
    group.mkdir()
    try:
        tmp = f"/tmp/{tag}-check-{name}-{os.getpid()}"
        os.makedirs(tmp, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AVFS_", "PYTEST_"))}
        env.update(TMPDIR=tmp, AVFS_LAYERS="off")
        proc = subprocess.run(
            [f"{tree}/.venv/bin/python", "-c", CHILD, str(group), str(checks), backend],
            cwd=tree,
            env=env,
            capture_output=True,
            text=True,
            preexec_fn=lambda: (group / "cgroup.procs").write_text(str(os.getpid())),
        )
        if proc.returncode != 0:
            raise RuntimeError(proc.stdout + proc.stderr[-3000:])
        return float(json.loads(proc.stdout.strip().splitlines()[-1])["cpu_ms_per_check"])
    finally:
        end = time.monotonic() + 30
        while (group / "cgroup.procs").read_text().strip() and time.monotonic() < end:
            time.sleep(0.05)
        group.rmdir()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--checks", type=int, default=24)
    ap.add_argument("--backend", default="overlay")
    ap.add_argument("--tag", default="modelcheckab")
    ap.add_argument("sides", nargs="+", help="NAME=WORKTREE")
    a = ap.parse_args()
    sides = dict(x.split("=", 1) for x in a.sides)
    got: dict[str, list[float]] = {s: [] for s in sides}
    loads = []
    for r in range(a.rounds):
        for s in list(sides) if r % 2 == 0 else list(reversed(sides)):
            loads.append(os.getloadavg()[0])
            got[s].append(_one(sides[s], s, a.checks, a.backend, a.tag))
            print(f"round {r} {s}: {got[s][-1]:.1f} ms a check", flush=True)
    first = next(iter(sides))
    med = {s: statistics.median(v) for s, v in got.items()}
    out = {
        "sides": sides,
        "backend": a.backend,
        "checks": a.checks,
        "load_1min": {"min": min(loads), "median": statistics.median(loads), "max": max(loads)},
        "cpu_ms_per_check": got,
        "median": med,
        "ratio": {s: round(med[s] / med[first], 3) for s in sides},
    }
    print(json.dumps({"median": med, "ratio": out["ratio"]}))
    stamp = time.strftime("%Y%m%dT%H%MZ", time.gmtime())
    path = Path(__file__).parent / "results" / f"modelcheckab-{a.tag}-{a.backend}-{stamp}.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(path, file=sys.stderr)


if __name__ == "__main__":
    main()
