"""The native console script (avfs_git/cli/launcher.c, built by launcher.py): a call the
resident server answers is handed over without starting Python. Its request is checked
against the Python client's (both read by the server's own receiver, in the same test),
each answer it can get (an exit code, a start and a code, a fallback, garbage, a server
gone mid-call), the signals it relays, Ctrl-C before the start, and every call it hands to
Python instead; then the real server end to end."""

from __future__ import annotations

import json
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
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        n = 0
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                req, fds = warm._recv_request(conn)
                self.requests.append(req)
                self.stdio.append([(os.fstat(fd).st_dev, os.fstat(fd).st_ino) for fd in fds])
                for fd in fds:
                    os.close(fd)
                self.answer(conn, req, n)
                n += 1

    def close(self) -> None:
        self.sock.close()


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
        pytest.param(lambda c: c.sendall(b"00000003xyz"), id="garbage"),
        pytest.param(lambda c: c.sendall(b"not a length"), id="no-length"),
        pytest.param(lambda c: warm._send(c, {"code": "seven"}), id="code-not-int"),
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
            time.sleep(0.3)  # the answer read and the relay's handlers in place
            p.send_signal(sig)
            assert p.wait(30) == want
        assert victim.returncode == -signal.SIGINT
        assert relayed == [b"S" + bytes([signal.SIGTERM])]
    finally:
        victim.kill()
        server.close()


def _until(cond: Callable[[], bool], timeout: float = 30) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end
        time.sleep(0.02)


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
            time.sleep(0.3)
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
