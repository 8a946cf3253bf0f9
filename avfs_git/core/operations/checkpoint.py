"""Checkpoints, restore, revert, checkout of a path, and undo.

Every function here that moves a ref or discards a view of a workspace:

1. takes the fork lock(s);
2. keeps what it would discard (uncheckpointed overlay) as a commit under a recovery ref
   (``refs/avfs/recovery/<fork>/-/<id>``, parent = the workspace's base);
3. moves refs by compare-and-swap only (:func:`.refs.cas_update`);
4. records an operation (:mod:`.oplog`) with refs and workspace states before and after,
   so :func:`undo` can put them back.
"""

from __future__ import annotations

import dataclasses
import os
from typing import TYPE_CHECKING, Any

from ..errors import (
    AlreadyExistsError,
    ConflictError,
    DirtyWorkspaceError,
    ExpectMismatchError,
    RevisionNotFoundError,
    UsageError,
    from_oserror,
    want_str,
    want_strs,
)
from ..records import dataclass
from ..store import locks, names, packwriter, refs
from ..store.gitnames import NotRecorded
from ..store.gitstore import prefer_libgit2, rfc3339
from ..store.mergetrees import revert_commit, revert_trees
from ..types import MODE_TREE, Change, CheckpointInfo, CommitId, Operation
from ..vaults.oplog import kept_detail, kept_paths
from ..workspace import wscommit
from ..workspace.overlayentry import ignored_count
from ..workspace.wscommit import ws_state
from .history import checkpoint_names, names_history, resolve
from .undoop import UndoResult as UndoResult  # (the result of undo and redo, as before)
from .undoop import redo as redo  # (this module's API, as before: docs/api.md)
from .undoop import undo as undo

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from ..vaults.vault import Vault
    from ..workspace.overlayentry import Entry
    from ..workspace.workspace import Workspace


@dataclass(frozen=True, slots=True)
class CheckpointResult:
    checkpoint: CheckpointInfo
    created: bool  # False: nothing had changed, no new commit (a name may still be set)
    op_id: int | None
    # paths of the workspace git refuses (GIT~1, '.git ', a .gitmodules link...): left out
    # of the commit, kept in the workspace (see :mod:`.gitnames`)
    not_recorded: tuple[NotRecorded, ...] = ()
    ignored: int = 0  # paths git ignores, left out of the commit (they stay in the workspace)
    kept_open: tuple[str, ...] = ()  # files left as they were, open for writing (see RestoreResult)


@dataclass(frozen=True, slots=True)
class RestoreResult:
    vault: str
    fork: str
    commit: CommitId
    previous: CommitId | None
    recovery_ref: str | None
    op_id: int
    # files of a live overlay mount left at their path, a process holding them open for
    # writing: not restored (docs/concepts.md "A file a program holds open for writing")
    kept_open: tuple[str, ...] = ()


def _info(vault: Vault, fork: str, commit: str, name: str | None) -> CheckpointInfo:
    c = vault.store.commit_fields(commit)  # the raw object: no pygit2 for `checkpoint save`
    return CheckpointInfo(
        vault=vault.name,
        fork=fork,
        name=name,
        commit=CommitId(commit),
        parent=c.parents[0] if c.parents else None,
        time=rfc3339(c.commit_time),
        message=c.message,
        changes=None,
    )


