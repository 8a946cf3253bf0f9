"""What recording a `proxy exec` that adds thousands of files of new content costs, beside
git's own ``git add -A && git commit`` of the same files (record3, the thirty-sixth round).

Each side (``NAME=WORKTREE``, its own ``make install``) gets a home of its own, a vault made
from a directory holding ``make.py`` (and, for ``--tree DIR``, a tarball of that tree), and
its fork mounted (``--backend``). Each round runs ``proxy exec -- python3 make.py copyN N``,
which writes a new directory ``copyN`` of new content (the tree's files, each with a line
naming the round appended: an `npm install`'s files are new to the vault; or ``--synthetic
COUNT`` files of 1-4 KiB in three levels of directories, their bytes the round's own). The
envelope's ``duration_ms`` less the command's own is what avfs spent around the command
(the status, the commit): ``around_ms``; the wall of the call and its CPU (the CLI process
and the mount's daemon, which records; the sandbox is the daemon's child, not counted). The
tree's tarball is first copied into the fork's upper layer (untimed): the command reads it
from there, not through the daemon's view. In the same rounds, git: a plain repository
of the same start, the same ``make.py copyN N`` run untimed, then ``git add -A && git
commit`` timed (``git_ms``). Interleaved (:func:`.abkit.warm_rounds`, an untimed round
first); medians and per-round ratios against the first side and against git, written to
``bench/results/<prefix>-<stamp>.json``::

    python -m bench.record3ab base=/work/h-record3-base branch=/work/h-record3 \\
        (--tree /path/to/node_modules-tree | --synthetic 50000) [--backend overlay|fuse]
        [--rounds 3] [--prefix h-record3-npm-overlay]
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

# run inside the sandbox (the system's python3) and in git's repository alike
MAKE = """import os, sys, tarfile
dest, n = sys.argv[1], int(sys.argv[2])
if os.path.exists("tree.tar"):
    with tarfile.open("local.tar" if os.path.exists("local.tar") else "tree.tar") as tf:
        try:
            tf.extractall(dest, filter="tar")
        except TypeError:  # (a python3 before the filters: the sandbox's may be)
            tf.extractall(dest)
    for top, dirs, files in os.walk(dest):
        for f in files:
            p = os.path.join(top, f)
            if not os.path.islink(p):
                with open(p, "ab") as fh:
                    fh.write(b"\\n// round %d\\n" % n)
