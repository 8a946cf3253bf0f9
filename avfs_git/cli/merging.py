"""`avfs merge`."""

from __future__ import annotations

from typing import Any

import click

from ..core.errors import EXIT_CONFLICT, AvfsError, UsageError
from .app import App, pass_app

CONFLICTED = ("conflicts", "conflicts_written", "would_conflict")


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
    remote branch (`origin/agent2`). Undo with `avfs undo`.
    """
    from ..core.operations import merge as m

    vault, fork = app.target()
    fork = target or fork
    stopped: AvfsError | None = None
    if cont or abort:
        if sources or (cont and abort):
            raise UsageError("--continue and --abort take no sources (and not both)")
        res = m.merge_continue(vault, fork, message=message) if cont else m.merge_abort(vault, fork)
        results = [res]
    else:
        if not sources:
            raise UsageError("name the fork(s) to merge", hint="avfs merge SOURCE_FORK [--into FORK]")
        if write_conflicts and len(sources) > 1:
            raise UsageError("--write-conflicts takes one source at a time")
        results = []
        for src in sources:
            try:
                res = m.merge(
                    vault,
                    src,
                    fork,
                    no_ff=no_ff,
                    dry_run=dry_run,
                    favor=favor,
                    write_conflicts=write_conflicts,
                    allow_unrelated=allow_unrelated,
                    capture=not no_capture,
                    message=message,
                    expect_head=expect_head if not results else None,  # the head before the first
                )
            except AvfsError as err:
                if not results:
                    raise
                stopped = err  # what merged before it stays merged: say so, with the error
                break
            results.append(res)
            if res.status in CONFLICTED:
                break  # stop at the first conflict; what merged before it stays merged
    conflicted = any(r.status in CONFLICTED for r in results)

    def human() -> None:
        for r in results:
            status = r.status.replace("_", " ") + (f" {r.commit[:12]}" if r.commit else "")
            app.output.plain("{} -> {}: " + status, r.source, r.target)
            for c in r.conflicts:
                app.output.plain("  {:14} {}", c.kind, c.path)
        skipped = len(sources) - len(results)
        if skipped > 0:
            app.output.info("stopped at the first conflict; {} fork(s) not merged", skipped)
        if any(r.status == "conflicts" for r in results):
            app.output.info("nothing moved; --write-conflicts to resolve by hand, or --ours/--theirs")

    data: dict[str, Any] = {
        "vault": vault.name,
        "target": fork,
        "results": results,
        "conflicted": conflicted,
        "error": stopped.to_dict() if stopped is not None else None,
    }
    app.output.result("merge", data, human)
    if stopped is not None:
        app.output.warn("stopped: {}", stopped.message)
        raise click.exceptions.Exit(stopped.exit_code)
    if conflicted:
        raise click.exceptions.Exit(EXIT_CONFLICT)
