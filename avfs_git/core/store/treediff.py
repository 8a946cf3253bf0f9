"""Tree diffs whose cost follows the changes, not the tree size: avfs's one tree differ.

libgit2's tree diff visits every entry (~9 ms on a 100k tree whatever the change); this one
descends only into subtrees whose ids differ, so two checkpoints 10 files apart cost a few
directory listings. Renames are paired exactly (same blob id and mode), like git's exact
rename detection; content-similarity renames are left to `git diff -M` on the vault. Every list of changed
paths between two trees comes from here (status, checkpoints, merges, history, ``treedeltas.py``'s
``tree_deltas``); ``tests/test_treediff.py`` holds it against libgit2's tree diff on real
history. Only a patch's text (:meth:`.gitstore.GitStore.tree_patch`) is libgit2's.
"""

from __future__ import annotations

from typing import Protocol

from ..types import MODE_COMMIT, MODE_LINK, MODE_TREE, Change, ChangeStatus
from .names import join


class Trees(Protocol):
    """Where the differ reads trees: a tree's entries by name (the store's parsed-tree
    cache, :meth:`.gitstore.GitStore.tree_items`)."""

    def tree_items(self, tree_oid: str | None) -> dict[str, tuple[str, int]]: ...


def _is_tree(mode: int) -> bool:
    return mode == MODE_TREE


def type_changed(a: int, b: int) -> bool:
    """Whether a path went between a file, a symlink and a submodule (git's ``T``)."""
    return (a == MODE_LINK) != (b == MODE_LINK) or (a == MODE_COMMIT) != (b == MODE_COMMIT)


# what is left to do, last first (a stack, not a recursion: a tree 1,000 levels deep, which a
# confined command can make in its fork, raised RecursionError in every checkpoint after it;
# the fourteenth round, NAME=attack5): (kind, a, b, c)
_ENTRY, _TREES, _ALL, _OUT = 0, 1, 2, 3
_Task = tuple[int, object, object, object]


def add_all(store: Trees, tree: str, prefix: str, status: ChangeStatus, out: list[Change]) -> None:
    """Report every blob under ``tree`` as added (or deleted)."""
    _run(store, [(_ALL, tree, prefix, status)], out)


def diff_entry(
    store: Trees,
    path: str,
    old: tuple[str, int] | None,
    new: tuple[str, int] | None,
    out: list[Change],
) -> None:
    """Compare one name present in either tree (each side as (oid, mode) or None)."""
    _run(store, [(_ENTRY, path, old, new)], out)


def diff_trees(store: Trees, old: str | None, new: str | None, prefix: str, out: list[Change]) -> None:
    """Append the changes from tree ``old`` to tree ``new`` (either may be None) to ``out``.
    A whole diff of two trees is kept on a store that keeps them (``diffs``: the last few;
    trees do not change): a record's commit asked the same one four times (record4: the
    capture's forms, its retire, the checkpoint's changes, the index written ahead)."""
    memo: dict[tuple[str, str], tuple[Change, ...]] | None = getattr(store, "diffs", None)
    if memo is None or prefix or not old or not new:
        _run(store, [(_TREES, old, new, prefix)], out)
        return
    if (hit := memo.get((old, new))) is None:
        start = len(out)
        _run(store, [(_TREES, old, new, prefix)], out)
        if len(memo) >= 4:
            memo.clear()
        memo[(old, new)] = tuple(out[start:])
    else:
        out += hit


def paths_between(store: Trees, a: str, b: str) -> list[str] | None:
    """The paths where trees ``a`` and ``b`` differ, a rename's old path too (None: a tree
    could not be read)."""
    from ..errors import AvfsError

    out: list[Change] = []
    try:
        diff_trees(store, a, b, "", out)
    except AvfsError:
        return None
    return [p for c in out for p in (c.path, c.old_path) if p]


def _run(store: Trees, todo: list[_Task], out: list[Change]) -> None:
    """Do the tasks of ``todo`` (the last first), each appending its changes to ``out`` in
    the order a depth-first walk by name gives, or leaving more tasks."""
    while todo:
        kind, a, b, c = todo.pop()
        if kind == _OUT:
            out.append(a)  # type: ignore[arg-type]
        elif kind == _ALL:
            tree, prefix, status = a, b, c
            more: list[_Task] = []
            for name, (oid, mode) in sorted(store.tree_items(tree).items()):  # type: ignore[arg-type]
                p = join(prefix, name)  # type: ignore[arg-type]
                if _is_tree(mode):
                    more.append((_ALL, oid, p, status))
                elif status is ChangeStatus.ADDED:
                    more.append((_OUT, Change(p, ChangeStatus.ADDED, new_mode=mode, new_oid=oid), None, None))
                else:
                    more.append((_OUT, Change(p, status, old_mode=mode, old_oid=oid), None, None))  # type: ignore[arg-type]
            todo += reversed(more)
        elif kind == _TREES:
            if a == b:
                continue
            x = store.tree_items(a)  # type: ignore[arg-type]
            y = store.tree_items(b)  # type: ignore[arg-type]
            # names whose (id, mode) differ: a set operation in C over the entries of both trees
            names = sorted({name for name, _ in x.items() ^ y.items()})
            todo += [(_ENTRY, join(c, name), x.get(name), y.get(name)) for name in reversed(names)]  # type: ignore[arg-type]
        else:
            _entry(todo, a, b, c, out)  # type: ignore[arg-type]


