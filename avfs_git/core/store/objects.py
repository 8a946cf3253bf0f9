"""A small read-only git object reader in pure Python (loose objects and packs).

Why: importing pygit2 costs ~85 ms, more than half of the 150 ms an agent's
``avfs --json status`` may take end to end. The commands of an agent's loop (status, ls,
cat of unchanged files) only *read* a handful of commits and trees, so until something
else has loaded pygit2, :class:`~.gitstore.GitStore` reads objects through this module.
Everything that writes, diffs text or walks history uses libgit2.

Formats: loose objects (zlib of ``<type> <size>\\0<data>``); pack index v1 and v2, pack v2
and v3 objects, including OFS_DELTA and REF_DELTA chains of any depth (git's
Documentation/gitformat-pack.txt).

The contract with the caller:

- an id found nowhere gives ``None``: the caller asks libgit2, which knows every layout git
  may use (alternates, multi-pack indexes, SHA-256 repositories, an index version this module
  does not know: such a pack is skipped here, so its objects are "not found");
- anything found but not readable (a truncated or corrupt pack or loose object, a missing
  delta base, a delta that does not fit its base) raises :class:`ObjectReadError`, and
  nothing else: the caller falls back to libgit2, and reports the object when libgit2
  cannot read it either.

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
import zlib
from bisect import bisect_left
from collections import OrderedDict

from ..errors import ObjectUnreadableError

_TYPES = {1: "commit", 2: "tree", 3: "blob", 4: "tag"}
_NAMES = {b"commit", b"tree", b"blob", b"tag"}
_OFS_DELTA = 6
_REF_DELTA = 7
MAX_CHAIN = 10_000  # git's own limit is 4095 (pack-objects --depth); beyond: a cycle
_INPUT_STEP = 1 << 20  # compressed bytes fed to zlib at a time for big objects


class ObjectReadError(ObjectUnreadableError, ValueError):
    """An object this reader found but cannot read (the only error it raises)."""


def _bad(why: str) -> ObjectReadError:
    return ObjectReadError(why)


class _Pack:
    """One pack and its index (v1 or v2). Raises :class:`ObjectReadError` for an index it
    does not understand (the caller skips that pack: libgit2 reads its objects)."""

    def __init__(self, idx_path: str) -> None:
        self.idx_path = idx_path
        self.pack_path = idx_path[:-4] + ".pack"
        with open(idx_path, "rb") as fh:
            try:
                self.idx = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
            except ValueError as exc:  # an empty file cannot be mapped
                raise _bad(f"{idx_path}: empty pack index") from exc
        n = len(self.idx)
        if self.idx[:4] == b"\xfftOc":
            if self.idx[4:8] != b"\x00\x00\x00\x02":
                raise _bad(f"{idx_path}: pack index version {self.idx[4:8].hex()} is not known here")
            self.version = 2
            base = 8
        else:
            self.version = 1
            base = 0
        if n < base + 1024 + 40:
            raise _bad(f"{idx_path}: truncated pack index")
        self.fanout = struct.unpack_from(">256I", self.idx, base)
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
        self._pack_lock = threading.Lock()

    @property
    def pack(self) -> mmap.mmap:
        got = self._pack
        if got is None:
            with self._pack_lock:
                if self._pack is None:
                    with open(self.pack_path, "rb") as fh:
                        try:
                            m = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
                        except ValueError as exc:
                            raise _bad(f"{self.pack_path}: empty pack") from exc
                    if len(m) < 32 or m[:4] != b"PACK" or m[4:8] not in (b"\0\0\0\x02", b"\0\0\0\x03"):
                        raise _bad(f"{self.pack_path}: not a pack of version 2 or 3")
                    self._pack = m
                got = self._pack
        return got

    def _sha(self, i: int) -> bytes:
        start = self._ids + (20 * i if self.version == 2 else 24 * i)
        return self.idx[start : start + 20]

    def find(self, raw: bytes) -> int | None:
        lo = self.fanout[raw[0] - 1] if raw[0] else 0
        hi = self.fanout[raw[0]]
        i = bisect_left(_ShaView(self), raw, lo, hi)
        if i < hi and self._sha(i) == raw:
            if self.version == 1:
                return int(struct.unpack_from(">I", self.idx, 1024 + 24 * i)[0])
            off = struct.unpack_from(">I", self.idx, self._offs + 4 * i)[0]
            if off & 0x80000000:
                j = off & 0x7FFFFFFF
                if j >= self._n_big:
                    raise _bad(f"{self.idx_path}: corrupt pack index (large offset {j})")
                off = struct.unpack_from(">Q", self.idx, self._big + 8 * j)[0]
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


def _parse_loose_head(head: bytes) -> tuple[str, int, int]:
    nul = head.find(b"\0")
    if nul < 0:
        raise _bad("corrupt loose object header")
    kind, sp, size = head[:nul].partition(b" ")
    if not sp or kind not in _NAMES or not size.isdigit() or (size[:1] == b"0" and len(size) > 1):
        raise _bad(f"corrupt loose object header {head[:nul][:40]!r}")
    return kind.decode(), int(size), nul + 1


def _loose_header(path: str) -> tuple[str, int, int]:
    """(type, size, header length) of a loose object, inflating only its first bytes
    (feeding the file until they come out)."""
    with open(path, "rb") as fh:
        d = zlib.decompressobj()
        head = b""
        try:
            while b"\0" not in head and len(head) < 32 and not d.eof:
                chunk = d.unconsumed_tail or fh.read(256)
                if not chunk:
                    raise _bad("truncated loose object")
                head += d.decompress(chunk, 32 - len(head))
        except zlib.error as exc:
            raise _bad(f"corrupt loose object: {exc}") from exc
    return _parse_loose_head(head)


def _read_loose(path: str) -> tuple[str, bytes]:
    with open(path, "rb") as fh:
        raw = fh.read()
    d = zlib.decompressobj()
    try:
        data = d.decompress(raw)
    except zlib.error as exc:
        raise _bad(f"corrupt loose object: {exc}") from exc
    if not d.eof:
        raise _bad("truncated loose object")
    kind, size, skip = _parse_loose_head(data[:32])
    if len(data) - skip != size:
        raise _bad(f"loose object of {len(data) - skip} bytes, its header says {size}")
    return kind, data[skip:]


class _BaseCache:
    """The most recently resolved objects of packs, by (pack, offset): a delta chain's
    bases are read once, not once per object built on them (git's delta base cache)."""

    LIMIT = 32 << 20
    ITEM_MAX = 8 << 20

    def __init__(self) -> None:
        self._d: OrderedDict[tuple[str, int], tuple[str, bytes]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: tuple[str, int]) -> tuple[str, bytes] | None:
        with self._lock:
            hit = self._d.get(key)
            if hit is not None:
                self._d.move_to_end(key)
            return hit

    def put(self, key: tuple[str, int], value: tuple[str, bytes]) -> None:
        n = len(value[1])
        if n > self.ITEM_MAX:
            return
        with self._lock:
            if key in self._d:
                return
            self._d[key] = value
            self._bytes += n
            while self._bytes > self.LIMIT:
                _, old = self._d.popitem(last=False)
                self._bytes -= len(old[1])


# what reading a damaged object can raise, wrapped into ObjectReadError at the reader's edge
_READ_ERRORS = (ObjectReadError, IndexError, ValueError, struct.error, zlib.error, OSError, OverflowError)


class ObjectReader:
    """Reads objects of one repository; ``read`` returns (type, data) or None.

    Every method raises :class:`ObjectReadError` (naming the object) for an object it found
    but cannot read, and nothing else.
    """

    def __init__(self, git_dir: str) -> None:
        self.objects = os.path.join(git_dir, "objects")
        # index name -> pack, or None for an index this reader does not understand
        self._packs: dict[str, _Pack | None] = {}  # replaced whole, never mutated: threads share it
        self._scan_lock = threading.Lock()
        self._cache = _BaseCache()
        self.skipped: dict[str, str] = {}  # index name -> why this reader could not use it

    def _scan(self) -> bool:
        """Open packs not seen yet; True when there were new ones."""
        pack_dir = os.path.join(self.objects, "pack")
        try:
            names = [n for n in os.listdir(pack_dir) if n.endswith(".idx")]
        except (FileNotFoundError, NotADirectoryError):
            return False
        with self._scan_lock:
            packs = dict(self._packs)
            new = False
            for n in names:
                if n not in packs and os.path.exists(os.path.join(pack_dir, n[:-4] + ".pack")):
                    try:
                        packs[n] = _Pack(os.path.join(pack_dir, n))
                    except FileNotFoundError:
                        continue  # removed meanwhile (a repack)
                    except (ObjectReadError, OSError) as exc:
                        packs[n] = None  # a layout not known here (or broken): libgit2's turn
                        self.skipped[n] = exc.message if isinstance(exc, ObjectReadError) else str(exc)
                    new = True
            if new:
                self._packs = packs  # readers iterate the dict they got: copy on write
        return new

    def _loose_path(self, oid: str) -> str:
        return os.path.join(self.objects, oid[:2], oid[2:])

    @staticmethod
    def _wrap(oid: str, exc: BaseException) -> ObjectReadError:
        why = exc.message if isinstance(exc, ObjectReadError) else f"{type(exc).__name__}: {exc}"
        err = ObjectReadError(f"object {oid} cannot be read: {why}", details={"oid": oid})
        err.__cause__ = exc
        return err

    def read(self, oid: str) -> tuple[str, bytes] | None:
        if len(oid) != 40:
            return None
        try:
            return self._read(oid)
        except _READ_ERRORS as exc:
            raise self._wrap(oid, exc) from exc

    def has_loose(self, oid: str) -> bool:
        """True when ``oid`` has a loose object file (readable or not)."""
        return len(oid) == 40 and os.path.exists(self._loose_path(oid))

    def _read(self, oid: str) -> tuple[str, bytes] | None:
        try:
            return _read_loose(self._loose_path(oid))
        except FileNotFoundError:
            loose_error = None
        except ObjectReadError as exc:  # as git does: a packed copy may still be good
            loose_error = exc
        hit = self._find(oid)  # rescans once: a pack written since (another process)?
        if hit is None:
            if loose_error is not None:
                raise loose_error
            return None
        return self._read_at(*hit)

    def _find(self, oid: str) -> tuple[_Pack, int] | None:
        key = bytes.fromhex(oid)
        if not self._packs:
            self._scan()
        for rescanned in (False, True):
            for pack in list(self._packs.values()):
                if pack is None:
                    continue
                off = pack.find(key)
                if off is not None:
                    return pack, off
            if rescanned or not self._scan():
                break
        return None

    def header(self, oid: str) -> tuple[str, int] | None:
        """(type, size) of an object without reading its data (None when not found): only
        pack headers along a delta chain and a delta's first bytes are read."""
        if len(oid) != 40:
            return None
        try:
            return self._header(oid)
        except _READ_ERRORS as exc:
            raise self._wrap(oid, exc) from exc

    def _locate(self, oid: str) -> tuple[tuple[str, int, int] | None, tuple[_Pack, int] | None]:
        """Where ``oid`` is: ``(loose header (kind, size, header length), None)``, or
        ``(None, (pack, offset))``, or ``(None, None)`` when nowhere. A loose file that
        cannot be read is looked for in the packs (git writes an object again rather than
        fix it), and its error raised when no pack has it either."""
        try:
            return _loose_header(self._loose_path(oid)), None
        except FileNotFoundError:
            loose_error = None
        except ObjectReadError as exc:
            loose_error = exc
        hit = self._find(oid)
        if hit is None and loose_error is not None:
            raise loose_error
        return None, hit

    def _header(self, oid: str) -> tuple[str, int] | None:
        loose, packed = self._locate(oid)
        if loose is not None:
            return loose[0], loose[1]
        return None if packed is None else self._header_at(*packed)

    def _header_at(self, pack: _Pack, off: int) -> tuple[str, int]:
        buf = pack.pack
        kind, size, pos = _pack_header(buf, off)
        if kind in _TYPES:
            return _TYPES[kind], size
        # the object's size is the delta's second size; its type is the chain's base's
        if kind == _OFS_DELTA:
            _, data_pos = _ofs(buf, pos)
        elif kind == _REF_DELTA:
            data_pos = pos + 20
        else:
            raise _bad(f"unknown pack object type {kind}")
        head = _inflate_head(buf, data_pos, 20)
        _, p = _varint(head, 0)
        size = _varint(head, p)[0]
        return self._base_kind(pack, off), size

    def _base_kind(self, pack: _Pack, off: int) -> str:
        """The type of the object at the bottom of the delta chain at ``off``."""
        for _ in range(MAX_CHAIN):
            buf = pack.pack
            kind, _size, pos = _pack_header(buf, off)
            if kind in _TYPES:
                return _TYPES[kind]
            if kind == _OFS_DELTA:
                rel, _ = _ofs(buf, pos)
                if rel <= 0 or rel > off:
                    raise _bad(f"delta base offset {rel} out of range at {off}")
                off -= rel
            elif kind == _REF_DELTA:
                base_id = bytes(buf[pos : pos + 20]).hex()
                try:
                    return _loose_header(self._loose_path(base_id))[0]
                except FileNotFoundError:
                    pass
                hit = self._find(base_id)
                if hit is None:
                    raise _bad(f"delta base {base_id} not found")
                pack, off = hit
            else:
                raise _bad(f"unknown pack object type {kind}")
        raise _bad(f"delta chain longer than {MAX_CHAIN} (a cycle?)")

    def stream(self, oid: str) -> BlobStream | None:
        """A :class:`BlobStream` of a blob stored whole (loose, or undeltified in a pack,
        as git keeps big files); None otherwise: read it whole then."""
        if len(oid) != 40:
            return None
        try:
            return self._stream(oid)
        except _READ_ERRORS as exc:
            raise self._wrap(oid, exc) from exc

    def _stream(self, oid: str) -> BlobStream | None:
        loose, packed = self._locate(oid)
        if loose is not None:
            kind, size, skip = loose
            return BlobStream(self._loose_path(oid), 0, size, skip, oid) if kind == "blob" else None
        if packed is None:
            return None
        pack, off = packed
        ptype, size, pos = _pack_header(pack.pack, off)
        if ptype != 3:  # a blob stored whole
            return None
        return BlobStream(pack.pack_path, pos, size, 0, oid)

    def _read_at(self, pack: _Pack, off: int) -> tuple[str, bytes]:
        """The object at ``off`` of ``pack``: walk down its delta chain to a base (stored
        whole, loose, or in the cache), then apply the deltas upwards."""
        chain: list[tuple[_Pack, int, int, int]] = []  # (pack, offset, data position, size)
        cache = self._cache
        while True:
            if len(chain) > MAX_CHAIN:
                raise _bad(f"delta chain longer than {MAX_CHAIN} (a cycle?)")
            hit = cache.get((pack.pack_path, off))
            if hit is not None:
                kind, data = hit
                break
            buf = pack.pack
            ptype, size, pos = _pack_header(buf, off)
            if ptype == _OFS_DELTA:
                rel, pos = _ofs(buf, pos)
                if rel <= 0 or rel > off:
                    raise _bad(f"delta base offset {rel} out of range at {off}")
                chain.append((pack, off, pos, size))
                off -= rel
                continue
            if ptype == _REF_DELTA:
                base_id = bytes(buf[pos : pos + 20]).hex()
                chain.append((pack, off, pos + 20, size))
                try:
                    kind, data = _read_loose(self._loose_path(base_id))
                    break
                except FileNotFoundError:
                    pass
                found = self._find(base_id)
                if found is None:
                    raise _bad(f"delta base {base_id} not found")
                pack, off = found
                continue
            if ptype not in _TYPES:
                raise _bad(f"unknown pack object type {ptype}")
            kind, data = _TYPES[ptype], _inflate(buf, pos, size)
            if chain:
                cache.put((pack.pack_path, off), (kind, data))
            break
        for i in range(len(chain) - 1, -1, -1):
            dpack, doff, dpos, dsize = chain[i]
            data = apply_delta(data, _inflate(dpack.pack, dpos, dsize))
            if i:  # a base of the next one up
                cache.put((dpack.pack_path, doff), (kind, data))
        return kind, data
