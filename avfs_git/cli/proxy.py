"""`avfs proxy exec`, `avfs policy ...` and `avfs audit`."""

from __future__ import annotations

import os
import shlex
from datetime import UTC, datetime, timedelta
from typing import Any

import click

from ..core.errors import ApprovalError, AvfsError, UsageError
from ..proxy.options import EXEC_OPTIONS, request_from
from .app import App, pass_app
from .execrender import render
from .output import Output


def _need_dashdash(app: App, argv: tuple[str, ...], usage: str = "proxy exec") -> None:
    """``usage``: the command whose synopsis the hint gives (`policy check rm -rf /` was
    told `avfs proxy exec [OPTIONS] -- CMD`).

    click keeps what it does not know before the `--` (``ignore_unknown_options``) as the
    command's first words: `proxy exec -q -- sh -c ...` ran `-q` (exit 127, and a mount made
    for it), `policy check -q -- rm -rf /` said "allowed" of a program `-q`, and `proxy exec
    echo -- hi` ran `echo -- hi`, where a mounted fork's call (:func:`.options.parse_args`)
    refused each. Words before the `--` are refused here the same way."""
    more = ", --path PATH" if usage == "policy check" else ""
    hint = f"avfs {usage} [OPTIONS] -- CMD [ARGS...]  (or --shell 'STRING'{more})"
    raw = app.output.argv
    if argv and "--" not in raw:
        raise UsageError("put `--` before the command", hint=hint)
    if not argv:
        return
    before = argv[: len(argv) - len(raw) + raw.index("--") + 1]  # (the command: all after `--`)
    if not before:
        return
    word = before[0]
    if not word.startswith("-"):
        raise UsageError("put `--` before the command", hint=hint)
    import difflib

    names = [o for p in click.get_current_context().command.params for o in p.opts if o.startswith("-")]
    close = difflib.get_close_matches(word.partition("=")[0], names, n=3, cutoff=0.75)
    maybe = f" (did you mean {' or '.join(close)}?)" if close else ""
    raise UsageError(f"no such option: {word.partition('=')[0]}{maybe}", hint=hint)


@click.group("proxy")
def proxy() -> None:
    """Run agents' commands through the execution boundary (policy, checkpoint, commit)."""


def _exec_options(func: Any) -> Any:
    """The click options of `proxy exec`, from the table the fast path parses with."""
    for o in reversed(EXEC_OPTIONS):
        kw: dict[str, Any] = {"help": o.help, "default": o.default}
        if o.kind is None:
            kw["is_flag"] = True
        elif o.choices is not None:
            kw["type"] = click.Choice(list(o.choices))
            kw["show_default"] = True
        else:
            kw["type"] = o.kind
            if o.metavar:
                kw["metavar"] = o.metavar
            if o.multiple:
                kw["multiple"] = True
            if o.default not in (None, "", ()):
                kw["show_default"] = True
        func = click.option(o.name, o.dest, **kw)(func)
    return func


def _cwd_in_mount(app: App, spec: str) -> str:
    """The current directory as a path in fork ``spec`` when it is inside the fork's live
    mount ('' otherwise: the fork's root), as the fast path does (:func:`.execclient.with_cwd`)."""
    from ..core.vaults import registry

    try:
        here = registry.mount_containing(app.home.path, os.getcwd(), revisions=False)
    except OSError:
        return ""
    return here.relpath(os.getcwd()) if here is not None and here.spec == spec else ""


