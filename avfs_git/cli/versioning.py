"""`avfs status | log | show | diff | checkout | revert`, in git's shapes."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import click

from ..core.types import Change, ChangeStatus, CommitInfo
from .app import App, pass_app

if TYPE_CHECKING:
    from ..core.vaults.vault import Vault

_LETTER = {
    ChangeStatus.ADDED: "A",
    ChangeStatus.MODIFIED: "M",
    ChangeStatus.DELETED: "D",
    ChangeStatus.RENAMED: "R",
    ChangeStatus.TYPE_CHANGED: "T",
}
_COLOUR = {"A": "green", "M": "yellow", "D": "red", "R": "cyan", "T": "magenta"}


def short_lines(changes: list[Change], in_base: Callable[[str], bool]) -> list[str]:
    """``git status -s`` lines of a fork's changes, as git prints them in a checkout of the
    base whose worktree holds the changes: nothing is staged (a fork has no index), so a
    modification is `` M``, a deletion `` D``, a type change `` T``, a new path ``??`` (after
    the tracked ones, as git orders them), under its topmost directory the base does not
    have (``?? dir/``, git's ``--untracked-files=normal``); a rename is its deletion and its
    new path, as git sees an unstaged one. ``in_base(dir)``: the base tree has ``dir``."""
    tracked: list[tuple[str, str]] = []
    new: set[str] = set()

    def untracked(path: str) -> str:
        parts = path.split("/")
        for i in range(1, len(parts)):
            d = "/".join(parts[:i])
            if not in_base(d):
                return d + "/"
        return path

    for c in changes:
        if c.status is ChangeStatus.ADDED:
            new.add(untracked(c.path))
        elif c.status is ChangeStatus.RENAMED:
            if c.old_path:
                tracked.append((c.old_path, " D"))
            new.add(untracked(c.path))
        else:
            tracked.append((c.path, " " + _LETTER[c.status]))
    return [f"{xy} {p}" for p, xy in sorted(tracked)] + [f"?? {p}" for p in sorted(new)]


@click.command("status")
@click.option(
    "--ignored", "list_ignored", is_flag=True, help="Also list the paths git ignores (never checkpointed)."
)
@click.option(
    "-s",
    "--short",
    "--porcelain",
    "short",
    is_flag=True,
    help="One `XY PATH` line per change, as `git status -s` prints in a checkout of the base (nothing staged).",
)
@click.option("-b", "--branch", "branch", is_flag=True, help="With -s: a `## FORK` line first, as git's.")
@pass_app
def status_cmd(app: App, list_ignored: bool, short: bool, branch: bool) -> None:
    """Uncheckpointed changes of the fork (its overlay against its base commit).

    Paths git ignores (.gitignore, the vault's info/exclude, core.excludesFile) are not
    changes: they are counted, and listed with --ignored. What no checkpoint records (a
    name git refuses, a fifo, a tree deeper than the host's paths reach) is listed as not
    recorded."""
    vault, fork = app.target()
    ws = vault.workspace(fork)
    changes, ignored = ws.status_ignored()
    data = {
        "vault": vault.name,
        "fork": fork,
        **ws.status_report(changes, ignored, list_ignored=list_ignored),
    }
    tip = data["head"]
    ws_left: list[dict[str, str]] = data["not_recorded"]  # type: ignore[assignment]

    def human_short() -> None:
        if branch:
            app.output.plain("## {}", fork)
        for line in short_lines(changes, lambda d: vault.store.tree_lookup(ws.base_tree, d) is not None):
            app.output.plain("{}", line)
        if list_ignored:
            for p in ignored.files:
                app.output.plain("!! {}", p)

    def human() -> None:
        from ..core.store import refs

        o = app.output
        o.say("on [bold]{}:{}[/] at {}", vault.name, fork, ws.base[:12])
        if tip != ws.base:
            o.say(
                "[yellow]the fork moved to {} since; checkpoint will stop until you restore or merge[/]",
                str(tip)[:12],
            )
        gs = data.get("git")
        if isinstance(gs, dict):
            if gs["in_progress"]:
                o.say(
                    "[yellow]a git {} is in progress in the mount[/]: checkpoints wait for it",
                    gs["in_progress"],
                )
            if gs["detached"]:
                o.say(
                    "[yellow]git's HEAD is detached at {}[/] (not on fork {}): `{}` goes back",
                    str(gs["detached"])[:12],
                    fork,
                    refs.switch_back(vault.path, fork),
                )
            elif gs["head"] != refs.fork_ref(fork):
                o.say(
                    "[yellow]git's HEAD is on {}[/], not on fork {}: `{}` goes back",
                    str(gs["head"]),
                    fork,
                    refs.switch_back(vault.path, fork),
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
            o.say("{} ignored path(s) (`avfs status --ignored` lists them)", data["ignored"])
        for nr in ws_left:
            o.say("[yellow]not recorded: {}[/] ({})", nr["path"], nr["reason"])

    app.output.result("status", data, human_short if short else human)


class _GitCountCommand(click.Command):
    """A command that takes git's ``-N`` for ``--max-count=N`` (``avfs log -3``)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        out: list[str] = []
        for i, a in enumerate(args):
            if a == "--":
                out.extend(args[i:])
                break
            out.append(f"--max-count={a[1:]}" if re.fullmatch(r"-[0-9]+", a) else a)
        return super().parse_args(ctx, out)


def _commit_human(app: App, c: CommitInfo, oneline: bool, graph: bool) -> None:
    o = app.output
    names_ = o.markup(" [green]({})[/]", ", ".join(c.checkpoints)) if c.checkpoints else ""
    first = c.message.split("\n", 1)[0]  # git's subject: a CR does not end it
    star, bar = ("* ", "| ") if graph else ("", "")
    if oneline:
        o.say(star + "[yellow]{}[/]" + names_ + " {}", c.id[:12], first)
        return
    o.say(star + "[yellow]commit {}[/]" + names_, c.id)
    if len(c.parents) > 1:
        o.say(bar + "Merge: {}", " ".join(p[:12] for p in c.parents))
    o.say(bar + "Author: {} <{}>", c.author, c.author_email)
    o.say(bar + "Date:   {}", c.time)
    o.say(bar.rstrip())
    for line in c.message.rstrip("\n").split("\n"):
        o.say(bar + "    {}", line)
    o.say(bar.rstrip())


def _print_stat(app: App, rows: list[tuple[str, int, int, bool]], changes: Sequence[Change]) -> None:
    """git's --stat: a line per file (a rename as ``OLD => NEW``, as git names it; it showed
    only the new name), then the totals. ``changes``: the diff's, in the order of ``rows``."""
    from .output import shown

    labels = [f"{c.old_path} => {p}" if c.old_path else p for c, (p, *_) in zip(changes, rows, strict=True)]
    width = max((len(shown(label)) for label in labels), default=0)
    ti = td = 0
    for label, (_, i, d, b) in zip(labels, rows, strict=True):
        ti += i
        td += d
        bar = "Bin" if b else f"{i + d} " + "+" * min(i, 40) + "-" * min(d, 40)
        app.output.plain(" {:<{width}} | {}", label, bar, width=width)
    # git's summary: singular for one, and a zero count left out (both, when only modes changed)
    summary = " {} file changed" if len(rows) == 1 else " {} files changed"
    args: list[int] = [len(rows)]
    if ti:
        summary += ", {} insertion(+)" if ti == 1 else ", {} insertions(+)"
        args.append(ti)
    if td:
        summary += ", {} deletion(-)" if td == 1 else ", {} deletions(-)"
        args.append(td)
    app.output.plain(summary, *args)


def _commit_patch(
    app: App, vault: Vault, fork: str | None, commit: str, context: int, stat: bool = False
) -> None:
    """What ``commit`` changed against its first parent: a patch, or with ``stat`` git's
    --stat lines."""
    from ..core.operations import history

    result = history.commit_diff(vault, commit, fork)
    if stat:
        _print_stat(app, history.diff_stat(vault, result), result.changes)
        return
    app.output.raw(history.patch_text(vault, result, None, context))
    sys.stdout.flush()


@click.command("log", cls=_GitCountCommand)
@click.option(
    "--all", "all_forks", is_flag=True, help="Every fork's commits, not only this fork's first-parent line."
)
@click.option("-n", "--max-count", "limit", type=int, default=None, help="Show at most N commits (or -N).")
@click.option("--oneline", is_flag=True, help="One line per commit.")
@click.option("-p", "--patch", "patch", is_flag=True, help="Each commit's diff against its first parent.")
@click.option("--graph", is_flag=True, help="Draw the fork's first-parent line (`*` per commit).")
@click.option("--stat", "stat", is_flag=True, help="Each commit's per-file line counts.")
@click.argument("rev", required=False)
@pass_app
def log_cmd(
    app: App,
    all_forks: bool,
    limit: int | None,
    oneline: bool,
    patch: bool,
    graph: bool,
    stat: bool,
    rev: str | None,
) -> None:
    """Checkpoints (commits) of the fork, newest first.

    REV starts the walk there (`HEAD~3`, a checkpoint, a fork); `A..B` lists the commits
    B has and A has not, `A...B` those either has and not both, as `git log` does.
    -p and --graph shape the human output; --json lists the commits (`avfs diff` gives
    their patches)."""
    from ..core.errors import UsageError
    from ..core.operations import history

    if graph and all_forks:
        raise UsageError(
            "--graph draws one fork's line; --all has branches avfs does not draw",
            hint='git --git-dir "$(avfs vault path)" log --graph --all --oneline',
        )
    vault, fork = app.target()
    commits = history.log(vault, fork, all_forks=all_forks, limit=limit, rev=rev)

    def human() -> None:
        for c in commits:
            _commit_human(app, c, oneline, graph)
            if patch or stat:
                _commit_patch(app, vault, fork, c.id, 3, stat=stat and not patch)
                if not oneline:
                    app.output.say()

    app.output.result("log", {"vault": vault.name, "fork": fork, "all": all_forks, "commits": commits}, human)


@click.command("show")
@click.argument("spec", required=False, default="HEAD", metavar="[REV | REV:PATH]")
@click.option("--stat", "stat", is_flag=True, help="Per-file line counts instead of the patch.")
@pass_app
def show_cmd(app: App, spec: str, stat: bool) -> None:
    """A commit with its patch (REV, default HEAD), or a file as it was (REV:PATH), as
    `git show` does. --json: the commit as a `log` document, or the file as `file_content`."""
    from ..core.errors import RevisionNotFoundError
    from ..core.operations import history

    vault, fork = app.target()
    try:
        commit = history.resolve(vault, spec, fork)
    except RevisionNotFoundError:
        rev, sep, path = spec.partition(":")
        if not sep:
            raise
        data = history.read_at(vault, fork, rev or "HEAD", path)
        from .files import file_entry

        if app.json:
            app.output.document(
                "file_content", {"vault": vault.name, "fork": fork, "files": [file_entry(path, data)]}
            )
            return
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    info = history.commit_info(vault.store.commit(commit), history.checkpoint_names(vault, fork))

    def human() -> None:
        _commit_human(app, info, False, False)
        _commit_patch(app, vault, fork, commit, 3, stat=stat)

    app.output.result("log", {"vault": vault.name, "fork": fork, "all": False, "commits": [info]}, human)


@click.command("diff")
@click.argument("revs", nargs=-1, metavar="[REV | REV REV | A..B | A...B] [-- PATH...]")
@click.option("--stat", "stat", is_flag=True, help="Per-file line counts.")
@click.option("--name-status", is_flag=True, help="Status letter and path per change.")
@click.option("--path", "paths", multiple=True, help="Only changes at or below this path (repeatable).")
@click.option("-U", "--unified", "context", type=int, default=3, help="Lines of context.")
@click.option(
    "--cached",
    "--staged",
    "cached",
    is_flag=True,
    help="Accepted for git's habit: there is no index, a checkpoint takes the workspace as it is.",
)
@pass_app
def diff_cmd(
    app: App,
    revs: tuple[str, ...],
    stat: bool,
    name_status: bool,
    paths: tuple[str, ...],
    context: int,
    cached: bool,
) -> None:
    """Show changes: workspace vs base (no REV), REV vs workspace, or REV1 vs REV2.

    git's forms work: `HEAD~1`, `A..B` (A vs B), `A...B` (their merge base vs B), and
    paths after `--` (`avfs diff HEAD~1 -- src/`). --cached/--staged change nothing: every
    change is in the next checkpoint, so they show what `avfs diff` shows."""
    from ..core.errors import UsageError
    from ..core.operations import history

    del cached
    raw = app.output.argv
    if "--" in raw:  # `avfs diff [REV] -- PATH...`: the arguments after `--` are paths
        after = raw[raw.index("--") + 1 :]
        revs, paths = revs[: len(revs) - len(after)], (*paths, *after)
    if len(revs) > 2:
        raise UsageError("give at most two revisions", hint="paths go after `--`: avfs diff REV -- PATH")
    vault, fork = app.target()
    old = revs[0] if revs else None
    new = revs[1] if len(revs) > 1 else None
    span = history.diff_range(vault, old, fork) if old is not None else None
    if span is not None:
        if new is not None:
            raise UsageError("give a range (A..B) or two revisions, not both")
        old, new = span
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
        _print_stat(app, history.diff_stat(vault, result, fork), result.changes)
    else:
        with app.output.progress("diff") as progress:
            text = history.patch_text(vault, result, fork, context, progress)
        app.output.raw(text)


@click.command("checkout")
@click.argument("args", nargs=-1, metavar="[FORK | [REV] -- PATH | PATH --from REV]")
@click.option("--from", "rev", metavar="REV", help="Revision to take PATH from (checkpoint, fork, commit).")
@click.option("-b", "new_fork", metavar="NEW", help="Fork the selected fork as NEW and switch to it.")
@pass_app
def checkout_cmd(app: App, args: tuple[str, ...], rev: str | None, new_fork: str | None) -> None:
    """Switch forks, or bring a path back from a revision (undoable), as `git checkout`.

    `avfs checkout FORK` makes FORK the selected fork (as `avfs vault use VAULT:FORK`);
    `-b NEW` forks the selected fork first. `avfs checkout REV -- PATH` (REV defaults to
    HEAD: drop the path's uncheckpointed changes) and `avfs checkout PATH --from REV`
    bring PATH back as it was at REV."""
    from ..core.errors import UsageError
    from ..core.operations import checkpoint as cp

    vault, fork = app.target()
    raw = app.output.argv
    paths: tuple[str, ...] = ()
    if "--" in raw:
        after = raw[raw.index("--") + 1 :]
        args, paths = args[: len(args) - len(after)], tuple(after)
    if new_fork is not None or (not paths and rev is None):
        if new_fork is not None:
            if args or paths or rev:
                raise UsageError("-b NEW takes no other argument", hint="avfs checkout -b NEW")
            vault.create_fork(fork, new_fork)
            target = new_fork
        elif len(args) == 1 and vault.has_fork(args[0]):
            target = args[0]
        else:
            shown = " ".join(args)
            raise UsageError(
                f"`avfs checkout {shown}`: not a fork of vault {vault.name}"
                if args
                else "avfs checkout: give the fork to switch to, or a path to take back",
                hint="switch forks: avfs checkout FORK (new: -b NEW); take a path back:"
                " avfs checkout REV -- PATH",
                details={"args": list(args), "forks": vault.fork_names()},
            )
        vname, _ = app.home.use(f"{vault.name}:{target}")
        app.output.result(
            "vault_use",
            {"vault": vname, "fork": target},
            lambda: app.output.info("switched to fork {}:{}", vname, target),
        )
        spec_fork = app.vault_spec.partition(":")[2] if app.vault_spec else ""
        if spec_fork and spec_fork != target:
            # `proj` alone follows the vault's default fork, which the switch moved; a fork
            # named in --vault/AVFS_VAULT does not
            app.output.warn(
                "--vault/AVFS_VAULT names {}: commands given it still act on that fork"
                " (give --vault {}:{}, or unset AVFS_VAULT)",
                app.vault_spec,
                vname,
                target,
            )
        return
    if paths:
        if rev is not None or len(args) > 1:
            raise UsageError(
                "give the revision before `--` or with --from, once", hint="avfs checkout REV -- PATH"
            )
        rev = args[0] if args else "HEAD"
    else:
        paths = args
    if len(paths) != 1:
        raise UsageError("give one path", hint="avfs checkout REV -- PATH")
    assert rev is not None
    op = cp.checkout(vault, fork, paths[0], rev)
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
    from ..core.operations import checkpoint as cp

    vault, fork = app.target()
    res = cp.revert(vault, fork, rev, message)
    app.output.result(
        "checkpoint",
        {"checkpoint": res.checkpoint, "created": res.created, "op_id": res.op_id},
        lambda: app.output.say("reverted {}: new checkpoint {}", rev, res.checkpoint.commit[:12]),
    )
