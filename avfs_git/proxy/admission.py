"""Before a ``proxy exec`` command runs: the request checked, the approval bound to it, the
fork's exec lock, and the small conversions the envelope uses.
"""

from __future__ import annotations

import contextlib
import os
import stat
import subprocess
import tempfile
from typing import IO, TYPE_CHECKING, Any

from ..core.errors import UsageError
from ..core.store import names
from . import runner
from .envelope import MODES, ExecRequest

if TYPE_CHECKING:
    from ..core.vaults.vault import Vault
    from ..core.workspace.workspace import Workspace
    from ..policy import Decision


def _validate(req: ExecRequest) -> None:
    if (req.argv is None) == (req.shell is None):
        raise UsageError("give a command after `--`, or --shell 'STRING' (not both)")
    if req.argv is not None and (not req.argv or not req.argv[0]):
        raise UsageError("empty command", hint="usage: avfs proxy exec [OPTIONS] -- CMD [ARGS...]")
    if req.shell is not None and not req.shell.strip():
        raise UsageError("empty --shell command")
    if req.checkpoint not in ("auto", "always"):
        raise UsageError(f"--checkpoint must be auto or always, not {req.checkpoint!r}")
    if req.mode not in MODES:
        raise UsageError(f"--mode must be one of {', '.join(MODES)}")
    if req.timeout_ms is not None and req.timeout_ms <= 0:
        raise UsageError("--timeout-ms must be positive")
    if req.max_output_bytes is not None and req.max_output_bytes < 0:
        raise UsageError("--max-output-bytes must be 0 or more")
    for k, _ in req.env:
        if not k or "=" in k or "\0" in k:
            raise UsageError(f"invalid environment variable name {k!r}")


def _check_cwd(ws: Workspace, cwd: str) -> str:
    if cwd.startswith("/"):
        raise UsageError(
            f"--cwd {cwd!r} is absolute: give a directory relative to the workspace root",
            details={"cwd": cwd},
        )
    p = names.norm_path(cwd)  # refuses '..', NUL bytes and '.git'
    node = ws.node(p)
    if node is None or not node.is_dir:
        raise UsageError(f"--cwd {cwd!r} is not a directory of the workspace", details={"cwd": cwd})
    return p


def _exec_lock(vault: Vault, fork: str) -> Any:
    """Take the fork's exec lock (waiting for a running command); returns its release."""

    from ..core.store.locks import exec_lock_path, file_lock

    path = exec_lock_path(vault.state_dir, fork)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    stack = contextlib.ExitStack()
    stack.enter_context(file_lock(path, what=f"proxy exec on {vault.name}:{fork}", wait_s=24 * 3600))
    return stack.close


def _approved(request: dict[str, Any], req: ExecRequest, stdin_sha256: str | None) -> dict[str, Any]:
    """What an approval token is bound to (every key is hashed): the request, plus what
    changes what it runs (the environment asked for, the sha256 of the bytes on stdin or
    None without stdin, the isolated view)."""
    bound = {
        **request,
        "env": sorted(req.env),
        "inherit_env": req.inherit_env,
        "stdin": stdin_sha256,
    }
    if req.isolate is not None:  # what the command sees changes what it does
        bound["isolate"] = [req.isolate, req.isolate_at]
    if req.isolate is None and not req.confine:  # approved confined, not approved unconfined
        bound["host"] = "writable"
    return bound


def _stdin_digest(
    stdin: int | IO[bytes] | None, cleanup: list[Any]
) -> tuple[int | IO[bytes] | None, str | None]:
    """(what the command then reads as stdin, the sha256 of those bytes; None: no stdin,
    ``DEVNULL``).

    A regular file is hashed from its current offset without moving it (pread). A stream (a
    pipe, a terminal: ``--stdin``) is read to its end first, into an unnamed temporary file
    that the command then reads: so the bytes approved are the bytes it gets."""
    import hashlib

    if stdin == subprocess.DEVNULL:
        return stdin, None
    # None: the command would inherit ours
    fd = 0 if stdin is None else stdin if isinstance(stdin, int) else stdin.fileno()
    h = hashlib.sha256()
    try:
        st = os.fstat(fd)
        pos = os.lseek(fd, 0, os.SEEK_CUR) if stat.S_ISREG(st.st_mode) else -1
    except OSError:
        pos = -1
    if pos >= 0:
        while chunk := os.pread(fd, 1 << 20, pos):
            h.update(chunk)
            pos += len(chunk)
        return stdin, h.hexdigest()
    spool = tempfile.TemporaryFile()  # noqa: SIM115 - the command reads it; closed in cleanup
    cleanup.append(spool.close)
    while chunk := os.read(fd, 1 << 20):
        h.update(chunk)
        spool.write(chunk)
    spool.flush()
    spool.seek(0)
    return spool, h.hexdigest()


def _short(text: str, n: int = 200) -> str:
    from ..core.store.redact import redact

    # arguments that are not UTF-8 (surrogate escapes) cannot go into a commit message as is;
    # a URL's credentials (`git push https://TOKEN@host/...`) never go into one
    text = redact(" ".join(text.encode("utf-8", "replace").decode("utf-8").split()))
    return text if len(text) <= n else text[: n - 1] + "…"


def _decision_dict(d: Decision) -> dict[str, Any]:
    return {
        "action": str(d.action),
        "categories": [str(c) for c in d.categories],
        "reason": d.reason,
        "rule": d.rule,
    }


def _result_dict(r: runner.RunResult) -> dict[str, Any]:
    return {
        "exit_code": r.exit_code,
        "signal": r.signal,
        "timed_out": r.timed_out,
        "duration_ms": r.duration_ms,
        "stdout": r.stdout.decode("utf-8", "replace"),
        "stderr": r.stderr.decode("utf-8", "replace"),
        "stdout_bytes": r.stdout_bytes,
        "stderr_bytes": r.stderr_bytes,
        "stdout_truncated": r.stdout_truncated,
        "stderr_truncated": r.stderr_truncated,
        "spawn_error": r.spawn_error,
        "stray_processes_killed": r.stray_processes_killed,
        "interrupted": r.interrupted,
    }
