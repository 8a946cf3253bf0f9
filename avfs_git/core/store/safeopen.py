"""A regular file opened for reading where a confined command can rename a link, a FIFO or
a directory over it while avfs reads (an overlay mount's upper layer): no link followed on
the way or at the end, no wait on a FIFO (docs/security.md; the twenty-second round's
attack13). :mod:`.packwriter` reads blobs through it; the workspace's readers of the upper
layer too."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager

_DIR = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # (open_regular's)
# the kernel's limit of a path given to a call (PATH_MAX, its NUL included): what a walk by
# descriptors reaches past it, a call by path never could (overlayupper's TOO_LONG)
PATH_MAX = 4096


class NotRegular(FileNotFoundError):
    """The path holds a link, a FIFO, a socket or a directory where a regular file was:
    replaced while it was being read (a confined command renames in the fork's upper
    layer while it runs). A FileNotFoundError: the readers that look again when a file
    went look again."""


def open_regular(path: str, root: str | None = None, held: HeldDirs | None = None) -> int:
    """A descriptor of the regular file at ``path``, opened for reading without following a
    link in its last step (``O_NOFOLLOW``) and without waiting on a FIFO (``O_NONBLOCK``,
    harmless to a regular file's reads); :class:`NotRegular` when something else is there.

    What avfs reads of a file a confined command can rename in (an overlay mount's upper
    layer) must be what the command could read: found in the twenty-second round
    (attack13), a link renamed over such a file while it was read had the host read
    the file the link names, outside the sandbox (``/root/.ssh/id_rsa``), and a FIFO held
    the reader for ever.

    ``root``: a directory above ``path`` whose own path is trusted; the directories between
    it and the file are the command's too, reached one at a time without following a link
    (a link renamed over one of them is :class:`NotRegular`). ``held``: the directories
    on the way kept open (:class:`HeldDirs`), each reached the same way once."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        if root is None or not path.startswith(root.rstrip("/") + "/"):
            fd = os.open(path, flags)
        elif held is not None:
            parent, _, name = path[len(root.rstrip("/")) + 1 :].rpartition("/")
            fd = os.open(name, flags, dir_fd=held.dir_fd(root, parent))
        else:
            *dirs, name = path[len(root.rstrip("/")) + 1 :].split("/")
            at = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                for d in dirs:
                    nxt = os.open(d, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=at)
                    os.close(at)
                    at = nxt
                fd = os.open(name, flags, dir_fd=at)
            finally:
                os.close(at)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENXIO, errno.ENOTDIR):  # a link; a socket; a link on the way
            raise NotRegular(errno.ENOENT, "not a regular file", path) from None
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotRegular(errno.ENOENT, "not a regular file", path)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_regular_at(root: str, rel: str, held: HeldDirs | None) -> tuple[int, os.stat_result]:
    """:func:`open_regular` of ``root/rel`` (``root`` trusted, ``rel`` below it) and the
    descriptor's ``fstat``: the one stat a reader of its bytes needs, not a second (and no
    path joined where ``held`` holds its directory: record5, an exec's status of its new
    files)."""
    if held is None:
        fd = open_regular(os.path.join(root, rel), root)
        return fd, os.fstat(fd)
    parent, _, name = rel.rpartition("/")
    try:
        fd = os.open(name, _FILE, dir_fd=held.dir_fd(root, parent))
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENXIO, errno.ENOTDIR):  # a link; a socket; a link on the way
            raise NotRegular(errno.ENOENT, "not a regular file", os.path.join(root, rel)) from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegular(errno.ENOENT, "not a regular file", os.path.join(root, rel))
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def open_dir(root: str, rel: str, flags: int = _DIR) -> int:
    """A descriptor of directory ``root/rel`` (``rel`` "": ``root`` itself) reached from
    ``root`` one directory at a time, no link followed (``O_NOFOLLOW|O_DIRECTORY`` each
    step: a link on the way is ``ENOTDIR`` or ``ELOOP``); ``flags`` the last step's
    (``O_RDONLY|O_DIRECTORY`` to list it). ``root``'s own path is trusted."""
    fd = os.open(root, (_DIR if rel else flags | os.O_DIRECTORY) | os.O_CLOEXEC)
    try:
        comps = rel.split("/") if rel else []
        for i, comp in enumerate(comps):
            last = i == len(comps) - 1
            nfd = os.open(
                comp, (flags | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC) if last else _DIR, dir_fd=fd
            )
            os.close(fd)
            fd = nfd
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextmanager
def beneath(root: str, rel: str) -> Iterator[str]:
    """``root/rel`` as ``/proc/PID/fd/N/NAME``: its parent reached from ``root`` by
    :func:`open_dir` and held open while the caller reads ``NAME`` in it (an ``lstat``,
    a ``readlink``, an extended attribute, all without following ``NAME`` itself).

    Where a confined command can rename a link over any directory below ``root`` while
    avfs reads (an overlay mount's upper layer), a read by the whole path follows such a
    link out of the fork: found in the twenty-third round (NAME=attack14), the agent's
    listing of a directory it swapped for a link to a host directory listed the host's
    names, and a status or a blob id asked of a file there hashed the host's file. A link
    on the way raises ``NotADirectoryError`` (a FileNotFoundError's sibling: "not there
    now")."""
    parent, _, name = rel.rpartition("/")
    try:
        fd = open_dir(root, parent)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise NotADirectoryError(errno.ENOTDIR, "a link on the way", os.path.join(root, rel)) from None
        raise
    try:
        yield f"/proc/{os.getpid()}/fd/{fd}/{name}" if name else f"/proc/{os.getpid()}/fd/{fd}"
    finally:
        os.close(fd)


