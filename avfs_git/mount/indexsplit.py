"""A split index (`core.splitIndex`, `git update-index --split-index`) read whole: the
shared index it names merged with its own entries as git's ``merge_base_index``
(split-index.c) merges them, so that mount/indexpatch.py patches it as it patches any
index, and writes it back whole (no ``link``: git splits it again at its next write where
`core.splitIndex` says so).

A split index holds only the entries changed since git wrote the shared index
(``sharedindex.<id>``, beside it in the worktree's git dir) and a ``link`` extension: the
shared index's id, then two EWAH bitmaps over the shared index's positions, the entries
deleted and the entries replaced. The split index's first entries, one for each
replaced position in order, have no name (each takes its shared entry's); the others
are added, sorted in (one of a name the shared index holds replaces it).

Why: before gitmodel17 a checkpoint wrote such an index whole from its commit (one the
patch cannot read: keeping the few entries and dropping the link left git an index of
those few, gitmodel16), and what git had staged that the checkpoint does not record (a
`git rm --cached` of a file kept) was dropped, where git's `commit --only` keeps it and
a plain index keeps it.

Cost: only for a split index, and only where a checkpoint or an exec's commit patches
it: the shared index read, its entries walked by their flags (as the patch walks them)
and joined again."""

from __future__ import annotations

import os
import struct

from .ownfiles import MAX_INDEX, read_bytes

__all__ = ["link_at", "merged"]

_OID = 20  # (the vault's object ids: SHA-1, as the patch's entries)
_EXTENDED = 0x4000
_STAGE = 0x3000
_FLAGS = struct.Struct(">H").unpack_from


def link_at(data: bytes, off: int) -> int | None:
    """The offset of index ``data``'s ``link`` extension (its extensions start at ``off``):
    a split index's; None where it has none."""
    end = len(data) - 20
    while off + 8 <= end:
        if data[off : off + 4] == b"link":
            return off
        off += 8 + int.from_bytes(data[off + 4 : off + 8], "big")
    return None


def ewah_bits(buf: bytes, at: int, limit: int) -> tuple[list[int], int] | None:
    """The positions set in the EWAH bitmap serialized at ``buf[at:]`` (git's
    ``ewah_serialize_strbuf``: bit count, word count, the words, the marker word's index)
    and the offset after it; None where it is cut short or sets a position at or past
    ``limit`` (git refuses such a link: "position ... exceeds base index size"). A run of
    ones is read only as far as ``limit``: a bitmap a confined command wrote cannot ask for
    more positions than the shared index holds."""
    try:
        nbits, nwords = struct.unpack_from(">II", buf, at)
        words = struct.unpack_from(f">{nwords}Q", buf, at + 8)
    except struct.error:
        return None
    end = at + 8 + 8 * nwords + 4
    if end > len(buf):
        return None
    bits: list[int] = []
    pos = i = 0
    while i < len(words) and pos < nbits:
        rlw = words[i]
        run, lits = (rlw >> 1) & 0xFFFFFFFF, rlw >> 33
        if rlw & 1 and run:
            stop = min(pos + 64 * run, nbits)
            if stop > limit:
                return None
            bits.extend(range(pos, stop))
        pos += 64 * run
        for w in words[i + 1 : i + 1 + lits]:
            bits.extend(pos + b for b in range(64) if w >> b & 1 and pos + b < nbits)
            pos += 64
        i += 1 + lits
    if bits and bits[-1] >= limit:
        return None
    return bits, end


