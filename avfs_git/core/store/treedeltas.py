"""Two trees' differences as libgit2's tree diff lists them (:func:`tree_deltas`: path
order, no rename pairing, a path whose kind changed a deletion and an addition), from the one
tree differ (:mod:`.treediff`): what ``avfs apply`` writes (``ops/hostwrite.py``)."""

from __future__ import annotations

from typing import NamedTuple

from ..types import Change
from .treediff import Trees, diff_trees

_KIND = 0o170000  # the file type bits of a mode


class DeltaSide(NamedTuple):
    """One side of a changed path in a tree diff (:func:`tree_deltas`)."""

    path: str
    oid: str | None  # None: the path is absent on this side
    mode: int  # 0 when absent


def tree_deltas(store: Trees, old_tree: str, new_tree: str) -> list[tuple[DeltaSide, DeltaSide]]:
    """(old, new) of every path that differs between two trees, in path order, as
    libgit2's tree diff lists them (no rename pairing; a path whose kind changed comes as
    a deletion and an addition). From the one tree differ (:mod:`.treediff`), whose cost
    follows the changes, not the tree size (``tests/test_treediff.py`` compares)."""
    changes: list[Change] = []
    diff_trees(store, old_tree, new_tree, "", changes)
    changes.sort(key=lambda c: c.path.encode("utf-8", "surrogateescape"))  # git's order
    out = []
    for c in changes:
        old = DeltaSide(c.path, c.old_oid, c.old_mode or 0)
        new = DeltaSide(c.path, c.new_oid, c.new_mode or 0)
        if old.mode and new.mode and old.mode & _KIND != new.mode & _KIND:  # a file became a link...
            absent = DeltaSide(c.path, None, 0)
            out += [(old, absent), (absent, new)]
        else:
            out.append((old, new))
    return out
