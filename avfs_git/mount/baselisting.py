"""A lazy mount's base tree listed once for its two settling threads (the sizes and the
index): git's listing made ahead into the store's kept listing, and dropped once both have
taken it (core/store/treelist.py's :class:`~avfs_git.core.store.treelist.KeptListing`).
Here, so that fuse/ asks the workspace's side of the mount and never the store itself."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..core.store.treelist import git_listing

if TYPE_CHECKING:
    from ..core.workspace.workspace import Workspace


def prelist(ws: Workspace, tree: str) -> None:
    """Have git list ``tree`` (not parsed yet) for the first of the threads that asks."""
    store = ws.store
    store.listed.prelist(tree, lambda: git_listing(store.path, tree))


def drop(ws: Workspace) -> None:
    """Let go of the kept listing (both threads took it)."""
    ws.store.listed.drop()
