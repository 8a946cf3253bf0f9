"""An incremental `avfs push` in process, with pygit2 loaded as the warm CLI server has it:
the median wall time, this process's CPU and its git processes' CPU of N pushes of a fork
that moved since its last push (one new checkpoint each, untimed), to a bare repository on
disk. Run it with each checkout's own interpreter, in turn:

``WORKTREE/.venv/bin/python bench/pushinproc.py N`` (prints one JSON line)
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import pygit2  # noqa: F401  (loaded, as the warm server has it)

from avfs_git.core.operations import checkpoint, remote
from avfs_git.mount.side import open_home

tmp = tempfile.mkdtemp(prefix="gccold-pip-")
os.environ["AVFS_LAYERS"] = "off"
h = open_home(os.path.join(tmp, "home"))
v = h.create_vault("v")
ws = v.workspace()
for i in range(300):
    ws.write(f"d{i % 10}/f{i}.txt", b"x" * 200)
checkpoint.save(v, message="init")
subprocess.run(["git", "init", "-q", "--bare", os.path.join(tmp, "o.git")], check=True)
remote.add(v, "origin", os.path.join(tmp, "o.git"))
remote.push(v, "origin", ["main"])
W, C, K = [], [], []
for i in range(int(sys.argv[1])):
    v.workspace().write(f"r{i}.txt", b"%d" % i)
    checkpoint.save(v, message=f"r{i}")
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    c0 = time.process_time()
    t0 = time.perf_counter()
    remote.push(v, "origin", ["main"])
    W.append((time.perf_counter() - t0) * 1000)
    C.append((time.process_time() - c0) * 1000)
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    K.append((r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime) * 1000)
h.close()
subprocess.run(["rm", "-rf", tmp])
print(
    json.dumps(
        {"wall": statistics.median(W), "cpu": statistics.median(C), "children_cpu": statistics.median(K)}
    )
)
