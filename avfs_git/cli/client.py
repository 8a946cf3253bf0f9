"""The console script's first step: hand the call to the home's resident server.

An agent pays this module's start-up on every command, and a served call needs nothing
but the interpreter's built-in modules: ``posix`` (not :mod:`os`, whose import with
``collections.abc`` is ~1.2 ms of a ~17 ms budget under ``python -S``), ``_socket``,
``_signal`` and ``marshal``. So :func:`main`, which the ``-S`` console script
(:mod:`.launcher`) calls, tries the server (:func:`served`) before anything else is
imported, and hands whatever it does not answer (the agent hooks, which have their own
fast path; no server; a server of other code) to :func:`.execopts.main`. `proxy exec` goes
to a live mount's daemon the same way, through :func:`.execclient.fast`.
No ``from __future__`` either: the annotations are strings.

The protocol is :mod:`.resident`'s (the environment is sent as bytes, as
``posix.environ`` holds it).
"""

import marshal
import posix
import sys

TYPE_CHECKING = False  # not from typing (~5 ms to import): see avfs_git/__init__.py
if TYPE_CHECKING:
    from typing import Any

PROTOCOL = 1  # (both ends are the same code: the stamp)
# `proxy exec` and `hook` have fast paths of their own (execopts.fast_main); `proxy exec`
# on a fork that is not mounted is served (main)
OWN_PATHS = (("proxy", "exec"), ("hook",))
# commands whose own work is git's long, CPU-bound part (gc's repack): with no server to
# answer, the call runs here and a server for the next call starts only after it (its
# start-up, ~0.5 s of CPU importing avfs, took a core from the repack: a cold `avfs gc`
# of the bench's vault was 1.56-1.67x `git gc` with AVFS_SERVER=off, 1.83-2.28x as a
# user's first call); and the process ends once its answer is out and its handles are
# closed (:func:`_end_alone`), without Python's finalization (67-108 ms of a gc's
# process after its answer). docs/benchmarks.md, "Cold gc" in the ninth round. The same
# for the transfers, whose long part is git's too (index-pack, pack-objects): a user's
# first push, fetch or clone in a home no server answers ("Cold gc's imports, and a push's
# ancestry check in process" in the tenth round)
LATE_START = (("gc",), ("push",), ("fetch",), ("vault", "clone"))


def _rest(args: "list[str]") -> "tuple[str | None, list[str]]":
    """``--home``'s value and the arguments after the global options."""
    home = None
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--json":
            i += 1
        elif a in ("--home", "--vault") and i + 1 < len(args):
            if a == "--home":
                home = args[i + 1]
            i += 2
        elif a.startswith(("--home=", "--vault=")):
            if a.startswith("--home="):
                home = a[7:]
            i += 1
        else:
            break
    return home, args[i:]


def _wants_json(args: "list[str]") -> bool:
    """As the click CLI reads it (cli/main.py): a ``--json`` before any ``--``."""
    for a in args:
        if a == "--":
            return False
        if a == "--json":
            return True
    return False


def _decode(b: bytes) -> str:
    return b.decode(sys.getfilesystemencoding(), "surrogateescape")


def home_dir(given: "str | None") -> str:
    """The home a call acts on, as :func:`..core.settings.home_path` finds it (not
    normalised: the kernel resolves it)."""
    env = posix.environ
    if not given and env.get(b"AVFS_HOME"):
        given = _decode(env[b"AVFS_HOME"])
    if not given:
        home = _decode(env[b"HOME"]) if b"HOME" in env else None
        if home is None:
            import pwd

            home = pwd.getpwuid(posix.getuid()).pw_dir
        given = home.rstrip("/") + "/.avfs"
    if not given.startswith("/"):
        given = posix.getcwd() + "/" + given
    return given


def package_dir() -> str:
    """The ``avfs_git`` package directory this module belongs to, as ``os.path.abspath``
    would give it (without importing :mod:`os`: the console script's served path does not)."""
    path = __file__ if __file__.startswith("/") else posix.getcwd() + "/" + __file__
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
        else:
            parts.append(part)
    return "/" + "/".join(parts[:-2])


def stamp() -> str:
    """The code a call runs, as the caller sends it: this interpreter (path and version) and
    the avfs package's directory. Edits of the files there are the server's to see: it
    watches them from before it imports them (ops/codewatch.py ``CodeWatch``), so the caller
    stats nothing (a stat of each of ~200 files cost ~1 ms a call)."""
    return f"{sys.executable} {sys.version_info[:3]} {package_dir()}"


