"""How long after a holder lets go does ``file_lock``'s waiter get the lock (issue 31)?

``python bench/lockwake.py LOCK N SEED`` (run from ``/`` with a checkout's venv: that
checkout's code): a holder process takes the lock for 5-60 ms (random, ``SEED``), stamps
its release and lets go; this process asks for the lock right after the holder has it and
notes the time it got it minus the release, and its own CPU for the wait.
"""

import random
import statistics
import subprocess
import sys
import time

from avfs_git.core.store.locks import file_lock

HOLDER = r"""
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
for line in sys.stdin:
    hold = float(line)
    fcntl.flock(fd, fcntl.LOCK_EX)
    print("held", flush=True)
    time.sleep(hold)
    t = time.monotonic()
    fcntl.flock(fd, fcntl.LOCK_UN)
    print(repr(t), flush=True)
"""

path, n = sys.argv[1], int(sys.argv[2])
random.seed(int(sys.argv[3]))
h = subprocess.Popen(
    [sys.executable, "-c", HOLDER, path], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
)
assert h.stdin is not None and h.stdout is not None
late, cpu = [], []
for _ in range(n):
    hold = random.uniform(0.005, 0.06)
    h.stdin.write(f"{hold}\n")
    h.stdin.flush()
    assert h.stdout.readline() == "held\n"
    c = time.process_time()
    with file_lock(path, what="x", wait_s=10):
        got = time.monotonic()
    cpu.append((time.process_time() - c) * 1000)
    rel = float(h.stdout.readline())
    late.append((got - rel) * 1000)
    time.sleep(0.01)
h.stdin.close()
h.wait()
print(
    f"late median {statistics.median(late):.2f} ms, mean {statistics.mean(late):.2f}, max {max(late):.1f};"
    f" waiter CPU median {statistics.median(cpu):.2f} ms"
)