def save(
    vault: Vault,
    fork: str | None = None,
    name: str | None = None,
    message: str | None = None,
    *,
    rebase: bool = True,
    on: str | None = None,
    expect_head: str | None = None,
    only: Callable[[str], bool] | None = None,
    exec_of: str | None = None,
) -> CheckpointResult:
    """Commit the workspace's overlay as a checkpoint (O(changed paths x depth)).

    When the fork moved since the workspace's base (a push into the vault, a commit made
    elsewhere, a merge), the changes are rebased onto the new tip with a three-way merge
    (``rebase``, the default, when that is conflict-free).

    ``only``: the paths to record (``proxy exec`` after its command's own `git commit`:
    what the command changed, not what the view keeps of the paths git left out); the rest
    stays uncheckpointed.

    ``exec_of``: the command of the ``proxy exec`` whose changes this commits: the op log
    records an ``exec`` naming it, not a checkpoint (its ``exec_id`` added once the audit
    log holds the call: :meth:`.OpLog.name_exec`).

    ``expect_head``: only if the fork's branch is at that revision now (fork-level
    compare-and-swap): else ExpectMismatchError, nothing saved.

    ``on``: a :func:`snapshot` of this workspace taken earlier (``proxy exec``'s record
    of the fork before its command): it lands on the fork with the checkpoint, between
    the base and it (see :func:`.wscommit.commit_overlay`); RefMovedError when the fork
    moved since.

    Raises:
        ConflictError: the fork moved and the changes conflict with it (nothing changed).
        RefMovedError: the fork moved and ``rebase`` is False (nothing changed).
        AlreadyExistsError: a checkpoint of that name exists on the fork.
    """
    want_strs(
        message=message, on=on, expect_head=expect_head, exec_of=exec_of
    )  # (bytes: a commit of its repr)
    fork = fork or vault.default_fork
    if name is not None:
        names.check_fork_name(name, "checkpoint")
        if "/" in name:
            raise UsageError(
                f"invalid checkpoint name {name!r}: '/' is not allowed",
                hint=f"name it {name.replace('/', '-')!r} (a checkpoint is one name on its fork;"
                " FORK:NAME names another fork's)",
                details={"name": name},
            )
    vault.checkpoints_saved += 1
    if vault.checkpoints_saved == 2:
        # A process's first checkpoint goes without libgit2 (`avfs checkpoint save` skips its
        # ~40-80 ms import: git's update-ref and config, pure reads); one that saves more through
        # a vault (whose handle its home keeps) is long-lived: libgit2's ref transactions save ~3 ms.
        prefer_libgit2()
    ws = vault.workspace(fork)
    with no_exec_running(vault, fork), vault.lock(fork):
        ws.kept_open.clear()  # (a rebase's new view written through a live mount: kept_open)
        commit, target, op_id, captured, ignored = save_locked(
            vault,
            ws,
            name,
            message,
            rebase=rebase,
            on=on,
            expect_head=expect_head,
            only=only,
            exec_of=exec_of,
        )
        kept = kept_paths(ws.kept_open)
    if commit is not None and exec_of is None:  # (an exec's record: once its call has answered)
        packwriter.maybe_consolidate(vault.path)
    info = _info(vault, fork, target, name)
    count = _changes_saved(vault, ws, commit, captured) if commit is not None else 0
    info = dataclasses.replace(info, changes=count)
    left = ws.not_recorded()
    return CheckpointResult(info, commit is not None, op_id, tuple(left), ignored, kept)


def save_locked(
    vault: Vault,
    ws: Workspace,
    name: str | None,
    message: str | None,
    *,
    rebase: bool = True,
    on: str | None = None,
    expect_head: str | None = None,
    only: Callable[[str], bool] | None = None,
    exec_of: str | None = None,
) -> tuple[str | None, str, int | None, list[Entry], int]:
    """:func:`save`'s work, for a caller that holds the fork's exec and fork locks (``save``
    itself, and a merge capturing its target under the locks it merges with). Returns the
    new commit (None: nothing to commit), the commit the fork is at, the operation's id,
    the overlay entries committed and how many ignored paths were left out."""
    fork = ws.fork
    ws.sync_base()
    check_head(vault, fork, expect_head)
    name_ref = refs.checkpoint_ref(fork, name) if name else None
    if name_ref:
        # the name's ref is made after the branch moved: a packed-refs line git cannot read
        # refuses it there (the branch moved, no op log entry); refused here, before
        refs.check_packed_refs(vault.path)
    if name_ref and refs.read_ref(vault.store, name_ref) is not None:
        raise AlreadyExistsError(
            f"fork {fork} already has a checkpoint named {name!r}",
            hint="pick another name or delete it with `avfs checkpoint delete`",
            details={"name": name},
        )
    base = ws.base
    tip = ws.tip()  # differs from base when the fork moved: then the changes are rebased
    # a message of whitespace only is none, as git's cleanup makes it (git then refuses the
    # commit; avfs gives it the default message, as it does an empty one)
    msg = message if message and message.strip() else (f"checkpoint {name}" if name else "checkpoint")
    if not msg.endswith("\n"):
        msg += "\n"
    with vault.oplog.held("checkpoint"):
        # (the op log's lock taken before the branch moves, its record made in it: held
        # by another process, the checkpoint is refused with nothing changed, where it
        # moved the branch and then said "not recorded", and `undo` undid the one before)
        return _save_held(
            vault, ws, name_ref, name, msg, base, tip, rebase=rebase, on=on, only=only, exec_of=exec_of
        )