ANSWER_MAX = 65536  # the server's answers are a few dozen bytes (as launcher.c reads them)


class NotAnswer(ValueError):
    """What the server sent is not an answer: not a length, cut short, not a dict."""


def _end_of(data: bytes, i: int, depth: int = 0) -> int:
    """Where the marshal object at ``data[i]`` ends; :class:`NotAnswer` when a tuple, list
    or set claims more items than bytes are left (each takes one at least), or for what
    plain data never holds (code objects). marshal allocates a claimed count before it
    reads the items: a bit flipped in a 16-byte answer (``[`` with a count of 2 billion)
    cost 4 s of CPU and ~16 GB of address space before "too short" (MemoryError, not a
    "not understood", under a limit on it)."""
    if depth > 64 or i >= len(data):
        raise NotAnswer("cut short")
    code, i = data[i] & 0x7F, i + 1
    if code in b"0NFTS.":
        return i
    if code in b"ir":
        return i + 4
    if code in b"gy":
        return i + (8 if code == 103 else 16)
    if code in b"zZf":  # short strings, and old floats as text: one byte of length
        return i + 1 + (data[i] if i < len(data) else 0)
    if code == 120:  # 'x': an old complex, two of those
        i += 1 + (data[i] if i < len(data) else 0)
        return i + 1 + (data[i] if i < len(data) else 0)
    n = int.from_bytes(data[i : i + 4], "little", signed=True)
    if code in b"stuaA":
        return i + 4 + n
    if code == 108:  # 'l': n digits of 2 bytes
        return i + 4 + 2 * abs(n)
    if code == 41:  # ')': a small tuple, its count one byte
        n, i = (data[i] if i < len(data) else 0), i + 1
    elif code in b"([<>":
        i += 4
        if n < 0 or n > len(data) - i:
            raise NotAnswer("a count past the data")
    elif code == 123:  # '{': pairs up to a '0'
        while i < len(data) and data[i] & 0x7F != 48:
            i = _end_of(data, _end_of(data, i, depth + 1), depth + 1)
        return i + 1
    else:
        raise NotAnswer(f"marshal type {code!r} in an answer")
    for _ in range(n):
        i = _end_of(data, i, depth + 1)
    return i


def recv_msg(sock: "Any", buf: bytearray) -> "dict[str, Any] | None":
    """The next length-prefixed marshal message from ``sock``; ``buf`` keeps what was read
    past it (the server's two answers may come in one read). None when the stream ends
    before any byte of it; raises :class:`NotAnswer` for anything else that is not one."""
    while True:
        if len(buf) >= 8:
            if not all(48 <= c <= 57 for c in buf[:8]) or int(buf[:8]) > ANSWER_MAX:
                raise NotAnswer("not a length")
            want = 8 + int(buf[:8])
            if len(buf) >= want:
                try:
                    _end_of(bytes(buf[8:want]), 0)  # no count marshal would allocate blindly
                    got = marshal.loads(bytes(buf[8:want]))
                except (ValueError, EOFError, TypeError) as exc:
                    raise NotAnswer(str(exc)) from None
                del buf[:want]
                if not isinstance(got, dict):
                    raise NotAnswer("not a dict")
                return got
        try:
            data = sock.recv(65536)
        except InterruptedError:
            raise
        except OSError:
            if buf:
                raise NotAnswer("reset") from None
            raise
        if not data:
            if buf:
                raise NotAnswer("cut short")
            return None
        buf += data


def _int(v: "Any") -> bool:
    return type(v) is int and -(2**31) <= v < 2**31  # (not a bool: marshal's 'i', as launcher.c reads it)


NOT_UNDERSTOOD = "avfs: the warm server's answer was not understood; the call may have run (AVFS_SERVER=off runs without it)\n"


