"""N merges of KIND into a mounted fork ``main`` in this process (as the resident server's
kept process runs them), each fork made by another process first (inproc.sh runs it).

Printed: the median CPU of a merge (``time.process_time``: the mount's daemon and git's
processes left out; git's counted apart from ``RUSAGE_CHILDREN`` as ``kids``), with
``TIMED="module:qualname ..."`` the CPU each named function took a merge (outermost call
only), and with ``PROF=FILE`` a cProfile in CPU time of the merges after the first.

``python inproc.py KIND N PREP MOUNTPOINT``; KIND: ff, root, conflict or wide (50 files).
"""

from __future__ import annotations

import collections
import cProfile
import importlib
import json
import os
import pstats
import resource
import statistics
import subprocess
import sys
import time
from typing import Any

sys.path.insert(0, os.environ.get("TREE", "/work/h-merge13"))

import avfs_git  # (from TREE)
from avfs_git.core.operations import merge as merging

acc: collections.Counter[str] = collections.Counter()


def timed(modname: str, qual: str) -> None:
    """``modname``'s ``qual`` (a function or Class.method) timed into ``acc``."""
    mod = importlib.import_module(modname)
    obj, _, attr = qual.rpartition(".")
    owner = getattr(mod, obj) if obj else mod
    real = getattr(owner, attr)
    depth = [0]

    def call(*a: Any, **k: Any) -> Any:
        if depth[0]:
            return real(*a, **k)
        depth[0] += 1
        t0 = time.process_time()
        try:
            return real(*a, **k)
        finally:
            acc[qual] += time.process_time() - t0
            depth[0] -= 1

    setattr(owner, attr, call)


def writes(kind: str, f: str) -> dict[str, dict[str, str]]:
    if kind == "conflict":
        return {"fork": {"index.js": f"fork {f}\n"}, "main": {}}
    if kind == "wide":
        return {"fork": {f"w{f}/{j}.txt": f"{j}\n" for j in range(50)}, "main": {}}
    return {"fork": {f"{f}.md": f"{f}\n"}, "main": {}}


def main() -> None:
    kind, n, prep, mnt = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    env = {**os.environ, "AVFS_SERVER": "off"}
    for spec in os.environ.get("TIMED", "").split():
        timed(*spec.split(":"))
    home = avfs_git.open_home()
    vault = home.vault("mm")
    cpu: list[float] = []
    kids: list[float] = []
    walls: list[float] = []
    prof = cProfile.Profile(time.process_time) if os.environ.get("PROF") else None
    for i in range(n + 1):
        f = f"p{os.getpid()}x{i}"
        subprocess.run([sys.executable, "-c", prep, f, json.dumps(writes(kind, f))], env=env, check=True)
        if kind in ("root", "conflict"):  # the target's own change, written through the mount
            with open(os.path.join(mnt, "index.js" if kind == "conflict" else f"{f}-m.md"), "w") as fh:
                fh.write(f"main {f}\n")
        k0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        c0, w0 = time.process_time(), time.perf_counter()
        if prof is not None and i:
            prof.enable()
        r = merging.merge(vault, f, "main", write_conflicts=kind == "conflict")
        if prof is not None and i:
            prof.disable()
        c1, w1 = time.process_time(), time.perf_counter()
        k1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        if kind == "conflict":
            merging.merge_abort(vault, "main")
        if not i:
            acc.clear()  # (the first merge apart)
        else:
            cpu.append((c1 - c0) * 1000)
            walls.append((w1 - w0) * 1000)
            kids.append(((k1.ru_utime - k0.ru_utime) + (k1.ru_stime - k0.ru_stime)) * 1000)
        print(i, r.status, round((c1 - c0) * 1000, 2), file=sys.stderr)
    print(json.dumps({k: round(v * 1000 / n, 2) for k, v in acc.most_common()}))
    out = {"kind": kind, "cpu": round(statistics.median(cpu), 2), "kids": round(statistics.median(kids), 2)}
    print(json.dumps({**out, "wall": round(statistics.median(walls), 2), "load": os.getloadavg()[0]}))
    if prof is not None:
        prof.dump_stats(os.environ["PROF"])
        pstats.Stats(os.environ["PROF"]).sort_stats("cumulative").print_stats(45)
    home.close()


if __name__ == "__main__":
    main()
