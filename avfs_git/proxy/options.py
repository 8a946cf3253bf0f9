"""The options of ``proxy exec`` as data: one table the click command, the CLI's fast path
(:mod:`avfs_git.cli.execopts`) and the exec server (:mod:`.server`) all use, and the
:class:`~.execute.ExecRequest` built from their values. Cheap to import (the fast path
runs before the rest of avfs is loaded)."""

from __future__ import annotations

TYPE_CHECKING = False  # not from typing: see avfs_git/__init__.py
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any

    from ..core.errors import AvfsError
    from .envelope import ExecRequest


class Opt:
    """One option: its flag, where its value goes, its help, and how to parse it (a plain
    class: this module must import fast, and dataclasses alone costs ~10 ms)."""

    __slots__ = ("choices", "default", "dest", "help", "kind", "metavar", "multiple", "name")

    def __init__(
        self,
        name: str,
        dest: str,
        help: str,
        kind: Callable[[str], Any] | None = str,  # None: a flag
        metavar: str | None = None,
        default: Any = None,
        choices: tuple[str, ...] | None = None,
        multiple: bool = False,
    ) -> None:
        self.name = name  # "--timeout-ms"
        self.dest = dest
        self.help = help
        self.kind = kind
        self.metavar = metavar
        self.default = default
        self.choices = choices
        self.multiple = multiple


CWD_HELP = (
    "Working directory, relative to the workspace root (default: the directory you are in"
    " when it is inside the fork's mount, else the root)."
)
EXEC_OPTIONS: tuple[Opt, ...] = (
    Opt("--shell", "shell", "Run a shell command line (sh -c) instead of argv.", metavar="STRING"),
    Opt("--cwd", "cwd", CWD_HELP, metavar="DIR", default=""),
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
        "Mount the fork to stay (no idle timeout; a mount made for a call is otherwise kept warm for AVFS_MOUNT_IDLE s).",
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
    Opt(
        "--quiet",
        "quiet",
        "Print only the command's own stdout and stderr (no summary line, unless it timed out"
        " or its output was cut); avfs's errors still print when the command did not run."
        " Ignored with --json.",
        None,
        default=False,
    ),
    Opt("--stdin", "stdin", "Pass this process' stdin to the command (default: empty).", None, default=False),
    Opt("--approve", "approve", "Run a command that needed approval, with its token.", metavar="TOKEN"),
    Opt("--kill-grace-ms", "kill_grace_ms", "SIGTERM to SIGKILL delay.", int, default=2000),
    Opt(
        "--host",
        "host",
        "What the command sees of the host: confined (a bubblewrap sandbox: the fork, the system"
        " read-only, no home directories, network only as the policy allows), or writable (the"
        " host as it is, unconfined); readonly and hidden are --readonly-host and --hide-host.",
        default="confined",
        choices=("confined", "writable", "readonly", "hidden"),
    ),
    Opt(
        "--isolate",
        "isolate",
        "Show the fork at the project's own path (--at; default: the vault's origin directory).",
        None,
        default=False,
    ),
    Opt(
        "--readonly-host",
        "readonly_host",
        "With --isolate: the rest of the host is read-only (a private /tmp).",
        None,
        default=False,
    ),
    Opt(
        "--hide-host",
        "hide_host",
        "With --isolate: hide the host except /usr, /etc, /bin, /lib*, /dev, /proc (a private /tmp, $HOME).",
        None,
        default=False,
    ),
    Opt(
        "--at",
        "isolate_at",
        "With --isolate: where the fork appears (default: the vault's recorded origin directory).",
        metavar="PATH",
    ),
)


USAGE = "avfs proxy exec [OPTIONS] -- CMD [ARGS...]  (or --shell 'STRING')"


class NotFast(Exception):
    """These arguments are for the click CLI (``--help``), not for :func:`parse_args`."""


class BadUsage(Exception):
    """The arguments of `proxy exec` are wrong: answered with a failed envelope (the
    option values parsed so far in ``values``)."""

    def __init__(self, message: str, values: dict[str, Any]) -> None:
        super().__init__(message)
        self.message = message
        self.values = values


def _did_you_mean(name: str, names: Iterable[str]) -> str:
    """The options close to a mistyped one, as click's own parser names them (`--timeout`:
    did you mean --timeout-ms?); loaded only for the mistake."""
    import difflib

    if name in ("--json", "--vault", "--home"):  # (avfs's global options: before `proxy exec`)
        return f" ({name} is a global option: avfs {name} ... proxy exec ...)"
    close = difflib.get_close_matches(name, list(names), n=3, cutoff=0.75)
    return f" (did you mean {' or '.join(close)}?)" if close else ""


