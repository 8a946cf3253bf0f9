"""The bodies of `avfs status`, `log` and `diff`, and the lines they print in git's shapes.

Their click commands (:mod:`.versioning`) call them, and so does the path without click
(:mod:`.fastcli`): a cold process that parses a frequent command's arguments itself imports
neither click nor the command modules, and runs the same body, so the answer is the same.
This module imports no click.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from ..core.types import PLANTED_FILE, Change, ChangeStatus, CommitInfo, MergeDiff

if TYPE_CHECKING:
    from ..core.vaults.vault import Vault
    from .app import App

LETTER = {
    ChangeStatus.ADDED: "A",
    ChangeStatus.MODIFIED: "M",
    ChangeStatus.DELETED: "D",
    ChangeStatus.RENAMED: "R",
    ChangeStatus.TYPE_CHANGED: "T",
}
COLOUR = {"A": "green", "M": "yellow", "D": "red", "R": "cyan", "T": "magenta"}


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
            tracked.append((c.path, " " + LETTER[c.status]))
    return [f"{xy} {p}" for p, xy in sorted(tracked)] + [f"?? {p}" for p in sorted(new)]


def commit_human(app: App, c: CommitInfo, oneline: bool, graph: bool) -> None:
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
    o.say(bar + "Date:   {}", c.author_time or c.time)  # (git's: the author's)
    o.say(bar.rstrip())
    for line in c.message.rstrip("\n").split("\n"):
        o.say(bar + "    {}", line)
    o.say(bar.rstrip())


def print_stat(
    app: App,
    rows: list[tuple[str, int, int, bool]],
    changes: Sequence[Change],
    sizes: Callable[[Change], tuple[int, int]],
    quote: Callable[[str], str],
) -> None:
    """git's --stat (:func:`..core.operations.patchheads.stat_lines`): a line per file (a
    rename as ``OLD => NEW``, as git names it; it showed only the new name), then the
    totals. ``changes``: the diff's, in the order of ``rows``; ``sizes``: a binary file's
    two sides' sizes; ``quote``: how a name is shown (git's ``core.quotePath``:
    :func:`..core.operations.patchheads.path_quoting`)."""
    import shutil

    from ..core.operations import patchheads

    lines = patchheads.stat_lines(
        [
            (patchheads.stat_name(c.old_path, p, quote), i, d, b, *(sizes(c) if b else (0, 0)))
            for c, (p, i, d, b) in zip(changes, rows, strict=True)
        ],
        shutil.get_terminal_size((80, 24)).columns,  # (git's term_columns: COLUMNS, the tty, else 80)
    )
    for line in lines:
        app.output.raw(line + "\n")


def commit_patch(
    app: App,
    vault: Vault,
    fork: str | None,
    c: CommitInfo,
    context: int,
    stat: bool = False,
    merges: MergeDiff = MergeDiff.FIRST_PARENT,
) -> bool:
    """What commit ``c`` changed, as git shows it (:mod:`..core.operations.showdiff`): a
    patch, or with ``stat`` git's --stat lines, against its first parent; a root commit's
    only while ``log.showroot`` is on; a merge's as ``merges`` says (git's --cc,
    against its first parent, or nothing). Whether it printed anything."""
    from ..core.operations import history, patchheads, showdiff

    if not c.parents and not showdiff.show_root(vault.store):
        return False
    if len(c.parents) > 1:
        if merges == MergeDiff.NONE:
            return False
        if merges == MergeDiff.COMBINED and not stat:  # (git's show --stat: the first parent's)
            text = showdiff.combined_patch(vault, c.id, fork)
            app.output.raw(text)
            sys.stdout.flush()
            return bool(text)
    result = history.commit_diff(vault, c.id, fork)
    if stat:
        print_stat(
            app,
            history.diff_stat(vault, result),
            result.changes,
            lambda x: history.side_sizes(vault, result, None, x),
            patchheads.path_quoting(vault.store),
        )
        return bool(result.changes)
    text = history.patch_text(vault, result, None, context)
    app.output.raw(text)
    sys.stdout.flush()
    return bool(text)


def status(app: App, list_ignored: bool, short: bool, branch: bool) -> None:
    """`avfs status`'s body: its click command calls it, and so does the path without click (:mod:`.fastcli`)."""
    vault, fork = app.target()
    ws = vault.workspace(fork)
    changes, ignored = ws.status_ignored()
    data = {
        "vault": vault.name,
        "fork": fork,
        **ws.status_report(changes, ignored, list_ignored=list_ignored),
    }
    if os.path.exists(os.path.join(ws.state_dir, PLANTED_FILE)):  # (no import while there is none)
        from ..core.workspace import planted

        data.update(planted.report(ws.state_dir))  # what proxy exec set aside of planted repositories
    tip = data["head"]
    ws_left: list[dict[str, str]] = data["not_recorded"]  # type: ignore[assignment]
    listed: list[str] = data.get("ignored_paths", [])  # type: ignore[assignment]

    def human_short() -> None:
        if branch:
            app.output.plain("## {}", fork)
        for line in short_lines(changes, lambda d: vault.store.tree_lookup(ws.base_tree, d) is not None):
            app.output.plain("{}", line)
        if list_ignored:
            for p in listed:
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
            if left:
                o.say("resolve them, then `avfs merge --continue` (or `avfs merge --abort`)")
            else:  # (it said "0 path(s) unresolved", then "resolve them")
                o.say(
                    "all resolved: `avfs merge --continue` makes the merge commit (or `avfs merge --abort`)"
                )
        if not changes:
            o.say("nothing changed since the last checkpoint")
        for c in changes:
            letter = LETTER[c.status]
            mark = "[" + COLOUR[letter] + "]" + letter + "[/] "  # markup of our own
            if c.old_path:
                o.say(mark + "{} -> {}", c.old_path, c.path)
            else:
                o.say(mark + "{}", c.path)
        if list_ignored:
            for p in listed:
                o.plain("! {}", p)
        elif ignored.files:
            o.say("{} ignored path(s) (`avfs status --ignored` lists them)", data["ignored"])
        for nr in ws_left:
            o.say("[yellow]not recorded: {}[/] ({})", nr["path"], nr["reason"])
        planted_list: list[dict[str, str]] = data.get("planted_git_dirs", [])  # type: ignore[assignment]
        for pg in planted_list:
            o.say("[yellow]set aside: {} -> {}[/] ({})", pg["path"], pg["moved_to"], pg["found"])

    app.output.result("status", data, human_short if short else human)


