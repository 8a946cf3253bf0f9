"""Two names of one directory swapped in one step (``renameat2(RENAME_EXCHANGE)``): for a file
avfs must replace where another process may rename its own over it meanwhile (git's
``index.lock`` over ``index``), so that what was replaced can be looked at and put back."""

from __future__ import annotations

import ctypes
import errno
import functools
import os
from collections.abc import Callable

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


@functools.cache
def _renameat2() -> Callable[..., int] | None:
    """glibc's ``renameat2`` (2.28 and later), or None."""
    libc = ctypes.CDLL(None, use_errno=True)
    fn = getattr(libc, "renameat2", None)
    if fn is None:
        return None
    fn.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint)
    fn.restype = ctypes.c_int
    return fn  # type: ignore[no-any-return]


def exchange(one: str, other: str) -> bool:
    """Swap the entries ``one`` and ``other`` (both must exist; no link is followed: the
    entries themselves are swapped). False when the kernel or the file system has no such
    call (the caller does otherwise); an OSError for any other failure."""
    fn = _renameat2()
    if fn is None:
        return False
    if fn(_AT_FDCWD, os.fsencode(one), _AT_FDCWD, os.fsencode(other), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), one)
