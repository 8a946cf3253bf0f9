"""A lazy fork's git index given its files' sizes after it was made: the blobs' sizes asked
while it was written (:func:`with_sizes`), and the sizes a checkout conversion gives the files
it changes (:func:`with_converted`). mount/index.py ``sync_index`` writes them; moved out of
mount/indexpatch.py, which patches an index between two bases."""

from __future__ import annotations

import struct
from collections.abc import Callable

from ..core.workspace.wssmudge import checkout_sizes, converts_anywhere
from .ownfiles import MountedFork


def with_sizes(data: bytes, size_of: Callable[[str], int]) -> bytes:
    """Index ``data`` (version 2 or 3, as :func:`.index.index_bytes` writes it, perhaps
    with git's untracked cache after it) with every entry whose size is 0 given
    ``size_of(its blob id)``: a lazy fork's index made while the sizes were still being
    asked (mount/index.py ``sync_index``). Skip-worktree entries keep their zeroed stat
    data (git does not look at their files), and so do submodules' (no blob); an empty
    file's size stays 0."""
    import hashlib

    out = bytearray(data)
    count = int.from_bytes(data[8:12], "big")
    size_at, flags_at = struct.Struct(">I").unpack_from, struct.Struct(">H").unpack_from
    put = struct.Struct(">I").pack_into
    off = 12
    for _ in range(count):
        (flags,) = flags_at(data, off + 60)
        nl = flags & 0xFFF
        fixed = 64 if flags & 0x4000 else 62  # (extended flags: 2 bytes more)
        if nl == 0xFFF:
            nl = data.index(b"\0", off + fixed) - off - fixed
        if not flags & 0x4000 and not size_at(data, off + 36)[0] and size_at(data, off + 24)[0] != 0o160000:
            put(out, off + 36, size_of(data[off + 40 : off + 60].hex()) & 0xFFFFFFFF)
        off += (fixed + nl + 8) & ~7
    body = bytes(out[:-20])
    return body + hashlib.sha1(body).digest()


def with_converted(ws: MountedFork, base: str, data: bytes) -> bytes:
    """A lazy fork's index ``data`` (as :func:`with_sizes` reads it) with each file a
    checkout conversion may change given the converted size, or 0 where its blob is not
    fetched (:func:`.wssmudge.checkout_sizes`): the sizes a lazy index is made with are the
    blobs', which git takes for a change of such a file once it reads its stat data. The
    same ``data`` where nothing in the tree may convert (no ``.gitattributes`` in it, no
    ``core.autocrlf=true``, no ``info/attributes``): one search of the bytes."""
    import hashlib

    if not converts_anywhere(ws.store, b".gitattributes\0" in data, ws.fork):
        return data
    size_of = checkout_sizes(ws.store, base, ws.fork)
    if size_of is None:
        return data
    out = bytearray(data)
    count = int.from_bytes(data[8:12], "big")
    u32, flags_at = struct.Struct(">I").unpack_from, struct.Struct(">H").unpack_from
    put = struct.Struct(">I").pack_into
    off, changed = 12, False
    for _ in range(count):
        (flags,) = flags_at(data, off + 60)
        nl = flags & 0xFFF
        fixed = 64 if flags & 0x4000 else 62
        if nl == 0xFFF:
            nl = data.index(b"\0", off + fixed) - off - fixed
        if not flags & 0x4000:  # (skip-worktree, intent-to-add: git reads no stat data)
            path = data[off + fixed : off + fixed + nl].decode("utf-8", "surrogateescape")
            shown = size_of(path, u32(data, off + 24)[0], data[off + 40 : off + 60].hex())
            if shown is not None and shown != u32(data, off + 36)[0]:
                put(out, off + 36, shown & 0xFFFFFFFF)
                changed = True
        off += (fixed + nl + 8) & ~7
    if not changed:
        return data
    body = bytes(out[:-20])
    return body + hashlib.sha1(body).digest()
