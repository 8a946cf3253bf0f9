"""libfuse at the C level, below :mod:`.libfuse`: a libfuse function by name, libfuse's own
version, and the session's low-level operations wrapped where mfusepy's high-level API does
not reach: directory listings kept by the kernel across opens (``cache_readdir`` on a
libfuse that drops it) and directories opened by the kernel itself. These read libfuse's
private structures (``struct fuse_session``, ``struct fuse_dh``): their layouts are checked
against the running library first, and nothing is changed when anything is unknown.
"""

from __future__ import annotations

import ctypes
import logging
import platform
import re
from collections.abc import Callable
from typing import Any

import mfusepy as fuse

log = logging.getLogger("avfs.fuse")


def fuse_fn(name: str, restype: Any, *argtypes: Any) -> Any:
    fn = fuse._libfuse[name]  # a new function object: mfusepy's own stay as they are
    fn.restype = restype
    fn.argtypes = list(argtypes)
    return fn


def libfuse_version() -> tuple[int, ...]:
    """libfuse's own version, patch level included (``fuse_pkgversion``)."""
    try:
        text = fuse_fn("fuse_pkgversion", ctypes.c_char_p)().decode()
        return tuple(int(x) for x in re.findall(r"\d+", text)[:3])
    except (AttributeError, ValueError, UnicodeDecodeError):
        return (fuse.fuse_version_major, fuse.fuse_version_minor, 0)


# libfuse before 3.16.1 does not pass the keep_cache and cache_readdir a high-level
# file system sets in opendir on to the kernel (libfuse commit 98eb808): there the
# low-level opendir of the session is wrapped to set them (see cache_dirs)
HL_OPENDIR_FLAGS = (3, 16, 1)
_LL_OPENDIR = 20  # struct fuse_lowlevel_ops: init destroy lookup ... fsync opendir (fuse_lowlevel.h)
_LL_CHECKED = 42  # slots 0-41 (init ... readdirplus): set by libfuse's high-level layer or NULL
_OPENDIR_T = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint64, ctypes.POINTER(fuse.fuse_file_info))


class SessionHooks:
    """The low-level operations one mount installs in its libfuse session (``se``).

    Their ctypes callbacks must outlive every call libfuse makes to them: they are kept
    here, and this object is kept by the :class:`.libfuse.FastFUSE` whose constructor runs
    the session's request loop (the loop ends before the session is freed or left, and
    mfusepy keeps its own callbacks for exactly that long). Their addresses tell
    :func:`ll_slots` that a slot holding one is ours, not an unknown layout."""

    def __init__(self, se: int) -> None:
        self.se = se
        self._kept: list[tuple[Any, Any]] = []  # (libfuse's function, our callback)
        self.addresses: set[int] = set()

    def install(self, slot: int, lib_fn: Any, cb: Any) -> None:
        """Put ``cb`` (which calls libfuse's ``lib_fn``) in the session's low-level ``slot``."""
        self._kept.append((lib_fn, cb))
        addr = ctypes.cast(cb, ctypes.c_void_p).value
        self.addresses.add(addr or 0)
        _ll_slot_array(self.se)[slot] = addr


def _ll_ops_offset(version: tuple[int, ...], any_hl: bool = False) -> int | None:
    """Where ``struct fuse_session`` (lib/fuse_i.h, private) holds its ``struct
    fuse_lowlevel_ops op``: after mountpoint, exited, fd, [io since 3.13], mo, debug,
    deny_others (the same up to 3.17.4). ``any_hl``: also where high-level opendirs'
    flags reach the kernel anyway."""
    if (3, 0, 0) <= version < (3, 13, 0):
        return 32
    if (3, 13, 0) <= version < (HL_OPENDIR_FLAGS if not any_hl else (3, 18, 0)):
        return 40
    return None


def _ll_slot_array(se: int) -> Any:
    offset = _ll_ops_offset(libfuse_version(), any_hl=True)
    assert offset is not None
    return (ctypes.c_void_p * _LL_CHECKED).from_address(se + offset)


