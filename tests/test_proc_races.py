"""The suite's own looks at other processes, raced as a loaded machine races them.

A process reaped after ``/proc/PID/stat`` was opened and before it was read makes the read
fail with ESRCH (ProcessLookupError), not ENOENT: a helper that says whether a process is
gone must take that as gone (the last CI failed so in test_proxy's impostor test). Each
helper of that shape is given here a stat opened on a process that is then killed and
reaped before the read.

And a pid found earlier that is signalled later (a teardown's, an unmount's kill of a
daemon that did not end, `server stop`'s): by then the process found may have ended and its
pid been given to another, which must not get the signal. Recreated for real in a PID
namespace of the test's own, where the next pid given is set (``ns_last_pid``).
"""

from __future__ import annotations

import builtins
import importlib
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from typing import Any

import pytest

from avfs_git.core.vaults.home import Home
from avfs_git.core.vaults.vault import Vault

from .conftest import run_in_process, skip_outside_ci

# (module, helper): each says True for a process that is gone or a zombie
GONE_HELPERS = [
    ("tests.test_overlay", "_ended"),
    ("tests.test_proxy", "_pid_gone"),
    ("tests.test_isolate", "_pid_gone"),
    ("tests.contract.test_mount_kept_warm", "_zombie"),
    ("tests.contract.test_proxy_exec_warm", "_gone"),
]


