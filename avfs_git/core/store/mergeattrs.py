"""What a three-way merge's ``.gitattributes`` say about merging, given to libgit2 as
`git merge` in a checkout of the target reads them.

git's merge (``merge-ort``'s ``ll_merge``) takes each path's ``merge`` attribute from the
work tree's attribute files (a checkout of *ours*, the target: attr.c's ``GIT_ATTR_CHECKIN``,
work tree first; merge-ort's own attribute index is empty unless ``merge.renormalize``),
the vault's ``info/attributes`` and git's global and system files (git 2.39.5; from 2.42 a
bare repository's ``git merge-tree`` reads ``HEAD``'s, ``attr.tree``/``--attr-source``
another tree's: a merge of forks follows the checkout). So a ``.gitattributes`` that
*theirs* changes does not count for this merge, one the target changed does. Then, for a
path both sides changed:

- ``merge`` unspecified or set, ``merge=text``: the 3-way text merge (a NUL in the first
  8,000 bytes of a side still makes it a binary conflict, in git as in libgit2);
- ``-merge``, ``binary``, ``merge=binary``: not merged: a conflict, the target's version kept;
- ``merge=union``: both sides' lines, no conflict;
- ``merge=NAME`` of no driver git's config defines: the text merge (git's fallback);
- ``merge=NAME`` of a driver the config defines (``merge.NAME.driver``): git runs that
  program. avfs runs none (the attribute is the fork's to write, the program the vault's
  or the person's config's to name: a merge must not run it on a fork's say), and leaves
  the path a conflict for a person to resolve (:func:`runs_driver`).

A vault is bare, so libgit2's own merge reads none of a tree's attribute files: before the
thirty-third round (mergeattr1) a ``merge=union`` file both sides changed conflicted where
git merges it, and a ``-merge`` file changed in two places merged where git conflicts.
:func:`merge_attributes` finds the attribute files that matter (those above the paths both
sides changed, in *ours*' tree), and :func:`.mergetrees.merge_trees` hands them to libgit2
in a handle whose work tree holds them (:func:`.gitsmudge.attributes_handle`).

What it costs: first, whether any attribute file of *ours*' tree (or ``info/attributes``,
or git's own) holds ``merge`` or ``binary`` at all: a tree's answer is found once and kept
in the vault, by tree id, its subtrees' too (:mod:`.attrtrees`: a lookup, or a read of the
directories ours has that no tree answered before had). Where none does (most repositories),
nothing more: the merge is libgit2's on the vault, as before the thirty-third round
(mergeattr1 walked the directories both sides changed on every such merge, +1-6 ms). Else
a walk of the directories both sides changed (:func:`both_changed`, which finds their
``.gitattributes`` on the way), and a handle only where one above a path both changed
names them.
``conflict-marker-size`` changes no merged tree (the markers avfs writes follow it:
:mod:`..operations.mergeconflicts`); ``text``/``eol`` change none either (git converts a
merged file's ends only with ``merge.renormalize``, which avfs does not set).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from itertools import compress
from operator import ne
from typing import NamedTuple

from ..types import MODE_BLOB, MODE_EXEC, Change
from .gitattrfiles import outer_attributes
from .gitstore import EMPTY_TREE, GitStore
from .names import ancestors_of_all

ATTRIBUTES = ".gitattributes"
_TREE = b"40000 "  # how a directory's raw entry starts
_KEY = b" .gitattributes\0"  # (in a raw tree: an entry of that name)
# the words an attribute file must hold to change a merge: the attribute's name, and the
# built-in macro that unsets it (a macro of one's own is defined in a file that names it)
WORDS = (b"merge", b"binary")
# the drivers git and libgit2 both have built in
BUILTIN = frozenset({"text", "union", "binary"})


def both_changed(
    store: GitStore, ancestor: str, ours: str, theirs: str, files: dict[str, bytes] | None = None
) -> tuple[set[str], bool]:
    """(the paths both sides changed, and differently; whether one side deleted a file of
    them: libgit2 may find it renamed there, and merge it under its new name). Walks only
    the directories both sides changed, as the trivial merge does (:mod:`.trivialmerge`:
    trees as raw entries, read through the packs' own readers, compared by position): O(those
    directories), not O(the changes). ``files``: where to put the ``.gitattributes`` of
    ours' directories walked (every directory above a path both changed), by directory."""
    from .gitformat import RAW_ENTRY
    from .odbdirect import raw_reader

    def reader(lane: int) -> Callable[[str], bytes]:
        # (git's empty tree is every repository's without being stored: the ancestor of
        # unrelated histories, `pull --allow-unrelated`'s, or a side that removed everything)
        read = raw_reader(store, "tree", lane)
        return lambda oid: b"" if oid == EMPTY_TREE else read(oid)

    readers = [reader(lane) for lane in range(3)]
    findall = RAW_ENTRY.findall
    both: set[str] = set()
    deleted = False
    todo: list[tuple[str, bytes | None, bytes, bytes]] = [
        ("", bytes.fromhex(ancestor), bytes.fromhex(ours), bytes.fromhex(theirs))
    ]
    while todo:
        prefix, a, o, t = todo.pop()
        raw_o = readers[1](o.hex())
        lb = findall(readers[0](a.hex())) if a else []
        lo, lt = findall(raw_o), findall(readers[2](t.hex()))
        if files is not None and _KEY in raw_o:  # (a C search: most directories have none)
            _attributes_of(store, lo, prefix, files)
        for vb, vo, vt in _differing(lb, lo, lt):
            if vb in (vo, vt):
                continue  # (one side left it)
            name = _name(vo if vo is not None else vt)  # type: ignore[arg-type]  # (one is there)
            path = f"{prefix}{name.decode('utf-8', 'surrogateescape')}"
            if vo is not None and vt is not None and vo.startswith(_TREE) and vt.startswith(_TREE):
                anc = vb[-20:] if vb is not None and vb.startswith(_TREE) else None
                todo.append((path + "/", anc, vo[-20:], vt[-20:]))
            else:
                both.add(path)
                deleted = deleted or vo is None or vt is None
    return both, deleted


