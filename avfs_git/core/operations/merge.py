"""Merging forks: a libgit2 three-way merge of commits, conflicts returned as data.

``merge(vault, source, target)``:

1. both sides' uncheckpointed changes are checkpointed first (so nothing is merged from a
   stale state; ``capture=False`` refuses instead);
2. under the target's fork lock: up to date (nothing to do), a fast-forward (unless
   ``no_ff``), or libgit2's ``merge_trees`` of the merge base's, the target's and the
   source's trees (:mod:`..store.mergetrees`: renames found; never a checkout);
3. clean: one merge commit with two parents, the target's ref moved by compare-and-swap
   and its workspace pointed at it; with conflicts nothing moves, and the conflicts come
   back as data (path, kind, and the ancestor/ours/theirs ids and modes), unless
   ``write_conflicts``: then the target's workspace shows the merge with diff3-style
   markers in conflicted text files (binary conflicts: both versions kept under
   ``PATH~ours`` and ``PATH~theirs``), a merge state is recorded, and
   :func:`merge_continue` makes the merge commit once no markers remain, or
   :func:`merge_abort` restores the exact pre-merge state.

Every merge, continue and abort that changes something is an operation in the op log
(``avfs undo`` reverses it).

libgit2's merge machinery (``merge_trees``, its index and conflict entries, the merge
favour) is the store's (:mod:`..store.mergetrees`), as is everything else libgit2 does for
a merge: this module never touches pygit2.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..errors import (
    BusyError,
    InternalError,
    MergeInProgressError,
    UnrelatedHistoriesError,
    UsageError,
)
from ..store import names, packwriter, refs
from ..store.gitstore import EMPTY_TREE
from ..store.mergetrees import MergedIndex, criss_cross, merge_commits, merge_trees
from ..store.trivialmerge import _trivial_merge
from ..types import CommitId
from ..vaults.daemonproc import serving_kept
from ..vaults.oplog import kept_paths
from ..workspace.ignore import globals_kept

# an open merge's state and the questions about it live in .mergestate (the workspace, the
# worktree and the vault ask them without importing this module); merge_state, open_merge
# and refuse_if_merging are this module's public API too (docs/api.md)
from ..workspace.mergestate import merge_state as merge_state
from ..workspace.mergestate import open_merge as open_merge
from ..workspace.mergestate import refuse_if_merging as refuse_if_merging
from ..workspace.upperjournal import status_kept
from ..workspace.wscommit import refuse_under_git
from ..workspace.wsfold import tops_kept
from . import mergeguard
from .mergeconflicts import Conflict, _changed, _classify, _record, show_conflicts
from .mergeresult import ChangedPaths
from .mergeresult import MergeResult as MergeResult  # (this module's public API: docs/api.md)

if TYPE_CHECKING:
    from ..store.packwriter import PackWriter
    from ..vaults.vault import Vault
    from ..workspace.workspace import Workspace

MARKERS = (b"<<<<<<< ", b"\n=======\n", b">>>>>>> ")


def remote_branch(vault: Vault, source: str) -> str | None:
    """The remote-tracking ref ``source`` names (``origin/agent2`` ->
    ``refs/remotes/origin/agent2``, made by `avfs fetch`) when it is not a fork of ``vault``
    and that ref exists; else None (``source`` is then a fork's name)."""
    if "/" not in source or vault.has_fork(source):
        return None
    candidate = refs.REMOTES + source
    return candidate if refs.read_ref(vault.store, candidate) is not None else None


def _check_request(vault: Vault, source: str, target: str, source_ref: str | None, favor: str | None) -> None:
    """Refuse a merge of a fork into itself, of a fork that does not exist, or with an
    unknown ``favor``."""
    if source_ref is None:
        names.check_fork_name(source)
        if source == target:
            raise UsageError(f"cannot merge fork {source} into itself", hint="name another fork to merge")
        vault.require_fork(source)
    vault.require_fork(target)
    if favor not in (None, "ours", "theirs"):
        raise UsageError(f"favor must be ours or theirs, not {favor!r}")


def _refuse_open_merges(
    ws: Workspace, src_ws: Workspace | None, source: str, target: str, dry_run: bool
) -> None:
    """Refuse while a merge into the target is open, or (unless ``dry_run``) one into the
    source, whose capture would commit the markers of its own open merge."""
    st = merge_state(ws)
    if st is not None:
        raise MergeInProgressError(
            f"a merge of {st['source']} into {target} is in progress",
            hint="resolve the conflicts and run `avfs merge --continue`, or `avfs merge --abort`",
            details={"target": target, "fork": target, "source": st["source"], "theirs": st["theirs"]},
        )
    if src_ws is not None and not dry_run:
        # its capture would commit the markers of its own open merge
        refuse_if_merging(src_ws, f"merging {source} (which checkpoints it first)")


def _tips(
    vault: Vault, ws: Workspace, source: str, target: str, source_ref: str | None, allow_unrelated: bool
) -> tuple[str, str, str | None]:
    """(ours, theirs, their merge base) now; refuses a source that is gone, or unrelated
    histories unless ``allow_unrelated``."""
    ours = ws.tip()
    theirs = refs.read_ref(vault.store, source_ref or refs.fork_ref(source))
    if theirs is None:
        from ..errors import RevisionNotFoundError

        raise RevisionNotFoundError(f"{source_ref or source} does not exist", details={"ref": source_ref})
    assert ours is not None
    try:
        base = vault.store.merge_base(ours, theirs)
    except InternalError as exc:  # (libgit2 takes a damaged pack as unusable whole: named)
        from ..store.unreadable import first_unreadable  # (only here: a merge's modules)

        named = first_unreadable(vault.store, [vault.store.commit_tree(c) for c in (ours, theirs)])
        if named is None:
            raise
        raise named from exc
    if base is None and not allow_unrelated:
        what = (
            f"{source_ref.removeprefix(refs.REMOTES)} (a remote branch)" if source_ref else f"fork {source}"
        )
        raise UnrelatedHistoriesError(
            f"{what} and fork {target} share no history",
            hint="pass --allow-unrelated to merge them anyway",
            details={"ours": ours, "theirs": theirs},
        )
    return ours, theirs, base


def _commit_merge(
    vault: Vault,
    ws: Workspace,
    tree: str,
    ours: str,
    theirs: str,
    source: str,
    msg: str,
    dry_run: bool,
    pack: PackWriter | None = None,
    held: bool = False,
    state_dirs: set[str] | None = None,
) -> tuple[str, int | None]:
    """The merge commit of ``tree`` (parents ours and theirs); unless ``dry_run`` (then it
    is a preview: see MergeResult), the target moved to it and the operation recorded.
    ``pack``: the one holding the merged trees; the commit joins them there, and the pack
    is finished before any ref moves. ``state_dirs``: where the merge joined a name of git's
    own state of theirs to ours' (:func:`_state_dirs`), looked at before anything moves
    (:func:`.plantedrule.refuse_merged`). Returns (commit, operation id)."""
    commit = vault.store.create_commit(tree, [ours, theirs], msg, ws.author(), pack)
    if pack is not None:
        pack.finish()
    if state_dirs:
        from ..workspace.plantedrule import refuse_merged  # (only a merge that joins such names)

        refuse_merged(
            vault.store,
            commit,
            state_dirs,
            f"merge of {source} into {ws.fork}",
            {"source": source, "target": ws.fork},
        )
    if dry_run:
        return commit, None
    # the op log's lock before the target moves, the record made in it (as a checkpoint's,
    # `OpLog.held`): held, damaged or read-only, the merge is refused with nothing moved,
    # where it moved the target and said "not recorded" (`undo` could not take it back)
    with vault.oplog.held("merge"):
        rec = mergeguard.move_target(ws, commit, ours, f"avfs: merge {source}", held=held)
        kept = kept_paths(ws.kept_open)
        op = _record(
            vault, "merge", f"merge {source} into {ws.fork}", ws.fork, ours, commit, ws.ref, rec, kept
        )
    return commit, op


def merge(
    vault: Vault,
    source: str,
    target: str | None = None,
    *,
    no_ff: bool = False,
    dry_run: bool = False,
    favor: str | None = None,
    write_conflicts: bool = False,
    allow_unrelated: bool = False,
    capture: bool = True,
    message: str | None = None,
    source_ref: str | None = None,
    expect_head: str | None = None,
) -> MergeResult:
    """Merge fork ``source`` into ``target`` (default: the vault's default fork). ``source``
    may also name a remote-tracking branch that `avfs fetch` made (``origin/agent2``) when no
    fork has that name (:func:`remote_branch`): the CLI, MCP and the API resolve it here.

    ``expect_head``: only if ``target``'s branch is at that revision now (before its
    uncheckpointed changes are captured): else ExpectMismatchError, nothing done.

    ``source_ref``: merge that ref instead (a remote-tracking branch: ``avfs pull``);
    ``source`` is then only its name in messages and results.

    A merge into a fork written through its mount in the moment between the fork's
    capture and its move is tried again (its new changes captured first), with a growing
    pause, for as long as the vault waits for a lock (``AVFS_LOCK_WAIT``, 10 s by default);
    then :class:`.errors.BusyError` (``busy``, exit 75) with ``details.attempts``. A fork
    that is not mounted never gets there: its writers wait for the merge
    (:func:`.mergeguard.writers_held`)."""
    deadline = time.monotonic() + vault.lock_wait_s
    pause, attempts = 0.05, 0
    while True:
        attempts += 1
        try:
            # (each commit's tree read once a try, the ignore rules' globals, which of the
            # target's upper layer's top directories stay: wsfold.tops_kept, and a status
            # of an overlay mount where its journal names nothing since: upperjournal.status_kept; whether
            # the target's mount daemon serves it: daemonproc.serving_kept)
            with vault.store.commit_trees_kept(), globals_kept(), tops_kept(), status_kept(), serving_kept():
                result = _merge_once(
                    vault, source, target, no_ff=no_ff, dry_run=dry_run, favor=favor,
                    write_conflicts=write_conflicts, allow_unrelated=allow_unrelated,
                    capture=capture, message=message, source_ref=source_ref,
                    expect_head=expect_head,
                )  # fmt: skip
            if not dry_run:  # (a merge's pack: rolled up with the others past their limit)
                packwriter.maybe_consolidate(vault.path)
            return result
        except BusyError as exc:
            if exc.details.get("reason") != mergeguard.CHANGED_DURING_MERGE:
                raise
            if time.monotonic() + pause > deadline:
                exc.details["attempts"] = attempts
                raise
            if expect_head is not None:  # it was there: the fork is at its capture now
                expect_head = refs.read_ref(vault.store, refs.fork_ref(target or vault.default_fork))
        time.sleep(pause)
        pause = min(pause * 2, 1.0)


def _merge_once(
    vault: Vault,
    source: str,
    target: str | None = None,
    *,
    no_ff: bool = False,
    dry_run: bool = False,
    favor: str | None = None,
    write_conflicts: bool = False,
    allow_unrelated: bool = False,
    capture: bool = True,
    message: str | None = None,
    source_ref: str | None = None,
    expect_head: str | None = None,
) -> MergeResult:
    """One try of :func:`merge`."""
    from . import checkpoint

    target = target or vault.default_fork
    if source_ref is None:
        source_ref = remote_branch(vault, source)
    _check_request(vault, source, target, source_ref, favor)
    ws = vault.workspace(target)
    src_ws = vault.workspace(source) if source_ref is None else None
    _refuse_open_merges(ws, src_ws, source, target, dry_run)
    if not dry_run:  # (git's operation open in the target's mount: its end would move the branch again)
        refuse_under_git(ws, "a merge")
    if expect_head is not None:  # before anything is captured: a refused merge changes nothing
        with vault.lock(target):
            checkpoint.check_head(vault, target, expect_head)
    captured: list[dict[str, str]] = []
    if not dry_run:
        mergeguard.refuse_open_files(ws, target)  # before capturing: a refused merge changes nothing
        mergeguard.refuse_staged(ws, source)
        if src_ws is not None:
            captured = mergeguard.capture(vault, src_ws, source, target, capture)
    exec_lock = contextlib.nullcontext() if dry_run else checkpoint.no_exec_running(vault, target)
    held = contextlib.ExitStack()  # the target's writers, held until its new view is set
    avoid = _source_names(vault, ws, source_ref or refs.fork_ref(source))
    with exec_lock, vault.lock(target), held:
        ws.kept_open.clear()
        guarded = held.enter_context(mergeguard.writers_held(ws, dry_run, avoid or frozenset())) is not None
        ws.sync_base()
        checkpoint.check_head(vault, target, expect_head)
        if not dry_run:
            captured = mergeguard.capture(vault, ws, source, target, capture) + captured
            mergeguard.refuse_open_files(ws, target)
        ours, theirs, base = _tips(vault, ws, source, target, source_ref, allow_unrelated)
        if avoid is not None and not dry_run:
            _refuse_moved_source(vault, ws, theirs, avoid)

        result = functools.partial(_result, vault, ws, source, (ours, theirs, base), captured, dry_run)

        # a dry run sees the workspaces as a real merge would after capturing them: their
        # trees with uncheckpointed changes (objects written, unreferenced; no ref moves)
        ours_dirty = dry_run and ws.is_dirty()
        theirs_dirty = dry_run and src_ws is not None and src_ws.is_dirty()
        ours_tree = _current_tree(ws) if ours_dirty else vault.store.commit_tree(ours)
        theirs_tree = (
            _current_tree(src_ws) if theirs_dirty and src_ws is not None else vault.store.commit_tree(theirs)
        )
        if (theirs == ours or base == theirs) and not theirs_dirty:
            return result("up_to_date", ours)
        _refuse_remote(vault, source_ref, theirs, (ours_tree, theirs_tree), (source, target))
        if base == ours and not no_ff and not ours_dirty:
            changed = ChangedPaths(vault.store, ours_tree, theirs_tree)  # listed when first read
            if dry_run:
                return result("would_fast_forward", theirs, changed=changed)
            with vault.oplog.held("merge"):  # (as _commit_merge's)
                rec = mergeguard.move_target(
                    ws, theirs, ours, f"avfs: merge {source} (fast-forward)", held=guarded
                )
                what = f"merge {source} into {target} (fast-forward)"
                op = _record(
                    vault, "merge", what, target, ours, theirs, ws.ref, rec, kept_paths(ws.kept_open)
                )
            return result("fast_forward", theirs, changed=changed, op=op)
        anc_tree = vault.store.commit_tree(base) if base else EMPTY_TREE
        msg = message or f"avfs: merge {source} into {target}\n"
        trees = (anc_tree, ours_tree, theirs_tree)
        whole = _over_all_bases(vault, ours, theirs, base, ours_dirty or theirs_dirty)
        trivial = base is not None and not whole
        fast = (
            _fast_merge(vault, ws, trees, (ours, theirs), source, msg, dry_run, guarded) if trivial else None
        )
        if fast is not None:
            commit, made, tree = fast
            changed = ChangedPaths(vault.store, ours_tree, tree)  # listed when first read
            return result("would_merge" if dry_run else "merged", commit, changed=changed, op=made)
        index = _merged_index(vault, trees, (ours, theirs), favor, whole)
        conflicts = _classify(vault.store, index, ours_tree, theirs_tree, ours)
        if not conflicts:
            tree, paths = _written(vault, index, ours_tree)
            commit, made = _commit_merge(
                vault, ws, tree, ours, theirs, source, msg, dry_run, None, guarded, _state_dirs(paths)
            )
            changed = ChangedPaths(vault.store, ours_tree, tree, paths)
            return result("would_merge" if dry_run else "merged", commit, changed=changed, op=made)
        if dry_run:
            return result("would_conflict", None, conflicts)
        if not write_conflicts:
            return result("conflicts", ours, conflicts)
        sides = (ours, theirs, base)
        shown = show_conflicts(vault, ws, index, conflicts, source, sides, msg, held.close, guarded)
        return result("conflicts_written", ours, conflicts, *shown)


def _refuse_remote(
    vault: Vault, source_ref: str | None, theirs: str, trees: tuple[str, str], names: tuple[str, str]
) -> None:
    """A remote's branch (``source_ref``; None: a fork): its trees never came through
    avfs's writes, looked at where they differ from ours' (:func:`.mergeplanted.refuse_remote`)."""
    if source_ref is not None:
        from .mergeplanted import refuse_remote

        refuse_remote(vault, theirs, _changed(vault.store, *trees), *names)


def _result(
    vault: Vault,
    ws: Workspace,
    source: str,
    tips: tuple[str, str, str | None],
    captured: list[dict[str, str]],
    dry_run: bool,
    status: str,
    commit: str | None,
    conflicts: tuple[Conflict, ...] | list[Conflict] = (),
    changed: Sequence[str] = (),
    op: int | None = None,
) -> MergeResult:
    """What :func:`_merge_once` answers (``tips``: ours, theirs, their base); the files its
    move left, open for writing, from the target's workspace (livewrite2)."""
    ours, theirs, base = tips
    return MergeResult(
        vault.name, source, ws.fork, status, CommitId(ours), CommitId(theirs),
        CommitId(base) if base else None, CommitId(commit) if commit else None,
        tuple(conflicts), changed, tuple(captured), op, dry_run, kept_paths(ws.kept_open),
    )  # fmt: skip


def _over_all_bases(vault: Vault, ours: str, theirs: str, base: str | None, dirty: bool) -> bool:
    """Merge the commits over all their bases (git's virtual ancestor), not the trees over
    ``base``: a criss-cross history (:func:`..store.mergetrees.criss_cross`), both sides
    committed (not a dry run's uncheckpointed trees); in a lazy vault too, what it reads
    fetched first (:func:`..store.mergetrees.commits_merge_blobs`)."""
    return base is not None and not dirty and criss_cross(vault.store, ours, theirs, base)


def _merged_index(
    vault: Vault, trees: tuple[str, str, str], tips: tuple[str, str], favor: str | None, whole: bool
) -> MergedIndex:
    """libgit2's merge: of the commits ``tips`` over all their merge bases when ``whole``
    (:func:`_over_all_bases`), else of ``trees`` (ancestor's, ours, theirs); the ``merge``
    attributes of ours' tree honoured as `git merge` in its checkout does
    (:mod:`..store.mergeattrs`)."""
    from ..store.mergeattrs import merge_attributes  # (only a merge that reaches libgit2 reads them)

    attrs = merge_attributes(vault.store, *trees)
    if whole:
        return merge_commits(vault.store, *tips, favor, attrs)
    return merge_trees(vault.store, *trees, favor, attrs)


def _fast_merge(
    vault: Vault,
    ws: Workspace,
    trees: tuple[str, str, str],
    tips: tuple[str, str],
    source: str,
    msg: str,
    dry_run: bool,
    held: bool = False,
) -> tuple[str, int | None, str] | None:
    """Where the sides changed different paths (:mod:`..store.trivialmerge`): theirs applied
    to ours, O(changes), the merged trees and the merge commit written as one pack and
    committed (:func:`_commit_merge`). Returns (commit, operation id, tree); None when a path
    needs libgit2's merge (nothing written then)."""
    pack = vault.store.pack_writer()
    try:
        dirs: set[str] = set()
        fast = _trivial_merge(vault.store, *trees, list_changed=False, pack=pack, state_dirs=dirs)
        if fast is None:
            pack.abort()
            return None
        commit, made = _commit_merge(
            vault, ws, fast[0], tips[0], tips[1], source, msg, dry_run, pack, held, state_dirs=dirs
        )
    except BaseException:
        pack.abort()
        raise
    return commit, made, fast[0]


def _written(vault: Vault, index: MergedIndex, ours_tree: str) -> tuple[str, tuple[str, ...]]:
    """libgit2's merged tree, written, and the paths it changes in ours' (what the result
    lists as ``changed``, and where :func:`_state_dirs` looks)."""
    tree = index.write_tree()
    return tree, _changed(vault.store, ours_tree, tree)


def _state_dirs(paths: tuple[str, ...]) -> set[str]:
    """Where libgit2's merge may join a name of git's own state to ours' (the trivial
    merge finds them as it walks): :func:`.plantedrule.dirs_of` of the paths it brought
    (listed once: the result's ``changed`` too)."""
    from ..workspace.plantedrule import dirs_of

    return dirs_of(paths)


def _source_names(vault: Vault, ws: Workspace, ref: str) -> frozenset[str] | None:
    """The names at the root of ``ref``'s tree now, where the target's workspace has an
    upper layer an overlay mount left (None otherwise): the merged view may have something
    there, so an ignored directory of that layer at one of them is folded rather than left
    (:func:`.mergeguard.writers_held`)."""
    if not ws.overlay.with_upper or not ws.overlay.upper_active() or ws.live_mount() is not None:
        return None
    tip = refs.read_ref(vault.store, ref)
    return frozenset(vault.store.tree_items(vault.store.commit_tree(tip))) if tip else frozenset()


def _refuse_moved_source(vault: Vault, ws: Workspace, theirs: str, avoid: frozenset[str]) -> None:
    """A source that moved since its names were read (:func:`_source_names`) to a tree
    with something where the target's upper layer keeps a directory: tried again
    (:func:`merge`), the new names read and that directory folded before the merge holds
    the target's writers (the fold commits on its own)."""
    if not ws.overlay.upper_active() or ws.live_mount() is not None:
        return
    now = frozenset(vault.store.tree_items(vault.store.commit_tree(theirs)))
    if (now - avoid) & ws.overlay.upper_root_names():
        raise BusyError(
            f"fork {ws.fork}'s merge source moved while it was being merged; nothing moved",
            hint="merge again",
            details={"fork": ws.fork, "reason": mergeguard.CHANGED_DURING_MERGE},
        )


def _current_tree(ws: Workspace) -> str:
    pack = ws.store.pack_writer()
    try:
        tree, _ = ws.capture(pack)
        pack.finish()
    except BaseException:
        pack.abort()
        raise
    return tree


def merge_continue(vault: Vault, target: str | None = None, *, message: str | None = None) -> MergeResult:
    """Make the merge commit of a merge whose conflicts were written and resolved
    (:func:`.mergeend.merge_continue`)."""
    from .mergeend import merge_continue as run

    return run(vault, target, message=message)


def merge_abort(vault: Vault, target: str | None = None) -> MergeResult:
    """Give up a merge whose conflicts were written: the exact pre-merge state comes back
    (:func:`.mergeend.merge_abort`)."""
    from .mergeend import merge_abort as run

    return run(vault, target)