def _save_held(
    vault: Vault,
    ws: Workspace,
    name_ref: str | None,
    name: str | None,
    msg: str,
    base: str,
    tip: str | None,
    *,
    rebase: bool,
    on: str | None,
    only: Callable[[str], bool] | None,
    exec_of: str | None = None,
) -> tuple[str | None, str, int | None, list[Entry], int]:
    """:func:`save_locked`'s commit, ref moves and record, under the op log's lock."""
    fork = ws.fork
    # (an exec's record is another writer's commit: what the person staged stays staged)
    commit, captured = ws.commit_overlay(msg, rebase=rebase, on=on, only=only, exec_of=exec_of)
    if commit is not None and on is None:
        # what the ref moved from: a `git commit` in the mount may have landed since the
        # tip was read (the checkpoint then went on top of it): undo goes back to that
        # (with ``on``, the commit's parent is that record, whose parent is the tip)
        tip = str(vault.store.commit_fields(commit).parents[0])
    ignored = ignored_count(ws.captured_ignored)
    changed: list[dict[str, str | None]] = []
    if commit is not None:
        changed.append({"ref": ws.ref, "old": tip, "new": commit})
    target = commit or base
    if name_ref:
        refs.cas_update(vault.store, name_ref, target, None, f"avfs: checkpoint {name}")
        changed.append({"ref": name_ref, "old": None, "new": target})
    op_id = None
    if changed:
        before = tip or base  # undoing a rebased checkpoint leaves its changes on the new tip
        op_id = _record_save(
            vault, fork, name, changed, before, target, commit is not None, len(captured), exec_of
        )
    return commit, target, op_id, captured, ignored


def _record_save(
    vault: Vault,
    fork: str,
    name: str | None,
    changed: list[dict[str, str | None]],
    before: str,
    target: str,
    created: bool,
    captured: int,
    exec_of: str | None = None,
) -> int:
    """The operation of a checkpoint: the refs it moved (``changed``), the fork's base
    ``before`` and after (``target``); with the tree of the new commit when it made one
    (``created``), which undo shows again on the old base. A ``proxy exec``'s commit
    (``exec_of``: its command) is an ``exec`` (it said `checkpoint <id> on <fork>`: trial1)."""
    tree = vault.store.commit_tree(target)
    details: dict[str, Any] = {"name": name, "captured": captured}
    kind, summary = "checkpoint", f"checkpoint {name or target[:12]} on {fork}"
    if exec_of is not None:
        from ..vaults.oplog import exec_summary  # (an exec's only: `checkpoint list` loads no more)

        # (its process: a reader of the change stream holds this commit's events while the
        # call lives and its audit record, which names them, is not written: changes.py)
        details.update(command=exec_of, exec_id=None, pid=os.getpid())
        kind, summary = "exec", exec_summary(fork, exec_of, target)
    return vault.oplog.record(
        kind,
        summary,
        fork=fork,
        refs=changed,
        workspaces=[
            {
                "fork": fork,
                "before": {"base": before, "tree": tree if created else None},
                "after": {"base": target, "tree": None},
                "view_changed": False,
            }
        ],
        details=details,
    )


def _changes_saved(vault: Vault, ws: Workspace, commit: str, captured: Sequence[Entry]) -> int:
    """How many changes checkpoint ``commit`` holds: the entries it captured, directories
    aside (a file written, deleted or moved counts one; a moved or deleted directory counts
    once: counting its files would cost a tree diff)."""
    if not ws.overlay.upper_active():
        return sum(1 for e in captured if e.mode != MODE_TREE) + len(ws.captured_converted)  # (kept: wsattrs)
    # an overlay mount's upper layer keeps what earlier checkpoints recorded: count the
    # paths this commit changed (a tree diff, O(changes)) rather than what it captured
    from ..store.treediff import diff_trees

    diffs: list[Change] = []
    parents = vault.store.commit_fields(commit).parents
    diff_trees(
        vault.store,
        vault.store.commit_tree(str(parents[0])) if parents else None,
        vault.store.commit_tree(commit),
        "",
        diffs,
    )
    return len(diffs)