def ll_slots(hooks: SessionHooks) -> list[int] | None:
    """The session's first low-level operations, when its layout is the one known here:
    each must point into libfuse's code (or be one of ``hooks``) or be NULL, opendir,
    readdir and readdirplus set."""
    se = hooks.se
    if not se or _ll_ops_offset(libfuse_version(), any_hl=True) is None:
        return None
    try:
        text = _libfuse_text()
    except OSError:
        return None
    slots = _ll_slot_array(se)
    ptrs = [slots[i] or 0 for i in range(_LL_CHECKED)]
    in_text = [x in hooks.addresses or any(lo <= x < hi for lo, hi in text) for x in ptrs]
    needed = (_LL_OPENDIR, _LL_READDIR, _LL_RELEASEDIR, _LL_FSYNCDIR, _LL_IOCTL, _LL_READDIRPLUS)
    if not all(in_text[i] for i in needed) or not all(
        ok or x == 0 for ok, x in zip(in_text, ptrs, strict=True)
    ):
        log.warning("unknown libfuse session layout: directory listings are not cached by the kernel")
        return None
    return ptrs


def _libfuse_text() -> list[tuple[int, int]]:
    out = []
    with open("/proc/self/maps", encoding="utf-8") as fh:
        for line in fh:
            parts = line.split()
            if len(parts) >= 6 and "libfuse3.so" in parts[5] and "x" in parts[1]:
                lo, hi = parts[0].split("-")
                out.append((int(lo, 16), int(hi, 16)))
    return out


def cache_dirs(hooks: SessionHooks, trace: Callable[[str], None]) -> bool:
    """Make every OPENDIR reply carry ``keep_cache`` and ``cache_readdir`` (the kernel then
    keeps directory listings across opens: FOPEN_CACHE_DIR, Linux >= 4.20) on a libfuse
    that drops them (before 3.16.1), by wrapping the session's low-level ``opendir``
    (libfuse's ``fuse_lib_opendir`` replies with the very ``fuse_file_info`` it is given).
    The layout of the private ``struct fuse_session`` is checked first: every one of the
    first low-level operations must point into libfuse's code or be NULL, ``opendir``
    set; else nothing is changed (listings are then read again at each opendir) and
    False is returned."""
    if _ll_ops_offset(libfuse_version()) is None:
        return False  # libfuse passes them on itself
    ptrs = ll_slots(hooks)
    if ptrs is None:
        return False
    lib_opendir = _OPENDIR_T(ptrs[_LL_OPENDIR])

    def opendir(req: int, ino: int, llfi: Any) -> None:
        fi = llfi.contents
        fi.keep_cache = 1
        fi.cache_readdir = 1
        trace("opendir")
        lib_opendir(req, ino, llfi)

    hooks.install(_LL_OPENDIR, lib_opendir, _OPENDIR_T(opendir))
    return True


class _FuseDh(ctypes.Structure):
    """libfuse's private ``struct fuse_dh`` (lib/fuse.c; the same from 3.5 to 3.17.4),
    the directory handle its high-level readdir works on; laid out by :func:`_dh_type`."""


_MUTEX_SIZE = {"x86_64": 40, "AMD64": 40, "aarch64": 48}  # glibc's pthread_mutex_t
_DH_VERSIONS = ((3, 5, 0), (3, 18, 0))


def _dh_type() -> type[ctypes.Structure] | None:
    mutex = _MUTEX_SIZE.get(platform.machine())
    if mutex is None or ctypes.sizeof(ctypes.c_void_p) != 8:
        return None
    c = ctypes
    lock: int = mutex

    class Dh(_FuseDh):
        _fields_ = [
            ("lock", c.c_byte * lock),  # zeroed: PTHREAD_MUTEX_INITIALIZER
            ("fuse", c.c_void_p),
            ("req", c.c_void_p),
            ("contents", c.c_void_p),
            ("first", c.c_void_p),
            ("last", c.c_void_p),
            ("len", c.c_uint),
            ("size", c.c_uint),
            ("needlen", c.c_uint),
            ("filled", c.c_int),
            ("fh", c.c_uint64),
            ("error", c.c_int),
            ("nodeid", c.c_uint64),
        ]

    return Dh


