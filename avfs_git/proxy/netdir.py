"""The filtering network proxy's private directory on the host (:mod:`.netproxy`): made,
held and swept.

:class:`.netproxy.FilterProxy` serves its socket from ``$TMPDIR/avfs-net-<pid>-<random>``
(a 0700 directory; ``/tmp`` when ``TMPDIR`` is long: a socket's path is at most 107
bytes) and removes it when the command has ended. A call killed before then (``kill -9``
of a ``proxy exec``: the suite left one ``/tmp/avfs-net-*`` a run) never does, so the
directory is held locked (``flock``) from before its socket is made until after it is
removed, and each start first removes those of this user that have a socket and no
holder (:func:`sweep`): a lock goes with the last process that held it, where a pid
could be another process's since. Standard library only.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from typing import Final

PREFIX: Final = "avfs-net-"
SOCKET: Final = "proxy.sock"


def base_dir() -> str:
    """Where the directory is made: ``$TMPDIR`` when it is a short enough directory."""
    base = os.environ.get("TMPDIR", "/tmp")
    if len(base) > 60 or not os.path.isdir(base):
        base = "/tmp"  # a Unix socket's path is at most 107 bytes
    return base


def make(base: str) -> tuple[str, int]:
    """A new directory in ``base`` (dead calls' swept first), and a descriptor of it that
    holds its lock: closed once the directory is removed (:func:`release`)."""
    sweep(base)
    path = tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=base)
    try:
        held = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        shutil.rmtree(path, ignore_errors=True)
        raise
    try:
        fcntl.flock(held, fcntl.LOCK_EX)  # (before the socket: see sweep)
    except OSError:
        release(path, held)
        raise
    return path, held


def release(path: str, held: int) -> None:
    """Remove the directory, then let its lock go (never swept while in use)."""
    shutil.rmtree(path, ignore_errors=True)
    os.close(held)


def sweep(base: str) -> list[str]:
    """Remove the directories in ``base`` that filtering proxies of this user left when
    their process was killed; returns them. One is a dead call's when it has its socket
    and nobody holds its lock: its owner locks it before it makes the socket and holds it
    until it has removed it. A directory of another user, a link, one being made (no
    socket yet) and one of an avfs that took no lock (a name without the pid) are left
    alone."""
    swept: list[str] = []
    try:
        entries = list(os.scandir(base))
    except OSError:
        return swept
    me = os.geteuid()
    for e in entries:
        pid, _, rest = e.name[len(PREFIX) :].partition("-")
        if not (e.name.startswith(PREFIX) and pid.isdigit() and rest):
            continue
        try:
            st = e.stat(follow_symlinks=False)
            fd = os.open(e.path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            if st.st_uid != me or os.fstat(fd).st_ino != st.st_ino:
                continue
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.stat(SOCKET, dir_fd=fd, follow_symlinks=False)  # (asked under the lock)
        except OSError:  # held (its owner is there), or no socket (being made, or going)
            continue
        else:
            shutil.rmtree(e.path, ignore_errors=True)
            swept.append(e.path)
        finally:
            os.close(fd)
    return swept
