"""A checkpoint in a mounted fork whose path policy hides files, this tree against another
avfs source tree in the same run (docs/benchmarks.md, gitmodel28's section).

Since gitmodel28 the mount's git index of such a fork is patched where the checkpoint's
commit differs from the old base (mount/indexpatch.py, the hidden paths' new entries
skip-worktree), as every other fork's is; before, it was written whole at every move (and
what git had staged was lost). Each side gets a home of its own, a vault of ``--files``
generated files and a hidden ``.env``, the policy (`hidden = [".env"]`), its fork mounted
(pure FUSE: what a fork with hidden rules mounts with); each round stages a change of one
file (`git add`), appends to another and times ``avfs checkpoint save``; the rounds
alternate which side goes first. Reported: medians of the wall times, the median of the
per-round ratios, whether the staged file was still staged after each checkpoint, the load.

Run: ``.venv/bin/python -m bench.hiddenindexab --baseline SRC [--rounds N] [--files N]``;
the result goes to ``bench/results/<--branch>-hiddenindexab-<time>.json`` (h-gitmodel28's
first, h-fix41's since).
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
    baseline_args(ap, 9)
    ap.add_argument("--files", type=int, default=5000)
    ap.add_argument("--branch", default="h-gitmodel28", help="the result file's prefix (the branch measured)")
    args = ap.parse_args()
    trees = this_and_baseline(args.baseline)
    names = list(trees)
    load_before = load()
    with scratch("hiddenindexab-") as tmp:
        src = seed_tree(tmp / "src", files=args.files, dirs=max(1, args.files // 100))
        (Path(src) / ".env").write_text("SECRET=1\n")
        envs = side_envs(tmp, trees)
        mps: dict[str, Path] = {}
        for side, tree in trees.items():
            avfs = [avfs_bin(tree)]
            run([*avfs, "vault", "create", "v", "--from", src], envs[side])
            run([*avfs, "vault", "fork", "v:main", "f"], envs[side])
            vault = run([*avfs, "--vault", "v", "vault", "path"], envs[side]).strip()
            Path(vault, "avfs", "policy.toml").write_text('version = 1\n[paths]\nhidden = [".env"]\n')
            mp = tmp / f"m-{side}"
            mp.mkdir()
            run([*avfs, "--vault", "v:f", "mount", "--backend", "fuse", str(mp)], envs[side])
            mps[side] = mp
        wall: dict[str, list[float]] = {s: [] for s in names}
        kept: dict[str, list[bool]] = {s: [] for s in names}
        loads: list[float] = []
        try:
            for i, side in warm_rounds(names, args.rounds, loads):
                avfs = [avfs_bin(trees[side]), "--vault", "v:f"]
                mp = mps[side]
                (mp / "d1" / "f1.txt").write_text(f"staged {i}\n")
                run(["git", "-C", str(mp), "add", "d1/f1.txt"], envs[side])
                (mp / "d1" / "f1.txt").write_text("file 1\n" * 20)  # (as HEAD has it: stays staged)
                with open(mp / "d0" / "f0.txt", "a") as fh:
                    fh.write(f"round {i}\n")
                ms = timed_ms([*avfs, "checkpoint", "save", "-m", f"r{i}"], envs[side])
                staged = run(["git", "-C", str(mp), "diff", "--cached", "--name-only"], envs[side]).split()
                if i > 0:
                    wall[side].append(ms)
                    kept[side].append(staged == ["d1/f1.txt"])
        finally:
            for side, tree in trees.items():
                run([avfs_bin(tree), "--vault", "v:f", "unmount", str(mps[side])], envs[side])
    median = {s: statistics.median(v) for s, v in wall.items()}
    baseline_result(
        f"{args.branch}-hiddenindexab",
        f"checkpoint save in a mounted {args.files}-file fork with hidden rules (pure FUSE), something staged",
        args,
        load_before,
        median,
        wall,
        tail={
            "ratio_this_to_baseline": median_of_ratios(wall["this"], wall["baseline"]),
            "staged_kept": {s: sum(v) for s, v in kept.items()},
            "loads": loads,
        },
    )


if __name__ == "__main__":
    main()
