"""The bodies of `avfs checkpoint save` and `avfs vault fork`.

Their click commands (:mod:`.checkpoints`, :mod:`.vaults`) call them, and so does the path
without click (:mod:`.fastcli`), which imports neither click nor the command modules. This
module imports no click.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..core.errors import UsageError

if TYPE_CHECKING:
    from ..core.types import IgnoredCarry
    from ..core.vaults.vault import Vault
    from .app import App


def carried(ignored: IgnoredCarry, dirty: bool) -> str:
    """What the fork's line adds about how it got the source's state, "" when nothing worth
    saying. A snapshot is the source as it stands, ignored paths and all: nothing to add (it
    said `what git ignores came along copy-on-write` of every fork, also of a source with
    nothing ignored). A copy says so only when there was something to copy (``dirty``); why
    it was not a snapshot (a snapshot for the source's next fork under way, a state dir made
    before the layers file system) is the machinery's, kept in `--json`'s ``ignored.reason``
    (it said `a snapshot of fork main was being taken for its next fork` of a clean main:
    trial1). ``--no-ignored`` is confirmed, as asked."""
    if ignored.mode == "snapshot":
        return ""
    if ignored.mode == "copied":
        return " (its uncheckpointed changes were copied, what git ignores included)" if dirty else ""
    return " (what git ignores was left out)"


def shared_outputs(v: Vault, src: str) -> list[str]:
    """Warnings for build outputs the new fork shares with a live ``src`` that name its
    mount point (built on the host there, not through `proxy exec`): in the new fork they
    would run ``src``'s files."""
    from ..core.vaults import registry

    # (the registry read alone, not ops.mounts' check, which also clears a dead mount's
    # leftovers: a fork's cold start loads none of the mount lifecycle's modules)
    mountpoint = registry.live_mountpoints(v.state_dir, src).get(src)
    if mountpoint is None:
        return []  # (a source not mounted, the usual fork: no walk, no sandbox's paths imported)
    from ..ops import outputs
    from ..proxy.confine import stable_path

    found = outputs.naming(mountpoint)
    if not found:
        return []
    more = ", ..." if len(found) >= 20 else ""
    return [
        f"{len(found)}{'+' if more else ''} build output(s) shared with {v.name}:{src} name its mount point"
        f" {mountpoint} ({', '.join(found[:5])}{more}): in the new fork they run {src}'s files;"
        " rebuild them there, or build through `avfs proxy exec`, which runs every fork of a vault"
        f" at one path ({stable_path(v.name)})"
    ]


def save(app: App, name: str | None, message: str | None, rebase: bool, expect_head: str | None) -> None:
    """`avfs checkpoint save`'s body: its click command calls it, and so does the path without click (:mod:`.fastcli`)."""
    from ..core.operations import checkpoint as cp  # (not for `vault fork`, which vaults.py's commands share)
    from .app import index_put_back

    vault, fork = app.target()
    index_put_back(vault, fork)  # (what an earlier call in this process left: not this one's)
    res = cp.save(vault, fork, name, message, rebase=rebase, expect_head=expect_head)
    c = res.checkpoint
    said = index_put_back(vault, fork)

    def human() -> None:
        if res.created:
            if c.name:
                app.output.say("checkpoint {} ({}) on {}:{}", c.commit[:12], c.name, vault.name, fork)
            else:
                app.output.say("checkpoint {} on {}:{}", c.commit[:12], vault.name, fork)
        elif c.name:
            app.output.say("nothing changed since the last checkpoint; named it {}", c.name)
        else:
            app.output.say("nothing changed since the last checkpoint")
        if res.ignored:
            app.output.say("{} ignored path(s) left out (`avfs status --ignored` lists them)", res.ignored)

    for nr in res.not_recorded:
        app.output.warn("not recorded: {} ({}); it stays in the workspace", nr.path, nr.reason)
    doc = {
        "checkpoint": c,
        "created": res.created,
        "op_id": res.op_id,
        "not_recorded": res.not_recorded,
        "ignored": res.ignored,
        "kept_open": res.kept_open,
        "index_put_back": said,
    }
    if said is not None:
        app.output.warn("{}", said["reason"])
    app.output.result("checkpoint", doc, human)


def fork(app: App, args: tuple[str, ...], no_ignored: bool) -> None:
    """`avfs vault fork`'s body: its click command calls it, and so does the path without click (:mod:`.fastcli`)."""
    source_spec: str | None
    if len(args) == 1:
        source_spec, new = None, args[0]
        if app.vault_spec is None and new and app.home.exists(new):
            # `avfs vault fork proj` (the new name forgotten) made a fork named proj of
            # whichever vault was selected
            raise UsageError(
                f"`avfs vault fork {new}`: {new} is a vault; name the new fork",
                hint=f"avfs vault fork {new} NEW (a fork named {new}: avfs vault fork VAULT[:FORK] {new})",
                details={"vault": new},
            )
    elif len(args) == 2:
        source_spec, new = args
    else:
        raise UsageError("usage: avfs vault fork [VAULT[:FORK]] NEW")
    v, src = app.resolve_given(source_spec)
    from ..core.errors import AlreadyExistsError

    try:
        made = v.fork(src, new, ignored=not no_ignored)
    except AlreadyExistsError as exc:  # (it said only "already has a fork", hint null)
        if exc.hint is not None or exc.details.get("fork") != new:
            raise
        exc.hint = f"use it (`avfs --vault {v.name}:{new} status`), give another name, or"
        exc.hint += f" `avfs vault delete {v.name}:{new} --force` first (undoable)"
        raise
    info = made.fork
    if made.ignored.mode == "snapshot":
        # the source's next fork takes a snapshot made now, once this one's answer is out
        # (served only: a process of its own would keep its caller waiting for it)
        from ..core.vaults import forkspare

        def spare() -> None:
            forkspare.make(v, src or v.default_fork)

        app.ahead.append(spare)
    warnings = shared_outputs(v, src) if not no_ignored else []
    for w in warnings:
        app.output.warn("{}", w)
    app.output.result(
        "fork_create",
        {"fork": info, "source": src, "ignored": made.ignored, "warnings": warnings},
        lambda: app.output.say(
            "forked {v}:{} -> {v}:{} at {}{}",
            src,
            new,
            info.base[:12],
            carried(made.ignored, info.dirty),
            v=v.name,
        ),
    )
