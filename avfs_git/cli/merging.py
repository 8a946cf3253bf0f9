"""`avfs merge` (its body: :mod:`.mergecmds`)."""

from __future__ import annotations

import click

from .app import App, pass_app
from .mergecmds import merge


@click.command("merge")
@click.argument("sources", nargs=-1, metavar="SOURCE...")
@click.option("--into", "target", metavar="FORK", help="The fork to merge into (default: the selected fork).")
@click.option("--no-ff", is_flag=True, help="Make a merge commit even when a fast-forward would do.")
@click.option(
    "--dry-run", is_flag=True, help="Say what would happen (fast-forward, clean, conflicts); change nothing."
)
@click.option("--ours", "favor", flag_value="ours", help="Resolve text conflicts in favour of the target.")
@click.option(
    "--theirs", "favor", flag_value="theirs", help="Resolve text conflicts in favour of the source."
)
@click.option(
    "--write-conflicts",
    is_flag=True,
    help="Write conflict markers into the target's workspace to resolve by hand, then --continue.",
)
@click.option("--allow-unrelated", is_flag=True, help="Merge forks that share no history.")
@click.option(
    "--no-capture",
    is_flag=True,
    help="Refuse when a side has uncheckpointed changes (default: checkpoint them).",
)
@click.option("-m", "--message", help="The merge commit's message.")
@click.option("--continue", "cont", is_flag=True, help="Commit a merge whose written conflicts are resolved.")
@click.option(
    "--abort", is_flag=True, help="Give up a merge whose conflicts were written (exact pre-merge state)."
)
@click.option(
    "--expect-head",
    metavar="REV",
    help="Only if the target's branch is at REV now (else exit 1, expect_mismatch; nothing done).",
)
@pass_app
def merge_cmd(
    app: App,
    sources: tuple[str, ...],
    target: str | None,
    no_ff: bool,
    dry_run: bool,
    favor: str | None,
    write_conflicts: bool,
    allow_unrelated: bool,
    no_capture: bool,
    message: str | None,
    cont: bool,
    abort: bool,
    expect_head: str | None,
) -> None:
    """Merge forks into a fork: fast-forward, or a three-way merge commit with two parents.

    Conflicts are data: nothing moves and the command exits 3, listing each conflict's path,
    kind and the ancestor/ours/theirs ids (or, with --write-conflicts, the target's workspace
    gets conflict markers to resolve, then `merge --continue`). Several sources merge one
    after the other, stopping at the first conflict. A SOURCE is a fork, or a fetched
    remote branch (`origin/agent2`). Undo with `avfs undo`. A file a program holds open for
    writing in the target's overlay mount is left as it is (--json: each result's
    `kept_open`). While git in a mount of the target has a rebase, merge, cherry-pick,
    revert or bisect open, the merge refuses (`git_in_progress`, exit 75): its end would
    move the branch again.
    """
    code = merge(
        app,
        sources,
        target,
        no_ff,
        dry_run,
        favor,
        write_conflicts,
        allow_unrelated,
        no_capture,
        message,
        cont,
        abort,
        expect_head,
    )
    if code:
        raise click.exceptions.Exit(code)
