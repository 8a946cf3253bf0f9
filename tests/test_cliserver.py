"""The warm CLI server (avfs_git/cli/resident.py): a call served by it prints, reads and exits
exactly as a direct call does (JSON and human output, standard input, errors, the place it
runs in, help); Ctrl-C reaches the command; a caller that goes away takes its command with
it; an edit of avfs's code is never served by the old code; a confined command cannot
reach the server; an idle server ends. Real processes, the console script's path
(`python -m avfs_git`), the server started as a call starts it."""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from avfs_git.cli import callproc
from avfs_git.cli import resident as warm
from avfs_git.core.store.locks import signal_process
from avfs_git.core.vaults.home import Home
from avfs_git.core.vaults.vault import Vault
from avfs_git.ops import mounts

from .daemons import server_of
from .test_confine import _need_bwrap
from .test_overlay import require_overlay


def _run(
    *args: str, env: dict[str, str], cwd: str | None = None, stdin: bytes = b""
) -> tuple[int, bytes, bytes]:
    p = subprocess.run(
        [sys.executable, "-m", "avfs_git", *args],
        input=stdin,
        capture_output=True,
        env=env,
        cwd=cwd,
        timeout=120,
    )
    return p.returncode, p.stdout, p.stderr


def _server_pid(home: str) -> int | None:
    try:
        return int(Path(home, warm.RUN_DIR, warm.PID_FILE).read_text())
    except (OSError, ValueError):
        return None


def _stop_server(home: str) -> None:
    """SIGTERM the home's resident server, if one runs, and wait until it answers no more."""
    pid = _server_pid(home)
    if pid is not None:  # (still the server: a pid file left by a killed one names another's)
        signal_process(pid, signal.SIGTERM, is_it=lambda p: server_of(p, home))
        _wait_for(lambda: not _answers(home))


def _wait_for(cond: Any, timeout: float = 30) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.05)


def _answers(home: str) -> bool:
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(warm.socket_path(home))
        return True
    except OSError:
        return False
    finally:
        s.close()


@pytest.fixture
def served(home: Home, vault: Vault) -> Any:
    """(env with the server on, env without it); the server started by a first call."""
    ws = vault.workspace("main")
    ws.write("a.txt", b"one\n")
    ws.write("d/b.txt", b"b\n")
    on = {**os.environ, "AVFS_SERVER": "auto"}
    off = {**os.environ, "AVFS_SERVER": "off"}
    _run("status", env=on)  # direct, and starts a server for the next call
    _wait_for(lambda: _answers(home.path))
    try:
        yield on, off
    finally:
        _stop_server(home.path)


CALLS: list[tuple[list[str], bytes]] = [
    (["--json", "status"], b""),
    (["status"], b""),
    (["--json", "log", "-n", "3"], b""),
    (["cat", "a.txt", "d/b.txt"], b""),
    (["--json", "cat", "a.txt"], b""),
    (["--json", "stat", "a.txt"], b""),
    (["ls", "-l"], b""),
    (["--json", "diff"], b""),
    (["cat", "nope.txt"], b""),  # an error: its exit code and message
    (["--json", "cat", "nope.txt"], b""),
    (["--json", "vault", "info", "v"], b""),
    (["write", "--help"], b""),
    (["--json", "--help"], b""),
    (["no-such-command"], b""),
    (["--json", "checkout", "--bogus"], b""),
]


def test_a_served_call_is_a_direct_call(served: Any, home: Home, vault: Vault) -> None:
    on, off = served
    pid = _server_pid(home.path)
    for args, stdin in CALLS:
        assert _run(*args, env=on, stdin=stdin) == _run(*args, env=off, stdin=stdin), args
        assert _server_pid(home.path) == pid, args
    # quick calls, many: the server's two answers often arrive in one read (the caller
    # once dropped the second and said the server went away)
    for _ in range(30):
        assert _run("cat", "a.txt", env=on) == (0, b"one\n", b"")
    # writes: standard input reaches the command, the result is the same
    assert _run("write", "in.txt", "--stdin", env=on, stdin=b"from stdin\0\xff")[0] == 0
    assert vault.workspace("main").read("in.txt") == b"from stdin\0\xff"
    code, out, _ = _run("--json", "checkpoint", "save", "-m", "served", env=on)
    assert code == 0 and json.loads(out)["created"]
    assert _run("--json", "vault", "fork", "v", "f2", env=on)[0] == 0
    assert vault.has_fork("f2")
    assert _server_pid(home.path) == pid  # all of it by the one server


