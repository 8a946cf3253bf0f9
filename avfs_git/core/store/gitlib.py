"""libgit2 (pygit2) as every module of the store meets it: whether this process has loaded
it (:func:`libgit2_loaded`: until then reads avoid it), what it raises (:func:`git_errors`,
the one list) and the :class:`~.errors.AvfsError` that becomes (:func:`git_error`, the one
translation); nothing above the store catches pygit2's exceptions."""

from __future__ import annotations

import sys

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
