"""Mount daemons forked from a warm process: the request's side (:func:`request`, for
ops/daemonstart.py and cli/warmdaemon.py), and the warm starter every process that mounts
keeps of its own, its *zygote* (fuse/zygote.py).

A daemon started as ``python -P -m avfs_git.fuse.daemon`` spends ~0.25-0.3 s of CPU in
Python's start and its imports (pygit2, mfusepy, the daemon's modules) before it mounts:
on every ``mounts.mount``, every first ``exec_in`` on a fork not mounted, every remount. A
process that has those modules imported forks it instead (fuse/forked.py): the resident
CLI server for the commands it serves (cli/warmdaemon.py), and for any other process (a
Python caller of the API, a test worker, ``avfs mcp``) its zygote:

- **What**: ``python -P -m avfs_git.fuse.zygote``, started (``posix_spawn``, a session of
  its own, fds 0-2 on ``/dev/null``) by the process's first mount, once that mount's
  spawned daemon is ready: its imports take no CPU from that daemon's start (beside it,
  they made the first mount ~0.3 s slower at load 40), and no mount waits for them.
  It imports the daemon's modules and then holds no home, no database, no lock and no
  thread; it says :data:`READY` when it has, and from then on a mount of this process
  asks it (:func:`starter`) and it forks the daemon twice, as the server does. Until it
  is ready, and whenever it declines or fails, the daemon is spawned as before.
- **Where**: no socket in any directory: a socket pair, its end on the zygote's fd 3 and
  ours close-on-exec here. Only this process reaches it: not another user, not a sandbox,
  not a child process (an ``avfs`` command this process runs, which has its home's CLI
  server; a forked child closes its copy, :func:`_forget`, and starts a zygote of its own
  if it mounts).
- **Its end**: end of file on its socket, when this process has ended (or was killed:
  the kernel closes our end), or when the last of its users here has let go (:func:`use`,
  :func:`release`: each home a mount asked it for, closed; ops/daemonstart.py
  :func:`~.daemonstart.end_zygote` ends it and collects it); its code changed on disk (it declines the request that
  finds it so, "another avfs", and exits: the next mount starts a new one); a request
  whose environment would start Python or its libraries otherwise than the zygote's did
  (:func:`start_vars`) is declined, and it stays for the others.
- **Off**: ``AVFS_ZYGOTE=off`` (``Settings.zygote``): every daemon spawned, no zygote.

The wire (the server's and the zygote's): a request is a ``marshal``-encoded dict after its
length in 8 ASCII digits, ``{"v": 1, "stamp": ..., "daemon": ARGS, "env": {...}, "umask":
N, "limits": {RLIMIT: (SOFT, HARD)}, "nice": N, "cpus": [CPU...], "oom": N, "cgroup": TEXT}``
(:func:`process_state`; each optional), with two fds, the write end of the readiness pipe
and the log (opened here, as a spawn opens them); the answer ``{"pid": N}`` once the daemon has named itself, or
``{"fallback": REASON}``.
"""

from __future__ import annotations

import marshal
import os
import select
import socket
import sys
import threading
import weakref
from typing import Any

from .codewatch import package_dir
from .framed import recv_framed, send_framed

ANSWER_WAIT_S = 15.0  # how long an asker waits for the answer
ZYGOTE_MODULE = "avfs_git.fuse.zygote"
ZYGOTE_FD = 3  # the zygote's end of its socket pair
READY = b"Z"  # what the zygote says once its imports are done (anything else, or its end: failed)
# what a zygote declines and then ends on: its code is not the asker's, or the asker's control
# groups are not its own (the next mount starts another, in the asker's)
ENDS_ON = ("another avfs", "cgroup")
MAX_FAILURES = 3  # zygotes that end before they are ready, after which a process starts no more
# the room the zygote's command line keeps for a forked daemon's (fuse/forked.py writes the
# daemon's arguments there, so that ``ps``, ``doctor`` and the registry see which home,
# vault and fork it serves, as in a spawned one's): a daemon whose arguments are longer
# is spawned
ROOM = 4096
# what the environment sets for a whole process as it starts (the interpreter, the dynamic
# loader, the locale, which libfuse mfusepy loads): a zygote has them as it started, and
# forks only daemons whose environment has the same
START_PREFIXES = ("PYTHON", "LD_", "LC_", "FUSE_LIBRARY_", "GLIBC_")
START_NAMES = ("LANG", "LANGUAGE")


