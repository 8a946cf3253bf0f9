"""``locks.wait_free``: a mount daemon's wait for the call that holds its fork (the exec lock)
before the work only later calls need. It returns once the holder, another process, lets
go (never before), at once when the lock is free or its file missing, and holds nothing
after."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from avfs_git.core.store.locks import file_lock, wait_free

HOLDER = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(0.5)
open(sys.argv[2], "w").close()  # written while the lock is still held
fcntl.flock(fd, fcntl.LOCK_UN)
"""


def test_it_returns_only_once_the_holder_let_go(tmp_path: Path) -> None:
    lock, done = tmp_path / "x.lock", tmp_path / "released"
    with subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(lock), str(done)], stdout=subprocess.PIPE, text=True
    ) as holder:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        wait_free(str(lock))
        assert done.exists()  # the holder had finished what it did under the lock
    with file_lock(str(lock), what="the lock", wait_s=0):  # nothing of the wait is held
        pass


def test_a_free_or_missing_lock_does_not_wait(tmp_path: Path) -> None:
    wait_free(str(tmp_path / "missing.lock"))
    assert not (tmp_path / "missing.lock").exists()  # not made
    lock = tmp_path / "free.lock"
    with file_lock(str(lock), what="the lock", wait_s=0):
        pass
    wait_free(str(lock))
    with file_lock(str(lock), what="the lock", wait_s=0):
        pass
