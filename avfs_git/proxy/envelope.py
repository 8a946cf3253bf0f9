"""The data a ``proxy exec`` call goes in and comes out as: :class:`ExecRequest` and the
envelope, :class:`ExecResult` (``kind: proxy_exec_result``).
"""

from __future__ import annotations

import dataclasses
import shlex
import subprocess
from typing import IO, TYPE_CHECKING, Any, ClassVar

from ..core.records import dataclass

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ..core.errors import AvfsError

# When the command did not run, the codes `timeout`, `env` and `chroot` use for "the command
# was not run" (docs/proxy.md, Exit codes): whenever it ran, its own code (124: timed out).
EXIT_AVFS_FAILED = 125  # avfs itself failed: missing vault or fork, bad usage, mount failure
EXIT_REFUSED = 126  # the policy refused it: denied, approval required, approval token refused
# what a command sees of the caller's environment unless --inherit-env (plus AVFS_* below)
PASSED_ENV = (
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TERM",
    "TZ",
    "TMPDIR",
    # who a `git commit` the command makes is by: the same people as the exec's own commit
    "GIT_AUTHOR_NAME",
    "GIT_AUTHOR_EMAIL",
    "GIT_AUTHOR_DATE",
    "GIT_COMMITTER_NAME",
    "GIT_COMMITTER_EMAIL",
    "GIT_COMMITTER_DATE",
)


MODES = ("auto", "fuse", "materialized")


@dataclass(frozen=True, slots=True)
class ExecRequest:
    argv: tuple[str, ...] | None = None  # exactly one of argv / shell
    shell: str | None = None
    cwd: str = ""  # relative to the workspace root
    timeout_ms: int | None = None  # None: the policy's default
    max_output_bytes: int | None = None  # per stream; None: the policy's default
    checkpoint: str = "auto"  # auto: when the policy says so | always
    commit: bool = True
    mode: str = "auto"  # auto | fuse | materialized
    keep_mount: bool = False  # leave a mount made for this call mounted
    env: tuple[tuple[str, str], ...] = ()
    inherit_env: bool = False
    approve: str | None = None
    kill_grace_ms: int = 2000
    stdin: int | IO[bytes] | None = subprocess.DEVNULL
    base_env: tuple[tuple[str, str], ...] | None = None  # the caller's environment (default: ours)
    # None, or a view at the project's path (isolate_at): confined (the sandbox, as by default),
    # or what the command sees of the host through a hand-made namespace: writable | readonly | hidden
    isolate: str | None = None
    isolate_at: str | None = None  # where the fork appears (None: the vault's origin_dir)
    # without an isolate view: run in the sandbox (True, the default) or on the host as it is
    # (False: `--host writable`)
    confine: bool = True
    # a token is accepted only when a person approved it (`avfs proxy approve`): the MCP
    # server's exec, whose client (the agent) gets the token itself
    require_person_approval: bool = False

    def command_text(self) -> str:
        return self.shell if self.shell is not None else shlex.join(self.argv or ())


def _plain(value: Any) -> Any:
    """A record's field as JSON data: records as dicts, tuples as lists."""
    if isinstance(value, _Record):
        return value.to_dict()
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, BaseException) and hasattr(value, "to_dict"):
        return value.to_dict()
    return value


class _Record:
    """A part of the envelope: a frozen dataclass whose :meth:`to_dict` is its JSON (the
    fields in :attr:`OPTIONAL` are left out while they are None, as the envelope's
    documented keys appear only where they apply; :attr:`KEYS` renames a field)."""

    __slots__ = ()
    OPTIONAL: ClassVar[frozenset[str]] = frozenset()
    KEYS: ClassVar[Mapping[str, str]] = {}

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if value is None and f.name in self.OPTIONAL:
                continue
            out[self.KEYS.get(f.name, f.name)] = _plain(value)
        return out


