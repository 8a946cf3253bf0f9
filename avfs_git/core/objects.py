"""A small read-only git object reader in pure Python (loose objects and v2 packs).

Why: importing pygit2 costs ~85 ms, more than half of the 150 ms an agent's
``avfs --json status`` may take end to end. The commands of an agent's loop (status, ls,
cat of unchanged files) only *read* a handful of commits and trees, so until something
else has loaded pygit2, :class:`~.gitstore.GitStore` reads objects through this module.
Everything that writes, diffs text or walks history uses libgit2.

Formats: loose objects (zlib of ``<type> <size>\\0<data>``); pack index v2 and pack v2
objects, including OFS_DELTA and REF_DELTA chains (git's Documentation/gitformat-pack.txt).
An id that is found nowhere makes the caller fall back to libgit2, which knows every
layout git may use (alternates, reftable-era packs, ...).
"""

from __future__ import annotations

import mmap
import os
import struct
import threading
import zlib
from bisect import bisect_left

_TYPES = {1: "commit", 2: "tree", 3: "blob", 4: "tag"}
_OFS_DELTA = 6
_REF_DELTA = 7


class _Pack:
    def __init__(self, idx_path: str) -> None:
        self.idx_path = idx_path
        self.pack_path = idx_path[:-4] + ".pack"
        with open(idx_path, "rb") as fh:
            self.idx = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        if self.idx[:8] != b"\xfftOc\x00\x00\x00\x02":
            raise ValueError(f"{idx_path}: not a version 2 pack index")
        self.fanout = struct.unpack_from(">256I", self.idx, 8)
        self.count: int = int(self.fanout[255])
        self._pack: mmap.mmap | None = None

    @property
    def pack(self) -> mmap.mmap:
        if self._pack is None:
            with open(self.pack_path, "rb") as fh:
                self._pack = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        return self._pack

    def _sha(self, i: int) -> bytes:
        start = 1032 + 20 * i
        return self.idx[start : start + 20]

    def find(self, raw: bytes) -> int | None:
        lo = self.fanout[raw[0] - 1] if raw[0] else 0
        hi = self.fanout[raw[0]]
        i = bisect_left(_ShaView(self), raw, lo, hi)
        if i < hi and self._sha(i) == raw:
            off = struct.unpack_from(">I", self.idx, 1032 + 24 * self.count + 4 * i)[0]
            if off & 0x80000000:
                big = 1032 + 28 * self.count + 8 * (off & 0x7FFFFFFF)
                off = struct.unpack_from(">Q", self.idx, big)[0]
            return int(off)
        return None


class _ShaView:
    """The sorted id table of an index, as a sequence for bisect."""

    def __init__(self, pack: _Pack) -> None:
        self.p = pack

    def __len__(self) -> int:
        return self.p.count

    def __getitem__(self, i: int) -> bytes:
        return self.p._sha(i)


def _inflate(buf: mmap.mmap | bytes, start: int, size: int) -> bytes:
    d = zlib.decompressobj()
    out = bytearray()
    pos = start
    step = max(4096, size + 64)
    while not d.eof:
        chunk = buf[pos : pos + step]
        if not chunk:
            raise ValueError("truncated pack object")
        out += d.decompress(chunk)
        pos += len(chunk)
    return bytes(out)


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, pos


def _ofs(buf: mmap.mmap, pos: int) -> tuple[int, int]:
    """An OFS_DELTA's (relative base offset, position after it)."""
    b = buf[pos]
    pos += 1
    rel = b & 0x7F
    while b & 0x80:
        b = buf[pos]
        pos += 1
        rel = ((rel + 1) << 7) | (b & 0x7F)
    return rel, pos


def apply_delta(base: bytes, delta: bytes) -> bytes:
    src_size, pos = _varint(delta, 0)
    dst_size, pos = _varint(delta, pos)
    if src_size != len(base):
        raise ValueError("delta base size mismatch")
    out = bytearray()
    n = len(delta)
    while pos < n:
        cmd = delta[pos]
        pos += 1
        if cmd & 0x80:
            off = size = 0
            for bit in range(4):
                if cmd & (1 << bit):
                    off |= delta[pos] << (8 * bit)
                    pos += 1
            for bit in range(3):
                if cmd & (0x10 << bit):
                    size |= delta[pos] << (8 * bit)
                    pos += 1
            out += base[off : off + (size or 0x10000)]
        elif cmd:
            out += delta[pos : pos + cmd]
            pos += cmd
        else:
            raise ValueError("invalid delta opcode 0")
    if len(out) != dst_size:
        raise ValueError("delta result size mismatch")
    return bytes(out)


