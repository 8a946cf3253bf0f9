"""git's trivial three-way merge of trees, in pure Python: the merged tree when no path was
changed differently by the two sides, O(the directories both sides touched); None when a
path needs libgit2's merge (:mod:`.mergetrees`). A merge of forks asks this first
(:mod:`..operations.merge`); ``tests/test_merge_properties.py`` holds it against libgit2's
``merge_trees``.
"""

from __future__ import annotations

from ..types import Change, ChangeStatus
from .gitformat import tree_entries
from .gitstore import GitStore
from .odbdirect import raw_reader
from .packwriter import OBJ_TREE
from .treediff import diff_entry

_TREE = b"40000"


_RawEntry = tuple[bytes, bytes]  # (octal mode as in the tree, 20-byte id)


_Entry3 = tuple[bytes, bytes, bytes]  # (octal mode, name, 20-byte id): one entry of a raw tree


def _pair(e: _Entry3 | None) -> _RawEntry | None:
    return None if e is None else (e[0], e[2])


def _diff(store: GitStore, a: _RawEntry | None, b: _RawEntry | None, path: bytes) -> list[Change]:
    """The changes from entry ``a`` to entry ``b`` (raw, either may be None) at ``path``:
    the one tree differ's (:func:`.treediff.diff_entry`)."""
    out: list[Change] = []
    diff_entry(store, path.decode("utf-8", "surrogateescape"), _side(a), _side(b), out)
    return out


def _side(e: _RawEntry | None) -> tuple[str, int] | None:
    return None if e is None else (e[1].hex(), int(e[0], 8))


def _trivial_merge(
    store: GitStore, base: str, ours: str, theirs: str, *, list_changed: bool = True
) -> tuple[str, tuple[str, ...]] | None:
    """The merged tree when no path was changed differently by both sides: git's trivial
    three-way merge, decided per tree entry from the top, descending only into directories
    that both sides changed; only the trees on those paths are written (one pack). None when
    a file needs a real merge (both changed it, or one deleted what the other changed), or
    both deleted the same file (libgit2 may see a rename there): libgit2 decides then.

    Trees are handled as raw entries (names and ids as bytes, parsed by one regex), and
    only the names where two trees differ are looked at. libgit2's ``merge_trees`` +
    ``write_tree`` rebuilds the whole index and writes every tree of the result (~0.7 s at
    100k files); this costs O(directories both sides touched)."""
    merger = _Merger(store, list_changed)
    pw = merger.pw
    try:
        root = merger.walk(bytes.fromhex(base), bytes.fromhex(ours), bytes.fromhex(theirs), b"")
        root_hex = root.hex() if root is not None else pw.add(OBJ_TREE, b"")
        pw.finish()
    except _NeedsMerge:
        pw.abort()
        return None
    except BaseException:
        pw.abort()
        raise
    return root_hex, tuple(sorted(merger.changed))


