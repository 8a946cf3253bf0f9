"""One length-prefixed message over a Unix socket, with the fds that come with it: how a
warm process (the CLI server, a process's zygote: ops/warmstart.py) and its askers, and a
kept spare process (cli/spare.py) talk. Standard library only, and only what a ``vault
fork``'s path already holds (``socket``, ``marshal``, ``array``): the spare imports it on
every fork (tests/test_coldstart.py counts)."""

from __future__ import annotations

import array
import marshal
import os
import socket
import struct
from typing import Any

MAX_MESSAGE = 8 << 20
SO_PEERPIDFD = getattr(socket, "SO_PEERPIDFD", 77)  # (Linux 6.5+; Python 3.11 does not name it)


def recv_framed(
    sock: socket.socket, max_fds: int, max_size: int = MAX_MESSAGE, until: Any = None
) -> tuple[bytes, list[int]] | None:
    """One length-prefixed message (8 ASCII digits, then at most ``max_size`` bytes) and
    the fds that came with it; None when the peer closed first or the length is too
    large. ``until``: a callable giving the seconds left for the whole message (each
    receive waits no longer; none left: ``TimeoutError``). The fds of a message not
    returned (None, or a raise: a timeout, a bad length) are closed here: a server kept
    those a cut-off request sent, for good (the review of the thirty-sixth round, F2)."""
    fds: list[int] = []
    try:
        data = _recv(sock, max_fds, max_size, until, fds)
    except BaseException:
        close_all(fds)
        raise
    if data is None:
        close_all(fds)
        return None
    return data, fds


def close_all(fds: list[int]) -> None:
    """Close each of ``fds`` (one already closed is let be)."""
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass
    fds.clear()


def _recv(sock: socket.socket, max_fds: int, max_size: int, until: Any, fds: list[int]) -> bytes | None:
    buf = b""
    want = 8
    while len(buf) < want:
        if until is not None:
            left = until()
            if left <= 0:
                raise TimeoutError("the request took too long")
            sock.settimeout(left)
        data, anc, _flags, _addr = sock.recvmsg(65536, socket.CMSG_SPACE(max_fds * 4) if max_fds else 0)
        for level, kind, payload in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                n = len(payload) // 4
                fds.extend(struct.unpack(f"{n}i", payload[: n * 4]))
        if not data:
            return None
        buf += data
        if want == 8 and len(buf) >= 8:
            size = int(buf[:8])
            if size > max_size:
                return None
            want = 8 + size
    return buf[8:want]


def send_framed(sock: socket.socket, msg: dict[str, Any], fds: tuple[int, ...] = ()) -> None:
    """``msg`` as :func:`recv_framed` reads it, with ``fds``."""
    data = marshal.dumps(msg)
    anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
    sock.sendmsg([b"%08d" % len(data) + data], anc)


def same_namespaces(pid: int) -> bool:
    """Whether process ``pid`` (a peer, by ``SO_PEERCRED``) shares this process's PID and
    mount namespaces. A command in a sandbox or a hand-made view has its own of both (the
    kernel gives its PID as seen from here): one that reaches a socket of avfs's host side
    (an abstract name, where it shares the host's network; a path a read-only view shows)
    must not have avfs act outside its confinement for it. Unknown (the process is gone)
    counts as not."""
    try:
        return all(
            os.readlink(f"/proc/{pid}/ns/{ns}") == os.readlink(f"/proc/self/ns/{ns}") for ns in ("pid", "mnt")
        )
    except OSError:
        return False


def peer_shares_namespaces(conn: socket.socket) -> bool:
    """Whether the process that connected ``conn`` shares this process's PID and mount
    namespaces (:func:`same_namespaces`), asked as it is accepted, before anything is read.

    By the peer's pidfd (``SO_PEERPIDFD``): its namespaces are read by its pid, and the
    answer holds only if the pidfd's process still runs after the reads (while it runs, no
    other process can hold its pid). By the pid alone a peer that had exited was judged by
    whichever process held its pid then: a sandboxed command that connected, handed the
    socket to a child and exited, passed once a host process reused its pid (review39).
    Where the kernel has no ``SO_PEERPIDFD`` (before 6.5): by the pid."""
    pid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))[0]
    try:
        pidfd = conn.getsockopt(socket.SOL_SOCKET, SO_PEERPIDFD)
    except OSError as exc:
        if exc.errno == 92:  # ENOPROTOOPT: a kernel without it
            return same_namespaces(pid)
        return False  # (ESRCH: the peer is gone)
    try:
        if not same_namespaces(pid):
            return False
        import select  # (not on a fork's path: only the servers ask)

        return not select.select([pidfd], [], [], 0)[0]  # readable: it has exited
    finally:
        os.close(pidfd)


QUIET_S = 60.0  # a server of a PID namespace below the caller's gives way once unused this long


def gives_way_to(pid: int, served: int, since: float) -> bool:
    """Whether a server of this process's namespaces that a caller of others reached
    (``pid``: the caller's, as ``SO_PEERCRED`` names it) should leave, for that caller's
    next call to start one of its own (attack29): where nothing of this mount namespace is
    left but this process and what it started (:func:`alone_in_mount_namespace`), or the
    caller is of a PID namespace above this one (``0``: not visible here; the host, this
    server in a container's) and this server has served no call (``served``), or none for
    :data:`QUIET_S` seconds (``since`` its last): a host and a container both calling keep
    the one in use, not a new server at each turn. A caller in a sandbox or a view (PID
    and mount namespaces below the host's) never sends the host's server away: the host's
    namespace holds the host's processes."""
    return (pid == 0 and (served == 0 or since >= QUIET_S)) or alone_in_mount_namespace()


def alone_in_mount_namespace() -> bool:
    """Whether every process of this process's mount namespace that it can see is itself or
    one of its descendants (through ``PPid``: the CLI server reaps the daemons it forks, so
    they stay below it). A server started in a namespace that has ended but for it (the
    person's ``unshare -m`` shell exited) serves no one there any more, and refuses every
    call of the host's (attack29). The first process found that is neither ends the look:
    in the host's namespace that is one of the first few; asked only of a call from another
    namespace."""
    me = os.getpid()
    try:
        mine = os.readlink("/proc/self/ns/mnt")
        names = sorted(int(n) for n in os.listdir("/proc") if n.isdigit())
    except OSError:
        return False
    parent: dict[int, int] = {}

    def parent_of(pid: int) -> int:
        if pid not in parent:
            try:
                with open(f"/proc/{pid}/stat", "rb") as fh:
                    stat = fh.read()
                parent[pid] = int(stat[stat.rindex(b")") + 2 :].split()[1])
            except (OSError, ValueError, IndexError):
                parent[pid] = 0  # (gone: not below this process)
        return parent[pid]

    for pid in names:
        try:
            if os.readlink(f"/proc/{pid}/ns/mnt") != mine:
                continue
        except OSError:
            continue  # (gone, or not ours to look at: another user's, another user namespace's)
        up, seen = pid, 0
        while up not in (me, 0) and seen < 4096:
            up, seen = parent_of(up), seen + 1
        if up != me:
            return False
    return True
