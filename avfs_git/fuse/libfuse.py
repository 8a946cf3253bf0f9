"""The libfuse adapter: the mount loop run through libfuse's own steps (ctypes), so the
daemon knows the moment the kernel handshake is done (its readiness gate), and the
kernel-side directory caching (``cache_readdir``, readdirplus, opendir answered in the
kernel) that mfusepy's high-level API does not reach. It knows libfuse and the kernel's
structures, never git or the workspace: the operations it serves are fuse/ops.py's.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import logging
import os
import platform
import re
from collections.abc import Callable
from typing import Any

import mfusepy as fuse

log = logging.getLogger("avfs.fuse")

# libfuse 3 (fuse.h, fuse_common.h)
FUSE_READDIR_PLUS = 1 << 0  # enum fuse_readdir_flags
FUSE_FILL_DIR_PLUS = 1 << 1  # enum fuse_fill_dir_flags
FUSE_CAP_READDIRPLUS_AUTO = 1 << 14
FUSE_CAP_CACHE_SYMLINKS = 1 << 23
FUSE_CAP_NO_OPENDIR_SUPPORT = 1 << 24


def _direct_for_writers(fi: Any) -> None:
    """A file opened write-only and empty (created, or truncated on open) is written with
    ``direct_io``: each write() goes to the daemon without first being copied into the
    kernel's page cache for this file (a 1 GiB write: ~4.4x native -> see
    docs/benchmarks.md). Safe for the cache: the file had no cached pages (it was empty),
    and the handle never reads. Handles that read (or mmap) keep the page cache."""
    if fi.flags & os.O_ACCMODE == os.O_WRONLY:
        fi.direct_io = 1


def _address(ptr: Any) -> int:
    return ctypes.cast(ptr, ctypes.c_void_p).value or 0


class _FuseArgs(ctypes.Structure):
    """libfuse's ``struct fuse_args``."""

    _fields_ = [
        ("argc", ctypes.c_int),
        ("argv", ctypes.POINTER(ctypes.c_char_p)),
        ("allocated", ctypes.c_int),
    ]


class _LoopConfigV1(ctypes.Structure):
    """``struct fuse_loop_config`` of libfuse 3.2-3.11 (3.12 made it opaque)."""

    _fields_ = [("clone_fd", ctypes.c_int), ("max_idle_threads", ctypes.c_uint)]


# how long the end of the request loop waits for a fuse_invalidate_path call in flight
STOP_INVALIDATING_S = 5.0


def _fuse_fn(name: str, restype: Any, *argtypes: Any) -> Any:
    fn = fuse._libfuse[name]  # a new function object: mfusepy's own stay as they are
    fn.restype = restype
    fn.argtypes = list(argtypes)
    return fn


