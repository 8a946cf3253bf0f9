"""`avfs status` on a mounted fork with another hand's commit pending, A/B, in CPU
(adopt2, the thirty-third round): every command on such a fork tries the adoption
(core/workspace/wsadopt.py), which read the status and compared what the commit changed
twice (once to plan the files it follows, once to adopt) where it now reads each once.

    python -m bench.adoptab --rounds 15 [--files 10000] [--backends overlay,fuse] main=/work/main new=/work/h-x

Each side has a home of its own: vault ``p`` of ``--files`` files, fork ``p:f1`` mounted,
one file changed in the mount, and another hand's commit onto ``f1`` (``git commit-tree``
and ``update-ref`` on the vault) changing that file and one more: never adopted (a path
both changed), so each status tries again. Timed: the CPU (user + system) of one ``avfs
--json status`` process (``AVFS_SERVER=off``, as the suite runs; the daemons' share not
counted), and in process the CPU of ``Vault.workspace("f1")`` (what every command's opening
of the fork does: the adoption's try) and of its ``status_report()``, interleaved between
the sides. Written to ``bench/results/adoptab-<time>.json``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
from pathlib import Path

from .abkit import (
    call,
    children_cpu_s,
    load,
    order,
    other_hand,
    print_loads,
    scratch,
    seed_tree,
    stamped,
    worktrees,
    write_json,
)

_INPROC = """
import sys, time
from avfs_git.core.vaults.home import Home
from avfs_git.mount.side import MOUNT_SIDE
home = Home(sys.argv[1], mounts=MOUNT_SIDE)
v = home.vault("p")
ws = v.workspace("f1")
assert ws.tip() != ws.base, "adopted: nothing pending"
n = int(sys.argv[2])
t0 = time.process_time()
for _ in range(n):
    ws = v.workspace("f1")
t1 = time.process_time()
for _ in range(n):
    ws.status_report()
t2 = time.process_time()
print((t1 - t0) / n * 1000, (t2 - t1) / n * 1000)
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("sides", nargs="+", help="NAME=WORKTREE")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--files", type=int, default=10000)
    ap.add_argument("--backends", default="overlay,fuse")
    ap.add_argument("--inproc", type=int, default=20, help="opens per in-process round")
    a = ap.parse_args()
    trees = worktrees(a.sides)
    loads: list[float] = []
    out: dict[str, object] = {"files": a.files, "rounds": a.rounds, "sides": trees, "results": {}}
    with scratch("adoptab-") as tmp:
        src = Path(seed_tree(tmp / "src", a.files, 100))
        for backend in a.backends.split(","):
            envs: dict[str, dict[str, str]] = {}
            avfs: dict[str, list[str]] = {}
            mps: dict[str, Path] = {}
            for side, tree in trees.items():
                home = tmp / f"home-{backend}-{side}"
                env = {**os.environ, "AVFS_HOME": str(home), "AVFS_SERVER": "off", "AVFS_PROGRESS": "never",
                       "PYTHONPATH": tree}  # fmt: skip
                envs[side] = env
                py = str(Path(tree, ".venv", "bin", "python"))
                avfs[side] = [py, "-m", "avfs_git"]
                call(avfs[side], env, "vault", "create", "p", "--from", str(src))
                call(avfs[side], env, "vault", "fork", "p:main", "f1")
                mp = tmp / f"mp-{backend}-{side}"
                mp.mkdir()
                call(avfs[side], env, "--vault", "p:f1", "mount", "--backend", backend, str(mp))
                mps[side] = mp
                (mp / "d7" / "f7.txt").write_text("the person's\n")
                other_hand(
                    str(home / "vaults" / "p.git"),
                    "f1",
                    {p: f"theirs {p}\n" for p in ("d7/f7.txt", "other.txt")},
                    tmp,
                )
            cli: dict[str, list[float]] = {s: [] for s in trees}
            opened: dict[str, list[float]] = {s: [] for s in trees}
            reported: dict[str, list[float]] = {s: [] for s in trees}
            try:
                for i in range(a.rounds + 1):
                    loads.append(load())
                    for side in order(list(trees), i):
                        c0 = children_cpu_s()
                        doc = call(avfs[side], envs[side], "--vault", "p:f1", "--json", "status")
                        c1 = children_cpu_s()
                        assert '"stale": true' in doc, doc
                        got = call(
                            [str(Path(trees[side], ".venv", "bin", "python")), "-c", _INPROC],
                            envs[side], str(tmp / f"home-{backend}-{side}"), str(a.inproc),
                        ).split()  # fmt: skip
                        if i:  # (round 0 warms the caches)
                            cli[side].append((c1 - c0) * 1000)
                            opened[side].append(float(got[0]))
                            reported[side].append(float(got[1]))
            finally:
                for side in trees:
                    subprocess.run(
                        avfs[side] + ["unmount", str(mps[side])], env=envs[side], capture_output=True
                    )
            res = {
                side: {
                    "cli_status_cpu_ms": statistics.median(cli[side]),
                    "open_ms": statistics.median(opened[side]),
                    "status_report_ms": statistics.median(reported[side]),
                    "raw": {"cli": cli[side], "open": opened[side], "report": reported[side]},
                }
                for side in trees
            }
            first, *rest = list(trees)
            for side in rest:
                res[side]["ratio_cli_vs_" + first] = statistics.median(
                    x / y for x, y in zip(cli[side], cli[first], strict=True)
                )
                res[side]["ratio_open_vs_" + first] = statistics.median(
                    x / y for x, y in zip(opened[side], opened[first], strict=True)
                )
            out["results"][backend] = res  # type: ignore[index]
            print(backend, {s: {k: v for k, v in r.items() if k != "raw"} for s, r in res.items()})
    out["loads"] = loads
    print_loads(loads)
    write_json(stamped("adoptab-h-adopt2"), out, announce=True)


if __name__ == "__main__":
    main()
