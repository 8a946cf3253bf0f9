"""The POSIX contract of the live tree, as a differential suite (issue 15).

Every entry of ``CHECKS`` is a small function that makes real system calls in an empty
directory and returns what it observed (values, modes, errno names): never a verdict of
its own. The test runs each check twice, in a directory on the local disk (the reference)
and in a mounted fork, and asserts both observed the same. A backend is one way to mount
a fork: ``overlay`` (kernel overlayfs: an upper directory on the local disk over avfs's
read-only FUSE view of the fork's base) and ``fuse`` (the pure-FUSE mount, the fallback).

Each check's directory already holds what git can hold (``base.txt``, ``base.sh`` 0755,
``sub/inner.txt``, a symlink ``link -> base.txt``): in the mounts these come from the fork's
checkpoint (the base layer), in the reference they are written the same way. A check may
use them (changing a file of the base is a different path through a mount than changing a
new one) or ignore them.

The overlay backend's one exception is ``OVERLAY_CHOSEN`` (speed over an errno; besides
``OVERLAYFS_ITSELF``, the kernel's own). The pure-FUSE backend has ``FUSE_KNOWN``: each entry
names a check whose result differs from the local disk and why; it is mirrored in
docs/fuse.md ("Known differences from the local disk"), and a listed check that starts
agreeing fails the test, so the list only shrinks.
"""

from __future__ import annotations

import ast
import contextlib
import ctypes
import ctypes.util
import errno
import mmap
import os
import shutil
import socket
import stat
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pygit2
import pytest

from avfs_git.core.operations import checkpoint
from avfs_git.core.vaults.home import Home
from avfs_git.mount.side import MOUNT_SIDE
from avfs_git.ops import mounts

from ..conftest import AUTHOR, _fsck_every_vault, layers_switch, skip_outside_ci
from .backends import MOUNTS

Check = Callable[[str], Any]
CHECKS: dict[str, Check] = {}


def check(fn: Check) -> Check:
    CHECKS[fn.__name__.removeprefix("check_")] = fn
    return fn


# -- helpers: results are plain data (errno names, not numbers) --------------------------------


def err(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> str:
    """``"ok"`` or the errno name ``fn(*args)`` failed with."""
    try:
        out = fn(*args, **kwargs)
        if isinstance(out, int) and fn is os.open:
            os.close(out)
    except OSError as exc:
        return errno.errorcode.get(exc.errno or 0, str(exc.errno))
    return "ok"


def mode(p: str) -> str:
    return oct(os.lstat(p).st_mode)


def put(p: str, data: bytes = b"") -> None:
    with open(p, "wb") as fh:
        fh.write(data)


def get(p: str) -> bytes:
    with open(p, "rb") as fh:
        return fh.read()


def seed(
    name: str, writer: Callable[[str, bytes, int], object], linker: Callable[[str, str], object]
) -> None:
    """What a check's directory holds before it runs (git-representable only)."""
    writer(f"{name}/base.txt", b"base text\n", 0o644)
    writer(f"{name}/base.sh", b"#!/bin/sh\necho base\n", 0o755)
    writer(f"{name}/sub/inner.txt", b"inner\n", 0o644)
    linker("base.txt", f"{name}/link")


def seed_native(root: str, name: str) -> None:
    def writer(rel: str, data: bytes, m: int) -> None:
        p = os.path.join(root, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        put(p, data)
        os.chmod(p, m)

    def linker(target: str, rel: str) -> None:
        os.symlink(target, os.path.join(root, rel))

    seed(name, writer, linker)


_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW = 0x100
AT_EMPTY_PATH = 0x1000
UTIME_NOW = (1 << 30) - 1
UTIME_OMIT = (1 << 30) - 2
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2


class Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


def utimensat(p: str, atime: tuple[int, int], mtime: tuple[int, int], flags: int = 0) -> None:
    times = (Timespec * 2)(Timespec(*atime), Timespec(*mtime))
    if _libc.utimensat(AT_FDCWD, os.fsencode(p), times, flags) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), p)


def linkat_empty_path(fd: int, dest: str) -> None:
    """Give the open file ``fd`` a name (``linkat(fd, "", ..., AT_EMPTY_PATH)``; root only)."""
    if _libc.linkat(fd, b"", AT_FDCWD, os.fsencode(dest), AT_EMPTY_PATH) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), dest)


def renameat2(a: str, b: str, flags: int) -> None:
    if _libc.renameat2(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), flags) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), a)


@contextlib.contextmanager
def umask(m: int) -> Iterator[None]:
    old = os.umask(m)
    try:
        yield
    finally:
        os.umask(old)


@contextlib.contextmanager
def cwd(d: str) -> Iterator[None]:
    old = os.getcwd()
    os.chdir(d)
    try:
        yield
    finally:
        os.chdir(old)


def as_nobody(d: str, fn: Callable[[], Any]) -> Any:
    """``fn()`` run as uid/gid 65534 in a child process whose working directory is ``d``,
    entered as root before the switch (so the reference's private parents do not matter)."""
    fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    r, w = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter(
            "ignore", DeprecationWarning
        )  # fork() with threads: the child only makes syscalls
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            os.close(r)
            os.fchdir(fd)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            os.write(w, repr(run_check(lambda _: fn(), d)).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    os.close(fd)
    chunks = []
    while chunk := os.read(r, 65536):
        chunks.append(chunk)
    os.close(r)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the unprivileged child failed"
    return ast.literal_eval(b"".join(chunks).decode())


# -- the checks --------------------------------------------------------------------------------


@check
def check_chmod_modes(d: str) -> Any:
    out = []
    put(f"{d}/new")
    for target in ("new", "base.txt", "base.sh"):
        for m in (0o111, 0o000, 0o4755, 0o2755, 0o1777, 0o640, 0o7777):
            os.chmod(f"{d}/{target}", m)
            out.append((target, oct(m), mode(f"{d}/{target}")))
    for target in ("sub", "."):
        for m in (0o700, 0o1777, 0o2755, 0o555, 0o755):
            os.chmod(f"{d}/{target}", m)
            out.append((target, oct(m), mode(f"{d}/{target}")))
    os.chmod(f"{d}/link", 0o600)  # follows the link
    out.append(("link", mode(f"{d}/link"), mode(f"{d}/base.txt")))
    return out


@check
def check_umask_on_create(d: str) -> Any:
    out = []
    for um in (0o022, 0o027, 0o077, 0o000):
        with umask(um):
            fd = os.open(f"{d}/f{um:o}", os.O_CREAT | os.O_WRONLY, 0o777)
            os.close(fd)
            os.mkdir(f"{d}/d{um:o}", 0o777)
            out.append((oct(um), mode(f"{d}/f{um:o}"), mode(f"{d}/d{um:o}")))
    return out


@check
def check_fifo(d: str) -> Any:
    p = f"{d}/fifo"
    os.mkfifo(p, 0o640)
    st = os.lstat(p)
    r = os.open(p, os.O_RDONLY | os.O_NONBLOCK)
    w = os.open(p, os.O_WRONLY)
    os.write(w, b"through the fifo")
    got = os.read(r, 100)
    os.close(w)
    eof = os.read(r, 100)
    os.close(r)
    entry: list[Any] = [(e.name, e.is_file(), e.is_dir()) for e in os.scandir(d) if e.name == "fifo"]
    with umask(0o027):
        os.mkfifo(f"{d}/masked", 0o666)
    entry.append(mode(f"{d}/masked"))
    os.rename(p, f"{d}/fifo2")
    st2 = os.lstat(f"{d}/fifo2")
    os.unlink(f"{d}/fifo2")
    return (
        stat.S_ISFIFO(st.st_mode),
        oct(st.st_mode),
        got,
        eof,
        entry,
        stat.S_ISFIFO(st2.st_mode),
        err(os.lstat, p),
    )


@check
def check_unix_socket(d: str) -> Any:
    with (
        cwd(d),
        contextlib.ExitStack() as stack,
    ):  # relative names: a mount's path may be longer than sun_path
        srv = stack.enter_context(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM))
        srv.bind("sock")
        srv.listen(1)
        st = os.lstat("sock")
        cli = stack.enter_context(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM))
        cli.connect("sock")
        conn = stack.enter_context(srv.accept()[0])
        cli.sendall(b"over the socket")
        got = conn.recv(100)
        other = stack.enter_context(socket.socket(socket.AF_UNIX))
        again = err(other.bind, "sock")
        os.unlink("sock")
    return (stat.S_ISSOCK(st.st_mode), got, again, err(os.lstat, f"{d}/sock"))