def _name(e: bytes) -> bytes:
    return e[e.index(b" ") + 1 : -21]


def _differing(
    lb: list[bytes], lo: list[bytes], lt: list[bytes]
) -> Iterable[tuple[bytes | None, bytes | None, bytes | None]]:
    """(base, ours, theirs) raw entries of each name where ours and theirs differ (None:
    absent). Three trees of the same names in the same order (most directories both
    sides changed files in) are compared by position, in C, as the trivial merge does;
    others by set operations."""
    n = len(lo)
    out: list[tuple[bytes | None, bytes | None, bytes | None]]
    if len(lt) == n == len(lb):
        differ = list(compress(range(n), map(ne, lo, lt)))
        # (the same "<mode> <name>\0" on all three, most often: no name cut out)
        if all(
            lo[i][:-20] == lt[i][:-20] == lb[i][:-20] or _name(lo[i]) == _name(lt[i]) == _name(lb[i])
            for i in differ
        ):
            out = [(lb[i], lo[i], lt[i]) for i in differ]
            return out
    so, st = frozenset(lo), frozenset(lt)
    oo = {_name(e): e for e in so - st}
    tt = {_name(e): e for e in st - so}
    bb = {k: e for e in frozenset(lb) - (so & st) if (k := _name(e)) in oo or k in tt}
    out = [(bb.get(k), oo.get(k), tt.get(k)) for k in oo.keys() | tt.keys()]
    return out


def _attributes_of(store: GitStore, entries: list[bytes], prefix: str, files: dict[str, bytes]) -> None:
    """The ``.gitattributes`` among a directory's raw ``entries`` (a file, never a link)
    into ``files`` under the directory's path."""
    for e in entries:
        if e.startswith((b"100644 ", b"100755 ")) and _name(e) == ATTRIBUTES.encode():
            files[prefix[:-1]] = store.blob_data(e[-20:].hex())
            return


def _moved(store: GitStore, ancestor: str, ours: str, theirs: str) -> set[str]:
    """Every path a side changed (where libgit2 may pair a deletion with an addition)."""
    from .treediff import diff_trees

    sides: list[list[Change]] = [[], []]
    diff_trees(store, ancestor, ours, "", sides[0])
    diff_trees(store, ancestor, theirs, "", sides[1])
    return {c.path for side in sides for c in side} | {
        c.old_path for side in sides for c in side if c.old_path
    }


class MergeAttributes(NamedTuple):
    """What a merge hands libgit2: the attribute files (bytes by directory, "" the root) and
    the paths both sides changed (those a driver may be named for)."""

    files: dict[str, bytes]
    both: frozenset[str]
    trees: tuple[str, str, str]  # (ancestor, ours, theirs) they were found for


def merge_attributes(store: GitStore, ancestor: str, ours: str, theirs: str) -> MergeAttributes | None:
    """The ``.gitattributes`` of ``ours``' tree above the paths libgit2 may merge the
    contents of, when one of them, the vault's ``info/attributes`` or git's global and
    system files names :data:`WORDS`; None where none does (libgit2's merge on the vault
    answers as git's then)."""
    try:
        with open(os.path.join(store.path, "info", "attributes"), "rb") as fh:
            info = fh.read()
    except OSError:
        info = b""
    outer = outer_attributes(store.path)
    if not any(w in t for t in (info, outer) for w in WORDS) and not names_merging(store, ours):
        return None  # (no attribute file of ours' names merging: no walk)
    files: dict[str, bytes] = {}
    both, deleted = both_changed(store, ancestor, ours, theirs, files)
    if not both:
        return None
    moved = _moved(store, ancestor, ours, theirs) if deleted else set()
    for d in sorted(ancestors_of_all(moved) - files.keys()):
        hit = store.tree_lookup(ours, f"{d}/{ATTRIBUTES}" if d else ATTRIBUTES)
        if hit is not None and hit[1] in (MODE_BLOB, MODE_EXEC):  # (never through a link)
            files[d] = store.blob_data(hit[0])
    texts: Iterable[bytes] = (info, outer, *files.values())
    if not any(w in t for t in texts for w in WORDS):
        return None
    return MergeAttributes(files, frozenset(both), (ancestor, ours, theirs))


def names_merging(store: GitStore, tree: str) -> bool:
    """Whether an attribute file of ``tree`` (anywhere in it) names :data:`WORDS`: asked of
    the store's answers by tree (:mod:`.attrtrees`), found once per tree."""
    from .attrtrees import of_store

    return of_store(store).names_merging(store, tree, WORDS)


def runs_driver(value: object, config: Callable[[str], str | None]) -> bool:
    """Whether git's merge runs a program for a path of ``merge`` attribute ``value``: a
    driver that is not built in and that git's config (``config(key)``) gives a
    ``merge.NAME.driver``. avfs then leaves the path a conflict (see the module's text)."""
    return isinstance(value, str) and value not in BUILTIN and bool(config(f"merge.{value}.driver"))
