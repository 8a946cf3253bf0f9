"""Retiring what a commit holds: the captured entries dropped from the overlay once the
fork's ref is on the commit, the commit made the base, and what the workspace shows kept
as it was: the directories an overlay mount's renamed directories reach in the lower
layer (overlayfs redirects), the files its whiteouts hide (copy-up origins) and the merge
directories pinned, emptied directories kept.
Used by :func:`.wscommit.publish` and by :mod:`.wsbase` (a crashed checkpoint finished, a
moved ref adopted).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ..store import names
from ..store.gitstore import GitStore
from ..store.treediff import diff_trees
from ..types import MODE_BLOB, MODE_EXEC, MODE_LINK, MODE_TREE, Change, ChangeStatus
from . import origins, upper
from .overlayentry import DELETED, EMPTY_TREE_ID, FILE, OBJECT, Entry
from .wsattrs import converted_paths
from .wscapture import Fork
from .wsview import Node


def retire_onto(
    ws: Fork, db: Any, captured: list[Entry], commit: str, *, seen: list[Entry] | None = None
) -> None:
    """In the overlay's transaction ``db``: retire the ``captured`` entries (``commit``
    holds them) and make ``commit`` the base, keeping what the upper layer's renamed
    directories show (:func:`pin_sources`; ``seen``: every entry the capture read,
    retirable or not, where those directories are looked for)."""
    sources = redirect_sources(ws, seen if seen is not None else captured)
    vanishing, emptied = vanishing_dirs(ws, commit)
    ws.overlay.retire(db, captured, oid_in(ws.store, ws.store.commit_tree(commit)))
    ws.overlay.set_meta("base", commit)
    pin_sources(ws, db, {**{p: (n, False) for p, n in vanishing.items()}, **sources})
    for d in emptied:
        # git keeps no empty directory, the workspace does (as git's checkout leaves one)
        if ws.view.lookup(d) is None:
            ws.overlay.put(db, Entry(d, OBJECT, MODE_TREE, EMPTY_TREE_ID), "empty")
    if seen is not None:
        _empty_kept_trees(ws, db, seen, captured, commit)


def oid_in(store: GitStore, tree: str) -> Callable[[str], str | None]:
    """The blob ``tree`` holds at a path (for :meth:`.overlay.Overlay.retire`'s kept times)."""

    def oid(path: str) -> str | None:
        hit = store.tree_lookup(tree, path)
        return None if hit is None else hit[0]

    return oid


def _empty_kept_trees(ws: Fork, db: Any, seen: list[Entry], retired: list[Entry], commit: str) -> None:
    """A directory entry the commit does not hold (it showed empty: ``mv a/x b/d`` then
    ``rm b/d/*``) stays, to keep the empty directory, while the deletions below it are
    retired with the commit: it must then show an empty tree, not the tree it was made
    from, or the removed files come back. Only such a directory: one with nothing retired
    below it still shows what it was made from (git moved the base under a directory
    `git mv` had renamed: ``retired`` is empty, and the files it holds are the view's)."""
    gone = {e.path for e in retired}
    above = names.ancestors_of_all(gone)
    tree = ws.store.commit_tree(commit)
    for e in seen:
        if (
            e.seq
            and e.path
            and e.path not in gone
            and e.path in above
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
    # (only what the base held: an added path is a file of the new tree, its directories
    # the new tree's; an exec's 20,000 new files each looked up and stat'ed here, record5)
    changed = [p for c in changes if c.status is not ChangeStatus.ADDED for p in (c.path, c.old_path) if p]
    candidates = names.ancestors_of_all(changed) | set(changed)
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


def seen_after(ws: Fork, reset: Iterable[str]) -> list[Entry]:
    """The entries of a live overlay mount where its renamed directories and whiteouts
    are (:func:`redirect_sources`) once a status has read it and ``reset`` (paths) were
    rewritten through it: what that status read (``ws.changes.last_read``: the upper layer
    where it can differ from the base, a new directory git ignores shown empty and not
    read, as a checkpoint's ``seen``), with the upper layer at and below ``reset``. A
    merge or restore into a mount holding an installed ``node_modules`` read all of it
    (13,963 entries, ~0.2 s of CPU a merge). Without a status's read: every entry."""
    read, ws.changes.last_read = ws.changes.last_read, None
    if read is None:
        return ws.overlay.all()
    with ws.overlay.pruning(ws.changes.prune_ignored):
        return ws.overlay.changed_entries([*(e.path for e in read), *reset])


def redirect_sources(ws: Fork, captured: list[Entry]) -> dict[str, tuple[Node, bool]]:
    """The lower layer's directories that the upper layer's renamed directories show
    (overlayfs ``redirect_dir``: ``mv d e`` in an overlay mount makes ``upper/e`` with
    an xattr naming ``d``, and a whiteout at ``d``), as the lower layer holds them now,
    with the directories on their way (``path -> (node, is a source)``): the kernel
    reaches a source by its path. Once the base moves (a checkpoint records ``e``, and
    ``d`` no more), the redirect still names ``d``, in the lower layer of the kernel's
    caches and of every reader: see :func:`pin_sources`. Also the lower files the upper
    layer's whiteouts hide (``mv d/x y`` leaves one at ``d/x``): the kernel's inode of
    ``y`` keeps ``d/x``'s lower dentry as its copy-up origin and looks it up again. Only
    a rename's: a whiteout of a plain removal (``rm d/x``) hides a lower file no upper
    file came from (:func:`_copied_up_from`)."""
    out: dict[str, tuple[Node, bool]] = {}
    if not ws.overlay.upper_active():
        return out
    renamed = _copied_up_from(ws, captured)
    for e in captured:
        if e.seq:
            continue  # a redirect and a whiteout are the upper layer's (seq 0)
        if e.kind == DELETED and e.oid is None and not e.origin:
            # a whiteout (not a special file): the lower file it hides may be the copy-up
            # origin of a file renamed in the mount, whose kernel inode keeps the lower
            # dentry and looks it up again (a rename onto it): see :func:`pin_sources`
            src = ws.overlay.lower_path(e.path)
            if src is None or not renamed(src):
                continue  # a removal's: no inode keeps that lower file
            node = _lookup_lower(ws, src)
            if node is None or node.oid is None or node.is_dir:
                continue
        elif e.kind == OBJECT and e.mode == MODE_TREE:
            if upper.redirect(os.path.join(ws.overlay.upper_dir, e.path)) is None:
                continue
            src = ws.overlay.lower_path(e.path)
            if src is None:
                continue
            node = _lookup_lower(ws, src)
            if node is None or node.oid is None or not node.is_dir:
                continue
        else:
            continue
        assert src is not None
        out[src] = (node, True)
        for a in names.ancestors(src):
            if a and a not in out:
                got = _lookup_lower(ws, a)
                if got is not None and got.oid is not None:
                    out[a] = (got, False)
    return out


def _copied_up_from(ws: Fork, captured: list[Entry]) -> Callable[[str], bool]:
    """Whether the lower layer's file at a path is the copy-up origin of one of the upper
    layer's files among ``captured`` (overlayfs keeps that origin on a renamed file, a
    removal copies nothing up: :mod:`.origins`), compared by file handle: the upper
    files' ``overlay.origin`` against the lower mount's handle of the path. True too
    when either cannot be read (as before this check: the lower file is kept), so only
    a whiteout known to be a removal's goes without a pin. The origins are read once,
    at the first whiteout asked about; none (nothing renamed or copied up): False."""
    held: set[origins.Handle] | None = None
    known = True

    def renamed(lower: str) -> bool:
        nonlocal held, known
        if held is None:
            held = set()
            for e in captured:
                if e.seq or e.kind != FILE:
                    continue  # the upper layer's own files only
                try:
                    h = origins.origin_of(os.path.join(ws.overlay.upper_dir, e.path))
                except OSError:
                    known = False  # (unreadable: say renamed)
                    continue
                if h is not None:
                    held.add(h)
        if not held:
            return not known
        h = origins.handle_of(os.path.join(ws.overlay.lower_dir, lower))
        return h is None or h in held or not known

    return renamed


def pin_sources(ws: Fork, db: Any, sources: Mapping[str, tuple[Node, bool]]) -> None:
    """After the base moved: each redirect source (``is a source``) the new lower layer
    no longer shows as it was, and each other directory (on a source's way, or a merge
    directory of the upper layer) the new lower layer lost, is pinned there with what
    it held (an entry the upper layer's whiteouts hide from the view), so that renamed
    and emptied directories keep their content in the mount, in status and
    checkpoints, and after a remount; the fold of the upper layer takes the pins away
    with the whiteouts. A directory pinned whole covers what is below it. A file (a
    whiteout's, ``is a source``) is pinned only when the new lower layer has nothing
    there: the name is what the kernel looks up (docs/fuse.md, "ESTALE")."""
    pinned: list[str] = []
    for path in sorted(sources):
        was, is_source = sources[path]
        if any(path.startswith(p + "/") for p in pinned):
            continue
        now = _lookup_lower(ws, path)
        if not was.is_dir:
            # a file a whiteout hides: the kernel's inode of the file renamed from it (its
            # copy-up origin) keeps its lower dentry, which FUSE looks up again for a
            # rename onto that file; a name the lower layer lost makes overlayfs answer
            # ESTALE. A file there now (any) keeps the name found.
            stale = now is None
        else:
            gone = now is None or not now.is_dir
            stale = gone or (is_source and now is not None and (now.oid, now.mode) != (was.oid, was.mode))
        if stale:
            ws.overlay.put(db, Entry(path, OBJECT, was.mode, was.oid), "pin")
            pinned.append(path)


def _lookup_lower(ws: Fork, path: str) -> Node | None:
    """What the view without the upper layer (an overlay mount's lower layer) has."""
    with ws.overlay.without_upper():
        return ws.view.lookup(path)


def finish(ws: Fork, commit: str, upto: int) -> None:
    """In the overlay's transaction: make ``commit`` (the fork's ref already moved to it)
    the base, retiring the entries up to seq ``upto`` that it holds, as a checkpoint's
    ``pending`` record is finished when its process stopped between the ref's move and its
    own retirement (:func:`.wsbase.sync_base`, :func:`.wscommit.publish`). Entries written
    since have a newer seq and stay."""
    ov = ws.overlay
    tree = ws.store.commit_tree(commit)
    kept = retirable(ws, [e for e in ov.all() if e.seq <= upto], tree, fresh=True)
    ov.retire(ov.db, kept, oid_in(ws.store, tree))
    ov.set_meta("base", commit)


def retirable(ws: Fork, captured: list[Entry], tree: str, *, fresh: bool = False) -> list[Entry]:
    """The captured entries that ``tree`` (the commit's) now shows: an entry showing
    something at a path the commit does not hold (an empty new directory, a path git
    ignores, a name git refuses: see :mod:`.gitnames`) stays in the overlay (as does a
    ``.gitmodules`` or ``.gitattributes`` left out for its contents, which :func:`capture` does not count as
    captured: the tree may hold an older one there). So does a file whose bytes git's
    clean conversion changed (a CRLF file under ``text=auto``: the tree holds the LF blob,
    the workspace keeps the file as it is, as git's work tree does): those the last
    capture converted (``ws.captured_converted``), or with ``fresh`` those found now. And
    a file the tree holds with another mode (`core.fileMode false`: the commit keeps HEAD's
    mode, the workspace the file's exec bit, as git's work tree does), or as a link
    (`core.symlinks false`: a file at HEAD's link is recorded as that link, gitmodel27)."""
    kept = converted_paths(ws.view, captured) if fresh else ws.captured_converted
    out: list[Entry] = []
    for e in captured:
        if e.kind != DELETED:
            hit = None if e.path in kept else ws.store.tree_lookup(tree, e.path)
            if hit is None or (
                e.mode in (MODE_BLOB, MODE_EXEC)
                and hit[1] in (MODE_BLOB, MODE_EXEC, MODE_LINK)
                and hit[1] != e.mode
            ):
                continue
        out.append(e)
    return out