def _entries(data: bytes) -> tuple[list[tuple[bytes, bytes]], int] | None:
    """The entries of index ``data`` (version 2 or 3) as (name, header: the bytes before
    the name) and the offset where they end; None where it cannot be read or an entry is
    unmerged (git is merging: the patch writes such an index whole)."""
    count = int.from_bytes(data[8:12], "big")
    end = len(data) - 20
    out: list[tuple[bytes, bytes]] = []
    off = 12
    try:
        for _ in range(count):
            (flags,) = _FLAGS(data, off + 60)
            if flags & _STAGE:
                return None
            head = 64 if flags & _EXTENDED else 62
            nl = flags & 0xFFF
            if nl == 0xFFF:
                nl = data.index(b"\0", off + head) - off - head
            out.append((data[off + head : off + head + nl], data[off : off + head]))
            off += (head + 8 + nl) & ~7
    except (ValueError, struct.error):
        return None
    return (out, off) if off <= end else None


def _entry(head: bytes, name: bytes) -> bytes:
    """An index entry of version 2 or 3: ``head`` (its stat data, id and flags) with the
    name length of ``name``, the name and 1-8 NULs."""
    flags: int = (_FLAGS(head, 60)[0] & ~0xFFF) | min(len(name), 0xFFF)
    return head[:60] + flags.to_bytes(2, "big") + head[62:] + name + b"\0" * (8 - (len(head) + len(name)) % 8)


def merged(data: bytes, off: int, link: int, git_dir: str) -> bytes | None:
    """Split index ``data`` (version 2 or 3; its entries end at ``off``, its ``link``
    extension is at ``link``) with the shared index it names merged in: a whole index of
    version 2 or 3 (3 where an entry has extended flags), its other extensions as they
    were, a checksum of zeros (its readers here stop before it); None where that cannot
    be done (the shared index missing, not the one named, unreadable; a link git itself
    would refuse): the patch then writes the index whole, as before."""
    size = int.from_bytes(data[link + 4 : link + 8], "big")
    ext = data[link + 8 : link + 8 + size]
    if len(ext) < _OID:
        return None
    import hashlib  # (here: a status imports this module, and hashlib costs ~5 ms to load)

    oid = ext[:_OID]
    shared = read_bytes(os.path.join(git_dir, "sharedindex." + oid.hex()), MAX_INDEX)
    if (
        shared is None
        or len(shared) < 32
        or shared[:4] != b"DIRC"
        or shared[-20:] != oid
        or hashlib.sha1(shared[:-20]).digest() != oid
    ):
        return None  # (git's own check: the shared index's checksum is the id the link names)
    if shared[4:8] == b"\0\0\0\4":
        from .indexv4 import expanded

        whole = expanded(shared)
        if whole is None:
            return None
        shared = whole
    elif shared[4:8] not in (b"\0\0\0\2", b"\0\0\0\3"):
        return None
    base_read, own_read = _entries(shared), _entries(data)
    if base_read is None or own_read is None:
        return None
    base: list[tuple[bytes, bytes] | None] = list(base_read[0])
    own = own_read[0]
    deleted: list[int] = []
    replaced: list[int] = []
    if len(ext) > _OID:
        got = ewah_bits(ext, _OID, len(base))
        if got is None:
            return None
        deleted, at = got
        got = ewah_bits(ext, at, len(base))
        if got is None or got[1] != len(ext):
            return None
        replaced = got[0]
    if len(replaced) > len(own) or set(replaced) & set(deleted):
        return None
    for k, pos in enumerate(replaced):
        name, head = own[k]
        was = base[pos]
        if name or was is None:
            return None  # (a replacement names no path: git's "corrupt link extension")
        base[pos] = (was[0], head)
    for pos in deleted:
        base[pos] = None
    rows = {e[0]: e[1] for e in base if e is not None}
    for name, head in own[len(replaced) :]:
        if not name:
            return None
        rows[name] = head  # (git's add_index_entry: one of the same name is replaced)
    extended = any(_FLAGS(h, 60)[0] & _EXTENDED for h in rows.values())
    body = b"".join(_entry(rows[n], n) for n in sorted(rows))
    exts = data[off:link] + data[link + 8 + size : len(data) - 20]
    version = b"\0\0\0\3" if extended else b"\0\0\0\2"
    return b"DIRC" + version + len(rows).to_bytes(4, "big") + body + exts + b"\0" * 20