def served(args: "list[str]", *, start: bool = True) -> "int | None":
    """Run the call in the home's resident server; its exit code, or None when none
    answers (the caller runs it, and a server is started for the next call, unless not
    ``start``: see :func:`start_for_next`) or it asks to fall back. ``AVFS_SERVER=off``:
    never."""
    if posix.environ.get(b"AVFS_SERVER") == b"off":
        return None
    given, _rest_args = _rest(args)
    home = home_dir(given)
    import _socket

    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.connect(home + "/run/cli.sock")
    except OSError:
        sock.close()
        if start:
            start_for_next(home)
        return None
    # the request carries the environment (its secrets) and this process's stdio: only to a
    # server of this user (a --home another user can write, a socket planted there)
    cred = sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, 12)
    if int.from_bytes(cred[4:8], sys.byteorder, signed=True) != posix.getuid():
        sock.close()
        return None
    try:
        mask = posix.umask(0o022)  # the call's, as a direct call has it (read, put back)
        posix.umask(mask)
        req = marshal.dumps(
            {
                "v": PROTOCOL,
                "stamp": stamp(),
                "argv": args,
                "cwd": posix.getcwd(),
                "umask": mask,
                "env": dict(posix.environ),
            }
        )
        fds = b"".join(fd.to_bytes(4, sys.byteorder) for fd in (0, 1, 2))
        buf = bytearray()
        try:
            sock.sendmsg([b"%08d" % len(req) + req], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, fds)])
            first = recv_msg(sock, buf)
        except KeyboardInterrupt:  # before the command started (the server still loading)
            first = _already(sock, buf)
            if first is not None and "started" in first:  # as it came: the started command's
                return _wait(sock, buf, first["started"], _signal_int())
            sock.close()  # the server sees the caller gone and does not start it
            from .execopts import interrupted

            return interrupted(_wants_json(args))
        except NotAnswer:
            # cut short, or not one: whether the command started is not known, and running
            # it again could run it twice
            sys.stderr.write(NOT_UNDERSTOOD)
            return 70
        except OSError:
            # reset before any answer: a server ending (its code changed, its idle time
            # out) with this connection still queued, the request unread. It starts a
            # command only once it has read the whole request, and the command's process
            # then holds the connection: nothing ran, so run it here
            return None
        started = None
        try:
            if first is None:
                return None  # nothing ran: run it here
            if "started" not in first and not _int(first.get("code")):
                if "fallback" in first:
                    return None  # nothing ran: run it here
                sys.stderr.write(NOT_UNDERSTOOD)
                return 70
            if "started" not in first:  # the command's own answer came first: it has ended
                return int(first["code"])
            started = first["started"]
            return _wait(sock, buf, started)
        except KeyboardInterrupt:
            # Ctrl-C once the first answer was read, before the relay was in place (it was
            # a KeyboardInterrupt out of this process: a traceback, killed by SIGINT, the
            # command hung up; tests/test_cliserver.py): the command's, relayed, once this
            # process knows it started; else as before its start (the server hangs up a
            # command whose caller went away)
            if started is None:
                sock.close()
                from .execopts import interrupted

                return interrupted(_wants_json(args))
            return _wait(sock, buf, started, _signal_int())
    finally:
        sock.close()


def start_for_next(home: str) -> None:
    """Start a resident server for ``home`` (in the background) when it is a directory and
    none answers there."""
    import _socket

    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.connect(home + "/run/cli.sock")
        return  # one answers (started meanwhile)
    except OSError:
        pass
    finally:
        sock.close()
    try:
        isdir = posix.stat(home).st_mode & 0o170000 == 0o040000
    except OSError:
        isdir = False
    if isdir:
        start(home)  # for the next call


def start(home: str) -> None:
    """Start a resident server (:mod:`.resident`) for ``home`` in the background (a session
    of its own, no terminal, stdio on /dev/null); returns at once."""
    import os

    null = os.open(os.devnull, os.O_RDWR)
    try:
        os.posix_spawn(
            sys.executable,
            # -P: the working directory (the caller's: a mount a confined command wrote, a
            # checkout of another avfs) is not put first on sys.path, where `-m` puts it: a
            # package `avfs_git` there would be what the server imports and runs
            [sys.executable, "-P", "-m", "avfs_git.cli.resident", "--home", home],
            dict(os.environ),
            file_actions=[
                (os.POSIX_SPAWN_DUP2, null, 0),
                (os.POSIX_SPAWN_DUP2, null, 1),
                (os.POSIX_SPAWN_DUP2, null, 2),
            ],
            setsid=True,
        )
    except OSError:
        pass  # no server: calls run directly
    finally:
        os.close(null)


def _signal_int() -> int:
    import _signal  # type: ignore[import-not-found]

    return int(_signal.SIGINT)


def _already(sock: "Any", buf: bytearray) -> "dict[str, Any] | None":
    """The answer that came already when a Ctrl-C broke the wait for it, else None. A
    signal pending as the wait wakes makes the kernel's recv answer EINTR, not the data:
    a Ctrl-C as "started" came (the caller not run yet, at load) was taken for one before
    the start, the caller said "interrupted" and the command was hung up rather than
    interrupted (the native program's ``next_answer`` reads the same way)."""
    sock.setblocking(False)
    try:
        return recv_msg(sock, buf)
    except (OSError, NotAnswer):  # (nothing more now, or not whole: not started, to this reading)
        return None
    finally:
        sock.setblocking(True)


