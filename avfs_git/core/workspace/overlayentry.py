"""An overlay entry: the absolute state of one path of a workspace's overlay, and the
values its fields take (its kinds, the file ids that name files outside ``files/``, the
empty tree).

An entry describes the *absolute* state of one path, never a delta:

    DELETED  the path is gone (a whiteout over what the base or an ancestor entry has)
    FILE     a materialized file (or symlink, mode 120000) whose bytes are ``files/<fileid>``
    OBJECT   a git object by id: a blob (unchanged content moved or restored) or a tree
             (a renamed directory, an empty new directory, a restored subtree). Nothing is
             copied; deeper entries apply on top of the tree.
"""

from __future__ import annotations

import dataclasses

DELETED = 0
FILE = 1
OBJECT = 2

EMPTY_TREE_ID = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
UPPER_FILE = "u:"  # a file id naming a file of the upper layer by its path
LINK_FILE = "l:"  # a file id naming a side file that holds a symlink's target
SPECIAL_ORIGIN = "special:"  # the origin of the deletion entry a fifo, socket or device makes


@dataclasses.dataclass(frozen=True, slots=True)
class Entry:
    path: str
    kind: int
    mode: int
    oid: str | None = None
    fileid: str | None = None
    origin: str | None = None
    size: int = 0
    seq: int = 0
