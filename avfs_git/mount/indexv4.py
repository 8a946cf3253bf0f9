"""A version 4 git index turned into the layout of versions 2 and 3 and back, so that
mount/indexpatch.py patches it as it patches those (a checkpoint keeps what git staged).

Version 4 (`git update-index --index-version 4`, what `feature.manyFiles` makes a new
index) writes each entry's name as git's varint of how many bytes of the previous name
it drops, then the rest of the name and one NUL, with no padding; versions 2 and 3 write
the whole name, then 1-8 NULs to a multiple of 8 bytes. Everything else (the 62 bytes of
stat data, object id and flags, the extended flags, the extensions) is the same.

Why: before gitmodel16 a checkpoint in a mount whose index git wrote at version 4 wrote
the index whole from the new commit, as for an index it cannot read: what git had staged
elsewhere was dropped (a `git rm --cached` path was tracked again, a `git add`ed change of
a file reverted since was unstaged), where git's own `commit --only` keeps it and the
mount keeps it at versions 2 and 3.

Cost: one pass over the names (only for a version 4 index, and only at a checkpoint):
the names are read whole, not only their flags."""

from __future__ import annotations

import struct

__all__ = ["V4", "compressed", "expanded"]

V4 = b"\0\0\0\4"
_EXTENDED = 0x4000  # the entry's flags: a second flags word follows
_FLAGS = struct.Struct(">H").unpack_from


def _varint(value: int) -> bytes:
    """git's varint (varint.c ``encode_varint``: big-endian base-128, each continuation
    adding one)."""
    out = [value & 127]
    value >>= 7
    while value:
        value -= 1
        out.append(128 | (value & 127))
        value >>= 7
    return bytes(reversed(out))


def expanded(data: bytes) -> bytes | None:
    """Index ``data`` (version 4) in the layout of version 3 (where an entry has extended
    flags) or 2, its extensions as they were, a checksum of zeros (its readers here stop
    before it); None where a name is not whole (cut short, dropping more of the previous
    name than there is)."""
    count = int.from_bytes(data[8:12], "big")
    end = len(data) - 20
    out: list[bytes] = []
    off = 12
    prev = b""
    extended = False
    try:
        for i in range(count):
            (flags,) = _FLAGS(data, off + 60)
            head = off + (64 if flags & _EXTENDED else 62)
            extended = extended or bool(flags & _EXTENDED)
            c = data[head]  # git's decode_varint
            at = head + 1
            strip = c & 127
            while c & 128:
                c = data[at]
                at += 1
                strip = ((strip + 1) << 7) | (c & 127)
            nul = data.index(b"\0", at, end)
            if i and strip > len(prev):
                return None
            name = (prev[: len(prev) - strip] if i else b"") + data[at:nul]
            out += (data[off:head], name, b"\0" * (8 - (head - off + len(name)) % 8))
            prev = name
            off = nul + 1
    except (IndexError, ValueError, struct.error):
        return None
    if off > end:
        return None
    version = b"\0\0\0\3" if extended else b"\0\0\0\2"
    return b"DIRC" + version + data[8:12] + b"".join(out) + data[off:end] + b"\0" * 20


def compressed(body: bytes) -> bytes:
    """Index ``body`` (version 2 or 3, as :func:`expanded` and mount/indexpatch.py write it,
    without its checksum) at version 4: each name written as what it shares with the
    previous one dropped and the rest, as git writes it (read-cache.c ``ce_write_entry``)."""
    count = int.from_bytes(body[8:12], "big")
    out: list[bytes] = [b"DIRC", V4, body[8:12]]
    off = 12
    prev = b""
    for i in range(count):
        (flags,) = _FLAGS(body, off + 60)
        head = off + (64 if flags & _EXTENDED else 62)
        nl = flags & 0xFFF
        if nl == 0xFFF:
            nl = body.index(b"\0", head) - head
        name = body[head : head + nl]
        common = 0
        if i:
            limit = min(len(prev), nl)
            while common < limit and prev[common] == name[common]:
                common += 1
        out += (body[off:head], _varint(len(prev) - common if i else 0), name[common:], b"\0")
        prev = name
        off += (head - off + nl + 8) & ~7
    out.append(body[off:])
    return b"".join(out)
