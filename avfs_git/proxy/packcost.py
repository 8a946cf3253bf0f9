"""What git would inflate to read a run's object quarantine, counted from the objects' headers
before any git reads it (the twenty-eighth round, NAME=attack19).

The carry-back (:mod:`.sealobjects`) bounds the objects it takes by their sizes, asked of
git (``cat-file --batch-check``, from each object's header). But git reads a delta by
inflating every base of its chain first, and a delta's header names its own result only:
a pack the command wrote could hold a blob of 16 MiB behind thousands of deltas each
copying the whole of the one before (~25 bytes of pack each: `git pack-objects` on the
host then made every copy, minutes of CPU for a pack of a megabyte), or a delta of 64 KiB
whose base is gigabytes (inflated whole on the host). And `git rev-list` reads the
commits and trees it walks whole, a loose one of gigabytes too.

So every object the quarantine's pack indexes list is looked at here (entry headers and
the first bytes of each delta: nothing inflated): each delta's chain is followed to its
full object, each entry counted once (as git's delta base cache spares it), and the run's
objects are refused when one delta or base inflates past
:data:`.sealobjects.MAX_OBJECT_BYTES` or all of them past :data:`.sealobjects.MAX_INFLATED`;
a commit, tree or tag, packed whole or loose (its header), past the first bound too. A
whole blob listed for itself is the size checks' (it is read only when it is taken).
Malformed headers are refused: git would refuse them later anyway."""

from __future__ import annotations

import mmap
import os
import re
import struct
import zlib

_OID = 20  # (SHA-1: the vaults avfs makes)
_IDX_V2 = b"\xfftOc"
_OFS_DELTA, _REF_DELTA = 6, 7
_KINDS = {1: b"commit", 2: b"tree", 3: b"blob", 4: b"tag"}
_LOOSE_HEAD = 64 << 10  # compressed bytes read at most for a loose object's header


class Refused(Exception):
    """Why the quarantine's objects are not read (the message)."""


def _listed(idx: bytes) -> list[tuple[bytes, int]]:
    """(id, offset) of each object an index (v1 or v2) lists."""
    if idx[:4] == _IDX_V2:
        if struct.unpack(">I", idx[4:8])[0] != 2:
            raise Refused("a pack index of a version git does not write")
        n = struct.unpack(">I", idx[8 + 255 * 4 : 8 + 256 * 4])[0]
        ids_at = 8 + 256 * 4
        offs_at = ids_at + n * (_OID + 4)
        big_at = offs_at + 4 * n
        if len(idx) < big_at + 2 * _OID:
            raise Refused("a pack index shorter than it says")
        out = []
        for i in range(n):
            off = struct.unpack(">I", idx[offs_at + 4 * i : offs_at + 4 * i + 4])[0]
            if off & 0x80000000:
                at = big_at + 8 * (off & 0x7FFFFFFF)
                if at + 8 > len(idx) - 2 * _OID:
                    raise Refused("a pack index shorter than it says")
                off = struct.unpack(">Q", idx[at : at + 8])[0]
            out.append((idx[ids_at + _OID * i : ids_at + _OID * (i + 1)], off))
        return out
    n = struct.unpack(">I", idx[255 * 4 : 256 * 4])[0]
    if len(idx) < 1024 + n * (4 + _OID) + 2 * _OID:
        raise Refused("a pack index shorter than it says")
    rows = (idx[1024 + i * (4 + _OID) : 1024 + (i + 1) * (4 + _OID)] for i in range(n))
    return [(row[4:], struct.unpack(">I", row[:4])[0]) for row in rows]


def _delta_size(pack: mmap.mmap, at: int) -> int:
    """The result size a delta's data (zlib, at ``at``) names: its second header varint."""
    head = zlib.decompressobj().decompress(pack[at : at + 256], 32)
    if len(head) < 32:  # (a dynamic block's tables first, or a delta of a few bytes)
        head = zlib.decompressobj().decompress(pack[at : at + 4096], 32)
    sizes, value, shift = [], 0, 0
    for byte in head:
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            sizes.append(value)
            if len(sizes) == 2:
                return value
            value, shift = 0, 0
        elif shift > 63:
            break
    raise Refused("a delta whose header git cannot read")


def _entry(pack: mmap.mmap, off: int, end: int) -> tuple[int, int, int | bytes | None]:
    """(kind, result size, base: an offset, an id, or None) of the pack entry at ``off``."""
    if not 12 <= off < end:
        raise Refused("a pack index naming no entry of its pack")
    byte = pack[off]
    kind, size, shift, at = (byte >> 4) & 7, byte & 15, 4, off + 1
    while byte & 0x80:
        if at >= end or shift > 63:
            raise Refused("a pack entry whose header git cannot read")
        byte = pack[at]
        size |= (byte & 0x7F) << shift
        shift, at = shift + 7, at + 1
    if kind in _KINDS:
        return kind, size, None
    if kind == _OFS_DELTA:
        byte = pack[at] if at < end else 0
        rel, at = byte & 0x7F, at + 1
        while byte & 0x80:
            if at >= end or rel > end:
                raise Refused("a pack entry whose header git cannot read")
            byte = pack[at]
            rel, at = ((rel + 1) << 7) | (byte & 0x7F), at + 1
        if not 0 < rel < off:
            raise Refused("a delta whose base is not before it in its pack")
        return kind, _delta_size(pack, at), off - rel
    if kind == _REF_DELTA:
        return kind, _delta_size(pack, at + _OID), bytes(pack[at : at + _OID])
    raise Refused("a pack entry of a kind git does not write")


