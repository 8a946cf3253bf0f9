"""The kept process's check that a call left nothing behind, without a collection when
nothing is left (h-merge6).

After each call the kept process (cli/callproc.py ``keep``) checks that the call left no
descriptor, thread or umask behind before it takes the next (:func:`.callproc._clean`).
It ran a full ``gc.collect()`` first, every call, so that a cycle holding a descriptor
was let go before the count: ~0.9 ms of a served merge's CPU after its answer on
minimist, where no merge left such a cycle (docs/benchmarks.md, h-merge6's section). It
looks first now, and collects and looks again only when something is left. Each case runs
in a process of its own holding descriptors 3 and 4 as the kept process does (its
caller's connection, its end of the pair)."""

from __future__ import annotations

import json
import subprocess
import sys

SCRIPT = r"""
import gc, json, os, sys
gc.disable()  # (only the check's own collection frees a cycle here)
null = os.open("/dev/null", os.O_RDWR)
for fd in (3, 4):
    if fd != null:
        os.dup2(null, fd)
if null not in (3, 4):
    os.close(null)
from avfs_git.cli import callproc
from avfs_git.cli.homekeep import KeptHome

collects = []
real = gc.collect
def counted(*a):
    collects.append(1)
    return real(*a)
gc.collect = counted
umask = os.umask(0o022)
os.umask(umask)
kept = KeptHome()
out = {"clean": callproc._clean(umask, kept), "collects": len(collects)}

class Cycle:
    pass

c = Cycle()
c.me = c
c.fh = open(sys.executable, "rb")  # (a descriptor only the cycle holds)
fd = c.fh.fileno()
del c
out["cycle_clean"] = callproc._clean(umask, kept)
out["cycle_collects"] = len(collects) - out["collects"]
out["cycle_fd_closed"] = not os.path.exists(f"/proc/self/fd/{fd}")
left = open(sys.executable, "rb")  # (a descriptor the call left open)
out["left_clean"] = callproc._clean(umask, kept)
print(json.dumps(out))
"""


def test_a_call_that_left_nothing_is_clean_without_a_collection() -> None:
    """Nothing left: clean, no collection (main's code: one a call). A cycle holding a
    descriptor: collected, then clean, the descriptor closed. A descriptor left open:
    not clean, as before."""
    p = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    got = json.loads(p.stdout)
    assert got == {
        "clean": True,
        "collects": 0,
        "cycle_clean": True,
        "cycle_collects": 1,
        "cycle_fd_closed": True,
        "left_clean": False,
    }, got