class BlobStream:
    """Reads of one deflated object's data without holding it in memory.

    A zlib stream can only be read from its start, so the stream keeps a decompressor and
    the last ``WINDOW`` bytes it produced: sequential reads (and the slightly reordered
    ones of a kernel's read-ahead) cost one pass; a read behind the window starts over.
    Safe to share between threads (one lock per stream).
    """

    WINDOW = 8 << 20
    STEP = 1 << 20

    def __init__(self, path: str, start: int, size: int, skip: int = 0) -> None:
        """``path``: a loose object or a pack; ``start``: where the zlib stream begins;
        ``size``: the object's size; ``skip``: header bytes to drop (a loose object's)."""
        self.size = size
        self._fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        self._start = start
        self._skip = skip
        self._lock = threading.Lock()
        self._pos = 0  # read position for read()
        self._reset()

    def _reset(self) -> None:
        self._d = zlib.decompressobj()
        self._in = self._start
        self._pending = b""
        self._out = -self._skip  # object offset of the next byte the decompressor yields
        self._win = bytearray()
        self._win_start = 0

    def _produce(self) -> bool:
        if not self._pending:
            if self._d.eof:
                return False
            self._pending = os.pread(self._fd, self.STEP, self._in)
            self._in += len(self._pending)
            if not self._pending:
                raise ValueError("truncated object")
        out = self._d.decompress(self._pending, self.STEP)
        self._pending = self._d.unconsumed_tail
        if self._d.eof:
            self._pending = b""
        if self._out < 0:  # still in a loose object's header
            cut = min(len(out), -self._out)
            out = out[cut:]
            self._out += cut
            self._win_start = self._out
        self._win += out
        self._out += len(out)
        return True

    def pread(self, size: int, offset: int) -> bytes:
        end = min(offset + size, self.size)
        if offset >= end:
            return b""
        with self._lock:
            if offset < self._win_start:
                self._reset()
            while self._out < end:
                if not self._produce():
                    raise ValueError("object shorter than its header says")
                # keep what this read needs and the last WINDOW bytes (trimmed in batches)
                drop = min(offset, self._out - self.WINDOW) - self._win_start
                if drop > self.WINDOW:
                    del self._win[:drop]
                    self._win_start += drop
            lo = offset - self._win_start
            return bytes(self._win[lo : lo + end - offset])

    def read(self, n: int = -1) -> bytes:
        if n < 0:
            n = self.size - self._pos
        data = self.pread(n, self._pos)
        self._pos += len(data)
        return data

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __del__(self) -> None:
        self.close()


def _pack_header(buf: mmap.mmap, off: int) -> tuple[int, int, int]:
    """(type, size, position after the header) of the pack object at ``off``."""
    b = buf[off]
    kind = (b >> 4) & 7
    size = b & 0x0F
    shift = 4
    pos = off + 1
    while b & 0x80:
        b = buf[pos]
        pos += 1
        size |= (b & 0x7F) << shift
        shift += 7
    return kind, size, pos


def _loose_header(path: str) -> tuple[str, int, int]:
    """(type, size, header length) of a loose object, inflating only its first bytes."""
    with open(path, "rb") as fh:
        d = zlib.decompressobj()
        head = d.decompress(fh.read(256), 64)
    nul = head.index(b"\0")
    kind, size = head[:nul].split(b" ")
    return kind.decode(), int(size), nul + 1


