"""`proxy exec` handed to a live mount's daemon, from the console script's first step.

A warm `proxy exec` is answered by the fork's mount daemon (:mod:`avfs_git.proxy.server`,
protocol 2), which parses the arguments and runs the command; the calling process only
finds the daemon, sends the arguments and environment, waits and prints the answer. It
does so with the interpreter's built-in modules alone (``posix``, ``_socket``,
``_signal``, ``marshal``), as the resident server's client does (:mod:`.client`), which
calls :func:`fast` before anything else is imported: through :mod:`.execopts` the same
call imported :mod:`os`, the registry, the error classes and the settings first (~4 ms
of a ~12 ms process on a quiet machine, twice that under load).

What :func:`fast` does not take (no ``--vault VAULT:FORK`` nor ``AVFS_VAULT`` naming a fork:
the fork is the mount holding the current directory, which the registry finds; no exec
file; a daemon that is gone or not ours; its ``fallback``) returns None, and
:mod:`.execopts` runs the call as before. :mod:`.execopts` talks to the daemon through
:func:`talk` too. A daemon that dies before it answers raises :class:`NoAnswer`: the
caller prints the envelope that says so (:func:`.execopts.after_remote`).
"""

import marshal
import posix
import sys

TYPE_CHECKING = False  # not from typing (see avfs_git/__init__.py)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


class NoAnswer(Exception):
    """The daemon took the request and ended without an answer (killed with its mount)."""


def _decode(b: bytes) -> str:
    return b.decode(sys.getfilesystemencoding(), "surrogateescape")


def global_options(args: "list[str]") -> "tuple[dict[str, Any], list[str]]":
    """``--home``, ``--vault`` and ``--json`` before the command (``AVFS_HOME`` and
    ``AVFS_VAULT`` when not given), and the arguments after them: as the click CLI reads
    them (cli/main.py)."""
    env = posix.environ
    out: dict[str, Any] = {
        "home": _decode(env[b"AVFS_HOME"]) if b"AVFS_HOME" in env else None,
        "vault": _decode(env[b"AVFS_VAULT"]) if b"AVFS_VAULT" in env else None,
        "json": False,
    }
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--json":
            out["json"] = True
            i += 1
        elif a in ("--home", "--vault") and i + 1 < len(args):
            out[a[2:]] = args[i + 1]
            i += 2
        elif a.startswith(("--home=", "--vault=")):
            k, _, v = a.partition("=")
            out[k[2:]] = v
            i += 1
        else:
            break
    return out, args[i:]


def fork_of(spec: "str | None") -> "tuple[str, str] | None":
    """(vault, fork) of a ``VAULT:FORK`` spec that names both; None for anything else (no
    spec, a vault alone: its default fork lives in its config; a revision)."""
    if not spec:
        return None
    vault, _, fork = spec.partition(":")
    if not vault or not fork or "@" in fork or "/" in vault or vault.startswith("."):
        return None
    return vault, fork


def names_fork(args: "list[str]") -> bool:
    """Whether `avfs ... proxy exec` ``args`` name their fork (``--vault VAULT:FORK`` or
    ``AVFS_VAULT``): the call :func:`fast` looked for a live mount of."""
    return fork_of(global_options(args)[0]["vault"]) is not None


def read_exec(home: str, vault: str, fork: str) -> "tuple[str, int, str, float] | None":
    """The exec file a live read-write mount of ``vault:fork`` keeps beside its registry
    record (``<vault>/avfs/mounts/<fork>.exec``, see :func:`..core.vaults.registry.read_exec`,
    which this reads the same way): (socket name, daemon pid, mount point, when the file was
    written); None when there is none."""
    name = fork.replace("%", "%25").replace("/", "%2F")  # (registry.fs_name)
    path = f"{home}/vaults/{vault}.git/avfs/mounts/{name}.exec"
    try:
        fd = posix.open(path, posix.O_RDONLY | posix.O_CLOEXEC)
    except OSError:
        return None
    try:
        data = posix.read(fd, 65536)
        written = posix.fstat(fd).st_mtime
    except OSError:
        return None
    finally:
        posix.close(fd)
    sock, _, rest = _decode(data).partition("\n")
    pid, _, mountpoint = rest.partition("\n")
    if not sock or not pid.isdigit():
        return None
    return sock, int(pid), mountpoint[:-1] if mountpoint.endswith("\n") else mountpoint, written


