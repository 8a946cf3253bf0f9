"""The bodies of `avfs checkpoint list|restore|delete`, `avfs op log`, `avfs undo` and
`avfs redo`.

Their click commands (:mod:`.checkpoints`) call them, and so does the path without click
(:mod:`.fastcli`), which imports neither click nor the command modules. This module imports
no click.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..core.operations.checkpoint import UndoResult
    from .app import App


def list_checkpoints(app: App, all_commits: bool, limit: int) -> None:
    """`avfs checkpoint list`'s body: its click command calls it, and so does the path without click (:mod:`.fastcli`)."""
    from ..core.operations import checkpoint as cp
    from .app import check_count

    check_count(limit, "checkpoints")
    vault, fork = app.target()
    items = cp.list_checkpoints(vault, fork, all_commits=all_commits, limit=limit)

    def human() -> None:
        if not items:
            app.output.info("no named checkpoints; `avfs checkpoint save NAME` makes one")
        for i in items:
            first = i.message.split("\n", 1)[0]  # git's subject: a CR does not end it
            app.output.say("[yellow]{}[/] {} [green]{}[/] {}", i.commit[:12], i.time, i.name or "", first)

    app.output.result("checkpoint_list", {"vault": vault.name, "fork": fork, "checkpoints": items}, human)


def restore(app: App, rev: str, expect_head: str | None) -> None:
    """`avfs checkpoint restore`'s body: its click command calls it, and so does the path without click (:mod:`.fastcli`)."""
    from ..core.operations import checkpoint as cp

    vault, fork = app.target()
    res = cp.restore(vault, fork, rev, expect_head=expect_head)

    def human() -> None:
        app.output.say("{}:{} is at {} ({})", vault.name, fork, res.commit[:12], rev)
        if res.recovery_ref:
            app.output.info("uncheckpointed changes kept at {}", res.recovery_ref)
        app.output.info("undo with `avfs undo` (operation {})", res.op_id)

    app.output.result("restore", {"restore": res}, human)


def delete(app: App, name: str) -> None:
    """`avfs checkpoint delete`'s body: its click command calls it, and so does the path without click (:mod:`.fastcli`)."""
    from ..core.operations import checkpoint as cp

    vault, fork = app.target()
    op = cp.delete_checkpoint(vault, fork, name)
    app.output.result(
        "operation",
        {"vault": vault.name, "fork": fork, "operation": op},
        lambda: app.output.info("{}", op.summary),
    )


def scope(app: App) -> str | None:
    """The fork whose operations `undo`, `redo` and `op log` act on: the one the selection
    names (the fork mounted where the command runs, or --vault VAULT:FORK); None (the whole
    vault) when it names only a vault."""
    spec = app.spec
    if spec is None or ":" not in spec:
        return None
    _, fork = app.target()
    return fork


def op_log(app: App, limit: int) -> None:
    """`avfs op log`'s body: its click command calls it, and so does the path without click (:mod:`.fastcli`)."""
    from .app import check_count

    check_count(limit, "operations")
    vault, _ = app.target()
    ops = vault.oplog.recent(limit, fork=scope(app))

    def human() -> None:
        for o in ops:
            mark = app.output.markup(" [dim](undone by {})[/]", o.undone_by) if o.undone_by else ""
            app.output.say("[yellow]{:>5}[/] {} {:<18} {}" + mark, o.id, o.time, o.kind, o.summary)

    app.output.result("op_log", {"vault": vault.name, "operations": ops}, human)


def _render_undo(app: App, res: UndoResult, verb: str) -> None:
    def human() -> None:
        app.output.say("{} operation {}: {}", verb, res.undone.id, res.undone.summary)
        if res.recovery_ref:
            app.output.info("uncheckpointed changes kept at {}", res.recovery_ref)

    app.output.result(
        "undo",
        {
            "undone": res.undone,
            "op_id": res.op_id,
            "recovery_ref": res.recovery_ref,
            "kept_open": res.kept_open,
        },
        human,
    )


def undo(app: App, op_id: int | None) -> None:
    """`avfs undo`'s body: its click command calls it, and so does the path without click (:mod:`.fastcli`)."""
    from ..core.operations import checkpoint as cp

    vault, _ = app.target()
    res = cp.undo(vault, op_id, fork=None if op_id is not None else scope(app))
    _render_undo(app, res, "undid")


def redo(app: App) -> None:
    """`avfs redo`'s body: its click command calls it, and so does the path without click (:mod:`.fastcli`)."""
    from ..core.operations import checkpoint as cp

    vault, _ = app.target()
    res = cp.redo(vault, fork=scope(app))
    _render_undo(app, res, "redid")
