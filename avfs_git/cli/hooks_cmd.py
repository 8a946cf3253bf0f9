"""`avfs hook AGENT EVENT` (what an agent runs) and `avfs hooks install|uninstall`.

`avfs hook` speaks the agent's hook protocol, not avfs's: the event comes on stdin, the
answer (the agent's JSON) goes to stdout, and the exit status is the agent's (2 blocks).
`--json` does not change that. See docs/hooks.md.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys

import click

from ..core.errors import UsageError
from ..core.settings import Settings
from .app import App, pass_app

_EVENT_NAMES = ("pre-tool-use", "post-tool-use", "stop")


def _emit(app: App, text: str, err: str, code: int) -> None:
    stream = app.output.stream  # the real stdout, even under --json (the agent reads it)
    if text:
        stream.write(text)
        stream.flush()
    app.output.emitted = True
    if err:
        sys.stderr.write(err)
        sys.stderr.flush()
    if code:
        raise click.exceptions.Exit(code)


def _answer_event(app: App, agent: str, event: str, project_dir: str | None) -> None:
    """Answer the event on stdin and print the answer. Fails closed: anything that goes
    wrong while the answer is made or printed ends, for ``pre-tool-use``, in exit 2 (which
    blocks the tool) with a ``deny`` on stdout when stdout still takes it; never in another
    exit status, which the agent would take as a non-blocking error and run the tool."""
    from ..hooks.events import answer, confine_from, failure_text

    try:
        confine = confine_from(sys.argv[0] if sys.argv else "", sys.executable, os.environ)
        ans = answer(agent, event, _read_stdin(), _settings(app), project_dir=project_dir, confine=confine)
        text = ans.stdout_text()
        _emit(app, text, ans.stderr, 0)
        code = ans.exit_code
    except (Exception, KeyboardInterrupt) as exc:
        failed = failure_text(agent, event, exc)
        try:
            app.output.stream.write(failed.stdout_text())
            app.output.stream.flush()
        except Exception:
            pass  # the exit status below is the answer that counts
        try:
            sys.stderr.write(failed.stderr)
            sys.stderr.flush()
        except Exception:
            pass
        app.output.emitted = True
        code = failed.exit_code
    if code:
        raise click.exceptions.Exit(code)


def _settings(app: App) -> Settings:
    # from the environment here, without importing core.home (vault, workspace: ~12 ms of
    # a hook that runs on every tool call)
    return Settings.from_environ(os.environ, app.home_path)


def _read_stdin() -> bytes:
    try:
        return sys.stdin.buffer.read()
    except (OSError, ValueError):
        return b""


@click.group("hook")
def hook() -> None:
    """Answer one agent hook event (the agents run these; see `avfs hooks install`)."""


@hook.command("claude")
@click.argument("event", type=click.Choice(_EVENT_NAMES))
@pass_app
def claude_cmd(app: App, event: str) -> None:
    """Answer a Claude Code hook event read on stdin (pre-tool-use, post-tool-use, stop)."""
    _answer_event(app, "claude", event, os.environ.get("CLAUDE_PROJECT_DIR"))


@hook.command("codex")
@click.argument("event", type=click.Choice((*_EVENT_NAMES, "notify")))
@click.argument("payload", required=False)
@pass_app
def codex_cmd(app: App, event: str, payload: str | None) -> None:
    """Answer a Codex hook event read on stdin, or (notify) Codex's notification argument."""
    from ..hooks.events import codex_notify

    if event == "notify":
        if payload is None:
            raise UsageError("notify takes the notification JSON as its argument (Codex passes it)")
        ans = codex_notify(payload, _settings(app))
        _emit(
            app, ans.stderr if ans.exit_code == 0 else "", ans.stderr if ans.exit_code else "", ans.exit_code
        )
        return
    if payload is not None:
        raise UsageError(f"`avfs hook codex {event}` reads the event on stdin and takes no argument")
    _answer_event(app, "codex", event, None)


# -- install / uninstall --------------------------------------------------------------------


