"""Commit building: the trees of a workspace written as git objects, the commit made on its
base, the fork's ref moved by compare-and-swap, and the captured entries retired onto it.

Checkpoints (:meth:`.workspace.Workspace.commit_overlay`) and merges (:mod:`.merge`) share it.
Cost: one blob per materialized file plus the trees on changed paths (O(changed paths x
depth)), never O(tree). A crash between the ref's move and the retirement is finished by
the next :func:`.wsbase.sync_base` (the ``pending`` record).

What a merge shares, and what it does not:

- ``merge --continue`` commits the resolved overlay on two parents: it captures and
  publishes (:func:`publish`: CAS on the ref, the pending record, retiring what the
  commit holds, the mount's index) exactly as a checkpoint does; only its parents and
  its op-log entry (the caller's, as a checkpoint's is) differ.
- A clean merge and a fast-forward do not: their commit is made from trees (libgit2's
  merge, or the trivial one), not from the overlay, and the target's workspace, checked
  clean, then *shows* the merged tree (``set_base(keep_view=False)``: the view changes,
  where :func:`publish` always keeps it), what was written in the moment kept under a
  recovery ref (:func:`keep_recovery`). That move stays in :mod:`.merge`
  (``_move_target``); a merge whose conflicts are written moves no ref at all.

The steps are modules: capture (:mod:`.wscapture`: the overlay as blobs and trees), the
commit and the ref's move (here), and retiring what the commit holds onto the new base
(:mod:`.wsretire`). They take the workspace as a :class:`.wscapture.Fork`: what they need of
it, so that they do not import :mod:`.workspace` (which is built on them).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from ..errors import RefMovedError
from ..store import refs
from ..store.gitclean import ATTRIBUTES
from ..store.mergetrees import merge_trees
from ..store.treediff import diff_trees
from ..types import MODE_TREE, Change
from . import wsretire
from .overlayentry import DELETED, FILE, OBJECT, Entry
from .upperjournal import remember_commit
from .wsattrs import keep_converted
from .wscapture import Fork, capture
from .wsretire import oid_in, retirable, retire_onto

if TYPE_CHECKING:
    from ..store.packwriter import PackWriter
    from .recordblobs import BlobSink


def commit_overlay(
    ws: Fork,
    message: str,
    *,
    allow_empty: bool = False,
    rebase: bool = True,
    on: str | None = None,
    only: Callable[[str], bool] | None = None,
    exec_of: str | None = None,
) -> tuple[str | None, list[Entry]]:
    """Commit the overlay on the base and move the ref by CAS; returns (commit, captured).

    The commit is None when the tree equals the base tree (nothing to record). When the
    fork moved since the base (a push, a merge, a commit elsewhere), the changes are
    rebased onto the new tip with a three-way merge (``rebase``, when conflict-free);
    otherwise nothing changes and :class:`RefMovedError` (or, for conflicts,
    :class:`ConflictError` with the paths) says why.

    ``on``: a commit whose parent is the base and which is on no ref yet (``proxy exec``'s
    record of the workspace before its command, :func:`snapshot`): the fork's ref moves
    from the base to a commit of the workspace on top of it (to ``on`` itself when the
    workspace still shows its tree), so both land at once. Only while the fork has not
    moved since the base (else :class:`RefMovedError`, nothing changed).

    ``only``: commit the entries of those paths alone (:func:`capture`), the rest staying
    on top of the commit; a fork that moved since the base is then :class:`RefMovedError`,
    never rebased.

    ``exec_of`` (the command of a ``proxy exec`` whose record this is: another writer's
    commit on the person's branch): what git staged in the mount at a path the commit records (neither the old
    base's entry nor the commit's) stays staged, as a plain worktree's index stays when
    another hand commits on its branch; a checkpoint (the person's `git commit --only`
    of the files) sets those entries to the commit's, as git's does (h-staged1).
    """
    base = ws.base
    tip = ws.tip()
    keep_staged = exec_of is not None
    if on is not None:
        if tip != base:
            raise RefMovedError(
                f"fork {ws.fork} moved to {tip} since this workspace was based on {base}",
                details={"fork": ws.fork, "expected": base, "current": tip},
            )
        return _commit_on(ws, message, base, on, keep_staged)
    if tip is not None and tip != base and ws.overlay.has_changes() and rebase and only is None:
        return _rebase_commit(ws, message, base, tip, keep_staged)
    if tip != base and ws.overlay.has_changes():
        raise RefMovedError(
            f"fork {ws.fork} moved to {tip} since this workspace was based on {base};"
            " your uncheckpointed changes are kept",
            hint="`avfs log` shows the new commits; `avfs checkpoint restore HEAD` adopts them"
            " (your changes are kept under a recovery ref, `avfs undo` brings them back)",
            details={"fork": ws.fork, "expected": base, "current": tip},
        )
    # blobs, trees and the commit go into one pack (two files, whatever the count)
    pack = _record_pack(ws) or ws.store.pack_writer()
    try:
        tree, captured = capture(ws, pack, only=only)
        if tree == ws.base_tree and not allow_empty:
            pack.abort()
            captured = retirable(ws, captured, tree)
            if captured:
                with ws.overlay.txn() as db:
                    ws.overlay.retire(db, captured, oid_in(ws.store, tree))
            _remember(ws, ws.base, captured)
            return None, captured
        commit = ws.store.create_commit(tree, [base], message, ws.author(), pack=pack)
        pack.finish()
    except BaseException:
        pack.abort()
        raise
    if (sink := getattr(ws.overlay.recording, "sink", None)) is not None and sink.trees:
        ws.store.know_trees(sink.trees)  # (in the vault now: not read back, record6)
        sink.trees = {}
    # directories that end up empty are not in git's tree: keep their entries so the
    # workspace still shows them (git semantics: an untracked empty directory)
    seen = captured
    captured = retirable(ws, captured, tree)
    publish(
        ws, commit, base, captured, f"avfs: {message.splitlines()[0]}", seen=seen, keep_staged=keep_staged
    )
    _remember(ws, commit, captured)
    return commit, captured


def _record_pack(ws: Fork) -> PackWriter | None:
    """The pack a record's status wrote its blobs into, for this commit to finish
    (core/workspace/recordblobs.py; not imported: it loads with the record stage only)."""
    sink: BlobSink | None = getattr(ws.overlay.recording, "sink", None)
    return sink.take_pack() if sink is not None else None


def _remember(ws: Fork, commit: str, committed: list[Entry]) -> None:
    """Once ``commit`` is the base: what the capture read of an overlay mount's upper
    layer and the commit holds is remembered as showing the base (the next status and
    checkpoint read only what changed since: :func:`.upperjournal.remember_commit`)."""
    if ws.captured_read is None or ws.base != commit:
        return
    pending, read = ws.captured_read
    ws.captured_read = None
    remember_commit(ws.overlay, pending, commit, read, committed, ws.captured_ignored.tops, ws.store)


def _commit_on(
    ws: Fork, message: str, base: str, on: str, keep_staged: bool
) -> tuple[str | None, list[Entry]]:
    """:func:`commit_overlay` with ``on`` (a commit on ``base``) between the base and the
    commit of the workspace; ``on`` alone when the workspace shows its tree."""
    pack = _record_pack(ws) or ws.store.pack_writer()
    try:
        tree, captured = capture(ws, pack)
        if tree == ws.store.commit_tree(on):
            pack.abort()
            commit = on
        else:
            commit = ws.store.create_commit(tree, [on], message, ws.author(), pack=pack)
            pack.finish()
    except BaseException:
        pack.abort()
        raise
    seen = captured
    captured = retirable(ws, captured, tree)
    publish(
        ws, commit, base, captured, f"avfs: {message.splitlines()[0]}", seen=seen, keep_staged=keep_staged
    )
    _remember(ws, commit, captured)
    return commit, captured


def snapshot(ws: Fork, message: str) -> str | None:
    """The workspace as a commit on its base, on no ref (nothing moves, nothing is
    retired); None when it shows the base (nothing to record). Paths git ignores are left
    out, as a checkpoint leaves them."""
    if not ws.changes.is_dirty():
        return None
    pack = ws.store.pack_writer()
    try:
        tree, _ = capture(ws, pack)
        if tree == ws.base_tree:
            pack.abort()
            return None
        commit = ws.store.create_commit(tree, [ws.base], message, ws.author(), pack=pack)
        pack.finish()
    except BaseException:
        pack.abort()
        raise
    return commit


def keep_ref(ws: Fork, commit: str, tag: str, reason: str) -> str:
    """Name ``commit`` by a recovery ref of the fork (``refs/avfs/recovery/<fork>/-/<tag>-<time>-<id>``,
    expired by ``gc`` as the others are); returns the ref."""
    tag = (
        (f"{tag}-" if tag else "") + time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + os.urandom(3).hex()
    )
    ref = refs.recovery_ref(ws.fork, tag)
    refs.cas_update(ws.store, ref, commit, None, f"avfs: {reason}")
    return ref


def keep_recovery(
    ws: Fork, reason: str, dirty: bool | None = None, tree: str | None = None
) -> tuple[str, str] | None:
    """Keep the uncheckpointed overlay as a commit under a recovery ref
    (``refs/avfs/recovery/<fork>/-/<id>``, parent: the base) before ``reason`` discards
    it; (ref, commit), or None when there is nothing to keep. ``dirty``: what
    ``ws.changes.is_dirty()`` answered just before, and ``tree``: a capture of the
    workspace made just before whose bytes are the files' own (no conversion changed
    one), where nothing can write the fork meanwhile (its lock held, no mount): neither
    asked again (:func:`state_and_kept`)."""
    if not (ws.changes.is_dirty() if dirty is None else dirty):
        return None
    msg = f"avfs: uncheckpointed changes of {ws.fork}, kept before {reason}\n"
    if tree is not None:
        commit = ws.store.create_commit(tree, [ws.base], msg, ws.author())
        return keep_ref(ws, commit, "", f"keep before {reason}"), commit
    pack = ws.store.pack_writer()
    try:
        tree, _ = capture(ws, pack, convert=False)  # (the bytes as they are)
        commit = ws.store.create_commit(tree, [ws.base], msg, ws.author(), pack=pack)
        pack.finish()
    except BaseException:
        pack.abort()
        raise
    return keep_ref(ws, commit, "", f"keep before {reason}"), commit


@contextlib.contextmanager
def recovery_kept(ws: Fork, reason: str) -> Iterator[tuple[str, str] | None]:
    """:func:`keep_recovery` for a block that discards the overlay (a restore's move): its
    ref is taken back when the block raises (the move failed: busy, or a push moved the
    branch), so that the ref and the operation naming it are both made or neither."""
    rec = keep_recovery(ws, reason)
    try:
        yield rec
    except BaseException:
        if rec is not None:
            refs.cas_update(ws.store, rec[0], None, rec[1], f"avfs: {reason} failed: kept ref taken back")
        raise


def ws_state(ws: Fork) -> dict[str, str | None]:
    """The workspace's state for the op log: its base and, when dirty, its tree."""
    tree = capture(ws)[0] if ws.changes.is_dirty() else None
    return {"base": ws.base, "tree": tree}


def state_and_kept(ws: Fork, reason: str) -> tuple[dict[str, str | None], tuple[str, str] | None]:
    """:func:`ws_state` and :func:`keep_recovery` (``reason``) from one status and one
    capture, where nothing can write the fork between them (its lock held, no mount: a
    fork's deletion): the state's tree is the recovery's unless git's conversions changed
    a file's bytes in it (a CRLF file under ``text=auto``), which the recovery keeps as
    they are (captured again). Found in the thirty-third round (tidy2, from the review):
    each captured the fork, a delete's whole overlay twice."""
    state = ws_state(ws)
    if state["tree"] is None:
        return state, None
    same = None if ws.captured_converted else state["tree"]
    return state, keep_recovery(ws, reason, dirty=True, tree=same)


def refuse_under_git(ws: Any, action: str) -> None:
    """Refuse ``action`` (GitInProgressError, exit 75), a move of the fork's branch that
    changes what it shows (a restore, a merge into it, a revert), while git has an operation
    open in the fork's mount: the operation's end moves the branch again (`git rebase
    --abort` put a restore's move back, `rebase --continue` its own result over a merge's)
    and its conflicted index would be written whole under it (gitmodel30). A HEAD merely
    detached is git's own: the branch moves under it as before."""
    st = ws.git_state()
    if st is not None and st["in_progress"] is not None:
        ws.refuse_if_git_busy(action, would="move the branch of")


def move_ref(
    store: Any,
    ref: str,
    new: str | None,
    old: str | None,
    reason: str,
    held: tuple[Fork, Any] | None = None,
    *,
    view_changed: bool,
    keep_staged: bool = False,
    merged: bool = False,
    written_ns: int | None = None,
) -> None:
    """Move ``ref`` from ``old`` to ``new`` (CAS). ``held``: (a workspace, what its mount's
    index guard gave, held with git's ``index.lock``); when ``ref`` is its branch, the
    mount's git index is written for ``new`` before the branch moves (mount/indexahead.py):
    a `git commit` in the mount that reads the new HEAD reads the new index, one that read
    the old HEAD fails its own compare-and-swap. ``view_changed``: the move changes what
    the workspace shows (a restore, an undo of one, a revert), whose own write of the
    index follows. ``keep_staged``: what git staged at a path the move changes stays
    (:func:`commit_overlay`'s). ``merged``: a merge's move, whose index written ahead
    may be its final one (mount/indexahead.py; ``written_ns``: the time the files it
    rewrites will show on a pure-FUSE mount, :func:`.wsbase.set_base`'s)."""
    land = None
    if held is not None and held[1] is not None and new and ref == held[0].ref:
        if merged:
            land = held[1](
                new, view_changed=view_changed, keep_staged=keep_staged, merged=True, written_ns=written_ns
            )
        else:
            land = held[1](new, view_changed=view_changed, keep_staged=keep_staged)
    try:
        refs.cas_update(store, ref, new, old, reason)
    except BaseException:
        if land is not None:
            land(False)
        raise
    if land is not None:
        land(True)


def publish(
    ws: Fork,
    commit: str,
    expected: str,
    captured: list[Entry],
    reason: str,
    *,
    seen: list[Entry] | None = None,
    keep_staged: bool = False,
) -> None:
    """Move the fork's ref from ``expected`` to ``commit`` (CAS) and retire what the
    commit holds, with a pending record so that a crash between the two is finished by
    the next :func:`.wsbase.sync_base`. Entries the commit did not retire (in use, or written
    since) stay, on top of the new base. ``keep_staged``: :func:`commit_overlay`'s."""
    upto = max((e.seq for e in captured), default=0)
    _keep_forms(ws, commit, expected, captured if seen is None else [*captured, *seen])
    # the index guard and git's index.lock held from the ref's move to the index's: git in
    # the mount never commits the old base's index on the new commit (mount/indexguard.py)
    with ws.index_guard(git=True) as ahead:
        with ws.overlay.txn():
            ws.overlay.set_meta("pending", f"{expected} {commit}")
            ws.overlay.set_meta("pending_seq", str(upto))
            keep_converted(ws.overlay, captured, ws.captured_converted)
        try:
            move_ref(
                ws.store,
                ws.ref,
                commit,
                expected,
                reason,
                (ws, ahead),
                view_changed=False,
                keep_staged=keep_staged,
            )
        except BaseException:
            with ws.overlay.txn():
                ws.overlay.set_meta("pending", None)
                ws.overlay.set_meta("pending_seq", None)
            raise
        try:
            _retire(ws, commit, captured, seen)
        except Exception:
            # the ref moved: the commit is published, and what it holds is retired as a
            # crash's is (wsretire.finish), not left to another process's sync_base with
            # the pending record and the old base while this checkpoint failed as if
            # nothing was committed. Should that fail too, the record stays for it.
            with ws.overlay.txn():
                wsretire.finish(ws, commit, upto)
                ws.overlay.set_meta("pending", None)
                ws.overlay.set_meta("pending_seq", None)
        ws.base_moved(view_changed=False)


def _keep_forms(ws: Fork, commit: str, expected: str, captured: list[Entry]) -> None:
    """A mount whose base becomes ``commit`` keeps, before the ref moves, the bytes it shows
    of each file a changed ``.gitattributes`` converts otherwise (its blob the same), as
    git's work tree keeps them after `git commit` (:func:`.wsforms.keep_forms`); a file the
    workspace holds is left as it is. Nothing is asked where the commit is the base and the
    captured entries (``.gitattributes`` not among them, no directory moved) could change
    no attribute file."""
    if expected == ws.base and not any(
        e.path.rpartition("/")[2] == ATTRIBUTES or (e.kind == OBJECT and e.mode == MODE_TREE)
        for e in captured
    ):
        return
    from .wsforms import keep_forms  # (only a move that changes an attribute file)

    keep_forms(ws, ws.base_tree, ws.store.commit_tree(commit))


def _retire(ws: Fork, commit: str, captured: list[Entry], seen: list[Entry] | None) -> None:
    """:func:`publish`'s retirement of what ``commit`` holds, and the pending record dropped."""
    with ws.overlay.txn() as db:
        # a captured entry whose row went since (a rename or rm after the capture read
        # it) leaves its path showing the old base there: the new base must not show
        # the committed content in its place (the renamed file's old name came back)
        gone = [e.path for e in captured if e.seq > 0]
        have = ws.overlay.get_many(gone) if gone else {}
        gone = [p for p in gone if p not in have]
        before = {p: ws.view.lookup(p) for p in gone}
        retire_onto(ws, db, captured, commit, seen=seen)
        for p, was in before.items():
            now = ws.view.lookup(p)
            if (was is None) != (now is None) or (
                was is not None and now is not None and (was.oid, was.mode) != (now.oid, now.mode)
            ):
                if was is None:
                    ws.overlay.put(db, Entry(p, DELETED, 0), "keep")
                elif was.oid is not None:
                    ws.overlay.put(db, Entry(p, OBJECT, was.mode, was.oid), "keep")
        ws.overlay.set_meta("pending", None)
        ws.overlay.set_meta("pending_seq", None)


def _rebase_commit(
    ws: Fork, message: str, base: str, tip: str, keep_staged: bool = False
) -> tuple[str | None, list[Entry]]:
    """Commit the overlay's changes on top of ``tip`` (the fork moved under them):
    libgit2 merges base -> overlay into base -> tip; the commit's one parent is ``tip``
    (a rebase: history stays linear). Conflicts change nothing and are raised."""
    from ..errors import BusyError, ConflictError

    pack = _record_pack(ws) or ws.store.pack_writer()
    try:
        tree, captured = capture(ws, pack)
        pack.finish()  # libgit2 reads these objects; unreferenced if we stop here
    except BaseException:
        pack.abort()
        raise
    tip_tree = ws.store.commit_tree(tip)
    # the moved fork's attribute files say how paths merge: `git rebase` replays onto its
    # checkout (:mod:`..store.mergeattrs`)
    from ..store.mergeattrs import merge_attributes

    attrs = merge_attributes(ws.store, ws.base_tree, tip_tree, tree)
    index = merge_trees(ws.store, ws.base_tree, tip_tree, tree, None, attrs)
    conflicts = index.conflicts
    if conflicts:
        paths = sorted({(a or o or t).path for a, o, t in conflicts})  # type: ignore[union-attr]
        raise ConflictError(
            f"fork {ws.fork} moved to {tip} since this workspace was based on {base}, and"
            f" your uncheckpointed changes conflict with it in {len(paths)} path(s); they are kept",
            hint="`avfs checkpoint restore HEAD` adopts the new commits (your changes are kept"
            " under a recovery ref), or edit the paths so they no longer conflict",
            details={"fork": ws.fork, "expected": base, "current": tip, "paths": paths},
        )
    merged = index.write_tree()
    seen = captured
    captured = retirable(ws, captured, tree)
    for e in captured:
        # a file a mount holds open keeps its entry after the commit (see retire): that is
        # only right when the merge left its content as the workspace shows it
        if (
            e.kind == FILE
            and e.fileid
            and ws.overlay.in_use(e.fileid)
            and ws.store.tree_lookup(merged, e.path) != ws.store.tree_lookup(tree, e.path)
        ):
            raise BusyError(
                f"{e.path} is open for writing and the moved fork changed it too",
                hint="close it and checkpoint again",
                details={"path": e.path, "expected": base, "current": tip},
            )
    if merged == tip_tree and not captured:
        return None, captured
    commit = ws.store.create_commit(merged, [tip], message, ws.author())
    _refuse_planted(ws, commit, seen, tip)
    live = ws.live_mount()
    if live is not None:
        # the lower layer becomes the merged commit, which the kernel would not see where
        # it caches the old base: what the moved fork changed is written through the mount
        # (before the ref moves: a failed move leaves those as changes, never a stale view)
        out: list[Change] = []
        diff_trees(ws.store, ws.base_tree, tip_tree, "", out)
        live.reset({p for c in out for p in (c.path, c.old_path) if p}, merged)
    reason = f"avfs: {message.splitlines()[0]} (rebased)"
    publish(ws, commit, tip, captured, reason, seen=seen, keep_staged=keep_staged)
    return commit, captured


def _refuse_planted(ws: Fork, commit: str, seen: list[Entry], tip: str) -> None:
    """A rebased ``commit`` whose overlay's changes (``seen``) join a name of git's own
    state to the moved fork's (half of a repository in each: the config here, ``HEAD``,
    ``objects/``, ``refs/`` there) is refused before anything moves, the changes kept
    (:func:`.plantedrule.refuse_merged`; the rule loaded only where one is a name of git's
    own state)."""
    from ..store.names import git_state_name

    if not any(git_state_name(p) is not None for e in seen for p in e.path.split("/")[1:]):
        return
    from .plantedrule import dirs_of, refuse_merged

    refuse_merged(
        ws.store,
        commit,
        dirs_of(e.path for e in seen),
        f"checkpoint of fork {ws.fork} rebased onto {tip}",
        {"fork": ws.fork, "current": tip},
    )
