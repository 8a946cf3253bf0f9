"""The teardown's look for a test's mount daemons (tests/daemons.py, conftest's
``_release_kept_warm``) reads only the processes started since the test began: it finds
what reading every process finds of them."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from . import daemons


def _fake_daemon(home: Path) -> int:
    argv = [sys.executable, "-c", "import time; time.sleep(60)", "-m", "avfs_git.fuse.daemon"]
    return os.posix_spawn(sys.executable, [*argv, "--home", str(home)], dict(os.environ))


def _wait_argv(pid: int) -> None:
    # (the new image's arguments come a little after posix_spawn returns)
    while b"avfs_git.fuse.daemon" not in Path(f"/proc/{pid}/cmdline").read_bytes():
        os.sched_yield()


def test_a_daemon_started_after_the_mark_is_found_and_one_before_is_not(tmp_path: Path) -> None:
    before = _fake_daemon(tmp_path / "old")
    try:
        _wait_argv(before)
        mark = daemons.pid_mark()
        after = _fake_daemon(tmp_path / "new")
        try:
            _wait_argv(after)
            # (other processes' daemons come and go meanwhile: this test's only)
            mine = str(tmp_path) + "/"
            every = {p: h for p, a in daemons.running() if (h := daemons.home_of(a) or "").startswith(mine)}
            since = {
                p: h for p, a in daemons.running(mark) if (h := daemons.home_of(a) or "").startswith(mine)
            }
            assert every == {before: str(tmp_path / "old"), after: str(tmp_path / "new")}
            assert since == {after: str(tmp_path / "new")}
        finally:
            os.kill(after, 9)
            os.waitpid(after, 0)
    finally:
        os.kill(before, 9)
        os.waitpid(before, 0)


def test_past_the_last_pid_the_range_goes_round_and_past_a_lap_it_is_every_pid(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, forks = daemons.pid_mark()
    me = os.getpid()
    # the allocator went round since the mark (the last pid is below it): the pids past the
    # mark, and those up to the last
    monkeypatch.setattr(daemons, "_last_pid", lambda: 1)
    got = daemons._new_pids((me, forks))
    assert got is not None and 1 in got and me not in got
    # it did not: those after the mark up to the last
    monkeypatch.setattr(daemons, "_last_pid", lambda: me)
    got = daemons._new_pids((1, forks))
    assert got is not None and me in got and 1 not in got
    # as many forks since the mark as there are pids: every process may be new
    with open("/proc/sys/kernel/pid_max", "rb") as fh:
        pid_max = int(fh.read())
    assert daemons._new_pids((1, forks - pid_max)) is None
