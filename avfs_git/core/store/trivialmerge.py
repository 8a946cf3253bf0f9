"""git's trivial three-way merge of trees, in pure Python: the merged tree when no path was
changed differently by the two sides, O(the directories both sides touched); None when a
path needs libgit2's merge (:mod:`.mergetrees`). A merge of forks asks this first
(:mod:`..operations.merge`); ``tests/test_merge_properties.py`` holds it against libgit2's
``merge_trees``.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import compress
from operator import ne

from ..types import Change, ChangeStatus
from .gitformat import RAW_ENTRY, split_entry
from .gitstore import GitStore
from .names import git_state_name_b
from .odbdirect import raw_reader
from .packwriter import OBJ_TREE, PackWriter
from .treediff import diff_entry

_TREE = b"40000 "  # how a directory's raw entry starts
# markers, told apart by identity (`is`) from any entry or id the walk makes:
_UNALIGNED = b"\0unaligned"  # _Merger.aligned: the names differ, the general walk decides
_KEEP = b"\0keep"  # _Merger.merged: ours' entry stays


def _hooks_of(prefix: bytes) -> bytes | None:
    """The directory above ``prefix`` (``a/b/hooks/``) where its last name is ``hooks`` to
    some file system (``names.git_state_name``: ``Hooks`` too), not at the top; else None."""
    up, _, name = prefix[:-1].rpartition(b"/")
    return up if up and git_state_name_b(name) == "hooks" else None


_RawEntry = tuple[bytes, bytes]  # (octal mode as in the tree, 20-byte id)


def _name(e: bytes) -> bytes:
    """The name of a raw entry (``<mode> <name>\\0<20-byte id>``)."""
    return e[e.index(b" ") + 1 : -21]


def _pair(e: bytes | None) -> _RawEntry | None:
    if e is None:
        return None
    mode, _, oid = split_entry(e)
    return mode, oid


def _diff(store: GitStore, a: _RawEntry | None, b: _RawEntry | None, path: bytes) -> list[Change]:
    """The changes from entry ``a`` to entry ``b`` (raw, either may be None) at ``path``:
    the one tree differ's (:func:`.treediff.diff_entry`)."""
    out: list[Change] = []
    diff_entry(store, path.decode("utf-8", "surrogateescape"), _side(a), _side(b), out)
    return out


def _side(e: _RawEntry | None) -> tuple[str, int] | None:
    return None if e is None else (e[1].hex(), int(e[0], 8))


def _trivial_merge(
    store: GitStore,
    base: str,
    ours: str,
    theirs: str,
    *,
    list_changed: bool = True,
    pack: PackWriter | None = None,
    state_dirs: set[str] | None = None,
) -> tuple[str, tuple[str, ...]] | None:
    """The merged tree when no path was changed differently by both sides: git's trivial
    three-way merge, decided per tree entry from the top, descending only into directories
    that both sides changed; only the trees on those paths are written (one pack). None when
    a file needs a real merge (both changed it, or one deleted what the other changed), or
    both deleted the same file (libgit2 may see a rename there): libgit2 decides then.

    Trees are handled as raw entries (names and ids as bytes, parsed by one regex), and
    only the names where two trees differ are looked at. libgit2's ``merge_trees`` +
    ``write_tree`` rebuilds the whole index and writes every tree of the result (~0.7 s at
    100k files); this costs O(directories both sides touched).

    ``pack``: write the trees there, and leave finishing it (or, on None, aborting it) to
    the caller, who adds the merge commit to the same pack: one pack per merge.

    ``state_dirs``: filled with each directory where theirs' entry of a name of git's own
    state (``HEAD``, ``config``, ``objects``, ``hooks``...: ``names.git_state_name``, in any case), or a
    file below a ``hooks`` directory, joins ours' (the only places the merge can complete a
    repository neither side held: :func:`..workspace.plantedrule.refuse_merged`); one set
    lookup for each name the walk takes from theirs."""
    merger = _Merger(store, list_changed, pack, state_dirs)
    pw = merger.pw
    try:
        root = merger.walk(bytes.fromhex(base), bytes.fromhex(ours), bytes.fromhex(theirs), b"")
        root_hex = root.hex() if root is not None else pw.add(OBJ_TREE, b"")
        if pack is None:
            pw.finish()
    except _NeedsMerge:
        if pack is None:
            pw.abort()
        return None
    except BaseException:
        if pack is None:
            pw.abort()
        raise
    return root_hex, tuple(sorted(merger.changed))