def log(
    app: App,
    all_forks: bool,
    limit: int | None,
    oneline: bool,
    patch: bool,
    graph: bool,
    stat: bool,
    rev: str | None,
) -> None:
    """`avfs log`'s body: its click command calls it, and so does the path without click (:mod:`.fastcli`)."""
    from ..core.errors import UsageError
    from ..core.operations import history

    if graph and all_forks:
        raise UsageError(
            "--graph draws one fork's line; --all has branches avfs does not draw",
            hint='git --git-dir "$(avfs vault path)" log --graph --all --oneline',
        )
    from .app import check_count

    check_count(limit, "commits")
    vault, fork = app.target()
    commits = history.log(vault, fork, all_forks=all_forks, limit=limit, rev=rev)
    # a merge's diff: against its first parent in a fork's first-parent line (git's log
    # --first-parent), none in a walk through every parent (git's log -p)
    line = not all_forks and (rev is None or history.split_range(rev) is None)
    merges = MergeDiff.FIRST_PARENT if line else MergeDiff.NONE

    def human() -> None:
        for c in commits:
            commit_human(app, c, oneline, graph)
            shown = (patch or stat) and commit_patch(
                app, vault, fork, c, 3, stat=stat and not patch, merges=merges
            )
            if shown and not oneline:  # (git's: a blank line after a diff, none where there is none)
                app.output.say()

    app.output.result("log", {"vault": vault.name, "fork": fork, "all": all_forks, "commits": commits}, human)


def diff(
    app: App,
    revs: tuple[str, ...],
    stat: bool,
    name_status: bool,
    paths: tuple[str, ...],
    context: int,
    cached: bool,
) -> None:
    """`avfs diff`'s body: its click command calls it, and so does the path without click (:mod:`.fastcli`)."""
    from ..core.errors import UsageError
    from ..core.operations import history, patchheads

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
        quote = patchheads.path_quoting(vault.store)
        for c in result.changes:
            letter = LETTER[c.status]
            if patchheads.exact_rename(c):  # (git's score: 100, the content the same)
                letter += "100"
            elif c.path in result.similarity:  # (git's score of similar content: R085)
                letter += f"{result.similarity[c.path]:03d}"
            # (names as git quotes them: control bytes escaped, so raw is safe to print)
            names = (c.old_path, c.path) if c.old_path else (c.path,)
            app.output.raw("\t".join([letter, *map(quote, names)]) + "\n")
    elif stat:
        print_stat(
            app,
            history.diff_stat(vault, result, fork),
            result.changes,
            lambda c: history.side_sizes(vault, result, fork, c),
            patchheads.path_quoting(vault.store),
        )
    else:
        with app.output.progress("diff") as progress:
            text = history.patch_text(vault, result, fork, context, progress)
        app.output.raw(text)
