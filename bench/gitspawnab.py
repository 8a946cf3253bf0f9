"""A/B of the git processes avfs starts (branch h-gitspawn1): ``proxy exec`` runs that
record a commit on a mounted fork, each side's CPU of the whole process tree (the CLI
process and its children, and the fork's mount daemon with the git processes it started
and reaped, read from ``/proc``), interleaved, medians, the load.

    .venv/bin/python -m bench.gitspawnab NAME=WORKTREE NAME=WORKTREE [--rounds 7]
        [--files 10000] [--calls 5] [--add] [--tag h-gitspawn1]

Each side: a home of its own, vault ``p`` of ``--files`` files, fork ``p:f1`` mounted
(default backend), no CLI server (``AVFS_SERVER=off``: every call its own process, as the
suite runs them). Each round runs ``--calls`` calls ``proxy exec -- sh -c 'echo N > w.txt'``
(each a commit) on each side in turn. A ``git`` on PATH counts the git processes.
``--add``: each call also runs ``git add w.txt`` (its index changed: the carry-back looks
at what it stages, h-fix40a); ``--tag``: the result file's name.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
from pathlib import Path
from typing import Any

from .abkit import (
    children_cpu_s,
    load,
    order,
    print_loads,
    proc_cpu_s,
    scratch,
    seed_tree,
    stamped,
    worktrees,
    write_json,
)
from .gitspawns import shim


def _tree_cpu(home: str) -> float:
    """The CPU of every live process whose command line names ``home`` (its mount daemon),
    with the children each reaped."""
    total = 0.0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                if home.encode() not in fh.read():
                    continue
            total += proc_cpu_s(int(pid))
        except (OSError, ValueError):
            continue
    return total


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("sides", nargs="+", help="NAME=WORKTREE")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--files", type=int, default=10000)
    ap.add_argument("--calls", type=int, default=5)
    ap.add_argument("--add", action="store_true")
    ap.add_argument("--tag", default="h-gitspawn1")
    a = ap.parse_args()
    trees = worktrees(a.sides)
    names = list(trees)
    loads: list[float] = []
    cpu: dict[str, list[float]] = {n: [] for n in names}
    gits: dict[str, list[int]] = {n: [] for n in names}
    with scratch("gitspawnab-") as tmp:
        src = tmp / "src"
        src.mkdir()
        seed_tree(src, a.files, max(1, a.files // 100))
        envs: dict[str, dict[str, str]] = {}
        logs: dict[str, Path] = {}
        heads: dict[str, list[str]] = {}
        try:
            for n, tree in trees.items():
                bindir, logs[n] = shim(tmp / f"bin-{n}")
                home = tmp / f"home-{n}"
                envs[n] = {**os.environ, "AVFS_HOME": str(home), "AVFS_SERVER": "off", "AVFS_PROGRESS": "never",
                           "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"}  # fmt: skip
                envs[n].pop("PYTHONPATH", None)
                heads[n] = [str(Path(tree, ".venv", "bin", "avfs")), "--vault", "p:f1"]
                avfs = heads[n][0]
                for args in (["vault", "create", "p", "--from", str(src)], ["vault", "fork", "p:main", "f1"]):
                    subprocess.run([avfs, *args], env=envs[n], check=True, capture_output=True)
                (tmp / f"mp-{n}").mkdir()
                subprocess.run([*heads[n], "mount", str(tmp / f"mp-{n}")], env=envs[n], check=True,
                               capture_output=True)  # fmt: skip
            for i in range(a.rounds + 1):
                loads.append(load())
                for n in order(names, i):
                    home = envs[n]["AVFS_HOME"]
                    before_git = len(logs[n].read_text().splitlines())
                    c0, d0 = children_cpu_s(), _tree_cpu(home)
                    for k in range(a.calls):
                        cmd = [
                            *heads[n],
                            "--json",
                            "proxy",
                            "exec",
                            "--",
                            "sh",
                            "-c",
                            f"echo {i}-{k} > w.txt" + (" && git add w.txt" if a.add else ""),
                        ]
                        subprocess.run(cmd, env=envs[n], check=True, capture_output=True)
                    spent = children_cpu_s() - c0 + _tree_cpu(home) - d0
                    if i:  # (round 0 warms the caches)
                        cpu[n].append(spent / a.calls * 1000)
                        gits[n].append(len(logs[n].read_text().splitlines()) - before_git)
            loads.append(load())
        finally:
            for n in trees:
                if n in heads:
                    subprocess.run([*heads[n], "unmount"], env=envs[n], capture_output=True)
    doc: dict[str, Any] = {
        "add": a.add,
        "files": a.files,
        "calls": a.calls,
        "rounds": a.rounds,
        "loads": loads,
        "sides": {},
    }
    for n in names:
        doc["sides"][n] = {"tree": trees[n], "cpu_ms_per_call": cpu[n], "median_cpu_ms": statistics.median(cpu[n]),
                           "git_per_round": gits[n]}  # fmt: skip
        print(f"{n:10} CPU/call median {statistics.median(cpu[n]):7.1f} ms  git processes a round {gits[n]}")
    if len(names) == 2:
        x, y = names
        ratio = statistics.median(p / q for p, q in zip(cpu[x], cpu[y], strict=True))
        doc["ratio_median"] = ratio
        print(f"{x}/{y}: median of ratios {ratio:.3f}")
    print_loads(loads)
    write_json(stamped(f"{a.tag}-proxyexec{'-add' if a.add else ''}"), doc, announce=True)


if __name__ == "__main__":
    main()