class ObjectReader:
    """Reads objects of one repository; ``read`` returns (type, data) or None."""

    def __init__(self, git_dir: str) -> None:
        self.objects = os.path.join(git_dir, "objects")
        self._packs: dict[str, _Pack] = {}  # replaced whole, never mutated: threads share it
        self._scan_lock = threading.Lock()

    def _scan(self) -> bool:
        """Open packs not seen yet; True when there were new ones."""
        pack_dir = os.path.join(self.objects, "pack")
        try:
            names = [n for n in os.listdir(pack_dir) if n.endswith(".idx")]
        except FileNotFoundError:
            return False
        with self._scan_lock:
            packs = dict(self._packs)
            new = False
            for n in names:
                if n not in packs and os.path.exists(os.path.join(pack_dir, n[:-4] + ".pack")):
                    packs[n] = _Pack(os.path.join(pack_dir, n))
                    new = True
            if new:
                self._packs = packs  # readers iterate the dict they got: copy on write
        return new

    def read(self, oid: str) -> tuple[str, bytes] | None:
        loose = os.path.join(self.objects, oid[:2], oid[2:])
        try:
            with open(loose, "rb") as fh:
                raw = zlib.decompress(fh.read())
            nul = raw.index(b"\0")
            kind = raw[: raw.index(b" ")].decode()
            return kind, raw[nul + 1 :]
        except FileNotFoundError:
            pass
        hit = self._find(oid)  # rescans once: a pack written since (another process)?
        return None if hit is None else self._read_at(*hit)

    def _find(self, oid: str) -> tuple[_Pack, int] | None:
        key = bytes.fromhex(oid)
        if not self._packs:
            self._scan()
        for rescanned in (False, True):
            for pack in list(self._packs.values()):
                off = pack.find(key)
                if off is not None:
                    return pack, off
            if rescanned or not self._scan():
                break
        return None

    def header(self, oid: str) -> tuple[str, int] | None:
        """(type, size) of an object without reading its data (None when not found)."""
        loose = os.path.join(self.objects, oid[:2], oid[2:])
        try:
            kind, size, _ = _loose_header(loose)
            return kind, size
        except FileNotFoundError:
            pass
        hit = self._find(oid)
        return None if hit is None else self._header_at(*hit)

    def _header_at(self, pack: _Pack, off: int) -> tuple[str, int]:
        buf = pack.pack
        kind, size, pos = _pack_header(buf, off)
        if kind in _TYPES:
            return _TYPES[kind], size
        if kind == _OFS_DELTA:
            rel, pos = _ofs(buf, pos)
            base_kind = self._header_at(pack, off - rel)[0]
        elif kind == _REF_DELTA:
            got = self.header(bytes(buf[pos : pos + 20]).hex())
            if got is None:
                raise ValueError("delta base not found")
            base_kind = got[0]
            pos += 20
        else:
            raise ValueError(f"unknown pack object type {kind}")
        # the delta's second size is the object's
        head = zlib.decompressobj().decompress(buf[pos : pos + 64], 32)
        _, p = _varint(head, 0)
        return base_kind, _varint(head, p)[0]

    def stream(self, oid: str) -> BlobStream | None:
        """A :class:`BlobStream` of a blob stored whole (loose, or undeltified in a pack,
        as git keeps big files); None otherwise: read it whole then."""
        loose = os.path.join(self.objects, oid[:2], oid[2:])
        try:
            kind, size, skip = _loose_header(loose)
            return BlobStream(loose, 0, size, skip) if kind == "blob" else None
        except FileNotFoundError:
            pass
        hit = self._find(oid)
        if hit is None:
            return None
        pack, off = hit
        ptype, size, pos = _pack_header(pack.pack, off)
        if ptype != 3:  # a blob stored whole
            return None
        return BlobStream(pack.pack_path, pos, size)

    def _read_at(self, pack: _Pack, off: int) -> tuple[str, bytes]:
        buf = pack.pack
        kind, size, pos = _pack_header(buf, off)
        if kind == _OFS_DELTA:
            rel, pos = _ofs(buf, pos)
            base_kind, base = self._read_at(pack, off - rel)
            return base_kind, apply_delta(base, _inflate(buf, pos, size))
        if kind == _REF_DELTA:
            base_id = bytes(buf[pos : pos + 20]).hex()
            got = self.read(base_id)
            if got is None:
                raise ValueError(f"delta base {base_id} not found")
            return got[0], apply_delta(got[1], _inflate(buf, pos + 20, size))
        if kind not in _TYPES:
            raise ValueError(f"unknown pack object type {kind}")
        return _TYPES[kind], _inflate(buf, pos, size)
