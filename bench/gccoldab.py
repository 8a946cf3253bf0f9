"""A/B of a cold `avfs gc`: two avfs checkouts against `git gc`, interleaved in the same
rounds, each on a fresh copy of one home.

``python -m bench.gccoldab --home HOME [--rounds N] [--out FILE] NAME=WORKTREE ...``

HOME is a home the bench's ``gc`` case made (``python -m bench --sizes 10k --only gc
--keep``: ``bench/.work/runs/<stamp>/002-gc-10k``, the vault ``bench`` after 1,000
checkpoints); it is copied for every call and never changed. Each WORKTREE is an avfs
checkout with its own ``make install``: the console script it wrote (``WORKTREE/.venv/bin/
avfs``, the native program where one was built) is what is timed, two ways:

- ``NAME_off``: ``AVFS_SERVER=off``, the bench's ``gc`` row (no server starts);
- ``NAME_user``: a user's first call in a home with no server running (the console script
  as installed, no ``AVFS_SERVER``): the call runs in its own process and starts a server
  for the next call. That server is given two seconds, then stopped (``avfs server stop``),
  untimed, so that no sample shares the machine with the one before's.

``git`` is ``git gc --quiet`` on a copy of the vault alone. Per side: the median wall time,
the median CPU of the process and the children it waited for (a server it started is not
among them), and the median of the per-round ratios against ``git``. Results as JSON
(``--out``, by default ``bench/results/gccold-<stamp>.json``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import time
from pathlib import Path

from . import abkit as ab

VAULT = "bench"


def _once(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    c0, t0 = ab.children_cpu_s(), time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, env=env)
    wall, cpu = (time.perf_counter() - t0) * 1000, (ab.children_cpu_s() - c0) * 1000
    if p.returncode != 0:
        raise RuntimeError(f"{cmd}: {p.returncode}\n{p.stdout.decode()}{p.stderr.decode()}")
    return wall, cpu


def _side(name: str, home: Path, bins: dict[str, str], work: Path) -> tuple[float, float]:
    dest = work / name
    shutil.rmtree(dest, ignore_errors=True)
    base_env = {k: v for k, v in os.environ.items() if k != "AVFS_SERVER"}
    if name == "git":
        subprocess.run(["cp", "-a", str(home / "vaults" / f"{VAULT}.git"), str(dest)], check=True)
        got = _once(["git", "--git-dir", str(dest), "gc", "--quiet"], base_env)
    else:
        who, how = name.rsplit("_", 1)
        subprocess.run(["cp", "-a", str(home), str(dest)], check=True)
        env = {**base_env, "AVFS_SERVER": "off"} if how == "off" else base_env
        got = _once([bins[who], "--home", str(dest), "--vault", VAULT, "--json", "gc"], env)
        if how == "user":  # the server the call started: let it come up, then stop it
            time.sleep(2.0)
            stop = [bins[who], "--home", str(dest), "server", "stop"]
            subprocess.run(stop, capture_output=True, env={**base_env, "AVFS_SERVER": "off"})
    shutil.rmtree(dest, ignore_errors=True)
    return got


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--home", required=True, type=Path, help="a home the bench's gc case kept")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--out", type=Path)
    ap.add_argument("sides", nargs="+", metavar="NAME=WORKTREE")
    args = ap.parse_args()
    bins = {n: ab.avfs_bin(w) for n, w in ab.worktrees(args.sides).items()}
    names = ["git", *(f"{n}_{how}" for how in ("off", "user") for n in bins)]
    wall: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    loads: list[float] = []
    with ab.scratch("avfs-gccold-", chdir=False) as tmp:
        for i, name in ab.warm_rounds(names, args.rounds, loads):  # round 0 untimed
            w, c = _side(name, args.home, bins, tmp)
            if i:
                wall[name].append(w)
                cpu[name].append(c)
    summary = {}
    for n in names:
        summary[n] = {
            "wall_ms": statistics.median(wall[n]),
            "cpu_ms": statistics.median(cpu[n]),
            "median_of_ratios": ab.median_of_ratios(wall[n], wall["git"]),
        }
        print(
            f"{n:14} wall {summary[n]['wall_ms']:7.1f} ms  cpu {summary[n]['cpu_ms']:7.1f} ms"
            f"  / git (median of ratios) {summary[n]['median_of_ratios']:.2f}x"
        )
    ab.print_loads(loads)
    out = args.out or ab.stamped("gccold")
    doc = {"sides": args.sides, "rounds": args.rounds, "wall_ms": wall, "cpu_ms": cpu, "load_1min": loads}
    ab.write_json(out, {**doc, "summary": summary}, indent=1, announce=True)


if __name__ == "__main__":
    main()
