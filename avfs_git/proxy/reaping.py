"""The processes a sandbox leaves, collected (proxy/runner.py, proxy/standby.py, proxy/ahead.py).

bubblewrap with a PID namespace is two processes: the outer one, our child, and the
sandbox's first process, its child, in a session of its own. Where the outer ends first
(it ends once the first process has told it the command's status; or its group was killed
to discard a sandbox never used), the first process is handed to the outer's nearest
reaper: PID 1, unless an avfs process above is one, and where PID 1 collects no one's
children (a container's shell, ``tail -f /dev/null``, Python) it stays a zombie for good,
one a confined command. An avfs process that runs sandboxes (a mount daemon, a CLI call's
own process) makes itself the reaper of its descendants (:func:`become_reaper`) and
collects the first process by the pid bubblewrap's status names (:func:`collect_sandbox`);
a sandbox discarded has its first process killed first (:func:`end_sandbox`), which the
outer then collects as it ends. An API caller's own process is never made a reaper: its
sandboxes' first processes stay its nearest reaper's, as before.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess

from ..core.store.locks import signal_process

PR_SET_CHILD_SUBREAPER = 36
SANDBOX_END_S = 2.0  # how long a sandbox's first process may take to end after bubblewrap


_WANTED = False  # this process is avfs's own (a CLI call's): a reaper once it runs a sandbox


def want_reaper() -> None:
    """This process is avfs's own (a CLI call's): it makes itself the reaper of its
    descendants once it runs a sandbox (:func:`reaper_if_wanted`; not before: ctypes'
    import, ~30 ms at load, is not for a call a mount's daemon answers)."""
    global _WANTED
    _WANTED = True


def reaper_if_wanted() -> None:
    """:func:`become_reaper`, once, where :func:`want_reaper` was called."""
    global _WANTED
    if _WANTED:
        _WANTED = False
        become_reaper()


def become_reaper() -> bool:
    """Make this process (an avfs one: a mount daemon, a CLI call's, never an API caller's)
    the reaper of its orphaned descendants, for :func:`collect_sandbox`; whether it is."""
    import ctypes

    try:
        return bool(ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def collect_sandbox(status: bytes) -> None:
    """Collect the sandbox's first process (bubblewrap's ``child-pid`` in ``status``) once
    bubblewrap has ended, where it was handed to this process (:func:`become_reaper`):
    bubblewrap ends once that process has told it the command's status, often before that
    process has ended (10 runs of 10 here), which is then its nearest reaper's: PID 1's
    elsewhere, a zombie for good where PID 1 collects no one's (a container's)."""
    import re

    found = re.search(rb'"child-pid":\s*(\d+)', status)
    if found is None:
        return
    pid = int(found.group(1))
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return
        fd = os.pidfd_open(pid)  # (our child, not collected: its pid is not another's)
    except (ChildProcessError, OSError, AttributeError):
        return  # not ours (no reaper here, or another's), or gone
    try:
        select.select([fd], [], [], SANDBOX_END_S)
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    finally:
        os.close(fd)


END_WAIT_S = 5.0  # how long the outer bubblewrap may take to end once its sandbox is killed


def end_sandbox(proc: subprocess.Popen[bytes]) -> None:
    """End the sandbox of bubblewrap ``proc`` (our child, not yet collected) and collect it:
    its inner bubblewrap (the sandbox's first process, in a session of its own) killed
    first, so that the outer one collects it and exits; then the outer's group. Killing
    the outer's group alone left the inner to die by ``--die-with-parent`` after its
    parent had: PID 1's, a zombie for good where PID 1 collects no one's (a container's)."""
    try:
        with open(f"/proc/{proc.pid}/task/{proc.pid}/children", "rb") as fh:
            inner = [int(p) for p in fh.read().split()]
    except (OSError, ValueError):
        inner = []
    for pid in inner:  # (still its child: once the outer collected it, its pid may be another's)
        signal_process(pid, signal.SIGKILL, is_it=lambda p: _parent(p) == proc.pid)
    if inner:
        try:
            proc.wait(timeout=END_WAIT_S)
        except subprocess.TimeoutExpired:
            pass
    if proc.returncode is None:  # (not collected: its pid, its group's number, still its own)
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    proc.wait()


def _parent(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return int(fh.read().rsplit(b")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None
