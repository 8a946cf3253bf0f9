"""A root command given the host's network reads no traffic of the host's (the thirty-third
round, NAME=attack24; docs/security.md, "The host's network and a root command").

A confined command gets the host's network where the policy says ``network = "host"``, or
where it is classified ``networked``, allowed, and no ``network_allow`` is named (then
its own network namespace would leave it none). Connecting to the host's services is
what that gives, and docs/proxy.md says so. But a command running as root kept
``CAP_NET_RAW`` (Docker's default set, harmless in a network namespace of its own): in
the host's, a packet socket reads every frame of the host's interfaces, loopback's too.
Found: a command sniffed a token another process of the host sent to a service on
127.0.0.1. Now the sandbox drops ``CAP_NET_RAW`` when it shares the host's network
(bwrap's; the hand-made namespace view, which always does, keeps it no more).

From inside a real confined `proxy exec` (bubblewrap; then the hand-made view of
``--isolate --host readonly``), while the host sends its token over loopback."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from avfs_git.policy import Policy
from avfs_git.proxy.envelope import ExecRequest
from avfs_git.proxy.execute import execute

from .conftest import skip_outside_ci
from .test_confine import fork as fork  # a fork to run in (real bwrap, a real mount)
from .test_isolate import forks as forks  # forks for the hand-made view
from .test_isolate import proj as proj

TOKEN = b"Authorization: Bearer avfs-attack24-host-token"

# what the command runs: a packet socket on the host's loopback, read until the token
# passes (or a minute: the host sends it every 20 ms), else why it could not open one
SNIFF = """import socket, sys
try:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
    s.bind(("lo", 0))
except OSError as e:
    print("REFUSED", e.strerror)
    sys.exit(0)
s.settimeout(60)
while True:
    data = s.recv(65535)
    if b"avfs-attack24-host-token" in data:
        print("SNIFFED", data[data.find(b"Bearer"):].decode(errors="replace"))
        break
"""


def _root() -> None:
    if os.geteuid() != 0:
        skip_outside_ci(
            "as another user the sandbox's user namespace gives no capabilities at all",
            "CI runs as root: a root command's capabilities must be tested",
        )


@pytest.fixture
def traffic() -> Iterator[None]:
    """A service on the host's loopback, and a client of the host sending it the token
    every 20 ms until the test ends."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    port = srv.getsockname()[1]
    done = threading.Event()

    def serve() -> None:
        while not done.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            conn.close()

    def send() -> None:
        while not done.wait(0.02):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
                    c.sendall(TOKEN)
            except OSError:
                continue

    threads = [threading.Thread(target=f, daemon=True) for f in (serve, send)]
    for t in threads:
        t.start()
    try:
        yield
    finally:
        done.set()
        try:
            srv.shutdown(socket.SHUT_RDWR)  # (wakes the accept: a close alone does not, 10 s a test)
        except OSError:
            pass
        srv.close()
        for t in threads:
            t.join(timeout=10)


def _saw(out: str) -> None:
    assert "avfs-attack24-host-token" not in out and "SNIFFED" not in out, (
        f"the command read the host's traffic: {out}"
    )
    assert out.startswith("REFUSED"), out


def test_a_root_command_with_the_host_s_network_reads_none_of_its_traffic(
    home: Any, fork: Any, traffic: None
) -> None:
    """bubblewrap, the policy's ``network = "host"``: the packet socket is refused."""
    _root()
    fork.workspace("main").write("sniff.py", SNIFF.encode())
    pol = Policy.from_text('version = 1\n[defaults]\nnetwork = "host"\n')
    res = execute(home, fork, "main", ExecRequest(argv=("python3", "sniff.py"), commit=False), policy=pol)
    assert res.confinement.kind == "bwrap" and res.confinement.network == "host", res.confinement
    assert res.result is not None and res.result.exit_code == 0, res.to_dict()
    _saw(res.result.stdout)


def test_a_root_command_in_a_hand_made_view_reads_none_of_the_host_s_traffic(
    home: Any, forks: Any, proj: Path, traffic: None
) -> None:
    """The hand-made view (``--isolate --host readonly``) shares the host's network always."""
    _root()
    forks.workspace("a").write("sniff.py", SNIFF.encode())
    req = ExecRequest(argv=("python3", "sniff.py"), isolate="readonly", isolate_at=str(proj), commit=False)
    res = execute(home, forks, "a", req)
    assert res.result is not None and res.result.exit_code == 0, res.to_dict()
    _saw(res.result.stdout)


# what the command runs: bind the host's free port below 1024 the test found
BIND = """import socket, sys
s = socket.socket()
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
    s.listen(1)
except OSError as e:
    print("REFUSED", e.strerror)
else:
    print("BOUND", sys.argv[1])
"""


def _free_low_port() -> int:
    """A port below 1024 nothing of the host listens on (the test runs as root)."""
    for port in range(1023, 600, -1):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError("no free port below 1024")


def test_a_root_command_with_the_host_s_network_takes_none_of_its_low_ports(home: Any, fork: Any) -> None:
    """bubblewrap, ``network = "host"``: a root command kept ``CAP_NET_BIND_SERVICE`` and
    took a free port below 1024 of the host for its run (a client of the host's service
    there reached the command); now the capability goes with the host's network."""
    _root()
    port = _free_low_port()
    fork.workspace("main").write("bind.py", BIND.encode())
    pol = Policy.from_text('version = 1\n[defaults]\nnetwork = "host"\n')
    req = ExecRequest(argv=("python3", "bind.py", str(port)), commit=False)
    res = execute(home, fork, "main", req, policy=pol)
    assert res.confinement.kind == "bwrap" and res.confinement.network == "host", res.confinement
    assert res.result is not None and res.result.exit_code == 0, res.to_dict()
    assert res.result.stdout.startswith("REFUSED"), res.result.stdout
    # in a network namespace of its own the port is its own: it keeps the capability there
    res = execute(home, fork, "main", req)
    assert res.result is not None and res.result.stdout == f"BOUND {port}\n", res.to_dict()


def test_a_root_command_in_a_hand_made_view_takes_none_of_the_host_s_low_ports(
    home: Any, forks: Any, proj: Path
) -> None:
    """The hand-made view shares the host's network always."""
    _root()
    port = _free_low_port()
    forks.workspace("a").write("bind.py", BIND.encode())
    req = ExecRequest(
        argv=("python3", "bind.py", str(port)), isolate="readonly", isolate_at=str(proj), commit=False
    )
    res = execute(home, forks, "a", req)
    assert res.result is not None and res.result.exit_code == 0, res.to_dict()
    assert res.result.stdout.startswith("REFUSED"), res.result.stdout