_READDIR_T = ctypes.CFUNCTYPE(
    None,
    ctypes.c_void_p,
    ctypes.c_uint64,
    ctypes.c_size_t,
    ctypes.c_int64,
    ctypes.POINTER(fuse.fuse_file_info),
)


_LL_READDIR = 21
_LL_RELEASEDIR = 22
_LL_GETXATTR = 26  # ... statfs setxattr getxattr (fuse_lowlevel.h)
_LL_FSYNCDIR = 23
_LL_IOCTL = 34
_LL_READDIRPLUS = 41  # ... fallocate readdirplus (fuse_lowlevel.h)
_FI_P = ctypes.POINTER(fuse.fuse_file_info)
_RELEASEDIR_T = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint64, _FI_P)
_FSYNCDIR_T = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_int, _FI_P)
_IOCTL_T = ctypes.CFUNCTYPE(
    None,
    ctypes.c_void_p,
    ctypes.c_uint64,
    ctypes.c_uint,
    ctypes.c_void_p,
    _FI_P,
    ctypes.c_uint,
    ctypes.c_void_p,
    ctypes.c_size_t,
    ctypes.c_size_t,
)


FUSE_IOCTL_DIR = 1 << 4


def kernel_opendir_possible() -> bool:
    """Whether :func:`install_kernel_opendir` can work with this libfuse and machine (decided
    before the mount: the file system's ``opendir`` is registered accordingly)."""
    v = libfuse_version()
    return (
        _DH_VERSIONS[0] <= v < _DH_VERSIONS[1]
        and _ll_ops_offset(v, any_hl=True) is not None
        and _dh_type() is not None
    )


def install_kernel_opendir(hooks: SessionHooks, f: int) -> bool:
    """Let the kernel open directories itself: the file system answers the first OPENDIR
    with ENOSYS (:meth:`FastFUSE.opendir`), after which the kernel sends no OPENDIR or
    RELEASEDIR at all and keeps each listing across opens (its defaults without opendir:
    FOPEN_KEEP_CACHE | FOPEN_CACHE_DIR) - a warm walk then sends the daemon nothing.
    libfuse's high-level layer reads the handle its opendir made (``get_dirhandle``) in
    readdir, readdirplus, fsyncdir and a directory's ioctl, and frees it in releasedir: the
    session's low-level operations for those are wrapped, so that a request without a
    handle (fh 0) gets a fresh zeroed ``struct fuse_dh`` for its duration (one per request:
    listings are handed over by offset, nothing is kept in it between requests) and a
    RELEASEDIR without one (never sent then) is answered without libfuse. Checked first as
    in :func:`cache_dirs`; False (nothing changed) when anything is unknown."""
    dh_type = _dh_type()
    ptrs = ll_slots(hooks)
    if dh_type is None or ptrs is None or not f:
        return False
    libc = ctypes.CDLL(None)
    free = libc.free
    free.argtypes = [ctypes.c_void_p]
    free.restype = None
    reply_err = fuse_fn("fuse_reply_err", ctypes.c_int, ctypes.c_void_p, ctypes.c_int)

    def with_dh(ino: int, llfi: Any, call: Callable[[], None]) -> None:
        fi = llfi.contents
        if fi.fh:  # a handle from an OPENDIR answered before the kernel stopped asking
            call()
            return
        dh = dh_type()
        dh.fuse = f
        dh.nodeid = ino
        fi.fh = ctypes.addressof(dh)
        try:
            call()
        finally:
            fi.fh = 0
            if dh.contents:
                free(dh.contents)
            if dh.first:  # entries handed over at offset 0: never (readdir_fuse_3)
                log.error("readdir left a listing in a temporary directory handle")

    def install(slot: int, proto: Any, make: Callable[[Any], Callable[..., None]]) -> None:
        lib_fn = proto(ptrs[slot])
        hooks.install(slot, lib_fn, proto(make(lib_fn)))

    def readdir(lib_fn: Any) -> Callable[..., None]:
        def call(req: int, ino: int, size: int, off: int, llfi: Any) -> None:
            with_dh(ino, llfi, lambda: lib_fn(req, ino, size, off, llfi))

        return call

    def fsyncdir(lib_fn: Any) -> Callable[..., None]:
        def call(req: int, ino: int, datasync: int, llfi: Any) -> None:
            with_dh(ino, llfi, lambda: lib_fn(req, ino, datasync, llfi))

        return call

    def ioctl(lib_fn: Any) -> Callable[..., None]:
        # FS_IOC_GETFLAGS and the like on a directory (lsattr; overlayfs copying a lower
        # directory up): libfuse reads the directory handle first
        def call(req: int, ino: int, cmd: int, arg: int, llfi: Any, flags: int, *rest: Any) -> None:
            if flags & FUSE_IOCTL_DIR:
                with_dh(ino, llfi, lambda: lib_fn(req, ino, cmd, arg, llfi, flags, *rest))
            else:
                lib_fn(req, ino, cmd, arg, llfi, flags, *rest)

        return call

    def releasedir(lib_fn: Any) -> Callable[..., None]:
        # never sent for a directory the kernel opened itself; libfuse would free the handle
        def call(req: int, ino: int, llfi: Any) -> None:
            if llfi.contents.fh:
                lib_fn(req, ino, llfi)
            else:
                reply_err(req, 0)

        return call

    install(_LL_READDIR, _READDIR_T, readdir)
    install(_LL_READDIRPLUS, _READDIR_T, readdir)
    install(_LL_FSYNCDIR, _FSYNCDIR_T, fsyncdir)
    install(_LL_IOCTL, _IOCTL_T, ioctl)
    install(_LL_RELEASEDIR, _RELEASEDIR_T, releasedir)
    return True


