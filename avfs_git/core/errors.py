"""The one error hierarchy of avfs.

Every failure a user can cause or meet is an :class:`AvfsError` subclass with a stable ``code`` (for
JSON and scripts), an ``exit_code`` (for the CLI) and an ``errno`` (for the FUSE layer), and every one
is defined here, whichever layer raises it (mounts, remotes, policy files, approvals, isolation, merges,
hook events): one list of codes, which ``common.schema.json``'s ``error_code`` mirrors (a test compares
them). The errors a ``proxy exec`` envelope reports beside a result (:class:`EnvelopeError`: denied,
awaiting approval, the mount died, a write-back left paths behind) are here too, rendered by the same
:meth:`AvfsError.to_dict`. The modules that touch pygit2 translate its exceptions into these; nothing
above ``core`` catches pygit2 errors."""

from __future__ import annotations

import errno as _errno
import os as _os

TYPE_CHECKING = False  # not from typing: see avfs_git/__init__.py

if TYPE_CHECKING:  # annotations only: importing typing's names costs ~5 ms on the fast path
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

    @classmethod
    def at(cls, path: str, *, submodule: bool = False) -> NotDirectoryError:
        """``path`` used as a directory, which it is not; a submodule (a gitlink) says its files aren't the fork's."""
        if submodule:
            return cls(
                f"{path}: a submodule, not a directory of the fork",
                hint="a submodule's files are not part of the fork (git keeps its commit id only)",
                details={"path": path, "kind": "submodule"},
            )
        return cls(f"{path}: not a directory", details={"path": path})


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


class IgnoreTooSlowError(AvfsError):  # git's matcher past $AVFS_IGNORE_WAIT (core/workspace/ignore.py)
    code = "ignore_too_slow"
    errno = _errno.ETIMEDOUT


class CorruptStateError(AvfsError):
    """Overlay or vault state that does not agree with itself (a missing overlay file...)."""

    code = "corrupt_state"
    exit_code = EXIT_INTERNAL
    errno = _errno.EIO


class ObjectUnreadableError(CorruptStateError):
    """A git object of the vault that neither avfs' reader nor libgit2 can read (a truncated
    or corrupt pack or loose object, a missing delta base). ``details["oid"]`` names it;
    ``avfs doctor --full`` lists every such object."""

    code = "object_unreadable"
    exit_code = EXIT_USER
    errno = _errno.EIO


class RefMovedError(AvfsError):
    """A ref is not where the operation expected it: someone else moved it."""

    code = "ref_moved"
    exit_code = EXIT_BUSY
    errno = _errno.EAGAIN


class ExpectMismatchError(AvfsError):
    """A write asked to go ahead only if the path (or the fork's head) still held what the
    caller last read, and it holds something else: nothing was written. ``details``:
    ``expected``, ``current`` (the blob or commit id now there; None when absent)."""

    code = "expect_mismatch"
    errno = _errno.EAGAIN


class PathProtectedError(AvfsError):
    """A change the fork's path policy (``[paths]`` of the policy files) forbids: nothing
    was changed. ``details``: ``path``, ``kind`` (``read_only``, ``hidden``,
    ``append_only``), ``pattern`` and ``source`` (the rule that matched: the pattern, the
    file and, for a ``[forks."PAT".paths]`` rule, ``fork_pattern``), ``op``."""

    code = "path_protected"
    errno = _errno.EACCES


class PathReadOnlyError(PathProtectedError):
    """A write, create, rename, unlink, chmod or truncate of a path a ``read_only`` rule
    protects. The mount answers ``EROFS``."""

    code = "path_read_only"
    errno = _errno.EROFS


class PathHiddenError(PathProtectedError):
    """A path a ``hidden`` rule hides: it does not exist for the fork's users (reads answer it; a
    create there is refused). The mount answers ``ENOENT`` to lookups and ``EACCES`` to a create."""

    code = "path_hidden"
    errno = _errno.ENOENT


