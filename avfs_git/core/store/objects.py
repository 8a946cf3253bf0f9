"""git's stored object formats decoded in pure Python, for :mod:`.objreader`: pack indexes
(v1 and v2: an id's offset), pack object headers, zlib streams read exactly
(:func:`_inflate`) or as a stream of a big blob (:class:`BlobStream`), deltas
(:func:`apply_delta`); and :class:`ObjectReadError`, the one error of the pure reader.

Formats: loose objects (zlib of ``<type> <size>\\0<data>``); pack index v1 and v2, pack v2
and v3 objects, including OFS_DELTA and REF_DELTA chains of any depth (git's
Documentation/gitformat-pack.txt).

Nothing here trusts a size or an offset read from disk: every zlib stream is fed input until
it yields what is needed (a stream may need many input bytes before its first output byte),
every result is checked against the size its header announced, and deltas are resolved by a
loop, not recursion, with a small cache of delta bases (a ``git gc --aggressive`` pack chains
up to 250 deltas; reading every object of such a chain would otherwise be quadratic).
"""

from __future__ import annotations

import mmap
import os
import struct
import threading
import weakref
import zlib
from bisect import bisect_left
from collections import OrderedDict

from ..errors import ObjectUnreadableError

_TYPES = {1: "commit", 2: "tree", 3: "blob", 4: "tag"}
_OFS_DELTA = 6
_REF_DELTA = 7
MAX_CHAIN = 10_000  # git's own limit is 4095 (pack-objects --depth); beyond: a cycle
_INPUT_STEP = 1 << 20  # compressed bytes fed to zlib at a time for big objects


class ObjectReadError(ObjectUnreadableError, ValueError):
    """An object this reader found but cannot read (the only error it raises)."""


def _bad(why: str) -> ObjectReadError:
    return ObjectReadError(why)


# the packs whose files a process keeps mapped, of every vault it has read (each map holds
# a descriptor: Python's mmap keeps a duplicate of the file's; a pack maps its index and its
# data, so twice this many at most). Past it, the packs mapped first let their maps go (a
# read in progress keeps the one it holds until it ends), and map again at their next use.
# Found in the thirty-eighth round (flaky4): a process kept every pack of every vault it had
# read mapped while it held the vault (a home keeps the 64 used last, and a vault handle in
# a reference cycle until a collection): a resident server's kept process serving many
# vaults, ~2 descriptors a pack, toward the user's limit of open files.
MAPPED_PACKS = 128
_mapped: OrderedDict[int, weakref.ref[_Pack]] = OrderedDict()  # by id(), the first mapped first
_mapped_lock = threading.RLock()  # (re-entered: a pack collected while it is held drops its entry)


def _map(path: str, what: str) -> mmap.mmap:
    with open(path, "rb") as fh:
        try:
            return mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError as exc:  # an empty file cannot be mapped
            raise _bad(f"{path}: empty {what}") from exc


def _note_mapped(pack: _Pack) -> None:
    """``pack`` has a file mapped: the packs mapped first let theirs go past
    :data:`MAPPED_PACKS` (see there)."""
    key = id(pack)
    let_go: list[_Pack] = []
    with _mapped_lock:
        if key not in _mapped:
            _mapped[key] = weakref.ref(pack, lambda _r: _forget_mapped(key))
        while len(_mapped) > MAPPED_PACKS:
            _, ref = _mapped.popitem(last=False)
            old = ref()
            if old is not None and old is not pack:
                let_go.append(old)
    for old in let_go:  # (outside the registry's lock: each takes its own)
        old.unmap()


def _forget_mapped(key: int) -> None:
    with _mapped_lock:
        _mapped.pop(key, None)


def mapped_packs() -> int:
    """How many packs of this process have a file mapped now (each one or two descriptors)."""
    with _mapped_lock:
        refs = list(_mapped.values())
    return sum(1 for ref in refs if (p := ref()) is not None and p.mapped())


