"""A request cut off, too large or not one leaves none of its descriptors in the server that
read it (the review of the thirty-sixth round, review40 F2).

The resident CLI server (cli/resident.py, ops/framed.py ``recv_framed``) and a mount's
exec server (proxy/server.py ``recv_request``) collected the fds that came with a request
and dropped them where the request did not end as one: the peer closed early, the length
was too large or not digits, the bytes were no request. Each such request kept its fds
open for the server's life: a pipe's write end sent so (a caller killed mid-send with its
stdout a pipe, ``avfs ... | cat``) left its reader waiting for an end that never came.
Here each server gets such requests carrying a pipe's write end; once ours is closed too,
the reader sees the end, and the resident server's count of fds is where it was.
"""

from __future__ import annotations

import array
import marshal
import os
import select
import socket
from collections.abc import Callable
from typing import Any

from avfs_git.cli import resident as warm
from avfs_git.core.vaults.home import Home
from avfs_git.core.vaults.vault import Vault

from .test_cliserver import _server_pid, _wait_for
from .test_cliserver import served as served  # the home's resident server, started by a call


def _bad_requests() -> list[bytes]:
    """Requests a server cannot take whole (each sent with three fds)."""
    not_a_dict = marshal.dumps([1, 2, 3])
    return [
        b"%08d" % 100 + b"x" * 10,  # cut off: the caller went away mid-send
        b"%08d" % (64 << 20),  # past the largest request
        b"abcdefgh",  # no length
        b"%08d" % len(not_a_dict) + not_a_dict,  # not a request
        b"%08d" % 5 + b"\xff\xff\xff\xff\xff",  # not marshal
    ]


def _send_each(connect: Callable[[], socket.socket], w: int) -> None:
    for wire in _bad_requests():
        c = connect()
        try:
            anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [w, w, w]))]
            c.sendmsg([wire], anc)
            c.shutdown(socket.SHUT_WR)
            c.settimeout(60)
            while c.recv(65536):  # (its answer, if any, then its close: the request was read)
                pass
        except OSError:
            pass  # (a server that closed first: as good)
        finally:
            c.close()


def _sees_the_end(r: int) -> bool:
    """Every write end of pipe ``r`` is closed (a bounded wait for the server's close)."""
    if not select.select([r], [], [], 30)[0]:
        return False
    return os.read(r, 1) == b""


def _fds(pid: int) -> list[str]:
    out = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            out.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            pass  # (closed meanwhile)
    return out


def test_the_resident_server_keeps_no_fd_of_a_request_it_does_not_take(
    served: Any, home: Home, vault: Vault
) -> None:
    pid = _server_pid(home.path)
    assert pid is not None
    # (once its spare process is forked: the server then holds its pidfd and socket)
    _wait_for(lambda: any("pidfd" in f for f in _fds(pid)))
    before = len(_fds(pid))
    r, w = os.pipe()
    try:

        def connect() -> socket.socket:
            c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            c.connect(warm.socket_path(home.path))
            return c

        _send_each(connect, w)
        os.close(w)
        w = -1
        assert _sees_the_end(r), "the server holds a pipe's write end a cut-off request sent"  # (main: held)
        _wait_for(lambda: len(_fds(pid)) <= before)
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)


def test_a_mount_s_exec_server_keeps_no_fd_of_a_request_it_does_not_take(home: Home, vault: Vault) -> None:
    from avfs_git.proxy.server import ExecServer

    es = ExecServer(home, vault, "main")
    es.start(warm=False)
    r, w = os.pipe()
    try:

        def connect() -> socket.socket:
            c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            c.connect("\0" + es.name)
            return c

        _send_each(connect, w)
        os.close(w)
        w = -1
        assert _sees_the_end(r), (
            "the exec server holds a pipe's write end a cut-off request sent"
        )  # (main: held)
    finally:
        es.close()
        os.close(r)
        if w >= 0:
            os.close(w)