class PathAppendOnlyError(PathProtectedError):
    """A change to an ``append_only`` file other than an append (a rewrite, truncate,
    rename, unlink, chmod): ``EPERM``, as the kernel answers for ``chattr +a`` files."""

    code = "path_append_only"
    errno = _errno.EPERM


class CursorInvalidError(AvfsError):
    """A change-stream cursor (``avfs watch --since``, MCP ``changes_since``) that is not
    one avfs handed out, or that names a position the vault has not reached (a cursor from
    the future): nothing is read. ``details``: ``cursor``, ``reason``."""

    code = "cursor_invalid"
    errno = _errno.EINVAL


class BusyError(AvfsError):
    """Another process holds the lock; retry later."""

    code = "busy"
    exit_code = EXIT_BUSY
    errno = _errno.EBUSY


class GitIndexBusyError(BusyError):
    """git in a mount of the fork held its ``index.lock`` for as long as avfs waits: a
    move of the fork's branch (a checkpoint, restore, undo, revert, merge) is not made, as
    git's own commands refuse while another git holds it (the index could not be written
    for the new base, and git's next ``commit`` would commit the old one on top of it)."""


class MountedError(AvfsError):
    """What is asked would pull a live mount's state from under it (deleting a mounted fork
    or its vault): unmount first."""

    code = "fork_mounted"
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


# -- mounts (ops/mounts.py) -------------------------------------------------------------------


class MountError(AvfsError):
    """A mount could not be made or taken down (the daemon did not come up, overlayfs
    refused, ``fusermount3`` failed)."""

    code = "mount_failed"
    errno = _errno.EIO


class FuseUnavailableError(MountError):
    """FUSE cannot be used here (no /dev/fuse, no fusermount3)."""

    code = "fuse_unavailable"
    errno = _errno.ENODEV


# -- remotes (core/operations/remote.py) ------------------------------------------------------------------


class RemoteError(AvfsError):
    """A push, fetch or clone failed on the remote's side or on the way there."""

    code = "remote_failed"
    exit_code = EXIT_REMOTE


class BlobNotLocalError(RemoteError):
    """A lazy vault's file whose contents were never fetched, and the promisor remote did
    not give them (offline, timed out, the server no longer has them). ``details`` names
    the remote, the blob and, where the reader knows it, the path; the mount answers EIO."""

    code = "blob_not_local"
    errno = _errno.EIO


class RemoteRejectedError(RemoteError):
    """The remote refused the update (a non-fast-forward, a hook that said no)."""

    code = "remote_rejected"


class RemoteNotFoundError(NotFoundError):
    code = "remote_not_found"


# -- merges (core/operations/merge.py) --------------------------------------------------------------------


class MergeInProgressError(BusyError):
    """A merge with written conflicts is open in the fork: what was asked would end it
    (commit its markers as an ordinary commit, or start another merge)."""

    code = "merge_in_progress"


class GitInProgressError(BusyError):
    """git in the fork's mount left its HEAD off the fork's branch (another branch,
    detached) or an operation of its own open (a rebase, merge, cherry-pick): what the
    mount shows is git's work in the middle, not the fork's next commit."""

    code = "git_in_progress"
    # how each of git's states that has no ``--continue`` ends (``git sparse-checkout``:
    # the files it leaves out read removed in the mount, and a checkpoint would record them)
    ENDS = {
        "bisect": "end it with `git bisect reset`",
        "sparse-checkout": "turn it off with `git sparse-checkout disable` (a mount is lazy already)",
    }


class UnrelatedHistoriesError(UsageError):
    code = "unrelated_histories"


# -- policy files (policy/config.py) -----------------------------------------------------------


class PolicyError(UsageError):
    """A policy file avfs cannot use: bad TOML, an unknown key, class or outcome, a bad regex.

    ``details`` holds ``file``, ``line`` and ``column`` (``None`` where unknown) and
    ``problem``. Like a bad command line it exits with the usage code (2): avfs never falls
    back to a more permissive policy when the configured one is broken.
    """

    code = "policy_invalid"


