"""What a served `avfs merge` costs beyond the merge (docs/benchmarks.md, h-merge2's section).

In the homes a ``bench.mergereal`` run left (``MERGEREAL_ROOT``, its sides ``this-served``
and, with ``--before DIR``, ``before-served`` run from that tree through ``PYTHONPATH``),
each side's resident server started in a cpuacct cgroup of its own, then per round and
side, the order turned each round: ``log -n 1`` (a served call doing ~2 ms of work: the
call's fork and the next call's spare), a merge of the first fork the run merged (up to
date: the merge's opening, checks and locks, no move), the same ``--dry-run``, and
``status``. A call's CPU is its client's cgroup's growth plus the server's, to ``--settle``
s after it; medians over the rounds.

``python -m bench.mergeserved [--rounds N] [--before DIR]`` as root; results in
``bench/results/mergereal2-served-<UTC>.json``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from . import abkit as ab
from .mergereal import _env
from .spareab import Group

CALLS = {
    "log1": ["log", "-n", "1"],
    "merge_up_to_date": ["merge", "ff1", "--into", "main"],
    "merge_dry_run": ["merge", "ff1", "--into", "main", "--dry-run"],
    "status": ["status"],
}


def run(args: argparse.Namespace) -> dict[str, Any]:
    root = Path(os.environ.get("MERGEREAL_ROOT", "/tmp/mergereal"))
    sides: dict[str, Path | None] = {"this": None}
    if args.before is not None:
        sides["before"] = args.before
    py = sys.executable
    envs = {n: _env(root / f"{n}-served" / "home", root, b) for n, b in sides.items()}
    clients = {n: Group(f"served-{n}") for n in sides}
    servers = {n: Group(f"served-{n}-server") for n in sides}
    res: dict[str, Any] = {"load": [ab.load()], "rounds": [], "before": str(args.before)}
    try:
        for n in sides:
            subprocess.run([py, "-m", "avfs_git", "server", "start"], env=envs[n], check=True,
                           preexec_fn=servers[n].enter, capture_output=True, cwd=root)  # fmt: skip
        time.sleep(2)
        for i in range(args.rounds):
            rec: dict[str, Any] = {"round": i, "load": ab.load()}
            for n in ab.order(list(sides), i):
                for call, words in CALLS.items():
                    c0, s0 = clients[n].usage_ms(), servers[n].usage_ms()
                    p = subprocess.run([py, "-m", "avfs_git", "--vault", "mm", *words], env=envs[n], cwd=root,
                                       preexec_fn=clients[n].enter, capture_output=True)  # fmt: skip
                    time.sleep(args.settle)
                    c, s = clients[n].usage_ms() - c0, servers[n].usage_ms() - s0
                    rec[f"{n}/{call}"] = {"client": round(c, 3), "server": round(s, 3), "cpu": round(c + s, 3),
                                          "code": p.returncode}  # fmt: skip
            print(rec, flush=True)
            res["rounds"].append(rec)
    finally:
        for n in sides:
            subprocess.run(
                [py, "-m", "avfs_git", "server", "stop"], env=envs[n], capture_output=True, cwd=root
            )
        for g in [*clients.values(), *servers.values()]:
            g.close()
    res["load"].append(ab.load())
    keys = [k for k in res["rounds"][0] if "/" in k]
    res["summary"] = {
        k: {m: statistics.median(r[k][m] for r in res["rounds"]) for m in ("client", "server", "cpu")}
        for k in keys
    }
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--before", type=Path)
    ap.add_argument("--settle", type=float, default=0.3)
    res = run(ap.parse_args())
    ab.write_json(ab.stamped("mergereal2-served"), res, indent=1, announce=True)
    for k, v in res["summary"].items():
        print(f"{k:26} client {v['client']:7.2f} server {v['server']:7.2f} cpu {v['cpu']:7.2f}")
    print("load", res["load"])


if __name__ == "__main__":
    main()
