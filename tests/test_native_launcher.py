"""The native console script (avfs_git/cli/launcher.c, built by launcher.py): a call the
resident server answers is handed over without starting Python. Its request is checked
against the Python client's (both read by the server's own receiver, in the same test),
each answer it can get (an exit code, a start and a code, a fallback, garbage, a server
gone mid-call), the signals it relays, Ctrl-C before the start, and every call it hands to
Python instead; then the real server end to end."""

from __future__ import annotations

import contextlib
import json
import marshal
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from avfs_git.cli import launcher
from avfs_git.cli import resident as warm
from avfs_git.core.vaults.home import Home
from avfs_git.core.vaults.vault import Vault

from .test_cliserver import _answers

Answer = Callable[[socket.socket, dict[str, Any], int], None]


def _built(tmp_path: Path, native: bool) -> str:
    path = tmp_path / "bin" / ("avfs" if native else "avfs-script")
    path.parent.mkdir(exist_ok=True)
    # the Makefile installs a C compiler: a failed build is a failure here, never a skip
    assert launcher.write(str(path), native=native) is native
    return str(path)


@pytest.fixture(scope="module")
def scripts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("launchers")
    return {"native": _built(d, True), "script": _built(d, False)}


def _stop(sock: socket.socket, conn: socket.socket | None, thread: threading.Thread) -> None:
    """Stop a fake listener's thread before the test ends: a close alone leaves it blocked
    in ``accept`` or in a connection's ``recvmsg``, and a thread left so once read a later
    test's HTTP request in the same process (a descriptor's number reused)."""
    for s in (sock, conn):
        if s is not None:
            try:
                s.shutdown(socket.SHUT_RDWR)  # (wakes a blocked accept or recvmsg)
            except OSError:
                pass
    thread.join(timeout=30)
    sock.close()
    assert not thread.is_alive(), "the fake listener's thread did not end"


class FakeServer:
    """A listener at a home's socket that records each request (read by the resident
    server's own receiver) and answers it with ``answer``."""

    def __init__(self, home: Path, answer: Answer) -> None:
        (home / warm.RUN_DIR).mkdir(parents=True, exist_ok=True)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(warm.socket_path(str(home)))
        self.sock.listen(8)
        self.answer = answer
        self.requests: list[dict[str, Any]] = []
        self.stdio: list[list[tuple[int, int]]] = []
        self.conn: socket.socket | None = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        n = 0
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conn = conn
            with conn:
                fds: list[int] = []
                req = warm._recv_request(conn, fds)
                self.requests.append(req)
                self.stdio.append([(os.fstat(fd).st_dev, os.fstat(fd).st_ino) for fd in fds])
                for fd in fds:
                    os.close(fd)
                self.answer(conn, req, n)
                n += 1

    def close(self) -> None:
        _stop(self.sock, self.conn, self.thread)


@pytest.fixture
def fake_home(tmp_path: Path) -> Iterator[Path]:
    home = tmp_path / "h"
    home.mkdir()
    yield home


def _env(home: Path, **more: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "AVFS_SERVER")}
    return {**env, "AVFS_HOME": str(home), "AVFS_SERVER": "auto", **more}


