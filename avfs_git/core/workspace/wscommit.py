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

The functions take the workspace as a :class:`Fork`: what they need of it, so that this
module does not import :mod:`.workspace` (which is built on it).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from ..errors import CorruptStateError, RefMovedError
from ..store import names, refs
from ..store.gitformat import tree_bytes
from ..store.gitnames import refusal
from ..store.gitstore import EMPTY_TREE, GitStore
from ..store.identity import Signatures
from ..store.mergetrees import merge_trees
from ..store.packwriter import OBJ_BLOB, OBJ_TREE, PackWriter
from ..store.treediff import diff_trees
from ..types import MODE_TREE, Change
from . import upper
from .livedir import LiveDir
from .overlay import Overlay
from .overlayentry import DELETED, EMPTY_TREE_ID, FILE, OBJECT, UPPER_FILE, Entry
from .wsstatus import NO_IGNORED, Changes, Ignored, content_check, fsck_read
from .wsview import RACE_TRIES, Node, Raced, View, dirty_dirs


class Fork(Protocol):
    """What commit building needs of a workspace (:class:`.workspace.Workspace` is one)."""

    fork: str
    store: GitStore
    overlay: Overlay
    view: View
    changes: Changes
    captured_ignored: Ignored  # what the last capture left out

    @property
    def ref(self) -> str: ...
    @property
    def base(self) -> str: ...
    @property
    def base_tree(self) -> str: ...
    def tip(self) -> str | None: ...
    def author(self) -> Signatures: ...
    def live_mount(self) -> LiveDir | None: ...
    def mounted_without_upper(self) -> bool: ...
    def base_moved(self, *, view_changed: bool) -> None: ...


def capture(
    ws: Fork,
    pack: PackWriter | None = None,
    *,
    include_ignored: bool = False,
    only: Callable[[str], bool] | None = None,
) -> tuple[str, list[Entry]]:
    """Write blobs and trees for the workspace; returns (root tree id, captured entries).

    ``only``: the entries whose paths it takes (the rest stay out of the tree and the
    overlay keeps them, on top of the commit). Paths git ignores are left out of the tree
    (``include_ignored``: kept) and their entries are not among the captured ones: a checkpoint, which retires what it
    captured, leaves them in the overlay (a venv keeps working across checkpoints). So are
    the ``.gitmodules`` and ``.gitattributes`` files whose contents git refuses
    (:mod:`.gitmodules`, :mod:`.gitattributes`): the tree
    keeps what it held there, and the workspace keeps the file (``not_recorded``).

    Cost: one blob per materialized file plus the trees on changed paths
    (O(changed paths x depth)), never O(tree). The objects go into ``pack`` (which the
    caller finishes), or into a pack of their own.
    """
    ws.captured_ignored = NO_IGNORED
    if include_ignored:
        entries = ws.overlay.all()
    else:
        with ws.overlay.pruning(ws.changes.prune_ignored):
            entries = ws.changes.entries()  # (on an overlay mount: O(changes), see upperjournal)
    if not entries:
        return ws.base_tree, []
    own = pack is None
    pw = pack if pack is not None else ws.store.pack_writer()
    try:
        for tries_left in range(RACE_TRIES - 1, -1, -1):
            try:
                to_build = entries
                if not include_ignored:
                    to_build, entries = _leave_out_ignored(ws, entries)
                if only is not None:
                    to_build = [e for e in to_build if only(e.path)]
                    entries = [e for e in entries if only(e.path)]
                refused: set[str] = set()
                tree = _capture_entries(ws, to_build, pw, refused)
                if refused:
                    entries = [e for e in entries if e.path not in refused]
                break
            except Raced:
                # a file was replaced (and its old bytes unlinked) by a write that came
                # after the entries were read: read them again (objects already in the
                # pack are harmless duplicates)
                if not tries_left:
                    from ..errors import BusyError

                    raise BusyError(
                        f"the workspace of fork {ws.fork} kept changing during the checkpoint",
                        hint="try again",
                        details={"fork": ws.fork},
                    ) from None
                if include_ignored:
                    entries = ws.overlay.all()
                else:
                    with ws.overlay.pruning(ws.changes.prune_ignored):
                        entries = ws.changes.entries()
        if own:
            pw.finish()
    except BaseException:
        if own:
            pw.abort()
        raise
    return tree, entries


