"""One path of a live overlay mount replaced only if it still holds what the caller expects,
with no moment where a writer's bytes can be replaced unseen (adopt3, the thirty-fourth
round): :func:`swap`, for another hand's commit adopted through the mount
(:mod:`.wsadopt`).

adopt2 compared the path with the old base's, then wrote the commit's over it: a write of
the person's landing between the two was replaced, and a program holding the file open for
writing (an editor, a database, a log) whose bytes were still the base's at the compare
went on writing into a file no name showed any more (the write unlinked it and made a new
one): its bytes were lost. Now:

- the new content is written beside the path (a side file of a name of its own,
  ``O_EXCL``), then swapped in with the path in one step (``renameat2(RENAME_EXCHANGE)``;
  a path that had nothing: ``RENAME_NOREPLACE``; one the commit removes: renamed aside,
  ``RENAME_NOREPLACE``): whatever a writer renamed over the path until that instant is
  what comes out;
- what came out is looked at under a read lease (``F_SETLEASE F_RDLCK``, which the kernel
  refuses while any process holds the file open for writing, and which makes any opening
  for writing after it wait until it is let go): a file open for writing is in the
  person's hands, whatever its bytes now; otherwise its bytes and mode are compared with
  what the caller expects;
- the expected one is unlinked (the lease still held: nobody can have started writing it);
  anything else is swapped back at once (the person's file is the path's again, and their
  open descriptors never stopped naming it), and what comes back out is checked the same
  way: the side file only when it is the one written here, unchanged, with no writer;
  otherwise it is left where it is, and its name returned (nothing is lost; the caller
  reports it).

Pure FUSE has no ``RENAME_EXCHANGE`` (libfuse 2's rename carries no flags: ``EINVAL``), and
needs none: an adoption there writes nothing through the mount (the base's move shows the
commit's files), and its daemon's writers hold their overlay file's ``flock``, which the
move's transaction claims (:mod:`.wsadopt`). Where the kernel has no exchange at all, the
path is compared, then replaced (the window adopt2 left).

A lease breaker is told by a signal: set to ``SIGURG`` (ignored by default) here, never
the default ``SIGIO``, which would end this process.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import secrets
import signal
import stat as st_
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from typing import Protocol

from ..store.exchange import exchange
from ..types import MODE_BLOB, MODE_EXEC, MODE_LINK, SWAP_SIDE_PREFIX


class LiveDir(Protocol):
    """What a swap needs of a live mount (:class:`.livedir.LiveDir`): a path's parent held
    open, a directory made."""

    def pinned(self, path: str) -> AbstractContextManager[str]: ...
    def mkdir(self, path: str) -> None: ...
    def side_key(self) -> bytes | None: ...


Found = tuple[int, bytes] | None  # what a path holds: (mode, bytes or a link's target), or nothing
Check = Callable[[Found], bool]
MAX_HELD = 512 << 20  # the most of a file looked at whole (more: the person's, left in place)
IN_HANDS = (0, b"")  # a directory, a special file, or a file open for writing: the person's

_F_SETLEASE = 1024
_F_GETLEASE = 1025
_F_SETSIG = 10
_RENAME_NOREPLACE = 1
_SIDE = SWAP_SIDE_PREFIX  # (the side file's name starts so: tests look for leftovers by it;
# the change stream passes over those a workspace's key checks: core/workspace/sidekey.py)


def _renamed(src: str, dst: str) -> bool:
    """``src`` renamed to ``dst`` only if nothing is there (``RENAME_NOREPLACE``): False
    when something is (or ``src`` is gone). Where the call is missing, a check then a
    rename."""
    from ..store.exchange import _renameat2

    fn = _renameat2()
    if fn is not None:
        if fn(-100, os.fsencode(src), -100, os.fsencode(dst), _RENAME_NOREPLACE) == 0:
            return True
        err = ctypes.get_errno()
        if err in (errno.EEXIST, errno.ENOENT, errno.ENOTEMPTY):
            return False
        if err not in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
            raise OSError(err, os.strerror(err), dst)
    if os.path.lexists(dst) or not os.path.lexists(src):
        return False
    os.rename(src, dst)
    return True


def _leased(fd: int) -> bool | None:
    """A read lease on ``fd``'s file: True when held, False when another process has it
    open for writing. Where leases are not to be had (a file system without them), None:
    the bytes decide."""
    try:
        fcntl.fcntl(fd, _F_SETSIG, signal.SIGURG)
        fcntl.fcntl(fd, _F_SETLEASE, fcntl.F_RDLCK)
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EBUSY):
            return False
        if exc.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EACCES, errno.EPERM):
            raise
        return None
    return True


def _breaking(lease: int | None) -> bool:
    """Whether an opening for writing waits for the read lease held on fd ``lease`` (its
    break under way: the kernel then reports the lease it is going to, ``F_UNLCK``).
    Such an opener looked the path up already: whatever the path holds later, it opens
    this file (livewrite2: one that came between the lease and the unlink waited, then
    held the unlinked file, and every byte it wrote was lost)."""
    if lease is None:
        return False
    try:
        return bool(fcntl.fcntl(lease, _F_GETLEASE) != fcntl.F_RDLCK)
    except OSError:
        return True  # (the lease gone: taken as broken)


Held = tuple[Found, "tuple[int, int] | None", "int | None"]


@contextmanager
def _held(path: str, read: bool = True) -> Iterator[Held]:
    """What ``path`` holds, its (device, inode), and the descriptor holding a read lease on
    a regular file until the block ends (None: no lease, a link, nothing, or none to be
    had; :data:`IN_HANDS` when open for writing elsewhere; ``read`` False: a file's bytes
    not read, ``b""``)."""
    try:
        s = os.lstat(path)
    except FileNotFoundError:
        yield None, None, None
        return
    if st_.S_ISLNK(s.st_mode):
        yield (MODE_LINK, os.fsencode(os.readlink(path))), (s.st_dev, s.st_ino), None
        return
    if not st_.S_ISREG(s.st_mode):
        yield IN_HANDS, (s.st_dev, s.st_ino), None
        return
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        s = os.fstat(fd)
        # (a FIFO or a device renamed in since the lstat, or a file past MAX_HELD, a sparse
        # 100 GB one costing no quota: the person's, never read whole into memory here)
        leased = st_.S_ISREG(s.st_mode) and not (read and s.st_size > MAX_HELD) and _leased(fd)
        if leased is False:
            yield IN_HANDS, (s.st_dev, s.st_ino), None
            return
        chunks: list[bytes] = []
        left = MAX_HELD + 1
        while read and left > 0 and (chunk := os.read(fd, min(1 << 20, left))):
            chunks.append(chunk)
            left -= len(chunk)
        if left <= 0:  # (grew past it while read)
            yield IN_HANDS, (s.st_dev, s.st_ino), None
            return
        mode = MODE_EXEC if s.st_mode & 0o100 else MODE_BLOB
        yield (mode, b"".join(chunks)), (s.st_dev, s.st_ino), fd if leased else None
    finally:
        os.close(fd)  # (the lease goes with it)


def _make(side: str, want: tuple[int, bytes]) -> tuple[int, int]:
    """The side file holding ``want``; its (device, inode)."""
    mode, data = want
    if mode == MODE_LINK:
        os.symlink(os.fsdecode(data), side)
        s = os.lstat(side)
        return s.st_dev, s.st_ino
    fd = os.open(side, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fchmod(fd, 0o755 if mode == MODE_EXEC else 0o644)
        s = os.fstat(fd)
        return s.st_dev, s.st_ino
    finally:
        os.close(fd)


def side_name(key: bytes | None = None) -> str:
    """A new side file's name (in the path's directory): the caller notes it before the
    swap (:mod:`.swapleft`), so that a process killed between the swap's steps leaves a
    side file the next one can name and put right. ``key``: the workspace's
    (:meth:`.LiveDir.side_key`), the name then checked as avfs's own by the mount's change
    stream (:mod:`.sidekey`); without one, a name like any other file's."""
    if key is not None:
        from .sidekey import signed

        return signed(key)
    return _SIDE + secrets.token_hex(6)


