"""The Python API's first ``exec_in`` on a fork that is not mounted, stage by stage: the
wall and CPU time of the call's record of the fork (``placement.before``, where it asks the
daemon it has just started) and of the whole call, this tree against another avfs source
tree in the same run, interleaved (docs/benchmarks.md, "The first `proxy exec`: after the
`R` the call waits, its own CPU is ~6 ms").

One worker process per tree (its own home, a 50-file fork), each kept between rounds; a
round asks each worker, the side going first alternating, for one timed ``exec_in(ws,
["true"])``, unmounted after, untimed. ``placement.before`` is timed by a wrapper the worker
puts around it (wall, and the CPU of the calling thread).

Run: ``.venv/bin/python -m bench.firstbeforeab --baseline SRC [--rounds N]``; the result
goes to ``bench/results/first-before-ab-<time>.json`` and its medians are printed.
"""

from __future__ import annotations

import statistics

from . import abkit as ab

# what a worker's answer that is not ok means
REFUSED = "not a first call"
WORKER = r"""
import json, sys, time
import avfs_git
from avfs_git.ops import mounts
from avfs_git.proxy import placement

home = avfs_git.open_home(sys.argv[1])
stage = {}
inner = placement.before

def before(*args, **kw):
    c0, t0 = time.thread_time(), time.perf_counter()
    try:
        return inner(*args, **kw)
    finally:
        stage["wall"], stage["cpu"] = time.perf_counter() - t0, time.thread_time() - c0

placement.before = before
print("ready", flush=True)
for line in sys.stdin:
    v = home.vault("v")
    ws = v.workspace("main")
    t0 = time.perf_counter()
    res = avfs_git.exec_in(ws, ["true"])
    wall = time.perf_counter() - t0
    ok = res.success and res.mount is not None and not res.mount.reused
    mounts.unmount(home, v, "main")
    print(json.dumps({"wall": wall, "before_wall": stage["wall"], "before_cpu": stage["cpu"], "ok": ok}), flush=True)
"""


def main() -> None:
    args, load_before, rounds = ab.api_rounds(WORKER, lambda worker: worker.ask("exec", REFUSED), 11)
    median = {
        s: {k: statistics.median(r[k] for r in rs) * 1000 for k in ("wall", "before_wall", "before_cpu")}
        for s, rs in rounds.items()
    }
    ab.baseline_result(
        "first-before-ab",
        "exec_in's first call on a fork not mounted, in process: the whole call and placement.before (ms)",
        args,
        load_before,
        median,
        rounds,
    )


if __name__ == "__main__":
    main()
