"""An idle pure-FUSE mount's daemon sleeps: its invalidation watcher (fuse/invalidate.py)
wakes on a write of the fork's state directory (the overlay database's commits, by any
process), on a close whose size is left to record, and on a mover's wake-up, not 50 times
a second (an idle mount cost ~7 ms of CPU a second: docs/benchmarks.md, h-mountcost2's
section). And a change made by a process that wakes no one still shows in the mount as
the write returns (the watcher's inotify, where it polled every 20 ms)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from avfs_git.mount import live
from avfs_git.mount.ownfiles import ACK_FILE, files_dir
from avfs_git.ops import mounts

from .conftest import skip_outside_ci
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


# a writer through the CLI whose wake-up reaches no daemon (its FIFO not written): it waits
# for the mount's acknowledgement (ACK_WAIT_S at most) as every writer does
_NO_WAKE = (
    "import sys; from avfs_git.mount import live; live._wake = lambda files: None; "
    "from avfs_git.cli.client import main; sys.exit(main())"
)


def test_a_commit_published_after_its_wal_write_shows(fuse_mount: tuple[Any, Path, int]) -> None:
    """review42 F2: SQLite writes a commit's WAL frames (the state directory's inotify
    event) before it publishes the commit through the ``-shm`` mmap (no event). A writer
    held after each of its ``pwrite64`` (strace's injected delay) publishes each commit
    after the watcher's look at its event: the watcher looked once, saw nothing new, and
    slept its 30 s (the writer's wait for the mount's acknowledgement ran out at ACK_WAIT_S,
    the kernel not told to forget the old bytes). It looks again after such a wake-up, so
    the mount has acknowledged the write (the journal's position in its ``avfs-view``) and
    shows it as the write returns."""
    vault, mp, _pid = fuse_mount
    strace = shutil.which("strace")
    if strace is None:
        skip_outside_ci("strace is not installed (it holds the writer between its WAL write and its commit)")
    assert (mp / "a.txt").read_bytes() == b"one\n"
    time.sleep(0.5)  # (idle: nothing pending in the watcher)
    new = "held\n"
    argv = [strace, "-f", "-qq", "-o", os.devnull, "-e", "trace=pwrite64"]
    argv += ["-e", "inject=pwrite64:delay_exit=300000", sys.executable, "-c", _NO_WAKE]
    argv += ["--vault", "v:main", "write", "a.txt", new]
    got = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert got.returncode == 0, got.stderr
    said = Path(files_dir(vault, "main"), ACK_FILE).read_text().split()
    assert int(said[2]) >= vault.workspace("main").overlay.last_seq(), said
    assert (mp / "a.txt").read_text() == new
