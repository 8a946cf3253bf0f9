"""One lock between the tests that change the host's /etc and those that need it still.

The sandbox's view of /etc (avfs_git/proxy/sysview.py) is stamped by the ctimes of /etc's
directories and the modes of the files it shows, and a sandbox set up ahead is keyed by
that stamp (first9): a test that makes its own root-only files in /etc (attack24's,
first9's, attack26's) changes the stamp, and a test on another worker that checks the
first call ran in the sandbox set up ahead (tests/contract/test_exec_ahead.py) found it
thrown away (ci44). The first hold the lock alone, the second shared; across workers, a
flock on a file in /tmp (a stale one is harmless: the kernel drops it with its holder)."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

LOCK = "/tmp/avfs-test-etc.lock"


# the view is not kept where a directory of /etc changed less than a second before it was
# made (a second change in the same clock tick could keep the ctime): the one who changed
# /etc lets go only once that second has passed, so that a sandbox set up after is kept
SETTLE_S = 1.1


@contextmanager
def held(*, alone: bool) -> Iterator[None]:
    fd = os.open(LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
        yield
        if alone:
            time.sleep(SETTLE_S)
    finally:
        os.close(fd)
