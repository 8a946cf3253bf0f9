"""Mount daemons forked from the warm CLI server (:mod:`.resident`) instead of spawned cold.

A mount's daemon started as ``python -m avfs_git.fuse.daemon`` spends ~0.1 s of CPU in
Python's start and its imports before it can mount, on the path of every ``avfs mount``
and of the first ``proxy exec`` on a fork. The server has those modules imported
(:func:`load`: the daemon's, with libfuse loaded as the daemon's environment asks), so a
command it serves asks it for the daemon (:func:`install` makes :func:`ask` the starter
of ops/daemonstart.py in the server's children), and the server forks it (:func:`serve`).

- **Who forks**: the server itself, not the call's process: the server holds no home, no
  database, no lock and no thread (prewarm.py), where the call's process has opened the
  vault, holds the fork's mount lock and may have threads. It forks twice: the first
  child starts a session of its own (``setsid``) and forks the daemon, then exits (the
  server reaps it at once), so the daemon is no one's child but init's, as a spawned one
  is once its starter is gone. The daemon then makes itself a clean process
  (fuse/forked.py: its fds, signals, environment, cwd, umask).
- **The request** (on the server's socket, one connection): ``{"v": 1, "stamp": ...,
  "daemon": ARGS, "env": {...}, "umask": N}`` with two fds, the write end of the
  readiness pipe and the log (opened by the asker, as the spawn opens them); the answer
  ``{"pid": N}`` (sent once the daemon has named itself: it is a mount daemon to whoever
  looks from then on) or ``{"fallback": REASON}``: the asker then spawns the daemon as
  before, with nothing lost (its pipe and log are its own).
- **Which code**: a server whose code changed on disk (or another stamp) declines, as
  it declines a call; and one whose libfuse is not the one the daemon's environment
  names (``FUSE_LIBRARY_NAME``/``FUSE_LIBRARY_PATH``, which mfusepy reads when it is
  imported) declines too.
"""

from __future__ import annotations

import array
import marshal
import os
import select
import socket
import sys
from typing import Any

FORK_WAIT_S = 10.0  # how long the server waits for a forked daemon to name itself
ANSWER_WAIT_S = 15.0  # how long an asker waits for the server's answer


def fuse_choice(environ: dict[str, str]) -> tuple[str | None, str | None]:
    """The libfuse a daemon with environment ``environ`` loads (as fuse/libs.py's
    ``preset`` makes it out): (``FUSE_LIBRARY_NAME``, ``FUSE_LIBRARY_PATH``)."""
    from ..fuse.libs import preset

    env: dict[str, str] = {k: environ[k] for k in ("FUSE_LIBRARY_NAME", "FUSE_LIBRARY_PATH") if k in environ}
    preset(env)
    return env.get("FUSE_LIBRARY_NAME"), env.get("FUSE_LIBRARY_PATH")


def load() -> tuple[str | None, str | None] | None:
    """In the server, after prewarm.py's imports: import the mount daemon's modules, with
    libfuse chosen as a daemon started with this environment chooses it (restored after:
    the server's environment stays as it was). The choice; None when they do not import
    (no libfuse here: the daemons are spawned, and say why)."""
    from . import prewarm

    choice = fuse_choice(dict(os.environ))
    saved = {k: os.environ.get(k) for k in ("FUSE_LIBRARY_NAME", "FUSE_LIBRARY_PATH")}
    try:
        for key, value in zip(saved, choice, strict=True):
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        import mfusepy  # noqa: F401  (libfuse, loaded now through ctypes)

        from ..fuse import daemon  # noqa: F401

        prewarm.load_package("avfs_git.fuse")
    except Exception:
        return None
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old
    return choice


def install(sock_path: str) -> None:
    """Make the server at ``sock_path`` the warm starter of mount daemons in this process
    and the processes it forks (the server's calls)."""
    from ..ops import daemonstart

    daemonstart.STARTER = lambda args, env, log_path: ask(sock_path, args, env, log_path)


def ask(sock_path: str, args: list[str], env: dict[str, str], log_path: str) -> tuple[int, int] | None:
    """Ask the server at ``sock_path`` to fork a mount daemon with arguments ``args``,
    environment ``env`` and its output appended to ``log_path``: (its pid, the read end
    of its readiness pipe), or None (declined or failed: spawn it)."""
    from .client import stamp
    from .spare import recv_framed

    umask = _umask()
    r, w = os.pipe()
    logfd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
    answer: Any = None
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(ANSWER_WAIT_S)
            sock.connect(sock_path)
            req = marshal.dumps({"v": 1, "stamp": stamp(), "daemon": args, "env": env, "umask": umask})
            fds = array.array("i", (w, logfd))
            sock.sendmsg([b"%08d" % len(req) + req], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
            got = recv_framed(sock, 0)
            answer = marshal.loads(got[0]) if got is not None else None
        finally:
            sock.close()
    except (OSError, ValueError, EOFError, TypeError):
        answer = None
    finally:
        os.close(w)
        os.close(logfd)
    pid = answer.get("pid") if isinstance(answer, dict) else None
    if not isinstance(pid, int) or pid <= 0:
        os.close(r)
        return None
    return pid, r


def _umask() -> int:
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


def serve(req: dict[str, Any], fds: list[int], why_not: str | None, fuse: Any) -> dict[str, Any]:
    """The answer to a daemon request ``req`` (its fds ``fds``, closed by the caller): the
    daemon forked, unless ``why_not`` (the server's reason to decline: its code changed) or
    the request does not fit this server (``fuse``: the libfuse :func:`load` chose, None
    when it did not load)."""
    args, env, umask = req.get("daemon"), req.get("env"), req.get("umask")
    if why_not is None and not (
        isinstance(args, list)
        and all(isinstance(a, str) for a in args)
        and isinstance(env, dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in env.items())
        and isinstance(umask, int)
        and len(fds) == 2
    ):
        why_not = "protocol"
    if why_not is None and (fuse is None or fuse_choice(env) != tuple(fuse)):  # type: ignore[arg-type]
        why_not = "libfuse"
    pid = None
    if why_not is None:
        pid = _fork(list(args), dict(env), int(umask), fds[0], fds[1])  # type: ignore[arg-type]
        if pid is None:
            why_not = "fork"
    return {"pid": pid} if pid is not None else {"fallback": why_not}


def _fork(args: list[str], env: dict[str, str], umask: int, ready: int, log: int) -> int | None:
    """Fork the daemon (twice: the first child starts a session and exits); its pid once it
    has named itself, or None."""
    import gc

    r, w = os.pipe()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()  # (not written twice, by a child too)
    try:
        first = os.fork()
    except OSError:
        os.close(r)
        os.close(w)
        return None
    if first == 0:
        try:
            os.close(r)
            os.setsid()
            gc.collect()  # what the server dropped, freed here, not in the daemon (fuse/forked.py)
            if os.fork() == 0:
                from ..fuse.forked import become

                become(args, env, umask, ready, log, w)  # never returns
        finally:
            os._exit(0)
    os.close(w)
    data = b""
    try:
        poller = select.poll()
        poller.register(r, select.POLLIN)
        if poller.poll(FORK_WAIT_S * 1000):
            data = os.read(r, 32)
    finally:
        os.close(r)
        os.waitpid(first, 0)
    try:
        return int(data) if data.endswith(b"\n") else None
    except ValueError:
        return None
