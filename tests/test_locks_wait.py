"""``locks.wait_free``: a mount daemon's wait for the call that holds its fork (the exec lock)
before the work only later calls need. It returns once the holder, another process, lets
go (never before), at once when the lock is free or its file missing, and holds nothing
after. And the bounded wait of ``file_lock``: how often it tries a busy lock
(``locks.next_poll``), the lock got once its holder lets go, ``BusyError`` past the bound."""

from __future__ import annotations

import itertools
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from avfs_git.core.errors import BusyError
from avfs_git.core.store import locks
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


@pytest.fixture
def held(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A lock file another process holds for 0.5 s, and the file it makes just before it
    lets go; the process waited for at the end."""
    lock, done = tmp_path / "x.lock", tmp_path / "released"
    with subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(lock), str(done)], stdout=subprocess.PIPE, text=True
    ) as holder:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        yield lock, done


def test_it_returns_only_once_the_holder_let_go(held: tuple[Path, Path]) -> None:
    lock, done = held
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


def _wakes(wait_s: float, until_s: float) -> list[float]:
    """When a waiter bounded by ``wait_s`` tries a busy lock again (seconds into its wait),
    by :func:`locks.next_poll`'s schedule, up to ``until_s``."""
    at, delay, out = 0.0, locks.POLL_S, []
    while at < until_s:
        at += delay
        out.append(at)
        delay = locks.next_poll(delay, wait_s - at, wait_s)
    return out


def test_a_short_hold_is_followed_within_one_quick_poll() -> None:
    """A holder of a moment (a fork, a fork's spare made after its answer: a snapshot's
    commit) is followed by its waiter within a poll of ``POLL_S``, whenever it lets go in
    the first ``QUICK_S`` of the wait; the schedule that doubled from 2 ms overshot a 15 ms
    hold by 15 ms (the next fork from the CLI waited that long for the spare)."""
    wakes = _wakes(10.0, locks.QUICK_S + locks.POLL_S)
    for i in range(1, int(locks.QUICK_S / locks.POLL_S)):
        hold = i * locks.POLL_S - locks.POLL_S / 2
        woke = next(w for w in wakes if w >= hold)
        assert woke - hold <= locks.POLL_S + 1e-9, (hold, woke)


def test_a_long_wait_backs_off() -> None:
    """Past the quick part a waiter polls less and less often, up to every
    ``SLOW_POLL_S``: a wait of seconds costs few tries."""
    wakes = _wakes(10.0, 10.0)
    gaps = [b - a for a, b in itertools.pairwise(wakes)]
    assert abs(max(gaps) - locks.SLOW_POLL_S) < 1e-9
    assert len(wakes) < locks.QUICK_S / locks.POLL_S + 10.0 / locks.SLOW_POLL_S + 10


def test_a_waiter_gets_the_lock_its_holder_let_go_and_gives_up_at_its_bound(held: tuple[Path, Path]) -> None:
    lock, done = held
    with pytest.raises(BusyError), file_lock(str(lock), what="the lock", wait_s=0.15):
        pass
    with file_lock(str(lock), what="the lock", wait_s=30):
        assert done.exists()  # got only once the holder was done
