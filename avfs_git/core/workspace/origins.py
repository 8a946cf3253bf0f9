"""Which lower files an overlay mount's copied-up files came from, by file handle.

overlayfs stores, on each copy-up, the file handle of the lower inode in the upper file's
``overlay.origin`` xattr (``struct ovl_fb``: version, magic ``0xfb``, length, flags, the
handle's type, the lower file system's UUID, then the handle; Documentation/filesystems/
overlayfs.rst, "NFS export"). A file renamed in the mount is copied up first and keeps that
origin, so its kernel inode keeps the lower dentry it came from; a plain removal copies
nothing up and leaves a whiteout only. ``name_to_handle_at(2)`` on the lower layer's mount
gives the handle overlayfs stored (FUSE's: its node id and generation; the same call
overlayfs makes, without ``AT_HANDLE_CONNECTABLE``), so the two are compared as bytes.
"""

from __future__ import annotations

import errno
import functools
import os
from collections.abc import Callable

from .upper import ORIGIN_XATTRS

_OVL_FB_MAGIC = 0xFB
_OVL_FB_HEAD = 21  # version, magic, len, flags, type (1 byte each), uuid (16)
_AT_FDCWD = -100
_MAX_HANDLE_SZ = 128

Handle = tuple[int, bytes]  # (handle type, handle bytes)


def origin_of(real: str) -> Handle | None:
    """The lower file handle the upper file ``real`` was copied up from (its
    ``overlay.origin``), else None (none, or a null origin: a lower layer without file
    handles). OSError when the xattrs cannot be read (not ``ENODATA``: no permission)."""
    for name in ORIGIN_XATTRS:
        try:
            raw = os.getxattr(real, name, follow_symlinks=False)
        except OSError as exc:
            if exc.errno in (errno.ENODATA, errno.ENOENT, errno.ENOTSUP):
                continue  # (none; the file went; xattrs of no kind there)
            raise
        if len(raw) > _OVL_FB_HEAD and raw[1] == _OVL_FB_MAGIC and raw[2] <= len(raw):
            return raw[4], bytes(raw[_OVL_FB_HEAD : raw[2]])
    return None


def handle_of(path: str) -> Handle | None:
    """The file handle of ``path`` itself (a link is not followed), as overlayfs encodes
    it for an origin; None when the file system gives none (or ``path`` is not there)."""
    call = _name_to_handle_at()
    return None if call is None else call(path)


@functools.cache
def _name_to_handle_at() -> Callable[[str], Handle | None] | None:
    """libc's ``name_to_handle_at`` as a function of a path (ctypes is loaded the first
    time: only a checkpoint over a whiteout asks), None where libc has none."""
    import ctypes

    class FileHandle(ctypes.Structure):
        _fields_ = [  # struct file_handle
            ("handle_bytes", ctypes.c_uint),
            ("handle_type", ctypes.c_int),
            ("f_handle", ctypes.c_ubyte * _MAX_HANDLE_SZ),
        ]

    fn = getattr(ctypes.CDLL(None, use_errno=True), "name_to_handle_at", None)
    if fn is None:
        return None
    fn.argtypes = [
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.POINTER(FileHandle),
        ctypes.POINTER(ctypes.c_int),
        ctypes.c_int,
    ]
    fn.restype = ctypes.c_int

    def call(path: str) -> Handle | None:
        fh = FileHandle(handle_bytes=_MAX_HANDLE_SZ)
        mount_id = ctypes.c_int()
        if fn(_AT_FDCWD, os.fsencode(path), ctypes.byref(fh), ctypes.byref(mount_id), 0) != 0:
            return None
        return fh.handle_type, bytes(fh.f_handle[: fh.handle_bytes])

    return call