def swap(
    live: LiveDir, path: str, want: Found, expect: Check, was_nothing: bool, name: str | None = None
) -> str | None:
    """Make ``path`` of the mount hold ``want`` (None: nothing) if what it holds is what
    ``expect`` accepts (``was_nothing``: the expected is nothing there), in one step (see
    the module's docstring), by a side file named ``name`` (:func:`side_name`). None when
    done; "" when the path held something else (left as it was: nothing changed); a side
    file's path (relative to the mount) when what the put back brought out was neither the
    expected nor this call's own (kept there, for the caller to name)."""
    with ExitStack() as stack:
        try:
            dest = stack.enter_context(live.pinned(path))
        except FileNotFoundError:
            if want is None or "/" not in path:
                raise
            live.mkdir(path.rsplit("/", 1)[0])  # (a directory the commit makes: made first)
            dest = stack.enter_context(live.pinned(path))
        name = name or side_name(live.side_key())
        side = os.path.join(os.path.dirname(dest), name)
        rel = f"{path.rsplit('/', 1)[0]}/{name}" if "/" in path else name
        mine = _make(side, want) if want is not None else None
        try:
            if want is None:
                if was_nothing or not _renamed(dest, side):
                    return "" if not was_nothing else None  # (gone already, or not ours to remove)
            elif was_nothing:
                return None if _renamed(side, dest) else ""
            else:
                try:
                    if not exchange(side, dest):
                        return _replace(side, dest, expect)
                except FileNotFoundError:
                    return ""  # (the person removed it: theirs)
            with _held(side) as (found, _, lease):
                if expect(found) and not _breaking(lease):
                    os.unlink(side)  # (under the lease: no writer has it, none can start)
                    mine = None
                    return None
            # not the expected: the person's, put back at once
            if want is None:
                if _renamed(side, dest):
                    return ""
                mine = None
                return rel  # (a new one made meanwhile at the path: both are theirs)
            exchange(side, dest)
            with _held(side) as (found, ident, lease):
                if ident == mine and found == want and not _breaking(lease):
                    os.unlink(side)
                    mine = None
                    return ""
            mine = None
            return rel  # (the path's since the swap, written meanwhile: kept, named)
        finally:
            if mine is not None:
                try:
                    s = os.lstat(side)
                    if (s.st_dev, s.st_ino) == mine:
                        os.unlink(side)
                except FileNotFoundError:
                    pass


