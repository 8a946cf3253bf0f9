"""Who may change a merge's target while it is merged into, and what a merge does about
writers (docs/merge.md): the sides captured first, the target's writers held off from its
capture to its new view where they write through its overlay's transactions, a write
through its mount in that moment refusing the try (:func:`.merge.merge` tries again), and
files its mount holds open for writing refusing the merge before anything is captured."""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING

from ..errors import BusyError, DirtyWorkspaceError, UsageError
from ..workspace.wscommit import keep_recovery, move_ref

if TYPE_CHECKING:
    from ..vaults.vault import Vault
    from ..workspace.workspace import Workspace


def capture(vault: Vault, w: Workspace, source: str, target: str, capture: bool) -> list[dict[str, str]]:
    """Checkpoint the uncheckpointed changes of ``w`` (UsageError unless ``capture``): the
    source with its own locks, the target under the locks the merge holds."""
    from . import checkpoint

    if not w.is_dirty():
        return []
    if not capture:
        raise UsageError(
            f"fork {w.fork} has uncheckpointed changes",
            hint="checkpoint them first, or let merge do it (drop --no-capture)",
            details={"fork": w.fork},
        )
    msg = f"avfs merge: {w.fork}'s changes before merging {source} into {target}"
    if w.fork == target:
        commit, *_ = checkpoint.save_locked(vault, w, None, msg)
    else:
        commit = checkpoint.save(vault, w.fork, message=msg).checkpoint.commit
    return [{"fork": w.fork, "commit": commit}] if commit else []


def writers_held(
    ws: Workspace, dry_run: bool, avoid: frozenset[str] = frozenset()
) -> contextlib.AbstractContextManager[object]:
    """What keeps the target's writers off from its capture to its new view: a fork that is
    not mounted is written through its overlay's transactions (API, CLI, MCP), and the
    merge holds one; a write then waits for the merge and lands on the merged view. A merge
    into a fork written every few milliseconds was refused ``busy`` on every try (a write
    landed between the capture and the move each time). Writes through a mount take no
    such transaction: there a write in that moment still refuses the merge. Nor does a
    merge into a fork a pure-FUSE mount serves: its daemon records what it writes in the
    overlay's transactions, and the merge waits for that daemon to show each move of the
    base (mount/live.py ``sync_mounted``), which it cannot while the merge holds one (the
    capture and the move each waited out ``ACK_WAIT_S``, 5 s, and the mount's writes with
    them).

    An upper layer an overlay mount left is folded here, before the transaction (the
    fold's crash safety needs its own commit), but for its new top directories git
    ignores (:meth:`.workspace.Workspace.live_dir_for_move`), which the merge leaves
    where they are; ``avoid``: the names at the source's root, where the merged view may
    have something (those are folded)."""
    if dry_run or ws.live_dir_for_move(avoid) is not None or ws.mounted_without_upper():
        return contextlib.nullcontext()
    return ws.overlay.txn()


CHANGED_DURING_MERGE = "changed_during_merge"  # BusyError.details["reason"]: tried again


def refuse_changed(ws: Workspace) -> None:
    """The target was captured clean; a change since (a write that does not take the fork
    lock, from the CLI or a mount) must not be swept away by pointing it elsewhere. Dirty
    by its entries alone is not a change: a file a checkpoint converted stays an entry over
    its blob (a CRLF file under `core.autocrlf=input`: core/workspace/wsattrs.py), which no
    capture retires, so a merge into that fork's pure-FUSE mount refused every try (`busy`:
    the git model, gitmodel12); only what a status lists is."""
    if ws.is_dirty() and ws.status():
        raise BusyError(
            f"fork {ws.fork} changed through its mount while it was being merged into; nothing moved",
            hint="merge when the writers in its mount pause (a command that writes there finished),"
            " or merge into a fork that is not mounted and merge that one in when it is quiet",
            details={"fork": ws.fork, "reason": CHANGED_DURING_MERGE},
        )


def refuse_open_files(ws: Workspace, target: str) -> None:
    """Files the target's pure-FUSE mount holds open for writing refuse the merge, busy,
    before anything is captured (:func:`.openwriters.refuse_open_files`; loaded only then)."""
    if ws.mounted_without_upper():
        from .openwriters import refuse_open_files

        refuse_open_files(ws, target)