class _Pack:
    """One pack and its index (v1 or v2). Raises :class:`ObjectReadError` for an index it
    does not understand (the caller skips that pack: libgit2 reads its objects). Its files
    are mapped while in use, at most :data:`MAPPED_PACKS` packs a process."""

    def __init__(self, idx_path: str) -> None:
        self.idx_path = idx_path
        self.pack_path = idx_path[:-4] + ".pack"
        self._pack_lock = threading.Lock()
        self._idx: mmap.mmap | None = _map(idx_path, "pack index")
        idx = self._idx
        n = len(idx)
        if idx[:4] == b"\xfftOc":
            if idx[4:8] != b"\x00\x00\x00\x02":
                raise _bad(f"{idx_path}: pack index version {idx[4:8].hex()} is not known here")
            self.version = 2
            base = 8
        else:
            self.version = 1
            base = 0
        if n < base + 1024 + 40:
            raise _bad(f"{idx_path}: truncated pack index")
        self.fanout = struct.unpack_from(">256I", idx, base)
        if any(self.fanout[i] > self.fanout[i + 1] for i in range(255)):
            raise _bad(f"{idx_path}: corrupt pack index (fan-out table)")
        self.count: int = int(self.fanout[255])
        if self.version == 2:
            self._ids = 1032
            self._offs = 1032 + 24 * self.count
            self._big = 1032 + 28 * self.count
            if n < self._big + 40:
                raise _bad(f"{idx_path}: truncated pack index")
            self._n_big = (n - 40 - self._big) // 8
        else:
            self._ids = 1024 + 4  # entries: 4-byte offset, then the 20-byte id
            if n < 1024 + 24 * self.count + 40:
                raise _bad(f"{idx_path}: truncated pack index")
        self._pack: mmap.mmap | None = None
        self._size = n
        _note_mapped(self)

    @property
    def idx(self) -> mmap.mmap:
        """The index's map (mapped again after :meth:`unmap`; FileNotFoundError: its file
        went since, a repack's: its objects are in another pack)."""
        got = self._idx
        if got is None:
            with self._pack_lock:
                if self._idx is None:
                    m = _map(self.idx_path, "pack index")
                    if len(m) != self._size:
                        raise _bad(f"{self.idx_path}: the pack index changed")
                    self._idx = m
                got = self._idx
            _note_mapped(self)
        return got

    @property
    def pack(self) -> mmap.mmap:
        got = self._pack
        if got is None:
            with self._pack_lock:
                if self._pack is None:
                    m = _map(self.pack_path, "pack")
                    if len(m) < 32 or m[:4] != b"PACK" or m[4:8] not in (b"\0\0\0\x02", b"\0\0\0\x03"):
                        raise _bad(f"{self.pack_path}: not a pack of version 2 or 3")
                    self._pack = m
                got = self._pack
            _note_mapped(self)
        return got

    def unmap(self) -> None:
        """Let the maps go (closed once no read in progress holds them); the next use maps
        the files again."""
        with self._pack_lock:
            self._idx = self._pack = None

    def mapped(self) -> bool:
        return self._idx is not None or self._pack is not None

    def there(self) -> bool:
        """Whether the pack's data is mapped or can be: False once its file went (a repack
        rolled it into another), while its index, mapped when listed, still finds its
        objects (they are in the new pack: the reader lists the directory again)."""
        try:
            self.pack  # noqa: B018
        except FileNotFoundError:
            return False
        return True

    def _sha(self, i: int, idx: mmap.mmap | None = None) -> bytes:
        start = self._ids + (20 * i if self.version == 2 else 24 * i)
        return (self.idx if idx is None else idx)[start : start + 20]

    def find(self, raw: bytes) -> int | None:
        try:
            idx = self.idx  # (one map for the whole lookup)
        except FileNotFoundError:
            return None  # (gone since its maps went: a repack's, its objects in another pack)
        lo = self.fanout[raw[0] - 1] if raw[0] else 0
        hi = self.fanout[raw[0]]
        if self.version == 2 and len(raw) == 20:
            i = self._find_v2(raw, lo, hi, idx)
        else:
            i = bisect_left(_ShaView(self, idx), raw, lo, hi)
        if i < hi and self._sha(i, idx) == raw:
            if self.version == 1:
                return int(struct.unpack_from(">I", idx, 1024 + 24 * i)[0])
            off = struct.unpack_from(">I", idx, self._offs + 4 * i)[0]
            if off & 0x80000000:
                j = off & 0x7FFFFFFF
                if j >= self._n_big:
                    raise _bad(f"{self.idx_path}: corrupt pack index (large offset {j})")
                off = struct.unpack_from(">Q", idx, self._big + 8 * j)[0]
            return int(off)
        return None

    def _find_v2(self, raw: bytes, lo: int, hi: int, idx: mmap.mmap) -> int:
        """The position of id ``raw`` among ids ``lo``..``hi`` of a v2 index (``hi`` when
        absent): the table's bytes searched in C (``mmap.find``), where a bisect's steps
        were Python calls (~5 us a lookup, against ~1 at a few thousand objects a fan-out
        bucket). A match must start on an entry's boundary: 20 bytes may also occur across
        two ids."""
        base = self._ids
        start, end = base + 20 * lo, base + 20 * hi
        while True:
            pos = idx.find(raw, start, end)
            if pos < 0:
                return hi
            if not (pos - base) % 20:
                return (pos - base) // 20
            start = pos + 1


