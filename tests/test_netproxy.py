"""Network by policy, filtered by host name: a confined command keeps a network namespace of
its own and reaches only the hosts the policy's ``network_allow`` names, through avfs's
filtering proxy (real bwrap, real FUSE mounts, real servers on 127.0.0.1, real curl and
Python clients inside the sandbox)."""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import shutil
import signal
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from avfs_git.core.errors import PolicyError
from avfs_git.core.operations import checkpoint
from avfs_git.core.store.locks import signal_process
from avfs_git.ops import mounts
from avfs_git.policy import Policy
from avfs_git.proxy import confine, netproxy
from avfs_git.proxy.envelope import ExecRequest, ExecResult
from avfs_git.proxy.execute import execute

from .conftest import skip_outside_ci
from .test_confine import _need_bwrap
from .test_fuse import require_fuse
from .test_json_schemas import validate
from .waitingexec import exec_argv


@pytest.fixture
def fork(home: Any, vault: Any) -> Iterator[Any]:
    require_fuse()
    _need_bwrap()
    vault.workspace("main").write("README", b"a project\n")
    checkpoint.save(vault, name="base")
    yield vault
    mounts.unmount(home, vault, "main", lazy=True)


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = f"HELLO-{self.server.server_address[1]} {self.path}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(4096):
            self.request.sendall(b"ECHO:" + data)


def _serve(server: socketserver.BaseServer) -> Iterator[int]:
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        yield server.server_address[1]  # type: ignore[misc]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def port_a() -> Iterator[int]:
    yield from _serve(http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hello))


@pytest.fixture
def port_b() -> Iterator[int]:
    yield from _serve(http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hello))


@pytest.fixture
def echo() -> Iterator[int]:
    srv = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    srv.daemon_threads = True
    yield from _serve(srv)


def _need_curl() -> str:
    curl = shutil.which("curl")
    if curl is None:
        skip_outside_ci("curl is not installed", "curl must be installed for these tests in CI")
    return curl


def _policy(*allow: str, network: str | None = None, networked: str = "allow") -> Policy:
    text = f"version = 1\n[defaults]\nnetwork_allow = {json.dumps(list(allow))}\n"
    if network is not None:
        text += f'network = "{network}"\n'
    return Policy.from_text(text + f'[outcomes]\nnetworked = "{networked}"\n')


def _run(home: Any, vault: Any, pol: Policy, argv: tuple[str, ...] = (), **kw: Any) -> ExecResult:
    kw.setdefault("commit", False)
    req = ExecRequest(**kw) if "shell" in kw else ExecRequest(argv=argv, **kw)
    res = execute(home, vault, "main", req, policy=pol)
    doc = json.loads(json.dumps({"schema_version": 1, "kind": "proxy_exec_result", **res.to_dict()}))
    assert validate(doc) == "proxy_exec_result"
    return res


def _out(res: ExecResult) -> str:
    assert res.result is not None, res.error
    return str(res.result.stdout)


def test_curl_reaches_an_allowed_host_and_is_refused_another(home, fork, port_a, port_b):
    _need_curl()
    pol = _policy(f"127.0.0.1:{port_a}")
    ok = _run(home, fork, pol, ("curl", "-sS", f"http://127.0.0.1:{port_a}/a"))
    conf = ok.to_dict()["confinement"]
    assert conf is not None and conf["kind"] == "bwrap" and conf["network"] == "filtered", conf
    assert conf["network_allow"] == [f"127.0.0.1:{port_a}"] and conf["network_refused"] == []
    assert _out(ok) == f"HELLO-{port_a} /a", ok.result
    no = _run(
        home,
        fork,
        pol,
        ("curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", f"http://127.0.0.1:{port_b}/b"),
    )
    assert _out(no) == "403", no.result
    assert no.confinement.network_refused == (f"127.0.0.1:{port_b}",)
    # a name the policy allows that resolves to a local address (the host's own services, a
    # cloud's metadata service) is refused: only an address the policy names reaches one
    pol = _policy(f"localhost:{port_a}")
    local = _run(
        home,
        fork,
        pol,
        ("curl", "-sS", f"http://localhost:{port_a}/", "-x", netproxy.environment({})["HTTP_PROXY"]),
    )
    assert "resolves to 127.0.0.1" in _out(local) or "resolves to ::1" in _out(local), local.result
    assert local.confinement.network_refused == (f"localhost:{port_a}",)
    from avfs_git.core.vaults import audit

    assert audit.read(fork.state_dir)[-1]["confinement"] == "bwrap/filtered"


