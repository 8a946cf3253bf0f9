"""The sandboxes a session's tests left behind, as the suite's end looks for them in /proc
(tests/conftest.py, ``no_sandbox_outlives_its_owner``)."""

from __future__ import annotations

import os
import time

# how long a sandbox whose owner ended just before the session's end may take to end too
SETTLE_S = 10.0


def orphaned_bwraps(mark: bytes, settle_s: float = SETTLE_S) -> list[tuple[int, bytes]]:
    """(pid, start of the command line) of each ``bwrap`` with parent 1 whose command line
    holds ``mark`` (a base temp dir: the test's own), still there after ``settle_s``."""
    deadline = time.monotonic() + settle_s
    while True:
        found = _orphaned(mark)
        if not found or time.monotonic() >= deadline:
            return found
        time.sleep(0.1)


def _orphaned(mark: bytes) -> list[tuple[int, bytes]]:
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
            with open(f"/proc/{p}/cmdline", "rb") as fh:
                cmd = fh.read()
        except (OSError, IndexError):
            continue
        if fields[0] == b"Z" or fields[1] != b"1":  # (a zombie is its reaper's to collect)
            continue
        argv0 = cmd.split(b"\0", 1)[0]
        if os.path.basename(argv0) == b"bwrap" and mark in cmd:
            out.append((int(p), cmd[:80]))
    return out