def snapshot(vault: Vault, fork: str, message: str) -> str | None:
    """The fork's workspace as a commit on its base that no ref names and nothing moves to
    (``proxy exec``'s record of the fork before its command: it lands on the fork only
    with the commit after the command, :func:`save` ``on=``, or is kept beside it,
    :func:`keep_snapshot`); None when the workspace shows its base."""
    if not message.endswith("\n"):
        message += "\n"
    ws = vault.workspace(fork)
    with no_exec_running(vault, fork), vault.lock(fork):
        ws.sync_base()
        return wscommit.snapshot(ws, message)


def keep_snapshot(vault: Vault, fork: str, commit: str) -> str:
    """Name a :func:`snapshot` that did not land on the fork by a recovery ref of the
    fork (``refs/avfs/recovery/<fork>/-/exec-...``: ``gc`` expires it as the others);
    returns the ref."""
    return wscommit.keep_ref(vault.workspace(fork), commit, "exec", "proxy exec: the fork before its command")


def no_exec_running(vault: Vault, fork: str) -> Any:
    """Wait (``AVFS_LOCK_WAIT``, 10 s by default) for a ``proxy exec`` running on ``fork``,
    then :class:`.errors.BusyError` (exit 75): its commit holds exactly its command's
    changes (docs/proxy.md), which a checkpoint taken meanwhile would split. The exec's own
    checkpoints hold the lock already (it is re-entrant per thread)."""
    path = locks.exec_lock_path(vault.state_dir, fork)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
    except OSError as exc:
        raise from_oserror(exc, os.path.dirname(path)) from exc
    return locks.file_lock(
        path, what=f"fork {fork} of vault {vault.name} (a `proxy exec` runs there)", wait_s=vault.lock_wait_s
    )


def list_checkpoints(
    vault: Vault, fork: str | None = None, *, all_commits: bool = False, limit: int = 100
) -> list[CheckpointInfo]:
    """Named checkpoints of ``fork`` (newest first); with ``all_commits`` every commit of
    the fork's first-parent history, named or not."""
    fork = fork or vault.default_fork
    vault.require_fork(fork)
    if all_commits:
        from .history import log

        cps = checkpoint_names(vault, fork)
        out = []
        for c in log(vault, fork, limit=limit):
            labels = cps.get(c.id)
            label = labels[0] if labels else None
            out.append(_info(vault, fork, c.id, label))
        return out
    prefix = refs.checkpoint_prefix(fork)
    found = []
    for r in refs.ref_names(vault.store, prefix):
        target = refs.read_ref(vault.store, r)
        if target:
            found.append(_info(vault, fork, target, r[len(prefix) :]))
    found.sort(key=lambda i: (i.time, i.name or ""), reverse=True)
    return found[:limit]


def delete_checkpoint(vault: Vault, fork: str | None, name: str) -> Operation:
    fork = fork or vault.default_fork
    vault.require_fork(fork)
    ref = refs.checkpoint_ref(fork, name)
    with vault.lock(fork):
        old = refs.read_ref(vault.store, ref)
        if old is None:
            raise RevisionNotFoundError(
                f"fork {fork} has no checkpoint named {name!r}", details={"name": name}
            )
        # the op log's lock before the ref goes (as a checkpoint's, `OpLog.held`): held,
        # damaged or read-only, the delete is refused with the ref still there, where it
        # deleted the ref and said "not recorded" (`undo` could not bring it back)
        with vault.oplog.held("checkpoint delete"):
            refs.cas_update(vault.store, ref, None, old, f"avfs: delete checkpoint {name}")
            op_id = vault.oplog.record(
                "checkpoint_delete",
                f"delete checkpoint {name} on {fork}",
                fork=fork,
                refs=[{"ref": ref, "old": old, "new": None}],
            )
    op = vault.oplog.get(op_id)
    assert op is not None
    return op


