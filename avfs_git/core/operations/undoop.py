"""The work of an undo (and of a redo, an undo of an undo): put back the refs and the
workspace states an operation recorded, keeping what that would hide under a recovery ref
(:func:`undo` and :func:`redo` find the operation; :mod:`.checkpoint` names them too)."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from ..errors import NothingToUndoError, RefMovedError, UsageError
from ..records import dataclass
from ..store import refs
from ..store.locks import FileLocks, exec_lock_path
from ..types import Operation
from ..vaults import keptstate
from ..vaults.oplog import RECORDED_ONLY, kept_detail, kept_paths
from ..workspace import wscommit
from ..workspace.wscommit import keep_recovery, ws_state

if TYPE_CHECKING:
    from ..vaults.vault import Vault


@dataclass(frozen=True, slots=True)
class UndoResult:
    undone: Operation
    op_id: int
    recovery_ref: str | None
    # files of a live overlay mount left at their path, a process holding them open for
    # writing: not put back (:attr:`.checkpoint.RestoreResult.kept_open`; livewrite2)
    kept_open: tuple[str, ...] = ()


def undo_operation(vault: Vault, op: Operation) -> UndoResult:
    """Revert operation ``op`` (see :func:`.checkpoint.undo` and :func:`.checkpoint.redo`).

    The lock files it takes of forks that are gone when it ends go with it, refused or
    not: an undo of an operation of a deleted fork made that fork's exec lock and fork
    lock, then refused (the fork's ref is gone), and left them for `avfs prune` (review38,
    plant5)."""
    forks = {w["fork"] for w in vault.oplog.workspaces(op.id)} | ({op.fork} if op.fork else set())
    try:
        return _undo_operation(vault, op)
    finally:
        for gone in sorted(f for f in forks if not vault.has_fork(f)):
            vault.drop_fork_locks(gone)


def _undo_operation(vault: Vault, op: Operation) -> UndoResult:
    if op.undone_by is not None:
        raise UsageError(
            f"operation {op.id} was already undone by operation {op.undone_by}",
            hint=f"undo operation {op.undone_by} to redo it",
        )
    if op.kind == "vault_create":
        raise UsageError("undoing a vault's creation is `avfs vault delete`")
    if op.kind in RECORDED_ONLY:
        raise UsageError(
            f"operation {op.id} is a {op.kind}: it is recorded, not undone",
            hint="a push is taken back on the server (push the old commit with --force-with-lease);"
            " a fetch's remote-tracking refs move with the next fetch",
        )
    wss = vault.oplog.workspaces(op.id)
    forks = {w["fork"] for w in wss} | {op.fork} if op.fork else {w["fork"] for w in wss}
    _release_taken_away(vault, op)
    held_forks = vault.lock(*forks)  # (made first: it makes the locks directory)
    # a `proxy exec` running on one of them first, as a restore waits for one (plant3: it moved
    # the fork mid-run, its writes, looked at only as it ends, kept in a recovery commit)
    what = f"vault {vault.name} (a `proxy exec` runs on a fork the undo changes)"
    runs = FileLocks([(exec_lock_path(vault.state_dir, f), what) for f in sorted(forks)], vault.lock_wait_s)
    with runs, held_forks:
        moves = [r for r in op.refs if not str(r["ref"]).startswith(refs.RECOVERY)]
        _check_undoable(vault, op, wss, moves)
        new_wss: list[dict[str, Any]] = []
        recovered: str | None = None
        rec_refs: list[dict[str, str | None]] = []
        held = {w["fork"]: vault.workspace(w["fork"]) for w in wss if vault.has_fork(w["fork"])}
        kept: list[str] = []  # (each workspace's kept_open, emptied before its view is set)
        for ws in held.values():
            # git's rebase, merge, bisect... open in the fork's mount (or its HEAD off the
            # branch): its end moves the branch again (`rebase --abort` put it back, and the
            # undo was lost: gitmodel19), so nothing moves under it, as no checkpoint does
            ws.refuse_if_git_busy("an undo", would="move the branch of")
        with contextlib.ExitStack() as guards:
            # the op log's lock first, the record made in it: held by another process, the
            # undo is refused before anything moves (it moved the refs, then said "not
            # recorded": the undone operation not marked, no redo)
            guards.enter_context(vault.oplog.held("undo"))
            # (as restore's: the moves and the mounts' indexes, written ahead, and the recovery
            # refs made inside, so that a guard that fails busy leaves no ref without its operation)
            ahead = {ws.ref: (ws, guards.enter_context(ws.index_guard(git=True))) for ws in held.values()}
            changes = {w["fork"]: bool(w["view_changed"]) for w in wss}
            for w in wss:  # (as a restore's: a pure-FUSE mount's open file, busy; livewrite1)
                if w["fork"] in held and w["view_changed"] and held[w["fork"]].mounted_without_upper():
                    from .openwriters import refuse_open_files

                    refuse_open_files(held[w["fork"]], w["fork"], None, "undo")
            for w in wss:
                fork = w["fork"]
                cur_state: dict[str, str | None] | None = None
                if fork in held:
                    cur_state = ws_state(held[fork])
                    if w["view_changed"] or w["before"] is None:
                        rec = keep_recovery(held[fork], f"undo of operation {op.id}")
                        if rec is not None:
                            recovered = rec[0]
                            rec_refs.append({"ref": rec[0], "old": None, "new": rec[1]})
                new_wss.append(
                    {
                        "fork": fork,
                        "before": cur_state,
                        "after": w["before"],
                        "view_changed": w["view_changed"],
                    }
                )
            # refs: creations are undone last so a recreated fork's ref exists before its workspace
            for r in moves:
                on = ahead.get(str(r["ref"]))
                why = f"avfs: undo operation {op.id}"
                view_changed = on is None or changes.get(on[0].fork, True)
                wscommit.move_ref(
                    vault.store, str(r["ref"]), r["old"], r["new"], why, on, view_changed=view_changed
                )
            for w in wss:
                fork = w["fork"]
                before = w["before"]
                if before is None:
                    vault.discard_workspace(fork)
                    continue
                # the handle taken before the refs moved: vault.workspace() would first let the
                # workspace follow its moved ref (dropping the view this undo is to keep)
                ws = held.get(fork) or vault.workspace(fork)
                ws.kept_open.clear()
                if w["view_changed"]:
                    ws.set_base(before["base"], keep_view=False, view_tree=before["tree"])
                else:
                    ws.set_base(before["base"], keep_view=True)
                kept += kept_paths(ws.kept_open)
            new_id = vault.oplog.record(
                "undo",
                f"undo operation {op.id} ({op.summary})",
                fork=op.fork,
                refs=[{"ref": r["ref"], "old": r["new"], "new": r["old"]} for r in moves] + rec_refs,
                workspaces=new_wss,
                undoes=op.id,
                details=kept_detail(kept_open := tuple(sorted(set(kept)))),
            )
        for w in wss:  # git's state commands left, kept aside (core/vaults/keptstate.py): with its fork
            if w["before"] is None:  # this undo takes the fork away
                keptstate.set_aside(vault.state_dir, w["fork"], new_id)
            elif w["after"] is None:  # it brings back a fork the operation had taken away
                keptstate.bring_back(vault.state_dir, w["fork"], op.id)
    undone = vault.oplog.get(op.id)
    assert undone is not None
    return UndoResult(undone, new_id, recovered, kept_open)


def _release_taken_away(vault: Vault, op: Operation) -> None:
    """Ask each fork the undo of ``op`` takes away, kept warm for `proxy exec` (nobody asked
    for its mount), to go before the undo takes the forks' exec locks: its daemon's release
    takes the fork's exec lock without waiting, and was refused while the undo held it
    (fork_mounted; ci46)."""
    for r in op.refs:
        ref = str(r["ref"])
        if r["old"] is None and ref.startswith(refs.HEADS):
            from ..vaults.warmrelease import release_kept_warm

            release_kept_warm(vault.state_dir, ref[len(refs.HEADS) :])


def _check_undoable(
    vault: Vault, op: Operation, wss: list[dict[str, Any]], moves: list[dict[str, Any]]
) -> None:
    """Refuse :func:`undo_operation` of ``op`` (nothing moved yet): a fork it would take away
    mounted, or a fork or ref that moved on since the operation."""
    for r in moves:
        # undoing a fork's creation refuses while mounted (as a delete): its processes keep their tree
        if r["old"] is None and str(r["ref"]).startswith(refs.HEADS):
            vault.refuse_if_mounted(str(r["ref"])[len(refs.HEADS) :])
    for w in wss:
        after = w.get("after")
        if after is not None and vault.has_fork(w["fork"]):
            cur_base = vault.workspace(w["fork"]).base
            if cur_base != after["base"]:
                raise RefMovedError(
                    f"cannot undo operation {op.id}: fork {w['fork']} moved on since"
                    f" (its base is {cur_base}, not {after['base']})",
                    hint="restore a checkpoint instead (`avfs checkpoint list`, `avfs log`)",
                    details={"fork": w["fork"], "expected": after["base"], "current": cur_base},
                )
    for r in moves:
        cur = refs.read_ref(vault.store, str(r["ref"]))
        if cur != r["new"]:
            raise RefMovedError(
                f"cannot undo operation {op.id}: {r['ref']} is at {cur}, not {r['new']}",
                hint="something changed it since; restore a checkpoint instead",
                details={"ref": r["ref"], "expected": r["new"], "current": cur},
            )


def undo(vault: Vault, op_id: int | None = None, *, fork: str | None = None) -> UndoResult:
    """Revert operation ``op_id`` (the newest undoable one when None; with ``fork``, the
    newest undoable one that touched that fork: ``undo`` inside a fork's mount).

    Refuses with :class:`RefMovedError` when a ref the operation moved has moved again
    since; keeps any uncheckpointed changes it would hide under a recovery ref.
    """
    op = vault.oplog.get(op_id) if op_id is not None else vault.oplog.last_undoable(fork)
    if op is None:
        raise NothingToUndoError(
            (
                f"no operation {op_id} in vault {vault.name}"
                if op_id is not None
                else "nothing to undo" + (f" on fork {fork}" if fork else "")
            ),
            hint="`avfs op log` lists the operations",
        )
    return undo_operation(vault, op)


def redo(vault: Vault, *, fork: str | None = None) -> UndoResult:
    """Undo the newest undo still in effect (with ``fork``: of that fork's operations),
    bringing back what it had undone; successive redos walk forward again as successive
    undos walked back. A redo is an undo of an undo (``undoes`` names the undo)."""
    op = vault.oplog.last_redoable(fork)
    if op is None:
        raise NothingToUndoError(
            "nothing to redo" + (f" on fork {fork}" if fork else ""),
            hint="`avfs op log` lists the operations; a redo follows an `avfs undo`",
        )
    return undo_operation(vault, op)
