"""`proxy exec`'s options, and the fast path that runs it without loading click.

An agent pays the CLI's start-up on every command it runs through ``proxy exec``; click
and the command modules cost ~40 ms of a ~130 ms call. So :func:`fast_main` (called by the
console script before anything else is imported) parses ``[--home DIR] [--vault SPEC]
[--json] proxy exec [OPTIONS] -- CMD...`` itself, from the same option table the click
command is built from (:data:`EXEC_OPTIONS`); anything it does not recognise (help, a
typo, other commands) goes to the full click CLI, which then reports it.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..proxy.execute import ExecRequest, ExecResult
    from .output import Output


@dataclasses.dataclass(frozen=True)
class Opt:
    name: str  # "--timeout-ms"
    dest: str
    help: str
    kind: Callable[[str], Any] | None = str  # None: a flag
    metavar: str | None = None
    default: Any = None
    choices: tuple[str, ...] | None = None
    multiple: bool = False


EXEC_OPTIONS: tuple[Opt, ...] = (
    Opt("--shell", "shell", "Run a shell command line (sh -c) instead of argv.", metavar="STRING"),
    Opt("--cwd", "cwd", "Working directory, relative to the workspace root.", metavar="DIR", default=""),
    Opt("--timeout-ms", "timeout_ms", "Stop the command after this long (default: the policy's).", int),
    Opt(
        "--max-output-bytes", "max_output_bytes", "Keep at most this much of stdout and of stderr each.", int
    ),
    Opt(
        "--checkpoint",
        "checkpoint",
        "Checkpoint before running: when the policy says so, or always.",
        default="auto",
        choices=("auto", "always"),
    ),
    Opt("--no-commit", "no_commit", "Leave the command's changes in the overlay.", None, default=False),
    Opt(
        "--mode",
        "mode",
        "Run in a FUSE mount, or in a temporary copy of the tree (auto: FUSE when available).",
        default="auto",
        choices=("auto", "fuse", "materialized"),
    ),
    Opt(
        "--keep-mount",
        "keep_mount",
        "Leave a mount made for this call mounted (faster next time).",
        None,
        default=False,
    ),
    Opt(
        "--env",
        "env",
        "Set a variable for the command (repeatable).",
        metavar="NAME=VALUE",
        multiple=True,
        default=(),
    ),
    Opt(
        "--inherit-env",
        "inherit_env",
        "Pass this process' whole environment to the command.",
        None,
        default=False,
    ),
    Opt("--stdin", "stdin", "Pass this process' stdin to the command (default: empty).", None, default=False),
    Opt("--approve", "approve", "Run a command that needed approval, with its token.", metavar="TOKEN"),
    Opt("--kill-grace-ms", "kill_grace_ms", "SIGTERM to SIGKILL delay.", int, default=2000),
)


class _NotFast(Exception):
    """The fast parser does not handle these arguments: the click CLI will."""


def _parse_exec(args: list[str]) -> tuple[dict[str, Any], list[str]]:
    """(option values, command argv) from the arguments after `proxy exec`."""
    by_name = {o.name: o for o in EXEC_OPTIONS}
    values: dict[str, Any] = {o.dest: o.default for o in EXEC_OPTIONS}
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            return values, args[i + 1 :]
        name, eq, inline = a.partition("=")
        opt = by_name.get(name)
        if opt is None:
            raise _NotFast(a)  # a command without `--`, help, a typo: click says what is wrong
        if opt.kind is None:
            if eq:
                raise _NotFast(a)
            values[opt.dest] = True
            i += 1
            continue
        if eq:
            raw = inline
            i += 1
        elif i + 1 < len(args):
            raw = args[i + 1]
            i += 2
        else:
            raise _NotFast(a)
        try:
            value = opt.kind(raw)
        except ValueError:
            raise _NotFast(a) from None
        if opt.choices is not None and value not in opt.choices:
            raise _NotFast(a)
        if opt.multiple:
            values[opt.dest] = (*values[opt.dest], value)
        else:
            values[opt.dest] = value
    if values["shell"] is None:
        raise _NotFast("no command")
    return values, []


def _parse_global(args: list[str]) -> tuple[dict[str, Any], list[str]] | None:
    out: dict[str, Any] = {
        "home": os.environ.get("AVFS_HOME"),
        "vault": os.environ.get("AVFS_VAULT"),
        "json": False,
    }
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--json":
            out["json"] = True
            i += 1
        elif a in ("--home", "--vault") and i + 1 < len(args):
            out[a[2:]] = args[i + 1]
            i += 2
        elif a.startswith(("--home=", "--vault=")):
            k, _, v = a.partition("=")
            out[k[2:]] = v
            i += 1
        else:
            break
    if args[i : i + 2] != ["proxy", "exec"]:
        return None
    return out, args[i + 2 :]


def request_from(values: dict[str, Any], argv: list[str] | tuple[str, ...]) -> ExecRequest:
    """An :class:`ExecRequest` from parsed option values (both parsers use this)."""
    import subprocess

    from ..core.errors import UsageError
    from ..proxy.execute import ExecRequest

    if argv and values["shell"] is not None:
        raise UsageError("give either a command after `--` or --shell, not both")
    if not argv and values["shell"] is None:
        raise UsageError(
            "no command", hint="avfs proxy exec [OPTIONS] -- CMD [ARGS...]  (or --shell 'STRING')"
        )
    env = []
    for v in values["env"]:
        if "=" not in v:
            raise UsageError(f"--env {v!r}: use NAME=VALUE")
        k, val = v.split("=", 1)
        env.append((k, val))
    return ExecRequest(
        argv=tuple(argv) if argv else None,
        shell=values["shell"],
        cwd=values["cwd"],
        timeout_ms=values["timeout_ms"],
        max_output_bytes=values["max_output_bytes"],
        checkpoint=values["checkpoint"],
        commit=not values["no_commit"],
        mode=values["mode"],
        keep_mount=values["keep_mount"],
        env=tuple(env),
        inherit_env=values["inherit_env"],
        approve=values["approve"],
        kill_grace_ms=values["kill_grace_ms"],
        stdin=None if values["stdin"] else subprocess.DEVNULL,
    )


def render(out: Output, res: ExecResult) -> None:
    """The envelope (JSON mode), or the command's output and a summary line on stderr."""
    if out.json:
        out.document("proxy_exec_result", res.to_dict())
        return
    if res.result is not None:
        sys.stdout.write(res.result["stdout"])
        sys.stdout.flush()
        sys.stderr.write(res.result["stderr"])
    d = res.decision or {}
    bits = []
    if d:
        bits.append(f"{d['action']} ({', '.join(d['categories']) or '-'}; rule {d['rule']})")
    if res.result is not None:
        r = res.result
        bits.append("timed out" if r["timed_out"] else f"exit {r['exit_code']}")
        if r["stdout_truncated"] or r["stderr_truncated"]:
            bits.append("output truncated")
    if res.changes:
        bits.append(f"{len(res.changes)} changed path(s)")
    if res.commit:
        bits.append(f"commit {res.commit['commit'][:12]}")
    sys.stderr.write("avfs: " + ", ".join(bits) + "\n")
    ap = res.approval or {}
    if ap.get("token") and not ap.get("used"):
        sys.stderr.write(f"avfs: approval required; token {ap['token']} (expires {ap['expires_at']})\n")
    if res.error is not None and res.error["code"] != "approval_required":
        sys.stderr.write(f"avfs: error: {res.error['message']}\n")
        if res.error.get("hint"):
            sys.stderr.write(f"  hint: {res.error['hint']}\n")


