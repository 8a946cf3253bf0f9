"""A small read-only git object reader in pure Python (loose objects and packs).

Why: importing pygit2 costs ~85 ms, more than half of the 150 ms an agent's
``avfs --json status`` may take end to end. The commands of an agent's loop (status, ls,
cat of unchanged files) only *read* a handful of commits and trees, so until something
else has loaded pygit2, :class:`~.gitstore.GitStore` reads objects through this module.
Everything that writes, diffs text or walks history uses libgit2. The formats are decoded
by :mod:`.objects`; this module finds an object (loose, or in which pack), follows its
delta chain and keeps a cache of delta bases.

The contract with the caller:

- an id found nowhere gives ``None``: the caller asks libgit2, which knows every layout git
  may use (alternates, multi-pack indexes, SHA-256 repositories, an index version this module
  does not know: such a pack is skipped here, so its objects are "not found");
- anything found but not readable (a truncated or corrupt pack or loose object, a missing
  delta base, a delta that does not fit its base) raises :class:`ObjectReadError`, and
  nothing else: the caller falls back to libgit2, and reports the object when libgit2
  cannot read it either.
"""

from __future__ import annotations

import os
import struct
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, TypeVar

from .digests import sha1
from .objects import (
    _OFS_DELTA,
    _REF_DELTA,
    _TYPES,
    MAX_CHAIN,
    BlobStream,
    ObjectReadError,
    _bad,
    _inflate,
    _inflate_head,
    _ofs,
    _Pack,
    _pack_header,
    _varint,
    apply_delta,
)

if TYPE_CHECKING:
    from .packset import PackSet