def start_vars(env: dict[str, str]) -> dict[str, str]:
    """What of environment ``env`` acts as a process starts (:data:`START_PREFIXES`,
    :data:`START_NAMES`)."""
    return {k: v for k, v in env.items() if k.startswith(START_PREFIXES) or k in START_NAMES}


def as_new() -> dict[str, Any]:
    """``posix_spawn``'s arguments that start a process with the signal mask and
    dispositions of one started anew, as fuse/forked.py makes a forked daemon's: none
    blocked and none ignored (a spawn inherits the calling thread's mask and what its
    process ignores: a caller that blocked SIGUSR1 in a thread, or ignored SIGUSR2, had a
    spawned daemon that did too, and every command it ran)."""
    import signal

    return {"setsigmask": (), "setsigdef": signal.valid_signals() - {signal.SIGKILL, signal.SIGSTOP}}


def code_stamp() -> str:
    """The code this process runs: the interpreter (path and version) and the package's
    place (as cli/client.py's ``stamp`` says it for a CLI call)."""
    return f"{sys.executable} {sys.version_info[:3]} {package_dir()}"


def request(
    sock: socket.socket, stamp: str, args: list[str], env: dict[str, str], log_path: str
) -> tuple[int, int] | None:
    """Ask the warm process at the other end of ``sock`` to fork a mount daemon with
    arguments ``args``, environment ``env`` and its output appended to ``log_path``: (its
    pid, the read end of its readiness pipe), or None (declined or failed: spawn it)."""
    return exchange(sock, stamp, args, env, log_path)[0]


def exchange(
    sock: socket.socket, stamp: str, args: list[str], env: dict[str, str], log_path: str
) -> tuple[tuple[int, int] | None, str | None]:
    """:func:`request`'s answer, and why it declined (its ``fallback``; None: it answered
    nothing readable, and what ``sock`` carries next is no longer known)."""
    r, w = os.pipe()
    logfd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
    answer: Any = None
    try:
        sock.settimeout(ANSWER_WAIT_S)
        req = {"v": 1, "stamp": stamp, "daemon": args, "env": env, "umask": umask(), "limits": limits()}
        req.update(process_state())
        send_framed(sock, req, (w, logfd))
        got = recv_framed(sock, 0)
        answer = marshal.loads(got[0]) if got is not None else None
    except (OSError, ValueError, EOFError, TypeError):
        answer = None
    finally:
        os.close(w)
        os.close(logfd)
    pid = answer.get("pid") if isinstance(answer, dict) else None
    if not isinstance(pid, int) or pid <= 0:
        os.close(r)
        why = answer.get("fallback") if isinstance(answer, dict) else None
        return None, why if isinstance(why, str) else None
    return (pid, r), None


def limits() -> dict[int, tuple[int, int]]:
    """This process's resource limits (``RLIMIT_*`` -> soft, hard): a spawned daemon
    inherits them, a forked one is given them (fuse/forked.py), so that a caller that
    changed one (core dumps allowed, fewer files) has its daemon run under it."""
    import resource

    out: dict[int, tuple[int, int]] = {}
    for name in dir(resource):
        if name.startswith("RLIMIT_"):
            res = getattr(resource, name)
            try:
                out[res] = resource.getrlimit(res)
            except (ValueError, OSError):
                continue
    return out