def fast_main(args: list[str]) -> int | None:
    """Run `proxy exec` without click; None when these arguments are not for the fast path."""
    parsed = _parse_global(args)
    if parsed is None:
        return None
    glob, rest = parsed
    try:
        values, argv = _parse_exec(rest)
    except _NotFast:
        return None
    from ..core.errors import AvfsError
    from .output import Output

    out = Output(glob["json"])
    try:
        from ..core.home import open_home
        from ..proxy.execute import execute

        req = request_from(values, argv)
        home = open_home(glob["home"])
        vault, fork = home.resolve(glob["vault"])
        res = execute(home, vault, fork, req)
    except Exception as exc:  # one error document, as the click CLI would print
        from ..core.errors import InternalError

        err = (
            exc
            if isinstance(exc, AvfsError)
            else InternalError(f"internal error: {type(exc).__name__}: {exc}")
        )
        if out.json:
            out.document("error", {"error": err.to_dict()})
        else:
            sys.stderr.write(f"avfs: error: {err.message}\n" + (f"  hint: {err.hint}\n" if err.hint else ""))
        return err.exit_code
    render(out, res)
    return res.exit_code


def main() -> int:
    """The console script: the fast path for `proxy exec`, else the click CLI."""
    code = fast_main(sys.argv[1:])
    if code is not None:
        return code
    from .main import main as full

    return full()
