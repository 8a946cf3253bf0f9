"""`avfs stats`, `avfs gc`, `avfs prune`, `avfs doctor` (see docs/maintenance.md)."""

from __future__ import annotations

import click

from ..ops import maintenance as mnt
from .app import App, pass_app
from .gccmd import run as run_gc
from .output import human_size


@click.command("stats")
@click.argument("paths", nargs=-1, metavar="[PATH]...")
@click.option(
    "-n",
    "operations",
    type=click.IntRange(min=0),
    default=10,
    show_default=True,
    help="How many recent operations to show.",
)
@pass_app
def stats_cmd(app: App, paths: tuple[str, ...], operations: int) -> None:
    """What the vault holds: forks, checkpoints, objects, overlays, mounts, recent operations;
    of a lazy vault, what of each fork is local and what is only promised (PATHs: under these
    files or directories only; a whole vault refuses them: the vault is --vault's)."""
    vault, _fork = app.target()
    res = mnt.stats(vault, operations=operations, paths=list(paths))

    def human() -> None:
        p = app.output.say
        p("vault {} ({})", res.vault, res.path)
        p(
            "  objects: {} ({} loose, {}; {} in {} packs, {})",
            res.objects,
            res.loose_objects,
            human_size(res.loose_bytes),
            res.packed_objects,
            res.packs,
            human_size(res.packed_bytes),
        )
        p(
            "  commits: {}, named checkpoints: {}, recovery refs: {}",
            res.commits,
            res.checkpoints,
            res.recovery_refs,
        )
        p(
            "  uncheckpointed: {} (vault quota {}, objects included)",
            human_size(res.overlay_bytes),
            human_size(res.quota_bytes),
        )
        for f in res.forks:
            flags = [
                x for x, on in (("default", f.is_default), ("mounted", f.mounted), ("damaged", f.error)) if on
            ]
            p(
                "  fork {}{}: {}, {} checkpoints, overlay {} entries {}, last change {}",
                f.name,
                " (" + ", ".join(flags) + ")" if flags else "",
                (f.head or "-")[:12],
                f.checkpoints,
                f.overlay_entries,
                human_size(f.overlay_bytes),
                f.last_change or "-",
            )
            if f.error is not None:
                app.output.warn("fork {} is damaged: {}", f.name, f.error["message"])
        if res.lazy is not None:
            lz = res.lazy
            p(
                "  lazy: blobs from {} ({}){}",
                lz.remote,
                lz.url,
                " under " + ", ".join(lz.paths) if lz.paths else "",
            )
            for fl in lz.forks:
                c = fl.local
                unknown = f" + {c.promised_size_unknown} of unknown size" if c.promised_size_unknown else ""
                p(
                    "  fork {}: {} of {} blobs local ({}), {} promised ({}{})",
                    fl.name,
                    c.blobs_local,
                    c.blobs,
                    human_size(c.bytes_local),
                    c.blobs_promised,
                    human_size(c.bytes_promised),
                    unknown,
                )
            for pf in lz.prefetch:
                p(
                    "  prefetch in mount {}: {}, {} blobs fetched ({}), {} to go{}",
                    pf.key,
                    pf.state,
                    pf.fetched_blobs,
                    human_size(pf.fetched_bytes),
                    pf.remaining_blobs,
                    f" ({pf.error})" if pf.error else "",
                )
        for k in res.kept_git_state:
            gone = f", its fork deleted {k.deleted} (op {k.deleted_by})" if k.deleted else ""
            p("  kept git state {} of fork {} at {} ({}), kept {}{}", k.name, k.fork, k.path,
              human_size(k.bytes), k.kept, gone)  # fmt: skip
        for m in res.mounts:
            state = "alive" if m.alive else "dead"
            app.output.say("  mount {} at {} (pid {}, " + state + ")", m.key, m.mountpoint, m.pid)
        for op in res.operations:
            app.output.say("  op {} {} {}: {}", op.id, op.time, op.kind, op.summary)

    app.output.result("stats", res.to_json(), human)


@click.command("gc")
@click.option(
    "--grace",
    "grace",
    type=click.FloatRange(min=0),
    metavar="DAYS",
    help="Keep unreachable objects younger than this (default 14, or the configured grace_days).",
)
@click.option("--dry-run", is_flag=True, help="Report what would go; change nothing.")
@click.option("--all", "all_vaults", is_flag=True, help="Every vault of the home, not only the selected one.")
@pass_app
def gc_cmd(app: App, grace: float | None, dry_run: bool, all_vaults: bool) -> None:
    """Expire old recovery refs, op-log entries and deleted vaults, then compact with git.

    Refuses (exit 75, nothing changed) while an operation holds the vault or one of its
    forks is mounted.
    """
    run_gc(app, grace, dry_run, all_vaults)  # (also its path without click: gccmd.fast)


@click.command("prune")
@click.option(
    "--older-than",
    "older_than",
    type=click.FloatRange(min=0),
    metavar="DAYS",
    help="A fork with no change for this long is abandoned (default 30, or abandoned_days).",
)
@click.option("--dry-run", is_flag=True, help="List what would go; change nothing.")
@pass_app
def prune_cmd(app: App, older_than: float | None, dry_run: bool) -> None:
    """Remove merged or abandoned forks (undoable), dead mounts' entries, stale locks and
    expired approval tokens. Never the default fork, a mounted one, or one changed in the
    last hour."""
    vault, _fork = app.target()
    res = mnt.prune(vault, older_than_days=older_than, dry_run=dry_run)

    def human() -> None:
        if not res.items:
            app.output.info("nothing to prune")
        for it in res.items:
            extra = f" (undo: `avfs undo {it.op_id}`)" if it.op_id is not None else ""
            app.output.say("{}: {} {}: {}" + extra, it.action, it.kind, it.name, it.reason)

    app.output.result("prune", res.to_json(), human)


@click.command("doctor")
@click.option("--repair", is_flag=True, help="Fix what is safe to fix (nothing with changes is deleted).")
@click.option(
    "--full",
    is_flag=True,
    help="Read every object (git fsck --strict, and avfs' own reads hashed against their ids): finds a"
    " corrupt blob; time grows with the vaults' bytes.",
)
@pass_app
def doctor_cmd(app: App, repair: bool, full: bool) -> None:
    """Check every vault of the home: git fsck (--connectivity-only: every object a ref
    reaches is there; --full reads them all), overlays vs journals, dead mounts and what a
    crashed mount daemon left (registry entries, exec files, worktrees, dead or orphan
    mounts), orphan state dirs, stale locks, the layers file system. Exit 1 when a problem is left."""
    res = mnt.doctor(app.home, repair=repair, full=full)

    def human() -> None:
        if all(f.severity == "warning" for f in res.findings):
            n = len(res.vaults)
            app.output.say("{} vault{} checked: no problems", n, "" if n == 1 else "s")
        for f in res.findings:
            state = (
                "repaired"
                if f.repaired
                else "warning"
                if f.severity == "warning"
                else ("repairable" if f.repairable else "problem")
            )
            app.output.say(state + ": {}: {} ({}): {}", f.vault or "(home)", f.check, f.code, f.problem)
            if f.path:
                app.output.say("  path: {}", f.path)
            if f.hint and not f.repaired:
                app.output.say("  hint: {}", f.hint)

    app.output.result("doctor", res.to_json(), human)
    if not res.ok:
        raise click.exceptions.Exit(1)
