"""The resident CLI server started in another mount namespace (review39's LOW finding, left
by fix39b; the thirty-seventh round, attack29).

One server serves a home (``<home>/run/cli.sock``), and it answers "fall back" to a caller
of another PID or mount namespace (attack28, review39). A call made where it could bind the
socket but in a mount namespace of its own (the person's ``unshare -m`` shell, a container
sharing the home) started the home's server there; once that namespace had nothing left in
it but the server, every call of the host was refused by it and ran directly (~0.7 s each)
until it idled out (15 min without a call of its own). Now a server whose mount namespace
holds nothing but itself and what it started leaves when another namespace's caller comes:
the host's next call starts one of the host's. A server of the host is never sent away so:
its namespace holds the host's processes. Real processes, ``unshare(1)``, the server started
as ``avfs server start`` starts it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from typing import Any

from avfs_git.cli import resident as warm
from avfs_git.core.store.locks import signal_process
from avfs_git.core.vaults.home import Home

from .conftest import skip_outside_ci
from .daemons import server_of


def _need_unshare() -> None:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        skip_outside_ci("needs root (a mount namespace of its own) and unshare(1)")


def _avfs(*args: str, env: dict[str, str], prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*prefix, sys.executable, "-m", "avfs_git", *args], capture_output=True, text=True,
                          env=env, timeout=120, check=False)  # fmt: skip


def _server(home: str) -> int | None:
    """The pid of the server listening at the home's socket (``SO_PEERCRED``), or None."""
    import socket
    import struct

    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(warm.socket_path(home))
        return int(struct.unpack("3i", s.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))[0])
    except OSError:
        return None
    finally:
        s.close()


def _mnt(pid: int | str) -> str:
    return os.readlink(f"/proc/{pid}/ns/mnt")