def process_state() -> dict[str, Any]:
    """What else of the asking thread a spawned daemon inherits and a forked one is given
    (fuse/forked.py): ``nice``, ``cpus`` (its CPU affinity), ``oom`` (``oom_score_adj``),
    and ``cgroup`` (its control groups, ``/proc/thread-self/cgroup``: a warm process in
    others declines, and a zygote ends, so that the next one starts in the caller's); each
    left out where it cannot be read."""
    out: dict[str, Any] = {}
    try:
        out["nice"] = os.getpriority(os.PRIO_PROCESS, 0)  # (Linux: the calling thread's)
        out["cpus"] = sorted(os.sched_getaffinity(0))
    except (OSError, AttributeError):
        pass
    for key, path in (("oom", "/proc/self/oom_score_adj"), ("cgroup", "/proc/thread-self/cgroup")):
        try:
            with open(path, encoding="utf-8", errors="surrogateescape") as fh:
                text = fh.read()
            out[key] = int(text) if key == "oom" else text
        except (OSError, ValueError):
            continue
    return out


def umask() -> int:
    """This process's umask, read without changing it (another thread may be creating a
    file): from /proc (Linux 4.7 on), else set and put back."""
    try:
        with open("/proc/self/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


class Zygote:
    """This process's zygote: its pid, our end of its socket pair, the interpreter and
    start-up environment it was started with; ``state``: starting (its imports not done),
    ready, gone (ended after it was ready: the next mount starts another) or failed (ended
    before: the next mount starts another, but after :data:`MAX_FAILURES` none)."""

    def __init__(
        self, pid: int, sock: socket.socket, python: str, start: dict[str, str], failures: int = 0
    ) -> None:
        self.pid = pid
        self.sock = sock
        self.python = python
        self.start = start
        self.state = "starting"
        self.failures = failures  # this process's zygotes that ended before they were ready
        self.lock = threading.Lock()  # one request at a time on the pair

    def ready(self) -> bool:
        """Whether it is ready now (it said so), without waiting."""
        if self.state == "starting":
            with self.lock:  # (one reader of what it says: another thread may look too)
                if self.state == "starting":
                    try:
                        said: bytes | None = self.sock.recv(1, socket.MSG_DONTWAIT)
                    except BlockingIOError:
                        said = None  # (its imports are not done)
                    except OSError:
                        said = b""
                    if said is not None:
                        self._end("ready" if said == READY else "failed")
        return self.state == "ready"

    def ask(self, args: list[str], env: dict[str, str], log_path: str) -> tuple[int, int] | None:
        """The daemon forked (as :func:`request`), or None: spawn it. A zygote that did not
        answer, or whose code is not ours (it ends), is gone."""
        with self.lock:
            if self.state != "ready":
                return None
            got, why = exchange(self.sock, code_stamp(), args, env, log_path)
            if got is None and why in (None, *ENDS_ON):
                self._end("gone")
            return got

    def _end(self, state: str) -> None:
        """Its new state; once gone or failed, our end closed (it ends on that, if it has not)."""
        self.state = state
        if state == "failed":
            self.failures += 1
        if state in ("gone", "failed"):
            self.sock.close()


def _closed(sock: socket.socket) -> bool:
    """Whether the peer of ``sock`` has closed it (or it is unusable)."""
    try:
        poller = select.poll()
        poller.register(sock, select.POLLIN | select.POLLRDHUP)
        ended = select.POLLHUP | select.POLLRDHUP | select.POLLERR | select.POLLNVAL
        return any(ev & ended for _, ev in poller.poll(0))
    except (OSError, ValueError):
        return True


_ZYGOTE: Zygote | None = None
_STARTING = threading.Lock()
_WANTED: tuple[str, dict[str, str]] | None = None  # (interpreter, start-up variables)


def starter(python: str, env: dict[str, str]) -> Zygote | None:
    """This process's zygote when it is ready to fork a daemon of interpreter ``python``
    with environment ``env``; None (spawn it) while it starts, or when there is none or it
    cannot (another interpreter, another start-up environment)."""
    z = _ZYGOTE
    if z is None or z.python != python or not z.ready() or z.start != start_vars(env):
        return None
    return z


def start(python: str, env: dict[str, str]) -> int | None:
    """Start this process's zygote for interpreter ``python`` (a daemon's environment
    ``env`` gives it its start-up variables, :func:`start_vars`, and nothing else), unless
    one runs or starts, or :data:`MAX_FAILURES` failed here; its pid (this process's
    child, for the caller to reap), or None."""
    global _ZYGOTE
    with _STARTING:
        z = _ZYGOTE
        if z is not None and z.state == "ready" and _closed(z.sock):
            z._end("gone")  # (killed, or its code changed: it exited)
        if z is not None and (z.state in ("starting", "ready") or z.failures >= MAX_FAILURES):
            return None
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        first = start_vars(env)
        try:
            os.set_inheritable(theirs.fileno(), True)  # (its copy on fd 3; ours stays close-on-exec)
            pid = os.posix_spawn(
                python,
                [python, "-P", "-m", ZYGOTE_MODULE, "--room", "." * ROOM],
                first,
                file_actions=[
                    (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                    (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                    (os.POSIX_SPAWN_DUP2, 1, 2),
                    (os.POSIX_SPAWN_DUP2, theirs.fileno(), ZYGOTE_FD),
                ],
                setsid=True,
                **as_new(),
            )
        except OSError:
            mine.close()
            return None
        finally:
            theirs.close()
        _ZYGOTE = Zygote(pid, mine, python, first, z.failures if z is not None else 0)
        return pid


def want(python: str, env: dict[str, str]) -> None:
    """A zygote wanted for interpreter ``python`` (and ``env``'s start-up variables), to
    be started by :func:`start_wanted` once the daemon being spawned now is ready."""
    global _WANTED
    _WANTED = (python, start_vars(env))


def start_wanted() -> int | None:
    """Start the zygote :func:`want` asked for, if any (as :func:`start`); its pid, or None."""
    global _WANTED
    wanted, _WANTED = _WANTED, None
    return start(wanted[0], wanted[1]) if wanted is not None else None


# who this process's zygote is kept for: the homes its mounts were started for (ops/mounts.py,
# through daemonstart), and whatever else holds it (a test session); it is let go of when the
# last of them lets go (:func:`release`), or when this process ends
_USERS: weakref.WeakSet[object] = weakref.WeakSet()


def use(user: object) -> bool:
    """Keep this process's zygote for ``user`` (a home, or any object that holds it) until
    :func:`release`; True when ``user`` was not one already."""
    with _STARTING:
        new = user not in _USERS
        _USERS.add(user)
    return new


def release(user: object) -> bool:
    """``user`` lets go of this process's zygote: True when it was the last (the caller
    ends it: :func:`stop`)."""
    with _STARTING:
        _USERS.discard(user)
        return not _USERS


def current() -> Zygote | None:
    """This process's zygote, whatever its state."""
    return _ZYGOTE


def stop() -> int | None:
    """Let go of this process's zygote (our end closed: it ends on that), so that the next
    mount spawns its daemon and starts another; its pid (our child), or None."""
    global _ZYGOTE
    with _STARTING:
        z, _ZYGOTE = _ZYGOTE, None
    if z is None:
        return None
    with z.lock:
        z._end("gone")
    return z.pid


def _forget() -> None:
    """In a forked child: the parent's zygote is not the child's (our end closed here, so
    that the zygote still ends with the parent; a lock a thread of the parent held is not
    held here)."""
    global _ZYGOTE, _STARTING, _WANTED
    z, _ZYGOTE, _WANTED = _ZYGOTE, None, None
    _STARTING = threading.Lock()
    _USERS.clear()
    if z is not None:
        try:
            z.sock.close()
        except OSError:
            pass


os.register_at_fork(after_in_child=_forget)
