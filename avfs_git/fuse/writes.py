"""The writing side of the operations: modes and times, the namespace (mkdir, rmdir,
unlink, rename, symlink; no hard links or device files), creating, writing, truncating,
flushing, syncing and releasing files, and allocating space in them (``fallocate``). A read-only
view refuses them (EROFS).

A descriptor open for writing holds a shared ``flock`` on its overlay file, which tells a
concurrent checkpoint (any process) to keep the entry: nothing written before or after a
checkpoint is lost. Writes are journaled when a handle first becomes dirty and when it is
flushed, fsynced or released, so status, quota and "what changed since" stay true
(:mod:`.handles`).
"""

from __future__ import annotations

import ctypes
import errno
import os
from typing import Any

import mfusepy as fuse

from ..core.store import deeptree
from ..core.types import MODE_EXEC
from .handles import HandleTable
from .nested import NestedRepos
from .opsbase import Handle, translated

FALLOC_FL_KEEP_SIZE = 0x01  # (linux/falloc.h) the size stays, whatever is allocated
_libc = ctypes.CDLL(None, use_errno=True)  # (libc is in the process: no ldconfig run, fuse/libs.py)
_libc.fallocate.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong)


def _kept_times(real: str | int, times: tuple[int | None, int | None]) -> tuple[int, int]:
    """``times`` (access, modification) with each None replaced by the time ``real`` (a
    path, or a descriptor) has."""
    if times[0] is None or times[1] is None:
        st = os.fstat(real) if isinstance(real, int) else os.lstat(real)
        return (
            st.st_atime_ns if times[0] is None else int(times[0]),
            st.st_mtime_ns if times[1] is None else int(times[1]),
        )
    return int(times[0]), int(times[1])


# a nested repository's files are host files under the fork's state dir (``nested/``): they
# keep no setuid or setgid bit, which the mount (nosuid) never honoured anyway, so no copy of
# a program there runs as the person by its host path (twenty-second round, NAME=attack13)
NESTED_FILE_BITS = 0o1777


def _nested_mode(real: str, mode: int) -> int:
    """The mode a chmod of a nested repository's ``real`` sets: a directory's as asked
    (git's shared repositories set its setgid bit), a file's without setuid and setgid."""
    return mode & (0o7777 if os.path.isdir(real) and not os.path.islink(real) else NESTED_FILE_BITS)


def fallocate(fd: int, mode: int, offset: int, length: int) -> None:
    """fallocate(2) with its mode (Python's ``os.posix_fallocate`` has none)."""
    if _libc.fallocate(fd, mode, offset, length) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