def refuse_staged(ws: Workspace, source: str) -> None:
    """What git staged in the target's live mount (its index against the base) and the
    capture would not record (the file shows the base's version: `git add`, then the file
    put back; a `git rm --cached`) refuses the merge, before anything is captured, naming
    the paths: the merge writes the mount's index for the merged commit, and the staged
    version was dropped with no trace. `git merge` keeps such an entry over a
    fast-forward that leaves its path alone and refuses any other merge ("Your local
    changes ... would be overwritten by merge"); avfs refuses each (docs/merge.md). What
    the capture records (the work tree's change of a staged path) is not in the way: the
    capture commits it, as before."""
    staged = ws.vault.mounts.staged(ws)
    if not staged:
        return
    changed = {p for c in ws.status() for p in (c.path, c.old_path) if p}
    left = [p for p in staged if p not in changed and not any(c.startswith(p + "/") for c in changed)]
    if left:
        shown = ", ".join(left[:5]) + (f" and {len(left) - 5} more" if len(left) > 5 else "")
        raise DirtyWorkspaceError(
            f"fork {ws.fork}'s mount has changes staged with git that merging {source} would drop: {shown}",
            hint="commit them there (`git commit`) or unstage them (`git restore --staged PATH`), then merge",
            details={"fork": ws.fork, "source": source, "staged": left},
        )


def move_target(
    ws: Workspace, new: str, old: str, reason: str, *, held: bool = False
) -> tuple[str, str] | None:
    """Move the target's ref (CAS) and point its (clean) workspace at ``new``.

    Unmounted, the check, the move and the new view are one overlay transaction: a write
    through the API or the CLI (which commits its entry in such a transaction) waits for
    it and lands on the merged view. It used to land in the moment between the check and
    the new view and be swept away with the old one (kept under a recovery ref when it
    came before that ref was made, lost without trace after: an agent runtime merging
    forks into main while main was written lost 1 write in 30). Mounted, writes go
    through the mount, not the overlay's transactions: what was written in that moment
    is kept under a recovery ref rather than lost (returned: (ref, commit), for the
    merge's operation to name, or None). Mounted on either backend, the move and the
    mount's index are made under the index guard and git's ``index.lock`` (as a
    checkpoint's: git in the mount commits no index of the old base on the new HEAD,
    the index written for ``new`` before the ref moves, as a restore's;
    ``GitIndexBusyError`` while git keeps it, nothing moved).

    ``held``: the merge has held the target's writers off since its capture
    (:func:`writers_held`), so nothing can have changed it: not checked again (a third
    status of the target, a quarter of a warm merge's CPU)."""
    from ..workspace import wsbase
    from ..workspace.wsforms import keep_forms  # (a merge's own: not every command's)

    live = ws.live_mount() is not None
    with ws.index_guard(git=True) as ahead, contextlib.nullcontext() if live else ws.overlay.txn():
        if not held:
            refuse_changed(ws)
        # the files whose blob the merge leaves keep the bytes the mount shows, as git's
        # work tree after `git merge` (a .gitattributes it brings would show them anew)
        keep_forms(ws, ws.base_tree, ws.store.commit_tree(new))
        # the time the files the move rewrites show where it stamps them (a pure-FUSE mount, not
        # mounted), taken inside the overlay's transaction that holds that mount's writes off:
        # the index written ahead gives it to them, so it is final there too (mount/indexahead.py)
        at = None if live else time.time_ns()
        move_ref(
            ws.store, ws.ref, new, old, reason, (ws, ahead), view_changed=True, merged=True, written_ns=at
        )
        # (one status for what is kept and what the move rewrites: it read one each, ~2.5
        # ms of a ~28 ms merge into an overlay mount of minimist's installed tree)
        now = ws.changes.status() if live else None
        rec = keep_recovery(ws, "written during a merge", dirty=bool(now)) if live else None
        wsbase.set_base(ws, new, keep_view=False, keep_forms=True, same_view=True, changes=now, written_ns=at)
    return rec