def with_cwd(rest: "list[str]", mountpoint: str) -> "list[str]":
    """``rest`` (`proxy exec`'s arguments) with ``--cwd`` set to the current directory, as
    a path in the fork, when it is inside the fork's ``mountpoint`` and no ``--cwd`` was
    given: a command run from a directory of a mounted fork runs in that directory, as it
    would without avfs."""
    head = rest[: rest.index("--")] if "--" in rest else rest
    if not mountpoint or any(a == "--cwd" or a.startswith("--cwd=") for a in head):
        return rest
    try:
        here = posix.getcwd()
    except OSError:
        return rest
    mp = mountpoint.rstrip("/") or "/"
    if here == mp or not here.startswith(mp.rstrip("/") + "/"):
        return rest
    return ["--cwd", here[len(mp.rstrip("/")) + 1 :], *rest]


def talk(
    name: str,
    daemon_pid: int,
    rest: "list[str]",
    json_mode: bool,
    env: "dict[str, str]",
    written: "float | None" = None,
) -> "dict[str, Any] | None":
    """Send `proxy exec`'s arguments ``rest`` to the daemon listening at ``name`` and wait
    for its answer (signals of this process passed on meanwhile). None when there is no
    daemon to ask (gone, going, or not the one the exec file names, running as us, started
    before the file was ``written``): the caller runs the call itself. Raises
    :class:`NoAnswer` when it took the request and ended without answering."""
    import _socket

    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.connect("\0" + name)
        # an abstract name has no permissions: after a daemon died, anyone could bind it.
        # Talk only to the daemon the exec file names, running as us.
        cred = sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, 12)
        pid, uid = (int.from_bytes(cred[i : i + 4], sys.byteorder, signed=True) for i in (0, 4))
        if uid != posix.getuid() or pid != daemon_pid:
            raise OSError("not our mount daemon")
        if dying(pid, written):
            raise OSError("the mount daemon is ending, or not the one that wrote the exec file")
        # marshal, not json: built in, so this process imports nothing to send it
        body = marshal.dumps({"v": 2, "args": rest, "json": json_mode, "env": env})
        msg = b"%08d" % len(body) + body
        head = rest[: rest.index("--")] if "--" in rest else rest
        if "--stdin" in head:  # (or a value that reads so: the daemon closes what it does not use)
            fd0 = (0).to_bytes(4, sys.byteorder)
            sock.sendmsg([msg], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, fd0)])
        else:
            sock.sendall(msg)
    except OSError:
        # nobody can have run a request that did not get through whole (the daemon reads
        # all of it first): the caller runs the call itself
        sock.close()
        return None
    try:
        saved = pass_signals_on(sock)
        buf = b""
        want = 8
        try:
            while len(buf) < want:
                try:
                    data = sock.recv(1 << 20)
                except OSError:  # reset: the daemon died with the request (it may have run)
                    break
                if not data:
                    break
                buf += data
                if want == 8 and len(buf) >= 8 and buf[:8].isdigit():
                    want = 8 + int(buf[:8])
        finally:
            restore_signals(saved)
    finally:
        sock.close()
    if want == 8 or len(buf) < want:  # no answer, or not one of protocol 2
        raise NoAnswer
    reply = marshal.loads(buf[8:want])
    return reply if isinstance(reply, dict) else None


def dying(pid: int, written: "float | None" = None) -> bool:
    """Whether process ``pid`` is gone or ending. A killed daemon's main thread is a zombie
    while another of its threads (one in the middle of a disk write, say) has not ended
    yet: until then its listening socket still takes connections, which the kernel resets
    once the last thread is gone, the request unread. With ``written`` (the exec file's
    mtime): also when ``pid`` started after that (:func:`started_after`)."""
    try:
        fd = posix.open(f"/proc/{pid}/stat", posix.O_RDONLY | posix.O_CLOEXEC)
    except OSError:
        return True
    try:
        stat = posix.read(fd, 512)
    except OSError:
        return True
    finally:
        posix.close(fd)
    return stat_dying(stat) or (written is not None and started_after(stat, written))


START_SLACK_S = 2.0  # the clocks' adjustments between the file's write and this reading


