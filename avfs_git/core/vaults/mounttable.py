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

import os
import select
import threading

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