_T = TypeVar("_T")
LOOK_S = 0.5  # (:data:`.packset.LOOK_S`: a reader takes the store's listing after reading this long)
_NAMES = {b"commit", b"tree", b"blob", b"tag"}


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

    def __init__(self, git_dir: str, packs: Callable[[], PackSet] | None = None) -> None:
        """``packs``: the store's listing of its pack directory (made when first asked: a
        process that reads for less than :data:`LOOK_S` never imports :mod:`.packset`),
        looked at (at most every :data:`LOOK_S`) by each lookup in the packs once this
        reader has read for that long: once one went, the directory is listed again here.
        Without it a lookup that found its object never listed it, so a long-lived process
        (a mount's daemon reads loose objects, headers and big blobs here) kept the index
        and data of every pack a repack removed mapped, a descriptor each, until a read
        missed."""
        self.objects = os.path.join(git_dir, "objects")
        self._packs_of = packs
        self._packset: PackSet | None = None  # (made on a lookup :data:`LOOK_S` after the first)
        self._first_look: float | None = None
        self._gone = 0  # :attr:`.PackSet.gone` when last listed
        # index name -> pack, or None for an index this reader does not understand
        self._packs: dict[str, _Pack | None] = {}  # replaced whole, never mutated: threads share it
        self._scan_lock = threading.Lock()
        self._cache = _BaseCache()
        self.skipped: dict[str, str] = {}  # index name -> why this reader could not use it
        # objects whose every copy failed to read whole (checked against the id): a header
        # there may be another object's (an `.idx` giving it another's offset), so their
        # headers are read whole until a read succeeds (see :meth:`header`)
        self._unread: set[str] = set()

    def _scan(self) -> bool:
        """Open packs not seen yet, and forget those gone (a repack rolled them into
        another: every read that missed searched them all, for the life of the process);
        True when there were new ones."""
        pack_dir = os.path.join(self.objects, "pack")
        try:
            names = [n for n in os.listdir(pack_dir) if n.endswith(".idx")]
        except (FileNotFoundError, NotADirectoryError):
            return False
        with self._scan_lock:
            listed = set(names)
            packs = {n: p for n, p in self._packs.items() if n in listed}
            gone = len(packs) != len(self._packs)
            for n in [n for n in self.skipped if n not in listed]:
                del self.skipped[n]
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
            if new or gone:
                self._packs = packs  # readers iterate the dict they got: copy on write
        return new

    def follow_packs(self, packs: PackSet | None = None) -> None:
        """List the pack directory again when the store's :class:`.PackSet` (``packs``, or
        the one this reader took) saw a pack go since this reader last did (a look of the
        store's or of a lookup here): the removed packs' maps go. The first time it is
        given one, or one other than its own, this reader takes it and lists the directory
        anew (a pack may have gone before the listing was made: it counts from then). Two
        threads may each make a store's first listing: the one the store keeps and looks
        at (on its way into libgit2) is the one followed, not one only this reader's own
        lookups look at (an idle reader held the removed packs)."""
        ps = self._packset
        if packs is not None and packs is not ps:
            self._packset, self._gone = packs, packs.gone
            if self._packs:
                self._scan()
            return
        if ps is not None and ps.gone != self._gone:
            self._gone = ps.gone
            self._scan()

    def _loose_path(self, oid: str) -> str:
        return os.path.join(self.objects, oid[:2], oid[2:])

    @staticmethod
    def _wrap(oid: str, exc: BaseException) -> ObjectReadError:
        why = exc.message if isinstance(exc, ObjectReadError) else f"{type(exc).__name__}: {exc}"
        err = ObjectReadError(f"object {oid} cannot be read: {why}", details={"oid": oid})
        err.__cause__ = exc
        return err

    def read(self, oid: str, *, loose: bool = True) -> tuple[str, bytes] | None:
        """``loose=False``: the caller has just seen no loose file for ``oid``
        (:meth:`has_loose`), so only the packs are looked in (a failed ``open`` and its
        exception less on every packed read)."""
        if len(oid) != 40:
            return None
        try:
            return self._read(oid, loose)
        except _READ_ERRORS as exc:
            raise self._wrap(oid, exc) from exc

    def absent(self, oid: str) -> bool:
        """Whether this reader's "not found" for ``oid`` is the repository's own: a SHA-1 id,
        no pack skipped here (a layout not known), no ``info/alternates`` (objects borrowed),
        no loose file (written since a read looked). A lazy vault's read then fetches a
        blob at once rather than load libgit2 to hear the same (~85 ms; a cold task in a
        lazy mount waited for that import at its first miss, and the daemon read every
        object through libgit2 from then on)."""
        return (
            len(oid) == 40
            and not self.skipped
            and not os.path.exists(os.path.join(self.objects, "info", "alternates"))
            and not self.has_loose(oid)
        )

    def has_loose(self, oid: str) -> bool:
        """True when ``oid`` has a loose object file (readable or not)."""
        return len(oid) == 40 and os.path.exists(self._loose_path(oid))

    def _read(self, oid: str, loose: bool = True) -> tuple[str, bytes] | None:
        loose_error = None
        try:
            if loose:
                return _read_loose(self._loose_path(oid))
        except FileNotFoundError:
            pass
        except ObjectReadError as exc:  # as git does: a packed copy may still be good
            loose_error = exc
        hit = self._find(oid)  # rescans once: a pack written since (another process)?
        if hit is None:
            if loose_error is not None:
                raise loose_error
            return None
        try:
            got = self._checked(oid, *hit)
        except _READ_ERRORS:
            other = self._other_copy(oid, hit[0], lambda pack, off: self._checked(oid, pack, off))
            if other is None:
                if len(self._unread) < 4096:  # (a bound: a vault of damaged objects)
                    self._unread.add(oid)
                raise
            got = other
        self._unread.discard(oid)
        return got

    def _checked(self, oid: str, pack: _Pack, off: int) -> tuple[str, bytes]:
        kind, data = self._read_at(pack, off)
        # what the offset held is that object, as libgit2 checks (its strict hash verification):
        # an index that disagrees with its pack served another object's bytes under this id
        h = sha1(b"%s %d\0" % (kind.encode(), len(data)), size=len(data))
        h.update(data)
        if h.hexdigest() != oid:
            raise _bad(f"its contents do not match its id (object {h.hexdigest()} is at its offset)")
        return kind, data

    def _other_copy(self, oid: str, bad: _Pack, read: Callable[[_Pack, int], _T]) -> _T | None:
        """``oid`` read from a copy other than the one in ``bad``, which could not be read
        (as git reads on past a damaged pack's copy: another pack's, or the same pack put
        back under its name by the person, `git index-pack` or a copy from a backup): the
        pack is opened again from its files (a long-lived mount kept the damaged map, and
        only a new mount read the repaired pack); None when no copy reads. ``read``: what is
        read of a copy (the object checked against its id, or its header)."""
        with self._scan_lock:
            self._packs = {n: p for n, p in self._packs.items() if p is not bad}
        self._cache = _BaseCache()  # (offsets of the old files: not the new ones')
        self._scan()
        key = bytes.fromhex(oid)
        for pack in list(self._packs.values()):
            off = pack.find(key) if pack is not None else None
            if pack is None or off is None or not pack.there():
                continue
            try:
                return read(pack, off)
            except _READ_ERRORS:
                continue
        return None

    def _find(self, oid: str) -> tuple[_Pack, int] | None:
        key = bytes.fromhex(oid)
        if self._packs_of is not None:
            ps = self._packset
            now = time.monotonic()
            if ps is None:
                if self._first_look is None:
                    self._first_look = now
                elif now - self._first_look >= LOOK_S:
                    self.follow_packs(self._packs_of())
            elif now >= ps.next_look:
                ps.look()
                self.follow_packs()
        if not self._packs:
            self._scan()
        for rescanned in (False, True):
            went = False
            for pack in list(self._packs.values()):
                if pack is None:
                    continue
                off = pack.find(key)
                if off is not None:
                    if rescanned or pack.there():
                        return pack, off
                    went = True  # found in a pack a repack removed: its objects are elsewhere
                    break
            if rescanned or not (self._scan() or went):
                break
        return None

    def holds(self, oids: Iterable[str]) -> set[str]:
        """Those of ``oids`` found here, loose or packed, whether readable or not: the pack
        directory read once for all of them (a lookup per id that misses reads it again, and
        a batch is mostly misses: a read's promised neighbours)."""
        self._scan()
        packs = [p for p in self._packs.values() if p is not None]
        found: set[str] = set()
        for oid in oids:
            if len(oid) != 40:
                continue
            key = bytes.fromhex(oid)
            if any(p.find(key) is not None for p in packs) or os.path.exists(self._loose_path(oid)):
                found.add(oid)
        return found

    def header(self, oid: str) -> tuple[str, int] | None:
        """(type, size) of an object without reading its data (None when not found): only
        pack headers along a delta chain and a delta's first bytes are read."""
        if len(oid) != 40:
            return None
        if oid in self._unread:
            # a read of it failed: what the index points at may be another object, whose
            # header gave its size (a long-lived mount answered it after the index was put
            # right, and its reads stopped short there). Read whole: the packs are opened
            # again when that copy still fails (:meth:`_other_copy`)
            try:
                whole = self._read(oid)
            except _READ_ERRORS:
                pass  # still damaged: the header, as before (the reads say EIO)
            else:
                if whole is not None:
                    return whole[0], len(whole[1])
        try:
            return self._header(oid)
        except _READ_ERRORS as exc:
            raise self._wrap(oid, exc) from exc

    def kinds(self, oids: Iterable[str]) -> dict[str, str]:
        """The kind of each of ``oids`` found here, for many objects at once (gc's keep
        commit names ~2,000 after 1,000 checkpoints): each fan-out directory of the loose
        objects listed once, not a failed ``open()`` per object, and only the kind read of
        a packed one (no size). An id not found, or found and not readable, is left out:
        the caller asks :meth:`header` or libgit2 for those one by one."""
        out: dict[str, str] = {}
        by_dir: dict[str, list[str]] = {}
        for oid in oids:
            if len(oid) == 40:
                by_dir.setdefault(oid[:2], []).append(oid)
        for fan, group in by_dir.items():
            try:
                loose = set(os.listdir(os.path.join(self.objects, fan)))
            except (FileNotFoundError, NotADirectoryError):
                loose = set()
            for oid in group:
                try:
                    if oid[2:] in loose:
                        kind = _loose_header(self._loose_path(oid))[0]
                    else:
                        hit = self._find(oid)
                        if hit is None:
                            continue
                        try:
                            kind = self._base_kind(*hit)
                        except _READ_ERRORS:  # another pack's copy, as :meth:`read` and :meth:`header`
                            other = self._other_copy(oid, hit[0], self._base_kind)
                            if other is None:
                                raise
                            kind = other
                except _READ_ERRORS:  # (a loose file gone meanwhile too)
                    continue
                out[oid] = kind
        return out

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
        if packed is None:
            return None
        try:
            return self._header_at(*packed)
        except _READ_ERRORS:  # (a mount's sizes: read from another copy too, as :meth:`_read`)
            got = self._other_copy(oid, packed[0], self._header_at)
            if got is None:
                raise
            return got

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

    def hash_stream(self, oid: str, size: int) -> bool:
        """True when the big blob ``oid`` stored whole hashes to its id, read as a stream
        (False: not stored whole). Raises :class:`ObjectReadError` otherwise."""
        stream = self.stream(oid)
        if stream is None:
            return False
        h = sha1(b"blob %d\0" % size, size=size)
        try:
            while chunk := stream.read(1 << 20):
                h.update(chunk)
        finally:
            stream.close()
        if h.hexdigest() != oid:
            raise ObjectReadError(f"object {oid}: its contents do not match its id")
        return True

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