def parse_args(args: list[str]) -> tuple[dict[str, Any], list[str]]:
    """(option values, command argv) from the arguments after `proxy exec`, by
    :data:`EXEC_OPTIONS` (the fast path and the exec server parse with this); raises
    :class:`NotFast` for help, :class:`BadUsage` for anything else it cannot take."""
    by_name = {o.name: o for o in EXEC_OPTIONS}
    values: dict[str, Any] = {o.dest: o.default for o in EXEC_OPTIONS}
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            return values, args[i + 1 :]
        if a in ("-h", "--help"):
            raise NotFast(a)
        name, eq, inline = a.partition("=")
        opt = by_name.get(name)
        if opt is None:
            if a.startswith("-"):
                raise BadUsage(f"no such option: {name}{_did_you_mean(name, by_name)}", values)
            raise BadUsage("put `--` before the command", values)
        if opt.kind is None:
            if eq:
                raise BadUsage(f"{name} takes no value", values)
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
            raise BadUsage(f"{name} needs a value", values)
        try:
            value = opt.kind(raw)
        except ValueError:
            raise BadUsage(f"{name}: {raw!r} is not a whole number", values) from None
        if opt.choices is not None and value not in opt.choices:
            raise BadUsage(f"{name} must be one of {', '.join(opt.choices)}, not {raw!r}", values)
        if opt.multiple:
            values[opt.dest] = (*values[opt.dest], value)
        else:
            values[opt.dest] = value
    return values, []


def request_from(
    values: dict[str, Any],
    argv: list[str] | tuple[str, ...],
    *,
    stdin: int | None = None,
    env: dict[str, str] | None = None,
) -> ExecRequest:
    """An :class:`ExecRequest` from parsed option values (the click command, the fast
    path and the exec server use this). ``stdin``: the descriptor ``--stdin`` passes
    (default: this process' own); ``env``: the caller's environment (default: ours)."""
    import subprocess

    from ..core.errors import UsageError
    from .envelope import ExecRequest

    if argv and values["shell"] is not None:
        raise UsageError("give either a command after `--` or --shell, not both")
    if not argv and values["shell"] is None:
        raise UsageError(
            "no command", hint="avfs proxy exec [OPTIONS] -- CMD [ARGS...]  (or --shell 'STRING')"
        )
    pairs: list[tuple[str, str]] = []
    for v in values["env"]:
        if "=" not in v:
            raise UsageError(f"--env {v!r}: use NAME=VALUE")
        k, val = v.split("=", 1)
        pairs.append((k, val))
    # .get: a client of an older avfs may not send these; --readonly-host, --hide-host and
    # --at imply --isolate; --host readonly|hidden are the first two
    readonly_host, hide_host = values.get("readonly_host", False), values.get("hide_host", False)
    if readonly_host and hide_host:
        raise UsageError("give --readonly-host or --hide-host, not both")
    host = values.get("host") or "confined"
    flag = "hidden" if hide_host else "readonly" if readonly_host else None
    if flag is not None and host not in ("confined", flag):
        raise UsageError(
            f"--host {host} and --{'hide' if hide_host else 'readonly'}-host contradict each other"
        )
    host = flag or host
    at = values.get("isolate_at")
    isolate = None
    if values.get("isolate") or host in ("readonly", "hidden") or at is not None:
        isolate = host
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
        env=tuple(pairs),
        inherit_env=values["inherit_env"],
        approve=values["approve"],
        kill_grace_ms=values["kill_grace_ms"],
        isolate=isolate,
        isolate_at=at,
        confine=host == "confined",
        stdin=stdin if values["stdin"] else subprocess.DEVNULL,
        base_env=None if env is None else tuple(env.items()),
    )


def defaults() -> dict[str, Any]:
    """Every option's default value, by destination."""
    return {o.dest: o.default for o in EXEC_OPTIONS}


def _name_or_none(text: str | None, pattern: str) -> str | None:
    import re

    return text if text and len(text) <= 100 and re.fullmatch(pattern, text) else None


def failed_envelope(
    spec: str | None,
    values: dict[str, Any] | None,
    argv: list[str] | tuple[str, ...],
    error: AvfsError,
) -> dict[str, Any]:
    """The ``proxy_exec_result`` envelope (as data, without ``schema_version``/``kind``) of a
    call that failed before :func:`~.execute.execute` could run: the vault or fork does not
    exist, no vault is selected, the arguments are wrong, the mount daemon died. The command
    did not run (``result`` is null). ``spec``: the ``VAULT[:FORK]`` asked for (a part that is
    not a valid name is reported as null); ``values``: the options parsed so far."""
    from .envelope import EXIT_AVFS_FAILED, ExecResult, Request

    vals = defaults()
    vals.update(values or {})
    vault, _, fork = (spec or "").partition(":")
    seg = "[A-Za-z0-9_][A-Za-z0-9._+-]*"
    timeout = vals.get("timeout_ms")
    request = Request(
        vault=_name_or_none(vault, seg),
        fork=_name_or_none(fork, f"{seg}(?:/{seg})*"),
        argv=tuple(argv) or None,
        shell=vals.get("shell") if isinstance(vals.get("shell"), str) else None,
        cwd=vals["cwd"] if isinstance(vals.get("cwd"), str) else "",
        timeout_ms=timeout if isinstance(timeout, int) and timeout >= 0 else 0,
        checkpoint=vals["checkpoint"] if vals.get("checkpoint") in ("auto", "always") else "auto",
        commit=not vals.get("no_commit"),
        mode=vals["mode"] if vals.get("mode") in ("auto", "fuse", "materialized") else "auto",
    )
    return ExecResult(request=request, error=error, exit_code=EXIT_AVFS_FAILED).to_dict()