@check
def check_device_nodes(d: str) -> Any:
    os.mknod(f"{d}/null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.mknod(f"{d}/loop", stat.S_IFBLK | 0o600, os.makedev(7, 0))
    out: list[Any] = []
    for n in ("null", "loop"):
        st = os.lstat(f"{d}/{n}")
        out.append((n, oct(st.st_mode), os.major(st.st_rdev), os.minor(st.st_rdev)))
    os.mknod(f"{d}/reg", stat.S_IFREG | 0o600)
    out.append(("mknod reg", oct(os.lstat(f"{d}/reg").st_mode), os.lstat(f"{d}/reg").st_size))
    out.append(("exists", err(os.mknod, f"{d}/null", stat.S_IFCHR | 0o600, os.makedev(1, 3))))
    return out


@check
def check_hard_links(d: str) -> Any:
    out: list[Any] = []
    put(f"{d}/a", b"one")
    for src in ("a", "base.txt"):
        os.link(f"{d}/{src}", f"{d}/{src}.2")
        s1, s2 = os.lstat(f"{d}/{src}"), os.lstat(f"{d}/{src}.2")
        out.append((src, s1.st_nlink, s2.st_nlink, s1.st_ino == s2.st_ino))
        with open(f"{d}/{src}.2", "ab") as fh:
            fh.write(b"+via link")
        out.append(get(f"{d}/{src}"))
        os.chmod(f"{d}/{src}.2", 0o600)
        out.append(mode(f"{d}/{src}"))
        os.unlink(f"{d}/{src}")
        out.append((os.lstat(f"{d}/{src}.2").st_nlink, get(f"{d}/{src}.2")))
    os.link(f"{d}/a.2", f"{d}/sub/a.3")
    os.rename(f"{d}/a.2", f"{d}/sub/a.3")  # both names one file: a no-op
    out.append((sorted(os.listdir(d)), sorted(os.listdir(f"{d}/sub"))))
    out.append(("dir", err(os.link, f"{d}/sub", f"{d}/sub2")))
    out.append(("exists", err(os.link, f"{d}/sub/a.3", f"{d}/base.sh")))
    os.link(f"{d}/link", f"{d}/link.2", follow_symlinks=False)  # a link to the symlink itself
    out.append((os.readlink(f"{d}/link.2"), os.lstat(f"{d}/link.2").st_nlink))
    return out


@check
def check_xattrs(d: str) -> Any:
    out: list[Any] = []
    put(f"{d}/new")
    for target in ("new", "base.txt", "sub"):
        p = f"{d}/{target}"
        os.setxattr(p, "user.colour", b"blue")
        os.setxattr(p, "user.empty", b"")
        os.setxattr(p, "user.big", bytes(range(256)) * 3)
        out.append((target, os.getxattr(p, "user.colour"), os.getxattr(p, "user.empty")))
        out.append(os.getxattr(p, "user.big") == bytes(range(256)) * 3)
        out.append(sorted(n for n in os.listxattr(p) if n.startswith("user.")))
        out.append(err(os.setxattr, p, "user.colour", b"red", os.XATTR_CREATE))
        out.append(err(os.setxattr, p, "user.none", b"x", os.XATTR_REPLACE))
        os.setxattr(p, "user.colour", b"red", os.XATTR_REPLACE)
        out.append(os.getxattr(p, "user.colour"))
        os.removexattr(p, "user.colour")
        out.append((err(os.getxattr, p, "user.colour"), err(os.removexattr, p, "user.colour")))
        out.append(sorted(n for n in os.listxattr(p) if n.startswith("user.")))
    os.rename(f"{d}/new", f"{d}/moved")
    out.append(os.getxattr(f"{d}/moved", "user.empty"))
    return out


@check
def check_xattrs_of_base(d: str) -> Any:
    # a file of the base nobody changed: no attributes, as a fresh file on disk
    out: list[Any] = [(err(os.getxattr, f"{d}/base.sh", "user.missing"), err(os.listxattr, f"{d}/base.sh"))]
    out.append(err(os.getxattr, f"{d}/sub/inner.txt", "user.missing"))
    out.append(err(os.removexattr, f"{d}/base.txt", "user.missing"))
    out.append(err(os.getxattr, f"{d}/base.txt", "security.capability"))
    return out


@check
def check_ownership(d: str) -> Any:
    out: list[Any] = []
    put(f"{d}/new")
    for target in ("new", "base.txt", "sub"):
        p = f"{d}/{target}"
        os.chown(p, 1234, 5678)
        st = os.lstat(p)
        out.append((target, st.st_uid, st.st_gid))
        os.chown(p, -1, 99)
        st = os.lstat(p)
        out.append((target, st.st_uid, st.st_gid))
    os.lchown(f"{d}/link", 4321, 8765)
    lst, tst = os.lstat(f"{d}/link"), os.stat(f"{d}/link")
    out.append(("link", lst.st_uid, lst.st_gid, tst.st_uid, tst.st_gid))
    os.chmod(f"{d}/base.sh", 0o6755)
    os.chown(f"{d}/base.sh", 1000, 1000)  # clears set-user-ID and set-group-ID
    out.append(mode(f"{d}/base.sh"))
    # a set-group-ID directory hands its group down (BSD semantics)
    os.chown(f"{d}/sub", 0, 5678)
    os.chmod(f"{d}/sub", 0o2775)
    put(f"{d}/sub/child")
    os.mkdir(f"{d}/sub/kid")
    out.append((os.lstat(f"{d}/sub/child").st_gid, os.lstat(f"{d}/sub/kid").st_gid, mode(f"{d}/sub/kid")))
    return out


def _times(p: str) -> tuple[int, int]:
    st = os.lstat(p)
    return st.st_atime_ns, st.st_mtime_ns


@check
def check_utimensat(d: str) -> Any:
    """Explicit times to the nanosecond, before 1970 and after 2038, on files and symlinks."""
    out: list[Any] = []
    put(f"{d}/new")
    for target in ("new", "base.txt", "base.sh"):
        p = f"{d}/{target}"
        utimensat(p, (1_000_000_000, 123_456_789), (1_500_000_000, 987_654_321))
        out.append((target, _times(p)))
        os.utime(p, ns=(-1_000_000_000, 4_000_000_000_000_000_001))
        out.append((target, _times(p)))
    utimensat(f"{d}/link", (1_111_111_111, 1), (1_222_222_222, 2), AT_SYMLINK_NOFOLLOW)
    out.append(("link", os.lstat(f"{d}/link").st_mtime_ns, os.stat(f"{d}/link").st_mtime_ns))
    utimensat(f"{d}/link", (1_333_333_333, 3), (1_444_444_444, 4))  # follows the link
    out.append(("link", os.lstat(f"{d}/link").st_mtime_ns, _times(f"{d}/base.txt")))
    return out


@check
def check_utime_omit_now(d: str) -> Any:
    """``UTIME_OMIT`` leaves a time as it was, ``UTIME_NOW`` sets the current time."""
    out: list[Any] = []
    put(f"{d}/new")
    for target in ("new", "base.txt"):
        p = f"{d}/{target}"
        utimensat(p, (1_000_000_000, 123_456_789), (1_500_000_000, 987_654_321))
        utimensat(p, (0, UTIME_OMIT), (2_000_000_000, 1))
        out.append((target, _times(p)))
        utimensat(p, (1_700_000_000, 5), (0, UTIME_OMIT))
        out.append((target, _times(p)))
        before = time.time_ns()
        utimensat(p, (0, UTIME_OMIT), (0, UTIME_NOW))
        after = time.time_ns()
        atime, mtime = _times(p)
        # the kernel's clock is coarse: "now" is within a second of the call
        out.append((target, atime, before - 1_000_000_000 <= mtime <= after + 1_000_000_000))
        utimensat(p, (0, UTIME_OMIT), (0, UTIME_OMIT))
        out.append((target, _times(p)[0]))
    return out


@check
def check_dir_times(d: str) -> Any:
    """utimensat on directories (make, rsync -t and tar set them)."""
    out: list[Any] = []
    os.mkdir(f"{d}/new")
    for target in ("new", "sub", "."):
        p = f"{d}/{target}"
        utimensat(p, (1_000_000_000, 123_456_789), (1_500_000_000, 987_654_321))
        out.append((target, _times(p)))
        os.utime(p, ns=(-1_000_000_000, 4_000_000_000_000_000_001))
        out.append((target, _times(p)))
    return out


@check
def check_times_follow_changes(d: str) -> Any:
    """Writing a file moves its mtime; creating or removing a name moves its directory's."""
    out: list[Any] = []
    old = (1_000_000_000, 1_000_000_000)
    put(f"{d}/new", b"x")
    for target in ("new", "base.txt"):
        os.utime(f"{d}/{target}", ns=old)
        with open(f"{d}/{target}", "ab") as fh:
            fh.write(b"more")
        out.append((target, os.lstat(f"{d}/{target}").st_mtime_ns > old[1]))
        os.utime(f"{d}/{target}", ns=old)
        os.truncate(f"{d}/{target}", 1)
        out.append((target, os.lstat(f"{d}/{target}").st_mtime_ns > old[1]))
    for op in ("create", "unlink", "mkdir", "rename"):
        os.utime(f"{d}/sub", ns=old)
        if op == "create":
            put(f"{d}/sub/c")
        elif op == "unlink":
            os.unlink(f"{d}/sub/c")
        elif op == "mkdir":
            os.mkdir(f"{d}/sub/m")
        else:
            os.rename(f"{d}/sub/m", f"{d}/sub/n")
        out.append((op, os.lstat(f"{d}/sub").st_mtime_ns > old[1]))
    return out


@check
def check_rename(d: str) -> Any:
    out: list[Any] = []
    put(f"{d}/a", b"A")
    put(f"{d}/b", b"B")
    os.rename(f"{d}/a", f"{d}/b")
    out.append(("over file", get(f"{d}/b"), err(os.lstat, f"{d}/a")))
    os.rename(f"{d}/base.txt", f"{d}/base.sh")  # a base file over a base file
    out.append(("base over base", get(f"{d}/base.sh"), mode(f"{d}/base.sh"), err(os.lstat, f"{d}/base.txt")))
    os.mkdir(f"{d}/empty")
    os.mkdir(f"{d}/full")
    put(f"{d}/full/x", b"X")
    out.append(("file over dir", err(os.rename, f"{d}/b", f"{d}/empty")))
    out.append(("dir over file", err(os.rename, f"{d}/empty", f"{d}/b")))
    out.append(("dir over nonempty", err(os.rename, f"{d}/empty", f"{d}/full")))
    out.append(("dir over base dir", err(os.rename, f"{d}/empty", f"{d}/sub")))
    out.append(("into own subdir", err(os.rename, f"{d}/full", f"{d}/full/inner")))
    out.append(("base into own subdir", err(os.rename, f"{d}", f"{d}/sub/me")))
    os.rename(f"{d}/full", f"{d}/empty")
    out.append(("dir over empty dir", sorted(os.listdir(d)), get(f"{d}/empty/x")))
    os.mkdir(f"{d}/other")
    os.rename(f"{d}/empty/x", f"{d}/other/y")
    os.rename(f"{d}/sub/inner.txt", f"{d}/other/inner")
    os.rename(f"{d}/sub", f"{d}/other/sub")
    out.append(("across", sorted(os.listdir(f"{d}/other")), get(f"{d}/other/y"), get(f"{d}/other/inner")))
    out.append(("to itself", err(os.rename, f"{d}/b", f"{d}/b"), get(f"{d}/b")))
    out.append(("missing", err(os.rename, f"{d}/nope", f"{d}/b")))
    out.append(("trailing dot", err(os.rename, f"{d}/other", f"{d}/other/.")))
    os.rename(f"{d}/link", f"{d}/other/link")  # a relative symlink moved keeps its text
    out.append(("link", os.readlink(f"{d}/other/link"), err(os.stat, f"{d}/other/link")))
    return out


@check
def check_renameat2(d: str) -> Any:
    put(f"{d}/a", b"A")
    put(f"{d}/b", b"B")
    out: list[Any] = [err(renameat2, f"{d}/a", f"{d}/b", RENAME_NOREPLACE)]
    out.append(err(renameat2, f"{d}/a", f"{d}/c", RENAME_NOREPLACE))
    out.append(sorted(os.listdir(d)))
    out.append(err(renameat2, f"{d}/c", f"{d}/b", RENAME_EXCHANGE))
    out.append((get(f"{d}/b"), get(f"{d}/c") if os.path.exists(f"{d}/c") else None))
    out.append(err(renameat2, f"{d}/base.txt", f"{d}/sub", RENAME_EXCHANGE))
    out.append(sorted(os.listdir(d)))
    return out


@check
def check_rmdir(d: str) -> Any:
    os.mkdir(f"{d}/e")
    return [
        err(os.rmdir, f"{d}/sub"),
        err(os.rmdir, f"{d}/base.txt"),
        err(os.rmdir, f"{d}/e/."),
        err(os.rmdir, f"{d}/link"),
        err(os.rmdir, f"{d}/missing"),
        err(os.rmdir, f"{d}/e"),
        err(os.unlink, f"{d}/sub"),
        err(os.unlink, f"{d}/sub/inner.txt"),
        err(os.rmdir, f"{d}/sub"),
        sorted(os.listdir(d)),
    ]


@check
def check_unlink_open_file(d: str) -> Any:
    out: list[Any] = []
    put(f"{d}/new", b"still here")
    for target in ("new", "base.txt"):
        fd = os.open(f"{d}/{target}", os.O_RDWR)
        os.unlink(f"{d}/{target}")
        out.append((target, err(os.lstat, f"{d}/{target}"), os.fstat(fd).st_nlink))
        out.append(os.pread(fd, 100, 0))
        os.pwrite(fd, b"+after", os.fstat(fd).st_size)
        out.append(os.pread(fd, 100, 0))
        put(f"{d}/{target}", b"a new file")  # the name again: another file
        out.append((os.pread(fd, 100, 0), get(f"{d}/{target}")))
        os.close(fd)
    fd = os.open(f"{d}/sub/inner.txt", os.O_RDONLY)
    os.rename(f"{d}/sub/inner.txt", f"{d}/moved")
    out.append(("renamed while open", os.pread(fd, 100, 0)))
    os.close(fd)
    return out


@check
def check_o_append(d: str) -> Any:
    out: list[Any] = []
    put(f"{d}/new", b"abc")
    for target in ("new", "base.txt"):
        fd = os.open(f"{d}/{target}", os.O_WRONLY | os.O_APPEND)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, b"1")
        os.lseek(fd, 1, os.SEEK_SET)
        os.write(fd, b"2")
        out.append((target, os.lseek(fd, 0, os.SEEK_CUR)))
        os.close(fd)
        out.append(get(f"{d}/{target}"))
    a = os.open(f"{d}/shared", os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o644)
    b = os.open(f"{d}/shared", os.O_WRONLY | os.O_APPEND)
    for i in range(20):
        os.write(a if i % 2 else b, b"%02d" % i)
    os.close(a)
    os.close(b)
    out.append(get(f"{d}/shared"))
    return out


