"""A lazy vault's sizes of a whole tree's files, known without their blobs: asked of the
server in one request (:meth:`.Promisor.learn_sizes`), or, where it cannot say, the missing
blobs fetched in one batch; and a mount's asking of them after it answers, which a
``stat`` waits for (:func:`ask`, docs/lazy.md "Mounting a lazy fork: sizes before
contents").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

from ..types import MODE_COMMIT, MODE_TREE
from .promisor import Promisor

_NOT_BLOBS = (MODE_TREE, MODE_COMMIT)


class GitStore(Protocol):
    """What of :class:`.gitstore.GitStore` this reads (which calls in here)."""

    @property
    def promisor(self) -> Promisor: ...
    def tree_items(self, tree_oid: str | None) -> dict[str, tuple[str, int]]: ...
    def is_local(self, oid: str) -> bool: ...
    def tree_blobs(self, tree: str) -> list[str]: ...
    def prefetch(self, oids: Iterable[str]) -> int: ...


def ensure_sizes(
    store: GitStore,
    tree: str,
    *,
    fetch: bool = True,
    sending: Callable[[], None] | None = None,
    reading: Callable[[], None] | None = None,
) -> None:
    """Make the sizes of ``tree``'s files known without reading them one by one (a mount
    reports every size): in a lazy vault, asked of the server in one request where it can
    say, else (``fetch``) the missing blobs fetched in one batch (a blob the vault holds,
    written here, is not asked). Nothing in a whole vault, or for a tree already sized.
    ``sending()`` is called as the request goes out (its ids ready); ``reading()`` before
    its answer is read, or before anything else is done where no request goes out (not
    where the tree is sized already: nothing is done; :func:`.objectinfo.remote_sizes`; it
    must do nothing the second time it is called)."""
    promisor = store.promisor
    if promisor.remote() is None or promisor.sized(tree):
        return
    # listed by git (C), not walked tree by tree, and read in bulk (the listing stays kept
    # for the index of a mount that makes it from the listing); those not known yet are
    # asked (learn_sizes keeps to them)
    blobs = store.tree_blobs(tree)
    if sending is not None:
        sending()
    # the server sizes what it has; a blob it lacks is one written here (or lost there)
    rest = promisor.unknown(blobs) if blobs and not promisor.learn_sizes(blobs, reading) else []
    if reading is not None:
        reading()  # (no request went out, or the server could not say: before any fetch)
    rest = [o for o in rest if promisor.size(o) is None and not store.is_local(o)]
    if not rest:
        promisor.sized(tree, done=True)  # the next mount of this tree walks nothing
    elif fetch:
        store.prefetch(rest)


def ask(
    store: GitStore,
    tree: str,
    asking: Callable[[], None],
    then: Callable[[str], None] | None = None,
    sending: Callable[[], None] | None = None,
    reading: Callable[[], None] | None = None,
    first: Callable[[str], None] | None = None,
) -> None:
    """A mount's sizes: marked in flight (``asking()`` is called then), the root
    directory's files first in a small request of their own (overlayfs looks each of them
    up as it lists the root), then (after ``then(tree)``, when given: fuse/settle.py) the
    whole tree (:func:`ensure_sizes`; ``sending()`` is called as its request goes out, or
    once none will; ``reading()`` before its answer is read: see :func:`ensure_sizes`;
    ``first(tree)`` before the root's request, to start what the whole tree's waits for).
    Meanwhile a size not known waits for these (:meth:`.GitStore.blob_size`)."""
    promisor = store.promisor
    try:
        with promisor.asking():
            asking()
            if promisor.remote() is None or promisor.sized(tree):
                return
            promisor.claim_dir(tree)  # (a stat of a root file waits for this request, not one of its own)
            if first is not None:
                first(tree)
            root = [o for o, mode in store.tree_items(tree).values() if mode not in (MODE_TREE, MODE_COMMIT)]
            if root:
                promisor.learn_sizes(root)
            if then is not None:
                then(tree)
            ensure_sizes(store, tree, sending=sending, reading=reading)
    finally:
        if sending is not None:
            sending()
        if reading is not None:
            reading()


def ask_dir(store: GitStore, tree: str | None) -> None:
    """While a mount asks its whole tree's sizes (:func:`ask`): the sizes of directory
    ``tree``'s own files in a small request of their own, once per directory, so a ``stat``
    there answers without waiting for the whole tree's (20,538 files: 0.3-0.6 s). Sizes come
    from the server only, by blob id: one never known is never guessed. Nothing when no
    request is in flight or the directory's sizes are known or asked already."""
    promisor = store.promisor
    if tree is None or not promisor.pending():
        return
    blobs = [
        o
        for o, mode in store.tree_items(tree).values()
        if mode not in _NOT_BLOBS and promisor.size(o) is None
    ]
    if blobs and promisor.claim_dir(tree):
        promisor.learn_sizes(blobs)  # (failing: the stat waits for the whole tree's, as before)


def answers_now(store: GitStore, oid: str) -> bool:
    """Whether the size of blob ``oid`` can be given without waiting for a mount's request
    (:func:`ask`): none in flight, or this one known already."""
    promisor = store.promisor
    return not promisor.pending() or promisor.size(oid) is not None