def _fuse_main(
    argc: int,
    argv: Any,
    ops_p: Any,
    ops_size: int,
    user_data: Any,
    *,
    loop_ended: Callable[[], bool],
    session_ready: Callable[[int, int], None] | None = None,
) -> int:
    """libfuse's ``fuse_main_real`` (lib/helper.c: new, mount, signal handlers, loop,
    unmount, destroy), same return codes, with one step added: ``loop_ended()`` runs after
    the request loop has returned and before ``fuse_destroy``. fuse_main_real frees the
    ``struct fuse`` (its node tables, then the session) before it calls the file system's
    ``destroy``, so a thread of ours that calls ``fuse_invalidate_path`` has no earlier
    moment to be told to stop: daemons died at unmount in ``lookup_node`` and in
    ``fuse_lowlevel_notify_inval_inode`` reading freed memory. When ``loop_ended()``
    returns False (a call is still inside libfuse) the ``struct fuse`` is not freed: the
    process is about to exit anyway. ``argv`` is mfusepy's: ``prog [flags] -o opts
    mountpoint``; only the foreground is supported (the daemon is the process to keep).
    ``session_ready(se, f)`` runs once the session exists, before the loop starts."""
    c_void_p, c_int, c_char_p = ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p
    prog, *opts, mountpoint = [argv[i] for i in range(argc)]
    if b"-f" not in opts:
        raise ValueError("FastFUSE runs in the foreground only")
    single = b"-s" in opts
    kept = [prog, *(a for a in opts if a not in (b"-f", b"-s"))]  # -d and -o go to fuse_new
    arr = (c_char_p * (len(kept) + 1))(*kept, None)
    args = _FuseArgs(len(kept), arr, 0)
    new = _fuse_fn("fuse_new", c_void_p, ctypes.POINTER(_FuseArgs), c_void_p, ctypes.c_size_t, c_void_p)
    free_args = _fuse_fn("fuse_opt_free_args", None, ctypes.POINTER(_FuseArgs))
    f = new(ctypes.byref(args), ops_p, ops_size, user_data)
    if not f:
        free_args(ctypes.byref(args))
        return 3
    se = _fuse_fn("fuse_get_session", c_void_p, c_void_p)(f)
    if session_ready is not None:
        session_ready(se, f)
    unmount = _fuse_fn("fuse_unmount", None, c_void_p)
    cfg: Any = None
    cfg_destroy: Any = None
    try:
        if _fuse_fn("fuse_mount", c_int, c_void_p, c_char_p)(f, mountpoint) != 0:
            res = 4
        elif _fuse_fn("fuse_set_signal_handlers", c_int, c_void_p)(se) != 0:
            unmount(f)
            res = 6
        else:
            if single:
                res = _fuse_fn("fuse_loop", c_int, c_void_p)(f)
            elif fuse.fuse_version_minor >= 12:
                cfg = _fuse_fn("fuse_loop_cfg_create", c_void_p)()
                cfg_destroy = _fuse_fn("fuse_loop_cfg_destroy", None, c_void_p)
                res = _fuse_fn("fuse_loop_mt", c_int, c_void_p, c_void_p)(f, cfg)
            else:
                v1 = _LoopConfigV1(0, 10)  # fuse_main_real's defaults
                res = _fuse_fn("fuse_loop_mt", c_int, c_void_p, ctypes.POINTER(_LoopConfigV1))(
                    f, ctypes.byref(v1)
                )
            res = 7 if res else 0
            freeable = loop_ended()
            _fuse_fn("fuse_remove_signal_handlers", None, c_void_p)(se)
            unmount(f)
            if not freeable:
                log.warning("fuse_invalidate_path still running at unmount: libfuse state left allocated")
                return res
    finally:
        if cfg:
            cfg_destroy(cfg)
    _fuse_fn("fuse_destroy", None, c_void_p)(f)
    free_args(ctypes.byref(args))
    return res


def libfuse_version() -> tuple[int, ...]:
    """libfuse's own version, patch level included (``fuse_pkgversion``)."""
    try:
        text = _fuse_fn("fuse_pkgversion", ctypes.c_char_p)().decode()
        return tuple(int(x) for x in re.findall(r"\d+", text)[:3])
    except (AttributeError, ValueError, UnicodeDecodeError):
        return (fuse.fuse_version_major, fuse.fuse_version_minor, 0)


# libfuse before 3.16.1 does not pass the keep_cache and cache_readdir a high-level
# file system sets in opendir on to the kernel (libfuse commit 98eb808): there the
# low-level opendir of the session is wrapped to set them (see _cache_dirs)
HL_OPENDIR_FLAGS = (3, 16, 1)
_LL_OPENDIR = 20  # struct fuse_lowlevel_ops: init destroy lookup ... fsync opendir (fuse_lowlevel.h)
_LL_CHECKED = 42  # slots 0-41 (init ... readdirplus): set by libfuse's high-level layer or NULL
_OPENDIR_T = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint64, ctypes.POINTER(fuse.fuse_file_info))
_KEPT: list[Any] = []  # callbacks handed to libfuse: alive as long as the process
_OURS: set[int] = set()  # their addresses, as installed in the session


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


def _ll_slots(se: int) -> list[int] | None:
    """The session's first low-level operations, when its layout is the one known here:
    each must point into libfuse's code or be NULL, opendir, readdir and readdirplus set."""
    if not se or _ll_ops_offset(libfuse_version(), any_hl=True) is None:
        return None
    try:
        text = _libfuse_text()
    except OSError:
        return None
    slots = _ll_slot_array(se)
    ptrs = [slots[i] or 0 for i in range(_LL_CHECKED)]
    in_text = [x in _OURS or any(lo <= x < hi for lo, hi in text) for x in ptrs]
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


