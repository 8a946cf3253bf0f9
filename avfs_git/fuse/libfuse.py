"""The libfuse adapter: the mount loop run through libfuse's own steps (ctypes), so the
daemon knows the moment the kernel handshake is done (its readiness gate), and the
kernel-side directory caching (``cache_readdir``, readdirplus, opendir answered in the
kernel) that mfusepy's high-level API does not reach (the session's low-level operations
wrapped for it: :mod:`.lowlevel`). It knows libfuse and the kernel's structures, never git
or the workspace: the operations it serves are fuse/ops.py's.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import logging
import os
import struct
import time
from collections.abc import Callable
from typing import Any

import mfusepy as fuse

from .entries import Entries
from .lowlevel import (
    SessionHooks,
    answer_getxattr,
    cache_dirs,
    fuse_fn,
    install_kernel_opendir,
    kernel_opendir_possible,
)

log = logging.getLogger("avfs.fuse")

# libfuse 3 (fuse.h, fuse_common.h)
FUSE_READDIR_PLUS = 1 << 0  # enum fuse_readdir_flags
FUSE_FILL_DIR_PLUS = 1 << 1  # enum fuse_fill_dir_flags
FUSE_CAP_READDIRPLUS_AUTO = 1 << 14
FUSE_CAP_CACHE_SYMLINKS = 1 << 23
FUSE_CAP_NO_OPENDIR_SUPPORT = 1 << 24
UTIME_NOW = (1 << 30) - 1  # (linux/stat.h) what libfuse puts in a timespec's tv_nsec
UTIME_OMIT = (1 << 30) - 2


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


# a listing's entries' attributes written into the kernel's ``struct stat`` by one
# ``struct.pack_into`` (a read-only view's readdirplus: every entry of a walk), where
# mfusepy's ``set_st_attrs`` set each field through ctypes (~15 us an entry of the ~28 us
# a walk's Python spends on it); the layout is read off mfusepy's ``c_stat`` itself
def _stat_layout() -> tuple[struct.Struct, tuple[tuple[str, int], ...]]:
    fmt, order, at = ["="], [], 0
    codes = {8: "q", 4: "i", 2: "h", 1: "b"}

    def add(key: str, part: int, ctype: Any, offset: int) -> None:
        nonlocal at
        if offset > at:
            fmt.append(f"{offset - at}x")
        code = codes[ctypes.sizeof(ctype)]
        fmt.append(code if str(getattr(ctype, "_type_", "q")).islower() else code.upper())
        order.append((key, part))
        at = offset + ctypes.sizeof(ctype)

    for name, ctype, *_ in fuse.c_stat._fields_:
        offset = getattr(fuse.c_stat, name).offset
        if isinstance(ctype, type) and issubclass(ctype, ctypes.Structure):  # a timespec
            key = name[: -len("spec")]  # (st_atimespec: the attribute st_atime, in ns)
            add(key, 1, ctypes.c_long, offset + ctype.tv_sec.offset)
            add(key, 2, ctypes.c_long, offset + ctype.tv_nsec.offset)
        elif isinstance(ctype, type) and issubclass(ctype, ctypes.Array):
            continue  # (padding: zero)
        else:
            add(name, 0, ctype, offset)
    if ctypes.sizeof(fuse.c_stat) > at:
        fmt.append(f"{ctypes.sizeof(fuse.c_stat) - at}x")
    packer = struct.Struct("".join(fmt))
    assert packer.size == ctypes.sizeof(fuse.c_stat)
    return packer, tuple(order)


_STAT, _STAT_ORDER = _stat_layout()


def set_entry_attrs(st: Any, attrs: dict[str, Any]) -> None:
    """``st`` (a ``struct stat``) made ``attrs`` (times in ns), every other field zero: what
    ``memset`` then ``mfusepy.set_st_attrs(st, attrs, use_ns=True)`` make, one call."""
    get = attrs.get
    vals = []
    for key, part in _STAT_ORDER:
        val = get(key, 0)
        if part == 1:
            val = int(val) // 1_000_000_000
        elif part == 2:
            val = int(val) % 1_000_000_000
        vals.append(val)
    _STAT.pack_into(st, 0, *vals)


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
    new = fuse_fn("fuse_new", c_void_p, ctypes.POINTER(_FuseArgs), c_void_p, ctypes.c_size_t, c_void_p)
    free_args = fuse_fn("fuse_opt_free_args", None, ctypes.POINTER(_FuseArgs))
    f = new(ctypes.byref(args), ops_p, ops_size, user_data)
    if not f:
        free_args(ctypes.byref(args))
        return 3
    se = fuse_fn("fuse_get_session", c_void_p, c_void_p)(f)
    if session_ready is not None:
        session_ready(se, f)
    unmount = fuse_fn("fuse_unmount", None, c_void_p)
    cfg: Any = None
    cfg_destroy: Any = None
    try:
        if fuse_fn("fuse_mount", c_int, c_void_p, c_char_p)(f, mountpoint) != 0:
            res = 4
        elif fuse_fn("fuse_set_signal_handlers", c_int, c_void_p)(se) != 0:
            unmount(f)
            res = 6
        else:
            if single:
                res = fuse_fn("fuse_loop", c_int, c_void_p)(f)
            elif fuse.fuse_version_minor >= 12:
                cfg = fuse_fn("fuse_loop_cfg_create", c_void_p)()
                cfg_destroy = fuse_fn("fuse_loop_cfg_destroy", None, c_void_p)
                res = fuse_fn("fuse_loop_mt", c_int, c_void_p, c_void_p)(f, cfg)
            else:
                v1 = _LoopConfigV1(0, 10)  # fuse_main_real's defaults
                res = fuse_fn("fuse_loop_mt", c_int, c_void_p, ctypes.POINTER(_LoopConfigV1))(
                    f, ctypes.byref(v1)
                )
            res = 7 if res else 0
            freeable = loop_ended()
            fuse_fn("fuse_remove_signal_handlers", None, c_void_p)(se)
            unmount(f)
            if not freeable:
                log.warning("fuse_invalidate_path still running at unmount: libfuse state left allocated")
                return res
    finally:
        if cfg:
            cfg_destroy(cfg)
    fuse_fn("fuse_destroy", None, c_void_p)(f)
    free_args(ctypes.byref(args))
    return res


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
        if getattr(operations, "count_calls", False):
            # a mount kept warm (fuse/idle.py): each call served is a use of it. Counted
            # without a lock (a lost increment does not matter: only a change is looked at)
            inner = getattr(self, "_wrapper")  # noqa: B009 - the traced one, or mfusepy's own
            operations.calls = 0

            def counted(func: Any, *args: Any, **kw: Any) -> Any:
                operations.calls += 1
                return inner(func, *args, **kw)

            setattr(self, "_wrapper", counted)  # noqa: B010 - read by mfusepy as it builds the callbacks
        aside = [w for w in (getattr(operations, "walk", None), getattr(operations, "settling", None)) if w]
        if aside:
            # an overlay's walk of its lower layer (fuse/warm.py) and a lazy fork's index
            # (fuse/settle.py) stand aside while another process uses the mount: each
            # request's process is told to them until they are over
            inner_w = getattr(self, "_wrapper")  # noqa: B009 - the ones above, or mfusepy's own

            def watched(func: Any, *args: Any, **kw: Any) -> Any:
                pid = -1
                for w in aside:
                    if not w.over:
                        if pid < 0:
                            pid = fuse.fuse_get_context()[2]
                        w.asked_by(pid)
                return inner_w(func, *args, **kw)

            setattr(self, "_wrapper", watched)  # noqa: B010 - read by mfusepy as it builds the callbacks
        # directory listings are kept by the kernel across opens in every view: directories
        # are opened by the kernel itself when possible (install_kernel_opendir; listings then
        # go by offset, readdir_fuse_3), else opened here with listings marked cacheable
        # (cache_dirs, or FastFUSE.opendir where libfuse passes its flags on). A writable
        # view's cached listing is dropped by the kernel when the directory changes through
        # the mount, and by the watcher (fuse/invalidate.py: the changed path's parent) when
        # it changes otherwise; a change avfs makes returns once the watcher did
        # (``show_written``, a restore's acknowledgement). Decided in init_fuse_3, once the
        # kernel said what it supports
        self.kernel_opendir = False
        self._trace = trace
        self._hooks: SessionHooks | None = None  # what this mount installs in its session
        self._dh_ready = False
        # a writable view's names the watcher expires (fuse/entries.py), once the kernel can
        self._entries: Entries | None = None if self.read_only else Entries()
        setattr(operations, "opendir", lambda path: 0)  # noqa: B010 - registers FastFUSE.opendir

        def xattr_seen(pid: int) -> None:
            # what the wrappers above do for a call that reaches the operations
            trace("getxattr")
            if getattr(operations, "count_calls", False):
                operations.calls += 1
            for w in aside:
                if not w.over:
                    w.asked_by(pid)

        def session_ready(se: int, f: int) -> None:
            self._hooks = SessionHooks(se)
            if kernel_opendir_possible():
                self._dh_ready = install_kernel_opendir(self._hooks, f)
            if self.read_only and not getattr(operations, "lower", False):
                # a revision's files have no attributes (ViewOps.getxattr's answer), given at
                # the session's low level (an overlay over it asks once per entry for its own
                # marks). An overlay's lower layer answers ENOSYS once: the kernel stops asking
                answer_getxattr(self._hooks, errno.ENODATA, xattr_seen)
            if self._entries is not None and not self._entries.install(self._hooks):
                self._entries = None

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
        res = int(super().rename_fuse_3(old, new, flags))
        if self._entries is not None:
            self._entries.renamed(old, new)
        return res

    def getattr_fuse_3(self, path: bytes | None, buf: Any, fip: Any) -> int:
        if self._entries is not None and path is not None:
            self._entries.saw(path)  # (libfuse's lookup of a name asks for its attributes)
        return int(super().getattr_fuse_3(path, buf, fip))

    def utimens_fuse_3(self, path: bytes | None, buf: Any, fip: Any) -> int:
        # mfusepy folds each timespec into one number of nanoseconds, so ``UTIME_NOW`` and
        # ``UTIME_OMIT`` (libfuse puts them in tv_nsec) reached the operations as times 1.07 s
        # after the epoch: ``touch -m`` set the file's mtime to 1970 (make then thinks it
        # older than everything). Here: None keeps a time, "now" is the current time
        times: tuple[int | None, int | None] | None = None
        if buf:
            now = time.time_ns()

            def ns(t: Any) -> int | None:
                if t.tv_nsec == UTIME_OMIT:
                    return None
                return now if t.tv_nsec == UTIME_NOW else int(t.tv_sec) * 10**9 + int(t.tv_nsec)

            times = (ns(buf.contents.actime), ns(buf.contents.modtime))
        name = None if path is None else path.decode(self.encoding, self.errors)
        return int(self.operations.utimens(name, times))

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
        fi.keep_cache = 1  # (libfuse >= 3.16.1; before, see cache_dirs)
        fi.cache_readdir = 1
        return 0

    def _readdir_by_offset(self, path: bytes, buf: Any, filler: Any, offset: int, fip: Any) -> int:
        """A writable view's listing (the operations' ``readdir``) from entry ``offset`` on,
        each entry with its mode and inode number and the offset of the next one."""
        items = self.operations.readdir(path.decode(self.encoding, self.errors), fip.contents.fh)
        st = fuse.c_stat()
        for i in range(offset, len(items)):
            item = items[i]
            ctypes.memset(ctypes.byref(st), 0, ctypes.sizeof(st))
            if isinstance(item, str):
                name = item
            else:
                name, attrs, _ = item
                for key in ("st_mode", "st_ino"):
                    if key in attrs:
                        setattr(st, key, attrs[key])
            if filler(buf, name.encode(self.encoding, self.errors), st, i + 1, 0):
                return 0  # the kernel's buffer is full: it asks again from offset i
        return 0

    def init_fuse_3(self, conn: Any, config: Any) -> None:
        if self._entries is not None and conn:
            self._entries.enable(conn.contents.capable)
            if self._entries.on:
                setattr(self.operations, "expire_entry", self._entries.expire)  # noqa: B010
        if not self.read_only and conn:
            # directories opened by the kernel itself (as in a read-only view, below), else
            # listings marked cacheable at each OPENDIR
            self.kernel_opendir = self._dh_ready and bool(conn.contents.capable & FUSE_CAP_NO_OPENDIR_SUPPORT)
            if not self.kernel_opendir and self._hooks is not None and self._hooks.se:
                cache_dirs(self._hooks, self._trace)
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
            if not self.kernel_opendir and self._hooks is not None and self._hooks.se:
                cache_dirs(self._hooks, self._trace)
        super().init_fuse_3(conn, config)

    def readdir_fuse_3(
        self, path: bytes | None, buf: Any, filler: Any, offset: int, fip: Any, flags: int
    ) -> int:
        """A read-only view's listings go to the kernel in chunks by offset, each entry with
        all its attributes when the kernel asks for them (readdirplus), so that the kernel
        caches each entry and its attributes as it caches the listing. (libfuse before
        3.17 drops the attributes of entries handed over at offset 0, as mfusepy does.)
        A writable view lists names, types and inode numbers, by offset too (a directory the
        kernel opened itself has no handle to keep a listing in between chunks)."""
        if path is None:
            n: int = super().readdir_fuse_3(path, buf, filler, offset, fip, flags)
            return n
        if not self.read_only:
            return self._readdir_by_offset(path, buf, filler, offset, fip)
        ops = self.operations
        name = path.decode(self.encoding, self.errors)
        entries = ops.listing(name, offset)
        plus = bool(flags & FUSE_READDIR_PLUS)
        st = fuse.c_stat()
        for i in range(offset, len(entries)):
            entry, p, node = entries[i]
            full = plus and entry not in (".", "..") and ops.plus_ok(p, node)
            try:
                attrs = ops.entry_attrs(p, node, full)
            except fuse.FuseOSError:
                if not full:
                    raise
                # an entry whose attributes cannot be read (its blob gone: git's gc in the
                # mount pruned one only the overlay's database named, race1) is listed by
                # inode and type: its own lookup fails, not the whole directory's listing
                # (an overlay mount's root answered EIO after a remount late in the git
                # model's run, where the upper layer hid that entry)
                full = False
                attrs = ops.entry_attrs(p, node, False)
            set_entry_attrs(st, attrs)
            if filler(
                buf, entry.encode(self.encoding, self.errors), st, i + 1, FUSE_FILL_DIR_PLUS if full else 0
            ):
                return 0  # the kernel's buffer is full: it asks again from offset i
        ops.listing_done(name)
        return 0
