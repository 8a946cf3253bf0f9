"""A vault's transfer lock: what lets the next push or fetch take back the git ref lock a
killed one left, knowing its owner is gone.

git moves a remote-tracking ref (``refs/remotes/<remote>/<branch>``) under a lock file
beside it (``<branch>.lock``), for milliseconds. A push or fetch killed in those
milliseconds leaves the file, and every later fetch of that remote then fails ("cannot
lock ref ...: File exists"), and every push leaves its tracking ref behind, until the file
goes. git's lock files name no owner, so a lock file alone cannot say whether its git
still runs.

So every avfs push and fetch holds a ``flock`` on ``<vault>/avfs/locks/.transfer.lock``
(shared: pushes and fetches run side by side) for as long as it runs, and hands that
descriptor to the git it starts (``pass_fds``): git, and the processes git starts, hold it
as long as any of them lives, even when the avfs process that started them was killed.
The kernel drops a ``flock`` when the last descriptor on it closes, that is when the last
of them dies. A push or fetch that finds ``*.lock`` files under its remote's
``refs/remotes/<remote>/`` tries the lock exclusively: granted, no avfs push or fetch of
this vault, and no git one of them started, is alive, so those files are a dead
transfer's and are removed (and named in the result's warnings); refused, another transfer
is running and its files are left alone.

What this does not prove: a git run by hand on the vault (``git --git-dir <vault> fetch``,
or ``git fetch`` inside a mount) holds no avfs lock. Its ref lock lives for milliseconds,
and what it guards is a remote-tracking ref, a copy of what the server said that the next
fetch rewrites: nothing local is authored there, so the worst a collision can do is leave
that copy one fetch behind. Every other lock file (a fork's ref, ``packed-refs.lock``) stays
with ``avfs doctor --repair`` and its ten-minute rule (docs/maintenance.md).
"""

from __future__ import annotations

import errno
import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager

from ..errors import from_oserror
from . import refs

LOCK_NAME = ".transfer"  # <vault>/avfs/locks/.transfer.lock (no fork name starts with '.')


def lock_path(state_dir: str) -> str:
    return os.path.join(state_dir, "locks", LOCK_NAME + ".lock")


def leftovers(git_dir: str, remote: str) -> list[str]:
    """The ``*.lock`` files under ``refs/remotes/<remote>/`` (a ref name cannot end in
    ``.lock``: each is git's lock file of a ref there), sorted."""
    root = os.path.join(git_dir, refs.remote_prefix(remote).rstrip("/"))
    out: list[str] = []
    for dirpath, _dirs, files in os.walk(root):
        out.extend(os.path.join(dirpath, f) for f in files if f.endswith(".lock"))
    return sorted(out)


@contextmanager
def holding(git_dir: str, state_dir: str, remote: str) -> Iterator[tuple[int, list[str]]]:
    """Hold the vault's transfer lock (shared) for one push or fetch of ``remote``.

    Yields (the descriptor to hand to git as ``pass_fds``, the lock files of a dead
    transfer removed first, relative to the vault)."""
    path = lock_path(state_dir)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise from_oserror(exc, path) from exc
    try:
        removed = _take_back(fd, git_dir, remote) if leftovers(git_dir, remote) else []
        fcntl.flock(fd, fcntl.LOCK_SH)  # waits only for a take-back in progress elsewhere
        yield fd, removed
    finally:
        os.close(fd)  # (git, when it still runs, keeps its own copy: the lock with it)


def _take_back(fd: int, git_dir: str, remote: str) -> list[str]:
    """Remove ``remote``'s leftover lock files when no transfer of the vault is alive
    (the exclusive lock is granted at once); else nothing."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return []  # a transfer runs: its lock files are its own
        raise from_oserror(exc, git_dir) from exc
    removed: list[str] = []
    for found in leftovers(git_dir, remote):  # again, under the lock
        try:
            os.unlink(found)
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise from_oserror(exc, found) from exc
        removed.append(os.path.relpath(found, git_dir))
    return removed
