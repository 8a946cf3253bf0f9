"""The git objects a workspace's overlay names by id, kept reachable for git's gc in a
mount (:mod:`..store.heldref`: the fork's held ref).

What is held: the object of each entry naming one by id (a blob or a tree; not a gitlink,
not the empty tree), unless the base holds that very object at the path the entry shows
the content of (its ``origin``: a file or directory renamed unchanged, which the fork's
branch keeps reachable; holding it would cost every such rename a ref write). When:

- a transaction that put such entries, once it committed: their objects are added;
- a move of the base to a commit whose parent is the old base (a checkpoint, git's
  commit in the mount taken): the old base stays reachable from the new one, so what the
  old base held stays held; the ref, when there is one, is made to name exactly what the
  rule gives now (a checkpoint retires entries: nothing left, the ref goes);
- any other move (a restore, an undo, git's `reset` or `--amend` taken): the ref is made
  to name exactly what the rule gives, against the new base.

And, while the fork is mounted, the base itself (:func:`.heldref.hold_base`): the commit a
mount's lower layer shows stays reachable when git in the mount moves the branch off it and
expires the reflogs that named it, until avfs takes the move (gitgc3). The mount's start
makes that ref (:func:`hold_base`), each move of the base moves it where it is, the mount's
end removes it (:func:`drop_base`): a command on a fork nobody mounts writes none.

A failure here (a full disk, another writer holding the ref past every retry) does not
undo the change the transaction committed: it is logged, and the next transaction that
names an object or moves the base writes the ref again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from ..errors import AvfsError
from ..store import heldref

if TYPE_CHECKING:
    from ..store.gitstore import GitStore
    from .overlay import Overlay
    from .overlayentry import Entry


# (vault path, commit) -> its tree: a rename's check reads it once per base, not per rename
# (a commit's tree never changes: right for every thread; bounded)
_trees: dict[tuple[str, str], str] = {}


def hold(store: GitStore, fork: str, oids: Iterable[str]) -> None:
    """Add ``oids`` to fork ``fork``'s held ref (a new fork's seed tree)."""
    try:
        heldref.hold(store, fork, oids)
    except (AvfsError, OSError) as exc:
        _warn(fork, exc)


def hold_new_fork(store: GitStore, source: str, new: str, snapshot: bool, seed: str | None) -> None:
    """What new fork ``new``'s overlay names by id, held for git's gc as ``source``'s is: a
    snapshot's entries are the source's, a seed tree (``seed``) is one no ref names."""
    if snapshot:
        heldref.copy(store, source, new)
    if seed is not None:
        hold(store, new, [seed])


def after_txn(
    store: GitStore, fork: str, overlay: Overlay, entries: list[Entry], moved: tuple[str | None, str] | None
) -> None:
    """After an overlay transaction of fork ``fork`` that put ``entries`` naming objects,
    or moved the base (``moved``: the base before, the base after): the module's rules."""
    try:
        if moved is not None:
            old, new = moved
            heldref.hold_base(store, fork, new)  # (only where a mount made it)
            fresh = old is not None and old not in store.commit_fields(new).parents
            heldref.refresh(store, fork, lambda: _named(store, overlay, new), create=fresh)
            if fresh:
                return
        if entries:
            base = overlay.get_meta("base") if any(e.origin is not None for e in entries) else None
            tree = _tree(store, base) if base else None
            heldref.hold(store, fork, [e.oid for e in entries if e.oid and not _base_holds(store, tree, e)])
    except (AvfsError, OSError) as exc:
        _warn(fork, exc)


def hold_base(store: GitStore, fork: str, base: Callable[[], str | None]) -> None:
    """A mount of fork ``fork`` starting: its held base ref made to name the base
    (``base()``), asked again after the write until it stays: a move that committed before
    the ref was there did not move it."""
    try:
        for _ in range(heldref.TRIES):
            now = base()
            if now is None or not heldref.hold_base(store, fork, now, create=True):
                return
    except (AvfsError, OSError) as exc:
        _warn(fork, exc)


def drop_base(store: GitStore, fork: str) -> None:
    """A mount of fork ``fork`` ended: its held base ref goes (nothing of git's in a mount
    can move the branch off the base any more; avfs took git's last move first)."""
    try:
        heldref.drop_base(store, fork)
    except (AvfsError, OSError) as exc:
        _warn(fork, exc)


def _named(store: GitStore, overlay: Overlay, base: str) -> list[str]:
    """What the rule holds now, the base being ``base``."""
    tree = _tree(store, base)
    return [e.oid for e in overlay.named_objects() if e.oid and not _base_holds(store, tree, e)]


def _tree(store: GitStore, commit: str) -> str:
    key = (store.path, commit)
    tree = _trees.get(key)
    if tree is None:
        if len(_trees) > 64:
            _trees.clear()
        tree = _trees[key] = store.commit_tree(commit)
    return tree


def _base_holds(store: GitStore, tree: str | None, e: Entry) -> bool:
    """Whether base tree ``tree`` holds ``e``'s object at the path ``e`` shows the content of."""
    if tree is None or e.origin is None:
        return False
    return store.tree_lookup(tree, e.origin) == (e.oid, e.mode)


def _warn(fork: str, exc: Exception) -> None:
    import logging  # (only when it fails: logging is not on the cold commands' path)

    logging.getLogger(__name__).warning(
        "fork %s: the objects its overlay names are not all held for git's gc: %s", fork, exc
    )
