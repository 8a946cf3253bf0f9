"""Where a lazy vault keeps its mounts' settled git indexes, one per base tree
(``<vault>/avfs/kept-index/<tree id>``: made and read by mount/keptindex.py, which says
what they are), and which of them ``gc`` drops: those of trees no fork's tip has now, and
what a killed writer left (temp files, a dead maker's lock file).
"""

from __future__ import annotations

import os
from collections.abc import Iterable

KEPT_DIR = "kept-index"  # under the vault's avfs/ directory


def kept_dir(state_dir: str) -> str:
    """The directory of a vault's kept indexes (``state_dir``: the vault's ``avfs/``)."""
    return os.path.join(state_dir, KEPT_DIR)


def kept_path(state_dir: str, tree: str) -> str:
    """Where the index kept for base tree ``tree`` is."""
    return os.path.join(kept_dir(state_dir), tree)


# git's ``read-tree`` of a tree into the kept indexes' directory, started by a lazy clone
# as it answers (mount/readtree.py ``start_read_tree``): a fresh clone's first mount then
# starts no ``read-tree`` of its own (mount/readtree.py ``Ahead``, which takes the file)
READ_TREE_SUFFIX = ".read-tree"


def read_tree_path(state_dir: str, tree: str) -> str:
    """Where git's ``read-tree`` of ``tree`` made ahead by the clone is (renamed in whole by
    git's own lock file); ``gc`` drops one no mount took, as any name but a tip's tree."""
    return kept_path(state_dir, tree) + READ_TREE_SUFFIX


def drop_unused(state_dir: str, trees: Iterable[str]) -> list[str]:
    """Remove the kept indexes (and leftovers) of every tree but ``trees`` (the trees of
    the forks' tips); the names removed. A lock file held by a live maker stays: gc runs
    with no mount and no writer of the vault, and a maker's file goes with it anyway."""
    import fcntl

    root = kept_dir(state_dir)
    keep = set(trees)
    gone: list[str] = []
    try:
        names = sorted(os.listdir(root))
    except (FileNotFoundError, NotADirectoryError):
        return gone
    for name in names:
        if name in keep:
            continue
        path = os.path.join(root, name)
        if name.endswith(".lock"):
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # its maker is at work
            finally:
                os.close(fd)
        try:
            os.unlink(path)
            gone.append(name)
        except (IsADirectoryError, PermissionError, FileNotFoundError):
            continue
    return gone
