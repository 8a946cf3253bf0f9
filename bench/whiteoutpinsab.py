"""A checkpoint over whiteouts in an overlay-mounted fork: what the lower files they hide
cost it (docs/benchmarks.md, "A rename onto a renamed file: ESTALE" and h-tidy2's
section of the thirteenth round), avfs source trees against each other in the same run, interleaved.

Each run (a process of the side's own ``.venv``) makes a 2,000-file vault (20 directories
of 100), mounts its fork on overlay and does ``ROUNDS`` rounds: remove 100 files and
rename the 100 of another directory in the mount (200 whiteouts), then time one
in-process ``checkpoint.save`` (wall, and ``time.process_time``: the CPU of the
checkpointing process). The removals are, by case, ``whole``: the 100 files of one
directory (h-estale's measurement: the directory leaves the base, and the lower layer
keeps it whole, one pin covering its files), or ``spread``: every other file of two
directories (each stays: a pin a removed file, where whiteouts are pinned). The pins of
earlier rounds stay (until the fold at the next mount), so the later rounds carry more.
``--runs`` runs a side and case, the side going first alternating.

Run: ``.venv/bin/python -m bench.whiteoutpinsab NAME=WORKTREE... [--runs N] [--rounds N]``;
the result goes to ``bench/results/whiteout-pins-ab-<time>.json`` and its medians are
printed.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

from . import abkit as ab

RUN = r"""
import json, os, sys, tempfile, time
from avfs_git.core.vaults.home import Home
from avfs_git.core.operations import checkpoint
from avfs_git.ops import mounts
from avfs_git.mount.side import MOUNT_SIDE

rounds, tmp, case = int(sys.argv[1]), sys.argv[2], sys.argv[3]
src = os.path.join(tmp, "src")
for d in range(20):
    os.makedirs(os.path.join(src, f"d{d}"))
    for f in range(100):
        with open(os.path.join(src, f"d{d}", f"f{f}.txt"), "w") as fh:
            fh.write(f"{d} {f}\n")
home = Home(os.path.join(tmp, "home"), author=("B", "b@x.invalid"), mounts=MOUNT_SIDE, layers="off")
vault = home.create_vault("v", from_dir=src)
mp = os.path.join(tmp, "m")
os.mkdir(mp)
mounts.mount(home, vault, "main", mp, backend="overlay")
out = []
try:
    for r in range(rounds):
        if case == "whole":
            gone = [(f"d{r}", f) for f in range(100)]
        else:
            gone = [(f"d{2 * r + k}", f) for k in (0, 1) for f in range(r % 2, 100, 2)]
        for d, f in gone:
            os.unlink(os.path.join(mp, d, f"f{f}.txt"))
        for f in range(100):
            os.rename(os.path.join(mp, f"d{r + 10}", f"f{f}.txt"), os.path.join(mp, f"d{r + 10}", f"g{f}.txt"))
        w0, c0 = time.perf_counter(), time.process_time()
        checkpoint.save(vault)
        out.append([time.perf_counter() - w0, time.process_time() - c0])
finally:
    mounts.unmount(home, vault, "main")
print(json.dumps(out))
"""


CASES = ("whole", "spread")


def _one(tree: str, rounds: int, case: str) -> list[list[float]]:
    with ab.scratch("avfs-bench-whiteouts-", chdir=False) as tmp:
        py = str(Path(tree) / ".venv/bin/python")
        got = ab.run([py, "-c", RUN, str(rounds), str(tmp), case], cwd=str(tmp))
    answer: list[list[float]] = json.loads(got.strip().splitlines()[-1])
    return answer


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("sides", nargs="+", help="NAME=WORKTREE, each with its own make install")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    trees = ab.worktrees(args.sides)
    per: dict[str, dict[str, list[list[list[float]]]]] = {c: {side: [] for side in trees} for c in CASES}
    loads = [ab.load()]
    for i in range(args.runs):
        for case in CASES:
            for side in ab.order(list(trees), i):
                per[case][side].append(_one(trees[side], args.rounds, case))
        loads.append(ab.load())
    median: dict[str, Any] = {c: {} for c in CASES}
    for case, sides in per.items():
        for side, runs in sides.items():
            flat = [x for run in runs for x in run]
            median[case][side] = {
                "wall_ms": statistics.median(w for w, _ in flat) * 1000,
                "cpu_ms": statistics.median(c for _, c in flat) * 1000,
                "cpu_ms_by_round": [
                    statistics.median(run[r][1] for run in runs) * 1000 for r in range(args.rounds)
                ],
                "n": len(flat),
            }
    result = {
        "case": "checkpoint of 100 removals (whole: one directory; spread: half of two) + 100 renames"
        " (200 whiteouts) in a 2,000-file overlay-mounted fork",
        "sides": trees,
        "runs": args.runs,
        "rounds": args.rounds,
        "loads": loads,
        "median": median,
        "per_run": per,
    }
    ab.write_json(ab.stamped("whiteout-pins-ab"), result, announce=True)
    ab.print_json({"median": median, "load": [min(loads), max(loads)]})


if __name__ == "__main__":
    main()