class _ShaView:
    """The sorted id table of an index, as a sequence for bisect."""

    def __init__(self, pack: _Pack, idx: mmap.mmap) -> None:
        self.p = pack
        self.idx = idx

    def __len__(self) -> int:
        return self.p.count

    def __getitem__(self, i: int) -> bytes:
        return self.p._sha(i, self.idx)


def _inflate(buf: mmap.mmap | bytes, start: int, size: int) -> bytes:
    """The ``size`` bytes of the zlib stream at ``start``: exactly that many, and the stream
    must end there (a corrupt size never makes it inflate more than ``size + 1`` bytes)."""
    d = zlib.decompressobj()
    parts: list[bytes] = []
    got = 0
    pos = start
    end = len(buf)
    step = min(max(4096, size + 64), _INPUT_STEP)
    pending = b""
    try:
        while not d.eof:
            if not pending:
                if pos >= end:
                    raise _bad("truncated object data")
                pending = buf[pos : pos + step]
                pos += len(pending)
            out = d.decompress(pending, size + 1 - got)
            pending = d.unconsumed_tail
            got += len(out)
            if got > size:
                raise _bad(f"object data longer than the {size} bytes its header says")
            parts.append(out)
    except zlib.error as exc:
        raise _bad(f"corrupt object data: {exc}") from exc
    if got != size:
        raise _bad(f"object data of {got} bytes, its header says {size}")
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _inflate_head(buf: mmap.mmap | bytes, start: int, want: int) -> bytes:
    """The first ``want`` bytes (fewer when the stream is shorter) of the zlib stream at
    ``start``, feeding input until they come out (never inflating more)."""
    d = zlib.decompressobj()
    out = b""
    pos = start
    end = len(buf)
    pending = b""
    try:
        while len(out) < want and not d.eof:
            if not pending:
                if pos >= end:
                    raise _bad("truncated object data")
                pending = buf[pos : pos + 256]
                pos += len(pending)
            out += d.decompress(pending, want - len(out))
            pending = d.unconsumed_tail
    except zlib.error as exc:
        raise _bad(f"corrupt object data: {exc}") from exc
    return out


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    n = len(data)
    while True:
        if pos >= n or shift > 63:
            raise _bad("truncated or corrupt delta header")
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
    n = 1
    while b & 0x80:
        b = buf[pos]
        pos += 1
        n += 1
        if n > 9:
            raise _bad("corrupt delta base offset")
        rel = ((rel + 1) << 7) | (b & 0x7F)
    return rel, pos