def _entry(
    todo: list[_Task], path: str, old: tuple[str, int] | None, new: tuple[str, int] | None, out: list[Change]
) -> None:
    if old == new:
        return
    if old is None:
        assert new is not None
        if _is_tree(new[1]):
            todo.append((_ALL, new[0], path, ChangeStatus.ADDED))
        else:
            out.append(Change(path, ChangeStatus.ADDED, new_mode=new[1], new_oid=new[0]))
        return
    if new is None:
        if _is_tree(old[1]):
            todo.append((_ALL, old[0], path, ChangeStatus.DELETED))
        else:
            out.append(Change(path, ChangeStatus.DELETED, old_mode=old[1], old_oid=old[0]))
        return
    ot, nt = _is_tree(old[1]), _is_tree(new[1])
    if ot and nt:
        todo.append((_TREES, old[0], new[0], path))
    elif ot or nt:
        # a directory became a file or the reverse: git shows deletions plus additions
        todo += [(_ENTRY, path, None, new), (_ENTRY, path, old, None)]
    else:
        status = ChangeStatus.TYPE_CHANGED if type_changed(old[1], new[1]) else ChangeStatus.MODIFIED
        out.append(Change(path, status, old_mode=old[1], new_mode=new[1], old_oid=old[0], new_oid=new[0]))


def _kind(mode: int | None) -> int | None:
    return None if mode is None else mode & 0o170000


def _basename(path: str) -> str:
    return path.rpartition("/")[2]


def _same_content(cands: list[str], path: str, used: set[str]) -> str | None:
    """Which deleted file of the same content (``cands``, in path order) an added file at
    ``path`` was moved from, as git picks it (diffcore-rename.c ``find_identical_files``):
    the first not paired yet whose name (the part after the last ``/``) is ``path``'s, else
    the first not paired yet, among the first 100 not paired yet. The first alone paired
    packaging 21.3's ``packaging/py.typed`` with ``docs/_static/.empty`` (both empty)
    where git moves it to ``src/packaging/py.typed`` (23.0's move into ``src/``)."""
    first = None
    name = _basename(path)
    left = 100
    for cand in cands:
        if cand in used:
            continue
        if _basename(cand) == name:
            return cand
        first = first or cand
        left -= 1
        if not left:
            break
    return first


def pair_renames(changes: list[Change], hints: dict[str, str] | None = None) -> list[Change]:
    """Turn (deleted, added) pairs into renames.

    ``hints`` maps an added path to the path it was moved from (the overlay knows); other
    pairs are matched when blob id and kind of file are equal (the exec bit may differ, as
    git pairs ``badmode`` 100755 and ``goodmode`` 100644 in libgit2's ``revert-rename.git``),
    among several of the same content the one git picks (:func:`_same_content`).
    Returns the list sorted by path.
    """
    deleted = {c.path: c for c in changes if c.status is ChangeStatus.DELETED}
    if not deleted:
        return sorted(changes, key=lambda c: c.path)
    by_oid: dict[tuple[str | None, int | None], list[str]] = {}
    for c in deleted.values():
        by_oid.setdefault((c.old_oid, _kind(c.old_mode)), []).append(c.path)
    out: list[Change] = []
    used: set[str] = set()
    for c in changes:
        if c.status is not ChangeStatus.ADDED:
            continue
        src = (hints or {}).get(c.path)
        if src is None or src not in deleted or src in used:
            src = _same_content(
                by_oid.get((c.new_oid, _kind(c.new_mode)), []) if c.new_oid else [], c.path, used
            )
        if src is not None:
            used.add(src)
            d = deleted[src]
            out.append(
                Change(
                    c.path,
                    ChangeStatus.RENAMED,
                    old_path=src,
                    old_mode=d.old_mode,
                    new_mode=c.new_mode,
                    old_oid=d.old_oid,
                    new_oid=c.new_oid,
                )
            )
        else:
            out.append(c)
    out.extend(c for c in changes if c.status is not ChangeStatus.ADDED and c.path not in used)
    return sorted(out, key=lambda c: c.path)
