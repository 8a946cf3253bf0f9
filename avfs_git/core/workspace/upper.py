"""The upper layer of a workspace: a real directory in overlayfs's format.

A fork mounted with the overlay backend (:mod:`avfs_git.fuse.daemon`) is kernel overlayfs:
``<ws>/upper`` on the local disk over avfs's read-only FUSE view of the base commit and the
overlay's entries (``<ws>/lower``). The kernel writes ``upper/`` itself; avfs reads it in
the format the kernel documents (``Documentation/filesystems/overlayfs.rst``):

- a regular file, symlink or directory is what the path holds now; a directory whose lower
  counterpart exists and that carries no opaque marker merges with it;
- a *whiteout* (a character device 0:0, or a zero-size file with the ``overlay.whiteout``
  xattr) says the path is gone;
- an *opaque* directory (xattr ``overlay.opaque`` = ``y``) hides everything below it in
  the lower layer;
- a *redirected* directory (xattr ``overlay.redirect``: a directory the lower layer holds,
  renamed in the mount) shows the lower directory the redirect names, not its own path's;
- fifos, sockets and device nodes are real in the live tree; git cannot record them: a
  checkpoint leaves them out and reports them (:func:`special_kind`).

The xattrs are ``trusted.overlay.*``: avfs mounts overlayfs as root, without ``userxattr``
(docs/fuse.md, "Known limits"), and only those are read. The kernel ignores ``user.overlay.*`` in such a
mount, and anyone who writes a file through the mount can set them on it: a confined
command did (``setfattr -n user.overlay.whiteout``, ``opaque``, ``redirect``), and avfs,
which read both, dropped a file the mount showed from the exec's commit and from the fork
once unmounted (found in the eighteenth round, NAME=attack9). A ``userxattr`` mount, should
avfs ever make one, needs its own reader: there the kernel refuses ``user.overlay.*``
through the mount.

This module only reads ``upper/`` (and writes the small side files that give symlinks a
content file): while the overlay is mounted, changing ``upper/`` behind the kernel's back is
undefined (overlayfs.rst, "Changes to underlying filesystems"). Changes to a mounted fork go
through its mount point; with nothing mounted, :meth:`.workspace.Workspace.fold_upper`
moves the layer into the overlay's entries.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import struct
from collections.abc import Callable, Iterator

from ..store.safeopen import open_dir

WHITEOUT_XATTRS = ("trusted.overlay.whiteout",)
OPAQUE_XATTRS = ("trusted.overlay.opaque",)
REDIRECT_XATTRS = ("trusted.overlay.redirect",)

# what a path of the upper layer is
ABSENT = 0  # not in the upper layer: the lower one shows through
GONE = 1  # a whiteout
REG = 2
LINK = 3
DIR = 4  # merges with the lower directory (when there is one)
OPAQUE = 5  # a directory hiding the lower one
SPECIAL = 6  # fifo, socket, device node: live only


def _xattr(path: str, names: tuple[str, ...]) -> bytes | None:
    for name in names:
        try:
            return os.getxattr(path, name, follow_symlinks=False)
        except OSError as exc:
            if exc.errno in (errno.ENODATA, errno.EOPNOTSUPP, errno.EPERM, errno.EACCES):
                continue
            if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                return None
            raise
    return None


def classify(path: str, st: os.stat_result) -> int:
    """What the upper layer's ``path`` (``st``: its lstat) says of its workspace path."""
    m = st.st_mode
    if stat.S_ISREG(m):
        if st.st_size == 0 and _xattr(path, WHITEOUT_XATTRS) is not None:
            return GONE
        return REG
    if stat.S_ISDIR(m):
        return OPAQUE if _xattr(path, OPAQUE_XATTRS) == b"y" else DIR
    if stat.S_ISLNK(m):
        return LINK
    if stat.S_ISCHR(m) and st.st_rdev == 0:
        return GONE
    return SPECIAL


def merge_with_lower(path: str) -> None:
    """Take the opaque mark off the upper layer's directory ``path``: it then merges with
    the lower one (what the lower layer holds below it shows through), as a directory the
    kernel made over a lower one does."""
    try:
        os.removexattr(path, OPAQUE_XATTRS[0], follow_symlinks=False)
    except OSError:
        pass  # (none: ENODATA)


def redirect(path: str) -> str | None:
    """Where a renamed directory's lower content is (overlayfs ``redirect_dir``): an
    absolute path from the layer's root ("/a/b"), or a name in the parent's lower dir."""
    raw = _xattr(path, REDIRECT_XATTRS)
    return None if raw is None else os.fsdecode(raw)


