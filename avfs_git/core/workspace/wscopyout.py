"""Copying a file of the base out of git into the overlay (``materialize``), so that
writes go straight to a real file: what a pure-FUSE mount does when a file of the base is
first opened for writing, truncated or given times (fuse/handles.py ``_open_rw``).

The copy is an overlay file made before the entry that names it, in a transaction of its
own; the file goes whenever that entry is not put: a transaction that failed (a full disk
has room for the copy, not for the database's frames: the copy was left in ``files/``,
named by no entry, twenty-sixth round, NAME=nospace1), or a path that changed since it was
looked at (removed, written, copied out by another thread or process: put back, a file a
mount's ``unlink`` had removed came back with the base's bytes)."""

from __future__ import annotations

from collections.abc import Callable

from ..errors import BusyError, IsDirectoryError, PathNotFoundError
from .overlayentry import FILE, Entry
from .wschecks import Readable, WriteChecks, unlink_quiet
from .wsview import Node, norm

# content (bytes, or a stream of a blob's) -> a new overlay file's (id, size): the
# workspace's own writer of them (wschecks ``WriteChecks._store_bytes``), under its quota
StoreBytes = Callable[[bytes | Readable], tuple[str, int]]
Form = Callable[[Node], bytes | None]
ATTEMPTS = 8  # copies made of a path that kept changing before the caller is told to retry


def materialize(ws: WriteChecks, store_bytes: StoreBytes, path: str, form: Form | None) -> Node:
    """:meth:`.wswrite.Mutations.materialize`: the node of ``path``, its bytes an overlay
    file made by ``store_bytes`` (``form``: the bytes a mount shows where they are not the
    blob's)."""
    p = norm(path)
    for _ in range(ATTEMPTS):
        node = ws.view.lookup(p)
        if node is None:
            raise PathNotFoundError(f"{p}: no such file", details={"path": p})
        if node.is_dir:
            raise IsDirectoryError(f"{p}: is a directory", details={"path": p})
        if node.materialized:
            return node
        fid, size = _copy(ws, store_bytes, node, form)
        try:
            with ws.overlay.txn() as db:
                # looked up again in the transaction, as a move is (wswrite ``_move_or_copy``)
                now = ws.view.lookup(p)
                same = (
                    now is not None and not now.materialized and (now.oid, now.mode) == (node.oid, node.mode)
                )
                if same:
                    e = Entry(p, FILE, node.mode, None, fid, ws.view.origin(p), size)
                    ws.overlay.put(db, e, "materialize")
        except BaseException:
            unlink_quiet(ws.overlay.file_path(fid))
            raise
        if same:
            got = ws.view.lookup(p)
            assert got is not None
            return got
        unlink_quiet(ws.overlay.file_path(fid))  # (what the path holds now: looked at again)
    raise BusyError(f"{p} kept changing while it was copied into the overlay", hint="try again")


def _copy(ws: WriteChecks, store_bytes: StoreBytes, node: Node, form: Form | None) -> tuple[str, int]:
    """A new overlay file of what ``node`` (a file of git's) shows: (file id, size)."""
    assert node.oid is not None
    shown = form(node) if form is not None else None
    if shown is not None:
        return store_bytes(shown)
    stream = ws.store.blob_stream(node.oid)
    if stream is None:
        return store_bytes(ws.store.blob_data(node.oid))
    try:
        return store_bytes(stream)
    finally:
        stream.close()
