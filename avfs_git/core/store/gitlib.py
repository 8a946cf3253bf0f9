"""libgit2 (pygit2) as every module of the store meets it: whether this process has loaded
it (:func:`libgit2_loaded`: until then reads avoid it), what it raises (:func:`git_errors`,
the one list) and the :class:`~.errors.AvfsError` that becomes (:func:`git_error`, the one
translation); nothing above the store catches pygit2's exceptions."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

from ..errors import AvfsError, InternalError


def git_errors(*also: type[Exception]) -> tuple[type[Exception], ...]:
    """What pygit2 raises when libgit2 cannot find, parse or read something: ``KeyError``
    (no such object or ref), ``ValueError`` and ``InvalidSpecError`` (a malformed id or
    revision), ``GitError`` (anything libgit2 reports). The one list: a module that calls
    pygit2 catches ``git_errors()`` (evaluated only when something was raised) and turns it
    into an :class:`~.errors.AvfsError` with :func:`git_error`; nothing above core catches
    pygit2's exceptions. ``also``: more to catch with them (``OSError`` where a file is read)."""
    import pygit2

    return (KeyError, ValueError, pygit2.GitError, pygit2.InvalidSpecError, *also)


def git_error(exc: BaseException, message: str, cls: type[AvfsError] = InternalError) -> AvfsError:
    """libgit2's failure ``exc`` as ``cls``: ``MESSAGE: <what libgit2 said>``."""
    return cls(f"{message}: {exc}")


def inflate_failed() -> Callable[[], bool]:
    """A check, for the calling thread, to make after a libgit2 call that returned: whether
    libgit2 met data it could not inflate on the way (its thread's last error is zlib's),
    that error cleared when it did. libgit2 1.9's header read of a delta whose data does
    not inflate returns success with sizes parsed from a buffer it never filled
    (``git_delta_read_header_fromstream`` adds its stream's -1 to the length it read):
    0 on a fresh thread's stack, anything on another (flaky2, flaky3); only the error it
    set says so. ~0.2 us a call (a header read is ~2 us). Loads pygit2."""
    from pygit2 import C

    last, zlib = C.git_error_last, C.GIT_ERROR_ZLIB

    def failed() -> bool:
        if last().klass != zlib:
            return False
        _error_clear()  # (else the next call's answer would be taken for this one's)
        return True

    return failed


def header_size(odb: Any, oid: str) -> int | None:
    """Object ``oid``'s size from libgit2's header read in ``odb`` (a ``pygit2.Odb``;
    raising what pygit2 raises), or None where libgit2 met data it could not inflate on the
    way: a size it made up (:func:`inflate_failed`). One object; many: :func:`inflate_failed`
    made once beside the reads (:func:`.odbdirect.size_reader`)."""
    failed = inflate_failed()
    failed()  # (an earlier call's error: not this one's)
    n = int(odb.read_header(oid)[1])
    return None if failed() else n


@functools.cache
def _clear_fn() -> Callable[[], object] | None:
    """libgit2's ``git_error_clear`` (pygit2 does not declare it), from the library pygit2
    loaded; None where it cannot be found: a zlib error then stays until libgit2 sets
    another, and :func:`inflate_failed` says so for each call until then (the caller reads
    through its checked path: slower, never wrong)."""
    import ctypes

    from pygit2 import _libgit2

    try:
        fn: Callable[[], object] = ctypes.CDLL(_libgit2.__file__).git_error_clear
    except (OSError, AttributeError):
        return None
    return fn


def _error_clear() -> None:
    if (fn := _clear_fn()) is not None:
        fn()


def libgit2_loaded() -> bool:
    """Whether this process has loaded libgit2 (pygit2): until then, reads avoid it."""
    return "pygit2" in sys.modules


def config_search_from_environ() -> None:
    """Where libgit2 looks for the global, XDG and system config files, found anew from this
    process's environment (``HOME``, ``XDG_CONFIG_HOME``) as a process that loaded it now
    would. libgit2 finds them once, when it is loaded: a mount daemon forked from a warm
    process (fuse/forked.py) whose environment is not the one that process loaded libgit2
    with would otherwise read another user home's ``.gitconfig`` (its identity). Nothing
    when libgit2 is not loaded (it finds them from this environment when it is)."""
    if not libgit2_loaded():
        return
    import pygit2

    levels = pygit2.enums.ConfigLevel
    for level in (levels.GLOBAL, levels.XDG, levels.SYSTEM):
        pygit2.settings.search_path[level] = None  # type: ignore[assignment]  # (None: the default, found anew)


PACK_FILES_OPEN = 32  # pack files libgit2 keeps open in a process (:func:`bound_open_packs`)


def bound_open_packs() -> None:
    """Bound the pack files libgit2 keeps open (libgit2's ``GIT_OPT_SET_MWINDOW_FILE_LIMIT``;
    its default, 0, keeps every pack it opened): a process kept for many calls
    (cli/callproc.py ``keep``) held one descriptor for each small pack a merge or checkpoint
    wrote, and its check after each call read them all (57 after ~55 merges;
    docs/benchmarks.md, h-merge11's and h-merge12's sections). Past the bound libgit2 closes
    the least recently used pack and opens it again when it is read. Idempotent."""
    import pygit2

    if pygit2.settings.mwindow_file_limit != PACK_FILES_OPEN:
        pygit2.settings.mwindow_file_limit = PACK_FILES_OPEN
