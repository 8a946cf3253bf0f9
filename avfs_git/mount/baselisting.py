"""A lazy mount's base tree listed once for its two settling threads (the sizes and the
index): git's listing made ahead into the store's kept listing, and dropped once both have
taken it (core/store/treelist.py's :class:`~avfs_git.core.store.treelist.KeptListing`).
Here, so that fuse/ asks the workspace's side of the mount and never the store itself."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ..core.store.treelist import git_listing

if TYPE_CHECKING:
    from ..core.workspace.workspace import Workspace
    from .ownfiles import MountedFork
    from .readtree import Ahead


def prelist(ws: Workspace, tree: str) -> None:
    """Have git list ``tree`` (not parsed yet) for the first of the threads that asks."""
    store = ws.store
    store.listed.prelist(tree, lambda: git_listing(store.path, tree))


def read_tree_ahead(ws: MountedFork, tree: str) -> None:
    """Have git make the index of ``tree`` for the mount's index (mount/readtree.py
    :class:`~.readtree.Ahead`) and the head of its untracked cache (mount/untracked.py
    :class:`~.untracked.HeadAhead`), unless one is kept for it or being made
    (mount/keptindex.py): two processes of git's, started once, read when the index is
    made (:func:`index_ahead`)."""
    from ..core.vaults.keptindexes import kept_path
    from .ownfiles import files_dir, worktree_dir
    from .readtree import Ahead
    from .untracked import HeadAhead, scratch_parent

    if os.path.exists(kept_path(ws.vault.state_dir, tree)):
        return
    store = ws.store
    scratch = scratch_parent(files_dir(ws.vault, ws.fork))
    ahead = store.listed.beside(tree)  # (git's read-tree started first: :func:`read_tree_first`)
    if isinstance(ahead, Ahead) and ahead.head is None:
        ahead.head = HeadAhead(worktree_dir(ws.vault, ws.fork), scratch, ws.vault.path)
        return
    head = HeadAhead(worktree_dir(ws.vault, ws.fork), scratch, ws.vault.path)
    store.listed.keep_beside(tree, Ahead(store.path, tree, scratch, head))


def read_tree_first(ws: MountedFork, tree: str) -> None:
    """Have git make the index of ``tree`` (:func:`read_tree_ahead`'s ``read-tree``, the
    untracked cache's head left for it) as the mount's sizes are first asked, before the
    mount is announced, where the tree's listing for its sizes was made by ``git ls-tree``
    (:func:`prelist`): the sizes read the tree's blob ids from this index instead
    (core/store/gitstore.py ``tree_blobs``), so git lists the tree once, not twice (a
    20,538-file tree: ``ls-tree`` 0.03 s of CPU and its parse 0.015 s no longer made)."""
    from ..core.vaults.keptindexes import kept_path
    from .ownfiles import files_dir
    from .readtree import Ahead
    from .untracked import scratch_parent

    if os.path.exists(kept_path(ws.vault.state_dir, tree)):
        return
    store = ws.store
    if store.listed.beside(tree) is None:
        store.listed.keep_beside(tree, Ahead(store.path, tree, scratch_parent(files_dir(ws.vault, ws.fork))))


def index_ahead(ws: MountedFork, tree: str) -> Ahead | None:
    """The index of ``tree`` git was set to make by :func:`read_tree_ahead`, or None."""
    from .readtree import Ahead

    thing = ws.store.listed.take_beside(tree)
    return thing if isinstance(thing, Ahead) else None


def drop(ws: Workspace) -> None:
    """Let go of the kept listing (both threads took it) and of what was made beside it."""
    ws.store.listed.drop()


def kept_now(ws: Workspace, tree: str) -> bool:
    """Whether the kept index of ``tree`` is there now (made by the clone, by a process of
    its own, mount/keptmake.py, or by an earlier mount), the size cache then read again:
    the mount asks no sizes and makes no index of its own. A process still making it is
    not waited for (the mount comes up as without one: its sizes asked, git's index
    started; the index is patched from the kept one if that is there by the time the
    mount makes its index, keptindex.py ``from_kept``, else the maker is stopped)."""
    from ..core.vaults.keptindexes import kept_path

    if not os.path.exists(kept_path(ws.vault.state_dir, tree)):
        return False
    ws.store.promisor.reread_sizes()
    return True
