"""The resident CLI server refuses a caller from another PID or mount namespace (attack28),
asked of the process that connected, as it is accepted (review39), from the attacker's
side: a peer in namespaces of its own (``unshare -r -p -f -m --mount-proc``) connects,
hands its socket to a child and exits; the child sends the request once a host process
holds the pid the kernel names the peer by (``SO_PEERCRED``). Real processes, a real
server started as a call starts it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from typing import Any

from avfs_git.cli import resident as warm
from avfs_git.core.vaults.home import Home

from .conftest import skip_outside_ci
from .test_cliserver import served as served

# pid 1 of the new namespaces: a child connects, forks the one that keeps the socket, says
# so and exits when told (on its stdin); pid 1 reaps it; the keeper sends the request when
# told (on the fd its second argument names), and prints the server's answer
_PEER = r"""
import marshal, os, socket, sys
path = sys.argv[1]
a = os.fork()
if a == 0:
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    if os.fork() == 0:
        os.read(int(sys.argv[2]), 1)  # (after the connecting process has exited and a host process has its pid)
        req = marshal.dumps({"v": 1})
        try:
            s.sendall(b"%08d" % len(req) + req)
        except OSError:
            pass  # (the server answered and hung up as it accepted)
        data = b""
        while True:
            try:
                got = s.recv(65536)
            except OSError:  # (reset once its answer is read: it hung up with our request unread)
                break
            if not got:
                break
            data += got
        os.write(1, b"ANSWER " + (repr(marshal.loads(data[8:])) if data else "closed").encode() + b"\n")
        os._exit(0)
    os.write(1, b"CONNECTED\n")
    os.read(0, 1)
    os._exit(0)
os.waitpid(a, 0)
os.write(1, b"REAPED\n")
os.wait()
"""


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as fh:
        return [int(p) for p in fh.read().split()]


def _hold_pid(pid: int) -> subprocess.Popen[bytes] | None:
    """A host process holding ``pid`` (the kernel's next pid set just below it); None when
    another process of the machine took it first every time."""
    for _ in range(50):
        with open("/proc/sys/kernel/ns_last_pid", "w") as fh:
            fh.write(str(pid - 1))
        p = subprocess.Popen(["sleep", "300"])
        if p.pid == pid:
            return p
        p.kill()
        p.wait()
    return None


def test_a_peer_that_exits_before_its_request_is_judged_by_itself_not_its_pid_s_next_holder(
    served: Any, home: Home
) -> None:
    """On main the server read the peer's namespaces by its pid after the whole request
    came: a sandboxed peer that exited before, its pid then a host process's, passed, and
    the server acted for it (here its bare request ``{"v": 1}`` was answered "protocol", the
    server's answer to a caller of its own namespace). Now the check is made as the call is
    accepted, by the peer's pidfd: "another namespace"."""
    if (
        os.geteuid() != 0
        or shutil.which("unshare") is None
        or not os.access("/proc/sys/kernel/ns_last_pid", os.W_OK)
    ):
        skip_outside_ci("needs root (the pid a process gets set) and unshare(1)")
    go_r, go = os.pipe()
    peer = subprocess.Popen(
        [
            "unshare",
            "-r",
            "-p",
            "-f",
            "-m",
            "--mount-proc",
            sys.executable,
            "-c",
            _PEER,
            warm.socket_path(home.path),
            str(go_r),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        pass_fds=(go_r,),
    )
    os.close(go_r)
    holder = None
    try:
        assert peer.stdout is not None and peer.stdin is not None
        assert peer.stdout.readline() == b"CONNECTED\n"
        (first,) = _children(peer.pid)  # pid 1 of the namespace, as the host names it
        (connecting,) = _children(first)  # (the keeper is its child)
        peer.stdin.write(b"x")  # the connecting process exits
        peer.stdin.flush()
        assert peer.stdout.readline() == b"REAPED\n"
        holder = _hold_pid(connecting)
        assert holder is not None, "another process took the pid each time"
        os.write(go, b"x")  # the keeper sends the request
        answer = peer.stdout.readline().decode()
        assert answer.startswith("ANSWER "), answer
        assert answer.strip() == "ANSWER {'fallback': 'another namespace'}", answer
    finally:
        os.close(go)
        peer.kill()
        peer.wait()
        for stream in (peer.stdin, peer.stdout):
            if stream is not None:
                stream.close()
        if holder is not None:
            holder.kill()
            holder.wait()