def started_after(stat: bytes, written: float) -> bool:
    """Whether the process of ``/proc/PID/stat`` line ``stat`` started after ``written``
    (seconds since the epoch): not the daemon that wrote its exec file then, but a process
    the kernel gave its pid since, which may have bound the dead daemon's abstract name
    (anyone can: a command of this user that shares the host's network, in a sandbox or
    not). Unreadable: True (the caller then runs the call itself)."""
    import time

    try:
        ticks = int(stat[stat.rfind(b")") + 2 :].split()[19])  # field 22, starttime
    except (IndexError, ValueError):
        return True
    since_boot = written - time.clock_gettime(time.CLOCK_REALTIME) + time.clock_gettime(time.CLOCK_BOOTTIME)
    return ticks / posix.sysconf("SC_CLK_TCK") > since_boot + START_SLACK_S


PF_EXITING = 0x4  # (include/linux/sched.h) set as a task starts to exit, before its memory goes


def stat_dying(stat: bytes) -> bool:
    """Whether a ``/proc/PID/stat`` line is of a process gone or ending: its state a zombie
    or dead, or its flags saying it has begun to exit (the window in which its command line
    is already empty, as killed, but its state not yet ``Z``)."""
    fields = stat[stat.rfind(b")") + 2 :].split()  # after "pid (comm) ": state, ppid, ... flags
    if len(fields) < 7 or fields[0] in (b"Z", b"X", b"x"):
        return True
    try:
        return bool(int(fields[6]) & PF_EXITING)
    except ValueError:
        return True


def pass_signals_on(sock: "Any") -> "dict[int, Any]":
    """While the daemon runs the command: Ctrl-C (SIGINT), SIGTERM and SIGHUP of this
    process go to the daemon as one byte (the signal), which passes it on to the command
    and answers with the run as it was (``result.interrupted``); this process waits for
    that answer rather than ending. Returns the handlers to restore (none outside the
    main thread)."""
    import _signal  # type: ignore[import-not-found]

    def pass_on(signum: int, _frame: "Any") -> None:
        try:
            sock.send(bytes((signum,)))
        except OSError:
            pass  # the daemon is gone: its answer (or none) says so

    saved: dict[int, Any] = {}
    try:
        for num in (_signal.SIGINT, _signal.SIGTERM, _signal.SIGHUP):
            saved[num] = _signal.signal(num, pass_on)
    except ValueError:  # not the main thread: signals stay as they are
        pass
    return saved


def restore_signals(saved: "dict[int, Any]") -> None:
    import _signal

    for num, old in saved.items():
        _signal.signal(num, old)


def print_reply(json_mode: bool, reply: "dict[str, Any]") -> int:
    """Print a daemon's answer; its exit code."""
    out, err = reply.get("out"), reply.get("err")
    if out is None:  # a person's rendering of the document: parsed here
        from .execrender import render

        render(json_mode, reply["doc"], bool(reply.get("quiet")))
    else:
        if out:
            sys.stdout.write(out)
            sys.stdout.flush()
        if err:
            sys.stderr.write(err)
            sys.stderr.flush()
    return int(reply["code"])


def fast(args: "list[str]", home_dir: "Callable[[str | None], str]") -> "int | None":
    """`avfs [--home H] [--vault VAULT:FORK] [--json] proxy exec ...` answered by the live
    mount's daemon, this process ending at once (``_exit``: nothing to clean up) once the
    answer is printed; None when this path does not take the call (see the module's
    docstring). ``home_dir``: the home a ``--home`` value (or none) names
    (:func:`.client.home_dir`). Raises :class:`NoAnswer`, ``KeyboardInterrupt`` (before
    the request was sent) and what talking to the daemon raised."""
    glob, rest = global_options(args)
    if rest[:2] != ["proxy", "exec"]:
        return None
    target = fork_of(glob["vault"])
    if target is None:
        return None
    found = read_exec(home_dir(glob["home"]), *target)
    if found is None:
        return None
    name, daemon_pid, mountpoint, written = found
    env = {_decode(k): _decode(v) for k, v in posix.environ.items()}
    reply = talk(name, daemon_pid, with_cwd(rest[2:], mountpoint), glob["json"], env, written)
    if reply is None or reply.get("fallback"):
        return None
    try:
        code = print_reply(glob["json"], reply)
    except BrokenPipeError:  # the reader went away: the command ran, and its code stands
        code = int(reply["code"])
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    posix._exit(code)
    return code  # (not reached)