def _leave_out_ignored(ws: Fork, entries: list[Entry]) -> tuple[list[Entry], list[Entry]]:
    """(the entries to build a tree from, the entries that count as captured), the
    paths git ignores left out of both: their own entries are dropped, and a deletion
    of each takes them out of git trees that hold them (a fork's or an undo's view)."""
    ws.captured_ignored = NO_IGNORED
    if not any(e.kind != DELETED for e in entries):
        return entries, entries
    ign = ws.captured_ignored = ws.changes.ignored_in(entries)
    if not ign.tops:
        return entries, entries
    _pin_ignored(ws, entries, ign)
    kept = [e for e in entries if not ign.covers(e.path)]
    return kept + [Entry(t, DELETED, 0) for t in sorted(ign.tops)], kept


def _pin_ignored(ws: Fork, entries: list[Entry], ign: Ignored) -> None:
    """Give each ignored path that only a git tree of an ancestor entry holds (a fork's
    or an undo's view) an entry of its own, as it shows now (the view does not change),
    so that retiring the ancestor after a checkpoint does not take it away."""
    have = {e.path for e in entries}
    todo = sorted(t for t in ign.tops if t not in have)
    if not todo:
        return
    with ws.overlay.txn() as db:
        for t in todo:
            chain = [*names.ancestors(t), t]
            got = ws.overlay.get_many(chain)
            if t in got:
                continue
            deepest = max((i for i, q in enumerate(chain) if q in got), default=None)
            if deepest is None:
                continue  # no entry holds it: nothing would take it away
            ok = True
            for q in chain[deepest + 1 : -1]:
                node = ws.view.lookup(q)
                if node is None or not node.is_dir or node.oid is None:
                    ok = False
                    break
                ws.overlay.put(db, Entry(q, OBJECT, MODE_TREE, node.oid, None, ws.view.origin(q)), "pin")
            node = ws.view.lookup(t)
            if ok and node is not None and node.oid is not None and node.entry is None:
                ws.overlay.put(db, Entry(t, OBJECT, node.mode, node.oid), "pin")


def _capture_entries(ws: Fork, entries: list[Entry], pw: PackWriter, refused: set[str]) -> str:
    """The root tree of the workspace made of ``entries`` (see :func:`capture`; ``refused``
    gets the paths of the ``.gitmodules`` and ``.gitattributes`` left out for their
    contents)."""
    dirty = dirty_dirs(entries)
    by_parent: dict[str, list[Entry]] = {}
    for e in entries:
        if e.path:
            by_parent.setdefault(names.parent_of(e.path), []).append(e)
    sub_dirty: dict[str, list[str]] = {}
    for d in dirty:
        if d:
            sub_dirty.setdefault(names.parent_of(d), []).append(names.basename(d))
    root_entry = next((e for e in entries if e.path == ""), None)
    root_oid = root_entry.oid if root_entry is not None else ws.base_tree
    tree = build(ws, "", root_oid, by_parent, dirty, sub_dirty, pw, refused)
    assert tree is not None
    return tree


