"""The files a move of the base leaves alone keep the bytes the mount shows, as git's work
tree keeps them (a checkpoint, a merge: `git commit`, `git merge`).

A file nobody wrote is shown from git: its bytes are what ``git checkout`` writes of its
blob under the base tree's ``.gitattributes`` (:mod:`.wssmudge`). A move of the base that
changes an attribute file (a checkpoint or a merge recording ``* text=auto eol=crlf``)
would show each such file in its *new* form though its blob is the same, where git's own
``commit`` and ``merge`` rewrite only the files whose blob changed and leave the others as
they were (its index stat-clean for them). On the overlay backend it was worse: the lower
layer's file took the new form's size while the kernel kept the old one, and once the
page cache dropped the file the mount showed the new form cut to the old size
(``one\\n`` read ``one\\r``; gitmodel15, tests/contract/test_merge_checkout_forms.py).

So before such a move the mount is made to hold each of those files in the form it shows
now (:func:`keep_forms`): written through an overlay mount's mount point (its upper
layer: the lower layer may then change under it), or as an overlay entry where a
pure-FUSE mount serves the fork; and recorded among the overlay's converted files
(:func:`.wsattrs.keep_converted`), whose entries a checkpoint keeps over their blob and
whose stat data the mount's git index holds (mount/heldstat.py), as git's index holds a
file it did not rewrite. A fork that no mount shows has no bytes to keep: nothing is done.
Cost: nothing where the move changes no ``.gitattributes`` (one pass over the paths the two
trees differ at); else :func:`.wssmudge.reformed`'s walk below the changed attribute files
and one write per file whose form changes.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Iterator
from typing import Any

from ..errors import from_oserror
from ..store.treediff import diff_trees
from ..types import Change
from .overlayentry import FILE, Entry
from .wsattrs import CONVERTED, converted_record, file_oids
from .wscapture import Fork
from .wschecks import unlink_quiet
from .wssmudge import CheckoutForms, attribute_dirs, reformed


def moved_paths(ws: Fork, old_tree: str, new_tree: str) -> set[str]:
    """The paths where trees ``old_tree`` and ``new_tree`` differ (both names of a rename)."""
    out: list[Change] = []
    diff_trees(ws.store, old_tree, new_tree, "", out)
    return {p for c in out for p in (c.path, c.old_path) if p}


def keep_forms(ws: Fork, old_tree: str, new_tree: str, moved: Iterable[str] | None = None) -> list[str]:
    """Before the view of ``ws`` moves from tree ``old_tree`` to ``new_tree`` (``moved``:
    the paths where they differ, found when None; called outside the overlay's
    transactions: an overlay mount's writes go through its kernel): each file of both
    trees with the same blob whose checkout form a changed ``.gitattributes`` makes other bytes, and that the workspace does not hold, is made to
    hold the bytes it shows now (the old tree's form) and recorded converted. Returns those
    paths (none where no mount shows the fork)."""
    moved = moved_paths(ws, old_tree, new_tree) if moved is None else set(moved)
    if not attribute_dirs(moved):
        return []
    live = ws.live_mount()
    if live is None and not ws.mounted_without_upper():
        return []
    paths: list[str] = []
    held: list[tuple[str, Entry]] = []
    for p in reformed(ws.store, old_tree, new_tree, moved, ws.fork):
        e = ws.overlay.get(p)
        if e is None:
            paths.append(p)
        elif e.kind == FILE:
            held.append((p, e))
    # a file the workspace holds stays as it is; where it is what `git add` stores as its
    # blob (a file written in an overlay mount and checkpointed stays in its upper layer),
    # the mount's index holds its own stat data, as git's after `git merge` (it held the
    # new form's size, which git takes for a change without reading the file)
    same = _unchanged(ws, held, new_tree) if held else []
    if not paths:
        if same:
            with ws.overlay.txn():
                add_converted(ws, same)
        return []
    kept: list[str] = []
    if live is not None:
        for p, mode, data in _forms(ws, old_tree, paths):
            # through the mount point, in place, outside the overlay's transactions (the
            # kernel copies the file up: its inode stays, an open descriptor too); the
            # upper layer hides whatever the lower one shows of it from now on
            live.write(p, data, mode)
            kept.append(p)
        with ws.overlay.txn():
            add_converted(ws, [*kept, *same])
        return kept
    with ws.overlay.txn() as db:
        for p, mode, data in _forms(ws, old_tree, paths):
            _entry(ws, db, p, mode, data)
            kept.append(p)
        add_converted(ws, [*kept, *same])
    return kept


def _unchanged(ws: Fork, held: list[tuple[str, Entry]], tree: str) -> list[str]:
    """The paths of ``held`` (files the workspace holds) whose bytes `git add` stores as
    the blob ``tree`` has there."""
    got = file_oids(ws.view, held, None)
    return [p for p, e in held if (got[p], e.mode) == ws.store.tree_lookup(tree, p)]


def _forms(ws: Fork, tree: str, paths: list[str]) -> Iterator[tuple[str, int, bytes]]:
    """(path, mode, what ``git checkout`` of ``tree`` writes there) for each file of
    ``paths`` in ``tree``."""
    forms = CheckoutForms(ws.store, ws.fork)
    try:
        for p in paths:
            hit = ws.store.tree_lookup(tree, p)
            if hit is None:
                continue
            oid, mode = hit
            read = functools.partial(ws.store.blob_data, oid)
            form = forms.form(tree, p, oid, mode, read)
            yield p, mode, read() if form is None else form
    finally:
        forms.close()


def _entry(ws: Fork, db: Any, path: str, mode: int, data: bytes) -> None:
    """``path`` made an overlay file of ``data`` (a pure-FUSE mount serves the overlay's
    entries over the base)."""
    fid = ws.overlay.new_fileid()
    ws.overlay.made_for_txn(fid)  # (gone with a transaction that does not commit)
    try:
        with open(ws.overlay.file_path(fid), "wb") as fh:
            fh.write(data)
    except OSError as exc:
        unlink_quiet(ws.overlay.file_path(fid))  # (a full disk's: nothing left half-written)
        raise from_oserror(exc, ws.overlay.file_path(fid)) from exc
    ws.overlay.put(db, Entry(path, FILE, mode, None, fid, ws.view.origin(path), len(data)), "keep")


def add_converted(ws: Fork, paths: Iterable[str]) -> None:
    """``paths`` added to the overlay's record of converted files (in its open transaction)."""
    old = converted_record(ws.overlay)
    new = old | set(paths)
    if new != old:
        ws.overlay.set_meta(CONVERTED, json.dumps(sorted(new)))