def _run(cmd: list[str], env: dict[str, str], cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(cmd, capture_output=True, env=env, cwd=cwd, timeout=120)


def _framed(msg: dict[str, Any]) -> bytes:
    data = marshal.dumps(msg)
    return b"%08d" % len(data) + data


def _code(n: int) -> Answer:
    return lambda conn, _req, _i: warm._send(conn, {"code": n})


ARGS = [
    ["--json", "status"],
    ["--json", "log", "--", "x y", "", "-q", "a=b"],
    ["--home", "HOME", "status"],
    ["--vault", "v", "--home=HOME", "diff"],
    ["--vault=v:main", "cat", "dir/file.txt"],
    ["write", "f", 'tab\tnewline\nquote"back\\slash'],
    [],
]


@pytest.mark.parametrize("args", ARGS)
def test_the_request_is_the_python_clients_own(
    scripts: dict[str, str], fake_home: Path, tmp_path: Path, args: list[str]
) -> None:
    """Both launchers ask the same server the same thing: argv, the working directory,
    the whole environment as bytes (an empty value, `=` in a value), the stamp; their
    stdio passed along; the exit code the server sends is the call's."""
    server = FakeServer(fake_home, _code(7))
    args = [str(fake_home) if a == "HOME" else a.replace("=HOME", f"={fake_home}") for a in args]
    try:
        cwd = tmp_path / "work dir"
        cwd.mkdir()
        env = _env(fake_home, AVFS_TEST_EMPTY="", AVFS_TEST_EQ="a=b=c")
        env.pop("AVFS_HOME")  # the home: $HOME/.avfs, or --home
        env["HOME"] = str(fake_home.parent) + "//"
        (fake_home.parent / ".avfs").symlink_to(fake_home)
        with open(tmp_path / "out", "wb") as out:
            a = subprocess.run(
                [scripts["native"], *args], stdout=out, stderr=subprocess.PIPE, env=env, cwd=cwd, timeout=60
            )
            b = subprocess.run(
                [scripts["script"], *args], stdout=out, stderr=subprocess.PIPE, env=env, cwd=cwd, timeout=60
            )
            mine = (os.fstat(out.fileno()).st_dev, os.fstat(out.fileno()).st_ino)
        assert (a.returncode, b.returncode) == (7, 7), (a.stderr, b.stderr)
        assert len(server.requests) == 2
        native, script = server.requests
        assert native == script
        assert native["argv"] == args and native["cwd"] == str(cwd)
        assert native["env"][b"AVFS_TEST_EMPTY"] == b"" and native["env"][b"AVFS_TEST_EQ"] == b"a=b=c"
        assert native["env"] == {k.encode(): v.encode() for k, v in env.items()}
        assert server.stdio[0][1] == server.stdio[1][1] == mine
    finally:
        server.close()


def _started_then(code: int | None, pid: Callable[[], int]) -> Answer:
    def answer(conn: socket.socket, _req: dict[str, Any], _i: int) -> None:
        warm._send(conn, {"started": pid()})
        if code is not None:
            conn.settimeout(30)
            try:
                while conn.recv(1):
                    pass  # until the caller asks no more (the test's signal is relayed meanwhile)
            except TimeoutError:
                pass

    return answer


def test_a_start_then_a_code_and_a_server_gone_mid_call(scripts: dict[str, str], fake_home: Path) -> None:
    def answer(conn: socket.socket, _req: dict[str, Any], i: int) -> None:
        warm._send(conn, {"started": os.getpid()})
        if i == 0:
            warm._send(conn, {"code": 3})
        # the second call: the connection closes with no code

    server = FakeServer(fake_home, answer)
    try:
        got = _run([scripts["native"], "status"], _env(fake_home))
        assert got.returncode == 3, got.stderr
        got = _run([scripts["native"], "status"], _env(fake_home))
        assert got.returncode == 70 and b"the warm server went away" in got.stderr
        assert len(server.requests) == 2  # neither ran it again through Python
    finally:
        server.close()


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(lambda c: warm._send(c, {"fallback": "protocol"}), id="fallback"),
        pytest.param(lambda c: None, id="closed"),
    ],
)
def test_an_answer_that_started_nothing_runs_the_call_through_python(
    scripts: dict[str, str], fake_home: Path, reply: Callable[[socket.socket], None]
) -> None:
    """Nothing ran: the call goes to the Python launcher, whose own request the server
    answers (5 here), exactly once."""

    def answer(conn: socket.socket, req: dict[str, Any], i: int) -> None:
        if i == 0:
            reply(conn)
        else:
            warm._send(conn, {"code": 5})

    server = FakeServer(fake_home, answer)
    try:
        got = _run([scripts["native"], "--json", "status"], _env(fake_home))
        assert got.returncode == 5, got.stderr
        assert len(server.requests) == 2 and server.requests[0] == server.requests[1]
    finally:
        server.close()


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(b"00000003xyz", id="garbage"),
        pytest.param(b"not a length", id="no-length"),
        pytest.param(b"-0000001{0", id="signed-length"),
        pytest.param(b"99999999", id="huge-length"),
        pytest.param(_framed({"code": "seven"}), id="code-not-int"),
        pytest.param(_framed({"code": True}), id="code-a-bool"),
        pytest.param(_framed({}), id="none-of-the-three"),
        pytest.param(_framed({b"code": 5}), id="code-under-a-bytes-key"),
        pytest.param(
            b"00000022{\xda\x04code\xe9\x05\x00\x00\x00\xda\x01xu\x01\x00\x00\x00\xff0", id="invalid-utf-8"
        ),
        pytest.param(_framed({"started": 1})[:17], id="started-cut-short"),
    ],
)
def test_an_answer_not_understood_is_an_error_not_a_second_run(
    scripts: dict[str, str], fake_home: Path, reply: bytes
) -> None:
    """An answer cut short, that is not a length, or does not parse: whether the command
    started is not known (a ``started`` cut short, say), so neither launcher runs the call
    again (it could run twice): exit 70 and a message on stderr, nothing on stdout."""
    server = FakeServer(fake_home, lambda conn, _req, _i: conn.sendall(reply))
    try:
        for name in ("native", "script"):
            got = _run([scripts[name], "--json", "status"], _env(fake_home))
            assert (got.returncode, got.stdout) == (70, b""), (name, got.stderr)
            assert b"answer was not understood" in got.stderr and b"Traceback" not in got.stderr
        assert len(server.requests) == 2  # one each: neither ran it again
    finally:
        server.close()


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["proxy", "exec", "--", "true"], {}),
        (["--json", "hook", "pre-tool-use"], {}),
        (["cat", "caf\u00e9.txt", os.fsdecode(b"not-utf-8-\xe9.txt")], {}),
        (["status"], {"PYTHONPATH": launcher.package_root()}),
        (["status"], {"AVFS_SERVER": "off"}),
    ],
)
def test_calls_it_does_not_serve_go_to_python_unchanged(
    scripts: dict[str, str], fake_home: Path, args: list[str], env: dict[str, str]
) -> None:
    """`proxy exec` and `hook` (their own fast paths), a non-ASCII argument, PYTHONPATH,
    AVFS_SERVER=off: the native program asks no server; what runs is the Python
    launcher, whose answer (and request, where it makes one) is the script's."""
    server = FakeServer(fake_home, _code(9))
    try:
        a = _run([scripts["native"], *args], _env(fake_home, **env))
        native_requests = list(server.requests)
        b = _run([scripts["script"], *args], _env(fake_home, **env))
        assert (a.returncode, a.stdout) == (b.returncode, b.stdout), (a, b)
        assert native_requests == server.requests[len(native_requests) :]
        if args[0] == "cat":  # Python serves it: its request has the argument decoded
            assert native_requests[0]["argv"] == args and a.returncode == 9
    finally:
        server.close()