def build(
    ws: Fork,
    p: str,
    under: str | None,
    by_parent: dict[str, list[Entry]],
    dirty: set[str],
    sub_dirty: dict[str, list[str]],
    pw: PackWriter,
    refused: set[str] | None = None,
) -> str | None:
    """The new tree of directory ``p`` (None when it ends up empty; the root never is).

    Names git refuses (:mod:`.gitnames`) and ``.gitmodules`` and ``.gitattributes`` files
    whose contents it refuses (:mod:`.gitmodules`, :mod:`.gitattributes`; their paths go
    into ``refused``) are left out, the tree keeping what it held there."""
    items = dict(ws.store.tree_items(under))
    subdirs: dict[str, str | None] = {}
    for e in by_parent.get(p, []):
        name = names.basename(e.path)
        if e.kind == DELETED:
            items.pop(name, None)
        elif refusal(name, e.mode) is not None:
            continue  # git refuses the name: left out, the entry stays (see retirable)
        elif (rule := fsck_read(name, e)) is not None:
            # git fsck checks what it holds: the bytes checked are the bytes recorded
            held = items.get(name)
            try:
                data, got = content_check(
                    ws.store,
                    ws.overlay,
                    e,
                    held[0] if held is not None and held[1] != MODE_TREE else None,
                    rule,
                )
            except FileNotFoundError as exc:
                raise _missing(ws, e, exc) from exc
            if got is not None:
                if refused is not None:
                    refused.add(e.path)
                continue  # left out, the entry stays (not captured: see capture)
            if e.kind == FILE:
                assert data is not None
                items[name] = (pw.add(OBJ_BLOB, data), e.mode)
            else:
                assert e.oid is not None
                items[name] = (e.oid, e.mode)
        elif e.kind == FILE:
            assert e.fileid is not None
            try:
                oid = pw.add_file(ws.overlay.file_path(e.fileid))
            except FileNotFoundError as exc:
                raise _missing(ws, e, exc) from exc
            items[name] = (oid, e.mode)
        elif e.mode == MODE_TREE:
            subdirs[name] = e.oid
            items.pop(name, None)
        else:
            assert e.oid is not None
            items[name] = (e.oid, e.mode)
    # directories with changes below them but no entry of their own
    for name in sub_dirty.get(p, []):
        if name not in subdirs:
            existing = items.get(name)
            subdirs[name] = existing[0] if existing is not None and existing[1] == MODE_TREE else None
    for name, sub_oid in subdirs.items():
        child = names.join(p, name)
        if refusal(name, MODE_TREE) is not None:
            continue  # a directory git refuses (GIT~1, '.git '...): left out with all below it
        new: str | None
        if child in dirty:
            new = build(ws, child, sub_oid, by_parent, dirty, sub_dirty, pw, refused)
        else:
            new = sub_oid if sub_oid and sub_oid != EMPTY_TREE and ws.store.tree_items(sub_oid) else None
        items.pop(name, None)
        if new is not None:
            items[name] = (new, MODE_TREE)
    if not items and p:
        return None
    return pw.add(OBJ_TREE, tree_bytes((n, o, m) for n, (o, m) in items.items()))


def _missing(ws: Fork, e: Entry, exc: FileNotFoundError) -> Exception:
    """What a capture raises for the overlay file of ``e`` found missing."""
    assert e.fileid is not None
    now = ws.overlay.get(e.path)
    if now is None or now.seq != e.seq or e.fileid.startswith(UPPER_FILE):
        # replaced since the entries were read (an upper-layer file: the kernel renames
        # and unlinks under a capture at any time)
        return Raced(f"{e.path} was replaced while being captured")
    return CorruptStateError(
        f"overlay file of {e.path} is missing",
        hint=f"bring it back with `avfs checkout {e.path} --from HEAD` or remove it",
    )