def _loose_header(path: str) -> tuple[bytes, int]:
    """(kind, size) a loose object's header says."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        raw = os.read(fd, _LOOSE_HEAD)
    finally:
        os.close(fd)
    try:
        head = zlib.decompressobj().decompress(raw, 64)
    except zlib.error:
        raise Refused("a loose object git cannot read") from None
    got = re.match(rb"(blob|tree|commit|tag) (\d{1,20})\0", head)
    if got is None:
        raise Refused("a loose object git cannot read")
    return got[1], int(got[2])


def refusal(od: str, max_object: int, max_total: int) -> str | None:
    """Why git must not read the quarantine ``od`` (already cleaned: ``xx/<38 hex>`` and
    ``pack/pack-*.{pack,idx}`` only, regular files): what it would inflate to; None when
    within ``max_object`` each and ``max_total`` in all."""
    try:
        _walk(od, max_object, max_total)
    except Refused as why:
        return str(why)
    except (OSError, ValueError, zlib.error, struct.error, IndexError) as exc:
        return f"its objects cannot be read ({type(exc).__name__})"
    return None


def _walk(od: str, max_object: int, max_total: int) -> None:
    loose: dict[bytes, str] = {}
    with os.scandir(od) as it:
        for e in it:
            if len(e.name) == 2 and e.is_dir(follow_symlinks=False):
                with os.scandir(e.path) as inner:
                    for f in inner:
                        loose[bytes.fromhex(e.name + f.name)] = f.path
    for path in loose.values():
        kind, size = _loose_header(path)
        if kind != b"blob" and size > max_object:  # (`git rev-list` reads it whole)
            raise Refused(_too_big(kind.decode(), size, max_object))
    packs: list[tuple[mmap.mmap, int]] = []
    where: dict[bytes, tuple[int, int]] = {}
    listed: list[tuple[int, int]] = []
    pdir = os.path.join(od, "pack")
    names = sorted(os.listdir(pdir)) if os.path.isdir(pdir) else []
    try:
        for name in names:
            if not name.endswith(".idx") or name[:-4] + ".pack" not in names:
                continue
            with os.fdopen(os.open(os.path.join(pdir, name), os.O_RDONLY | os.O_NOFOLLOW), "rb") as fh:
                idx = fh.read()
            fd = os.open(os.path.join(pdir, name[:-4] + ".pack"), os.O_RDONLY | os.O_NOFOLLOW)
            try:
                size = os.fstat(fd).st_size
                if size < 32:
                    raise Refused("a pack shorter than its header")
                packs.append((mmap.mmap(fd, size, prot=mmap.PROT_READ), size - _OID))
            finally:
                os.close(fd)
            for oid, off in _listed(idx):
                where.setdefault(oid, (len(packs) - 1, off))
                listed.append((len(packs) - 1, off))
        _count(packs, where, loose, listed, max_object, max_total)
    finally:
        for m, _end in packs:
            m.close()


def _count(
    packs: list[tuple[mmap.mmap, int]],
    where: dict[bytes, tuple[int, int]],
    loose: dict[bytes, str],
    listed: list[tuple[int, int]],
    max_object: int,
    max_total: int,
) -> None:
    """Follow each listed delta's chain to a full object (or to one counted already, or to
    the vault's), counting each entry's result once; each base must fit ``max_object`` too.
    A full object listed for itself is the size checks' (a blob read only when it is
    taken); a commit, tree or tag past ``max_object`` is refused here: `git rev-list`
    reads each it walks whole."""
    counted: set[tuple[int, int] | bytes] = set()
    read: dict[tuple[int, int], tuple[int, int, int | bytes | None]] = {}
    total = 0
    for start in listed:
        at: tuple[int, int] | bytes | None = start
        first = True
        while at is not None:
            base: tuple[int, int] | bytes | None = None
            if isinstance(at, bytes):  # a REF_DELTA's base outside the quarantine's packs
                if at not in loose:
                    break  # (the vault's: what avfs took, bounded)
                kind, size = _loose_header(loose[at])
            else:
                got = read.get(at)
                if got is None:
                    pack, end = packs[at[0]]
                    got = read[at] = _entry(pack, at[1], end)
                code, size, ref = got
                kind = _KINDS.get(code, b"delta")
                if isinstance(ref, int):
                    base = (at[0], ref)
                elif isinstance(ref, bytes):
                    base = where.get(ref, ref)
            if first and base is None:
                if kind != b"blob" and size > max_object:
                    raise Refused(_too_big(kind.decode(), size, max_object))
                break
            if size > max_object:
                raise Refused(_too_big("delta or a base of one", size, max_object))
            if at in counted:
                break  # (its chain below is counted)
            counted.add(at)
            total += size
            if total > max_total:
                raise Refused(
                    f"its packs' deltas inflate to more than {max_total} bytes for git to read them"
                    " (each base of a chain inflated whole)"
                )
            at, first = base, False


def _too_big(what: str, size: int, bound: int) -> str:
    return (
        f"a {what} of {size} bytes once inflated is bigger than avfs takes from a run ({bound} bytes;"
        " counted from its header, before any git reads it)"
    )