@dataclass(frozen=True, slots=True)
class Request(_Record):
    """What was asked for (``request``): the command, where, and how long it may take."""

    vault: str | None  # None: a call that failed before the name was valid
    fork: str | None
    argv: tuple[str, ...] | None
    shell: str | None
    cwd: str
    timeout_ms: int
    checkpoint: str
    commit: bool
    mode: str

    @classmethod
    def of(cls, vault: str, fork: str, req: ExecRequest, timeout_ms: int, cwd: str | None = None) -> Request:
        return cls(
            vault=vault,
            fork=fork,
            argv=tuple(req.argv) if req.argv is not None else None,
            shell=req.shell,
            cwd=req.cwd if cwd is None else cwd,
            timeout_ms=timeout_ms,
            checkpoint=req.checkpoint,
            commit=req.commit,
            mode=req.mode,
        )


@dataclass(frozen=True, slots=True)
class Decision(_Record):
    """The policy's verdict (``decision``)."""

    action: str
    categories: tuple[str, ...]
    reason: str
    rule: str | None


@dataclass(frozen=True, slots=True)
class Approval(_Record):
    """A token issued for the command (``token``, ``expires_at``, ``request_hash``,
    ``stdin_sha256``), or one it ran with (``token``, ``used``)."""

    OPTIONAL = frozenset({"used", "expires_at", "request_hash", "stdin_sha256"})

    token: str
    used: bool | None = None
    expires_at: str | None = None
    request_hash: str | None = None
    stdin_sha256: str | None = None


@dataclass(frozen=True, slots=True)
class Checkpoint(_Record):
    """The record of the fork taken before the command (``checkpoint``): ``commit`` (the
    base when none was needed), why, whether it is on the fork's branch, or the recovery
    ref that keeps it beside the branch."""

    commit: str | None
    created: bool
    reason: str
    on_branch: bool
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class Mount(_Record):
    """Where the command ran (``mount``): the mount point (reused or made for the call) or
    the materialized copy; whether the mount's daemon was alive afterwards; whether the
    mount is kept warm (released after its idle timeout) or stays."""

    OPTIONAL = frozenset({"backend", "alive_after", "kept_warm", "idle_timeout_s"})

    mountpoint: str
    mode: str
    reused: bool
    backend: str | None = None
    alive_after: bool | None = None
    # a mount proxy exec made and keeps warm (docs/fuse.md, "Mounts kept warm"): released
    # by its daemon after idle_timeout_s without use; False for a mount that stays
    kept_warm: bool | None = None
    idle_timeout_s: float | None = None


@dataclass(frozen=True, slots=True)
class Isolation(_Record):
    """An isolated view asked for (``isolation``): where the fork appears, what of the host
    the command sees, and why it ran without one (``reason``)."""

    requested: bool
    active: bool
    path: str
    host: str
    method: str | None
    reason: str | None


@dataclass(frozen=True, slots=True)
class Confinement(_Record):
    """What the command ran in (``confinement``; docs/proxy.md, Confinement)."""

    OPTIONAL = frozenset({"path", "caches", "network_allow", "network_refused", "network_reason"})

    kind: str  # bwrap | namespace | host | none
    requested: str
    network: str
    reason: str | None
    path: str | None = None
    caches: tuple[str, ...] | None = None
    network_allow: tuple[str, ...] | None = None
    network_refused: tuple[str, ...] | None = None
    network_reason: str | None = None


@dataclass(frozen=True, slots=True)
class Run(_Record):
    """How the command ran (``result``): its exit, its output (as text), its time."""

    exit_code: int
    signal: str | None
    timed_out: bool
    duration_ms: float
    stdout: str
    stderr: str
    stdout_bytes: int
    stderr_bytes: int
    stdout_truncated: bool
    stderr_truncated: bool
    spawn_error: str | None
    stray_processes_killed: bool
    interrupted: str | None


@dataclass(frozen=True, slots=True)
class Changed(_Record):
    """A path the command changed (``changes``)."""

    OPTIONAL = frozenset({"old_path"})

    path: str
    status: str
    old_path: str | None = None


@dataclass(frozen=True, slots=True)
class ExecWarning(_Record):
    """Something of the call a caller may not have meant (``warnings``): a directory of
    installed dependencies no ignore rule kept out (``dependencies_committed``, .callwarnings;
    ``path`` and ``count``), a shell line given as one argument that ran as a program of
    that name and was not found (``one_argument_command``)."""

    OPTIONAL = frozenset({"path", "count"})

    code: str
    message: str
    hint: str
    path: str | None = None
    count: int | None = None


