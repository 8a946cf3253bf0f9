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

Leaving, it first waits for the calls' processes still running (:func:`wait_turning_away`):
a caller that connects meanwhile is answered at once that nothing ran (it runs the call
itself), and the listening socket is closed before the linger (a caller still queued then
sees its connection reset: nothing ran). Kept open, as it was before the thirty-first
round (attack22), a caller that connected while the server left waited in its backlog,
its request never read, for as long as the server lingered: as long as a mount it had
forked lived (an `avfs status` held for ever; docs/security.md).
"""

from __future__ import annotations

import os
import select
import signal
import socket
import time

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
            out.update(int(p) for p in _read(f"/proc/self/task/{tid}/children").split())
        except (OSError, ValueError):
            continue
    return out


def _read(path: str) -> bytes:
    """A ``/proc`` file's bytes through a descriptor of its own (an open, a read or two and
    a close: a file object was nine system calls, after every event of the server's loop,
    ~3 a served call; h-merge11)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = [os.read(fd, 1 << 16)]
        while chunks[-1]:
            chunks.append(os.read(fd, 1 << 16))
    finally:
        os.close(fd)
    return b"".join(chunks)


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


def wait_turning_away(pidfds: set[int], lsock: socket.socket, answer: bytes, timeout: float) -> None:
    """Wait, at most ``timeout`` seconds, until every process of ``pidfds`` (a leaving
    server's calls) has ended; a caller that connects to ``lsock`` meanwhile is sent
    ``answer`` (a ``fallback``: nothing ran, it runs the call itself) and let go, never left
    queued with its request unread."""
    ending = select.poll()
    for pidfd in pidfds:
        ending.register(pidfd, select.POLLIN)
    if lsock.fileno() >= 0:  # (closed already: a leave that a second SIGTERM cut short)
        ending.register(lsock.fileno(), select.POLLIN)
        lsock.setblocking(False)
    pending = set(pidfds)
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for fd, _ in ending.poll(max(0.0, deadline - time.monotonic()) * 1000):
            if fd == lsock.fileno():
                turn_away(lsock, answer)
            else:
                ending.unregister(fd)
                pending.discard(fd)


def turn_away(lsock: socket.socket, answer: bytes) -> None:
    """Send ``answer`` to every caller queued at ``lsock`` (non-blocking) and close each."""
    while True:
        try:
            conn, _ = lsock.accept()
        except OSError:  # (none left: EAGAIN; or the caller went)
            return
        try:
            conn.settimeout(1.0)
            conn.sendall(answer)
        except OSError:
            pass
        finally:
            conn.close()
