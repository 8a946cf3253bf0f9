"""The reads of a workspace's merged view (:mod:`.wsview`), each a call of its view or
store: the readers' (resolve, read, stat, listdir, walk) and a mount's (a node, its
children and size, a blob's contents, stream and size, the sizes a lazy fork's mount asks
for). :class:`ViewReads` is the part of :class:`.workspace.Workspace` that holds them."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from ..errors import want_str
from ..store.gitstore import GitStore
from ..store.objects import BlobStream
from ..types import DirEntry, Stat
from .wsview import Node, View


class ViewReads:
    """Reading a workspace: its view and store (see the workspace)."""

    store: GitStore
    view: View

    # -- reading (see .wsview) ------------------------------------------------------------
    def resolve(self, path: str, *, follow: bool = True) -> Node:
        """The node at ``path``, following in-workspace symlinks (the last one if ``follow``).

        Raises:
            PathNotFoundError, NotDirectoryError, SymlinkEscapeError, SymlinkLoopError.
        """
        return self.view.resolve(path, follow=follow)

    def exists(self, path: str) -> bool:
        return self.view.exists(path)

    def read(self, path: str) -> bytes:
        """Return the bytes of a file (following in-workspace symlinks)."""
        return self.view.read(path)

    def read_link(self, path: str) -> str:
        return self.view.read_link(path)

    def stat(self, path: str, *, follow: bool = False) -> Stat:
        return self.view.stat(path, follow=follow)

    def listdir(self, path: str = "", *, sizes: bool = False) -> list[DirEntry]:
        """The entries of a directory, sorted by name."""
        return self.view.listdir(path, sizes=sizes)

    def walk(
        self, path: str = "", *, max_depth: int | None = None, prune: Callable[[str], bool] | None = None
    ) -> Iterator[DirEntry]:
        """Every entry below ``path``, depth first, directories before their contents
        (``prune``: :meth:`.View.walk`'s)."""
        return self.view.walk(want_str(path, "path"), max_depth=max_depth, prune=prune)

    # -- for a mount (the FUSE layer calls these; the kernel resolves symlinks itself) --------
    def node(self, path: str) -> Node | None:
        """The node at normalised ``path``, symlinks not followed (None when absent)."""
        return self.view.lookup(path)

    def node_size(self, node: Node) -> int:
        return self.view.size(node)

    # a node's content still in git, by its id (what a mount serves of an unchanged file)
    def blob_data(self, oid: str, path: str | None = None) -> bytes:
        """Blob ``oid``'s bytes (in a lazy vault fetched once when only promised, with the
        other promised blobs of its directory: core/store/neighbours.py; ``path``: the
        file, named in the error when it cannot be)."""
        if path is None:
            return self.store.blob_data(oid)
        return self.store.blob_data(oid, path=path, near=self.view.near)

    def blob_stream(self, oid: str) -> BlobStream | None:
        """A big blob as a stream (never held whole in memory); None: read it with
        :meth:`blob_data`."""
        return self.store.blob_stream(oid)

    def ask_sizes(self, asking: Callable[[], None], **hooks: Callable[..., None] | None) -> None:
        """A lazy fork's mount: the sizes of its base tree's files (:func:`.treesizes.ask`, which
        takes ``hooks``: ``then``, ``sending``, ``reading``); ``asking()`` is called once they are in
        flight."""
        from ..store.treesizes import ask

        ask(self.store, self.view.base_tree, asking, **hooks)

    def size_answers_now(self, oid: str) -> bool:
        """Whether blob ``oid``'s size is given without waiting (:func:`.treesizes.answers_now`)."""
        from ..store.treesizes import answers_now

        return answers_now(self.store, oid)

    def blob_size(self, oid: str, path: str | None = None) -> int:
        if self.store.promisor.remote() is not None and self.store.promisor.size(oid) is None:
            self.view.learn_sizes()  # (a lazy vault: once per handle)
        return self.store.blob_size(oid, path=path)

    def node_children(self, node: Node) -> dict[str, Node]:
        return self.view.children(node)

    def file_path(self, node: Node) -> str | None:
        """Where a materialized file's bytes are (None for content still in git)."""
        return self.view.file_path(node)