def test_signals_after_the_start_reach_the_command(scripts: dict[str, str], fake_home: Path) -> None:
    """Ctrl-C, SIGTERM, SIGHUP go to the started command's process (through a pidfd);
    where it cannot be signalled from here, to the server as b"S" + the signal."""
    victim = subprocess.Popen(["sleep", "60"])
    relayed: list[bytes] = []
    started: list[int] = []

    def answer(conn: socket.socket, _req: dict[str, Any], i: int) -> None:
        warm._send(conn, {"started": victim.pid if i == 0 else -1})
        started.append(i)
        conn.settimeout(30)
        if i == 0:
            victim.wait(30)
            warm._send(conn, {"code": 130})
        else:
            relayed.append(conn.recv(2))
            warm._send(conn, {"code": 143})

    server = FakeServer(fake_home, answer)
    try:
        for i, (sig, want) in enumerate(((signal.SIGINT, 130), (signal.SIGTERM, 143))):
            p = subprocess.Popen([scripts["native"], "status"], env=_env(fake_home))
            _until(lambda i=i: len(started) > i)
            _until(lambda pid=p.pid: _catches(pid, signal.SIGTERM))  # "started" read: the relay in place
            p.send_signal(sig)
            assert p.wait(30) == want
        assert victim.returncode == -signal.SIGINT
        assert relayed == [b"S" + bytes([signal.SIGTERM])]
    finally:
        victim.kill()
        server.close()


# an LD_PRELOAD shim: a Ctrl-C that lands as the launcher puts its relay in place (its
# second handler for SIGINT: "started" read, the relay not yet the handler)
_LATE_CTRL_C = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