def _avfs_prefix(app: App, command: str | None) -> str:
    """The shell words that run this avfs: its absolute path (hooks run with the agent's
    PATH, which may not hold a virtualenv's bin), plus `--home` when one was chosen.

    Only an absolute path: a call the warm server runs has ``sys.argv[0]`` ``avfs``, and
    made absolute from the working directory it named the project's own file ``avfs``
    (which the hooks then ran on every tool call), or, with none there, fell back to
    ``PYTHON -P -m avfs_git`` (the twenty-eighth round, newcomer1). The console script
    beside this interpreter is this avfs's (a virtualenv's bin)."""
    if command:
        return command
    beside = os.path.join(os.path.dirname(sys.executable), "avfs")
    for exe in (sys.argv[0] if sys.argv else "", beside, shutil.which("avfs") or ""):
        if os.path.basename(exe) == "avfs" and os.path.isabs(exe) and os.path.isfile(exe):
            prefix = shlex.quote(exe)
            break
    else:
        prefix = f"{shlex.quote(sys.executable)} -P -m avfs_git"  # (-P: no avfs_git from the cwd)
    if app.home_path:
        prefix += f" --home {shlex.quote(os.path.abspath(app.home_path))}"
    return prefix


def _claude_path(project: str | None, user: bool, shared: bool = False) -> str:
    """The settings file: the user's, or the project's. A project's hooks go into
    ``settings.local.json`` (Claude Code's file for what is not committed: the command
    holds this machine's avfs path and home), or, with ``shared``, into the committed
    ``settings.json`` (for a portable ``--command``)."""
    if user:
        return os.path.join(os.path.expanduser("~"), ".claude", "settings.json")
    name = "settings.json" if shared else "settings.local.json"
    return os.path.join(os.path.abspath(project or "."), ".claude", name)


def _codex_path(project: str | None) -> str:
    if project is not None:
        return os.path.join(os.path.abspath(project), ".codex", "config.toml")
    codex_home = os.environ.get("CODEX_HOME") or os.path.join(os.path.expanduser("~"), ".codex")
    return os.path.join(os.path.abspath(codex_home), "config.toml")


def _vault(app: App, name: str | None) -> tuple[str, str]:
    if name is not None:
        vault = app.home.vault(name.partition(":")[0])
    else:
        try:
            vault, _ = app.target()
        except UsageError as exc:
            raise UsageError("which vault? give --vault NAME", hint=exc.hint) from None
    return vault.name, vault.path


def _options(func: click.decorators.FC) -> click.decorators.FC:
    func = click.option(
        "--vault", "vault_name", metavar="NAME", help="git: the vault (default: the selected vault)."
    )(func)
    func = click.option(
        "--user",
        is_flag=True,
        help="claude: ~/.claude/settings.json; codex: $CODEX_HOME/config.toml (codex's default).",
    )(func)
    func = click.option(
        "--project",
        metavar="DIR",
        type=click.Path(file_okay=False, exists=True),  # (a typo made the directory)
        help="claude: DIR/.claude/settings.local.json (settings.json with --shared; default: the current"
        " directory); codex: DIR/.codex/config.toml. DIR must exist.",
    )(func)
    func = click.option(
        "--for",
        "agent",
        required=True,
        type=click.Choice(("claude", "codex", "git")),
        help="Which settings: Claude Code, Codex, or a vault's git hooks.",
    )(func)
    return func


def _check(agent: str, project: str | None, user: bool, vault_name: str | None) -> None:
    if project is not None and user:
        raise UsageError("give --project DIR or --user, not both")
    if agent == "git" and (project is not None or user):
        raise UsageError("--for git installs into a vault: use --vault NAME, not --project/--user")
    if agent != "git" and vault_name is not None:
        raise UsageError("--vault is for --for git")


