"""`avfs remote ...`, `avfs push`, `avfs fetch`."""

from __future__ import annotations

import click

from .app import App, pass_app


@click.group("remote")
def remote() -> None:
    """A vault's git remotes (stored in the vault's git config, without credentials)."""


def _warn(app: App, warnings: list[str]) -> None:
    for w in warnings:
        app.output.warn("{}", w)


@remote.command("list")
@pass_app
def list_cmd(app: App) -> None:
    """List the vault's remotes."""
    from ..core.operations import remote as r

    vault, _ = app.target()
    found = r.list_remotes(vault)

    def human() -> None:
        for x in found:
            app.output.plain("{}\t{}", x.name, x.url)

    app.output.result("remote_list", {"vault": vault.name, "remotes": found}, human)


def _changed(app: App, info: object, warnings: list[str], action: str, human: str, *args: object) -> None:
    """``human``: the line for a person, a template filled by ``args`` (see Output.say)."""
    vault, _ = app.target()
    _warn(app, warnings)
    data = {"vault": vault.name, "remote": info, "action": action, "warnings": warnings}
    app.output.result("remote", data, lambda: app.output.info(human, *args))


@remote.command("add")
@click.argument("name")
@click.argument("url")
@pass_app
def add_cmd(app: App, name: str, url: str) -> None:
    """Add a remote (a URL's user:password@ is not stored: use a credential helper)."""
    from ..core.operations import remote as r

    info, warnings = r.add(app.target()[0], name, url)
    _changed(app, info, warnings, "added", "added remote {}: {}", info.name, info.url)


@remote.command("set-url")
@click.argument("name")
@click.argument("url")
@pass_app
def set_url_cmd(app: App, name: str, url: str) -> None:
    """Change a remote's URL."""
    from ..core.operations import remote as r

    info, warnings = r.set_url(app.target()[0], name, url)
    _changed(app, info, warnings, "set_url", "{}: {}", info.name, info.url)


@remote.command("remove")
@click.argument("name")
@pass_app
def remove_cmd(app: App, name: str) -> None:
    """Remove a remote (and its remote-tracking refs)."""
    from ..core.operations import remote as r

    vault, _ = app.target()
    r.remove(vault, name)
    app.output.result(
        "remote", {"vault": vault.name, "remote": {"name": name, "url": None}, "action": "removed", "warnings": []},
        lambda: app.output.info("removed remote {}", name),
    )  # fmt: skip


def _transfer_human(app: App, res: object, verb: str) -> None:
    from ..core.operations.remote import TransferResult

    assert isinstance(res, TransferResult)
    if not res.updates:
        app.output.info("everything up to date")
    for u in res.updates:
        old = u.old[:12] if u.old else "(new)"
        new = u.new[:12] if u.new else "(deleted)"
        app.output.plain("{}\t{} -> {}", u.ref, old, new)
    for w in res.warnings:
        app.output.warn("{}", w)
    for lb in res.left_behind:
        app.output.warn(
            "{}: {} uncheckpointed change(s) not " + verb + " (checkpoint them, or push --checkpoint)",
            lb["fork"],
            lb["uncheckpointed_changes"],
        )


@click.command("push")
@click.argument("remote_name", required=False, default="origin", metavar="[REMOTE]")
@click.argument("forks", nargs=-1, metavar="[FORK...]")
@click.option("--all", "all_forks", is_flag=True, help="Push every fork.")
@click.option(
    "--checkpoints", is_flag=True, help="Also push the forks' named checkpoints (refs/avfs/checkpoints/...)."
)
@click.option(
    "--tags",
    is_flag=True,
    help="Also push the vault's tags, as `git push --tags` (never moved there); with --checkpoints,"
    " the checkpoints go as tags avfs/FORK/NAME.",
)
@click.option(
    "--checkpoint", "checkpoint_first", is_flag=True, help="Checkpoint uncheckpointed changes first."
)
@click.option(
    "--force-with-lease",
    is_flag=True,
    help="Overwrite the remote branch, but only if it is still what this vault last fetched or pushed.",
)
@pass_app
def push_cmd(
    app: App,
    remote_name: str,
    forks: tuple[str, ...],
    all_forks: bool,
    checkpoints: bool,
    tags: bool,
    checkpoint_first: bool,
    force_with_lease: bool,
) -> None:
    """Push forks as branches (default: the selected fork). Never forces unless
    --force-with-lease; a rejected push (the remote has commits this fork lacks, or a
    stale lease) exits 5 and changes nothing here."""
    from ..core.operations import remote as r

    vault, fork = app.target()
    chosen = list(forks) or ([] if all_forks else [fork])
    with app.output.git_progress() as progress:
        res = r.push(
            vault,
            remote_name,
            chosen,
            all_forks=all_forks,
            checkpoints=checkpoints,
            tags=tags,
            checkpoint_first=checkpoint_first,
            force_with_lease=force_with_lease,
            progress=progress,
        )
    app.output.result(
        "transfer", {"direction": "push", "result": res}, lambda: _transfer_human(app, res, "pushed")
    )