def check_head(vault: Vault, fork: str, expect_head: str | None) -> None:
    """Raise ExpectMismatchError unless fork ``fork``'s branch is at ``expect_head`` (a
    revision) now; nothing when it is None. Call under the fork lock."""
    if expect_head is None:
        return
    want = resolve(vault, expect_head, fork)
    now = refs.read_ref(vault.store, refs.fork_ref(fork))
    if now != want:
        raise ExpectMismatchError(
            f"fork {fork} is at {now}, not at {expect_head} ({want}): nothing was done",
            hint="read the fork again (`avfs log -n 1`, its head) and retry with that --expect-head",
            details={"fork": fork, "expected": want, "current": now},
        )


def restore(vault: Vault, fork: str | None, rev: str, *, expect_head: str | None = None) -> RestoreResult:
    """Move the fork back to ``rev``; the discarded state is kept and the move is undoable.
    ``expect_head``: only if the fork's branch is at that revision now."""
    want_strs(expect_head=expect_head)
    fork = fork or vault.default_fork
    ws = vault.workspace(fork)
    with vault.lock(fork):
        ws.kept_open.clear()
        ws.sync_base()
        check_head(vault, fork, expect_head)
        # (git's rebase, merge, cherry-pick... open in the fork's mount: its end moves the
        # branch again, so the restore waits for it, as an undo does, gitmodel19)
        wscommit.refuse_under_git(ws, "a restore")
        target = resolve(vault, rev, fork)
        tip = ws.tip()
        _planted(vault, fork, rev, target, tip)
        before = {"base": ws.base, "tree": None}
        # a file a pure-FUSE mount holds open for writing: the move would drop the entry its
        # writes go to, busy before anything moves (an overlay mount's is left at its path,
        # core/workspace/livedir.py ``_held_open``; livewrite1)
        if ws.mounted_without_upper():
            from .openwriters import refuse_open_files

            refuse_open_files(ws, fork, None, "restore")
        changed: list[dict[str, str | None]] = []
        # the op log's lock first, the record made in it (as a checkpoint's, `OpLog.held`):
        # held by another process, the restore is refused before anything moves
        with vault.oplog.held("restore"):
            # the ref's move and the mount's index under the index guard and git's index.lock, the index
            # written for the target before the branch moves: git in the mount commits no index of the old
            # base on the new HEAD meanwhile (mount/indexahead.py). The recovery ref is made inside, taken
            # back if the move fails (busy, a push moved the branch): a ref alone was one no operation named
            with ws.index_guard(git=True) as ahead, wscommit.recovery_kept(ws, f"restore to {rev}") as rec:
                if rec is not None:
                    before["tree"] = vault.store.commit_tree(rec[1])
                    changed.append({"ref": rec[0], "old": None, "new": rec[1]})
                if tip != target:
                    wscommit.move_ref(
                        vault.store,
                        ws.ref,
                        target,
                        tip,
                        f"avfs: restore {rev}",
                        (ws, ahead),
                        view_changed=True,
                    )
                    changed.append({"ref": ws.ref, "old": tip, "new": target})
                ws.set_base(target, keep_view=False)
            kept = kept_paths(ws.kept_open)
            op_id = vault.oplog.record(
                "restore",
                f"restore {fork} to {rev} ({target[:12]})",
                fork=fork,
                refs=changed,
                workspaces=[
                    {
                        "fork": fork,
                        "before": before,
                        "after": {"base": target, "tree": None},
                        "view_changed": True,
                    }
                ],
                details={"revision": rev, **kept_detail(kept)},
            )
    return RestoreResult(
        vault.name,
        fork,
        CommitId(target),
        CommitId(tip) if tip else None,
        rec[0] if rec else None,
        op_id,
        kept,
    )