@proxy.command("exec", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("argv", nargs=-1, type=click.UNPROCESSED, metavar="-- CMD [ARGS...]")
@_exec_options
@pass_app
def exec_cmd(app: App, /, argv: tuple[str, ...], **values: Any) -> None:
    """Run one command in the fork's mount under the policy, and commit what it changed.

    Prints one envelope on every path (`--json`: kind proxy_exec_result). Exit code: the
    command's own whenever it ran (124: avfs's timeout stopped it); when it did not run,
    126 = the policy refused it (denied or approval required), 125 = avfs itself failed
    (no such vault or fork, bad usage, mount failure).
    """
    from ..core.errors import AvfsError
    from ..core.types import json_document
    from ..proxy.execute import execute

    try:
        _need_dashdash(app, argv)
        vault, fork = app.target()
        if not values.get("cwd"):
            values["cwd"] = _cwd_in_mount(app, f"{vault.name}:{fork}")
        req = request_from(values, argv)
    except AvfsError as err:
        raise click.exceptions.Exit(exec_failed(app.output, app.spec, values, argv, err)) from None
    # the audit record's fsync once the envelope is out (served: after the caller has it)
    res = execute(app.home, vault, fork, req, signals=True, after=app.after)
    if app.json:
        app.output.document("proxy_exec_result", res.to_dict())
    else:
        render(False, json_document("proxy_exec_result", res.to_dict()), bool(values.get("quiet")))
    if res.exit_code:
        raise click.exceptions.Exit(res.exit_code)


def exec_failed(
    out: Output, spec: str | None, values: dict[str, Any] | None, argv: tuple[str, ...], err: AvfsError
) -> int:
    """Print the envelope of a `proxy exec` that failed before its command could run;
    returns its exit code (125)."""
    from ..core.types import json_document
    from ..proxy.options import failed_envelope

    env = failed_envelope(spec, values, argv, err)
    if out.json:
        out.document("proxy_exec_result", env)
    else:
        out.emitted = True
        render(False, json_document("proxy_exec_result", env), bool(values and values.get("quiet")))
    return int(env["exit_code"])


@proxy.command("approve")
@click.argument("token")
@click.option("--yes", "-y", is_flag=True, help="Approve without asking (you have read the request).")
@pass_app
def approve_cmd(app: App, token: str, yes: bool) -> None:
    """Approve a command that awaits approval, as a person at a terminal.

    Shows the request the token is bound to and asks y/N (unless --yes); then the client
    that got the token (an agent through `avfs mcp`) may run it once with that token. The
    token stays single-use and expires as before. `proxy exec --approve TOKEN` needs no
    such step: typing it is the approval.
    """
    import sys

    from ..proxy import approval

    if os.environ.get("AVFS_WORKSPACE"):
        raise UsageError(
            "refusing to approve from inside a command run by `avfs proxy exec`",
            hint="a person approves, in a terminal of their own",
        )
    rec = approval.load(app.home.path, token)
    req = rec.get("request") or {}
    if not yes:
        if not sys.stdin.isatty():
            raise UsageError(
                "no terminal to ask for approval on",
                hint=f"run it in a terminal, or `avfs proxy approve {token} --yes`",
            )
        _show_request(app.output, req, rec)
        if not click.confirm("Approve this command?", default=False, err=True):
            raise ApprovalError("not approved: declined", details={"token": token})
    rec = approval.approve(app.home.path, token)
    mark = rec["approved"] or {}
    data = {
        "token": token,
        "approved": True,
        "approved_by": mark.get("approved_by", "person"),
        "approved_at": mark.get("approved_at"),
        "expires_at": rec["expires_at"],
        "request_hash": rec.get("request_hash"),
        "request": req,
    }

    def human() -> None:
        app.output.plain("approved {} (valid until {}, once)", token, data["expires_at"])

    app.output.result("proxy_approval", data, human)


def _show_request(output: Output, req: dict[str, Any], rec: dict[str, Any]) -> None:
    """The bound request, for the person deciding (on stderr: stdout is the result's)."""
    import shlex

    text = Output.text  # values shown as they are: a control character cannot hide the command
    cmd = req.get("shell") if req.get("shell") is not None else shlex.join(req.get("argv") or [])
    lines = [
        text("command:  {}", cmd) + ("   (sh -c)" if req.get("shell") is not None else ""),
        text("in:       {}:{}  cwd: /{}", req.get("vault"), req.get("fork"), req.get("cwd") or ""),
    ]
    if req.get("env"):
        # values are not stored (they may be secrets), only a salted hash that binds them
        lines.append(text("env:      {}", " ".join(f"{k}=<hidden>" for k, _ in req["env"])))
    if req.get("inherit_env"):
        lines.append("env:      the caller's whole environment (--inherit-env)")
    if req.get("stdin"):
        lines.append(text("stdin:    bytes with sha256 {}", req["stdin"]))
    if req.get("isolate"):
        host, at = req["isolate"]
        lines.append(text("isolated: {} host, fork at {}", host, at or "(origin)"))
    lines.append(
        text(
            "options:  timeout {} ms, checkpoint {}, commit {}, mode {}",
            req.get("timeout_ms"),
            req.get("checkpoint"),
            req.get("commit"),
            req.get("mode"),
        )
    )
    lines.append(text("expires:  {}", rec["expires_at"]))
    output.raw("".join(line + "\n" for line in lines), err=True)


# -- policy -------------------------------------------------------------------------------
def one_word_hint(argv: tuple[str, ...] | list[str], usage: str) -> str | None:
    """For a command given as one argument holding a shell line (`-- 'echo hi >> f'`: a
    program of that name, as `proxy exec` would run it), the --shell form; else None."""
    if len(argv) != 1:
        return None
    from ..proxy.callwarnings import shell_line

    if not shell_line(argv):
        return None
    return (
        f"one argument is one program's name; for a shell line: avfs {usage} --shell {shlex.quote(argv[0])}"
    )


def _policy_target(app: App) -> tuple[Any, Any, str | None]:
    """(policy, vault or None, fork or None) for the selected vault, or the home alone."""
    from ..policy import Policy

    vault = fork = None
    try:
        vault, fork = app.target()
    except UsageError:
        pass  # no vault selected: the home's policy
    path = vault.path if vault is not None else None
    return Policy.load(app.home.path, path, cache_dir=app.home.settings.cache_dir), vault, fork


@click.group("policy")
def policy() -> None:
    """Show, check and validate the policy proxy exec applies."""


@policy.command("check", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("argv", nargs=-1, type=click.UNPROCESSED, metavar="-- CMD [ARGS...]")
@click.option("--shell", "shell", metavar="STRING", help="Check a shell command line instead of argv.")
@click.option("--cwd", default="", metavar="DIR", help="Working directory, relative to the workspace root.")
@click.option(
    "--path",
    "paths",
    multiple=True,
    metavar="PATH",
    help="Explain which path rule holds PATH in the fork (repeatable) instead of a command.",
)
@pass_app
def check_cmd(app: App, argv: tuple[str, ...], shell: str | None, cwd: str, paths: tuple[str, ...]) -> None:
    """Explain what the policy decides for a command, or which path rule holds a path
    (--path), without running anything."""
    if paths:
        if argv or shell is not None:
            raise UsageError("give either --path PATH or a command, not both")
        _check_paths(app, paths)
        return
    _need_dashdash(app, argv, "policy check")
    if bool(argv) == (shell is not None):
        raise UsageError("give a command after `--`, --shell 'STRING' or --path PATH")
    pol, vault, fork = _policy_target(app)
    root = "/nonexistent-workspace"
    if vault is not None and fork is not None:
        from ..ops import mounts

        live = mounts.check(vault, fork)
        root = live.mountpoint if live is not None else mounts.default_mountpoint(app.home, vault.name, fork)
    abs_cwd = os.path.join(root, cwd.strip("/")) if cwd else root
    d = pol.classify(shell if shell is not None else list(argv), root, abs_cwd)
    data = {
        "decision": {
            "action": str(d.action),
            "categories": [str(c) for c in d.categories],
            "reason": d.reason,
            "rule": d.rule,
        },
        "commands": [c.to_dict() for c in d.commands],
        "policy": {"hash": pol.hash, "sources": list(pol.sources)},
    }
    hint = one_word_hint(argv, "policy check")
    if hint is not None:
        data["hint"] = hint

    def human() -> None:
        o = app.output
        # the reason says the verdict in words ("denied: `rm -rf /` matches rule ..."): the
        # action's own name goes on the next line, not before it ("deny: denied: ...")
        o.plain("{}", d.reason)
        o.plain(
            "  action: {}; rule: {}; classes: {}",
            str(d.action),
            d.rule,
            ", ".join(str(c) for c in d.categories) or "-",
        )
        for c in d.commands:
            cd = c.to_dict()
            classes = ", ".join(cd.get("categories") or []) or "-"
            o.plain("  - {}: {} ({})", " ".join(cd.get("argv") or []), classes, cd.get("rule"))
        if hint is not None:
            o.plain("  hint: {}", hint)

    app.output.result("policy_check", data, human)


def _check_paths(app: App, paths: tuple[str, ...]) -> None:
    """``policy check --path``: the rule that holds each path in the selected fork."""
    from ..core.store.names import norm_path

    pol, _vault, fork = _policy_target(app)
    rules = pol.path_rules(fork)
    results = []
    for raw in paths:
        path = norm_path(raw)
        m = rules.match(path, is_dir=raw.endswith("/"))
        results.append(
            {"path": path, "kind": m.kind if m else "writable", "rule": m.to_dict() if m else None}
        )
    data = {
        "fork": fork,
        "paths": results,
        "policy": {"hash": pol.hash, "sources": list(pol.sources)},
    }

    def human() -> None:
        for r, raw in zip(results, paths, strict=True):
            m = rules.match(r["path"], is_dir=raw.endswith("/"))
            app.output.plain("{}: {}", r["path"], m.describe() if m else "writable (no path rule holds it)")

    app.output.result("policy_path_check", data, human)


@policy.command("show")
@pass_app
def show_cmd(app: App) -> None:
    """Print the effective policy (shipped default + home + vault files)."""
    pol, _, _ = _policy_target(app)
    data = pol.to_dict()

    def human() -> None:
        import json

        app.output.raw(json.dumps(data, indent=2) + "\n")

    app.output.result("policy", {"policy": data}, human)


@policy.command("validate")
@click.argument("file", required=False, type=click.Path(dir_okay=False))
@pass_app
def validate_cmd(app: App, file: str | None) -> None:
    """Check a policy file (default: the effective policy's files); errors name the line."""
    from ..policy import Policy

    if file is not None:
        try:
            with open(file, encoding="utf-8") as fh:
                text = fh.read()
        except OSError as exc:
            raise UsageError(f"cannot read {file}: {exc.strerror}") from exc
        pol = Policy.from_text(text, file, cache_dir=app.home.settings.cache_dir)
    else:
        pol, _, _ = _policy_target(app)
    data = {"valid": True, "sources": list(pol.sources), "hash": pol.hash, "rules": len(pol.rules)}
    app.output.result("policy_validate", data, lambda: app.output.plain("valid: {}", ", ".join(pol.sources)))


# -- audit --------------------------------------------------------------------------------
def _since(value: str | None) -> datetime | None:
    if value is None:
        return None
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if value[-1:] in units and value[:-1].isdigit():
        return datetime.now(UTC) - timedelta(seconds=int(value[:-1]) * units[value[-1]])
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise UsageError(f"--since {value!r}: use an ISO time or a duration like 30m, 2h, 7d") from exc
    return t if t.tzinfo else t.replace(tzinfo=UTC)


@click.command("audit")
@click.option(
    "--since", metavar="TIME|DURATION", help="Only records from then on (ISO time, or 30m, 2h, 7d)."
)
@click.option("--limit", type=int, help="Only the newest N records.")
@pass_app
def audit_cmd(app: App, since: str | None, limit: int | None) -> None:
    """Show the vault's audit log of proxy execs (oldest first)."""
    from ..core.vaults import audit

    vault, _ = app.target()
    records = audit.read(vault.state_dir, since=_since(since), limit=limit)

    def human() -> None:
        if not records:
            app.output.info("no audit records")
        for r in records:
            req = r.get("request") or {}
            # as a shell takes it back (`python3 -c from x import y; ...` lost its quotes)
            cmd = req.get("shell") or shlex.join(req.get("argv") or [])
            dec = (r.get("decision") or {}).get("action", "-")
            o = app.output
            o.plain("{}\t{}\t{}\texit {}\t{}", r.get("time"), req.get("fork"), dec, r.get("exit_code"), cmd)

    app.output.result("audit", {"vault": vault.name, "records": records}, human)