@pytest.mark.parametrize(("module", "name"), GONE_HELPERS)
def test_a_process_reaped_between_its_stat_opened_and_read_is_gone(
    module: str, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    mod = importlib.import_module(module)
    child = subprocess.Popen(["sleep", "600"])
    stat = f"/proc/{child.pid}/stat"
    raced: list[str] = []
    real_open = builtins.open

    def racing_open(path: Any, *args: Any, **kwargs: Any) -> Any:
        fh = real_open(path, *args, **kwargs)
        if str(path) == stat:  # opened: now it ends and is collected, before the read
            child.kill()
            child.wait()
            raced.append(stat)
        return fh

    # where the helper looks ``open`` up: its module's globals come before the builtins
    monkeypatch.setattr(mod, "open", racing_open, raising=False)
    try:
        assert getattr(mod, name)(child.pid) is True
    finally:
        child.kill()
        child.wait()
    assert raced == [stat]  # the read did come after the reap


# -- a pid found earlier, given to another process by the time it is signalled --------------
# (in a PID namespace of the test's own, where the next pid is set (``ns_last_pid``): the
# kernel gives the ended process's pid to the next one, as a busy machine does in time)

UNSHARE = ["unshare", "--pid", "--fork", "--mount-proc"]

GIVE_AGAIN = textwrap.dedent(
    """
    import os, signal, subprocess, sys, time
    def start_ticks(pid):  # field 22 of its stat: when it started
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return int(fh.read().rsplit(b")", 1)[1].split()[19])
    def given_again(pid, ticks):
        # a new process with ``pid`` (the one that had it ended and was collected), started
        # at a later clock tick than the one found
        while True:
            with open("/proc/sys/kernel/ns_last_pid", "w") as fh:
                fh.write(str(pid - 1))
            other = subprocess.Popen(["sleep", "600"])
            assert other.pid == pid, (other.pid, pid)
            if start_ticks(pid) != ticks:
                return other
            other.kill()
            other.wait()
    """
)

SIGNALLED = GIVE_AGAIN + textwrap.dedent(
    """
    from avfs_git.core.store import locks
    if sys.argv[1] == "no-pidfd":
        def none(pid, flags=0):
            calls.append(pid)
            raise OSError(38, "no pidfd here")
        calls = []
        os.pidfd_open = none  # (where signal_process looks it up: the os module's)
    found = subprocess.Popen(["sleep", "600"])
    pid, ticks = found.pid, start_ticks(found.pid)
    found.kill()
    found.wait()
    other = given_again(pid, ticks)
    by_ticks = locks.signal_process(pid, signal.SIGKILL, ticks=ticks)
    by_check = locks.signal_process(pid, signal.SIGKILL, is_it=lambda p: False)
    alive = other.poll() is None
    told = locks.signal_process(pid, signal.SIGKILL, ticks=start_ticks(pid))  # (it, found now)
    print(by_ticks, by_check, alive, told, other.wait() == -9, sys.argv[1] != "no-pidfd" or calls == [pid] * 3)
    """
)


def _in_namespace(script: str, *args: str) -> list[str]:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        skip_outside_ci("needs root and unshare(1) for a PID namespace", "CI runs as root with util-linux")
    proc = subprocess.run(
        [*UNSHARE, sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=240
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout.split()


@pytest.mark.parametrize("how", ["pidfd", "no-pidfd"])
def test_a_pid_given_again_is_not_signalled(how: str) -> None:
    """``locks.signal_process`` sends to a pid found earlier only while it is still the
    process found (its start tick, or what ``is_it`` says): given to another process since,
    that one is left alone; found anew, it is signalled. With pidfds the check and the
    signal are one process's; without, by pid."""
    assert _in_namespace(SIGNALLED, how) == ["False", "False", "True", "True", "True", "True"]


UNMOUNTED = GIVE_AGAIN + textwrap.dedent(
    """
    from avfs_git.core.settings import Settings
    from avfs_git.core.vaults.home import Home
    from avfs_git.mount.side import MOUNT_SIDE
    from avfs_git.ops import mounts
    home = Home(sys.argv[1], mounts=MOUNT_SIDE, settings=Settings(sys.argv[1], zygote=False))
    vault = home.vault("v")
    info = mounts.mount(home, vault, "f1", backend="fuse")
    real, given = mounts.wait_gone, []
    def racing(pid, timeout):  # the daemon ends, is collected, and its pid is another's
        ticks = start_ticks(pid)
        real(pid, timeout)
        given.append(given_again(pid, ticks))
        return False  # (as when it took longer than the wait: unmount kills what is left)
    mounts.wait_gone = racing  # (where unmount looks it up)
    mounts.unmount(home, vault, "f1")
    other = given[0]
    other.terminate()  # (the first fatal signal sent decides its end: a kill before, -9)
    print(other.pid == info.pid, other.wait() == -signal.SIGTERM)
    """
)


def test_an_unmount_does_not_kill_the_process_its_daemons_pid_went_to(home: Home, vault: Vault) -> None:
    """``mounts.unmount`` waits for its daemon to end and kills it if it has not: a daemon
    that ended (and was collected) in that wait had its pid given to another process, which
    the kill then hit (main: ``pid_alive`` and ``os.kill`` by pid)."""
    vault.create_fork("main", "f1")
    assert _in_namespace(UNMOUNTED, home.path) == ["True", "True"]


def test_server_stop_does_not_signal_the_process_the_servers_pid_went_to(
    home: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`avfs server stop` reads the server's pid from its socket (``SO_PEERCRED``) and then
    signals it: a server that ended between the two had its pid given to another process,
    which got the SIGTERM (main). Here that process is a `sleep`; the server's socket
    answers its pid once, then nothing (ended)."""
    from avfs_git.cli import serving

    other = subprocess.Popen(["sleep", "600"])
    asked: list[int] = []

    def state(path: str) -> dict[str, object]:
        asked.append(len(asked))
        first = len(asked) == 1
        return {"running": first, "pid": other.pid if first else None, "socket": "-", "enabled": True}

    monkeypatch.setattr(serving, "_state", state)  # (where stop_cmd looks it up)
    try:
        run_in_process(["--home", home.path, "server", "stop"])
        other.kill()  # (the first fatal signal sent decides its end: a SIGTERM before, -15)
        assert len(asked) >= 2 and other.wait() == -signal.SIGKILL
    finally:
        other.kill()
        other.wait()