class _Merger:
    """One trivial merge: the trees it read, the paths theirs changed, the pack it writes.

    A tree is kept as its raw entries (``<mode> <name>\\0<id>``, one bytes object each,
    found by one regex in C): whole entries are compared by set operations, and only the
    few where the sides differ are split into their name, mode and id."""

    def __init__(
        self, store: GitStore, list_changed: bool, pack: PackWriter | None, state_dirs: set[str] | None = None
    ) -> None:
        self.store = store
        self.list_changed = list_changed
        self.state_dirs = state_dirs
        findall = RAW_ENTRY.findall

        def reader(lane: int) -> Callable[[bytes], list[bytes]]:
            read = raw_reader(store, "tree", lane)

            def entries(oid: bytes) -> list[bytes]:
                """A tree's raw entries in order (the walk reads ~900 trees: no more calls
                per tree than these)."""
                found: list[bytes] = findall(read(oid.hex()))
                return found

            return entries

        # each side read through its own database of the packs: their trees are in
        # different packs, and libgit2 searches the vault's packs from the last one it
        # found an object in (odbdirect.packs_odb)
        self.base_entries, self.ours_entries, self.theirs_entries = reader(0), reader(1), reader(2)
        self.changed: set[str] = set()
        self.pw = pack if pack is not None else store.pack_writer()

    def walk(self, b: bytes | None, o: bytes | None, t: bytes | None, prefix: bytes) -> bytes | None:
        """The merged tree of base ``b``, ours ``o`` and theirs ``t`` (ids, raw; None:
        absent) at ``prefix``: None when empty. Raises :class:`_NeedsMerge`."""
        lo = self.ours_entries(o) if o is not None else []
        lt = self.theirs_entries(t) if t is not None else []
        lb = self.base_entries(b) if b is not None else []
        if len(lo) == len(lt) == len(lb):  # most often: the same names, some changed
            done = self.aligned(lb, lo, lt, o, prefix)
            if done is not _UNALIGNED:
                return done
        # only entries differing somewhere are looked at, by set operations (in C)
        so = frozenset(lo)
        st = frozenset(lt)
        sb = frozenset(lb)
        # ours' entry of each name where the sides differ (the name: from the first space to
        # the NUL before the 20-byte id; written out, not _name(): the walk's hottest line)
        oo = {e[e.index(b" ") + 1 : -21]: e for e in so - st}
        tt = {e[e.index(b" ") + 1 : -21]: e for e in st - so}
        differ = oo.keys() | tt.keys()
        both = so & st
        # the base's entries a side did not keep: of a name where the sides differ, the
        # base's version of it; of another name, the same change made on both sides
        bb: dict[bytes, bytes] = {}
        gone = sb - both
        for e in gone:
            n = e[e.index(b" ") + 1 : -21]
            if n in differ:
                bb[n] = e
            else:
                self.refuse_same_change(e, n, so - sb, prefix)
        if len(both) > len(sb) - len(gone):  # both sides hold entries the base lacks
            self.refuse_same_additions(both - sb, sb)
        replace: dict[bytes, bytes | None] = {}
        moved = False
        for name in differ:
            vo = oo.get(name)
            new = self.merged(bb.get(name), vo, tt.get(name), name, prefix)
            if new is _KEEP:
                continue
            replace[name] = new
            # a new name, or a file become a directory (or back), moves in git's order
            moved = moved or (
                new is not None and (vo is None or vo.startswith(_TREE) != new.startswith(_TREE))
            )
        if not replace:
            return o
        return self.write(lo, oo, replace, moved)

    def aligned(
        self, lb: list[bytes], lo: list[bytes], lt: list[bytes], o: bytes | None, prefix: bytes
    ) -> bytes | None:
        """:meth:`walk` of three trees with the same names in the same order (their raw
        entries ``lb``, ``lo``, ``lt``, of one length), the usual case of a directory both
        sides changed files in: entries compared by position, in C, and only those that
        differ named. :data:`_UNALIGNED` when a name differs at a position where the entries
        do (then the general walk decides; nothing was done here)."""
        n = len(lo)
        differ = list(compress(range(n), map(ne, lo, lt)))
        # the same change on both sides (ours and theirs equal, not the base)
        same = [i for i in compress(range(n), map(ne, lo, lb)) if lo[i] == lt[i]]
        for i in differ + same:  # the same name at each position that differs?
            eo, et, eb = lo[i], lt[i], lb[i]
            head = eo[:-20]  # "<mode> <name>\0": most often the same on all three sides
            if et[:-20] == head == eb[:-20]:
                continue
            key = eo[eo.index(b" ") : -20]  # " <name>\0"
            if et[et.index(b" ") : -20] != key or eb[eb.index(b" ") : -20] != key:
                return _UNALIGNED
        for i in same:
            eb = lb[i]
            self.refuse_same_change(eb, eb[eb.index(b" ") + 1 : -21], frozenset((lo[i],)), prefix)
        out: list[bytes | None] | None = None
        moved = False
        list_changed = self.list_changed
        # (the look of :meth:`note`, inlined: below a `hooks/` every name counts)
        look = self.state_dirs is not None
        hooks = look and _hooks_of(prefix) is not None
        for i in differ:
            eo, et, eb = lo[i], lt[i], lb[i]
            new: bytes | None
            if eb == eo and not list_changed:  # only theirs changed it (merged(), inlined)
                new = et
                if look and (hooks or git_state_name_b(eo[eo.index(b" ") + 1 : -21]) is not None):
                    self.note(eo[eo.index(b" ") + 1 : -21], prefix)
            elif eb == et:  # only ours changed it
                continue
            else:
                new = self.merged(eb, eo, et, eo[eo.index(b" ") + 1 : -21], prefix)
                if new is _KEEP:
                    continue
            if out is None:
                out = list(lo)
            out[i] = new
            # a file become a directory or back: it moves in git's order
            moved = moved or (new is not None and eo.startswith(_TREE) != new.startswith(_TREE))
        if out is None:
            return o
        return self.write_entries(out, moved)

    def merged(
        self, vb: bytes | None, vo: bytes | None, vt: bytes | None, name: bytes, prefix: bytes
    ) -> bytes | None:
        """The merged entry of ``name`` from its base, ours and theirs (raw; None: absent),
        the three not all equal: :data:`_KEEP` for ours' (ours changed it), None when it is
        gone. Raises :class:`_NeedsMerge`."""
        if (  # theirs' entry, or one made of it, of a name of git's own state (:meth:`note`)
            self.state_dirs is not None
            and vb != vt
            and (git_state_name_b(name) is not None or _hooks_of(prefix) is not None)
        ):
            self.note(name, prefix)
        if vb == vo:  # only theirs changed it: theirs' entry replaces ours'
            if self.list_changed:
                self.changed.update(c.path for c in _diff(self.store, _pair(vo), _pair(vt), prefix + name))
            return vt
        if vb == vt:  # only ours changed it
            return _KEEP
        if (
            (vb is None or vb.startswith(_TREE))
            and (vo is None or vo.startswith(_TREE))
            and (vt is None or vt.startswith(_TREE))
        ):
            # directories both changed (one may have deleted it, or both added it): merge
            # them entry by entry. (A file both replaced by a directory is not here: it
            # may be a rename into both, libgit2 decides.)
            # (an entry's id: its last 20 bytes)
            sub = self.walk(
                vb[-20:] if vb is not None else None,
                vo[-20:] if vo is not None else None,
                vt[-20:] if vt is not None else None,
                prefix + name + b"/",
            )
            new = _TREE + name + b"\0" + sub if sub is not None else None
            return _KEEP if new == vo else new
        raise _NeedsMerge  # a file both changed, or changed on one side, gone on the other

    def note(self, name: bytes, prefix: bytes) -> None:
        """Add to :attr:`state_dirs` the directory a name of git's own state at ``prefix``
        (from theirs) could complete a repository in (not the root: its ``.git`` is found
        first)."""
        assert self.state_dirs is not None
        if git_state_name_b(name) is not None:
            d = prefix[:-1]
        elif (up := _hooks_of(prefix)) is not None:
            d = up
        else:
            return
        if d:
            self.state_dirs.add(d.decode("utf-8", "surrogateescape"))

    def refuse_same_change(self, e: bytes, name: bytes, ours_new: frozenset[bytes], prefix: bytes) -> None:
        """Raise :class:`_NeedsMerge` where base entry ``e`` (``name``) is gone from both
        sides, or both made the same change that libgit2 may read as a rename: a file gone
        from both. ``ours_new``: what ours added or changed against the base."""
        same = next((n for n in ours_new if _name(n) == name), None)  # theirs made the same change
        if same is None:
            raise _NeedsMerge  # deleted on both sides: maybe renamed on one
        if e.startswith(_TREE):
            # the same change on both sides: a file gone from both may be a rename
            diffs = _diff(self.store, _pair(e), _pair(same), prefix + name)
            if any(c.status is ChangeStatus.DELETED for c in diffs):
                raise _NeedsMerge

    @staticmethod
    def refuse_same_additions(added: frozenset[bytes], sb: frozenset[bytes]) -> None:
        """Raise :class:`_NeedsMerge` where both sides added the very same entry under a
        name the base lacks (``added``: entries on both sides, not the base's): where one
        side also deleted something like it, libgit2 sees a rename meeting an add
        (rename/add), git maybe a directory rename: libgit2 decides."""
        if added and {_name(e) for e in added} - {_name(e) for e in sb}:
            raise _NeedsMerge

    def write(
        self, lo: list[bytes], oo: dict[bytes, bytes], replace: dict[bytes, bytes | None], moved: bool
    ) -> bytes | None:
        """Ours' raw entries ``lo`` with ``replace`` (name -> new raw entry or None)
        applied (``oo``: ours' entries where the sides differ), written as a tree into the
        pack; None when nothing is left."""
        out: list[bytes | None] = list(lo)
        for name, new in replace.items():
            if name in oo:  # (list.index: the search in C, not a loop over the entries here)
                out[out.index(oo[name])] = new
            else:  # a name ours lacks
                out.append(new)
        return self.write_entries(out, moved)

    def write_entries(self, out: list[bytes | None], moved: bool) -> bytes | None:
        """The raw entries ``out`` (None: gone) written as a tree into the pack, sorted in
        git's order if ``moved``; its id raw, None when nothing is left."""
        entries = [e for e in out if e is not None]
        if not entries:
            return None
        if moved:  # git's order: a directory sorts as if its name ended in "/"
            entries.sort(key=lambda e: _name(e) + b"/" if e.startswith(_TREE) else _name(e))
        return self.pw.add_tree(b"".join(entries))


class _NeedsMerge(Exception):
    """A path needs libgit2's merge (see :func:`_trivial_merge`)."""