@dataclass(frozen=True, slots=True)
class Commit(_Record):
    """The commit of what the command changed (``commit``)."""

    commit: str
    parent: str | None
    message: str


@dataclass(frozen=True, slots=True)
class BranchMove(_Record):
    """The command moved the fork's branch itself, a ``git commit`` inside (``branch_moved``)."""

    KEYS = {"old": "from", "new": "to"}

    old: str | None
    new: str | None


@dataclass(frozen=True, slots=True)
class NotRecorded(_Record):
    """A path left out of the commit because git refuses it (``not_recorded``)."""

    path: str
    kind: str
    reason: str


@dataclass(frozen=True, slots=True)
class RefRefused(_Record):
    """A ref change the command made in its sandbox that avfs did not apply (``refs_refused``)."""

    ref: str
    old: str | None
    new: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class RefFetched(_Record):
    """A remote-tracking ref the command's ``git fetch`` moved that avfs kept in the vault,
    the remote having said the same (``refs_fetched``)."""

    ref: str
    old: str | None
    new: str | None


@dataclass(frozen=True, slots=True)
class PlantedGitDir(_Record):
    """What of a repository the command planted below the fork's root could run a program
    in the person's git, set aside by a rename in place (``planted_git_dirs``, .plantedgit)."""

    git_dir: str
    found: str
    path: str
    moved_to: str


@dataclass(frozen=True, slots=True)
class OpenMerge(_Record):
    """A merge with written conflicts open in the fork (``state.merge``)."""

    source: str
    theirs: str
    unresolved: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class State(_Record):
    """The fork after the call (``state``)."""

    OPTIONAL = frozenset({"merge"})

    base: str | None
    uncheckpointed_changes: int
    merge: OpenMerge | None = None


@dataclass(frozen=True, slots=True)
class ExecResult(_Record):
    """The envelope (``kind: proxy_exec_result``) as data; :meth:`to_dict` is its JSON, made
    here and nowhere else (a call that failed before it could run too: :meth:`failed`)."""

    request: Request | None
    decision: Decision | None = None
    approval: Approval | None = None
    checkpoint: Checkpoint | None = None
    mount: Mount | None = None
    isolation: Isolation | None = None
    confinement: Confinement | None = None
    result: Run | None = None
    changes: tuple[Changed, ...] = ()
    # paths the command wrote that git ignores (a venv, caches): in the fork, never committed
    ignored: int = 0
    commit: Commit | None = None
    # the command moved the fork's branch itself (a `git commit` inside)
    branch_moved: BranchMove | None = None
    # paths git refuses (GIT~1, '.git ', a .gitmodules link): left out of the commit
    not_recorded: tuple[NotRecorded, ...] = ()
    # ref changes the command made in its sandbox that avfs did not apply (proxy/seal.py)
    refs_refused: tuple[RefRefused, ...] = ()
    # remote-tracking refs the command's git fetch moved, kept in the vault (proxy/sealremotes.py)
    refs_fetched: tuple[RefFetched, ...] = ()
    # what of a repository the command planted below the root was set aside (proxy/plantedgit.py)
    planted_git_dirs: tuple[PlantedGitDir, ...] = ()
    # what of the commit a caller may not have meant (proxy/callwarnings.py)
    warnings: tuple[ExecWarning, ...] = ()
    state: State | None = None
    error: AvfsError | None = None
    exit_code: int = 0
    duration_ms: float = 0.0

    @property
    def success(self) -> bool:
        return self.error is None and self.result is not None and self.result.exit_code == 0

    def to_dict(self) -> dict[str, Any]:
        return {"success": self.success, **_Record.to_dict(self)}


def short(text: str, n: int = 200) -> str:
    from ..core.store.redact import redact

    # arguments that are not UTF-8 (surrogate escapes) cannot go into a commit message as is;
    # a URL's credentials (`git push https://TOKEN@host/...`) never go into one
    text = redact(" ".join(text.encode("utf-8", "replace").decode("utf-8").split()))
    return text if len(text) <= n else text[: n - 1] + "…"
