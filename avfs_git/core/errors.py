"""The one error hierarchy of avfs.

Every failure a user can cause or meet is an :class:`AvfsError` subclass with a stable
``code`` (for JSON and scripts), an ``exit_code`` (for the CLI) and an ``errno`` (for the
FUSE layer). The modules that touch pygit2 translate its exceptions into these; nothing
above ``core`` catches pygit2 errors.
"""

from __future__ import annotations

import errno as _errno
from typing import Any, ClassVar

# Exit codes (DESIGN.md "Exit codes").
EXIT_OK = 0
EXIT_USER = 1
EXIT_USAGE = 2
EXIT_CONFLICT = 3
EXIT_DENIED = 4
EXIT_REMOTE = 5
EXIT_APPROVAL = 6
EXIT_BUSY = 75
EXIT_INTERNAL = 70


class AvfsError(Exception):
    """Root of every error avfs raises on purpose.

    Attributes:
        code: stable snake_case identifier, the ``error.code`` of the JSON error document.
        exit_code: the CLI's exit status for this error.
        errno: the errno the FUSE layer answers with.
        hint: one sentence telling the user what to do next, or ``None``.
        details: JSON-serialisable facts (paths, commit ids) for machines.
    """

    code: ClassVar[str] = "error"
    exit_code: ClassVar[int] = EXIT_USER
    errno: ClassVar[int] = _errno.EIO

    def __init__(
        self, message: str, *, hint: str | None = None, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details: dict[str, Any] = dict(details or {})

    def to_dict(self) -> dict[str, Any]:
        """Return the ``error`` object of the JSON error document."""
        return {
            "code": self.code,
            "message": self.message,
            "hint": self.hint,
            "details": self.details,
        }


class InvalidNameError(AvfsError):
    """A vault, fork or checkpoint name that avfs refuses."""

    code = "invalid_name"
    errno = _errno.EINVAL


class InvalidPathError(AvfsError):
    """A workspace path that is absolute, escapes the root, holds NUL or ``.git``."""

    code = "invalid_path"
    errno = _errno.EINVAL


class NameTooLongError(InvalidPathError):
    code = "name_too_long"
    errno = _errno.ENAMETOOLONG


class NotFoundError(AvfsError):
    code = "not_found"
    errno = _errno.ENOENT


class VaultNotFoundError(NotFoundError):
    code = "vault_not_found"


class ForkNotFoundError(NotFoundError):
    code = "fork_not_found"


class RevisionNotFoundError(NotFoundError):
    code = "revision_not_found"


class PathNotFoundError(NotFoundError):
    code = "path_not_found"


class AlreadyExistsError(AvfsError):
    code = "already_exists"
    errno = _errno.EEXIST


class NotDirectoryError(AvfsError):
    code = "not_a_directory"
    errno = _errno.ENOTDIR


class IsDirectoryError(AvfsError):
    code = "is_a_directory"
    errno = _errno.EISDIR


class DirectoryNotEmptyError(AvfsError):
    code = "directory_not_empty"
    errno = _errno.ENOTEMPTY


class SymlinkEscapeError(AvfsError):
    """A symlink whose target leaves the workspace; file commands never follow it out."""

    code = "symlink_escape"
    errno = _errno.EACCES


class SymlinkLoopError(AvfsError):
    code = "symlink_loop"
    errno = _errno.ELOOP


class QuotaExceededError(AvfsError):
    code = "quota_exceeded"
    errno = _errno.EDQUOT


class CorruptStateError(AvfsError):
    """Overlay or vault state that does not agree with itself (a missing overlay file...)."""

    code = "corrupt_state"
    exit_code = EXIT_INTERNAL
    errno = _errno.EIO


class ObjectUnreadableError(CorruptStateError):
    """A git object of the vault that neither avfs' reader nor libgit2 can read (a truncated
    or corrupt pack or loose object, a missing delta base). ``details["oid"]`` names it;
    ``avfs doctor`` lists every such object."""

    code = "object_unreadable"
    exit_code = EXIT_USER
    errno = _errno.EIO


class RefMovedError(AvfsError):
    """A ref is not where the operation expected it: someone else moved it."""

    code = "ref_moved"
    exit_code = EXIT_BUSY
    errno = _errno.EAGAIN


class BusyError(AvfsError):
    """Another process holds the lock; retry later."""

    code = "busy"
    exit_code = EXIT_BUSY
    errno = _errno.EBUSY


class ConflictError(AvfsError):
    code = "conflict"
    exit_code = EXIT_CONFLICT
    errno = _errno.EAGAIN


class ReadOnlyError(AvfsError):
    code = "read_only"
    errno = _errno.EROFS


class PermissionDeniedError(AvfsError):
    code = "permission_denied"
    errno = _errno.EACCES


class UsageError(AvfsError):
    code = "usage"
    exit_code = EXIT_USAGE
    errno = _errno.EINVAL


class DirtyWorkspaceError(AvfsError):
    code = "dirty_workspace"
    errno = _errno.EBUSY


class NothingToUndoError(AvfsError):
    code = "nothing_to_undo"


class UnusablePathError(AvfsError):
    """A path avfs must use for its own state is not a usable directory."""

    code = "unusable_path"
    errno = _errno.ENOTDIR


class Interrupted(AvfsError):
    """The user (or a signal) interrupted the command."""

    code = "interrupted"
    exit_code = 130
    errno = _errno.EINTR


class InternalError(AvfsError):
    code = "internal"
    exit_code = EXIT_INTERNAL
    errno = _errno.EIO


def from_oserror(exc: OSError, what: str) -> AvfsError:
    """Translate an OSError met on avfs' own state into an AvfsError."""
    if exc.errno in (_errno.EACCES, _errno.EPERM):
        return PermissionDeniedError(
            f"permission denied: {what}", hint="check the permissions of the avfs home"
        )
    if exc.errno == _errno.EROFS:
        return ReadOnlyError(f"read-only file system: {what}", hint="use a writable --home")
    if exc.errno in (_errno.ENOSPC, _errno.EDQUOT):
        return QuotaExceededError(f"no space left: {what}")
    if exc.errno in (_errno.ENOTDIR, _errno.ENOENT, _errno.EISDIR, _errno.ENAMETOOLONG, _errno.ELOOP):
        return UnusablePathError(
            f"cannot use {what}: {exc.strerror or exc}",
            hint="check --home / AVFS_HOME: it must be a directory avfs may write",
        )
    return InternalError(f"{exc.strerror or exc}: {what}")
