"""Every entry of a whole tree in one list, depth first, directories before what they hold
(git's own order: ``git ls-tree -r -t``), for the two walks a lazy fork's mount makes of its
base tree before git may run in it: the sizes asked of the server (core/store/treesizes.py)
and the worktree's git index (mount/index.py).

Why git lists it: a lazy vault's trees are read by the pure reader until the mount has
settled (libgit2's import was moved off the way to ``ls``), and a walk of 7,516 trees there
took 0.15-0.32 s of the 0.5-0.9 s that settling took at 20,538 files, then a second walk
for the index; ``git ls-tree -r -t -z`` lists the same entries in C (0.02 s) and reads no
blob (a partial clone's trees are all local). Where git cannot (not installed, a tree it
does not find), the tree is walked through the store as before, in the same order.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Protocol

from ..errors import InternalError
from ..types import MODE_TREE
from .gitrun import run
from .threads import reset_at_fork

Listing = list[tuple[str, int, str]]  # (path, mode, oid), depth first, a directory before its entries


def git_listing(git_dir: str, tree: str) -> bytes | None:
    """git's listing of ``tree`` in the vault ``git_dir`` as git writes it (``ls-tree -r -t
    -z``), or None where git cannot list it (not installed)."""
    try:
        return run(["ls-tree", "-r", "-t", "-z", "--full-tree", tree], git_dir=git_dir).stdout
    except InternalError:
        return None


def list_tree(
    git_dir: str, tree: str, items: Callable[[str], Mapping[str, tuple[str, int]]], out: bytes | None = None
) -> Listing:
    """``tree``'s entries at every depth, as :data:`Listing`: listed by git in the vault
    ``git_dir`` (``out``: :func:`git_listing`'s, made already), or walked with ``items(tree
    id)`` (name -> (oid, mode), in tree order) where git cannot list it."""
    if out is None:
        out = git_listing(git_dir, tree)
    if out is None:
        return walk_tree(tree, items)
    listing: Listing = []
    add = listing.append
    for record in out.split(b"\0"):
        if not record:
            continue
        meta, _, path = record.partition(b"\t")  # "<mode> <type> <id>\t<path>"
        mode, _, rest = meta.partition(b" ")
        add((path.decode("utf-8", "surrogateescape"), int(mode, 8), rest.partition(b" ")[2].decode()))
    return listing


def blob_ids(out: bytes) -> list[str]:
    """The ids of the blobs (files and symbolic links) in git's listing ``out``
    (:func:`git_listing`'s), one per entry, in its order: read in bulk, not parsed entry by
    entry (a lazy mount's sizes need only these: 20,538 entries parsed took 0.05-0.06 s of
    the mount's interpreter, this ~0.01 s)."""
    records = out.split(b"\0")
    # "<mode> <type> <id>\t<path>": a blob's mode has 6 digits; the id's length is the
    # repository's (40 digits for SHA-1)
    first = next((r for r in records if r[7:12] == b"blob "), None)
    if first is None:
        return []
    end = first.index(b"\t")
    ids = [r[12:end] for r in records if r[7:12] == b"blob "]
    return b"\n".join(ids).decode("ascii").split("\n")


def walk_tree(tree: str, items: Callable[[str], Mapping[str, tuple[str, int]]]) -> Listing:
    """:func:`list_tree`'s listing walked through ``items`` (the store's trees)."""
    listing: Listing = []
    add = listing.append
    # depth first, a directory's entry before its contents, by a loop (a tree deeper than
    # Python's recursion limit, which a confined command makes in a second, is listed too)
    stack = [("", iter(items(tree).items()))]
    while stack:
        prefix, it = stack[-1]
        for name, (child, mode) in it:
            add((prefix + name, mode, child))
            if mode == MODE_TREE:
                stack.append((prefix + name + "/", iter(items(child).items())))
                break
        else:
            stack.pop()
    return listing


class Droppable(Protocol):
    """What :meth:`KeptListing.keep_beside` keeps: let go of by :meth:`drop`."""

    def drop(self) -> None: ...


class KeptListing:
    """A store's last listing, kept for the next caller (:meth:`.GitStore.tree_listing`):
    a lazy fork's mount lists its base tree for its sizes and for its index, on two
    threads at once (fuse/settle.py), so the listing is made under a lock, once, and
    kept until :meth:`drop`; a tree of millions of files is hundreds of MB, not held for
    the daemon's life."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kept: tuple[str, Listing] | None = None
        self._raw: tuple[str, bytes] | None = None  # git's output, not parsed yet (:meth:`prelist`)
        # the tree git is listing now for :meth:`prelist`, and set once its output is kept
        self._listing: tuple[str, threading.Event] | None = None
        # made from the tree beside its listing, for the same mount (its git index being
        # made by git: mount/baselisting.py), until taken or dropped with the listing
        self._beside: tuple[str, Droppable] | None = None
        reset_at_fork(self)

    def after_fork(self) -> None:
        """A child of a fork while another thread listed: the lock anew (that thread is
        not in the child), the listing kept; a listing that thread was making is not
        waited for."""
        self._lock = threading.Lock()
        self._listing = None
        self._beside = None  # (the parent's)

    def get(self, tree: str, keep: bool, make: Callable[[bytes | None], Listing]) -> Listing:
        """``tree``'s listing: the kept one, else ``make(git's output of it, if prelisted)``'s
        (on one thread at a time); kept afterwards when ``keep``, else no longer kept. A
        listing of ``tree`` that :meth:`prelist` is making is waited for, not made again
        (a lazy mount's index asked for it while git listed it for the sizes: two `git
        ls-tree` of 20,538 files at once, on a machine whose cores the settling shares)."""
        making = self._listing
        if making is not None and making[0] == tree:
            making[1].wait()
        with self._lock:
            kept, self._kept = self._kept, None
            if kept is not None and kept[0] == tree:
                listing = kept[1]
            else:
                raw, self._raw = self._raw, None
                listing = make(raw[1] if raw is not None and raw[0] == tree else None)
            if keep:
                self._kept = (tree, listing)
            return listing

    def raw(self, tree: str, out: Callable[[], bytes | None]) -> bytes | None:
        """git's output listing ``tree`` (the one :meth:`prelist` made, waited for, else
        ``out()``'s), kept for the next :meth:`get` to parse; None where git cannot list it
        or ``tree``'s listing is kept parsed already (the caller then gets it parsed)."""
        making = self._listing
        if making is not None and making[0] == tree:
            making[1].wait()
        with self._lock:
            if self._raw is not None and self._raw[0] == tree:
                return self._raw[1]
            if self._kept is not None and self._kept[0] == tree:
                return None
            made = out()
            self._raw = (tree, made) if made is not None else None
            return made

    def prelist(self, tree: str, out: Callable[[], bytes | None]) -> None:
        """Keep ``out()`` (git's output listing ``tree``: :func:`git_listing`) for the next
        :meth:`get` of it to parse: a lazy fork's mount lists its tree as it starts, a wait
        on git, and parses it once it answers (fuse/settle.py). Meanwhile a :meth:`get`
        of ``tree`` waits for it."""
        done = threading.Event()
        self._listing = (tree, done)
        try:
            raw = out()
            with self._lock:
                self._raw = (tree, raw) if raw is not None else None
        finally:
            self._listing = None
            done.set()

    def keep_beside(self, tree: str, thing: Droppable) -> None:
        """Keep ``thing`` (made from ``tree``) for :meth:`take_beside` (what was kept is
        dropped)."""
        with self._lock:
            old, self._beside = self._beside, (tree, thing)
        if old is not None:
            old[1].drop()

    def take_beside(self, tree: str) -> Droppable | None:
        """What :meth:`keep_beside` kept for ``tree``, no longer kept; None when nothing is
        (what was kept for another tree is dropped)."""
        with self._lock:
            kept, self._beside = self._beside, None
        if kept is not None and kept[0] != tree:
            kept[1].drop()
            return None
        return None if kept is None else kept[1]

    def beside(self, tree: str) -> Droppable | None:
        """What :meth:`keep_beside` keeps for ``tree`` (still kept), or None."""
        kept = self._beside
        return kept[1] if kept is not None and kept[0] == tree else None

    def beside_ids(self, tree: str) -> list[str] | None:
        """The blob ids of ``tree``'s files as what is kept beside it says them (a lazy
        mount's index being made by git: mount/readtree.py ``Ahead.blob_ids``), or None
        (nothing kept that can, or it cannot): the tree is then listed for them."""
        ids = getattr(self.beside(tree), "blob_ids", None)
        return ids() if callable(ids) else None

    def drop(self) -> None:
        """Keep nothing."""
        with self._lock:
            self._kept = self._raw = None
            beside, self._beside = self._beside, None
        if beside is not None:
            beside[1].drop()
