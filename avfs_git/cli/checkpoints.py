"""`avfs checkpoint save|list|restore|delete`, `avfs op log`, `avfs undo`."""

from __future__ import annotations

import click

from ..core.operations import checkpoint as cp
from .app import App, pass_app
from .forkcmds import save


@click.group()
def checkpoint() -> None:
    """Save, list, restore and delete checkpoints (commits of the fork)."""


@checkpoint.command("save")
@click.argument("name", required=False)
@click.option("-m", "--message", help="Commit message.")
@click.option(
    "--rebase/--no-rebase",
    default=True,
    show_default=True,
    help="When the fork moved under the changes: rebase them onto it (when conflict-free), or stop (exit 75).",
)
@click.option(
    "--expect-head",
    metavar="REV",
    help="Only if the fork's branch is at REV now (else exit 1, expect_mismatch; nothing done).",
)
@pass_app
def save_cmd(app: App, name: str | None, message: str | None, rebase: bool, expect_head: str | None) -> None:
    """Commit the uncheckpointed changes (optionally under NAME).

    When the fork moved since the workspace's base (a push, a merge, a commit made
    elsewhere), the changes are rebased onto it when that is conflict-free; conflicts stop
    it (exit 3) with the paths, and nothing is lost.
    """
    save(app, name, message, rebase, expect_head)


@checkpoint.command("list")
@click.option("--all", "all_commits", is_flag=True, help="Every commit of the fork, named or not.")
@click.option("-n", "limit", type=int, default=100, help="At most N.")
@pass_app
def list_cmd(app: App, all_commits: bool, limit: int) -> None:
    """List the fork's named checkpoints (newest first)."""
    vault, fork = app.target()
    items = cp.list_checkpoints(vault, fork, all_commits=all_commits, limit=limit)

    def human() -> None:
        if not items:
            app.output.info("no named checkpoints; `avfs checkpoint save NAME` makes one")
        for i in items:
            first = i.message.split("\n", 1)[0]  # git's subject: a CR does not end it
            app.output.say("[yellow]{}[/] {} [green]{}[/] {}", i.commit[:12], i.time, i.name or "", first)

    app.output.result("checkpoint_list", {"vault": vault.name, "fork": fork, "checkpoints": items}, human)


@checkpoint.command("restore")
@click.argument("rev")
@click.option(
    "--expect-head",
    metavar="REV",
    help="Only if the fork's branch is at REV now (else exit 1, expect_mismatch; nothing done).",
)
@pass_app
def restore_cmd(app: App, rev: str, expect_head: str | None) -> None:
    """Move the fork back to REV. Nothing is lost: `avfs undo` brings the state back."""
    vault, fork = app.target()
    res = cp.restore(vault, fork, rev, expect_head=expect_head)

    def human() -> None:
        app.output.say("{}:{} is at {} ({})", vault.name, fork, res.commit[:12], rev)
        if res.recovery_ref:
            app.output.info("uncheckpointed changes kept at {}", res.recovery_ref)
        app.output.info("undo with `avfs undo` (operation {})", res.op_id)

    app.output.result("restore", {"restore": res}, human)


@checkpoint.command("delete")
@click.argument("name")
@pass_app
def delete_cmd(app: App, name: str) -> None:
    """Delete a checkpoint's name (the commit stays in the fork's history)."""
    vault, fork = app.target()
    op = cp.delete_checkpoint(vault, fork, name)
    app.output.result(
        "operation",
        {"vault": vault.name, "fork": fork, "operation": op},
        lambda: app.output.info("{}", op.summary),
    )


@click.group()
def op() -> None:
    """The operation log (every mutating action, undoable)."""


def _scope(app: App) -> str | None:
    """The fork whose operations `undo`, `redo` and `op log` act on: the one the selection
    names (the fork mounted where the command runs, or --vault VAULT:FORK); None (the whole
    vault) when it names only a vault."""
    spec = app.spec
    if spec is None or ":" not in spec:
        return None
    _, fork = app.target()
    return fork


@op.command("log")
@click.option("-n", "limit", type=int, default=50, help="At most N operations.")
@pass_app
def op_log(app: App, limit: int) -> None:
    """List the vault's operations, newest first.

    Inside a fork's mount (or with --vault VAULT:FORK) only the operations that touched that
    fork; with --vault VAULT, every operation of the vault."""
    vault, _ = app.target()
    ops = vault.oplog.recent(limit, fork=_scope(app))

    def human() -> None:
        for o in ops:
            mark = app.output.markup(" [dim](undone by {})[/]", o.undone_by) if o.undone_by else ""
            app.output.say("[yellow]{:>5}[/] {} {:<18} {}" + mark, o.id, o.time, o.kind, o.summary)

    app.output.result("op_log", {"vault": vault.name, "operations": ops}, human)


def _render_undo(app: App, res: cp.UndoResult, verb: str) -> None:
    def human() -> None:
        app.output.say("{} operation {}: {}", verb, res.undone.id, res.undone.summary)
        if res.recovery_ref:
            app.output.info("uncheckpointed changes kept at {}", res.recovery_ref)

    app.output.result(
        "undo", {"undone": res.undone, "op_id": res.op_id, "recovery_ref": res.recovery_ref}, human
    )


@click.command("undo")
@click.option("--op", "op_id", type=int, default=None, help="Undo this operation (default: the last one).")
@pass_app
def undo_cmd(app: App, op_id: int | None) -> None:
    """Undo the last operation (or --op ID); undo is an operation too.

    Inside a fork's mount (or with --vault VAULT:FORK) the last operation that touched that
    fork; with --vault VAULT, the vault's last operation. A second undo walks one operation
    further back. `avfs redo` undoes the last undo (as does `avfs undo --op ID` of the undo's
    ID, shown by `avfs op log`)."""
    vault, _ = app.target()
    res = cp.undo(vault, op_id, fork=None if op_id is not None else _scope(app))
    _render_undo(app, res, "undid")


@click.command("redo")
@pass_app
def redo_cmd(app: App) -> None:
    """Redo what the last `avfs undo` undid (an undo of that undo).

    Scoped as `avfs undo` is: inside a fork's mount, that fork's last undo. Successive redos
    walk forward as successive undos walked back; a redo can itself be undone."""
    vault, _ = app.target()
    res = cp.redo(vault, fork=_scope(app))
    _render_undo(app, res, "redid")
