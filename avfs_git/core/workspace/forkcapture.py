"""What a fork copies of its source's changes, kept for the next fork of the same state.

A fork of a workspace whose state dir cannot be snapshotted (``layers = off``, or a state
made before the layers file system) captures the source's changes, ignored paths included,
as one tree (:func:`.wscapture.capture`): the same tree reads, tree builds and objects on
every fork while the source does not change. The capture is a pure function of the base
commit, the overlay's entries and the bytes of its materialized files, so this module keeps
the last one with a key made of exactly those (the files by their stat data), and a fork of
an unchanged source takes the kept tree: an entries read, a ``stat`` per materialized file
and a file read instead of a capture and a pack.

The key is what the capture reads, not a journal position: every write of an entry (a
journaled one, a checkpoint's retiring, an ignored path's pin, a size set in place) changes
the rows the key is made of, and a write to a materialized file through a mount changes its
``mtime``/``ctime``. As git does for its index ("racily clean" entries), a capture is only
kept when each file's timestamps are older than the file it is kept in, made before the key
was read (the file system's own clock): a write in the same clock tick as the capture would
leave the stat data as it was. The key is read again after the capture and the tree kept
only when it did not move meanwhile. Not kept at all: a live overlay mount's upper layer
(the kernel writes it without the database); and a tree no longer in the store (``gc``) is
not reused.

The kept capture is a small file in the workspace's state dir, written by rename; a lost or
unreadable one is a miss, never an error.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ..store.digests import sha256
from .overlayentry import FILE, UPPER_FILE, Entry

if TYPE_CHECKING:
    from collections.abc import Callable

    from .workspace import Workspace
    from .wscapture import Fork
    from .wsview import Node

CACHE_FILE = "fork-capture"


def capture_for_fork(ws: Fork) -> tuple[str, dict[str, bytes]]:
    """The root tree of ``ws`` with its changes and ignored paths (what ``capture(ws,
    include_ignored=True, as_added=True)`` returns), taken from the kept capture when the
    source has not changed since it was made; and the paths whose bytes in ``ws`` are not
    their blob's (git's clean conversions: a CRLF file under ``text=auto`` is recorded as
    ``git add`` stores it, and the new fork keeps the source's bytes on top of it). A
    capture with such paths is not kept."""
    from .wscapture import capture  # (the module alone is read by forkspare, on gc's path)

    if ws.overlay.upper_active():
        return capture(ws, include_ignored=True, as_added=True)[0], _bytes_of(ws)
    key = source_key(ws)
    if key is not None:
        kept = _load(ws.state_dir)
        if kept is not None and kept[0] == key[0] and ws.store.has_object(kept[1]):
            return kept[1], {}
    # the file the capture will be kept in is made first: its timestamp is the file
    # system's clock before the key is read, which every file the key names must be older
    # than (a write in the same tick would leave its stat data as it was)
    stamp = _start(ws.state_dir)
    if stamp is None:
        return capture(ws, include_ignored=True, as_added=True)[0], _bytes_of(ws)
    tmp, made_ns = stamp
    text = None
    try:
        key = source_key(ws)
        tree, _ = capture(ws, include_ignored=True, as_added=True)
        converted = _bytes_of(ws)
        if (
            not converted
            and key is not None
            and key[1] < made_ns
            and (again := source_key(ws)) is not None
            and again[0] == key[0]
        ):
            text = f"{key[0]} {tree}\n"
    finally:
        _finish(ws.state_dir, tmp, text)  # (a capture that failed leaves no file behind)
    return tree, converted


def _bytes_of(ws: Fork) -> dict[str, bytes]:
    """The bytes of the files the last capture of ``ws`` converted, as ``ws`` holds them
    (its overlay's files: a capture converts nothing else)."""
    out: dict[str, bytes] = {}
    for p in sorted(ws.captured_converted):
        e = ws.overlay.get(p)
        if e is not None and e.kind == FILE and e.fileid is not None:
            with os.fdopen(ws.overlay.open_regular(e.fileid), "rb") as fh:
                out[p] = fh.read()
    return out


def keep_source_bytes(ws: Workspace, files: dict[str, bytes]) -> None:
    """Give new fork ``ws`` its source's own bytes of ``files``, whose blobs in its seed
    are what ``git add`` stores (:func:`capture_for_fork`): the fork shows what its source
    shows, and keeps them over its checkpoints as the source does
    (:func:`.wsattrs.keep_converted`)."""
    from .wsattrs import keep_converted

    for p, data in files.items():
        ws.materialize(p, form=_given(data))
    with ws.overlay.txn():
        keep_converted(ws.overlay, [], frozenset(files))


def _given(data: bytes) -> Callable[[Node], bytes | None]:
    return lambda _node: data


def source_key(ws: Fork) -> tuple[str, int] | None:
    """(the digest of what a capture of ``ws`` reads, the newest timestamp of the files it
    names), or None when it cannot be told (an upper-layer file, a file gone)."""
    h = sha256(ws.base.encode())  # (its tree: not read, a commit read saved)
    newest = 0
    for e in sorted(ws.overlay.all(), key=_path):
        h.update(repr((e.path, e.kind, e.mode, e.oid, e.fileid, e.origin, e.size, e.seq)).encode())
        if e.kind != FILE or e.fileid is None:
            continue
        if e.fileid.startswith(UPPER_FILE):
            return None
        try:
            st = os.stat(ws.overlay.file_path(e.fileid))
        except OSError:
            return None
        h.update(repr((st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_mode)).encode())
        newest = max(newest, st.st_ctime_ns, st.st_mtime_ns)
    return h.hexdigest(), newest


def _path(e: Entry) -> str:
    return e.path


def _load(state_dir: str) -> tuple[str, str] | None:
    try:
        with open(os.path.join(state_dir, CACHE_FILE), encoding="ascii") as fh:
            parts = fh.read(200).split()
    except (OSError, ValueError):
        return None
    if len(parts) != 2 or len(parts[0]) != 64 or len(parts[1]) not in (40, 64) or not _hex(parts[1]):
        return None
    return parts[0], parts[1]


def _hex(s: str) -> bool:
    return all(c in "0123456789abcdef" for c in s)


def _start(state_dir: str) -> tuple[str, int] | None:
    """A new file for the capture to be kept in, and its timestamp (the file system's
    clock); None when it cannot be made (nothing is kept then)."""
    tmp = os.path.join(state_dir, f"{CACHE_FILE}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
    finally:
        os.close(fd)
    return tmp, min(st.st_mtime_ns, st.st_ctime_ns)


def _finish(state_dir: str, tmp: str, text: str | None) -> None:
    """Keep ``text`` as the capture (by rename), or drop the file (None)."""
    try:
        if text is not None:
            with open(tmp, "w", encoding="ascii") as fh:
                fh.write(text)
            os.replace(tmp, os.path.join(state_dir, CACHE_FILE))
            return
    except OSError:
        pass
    try:
        os.unlink(tmp)
    except OSError:
        pass