int sigaction(int sig, const struct sigaction *act, struct sigaction *old) {
    static int (*real)(int, const struct sigaction *, struct sigaction *);
    static int handlers;
    if (real == NULL) real = (int (*)(int, const struct sigaction *, struct sigaction *))dlsym(RTLD_NEXT, "sigaction");
    if (sig == SIGINT && act != NULL && act->sa_handler != SIG_DFL && act->sa_handler != SIG_IGN && handlers++ == 1) {
        const char *mark = getenv("LATE_CTRL_C_MARK");
        if (mark != NULL) close(open(mark, O_WRONLY | O_CREAT, 0600));
        raise(SIGINT);
    }
    return real(sig, act, old);
}
"""


def test_a_ctrl_c_as_the_relay_is_put_in_place_reaches_the_command(
    scripts: dict[str, str], fake_home: Path, tmp_path: Path
) -> None:
    """A Ctrl-C that came with "started", before the relay was the handler, set the flag
    of a Ctrl-C before the start, which nothing read once the command had started: it was
    lost, and the call waited on a command nobody had interrupted. Forced by a shim that
    raises SIGINT as the launcher installs its relay."""
    src = tmp_path / "late.c"
    src.write_text(_LATE_CTRL_C)
    shim = tmp_path / "late.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(shim), str(src), "-ldl"], check=True, timeout=120)
    mark = tmp_path / "late-mark"
    victim = subprocess.Popen(["sleep", "60"])

    def answer(conn: socket.socket, _req: dict[str, Any], _i: int) -> None:
        warm._send(conn, {"started": victim.pid})
        try:
            victim.wait(30)
            warm._send(conn, {"code": 130})
        except subprocess.TimeoutExpired:
            pass  # (never interrupted: the caller's wait is the test's failure)

    server = FakeServer(fake_home, answer)
    p = subprocess.Popen(
        [scripts["native"], "status"],
        env=_env(fake_home, LD_PRELOAD=str(shim), LATE_CTRL_C_MARK=str(mark)),
    )
    try:
        assert p.wait(60) == 130
        assert mark.exists()  # the shim ran
        assert victim.wait(30) == -signal.SIGINT
    finally:
        p.kill()
        p.wait()
        victim.kill()
        victim.wait()
        server.close()


def _state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().rpartition(")")[2].split()[0]


@pytest.mark.parametrize("name", ["native", "script"])
def test_a_ctrl_c_as_started_comes_reaches_the_command(
    scripts: dict[str, str], fake_home: Path, name: str
) -> None:
    """A Ctrl-C that breaks the caller's wait as "started" comes, before the caller has
    read it (it was not run meanwhile, as at load: here stopped, then let go with the
    Ctrl-C pending): the kernel's recv answers EINTR, not the data. Taken for a Ctrl-C
    before the start, the caller said "interrupted" and ended, and the started command
    was never interrupted (the real server hangs it up). The answer that came is read
    first: the command gets the Ctrl-C and the call its code."""
    victim = subprocess.Popen(["sleep", "60"])
    stopped: list[int] = []

    def answer(conn: socket.socket, _req: dict[str, Any], _i: int) -> None:
        pid = int.from_bytes(conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)[:4], sys.byteorder)
        # (its Ctrl-C handler is installed once the request is sent: stopped before it, the
        # pending Ctrl-C ended the caller at SIGCONT, as a Ctrl-C that early does; ci41)
        _until(lambda: _catches(pid, signal.SIGINT))
        os.kill(pid, signal.SIGSTOP)
        _until(lambda: _state(pid) == "T")
        warm._send(conn, {"started": victim.pid})
        stopped.append(pid)
        try:
            victim.wait(30)
            warm._send(conn, {"code": 130})
        except subprocess.TimeoutExpired:
            pass  # (never interrupted: the test's failure below)

    server = FakeServer(fake_home, answer)
    p = subprocess.Popen([scripts[name], "status"], env=_env(fake_home), stdout=subprocess.DEVNULL)
    try:
        _until(lambda: bool(stopped))
        os.kill(stopped[0], signal.SIGINT)  # pending while it is stopped
        os.kill(stopped[0], signal.SIGCONT)
        assert p.wait(60) == 130
        assert victim.wait(30) == -signal.SIGINT, "the started command never got the Ctrl-C"
    finally:
        for pid in stopped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        p.kill()
        p.wait()
        victim.kill()
        victim.wait()
        server.close()


def _until(cond: Callable[[], bool], timeout: float = 30) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end
        time.sleep(0.02)


def _catches(pid: int, sig: int) -> bool:
    """Whether process ``pid`` has a handler for ``sig`` (its ``SigCgt``). The signal
    tests waited 0.3 s after the server had the request or sent "started", for the
    program's handlers to be in place: at -n 2 under load the program had not reached
    them yet (SIGTERM then killed it: -15, not 143; a Ctrl-C ended it, or came before the
    relay and never reached the command), four failures in CI runs. The handlers, not a
    time: the native program installs its relay (SIGINT, SIGTERM, SIGHUP) once "started"
    is read, its Ctrl-C handler once the request is sent; a ``proxy exec`` client (the
    program or Python's) passes SIGINT, SIGTERM and SIGHUP on once its request is sent;
    Python catches SIGINT from its start."""
    with open(f"/proc/{pid}/status") as fh:
        caught = next(int(ln.split()[1], 16) for ln in fh if ln.startswith("SigCgt:"))
    return bool(caught >> (sig - 1) & 1)


@pytest.mark.parametrize("json_mode", [True, False])
def test_ctrl_c_before_the_start_answers_as_the_script_does(
    scripts: dict[str, str], fake_home: Path, json_mode: bool
) -> None:
    """The server has the request but has not started it: Ctrl-C closes the connection
    (the server starts nothing) and the answer is the interrupted one, as from Python."""
    hung: list[socket.socket] = []

    def answer(conn: socket.socket, _req: dict[str, Any], _i: int) -> None:
        conn.settimeout(30)
        try:
            hung.append(conn.recv(1))  # b"": the caller closed
        except TimeoutError:
            hung.append(b"timeout")

    server = FakeServer(fake_home, answer)
    outs = []
    try:
        for name in ("native", "script"):
            n = len(server.requests)
            args = ["--json", "status"] if json_mode else ["status"]
            p = subprocess.Popen(
                [scripts[name], *args], env=_env(fake_home), stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
            _until(lambda n=n: len(server.requests) > n)
            _until(lambda pid=p.pid: _catches(pid, signal.SIGINT))  # (Python's: from its start)
            p.send_signal(signal.SIGINT)
            out, _err = p.communicate(timeout=60)
            outs.append((p.returncode, out))
            _until(lambda n=n: len(hung) > n)
        assert outs[0] == outs[1] and outs[0][0] != 0, outs
        if json_mode:
            assert json.loads(outs[0][1])["error"]["code"] == "interrupted"
        assert hung == [b"", b""]
    finally:
        server.close()


def test_the_real_server_end_to_end(
    scripts: dict[str, str], home: Home, vault: Vault, tmp_path: Path
) -> None:
    """No server: the native program runs the call through Python, which starts one; the
    next calls are served with no Python in the caller, and answer as a direct call does."""
    vault.workspace("main").write("a.txt", b"one\n")
    on = {**os.environ, "AVFS_SERVER": "auto", "AVFS_VAULT": "v:main", "AVFS_HOME": home.path}
    off = {**on, "AVFS_SERVER": "off"}
    on.pop("PYTHONPATH", None)
    got = _run([scripts["native"], "--json", "status"], on)
    assert got.returncode == 0 and json.loads(got.stdout)["kind"] == "status", got.stderr
    _until(lambda: _answers(home.path), 60)
    try:
        for args in (["--json", "status"], ["cat", "a.txt"], ["--json", "diff"], ["nope"], ["--json", "log"]):
            a, b = _run([scripts["native"], *args], on), _run([scripts["native"], *args], off)
            assert (a.returncode, a.stdout) == (b.returncode, b.stdout), args
        assert _run([scripts["native"], "write", "b.txt", "two"], on).returncode == 0
        assert vault.workspace("main").read("b.txt") == b"two"
        trace = subprocess.run(
            ["strace", "-f", "-e", "trace=execve", scripts["native"], "--json", "status"],
            capture_output=True,
            env=on,
            timeout=60,
        )
        assert trace.returncode == 0 and json.loads(trace.stdout)["kind"] == "status"
        assert trace.stderr.count(b"execve(") == 1, trace.stderr  # itself only: no Python
    finally:
        pid = int(Path(home.path, warm.RUN_DIR, warm.PID_FILE).read_text())
        os.kill(pid, signal.SIGTERM)


def test_c_string_escapes_every_byte_that_could_end_or_change_it() -> None:
    text = "a\"b\\c\n??=é\x00'"
    lit = launcher.c_string(text)
    assert lit.startswith('"') and lit.endswith('"') and all(ch not in lit[1:-1] for ch in "\"\n?'")
    # the compiler reads it back as the same bytes
    src = f"#include <stdio.h>\nint main(void){{fwrite({lit}, 1, sizeof {lit} - 1, stdout);return 0;}}\n"
    d = Path(os.environ.get("TMPDIR", "/tmp"))
    out = subprocess.run(
        ["sh", "-c", f"cc -x c -o {d}/cstr.$$ - && {d}/cstr.$$; rc=$?; rm -f {d}/cstr.$$; exit $rc"],
        input=src.encode(),
        capture_output=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout == text.encode()
    assert sys.getfilesystemencoding() == "utf-8"


class FakeDaemon:
    """A mount daemon's exec socket, held by this process (so ``SO_PEERCRED`` names it), and
    the exec file that names it for ``v:main`` in ``home``: records each `proxy exec`
    request and answers it with ``answer``."""

    def __init__(self, home: Path, mountpoint: Path, answer: Callable[[socket.socket, int], None]) -> None:
        self.name = f"avfs-test-{os.getpid()}-{time.monotonic_ns()}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind("\0" + self.name)
        self.sock.listen(8)
        exec_file = home / "vaults" / "v.git" / "avfs" / "mounts" / "main.exec"
        exec_file.parent.mkdir(parents=True, exist_ok=True)
        exec_file.write_text(f"{self.name}\n{os.getpid()}\n{mountpoint}\n")
        self.answer = answer
        self.requests: list[dict[str, Any]] = []
        self.fds: list[int] = []
        self.silent = 0
        self.conn: socket.socket | None = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        from avfs_git.cli import spare

        n = 0
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conn = conn
            with conn:
                got = spare.recv_framed(conn, 1)
                if got is None:  # a caller that would not talk to this process
                    self.silent += 1
                    continue
                self.requests.append(marshal.loads(got[0]))
                self.fds.append(len(got[1]))
                for fd in got[1]:
                    os.close(fd)
                self.answer(conn, n)
                n += 1

    def close(self) -> None:
        _stop(self.sock, self.conn, self.thread)


def _reply(msg: dict[str, Any]) -> Callable[[socket.socket, int], None]:
    return lambda conn, _n: warm._send(conn, msg)


def _exec_env(home: Path) -> dict[str, str]:
    return {**_env(home, AVFS_SERVER="off"), "AVFS_VAULT": "v:main", "AVFS_TEST_UTF8": "caf\u00e9"}


DOC = '{"kind": "proxy_exec_result", "x": 1}\n'


@pytest.mark.parametrize(
    ("args", "reply"),
    [
        # --json: the document alone (one object under two keys: a marshal back-reference)
        (
            ["--json", "proxy", "exec", "--", "sh", "-c", "exit 3"],
            {"code": 3, "doc": DOC, "out": DOC, "err": None},
        ),
        (
            ["proxy", "exec", "--quiet", "--", "true"],
            {"code": 0, "doc": DOC, "out": "out\u00e9\n", "err": "err\n"},
        ),
        (["proxy", "exec", "--", "true"], {"code": 4, "doc": DOC, "out": None, "err": None, "quiet": False}),
        (
            ["proxy", "exec", "--quiet", "--", "true"],
            {"code": 0, "doc": DOC, "out": "bad \udcff\n", "err": None},
        ),
        (
            ["--json", "proxy", "exec", "--stdin", "--", "cat"],
            {"code": 0, "doc": DOC, "out": DOC, "err": None},
        ),
        (["--json", "proxy", "exec", "--", "true"], {"code": "not an int", "out": DOC}),
    ],
    ids=["json", "quiet", "person", "surrogate", "stdin", "bad-reply"],
)
def test_proxy_exec_asks_the_daemon_as_the_python_client_does(
    scripts: dict[str, str], fake_home: Path, tmp_path: Path, args: list[str], reply: dict[str, Any]
) -> None:
    """Run from a directory inside the mount: the request (arguments with `--cwd`, the
    environment as text, `--json`, stdin passed for `--stdin`) is the Python client's,
    and what is printed and the exit code are too: the answer written as it is, or
    rendered by Python (a person's rendering, text Python writes its own way, an answer
    that is not one)."""
    mountpoint = tmp_path / "mnt"
    (mountpoint / "src" / "pkg").mkdir(parents=True)
    if "out" in reply and "doc" in reply and reply["out"] == reply["doc"]:
        reply["out"] = reply["doc"]
    daemon = FakeDaemon(fake_home, mountpoint, _reply(reply))
    try:
        runs = [
            _run([scripts[name], *args], _exec_env(fake_home), cwd=mountpoint / "src" / "pkg")
            for name in ("native", "script")
        ]
        assert (runs[0].returncode, runs[0].stdout, runs[0].stderr) == (
            runs[1].returncode,
            runs[1].stdout,
            runs[1].stderr,
        )
        assert len(daemon.requests) == 2 and daemon.requests[0] == daemon.requests[1]
        req = daemon.requests[0]
        assert (
            req["v"] == 2
            and req["args"][:2] == ["--cwd", "src/pkg"]
            and req["env"]["AVFS_TEST_UTF8"] == "caf\u00e9"
        )
        assert daemon.fds == ([1, 1] if "--stdin" in args else [0, 0])
    finally:
        daemon.close()


def test_proxy_exec_without_python_when_the_answer_is_printed_as_it_is(
    scripts: dict[str, str], fake_home: Path, tmp_path: Path
) -> None:
    daemon = FakeDaemon(fake_home, tmp_path, _reply({"code": 0, "doc": DOC, "out": DOC, "err": None}))
    try:
        trace = subprocess.run(
            [
                "strace",
                "-f",
                "-e",
                "trace=execve",
                scripts["native"],
                "--json",
                "proxy",
                "exec",
                "--",
                "true",
            ],
            capture_output=True,
            env=_exec_env(fake_home),
            timeout=60,
        )
        assert trace.returncode == 0 and trace.stdout == DOC.encode()
        assert trace.stderr.count(b"execve(") == 1, trace.stderr
    finally:
        daemon.close()


@pytest.mark.parametrize("case", ["no-answer", "fallback", "another-pid", "signal"])
def test_proxy_exec_when_the_daemon_does_not_simply_answer(
    scripts: dict[str, str], fake_home: Path, tmp_path: Path, case: str
) -> None:
    """A daemon that ends with the request (the envelope that says so), one that hands
    the call back (Python runs all of it), an exec file naming another process (no
    request sent), and Ctrl-C while the command runs (one byte to the daemon, whose
    answer is then printed): as the Python client answers each."""
    got_signal: list[bytes] = []

    def answer(conn: socket.socket, _n: int) -> None:
        if case == "fallback":
            warm._send(conn, {"fallback": True})
        elif case == "signal":
            conn.settimeout(30)
            got_signal.append(conn.recv(1))
            warm._send(conn, {"code": 130, "doc": DOC, "out": DOC, "err": None})
        # no-answer: the connection closes

    daemon = FakeDaemon(fake_home, tmp_path, answer)
    if case == "another-pid":
        exec_file = fake_home / "vaults" / "v.git" / "avfs" / "mounts" / "main.exec"
        exec_file.write_text(f"{daemon.name}\n1\n{tmp_path}\n")
    try:
        outs = []
        for name in ("native", "script"):
            n = len(daemon.requests)
            args = [scripts[name], "--json", "proxy", "exec", "--", "true"]
            if case == "signal":
                p = subprocess.Popen(
                    args, env=_exec_env(fake_home), stdout=subprocess.PIPE, stderr=subprocess.PIPE
                )
                _until(lambda n=n: len(daemon.requests) > n)
                _until(lambda pid=p.pid: _catches(pid, signal.SIGTERM))  # its signals passed on
                p.send_signal(signal.SIGINT)
                out, _err = p.communicate(timeout=60)
                outs.append((p.returncode, out))
            else:
                r = _run(args, _exec_env(fake_home))
                outs.append((r.returncode, r.stdout))
        assert outs[0] == outs[1], outs
        if case == "no-answer":
            assert json.loads(outs[0][1])["error"] is not None and len(daemon.requests) == 2
        elif case == "fallback":  # the native program's, then Python's two, then the script's two
            assert len(daemon.requests) == 5 and daemon.requests[0] == daemon.requests[3]
        elif case == "another-pid":  # connected, asked who listens, sent nothing
            assert daemon.requests == [] and daemon.silent >= 2
        else:
            assert got_signal == [bytes([signal.SIGINT])] * 2 and outs[0] == (130, DOC.encode())
    finally:
        daemon.close()


def test_proxy_exec_on_a_real_mount_answers_as_the_script(
    scripts: dict[str, str], home: Home, vault: Vault, tmp_path: Path
) -> None:
    """The fork mounted, its daemon answering: the native program and the Python script
    give the same envelopes, renderings, exit codes and changes, from the mount's root
    and from a directory in it, with stdin passed on."""
    from avfs_git.ops import mounts

    from .test_confine import _need_bwrap
    from .test_fuse import require_fuse

    _need_bwrap()
    require_fuse()
    env = {**os.environ, "AVFS_SERVER": "off", "AVFS_VAULT": "v:main", "AVFS_HOME": home.path}
    env.pop("PYTHONPATH", None)
    vault.workspace("main").write("sub/a.txt", b"one\n")
    info = mounts.mount(home, vault, "main", None)
    try:
        for cwd, args, stdin in (
            (None, ["--json", "proxy", "exec", "--", "sh", "-c", "echo out; echo err >&2; exit 3"], b""),
            (None, ["proxy", "exec", "--", "sh", "-c", "echo out; exit 3"], b""),
            (None, ["proxy", "exec", "--quiet", "--", "sh", "-c", "echo out; echo err >&2"], b""),
            (None, ["--json", "proxy", "exec", "--stdin", "--", "cat"], b"fed through\n"),
            (None, ["--json", "proxy", "exec", "--env", "NOEQUALS", "--", "true"], b""),
            ("sub", ["--json", "proxy", "exec", "--", "sh", "-c", "pwd; cat a.txt"], b""),
        ):
            where = Path(info.mountpoint, cwd) if cwd else tmp_path
            got = []
            for name in ("native", "script"):
                p = subprocess.run(
                    [scripts[name], *args], input=stdin, capture_output=True, env=env, cwd=where, timeout=120
                )
                out: Any = p.stdout
                if args[0] == "--json":
                    out = json.loads(p.stdout)
                    for d in (out, out.get("result") or {}):
                        d.pop("duration_ms", None)
                    out.pop("state", None)
                    out.pop("checkpoint", None)  # the first call checkpoints what was written before
                got.append((p.returncode, out, p.stderr))
            assert got[0] == got[1], (args, got)
        # the native program wrote and committed as the script's did
        p = _run([scripts["native"], "--json", "proxy", "exec", "--", "sh", "-c", "echo n > n.txt"], env)
        assert json.loads(p.stdout)["commit"] is not None
        assert vault.workspace("main").read("n.txt") == b"n\n"
    finally:
        mounts.unmount(home, vault, "main", lazy=True)


def test_a_server_that_resets_the_connection_unread_leaves_the_call_to_the_caller(
    scripts: dict[str, str], fake_home: Path
) -> None:
    """A server ending with the call still queued (its code changed, its idle time out)
    resets the connection, the request unread: nothing ran, so the caller runs the call
    itself, with no traceback (the Python client raised ConnectionResetError)."""
    import struct

    (fake_home / warm.RUN_DIR).mkdir(parents=True, exist_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(warm.socket_path(str(fake_home)))
    sock.listen(8)
    resets: list[int] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            time.sleep(0.05)  # the request arrives, and is never read
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()
            resets.append(1)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        runs = [_run([scripts[name], "--json", "status"], _env(fake_home)) for name in ("native", "script")]
        assert (runs[0].returncode, runs[0].stdout) == (runs[1].returncode, runs[1].stdout)
        for r in runs:
            assert b"Traceback" not in r.stderr, r.stderr
            assert json.loads(r.stdout)["kind"] == "error"  # (an empty home: the call ran, here)
        assert len(resets) == 3  # the native program's, Python's after it, the script's
    finally:
        _stop(sock, None, thread)


def test_proxy_exec_answered_to_a_closed_stdout_exits_as_the_script_does(
    scripts: dict[str, str], fake_home: Path, tmp_path: Path
) -> None:
    """The daemon ran the command; the reader of stdout went away (``| head -c0``): the
    exit is the script's (SIGPIPE ignored, as Python's start-up does, so the write fails
    instead of ending the program by a signal after the command ran)."""
    daemon = FakeDaemon(fake_home, tmp_path, _reply({"code": 3, "doc": DOC, "out": DOC * 2000, "err": None}))
    try:
        codes = []
        for name in ("native", "script"):
            r, w = os.pipe()
            os.close(r)
            p = subprocess.run(
                [scripts[name], "--json", "proxy", "exec", "--", "true"],
                stdout=w,
                stderr=subprocess.PIPE,
                env=_exec_env(fake_home),
                timeout=60,
            )
            os.close(w)
            codes.append((p.returncode, p.stderr))
        assert codes == [(3, b""), (3, b"")], codes
    finally:
        daemon.close()


def test_proxy_exec_from_a_directory_deeper_than_path_max_runs_there(
    scripts: dict[str, str], fake_home: Path, tmp_path: Path
) -> None:
    """A working directory in the mount whose path is longer than getcwd reads into 4096
    bytes: the request still names it (``--cwd``), as the script's does, not the fork's
    root."""
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    daemon = FakeDaemon(fake_home, mountpoint, _reply({"code": 0, "doc": DOC, "out": DOC, "err": None}))
    fd = os.open(mountpoint, os.O_RDONLY)
    try:
        for _ in range(25):  # (a mkdir of the whole path fails past PATH_MAX)
            os.mkdir("d" * 200, dir_fd=fd)
            fd, parent = os.open("d" * 200, os.O_RDONLY, dir_fd=fd), fd
            os.close(parent)
        for name in ("native", "script"):
            p = subprocess.run(
                [scripts[name], "--json", "proxy", "exec", "--", "true"],
                capture_output=True,
                env=_exec_env(fake_home),
                timeout=60,
                preexec_fn=lambda: os.fchdir(fd),
            )
            assert (p.returncode, p.stdout) == (0, DOC.encode()), p.stderr
        assert len(daemon.requests) == 2 and daemon.requests[0] == daemon.requests[1]
        assert daemon.requests[0]["args"][:2] == ["--cwd", "/".join(["d" * 200] * 25)]
    finally:
        os.close(fd)
        daemon.close()
