"""The offer of a sandbox to a mount's daemon (protocol 3 of its exec socket,
:mod:`.server`): a CLI ``proxy exec`` that mounted its fork for itself, and keeps it warm,
ran its command in its own process; the next call goes to the mount's daemon, which makes
a sandbox like this one ready for it meanwhile (docs/fuse.md, "Mounts kept warm"). Sent
while the command runs, or, by a call the resident server's child runs, once its answer is
out (:func:`offer_now`); ``exec_in`` and MCP, whose next calls run in their own process,
offer nothing.

A module of its own: :mod:`.execute` sends it and :mod:`.server` (which imports
:mod:`.execute`) answers it.
"""

from __future__ import annotations

import marshal
import os
import socket
import struct
from typing import Any

STANDBY_PROTOCOL = 3


def answered(sock: socket.socket) -> None:
    """Wait for the answer to an offer :func:`send_offer` sent (at most 0.5 s), and close."""
    try:
        sock.recv(64)
    except OSError:
        pass  # the next call makes its own sandbox
    finally:
        sock.close()


def offer_now(state_dir: str, fork: str, sandbox: Any) -> None:
    """:func:`send_offer` and wait for its answer: once a call's answer is out."""
    sock = send_offer(state_dir, fork, sandbox)
    if sock is not None:
        answered(sock)


def send_offer(state_dir: str, fork: str, sandbox: Any) -> socket.socket | None:
    """Ask the daemon of ``fork``'s mount to make a sandbox like ``sandbox`` ready (protocol
    3): the call that mounted the fork runs in its own process, and the next one goes to
    the daemon. Returns the socket to read the answer from (:func:`answered`: the daemon
    checks this process's namespaces, so it must stay until then), while this process runs
    its own command; None when there is no daemon to ask, or it is not the one the registry
    names."""
    import dataclasses

    from ..core.vaults import registry

    found = registry.read_exec_at(registry.record_path(state_dir, fork))
    if found is None:
        return None
    name, daemon_pid, _mp = found
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(0.5)
        sock.connect("\0" + name)
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        pid, uid, _gid = struct.unpack("3i", creds)
        if uid != os.getuid() or pid != daemon_pid:
            sock.close()
            return None  # not the daemon the registry names
        body = marshal.dumps({"v": STANDBY_PROTOCOL, "sandbox": dataclasses.asdict(sandbox)})
        sock.sendall(b"%08d" % len(body) + body)
    except (OSError, ValueError):
        sock.close()
        return None  # the next call makes its own sandbox
    return sock
