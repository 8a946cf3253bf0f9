"""What `avfs doctor` costs on a home of five vaults of real projects (polish1, the
thirty-fifth round: trial1 met 14-18 s on five small vaults, load ~22): MarkupSafe 2.1.2 ...
2.1.5 as a history (`vault clone`, its tags), minimist 1.2.8's npm tarball, attrs 24.2.0's
sdist, git 2.39.5's source (4,438 objects) and minimist again with attrs' files checkpointed
into it. Each side runs `avfs doctor` in a home of its own, made by its own code
(``AVFS_SERVER=off``: the command's own work, in a process of its own); a side named
``NAME+full`` runs `avfs doctor --full` with NAME's worktree.

A/B, interleaved round by round (:func:`.abkit.warm_rounds`, an untimed round first); the
wall medians and the per-round ratios against the first side, written to
``bench/results/h-polish1-doctor-<stamp>.json``::

    python -m bench.doctorab base=/work/h-polish1-base branch=/work/h-polish1 \
        branch+full=/work/h-polish1 [--rounds 7]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import time
from pathlib import Path

from .abkit import median_of_ratios, print_loads, scratch, stamped, warm_rounds, worktrees, write_json


def _home(head: list[str], env: dict[str, str], tmp: Path) -> None:
    from tests import realdata

    hist = realdata.history("MarkupSafe", ["2.1.2", "2.1.3", "2.1.4", "2.1.5"], tmp / "src", aggressive=False)
    mm = realdata.unpacked_top(realdata.npm_tarball("minimist", "1.2.8"))
    at = realdata.unpacked_top(realdata.pypi_sdist("attrs", "24.2.0"))
    git_src = realdata.unpacked_top(realdata.debian_orig(*realdata._GIT_ORIG))
    for args in (
        ["vault", "clone", str(hist), "ms"],
        ["vault", "create", "mm", "--from", str(mm)],
        ["vault", "create", "at", "--from", str(at)],
        ["vault", "create", "git", "--from", str(git_src)],
        ["vault", "create", "mm2", "--from", str(mm)],
    ):
        subprocess.run([*head, *args], env=env, check=True, capture_output=True)
    shutil.copytree(at, tmp / "attrs-copy")
    subprocess.run([*head, "--vault", "mm2", "cp", "-r", str(tmp / "attrs-copy"), "attrs"], env=env,
                   capture_output=True)  # fmt: skip
    subprocess.run([*head, "--vault", "mm2", "checkpoint", "save", "-m", "attrs"], env=env, check=True,
                   capture_output=True)  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("sides", nargs="+", help="NAME=WORKTREE (NAME ending in +full: doctor --full)")
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    trees = worktrees(args.sides)
    loads: list[float] = []
    wall: dict[str, list[float]] = {n: [] for n in trees}
    with scratch("doctorab-") as tmp:
        heads: dict[str, list[str]] = {}
        envs: dict[str, dict[str, str]] = {}
        for n, tree in trees.items():
            home = tmp / f"home-{n.removesuffix('+full')}"
            envs[n] = {**os.environ, "AVFS_HOME": str(home), "AVFS_SERVER": "off",
                       "AVFS_PROGRESS": "never", "PYTHONPATH": tree}  # fmt: skip
            heads[n] = [str(Path(tree, ".venv", "bin", "python")), "-m", "avfs_git"]
            if not home.exists():
                _home(heads[n], envs[n], tmp / f"build-{n}")
        for i, n in warm_rounds(list(trees), args.rounds, loads):
            t0 = time.perf_counter()
            extra = ["--full"] if n.endswith("+full") else []
            p = subprocess.run(
                [*heads[n], "--json", "doctor", *extra], env=envs[n], capture_output=True, text=True
            )
            w = (time.perf_counter() - t0) * 1000
            doc = json.loads(p.stdout)
            assert p.returncode == 0 and doc["ok"] and len(doc["vaults"]) == 5, p.stdout[:500]
            if i:
                wall[n].append(w)
    first = next(iter(trees))
    out = {"rounds": args.rounds, "loads": loads, "wall_ms": wall, "summary": {}}
    for n in trees:
        out["summary"][n] = {
            "wall_ms_median": statistics.median(wall[n]),
            f"wall_vs_{first}": median_of_ratios(wall[n], wall[first]),
        }
        print(n, json.dumps(out["summary"][n]))
    print_loads(loads)
    write_json(stamped("h-polish1-doctor"), out, announce=True)


if __name__ == "__main__":
    main()