@pytest.mark.parametrize("backend", ["overlay"])
def test_the_place_a_served_call_runs_in_is_its_own(
    served: Any, home: Home, vault: Vault, backend: str
) -> None:
    """Inside a mount a command acts on that fork (registry.place): the server's child runs
    in the caller's working directory, with the caller's environment."""
    require_overlay()
    on, off = served
    vault.fork("main", "other")
    info = mounts.mount(home, vault, "other", None, backend=backend)
    try:
        mp = info.mountpoint
        Path(mp, "here.txt").write_text("here\n")
        for args in (["--json", "status"], ["status", "-s"], ["--json", "log", "-n", "1"]):
            got = _run(*args, env=on, cwd=mp)
            assert got == _run(*args, env=off, cwd=mp), args
        assert json.loads(_run("--json", "status", env=on, cwd=mp)[1])["fork"] == "other"
        env = {**on, "AVFS_VAULT": "v:main"}
        assert json.loads(_run("--json", "status", env=env, cwd=mp)[1])["fork"] == "main"
    finally:
        mounts.unmount(home, vault, "other")


def _popen_call(args: list[str], env: dict[str, str], **kw: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "avfs_git", *args], stdin=subprocess.PIPE, env=env, **kw)


def _end(*pids: int | None, procs: tuple[subprocess.Popen[bytes], ...] = ()) -> None:
    """Whatever happened, nothing of a test's calls stays behind: its callers killed and
    reaped, their streams closed, and the commands (the server's children) killed."""
    for pid in pids:
        if pid is not None:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    for p in procs:
        p.kill()
        p.wait(timeout=30)
        for fh in (p.stdin, p.stdout, p.stderr):
            if fh is not None:
                fh.close()


def _output(fh: Any, timeout: float = 30) -> bytes:
    """What ``fh`` (a pipe from a call) holds to its end, bounded: the end comes once no
    process holds its other end (the caller, and the command that took its streams)."""
    import select

    out = b""
    end = time.monotonic() + timeout
    while True:
        left = end - time.monotonic()
        assert left > 0 and select.select([fh], [], [], left)[0], ("still held open", out)
        chunk = os.read(fh.fileno(), 65536)
        if not chunk:
            return out
        out += chunk


