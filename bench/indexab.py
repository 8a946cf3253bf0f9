"""A checkpoint and a restore in a mounted fork, this tree against another avfs source tree in
the same run (docs/benchmarks.md, "git in the mount as a first-class writer: ... (h-gitmodel4)").

Both write the mount's git index: a checkpoint patches it (since gitmodel4 before the
branch moves, mount/indexahead.py), a restore writes it whole (since gitmodel4 keeping git's
skip-worktree and assume-unchanged bits of the index it replaces, mount/indexflags.py).
Each side gets a home of its own, a vault of ``--files`` generated files, a fork mounted on
``--backend``; each round appends to one file and times ``avfs checkpoint save``, then
``avfs checkpoint restore`` of the commit before it; the rounds alternate which side goes
first. Reported: medians of the wall times, the median of the per-round ratios, the load.

Run: ``.venv/bin/python -m bench.indexab --baseline SRC [--rounds N] [--files N]``; the
result goes to ``bench/results/gitmodel4-indexab-<time>.json``.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from .abkit import (
    avfs_bin,
    baseline_args,
    baseline_result,
    load,
    median_of_ratios,
    run,
    scratch,
    seed_tree,
    side_envs,
    this_and_baseline,
    timed_ms,
    warm_rounds,
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    baseline_args(ap, 7)
    ap.add_argument("--files", type=int, default=20000)
    ap.add_argument("--backend", default="overlay")
    args = ap.parse_args()
    trees = this_and_baseline(args.baseline)
    names = list(trees)
    load_before = load()
    with scratch("indexab-") as tmp:
        src = seed_tree(tmp / "src", files=args.files, dirs=max(1, args.files // 100))
        envs = side_envs(tmp, trees)
        mps: dict[str, Path] = {}
        for side, tree in trees.items():
            avfs = [avfs_bin(tree)]
            run([*avfs, "vault", "create", "v", "--from", src], envs[side])
            run([*avfs, "vault", "fork", "v:main", "f"], envs[side])
            mp = tmp / f"m-{side}"
            mp.mkdir()
            run([*avfs, "--vault", "v:f", "mount", "--backend", args.backend, str(mp)], envs[side])
            mps[side] = mp
        wall: dict[str, dict[str, list[float]]] = {s: {"checkpoint": [], "restore": []} for s in names}
        loads: list[float] = []
        try:
            for i, side in warm_rounds(names, args.rounds, loads):
                avfs = [avfs_bin(trees[side]), "--vault", "v:f"]
                with open(mps[side] / "d0" / "f0.txt", "a") as fh:
                    fh.write(f"round {i}\n")
                before = run(["git", "-C", str(mps[side]), "rev-parse", "HEAD"], envs[side]).strip()
                ms_c = timed_ms([*avfs, "checkpoint", "save", "-m", f"r{i}"], envs[side])
                ms_r = timed_ms([*avfs, "checkpoint", "restore", before], envs[side])
                if i > 0:
                    wall[side]["checkpoint"].append(ms_c)
                    wall[side]["restore"].append(ms_r)
        finally:
            for side, tree in trees.items():
                run([avfs_bin(tree), "--vault", "v:f", "unmount", str(mps[side])], envs[side])
    median = {s: {op: statistics.median(v) for op, v in wall[s].items()} for s in names}
    ratios = {
        op: median_of_ratios(wall["this"][op], wall["baseline"][op]) for op in ("checkpoint", "restore")
    }
    baseline_result(
        "gitmodel4-indexab",
        f"checkpoint save and restore in a mounted {args.files}-file fork ({args.backend})",
        args,
        load_before,
        median,
        wall,
        tail={"ratio_this_to_baseline": ratios, "loads": loads},
    )


if __name__ == "__main__":
    main()