def _wait(sock: "Any", buf: bytearray, started: "Any", pending: int = 0) -> int:
    """Wait for the started command's exit code, passing on Ctrl-C, SIGTERM and SIGHUP
    (and ``pending``, a signal that came before the relay was in place)."""
    import _signal  # type: ignore[import-not-found]

    # the command's process, signalled from here (at once; the server relays what this
    # cannot send: its pid cannot be reused before the server has reaped it, which it does
    # only after sending "started")
    try:
        target = [posix.pidfd_open(int(started))]
    except (OSError, ValueError, TypeError):
        target = [-1]

    def relay(sig: int, _frame: object) -> None:
        if target[0] >= 0:
            try:
                _signal.pidfd_send_signal(target[0], sig)
                return
            except OSError:
                pass  # it has ended
        try:
            sock.send(b"S" + bytes([sig]))
        except OSError:
            pass

    for sig in (_signal.SIGINT, _signal.SIGTERM, _signal.SIGHUP):
        _signal.signal(sig, relay)
    if pending:
        relay(pending, None)
    while True:
        try:
            done = recv_msg(sock, buf)
            break
        except InterruptedError:
            continue
        except (NotAnswer, OSError):
            done = None
            break
    if target[0] >= 0:
        fd, target[0] = target[0], -1
        posix.close(fd)
    if done is None or not _int(done.get("code")):
        sys.stderr.write(
            "avfs: the warm server went away while the command ran (AVFS_SERVER=off runs without it)\n"
        )
        return 70
    return int(done["code"])


def _end(code: int) -> int:
    """A served call is over once its exit code came: this process ends at once, without
    Python's finalization (the modules' teardown, a last collection), which was ~6 M
    instructions of the ~31 M a served call's caller ran (callgrind; a fifth of
    ``python -S -c pass``, which pays it too). Nothing here needs it: the command wrote
    through its own process, this one registered no ``atexit`` handler and started no
    thread; what it may have written on its own streams is flushed first."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass
    posix._exit(code)
    return code  # pragma: no cover - (not reached)


def _end_alone(code: int) -> int:
    """A direct call's process that ran its command with :func:`.execopts.run_closed` (what
    it left for after its answer done, its databases and git handles closed): it ends as
    :func:`_end` does, unless a thread of its own is still running (Python's exit would
    wait for it; then it ends the ordinary way)."""
    threading = sys.modules.get("threading")
    if threading is not None and threading.active_count() > 1:
        return code
    return _end(code)


def main() -> int:
    """The console script (:mod:`.launcher`, pip's, ``python -m avfs_git``): this
    process' arguments, served when a server answers, else :func:`.execopts.main`."""
    args = sys.argv[1:]
    _home, rest = _rest(args)
    if rest[:2] == ["proxy", "exec"]:
        # a live mount's daemon answers it, this process ending there (execclient.fast)
        from .execclient import fast, names_fork

        try:
            fast(args, home_dir)
        except (Exception, KeyboardInterrupt) as exc:
            from .execopts import after_remote

            return after_remote(args, exc)
        if names_fork(args):
            # the fork it names is not mounted (or its daemon left the call to its caller):
            # the resident server runs it with avfs loaded, so that the mount daemon the
            # call starts (proxy/premount.py) is started ~30 ms in, not after this process
            # has imported avfs (~0.2-0.3 s)
            code = served(args, start=False)
            if code is not None:
                return _end(code)
            from .execopts import main as full

            # run here; a server for the next call only after: its start-up (~0.5 s of CPU
            # importing avfs) would otherwise compete with this call's mount daemon
            code = full()
            if posix.environ.get(b"AVFS_SERVER") != b"off":
                start_for_next(home_dir(_home))
            return code
    elif any(tuple(rest[: len(p)]) == p for p in LATE_START):
        code = served(args, start=False)
        if code is not None:
            return _end(code)
        from .execopts import run_closed

        code = run_closed(args)
        if posix.environ.get(b"AVFS_SERVER") != b"off":
            start_for_next(home_dir(_home))
        return _end_alone(code)
    elif not any(tuple(rest[: len(p)]) == p for p in OWN_PATHS):
        # `avfs server status|stop` that finds none starts none: status then said "running"
        # (the one this call started), and a stop left a server behind it
        code = served(args, start=rest[:1] != ["server"])
        if code is not None:
            return _end(code)
    from .execopts import main as full

    return full()