def revert(vault: Vault, fork: str | None, rev: str, message: str | None = None) -> CheckpointResult:
    """A new checkpoint on the fork that undoes the changes ``rev`` made."""
    message = None if message is None else want_str(message, "message")  # (bytes: a commit of its repr)
    ws = vault.workspace(fork := fork or vault.default_fork)
    with vault.lock(fork):
        ws.kept_open.clear()
        ws.sync_base()
        wscommit.refuse_under_git(ws, "a revert")  # (as a restore's: gitmodel30)
        if ws.is_dirty():
            raise DirtyWorkspaceError(
                f"fork {fork} has uncheckpointed changes",
                hint="checkpoint them first (`avfs checkpoint save`), then revert",
            )
        target = vault.store.commit(resolve(vault, rev, fork))
        tip = ws.tip()
        assert tip is not None
        mainline = 1 if len(target.parent_ids) > 1 else 0
        # (the tip's attribute files say how its paths merge, as in git's checkout of it)
        from ..store.mergeattrs import merge_attributes

        attrs = merge_attributes(vault.store, *revert_trees(vault.store, str(target.id), tip, mainline))
        index = revert_commit(vault.store, str(target.id), tip, mainline, rev, attrs)
        conflicts = index.conflicts
        if conflicts:
            paths = sorted({(c[1] or c[2] or c[0]).path for c in conflicts if any(c)})  # type: ignore[union-attr]
            raise ConflictError(
                f"reverting {rev} conflicts with later changes in {len(paths)} path(s)",
                hint="restore or edit the paths by hand, then checkpoint",
                details={"paths": paths},
            )
        tree = index.write_tree()
        summary = target.message.splitlines()[0] if target.message else str(target.id)[:12]
        msg = message or f'Revert "{summary}"\n\nThis reverts commit {target.id}.\n'
        commit = vault.store.create_commit(tree, [tip], msg, vault.author())
        # a commit the carry-back refused, reverted by its id, brings back what its parent
        # held as a restore to it would (the review of the thirty-fourth round)
        _planted(vault, fork, rev, commit, tip)
        with vault.oplog.held("revert"):  # (before the branch moves, as a checkpoint's)
            with ws.index_guard(git=True) as ahead:  # (as restore's)
                wscommit.move_ref(
                    vault.store, ws.ref, commit, tip, f"avfs: revert {rev}", (ws, ahead), view_changed=True
                )
                ws.set_base(commit, keep_view=False)
            kept = kept_paths(ws.kept_open)
            op_id = vault.oplog.record(
                "revert",
                f"revert {str(target.id)[:12]} on {fork}",
                fork=fork,
                refs=[{"ref": ws.ref, "old": tip, "new": commit}],
                workspaces=[
                    {
                        "fork": fork,
                        "before": {"base": tip, "tree": None},
                        "after": {"base": commit, "tree": None},
                        "view_changed": True,
                    }
                ],
                details=kept_detail(kept),
            )
    return CheckpointResult(_info(vault, fork, commit, None), True, op_id, kept_open=kept)


def checkout(vault: Vault, fork: str | None, path: str, rev: str) -> Operation:
    """Bring ``path`` (a file or a directory) back from ``rev`` into the workspace."""
    fork = fork or vault.default_fork
    ws = vault.workspace(fork)
    p = names.norm_path(path)
    with vault.lock(fork):
        ws.kept_open.clear()
        tree = vault.store.commit_tree(commit := resolve(vault, rev, fork))
        ws.checkout_check(p, tree)  # refused before ws_state writes the dirty tree's objects
        if ws.mounted_without_upper():  # (livewrite1: as a restore's)
            from .openwriters import refuse_open_files

            refuse_open_files(ws, fork, frozenset((p,)), "check it out")
        _planted(vault, fork, rev, commit, ws.tip(), p)
        before = ws_state(ws)
        with vault.oplog.held("checkout"):  # (before the view changes, as a restore's)
            ws.checkout_path(p, tree)
            kept = kept_paths(ws.kept_open)
            op_id = vault.oplog.record(
                "checkout",
                f"checkout {p or '/'} from {rev} on {fork}",
                fork=fork,
                workspaces=[
                    {
                        "fork": fork,
                        "before": before,
                        "after": {"base": ws.base, "tree": None},
                        "view_changed": True,
                    }
                ],
                details={"path": p, "revision": rev, "commit": commit, **kept_detail(kept)},
            )
    op = vault.oplog.get(op_id)
    assert op is not None
    return op


def _planted(vault: Vault, fork: str, rev: str, commit: str, tip: str | None, under: str = "") -> None:
    """:func:`.plantedrule.refuse_unreached` for a revision no fork's or checkpoint's ref
    names (:func:`.history.names_history`: those are history; an id, a tag, a remote's
    branch by any name are not, plant3 and plant4)."""
    if names_history(vault, rev, fork):
        return
    from ..workspace import plantedrule

    tree = vault.store.commit_tree(tip) if tip else None
    plantedrule.refuse_unreached(vault.store, vault.path, rev, commit, tree, under)