@check
def check_o_excl(d: str) -> Any:
    flags = os.O_CREAT | os.O_EXCL | os.O_WRONLY
    os.symlink("nowhere", f"{d}/dangling")
    return [
        err(os.open, f"{d}/new", flags, 0o644),
        err(os.open, f"{d}/new", flags, 0o644),
        err(os.open, f"{d}/base.txt", flags, 0o644),
        err(os.open, f"{d}/sub", flags, 0o644),
        err(os.open, f"{d}/link", flags, 0o644),
        err(os.open, f"{d}/dangling", flags, 0o644),
        err(os.open, f"{d}/dangling", os.O_CREAT | os.O_WRONLY, 0o644),  # creates the target
        sorted(os.listdir(d)),
        err(os.open, f"{d}/base.txt", os.O_RDONLY | os.O_DIRECTORY),
        err(os.open, f"{d}/sub", os.O_WRONLY),
        err(os.open, f"{d}/link", os.O_RDONLY | os.O_NOFOLLOW),
        err(os.open, f"{d}/missing", os.O_RDONLY),
        err(os.open, f"{d}/base.txt/x", os.O_RDONLY),
    ]


@check
def check_truncate(d: str) -> Any:
    out: list[Any] = []
    put(f"{d}/new", b"0123456789")
    for target in ("new", "base.txt"):
        p = f"{d}/{target}"
        os.truncate(p, 4)
        out.append((target, os.lstat(p).st_size, get(p)))
        os.truncate(p, 9000)
        data = get(p)
        out.append((len(data), data[:4], data[4:] == bytes(8996)))
        fd = os.open(p, os.O_RDWR)
        os.ftruncate(fd, 2)
        out.append((os.fstat(fd).st_size, os.pread(fd, 100, 0)))
        os.ftruncate(fd, 5)
        out.append(os.pread(fd, 100, 0))
        os.close(fd)
        fd = os.open(p, os.O_RDONLY)
        out.append(err(os.ftruncate, fd, 1))
        os.close(fd)
    out.append(err(os.truncate, f"{d}/sub", 0))
    out.append(err(os.truncate, f"{d}/new", -1))
    fd = os.open(f"{d}/base.sh", os.O_WRONLY | os.O_TRUNC)
    out.append((os.fstat(fd).st_size, mode(f"{d}/base.sh")))
    os.close(fd)
    return out