def test_a_direct_connection_has_no_route(home, fork, port_a):
    """Ignoring the proxy variables gets nothing: the command's network namespace has no way out,
    even to a host the policy allows."""
    _need_curl()
    pol = _policy(f"127.0.0.1:{port_a}")
    res = _run(
        home, fork, pol, ("curl", "-sS", "--noproxy", "*", "--max-time", "20", f"http://127.0.0.1:{port_a}/")
    )
    assert res.result is not None and res.result.exit_code != 0 and "HELLO" not in _out(res), res.result
    script = (
        "import socket\ns = socket.socket()\n"
        f"try:\n    s.connect(('127.0.0.1', {port_a}))\n    print('CONNECTED')\n"
        "except OSError as e:\n    print('REFUSED', e.errno)\n"
    )
    fork.workspace("main").write("direct.py", script.encode())
    res = _run(home, fork, pol, ("python3", "direct.py"))
    assert _out(res).startswith("REFUSED"), res.result


def test_python_urllib_honours_the_proxy(home, fork, port_a, port_b):
    """Python's urllib (as pip's clients do) takes the proxy from the environment; a command
    not classified networked gets the filtered network when the policy says network = "filtered"."""
    fetch = (
        "import sys, urllib.request, urllib.error\n"
        "for url in sys.argv[1:]:\n"
        "    try:\n        print(urllib.request.urlopen(url, timeout=30).read().decode())\n"
        "    except urllib.error.HTTPError as e:\n        print('HTTP', e.code)\n"
    )
    fork.workspace("main").write("fetch.py", fetch.encode())
    pol = _policy(f"127.0.0.1:{port_a}", network="filtered", networked="require_approval")
    res = _run(
        home,
        fork,
        pol,
        ("python3", "fetch.py", f"http://127.0.0.1:{port_a}/x", f"http://127.0.0.1:{port_b}/y"),
    )
    assert res.confinement.network == "filtered"
    assert _out(res).splitlines() == [f"HELLO-{port_a} /x", "HTTP 403"], res.result
    assert res.confinement.network_refused == (f"127.0.0.1:{port_b}",)


def test_connect_tunnels_only_to_allowed_hosts(home, fork, echo, port_b):
    """CONNECT (what HTTPS through a proxy uses): a tunnel to a plain TCP echo server the
    policy allows carries bytes both ways; to another port it is refused with 403."""
    script = (
        "import os, socket, sys\n"
        "proxy = os.environ['HTTPS_PROXY'].rpartition(':')\n"
        "for port in sys.argv[1:]:\n"
        "    s = socket.create_connection(('127.0.0.1', int(proxy[2])))\n"
        "    s.sendall(b'CONNECT 127.0.0.1:%s HTTP/1.1\\r\\nHost: 127.0.0.1:%s\\r\\n\\r\\n' % (port.encode(), port.encode()))\n"
        "    head = b''\n"
        "    while not head.endswith(b'\\r\\n\\r\\n'):\n"
        "        head += s.recv(1)\n"
        "    status = head.split()[1].decode()\n"
        "    if status == '200':\n"
        "        s.sendall(b'ping')\n"
        "        print(status, s.recv(100).decode())\n"
        "    else:\n"
        "        print(status)\n"
        "    s.close()\n"
    )
    fork.workspace("main").write("tunnel.py", script.encode())
    pol = _policy(f"127.0.0.1:{echo}", network="filtered")
    res = _run(home, fork, pol, ("python3", "tunnel.py", str(echo), str(port_b)))
    assert _out(res).splitlines() == ["200 ECHO:ping", "403"], res.result
    assert res.confinement.network_refused == (f"127.0.0.1:{port_b}",)


