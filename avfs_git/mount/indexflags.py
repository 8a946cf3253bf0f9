"""git's per-entry bits of a mounted fork's index that avfs's whole rewrites keep: a
person's ``git update-index --skip-worktree`` and ``--assume-unchanged``.

avfs writes a mount's index whole where the view changed (a restore, an undo, a merge, a
move by another hand: mount/index.py :func:`.index.sync_index`), from the base tree: an
entry of it carries no bit git's own ``update-index`` set. git keeps them across its own
rewrites of the index (``unpack-trees``' ``merged_entry`` and ``reset``'s
``update_index_from_diff`` copy ``skip-worktree`` to the path's new entry; an entry that
stays as it was keeps every bit, ``assume-unchanged`` too), so a ``git reset --hard``
keeps them, and avfs's rewrite must as well: the same rule here. A ``skip-worktree``
entry of the index being replaced makes that path's entry in the new one
``skip-worktree`` (index version 3, as git writes it); an ``assume-unchanged`` one stays
where the new entry is the same mode and object. Unmerged entries (an open merge's
stages) take neither.

Cost: one walk of the old index's flags (a read of each entry's two flag bytes, names
read only for a flagged entry), and where anything is flagged, one walk of the new
index's entries; an index patched in place (a checkpoint) keeps its bytes and is not
walked.
"""

from __future__ import annotations

import os
import re
import struct
from collections.abc import Collection
from typing import Any

from .ownfiles import MAX_INDEX, read_bytes, worktree_dir

ASSUME_VALID = 0x8000  # the entry's flags
EXTENDED = 0x4000  # the entry's flags: a second flags word follows
SKIP_WORKTREE = 0x4000  # the second flags word
_STAGE = 0x3000
_FLAGS = struct.Struct(">H")
_GITLINK = struct.pack(">I", 0o160000)  # a submodule's mode
_GITLINK_AT = re.compile(re.escape(_GITLINK))

# name -> (mode, object id, the bits to keep: ASSUME_VALID and/or SKIP_WORKTREE << 16)
Flagged = dict[bytes, tuple[int, bytes, int]]


def _walk(data: bytes) -> list[tuple[int, int, int, int]] | None:
    """Each entry of index ``data`` (version 2 or 3): (offset, size, flags, extended flags);
    None when it is not one this reads (version 4's compressed names, cut short)."""
    if len(data) < 32 or data[:4] != b"DIRC" or data[4:8] not in (b"\0\0\0\2", b"\0\0\0\3"):
        return None
    unpack = _FLAGS.unpack_from
    count = int.from_bytes(data[8:12], "big")
    out: list[tuple[int, int, int, int]] = []
    off = 12
    try:
        for _ in range(count):
            (flags,) = unpack(data, off + 60)
            ext = 0
            head = 62
            if flags & EXTENDED:
                (ext,) = unpack(data, off + 62)
                head = 64
            nl = flags & 0xFFF
            if nl == 0xFFF:
                nl = data.index(b"\0", off + head) - off - head
            size = (head + nl + 8) & ~7  # the name and 1-8 NULs, to a multiple of 8
            out.append((off, size, flags, ext))
            off += size
    except (ValueError, struct.error):
        return None
    return out if off <= len(data) - 20 else None


def _name(data: bytes, off: int, flags: int) -> bytes:
    head = 64 if flags & EXTENDED else 62
    nl = flags & 0xFFF
    if nl == 0xFFF:
        nl = data.index(b"\0", off + head) - off - head
    return data[off + head : off + head + nl]


def flagged(index: bytes) -> Flagged:
    """The stage-0 entries of ``index`` git marked ``assume-unchanged`` or
    ``skip-worktree`` (none when it is not an index this reads)."""
    out: Flagged = {}
    for off, _size, flags, ext in _walk(index) or ():
        bits = (flags & ASSUME_VALID) | ((ext & SKIP_WORKTREE) << 16)
        if bits and not flags & _STAGE:
            mode = int.from_bytes(index[off + 24 : off + 28], "big")
            out[_name(index, off, flags)] = (mode, index[off + 40 : off + 60], bits)
    return out


