"""The end of a merge whose conflicts were written into the target (:mod:`.merge`): the
merge commit once they are resolved (:func:`merge_continue`), or the pre-merge state back
(:func:`merge_abort`). Kept apart from :mod:`.merge` (its size), loaded only by those two."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import ConflictError, UsageError
from ..types import CommitId
from ..vaults.oplog import kept_detail, kept_paths
from ..workspace.mergestate import merge_state, unresolved, write_state
from ..workspace.wscommit import keep_recovery, publish
from ..workspace.wsretire import retirable
from .mergeconflicts import _changed, _record
from .mergeresult import MergeResult

if TYPE_CHECKING:
    from ..vaults.vault import Vault

# (h-polish4's trial: `merge_continue` after a merge that returned its conflicts as data)
NOTHING_OPEN = (
    "a merge that stopped on conflicts leaves none open unless it wrote them: merge again with"
    " write_conflicts (the CLI's --write-conflicts), resolve the marked files, then continue"
)


def merge_continue(vault: Vault, target: str | None = None, *, message: str | None = None) -> MergeResult:
    """Make the merge commit of a merge whose conflicts were written and resolved."""
    target = target or vault.default_fork
    ws = vault.workspace(target)
    st = merge_state(ws)
    if st is None:
        raise UsageError(f"no merge into {target} is in progress", hint=NOTHING_OPEN)
    left = unresolved(ws, st)
    if left:
        hint = "edit them (remove the <<<<<<< ======= >>>>>>> blocks; delete PATH~ours/PATH~theirs), then continue"
        held = [(p, h) for p in left if (h := ws.guard.match(p, is_dir=False)) is not None]
        if held:  # the fork cannot write them: resolved only by a merge from outside
            p, h = held[0]
            hint = (
                f"{p} is {h.kind} in this fork ({h.describe()}) and cannot be resolved by hand:"
                " `avfs merge --abort`, then merge again with --ours or --theirs"
            )
        raise ConflictError(
            f"{len(left)} path(s) still hold conflict markers or both versions",
            hint=hint,
            details={"paths": left, "protected": [p for p, _ in held]},
        )
    from . import checkpoint

    # a `proxy exec` running on the target first, as a merge and a checkpoint wait for one:
    # the workspace is committed, and the command's writes are looked at as it ends (plant3)
    with checkpoint.no_exec_running(vault, target), vault.lock(target):
        ours, theirs = st["ours"], st["theirs"]
        tip = ws.tip()
        if tip != ours:
            from ..errors import RefMovedError

            raise RefMovedError(
                f"fork {target} moved since the merge started", details={"expected": ours, "current": tip}
            )
        pack = ws.store.pack_writer()
        try:
            tree, captured = ws.capture(pack)
            commit = ws.store.create_commit(
                tree, [ours, theirs], message or st["message"], ws.author(), pack=pack
            )
            pack.finish()
        except BaseException:
            pack.abort()
            raise
        # the result looked at as a merge's (what the merge wrote and the resolution; plant3)
        changed = _changed(vault.store, vault.store.commit_tree(ours), tree)
        from .mergeplanted import refuse_result

        refuse_result(vault, commit, changed, st["source"], target)
        with vault.oplog.held("merge"):  # (before the target moves, as a merge's)
            # published as a checkpoint is (.wscommit.publish): the ref moves by CAS, what the
            # commit holds retires (a crash in between is finished by the next sync_base), an
            # entry written since (its seq moved) stays on top of the merge commit, and a
            # mount's index follows
            publish(
                ws, commit, ours, retirable(ws, captured, tree), f"avfs: merge {st['source']}", seen=captured
            )
            write_state(ws, None)
            op = _record(
                vault,
                "merge",
                f"merge {st['source']} into {target} (conflicts resolved)",
                target,
                ours,
                commit,
                ws.ref,
            )
    return MergeResult(
        vault.name, st["source"], target, "merged", CommitId(ours), CommitId(theirs),
        CommitId(st["base"]) if st["base"] else None, CommitId(commit), (), changed, (), op,
    )  # fmt: skip


def merge_abort(vault: Vault, target: str | None = None) -> MergeResult:
    """Give up a merge whose conflicts were written: the exact pre-merge state comes back."""
    target = target or vault.default_fork
    ws = vault.workspace(target)
    st = merge_state(ws)
    if st is None:
        raise UsageError(f"no merge into {target} is in progress", hint=NOTHING_OPEN)
    from . import checkpoint

    with (
        checkpoint.no_exec_running(vault, target),
        vault.lock(target),
        vault.oplog.held("merge abort"),
    ):  # (before the view changes, as a restore's)
        ws.kept_open.clear()
        # what the merge wrote and any resolution work so far: kept, undoable
        rec = keep_recovery(ws, f"abort of the merge of {st['source']}")
        before_tree = vault.store.commit_tree(rec[1]) if rec else None
        ws.set_base(st["ours"], keep_view=False)
        write_state(ws, None)
        kept = kept_paths(ws.kept_open)
        op = vault.oplog.record(
            "merge_abort",
            f"abort the merge of {st['source']} into {target}",
            fork=target,
            refs=[{"ref": rec[0], "old": None, "new": rec[1]}] if rec else [],
            workspaces=[
                {
                    "fork": target,
                    "before": {"base": st["ours"], "tree": before_tree},
                    "after": {"base": st["ours"], "tree": None},
                    "view_changed": True,
                }
            ],
            details=kept_detail(kept),
        )
    return MergeResult(
        vault.name, st["source"], target, "aborted", CommitId(st["ours"]), CommitId(st["theirs"]),
        CommitId(st["base"]) if st["base"] else None, CommitId(st["ours"]), (), (), (), op, False, kept,
    )  # fmt: skip
