"""The data a ``proxy exec`` call goes in and comes out as: :class:`ExecRequest` and the
envelope, :class:`ExecResult` (``kind: proxy_exec_result``).
"""

from __future__ import annotations

import dataclasses
import shlex
import subprocess
from typing import IO, Any

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


@dataclasses.dataclass(frozen=True, slots=True)
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


@dataclasses.dataclass(slots=True)
class ExecResult:
    """The envelope (``kind: proxy_exec_result``) as data; :meth:`to_dict` is its JSON."""

    request: dict[str, Any]
    decision: dict[str, Any] | None = None
    approval: dict[str, Any] | None = None
    checkpoint: dict[str, Any] | None = None
    mount: dict[str, Any] | None = None
    isolation: dict[str, Any] | None = None
    confinement: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    changes: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    # paths the command wrote that git ignores (a venv, caches): in the fork, never committed
    ignored: int = 0
    commit: dict[str, Any] | None = None
    # the command moved the fork's branch itself (a `git commit` inside): {from, to}
    branch_moved: dict[str, Any] | None = None
    # paths git refuses (GIT~1, '.git ', a .gitmodules link): left out of the commit
    not_recorded: list[dict[str, str]] = dataclasses.field(default_factory=list)
    # ref changes the command made in its sandbox that avfs did not apply (proxy/seal.py)
    refs_refused: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    state: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    exit_code: int = 0
    duration_ms: float = 0.0

    @property
    def success(self) -> bool:
        return self.error is None and self.result is not None and self.result["exit_code"] == 0

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"success": self.success}
        for f in dataclasses.fields(self):
            out[f.name] = getattr(self, f.name)
        return out


def _request_dict(vault: str, fork: str, req: ExecRequest, timeout_ms: int) -> dict[str, Any]:
    return {
        "vault": vault,
        "fork": fork,
        "argv": list(req.argv) if req.argv is not None else None,
        "shell": req.shell,
        "cwd": req.cwd,
        "timeout_ms": timeout_ms,
        "checkpoint": req.checkpoint,
        "commit": req.commit,
        "mode": req.mode,
    }