def unlinked_unheld(path: str, aside: bool = True, key: bytes | None = None) -> bool | None:
    """``path`` unlinked if it is a regular file no process holds open for writing, under a
    read lease (:func:`_leased`: while it is held, an opening for writing waits), for a
    restore's, an undo's, a merge's or a checkout's write through the mount (livewrite1,
    the thirty-fourth round): True when unlinked; False when a writer holds it (left as it
    is: its later bytes land where the path shows them); None when it is not a regular
    file (nothing done).

    ``aside`` (a file of the mount's upper layer; livewrite2): first linked to a side name,
    the path unlinked, then looked at again: an opening for writing that came after the
    lease waits for it, having looked the path up, and would then hold the unlinked file
    (every byte it wrote lost); where one waits, the file goes back to its path from the
    side name, the writer's (False), else the side name goes. (A link, not a rename: an
    overlayfs rename of a file the lower layer has too makes its whiteout the slow way,
    ~2 ms a file against ~0.5 ms for the link and the second unlink.) A file only of the
    lower layer (never written in this mount: a link would copy it up, an fsync each) is
    unlinked where it is, looked at just before. ``key``: the side name's (:func:`side_name`)."""
    with _held(path, read=False) as (found, _, lease):
        if found is None or found[0] == MODE_LINK:
            return None
        if found == IN_HANDS:
            return None if not st_.S_ISREG(os.lstat(path).st_mode) else False
        if _breaking(lease):
            return False
        if not aside or lease is None:
            os.unlink(path)
            return True
        side = os.path.join(os.path.dirname(path), side_name(key))
        try:
            os.link(path, side, follow_symlinks=False)
        except FileNotFoundError:
            return None  # (gone meanwhile: nothing to unlink)
        except OSError:
            os.unlink(path)  # (no link to be had there: as before)
            return True
        os.unlink(path)
        if _breaking(lease):
            _renamed(side, path)  # (a file made at the path meanwhile: both stay, the writer's)
            return False
        os.unlink(side)
        return True


def _replace(side: str, dest: str, expect: Check) -> str | None:
    """Where the kernel has no exchange: ``dest`` compared, then replaced (the window
    adopt2 left); "" when it is not the expected."""
    with _held(dest) as (found, _, _lease):
        if not expect(found):
            return ""
    os.replace(side, dest)
    return None
