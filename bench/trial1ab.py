"""What a `proxy exec` that adds a real package's files costs to record (trial1, the
thirty-fifth round): a vault made from es-abstract 1.24.2's npm tarball (2,480 files, 11 MB),
its fork mounted (overlay), and each round `proxy exec -- cp -a package copyN`: the
envelope's `duration_ms` less the command's own `result.duration_ms` is what avfs spent
around it (the checkpoint, what changed, the commit), the wall of the whole process and its
CPU (the process, the children it reaped: the sandbox and ``cp``, and the mount's daemon,
which records what the command changed).

A/B: ``NAME=WORKTREE`` sides (each its own ``make install``), each in a home of its own,
interleaved round by round (:func:`.abkit.warm_rounds`, an untimed round first); medians and
the per-round ratios against the first side, written to ``bench/results/h-trial1-<stamp>.json``::

    python -m bench.trial1ab base=/work/h-trial1-base branch=/work/h-trial1 [--rounds 5]
        [--backend overlay|fuse] [--prefix h-record2]

Beside the sides, in the same rounds (record2): git on the same disk, a plain clone of the
same files committed, each round ``cp -a package copyN`` then ``git add -A && git commit``
timed (``git_ms``): what recording the same new files costs git.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import time
from pathlib import Path

from .abkit import (
    children_cpu_s,
    median_of_ratios,
    print_loads,
    proc_cpu_s,
    scratch,
    stamped,
    warm_rounds,
    worktrees,
    write_json,
)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("sides", nargs="+", help="NAME=WORKTREE")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--backend", default="overlay", choices=("overlay", "fuse"))
    ap.add_argument("--prefix", default="h-trial1", help="the results file's name before its stamp")
    args = ap.parse_args()
    trees = worktrees(args.sides)
    from tests import realdata

    tarball = realdata.npm_tarball("es-abstract", "1.24.2")
    loads: list[float] = []
    over: dict[str, list[float]] = {n: [] for n in trees}
    wall: dict[str, list[float]] = {n: [] for n in trees}
    cpu: dict[str, list[float]] = {n: [] for n in trees}
    with scratch("trial1ab-") as tmp:
        realdata.extract(tarball, tmp / "src")  # (src/package: the tarball's top)
        src = tmp / "src"
        heads: dict[str, list[str]] = {}
        envs: dict[str, dict[str, str]] = {}
        daemons: dict[str, int] = {}
        for n, tree in trees.items():
            envs[n] = {**os.environ, "AVFS_HOME": str(tmp / f"home-{n}"), "AVFS_SERVER": "off",
                       "AVFS_PROGRESS": "never", "PYTHONPATH": tree}  # fmt: skip
            heads[n] = [str(Path(tree, ".venv", "bin", "python")), "-m", "avfs_git"]
            for a in (
                ["vault", "create", "p", "--from", str(src)],
                ["vault", "fork", "p", "f1"],
                ["--json", "mount", "--backend", args.backend, "p:f1"],
            ):
                out = subprocess.run([*heads[n], *a], env=envs[n], check=True, capture_output=True, text=True)
            daemons[n] = int(json.loads(out.stdout)["mount"]["pid"])  # (it records what an exec changed)
        repo = tmp / "git"
        _git_repo(src, repo)
        git_ms: list[float] = []
        try:
            for i, n in warm_rounds([*trees, GIT], args.rounds, loads):
                if n == GIT:
                    ms = _git_round(repo, i)
                    if i:
                        git_ms.append(ms)
                    continue
                t0, c0 = time.perf_counter(), children_cpu_s() + proc_cpu_s(daemons[n], reaped=False)
                p = subprocess.run(
                    [*heads[n], "--json", "--vault", "p:f1", "proxy", "exec", "--", "cp", "-a", "package", f"copy{i}"],
                    env=envs[n], capture_output=True, text=True,
                )  # fmt: skip
                c1 = children_cpu_s() + proc_cpu_s(daemons[n], reaped=False)
                w, c = (time.perf_counter() - t0) * 1000, (c1 - c0) * 1000
                env = json.loads(p.stdout)
                assert env["success"] and len(env["changes"]) > 2000, p.stdout[:500]
                if i:
                    over[n].append(env["duration_ms"] - env["result"]["duration_ms"])
                    wall[n].append(w)
                    cpu[n].append(c)
        finally:
            for n in trees:
                subprocess.run([*heads[n], "unmount", "p:f1"], env=envs[n], capture_output=True)
    first = next(iter(trees))
    doc = {
        "rounds": args.rounds,
        "loads": loads,
        "around_ms": over,
        "wall_ms": wall,
        "cpu_ms": cpu,
        "backend": args.backend,
        "git_ms": git_ms,
        "summary": {"git": {"git_ms_median": statistics.median(git_ms)}},
    }
    for n in trees:
        doc["summary"][n] = {
            "around_ms_median": statistics.median(over[n]),
            "wall_ms_median": statistics.median(wall[n]),
            f"around_vs_{first}": median_of_ratios(over[n], over[first]),
            f"wall_vs_{first}": median_of_ratios(wall[n], wall[first]),
            "cpu_ms_median": statistics.median(cpu[n]),
            f"cpu_vs_{first}": median_of_ratios(cpu[n], cpu[first]),
            "around_vs_git": median_of_ratios(over[n], git_ms),
        }
        print(n, json.dumps(doc["summary"][n]))
    print_loads(loads)
    print("git", json.dumps(doc["summary"]["git"]))
    write_json(stamped(args.prefix), doc, announce=True)


GIT = "git"  # the round of git's own ``add -A && commit`` beside the sides
_ID = ["-c", "user.name=bench", "-c", "user.email=bench@example.com"]


def _git_repo(src: Path, repo: Path) -> None:
    """A plain git repository of ``src``'s files, committed: what a vault of them is."""
    subprocess.run(["cp", "-a", str(src), str(repo)], check=True)
    for a in (["init", "-q"], ["add", "-A"], [*_ID, "commit", "-qm", "init"]):
        subprocess.run(["git", *a], cwd=repo, check=True)


def _git_round(repo: Path, i: int) -> float:
    """``cp -a package gitN`` untimed, then ``git add -A && git commit`` timed (ms)."""
    subprocess.run(["cp", "-a", "package", f"copy{i}"], cwd=repo, check=True)
    t0 = time.perf_counter()
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(["git", *_ID, "commit", "-qm", f"copy{i}"], cwd=repo, check=True)
    return (time.perf_counter() - t0) * 1000


if __name__ == "__main__":
    main()