def test_ctrl_c_and_a_vanished_caller_stop_the_command(served: Any, home: Home, vault: Vault) -> None:
    """A person's Ctrl-C stops a served command reading its standard input, as it stops a
    direct call: 130, nothing written, the command's process gone while the input is still
    open; a caller killed outright takes its command with it (the hang-up). Each process
    is ended in ``finally`` and each read bounded, whatever the product does."""
    on, _off = served
    # a served write waiting on a standard input that never ends
    p = _popen_call(["write", "x.txt", "--stdin"], on, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    child = None
    try:
        # started: the server's child reads the caller's pipe (the server may still be
        # loading when the call comes; a Ctrl-C before the command starts is another case)
        assert p.stdin is not None and p.stdout is not None and p.stderr is not None
        pipe = os.readlink(f"/proc/self/fd/{p.stdin.fileno()}")
        _wait_for(lambda: _reader(home.path, pipe) is not None)
        child = _reader(home.path, pipe)
        assert child is not None
        p.send_signal(signal.SIGINT)
        # waited for with its input still open, as a terminal's Ctrl-C leaves it (closed,
        # the command could read its end and finish before the interrupt came)
        assert p.wait(timeout=30) == 130
        _wait_for(lambda: _gone(child))
        err = _output(p.stderr)
        assert b"interrupted" in err + _output(p.stdout), err
        assert not vault.workspace("main").exists("x.txt")
    finally:
        _end(child, procs=(p,))
    # a caller killed outright: its command gets the hang-up, nothing stays behind (the
    # command's process is the server's child reading the caller's pipe; the server keeps
    # a spare child too, forked ahead for the next call)
    p = _popen_call(["write", "y.txt", "--stdin"], on, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    child = None
    try:
        assert p.stdin is not None
        pipe = os.readlink(f"/proc/self/fd/{p.stdin.fileno()}")
        _wait_for(lambda: _reader(home.path, pipe) is not None)
        child = _reader(home.path, pipe)
        assert child is not None
        p.kill()
        p.wait(timeout=30)
        _wait_for(lambda: _gone(child))  # (its input still open: the test holds it)
        assert not vault.workspace("main").exists("y.txt")
    finally:
        _end(child, procs=(p,))


# the resident server, its hand-over of a call late: the server's "started" waits until
# the caller has gone (a Ctrl-C that came between the command's process taking the call
# and the caller hearing of it; at load, the spare takes the caller's streams before the
# server has sent "started")
_LATE_STARTED = """
import os, select, sys
from avfs_git.cli import resident

mark, home = sys.argv[1], sys.argv[2]
started = resident.Server._started

def late(self, conn, *args, **kwargs):
    gone = select.poll()
    gone.register(conn, select.POLLRDHUP)
    gone.poll(60_000)
    open(mark, "w").close()
    return started(self, conn, *args, **kwargs)

resident.Server._started = late
sys.exit(resident.main(["--home", home]))
"""


def test_a_caller_gone_before_started_was_sent_takes_its_command_with_it(
    home: Home, vault: Vault, tmp_path: Path
) -> None:
    """The interleaving of a fresh-clone run's hang (the twenty-fourth round, flaky1): the
    caller's Ctrl-C came after the spare had taken its streams and before the server sent
    "started"; the caller, interrupted before any answer, ended (130, "interrupted"), the
    server's "started" then failed (EPIPE) and the server forgot the call: nobody hung up
    the command, which read the caller's standard input for ever and held its stderr (the
    test's read of it never ended). Forced here by a server whose "started" waits for the
    caller to go. The command must end, having written nothing."""
    mark = tmp_path / "late-started"
    env = {**os.environ, "AVFS_SERVER": "auto", "AVFS_VAULT": "v:main"}
    server = subprocess.Popen(
        [sys.executable, "-P", "-c", _LATE_STARTED, str(mark), home.path],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )
    p = None
    child = None
    try:
        _wait_for(lambda: _answers(home.path) or server.poll() is not None, timeout=60)
        assert server.poll() is None, "the patched server did not start"  # (not a 60 s wait)
        p = _popen_call(["write", "x.txt", "--stdin"], env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert p.stdin is not None and p.stdout is not None and p.stderr is not None
        pipe = os.readlink(f"/proc/self/fd/{p.stdin.fileno()}")
        _wait_for(lambda: _reader(home.path, pipe) is not None, timeout=60)
        child = _reader(home.path, pipe)
        assert child is not None and not mark.exists()  # taken, "started" not yet sent
        p.send_signal(signal.SIGINT)
        assert p.wait(timeout=30) == 130
        _wait_for(mark.exists)  # the patch ran: "started" was sent after the caller went
        _wait_for(lambda: _gone(child))  # (its input still open)
        assert b"interrupted" in _output(p.stderr) + _output(p.stdout)
        assert not vault.workspace("main").exists("x.txt")
    finally:
        _end(child, procs=(p,) if p is not None else ())
        server.terminate()
        server.wait(timeout=60)


# the caller, its Ctrl-C late: after it has read "started", before it relays signals
_LATE_RELAY = """
import os, signal, sys
from avfs_git.cli import client

mark = sys.argv[1]
wait = client._wait

def late(sock, buf, started, *args, **kwargs):
    if not os.path.exists(mark):  # (once)
        with open(mark, "w") as fh:
            fh.write(str(started))  # the command's process
        os.kill(os.getpid(), signal.SIGINT)
    return wait(sock, buf, started, *args, **kwargs)

client._wait = late
sys.argv = ["avfs", "write", "y.txt", "--stdin"]
sys.exit(client.main())
"""


def test_a_ctrl_c_before_the_caller_relays_signals_reaches_the_command(
    served: Any, home: Home, vault: Vault, tmp_path: Path
) -> None:
    """A Ctrl-C that comes once the caller has read "started" and before its relay is in
    place was a KeyboardInterrupt out of the caller (a traceback, killed by SIGINT, not
    130) and a hang-up of the command. It is the command's now: relayed, the command
    stops as at any other moment (130, "interrupted", nothing written)."""
    on, _off = served
    mark = tmp_path / "late-relay"
    p = subprocess.Popen(
        [sys.executable, "-c", _LATE_RELAY, str(mark)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**on, "AVFS_VAULT": "v:main"},
    )
    child = None
    try:
        code = p.wait(timeout=30)
        assert p.stdin is not None and p.stdout is not None and p.stderr is not None
        assert mark.exists()  # the patch ran
        child = int(mark.read_text())
        err = _output(p.stderr)
        assert code == 130, (code, err)
        _wait_for(lambda: _gone(child))
        assert b"interrupted" in err + _output(p.stdout), err
        assert b"Traceback" not in err, err
        assert not vault.workspace("main").exists("y.txt")
    finally:
        _end(child, procs=(p,))


def _reader(home: str, pipe: str) -> int | None:
    """The server's child whose standard input is ``pipe`` (the caller's): the command."""
    for pid in _children(_server_pid(home)):
        try:
            if os.readlink(f"/proc/{pid}/fd/0") == pipe:
                return pid
        except OSError:
            pass
    return None


def _children(pid: int | None) -> list[int]:
    """The server's live children: an ended one it has not collected yet is none of them (the
    server reaps its descendants' orphans, e.g. its start's sandbox probe's inner bubblewrap,
    at its loop's next round: cli/adopted.py)."""
    if pid is None:
        return []
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(x) for x in text.split() if not _zombie(int(x))]


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except OSError:  # (collected meanwhile: ESRCH or ENOENT)
        return True


def _gone(pid: int) -> bool:
    """Ended (a zombie counts: its parent, the call that started it, is gone too)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True


def test_an_edit_of_the_code_is_never_served_by_the_old(served: Any, home: Home, tmp_path: Path) -> None:
    """The stamp changes with any file of the package: the server answers "fall back", the
    call runs directly (the same output), the old server ends and the next call starts one.
    On a copy of the package (PYTHONPATH, run from elsewhere than the checkout: `python -m`
    puts the working directory first), so that no other test's server sees the edit; its
    bytecode copied with it, times kept (without it each process and server of the copy
    compiled every module it imported: ~2/3 of the test's CPU; the server's watch passes
    over ``__pycache__``, and the edited module's bytecode no longer matches its source)."""
    import shutil

    _on, off = served
    pkg = tmp_path / "pkg"
    shutil.copytree(Path(warm.__file__).parent.parent, pkg / "avfs_git")
    on = {**_on, "PYTHONPATH": str(pkg)}
    other = tmp_path / "home2"
    on["AVFS_HOME"] = off["AVFS_HOME"] = str(other)
    assert _run("vault", "create", "v", env=off, cwd=str(tmp_path))[0] == 0
    _run("status", env=on, cwd=str(tmp_path))
    _wait_for(lambda: _answers(str(other)))
    old = _server_pid(str(other))
    assert old is not None
    assert _run("--json", "status", env=on, cwd=str(tmp_path)) == _run(
        "--json", "status", env=off, cwd=str(tmp_path)
    )
    assert _server_pid(str(other)) == old  # served
    mark = pkg / "avfs_git" / "cli" / "app.py"
    mark.write_text(mark.read_text() + "\n# edited\n")
    assert _run("--json", "status", env=on, cwd=str(tmp_path)) == _run(
        "--json", "status", env=off, cwd=str(tmp_path)
    )
    _wait_for(lambda: _gone(old))
    _run("status", env=on, cwd=str(tmp_path))
    _wait_for(lambda: _answers(str(other)) and _server_pid(str(other)) not in (None, old))
    new = _server_pid(str(other))
    assert new is not None
    assert _run("--json", "status", env=on, cwd=str(tmp_path)) == _run(
        "--json", "status", env=off, cwd=str(tmp_path)
    )
    os.kill(new, signal.SIGTERM)
    _wait_for(lambda: _gone(new))


def test_an_idle_server_ends_and_off_means_off(home: Home, vault: Vault) -> None:
    # idle 4 s, not 1: at load 30 the server started and ended before the test's first look
    env = {**os.environ, "AVFS_SERVER": "auto", "AVFS_SERVER_IDLE": "4"}
    _run("status", env=env)
    _wait_for(lambda: _answers(home.path))
    _wait_for(lambda: not _answers(home.path))
    assert not Path(warm.socket_path(home.path)).exists()
    _run("status", env={**env, "AVFS_SERVER": "off"})
    time.sleep(1)
    assert not _answers(home.path)


def test_a_confined_command_cannot_reach_the_server(served: Any, home: Home, vault: Vault) -> None:
    """The server runs any avfs command for whoever connects (proxy approve among them): a
    command inside `proxy exec` must not find it, at its path or any other."""
    _need_bwrap()
    on, _off = served
    probe = (
        "import socket, sys\n"
        f"p = {warm.socket_path(home.path)!r}\n"
        "s = socket.socket(socket.AF_UNIX)\n"
        "try:\n"
        "    s.connect(p); print('CONNECTED')\n"
        "except OSError as e:\n"
        "    print('refused', e.errno)\n"
    )
    vault.workspace("main").write("probe.py", probe.encode())
    _code, out, err = _run("--json", "proxy", "exec", "--", "python3", "probe.py", env=on)
    doc = json.loads(out)
    assert doc["confinement"]["kind"] == "bwrap", doc
    assert doc["result"]["stdout"].startswith("refused"), (doc["result"], err)


def test_two_answers_in_one_read_are_both_read() -> None:
    """The framing of the caller: "started" and the exit code sent back to back (a quick
    command) arrive in one read; the second was once dropped with the rest of the buffer."""
    import marshal

    from avfs_git.cli.client import recv_msg as _recv_msg

    a, b = socket.socketpair()
    try:
        msgs = [marshal.dumps({"started": 1}), marshal.dumps({"code": 3})]
        a.sendall(b"".join(b"%08d" % len(m) + m for m in msgs))
        a.close()
        buf = bytearray()
        assert _recv_msg(b, buf) == {"started": 1}
        assert _recv_msg(b, buf) == {"code": 3}
        assert _recv_msg(b, buf) is None
    finally:
        b.close()


# what a served call's child runs, after the server's imports: each must import nothing
# more (a module a child imports is compiled or read, and executed, in every call)
WARM_CALLS = [
    ["--json", "status"],
    ["status"],
    ["--json", "diff"],
    ["diff"],
    ["--json", "log", "-n", "3"],
    ["log", "-n", "3"],
    ["cat", "a.txt"],
    ["--json", "cat", "a.txt"],
    ["write", "w.txt", "hello"],
    ["--json", "write", "w2.txt", "hello"],
    ["--json", "vault", "fork", "v", "f9"],
    ["vault", "fork", "v", "f10"],
    ["--json", "checkpoint", "save", "-m", "warm"],
    ["checkpoint", "save", "-m", "warm2"],
    ["ls"],
    ["--json", "stat", "a.txt"],
    ["--json", "checkpoint", "list"],
    ["cat", "nope.txt"],
]

_CHILDREN = """
import json, os, sys
from avfs_git.cli import prewarm
from avfs_git.cli.main import main
prewarm.load()
before = set(sys.modules)
report = {}
for args in json.loads(sys.argv[1]):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.dup2(null, 2)
        try:
            main(args)
        except SystemExit:
            pass
        os.write(w, json.dumps(sorted(set(sys.modules) - before)).encode())
        os._exit(0)
    os.close(w)
    data = b""
    while chunk := os.read(r, 65536):
        data += chunk
    os.waitpid(pid, 0)
    report[" ".join(args)] = json.loads(data or b"null")
print(json.dumps(report))
"""


def test_the_server_has_imported_what_a_command_imports(home: Home, vault: Vault) -> None:
    """A served call runs in a fork of the server: anything its command imports that the
    server did not (prewarm.py) is paid in every call (the policy package, opened with the
    home, once cost ~60 ms of a ~90 ms call)."""
    ws = vault.workspace("main")
    ws.write("a.txt", b"one\n")
    p = subprocess.run(
        [sys.executable, "-c", _CHILDREN, json.dumps(WARM_CALLS)],
        capture_output=True,
        env={**os.environ, "AVFS_VAULT": "v:main"},
        timeout=120,
        check=True,
    )
    report = json.loads(p.stdout)
    assert list(report) == [" ".join(a) for a in WARM_CALLS]
    assert {k: v for k, v in report.items() if v} == {}
    # and they ran: the writes, forks and checkpoints are there
    assert vault.workspace("main").read("w.txt") == b"hello"
    assert vault.has_fork("f9") and vault.has_fork("f10")


def _private_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Private_Dirty:"):
            return int(line.split()[1])
    raise AssertionError("no Private_Dirty")


def _anon_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1])
    raise AssertionError("no RssAnon")


def test_each_call_takes_the_spare_and_a_new_one_is_forked(served: Any, home: Home) -> None:
    """The server keeps one child forked ahead, the pages calls write copied (spare.py): a
    call runs in it, and once the call has answered the next spare is there, holding the
    pages that call wrote and not the rest of the server's memory; a spare that died is
    replaced by a fork at the call (the call is still served); a spare whose server is
    gone exits."""
    on, off = served
    server = _server_pid(home.path)
    assert server is not None
    _wait_for(lambda: len(_children(server)) == 1)
    (first,) = _children(server)
    time.sleep(0.5)
    held = _private_kb(first)  # (it learned nothing yet: the first call, direct, was not its)
    assert _run("--json", "status", env=on) == _run("--json", "status", env=off)
    _wait_for(lambda: _gone(first) and len(_children(server)) == 1)
    (second,) = _children(server)
    assert second != first
    # the pages the served status wrote, copied ahead (MADV_POPULATE_WRITE): MBs more than
    # the first spare held, and far from all of the server's memory
    _wait_for(lambda: _private_kb(second) > held + 1024)
    time.sleep(0.5)
    assert _private_kb(second) < _anon_kb(server) // 2
    # a spare killed from outside: the call is served all the same, by a fork at the call
    os.kill(second, signal.SIGKILL)
    _wait_for(lambda: _gone(second))
    assert _run("cat", "a.txt", env=on) == (0, b"one\n", b"")
    assert _server_pid(home.path) == server
    _wait_for(lambda: len([c for c in _children(server) if not _gone(c)]) == 1)
    (third,) = [c for c in _children(server) if not _gone(c)]
    # the server killed outright: its spare does not stay behind
    os.kill(server, signal.SIGKILL)
    _wait_for(lambda: _gone(third))


def test_ctrl_c_before_the_command_started_runs_nothing(home: Home, vault: Vault) -> None:
    """A call that came while the server was still loading waits for it; Ctrl-C then ends
    the call as a direct call's Ctrl-C does (130, "interrupted"), and the server, when it
    gets to the call, does not start the command of a caller that is gone. The server here
    is bound but not yet serving, as while it imports."""
    server = warm.Server(home.path, 60)
    lsock = server.bind()
    assert lsock is not None
    try:
        env = {**os.environ, "AVFS_SERVER": "auto", "AVFS_VAULT": "v:main"}
        for args, text in (
            (["write", "x.txt", "--stdin"], b"interrupted"),
            (["--json", "status"], b'"interrupted"'),
        ):
            p = subprocess.Popen(
                [sys.executable, "-m", "avfs_git", *args],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
            )
            conn, _ = lsock.accept()  # connected: its request is on the way
            _wait_for(lambda c=conn: bool(select_ready(c)))
            time.sleep(0.2)  # (the caller now waits for "started")
            p.send_signal(signal.SIGINT)
            assert p.wait(timeout=60) == 130
            # the server gets to the call: the caller is gone, nothing is forked (and the
            # caller's streams it held, in flight on the socket, are closed)
            assert server._start(conn) is None
            assert not server.children
            conn.close()
            out, err = p.communicate(timeout=60)
            assert text in out + err, (out, err)
        assert not vault.workspace("main").exists("x.txt")
    finally:
        server.leave(lsock)  # (closes it)


def select_ready(conn: socket.socket) -> list[Any]:
    import select

    return select.select([conn], [], [], 0)[0]


def test_served_calls_keep_the_wal_small(served: Any, home: Home, vault: Vault) -> None:
    """A served command's process, once its answer is out (the caller gone, it is not hung
    up), closes the databases it opened when one's WAL has grown past
    ``callproc.WAL_CLOSE_AT``: the WAL is written back and emptied. Left to grow, it reached
    SQLite's own checkpoint at ~4 MB, and every later call that opens the database alone
    read it whole to rebuild its index."""
    on, _off = served
    ws_dir = Path(vault.state_dir, "ws", "main")
    assert os.path.isdir(ws_dir)
    vault.close()  # this process holds no connection: the served commands are the last
    wal = ws_dir / "overlay.db-wal"
    sizes = []
    for i in range(25):
        assert _run("write", f"w{i}.txt", f"text {i}", env=on)[0] == 0
        assert _run("--json", "checkpoint", "save", "-m", f"c{i}", env=on)[0] == 0
        sizes.append(wal.stat().st_size if wal.exists() else 0)
    assert max(sizes) < 2 * callproc.WAL_CLOSE_AT, sizes  # (without: ~1.6 MB by the end)
    assert _run("cat", "w24.txt", env=on) == (0, b"text 24", b"")
    assert len(json.loads(_run("--json", "log", env=on)[1])["commits"]) >= 25


def test_a_wal_held_large_by_another_process_leaves_the_other_databases_wals_alone(
    served: Any, home: Home, vault: Vault
) -> None:
    """A process holding the fork open (an agent's API process, a mount's daemon) keeps its
    overlay's WAL past the mark: a served command writes that WAL back, and leaves the op
    log's as it is, so the next call's write appends to it rather than starting a new one
    (a sync of its header and one of its directory, on that call's path)."""
    on, _off = served
    ws = vault.workspace("main")
    for i in range(40):  # this process's connection stays open: the WAL grows past the mark
        ws.write(f"big/{i}.bin", os.urandom(8 << 10))
    wal = Path(ws.state_dir, "overlay.db-wal")
    oplog_wal = Path(vault.state_dir, "oplog.db-wal")
    assert wal.stat().st_size > callproc.WAL_CLOSE_AT
    seen = []
    for i in range(3):
        assert _run("--json", "vault", "fork", f"f{i}", env=on)[0] == 0
        _wait_for(lambda: wal.stat().st_size == 0, 10)  # written back after the answer
        st = oplog_wal.stat()
        seen.append((st.st_ino, st.st_size > 0))
        for j in range(40):
            ws.write(f"big/{j}.bin", os.urandom(8 << 10))
    assert seen[0][1] and len({ino for ino, _ in seen}) == 1, seen  # one WAL, kept and appended to
    assert [f.name for f in vault.forks() if f.name.startswith("f")] == ["f0", "f1", "f2"]


def test_a_served_callers_process_ends_without_pythons_finalization(served: Any, home: Home) -> None:
    """Once the command's exit code came, the caller ends at once (client._end): Python's
    finalization (the modules' teardown, a last collection) was a fifth of a served
    call's caller, and nothing there needs it. Its streams are flushed first; its exit
    code is the command's. (A direct call, not served, finalizes as ever.)"""
    on, off = served
    probe = (
        "import atexit, sys; atexit.register(lambda: sys.stderr.write('finalized\\n')); "
        "sys.stderr.write('before\\n'); sys.argv[1:] = {args!r}; "
        "from avfs_git.cli.client import main; sys.exit(main())"
    )
    for args, code in ((["cat", "a.txt"], 0), (["cat", "nope.txt"], 1)):
        p = subprocess.run(
            [sys.executable, "-c", probe.format(args=args)], capture_output=True, env=on, timeout=120
        )
        assert p.returncode == code, p
        assert p.stderr.startswith(b"before\n") and b"finalized" not in p.stderr, p.stderr
        assert p.stdout == (b"one\n" if code == 0 else b"")
        q = subprocess.run(
            [sys.executable, "-c", probe.format(args=args)], capture_output=True, env=off, timeout=120
        )
        assert q.returncode == code and q.stderr.endswith(b"finalized\n"), q.stderr


def test_a_served_call_s_process_lets_go_of_the_caller_s_streams_before_its_after_work(
    tmp_path: Path,
) -> None:
    """A caller reading a served command's output to its end (a pipe) sees the end once it
    has the answer, not when the command's process exits after its work for later calls;
    and that process has left the caller's working directory."""
    from avfs_git.cli.callproc import release_caller

    here = str(tmp_path)
    out_r, out_w = os.pipe()
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the call's process: the caller's stdout as its own, then work after
        try:
            for fd in (out_r, ready_r, go_w):
                os.close(fd)
            os.dup2(out_w, 1)
            os.close(out_w)
            os.chdir(here)  # the caller's working directory (a mount, say)
            os.write(1, b"answer\n")
            release_caller()
            os.write(ready_w, b"r")  # answered; now its work after the answer ...
            os.read(go_r, 1)  # ... until the test lets it end
        finally:
            os._exit(0)
    for fd in (out_w, ready_w, go_r):
        os.close(fd)
    try:
        assert os.read(ready_r, 1) == b"r"
        os.set_blocking(out_r, False)  # at the end: b""; a writer still there: BlockingIOError
        assert os.read(out_r, 4096) == b"answer\n"
        assert os.read(out_r, 4096) == b""
        assert os.waitpid(pid, os.WNOHANG) == (0, 0)  # the end came while it still worked
        assert os.readlink(f"/proc/{pid}/cwd") == "/"  # (an unmount there is not busy)
    finally:
        os.write(go_w, b"x")
        for fd in (go_w, out_r, ready_r):
            os.close(fd)
        os.waitpid(pid, 0)


_PROBED = """
import json, os, sys
from avfs_git.cli import serverprobes
from avfs_git.proxy import confine
serverprobes.probe_sandbox()
server = confine._probe_at.cache_info().misses
r, w = os.pipe()
pid = os.fork()
if pid == 0:  # a served call's process: its caller's environment, with the server's PATH
    os.close(r)
    why = confine.unavailable()
    other = os.environ["PATH"] = sys.argv[1]  # a caller whose PATH has no bwrap
    out = {"why": why, "probes": confine._probe_at.cache_info().misses - server,
           "other": confine.unavailable()}
    os.write(w, json.dumps(out).encode())
    os._exit(0)
os.close(w)
data = os.read(r, 65536)
os.waitpid(pid, 0)
print(json.dumps({"server": server, **json.loads(data)}))
"""


def test_a_served_call_finds_bubblewrap_probed_by_the_server_for_its_path(tmp_path: Path) -> None:
    """The resident server probes bubblewrap once (a sandbox of its own) before it forks
    calls: a call that plans a sandbox (the first `proxy exec` on a fork that is not
    mounted) runs none of its own. bwrap is looked for on the call's own PATH: one where
    there is none gets no sandbox, never the server's answer."""
    _need_bwrap()
    empty = tmp_path / "bin"
    empty.mkdir()
    r = subprocess.run([sys.executable, "-c", _PROBED, str(empty)], capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr.decode()
    got = json.loads(r.stdout)
    assert got["server"] == 1 and got["why"] is None
    assert got["probes"] == 0, got  # no bwrap run in the call's process
    assert got["other"] == "bubblewrap is not installed (the `bwrap` program; Debian package `bubblewrap`)"


def test_server_stop_returns_once_the_commands_it_runs_have_ended(
    served: Any, home: Home, vault: Vault
) -> None:
    """`avfs server stop` says the commands it runs finish first: it returns once nothing
    of the server holds the home (a script that removes the home right after, as the demo
    does, found its file system busy while a command still finished its work)."""
    on, _off = served
    p = subprocess.Popen(
        [sys.executable, "-m", "avfs_git", "write", "late.txt", "--stdin"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=on,
    )
    assert p.stdin is not None
    pipe = os.readlink(f"/proc/self/fd/{p.stdin.fileno()}")
    _wait_for(lambda: _reader(home.path, pipe) is not None)  # the served command runs
    child = _reader(home.path, pipe)
    assert child is not None
    stop = subprocess.Popen(
        [sys.executable, "-m", "avfs_git", "server", "stop"], env=on, stdout=subprocess.DEVNULL
    )
    time.sleep(1.0)
    assert stop.poll() is None, "server stop returned while a command it ran was still running"
    p.stdin.write(b"written before the stop\n")
    p.stdin.close()
    assert p.wait(60) == 0
    assert stop.wait(60) == 0
    assert _gone(child) and not _answers(home.path)
    assert vault.workspace("main").read("late.txt") == b"written before the stop\n"


def test_a_server_started_from_a_directory_holding_a_package_named_avfs_git_runs_avfs(
    home: Home, vault: Vault, tmp_path: Path
) -> None:
    """The server a first call starts in the background is started in the caller's working
    directory; `python -m` would put that directory first on sys.path, so a package named
    `avfs_git` there (a file a confined command wrote in a mount, a checkout of another avfs)
    was imported and run by the server, outside any sandbox. It is not: the server runs this
    avfs and answers the next call."""
    planted = tmp_path / "cwd" / "avfs_git"
    planted.mkdir(parents=True)
    marker = tmp_path / "ran"
    (planted / "__init__.py").write_text(f"open({str(marker)!r}, 'w').write('planted code ran')\n")
    on = {**os.environ, "AVFS_SERVER": "auto"}
    # the console script, as a user runs it (`python -m avfs_git` there would itself import
    # the planted package: Python's own rule for -m, not avfs's)
    avfs = os.path.join(os.path.dirname(sys.executable), "avfs")

    def call(*args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([avfs, *args], capture_output=True, env=on, cwd=planted.parent, timeout=120)

    call("status")  # direct, and starts a server for the next call
    try:
        _wait_for(lambda: _answers(home.path))
        p = call("--json", "vault", "info", "v")
        assert p.returncode == 0, p.stderr
        assert json.loads(p.stdout)["kind"] == "vault_info"
        assert not marker.exists()
    finally:
        _stop_server(home.path)


def test_server_stop_finds_the_server_by_its_socket_not_its_pid_file(served: Any, home: Home) -> None:
    """`avfs server stop` asks the socket which process listens there (SO_PEERCRED): a
    socket that answered before its server had written the pid file (CI: `server start`
    returned, `server stop` right after found no pid and stopped nothing) or a pid file a
    second server overwrote is not what it goes by."""
    on, _off = served
    pid = _server_pid(home.path)
    assert pid is not None
    Path(home.path, warm.RUN_DIR, warm.PID_FILE).unlink()
    p = subprocess.run(
        [sys.executable, "-m", "avfs_git", "--json", "server", "stop"],
        capture_output=True,
        env=on,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["running"] is False and not _answers(home.path)
    _wait_for(lambda: _gone(pid))  # it was signalled (its socket is gone; its exit may lag)


def test_servers_started_together_leave_one_named_by_the_pid_file(home: Home, tmp_path: Path) -> None:
    """A direct call starts a server for the next call and `avfs server start` another at
    once: one of them binds the socket (the other finds it and ends), and the pid file
    names the one listening."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-P", "-m", "avfs_git.cli.resident", "--home", home.path, "--idle", "60"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(6)
    ]
    try:
        _wait_for(lambda: _answers(home.path))
        _wait_for(lambda: sum(p.poll() is None for p in procs) == 1)
        (alive,) = [p.pid for p in procs if p.poll() is None]
        s = socket.socket(socket.AF_UNIX)
        s.connect(warm.socket_path(home.path))
        listener = struct.unpack("3i", s.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))[0]
        s.close()
        assert listener == alive == _server_pid(home.path)
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
            p.wait(60)


def test_server_status_and_stop_start_no_server(home: Home, vault: Vault) -> None:
    """Every call that finds no server starts one for the next call, but `server status`
    and `server stop` did too: after a stop, `server status` answered "running" (the server
    it had just started itself), and a stop that found none left one behind."""
    env = {**os.environ, "AVFS_SERVER": "auto"}
    for args in (("server", "status"), ("server", "stop"), ("--json", "server", "status")):
        code, out, err = _run(*args, env=env)
        assert code == 0, err
        if args[0] == "--json":
            assert json.loads(out)["running"] is False, out
        time.sleep(1)  # a server spawned in the background would be listening by now
        assert not _answers(home.path), args
    _run("status", env=env)  # any other call starts one, as before
    try:
        _wait_for(lambda: _answers(home.path))
    finally:
        _stop_server(home.path)