def lstat_beneath(root: str, rel: str, held: HeldDirs | None = None) -> os.stat_result:
    """The ``lstat`` of ``root/rel`` reached as :func:`beneath` reaches it (``held``: its
    directory kept open, :class:`HeldDirs`); ``NotADirectoryError`` for a link on the way."""
    if held is None:
        with beneath(root, rel) as at:
            return os.lstat(at)
    parent, _, name = rel.rpartition("/")
    try:
        return os.stat(name, dir_fd=held.dir_fd(root, parent), follow_symlinks=False)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise NotADirectoryError(errno.ENOTDIR, "a link on the way", os.path.join(root, rel)) from None
        raise


class HeldDirs:
    """Directory descriptors below trusted roots, each reached as :func:`open_dir`
    reaches it (one directory at a time from the root, no link followed), kept open for a
    block of many reads in the same directories: a read there is then one call at its
    directory, not one a component from the root (record3: an exec's 12,285 new files
    were each reached from the layer's root four times, ~60 us each, by its status, the
    capture's two stats and the index's). What a descriptor held names stays a directory
    of the root's file system that was reached without a link, whatever is renamed since;
    the last :data:`LIMIT` are kept (:meth:`close` at the block's end). One thread's."""

    LIMIT = 64

    def __init__(self) -> None:
        self._fds: dict[tuple[str, str], int] = {}

    def dir_fd(self, root: str, rel: str) -> int:
        """The descriptor of directory ``root/rel`` (``rel`` "": the root), borrowed:
        valid until the next call; OSError as :func:`open_dir` raises it."""
        key = (root, rel)
        fd = self._fds.pop(key, None)
        if fd is None:
            comps = rel.split("/") if rel else []
            at, start = None, 0
            for i in range(len(comps), -1, -1):  # (the deepest directory on the way held)
                if (got := self._fds.get((root, "/".join(comps[:i])))) is not None:
                    at, start = got, i
                    break
            made: list[tuple[tuple[str, str], int]] = []
            try:
                if at is None:
                    at = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)  # (trusted: followed)
                    made.append(((root, ""), at))
                for i in range(start, len(comps)):
                    at = os.open(comps[i], _DIR, dir_fd=at)
                    made.append(((root, "/".join(comps[: i + 1])), at))
            except BaseException:
                for _, f in made:
                    os.close(f)
                raise
            fd = made.pop()[1] if made else at
            for k, f in made:  # (the directories on the way, for their other children)
                self._fds[k] = f
        self._fds[key] = fd  # (the last used last)
        while len(self._fds) > self.LIMIT:
            old = next(iter(self._fds))
            if old == key:
                break
            os.close(self._fds.pop(old))
        return fd

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()


_KINDS = {
    stat.S_IFIFO: "a FIFO",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a device",
    stat.S_IFBLK: "a device",
}


def read_settings(path: str, limit: int = 64 << 20) -> bytes | None:
    """The bytes of the settings file at ``path`` (the home's or a vault's ``config.json``,
    a ``policy.toml``); None when there is none. A link is followed (a person's dotfiles may
    be links); a FIFO is never waited on (``O_NONBLOCK``: a FIFO there held every command
    for ever) and, as a directory, a socket or a device, is an error naming the file.

    Raises:
        UnusablePathError: something other than a regular file is there.
        AvfsError: the file cannot be read (``from_oserror``: permissions, ...).
    """
    from ..errors import UnusablePathError, from_oserror

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # a socket (a directory opens: below)
            raise UnusablePathError(
                f"cannot use {path}: it is a socket, not a file", hint="remove it, or put the file back"
            ) from None
        raise from_oserror(exc, path) from exc
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = (
                "a directory" if stat.S_ISDIR(mode) else _KINDS.get(stat.S_IFMT(mode), "not a regular file")
            )
            raise UnusablePathError(
                f"cannot use {path}: it is {kind}, not a file",
                hint="remove it, or put the file back (nothing was read from it)",
                details={"path": path},
            )
        chunks = []
        left = limit + 1
        while left > 0 and (chunk := os.read(fd, min(left, 1 << 20))):
            chunks.append(chunk)
            left -= len(chunk)
    except OSError as exc:
        raise from_oserror(exc, path) from exc
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > limit:
        raise UnusablePathError(
            f"cannot use {path}: it is larger than {limit >> 20} MiB, not a settings file",
            hint="remove it, or put the file back",
            details={"path": path},
        )
    return data