@check
def check_symlinks(d: str) -> Any:
    os.symlink("b", f"{d}/a")
    os.symlink("a", f"{d}/b")
    os.symlink("self", f"{d}/self")
    os.symlink("sub/../base.txt", f"{d}/dotted")
    os.symlink("/" + "x" * 4000, f"{d}/longtarget")
    return [
        err(os.stat, f"{d}/a"),
        err(os.open, f"{d}/self", os.O_RDONLY),
        err(os.open, f"{d}/a", os.O_CREAT | os.O_WRONLY, 0o644),
        err(os.stat, f"{d}/a/x"),
        stat.S_ISLNK(os.lstat(f"{d}/a").st_mode),
        os.lstat(f"{d}/a").st_size,
        os.readlink(f"{d}/dotted"),
        get(f"{d}/dotted"),
        len(os.readlink(f"{d}/longtarget")),
        err(os.symlink, "x", f"{d}/base.txt"),
        err(os.symlink, "", f"{d}/emptytarget"),
        err(os.readlink, f"{d}/base.txt"),
        oct(os.lstat(f"{d}/link").st_mode),
    ]


@check
def check_long_names(d: str) -> Any:
    ok, long = "n" * 255, "n" * 256
    out = [
        err(put, f"{d}/{ok}"),
        err(os.mkdir, f"{d}/d{ok[1:]}"),
        err(os.symlink, "x", f"{d}/s{ok[1:]}"),
        err(put, f"{d}/{long}"),
        err(os.mkdir, f"{d}/{long}"),
        err(os.symlink, "x", f"{d}/{long}"),
        err(os.rename, f"{d}/{ok}", f"{d}/{long}"),
        err(os.link, f"{d}/{ok}", f"{d}/{long}"),
        err(os.lstat, f"{d}/{long}"),
        err(os.mkfifo, f"{d}/{long}"),
        err(os.symlink, "y" * 4096, f"{d}/toolong"),
        sorted(len(n) for n in os.listdir(d)),
        os.pathconf(d, "PC_NAME_MAX"),
        os.statvfs(d).f_namemax,
    ]
    deep = d
    with contextlib.suppress(OSError):
        for _ in range(40):
            deep += "/" + "p" * 120
            os.mkdir(deep)
    out.append(err(os.lstat, deep + "/x"))
    return out


@check
def check_sparse_files(d: str) -> Any:
    p = f"{d}/sparse"
    fd = os.open(p, os.O_CREAT | os.O_RDWR, 0o644)
    os.pwrite(fd, b"end", 8 << 20)
    os.fsync(fd)
    st = os.fstat(fd)
    out: list[Any] = [st.st_size, st.st_blocks * 512 < 1 << 20, os.pread(fd, 4, 4 << 20)]
    out.append((os.lseek(fd, 0, os.SEEK_DATA), os.lseek(fd, 0, os.SEEK_HOLE)))
    out.append(err(os.lseek, fd, (8 << 20) + 10, os.SEEK_DATA))
    os.close(fd)
    fd = os.open(f"{d}/base.txt", os.O_RDWR)
    os.pwrite(fd, b"far", 1 << 20)
    out.append((os.fstat(fd).st_size, os.pread(fd, 12, 0), os.pread(fd, 3, 1 << 20)))
    out.append(os.lseek(fd, 0, os.SEEK_END))
    os.close(fd)
    return out


