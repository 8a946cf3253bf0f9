"""A/B of a user's first `avfs vault clone` and `avfs fetch` (a home no server answers yet):
avfs checkouts against git, interleaved in the same rounds.

``python -m bench.firstxferab --repo GIT_DIR [--rounds N] [--out FILE] NAME=WORKTREE ...``

Each WORKTREE is an avfs checkout with its own ``make install``; its console script
(``WORKTREE/.venv/bin/avfs``) runs as installed, without ``AVFS_SERVER``: the call finds no
server and runs in its own process, and starts one for the next call (before the call on
main's code at 82c2577, after it since ``LATE_START`` has the transfers). That server is
given two seconds, then stopped, untimed. Per round and side, in a new home: ``avfs vault
clone file://REPO c`` against ``git clone -q --bare file://REPO``, then ``avfs --vault f
fetch origin`` into a new vault (made with ``AVFS_SERVER=off``, untimed) against ``git
fetch -q --prune origin`` into a copy of it. Medians of wall time and of the per-round
ratios against git; JSON to ``--out`` (by default ``bench/results/firstxfer-<stamp>.json``).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from . import abkit as ab
from .env import rmtree


def _side(name: str, avfs: str | None, url: str, work: Path, base_env: dict[str, str]) -> tuple[float, float]:
    rmtree(work)
    work.mkdir()
    if avfs is None:
        clone = ab.timed_ms(["git", "clone", "-q", "--bare", url, str(work / "c.git")])
        ab.run(["git", "init", "-q", "--bare", str(work / "f.git")])
        ab.run(["git", "--git-dir", str(work / "f.git"), "remote", "add", "origin", url])
        fetch = ab.timed_ms(["git", "--git-dir", str(work / "f.git"), "fetch", "-q", "--prune", "origin"])
        return clone, fetch
    env = {**base_env, "AVFS_HOME": str(work / "home")}
    off = {**env, "AVFS_SERVER": "off"}
    clone = ab.timed_ms([avfs, "vault", "clone", url, "c"], env)
    time.sleep(2.0)  # the server the call started: up, then stopped (untimed)
    ab.run([avfs, "server", "stop"], off)
    ab.run([avfs, "vault", "create", "f"], off)
    ab.run([avfs, "--vault", "f", "remote", "add", "origin", url], off)
    fetch = ab.timed_ms([avfs, "--vault", "f", "fetch", "origin"], env)
    time.sleep(2.0)
    ab.run([avfs, "server", "stop"], off)
    return clone, fetch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repo", required=True, type=Path, help="a bare repository to clone and fetch")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--out", type=Path)
    ap.add_argument("sides", nargs="+", metavar="NAME=WORKTREE")
    args = ap.parse_args()
    bins: dict[str, str | None] = {"git": None}
    bins.update({n: ab.avfs_bin(w) for n, w in ab.worktrees(args.sides).items()})
    names = list(bins)
    url = "file://" + str(args.repo.resolve())
    base_env = {k: v for k, v in os.environ.items() if k != "AVFS_SERVER"}
    base_env["AVFS_PROGRESS"] = "never"
    wall: dict[str, dict[str, list[float]]] = {op: {n: [] for n in names} for op in ("clone", "fetch")}
    loads: list[float] = []
    # (a server started in an avfs checkout would import that checkout's package)
    with ab.scratch("avfs-firstxfer-") as tmp:
        for i, n in ab.warm_rounds(names, args.rounds, loads):  # round 0 untimed
            clone, fetch = _side(n, bins[n], url, tmp / n, base_env)
            if i:
                wall["clone"][n].append(clone)
                wall["fetch"][n].append(fetch)
    summary = ab.summary_vs_git(wall, names)
    ab.print_loads(loads)
    out = args.out or ab.stamped("firstxfer")
    doc = {
        "sides": args.sides,
        "rounds": args.rounds,
        "repo": str(args.repo),
        "wall_ms": wall,
        "load_1min": loads,
    }
    ab.write_json(out, {**doc, "summary": summary}, indent=1, announce=True)


if __name__ == "__main__":
    main()
