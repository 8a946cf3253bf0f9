"""A merge the trivial walk decides (two forks of a 10,000-file tree, 500 files changed
on each side: 500 in 50 directories of their own, 500 in 100 directories both change), this tree's code against another's,
interleaved: what noting where theirs' names of git's own state join ours' costs (the
thirty-fourth round, attack26; docs/benchmarks.md, its section).

Each side's process is its own tree's ``.venv/bin/python`` running this file (its
``avfs_git`` that tree's), on a vault it made once (round 0, untimed: 1,000 directories of
10 files, forks ``a`` and ``b`` each changing 500 files of 50 directories of their own and
500 of 100 directories both change, each side other files: the walk descends there).
Per round, in turn (the order turned each round), each side times ``--reps`` dry-run
merges of ``b`` into ``a`` (``time.process_time``). Medians per side, the ratio.

``python -m bench.plantmergeab --side main=/work/h-attack26-base [--rounds 9] [--reps 5]``;
results in ``bench/results/h-attack26-plantmerge-<UTC>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _worker(home_dir: str, reps: int) -> None:
    sys.path.insert(0, os.getcwd())
    from avfs_git.core.operations import checkpoint, merge
    from avfs_git.core.vaults.home import Home
    from avfs_git.mount.side import MOUNT_SIDE

    fresh = not os.path.exists(home_dir)
    home = Home(home_dir, author=("B", "b@x.invalid"), mounts=MOUNT_SIDE, layers="off")
    if fresh:
        v = home.create_vault("v")
        ws = v.workspace("main")
        for d in range(1000):
            for f in range(10):
                ws.write(f"d{d:04}/f{f}.txt", f"{d} {f}\n".encode())
        checkpoint.save(v, "main", message="tree")
        for fork, first, files in (("a", 0, range(5)), ("b", 500, range(5, 10))):
            v.fork("main", fork)
            w = v.workspace(fork)
            for d in range(first, first + 50):
                for f in range(10):
                    w.write(f"d{d:04}/f{f}.txt", f"{fork} {d} {f}\n".encode())
            for d in range(100, 200):  # (the same directories, different files: walked)
                for f in files:
                    w.write(f"d{d:04}/f{f}.txt", f"{fork} {d} {f}\n".encode())
            checkpoint.save(v, fork, message=fork)
    v = home.vault("v")
    out = []
    for _ in range(reps):
        t = time.process_time()
        got = merge.merge(v, "b", "a", dry_run=True)
        out.append((time.process_time() - t) * 1e3)
        assert got.status == "would_merge", got.status
    home.close()
    print(json.dumps(out))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--worker", nargs=2)
    ap.add_argument("--side", action="append", default=[], help="NAME=DIR: another tree's code")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--reps", type=int, default=5)
    a = ap.parse_args()
    if a.worker:
        _worker(a.worker[0], int(a.worker[1]))
        return
    sides = {"after": REPO, **dict(s.split("=", 1) for s in a.side)}
    tmp = tempfile.mkdtemp(prefix="plantmergeab-")
    got: dict[str, list[float]] = {n: [] for n in sides}
    load = []
    names = list(sides)
    for r in range(a.rounds + 1):
        load.append(os.getloadavg()[0])
        for name in names if r % 2 else names[::-1]:
            d = sides[name]
            proc = subprocess.run(
                [f"{d}/.venv/bin/python", __file__, "--worker", f"{tmp}/{name}", str(a.reps if r else 1)],
                cwd=d, capture_output=True, text=True, check=True,
            )  # fmt: skip
            if r:
                got[name] += json.loads(proc.stdout)
    med = {n: statistics.median(v) for n, v in got.items()}
    res = {
        "sides": sides, "rounds": a.rounds, "reps": a.reps, "load": load,
        "cpu_median_ms": med, "ratio_after_to": {n: med["after"] / med[n] for n in med if n != "after"},
        "raw": got,
    }  # fmt: skip
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = f"{REPO}/bench/results/h-attack26-plantmerge-{stamp}.json"
    with open(path, "w") as fh:
        json.dump(res, fh, indent=1)
    print(json.dumps({k: v for k, v in res.items() if k != "raw"}, indent=1))
    print(path)


if __name__ == "__main__":
    main()