@check
def check_fallocate(d: str) -> Any:
    fd = os.open(f"{d}/alloc", os.O_CREAT | os.O_RDWR, 0o644)
    os.posix_fallocate(fd, 0, 1 << 20)
    out: list[Any] = [os.fstat(fd).st_size, os.fstat(fd).st_blocks * 512 >= 1 << 20]
    os.posix_fallocate(fd, 0, 10)  # inside: no change
    out.append(os.fstat(fd).st_size)
    os.close(fd)
    return out


FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE = 0x01, 0x02


def fallocate(fd: int, mode: int, offset: int, length: int) -> str:
    """``"ok"`` or the errno name fallocate(2) (with ``mode``) failed with."""
    r = _libc.fallocate(fd, ctypes.c_int(mode), ctypes.c_longlong(offset), ctypes.c_longlong(length))
    return "ok" if r == 0 else errno.errorcode.get(ctypes.get_errno(), "?")


@check
def check_fallocate_modes(d: str) -> Any:
    """fallocate(2) itself, as util-linux's ``fallocate`` calls it (glibc's
    ``posix_fallocate`` above writes zeros where the file system has none): extend, keep
    the size, punch a hole; on a new file and on one of the base."""
    fd = os.open(f"{d}/falloc", os.O_CREAT | os.O_RDWR, 0o644)
    out: list[Any] = [fallocate(fd, 0, 0, 1 << 20), os.fstat(fd).st_size]
    out += [fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, 2 << 20), os.fstat(fd).st_size]
    os.pwrite(fd, b"x" * 8192, 0)
    hole = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE
    out += [fallocate(fd, hole, 4096, 4096), os.fstat(fd).st_size]
    out.append(os.pread(fd, 8192, 0) == b"x" * 4096 + bytes(4096))
    os.close(fd)
    fd = os.open(f"{d}/base.txt", os.O_RDWR)
    out += [fallocate(fd, 0, 0, 100_000), os.fstat(fd).st_size, os.pread(fd, 16, 0)]
    os.close(fd)
    out.append(get(f"{d}/falloc")[4090:4100])
    return out


@check
def check_mmap(d: str) -> Any:
    out: list[Any] = []
    put(f"{d}/new", bytes(8192))
    for target in ("new", "base.txt"):
        p = f"{d}/{target}"
        if os.path.getsize(p) < 8192:
            os.truncate(p, 8192)
        with open(p, "r+b") as fh:
            m = mmap.mmap(fh.fileno(), 8192)
            m[0:5] = b"mmap!"
            m[4096:4100] = b"page"
            m.flush()
            m.close()
        data = get(p)
        out.append((target, data[:5], data[4096:4100], len(data)))
        with open(p, "r+b") as fh:
            m = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
            fh.seek(10)
            fh.write(b"seen by the map")
            fh.flush()
            out.append(m[10:25])
            m.close()
    with open(f"{d}/base.sh", "rb") as fh:
        m = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        out.append(m[:])
        m.close()
    return out


def nlink_state(p: str) -> str:
    """Whether a directory's st_nlink is one tools may trust: 2 + its subdirectories (ext4,
    xfs, tmpfs), or 1, Linux's "not counted" (btrfs, overlayfs's merged directories; find
    and fts then look at every entry). Any other number misleads them: find's leaf
    optimisation skips what it believes are the last subdirectories."""
    n = os.lstat(p).st_nlink
    subdirs = sum(1 for e in os.scandir(p) if e.is_dir(follow_symlinks=False))
    return "ok" if n in (1, 2 + subdirs) else f"{n} with {subdirs} subdirectories"


@check
def check_dir_nlink(d: str) -> Any:
    out: list[Any] = [("start", nlink_state(d), nlink_state(f"{d}/sub"))]
    os.mkdir(f"{d}/a")
    os.mkdir(f"{d}/b")
    os.mkdir(f"{d}/sub/c")
    put(f"{d}/f")
    out.append(("mkdir", nlink_state(d), nlink_state(f"{d}/a"), nlink_state(f"{d}/sub")))
    os.rmdir(f"{d}/a")
    os.rename(f"{d}/sub/c", f"{d}/b/c")
    out.append(("after", nlink_state(d), nlink_state(f"{d}/b"), nlink_state(f"{d}/sub")))
    return out


@check
def check_readdir_concurrent_create(d: str) -> Any:
    names = [f"f{i:03}" for i in range(200)]
    done = threading.Event()
    seen: set[str] = set()

    def lister() -> None:
        while not done.is_set():
            seen.update(os.listdir(d))

    t = threading.Thread(target=lister)
    t.start()
    maker = "import sys\nfor n in sys.argv[2:]: open(sys.argv[1] + '/' + n, 'w').close()"
    subprocess.run([sys.executable, "-I", "-c", maker, d, *names], check=True, timeout=120)
    done.set()
    t.join()
    out: list[Any] = [sorted(os.listdir(d))]
    fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    first = sorted(os.listdir(fd))
    put(f"{d}/late")
    os.unlink(f"{d}/f000")
    second = sorted(os.listdir(fd))  # a new pass over the same open directory
    os.close(fd)
    out.append((len(first), sorted(set(second) - set(first)), sorted(set(first) - set(second))))
    out.append(seen <= set(names) | {"base.txt", "base.sh", "sub", "link"})
    with os.scandir(d) as it:
        kinds = sorted(
            (e.name, e.is_dir(follow_symlinks=False), e.is_symlink())
            for e in it
            if not e.name.startswith("f")
        )
    out.append(kinds)
    return out


@check
def check_stat_basics(d: str) -> Any:
    put(f"{d}/new", b"12345")
    os.mkdir(f"{d}/dir")
    out: list[Any] = []
    for n in ("new", "base.txt", "base.sh", "link", "dir", "sub/inner.txt"):
        st = os.lstat(f"{d}/{n}")
        if stat.S_ISDIR(st.st_mode):
            out.append((n, oct(st.st_mode), nlink_state(f"{d}/{n}")))
        else:
            out.append((n, oct(st.st_mode), st.st_nlink, st.st_size))
        out.append((st.st_uid, st.st_gid, st.st_blksize > 0))
    out.append(os.stat(f"{d}/link").st_ino == os.stat(f"{d}/base.txt").st_ino)
    out.append(os.lstat(f"{d}/new").st_ino != os.lstat(f"{d}/base.txt").st_ino)
    out.append(os.lstat(f"{d}/.").st_ino == os.lstat(f"{d}/dir/..").st_ino)
    return out


@check
def check_mkdir_errors(d: str) -> Any:
    return [
        err(os.mkdir, f"{d}/sub"),
        err(os.mkdir, f"{d}/base.txt"),
        err(os.mkdir, f"{d}/link"),
        err(os.mkdir, f"{d}/missing/x"),
        err(os.mkdir, f"{d}/base.txt/x"),
        err(os.mkdir, f"{d}/new/"),
        err(os.mkdir, f"{d}/new/"),
        err(os.unlink, f"{d}/new"),
        err(os.unlink, f"{d}/missing"),
        err(os.unlink, f"{d}/link"),
        sorted(os.listdir(d)),
    ]


@check
def check_o_tmpfile(d: str) -> Any:
    fd = os.open(d, os.O_TMPFILE | os.O_RDWR, 0o600)
    os.write(fd, b"anonymous")
    out: list[Any] = [os.fstat(fd).st_nlink, sorted(os.listdir(d))]
    linkat_empty_path(fd, f"{d}/named")
    os.close(fd)
    out.append((get(f"{d}/named"), mode(f"{d}/named"), os.lstat(f"{d}/named").st_nlink))
    return out


