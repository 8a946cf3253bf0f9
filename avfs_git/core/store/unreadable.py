"""What git or libgit2 could not read, found and named by the store's own reads.

git and libgit2 take a pack whose end does not match its index (a pack cut short) as
unusable as a whole: every object in it is missing to them, where the store's pure reader
still reads each object the damage left whole. A step that hands a tree to git (`git
ls-tree`, `git grep`, `git pack-objects`) or a commit to libgit2 (its merge base) after the
store read what it needed then failed with git's words and no object named: ``internal``
(the badinput sweep at load ~30, flaky3, where the pack's layout put the root tree before
the cut). :func:`first_unreadable` walks the trees as the store reads them and reads each
blob whole, checked against its id: the error naming the first that cannot be read, for
the caller to raise in place of git's. Only on such a failure: it reads every blob.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..errors import ObjectUnreadableError
from ..types import MODE_COMMIT, MODE_TREE
from .gitstore import GitStore
from .treelist import walk_tree


def first_unreadable(store: GitStore, trees: Iterable[str]) -> ObjectUnreadableError | None:
    """The error naming the first object under ``trees`` (tree ids) the store cannot read
    (a tree, or a blob read whole and checked), or None when every one reads."""
    seen: set[str] = set()
    try:
        for tree in trees:
            for _path, mode, oid in walk_tree(tree, store.tree_items):
                if mode in (MODE_TREE, MODE_COMMIT) or oid in seen:
                    continue
                seen.add(oid)
                if store.is_local(oid):  # (a lazy vault's promised blob is not damage)
                    store.check_object(oid)
    except ObjectUnreadableError as exc:
        return exc
    return None


# what git says when it cannot read the vault's own objects (its pack-objects in a push)
_LOCAL_DAMAGE = (
    "does not match index",
    "bad object",
    "unable to read",
    "inflate",
    "corrupt",
    "pack-objects died",
)


def damaged_push(store: GitStore, stderr: str, commits: Iterable[str]) -> None:
    """After a push git did not complete: where git's words say it could not read the
    vault's objects, raise the error naming the first one under ``commits``' trees the
    store cannot read (a server's refusal is the caller's to report)."""
    if any(s in stderr for s in _LOCAL_DAMAGE):
        named = first_unreadable(store, [store.commit_tree(c) for c in dict.fromkeys(commits)])
        if named is not None:
            raise named
