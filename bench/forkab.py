"""Paired A/B of ``Vault.create_fork`` in process: this code against another worktree's.

Each code runs in a worker process of its own venv on its own copy of a template home
(``--home``: a home holding vault ``bench``, layers off, as the bench's templates); every
round asks each worker for one fork (its deletion after it untimed), the two in alternating
order, so both see the same moment's load. Reports the medians of each code's wall and CPU
time and of the pairs' ratios. ``--syscalls`` instead counts each code's system calls a
fork under ``strace -f`` (between two marker ``stat`` calls around each fork)::

    python -m bench.forkab --other /work/base-fork --home TEMPLATE_HOME [--gc] [-n 800]
    python -m bench.forkab --other /work/base-fork --home TEMPLATE_HOME --syscalls
"""

from __future__ import annotations

import argparse
import collections
import gc
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MARK = "/nonexistent-avfs-forkab-mark-"


def _mark(what: str) -> None:
    try:
        os.stat(MARK + what)
    except OSError:
        pass


def worker(template: str, mark: bool) -> None:
    """Fork on command: a line ``g`` (a full ``gc.collect()`` first, as the bench's row) or
    ``n``; answers ``WALL_MS CPU_MS``; ``q`` ends."""
    sys.path.insert(0, os.getcwd())  # the worktree's avfs_git and bench, whichever ran this file
    from avfs_git.core.vaults.home import Home
    from avfs_git.mount.side import MOUNT_SIDE
    from bench.env import AUTHOR

    tmp = tempfile.mkdtemp(prefix="avfs-forkab-")
    hdir = os.path.join(tmp, "home")
    subprocess.run(["cp", "-a", template, hdir], check=True)
    home = Home(hdir, author=AUTHOR, layers="off", mounts=MOUNT_SIDE)
    vault = home.vault("bench")
    vault.workspace("main")
    for i in range(20):  # warm-up
        vault.create_fork("main", f"w-{i}")
        vault.delete_fork(f"w-{i}")
    print("ready", flush=True)
    for i, line in enumerate(sys.stdin):
        if line.startswith("q"):
            break
        if line.startswith("g"):
            gc.collect()
        if mark:
            _mark("begin")
        t0, c0 = time.perf_counter(), time.process_time()
        vault.create_fork("main", f"f-{i}")
        c1, t1 = time.process_time(), time.perf_counter()
        if mark:
            _mark("end")
        vault.delete_fork(f"f-{i}")
        print(f"{(t1 - t0) * 1000:.4f} {(c1 - c0) * 1000:.4f}", flush=True)
    vault.close()
    home.close()
    shutil.rmtree(tmp, ignore_errors=True)


def _start(tree: str, template: str, strace_out: str | None = None) -> subprocess.Popen[str]:
    # this file, run by the tree's interpreter in the tree: the other worktree need not have it
    argv = [
        os.path.join(tree, ".venv", "bin", "python"),
        os.path.abspath(__file__),
        "--worker",
        "--home",
        template,
    ]
    if strace_out is not None:
        argv = ["strace", "-f", "-o", strace_out, *argv, "--mark"]
    w = subprocess.Popen(argv, cwd=tree, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert w.stdout is not None and w.stdout.readline().strip() == "ready"
    return w


def _ask(w: subprocess.Popen[str], cmd: str) -> tuple[float, float]:
    assert w.stdin is not None and w.stdout is not None
    w.stdin.write(cmd + "\n")
    w.stdin.flush()
    wall, cpu = w.stdout.readline().split()
    return float(wall), float(cpu)


def _stop(w: subprocess.Popen[str]) -> None:
    assert w.stdin is not None
    w.stdin.write("q\n")
    w.stdin.close()
    w.wait()
    if w.stdout is not None:
        w.stdout.close()


def paired(trees: dict[str, str], template: str, n: int, cmd: str) -> dict[str, object]:
    # (here, not at the top: the workers run this file as a script, with no package)
    from .abkit import load, median_of_ratios, order

    ws = {k: _start(t, template) for k, t in trees.items()}
    got: dict[str, list[tuple[float, float]]] = {k: [] for k in ws}
    loads = [load()]
    for i in range(n):
        for k in order(sorted(ws), i):
            got[k].append(_ask(ws[k], cmd))
    loads.append(load())
    for w in ws.values():
        _stop(w)
    out: dict[str, object] = {"n": n, "gc": cmd == "g", "load": loads}
    for k, xs in got.items():
        out[k] = {
            "wall_ms": statistics.median(x[0] for x in xs),
            "cpu_ms": statistics.median(x[1] for x in xs),
        }
    for j, what in enumerate(("wall", "cpu")):
        out[f"pair_ratio_{what}"] = median_of_ratios(
            [t[j] for t in got["this"]], [o[j] for o in got["other"]]
        )
    return out


def syscalls(tree: str, template: str, n: int) -> dict[str, float]:
    """System calls a fork, by name, under ``strace -f``."""
    with tempfile.TemporaryDirectory() as tmp:
        trace = os.path.join(tmp, "trace")
        w = _start(tree, template, trace)
        for _ in range(n):
            _ask(w, "n")
        _stop(w)
        counts: collections.Counter[str] = collections.Counter()
        inside = False
        with open(trace, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if MARK in line:
                    inside = MARK + "begin" in line
                    continue
                m = re.match(r"^\d+\s+(\w+)\(", line) if inside else None
                if m and m.group(1) != "clock_gettime":  # the timing's own
                    counts[m.group(1)] += 1
    per = {k: v / n for k, v in counts.most_common()}
    return {"total": sum(per.values()), **per}


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.forkab", description=__doc__.split("\n\n")[0])
    ap.add_argument("--home", required=True, help="the template home (vault bench, layers off)")
    ap.add_argument("--other", help="the other worktree (its own .venv)")
    ap.add_argument("-n", type=int, default=800, help="forks a code (default 800)")
    ap.add_argument(
        "--gc", action="store_true", help="a full gc.collect() before each fork, as the bench's row"
    )
    ap.add_argument("--syscalls", action="store_true", help="count system calls a fork instead (50 forks)")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--mark", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    home = os.path.abspath(args.home)
    if args.worker:
        worker(home, args.mark)
        return
    if not args.other:
        ap.error("--other is required")
    trees = {"this": HERE, "other": os.path.abspath(args.other)}
    if args.syscalls:
        print(json.dumps({k: syscalls(t, home, 50) for k, t in trees.items()}, indent=1))
    else:
        print(json.dumps(paired(trees, home, args.n, "g" if args.gc else "n")))


if __name__ == "__main__":
    main()
