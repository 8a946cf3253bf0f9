"""The warm CLI server as the reaper of what it starts (cli/resident.py).

A mount daemon the server forks for a served command (cli/warmdaemon.py, fuse/forked.py)
is forked twice, the first child exiting, and one a call's process spawned outlives that
process: each was handed to PID 1, which collects it once it has ended. A container's
PID 1 often collects no one's children but its own (a shell, ``tail -f /dev/null``, the
agent's Python): every such daemon that ended (unmounted, released when idle, killed)
stayed a zombie for good, one per mount, counted against the container's pid limit. The
server makes itself the reaper of its descendants (``PR_SET_CHILD_SUBREAPER``: an orphan
among them is handed to it, not to PID 1) and collects each of them that has ended; its
own children (the calls' processes, the spare, the kept process) it waits for itself, and
they are left to those waits. When it leaves it stays, listening no more, until the
daemons it holds have ended (:func:`linger`), unless it was stopped (``avfs server stop``).
"""

from __future__ import annotations

import os
import signal

PR_SET_CHILD_SUBREAPER = 36
LOOK_S = 1.0  # how often a lingering server looks for its children's ends (besides SIGCHLD)


def become_reaper() -> bool:
    """Make this process the reaper of its orphaned descendants; whether it is."""
    import ctypes

    try:
        return bool(ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def children() -> set[int]:
    """This process's children (each thread's ``children`` list: an orphan handed to this
    process is the child of one of its threads), zombies among them."""
    out: set[int] = set()
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/self/task/{tid}/children", "rb") as fh:
                out.update(int(p) for p in fh.read().split())
        except (OSError, ValueError):
            continue
    return out


def collect(own: set[int]) -> set[int]:
    """Collect every child that has ended, but those of ``own`` (the children whose wait
    is the caller's: never taken from it); the children left, ``own`` aside."""
    left: set[int] = set()
    for pid in children() - own:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            continue  # (collected meanwhile)
        if done != pid:
            left.add(pid)
    return left


def linger() -> None:
    """Stay until every child of this process has ended, collecting each (a server that
    has left: its socket is gone, so another server may start meanwhile); SIGTERM ends
    the wait, as it ends a server."""
    # SIGCHLD blocked: pending, it ends the wait below as a child ends (SIGTERM's handler
    # still runs, and its exit ends the wait too)
    old = signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGCHLD])
    try:
        while collect(set()):
            signal.sigtimedwait([signal.SIGCHLD], LOOK_S)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
