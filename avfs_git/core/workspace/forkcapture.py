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
kept when each file's ``ctime`` is older than the moment it was read by a margin far past
the clock's granularity: a write in the same tick as the capture would leave the stat data
as it was. The key is read again after the capture and the tree kept only when it did not
move meanwhile. Not kept at all: a live overlay mount's upper layer (the kernel writes it
without the database), and a tree no longer in the store (``gc``) is not reused.

The kept capture is a small file in the workspace's state dir, written by rename; a lost or
unreadable one is a miss, never an error.
"""

from __future__ import annotations

import hashlib
import os
import time

from .overlayentry import FILE, UPPER_FILE, Entry
from .wscapture import Fork, capture

CACHE_FILE = "fork-capture"
# a materialized file changed this recently is not trusted to show it in its stat data
RACY_NS = 2_000_000_000


def capture_for_fork(ws: Fork) -> str:
    """The root tree of ``ws`` with its changes and ignored paths (what ``capture(ws,
    include_ignored=True)`` returns), taken from the kept capture when the source has not
    changed since it was made."""
    if ws.overlay.upper_active():
        return capture(ws, include_ignored=True)[0]
    key = _key(ws)
    if key is not None:
        kept = _load(ws.state_dir)
        if kept is not None and kept[0] == key[0] and ws.store.has_object(kept[1]):
            return kept[1]
    tree, _ = capture(ws, include_ignored=True)
    if key is not None and key[1] and (again := _key(ws)) is not None and again[0] == key[0]:
        _store(ws.state_dir, key[0], tree)
    return tree


def _key(ws: Fork) -> tuple[str, bool] | None:
    """(the digest of what a capture of ``ws`` reads, whether it may be kept), or None
    when it cannot be told (an upper-layer file, a file gone)."""
    h = hashlib.sha256(ws.base.encode())  # (its tree: not read, a commit read saved)
    fresh = time.time_ns() - RACY_NS
    keep = True
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
        if max(st.st_ctime_ns, st.st_mtime_ns) >= fresh:
            keep = False
    return h.hexdigest(), keep


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


def _store(state_dir: str, key: str, tree: str) -> None:
    path = os.path.join(state_dir, CACHE_FILE)
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "w", encoding="ascii") as fh:
            fh.write(f"{key} {tree}\n")
        os.replace(tmp, path)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass
