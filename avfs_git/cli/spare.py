"""The resident server's spare: a child forked before the call comes, its memory its own.

A served call forked at once pays, on its way, for the fork (~1.3 ms for a ~40 MB server)
and then for copying, page by page, every page of the shared heap the command writes to:
CPython writes reference counts into every object it touches and malloc its headers into
freed chunks, so `avfs --json status` took ~1,850 copy-on-write faults, ~5 ms of its ~10
ms. So the server keeps one child forked ahead (between calls, never while a command
runs), which asks the kernel to copy its private writable memory at once
(``madvise(MADV_POPULATE_WRITE)``, Linux 5.14; ~20 ms of CPU while nobody waits) and then
waits for a call: the server hands it the caller's connection, standard streams and
request over a socket pair, and it runs the call as a freshly forked child would
(:func:`.resident._child`). Measured: that status in ~5 ms, ~125 faults.

The price is the spare's own copy of the server's heap (~35 MB here) while it waits. A
spare whose server goes away sees the socket pair close and exits.
"""

from __future__ import annotations

import marshal
import os
import signal
import socket
import struct
from collections.abc import Callable
from typing import Any

MADV_POPULATE_WRITE = 23  # linux/mman.h (5.14)
MAX_REQUEST = 8 << 20
STEP = 1 << 20  # bytes populated between looks for a call (~0.3 ms here)


class Spare:
    """A forked child waiting for a call (its pid, pidfd, and the server's end of the pair)."""

    def __init__(self, pid: int, pidfd: int, ctl: socket.socket) -> None:
        self.pid = pid
        self.pidfd = pidfd
        self.ctl = ctl

    def hand(self, conn: socket.socket, req: dict[str, Any], fds: list[int]) -> bool:
        """Give this spare the call (the caller's connection, its fds 0-2, the request);
        False when it cannot take it (it died): the server forks as it would without."""
        data = marshal.dumps(req)
        try:
            self.ctl.sendmsg(
                [b"%08d" % len(data) + data],
                [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("4i", conn.fileno(), *fds))],
            )
        except OSError:
            return False
        finally:
            self.ctl.close()
        return True

    def discard(self) -> None:
        """End an unused spare (the server is leaving, or the spare could not be given a call)."""
        try:
            self.ctl.close()
        except OSError:
            pass
        try:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        os.close(self.pidfd)


def fork(
    run: Callable[[socket.socket, dict[str, Any], list[int]], None], blocked: tuple[int, ...]
) -> Spare | None:
    """Fork a spare that populates its memory, waits for a call and runs it with ``run``
    (which never returns); None when it cannot be forked. ``blocked``: the signals a call's
    process unblocks once its handlers are set (blocked from the fork on)."""
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
    try:
        pid = os.fork()
        if pid == 0:
            code = 70
            try:
                parent.close()
                populate(child)
                got = _receive(child)
                if got is None:
                    code = 0  # the server went away: nothing to run
                else:
                    conn_fd, req, fds = got
                    run(socket.socket(fileno=conn_fd), req, fds)
            finally:
                os._exit(code)
    except OSError:
        parent.close()
        child.close()
        return None
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, blocked)
    child.close()
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        parent.close()
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        return None
    return Spare(pid, pidfd, parent)


def recv_framed(sock: socket.socket, max_fds: int) -> tuple[bytes, list[int]] | None:
    """One length-prefixed message (8 ASCII digits, then at most :data:`MAX_REQUEST`
    bytes) and the fds that came with it; None when the peer closed first or the length
    is too large."""
    fds: list[int] = []
    buf = b""
    want = 8
    while len(buf) < want:
        data, anc, _flags, _addr = sock.recvmsg(65536, socket.CMSG_SPACE(max_fds * 4))
        for level, kind, payload in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                n = len(payload) // 4
                fds.extend(struct.unpack(f"{n}i", payload[: n * 4]))
        if not data:
            return None
        buf += data
        if want == 8 and len(buf) >= 8:
            size = int(buf[:8])
            if size > MAX_REQUEST:
                return None
            want = 8 + size
    return buf[8:want], fds


def _receive(ctl: socket.socket) -> tuple[int, dict[str, Any], list[int]] | None:
    """The call the server hands over: (the caller's connection, the request, fds 0-2);
    None when the server closed the pair instead."""
    got = recv_framed(ctl, 4)
    ctl.close()
    if got is None or len(got[1]) != 4:
        return None
    fds = got[1]
    return fds[0], marshal.loads(got[0]), fds[1:]


def populate(ctl: socket.socket | None = None) -> None:
    """Copy this process's private writable memory now (it shares it copy-on-write with
    the server): the heap, malloc's and Python's arenas, the libraries' data. Nothing
    changes but who owns the pages; a kernel without ``MADV_POPULATE_WRITE`` leaves them
    shared (the call then copies them as it goes, as without a spare). In steps of
    :data:`STEP`: a call that comes meanwhile (``ctl`` readable) stops it, and the rest is
    copied as the call goes, as without a spare."""
    import select

    waiting = select.poll()
    if ctl is not None:
        waiting.register(ctl, select.POLLIN)
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        madvise = libc.madvise
        madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        with open("/proc/self/maps", encoding="ascii", errors="replace") as fh:
            maps = fh.read().splitlines()
    except (OSError, AttributeError):
        return
    for line in maps:
        parts = line.split()
        if len(parts) < 5 or parts[1][:2] != "rw" or parts[1][3] != "p":
            continue
        name = parts[5] if len(parts) > 5 else ""
        if name.startswith("[") and name != "[heap]":
            continue  # the stack grows as it needs; [vvar] and the like are not memory
        lo, hi = (int(x, 16) for x in parts[0].split("-"))
        for at in range(lo, hi, STEP):
            if ctl is not None and waiting.poll(0):
                return  # a call came: take it now
            if madvise(at, min(STEP, hi - at), MADV_POPULATE_WRITE) != 0 and ctypes.get_errno() == 22:
                return  # EINVAL: this kernel has no MADV_POPULATE_WRITE