else:
    count = int(open("count").read())
    for i in range(count):
        d = os.path.join(dest, "d%d" % (i % 10), "e%d" % (i // 10 % 10), "f%d" % (i // 100 % 10))
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "file%d.txt" % i), "wb") as fh:
            fh.write((b"round %d file %d\\n" % (n, i)) * (40 + i % 160))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("sides", nargs="+", help="NAME=WORKTREE")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--backend", default="overlay", choices=("overlay", "fuse"))
    ap.add_argument("--tree", help="a directory whose files each round writes anew (an npm install's tree)")
    ap.add_argument(
        "--synthetic", type=int, default=0, help="this many files of the round's own bytes instead"
    )
    ap.add_argument("--prefix", default="h-record3", help="the results file's name before its stamp")
    args = ap.parse_args()
    trees = worktrees(args.sides)
    loads: list[float] = []
    over: dict[str, list[float]] = {n: [] for n in trees}
    wall: dict[str, list[float]] = {n: [] for n in trees}
    cpu: dict[str, list[float]] = {n: [] for n in trees}
    git_ms: list[float] = []
    git_cpu: list[float] = []  # (git add + commit's own CPU: its processes, reaped)
    with scratch("record3ab-") as tmp:
        src = tmp / "src"
        src.mkdir()
        (src / "make.py").write_text(MAKE)
        if args.tree:
            subprocess.run(["tar", "cf", str(src / "tree.tar"), "-C", args.tree, "."], check=True)
        else:
            (src / "count").write_text(str(args.synthetic or 50000))
        envs: dict[str, dict[str, str]] = {}
        heads: dict[str, list[str]] = {}
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
            if (
                args.tree
            ):  # (a copy in the upper layer: the command reads it from there, not the daemon's view)
                a = ["--vault", "p:f1", "proxy", "exec", "--", "cp", "tree.tar", "local.tar"]
                subprocess.run([*heads[n], *a], env=envs[n], check=True, capture_output=True)
        repo = tmp / "git"
        _git_repo(src, repo)
        try:
            for i, n in warm_rounds([*trees, "git"], args.rounds, loads):
                if n == "git":
                    c0 = children_cpu_s()
                    ms, make_s = _git_round(repo, i)
                    if i:
                        git_ms.append(ms)
                        git_cpu.append((children_cpu_s() - c0 - make_s) * 1000)
                    continue
                t0, c0 = time.perf_counter(), children_cpu_s() + proc_cpu_s(daemons[n], reaped=False)
                p = subprocess.run(
                    [*heads[n], "--json", "--vault", "p:f1", "proxy", "exec", "--", "python3", "make.py", f"copy{i}", str(i)],
                    env=envs[n], capture_output=True, text=True,
                )  # fmt: skip
                c1 = children_cpu_s() + proc_cpu_s(daemons[n], reaped=False)
                env = json.loads(p.stdout)
                ok = env["success"] and env["commit"] and len(env["changes"]) > 1000
                assert ok, json.dumps({k: env[k] for k in ("error", "result")})[-3000:]
                if i:
                    over[n].append(env["duration_ms"] - env["result"]["duration_ms"])
                    wall[n].append((time.perf_counter() - t0) * 1000)
                    cpu[n].append((c1 - c0) * 1000)
                around = env["duration_ms"] - env["result"]["duration_ms"]
                print(i, n, f"around {around:.0f} ms, cpu {(c1 - c0) * 1000:.0f} ms", flush=True)
        finally:
            for n in trees:
                subprocess.run([*heads[n], "unmount", "p:f1"], env=envs[n], capture_output=True)
    first = next(iter(trees))
    doc = {
        "rounds": args.rounds,
        "backend": args.backend,
        "tree": args.tree,
        "synthetic": args.synthetic if not args.tree else 0,
        "loads": loads,
        "around_ms": over,
        "wall_ms": wall,
        "cpu_ms": cpu,
        "git_ms": git_ms,
        "git_cpu_ms": git_cpu,
        "summary": {
            "git": {
                "git_ms_median": statistics.median(git_ms),
                "git_cpu_ms_median": statistics.median(git_cpu),
            }
        },
    }
    for n in trees:
        doc["summary"][n] = {
            "around_ms_median": statistics.median(over[n]),
            "wall_ms_median": statistics.median(wall[n]),
            "cpu_ms_median": statistics.median(cpu[n]),
            f"around_vs_{first}": median_of_ratios(over[n], over[first]),
            f"wall_vs_{first}": median_of_ratios(wall[n], wall[first]),
            f"cpu_vs_{first}": median_of_ratios(cpu[n], cpu[first]),
            "around_vs_git": median_of_ratios(over[n], git_ms),
            # (the command is the daemon's child, not in cpu_ms: its own CPU is not avfs's)
            "cpu_vs_git_cpu": median_of_ratios(cpu[n], git_cpu),
        }
        print(n, json.dumps(doc["summary"][n]))
    print_loads(loads)
    print("git", json.dumps(doc["summary"]["git"]))
    write_json(stamped(args.prefix), doc, announce=True)


_ID = ["-c", "user.name=bench", "-c", "user.email=bench@example.com"]


def _git_repo(src: Path, repo: Path) -> None:
    """A plain git repository of ``src``'s files, committed: what a vault of them is."""
    subprocess.run(["cp", "-a", str(src), str(repo)], check=True)
    for a in (["init", "-q"], ["add", "-A"], [*_ID, "commit", "-qm", "init"]):
        subprocess.run(["git", *a], cwd=repo, check=True)


def _git_round(repo: Path, i: int) -> tuple[float, float]:
    """``make.py copyN N`` untimed, then ``git add -A && git commit`` timed: (its ms, the
    CPU seconds ``make.py`` took, which the caller takes out of the round's)."""
    c0 = children_cpu_s()
    subprocess.run(["python3", "make.py", f"copy{i}", str(i)], cwd=repo, check=True)
    make_s = children_cpu_s() - c0
    t0 = time.perf_counter()
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(["git", *_ID, "commit", "-qm", f"copy{i}"], cwd=repo, check=True)
    ms = (time.perf_counter() - t0) * 1000
    print(i, "git", f"{ms:.0f} ms", flush=True)
    return ms, make_s


if __name__ == "__main__":
    main()