def test_without_an_allow_list_the_network_is_none_or_the_hosts(home, fork, port_a):
    _need_curl()
    url = f"http://127.0.0.1:{port_a}/"
    res = _run(home, fork, Policy.from_text("version = 1\n"), ("python3", "-c", "print(1)"))
    assert res.confinement.network == "none" and res.confinement.network_allow is None
    pol = Policy.from_text('version = 1\n[outcomes]\nnetworked = "allow"\n')
    res = _run(home, fork, pol, ("curl", "-sS", url))
    assert res.confinement.network == "host" and _out(res) == f"HELLO-{port_a} /", res.result
    # an allow list: the same command gets the filtered network, and the policy's proxy
    res = _run(home, fork, _policy("pypi.org"), ("curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", url))
    assert res.confinement.network == "filtered" and _out(res) == "403", res.result


def test_the_proxy_stops_with_the_command(home, fork, echo, monkeypatch):
    """A command that leaves a tunnel open and a process behind still ends, and the proxy
    with it: its socket directory is gone afterwards. The proxy's directory is made under a
    ``TMPDIR`` of this test's own: in /tmp, a proxy of a session running beside this one
    showed up as this one's leftover."""
    own = tempfile.mkdtemp(prefix="avfs-t-", dir="/tmp")  # (short: the socket's path is bounded)
    monkeypatch.setenv("TMPDIR", own)
    made: list[str] = []
    start = netproxy.FilterProxy.start

    def noted(self: netproxy.FilterProxy) -> None:
        start(self)
        made.append(self.dir)

    monkeypatch.setattr(netproxy.FilterProxy, "start", noted)
    script = (
        "import os, socket, subprocess, sys\n"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "s = socket.create_connection(('127.0.0.1', int(os.environ['HTTP_PROXY'].rpartition(':')[2])))\n"
        f"s.sendall(b'CONNECT 127.0.0.1:{echo} HTTP/1.1\\r\\n\\r\\n')\n"
        "print(s.recv(100).split()[1].decode())\n"
    )
    fork.workspace("main").write("leave.py", script.encode())
    try:
        res = _run(home, fork, _policy(f"127.0.0.1:{echo}", network="filtered"), ("python3", "leave.py"))
        assert _out(res).strip() == "200", res.result
        assert made and all(os.path.dirname(d) == own for d in made), made
        assert os.listdir(own) == []
    finally:
        shutil.rmtree(own, ignore_errors=True)


def _kill_marked(pid: int, marker: str) -> bool:
    """SIGKILL ``pid``, found by :func:`_alive_with`, while its command line still holds
    ``marker`` (it may have ended since, its pid given to another process)."""

    def marked(p: int) -> bool:
        try:
            with open(f"/proc/{p}/cmdline", "rb") as f:
                return marker.encode() in f.read()
        except OSError:
            return False

    return signal_process(pid, signal.SIGKILL, is_it=marked)


def _alive_with(marker: str) -> list[int]:
    """Live processes (zombies aside) whose command line holds ``marker``."""
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if marker.encode() not in f.read():
                    continue
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rpartition(")")[2].split()[0] != "Z":
                    out.append(int(pid))
        except OSError:
            pass
    return out


