"""`proxy exec`'s fast path (it runs without loading click), then the click CLI.

An agent pays the CLI's start-up on every command it runs through ``proxy exec``; click
and the command modules cost ~40 ms of a ~130 ms call. So :func:`main`, which the console
script (:func:`.client.main`) calls for every call the resident server does not answer,
hands the arguments to :func:`fast_main` before anything else is imported, which takes ``[--home DIR] [--vault SPEC] [--json] proxy exec ...`` (and
``hook claude|codex EVENT``) itself. Where the fork is mounted, it hands the rest of the
arguments to the mount's daemon (:mod:`avfs_git.proxy.server`), importing nothing beyond
what Python loads at start-up; otherwise it parses them by the option table the click
command is built from (:data:`~avfs_git.proxy.options.EXEC_OPTIONS`) and runs the call in
this process. Anything neither recognises (help, other commands) it declines, and
:func:`main` hands it to the click CLI (:func:`.main.main`), imported only then.

So in cli, imports go one way: ``client -> execopts -> main -> command modules -> app``; the command
modules never import this module (`proxy exec`'s click command renders with
:mod:`.execrender`, as this module does).
"""

from __future__ import annotations

import os
import sys

from .execclient import NoAnswer, global_options, print_reply, read_exec, talk, with_cwd

TYPE_CHECKING = False  # not from typing: see avfs_git/__init__.py
if TYPE_CHECKING:
    from typing import Any

    from .app import App


def with_site() -> None:
    """Under the ``-S`` console script (:mod:`.launcher`): run ``site`` now (site-packages,
    the ``.pth`` files), before anything outside avfs and the standard library is imported.
    A served call and `proxy exec` through a mount's daemon never get here."""
    if sys.flags.no_site and "site" not in sys.modules:
        import site

        site.main()


def _parse_global(args: list[str]) -> tuple[dict[str, Any], list[str]] | None:
    out, rest = global_options(args)
    if rest[:2] != ["proxy", "exec"]:
        return None
    return out, rest[2:]


_HOOK_EVENTS = ("pre-tool-use", "post-tool-use", "stop")


def _fast_hook(args: list[str]) -> int | None:
    """`avfs hook claude|codex EVENT` without click: an agent runs it before and after every
    tool call (the click CLI's start-up alone is ~50 ms). The same answer as the click
    command (cli/hooks_cmd.py), which handles everything else (--help, Codex's notify)."""
    glob, rest = global_options(args)
    if (
        len(rest) != 3
        or rest[0] != "hook"
        or rest[1] not in ("claude", "codex")
        or rest[2] not in _HOOK_EVENTS
    ):
        return None
    try:
        with_site()
        from ..hooks.events import answer, confine_from

        try:
            data = sys.stdin.buffer.read()
        except (OSError, ValueError):
            data = b""
        from ..core.settings import Settings

        settings = Settings.from_environ(os.environ, glob["home"])
        project = os.environ.get("CLAUDE_PROJECT_DIR") if rest[1] == "claude" else None
        confine = confine_from(sys.argv[0] if sys.argv else "", sys.executable, os.environ)
        ans = answer(rest[1], rest[2], data, settings, project_dir=project, confine=confine)
        if text := ans.stdout_text():
            sys.stdout.write(text)
            sys.stdout.flush()
        if ans.stderr:
            sys.stderr.write(ans.stderr)
            sys.stderr.flush()
        return ans.exit_code
    except (Exception, KeyboardInterrupt) as exc:
        # fail closed: exit 2 blocks the tool (any other status lets the agent run it), with a
        # deny on stdout when stdout still takes it; plain ASCII, built without avfs_git.hooks.events
        import json

        pre = rest[2] == "pre-tool-use"
        msg = f"avfs: internal error while answering the hook: {type(exc).__name__}: {ascii(str(exc))[1:-1]}"
        decision = {
            "hookEventName": "PreToolUse",
            "permissionDecision": "deny",
            "permissionDecisionReason": msg,
        }
        out = json.dumps({"hookSpecificOutput": decision}, ensure_ascii=True) + "\n"
        for stream, text in (((sys.stdout, out),) if pre else ()) + ((sys.stderr, msg + "\n"),):
            try:
                stream.write(text)
                stream.flush()
            except Exception:
                pass  # the exit status is the answer that counts
        return 2 if pre else 1