def _cache_dirs(se: int, trace: Callable[[str], None]) -> bool:
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
    ptrs = _ll_slots(se)
    if ptrs is None:
        return False
    lib_opendir = _OPENDIR_T(ptrs[_LL_OPENDIR])

    def opendir(req: int, ino: int, llfi: Any) -> None:
        fi = llfi.contents
        fi.keep_cache = 1
        fi.cache_readdir = 1
        trace("opendir")
        lib_opendir(req, ino, llfi)

    cb = _OPENDIR_T(opendir)
    _KEPT.append((lib_opendir, cb))
    addr = ctypes.cast(cb, ctypes.c_void_p).value
    _OURS.add(addr or 0)
    _ll_slot_array(se)[_LL_OPENDIR] = addr
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
    """Whether :func:`_kernel_opendir` can work with this libfuse and machine (decided
    before the mount: the file system's ``opendir`` is registered accordingly)."""
    v = libfuse_version()
    return (
        _DH_VERSIONS[0] <= v < _DH_VERSIONS[1]
        and _ll_ops_offset(v, any_hl=True) is not None
        and _dh_type() is not None
    )


def _kernel_opendir(se: int, f: int, trace: Callable[[str], None]) -> bool:
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
    in :func:`_cache_dirs`; False (nothing changed) when anything is unknown."""
    dh_type = _dh_type()
    ptrs = _ll_slots(se)
    if dh_type is None or ptrs is None or not f:
        return False
    libc = ctypes.CDLL(None)
    free = libc.free
    free.argtypes = [ctypes.c_void_p]
    free.restype = None
    reply_err = _fuse_fn("fuse_reply_err", ctypes.c_int, ctypes.c_void_p, ctypes.c_int)

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
        cb = proto(make(lib_fn))
        _KEPT.append((lib_fn, cb))
        addr = ctypes.cast(cb, ctypes.c_void_p).value
        _OURS.add(addr or 0)
        _ll_slot_array(se)[slot] = addr

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


class FastFUSE(fuse.FUSE):  # type: ignore[misc]
    """mfusepy's ``FUSE`` with its three hottest callbacks made cheaper; the operations keep
    fusepy's programming model. Measured on this machine: ``create`` called
    ``inspect.signature`` on every call (12% of a create), ``write`` copied each request
    into a new ``bytes`` (~17% of a 1 GiB write) and ``read`` copied each reply twice. Here
    ``write`` hands the operations a memoryview of libfuse's buffer (valid during the call)
    and ``read`` fills libfuse's buffer with ``preadv``. Guarded by the mount tests, which
    run every call through it.

    And the loop is run by :func:`_fuse_main`, not libfuse's ``fuse_main_real``, so that
    the operations' ``stop_invalidating`` (when they have one) runs between the end of the
    request loop and the freeing of libfuse's state."""

    def __init__(self, operations: Any, mountpoint: str, **kwargs: Any) -> None:
        stop = getattr(operations, "stop_invalidating", None)
        self.read_only = bool(getattr(operations, "read_only", False))
        trace_fd = getattr(operations, "trace_fd", None)
        trace: Callable[[str], None] = getattr(operations, "trace", lambda op: None)
        if trace_fd is not None:
            plain = functools.partial(fuse.FUSE._wrapper, self)

            def traced(func: Any, *args: Any, **kw: Any) -> Any:
                name = func.__name__.removesuffix("_fuse_3").removesuffix("_fuse_2")
                path = args[0] if args and isinstance(args[0], bytes) else b""
                trace(f"{name} {path.decode('utf-8', 'surrogateescape')}".rstrip())
                return plain(func, *args, **kw)

            setattr(self, "_wrapper", traced)  # noqa: B010 - read by mfusepy as it builds the callbacks
        session_ready = None
        # a read-only view's directories: opened by the kernel itself when possible
        # (_kernel_opendir), else opened here with listings marked cacheable (_cache_dirs,
        # or FastFUSE.opendir where libfuse passes its flags on)
        # (decided in init_fuse_3, once the kernel said what it supports)
        self.kernel_opendir = False
        self._trace = trace
        self._session = 0
        self._dh_ready = False
        if self.read_only:
            setattr(operations, "opendir", lambda path: 0)  # noqa: B010 - registers FastFUSE.opendir

            def session_ready(se: int, f: int) -> None:
                self._session = se
                if kernel_opendir_possible():
                    self._dh_ready = _kernel_opendir(se, f, trace)

        def loop_ended() -> bool:
            if stop is None or stop(STOP_INVALIDATING_S):
                return True
            operations.destroy("/")  # fuse_destroy, which calls it, is skipped
            return False

        if fuse.fuse_version_major != 3:  # _fuse_main speaks libfuse 3's API
            super().__init__(operations, mountpoint, **kwargs)
            return
        # mfusepy's FUSE.__init__ builds the callbacks and then calls its module's
        # fuse_main_real; it is the one call swapped, for the length of this one
        saved = fuse.fuse_main_real
        fuse.fuse_main_real = functools.partial(
            _fuse_main, loop_ended=loop_ended, session_ready=session_ready
        )
        try:
            super().__init__(operations, mountpoint, **kwargs)
        finally:
            fuse.fuse_main_real = saved

    def rename_fuse_3(self, old: bytes, new: bytes, flags: int) -> int:
        # mfusepy drops renameat2's flags: RENAME_EXCHANGE then renamed over the target and
        # lost its data. Neither flag is implemented: EINVAL, as a file system without them
        if flags:
            raise fuse.FuseOSError(errno.EINVAL)
        return int(super().rename_fuse_3(old, new, flags))

    def create(self, path: bytes, mode: int, fip: Any) -> int:
        fi = fip.contents
        fi.fh = self.operations.create(path.decode(self.encoding, self.errors), mode, fi.flags)
        _direct_for_writers(fi)
        return 0

    def open(self, path: bytes, fip: Any) -> int:
        fi = fip.contents
        fi.fh = self.operations.open(path.decode(self.encoding, self.errors), fi.flags)
        if fi.flags & os.O_TRUNC:
            _direct_for_writers(fi)
        return 0

    def write(self, path: bytes | None, buf: Any, size: int, offset: int, fip: Any) -> int:
        data = memoryview((ctypes.c_char * size).from_address(_address(buf))).cast("B")
        n: int = self.operations.write(None, data, offset, fip.contents.fh)
        return n

    def read(self, path: bytes | None, buf: Any, size: int, offset: int, fip: Any) -> int:
        fh = fip.contents.fh
        # a read-only view keeps no handles: its reads name the path (fh 0)
        p = path.decode(self.encoding, self.errors) if fh == 0 and path is not None else ""
        n: int = self.operations.read_into(fh, _address(buf), size, offset, p)
        return n

    def opendir(self, path: bytes, fip: Any) -> int:
        if self.kernel_opendir:
            return -errno.ENOSYS  # the kernel opens directories itself from now on
        fi = fip.contents
        fi.fh = self.operations.opendir(path.decode(self.encoding, self.errors))
        if self.read_only:
            fi.keep_cache = 1  # (libfuse >= 3.16.1; before, see _cache_dirs)
            fi.cache_readdir = 1
        return 0

    def init_fuse_3(self, conn: Any, config: Any) -> None:
        if self.read_only and conn:
            c = conn.contents
            # readdirplus for every chunk of a listing, not only the first (the kernel's
            # adaptive mode): a walk of a read-only view then needs no LOOKUP at all
            c.want &= ~FUSE_CAP_READDIRPLUS_AUTO
            # symlink targets kept in the page cache (Linux >= 4.20)
            c.want |= c.capable & FUSE_CAP_CACHE_SYMLINKS
            # directories opened by the kernel itself (Linux >= 5.1: before, an ENOSYS to
            # OPENDIR failed the opendir), else listings marked cacheable at each OPENDIR
            self.kernel_opendir = self._dh_ready and bool(c.capable & FUSE_CAP_NO_OPENDIR_SUPPORT)
            if not self.kernel_opendir and self._session:
                _cache_dirs(self._session, self._trace)
        super().init_fuse_3(conn, config)

    def readdir_fuse_3(
        self, path: bytes | None, buf: Any, filler: Any, offset: int, fip: Any, flags: int
    ) -> int:
        """A read-only view's listings go to the kernel in chunks by offset, each entry with
        all its attributes when the kernel asks for them (readdirplus), so that the kernel
        caches each entry and its attributes as it caches the listing. (libfuse before
        3.17 drops the attributes of entries handed over at offset 0, as mfusepy does.)
        A writable view lists as mfusepy does: names, types and inode numbers."""
        if not self.read_only or path is None:
            n: int = super().readdir_fuse_3(path, buf, filler, offset, fip, flags)
            return n
        ops = self.operations
        name = path.decode(self.encoding, self.errors)
        entries = ops.listing(name, offset)
        plus = bool(flags & FUSE_READDIR_PLUS)
        st = fuse.c_stat()
        for i in range(offset, len(entries)):
            entry, p, node = entries[i]
            full = plus and entry not in (".", "..")
            ctypes.memset(ctypes.byref(st), 0, ctypes.sizeof(st))
            fuse.set_st_attrs(st, ops.entry_attrs(p, node, full), use_ns=True)
            if filler(
                buf, entry.encode(self.encoding, self.errors), st, i + 1, FUSE_FILL_DIR_PLUS if full else 0
            ):
                return 0  # the kernel's buffer is full: it asks again from offset i
        ops.listing_done(name)
        return 0
