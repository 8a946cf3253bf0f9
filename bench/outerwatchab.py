"""What the Landlock program's look at the outer bwrap costs a confined command
(docs/benchmarks.md, h-tidy2's section of the thirteenth round): the program as a sandbox
runs it (``landlock.wrap`` of ``true`` for a small sandbox, the domain applied), with the
read end of a live pipe as its ``OUTER_FD`` against the same program without one (-1: the
look skipped), interleaved, in this process's tree. Per run: the wall time and the CPU of
the Perl process (its rusage, reaped). Outside bwrap: the init it waits for is the host's
(asleep), so the look is its reads and one ``ppoll``, as in a sandbox whose init waits.

Run: ``.venv/bin/python -m bench.outerwatchab [--runs N]``; the result goes to
``bench/results/outer-watch-ab-<time>.json`` and its medians are printed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from typing import Any

from avfs_git.proxy import confine, landlock

from . import abkit as ab


def _once(argv: list[str], fds: tuple[int, ...]) -> tuple[float, float]:
    """(wall s, CPU s of the process) of one run of ``argv`` with ``fds`` passed."""
    t0 = time.perf_counter()
    pid = os.posix_spawn(argv[0], argv, dict(confine.BWRAP_ENV))
    _, status, ru = os.wait4(pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{argv[:3]}...: {status}")
    return wall, ru.ru_utime + ru.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=200)
    args = ap.parse_args()
    if not landlock.available() or landlock.PPOLL <= 0:
        raise SystemExit("no Perl, or no ppoll number here")
    with tempfile.TemporaryDirectory(prefix="avfs-bench-outer-") as d:
        sb = confine.Sandbox(source=d, path=d, cwd=d, network="none")
        r, w = os.pipe()
        os.set_inheritable(r, True)
        sides = {
            "watched": landlock.wrap(sb, ["/bin/true"], outer_fd=r),
            "unwatched": landlock.wrap(sb, ["/bin/true"]),
        }
        got: dict[str, list[tuple[float, float]]] = {s: [] for s in sides}
        loads = [ab.load()]
        for i in range(args.runs):
            for side in ab.order(list(sides), i):
                got[side].append(_once(sides[side], (r,)))
        loads.append(ab.load())
        os.close(r)
        os.close(w)
    median: dict[str, Any] = {
        s: {
            "wall_ms": statistics.median(x[0] for x in xs) * 1000,
            "cpu_ms": statistics.median(x[1] for x in xs) * 1000,
            "n": len(xs),
        }
        for s, xs in got.items()
    }
    median["cpu_ratio"] = median["watched"]["cpu_ms"] / median["unwatched"]["cpu_ms"]
    result = {
        "case": "the Landlock program of a confined `true`, with and without its look at the outer bwrap",
        "runs": args.runs,
        "loads": loads,
        "median": median,
        "per_run": got,
    }
    ab.write_json(ab.stamped("outer-watch-ab"), result, announce=True)
    ab.print_json({"median": median, "load": loads})


if __name__ == "__main__":
    main()
