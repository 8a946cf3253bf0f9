"""The Python API's first ``exec_in`` on a fork that is not mounted against a mount of the
same fork in process (``ops.mounts.mount``, kept warm as the call's is), this tree against
another avfs source tree in the same run, interleaved (docs/benchmarks.md, "The first
`proxy exec`: its sandbox set up while the mount comes up").

One worker process per tree (its own home, a 50-file fork), each kept between rounds; a
round asks each worker, the side going first alternating, for one timed ``exec_in(ws,
["true"])`` and one timed mount, each unmounted after, untimed. Wall time, and the CPU of
the worker (its threads) and of the children it reaped (bubblewrap) for each.

Run: ``.venv/bin/python -m bench.firstapiab --baseline SRC [--rounds N]``; the result goes
to ``bench/results/first-api-ab-<time>.json`` and its medians are printed.
"""

from __future__ import annotations

import statistics
from typing import Any

from . import abkit as ab

# what a worker's answer that is not ok means
REFUSED = "not a first call / fresh mount"
WORKER = r"""
import json, resource, sys, time
import avfs_git
from avfs_git.ops import mounts

home = avfs_git.open_home(sys.argv[1])

def cpu():
    ru, rc = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime + rc.ru_utime + rc.ru_stime

print("ready", flush=True)
for line in sys.stdin:
    what = line.strip()
    v = home.vault("v")
    ws = v.workspace("main")
    c0, t0 = cpu(), time.perf_counter()
    if what == "exec":
        res = avfs_git.exec_in(ws, ["true"])
        ok = res.success and res.mount is not None and not res.mount.reused
    else:
        info = mounts.mount(home, v, "main", None, idle_timeout_s=600.0)
        ok = info.state == "mounted" and not info.reused
    wall, used = time.perf_counter() - t0, cpu() - c0
    mounts.unmount(home, v, "main")
    print(json.dumps({"wall": wall, "cpu": used, "ok": ok}), flush=True)
"""


def main() -> None:
    def one(worker: ab.Worker) -> dict[str, Any]:
        return {"first": worker.ask("exec", REFUSED), "mount": worker.ask("mount", REFUSED)}

    args, load_before, rounds = ab.api_rounds(WORKER, one, 11)
    median = {
        s: {
            "first_ms": statistics.median(r["first"]["wall"] for r in rs) * 1000,
            "mount_ms": statistics.median(r["mount"]["wall"] for r in rs) * 1000,
            "pairwise": statistics.median(r["first"]["wall"] / r["mount"]["wall"] for r in rs),
            "first_cpu_ms": statistics.median(r["first"]["cpu"] for r in rs) * 1000,
            "mount_cpu_ms": statistics.median(r["mount"]["cpu"] for r in rs) * 1000,
        }
        for s, rs in rounds.items()
    }
    ab.baseline_result(
        "first-api-ab",
        "exec_in's first call on a fork not mounted vs ops.mounts.mount kept warm, in process",
        args,
        load_before,
        median,
        rounds,
    )


if __name__ == "__main__":
    main()
