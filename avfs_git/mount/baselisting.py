"""A lazy mount's base tree listed once for its two settling threads (the sizes and the
index): git's listing made ahead into the store's kept listing, and dropped once both have
taken it (core/store/treelist.py's :class:`~avfs_git.core.store.treelist.KeptListing`).
Here, so that fuse/ asks the workspace's side of the mount and never the store itself."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..core.store.treelist import git_listing
from . import keptindex

if TYPE_CHECKING:
    from ..core.workspace.workspace import Workspace


def prelist(ws: Workspace, tree: str) -> None:
    """Have git list ``tree`` (not parsed yet) for the first of the threads that asks."""
    store = ws.store
    store.listed.prelist(tree, lambda: git_listing(store.path, tree))


def drop(ws: Workspace) -> None:
    """Let go of the kept listing (both threads took it)."""
    ws.store.listed.drop()


def await_kept(ws: Workspace, tree: str) -> bool:
    """Wait while a process makes the kept index of ``tree`` (mount/keptmake.py: it asks
    the tree's sizes too), then read the size cache again: the mount's own request for
    them is then not needed. Whether one was making it."""
    if not keptindex.await_maker(ws.vault.state_dir, tree):
        return False
    ws.store.promisor.reread_sizes()
    return True
