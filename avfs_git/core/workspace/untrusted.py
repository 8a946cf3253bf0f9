"""Reading a file a confined command may have written, as untrusted input.

The fork's files, the mount's worktree git dir (its index, ``logs/HEAD``) and the sandbox's
scratch refs are all writable by a confined ``proxy exec`` command (docs/security.md). What
avfs's host side reads of them is opened without following a symbolic link (``O_NOFOLLOW``),
without blocking on a FIFO the command planted (``O_NONBLOCK``), only when it is a regular
file, and bounded in size. Every such read goes through :func:`read_file`.
"""

from __future__ import annotations

import os
import stat


def read_file(
    path: str, limit: int | None = None, *, prefix: bool = False, dir_fd: int | None = None
) -> bytes | None:
    """The bytes of the regular file ``path`` (relative to ``dir_fd`` when given); None when
    it is a link, a FIFO, a device, a directory, missing or unreadable. With ``limit``: None
    when it holds more than ``limit`` bytes, or, with ``prefix``, its first ``limit`` bytes."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None
        if limit is not None and not prefix and st.st_size > limit:
            return None
        chunks = []
        got = 0
        while limit is None or got <= limit:
            want = 1 << 20 if limit is None else min(1 << 20, limit + 1 - got)
            b = os.read(fd, want)
            if not b:
                break
            chunks.append(b)
            got += len(b)
        data = b"".join(chunks)
        if limit is not None and got > limit:
            return data[:limit] if prefix else None
        return data
    except OSError:
        return None
    finally:
        os.close(fd)
