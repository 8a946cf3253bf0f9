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


class ObjectReader:
    """Reads objects of one repository; ``read`` returns (type, data) or None."""

    def __init__(self, git_dir: str) -> None:
        self.objects = os.path.join(git_dir, "objects")
        self._packs: dict[str, _Pack] = {}

    def _scan(self) -> bool:
        """Open packs not seen yet; True when there were new ones."""
        pack_dir = os.path.join(self.objects, "pack")
        try:
            names = [n for n in os.listdir(pack_dir) if n.endswith(".idx")]
        except FileNotFoundError:
            return False
        new = False
        for n in names:
            if n not in self._packs and os.path.exists(os.path.join(pack_dir, n[:-4] + ".pack")):
                self._packs[n] = _Pack(os.path.join(pack_dir, n))
                new = True
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
        key = bytes.fromhex(oid)
        if not self._packs:
            self._scan()
        for rescanned in (False, True):
            for pack in self._packs.values():
                off = pack.find(key)
                if off is not None:
                    return self._read_at(pack, off)
            # a pack written since we looked (a checkpoint of another process)?
            if rescanned or not self._scan():
                break
        return None

    def _read_at(self, pack: _Pack, off: int) -> tuple[str, bytes]:
        buf = pack.pack
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
        if kind == _OFS_DELTA:
            b = buf[pos]
            pos += 1
            rel = b & 0x7F
            while b & 0x80:
                b = buf[pos]
                pos += 1
                rel = ((rel + 1) << 7) | (b & 0x7F)
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
