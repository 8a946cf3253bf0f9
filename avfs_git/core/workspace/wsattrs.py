"""The ``.gitattributes`` a capture or a status judges files by: those of the view being
recorded (the entries on the base), at each directory above the files it reads, and
git's clean conversions by them (what ``git add`` would store:
:class:`~.gitclean.Cleaner`, libgit2's filters).

What it costs: without a ``.gitattributes`` above any of the files, nor the vault's
``info/attributes``, nothing (a few tree lookups per changed directory). With one, a file
whose bytes hold no CR and no ``$Id`` is stored as it is without asking (git's clean
conversions only take CRs out and collapse ``$Id: ...$``), so libgit2 is loaded (~40-80
ms, which `avfs status` and `avfs checkpoint save` otherwise never pay) only for a file
that has one of them.

What is not looked at: ``core.autocrlf`` with no attribute file anywhere, git's global
(``core.attributesFile``) and system attribute files when the view has no
``.gitattributes`` of its own (libgit2 reads them once a cleaner is made), and
``working-tree-encoding`` (libgit2 has no such filter).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping

from ..store import names
from ..store.gitclean import ATTRIBUTES, Cleaner
from ..store.gitstore import blob_id
from ..store.treediff import diff_entry
from ..types import MODE_BLOB, MODE_EXEC, Change, ChangeStatus
from .overlay import Overlay
from .overlayentry import FILE, Entry
from .wsview import Node, View

TEXT = (MODE_BLOB, MODE_EXEC)  # the modes conversions apply to (not links, not gitlinks)


def may_change(data: bytes) -> bool:
    """Whether git's clean conversions can change ``data`` at all."""
    return b"\r" in data or b"$Id" in data


class Conversions:
    """git's clean conversions of files of one view, the cleaner made at the first file
    that may need it; :meth:`close` when done."""

    def __init__(self, store_path: str, files: dict[str, bytes], index: dict[str, tuple[str, int]]) -> None:
        self._args = (store_path, files, index)
        self._cleaner: Cleaner | None = None

    def clean(self, path: str, data: bytes) -> bytes | None:
        """What ``git add`` stores for ``data`` at ``path``; None: the bytes as they are."""
        if not may_change(data):
            return None
        if self._cleaner is None:
            self._cleaner = Cleaner(*self._args)
        return self._cleaner.clean(path, data)

    def close(self) -> None:
        if self._cleaner is not None:
            self._cleaner.close()
            self._cleaner = None


def conversions_for(
    view: View, base_tree: str, entries: Mapping[str, Entry] | None, paths: Iterable[str]
) -> Conversions | None:
    """The conversions of ``paths`` (files of the view made of ``entries``, by path, on the
    base whose tree is ``base_tree``; None: the view as it is now), or None when no
    attribute file can apply to them."""
    paths = list(paths)
    if not paths:
        return None
    store = view.store
    dirs = names.ancestors_of_all(paths)
    files: dict[str, bytes] = {}
    for d in sorted(dirs):
        path = names.join(d, ATTRIBUTES)
        chain = [*names.ancestors(path), path]
        node = view.lookup(path) if entries is None else view.lookup_in(path, chain, entries)
        if node is None or node.mode not in TEXT:
            continue  # (git never reads one through a link)
        fpath = view.file_path(node)
        if fpath is not None:
            try:
                with open(fpath, "rb") as fh:
                    files[d] = fh.read()
            except OSError:
                continue
        elif node.oid is not None:
            files[d] = store.blob_data(node.oid, path=path)
    if not files and not os.path.exists(os.path.join(store.path, "info", "attributes")):
        return None
    index: dict[str, tuple[str, int]] = {}
    for p in paths:
        held = store.tree_lookup(base_tree, p)
        if held is not None and held[1] in TEXT:
            index[p] = held
    return Conversions(store.path, files, index)


def file_oids(
    view: View, files: list[tuple[str, Entry]], entries: Mapping[str, Entry] | None
) -> dict[str, str]:
    """The blob id ``git add`` would store for each materialized file of ``files`` (path,
    its entry) in the view made of ``entries``: its bytes hashed, converted first where
    the view's attributes say so (``entries`` None: the view as it is now)."""
    conv = conversions_for(view, view.base_tree, entries, [p for p, e in files if e.mode in TEXT])
    try:
        out: dict[str, str] = {}
        for p, e in files:
            n = Node(p, e.mode, None, e)
            fpath = view.file_path(n) if conv is not None and e.mode in TEXT else None
            if fpath is not None and conv is not None:
                try:
                    with open(fpath, "rb") as fh:
                        data = fh.read()
                except OSError:
                    pass  # (entry_oid says why)
                else:
                    cleaned = conv.clean(p, data)
                    out[p] = blob_id(data if cleaned is None else cleaned)
                    continue
            out[p] = view.entry_oid(n)
        return out
    finally:
        if conv is not None:
            conv.close()


def compared(
    view: View, todo: list[tuple[Change, Entry | None]], entries: Mapping[str, Entry], out: list[Change]
) -> None:
    """A status's changes into ``out``: each of ``todo`` as it is, or, with the entry of a
    materialized file, compared with the base by the blob ``git add`` would store for it
    (:func:`file_oids`; ``entries``: the view's, by path)."""
    oids = file_oids(view, [(c.path, e) for c, e in todo if e], entries)
    for c, e in todo:
        if e is not None:
            old = None if c.status is ChangeStatus.ADDED else (c.old_oid or "", c.old_mode or 0)
            diff_entry(view.store, c.path, old, (oids[c.path], e.mode), out)
        else:
            out.append(c)


def converted_paths(view: View, entries: list[Entry]) -> frozenset[str]:
    """The paths of the materialized files among ``entries`` whose bytes git's clean
    conversion changes (a CRLF file under ``text=auto``): a commit holds their converted
    blob while the workspace keeps the bytes, so their entries stay."""
    files = [e for e in entries if e.kind == FILE and e.mode in TEXT]
    conv = conversions_for(view, view.base_tree, None, [e.path for e in files])
    if conv is None:
        return frozenset()
    out: set[str] = set()
    try:
        for e in files:
            fpath = view.file_path(Node(e.path, e.mode, None, e))
            if fpath is None:
                continue
            try:
                with open(fpath, "rb") as fh:
                    data = fh.read()
            except OSError:
                continue
            cleaned = conv.clean(e.path, data)
            if cleaned is not None and cleaned != data:
                out.add(e.path)
    finally:
        conv.close()
    return frozenset(out)


CONVERTED = "converted"  # the overlay's record of them (a JSON list of paths)


def keep_converted(overlay: Overlay, captured: list[Entry], converted: frozenset[str]) -> None:
    """Record in the overlay (in its open transaction) the files whose bytes a commit's
    conversion changed: the mount's index holds their own stat data (mount/heldstat.py),
    so git reads nothing for them and its ``reset --hard`` leaves them, also after a
    remount. Paths captured again unconverted leave the record; a stale one costs git one
    read of the file."""
    old = converted_record(overlay)
    new = (old - {e.path for e in captured}) | converted
    if new != old:
        overlay.set_meta(CONVERTED, json.dumps(sorted(new)) if new else None)


def converted_record(overlay: Overlay) -> frozenset[str]:
    """What :func:`keep_converted` recorded."""
    raw = overlay.get_meta(CONVERTED)
    try:
        got = json.loads(raw) if raw else []
    except ValueError:
        return frozenset()
    return frozenset(p for p in got if isinstance(p, str)) if isinstance(got, list) else frozenset()
