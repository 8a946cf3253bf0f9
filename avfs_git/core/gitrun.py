"""Running the git command as a subprocess: the environment it gets (no ``GIT_*`` of the
caller's leaks into vault work, never a terminal prompt) and :func:`run_git`, which raises
:class:`InternalError` with git's own message when git fails.

A leaf of core (it imports only ``errors``), so that every module that runs git can import
it at the top without joining an import cycle through ``home``."""

from __future__ import annotations

import os

from .errors import InternalError


def git_env() -> dict[str, str]:
    """Environment for git subprocesses: no GIT_* from the caller leaks into vault work."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env["GIT_TERMINAL_PROMPT"] = "0"
    return env


def run_git(args: list[str], *, cwd: str | None = None, input: bytes | None = None) -> str:
    import subprocess

    try:
        proc = subprocess.run(
            ["git", *args], cwd=cwd, input=input, capture_output=True, env=git_env(), check=False
        )
    except FileNotFoundError as exc:
        raise InternalError("the git command is not installed", hint="install git") from exc
    if proc.returncode != 0:
        raise InternalError(
            f"git {args[0]} failed: {proc.stderr.decode(errors='replace').strip()}",
            details={"args": args},
        )
    return proc.stdout.decode("utf-8", "surrogateescape")
