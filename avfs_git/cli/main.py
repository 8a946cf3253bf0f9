"""The ``avfs`` click CLI: the group, its global options, the command table.

Command modules load lazily (an agent calls ``avfs`` once per step, so start-up time
matters): ``avfs --json status`` imports click and the core, not pygit2 (libgit2 loads on first need).
Errors are caught once, in :func:`main`, rendered as one JSON error document (``--json``)
or one line on stderr, and turned into the error's exit code.

The console script does not start here: :func:`.execopts.main` tries `proxy exec`'s fast
path first and calls :func:`main` for everything else. Command modules take :class:`.app.App`
from :mod:`.app`; this module imports them (by name, when run), never the other way.
"""

from __future__ import annotations

import importlib
import io
import os
import sys
from typing import TYPE_CHECKING, Any

import click

from ..core.errors import EXIT_USAGE, AvfsError
from .app import App
from .output import Output, render_error, render_failure

if TYPE_CHECKING:
    from .homekeep import KeptHome

KEPT_HOME = "avfs.kept_home"  # the click context's meta key of a kept process's home (main's ``kept``)

# command name -> "module:attribute" (relative to avfs_git.cli)
COMMANDS: dict[str, str] = {
    "vault": "vaults:vault",
    "ls": "files:ls_cmd",
    "cat": "files:cat_cmd",
    "write": "files:write_cmd",
    "cp": "files:cp_cmd",
    "mv": "files:mv_cmd",
    "rm": "files:rm_cmd",
    "mkdir": "files:mkdir_cmd",
    "ln": "files:ln_cmd",
    "chmod": "files:chmod_cmd",
    "stat": "files:stat_cmd",
    "tree": "files:tree_cmd",
    "grep": "searching:grep_cmd",
    "find": "searching:find_cmd",
    "search": "searching:search_cmd",
    "status": "versioning:status_cmd",
    "log": "versioning:log_cmd",
    "diff": "versioning:diff_cmd",
    "checkout": "versioning:checkout_cmd",
    "revert": "versioning:revert_cmd",
    "show": "versioning:show_cmd",
    "checkpoint": "checkpoints:checkpoint",
    "op": "checkpoints:op",
    "undo": "checkpoints:undo_cmd",
    "redo": "checkpoints:redo_cmd",
    "quota": "vaults:quota",
    "mount": "mounting:mount_cmd",
    "unmount": "mounting:unmount_cmd",
    "merge": "merging:merge_cmd",
    "remote": "remotes:remote",
    "push": "remotes:push_cmd",
    "fetch": "remotes:fetch_cmd",
    "pull": "remotes:pull_cmd",
    "proxy": "proxy:proxy",
    "policy": "proxy:policy",
    "audit": "proxy:audit_cmd",
    "watch": "watching:watch_cmd",
    "stats": "maintenance:stats_cmd",
    "gc": "maintenance:gc_cmd",
    "prune": "maintenance:prune_cmd",
    "doctor": "maintenance:doctor_cmd",
    "server": "serving:server",
    "hook": "hooks_cmd:hook",
    "hooks": "hooks_cmd:hooks",
    "mcp": "agent:mcp_cmd",
    "up": "quickstart:up_cmd",
    "down": "quickstart:down_cmd",
    "export": "quickstart:export_cmd",
    "apply": "quickstart:apply_cmd",
}