@click.command("fetch")
@click.argument("remote_name", required=False, default="origin", metavar="[REMOTE]")
@pass_app
def fetch_cmd(app: App, remote_name: str) -> None:
    """Fetch the remote's branches into refs/remotes/REMOTE/ (forks do not move).

    A shallow vault (cloned from a shallow repository) takes the remote's new shallow
    boundary, as `git fetch --update-shallow` does (plain `git fetch` leaves such a branch
    out with a warning); a vault that is not shallow stays whole, as git leaves it, and
    each branch left out is a warning."""
    from ..core.operations import remote as r

    vault, _ = app.target()
    with app.output.git_progress() as progress:
        res = r.fetch(vault, remote_name, progress=progress)
    app.output.result(
        "transfer", {"direction": "fetch", "result": res}, lambda: _transfer_human(app, res, "fetched")
    )


@click.command("pull")
@click.argument("remote_name", required=False, default="origin", metavar="[REMOTE]")
@click.argument("branch", required=False, metavar="[BRANCH]")
@click.option("--no-ff", is_flag=True, help="Make a merge commit even when a fast-forward would do.")
@click.option("--ours", "favor", flag_value="ours", help="Resolve text conflicts in favour of the fork.")
@click.option(
    "--theirs", "favor", flag_value="theirs", help="Resolve text conflicts in favour of the remote."
)
@click.option(
    "--write-conflicts", is_flag=True, help="Write conflict markers into the workspace to resolve by hand."
)
@click.option(
    "--allow-unrelated",
    is_flag=True,
    help="Merge a remote branch that shares no history with the fork (one force-pushed to a new root).",
)
@pass_app
def pull_cmd(
    app: App,
    remote_name: str,
    branch: str | None,
    no_ff: bool,
    favor: str | None,
    write_conflicts: bool,
    allow_unrelated: bool,
) -> None:
    """Fetch, then merge REMOTE's BRANCH (default: the branch named as the selected fork)
    into the selected fork, as `git pull origin main` does (fast-forward or a merge commit;
    conflicts are data and exit 3, as for `avfs merge`)."""
    from ..core.errors import EXIT_CONFLICT
    from ..core.operations import remote as r

    vault, fork = app.target()
    with app.output.git_progress() as progress:
        fetched, res = r.pull(
            vault,
            remote_name,
            fork,
            progress=progress,
            branch=branch,
            no_ff=no_ff,
            favor=favor,
            write_conflicts=write_conflicts,
            allow_unrelated=allow_unrelated,
        )
    conflicted = res.status in ("conflicts", "conflicts_written")  # type: ignore[attr-defined]

    def human() -> None:
        _transfer_human(app, fetched, "fetched")
        status = res.status.replace("_", " ")  # type: ignore[attr-defined]
        app.output.plain("{} -> {}: {}", res.source, res.target, status)  # type: ignore[attr-defined]
        for c in res.conflicts:  # type: ignore[attr-defined]
            app.output.plain("  {:14} {}", c.kind, c.path)

    app.output.result("pull", {"fetch": fetched, "merge": res, "conflicted": conflicted}, human)
    if conflicted:
        raise click.exceptions.Exit(EXIT_CONFLICT)