# -- proxy exec: approvals, isolation (proxy/) ---------------------------------------------------


class ApprovalError(AvfsError):
    """An approval token that does not approve this request (unknown, expired, used, bound
    to another request, or not approved by a person)."""

    code = "approval_refused"
    exit_code = EXIT_DENIED
    errno = _errno.EPERM


class IsolationError(AvfsError):
    """An isolated view or sandbox was possible here but could not be set up for this
    command; it did not run."""

    code = "isolation_failed"


class IsolationFailed(IsolationError):
    """Setting up the isolated view failed in the child, before the command was started:
    ``reason`` as the child reported it, ``os_errno`` the errno it met (0: unknown)."""

    def __init__(self, reason: str, err: int = 0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.os_errno = err


class SandboxFailed(IsolationError):
    """bwrap could not set up the sandbox: the command did not start."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SandboxUnavailableError(IsolationError):
    """A confined command was asked for where no sandbox can be made (bubblewrap missing, or
    unable to start) and the policy allows no weaker view: it did not run."""

    code = "sandbox_unavailable"


class EnvelopeError(AvfsError):
    """An error a ``proxy exec`` envelope reports in its ``error`` (by :meth:`to_dict`)
    beside what happened: the envelope's own ``exit_code`` is what the call exits with
    (docs/proxy.md), so these are never raised to a front end. Their codes are the
    envelope's own (``proxy_exec_result.schema.json``), not ``common``'s ``error_code``."""


class PolicyDeniedError(EnvelopeError):
    """The policy denied the command; it did not run."""

    code = "policy_denied"
    exit_code = EXIT_DENIED
    errno = _errno.EPERM


class ApprovalRequiredError(EnvelopeError):
    """The command needs a person's approval; the envelope carries the token to approve."""

    code = "approval_required"
    exit_code = EXIT_APPROVAL
    errno = _errno.EPERM


class MountDiedError(EnvelopeError):
    """The mount daemon died while (or before) it ran the command."""

    code = "mount_died"
    exit_code = EXIT_INTERNAL


class WriteBackIncompleteError(EnvelopeError):
    """A materialized run's changes could not all be written back to the fork (the copy is
    kept; the exit code stays the command's)."""

    code = "write_back_incomplete"


# -- agent hooks (hooks/events.py) -------------------------------------------------------------


class HookEventError(UsageError):
    """The event an agent wrote on stdin is not one avfs can act on (the message says what
    is wrong with it). Answered in the agent's own protocol, never as an avfs document."""


def from_oserror(exc: OSError, what: str) -> AvfsError:
    """Translate an OSError met on avfs' own state into an AvfsError."""
    if exc.errno in (_errno.EACCES, _errno.EPERM):
        return PermissionDeniedError(
            f"permission denied: {what}", hint="check the permissions of the avfs home"
        )
    if exc.errno == _errno.EROFS:
        why = "use a writable --home; a --readonly-host view's command sees it read-only: run avfs outside it"
        return ReadOnlyError(f"read-only file system: {what}", hint=why)  # (attack29)
    if exc.errno == _errno.ENOSPC:
        return no_space(what)
    if exc.errno == _errno.EDQUOT:
        return QuotaExceededError(
            f"disk quota exceeded: {what}",
            hint="the vault is at its quota: rm files or delete forks to get back under it (status,"
            " checkpoint, restore and rm still work), or raise it with `avfs quota set --bytes SIZE`",
            details={"what": "bytes", "used": None, "adding": None, "quota": None},
        )
    if exc.errno in (_errno.ENOTDIR, _errno.ENOENT, _errno.EISDIR, _errno.ENAMETOOLONG, _errno.ELOOP):
        return UnusablePathError(
            f"cannot use {what}: {exc.strerror or exc}",
            hint="check --home / AVFS_HOME: it must be a directory avfs may write",
        )
    return InternalError(f"{exc.strerror or exc}: {what}")


class NoSpaceError(AvfsError):
    """The file system that holds the avfs home (or a vault) is full: nothing was changed;
    free some space and retry."""

    code = "no_space"
    errno = _errno.ENOSPC


_FULL_MARKERS = ("no space left on device", "database or disk is full")


def no_space(path: str | None = None) -> NoSpaceError:
    """The error for a write that found the disk (under ``path``, when known) full."""
    return NoSpaceError(
        f"no space left on the device{': ' + path if path else ' that holds the avfs home'}",
        hint="free some space under the avfs home (`avfs gc` may help), then retry: nothing was changed",
        details={"path": path},
    )


def is_no_space(exc: BaseException, path: str | None = None) -> bool:
    """Whether ``exc`` (or what caused it) is a full disk: an ``ENOSPC`` OSError, SQLite's
    "database or disk is full", libgit2's "No space left on device"; with ``path``, also an
    unexplained I/O error (SQLite's "disk I/O error" when it cannot grow a file) while the
    file system under ``path`` has (almost) no room left."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, OSError) and cur.errno == _errno.ENOSPC:
            return True
        text = str(cur).lower()
        if any(m in text for m in _FULL_MARKERS):
            return True
        if path is not None and "i/o error" in text and disk_full(path):
            return True
        cur = cur.__cause__ or cur.__context__
    return False


def disk_full(path: str) -> bool:
    """Whether the file system under ``path`` has less than 1 MiB or no inode left."""
    import os

    probe = path
    while probe and not os.path.exists(probe):
        probe = os.path.dirname(probe)
    try:
        st = os.statvfs(probe or "/")
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < (1 << 20) or (st.f_files > 0 and st.f_favail == 0)


def _quota_cause(exc: BaseException) -> AvfsError | None:
    """The quota's error when an ``EDQUOT`` (a kernel quota) caused ``exc``."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, OSError) and cur.errno == _errno.EDQUOT:
            return from_oserror(cur, str(cur.filename or "a file of the vault"))
        cur = cur.__cause__ or cur.__context__
    return None


def want_str(value: object, arg: str) -> str:
    """``value``, a text argument of the public API; anything else (None, bytes, a Path, an
    int, a list) is a TypeError naming ``arg``, before the value reaches code that would fail
    on it with an AttributeError or a TypeError from deep inside."""
    if not isinstance(value, str):
        raise TypeError(f"{arg} must be a str, not {type(value).__name__}")
    return value


def want_strs(**args: object) -> None:
    """:func:`want_str` of each optional text argument given (None, the default, is left)."""
    for arg, value in args.items():
        if value is not None:
            want_str(value, arg)


def want_path(value: object, arg: str) -> str:
    """``value``, a path on the host given to the public API, as a str: a str, or what
    ``open()`` also takes, an ``os.PathLike`` giving one (a ``pathlib.Path``); anything else
    (None, bytes, an int, a list) is a TypeError naming ``arg``."""
    if isinstance(value, _os.PathLike):
        value = _os.fspath(value)
    if not isinstance(value, str):
        raise TypeError(f"{arg} must be a str or an os.PathLike, not {type(value).__name__}")
    return value


def unexpected(exc: BaseException) -> AvfsError:
    """The error to report for an exception avfs did not expect: ``no_space`` when a full
    disk caused it (wherever the write was: a pack, a ref, a database), else ``internal``
    (a bug: please report it). Front ends call this in their last ``except``."""
    if is_no_space(exc):
        filename = getattr(exc, "filename", None)
        return no_space(str(filename) if filename else None)
    quota = _quota_cause(exc)
    if quota is not None:
        return quota
    return InternalError(f"internal error: {type(exc).__name__}: {exc}", hint="please report this")
