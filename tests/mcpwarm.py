"""`avfs mcp` servers for the tests, forked from a process that has the MCP SDK imported.

An `avfs mcp` start is ~1.2-1.4 s of CPU, nearly all of it the SDK's import (its pydantic
models: suitetime13, suitetime22), which no part of the SDK can be had without; the suite
started ~30 such servers a run, a test each. Here a test process keeps one *warm* process
(started at its first server, ended with it) that has imported the SDK's modules the server
uses and nothing of avfs; each server is a fork of it that then runs ``python -m avfs_git
ARGS`` as that command does (``runpy``, ``sys.argv``), with the caller's environment, working
directory and stdio, so avfs's own modules are imported in the server, from disk, as in a
process of its own. What the client spawns is a small launcher (``python -I -S`` this file:
~10 ms) that hands its stdin, stdout and stderr to the warm process, passes on SIGTERM and
SIGINT, and exits as the server did, so the MCP SDK's ``stdio_client`` and ``subprocess``
drive it as they drive the server itself.

Each test file that uses it still starts one server as a real ``python -m avfs_git mcp``
process (test_mcp.py: the malformed-message and ``--json`` tests; test_mcp_badinput.py: the
exec-output test), and :func:`forks` says how many servers the warm process made, for a
test to check its server was one (suitetime23). :func:`script` runs ``python -c CODE ARGS``
there the same way: an MCP client whose SDK import the warm process already holds
(test_expect's MCP writers, suitetime26)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading

# the SDK's modules avfs_git/mcp/server.py imports (and what they import): the warm part
_WARM = (
    "asyncio",
    "concurrent.futures",
    "anyio",
    "pydantic",
    "mcp_types",
    "mcp.server.lowlevel",
    "mcp.server.stdio",
    "mcp.shared.message",
)

# the variables that decide where the interpreter imports from (its other settings, such as
# PYTHONUNBUFFERED, change nothing the server does: its transport writes and flushes its own)
_IMPORT_VARS = ("PYTHONPATH", "PYTHONHOME", "PYTHONSAFEPATH", "PYTHONNOUSERSITE", "PYTHONUSERBASE")

_lock = threading.Lock()
_zygote: tuple[subprocess.Popen[bytes], str] | None = None


def command(*args: str) -> list[str]:
    """The command line that runs ``python -m avfs_git ARGS`` as a fork of this process's
    warm process (started here, once, the first time)."""
    return [sys.executable, "-I", "-S", os.path.abspath(__file__), "launch", _socket(), *args]


def script(code: str, *args: str) -> list[str]:
    """The command line that runs ``python -c CODE ARGS`` as a fork of this process's warm
    process: an MCP client (the SDK's client modules are the server's, imported there),
    whose ``sys.argv``, environment, working directory and stdio are the caller's, as in a
    process of its own (test_expect's MCP writers: suitetime26)."""
    return [sys.executable, "-I", "-S", os.path.abspath(__file__), "launch-code", _socket(), code, *args]


def forks() -> int:
    """How many servers this process's warm process has forked (0: none started yet)."""
    if _zygote is None:
        return 0
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as s:
        s.connect(_zygote[1])
        s.sendall(b"count\n")
        return int(_recv_line(s))


def end() -> None:
    """End this process's warm process, if any (its servers go on until their clients close)."""
    global _zygote
    with _lock:
        if _zygote is None:
            return
        proc, _ = _zygote
        _zygote = None
    assert proc.stdin is not None
    proc.stdin.close()  # its end of file: it exits
    proc.wait(timeout=60)  # (it removes its socket and directory)


def _socket() -> str:
    global _zygote
    with _lock:
        if _zygote is not None and _zygote[0].poll() is None:
            return _zygote[1]
        # in /tmp, not TMPDIR (a test's own directory, and a socket's path is at most 107 bytes)
        path = os.path.join(tempfile.mkdtemp(prefix="avfs-mcpwarm-", dir="/tmp"), "s")
        proc = subprocess.Popen(
            [sys.executable, "-P", os.path.abspath(__file__), "zygote", path],
            stdin=subprocess.PIPE,  # held by this process: its end of file ends the zygote
            stdout=subprocess.PIPE,
            stderr=None,
            start_new_session=True,  # a test's killing of a process group never reaches it
        )
        assert proc.stdout is not None
        ready = proc.stdout.readline()
        proc.stdout.close()
        if ready != b"ready\n":
            raise RuntimeError(f"the warm MCP process did not start: {ready!r}")
        _zygote = (proc, path)
        return path


def _recv_line(s: socket.socket) -> str:
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = s.recv(4096)
        if not chunk:
            raise EOFError("the warm MCP process closed the connection")
        buf += chunk
    return buf.decode().strip()


# -- the warm process ------------------------------------------------------------------------
def _zygote_main(path: str) -> None:
    import importlib
    import select

    for name in _WARM:
        importlib.import_module(name)
    assert not any(m == "avfs_git" or m.startswith("avfs_git.") for m in sys.modules), "avfs imported warm"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(path)
    os.chmod(path, 0o600)
    listener.listen(64)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    # what decides where Python imports from: a request whose environment says otherwise
    # is declined, and its launcher runs the command itself (as a process of its own)
    imports = {k: os.environ.get(k) for k in _IMPORT_VARS}
    waiting: dict[int, tuple[int, socket.socket]] = {}  # pidfd -> (pid, its launcher's connection)
    made = 0
    while True:
        ready, _, _ = select.select([0, listener, *waiting], [], [])
        if 0 in ready and not os.read(0, 4096):  # the test process let go (or ended)
            listener.close()
            os.unlink(path)
            os.rmdir(os.path.dirname(path))
            return
        for fd in ready:
            if fd in waiting:
                pid, conn = waiting.pop(fd)
                _, status = os.waitpid(pid, 0)
                os.close(fd)
                try:
                    conn.sendall(b"%d\n" % os.waitstatus_to_exitcode(status))
                except OSError:
                    pass
                conn.close()
        if listener not in ready:
            continue
        conn, _ = listener.accept()
        msg, fds, _, _ = socket.recv_fds(conn, 1 << 20, 3)
        if msg == b"count\n":
            conn.sendall(b"%d\n" % made)
            conn.close()
            continue
        request = json.loads(msg)
        if any(request["env"].get(k) != v for k, v in imports.items()):
            for fd in fds:
                os.close(fd)
            conn.sendall(b"fallback\n")
            conn.close()
            continue
        pid = os.fork()
        if pid == 0:
            listener.close()
            conn.close()
            for w in waiting.values():
                w[1].close()
            _serve(request, fds)  # never returns
        made += 1
        for fd in fds:
            os.close(fd)
        conn.sendall(b"%d\n" % pid)
        waiting[os.pidfd_open(pid)] = (pid, conn)


def _serve(request: dict[str, object], fds: list[int]) -> None:
    import runpy

    code = 1
    try:
        os.setsid()
        for i, fd in enumerate(fds):
            os.dup2(fd, i)
            os.close(fd)
        os.closerange(3, 4096)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        os.environ.clear()
        os.environ.update(request["env"])  # type: ignore[arg-type]
        os.chdir(str(request["cwd"]))
        argv = list(request["argv"])  # type: ignore[call-overload]
        sys.argv = [argv[0], *argv[1:]]
        if request.get("code") is not None:  # `python -c CODE ARGS`: its directory first, as ''
            sys.path[0:0] = [""]
            exec(compile(str(request["code"]), "<string>", "exec"), {"__name__": "__main__"})
        else:
            sys.path[0:0] = [str(request["cwd"])]  # as `python -m` puts its directory first
            runpy.run_module("avfs_git", run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if exc.code is not None and not isinstance(exc.code, int):
            print(exc.code, file=sys.stderr)
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        os._exit(code)


# -- the launcher the client spawns ----------------------------------------------------------
def _launch(path: str, args: list[str], code: str | None = None) -> int:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect(path)
    main = os.path.join(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "avfs_git", "__main__.py"
    )
    request = {
        "argv": [main if code is None else "-c", *args],
        "code": code,
        "env": dict(os.environ),
        "cwd": os.getcwd(),
    }
    socket.send_fds(s, [json.dumps(request).encode()], [0, 1, 2])
    answer = _recv_line(s)
    if answer == "fallback":  # (another PYTHONPATH or PYTHONHOME: the command, as it is run)
        s.close()
        run = ["-m", "avfs_git"] if code is None else ["-c", code]
        os.execv(sys.executable, [sys.executable, *run, *args])
    pid = int(answer)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)  # the server holds the pipes now: our copies would hide their ends
    os.dup2(null, 1)

    def forward(signum: int, _frame: object) -> None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)
    code = int(_recv_line(s))
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    if sys.argv[1] == "zygote":
        _zygote_main(sys.argv[2])
    elif sys.argv[1] == "launch-code":
        sys.exit(_launch(sys.argv[2], sys.argv[4:], code=sys.argv[3]))
    else:
        sys.exit(_launch(sys.argv[2], sys.argv[3:]))
