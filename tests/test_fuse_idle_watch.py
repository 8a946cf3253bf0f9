"""An idle pure-FUSE mount's daemon sleeps: its invalidation watcher (fuse/invalidate.py)
wakes on a write of the fork's state directory (the overlay database's commits, by any
process), on a close whose size is left to record, and on a mover's wake-up, not 50 times
a second (an idle mount cost ~7 ms of CPU a second: docs/benchmarks.md, h-mountcost2's
section). And a change made by a process that wakes no one still shows in the mount as
the write returns (the watcher's inotify, where it polled every 20 ms)."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from avfs_git.mount import live
from avfs_git.ops import mounts

from .test_fuse_teardown import require_fuse

IDLE_S = 2.0
# wake-ups of every thread of an idle daemon over IDLE_S: main's watcher alone made ~95
# (a poll every 20 ms); the branch's daemon none but its own start's stragglers
MOST_WAKES = 20


def _wakes(pid: int) -> int:
    """The voluntary context switches of every thread of process ``pid`` so far."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            text = Path(f"/proc/{pid}/task/{tid}/status").read_text()
        except OSError:
            continue
        for line in text.splitlines():
            if line.startswith("voluntary_ctxt_switches:"):
                total += int(line.split()[1])
    return total


@pytest.fixture
def fuse_mount(home: Any, vault: Any, tmp_path: Path) -> Iterator[tuple[Any, Path, int]]:
    require_fuse()
    ws = vault.workspace("main")
    ws.write("a.txt", b"one\n")
    mp = tmp_path / "mnt"
    mp.mkdir()
    info = mounts.mount(home, vault, "main", str(mp), backend="fuse")
    try:
        yield vault, mp, info.pid
    finally:
        try:
            mounts.unmount(home, vault, "main", lazy=True)
        finally:
            if mounts.mounted_at(str(mp)):
                subprocess.run(["fusermount3", "-u", "-z", str(mp)], check=False)


def test_an_idle_pure_fuse_daemon_sleeps(fuse_mount: tuple[Any, Path, int]) -> None:
    _vault, mp, pid = fuse_mount
    assert (mp / "a.txt").read_bytes() == b"one\n"
    subprocess.run(["git", "status", "--porcelain"], cwd=mp, check=True, capture_output=True)
    time.sleep(0.5)  # (the mount's start and git's status done with)
    before = _wakes(pid)
    time.sleep(IDLE_S)
    woke = _wakes(pid) - before
    assert woke <= MOST_WAKES, f"an idle pure-FUSE daemon woke {woke} times in {IDLE_S} s"


def test_a_change_by_a_process_that_wakes_no_one_shows(
    fuse_mount: tuple[Any, Path, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write through a workspace whose wake-up reaches no daemon (its FIFO not written):
    the watcher reads the journal on the database's write, and the write's wait for the
    mount's acknowledgement returns with the mount showing it (at most ACK_WAIT_S, then the
    old contents would show)."""
    vault, mp, _pid = fuse_mount
    assert (mp / "a.txt").read_bytes() == b"one\n"
    monkeypatch.setattr(live, "_wake", lambda files: None)
    time.sleep(0.5)  # (idle: nothing pending in the watcher)
    ws = vault.workspace("main")
    for i in range(3):
        ws.write("a.txt", f"two {i}\n".encode())
        assert (mp / "a.txt").read_bytes() == f"two {i}\n".encode()
        ws.write(f"new{i}.txt", b"new\n")
        assert (mp / f"new{i}.txt").read_bytes() == b"new\n"