def dir_marks(path: str) -> tuple[str | None, bool]:
    """(redirect, opaque) of an upper-layer directory, from one ``listxattr`` (most carry
    neither: then no more calls)."""
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return None, False
    if not names:
        return None, False
    r = redirect(path) if REDIRECT_XATTRS[0] in names else None
    opaque = OPAQUE_XATTRS[0] in names and _xattr(path, OPAQUE_XATTRS) == b"y"
    return r, opaque


def special_kind(st: os.stat_result) -> str:
    """The name a checkpoint reports a path it could not record under."""
    m = st.st_mode
    if stat.S_ISFIFO(m):
        return "fifo"
    if stat.S_ISSOCK(m):
        return "socket"
    if stat.S_ISCHR(m):
        return "char_device"
    if stat.S_ISBLK(m):
        return "block_device"
    return "unknown"


def lstat(path: str) -> os.stat_result | None:
    """``path``'s lstat; None when it is not there, or when its path is longer than the
    host takes (``ENAMETOOLONG``: a command can make such a tree in the mount, a
    directory at a time; avfs records none of it, :data:`TOO_LONG`)."""
    try:
        return os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            return None
        raise


# what a checkpoint reports for a tree of the upper layer whose host paths are longer than
# PATH_MAX: the kernel makes it (one directory at a time, each relative to the last), but
# no path-based call reaches it, and its workspace paths are past what a fork holds
TOO_LONG = "path_too_long"


def link_file(links_dir: str, target: bytes) -> str:
    """The name of a side file holding a symlink's target (its git blob's bytes), written
    once per distinct target: so that a symlink of the upper layer reads, hashes and packs
    like any overlay file."""
    from ..store.digests import sha1

    name = sha1(target).hexdigest()
    path = os.path.join(links_dir, name)
    if not os.path.exists(path):
        os.makedirs(links_dir, exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "wb") as fh:
            fh.write(target)
        os.replace(tmp, path)
    return name


Ident = tuple[int, int]  # a directory's (device, inode), as its parent's listing gave it


def open_listed(upper_dir: str, path: str, ident: Ident | None) -> int | None:
    """A descriptor to list the upper layer's directory ``path`` by: the directory whose
    (device, inode) its parent's listing gave (``ident``), or, with None, the one reached
    from the layer's root without following a link (:func:`.safeopen.open_dir`); None when
    that is not what is there now (gone, or renamed away, a link or another directory put
    in its place: the command's writes go on while avfs reads). What is in it is then asked
    of the descriptor (``os.scandir(fd)``, ``/proc/PID/fd/N/NAME``), never of a path.

    A walk of the upper layer by its paths followed a directory a running command swapped
    for a link (found in the twenty-third round, NAME=attack14): a listing gave the host
    directory's names and sizes, and the mount daemon's watch of a new directory walked
    the host's tree below the link, adding an inotify watch to each of its directories
    (15,512 for ``/usr``: two minutes of the daemon's time, every answer of git's
    fsmonitor hook and the agent's change stream naming the host's paths as the fork's)."""
    try:
        if ident is None:
            return open_dir(upper_dir, path, os.O_RDONLY)
        fd = os.open(
            os.path.join(upper_dir, path), os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
        )
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENAMETOOLONG):
            return None
        raise
    st = os.fstat(fd)
    if (st.st_dev, st.st_ino) != ident:
        os.close(fd)
        return None
    return fd


def entries(upper_dir: str, skip: frozenset[str] = frozenset()) -> Iterator[tuple[str, str, os.stat_result]]:
    """(workspace path, real path, lstat) of everything in the upper layer, parents before
    their children; ``.git`` entries (a nested repository's, the pinned worktree link) and
    what the kernel removed while it was listed are left out, and so are the names of the
    top directory in ``skip`` with all they hold (not read)."""
    stack = [("", upper_dir)]
    while stack:
        p, real = stack.pop()
        try:
            it = os.scandir(real)
        except (FileNotFoundError, NotADirectoryError):
            continue
        with it:
            for de in it:
                if de.name == ".git" or (not p and de.name in skip):
                    continue
                try:
                    st = de.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                except OSError as exc:
                    if exc.errno == errno.ENAMETOOLONG:
                        continue  # (TOO_LONG: nothing reaches it by its path)
                    raise
                child = f"{p}/{de.name}" if p else de.name
                yield child, de.path, st
                if stat.S_ISDIR(st.st_mode):
                    stack.append((child, de.path))


def is_empty(upper_dir: str) -> bool:
    try:
        with os.scandir(upper_dir) as it:
            return next(it, None) is None
    except FileNotFoundError:
        return True


