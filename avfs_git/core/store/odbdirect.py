"""libgit2's object database used directly, for a caller that reads many objects in one
thread (a merge's trees, a mount's index) or needs an object written where git looks
first: raw bodies and sizes read without :meth:`.gitstore.GitStore.read_object`'s object
wrapper and loose-object check (most of such a scan's time), and the empty tree written.

Each reader belongs to the calling thread (its store's repository is that thread's). What
libgit2 cannot read is read again through the store's one read path, which names the
object that cannot be read (:class:`~.errors.ObjectUnreadableError`); pygit2's errors never
leave this module.
"""

from __future__ import annotations

from collections.abc import Callable

from .gitlib import git_error, git_errors
from .gitstore import GitStore


def raw_reader(store: GitStore, what: str = "object") -> Callable[[str], bytes]:
    """A reader of many objects' raw bodies (``what`` names their kind in an error), for
    the calling thread only. Loads pygit2."""
    odb = store._repo.odb

    def read(oid: str) -> bytes:
        try:
            return bytes(odb.read(oid)[1])
        except git_errors(OSError):  # the store's read path reads it or names it
            return store.read_object(oid, what)[1]

    return read


def size_reader(store: GitStore) -> Callable[[str], int]:
    """A reader of many blobs' sizes from their headers (libgit2 reads them 7x faster than a
    Python lookup per blob), for the calling thread only. Loads pygit2."""
    odb = store._repo.odb
    # a lazy vault: the size cache first (a header not found in any pack costs ~0.2 ms)
    known = store.promisor.size if store.promisor.remote() is not None else None

    def size(oid: str) -> int:
        if known is not None and (n := known(oid)) is not None:
            return n
        try:
            return int(odb.read_header(oid)[1])
        except git_errors(OSError):  # the store's reader says what is wrong
            return store.blob_size(oid)

    return size


def write_empty_tree(store: GitStore) -> str:
    """Write the empty tree into the vault as a loose object; its id."""
    try:
        return str(store._repo.TreeBuilder().write())
    except git_errors(OSError) as exc:
        raise git_error(exc, "cannot write the empty tree") from exc
