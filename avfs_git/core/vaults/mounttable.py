"""``/proc/self/mounts`` kept open, read again only when the kernel marked it changed.

:func:`.registry.mounted_at` reads the mount table to see whether a mount point is
mounted: ~1 ms with a hundred mounts here, more under load, and a mount's daemon asks it
on every warm ``proxy exec`` (is the fork's mount still there?). The kernel marks every
open ``/proc/self/mounts`` when this mount namespace's table changes (``poll`` reports
``POLLPRI``; the poll itself takes the mark). So a process that asks often (the daemon:
:func:`keep`) holds one open: the poll comes before each read, so a change made after the
last read is always seen, and a table unchanged since is answered from what was read.

Not for a process that asks once (the CLI, the hooks): they read the table as before, and
load nothing of this. After a ``fork`` the child gets a table of its own (the mark is the
open file's, which parent and child would share).
"""

from __future__ import annotations

import errno
import functools
import os
import select
import threading
from typing import Any

PATH = "/proc/self/mounts"


class MountTable:
    """The table, read again only after the kernel's mark (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fd = -1
        self._data = b""
        self.reads = 0  # times the table was read (the rest were answered from memory)
        os.register_at_fork(after_in_child=self._forget)

    def read(self) -> bytes:
        """The table as the kernel has it now (raises OSError when it cannot be read)."""
        with self._lock:
            if self._fd >= 0:
                poll = select.poll()
                poll.register(self._fd, select.POLLPRI | select.POLLERR)
                if not poll.poll(0):
                    return self._data
            else:
                self._fd = os.open(PATH, os.O_RDONLY | os.O_CLOEXEC)  # (its mark: the table now)
            try:
                os.lseek(self._fd, 0, os.SEEK_SET)
                chunks = []
                while chunk := os.read(self._fd, 1 << 16):
                    chunks.append(chunk)
            except OSError:
                self._close()
                raise
            self._data = b"".join(chunks)
            self.reads += 1
            return self._data

    def close(self) -> None:
        with self._lock:
            self._close()

    def _close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
        self._fd, self._data = -1, b""

    def _forget(self) -> None:
        self._lock = threading.Lock()  # (a thread of the parent may have held it)
        self._close()


def keep() -> MountTable:
    """Have :func:`.registry.mounted_at` answer from a table kept open in this process
    from now on (idempotent); the table."""
    from . import registry

    kept = registry.kept_table()
    if isinstance(kept, MountTable):
        return kept
    table = MountTable()
    registry.keep_table(table)
    return table


def _unescape(field: str) -> str:
    """A field of the table as the kernel escapes it (space, tab, newline, backslash)."""
    for code, ch in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, ch)
    return field


def avfs_mount_of(path: str) -> str | None:
    """The mount point of the mounted fork ``path`` (symlinks resolved) lies in: the
    innermost mount holding it has the source ``avfs:VAULT:KEY``; else None. Reads the
    table once, for a caller that asks once."""
    real = os.path.realpath(path)
    try:
        with open(PATH, encoding="utf-8", errors="surrogateescape") as fh:
            rows = [ln.split() for ln in fh]
    except OSError:
        return None
    best, source = "", ""
    for parts in rows:
        if len(parts) < 2:
            continue
        point = _unescape(parts[1])
        inside = real == point or real.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, source = point, _unescape(parts[0])
    return best if source.startswith("avfs:") else None


# statx(2)'s STATX_MNT_ID_UNIQUE and statmount(2) (Linux 6.8): a mount named by an id that
# is never reused, and asked about without reading the table
_STATX_MNT_ID_UNIQUE = 0x4000
_STX_MNT_ID = 0x90  # offset of stx_mnt_id in struct statx
_SYS_STATMOUNT = {"x86_64": 457, "aarch64": 457}.get(os.uname().machine)


@functools.cache
def _c() -> Any:
    import ctypes

    return ctypes.CDLL(None, use_errno=True)


def mount_id(path: str) -> int | None:
    """The unique id of the mount whose root ``path`` is (``statx``'s ``STATX_MNT_ID_UNIQUE``,
    the link itself not followed), None where the kernel gives none."""
    import ctypes

    buf = ctypes.create_string_buffer(256)
    statx = getattr(_c(), "statx", None)
    if statx is None or statx(-100, os.fsencode(path), 0x100, _STATX_MNT_ID_UNIQUE, buf) != 0:
        return None  # (-100: AT_FDCWD, 0x100: AT_SYMLINK_NOFOLLOW)
    mask = int.from_bytes(buf.raw[0:4], "little")
    return (
        int.from_bytes(buf.raw[_STX_MNT_ID : _STX_MNT_ID + 8], "little")
        if mask & _STATX_MNT_ID_UNIQUE
        else None
    )


def mount_gone(mnt_id: int) -> bool | None:
    """Whether the mount ``mnt_id`` (:func:`mount_id`) is no longer in this process's mount
    namespace, by ``statmount`` (one system call, the table unread); None where the kernel
    cannot say (the caller reads the table)."""
    import ctypes

    if _SYS_STATMOUNT is None:
        return None
    req = (24).to_bytes(4, "little") + bytes(4) + mnt_id.to_bytes(8, "little") + (1).to_bytes(8, "little")
    buf = ctypes.create_string_buffer(4096)  # (STATMOUNT_SB_BASIC asked: the least there is)
    if _c().syscall(_SYS_STATMOUNT, ctypes.c_char_p(req), buf, ctypes.c_size_t(4096), 0) == 0:
        return False
    return True if ctypes.get_errno() == errno.ENOENT else None