def gitlinks(index: bytes, wanted: Collection[bytes]) -> dict[bytes, bytes]:
    """The stage-0 gitlinks (mode 160000) of ``index`` named in ``wanted``: name -> the
    commit's 20-byte id (none when it is not an index this reads: version 4's compressed
    names). The bytes are searched first for the mode where an entry of one of those names
    would hold it (a C-speed search; a chance match elsewhere is checked, not walked): an
    index without such an entry, the common case, is not walked (in Python, 15 us an
    entry: 0.3 s at 20,000 entries, where the search alone found the mode's bytes in the
    stat data of one). Found, the entries are walked to be sure."""
    hits: set[bytes] = set()
    for m in _GITLINK_AT.finditer(index):
        start = m.start() - 24  # (the mode is an entry's bytes 24-28)
        if start < 12 or start + 62 > len(index):
            continue
        (flags,) = _FLAGS.unpack_from(index, start + 60)
        head = start + (64 if flags & EXTENDED else 62)
        name = index[head : head + (flags & 0xFFF)]
        if name in wanted and index[head + len(name) : head + len(name) + 1] == b"\0":
            hits.add(name)
    if not hits:
        return {}
    out: dict[bytes, bytes] = {}
    for off, _size, flags, _ext in _walk(index) or ():
        if not flags & _STAGE and index[off + 24 : off + 28] == _GITLINK:
            name = _name(index, off, flags)
            if name in hits:
                out[name] = index[off + 40 : off + 60]
    return out


def staged_gitlinks(ws: Any, paths: list[str]) -> dict[str, str]:
    """Of ``paths`` (directories the fork's commit holds nothing at, where the view shows
    new files below), those git's index in the live mount of ``ws``'s fork holds as a
    gitlink (stage 0): path -> commit id (the index's: whether a mount is live there is
    mount/side.py's question). What git would record
    there (`git submodule add` staged one: its commit, not the submodule's files), which a
    status and a checkpoint take (core/workspace/wsgitrules.py ``staged_submodules``). A
    confined command's gitlinks never stay in this index (proxy/gitlinks.py
    ``drop_gitlinks``); a path git never writes there (``..``, ``.git``) is not asked."""
    wanted: set[bytes] = set()
    for p in paths:
        parts = p.split("/")
        if not any(x in ("", ".", "..") or x.lower() == ".git" for x in parts):
            wanted.add(p.encode("utf-8", "surrogateescape"))
    if not wanted:
        return {}
    data = read_bytes(os.path.join(worktree_dir(ws.vault, ws.fork), "index"), MAX_INDEX)
    found = gitlinks(data or b"", wanted)
    return {n.decode("utf-8", "surrogateescape"): o.hex() for n, o in found.items()}


def with_flags(data: bytes, kept: Flagged) -> bytes:
    """Index ``data`` with the bits of ``kept`` (:func:`flagged` of the index it replaces)
    set on its entries of those names (the module's docstring gives the rule); ``data``
    itself when nothing changes."""
    import hashlib

    walked = _walk(data) if kept else None
    if not walked:
        return data
    parts: list[bytes] = []  # (after the header, written last: its version may change)
    pos = 12
    version = int.from_bytes(data[4:8], "big")
    changed = False
    for off, size, flags, ext in walked:
        if flags & _STAGE:
            continue
        got = kept.get(_name(data, off, flags))
        if got is None:
            continue
        mode, oid, bits = got
        new_flags, new_ext = flags, ext
        if bits & (SKIP_WORKTREE << 16):
            new_ext |= SKIP_WORKTREE
        same = mode == int.from_bytes(data[off + 24 : off + 28], "big") and oid == data[off + 40 : off + 60]
        if bits & ASSUME_VALID and same:
            new_flags |= ASSUME_VALID
        if new_ext:
            new_flags |= EXTENDED
        if (new_flags, new_ext) == (flags, ext):
            continue
        changed = True
        name = _name(data, off, flags)
        head = data[off : off + 60] + _FLAGS.pack(new_flags) + (_FLAGS.pack(new_ext) if new_ext else b"")
        parts += (data[pos:off], head + name + b"\0" * (8 - (len(head) + len(name)) % 8))
        pos = off + size
        if new_ext:
            version = max(version, 3)
    if not changed:
        return data
    parts.append(data[pos:-20])
    body = b"DIRC" + struct.pack(">I", version) + data[8:12] + b"".join(parts)
    return body + hashlib.sha1(body).digest()


def carried(git_dir: str, data: bytes) -> bytes:
    """``data``, the index about to replace ``git_dir``'s, with the bits git's own
    ``update-index`` set in that one kept (:func:`with_flags`)."""
    old = read_bytes(os.path.join(git_dir, "index"), MAX_INDEX)  # git's, or a confined command's
    if old is None:
        return data
    kept = flagged(old)
    return with_flags(data, kept) if kept else data