def _wait_at_block_fd(marker: str, outer: int, fd: int, within_s: float = 30.0) -> None:
    """Wait until bubblewrap's set-up (the process it cloned, marked ``marker``) sleeps in
    its read of ``--block-fd`` ``fd``. Killing the outer bwrap sooner, between its clone and
    its own write to the eventfd the child waits on first, leaves the child asleep on that
    eventfd for ever (bubblewrap's own window, microseconds wide, which a test at load 30
    hit by killing as soon as two processes showed the marker)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        for pid in _alive_with(marker):
            if pid == outer:
                continue
            with contextlib.suppress(OSError):
                with open(f"/proc/{pid}/syscall") as f:
                    fields = f.read().split()
                if len(fields) > 1 and fields[1] == hex(fd):  # (read's number varies by arch)
                    return
        time.sleep(0.01)
    raise AssertionError(f"bubblewrap's set-up never reached its --block-fd within {within_s} s")


def test_the_sandbox_ends_with_its_command_when_the_outer_bwrap_was_killed():
    """bubblewrap sets ``--die-with-parent``'s signal on its init only once its set-up is done:
    an outer bwrap killed before then (here while the set-up waits at ``--block-fd``, as a
    SIGKILL of a test run or a daemon can catch it) leaves the init, parent 1, living as long
    as any process of the sandbox does. The forwarder's relay ends with the command's process,
    so the sandbox ends with its command (it lived on, the relay its only child, before)."""
    _need_bwrap()
    bwrap = confine.bwrap_path() or "bwrap"
    marker = f"avfs-orphan-{os.getpid()}-{time.monotonic_ns()}"
    with netproxy.FilterProxy(()) as proxy:
        gate_r, gate_w = os.pipe()
        argv = [bwrap, "--block-fd", str(gate_r), "--die-with-parent", "--unshare-pid", "--unshare-net",
                "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/run",
                "--ro-bind", proxy.path, netproxy.SOCKET_IN_SANDBOX,
                "--", *netproxy.wrap(["sh", "-c", "sleep 0.2", marker])]  # fmt: skip
        outer = subprocess.Popen(
            argv, pass_fds=(gate_r,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        left: list[int] = []
        try:
            _wait_at_block_fd(marker, outer.pid, gate_r)
            os.close(gate_r)
            outer.send_signal(signal.SIGKILL)
            outer.wait()
            os.write(gate_w, b"x")  # the set-up goes on: init, the forwarder, the command
            deadline = time.monotonic() + 15
            while (left := _alive_with(marker)) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert not left, f"still alive after the command ended: {left}"
        finally:
            os.close(gate_w)
            for pid in _alive_with(marker):  # (only when the assertion failed)
                _kill_marked(pid, marker)


def _outer_killed_in_the_set_up(tmp_path: Any, kill: bool) -> tuple[bool, list[int]]:
    """A command of avfs's sandbox (no network, the Landlock program in front:
    ``confine.argv`` with the outer bwrap's status pipe, as the runner starts it), its
    set-up held at bwrap's ``--block-fd``; with ``kill``, the outer bwrap SIGKILLed there.
    Returns (whether the command ran, what of it is still alive once it would have
    ended)."""
    src = tmp_path / "fork"
    src.mkdir(exist_ok=True)
    ran = src / "ran"
    with contextlib.suppress(FileNotFoundError):
        ran.unlink()
    marker = f"avfs-orphan-{os.getpid()}-{time.monotonic_ns()}"
    sb = confine.Sandbox(source=str(src), path=str(src), cwd=str(src), network="none", root=os.geteuid() == 0)
    status_r, status_w = os.pipe()
    gate_r, gate_w = os.pipe()
    outer_fd = confine.outer_fd(status_r)
    argv = confine.argv(sb, ["sh", "-c", "touch ran; sleep 1", marker], outer_fd=outer_fd)
    argv[1:1] = ["--json-status-fd", str(status_w), "--block-fd", str(gate_r)]
    fds = (status_w, gate_r, *([outer_fd] if outer_fd >= 0 else []))
    outer = subprocess.Popen(
        argv,
        pass_fds=fds,
        env=confine.BWRAP_ENV,
        cwd="/",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(status_w)
    try:
        _wait_at_block_fd(marker, outer.pid, gate_r)
        os.close(gate_r)
        if kill:  # gone before the set-up goes on (a SIGKILL is not an exit until reaped)
            outer.send_signal(signal.SIGKILL)
            outer.wait(timeout=60)
        os.write(gate_w, b"x")
        outer.wait(timeout=60)
        deadline = time.monotonic() + 15  # (the command's own second, and then some)
        while (left := _alive_with(marker)) and time.monotonic() < deadline:
            time.sleep(0.05)
        return ran.exists(), left
    finally:
        os.close(gate_w)
        os.close(status_r)
        for pid in _alive_with(marker):  # (only when the test fails)
            _kill_marked(pid, marker)


def test_a_command_does_not_start_once_its_outer_bwrap_was_killed_in_the_set_up(tmp_path):
    """The same set-up window without a filtered network (no relay: the command is the
    sandbox's only process): an outer bwrap killed before the sandbox's init set
    ``--die-with-parent``'s signal left the command running to its own end, parent 1,
    with avfs's timeout gone. The Landlock program in front of the command sees that
    bwrap gone (no writer left on its status pipe) and does not start it."""
    _need_bwrap()
    from avfs_git.proxy import landlock

    if not landlock.available() or landlock.PPOLL <= 0:
        skip_outside_ci(f"no {landlock.PERL}, or no ppoll number known for this machine")
    ran, left = _outer_killed_in_the_set_up(tmp_path, kill=False)
    assert ran and not left  # (the control: a bwrap that stays, a command that runs)
    ran, left = _outer_killed_in_the_set_up(tmp_path, kill=True)
    assert not ran, "the command ran after the bwrap that started it was killed"
    assert not left, f"still alive: {left}"


def test_a_sandbox_set_up_ahead_ends_when_its_call_dies_before_bwrap_armed_its_signal(tmp_path):
    """A first call's sandbox, set up ahead and waiting at its gate (proxy/ahead.py), whose
    call is killed before bubblewrap armed ``--die-with-parent`` (the outer arms it after
    its clone, the init after the set-up: a call SIGKILLed in those milliseconds, as the
    suite kills calls, or its outer bwrap killed by its own signal while the init was still
    setting up, as here): the init goes on, parent 1. The gate was a writer of its own pipe
    (for bubblewrap's ``--block-fd``, which goes on at the end of the file), so the sandbox
    waited for its byte for good: a ``bwrap --die-with-parent`` with parent 1 after a suite
    run. Where the Landlock program reads the gate (it runs nothing at the end of the
    file), the call's death ends it: nothing of it stays, the command never ran."""
    _need_bwrap()
    from avfs_git.proxy import ahead, landlock

    if not landlock.available() or landlock.PPOLL <= 0:
        skip_outside_ci(f"no {landlock.PERL}, or no ppoll number known for this machine")
    src = tmp_path / "fork"
    src.mkdir()
    marker = f"avfs-orphan-{os.getpid()}-{time.monotonic_ns()}"
    sb = confine.Sandbox(source=str(src), path=str(src), cwd=str(src), network="none", root=os.geteuid() == 0)
    status_r, status_w = os.pipe()
    gate, byte_w = ahead._gate(guarded=landlock.available())  # as a Blocked makes it
    hold_r, hold_w = os.pipe()  # (bubblewrap's set-up held here, before the init armed)
    outer_fd = confine.outer_fd(status_r)
    argv = confine.argv(sb, ["sh", "-c", "touch ran", marker], block_fd=gate, outer_fd=outer_fd)
    argv[1:1] = ["--json-status-fd", str(status_w), "--block-fd", str(hold_r)]
    fds = (status_w, gate, hold_r, *([outer_fd] if outer_fd >= 0 else []))
    outer = subprocess.Popen(
        argv,
        pass_fds=fds,
        env=confine.BWRAP_ENV,
        cwd="/",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for fd in (status_w, gate):  # (a Blocked closes its copies once bubblewrap has them)
        os.close(fd)
    try:
        _wait_at_block_fd(marker, outer.pid, hold_r)
        os.close(hold_r)
        outer.send_signal(signal.SIGKILL)  # (its parent's death, armed: the init not yet)
        outer.wait(timeout=60)
        os.write(hold_w, b"x")  # the set-up goes on: the init, parent 1, and its gate
        os.close(byte_w)  # the call dies before its byte
        byte_w = -1
        deadline = time.monotonic() + 15
        while (left := _alive_with(marker)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not left, f"still alive once its call died: {_described(left)}"
        assert not (src / "ran").exists()
    finally:
        for fd in (hold_w, byte_w, status_r):
            if fd >= 0:
                os.close(fd)
        for pid in _alive_with(marker):  # (only when the test fails)
            _kill_marked(pid, marker)


def _none_left(marker: str, within_s: float = 15.0) -> None:
    deadline = time.monotonic() + within_s
    while (left := _alive_with(marker)) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in left:  # (only when the assertion below fails)
        _kill_marked(pid, marker)
    assert not left, f"still alive: {left}"


def test_nothing_of_a_filtered_sandbox_stays_after_its_command(home, fork):
    """Neither the forwarder's relay nor bubblewrap's init outlives the command."""
    marker = f"avfs-orphan-{os.getpid()}-{time.monotonic_ns()}"
    res = _run(home, fork, _policy("127.0.0.1:9", network="filtered"), ("sh", "-c", "sleep 0.1", marker))
    assert res.result is not None and res.result.exit_code == 0, res.result
    _none_left(marker)


def _described(pids: list[int]) -> str:
    """Each process of ``pids`` with its state, kernel wait channel and command line."""
    out = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rpartition(")")[2].split()[0]
            with open(f"/proc/{pid}/wchan") as f:
                wchan = f.read()
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        out.append(f"{pid} {state} {wchan or '-'} {cmd[:200]}")
    return "; ".join(out) or "none"


def _filtered_cli(home: Any, marker: str, tmp_path: Any) -> subprocess.Popen[bytes]:
    """``avfs proxy exec`` of a filtered command, once its sandbox runs (bwrap twice, the
    relay and the command's shell). The command waits for a line on its stdin (``--stdin``:
    the test's pipe, see :func:`_release`) rather than sleeping a while: a look through
    /proc takes seconds at load 30, and a ``sleep 2`` ran its whole sandbox between two
    looks (CI: "did not start", with nothing said of what the call did). When the sandbox
    does not show, the failure says what was seen: the processes with the marker and the
    home's, and the call's exit status and output."""
    with open(os.path.join(home.path, "policy.toml"), "w") as f:
        f.write('version = 1\n[defaults]\nnetwork_allow = ["127.0.0.1:9"]\nnetwork = "filtered"\n'
                '[outcomes]\nnetworked = "allow"\n')  # fmt: skip
    cmd = exec_argv("--timeout-ms", "60000", "--stdin", home=home.path, vault="v")
    out, err = tmp_path / "cli.out", tmp_path / "cli.err"
    with open(out, "wb") as fo, open(err, "wb") as fe:
        proc = subprocess.Popen(
            [*cmd, "--", "sh", "-c", "read line", marker], stdin=subprocess.PIPE, stdout=fo, stderr=fe
        )
    started = time.monotonic()
    most = 0
    while time.monotonic() < started + 60:
        most = max(most, len(_alive_with(marker)))
        if most >= 4:
            return proc
        if proc.poll() is not None:
            break
        time.sleep(0.02)
    seen = _described(_alive_with(marker)) + " / the home's: " + _described(_alive_with(home.path))
    code = proc.poll()
    proc.kill()
    proc.wait()
    _release(proc)
    pytest.fail(
        f"the filtered command's sandbox did not start within {time.monotonic() - started:.0f} s: "
        f"at most {most} of its 4 processes at once; the call "
        + (f"exited {code}" if code is not None else "still ran")
        + f"; alive: {seen}; its stdout: {out.read_text(errors='replace')[-2000:]!r}; "
        f"its stderr: {err.read_text(errors='replace')[-2000:]!r}"
    )


def _release(proc: subprocess.Popen[bytes]) -> None:
    """Let the command of :func:`_filtered_cli` end (its line)."""
    assert proc.stdin is not None
    with contextlib.suppress(OSError):  # (a killed call: its pipe is broken)
        proc.stdin.write(b"go\n")
    with contextlib.suppress(OSError):
        proc.stdin.close()


def test_a_killed_cli_leaves_nothing_of_its_filtered_sandbox(home, fork, tmp_path):
    """SIGKILL of ``avfs proxy exec`` while its filtered command runs: the sandbox, the
    relay and the command go with it (``--die-with-parent``)."""
    marker = f"avfs-orphan-{os.getpid()}-{time.monotonic_ns()}"
    proc = _filtered_cli(home, marker, tmp_path)
    proc.kill()
    proc.wait()
    _release(proc)
    _none_left(marker)


def test_a_killed_calls_proxy_directory_is_swept_by_the_next_filtered_call(home, fork, tmp_path, monkeypatch):
    """SIGKILL of ``avfs proxy exec`` while its filtered command runs: its filtering
    proxy's directory stays (``FilterProxy.stop`` never ran: the test above left one
    ``/tmp/avfs-net-*`` a suite run). The next filtered call removes it, and leaves nothing
    of its own; a proxy still serving (this process') is left alone. Under a ``TMPDIR`` of
    this test's own: sessions beside it make theirs in /tmp."""
    own = tempfile.mkdtemp(prefix="avfs-k-", dir="/tmp")  # (short: the socket's path is bounded)
    monkeypatch.setenv("TMPDIR", own)
    marker = f"avfs-orphan-{os.getpid()}-{time.monotonic_ns()}"
    try:
        proc = _filtered_cli(home, marker, tmp_path)
        left = os.listdir(own)
        proc.kill()
        proc.wait()
        _release(proc)
        _none_left(marker)
        assert len(left) == 1 and left[0].startswith("avfs-net-"), left
        assert os.listdir(own) == left  # (what the kill leaves: the test's premise)
        with netproxy.FilterProxy(()) as live:
            again = subprocess.run(
                [*exec_argv(home=home.path, vault="v"), "--", "sh", "-c", "echo $HTTP_PROXY"],
                capture_output=True,
                timeout=120,
            )
            assert again.returncode == 0 and b"3128" in again.stdout, again
            assert os.listdir(own) == [os.path.basename(live.dir)]
            assert os.path.exists(live.path)
        assert os.listdir(own) == []
    finally:
        shutil.rmtree(own, ignore_errors=True)


def test_a_killed_daemon_leaves_nothing_once_the_filtered_command_ended(home, fork, tmp_path):
    """SIGKILL of the mount's daemon while a filtered command runs (the CLI runs it, not the
    daemon): the command runs to its end, then nothing of its sandbox stays."""
    marker = f"avfs-orphan-{os.getpid()}-{time.monotonic_ns()}"
    subprocess.run(  # the mount and its daemon, kept warm
        [*exec_argv(home=home.path, vault="v"), "--", "true"], capture_output=True, timeout=120
    )
    proc = _filtered_cli(home, marker, tmp_path)
    try:
        daemons = [p for p in _alive_with("avfs_git.fuse.daemon") if p in _alive_with(home.path)]
        assert daemons
        for pid in daemons:
            assert _kill_marked(pid, home.path)
        _release(proc)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
            _release(proc)
    _none_left(marker)


def test_a_missing_program_exits_127_as_in_a_shell(home, fork):
    res = _run(home, fork, _policy("pypi.org", network="filtered"), ("no-such-program-avfs",))
    assert res.result is not None and res.result.exit_code == 127, res.result
    assert "no-such-program-avfs" in str(res.result.stderr)


@pytest.mark.parametrize(
    ("patterns", "host", "port", "want"),
    [
        (("pypi.org",), "pypi.org", 443, True),
        (("pypi.org",), "PyPI.org.", 80, True),
        (("pypi.org",), "evil.pypi.org", 443, False),
        (("pypi.org",), "pypi.org.evil", 443, False),
        (("*.pythonhosted.org",), "files.pythonhosted.org", 443, True),
        (("*.pythonhosted.org",), "pythonhosted.org", 443, False),
        (("*.pythonhosted.org",), "xpythonhosted.org", 443, False),
        (("127.0.0.1:8080",), "127.0.0.1", 8080, True),
        (("127.0.0.1:8080",), "127.0.0.1", 8081, False),
        (("[::1]:8080",), "::1", 8080, True),
        ((), "pypi.org", 443, False),
    ],
)
def test_allowed_matches_names_wildcards_and_ports(patterns, host, port, want):
    assert netproxy.allowed(patterns, host, port) is want


@pytest.mark.parametrize(
    "value",
    [
        '"pypi.org"',
        '["https://pypi.org"]',
        '["pypi.org:0"]',
        '["pypi.org:99999"]',
        '["*"]',
        '["a*.org"]',
        '["pypi org"]',
        "[1]",
        '["[::1"]',
        '["pypi.org/simple"]',
    ],
)
def test_a_bad_allow_list_is_refused_with_the_line(vault, home, value):
    text = f"version = 1\n[defaults]\nnetwork_allow = {value}\n"
    with pytest.raises(PolicyError) as got:
        Policy.from_text(text, "p.toml")
    assert got.value.details["line"] == 3 and "network_allow" in str(got.value)
    # in the vault's policy file: the command is refused with that error, and nothing runs
    with open(os.path.join(vault.path, "avfs", "policy.toml"), "w", encoding="utf-8") as fh:
        fh.write(text)
    before = vault.workspace("main").status()
    res = execute(home, vault, "main", ExecRequest(shell="echo x > ran.txt", commit=False))
    assert res.result is None and res.error is not None and res.error.code == "policy_invalid", res.error
    assert "network_allow" in res.error.message and res.exit_code == 125
    assert vault.workspace("main").status() == before and not os.path.exists(
        os.path.join(vault.path, "ran.txt")
    )


def test_settings_show_in_the_policy_and_change_its_hash():
    base = Policy.default()
    assert base.to_dict()["defaults"]["network_allow"] == [] and base.network == "none"
    pol = Policy.from_text(
        'version = 1\n[defaults]\nnetwork = "filtered"\nnetwork_allow = ["pypi.org", "pypi.org"]\n'
    )
    assert pol.network == "filtered" and pol.network_allow == ("pypi.org",) and pol.hash != base.hash
    assert confine.network_for(["networked"], "allow", "none", ("pypi.org",)) == "filtered"
    assert confine.network_for(["networked"], "allow", "none", ()) == "host"
    assert confine.network_for(["read_only"], "allow", "filtered", ("pypi.org",)) == "filtered"
    assert confine.network_for(["read_only"], "allow", "none", ("pypi.org",)) == "none"
    assert confine.network_for(["networked"], "deny", "none", ("pypi.org",)) == "none"
    assert confine.network_for(["read_only"], "allow", "host", ("pypi.org",)) == "host"
    assert confine.network_for(["networked"], "allow", "filtered", ()) == "filtered"


def _ask(path: str, data: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(path)
        s.sendall(data)
        s.settimeout(30)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out


def test_the_host_side_refuses_what_is_not_a_proxy_request_and_closes_tunnels_on_stop(echo):
    """The proxy on its own socket (what the forwarder relays to): bad requests get 400
    with no connection made, oversized headers are bounded, and stop() ends an open tunnel."""
    with netproxy.FilterProxy((f"127.0.0.1:{echo}",)) as p:
        assert os.stat(p.dir).st_mode & 0o777 == 0o700
        assert _ask(p.path, b"hello\r\n\r\n").startswith(b"HTTP/1.1 400")
        assert _ask(p.path, b"CONNECT 127.0.0.1 HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 400")  # no port
        assert _ask(p.path, b"GET /relative HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 400")
        assert _ask(p.path, b"GET http://x/ HTTP/1.1\r\nX: " + b"a" * 70_000 + b"\r\n\r\n").startswith(
            b"HTTP/1.1 400"
        )
        assert _ask(p.path, b"CONNECT 10.0.0.1:22 HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 403")
        tunnel = socket.socket(socket.AF_UNIX)
        tunnel.connect(p.path)
        tunnel.sendall(f"CONNECT 127.0.0.1:{echo} HTTP/1.1\r\n\r\n".encode())
        tunnel.settimeout(30)
        assert tunnel.recv(100).startswith(b"HTTP/1.1 200")
        tunnel.sendall(b"x")
        assert tunnel.recv(100) == b"ECHO:x"
        path, d = p.path, p.dir
    assert tunnel.recv(100) == b""  # stopped: the tunnel is closed
    tunnel.close()
    assert p.refused == ["10.0.0.1:22"] and not os.path.exists(path) and not os.path.exists(d)


def test_the_filtered_sandbox_is_seen_however_slowly_the_test_looks(home, fork, tmp_path, monkeypatch):
    """:func:`_filtered_cli` sees the sandbox even when each look through /proc takes longer
    than a short command runs (at load 30 a look took its share of a CPU: seconds). Its
    ``sleep 2`` ended between two looks and the killed-daemon test failed with "did not
    start" (CI); the command now waits for the test to release it."""
    looks: list[str] = []
    real = _alive_with

    def slow(marker: str) -> list[int]:
        looks.append(marker)
        time.sleep(3)  # a look as slow as one at load 30
        return real(marker)

    monkeypatch.setattr(sys.modules[__name__], "_alive_with", slow)
    marker = f"avfs-orphan-{os.getpid()}-{time.monotonic_ns()}"
    proc = _filtered_cli(home, marker, tmp_path)
    _release(proc)
    assert proc.wait(timeout=60) == 0, (tmp_path / "cli.out").read_text() + (tmp_path / "cli.err").read_text()
    assert marker in looks  # the slow look is the one the helper made
    monkeypatch.undo()
    _none_left(marker)