class WriteOps(NestedRepos, HandleTable):
    """What a writable view does on top of reading (:class:`.view.ViewOps`)."""

    # -- metadata ----------------------------------------------------------------------------
    @translated
    def chmod(self, path: str, mode: int) -> int:
        self._writable()
        real = self._nested(path)
        if real is not None:
            os.chmod(real, _nested_mode(real, mode), follow_symlinks=False)
            return 0
        p = self._p(path)
        node = self._node(p)
        self.ws.guard_change(p, "chmod", is_dir=node.is_dir)
        if node.is_dir or node.is_link:
            return 0  # git keeps no directory or symlink modes
        self.ws.chmod(p, bool(mode & 0o111))
        return 0

    def chown(self, path: str, uid: int, gid: int) -> int:
        return 0  # git keeps no owners: accepted and ignored

    @translated
    def utimens(self, path: str, times: tuple[int | None, int | None] | None = None) -> int:
        """Set a file's times (None: now); a time given as None is kept as it is
        (``UTIME_OMIT``: :meth:`.libfuse.FastFUSE.utimens_fuse_3`)."""
        self._writable()
        real = self._nested(path)
        if real is not None:
            if times is None:
                os.utime(real, follow_symlinks=False)
            else:
                os.utime(real, ns=_kept_times(real, times), follow_symlinks=False)
            return 0
        p = self._p(path)
        node = self._node(p)
        self.ws.guard_change(p, "utimens", is_dir=node.is_dir, append=True)
        if node.is_dir:
            return 0  # directory times are not kept (git has none); see docs/fuse.md
        # files and symlinks keep their times on their overlay file (materialized once)
        node = self._materialize(p, node)
        if node.is_link:
            real = self.ws.file_path(node)
            assert real is not None
            if times is None:
                os.utime(real)
            else:
                os.utime(real, ns=_kept_times(real, times))
            return 0
        # a file's, held as a writer holds it: a checkpoint in another process may retire
        # it between the copy and the change (the times went to a file unlinked, ENOENT)
        fd = self._held_file(p, node)[0]
        try:
            if times is None:
                os.utime(fd)
            else:
                os.utime(fd, ns=_kept_times(fd, times))
        finally:
            os.close(fd)
        return 0

    # -- namespace ---------------------------------------------------------------------------
    @translated
    def mkdir(self, path: str, mode: int) -> int:
        self._writable()
        real = self._nested(path)
        if real is not None:
            self._nested_parent(real)
            os.mkdir(real, mode & 0o7777)
            return 0
        self._refuse_hidden_create(self._p(path))
        self.ws.mkdir(self._p(path))
        return 0

    @translated
    def rmdir(self, path: str) -> int:
        self._writable()
        real = self._nested(path)
        if real is not None:
            os.rmdir(real)
            self._nested_prune(real)
            return 0
        p = self._p(path)
        nested = self._nested_under(p)
        if nested is not None and os.listdir(nested):
            raise fuse.FuseOSError(errno.ENOTEMPTY)  # it holds a nested repository
        self.ws.rmdir(p)
        return 0

    @translated
    def unlink(self, path: str) -> int:
        self._writable()
        real = self._nested(path)
        if real is not None:
            os.unlink(real)
            self._nested_prune(real)
            return 0
        p = self._p(path)
        if self._node(p).is_dir:
            raise fuse.FuseOSError(errno.EISDIR)
        self.ws.remove(p)
        return 0

    @translated
    def rename(self, old: str, new: str) -> int:
        self._writable()
        real_old, real_new = self._nested(old), self._nested(new)
        if real_old is not None and real_new is not None:
            self._nested_parent(real_new)
            os.rename(real_old, real_new)
            self._nested_prune(real_old)
            return 0
        if real_old is not None or real_new is not None:
            raise fuse.FuseOSError(errno.EXDEV)  # in or out of a nested repository: copy
        po, pn = self._p(old), self._p(new)
        self._node(po)  # a hidden one is not there
        self._refuse_hidden_create(pn)
        moving = self._nested_under(po)
        if moving is not None:
            target = self.ws.node(pn)
            if target is not None and self._nested_under(pn) is not None:
                raise fuse.FuseOSError(errno.ENOTEMPTY)
        self.ws.rename(po, pn)
        self._handles_moved(po, pn)
        if moving is not None:
            # a directory holding nested repositories: they move with it
            dest = os.path.join(self._nested_root, pn)
            if os.path.isdir(dest):
                deeptree.rmtree(dest)  # left over from a directory removed outside the mount
            self._nested_parent(dest)
            os.rename(moving, dest)
            self._nested_prune(moving)
        return 0

    @translated
    def symlink(self, target: str, source: str) -> int:
        # fusepy's names: `target` is the new link's path, `source` what it points to
        self._writable()
        real = self._nested(target)
        if real is not None:
            self._nested_parent(real)
            os.symlink(source, real)
            return 0
        self._refuse_hidden_create(self._p(target))
        self.ws.symlink(source, self._p(target))
        return 0

    def link(self, target: str, source: str) -> int:
        raise fuse.FuseOSError(errno.EPERM)  # git has no hard links

    def mknod(self, path: str, mode: int, dev: int) -> int:
        raise fuse.FuseOSError(errno.EPERM)  # git keeps regular files, dirs and symlinks only

    # ENOSYS: the kernel stops asking (see :meth:`.view.ViewOps.getxattr`)
    def setxattr(self, path: str, name: str, value: bytes, options: int, position: int = 0) -> int:
        raise fuse.FuseOSError(errno.ENOSYS)

    def removexattr(self, path: str, name: str) -> int:
        raise fuse.FuseOSError(errno.ENOSYS)

    # -- files -------------------------------------------------------------------------------
    @translated
    def create(self, path: str, mode: int, fi: Any = None) -> int:
        self._writable()
        real = self._nested(path)
        if real is not None:
            self._nested_parent(real)
            fd = os.open(real, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, mode & NESTED_FILE_BITS)
            return self._new_handle(Handle(path, fd, None, True, nested=True))
        p = self._p(path)
        self._refuse_hidden_create(p)
        self.ws.write(p, b"", mode=MODE_EXEC if mode & 0o111 else None, parents=False)
        node = self._node(p)
        fh = self._open_rw(p, node, 0)
        self._handles[fh].created = True
        return fh

    @translated
    def write(self, path: str | None, data: bytes | memoryview, offset: int, fh: int) -> int:
        h = self._handle(fh)
        if not h.writable or h.fd is None:
            raise fuse.FuseOSError(errno.EBADF)
        if h.nested:
            return os.pwrite(h.fd, data, offset)
        if h.append_only and offset < os.fstat(h.fd).st_size:
            raise fuse.FuseOSError(errno.EPERM)  # the path policy's append_only: at the end only
        end = offset + len(data)
        if end > h.limit:
            # cheap bound per handle; recheck against the overlay before refusing. The
            # overlay counts this file at the size last recorded (flush, release): record
            # what the handle wrote so far first, or one long write (`dd count=500`) is
            # measured against a stale total and passes the limit bound by bound
            self.ws.record_sizes([h.path])
            h.limit = os.fstat(h.fd).st_size + max(0, self.ws.quota_left())
            if end > h.limit:
                raise fuse.FuseOSError(errno.EDQUOT)
        n = os.pwrite(h.fd, data, offset)
        if not h.dirty:
            # journal the first write now (git's fsmonitor and other processes must see the
            # path change), the rest at flush/release; a file this handle created is in the
            # journal already
            if not h.created:
                self.ws.note_written(h.path)
            h.dirty = True
        return n

    @translated
    def truncate(self, path: str, length: int, fh: int | None = None) -> int:
        self._writable()
        h = self._handles.get(fh) if fh is not None else None
        if h is not None and h.nested and h.fd is not None:
            os.ftruncate(h.fd, length)
            return 0
        real = self._nested(path) if h is None else None
        if real is not None:
            os.truncate(real, length)
            return 0
        if h is not None and h.append_only:
            raise fuse.FuseOSError(errno.EPERM)
        if h is None or not h.writable:
            self.ws.guard_change(self._p(path), "truncate")
        if h is not None and h.fd is not None and h.writable:
            os.ftruncate(h.fd, length)
            h.dirty = True
            self._note(h)
            return 0
        p = self._p(path)
        # held as a writer holds it (see utimens): a truncate of a file a checkpoint was
        # retiring was lost with it
        fd = self._held_file(p, self._materialize(p, self._node(p)))[0]
        try:
            os.ftruncate(fd, length)
            self.ws.note_written(p)
        finally:
            os.close(fd)
        return 0

    @translated
    def fallocate(self, path: str | None, mode: int, offset: int, size: int, fh: int) -> int:
        """fallocate(2) of an open file, done on its overlay file: the local disk's answer
        (allocate, extend unless ``FALLOC_FL_KEEP_SIZE``, punch a hole, zero a range; or
        its ``EOPNOTSUPP``). Without it every caller got ``EOPNOTSUPP``: util-linux's
        ``fallocate``, and programs that do not fall back to writing zeros as glibc's
        ``posix_fallocate`` does."""
        h = self._handle(fh)
        if not h.writable or h.fd is None:
            raise fuse.FuseOSError(errno.EBADF)
        if h.nested:
            fallocate(h.fd, mode, offset, size)
            return 0
        if h.append_only and (mode & ~FALLOC_FL_KEEP_SIZE or offset < os.fstat(h.fd).st_size):
            raise fuse.FuseOSError(errno.EPERM)  # the path policy's append_only: add, never change
        end = offset + size
        if end > h.limit:  # the quota, as write does (blocks kept past the size count too)
            self.ws.record_sizes([h.path])
            h.limit = os.fstat(h.fd).st_size + max(0, self.ws.quota_left())
            if end > h.limit:
                raise fuse.FuseOSError(errno.EDQUOT)
        fallocate(h.fd, mode, offset, size)
        h.dirty = True
        self._note(h)
        return 0

    @translated
    def flush(self, path: str, fh: int) -> int:
        if self.read_only:
            raise fuse.FuseOSError(errno.ENOSYS)  # nothing to flush: the kernel stops asking
        h = self._handles.get(fh)
        if h is not None:
            self._note(h, defer=True)
        return 0

    @translated
    def fsync(self, path: str, datasync: int, fh: int) -> int:
        if self.read_only:
            raise fuse.FuseOSError(
                errno.ENOSYS
            )  # nothing to sync (no handle either): the kernel stops asking
        h = self._handle(fh)
        if h.fd is not None:
            if datasync:
                os.fdatasync(h.fd)
            else:
                os.fsync(h.fd)
        self._note(h)
        self._record_sizes()
        return 0

    @translated
    def release(self, path: str, fh: int) -> int:
        with self._lock:
            h = self._handles.pop(fh, None)
        if h is None:
            return 0
        try:
            self._note(h, defer=True)
        finally:
            if h.fd is not None:
                os.close(h.fd)  # also drops the "in use" flock
            if h.stream is not None:
                h.stream.close()
            for old in h.spent:
                os.close(old) if isinstance(old, int) else old.close()
        return 0