def commit_overlay(
    ws: Fork,
    message: str,
    *,
    allow_empty: bool = False,
    rebase: bool = True,
    on: str | None = None,
    only: Callable[[str], bool] | None = None,
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
    """
    base = ws.base
    tip = ws.tip()
    if on is not None:
        if tip != base:
            raise RefMovedError(
                f"fork {ws.fork} moved to {tip} since this workspace was based on {base}",
                details={"fork": ws.fork, "expected": base, "current": tip},
            )
        return _commit_on(ws, message, base, on)
    if tip is not None and tip != base and ws.overlay.has_changes() and rebase and only is None:
        return _rebase_commit(ws, message, base, tip)
    if tip != base and ws.overlay.has_changes():
        raise RefMovedError(
            f"fork {ws.fork} moved to {tip} since this workspace was based on {base};"
            " your uncheckpointed changes are kept",
            hint="`avfs log` shows the new commits; `avfs checkpoint restore HEAD` adopts them"
            " (your changes are kept under a recovery ref, `avfs undo` brings them back)",
            details={"fork": ws.fork, "expected": base, "current": tip},
        )
    # blobs, trees and the commit go into one pack (two files, whatever the count)
    pack = ws.store.pack_writer()
    try:
        tree, captured = capture(ws, pack, only=only)
        if tree == ws.base_tree and not allow_empty:
            pack.abort()
            captured = retirable(ws, captured, tree)
            if captured:
                with ws.overlay.txn() as db:
                    ws.overlay.retire(db, captured)
            return None, captured
        commit = ws.store.create_commit(tree, [base], message, ws.author(), pack=pack)
        pack.finish()
    except BaseException:
        pack.abort()
        raise
    # directories that end up empty are not in git's tree: keep their entries so the
    # workspace still shows them (git semantics: an untracked empty directory)
    seen = captured
    captured = retirable(ws, captured, tree)
    publish(ws, commit, base, captured, f"avfs: {message.splitlines()[0]}", seen=seen)
    return commit, captured


def _commit_on(ws: Fork, message: str, base: str, on: str) -> tuple[str | None, list[Entry]]:
    """:func:`commit_overlay` with ``on`` (a commit on ``base``) between the base and the
    commit of the workspace; ``on`` alone when the workspace shows its tree."""
    pack = ws.store.pack_writer()
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
    publish(ws, commit, base, captured, f"avfs: {message.splitlines()[0]}", seen=seen)
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


def keep_recovery(ws: Fork, reason: str) -> tuple[str, str] | None:
    """Keep the uncheckpointed overlay as a commit under a recovery ref
    (``refs/avfs/recovery/<fork>/-/<id>``, parent: the base) before ``reason`` discards
    it; (ref, commit), or None when there is nothing to keep."""
    if not ws.changes.is_dirty():
        return None
    pack = ws.store.pack_writer()
    try:
        tree, _ = capture(ws, pack)
        msg = f"avfs: uncheckpointed changes of {ws.fork}, kept before {reason}\n"
        commit = ws.store.create_commit(tree, [ws.base], msg, ws.author(), pack=pack)
        pack.finish()
    except BaseException:
        pack.abort()
        raise
    return keep_ref(ws, commit, "", f"keep before {reason}"), commit


def ws_state(ws: Fork) -> dict[str, str | None]:
    """The workspace's state for the op log: its base and, when dirty, its tree."""
    tree = capture(ws)[0] if ws.changes.is_dirty() else None
    return {"base": ws.base, "tree": tree}


def publish(
    ws: Fork,
    commit: str,
    expected: str,
    captured: list[Entry],
    reason: str,
    *,
    seen: list[Entry] | None = None,
) -> None:
    """Move the fork's ref from ``expected`` to ``commit`` (CAS) and retire what the
    commit holds, with a pending record so that a crash between the two is finished by
    the next :func:`.wsbase.sync_base`. Entries the commit did not retire (in use, or written
    since) stay, on top of the new base."""
    upto = max((e.seq for e in captured), default=0)
    with ws.overlay.txn():
        ws.overlay.set_meta("pending", f"{expected} {commit}")
        ws.overlay.set_meta("pending_seq", str(upto))
    try:
        refs.cas_update(ws.store, ws.ref, commit, expected, reason)
    except BaseException:
        with ws.overlay.txn():
            ws.overlay.set_meta("pending", None)
            ws.overlay.set_meta("pending_seq", None)
        raise
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
    ws.base_moved(view_changed=False)


def retire_onto(
    ws: Fork, db: Any, captured: list[Entry], commit: str, *, seen: list[Entry] | None = None
) -> None:
    """In the overlay's transaction ``db``: retire the ``captured`` entries (``commit``
    holds them) and make ``commit`` the base, keeping what the upper layer's renamed
    directories show (:func:`pin_sources`; ``seen``: every entry the capture read,
    retirable or not, where those directories are looked for)."""
    sources = redirect_sources(ws, seen if seen is not None else captured)
    vanishing, emptied = vanishing_dirs(ws, commit)
    ws.overlay.retire(db, captured)
    ws.overlay.set_meta("base", commit)
    pin_sources(ws, db, {**{p: (n, False) for p, n in vanishing.items()}, **sources})
    for d in emptied:
        # git keeps no empty directory, the workspace does (as git's checkout leaves one)
        if ws.view.lookup(d) is None:
            ws.overlay.put(db, Entry(d, OBJECT, MODE_TREE, EMPTY_TREE_ID), "empty")
    if seen is not None:
        _empty_kept_trees(ws, db, seen, captured, commit)


def _empty_kept_trees(ws: Fork, db: Any, seen: list[Entry], retired: list[Entry], commit: str) -> None:
    """A directory entry the commit does not hold (it showed empty: ``mv a/x b/d`` then
    ``rm b/d/*``) stays, to keep the empty directory, while the deletions below it are
    retired with the commit: it must then show an empty tree, not the tree it was made
    from, or the removed files come back."""
    gone = {e.path for e in retired}
    tree = ws.store.commit_tree(commit)
    for e in seen:
        if (
            e.seq
            and e.path
            and e.path not in gone
            and e.kind == OBJECT
            and e.mode == MODE_TREE
            and e.oid != EMPTY_TREE_ID
            and ws.store.tree_lookup(tree, e.path) is None
        ):
            ws.overlay.put(db, Entry(e.path, OBJECT, MODE_TREE, EMPTY_TREE_ID), "empty")


def vanishing_dirs(ws: Fork, commit: str) -> tuple[dict[str, Node], list[str]]:
    """The directories the move to ``commit`` takes away from the base (all they held
    was removed, and git keeps no empty directory) while the workspace shows them:

    - those the upper layer holds as merge directories, as the lower layer holds them
      now: the kernel keeps them as merge directories whose lower half must stay
      readable (a rename of one records a redirect to it; a removal lists it): see
      :func:`pin_sources`;
    - the others, which stay as empty directories while a pure-FUSE mount is live (its
      kernel has them cached; a mounted tree behaves as a disk: a directory goes when
      it is removed); with nothing mounted such a directory goes at this checkpoint.

    Cost: the diff of the two trees (the changes), not the upper layer."""
    out: dict[str, Node] = {}
    emptied: list[str] = []
    old_tree, new_tree = ws.base_tree, ws.store.commit_tree(commit)
    if old_tree == new_tree:
        return out, emptied
    active = ws.overlay.upper_active()
    mounted: bool | None = None
    changes: list[Change] = []
    diff_trees(ws.store, old_tree, new_tree, "", changes)
    candidates: set[str] = set()
    for c in changes:
        for p in (c.path, c.old_path):
            if p:
                candidates.update(names.ancestors(p))
                candidates.add(p)
    for d in sorted(candidates):
        if not d:
            continue
        hit = ws.store.tree_lookup(new_tree, d)
        if hit is not None and hit[1] == MODE_TREE:
            continue  # still a directory in the new base
        real = os.path.join(ws.overlay.upper_dir, d)
        if not active or not os.path.isdir(real) or os.path.islink(real):
            if mounted is None:
                mounted = ws.mounted_without_upper()
            shown = ws.view.lookup(d) if mounted else None
            if shown is not None and shown.is_dir:
                emptied.append(d)
            continue
        r, opaque = upper.dir_marks(real)
        if r is not None or opaque:
            continue  # a redirect (see redirect_sources) or hiding the lower layer
        lp = ws.overlay.lower_path(d)
        if lp is None:
            continue
        node = _lookup_lower(ws, lp)
        if node is not None and node.is_dir and node.oid is not None:
            out[lp] = node
    return out, emptied


def redirect_sources(ws: Fork, captured: list[Entry]) -> dict[str, tuple[Node, bool]]:
    """The lower layer's directories that the upper layer's renamed directories show
    (overlayfs ``redirect_dir``: ``mv d e`` in an overlay mount makes ``upper/e`` with
    an xattr naming ``d``, and a whiteout at ``d``), as the lower layer holds them now,
    with the directories on their way (``path -> (node, is a source)``): the kernel
    reaches a source by its path. Once the base moves (a checkpoint records ``e``, and
    ``d`` no more), the redirect still names ``d``, in the lower layer of the kernel's
    caches and of every reader: see :func:`pin_sources`."""
    out: dict[str, tuple[Node, bool]] = {}
    if not ws.overlay.upper_active():
        return out
    for e in captured:
        if e.kind != OBJECT or e.mode != MODE_TREE or e.seq:
            continue  # a redirect is a directory of the upper layer (seq 0)
        if upper.redirect(os.path.join(ws.overlay.upper_dir, e.path)) is None:
            continue
        src = ws.overlay.lower_path(e.path)
        if src is None:
            continue
        node = _lookup_lower(ws, src)
        if node is None or node.oid is None or not node.is_dir:
            continue
        out[src] = (node, True)
        for a in names.ancestors(src):
            if a and a not in out:
                got = _lookup_lower(ws, a)
                if got is not None and got.oid is not None:
                    out[a] = (got, False)
    return out


def pin_sources(ws: Fork, db: Any, sources: Mapping[str, tuple[Node, bool]]) -> None:
    """After the base moved: each redirect source (``is a source``) the new lower layer
    no longer shows as it was, and each other directory (on a source's way, or a merge
    directory of the upper layer) the new lower layer lost, is pinned there with what
    it held (an entry the upper layer's whiteouts hide from the view), so that renamed
    and emptied directories keep their content in the mount, in status and
    checkpoints, and after a remount; the fold of the upper layer takes the pins away
    with the whiteouts. A directory pinned whole covers what is below it."""
    pinned: list[str] = []
    for path in sorted(sources):
        was, is_source = sources[path]
        if any(path.startswith(p + "/") for p in pinned):
            continue
        now = _lookup_lower(ws, path)
        gone = now is None or not now.is_dir
        if gone or (is_source and now is not None and (now.oid, now.mode) != (was.oid, was.mode)):
            ws.overlay.put(db, Entry(path, OBJECT, was.mode, was.oid), "pin")
            pinned.append(path)


def _rebase_commit(ws: Fork, message: str, base: str, tip: str) -> tuple[str | None, list[Entry]]:
    """Commit the overlay's changes on top of ``tip`` (the fork moved under them):
    libgit2 merges base -> overlay into base -> tip; the commit's one parent is ``tip``
    (a rebase: history stays linear). Conflicts change nothing and are raised."""
    from ..errors import BusyError, ConflictError

    pack = ws.store.pack_writer()
    try:
        tree, captured = capture(ws, pack)
        pack.finish()  # libgit2 reads these objects; unreferenced if we stop here
    except BaseException:
        pack.abort()
        raise
    tip_tree = ws.store.commit_tree(tip)
    index = merge_trees(ws.store, ws.base_tree, tip_tree, tree)
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
    live = ws.live_mount()
    if live is not None:
        # the lower layer becomes the merged commit, which the kernel would not see where
        # it caches the old base: what the moved fork changed is written through the mount
        # (before the ref moves: a failed move leaves those as changes, never a stale view)
        out: list[Change] = []
        diff_trees(ws.store, ws.base_tree, tip_tree, "", out)
        live.reset({p for c in out for p in (c.path, c.old_path) if p}, merged)
    commit = ws.store.create_commit(merged, [tip], message, ws.author())
    publish(ws, commit, tip, captured, f"avfs: {message.splitlines()[0]} (rebased)", seen=seen)
    return commit, captured


def _lookup_lower(ws: Fork, path: str) -> Node | None:
    """What the view without the upper layer (an overlay mount's lower layer) has."""
    with ws.overlay.without_upper():
        return ws.view.lookup(path)


def retirable(ws: Fork, captured: list[Entry], tree: str) -> list[Entry]:
    """The captured entries that ``tree`` (the commit's) now shows: an entry showing
    something at a path the commit does not hold (an empty new directory, a path git
    ignores, a name git refuses: see :mod:`.gitnames`) stays in the overlay (as does a
    ``.gitmodules`` or ``.gitattributes`` left out for its contents, which :func:`capture` does not count as
    captured: the tree may hold an older one there)."""
    return [e for e in captured if e.kind == DELETED or ws.store.tree_lookup(tree, e.path) is not None]