# git commands avfs does under its own word: what to type instead (a git user's first guess
# answered with the avfs command, not click's bare "No such command")
GIT_WORDS: dict[str, tuple[str, str]] = {
    "commit": ("a checkpoint is a commit", "avfs checkpoint save -m MSG"),
    "add": (
        "there is no staging area: every change goes into the next checkpoint",
        "avfs checkpoint save -m MSG",
    ),
    "reset": ("a restore moves the fork back, and `avfs undo` undoes it", "avfs checkpoint restore REV"),
    "branch": ("a fork is a branch", "avfs vault fork NEW (list them: avfs vault info)"),
    "switch": ("a fork is a branch", "avfs checkout FORK"),
    "tag": ("a named checkpoint is a tag", "avfs checkpoint save NAME"),
    "stash": (
        "a fork or a named checkpoint keeps work aside",
        "avfs vault fork wip, or avfs checkpoint save wip",
    ),
    "restore": ("checkout takes a path back from a revision", "avfs checkout REV -- PATH"),
    "init": ("a vault is a repository", "avfs vault create NAME [--from DIR]"),
    "clone": ("a vault is a repository", "avfs vault clone URL [NAME]"),
    "rebase": ("forks come together by merging", "avfs merge SOURCE"),
    "cherry-pick": ("forks come together by merging", "avfs merge SOURCE"),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported only when run (or when help lists them)."""

    def __init__(self, *args: Any, lazy: dict[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self.lazy))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy:
            mod, attr = self.lazy[cmd_name].split(":")
            module = importlib.import_module(f"avfs_git.cli.{mod}")
            cmd: click.Command = getattr(module, attr)
            return cmd
        return super().get_command(ctx, cmd_name)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0] if args else ""
        if ctx.parent is None and name in GIT_WORDS and self.get_command(ctx, name) is None:
            from ..core.errors import UsageError

            what, instead = GIT_WORDS[name]
            raise UsageError(
                f"'{name}' is not an avfs command; {what}: {instead}",
                hint="avfs --help lists the commands",
                details={"command": name, "instead": instead},
            )
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as exc:
            # click (>= 8.4) names the close commands among those it holds: avfs's are lazy,
            # none held (`avfs statsu` had no "Did you mean", `avfs vault craete` had one)
            no_such = getattr(click.exceptions, "NoSuchCommand", None)
            if no_such is None or not isinstance(exc, no_such) or exc.possibilities:
                raise
            raise no_such(exc.command_name, possibilities=self.list_commands(ctx), ctx=ctx) from None


@click.group(cls=LazyGroup, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--home", "home", envvar="AVFS_HOME", metavar="DIR", help="avfs home (default ~/.avfs; env AVFS_HOME)."
)
@click.option(
    "--vault",
    "vault",
    envvar="AVFS_VAULT",
    metavar="VAULT[:FORK]",
    help="Vault and fork to act on (env AVFS_VAULT; default: the fork mounted where you are, else the vault `avfs up` made from this directory or one above it, else `vault use`).",
)
@click.option("--json", "json_mode", is_flag=True, help="Print exactly one JSON document on stdout.")
@click.version_option(package_name="avfs-git", prog_name="avfs")
@click.pass_context
def cli(ctx: click.Context, home: str | None, vault: str | None, json_mode: bool) -> None:
    """avfs: git-compatible workspaces for AI agents.

    A vault is a bare git repository, a fork is a branch, a checkpoint is a commit.
    """
    out = ctx.obj if isinstance(ctx.obj, Output) else Output(json_mode)
    out.json = json_mode
    ctx.obj = App(home, vault, out, ctx.meta.get(KEPT_HOME))


def _wants_json(argv: list[str]) -> bool:
    for a in argv:
        if a == "--":
            return False
        if a == "--json":
            return True
    return False


def _is_proxy_exec(argv: list[str]) -> bool:
    """The arguments name `proxy exec` (before any `--`)."""
    head = argv[: argv.index("--")] if "--" in argv else argv
    return any(head[i : i + 2] == ["proxy", "exec"] for i in range(len(head) - 1))


def _vault_option(argv: list[str]) -> str | None:
    """The ``--vault`` given before the command (else ``AVFS_VAULT``), as a `proxy exec`
    envelope names its fork."""
    i = 0
    while i < len(argv) and argv[i].startswith("--") and argv[i] != "--":
        if argv[i] in ("--home", "--vault") and i + 1 < len(argv):
            if argv[i] == "--vault":
                return argv[i + 1]
            i += 2
        elif argv[i].startswith("--vault="):
            return argv[i][8:]
        else:
            i += 1
    return os.environ.get("AVFS_VAULT")


def main(
    argv: list[str] | None = None, *, opened: list[App] | None = None, kept: KeptHome | None = None
) -> int:
    """Run the click CLI on ``argv`` (None: this process' arguments); returns the exit code.
    `proxy exec` and the agent hooks run here too, by their click commands; the console
    script (:func:`.execopts.main`) reaches this only after their fast path declined.

    With ``--json`` stdout is exactly one JSON document on every path: while the command
    runs, anything else that would reach stdout (click's own ``--help`` and ``--version``
    text) is captured and wrapped into a ``help``/``version`` document.

    ``opened``: where to leave the command's :class:`.app.App`, for a caller that closes
    what it opened itself and runs its :meth:`~.app.App.run_after` once the answer is out
    (the resident server's child, :func:`.callproc.child`); else it is left to the
    interpreter's exit, and what the command left for after its answer runs here.
    ``kept``: the home a kept process keeps open from call to call (cli/homekeep.py).
    """
    args = list(sys.argv[1:] if argv is None else argv)
    json_mode = _wants_json(args)
    out = Output(json_mode, stream=sys.stdout)
    out.argv = list(args)  # the raw arguments (proxy exec insists on `--` before a command)
    captured = io.StringIO()
    if json_mode:
        sys.stdout = captured
    apps: list[App] = opened if opened is not None else []
    try:
        code = _run(list(args), out, apps, kept)  # click consumes the list it is given
    finally:
        if json_mode:
            sys.stdout = out.stream
    if json_mode and not out.emitted:
        text = captured.getvalue()
        if code == 0 and "--version" in args:
            out.document("version", {"version": _version()})
        elif code == 0:
            out.document("help", {"text": text})
        else:
            from ..core.errors import InternalError

            render_error(
                out, InternalError(f"exited {code} without a result", details={"output": text[-2000:]})
            )
    if opened is None:  # (the resident server's child runs them once its answer is out)
        for app in apps:
            app.run_after()
    return code


def _missing_command(out: Output, ctx: click.Context) -> int:
    """`avfs` or `avfs vault` alone: the group's help on stderr as written (it is avfs's own
    text: quoted as a message, it came out as one line of ``\\n`` escapes), exit 2; with
    --json a usage error that says what is missing, as ``avfs --json`` alone does."""
    from ..core.errors import UsageError

    if out.json:
        err = UsageError("Missing command.", hint=f"`{ctx.command_path} --help` lists its commands")
        render_error(out, err)
    else:
        click.echo(ctx.get_help(), err=True)
    return EXIT_USAGE


def _version() -> str:
    from .. import __version__

    return __version__


def interrupted(argv: list[str]) -> int:
    """The answer of a call interrupted before its command began (a served call's process,
    Ctrl-C relayed as it lets the signals in: :func:`.callproc._run`), as :func:`main`'s
    own: 130, "interrupted" (with ``--json`` its one document; `proxy exec`'s envelope)."""
    out = Output(_wants_json(argv), stream=sys.stdout)
    out.argv = list(argv)
    return _interrupted(out)


def _interrupted(out: Output) -> int:
    from ..core.errors import Interrupted

    stop = Interrupted("interrupted", hint="avfs keeps no half-done change: rerun the command")
    if _is_proxy_exec(out.argv) and not out.emitted:
        # its envelope, as its fast path answers (the resident server runs a first call
        # on a fork that is not mounted here: Ctrl-C while it plans or mounts)
        from .proxy import exec_failed

        return exec_failed(out, _vault_option(out.argv), None, (), stop)
    render_error(out, stop)
    return stop.exit_code


GLOBAL_OPTIONS = ("--json", "--vault", "--home")


def _global_option_after(out: Output, option: str) -> int:
    """`avfs status --json` (git and most CLIs take flags anywhere): click said "No such
    option '--json'. Did you mean '--short'?", on stderr with nothing on stdout, then "avfs:
    error: exited 2 without a result". A usage error that says where the option goes, with
    the line as it should be; a document on stdout when --json was given anywhere."""
    import shlex

    from ..core.errors import UsageError

    args, rest, i = out.argv, [], 0
    front: list[str] = []
    while i < len(args):
        a = args[i]
        if a == "--":
            rest += args[i:]
            break
        name = a.split("=", 1)[0]
        if name in GLOBAL_OPTIONS:
            takes = name != "--json" and "=" not in a
            given = args[i : i + 1 + takes]
            # (given before the command too: once, as `avfs --json status --json` said
            # `avfs --json --json status`, h-polish3's trial)
            if not any(front[k : k + len(given)] == given for k in range(len(front))):
                front += given
            i += 1 + takes
            continue
        rest.append(a)
        i += 1
    out.json = out.json or _wants_json(args)
    render_error(
        out,
        UsageError(
            f"{option} is a global option: give it before the command",
            hint=shlex.join(["avfs", *front, *rest]),
            details={"option": option},
        ),
    )
    return EXIT_USAGE


def _run(args: list[str], out: Output, opened: list[App] | None = None, kept: KeptHome | None = None) -> int:
    from ..core.errors import UsageError

    try:
        with cli.make_context("avfs", args, obj=out) as ctx:
            if kept is not None:
                ctx.meta[KEPT_HOME] = kept  # (the group's callback runs in invoke: it makes the App)
            try:
                cli.invoke(ctx)
            finally:
                if opened is not None and isinstance(ctx.obj, App):
                    opened.append(ctx.obj)
        return 0
    except AvfsError as err:
        render_error(out, err)
        return err.exit_code
    except click.exceptions.Exit as ex:
        return ex.exit_code
    except (click.exceptions.Abort, KeyboardInterrupt):
        return _interrupted(out)
    except click.ClickException as ex:
        if _is_proxy_exec(out.argv):
            # `proxy exec` answers with its envelope on every path, a bad global option
            # before it included (the fast path parses its own arguments; this is for what
            # it hands on, and for in-process callers of main)
            from .proxy import exec_failed

            ctx_ = getattr(ex, "ctx", None)
            spec = ctx_.find_root().params.get("vault") if ctx_ is not None else None
            return exec_failed(out, spec, None, (), UsageError(ex.format_message()))
        if isinstance(ex, click.NoSuchOption) and ex.option_name in GLOBAL_OPTIONS:
            return _global_option_after(out, ex.option_name)
        no_args = getattr(click.exceptions, "NoArgsIsHelpError", None)  # (click >= 8.2)
        if no_args is not None and isinstance(ex, no_args) and ex.ctx is not None:
            return _missing_command(out, ex.ctx)
        if out.json:
            render_error(out, UsageError(ex.format_message()))
        else:
            setattr(ex, "message", out.text("{}", ex.message))  # noqa: B010 (Final in the stubs): an argument is shown as it is
            ex.show()
        return EXIT_USAGE if isinstance(ex, click.UsageError) else ex.exit_code
    except Exception as exc:  # (a reader gone away among them: render_failure)
        return render_failure(out, exc)
