"""The stat data a mount reports for a path, as the worktree's index keeps it: :func:`inode_of`
(the stable inode number of every path of the lower view and of the pure-FUSE mount) and
:func:`held_stat`, the stat of a file the workspace keeps over its base's blob because a
checkpoint converted it (core/workspace/wsattrs.py: a CRLF file under ``text=auto`` stays
CRLF, the commit holds the LF blob). git's own index holds such a file's real stat after
``git add``, so its ``status`` reads nothing and its ``reset --hard`` leaves the file as it
is; the mount's index must hold the same, or git would read it for a change (its size is
not the blob's) and a ``reset --hard`` would write the blob's bytes over it.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from ..core.workspace.overlayentry import FILE, UPPER_FILE
from ..core.workspace.wsattrs import converted_record
from .ownfiles import MountedFork

Stat = tuple[int, int, int, int, int, int]  # ctime_ns, mtime_ns, ino, uid, gid, size
ORIGIN = "trusted.overlay.origin"  # overlayfs: the upper file was copied up from the lower layer


def inode_of(path: str) -> int:
    """A stable inode number for a path (the same in every mount of every process)."""
    import hashlib

    if not path:
        return 1
    digest = hashlib.blake2b(path.encode("utf-8", "surrogateescape"), digest_size=8).digest()
    return (int.from_bytes(digest, "little") & 0x00FFFFFFFFFFFFFF) | 2


def held_stat(ws: MountedFork, uid: int, gid: int) -> Callable[[str], Stat | None]:
    """The stat a mount of ``ws`` (its daemon running as ``uid``/``gid``) reports for each
    converted file the workspace keeps (None for any other path): pure FUSE answers with the
    overlay file's times and size and the path's own inode number; overlayfs with the upper
    file's, and the lower file's inode number for one copied up from it (``xino``)."""
    converted = converted_record(ws.overlay)
    if not converted:
        return lambda path: None

    def stat_of(path: str) -> Stat | None:
        if path not in converted:
            return None
        e = ws.overlay.get(path)
        if e is None or e.kind != FILE or not e.fileid:
            return None  # (the base's blob shows there now)
        try:
            s = ws.overlay.file_stat(e.fileid)  # (an upper layer's: no link followed on the way)
        except OSError:
            return None
        return _shown(ws, path, e.fileid, s, uid, gid)

    return stat_of


def _shown(ws: MountedFork, path: str, fileid: str, s: os.stat_result, uid: int, gid: int) -> Stat:
    """The stat a mount shows for the overlay file ``fileid`` at ``path`` whose own is
    ``s``, and goes on showing once a checkpoint retired it (the kept times: core/workspace/
    overlaykept.py; an overlay mount's upper file stays)."""
    if not fileid.startswith(UPPER_FILE):
        return s.st_ctime_ns, s.st_mtime_ns, inode_of(path), uid, gid, s.st_size
    try:
        real = ws.overlay.file_path(fileid)
        # (listed first: a getxattr of a name a file lacks, most new files, costs ~2x a list)
        had = ORIGIN in os.listxattr(real, follow_symlinks=False)
        ino = inode_of(path) if had and os.getxattr(real, ORIGIN, follow_symlinks=False) else s.st_ino
    except OSError:
        ino = s.st_ino
    return s.st_ctime_ns, s.st_mtime_ns, ino, s.st_uid, s.st_gid, s.st_size


def written_stat(ws: MountedFork, uid: int, gid: int) -> Callable[[str], Stat | None]:
    """The stat a mount of ``ws`` shows for each file the capture under way read whose
    bytes are unchanged since (``Overlay.unchanged_since_read``), None for any other
    path: what the index written ahead of a checkpoint's move of the branch holds for the
    files it records (mount/indexahead.py). It held the view time, which no such file
    shows, so git's first status after every checkpoint and every ``proxy exec`` hashed
    each file recorded again (``GIT_TRACE2_PERF``'s ``refresh/sum_scan``; gitmodel15)."""

    def stat_of(path: str) -> Stat | None:
        # an overlay mount's file the capture read is its upper layer's file at ``path``:
        # unchanged since (the same inode, size and times), it is the entry there, with no
        # read of the path's entry again (record2: each new file's upper entry was read a
        # third time here, after the status and the capture)
        s = ws.overlay.unchanged_since_read(UPPER_FILE + path)
        if s is not None:
            return _shown(ws, path, UPPER_FILE + path, s, uid, gid)
        e = ws.overlay.get(path)
        if e is None or e.kind != FILE or not e.fileid or e.fileid.startswith(UPPER_FILE):
            return None  # (an upper file: not read by the capture, or changed since)
        s = ws.overlay.unchanged_since_read(e.fileid)
        return None if s is None else _shown(ws, path, e.fileid, s, uid, gid)

    return stat_of
