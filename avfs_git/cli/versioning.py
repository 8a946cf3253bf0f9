"""`avfs status | log | diff | checkout | revert`."""

from __future__ import annotations

import click

from ..core.types import ChangeStatus
from .main import App, pass_app

_LETTER = {
    ChangeStatus.ADDED: "A",
    ChangeStatus.MODIFIED: "M",
    ChangeStatus.DELETED: "D",
    ChangeStatus.RENAMED: "R",
    ChangeStatus.TYPE_CHANGED: "T",
}
_COLOUR = {"A": "green", "M": "yellow", "D": "red", "R": "cyan", "T": "magenta"}


@click.command("status")
@click.option(
    "--ignored", "list_ignored", is_flag=True, help="Also list the paths git ignores (never checkpointed)."
)
@pass_app
def status_cmd(app: App, list_ignored: bool) -> None:
    """Uncheckpointed changes of the fork (its overlay against its base commit).

    Paths git ignores (.gitignore, the vault's info/exclude, core.excludesFile) are not
    changes: they are counted, and listed with --ignored."""
    vault, fork = app.target()
    ws = vault.workspace(fork)
    changes, ignored = ws.status_ignored()
    data = {
        "vault": vault.name,
        "fork": fork,
        **ws.status_report(changes, ignored, list_ignored=list_ignored),
    }
    tip = data["head"]

    def human() -> None:
        o = app.output
        o.say("on [bold]{}:{}[/] at {}", vault.name, fork, ws.base[:12])
        if tip != ws.base:
            o.say(
                "[yellow]the fork moved to {} since; checkpoint will stop until you restore or merge[/]",
                str(tip)[:12],
            )
        mg = data["merge"]
        if isinstance(mg, dict):
            left = mg["unresolved"]
            o.say("merging {} ({}): {} path(s) unresolved", mg["source"], mg["theirs"][:12], len(left))
            for p in left:
                o.say("  unresolved: {}", p)
            o.say("resolve them, then `avfs merge --continue` (or `avfs merge --abort`)")
        if not changes:
            o.say("nothing changed since the last checkpoint")
        for c in changes:
            letter = _LETTER[c.status]
            mark = "[" + _COLOUR[letter] + "]" + letter + "[/] "  # markup of our own
            if c.old_path:
                o.say(mark + "{} -> {}", c.old_path, c.path)
            else:
                o.say(mark + "{}", c.path)
        if list_ignored:
            for p in ignored.files:
                o.plain("! {}", p)
        elif ignored.files:
            o.say("{} ignored path(s) (`avfs status --ignored` lists them)", len(ignored.files))

    app.output.result("status", data, human)


@click.command("log")
@click.option(
    "--all", "all_forks", is_flag=True, help="Every fork's commits, not only this fork's first-parent line."
)
@click.option("-n", "--max-count", "limit", type=int, default=None, help="Show at most N commits.")
@click.option("--oneline", is_flag=True, help="One line per commit.")
@click.argument("rev", required=False)
@pass_app
def log_cmd(app: App, all_forks: bool, limit: int | None, oneline: bool, rev: str | None) -> None:
    """Checkpoints (commits) of the fork, newest first."""
    from ..core import history

    vault, fork = app.target()
    commits = history.log(vault, fork, all_forks=all_forks, limit=limit, rev=rev)

    def human() -> None:
        o = app.output
        for c in commits:
            names_ = o.markup(" [green]({})[/]", ", ".join(c.checkpoints)) if c.checkpoints else ""
            first = c.message.split("\n", 1)[0]  # git's subject: a CR does not end it
            if oneline:
                o.say("[yellow]{}[/]" + names_ + " {}", c.id[:12], first)
            else:
                o.say("[yellow]commit {}[/]" + names_, c.id)
                o.say("Author: {} <{}>", c.author, c.author_email)
                o.say("Date:   {}\n", c.time)
                for line in c.message.rstrip("\n").split("\n"):
                    o.say("    {}", line)
                o.say()

    app.output.result("log", {"vault": vault.name, "fork": fork, "all": all_forks, "commits": commits}, human)