def failed(glob: dict[str, Any], values: dict[str, Any] | None, argv: list[str], err: Any) -> int:
    """Print the envelope of a call that failed before the command could run (an
    :class:`~avfs_git.core.errors.AvfsError` ``err``); returns its exit code, 125."""
    with_site()
    from ..core.types import json_document
    from ..proxy.options import failed_envelope
    from .execrender import render

    env = failed_envelope(glob["vault"], values, argv, err)
    render(glob["json"], json_document("proxy_exec_result", env), bool(values and values.get("quiet")))
    return int(env["exit_code"])


def _exec_socket(glob: dict[str, Any]) -> tuple[str, int, str, float] | None:
    """The exec socket, daemon pid and mount point of a live read-write mount of the fork
    asked for (``--vault VAULT:FORK``; without --vault, the fork whose mount holds the
    current directory, which then becomes ``glob["vault"]``), and when the daemon wrote
    the three beside its registry file, ``<fork>.exec`` (plain text: reading it needs no
    json; :func:`.execclient.read_exec`)."""
    from ..core.settings import home_path
    from ..core.vaults import registry

    home = home_path(glob["home"], os.environ)
    spec = glob["vault"]
    if spec is None:
        # the one rule of every command (registry.place): the mount holding the current
        # directory, else the vault made from it
        here = registry.place(home, os.getcwd())
        if here is None:
            return None  # the home's default fork (in its config): in process
        spec = glob["vault"] = here
    vault, _, fork = spec.partition(":")
    if not vault or not fork or "@" in fork or "/" in vault or vault.startswith("."):
        return None  # no explicit fork (its default lives in the vault's config): in process
    return read_exec(home, vault, fork)


def _remote(glob: dict[str, Any], rest: list[str]) -> int | None:
    """Hand the arguments after `proxy exec` to the live mount's daemon, which parses and
    runs them (see :mod:`avfs_git.proxy.server`, protocol 2); None when there is none to
    ask, or it leaves them to this process (help, ``--mode materialized``).

    The conversation is :func:`.execclient.talk`'s (built-in modules only); the console
    script asks the daemon through :func:`.execclient.fast` before it gets here, when
    ``--vault``/``AVFS_VAULT`` names the fork."""
    found = _exec_socket(glob)
    if found is None:
        return None
    name, daemon_pid, mountpoint, written = found
    glob["mountpoint"] = mountpoint
    try:
        reply = talk(name, daemon_pid, with_cwd(rest, mountpoint), glob["json"], dict(os.environ), written)
    except NoAnswer:
        values, argv = _lenient(rest)
        return _daemon_died(glob, values, argv)
    if reply is None or reply.get("fallback"):
        return None
    return print_reply(glob["json"], reply)


def _exit(code: int) -> None:
    """End this process now, its answer printed: it holds nothing to clean up, and the
    interpreter's own teardown is ~1 ms of an agent's every command."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def _lenient(rest: list[str]) -> tuple[dict[str, Any] | None, list[str]]:
    """The option values and argv of ``rest`` for an envelope of this process' own (None:
    unparseable)."""
    from ..proxy.options import parse_args

    try:
        return parse_args(rest)
    except Exception:
        return None, []


def _daemon_died(glob: dict[str, Any], values: dict[str, Any] | None, argv: list[str]) -> int:
    """The daemon that ran the command died before answering (killed with its mount)."""
    from ..core.errors import MountDiedError

    return failed(
        glob,
        values,
        argv,
        MountDiedError(
            "the mount daemon died while it ran the command; its result is unknown",
            hint="what was written before is in the overlay: see `avfs status`",
        ),
    )


def after_remote(args: list[str], exc: BaseException) -> int:
    """The envelope of a `proxy exec` whose conversation with a mount's daemon
    (:func:`.execclient.fast`) ended in ``exc``: the daemon died before answering, Ctrl-C
    before the request was sent, or avfs's own failure; as :func:`fast_main` answers each."""
    glob, rest = global_options(args)
    rest = rest[2:]
    if isinstance(exc, NoAnswer):
        return _daemon_died(glob, *_lenient(rest))
    if isinstance(exc, KeyboardInterrupt):
        from ..core.errors import Interrupted

        return failed(glob, *_lenient(rest), Interrupted("interrupted"))
    from ..core.errors import unexpected

    return failed(glob, *_lenient(rest), unexpected(exc))


