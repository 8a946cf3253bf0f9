"""`avfs checkpoint save|list|restore|delete`, `avfs op log`, `avfs undo`."""

from __future__ import annotations

import click

from .app import COUNT_OPTS, App, pass_app
from .forkcmds import save
from .opcmds import delete, list_checkpoints, op_log, redo, restore, undo


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
@click.option(*COUNT_OPTS, "limit", type=int, default=100, help="At most N.")
@pass_app
def list_cmd(app: App, all_commits: bool, limit: int) -> None:
    """List the fork's named checkpoints (newest first)."""
    list_checkpoints(app, all_commits, limit)


@checkpoint.command("restore")
@click.argument("rev")
@click.option(
    "--expect-head",
    metavar="REV",
    help="Only if the fork's branch is at REV now (else exit 1, expect_mismatch; nothing done).",
)
@pass_app
def restore_cmd(app: App, rev: str, expect_head: str | None) -> None:
    """Move the fork back to REV. Nothing is lost: `avfs undo` brings the state back.

    While git in a mount of the fork has a rebase, merge, cherry-pick, revert or bisect
    open, the restore refuses (`git_in_progress`, exit 75): its end would move the branch
    again. A HEAD only detached does not stop it. A file a program holds open for writing
    in the fork's overlay mount is left as it is, the program's (named on stderr and, with
    --json, in `kept_open`)."""
    restore(app, rev, expect_head)


@checkpoint.command("delete")
@click.argument("name")
@pass_app
def delete_cmd(app: App, name: str) -> None:
    """Delete a checkpoint's name (the commit stays in the fork's history)."""
    delete(app, name)


@click.group()
def op() -> None:
    """The operation log (every mutating action, undoable)."""


@op.command("log")
@click.option(*COUNT_OPTS, "limit", type=int, default=50, help="At most N operations.")
@pass_app
def op_log_cmd(app: App, limit: int) -> None:
    """List the vault's operations, newest first.

    Inside a fork's mount (or with --vault VAULT:FORK) only the operations that touched that
    fork; with --vault VAULT, every operation of the vault."""
    op_log(app, limit)


@click.command("undo")
@click.option(
    "--op", "--op-id", "op_id", type=int, default=None, help="Undo this operation (default: the last one)."
)
@pass_app
def undo_cmd(app: App, op_id: int | None) -> None:
    """Undo the last operation (or --op ID); undo is an operation too.

    Inside a fork's mount (or with --vault VAULT:FORK) the last operation that touched that
    fork; with --vault VAULT, the vault's last operation. A second undo walks one operation
    further back. `avfs redo` undoes the last undo (as does `avfs undo --op ID` of the undo's
    ID, shown by `avfs op log`). While git in a mount of the fork has a rebase, merge,
    cherry-pick, revert or bisect open (or its HEAD off the fork's branch), the undo
    refuses (`git_in_progress`, exit 75), as a checkpoint does: finish it or give it up
    first. The undo of a checkpoint leaves staged what git had staged as it recorded it. A
    file a program holds open for writing in the fork's overlay mount is left as it is
    (--json: `kept_open`)."""
    undo(app, op_id)


@click.command("redo")
@pass_app
def redo_cmd(app: App) -> None:
    """Redo what the last `avfs undo` undid (an undo of that undo).

    Scoped as `avfs undo` is: inside a fork's mount, that fork's last undo. Successive redos
    walk forward as successive undos walked back; a redo can itself be undone. What the
    undo left staged stays staged (as git's `reset --soft` there and back)."""
    redo(app)