def root_names(upper_dir: str) -> frozenset[str]:
    """The names in the upper layer's root directory, the mount's own ``.git`` left out
    (none where there is no such directory)."""
    try:
        return frozenset(n for n in os.listdir(upper_dir) if n != ".git")
    except (FileNotFoundError, NotADirectoryError):
        return frozenset()


# linux/fs.h: FS_IOC_GETFLAGS/SETFLAGS (the kernel reads and writes an int) and
# FS_IMMUTABLE_FL, what `chattr +i` sets
_GETFLAGS = 0x80086601
_SETFLAGS = 0x40086602
IMMUTABLE_FL = 0x00000010


def set_immutable(path: str, on: bool) -> bool:
    """Set (``on``) or clear the immutable flag of the regular file ``path``, as ``chattr
    +i`` / ``-i`` do, without their process (a mount's daemon pins ``.git`` on the way to
    its answer); False, nothing changed, where the file or its file system says no. A
    symbolic link is not followed."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        flags = struct.unpack("=i", fcntl.ioctl(fd, _GETFLAGS, b"\0" * 4))[0]
        want = flags | IMMUTABLE_FL if on else flags & ~IMMUTABLE_FL
        if want != flags:
            fcntl.ioctl(fd, _SETFLAGS, struct.pack("=i", want))
    except OSError:
        return False
    finally:
        os.close(fd)
    return True


def drop_gitfile(upper_dir: str) -> None:
    """Take away the immutable ``.git`` file an overlay mount pins in its upper layer (the
    worktree link; fuse/daemon.py), left behind when its daemon was killed."""
    path = os.path.join(upper_dir, ".git")
    if not os.path.lexists(path) or os.path.isdir(path):
        return
    set_immutable(path, False)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


ORIGIN_XATTRS = ("trusted.overlay.origin",)


def tidy_for_mount(
    upper_dir: str, lower_kind: Callable[[str], str | None], forget: Callable[[str], None]
) -> tuple[int, int]:
    """Before the upper layer is mounted again over a lower layer that may have changed
    since (the base moved: ``lower_kind(path)`` says what the lower layer now has under
    the upper layer's ``path``, redirects followed: None, ``"dir"`` or ``"other"``):

    - a whiteout of a path the lower layer no longer has is removed: the kernel lists a
      whiteout in a directory with no lower counterpart as a name whose lookup fails;
    - a directory that no longer has a lower counterpart is made opaque, as overlayfs makes
      a directory it creates over nothing: otherwise, once a checkpoint puts that path in
      the base, the kernel (which found no lower directory there) removes files in it
      without whiteouts while every reader sees the base's copies come back.

    Either way what the lower layer's entries still hold below that path (pinned trees the
    kernel no longer reaches) is hidden there, and is dropped first (``forget(path)``), so
    that no reader sees it once the whiteout is gone. Returns (whiteouts removed,
    directories made opaque)."""
    gone = opaque = 0
    for path, real, st in entries(upper_dir):
        kind = classify(real, st)
        if kind == GONE and lower_kind(path) is None:
            forget(path)
            try:
                os.unlink(real)
                gone += 1
            except FileNotFoundError:
                pass
        elif kind == DIR and redirect(real) is None and lower_kind(path) != "dir":
            forget(path)
            os.setxattr(real, OPAQUE_XATTRS[0], b"y", follow_symlinks=False)
            opaque += 1
    return gone, opaque


def drop_origins(upper_dir: str) -> int:
    """Remove the copy-up origins (``overlay.origin``: a file handle of the lower inode a
    file was copied up from) from the upper layer, before it is mounted again: they name
    inodes of a FUSE connection that is gone, and overlayfs answered ``ESTALE`` for such
    files after a remount. Only inode numbers follow origins (a copied-up file then reports
    its own). Returns how many were removed."""
    n = 0
    for _path, real, _st in entries(upper_dir):
        for name in ORIGIN_XATTRS:
            try:
                os.removexattr(real, name, follow_symlinks=False)
                n += 1
            except OSError:
                pass  # none (ENODATA), or a symlink/special without xattrs
    return n


def watch_budget(value: object) -> int:
    """The watches a mount may hold: ``value`` (:data:`.upperwatch.BUDGET_KEY` of a config, when a whole
    number from 1), else half the user's ``max_user_watches`` (at least 1,024)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    try:
        with open("/proc/sys/fs/inotify/max_user_watches", "rb") as f:
            return max(1024, int(f.read()) // 2)
    except (OSError, ValueError):
        return 65_536