@check
def check_locks(d: str) -> Any:
    import fcntl

    put(f"{d}/lock", b"l")
    fd = os.open(f"{d}/lock", os.O_RDWR)
    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    probe = (
        "import fcntl, os, sys\nfd = os.open(sys.argv[1], os.O_RDWR)\nout = []\n"
        "for f in (lambda: fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB),"
        " lambda: fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)):\n"
        "    try:\n        f(); out.append('ok')\n    except OSError as e:\n        out.append(e.errno)\n"
        "print(out)"
    )
    held = subprocess.run(
        [sys.executable, "-I", "-c", probe, f"{d}/lock"], capture_output=True, text=True, check=True
    )
    fcntl.lockf(fd, fcntl.LOCK_UN)
    fcntl.flock(fd, fcntl.LOCK_UN)
    free = subprocess.run(
        [sys.executable, "-I", "-c", probe, f"{d}/lock"], capture_output=True, text=True, check=True
    )
    os.close(fd)
    return (held.stdout, free.stdout)


@check
def check_permissions_for_others(d: str) -> Any:
    """What an unprivileged user (uid 65534) may do: the mode bits decide, as on disk."""
    put(f"{d}/public", b"everyone reads")
    put(f"{d}/private", b"root only")
    os.chmod(f"{d}/public", 0o644)
    os.chmod(f"{d}/private", 0o600)
    os.mkdir(f"{d}/open", 0o777)
    os.chmod(f"{d}/open", 0o1777)
    os.chmod(d, 0o755)
    os.chmod(f"{d}/base.sh", 0o755)

    def probe() -> Any:
        return [
            err(os.open, "public", os.O_RDONLY),
            err(os.open, "private", os.O_RDONLY),
            err(os.open, "public", os.O_WRONLY),
            err(os.open, "base.txt", os.O_RDONLY),
            err(os.mkdir, "mine"),
            err(os.open, "open/mine", os.O_CREAT | os.O_WRONLY, 0o600),
            err(os.unlink, "public"),
            err(os.chmod, "public", 0o777),
            err(os.utime, "public", (1, 1)),
            err(os.utime, "open/mine", None),
            err(os.chown, "open/mine", 0, 0),
            os.access("base.sh", os.X_OK),
            os.access("private", os.R_OK),
            err(os.listdir, "."),
        ]

    return as_nobody(d, probe)


@check
def check_identity(d: str) -> Any:
    """st_dev is one for the whole tree and st_ino stays with a file through changes (tar,
    rsync -H, du and find -xdev pair them; git's index keeps them)."""
    put(f"{d}/new", b"n")
    os.mkdir(f"{d}/dir")
    paths = ("", "new", "dir", "base.txt", "base.sh", "sub", "sub/inner.txt", "link")
    before = {p: os.lstat(f"{d}/{p}") for p in paths}
    out: list[Any] = [len({st.st_dev for st in before.values()}), len({st.st_ino for st in before.values()})]
    os.chmod(f"{d}/base.txt", 0o600)
    with open(f"{d}/base.sh", "ab") as fh:
        fh.write(b"# more\n")
    os.utime(f"{d}/sub/inner.txt", ns=(1, 1))
    put(f"{d}/sub/added")
    os.rename(f"{d}/new", f"{d}/dir/new")
    after = {p: os.lstat(f"{d}/{p}") for p in paths if p != "new"}
    after["new"] = os.lstat(f"{d}/dir/new")
    out.append(
        sorted(p for p in paths if (before[p].st_dev, before[p].st_ino) != (after[p].st_dev, after[p].st_ino))
    )
    return out


@check
def check_open_before_change(d: str) -> Any:
    """A descriptor opened for reading before another one writes or truncates sees the new
    bytes and size (the same file, not a copy), and so does every later open once all are
    closed: for a file of the base as for a new one."""
    out: list[Any] = []
    put(f"{d}/new", b"new text\n")
    for target in ("new", "base.txt"):
        p = f"{d}/{target}"
        r = os.open(p, os.O_RDONLY)
        with open(p, "r+b") as fh:
            fh.write(b"CHANGED")
        out.append((target, os.pread(r, 100, 0), os.fstat(r).st_size))
        os.truncate(p, 3)
        out.append(
            (target, os.pread(r, 100, 0), os.fstat(r).st_size, os.fstat(r).st_ino == os.lstat(p).st_ino)
        )
        os.close(r)
        out.append((target, "reopened", get(p)))
    return out


@check
def check_open_before_rename(d: str) -> Any:
    """A descriptor opened for reading follows its file through a rename (of the file, of its
    directory): a write at the new name shows through it, and in a new open."""
    out: list[Any] = []
    for src, dst, written in (("base.txt", "moved.txt", "moved.txt"), ("sub", "sub2", "sub2/inner.txt")):
        opened = "base.txt" if src == "base.txt" else "sub/inner.txt"
        r = os.open(f"{d}/{opened}", os.O_RDONLY)
        os.rename(f"{d}/{src}", f"{d}/{dst}")
        with open(f"{d}/{written}", "r+b") as fh:
            fh.write(b"MOVED")
        out.append((src, os.pread(r, 100, 0), os.fstat(r).st_size))
        os.close(r)
        out.append((src, "reopened", get(f"{d}/{written}")))
    return out


@check
def check_exec(d: str) -> Any:
    """Running files: the x bits decide, for root too (it needs one of them)."""
    put(f"{d}/new.sh", b"#!/bin/sh\necho new $1\n")
    out: list[Any] = []
    for target, m in (
        ("base.sh", None),
        ("new.sh", 0o700),
        ("new.sh", 0o010),
        ("base.sh", 0o644),
        ("base.txt", None),
    ):
        p = f"{d}/{target}"
        if m is not None:
            os.chmod(p, m)
        try:
            proc = subprocess.run([p, "arg"], capture_output=True, timeout=60, check=False)
            out.append((target, m, proc.returncode, proc.stdout))
        except OSError as exc:
            out.append((target, m, errno.errorcode.get(exc.errno or 0)))
        out.append(os.access(p, os.X_OK))
    return out