_GETXATTR_T = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_char_p, ctypes.c_size_t)


class _FuseCtx(ctypes.Structure):
    _fields_ = [  # struct fuse_ctx (fuse_lowlevel.h): uid, gid, pid, umask
        ("uid", ctypes.c_uint32),
        ("gid", ctypes.c_uint32),
        ("pid", ctypes.c_int32),
        ("umask", ctypes.c_uint32),
    ]


def answer_getxattr(hooks: SessionHooks, error: int, seen: Callable[[int], None]) -> bool:
    """Answer every GETXATTR with ``error`` in the session's low-level layer: no path worked
    out by libfuse's high-level layer, no operation called, only ``seen(pid)`` (the request's
    process) before the answer. For a read-only view, whose files have no attributes: an
    overlay asks its lower layer for its own marks (``trusted.overlay.metacopy`` of each file
    it looks up, ``.origin`` of each directory, ``.whiteout`` of each empty file), and the
    kernel keeps none of the answers, so a cold walk of an overlay asks once per entry.
    Checked first as in :func:`cache_dirs`; False (nothing changed) when anything is unknown."""
    ptrs = ll_slots(hooks)
    if ptrs is None or not ptrs[_LL_GETXATTR]:
        return False
    reply_err = fuse_fn("fuse_reply_err", ctypes.c_int, ctypes.c_void_p, ctypes.c_int)
    req_ctx = fuse_fn("fuse_req_ctx", ctypes.POINTER(_FuseCtx), ctypes.c_void_p)

    def getxattr(req: int, ino: int, name: bytes, size: int) -> None:
        try:
            seen(req_ctx(req).contents.pid)
        except Exception:  # (a callback of libfuse's: nothing above it to raise to)
            log.exception("getxattr")
        reply_err(req, error)

    hooks.install(_LL_GETXATTR, _GETXATTR_T(ptrs[_LL_GETXATTR]), _GETXATTR_T(getxattr))
    return True