class _Merger:
    """One trivial merge: the trees it read, the paths theirs changed, the pack it writes."""

    def __init__(self, store: GitStore, list_changed: bool) -> None:
        self.store = store
        self.list_changed = list_changed
        self.read = raw_reader(store, "tree")
        self.changed: set[str] = set()
        self.pw = store.pack_writer()
        self.raw_trees: dict[bytes, tuple[list[_Entry3], frozenset[_Entry3]]] = {}

    def raw(self, oid: bytes | None) -> tuple[list[_Entry3], frozenset[_Entry3]]:
        """A tree's entries (mode, name, id) in order, and as a set for set operations."""
        if oid is None:
            return [], frozenset()
        hit = self.raw_trees.get(oid)
        if hit is None:
            found = tree_entries(self.read(oid.hex()))
            hit = self.raw_trees[oid] = (found, frozenset(found))
        return hit

    def walk(self, b: bytes | None, o: bytes | None, t: bytes | None, prefix: bytes) -> bytes | None:
        """The merged tree of base ``b``, ours ``o`` and theirs ``t`` (ids, raw; None:
        absent) at ``prefix``: None when empty. Raises :class:`_NeedsMerge`."""
        # only entries differing somewhere are looked at, by set operations (in C)
        _, sb = self.raw(b)
        lo, so = self.raw(o)
        _, st = self.raw(t)
        oo = {e[1]: e for e in so - st}  # ours' entry of each name where the sides differ
        tt = {e[1]: e for e in st - so}
        differ = oo.keys() | tt.keys()
        self.refuse_same_changes(sb, so, st, differ, prefix)
        bb = {e[1]: e for e in sb if e[1] in differ}
        replace: dict[bytes, _Entry3 | None] = {}
        moved = False
        for name in differ:
            vo, vt, vb = oo.get(name), tt.get(name), bb.get(name)
            new: _Entry3 | None
            if vb == vo:  # only theirs changed it: theirs' entry replaces ours'
                if self.list_changed:
                    self.changed.update(
                        c.path for c in _diff(self.store, _pair(vo), _pair(vt), prefix + name)
                    )
                new = vt
            elif vb == vt:  # only ours changed it
                continue
            elif all(v is None or v[0] == _TREE for v in (vb, vo, vt)):
                # directories both changed (one may have deleted it, or both added it): merge
                # them entry by entry. (A file both replaced by a directory is not here: it
                # may be a rename into both, libgit2 decides.)
                below = [v[2] if v is not None else None for v in (vb, vo, vt)]
                sub = self.walk(below[0], below[1], below[2], prefix + name + b"/")
                new = (_TREE, name, sub) if sub is not None else None
                if new == vo:
                    continue
            else:
                raise _NeedsMerge  # a file both changed, or changed on one side, gone on the other
            replace[name] = new
            # a new name, or a file become a directory (or back), moves in git's order
            moved = moved or (new is not None and (vo is None or (vo[0] == _TREE) != (new[0] == _TREE)))
        if not replace:
            return o
        return self.write(lo, oo, replace, moved)

    def refuse_same_changes(
        self,
        sb: frozenset[_Entry3],
        so: frozenset[_Entry3],
        st: frozenset[_Entry3],
        differ: set[bytes],
        prefix: bytes,
    ) -> None:
        """Raise :class:`_NeedsMerge` where both sides made the same change that libgit2
        may read as a rename: both deleted a file, or both added the same thing."""
        ours_new = {e[1]: e for e in so - sb}  # what ours added or changed against the base
        for e in sb - so:  # what ours changed or deleted of the base's
            name = e[1]
            if name in differ:
                continue
            same = ours_new.get(name)  # theirs made the very same change
            if same is None:
                raise _NeedsMerge  # deleted on both sides: maybe renamed on one
            if e[0] == _TREE:
                # the same change on both sides: a file gone from both may be a rename
                diffs = _diff(self.store, (e[0], e[2]), (same[0], same[2]), prefix + name)
                if any(c.status is ChangeStatus.DELETED for c in diffs):
                    raise _NeedsMerge
        both = (so & st) - sb  # the very same entry on both sides, not the base's
        if both and {e[1] for e in both} - {e[1] for e in sb}:
            # the same thing added on both sides: where one side also deleted something like
            # it, libgit2 sees a rename meeting an add (rename/add), git maybe a directory
            # rename: libgit2 decides
            raise _NeedsMerge

    def write(
        self, lo: list[_Entry3], oo: dict[bytes, _Entry3], replace: dict[bytes, _Entry3 | None], moved: bool
    ) -> bytes | None:
        """Ours' entries ``lo`` with ``replace`` applied (``oo``: ours' entries where the
        sides differ), written as a tree into the pack; None when nothing is left."""
        out = [replace.get(e[1], e) for e in lo]
        out += [e for name, e in replace.items() if name not in oo]  # names ours lacks
        entries = [e for e in out if e is not None]
        if not entries:
            return None
        if moved:  # git's order: a directory sorts as if its name ended in "/"
            entries.sort(key=lambda e: e[1] + b"/" if e[0] == _TREE else e[1])
        data = b"".join([b"%s %s\0%s" % e for e in entries])
        return bytes.fromhex(self.pw.add(OBJ_TREE, data))


class _NeedsMerge(Exception):
    """A path needs libgit2's merge (see :func:`_trivial_merge`)."""