def _render(app: App, res: object) -> None:
    from ..hooks.install import InstallResult

    assert isinstance(res, InstallResult)
    data = res.to_dict()

    def human() -> None:
        verb = {"install": "installed", "uninstall": "removed"}[res.action]
        o = app.output
        if res.changed:
            o.plain(verb + " avfs {} hooks: {}", res.agent, res.path)
        elif res.action == "uninstall":
            # `unchanged: F` named a file that may not exist (an uninstall run elsewhere)
            o.plain("no avfs {} hooks in {}: nothing to remove", res.agent, res.path)
        else:
            o.plain("avfs {} hooks already installed: {}", res.agent, res.path)
        for e in res.entries:
            if e.get("matcher"):
                o.plain("  {} [{}]: {}", e["event"], e["matcher"], e["command"])
            else:
                o.plain("  {}: {}", e["event"], e["command"])
        for note in res.notes:
            o.info("note: {}", note)

    app.output.result("hooks_install", data, human)


@click.group("hooks")
def hooks() -> None:
    """Install avfs's hooks into Claude Code, Codex, or a vault's git hooks."""


@hooks.command("install")
@_options
@click.option("--notify", is_flag=True, help="codex: also set Codex's `notify` program (when unset).")
@click.option(
    "--command",
    "command",
    metavar="TEXT",
    help="The shell words that run avfs (default: this avfs, by path).",
)
@click.option(
    "--shared",
    is_flag=True,
    help="claude: the project's committed .claude/settings.json instead of settings.local.json"
    " (give a portable --command).",
)
@pass_app
def install_cmd(
    app: App,
    agent: str,
    project: str | None,
    user: bool,
    vault_name: str | None,
    notify: bool,
    command: str | None,
    shared: bool,
) -> None:
    """Add avfs's hooks to the agent's settings, merged with what is there (idempotent).

    For Claude Code in a project, the hooks go into .claude/settings.local.json, the file
    Claude Code keeps out of git: their command names this machine's avfs and home. Hooks
    an earlier install wrote into the shared settings.json move there."""
    import dataclasses

    from ..hooks import install as lib

    _check(agent, project, user, vault_name)
    if notify and agent != "codex":
        raise UsageError("--notify is for --for codex")
    if shared and (agent != "claude" or user):
        raise UsageError("--shared is for --for claude in a project (not --user)")
    if agent == "claude":
        res = lib.install_claude(_claude_path(project, user, shared), _avfs_prefix(app, command))
        if not user and not shared:
            # an earlier install wrote into the committed file: take ours out of it
            try:
                moved = lib.uninstall_claude(_claude_path(project, False, True), command)
            except UsageError as err:  # a settings.json we cannot read: say so, touch nothing
                moved = None
                res = dataclasses.replace(res, notes=(*res.notes, f"left alone: {err.message}"))
            if moved is not None and moved.changed:
                note = f"moved avfs's hooks out of {moved.path} (machine-specific: not for git)"
                res = dataclasses.replace(res, changed=True, notes=(*res.notes, note))
    elif agent == "codex":
        res = lib.install_codex(_codex_path(project), _avfs_prefix(app, command), notify=notify)
    else:
        res = lib.install_git(*_vault(app, vault_name))
    _render(app, res)


@hooks.command("uninstall")
@_options
@click.option(
    "--command",
    "command",
    metavar="TEXT",
    help="claude: also remove hooks installed with this --command (avfs's default prefix is always recognised).",
)
@pass_app
def uninstall_cmd(
    app: App, agent: str, project: str | None, user: bool, vault_name: str | None, command: str | None
) -> None:
    """Remove avfs's hooks (and nothing else) from the agent's settings."""
    from ..hooks import install as lib

    _check(agent, project, user, vault_name)
    if command is not None and agent != "claude":
        raise UsageError(
            "--command is for --for claude (the Codex block and the git hook are found by their markers)"
        )
    if agent == "claude":
        res = lib.uninstall_claude(_claude_path(project, user), command)
        if not user:  # and from the committed file, where installs before settings.local.json wrote
            shared = lib.uninstall_claude(_claude_path(project, False, True), command)
            if shared.changed and not res.changed:
                res = shared
    elif agent == "codex":
        res = lib.uninstall_codex(_codex_path(project))
    else:
        res = lib.uninstall_git(*_vault(app, vault_name))
    _render(app, res)
