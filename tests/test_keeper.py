"""The keeper of a process's sandboxes (proxy/keeper.py): once its owner has ended, however,
every process carrying the owner's mark is killed, and no other.

Real processes: an owner (a Python process) starts "sandboxes" (``sleep`` with the
environment :func:`keeper.bwrap_env` gives bwrap, so carrying its mark as a sandbox's
processes do), then is SIGKILLed; a forked child of an owner has a mark and a keeper of its
own. (The windows in bubblewrap this closes are tests/contract/test_sandbox_window.py's.)"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from avfs_git.core.store.locks import pid_alive
from avfs_git.proxy import keeper

from .conftest import skip_outside_ci

OWNER = r"""
import os, subprocess, sys, time
from avfs_git.proxy import keeper

def sandbox(tag):
    env = keeper.bwrap_env({"PATH": "/usr/bin:/bin"})
    p = subprocess.Popen(["sleep", "1000"], env=env, start_new_session=True)
    print(tag, p.pid, env.get(keeper.NAME), flush=True)

sandbox("parent")
child = os.fork()
if child == 0:
    sandbox("child")
    time.sleep(1000)
    os._exit(0)
print("forked", child, flush=True)
if sys.argv[1] == "wait":
    time.sleep(1000)
"""


def _until(what: Callable[[], bool], timeout_s: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if what():
            return True
        time.sleep(0.02)
    return bool(what())


def _owner(how: str, tmp_path: Path) -> tuple[subprocess.Popen[str], dict[str, tuple[int, str]], int]:
    proc = subprocess.Popen(
        [sys.executable, "-c", OWNER, how], stdout=subprocess.PIPE, text=True, cwd=tmp_path
    )
    assert proc.stdout is not None
    got: dict[str, tuple[int, str]] = {}
    child = -1
    while len(got) < 2 or child < 0:
        line = proc.stdout.readline().split()
        assert line, "the owner ended before it said its sandboxes"
        if line[0] == "forked":
            child = int(line[1])
        else:
            got[line[0]] = (int(line[1]), line[2])
    return proc, got, child


def _reap_gone(pid: int) -> bool:
    return not pid_alive(pid)


@pytest.fixture(autouse=True)
def _need_sh() -> None:
    if not os.path.exists(keeper.SH):
        skip_outside_ci("no /bin/sh here")


def test_an_owner_killed_has_its_marked_processes_killed_and_its_forked_childs_kept(tmp_path: Path) -> None:
    proc, got, child = _owner("wait", tmp_path)
    try:
        (mine, mark), (childs, child_mark) = got["parent"], got["child"]
        assert mark.startswith(f"{proc.pid}.") and child_mark.startswith(f"{child}.") and child_mark != mark
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert _until(lambda: _reap_gone(mine)), "the killed owner's marked process outlived it"
        assert pid_alive(childs) and pid_alive(child)  # (the forked child's: its own keeper's)
        os.kill(child, signal.SIGKILL)
        assert _until(lambda: _reap_gone(childs)), "the killed child's marked process outlived it"
    finally:
        for pid in (got.get("parent", (0,))[0], got.get("child", (0,))[0], child):
            if pid > 0 and pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
        if proc.stdout is not None:
            proc.stdout.close()


def test_an_owner_that_ends_normally_leaves_nothing_either(tmp_path: Path) -> None:
    proc, got, child = _owner("end", tmp_path)
    try:
        assert proc.wait() == 0
        assert _until(lambda: _reap_gone(got["parent"][0])), "the ended owner's marked process outlived it"
        os.kill(child, signal.SIGKILL)
        assert _until(lambda: _reap_gone(got["child"][0]))
    finally:
        for pid in (got["parent"][0], got["child"][0], child):
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
        if proc.stdout is not None:
            proc.stdout.close()
