"""Mount daemons forked from the warm CLI server (:mod:`.resident`) instead of spawned cold.

A mount's daemon started as ``python -m avfs_git.fuse.daemon`` spends ~0.25-0.3 s of CPU
in Python's start and its imports before it can mount, on the path of every ``avfs mount``
and of the first ``proxy exec`` on a fork. The server has those modules imported
(:func:`load`: the daemon's, with libfuse loaded as the daemon's environment asks), so a
command it serves asks it for the daemon (:func:`install` makes :func:`ask` the starter
of ops/daemonstart.py in the server's children), and the server forks it (:func:`serve`).
The forking and the request are fuse/forked.py's and ops/warmstart.py's, shared with the
zygote every other process that mounts keeps (fuse/zygote.py); this module is the server's
socket to them.

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

import socket

from ..fuse.forked import FORK_WAIT_S, fuse_choice, load, serve
from ..ops.warmstart import ANSWER_WAIT_S, request, umask

__all__ = ["ANSWER_WAIT_S", "FORK_WAIT_S", "ask", "fuse_choice", "install", "load", "serve", "umask"]


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

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(ANSWER_WAIT_S)
        sock.connect(sock_path)
    except OSError:
        sock.close()
        return None
    try:
        return request(sock, stamp(), args, env, log_path)
    finally:
        sock.close()