def fast_main(args: list[str], *, exit_now: bool = False) -> int | None:
    """Run `proxy exec` (or an agent hook) without click; None when these arguments are not
    for a fast path (other commands, `proxy exec --help`). ``exit_now`` (the console
    script): once a mount's daemon has answered, the process ends at once (``os._exit``).

    Every `proxy exec` call ends here in one ``proxy_exec_result`` envelope: bad arguments,
    a missing vault or fork and avfs's own failures included (exit 125, nothing ran)."""
    hook_code = _fast_hook(args)
    if hook_code is not None:
        return hook_code
    parsed = _parse_global(args)
    if parsed is None:
        return None
    glob, rest = parsed
    try:
        code = _remote(glob, rest)
        if code is not None and exit_now:
            _exit(code)
    except KeyboardInterrupt:
        from ..core.errors import Interrupted

        return failed(glob, *_lenient(rest), Interrupted("interrupted"))
    except Exception as exc:  # talking to the daemon failed (not before it answered)
        from ..core.errors import unexpected

        return failed(glob, *_lenient(rest), unexpected(exc))
    if code is not None:
        return code
    with_site()  # in this process: pygit2, the sandbox
    from ..core.errors import UsageError
    from ..proxy.options import USAGE, BadUsage, NotFast, parse_args, request_from

    values: dict[str, Any] | None = None
    argv: list[str] = []
    home = None
    rest = with_cwd(rest, glob.get("mountpoint") or "")  # (--mode materialized)
    try:
        values, argv = parse_args(rest)
    except NotFast:
        return None
    except BadUsage as bad:
        return failed(glob, bad.values, argv, UsageError(bad.message, hint=USAGE))
    try:
        from ..core.types import json_document
        from ..mount.side import open_home

        req = request_from(values, argv)
        from ..core.settings import Settings

        settings = Settings.from_environ(os.environ, glob["home"])
        settings.zygote = False  # (one call: as cli/app.py's)
        home = open_home(glob["home"], settings=settings)
        vault, fork = home.resolve(glob["vault"])
        # a fork that is not mounted: its mount daemon started now, to come up while this
        # process imports the rest and plans the call (proxy/premount.py)
        from ..proxy.premount import begin

        premount = begin(home, vault, fork, req)
        from ..proxy.execute import execute

        res = execute(home, vault, fork, req, signals=True, premount=premount)
    except KeyboardInterrupt:
        from ..core.errors import Interrupted

        return failed(glob, values, argv, Interrupted("interrupted"))
    except Exception as exc:  # avfs failed before the command could run
        from ..core.errors import AvfsError, unexpected

        err = exc if isinstance(exc, AvfsError) else unexpected(exc)
        if home is not None and err.code in ("vault_not_found", "fork_not_found"):
            from .suggest import with_suggestions

            err = with_suggestions(home, err)
        return failed(glob, values, argv, err)
    from .execrender import render

    render(glob["json"], json_document("proxy_exec_result", res.to_dict()), values["quiet"])
    return res.exit_code


def interrupted(json_mode: bool) -> int:
    """Ctrl-C before a served command started: the answer of a direct call so stopped."""
    with_site()
    from ..core.errors import Interrupted
    from .output import Output, render_error

    err = Interrupted("interrupted", hint="avfs keeps no half-done change: rerun the command")
    render_error(Output(json_mode, stream=sys.stdout), err)
    return err.exit_code


def run_closed(args: list[str]) -> int:
    """The click CLI on ``args`` (a direct call of a :data:`.client.LATE_START` command),
    then what the command left for after its answer, then its home closed: the SQLite
    databases it opened write their WAL back and go, as at Python's exit, so that the
    process may end without Python's finalization (:func:`.client._end_alone`). `gc`'s
    own arguments run without click (:func:`.gccmd.fast`, the same answer)."""
    with_site()
    from .gccmd import fast

    apps: list[App] = []
    try:
        code = fast(args, apps)
        if code is not None:
            return code
        from .main import main as click_main

        return click_main(args, opened=apps)
    finally:
        for app in apps:
            app.run_after()
        for app in apps:
            try:
                app.close()
            except Exception:  # the answer is out; a WAL left is read by the next open
                pass


def main(argv: list[str] | None = None) -> int:
    """The fast path, else the click CLI; returns the exit code. The console script
    (:func:`.client.main`) calls it for what the resident server did not answer.

    Without ``argv`` (the console script, ``python -m avfs_git``) the arguments are this
    process' own and so is the process: once a mount's daemon has answered a `proxy exec`,
    it ends at once (``os._exit``, see :func:`fast_main`)."""
    own = argv is None
    args = list(sys.argv[1:] if argv is None else argv)
    if own:  # its sandboxes' first processes, collected (proxy/reaping.py)
        from ..proxy.reaping import want_reaper

        want_reaper()
    code = fast_main(args, exit_now=own)
    if code is not None:
        return code
    with_site()
    from .fastcli import fast as without_click

    code = without_click(args)
    if code is not None:
        return code
    from .main import main as click_main

    return click_main(args)