def _copy_table() -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """For each copy opcode (0x80-0xff): the shifts of its offset bytes and of its size
    bytes, in the order they follow the opcode."""
    table = []
    for cmd in range(128, 256):
        offs = tuple(8 * bit for bit in range(4) if cmd & (1 << bit))
        sizes = tuple(8 * bit for bit in range(3) if cmd & (0x10 << bit))
        table.append((offs, sizes))
    return table


_COPY = _copy_table()


def apply_delta(base: bytes, delta: bytes) -> bytes:
    """The result of git delta ``delta`` applied to ``base``: linear in the output, and
    built by one copy (the pieces are views of ``base`` and ``delta``, joined at the end),
    so a big blob costs its base and its result in memory, nothing more."""
    src_size, pos = _varint(delta, 0)
    dst_size, pos = _varint(delta, pos)
    if src_size != len(base):
        raise _bad(f"delta base size mismatch ({src_size} announced, {len(base)} found)")
    pieces: list[memoryview] = []
    append = pieces.append
    view = memoryview(base)
    dview = memoryview(delta)
    n = len(delta)
    blen = len(base)
    copy = _COPY
    try:
        while pos < n:
            cmd = delta[pos]
            pos += 1
            if cmd & 0x80:
                offs, sizes = copy[cmd - 128]
                off = size = 0
                for sh in offs:
                    off |= delta[pos] << sh
                    pos += 1
                for sh in sizes:
                    size |= delta[pos] << sh
                    pos += 1
                size = size or 0x10000
                if off + size > blen:
                    raise _bad("delta copies past the end of its base")
                append(view[off : off + size])
            elif cmd:
                if pos + cmd > n:
                    raise _bad("truncated delta insert instruction")
                append(dview[pos : pos + cmd])
                pos += cmd
            else:
                raise _bad("invalid delta opcode 0")
    except IndexError:
        raise _bad("truncated delta copy instruction") from None
    out = b"".join(pieces)
    if len(out) != dst_size:
        raise _bad(f"delta result of {len(out)} bytes, announced {dst_size}")
    return out


class BlobStream:
    """Reads of one deflated object's data without holding it in memory.

    A zlib stream can only be read from its start, so the stream keeps a decompressor and
    the last ``WINDOW`` bytes it produced: sequential reads (and the slightly reordered
    ones of a kernel's read-ahead) cost one pass; a read behind the window starts over.
    Safe to share between threads (one lock per stream). Raises :class:`ObjectReadError`
    when the data turns out unreadable.
    """

    WINDOW = 8 << 20
    STEP = 1 << 20

    def __init__(self, path: str, start: int, size: int, skip: int = 0, oid: str = "") -> None:
        """``path``: a loose object or a pack; ``start``: where the zlib stream begins;
        ``size``: the object's size; ``skip``: header bytes to drop (a loose object's)."""
        self.size = size
        self.oid = oid
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
                raise _bad("truncated object data")
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
        if self._out > self.size:
            raise _bad(f"object data longer than the {self.size} bytes its header says")
        return True

    def pread(self, size: int, offset: int) -> bytes:
        end = min(offset + size, self.size)
        if offset >= end:
            return b""
        with self._lock:
            try:
                return self._pread(offset, end)
            except ObjectReadError as exc:
                self._reset()
                raise _bad(f"object {self.oid}: {exc.message}") from exc
            except (OSError, zlib.error) as exc:
                self._reset()
                raise _bad(f"object {self.oid}: {exc}") from exc

    def _pread(self, offset: int, end: int) -> bytes:
        if offset < self._win_start:
            self._reset()
        while self._out < end:
            if not self._produce():
                raise _bad("object shorter than its header says")
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
    if off < 12 or off >= len(buf) - 20:
        raise _bad(f"pack offset {off} outside the pack")
    b = buf[off]
    kind = (b >> 4) & 7
    size = b & 0x0F
    shift = 4
    pos = off + 1
    while b & 0x80:
        if shift > 63:
            raise _bad("corrupt pack object header")
        b = buf[pos]
        pos += 1
        size |= (b & 0x7F) << shift
        shift += 7
    return kind, size, pos
