"""A/B of the git processes cold avfs commands start (branch h-gitspawn1): ``checkpoint
save`` and ``vault fork`` each in a process of its own (``AVFS_SERVER=off``: no libgit2
loaded), and a mount and unmount whose daemon starts cold; each side's CPU of the whole
process tree (the CLI processes and what they reaped; the mount's daemon read from
``/proc`` just before its unmount), interleaved, medians, the load.

    .venv/bin/python -m bench.gitspawncoldab NAME=WORKTREE NAME=WORKTREE [--rounds 7]
        [--files 10000]
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
from .gitspawnab import _tree_cpu
from .gitspawns import shim

KINDS = ("checkpoint save", "vault fork", "mount+unmount")


def _round(head: list[str], env: dict[str, str], tmp: Path, n: str, i: int) -> dict[str, float]:
    """One round of one side: CPU (ms) of each kind."""
    out: dict[str, float] = {}
    subprocess.run([*head, "write", f"d0/r{i}.txt", f"round {i}"], env=env, check=True, capture_output=True)
    c0 = children_cpu_s()
    subprocess.run([*head, "checkpoint", "save", "-m", f"r{i}"], env=env, check=True, capture_output=True)
    out["checkpoint save"] = (children_cpu_s() - c0) * 1000
    c0 = children_cpu_s()
    subprocess.run([head[0], "vault", "fork", "p:f1", f"g{i}"], env=env, check=True, capture_output=True)
    out["vault fork"] = (children_cpu_s() - c0) * 1000
    mp = tmp / f"mp-{n}"
    c0 = children_cpu_s()
    subprocess.run([*head, "mount", str(mp)], env=env, check=True, capture_output=True)
    daemon = _tree_cpu(env["AVFS_HOME"])
    subprocess.run([*head, "unmount"], env=env, check=True, capture_output=True)
    out["mount+unmount"] = (children_cpu_s() - c0 + daemon) * 1000
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("sides", nargs="+", help="NAME=WORKTREE")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--files", type=int, default=10000)
    a = ap.parse_args()
    trees = worktrees(a.sides)
    names = list(trees)
    loads: list[float] = []
    cpu: dict[str, dict[str, list[float]]] = {n: {k: [] for k in KINDS} for n in names}
    gits: dict[str, list[int]] = {n: [] for n in names}
    with scratch("gitspawncoldab-") as tmp:
        src = tmp / "src"
        src.mkdir()
        seed_tree(src, a.files, max(1, a.files // 100))
        envs: dict[str, dict[str, str]] = {}
        logs: dict[str, Path] = {}
        heads: dict[str, list[str]] = {}
        for n, tree in trees.items():
            bindir, logs[n] = shim(tmp / f"bin-{n}")
            envs[n] = {**os.environ, "AVFS_HOME": str(tmp / f"home-{n}"), "AVFS_SERVER": "off",
                       "AVFS_PROGRESS": "never", "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"}  # fmt: skip
            envs[n].pop("PYTHONPATH", None)
            heads[n] = [str(Path(tree, ".venv", "bin", "avfs")), "--vault", "p:f1"]
            for args in (["vault", "create", "p", "--from", str(src)], ["vault", "fork", "p:main", "f1"]):
                subprocess.run([heads[n][0], *args], env=envs[n], check=True, capture_output=True)
            (tmp / f"mp-{n}").mkdir()
        try:
            for i in range(a.rounds + 1):
                loads.append(load())
                for n in order(names, i):
                    before = len(logs[n].read_text().splitlines())
                    got = _round(heads[n], envs[n], tmp, n, i)
                    if i:  # (round 0 warms the caches, and keeps what the first asks)
                        for k, v in got.items():
                            cpu[n][k].append(v)
                        gits[n].append(len(logs[n].read_text().splitlines()) - before)
            loads.append(load())
        finally:
            for n in trees:
                subprocess.run([*heads[n], "unmount"], env=envs[n], capture_output=True)
    doc: dict[str, Any] = {"files": a.files, "rounds": a.rounds, "loads": loads, "sides": {}}
    for n in names:
        doc["sides"][n] = {"tree": trees[n], "cpu_ms": cpu[n], "git_per_round": gits[n],
                           "median_cpu_ms": {k: statistics.median(v) for k, v in cpu[n].items()}}  # fmt: skip
        meds = "  ".join(f"{k} {statistics.median(v):6.1f}" for k, v in cpu[n].items())
        print(f"{n:10} CPU ms medians: {meds}  git processes a round {gits[n]}")
    if len(names) == 2:
        x, y = names
        doc["ratio_median"] = {
            k: statistics.median(p / q for p, q in zip(cpu[x][k], cpu[y][k], strict=True)) for k in KINDS
        }
        print(f"{x}/{y}: medians of ratios", {k: round(v, 3) for k, v in doc["ratio_median"].items()})
    print_loads(loads)
    write_json(stamped("h-gitspawn1-cold"), doc, announce=True)


if __name__ == "__main__":
    main()