@check
def check_cwd_inside(d: str) -> Any:
    """A process's working directory follows its directory through renames, and a removed
    one is gone for good (getcwd answers ENOENT; relative creates fail)."""
    os.mkdir(f"{d}/work")
    prog = (
        "import os, sys\nos.chdir(sys.argv[1])\nprint(os.path.basename(os.getcwd()), flush=True)\n"
        "sys.stdin.readline()\nprint(os.path.basename(os.getcwd()), sorted(os.listdir('.')), flush=True)\n"
        "sys.stdin.readline()\ntry:\n    os.getcwd()\nexcept OSError as e:\n    print('getcwd', e.errno, flush=True)\n"
        "try:\n    open('x', 'w')\nexcept OSError as e:\n    print('create', e.errno, flush=True)\n"
    )
    out: list[Any] = []
    for target in ("work", "sub"):
        proc = subprocess.Popen(
            [sys.executable, "-I", "-c", prog, f"{d}/{target}"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdin is not None and proc.stdout is not None
        out.append(proc.stdout.readline().strip())
        os.rename(f"{d}/{target}", f"{d}/{target}-moved")
        put(f"{d}/{target}-moved/seen")
        proc.stdin.write("\n")
        proc.stdin.flush()
        out.append(proc.stdout.readline().strip())
        for name in os.listdir(f"{d}/{target}-moved"):
            os.unlink(f"{d}/{target}-moved/{name}")
        os.rmdir(f"{d}/{target}-moved")
        proc.stdin.write("\n")
        proc.stdin.close()
        out.append(proc.stdout.read().split("\n"))
        proc.stdout.close()
        out.append(proc.wait(timeout=60))
    return out


@check
def check_recreate_after_remove(d: str) -> Any:
    """A name removed and made again is new and whole: a directory made again is empty, a
    file made again holds only what was written, and a removed tree is gone from readdir."""
    shutil.rmtree(f"{d}/sub")
    os.mkdir(f"{d}/sub")
    out: list[Any] = [os.listdir(f"{d}/sub"), err(os.lstat, f"{d}/sub/inner.txt")]
    put(f"{d}/sub/inner.txt", b"second")
    out.append(get(f"{d}/sub/inner.txt"))
    os.unlink(f"{d}/base.txt")
    os.mkdir(f"{d}/base.txt")  # a file's name becomes a directory
    out.append((mode(f"{d}/base.txt"), os.listdir(f"{d}/base.txt"), err(os.readlink, f"{d}/link")))
    os.rmdir(f"{d}/base.txt")
    os.symlink("sub", f"{d}/base.txt")  # and then a symlink
    out.append((os.readlink(f"{d}/base.txt"), get(f"{d}/link/inner.txt")))
    os.rename(f"{d}/sub", f"{d}/moved")
    os.mkdir(f"{d}/sub")  # the old name of a moved directory, made again
    out.append((os.listdir(f"{d}/sub"), os.listdir(f"{d}/moved"), sorted(os.listdir(d))))
    with os.scandir(d) as it:
        out.append(sorted((e.name, e.is_dir(follow_symlinks=False), e.is_symlink()) for e in it))
    return out


def _copy_range(
    src: str, dst: str, length: int, off_in: int | None = None, off_out: int | None = None
) -> Any:
    fi = os.open(src, os.O_RDONLY)
    fo = os.open(dst, os.O_CREAT | os.O_WRONLY, 0o644)
    try:
        return os.copy_file_range(fi, fo, length, off_in, off_out)
    finally:
        os.close(fi)
        os.close(fo)


@check
def check_copy_file_range(d: str) -> Any:
    """copy_file_range between new files (cp and others use it)."""
    put(f"{d}/new", b"0123456789")
    out: list[Any] = [_copy_range(f"{d}/new", f"{d}/copy", 1 << 20), get(f"{d}/copy")]
    out.append((_copy_range(f"{d}/new", f"{d}/copy", 4, 2, 8), get(f"{d}/copy")))
    return out


@check
def check_copy_file_range_from_base(d: str) -> Any:
    """copy_file_range from a file of the checkpoint that was never changed."""
    out: list[Any] = [err(_copy_range, f"{d}/base.txt", f"{d}/copy", 1 << 20)]
    out.append(get(f"{d}/copy"))
    return out


@check
def check_mmap_before_change(d: str) -> Any:
    """A read-only shared map of a file, made before another descriptor first writes it."""
    out: list[Any] = []
    put(f"{d}/new", b"new text\n")
    for target in ("new", "base.txt"):
        p = f"{d}/{target}"
        with open(p, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as m:
            with open(p, "r+b") as w:
                w.write(b"CHANGED")
            out.append((target, m[:7], os.pread(fh.fileno(), 7, 0)))
    return out


# -- backends ----------------------------------------------------------------------------------

# The pure-FUSE mount's known differences from the local disk: check name -> why. Mirrored in
# docs/fuse.md ("Known differences from the local disk"). A listed check that agrees fails.
FUSE_KNOWN: dict[str, str] = {
    "chmod_modes": "git keeps one bit of a mode: files show 0644 or 0755 (any x bit set), directories "
    "0755; set-user-ID, set-group-ID and sticky bits are dropped",
    "umask_on_create": "the same two modes whatever the umask and the mode asked for",
    "fifo": "mkfifo answers EPERM: the pure-FUSE overlay holds only what git can (files, symlinks, directories)",
    "unix_socket": "bind of a socket file answers EPERM (mknod of S_IFSOCK, as for fifos)",
    "device_nodes": "mknod answers EPERM, for device nodes and even a plain S_IFREG node",
    "hard_links": "link answers EPERM: git has no hard links",
    "xattrs": "extended attributes are not kept: the daemon answers ENOSYS, callers get EOPNOTSUPP",
    "xattrs_of_base": "the same for a file nobody changed: EOPNOTSUPP where the disk says ENODATA",
    "ownership": "chown is accepted and ignored: every entry shows the mounting user and group, so "
    "set-group-ID directories hand down no group",
    "dir_times": "directory times are not kept (git has none): utimensat on a directory is accepted and "
    "ignored, a directory shows the time the view last changed",
    "renameat2": "renameat2's flags (RENAME_NOREPLACE, RENAME_EXCHANGE) answer EINVAL: mfusepy does not pass "
    "them on (RENAME_EXCHANGE used to rename over the target and lose its data)",
    "sparse_files": "no lseek operation: SEEK_DATA and SEEK_HOLE answer as if a file had no holes (data "
    "at 0, a hole only at the end); reads and sizes are right",
    "o_tmpfile": "O_TMPFILE answers EOPNOTSUPP (libfuse's path API has no tmpfile operation)",
    "exec": "access(X_OK) says yes to root for a file with no x bit (the daemon has no access operation), "
    "though running it fails with EACCES as on disk",
    "identity": "inode numbers are a hash of the path: a renamed file gets its new path's number",
    "permissions_for_others": "the mount is neither allow_other nor default_permissions: another user "
    "gets EACCES for everything, even a file that is 0644",
}

# The overlay backend has no exceptions list (issue 15) but OVERLAY_CHOSEN (below).

# Where overlayfs itself departs from the local disk: check name -> the kernel's reason. Not
# avfs defects (nothing avfs mounts or answers changes them), so not the "no exceptions" the
# overlay backend keeps for everything avfs controls; mirrored in docs/fuse.md, and a listed
# check that agrees fails, as for FUSE_KNOWN.
OVERLAYFS_ITSELF: dict[str, str] = {
    "mmap_before_change": "overlayfs's documented non-standard behaviour (Documentation/filesystems/"
    "overlayfs.rst): a lower file mapped MAP_SHARED before its copy-up keeps mapping the lower "
    "file, so the map shows the old bytes while read() shows the new ones",
    "copy_file_range_from_base": "the kernel copies between the real files, and a lower file (avfs's FUSE "
    "view) and an upper one (the local disk) are on different file systems: EXDEV, on which cp, rsync "
    "and glibc callers fall back to read and write",
}

# Where the overlay backend departs from the local disk by avfs's choice: check name -> why.
# Mirrored in docs/fuse.md, and a listed check that agrees fails, as for FUSE_KNOWN.
OVERLAY_CHOSEN: dict[str, str] = {
    "xattrs_of_base": "a file nobody changed answers getxattr and removexattr of a missing name "
    "EOPNOTSUPP, where the disk says ENODATA: the lower layer answers ENOSYS, so that overlayfs's own "
    "marks (metacopy, origin, whiteout) are not asked of it once per entry a walk looks up (a cold "
    "10,000-entry walk 3.0 s against 23.4 s at load 26); a file changed in the mount (copied up) has "
    "the disk's attributes, listxattr answers [] either way",
}

pytestmark = pytest.mark.backends(*MOUNTS)  # system calls: a mount's, the API has none


def require_root() -> None:
    if os.geteuid() != 0:
        why = "the POSIX contract (owners, device nodes) is checked as root"
        skip_outside_ci(why)


@contextlib.contextmanager
def _hermetic_module(root: Path) -> Iterator[None]:
    """conftest's hermetic set-up for a module-wide mount (its fixture is per test)."""
    home_dir = root / "userhome"
    home_dir.mkdir()
    (home_dir / ".gitconfig").write_text(
        f"[user]\n\tname = {AUTHOR[0]}\n\temail = {AUTHOR[1]}\n[init]\n\tdefaultBranch = main\n"
    )
    sp = pygit2.settings.search_path
    levels = (pygit2.enums.ConfigLevel.GLOBAL, pygit2.enums.ConfigLevel.XDG, pygit2.enums.ConfigLevel.SYSTEM)
    saved = {lvl: sp[lvl] for lvl in levels}
    with pytest.MonkeyPatch.context() as mp:
        for key in list(os.environ):
            if key.startswith(("GIT_", "AVFS_")):
                mp.delenv(key)
        mp.setenv("HOME", str(home_dir))
        mp.setenv("XDG_CONFIG_HOME", str(home_dir / ".config"))
        mp.setenv("AVFS_HOME", str(root / "avfs-home"))
        mp.setenv("GIT_CONFIG_NOSYSTEM", "1")
        layers_switch(mp)
        sp[levels[0]], sp[levels[1]], sp[levels[2]] = (
            str(home_dir),
            str(home_dir / ".config"),
            str(root / "nosys"),
        )
        try:
            yield
        finally:
            for lvl, value in saved.items():
                sp[lvl] = value
    _fsck_every_vault(root / "avfs-home" / "vaults")


def _mount_backend(
    name: str, home: Home, vault: Any, root: Path, mp: str
) -> contextlib.AbstractContextManager[None]:
    del root
    return _mounted(home, vault, mp, backend=name)


@contextlib.contextmanager
def _mounted(home: Home, vault: Any, mp: str, **kwargs: Any) -> Iterator[None]:
    info = mounts.mount(home, vault, "main", mp, **kwargs)
    # the column tests the backend it names, not a fallback
    assert info.backend == kwargs.get("backend"), info
    try:
        yield
    finally:
        try:
            mounts.unmount(home, vault, "main", lazy=True)
        finally:
            if mounts.mounted_at(mp):
                mounts.force_unmount(mp)


# The overlay backend mounts with redirect_dir=on (else renaming a directory of the lower
# layer answers EXDEV, and a hard link to a lower file reports another inode number than
# the file) and xino=auto (else files of the lower layer, of the upper layer and directories
# report three different st_dev; avfs's inode numbers are 56-bit so xino has room).


@pytest.fixture(scope="module")
def posix_mount(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(backend name, mount point): one mount per backend for the module; each check has its
    own directory there, seeded in the fork's checkpoint."""
    name = backend
    require_root()
    root = tmp_path_factory.mktemp(f"posix-{name}")
    with _hermetic_module(root):
        home = Home(str(root / "avfs-home"), author=AUTHOR, mounts=MOUNT_SIDE)
        vault = home.create_vault("posix")
        ws = vault.workspace("main")
        for check_name in CHECKS:
            seed(
                check_name,
                lambda rel, data, m: ws.write(rel, data, mode=m),
                lambda target, rel: ws.symlink(target, rel),
            )
        checkpoint.save(vault, name="seed")
        mp = root / "mnt"
        mp.mkdir()
        with _mount_backend(name, home, vault, root, str(mp)):
            yield name, str(mp)


def run_check(fn: Check, d: str) -> Any:
    """The check's observation, or the exception it raised (as data: an unexpected failure
    is an observation too, and must agree with the disk)."""
    try:
        return fn(d)
    except OSError as exc:
        return ("raised", type(exc).__name__, errno.errorcode.get(exc.errno or 0, exc.errno))


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_posix_contract(name: str, posix_mount: tuple[str, str], tmp_path: Path) -> None:
    which, mp = posix_mount
    ref = tmp_path / "native"
    ref.mkdir()
    seed_native(str(ref), name)
    fn = CHECKS[name]
    want = run_check(fn, str(ref / name))
    got = run_check(fn, os.path.join(mp, name))
    known = (FUSE_KNOWN if which == "fuse" else {**OVERLAYFS_ITSELF, **OVERLAY_CHOSEN}).get(name)
    if known is None:
        assert got == want, (
            f"{which} mount differs from the local disk in {name}:\n disk: {want}\n mount: {got}"
        )
    else:
        assert got != want, (
            f"{name} now agrees with the local disk in the {which} mount: remove it from "
            f"{'FUSE_KNOWN' if which == 'fuse' else 'OVERLAYFS_ITSELF or OVERLAY_CHOSEN'} and from docs/fuse.md"
        )


def test_known_differences_are_documented() -> None:
    """Each entry of FUSE_KNOWN, OVERLAYFS_ITSELF and OVERLAY_CHOSEN is a check, with its
    reason, and docs/fuse.md's known-differences section has one table of each, with the
    same names."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "fuse.md").read_text(encoding="utf-8")
    section = doc.split("## Known differences from the local disk", 1)[1].split("\n## ", 1)[0]
    tables: list[set[str]] = []
    for line in section.splitlines():
        if line.startswith("| check |"):
            tables.append(set())
        elif line.startswith("| `"):
            tables[-1].add(line.split("`")[1])
    for known in (FUSE_KNOWN, OVERLAYFS_ITSELF, OVERLAY_CHOSEN):
        assert set(known) <= set(CHECKS)
        assert all(reason.strip() for reason in known.values())
    assert tables == [set(FUSE_KNOWN), set(OVERLAYFS_ITSELF), set(OVERLAY_CHOSEN)]


def test_pjdfstest_counting() -> None:
    """bench/pjdfstest.py's counts from prove's verbose output: a TODO failure counts as passed
    (as prove does), a failure and a planned test that never ran count as failed."""
    from bench.pjdfstest import parse_prove, summarize

    out = "\n".join(
        [
            "/p/tests/chmod/00.t ..",
            "1..3",
            "ok 1",
            "not ok 2 - tried 'stat x mode', expected 0111, got 0755",
            "ok 3",
            "ok",
            "/p/tests/unlink/08.t ..",
            "1..4",
            "ok 1",
            "not ok 2 # TODO According to POSIX: EPERM",
            "ok 3",
            "Failed 1/4 subtests",
            "Files=2, Tests=6",
        ]
    )
    res = summarize(parse_prove(out), "/p/tests")
    assert res["dirs"] == {
        "chmod": {"ok": 2, "total": 3, "todo": 0},
        "unlink": {"ok": 3, "total": 4, "todo": 1},
    }
    assert (res["ok"], res["total"], res["todo"]) == (5, 7, 1)
    assert res["failures"] == [
        "chmod/00.t: not ok 2 - tried 'stat x mode', expected 0111, got 0755",
        "unlink/08.t: 1 planned test(s) never ran",
    ]