@click.command("diff")
@click.argument("revs", nargs=-1)
@click.option("--stat", "stat", is_flag=True, help="Per-file line counts.")
@click.option("--name-status", is_flag=True, help="Status letter and path per change.")
@click.option("--path", "paths", multiple=True, help="Only changes at or below this path (repeatable).")
@click.option("-U", "--unified", "context", type=int, default=3, help="Lines of context.")
@pass_app
def diff_cmd(
    app: App, revs: tuple[str, ...], stat: bool, name_status: bool, paths: tuple[str, ...], context: int
) -> None:
    """Show changes: workspace vs base (no REV), REV vs workspace, or REV1 vs REV2."""
    from ..core import history
    from ..core.errors import UsageError

    if len(revs) > 2:
        raise UsageError("give at most two revisions")
    vault, fork = app.target()
    old = revs[0] if revs else None
    new = revs[1] if len(revs) > 1 else None
    result = history.diff(vault, fork, old, new, list(paths))
    if app.json:
        data: dict[str, object] = {
            "vault": vault.name,
            "fork": fork,
            "old": result.old,
            "new": result.new,
            "changes": result.changes,
        }
        if stat:
            data["stat"] = [
                {"path": p, "insertions": i, "deletions": d, "binary": b}
                for p, i, d, b in history.diff_stat(vault, result, fork)
            ]
        elif not name_status:
            with app.output.progress("diff") as progress:
                data["patch"] = history.patch_text(vault, result, fork, context, progress)
        app.output.document("diff", data)
        return
    if name_status:
        for c in result.changes:
            letter = _LETTER[c.status]
            if c.old_path:
                app.output.plain(letter + "\t{}\t{}", c.old_path, c.path)
            else:
                app.output.plain(letter + "\t{}", c.path)
    elif stat:
        from .output import shown

        rows = history.diff_stat(vault, result, fork)
        width = max((len(shown(p)) for p, *_ in rows), default=0)
        ti = td = 0
        for p, i, d, b in rows:
            ti += i
            td += d
            bar = "Bin" if b else f"{i + d} " + "+" * min(i, 40) + "-" * min(d, 40)
            app.output.plain(" {:<{width}} | {}", p, bar, width=width)
        app.output.plain(" {} files changed, {} insertions(+), {} deletions(-)", len(rows), ti, td)
    else:
        import sys

        with app.output.progress("diff") as progress:
            text = history.patch_text(vault, result, fork, context, progress)
        sys.stdout.write(text)


@click.command("checkout")
@click.argument("path")
@click.option("--from", "rev", required=True, help="Revision to take PATH from (checkpoint, fork, commit).")
@pass_app
def checkout_cmd(app: App, path: str, rev: str) -> None:
    """Bring PATH back from a revision into the workspace (undoable)."""
    from ..core import checkpoint as cp

    vault, fork = app.target()
    op = cp.checkout(vault, fork, path, rev)
    app.output.result(
        "operation",
        {"vault": vault.name, "fork": fork, "operation": op},
        lambda: app.output.info("{}", op.summary),
    )


@click.command("revert")
@click.argument("rev")
@click.option("-m", "--message", help="Commit message.")
@pass_app
def revert_cmd(app: App, rev: str, message: str | None) -> None:
    """Make a new checkpoint that undoes the changes REV made."""
    from ..core import checkpoint as cp

    vault, fork = app.target()
    res = cp.revert(vault, fork, rev, message)
    app.output.result(
        "checkpoint",
        {"checkpoint": res.checkpoint, "created": res.created, "op_id": res.op_id},
        lambda: app.output.say("reverted {}: new checkpoint {}", rev, res.checkpoint.commit[:12]),
    )
