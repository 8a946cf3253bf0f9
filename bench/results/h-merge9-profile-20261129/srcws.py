"""h-merge9: a merge's source workspace in process (opened, ``merge_state``, ``is_dirty``,
closed), thread CPU, medians of 8 clean forks but the first. Run with ``AVFS_HOME`` at a
home that bench/mergereal.py made (``AVFS_SERVER=off``)."""

import os
import statistics
import time

import avfs_git
from avfs_git.core.operations import checkpoint
from avfs_git.core.operations.merge import merge_state

h = avfs_git.open_home()
v = h.vault("mm")
names = []
for i in range(8):
    n = f"s{os.getpid()}x{i}"
    v.create_fork("main", n)
    v.workspace(n).write(n + ".md", b"x\n")
    checkpoint.save(v, n)
    names.append(n)
v.close_workspaces(keep=0)
t: dict[str, list[float]] = {"open": [], "state": [], "dirty": [], "close": []}
for n in names:
    a = time.thread_time_ns()
    ws = v.workspace(n)
    b = time.thread_time_ns()
    merge_state(ws)
    c = time.thread_time_ns()
    ws.is_dirty()
    d = time.thread_time_ns()
    v.close_workspaces(keep=0)
    e = time.thread_time_ns()
    for k, x, y in (("open", a, b), ("state", b, c), ("dirty", c, d), ("close", d, e)):
        t[k].append((y - x) / 1e6)
print({k: round(statistics.median(x[1:]), 3) for k, x in t.items()})
