"""`avfs up`, `avfs down`, `avfs export`, `avfs apply`: a project directory to an agent's
mounted fork and back (over :mod:`avfs_git.ops.quickstart`)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from ..core.errors import EXIT_CONFLICT, UsageError
from .app import App, pass_app

if TYPE_CHECKING:
    from ..core.vaults.home import Home
    from ..core.vaults.vault import Vault


def _vault_here(app: App) -> Vault[Home] | None:
    """The vault `avfs up` made from the current directory (or one above it), when no vault
    was selected and no mount holds the current directory: the selection's rule
    (:attr:`App.spec`)."""
    if app.vault_spec:
        return None
    spec = app.spec
    if spec is None or ":" in spec:
        return None
    return app.home.vault(spec)


def _fork_target(app: App, spec: str | None) -> tuple[Vault[Home], str]:
    """``[VAULT:]FORK`` (a bare FORK is in the selected vault, or the vault made from the
    current directory) to a vault and fork; None: the selected fork."""
    if spec is not None and ":" in spec:
        return app.resolve(spec)
    here = _vault_here(app)
    if here is not None:
        fork = spec or here.default_fork
        here.require_fork(fork)
        return here, fork
    vault, fork = app.target()
    if spec is not None:
        vault.require_fork(spec)
        fork = spec
    return vault, fork


@click.command("up")
@click.argument("directory", metavar="[DIR]", required=False)
@click.option(
    "--from-url",
    "url",
    metavar="URL",
    help="Clone the git repository at URL instead of importing a directory (reused by a later"
    " `up --from-url` of the same URL).",
)
@click.option(
    "--lazy",
    is_flag=True,
    help="With --from-url: a partial clone, each file's contents fetched when first read (docs/lazy.md).",
)
@click.option("--agent", metavar="NAME", help="The agent's fork (reused if it exists; default agent-<n>).")
@click.option(
    "--vault",
    "vault_name",
    metavar="NAME",
    help="The vault's name (default: the vault made from DIR or URL before, else its name).",
)
@click.option("--mountpoint", metavar="PATH", help="Where to mount (default: under the avfs home).")
@click.option(
    "--no-mount",
    is_flag=True,
    help="Import (or clone) and fork only; mount later with `avfs mount VAULT:FORK` (or run"
    " commands with `avfs proxy exec`, which mounts as it needs).",
)
@click.option(
    "--no-refresh",
    is_flag=True,
    help="When DIR changed since the vault last saw it, do not bring the changes into its default fork.",
)
@pass_app
def up_cmd(
    app: App,
    directory: str | None,
    url: str | None,
    lazy: bool,
    agent: str | None,
    vault_name: str | None,
    mountpoint: str | None,
    no_mount: bool,
    no_refresh: bool,
) -> None:
    """Import DIR (or clone URL) into a vault, fork it for an agent, and mount the fork.

    A second `up` of the same DIR reuses its vault; when DIR changed since, the changes are
    checkpointed into the vault's default fork (only when that fork has no changes of its
    own; otherwise a warning says so). Prints the mount point, and on stderr how to start
    an agent there. Take it down with `avfs down MOUNT --keep` (merge into the default
    fork: the branch DIR had checked out) or `--discard`. With `--from-url URL [--lazy]`
    the vault is cloned from a git server instead (lazily: commits and trees now, files
    as they are read).
    """
    from ..core.errors import UsageError
    from ..ops.quickstart import up

    if (directory is None) == (url is None):
        raise UsageError(
            "give a directory or --from-url URL (one of them)", hint="avfs up DIR | avfs up --from-url URL"
        )
    if lazy and url is None:
        raise UsageError("--lazy goes with --from-url URL", hint="avfs up --from-url URL --lazy")
    if no_mount and mountpoint is not None:
        raise UsageError("--mountpoint and --no-mount: give one of them", hint="avfs up DIR --no-mount")
    if url is not None:
        from ..ops.upremote import up_from_url

        with app.output.git_progress() as git_progress:
            res = up_from_url(
                app.home, url, lazy=lazy, agent=agent, vault_name=vault_name, mountpoint=mountpoint,
                mount=not no_mount, progress=git_progress,
            )  # fmt: skip
    else:
        assert directory is not None
        with app.output.progress("importing") as progress:
            res = up(
                app.home,
                directory,
                agent=agent,
                vault_name=vault_name,
                mountpoint=mountpoint,
                mount=not no_mount,
                refresh=not no_refresh,
                progress=progress,
            )
    for w in res.warnings:
        app.output.warn("{}", w)

    def human() -> None:
        made = (
            "cloned lazily into new vault"
            if res.lazy
            else ("cloned" if url else "imported") + " into new vault"
        )
        what = made if res.vault_created else "vault"
        app.output.info("{}: " + what + " {}, fork {}", res.origin, res.vault, res.fork)
        if res.refreshed and res.refresh_commit:
            default = app.home.vault(res.vault).default_fork
            app.output.info("brought the directory's changes into {}: {}", default, res.refresh_commit[:12])
        if res.mountpoint is not None:
            app.output.plain("{}", res.mountpoint)
        if res.hint:
            app.output.info("next: {}", res.hint)

    app.output.result("up", res.to_json(), human)


@click.command("down")
@click.argument("mount", required=False, metavar="[MOUNT]")
@click.option("--fork", "fork_spec", metavar="[VAULT:]FORK", help="The fork to take down (instead of MOUNT).")
@click.option(
    "--keep",
    "action",
    flag_value="keep",
    help="Merge the fork into the vault's default fork, then delete it.",
)
@click.option("--discard", "action", flag_value="discard", help="Delete the fork (undo with `avfs undo`).")
@click.option("-y", "--yes", is_flag=True, help="Ask nothing (without --keep/--discard: leave the fork).")
@pass_app
def down_cmd(app: App, mount: str | None, fork_spec: str | None, action: str | None, yes: bool) -> None:
    """Unmount an agent's fork, checkpoint it, then keep or discard its work.

    --keep merges the fork into the vault's default fork (the branch the imported directory
    had checked out) and deletes it; conflicts
    are data: the fork stays and the command exits 3. --discard deletes the fork (undoable
    with `avfs undo`). With neither, a terminal asks; otherwise the fork stays as it is.
    A mount still in use (a shell's working directory, an open file) stops it before
    anything changes, naming the processes that hold it.

    Without MOUNT or --fork (or --vault VAULT:FORK): the one live mount of the vault `avfs
    up` made from the current directory, or, outside such a directory, the one live mount
    of any vault; when that is not exactly one, it refuses and lists the live mounts.
    """
    from ..ops import mounts
    from ..ops import quickstart as q

    if mount is not None and fork_spec is not None:
        raise UsageError("give MOUNT or --fork, not both")
    if mount is not None:
        info = q.find_mount(app.home, mount)
        vault, fork = app.home.vault(info.vault), info.fork
    elif fork_spec is not None:
        vault, fork = _fork_target(app, fork_spec)
    elif app.spec and ":" in app.spec:
        vault, fork = app.target()
    else:
        every = [m for m in mounts.list_mounts(app.home) if m.revision is None]
        here = _vault_here(app)
        live = [m for m in every if m.vault == here.name] if here is not None else every
        if len(live) != 1:
            if live:
                listing = "live: " + ", ".join(m.mountpoint for m in live)
            elif every:
                assert here is not None  # else live == every
                listing = (
                    f"vault {here.name}, made from this directory, has none; other mounts: "
                    + ", ".join(f"{m.vault}:{m.fork} at {m.mountpoint}" for m in every)
                )
            else:
                listing = "nothing is mounted"
            raise UsageError(
                f"name the mount to take down ({listing})",
                hint="avfs down MOUNT, or avfs down --fork VAULT:FORK",
                details={
                    "vault_here": here.name if here is not None else None,
                    "mounts": [{"vault": m.vault, "fork": m.fork, "mountpoint": m.mountpoint} for m in every],
                },
            )
        vault, fork = app.home.vault(live[0].vault), live[0].fork
    interactive = not app.json and not yes and sys.stdin.isatty() and sys.stderr.isatty()
    if action is None and interactive:
        action = click.prompt(
            f"{vault.name}:{fork}: keep (merge into {vault.default_fork}), discard, or leave it as it is?",
            type=click.Choice(["keep", "discard", "leave"]),
            default="leave",
            err=True,
        )
    elif action == "discard" and interactive:
        click.confirm(f"discard fork {fork} (`avfs undo` brings it back)?", abort=True, err=True)
    res = q.down(app.home, vault, fork, action="leave" if action is None else action)  # type: ignore[arg-type]

    def human() -> None:
        o = app.output
        if res.unmounted:
            o.info("unmounted {}", res.mountpoint)
        if res.checkpoint:
            o.info("checkpoint {}", res.checkpoint[:12])
        if res.merge is not None:
            o.plain("{} -> {}: {}", res.fork, res.target, res.merge.status.replace("_", " "))
            for c in res.merge.conflicts:
                o.plain("  {:14} {}", c.kind, c.path)
            if res.conflicted:
                o.info(
                    "fork {fork} kept; resolve with `avfs --vault {vault}:{target} merge {fork} --write-conflicts`",
                    fork=res.fork,
                    vault=res.vault,
                    target=res.target,
                )
        if res.fork_deleted:
            o.plain("fork {} deleted (undo: avfs --vault {} undo --op {})", res.fork, res.vault, res.op_id)
        elif not res.conflicted:
            o.plain("fork {}:{} kept at {}", res.vault, res.fork, res.head[:12])

    app.output.result("down", res.to_json(), human)
    if res.conflicted:
        raise click.exceptions.Exit(EXIT_CONFLICT)


@click.command("export")
@click.argument("fork_spec", metavar="[VAULT:]FORK")
@click.argument("directory", metavar="DIR")
@click.option("--force", is_flag=True, help="Write into a non-empty DIR (the fork's paths replace DIR's).")
@pass_app
def export_cmd(app: App, fork_spec: str, directory: str, force: bool) -> None:
    """Write a fork's current state (with its uncheckpointed changes) into a plain directory.

    Modes and symlinks are kept. DIR must be missing or empty unless --force.
    """
    from ..ops.quickstart import export

    vault, fork = _fork_target(app, fork_spec)
    res = export(vault, fork, directory, force=force)
    app.output.result(
        "export",
        res.to_json(),
        lambda: app.output.info(
            "{}:{} -> {}: {} files, {} symlinks, {} dirs",
            res.vault,
            res.fork,
            res.dir,
            res.files,
            res.symlinks,
            res.dirs,
        ),
    )


@click.command("apply")
@click.argument("fork_spec", required=False, metavar="[[VAULT:]FORK]")
@click.option(
    "--to", "to", metavar="DIR", help="The directory to change (default: the one the vault came from)."
)
@click.option("--patch", "patch", metavar="FILE", help="Write a git-format patch to FILE instead.")
@click.option("--force", is_flag=True, help="Overwrite changes made in DIR to the paths the fork changed.")
@pass_app
def apply_cmd(app: App, fork_spec: str | None, to: str | None, patch: str | None, force: bool) -> None:
    """Bring a fork's changes back into the project directory `avfs up` imported.

    Copies changed and added files, deletes removed ones (or, with --patch, writes them as
    a patch for `git apply`). Refuses (exit 3, listing the paths) when DIR changed a path
    the fork changed too since the import or the last apply, unless --force; other
    changes in DIR are left alone. The fork is checkpointed first.
    """
    from ..ops.quickstart import apply

    vault, fork = _fork_target(app, fork_spec)
    res = apply(vault, fork, to=to, patch=patch, force=force)

    def human() -> None:
        applied = [c for c in res.changes if c.applied]
        o = app.output
        if res.patch:
            o.info("{} change(s) of {}:{} written to {}", len(res.changes), res.vault, res.fork, res.patch)
        else:
            for c in applied:
                o.plain(c.status[0].upper() + " {}", c.path)
            o.info("{} path(s) of {}:{} applied to {}", len(applied), res.vault, res.fork, res.dir)
        for k in res.conflicts:
            o.warn("overwrote {} ({})", k.path, k.reason)

    app.output.result("apply", res.to_json(), human)