def _until(cond: Any, what: str, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, what
        time.sleep(0.1)


def _stop(home: str, *pids: int | None) -> None:
    for pid in pids:
        if pid is not None:
            signal_process(pid, 15, is_it=lambda p: server_of(p, home))
    for pid in pids:
        if pid is not None:
            _until(lambda p=pid: not server_of(p, home), f"server {pid} still runs")


def test_a_server_left_alone_in_another_mount_namespace_gives_the_home_back(home: Home, vault: Any) -> None:
    """main: the server ``unshare -m`` started stayed, the host's calls ran directly under
    it for as long as it lived (its idle time, 15 min: the wait below ran out). Now the
    host's first call sends it away and the next starts one in the host's namespace, which
    serves the calls after it."""
    _need_unshare()
    env = {**os.environ, "AVFS_SERVER": "auto"}
    foreign = None
    ours = None
    try:
        r = _avfs("server", "start", env=env, prefix=("unshare", "-m", "--propagation", "private"))
        assert r.returncode == 0, r.stderr
        foreign = _server(home.path)
        assert foreign is not None and _mnt(foreign) != _mnt("self"), "not a server of another namespace"
        r = _avfs("--json", "vault", "list", env=env)  # the host's call: run directly, as before
        assert r.returncode == 0 and '"v"' in r.stdout, r.stderr
        _until(lambda: _server(home.path) != foreign, "the other namespace's server still holds the home")
        _avfs("--json", "status", env=env)  # (starts the host's server, if none answers)
        _until(lambda: _server(home.path) is not None, "no server started for the host")
        ours = _server(home.path)
        assert ours is not None and ours != foreign and _mnt(ours) == _mnt("self")
        r = _avfs("--json", "vault", "list", env=env)
        assert r.returncode == 0 and '"v"' in r.stdout, r.stderr
        assert _server(home.path) == ours  # (served: it stays)
    finally:
        _stop(home.path, foreign, ours)


def test_a_container_s_server_gives_the_home_back_to_the_host(home: Home, vault: Any) -> None:
    """A server started in PID and mount namespaces of their own (a container sharing the
    home) whose namespace still holds a process of its own (here a ``sleep``, as a
    container's shell): the host's calls, of the PID namespace above it (``SO_PEERCRED``
    names them pid 0 there), were refused until it idled out (main: the wait ran out). Now
    it leaves at the host's call; the host's next call starts the host's server."""
    _need_unshare()
    env = {**os.environ, "AVFS_SERVER": "auto"}
    cmd = f"{sys.executable} -m avfs_git server start >/dev/null 2>&1; echo started; exec sleep 300"
    box = subprocess.Popen(["unshare", "-p", "-f", "--kill-child", "-m", "--mount-proc", "--propagation", "private", "sh", "-c", cmd],
                           env=env, stdout=subprocess.PIPE, text=True)  # fmt: skip
    foreign = None
    ours = None
    try:
        assert box.stdout is not None and box.stdout.readline() == "started\n"
        foreign = _server(home.path)
        assert foreign is not None and _mnt(foreign) != _mnt("self"), "not a server of another namespace"
        assert os.readlink(f"/proc/{foreign}/ns/pid") != os.readlink("/proc/self/ns/pid")
        r = _avfs("--json", "vault", "list", env=env)
        assert r.returncode == 0 and '"v"' in r.stdout, r.stderr
        _until(lambda: _server(home.path) != foreign, "the container's server still holds the home")
        _avfs("--json", "status", env=env)
        _until(lambda: _server(home.path) is not None, "no server started for the host")
        ours = _server(home.path)
        assert ours is not None and _mnt(ours) == _mnt("self")
    finally:
        box.kill()
        box.wait()
        if box.stdout is not None:
            box.stdout.close()
        _stop(home.path, foreign, ours)


def test_a_container_s_server_in_use_stays(home: Home, vault: Any) -> None:
    """The other side of the one above: a container's server that has just served a call
    of its own stays at the host's call (the host's runs directly), so a host and a
    container both calling do not start a new server at every turn."""
    _need_unshare()
    env = {**os.environ, "AVFS_SERVER": "auto"}
    avfs = f"{sys.executable} -m avfs_git"
    cmd = f"{avfs} server start >/dev/null 2>&1; {avfs} --json vault list >/dev/null; echo started; exec sleep 300"
    box = subprocess.Popen(["unshare", "-p", "-f", "--kill-child", "-m", "--mount-proc", "--propagation", "private", "sh", "-c", cmd],
                           env=env, stdout=subprocess.PIPE, text=True)  # fmt: skip
    foreign = None
    try:
        assert box.stdout is not None and box.stdout.readline() == "started\n"
        foreign = _server(home.path)
        assert foreign is not None and _mnt(foreign) != _mnt("self")
        r = _avfs("--json", "vault", "list", env=env)
        assert r.returncode == 0 and '"v"' in r.stdout, r.stderr
        time.sleep(1.5)  # (a server that leaves does so within its poll's second)
        assert _server(home.path) == foreign
    finally:
        box.kill()
        box.wait()
        if box.stdout is not None:
            box.stdout.close()
        _stop(home.path, foreign)


def test_the_host_s_server_stays_for_a_caller_of_another_mount_namespace(home: Home, vault: Any) -> None:
    """The other side: a call made in a mount namespace of its own (a view's command, the
    person's ``unshare -m`` shell) is answered "fall back" and runs there, and the host's
    server, whose namespace holds the host's processes, stays for the host's calls."""
    _need_unshare()
    env = {**os.environ, "AVFS_SERVER": "auto"}
    ours = None
    try:
        r = _avfs("server", "start", env=env)
        assert r.returncode == 0, r.stderr
        ours = _server(home.path)
        assert ours is not None and _mnt(ours) == _mnt("self")
        for _ in range(2):
            r = _avfs(
                "--json", "vault", "list", env=env, prefix=("unshare", "-m", "--propagation", "private")
            )
            assert r.returncode == 0 and '"v"' in r.stdout, r.stderr
        time.sleep(1.5)  # (a server that leaves does so within its poll's second)
        assert _server(home.path) == ours
    finally:
        _stop(home.path, ours)
