"""The body of `avfs merge`.

Its click command (:mod:`.merging`) calls it, and so does the path without click
(:mod:`.fastcli`), which imports neither click nor the command modules: a cold `avfs merge`
spent ~40 ms of its CPU importing click and the command table (docs/benchmarks.md,
h-merge2's section). This module imports no click.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..core.errors import EXIT_CONFLICT, AvfsError, UsageError

if TYPE_CHECKING:
    from .app import App

CONFLICTED = ("conflicts", "conflicts_written", "would_conflict")


def merge(
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
) -> int:
    """`avfs merge`'s body: its click command calls it, and so does the path without click
    (:mod:`.fastcli`). Returns the exit code (3: conflicts; an error's code when a later
    source stopped the merges, what merged before it staying merged)."""
    from ..core.operations import merge as m
    from .app import index_put_back

    vault, fork = app.target()
    fork = target or fork
    index_put_back(vault, fork)  # (what an earlier call in this process left: not this merge's)
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
        "index_put_back": (said := index_put_back(vault, fork)),
    }
    if said is not None:
        app.output.warn("{}", said["reason"])
    app.output.result("merge", data, human)
    if stopped is not None:
        app.output.warn("stopped: {}", stopped.message)
        return stopped.exit_code
    return EXIT_CONFLICT if conflicted else 0
