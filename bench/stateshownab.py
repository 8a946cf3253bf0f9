"""A/B of the look gitmodel29 added to avfs's file commands (mount/stagedplant.py
``keep_shown``): `avfs write` then `avfs rm` of a plain path and of a path at a name of
git's own state (``src/config``, staged in the mount's index first) in a mounted fork, each
side's CPU of the CLI processes and their children, interleaved, medians, the load.

    .venv/bin/python -m bench.stateshownab NAME=WORKTREE NAME=WORKTREE [--rounds 9]
        [--files 5000] [--calls 5] [--tag h-gitmodel29]

Each side: a home of its own, vault ``p`` of ``--files`` files, fork ``p:f1`` mounted
(default backend), no CLI server (``AVFS_SERVER=off``: each call its own process).
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
    scratch,
    seed_tree,
    stamped,
    worktrees,
    write_json,
)

CASES = ("plain", "state")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("sides", nargs="+", help="NAME=WORKTREE")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--files", type=int, default=5000)
    ap.add_argument("--calls", type=int, default=5)
    ap.add_argument("--tag", default="h-gitmodel29")
    a = ap.parse_args()
    trees = worktrees(a.sides)
    names = list(trees)
    loads: list[float] = []
    cpu: dict[str, dict[str, list[float]]] = {n: {c: [] for c in CASES} for n in names}
    with scratch("stateshownab-") as tmp:
        src = tmp / "src"
        src.mkdir()
        seed_tree(src, a.files, max(1, a.files // 100))
        envs: dict[str, dict[str, str]] = {}
        heads: dict[str, list[str]] = {}
        mps: dict[str, Path] = {}
        try:
            for n, tree in trees.items():
                home = tmp / f"home-{n}"
                envs[n] = {
                    **os.environ,
                    "AVFS_HOME": str(home),
                    "AVFS_SERVER": "off",
                    "AVFS_PROGRESS": "never",
                }
                envs[n].pop("PYTHONPATH", None)
                heads[n] = [str(Path(tree, ".venv", "bin", "avfs")), "--vault", "p:f1"]
                avfs = heads[n][0]
                for args in (["vault", "create", "p", "--from", str(src)], ["vault", "fork", "p:main", "f1"]):
                    subprocess.run([avfs, *args], env=envs[n], check=True, capture_output=True)
                mps[n] = tmp / f"mp-{n}"
                mps[n].mkdir()
                subprocess.run(
                    [*heads[n], "mount", str(mps[n])], env=envs[n], check=True, capture_output=True
                )
            for i in range(a.rounds + 1):
                loads.append(load())
                for n in order(names, i):
                    for case in CASES:
                        path = "src/config" if case == "state" else "notes/plain.txt"
                        spent = 0.0
                        for k in range(a.calls):
                            body = f"[core]\n\tbare = false\n# {i}-{k}\n"
                            call = [*heads[n], "write", path, body] if case == "plain" else None
                            if call is None:  # (staged in the mount's index first: the look has work)
                                (mps[n] / "src").mkdir(exist_ok=True)
                                (mps[n] / path).write_text(body)
                                subprocess.run(
                                    ["git", "add", path], cwd=mps[n], check=True, capture_output=True
                                )
                                call = [*heads[n], "write", path, body + "#\n"]
                            c0 = children_cpu_s()
                            subprocess.run(call, env=envs[n], check=True, capture_output=True)
                            subprocess.run(
                                [*heads[n], "rm", path], env=envs[n], check=True, capture_output=True
                            )
                            spent += children_cpu_s() - c0
                        if i:  # (round 0 warms the caches)
                            cpu[n][case].append(spent / a.calls * 1000)
            loads.append(load())
        finally:
            for n in trees:
                if n in heads:
                    subprocess.run([*heads[n], "unmount"], env=envs[n], capture_output=True)
    doc: dict[str, Any] = {
        "files": a.files,
        "calls": a.calls,
        "rounds": a.rounds,
        "loads": loads,
        "sides": {},
    }
    for n in names:
        doc["sides"][n] = {"tree": trees[n], "cpu_ms_write_and_rm": cpu[n],
                           "median": {c: statistics.median(cpu[n][c]) for c in CASES}}  # fmt: skip
        for c in CASES:
            print(f"{n:10} {c:6} write+rm CPU median {statistics.median(cpu[n][c]):7.1f} ms")
    if len(names) == 2:
        x, y = names
        doc["ratio_median"] = {
            c: statistics.median(p / q for p, q in zip(cpu[x][c], cpu[y][c], strict=True)) for c in CASES
        }
        print(f"{x}/{y}: median of ratios {doc['ratio_median']}")
    print_loads(loads)
    write_json(stamped(f"{a.tag}-stateshownab"), doc, announce=True)


if __name__ == "__main__":
    main()
