"""The mount's index guard (avfs's flock on ``LOCK_FILE`` in the mount's own directory,
which every writer of the mount's git index takes) and git's own ``index.lock``, held by
one thread across a move of the base and the write of the index for it (:func:`guarded`):
the pure-FUSE daemon's refresh of the index finds it written for the new base, and git in
the mount (``git commit``, ``git add``) finds ``index.lock`` taken, as it would with
another git, where it would otherwise read the old base's index under the new HEAD and
commit it (a checkpoint's changes undone by the next ``git commit``). A writer of the
index in the same thread meanwhile (mount/index.py ``sync_index``) takes the guard as
held, and git's lock from it (:func:`held`). When git holds ``index.lock`` for as long as
a writer waits, the move is not made (:func:`lock_for_move`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from collections.abc import Iterator

from ..core.errors import GitIndexBusyError
from .ownfiles import INDEX_LOCK_WAIT_S, LOCK_FILE

_held = threading.local()  # .slots: {own dir: _Slot} the guards this thread holds


class _Slot:
    """A guard this thread holds, and git's ``index.lock`` of ``git_dir`` with it (``fd``:
    its descriptor until a writer takes it, None when git held it or it was taken)."""

    def __init__(self, git_dir: str | None, fd: int | None) -> None:
        self.git_dir = git_dir
        self.fd = fd
        # the stamp of the index a merge's move wrote ahead as its final one
        # (mount/indexahead.py ``merged``): the move's own write after it is not needed
        self.final: str | None = None

    def take_lock(self, git_dir: str) -> int | None:
        """git's ``index.lock`` of ``git_dir``, held since the guard was taken: the caller
        writes through it (and renames or removes it)."""
        if git_dir != self.git_dir:
            return None
        fd, self.fd = self.fd, None
        return fd


def _slots() -> dict[str, _Slot]:
    slots: dict[str, _Slot] | None = getattr(_held, "slots", None)
    if slots is None:
        slots = _held.slots = {}
    return slots


def held(own: str) -> _Slot | None:
    """The guard of ``own`` when this thread holds it (then taking it again would wait for
    itself: flock locks are per open file)."""
    return _slots().get(own)


def open_guard(own: str) -> int:
    """The descriptor of the mount's index lock file (``LOCK_FILE`` in ``own``) to flock."""
    return os.open(os.path.join(own, LOCK_FILE), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)


def create_lock(git_dir: str) -> int:
    """git's ``index.lock`` of ``git_dir``, created here (FileExistsError: git holds it, or
    something was planted there: either way it is not ours to write through)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    return os.open(os.path.join(git_dir, "index.lock"), flags, 0o644)


@contextlib.contextmanager
def dropped_on_error(git_dir: str, fd: int) -> Iterator[None]:
    """git's ``index.lock`` of ``git_dir`` (``fd``, made by :func:`create_lock`) closed and
    removed when the block raises: left behind, git would refuse to run in the mount."""
    try:
        yield
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(git_dir, "index.lock"))
        raise


def take_lock(git_dir: str, wait_s: float) -> int | None:
    """git's ``index.lock`` of ``git_dir``, made (its descriptor); None when git held it
    for ``wait_s`` or the worktree is gone."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return create_lock(git_dir)
        except FileExistsError:  # git is writing it: its write ends in a moment
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.002)
        except (FileNotFoundError, NotADirectoryError):
            return None


def lock_for_move(git_dir: str, wait_s: float = INDEX_LOCK_WAIT_S) -> int | None:
    """git's ``index.lock`` of ``git_dir`` for a move of the base (None: the worktree is
    gone). :class:`GitIndexBusyError` when git held it for ``wait_s``: moved without it,
    the base's index could not be written (the mover gave up on it), and it stayed the old
    base's once git let go, which git's next ``commit`` committed on the new HEAD (the
    move undone in the branch's history; on the overlay backend nothing rewrote it)."""
    fd = take_lock(git_dir, wait_s)
    lock = os.path.join(git_dir, "index.lock")
    if fd is None and os.path.lexists(lock):
        raise GitIndexBusyError(
            f"git holds {lock} in the fork's mount (waited {wait_s:g} s): the fork's branch was not moved",
            hint="retry once git there is done (a `git commit` waiting for its message holds"
            " it); if no git runs there, a killed one left it: remove that file",
            details={"path": lock},
        )
    return fd


@contextlib.contextmanager
def guarded(own: str, git_dir: str | None, wait_s: float = INDEX_LOCK_WAIT_S) -> Iterator[None]:
    """Hold the guard of ``own`` and, with ``git_dir``, git's ``index.lock`` there (waited
    for ``wait_s`` as a writer of the index waits; :class:`GitIndexBusyError` when git kept
    it: :func:`lock_for_move`); re-entered, nothing more is taken. OSError when ``own`` is
    gone (unmounted)."""
    slots = _slots()
    if own in slots:
        yield
        return
    guard = open_guard(own)
    try:
        fcntl.flock(guard, fcntl.LOCK_EX)
        slot = _Slot(git_dir, None if git_dir is None else lock_for_move(git_dir, wait_s))
        slots[own] = slot
        try:
            yield
        finally:
            del slots[own]
            if slot.fd is not None and slot.git_dir is not None:  # no writer took it
                os.close(slot.fd)
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(slot.git_dir, "index.lock"))
    finally:
        os.close(guard)
