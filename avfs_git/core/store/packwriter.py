"""Writing the objects of one checkpoint as one pack, instead of one loose file each.

A loose object costs a file create + rename (150-500 µs here); a checkpoint of 10 files
writes ~42 objects (10 blobs, ~31 trees, a commit), so loose objects alone would eat the
10 ms budget. A pack is two files whatever the count. The format is git's (pack v2 with an
index v2, as Documentation/gitformat-pack.txt describes); git and libgit2 read it like any
other pack, and `avfs gc` (or git's own) merges packs later. Too many small packs would slow
lookups, so :func:`maybe_consolidate` merges them geometrically once they pile up.

Objects are compressed with zlib level 1: checkpoints favour speed; a later repack
recompresses. Trees, mostly 20-byte ids that do not compress, are stored: their zlib stream
is written here (:func:`stored`), as ``zlib.compress(data, 0)`` would make it, without the
~2 µs of zlib's set-up per call (a merge writes hundreds of small trees).

A pack is written as ``objects/pack/tmp_avfs_<pid>_<random>`` (and its index as that name
plus ``_idx``, :func:`tmp_index`) and renamed into place when done. Not ``.idx``: ``git gc``
(which git runs by itself, ``gc --auto`` after a commit in a mount once 50 packs pile up)
deletes an ``.idx`` whose ``.pack`` is not beside it as pack garbage, so a checkpoint lost
its index between the pack's rename and its own; git's own temporary files are
``tmp_pack_*`` and ``tmp_idx_*`` for the same reason. The writer holds a ``flock`` on the
temporary pack until then, so a temporary file nobody holds a lock on was left by a killed
writer: :func:`stale_temp_files` lists those (``avfs gc`` removes them, ``avfs doctor``
reports them, the quota counts them).
"""

from __future__ import annotations

import errno
import fcntl
import itertools
import os
import struct
import time
import zlib
from collections.abc import Callable
from typing import IO

from ..errors import BusyError, from_oserror
from .digests import sha1
from .locks import flock_held, pid_alive  # (a zombie writer is gone: it ended)
from .safeopen import open_regular

OBJ_COMMIT, OBJ_TREE, OBJ_BLOB = 1, 2, 3

_TYPE_NAME = {OBJ_COMMIT: b"commit", OBJ_TREE: b"tree", OBJ_BLOB: b"blob"}
_CHUNK = 1 << 20
# consolidate when a vault holds more packs than this: half git's gc.autoPackLimit (50), so
# the packs written while a roll runs never take a person's `git commit` past it (h-packs1)
PACK_LIMIT = 24
TMP_PREFIX = "tmp_avfs_"
TMP_INDEX = "_idx"  # a temporary pack's index: its name plus this (never ".idx": see above)


def tmp_index(tmp: str) -> str:
    """The temporary index beside the temporary pack ``tmp``."""
    return tmp + TMP_INDEX


# a temporary file no writer holds is left alone this long when its writer's pid still runs
# (the moment between creating the file and locking it, or a writer of an older avfs)
STALE_TMP_S = 3600.0
# Called with the pack directory after a pack was put in place (the vault's quota keeps the
# objects' size cached and rescans it when told; see quota.QuotaTracker). Must not raise.
# Process-wide on purpose: a pack lands in a vault on disk whichever object wrote it (a
# vault's store, gc's, doctor's, a mount daemon's, a bare PackWriter), and what listens
# (quota, one layer up) registers once at import rather than being handed to every writer;
# a registry kept by one store would miss the writers that store did not make.
FINISH_HOOKS: list[Callable[[str], None]] = []
# the temporary names of this process's loose objects (write_loose), one a call: threads too
_SEQ = itertools.count()


def object_id(kind: int, data: bytes) -> str:
    h = sha1(_TYPE_NAME[kind] + b" %d\0" % len(data), size=len(data))
    h.update(data)
    return h.hexdigest()


def file_blob_id(path: str, *, follow: bool = False, root: str | None = None) -> str:
    """The blob id git would give the file's contents (hashlib's or Python's own SHA-1: ~4x faster than libgit2's
    collision-detecting SHA-1; the ids agree for every non-colliding input). The regular
    file at ``path`` only (:func:`open_regular`, reached from ``root`` without following a
    link when given), unless ``follow`` (a ``/proc/self/fd`` path: a descriptor's own file)."""
    with open(path, "rb") if follow else os.fdopen(open_regular(path, root), "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        h = sha1(b"blob %d\0" % size, size=size)
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def write_loose(root: str, kind: str, data: bytes) -> str:
    """Write one object (``kind`` "commit", "tree", "blob") into the repository at ``root``
    as a loose object, as git and libgit2 write one: ``<kind> <size>\\0<data>`` deflated, in
    a file of its own linked into place (an object already there is kept); its id. For a
    process that has not loaded libgit2 (~90 ms of CPU) to write one object with: a new
    vault's empty tree and first commit. OSError as the file system raises it."""
    head = b"%s %d\0" % (kind.encode(), len(data))
    h = sha1(head, size=len(data))
    h.update(data)
    oid = h.hexdigest()
    folder = os.path.join(root, "objects", oid[:2])
    path = os.path.join(folder, oid[2:])
    if os.path.exists(path):
        return oid
    os.makedirs(folder, exist_ok=True)
    body = zlib.compress(head + data)
    tmp = os.path.join(folder, f"tmp_obj_{os.getpid()}_{next(_SEQ)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o444)
    try:
        try:
            view = memoryview(body)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
    finally:
        os.unlink(tmp)
    return oid


def _put(tmp: str, dest: str) -> None:
    """Move a finished ``tmp`` to ``dest``, keeping a ``dest`` already there.

    A pack's name is the SHA-1 of its bytes, so one already in place holds the same bytes
    (the same objects written again: a fork of a workspace whose changes an earlier fork
    captured). Renaming over it would cost more than nothing: ext4 (``auto_da_alloc``)
    writes the new file's data out when a rename replaces a file, 10-30 ms a pack on a busy
    disk. git keeps the existing file the same way (``finalize_object_file``: link, and
    an existing name is success).
    """
    try:
        os.link(tmp, dest)
    except FileExistsError:
        pass
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.EXDEV):
            raise
        os.replace(tmp, dest)  # no hard links here
        return
    os.unlink(tmp)


KEEP_MARK = b"avfs "  # a .keep avfs makes while it puts a pack in place: "avfs <pid>"


def install(tmp: str, idx_tmp: str, base: str) -> None:
    """Put a finished temporary pack ``tmp`` and its index ``idx_tmp`` in place as
    ``base.pack`` and ``base.idx``, the pack first (``git gc`` deletes an index whose pack
    is not there) and a ``base.keep`` beside them meanwhile: ``git repack -d`` (``gc``, run
    by git itself after a commit in a mount once packs pile up, or avfs's consolidation)
    lists every ``*.pack`` in the directory and deletes those it did not write, and a pack
    whose index is not in place yet holds objects it never saw: a checkpoint's pack was
    deleted that way (``tests/test_packs.py``). A ``.keep`` there already (git's, or another
    writer's of the same pack) is left to its maker; one a killed writer left is stale
    (:func:`stale_temp_files`)."""
    keep = base + ".keep"
    try:
        fd = os.open(keep, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)
    except FileExistsError:
        mine = False
    else:
        mine = True
        try:
            os.write(fd, KEEP_MARK + b"%d\n" % os.getpid())
        finally:
            os.close(fd)
    try:
        _put(tmp, base + ".pack")
        _put(idx_tmp, base + ".idx")
    finally:
        if mine:
            os.unlink(keep)


_STORED_MAX = 0xFFFF  # the most a stored deflate block holds (RFC 1951, 3.2.4)
_ZLIB_HEAD = b"\x78\x01"  # deflate, 32 KiB window, no dictionary, "fastest" (RFC 1950)
# a tree of 16 bytes to 2 KiB in a pack: its entry header (2 bytes), the zlib header and its
# one stored deflate block's header (final block, length, its complement)
_SMALL_TREE_HEAD = struct.Struct("<BB2sBHH")


def stored(data: bytes) -> bytes:
    """``data`` as a zlib stream of stored (uncompressed) deflate blocks: what
    ``zlib.compress(data, 0)`` makes, built directly (zlib's set-up of a compressor costs
    more than copying a small tree)."""
    n = len(data)
    check = struct.pack(">I", zlib.adler32(data))
    if n <= _STORED_MAX:
        return b"".join((_ZLIB_HEAD, struct.pack("<BHH", 1, n, n ^ 0xFFFF), data, check))
    parts = [_ZLIB_HEAD]
    for start in range(0, n, _STORED_MAX):
        chunk = data[start : start + _STORED_MAX]
        last = start + _STORED_MAX >= n
        parts += (struct.pack("<BHH", last, len(chunk), len(chunk) ^ 0xFFFF), chunk)
    parts.append(check)
    return b"".join(parts)


def _header(kind: int, size: int) -> bytes:
    out = bytearray()
    byte = (kind << 4) | (size & 0x0F)
    size >>= 4
    while size:
        out.append(byte | 0x80)
        byte = size & 0x7F
        size >>= 7
    out.append(byte)
    return bytes(out)


def _mkstemp(prefix: str, directory: str) -> tuple[int, str]:
    """``tempfile.mkstemp(prefix=prefix, dir=directory)`` (a new 0600 file, ``O_EXCL``) without importing
    tempfile (its shutil, bz2, lzma, random: ~10 ms of a cold `vault fork` or `checkpoint save`)."""
    for _ in range(100):
        path = os.path.join(directory, prefix + os.urandom(6).hex())
        try:
            return os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600), path
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no unused temporary name", directory)


class PackWriter:
    """Collects objects and writes them as one pack + index into ``<git_dir>/objects/pack``.

    Objects already in the vault (``exists`` says so) are skipped. Nothing is visible to
    git until :meth:`finish` renames the finished pack and index into place.
    """

    def __init__(self, git_dir: str, exists: object = None) -> None:
        self.pack_dir = os.path.join(git_dir, "objects", "pack")
        self._exists = exists
        self._entries: dict[str, tuple[int, int]] = {}  # oid -> (offset, crc32)
        self._linked: dict[tuple[int, int, int, int, int], str] = {}  # hard links' (add_file)
        try:
            fd, self._tmp = _mkstemp(f"{TMP_PREFIX}{os.getpid()}_", self.pack_dir)
        except OSError as exc:
            raise from_oserror(exc, self.pack_dir) from exc
        # held until the pack is in place or gone: tells gc and doctor that a writer lives
        self._lock_fd = os.open(self._tmp, os.O_RDONLY | os.O_CLOEXEC)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        self._fh = os.fdopen(fd, "w+b")
        self._sha = sha1()
        self._offset = 0
        self._write(b"PACK" + struct.pack(">II", 2, 0))  # count patched in finish()
        self.done = False

    def __len__(self) -> int:
        return len(self._entries)

    def _write(self, data: bytes) -> None:
        self._fh.write(data)
        self._offset += len(data)

    def holds(self, oid: str) -> bool:
        """Whether ``oid`` was written into this pack."""
        return oid in self._entries

    def _known(self, oid: str) -> bool:
        return oid in self._entries or (callable(check := self._exists) and bool(check(oid)))

    def add(self, kind: int, data: bytes) -> str:
        """Add an object held in memory; returns its id."""
        oid = object_id(kind, data)
        if self._known(oid):
            return oid
        # trees are mostly 20-byte ids, which do not compress: store them (level 0)
        raw = _header(kind, len(data)) + (stored(data) if kind == OBJ_TREE else zlib.compress(data, 1))
        self._entries[oid] = (self._offset, zlib.crc32(raw))
        self._write(raw)
        return oid

    def add_tree(self, data: bytes) -> bytes:
        """:meth:`add` of a tree, its id returned raw (20 bytes, as a tree entry holds it):
        a merge writes hundreds of trees, each id going straight into its parent. A tree
        under 2 KiB (most) is framed in one call: its 2-byte entry header, the zlib
        header and the one stored block's header packed together (3.1 -> ~2 us a tree)."""
        n = len(data)
        h = sha1(b"tree %d\0" % n, size=n)
        h.update(data)
        raw = h.digest()
        oid = raw.hex()
        if oid in self._entries or self._known(oid):
            return raw
        if 16 <= n < 0x800:  # (the type and the low 4 bits of the size, then the next 7)
            head = _SMALL_TREE_HEAD.pack(0xA0 | (n & 0x0F), n >> 4, _ZLIB_HEAD, 1, n, n ^ 0xFFFF)
            obj = b"".join((head, data, zlib.adler32(data).to_bytes(4, "big")))
        else:
            obj = _header(OBJ_TREE, n) + stored(data)
        self._entries[oid] = (self._offset, zlib.crc32(obj))
        self._fh.write(obj)
        self._offset += len(obj)
        return raw

    def add_file(self, path: str, root: str | None = None) -> str:
        """Add the contents of a file as a blob, streamed (no whole-file buffering): the
        regular file at ``path`` only (:func:`open_regular`, ``root`` as there). A file over
        1 MiB is hashed first (an object the pack holds costs no compression), then stored
        under the hash of the bytes stored (the first pass's id gave a file a mount's writer
        rewrote in place between the two a blob whose id is not its bytes' hash: raced1). A
        file of several names is read once a pack while its size and times stay (attack25:
        4,000 links to one 16 MiB file had an exec's commit hash 62 GiB; docs/security.md)."""
        with os.fdopen(open_regular(path, root), "rb") as fh:
            st = os.fstat(fh.fileno())
            if st.st_nlink < 2:
                return self.add_open(fh, st.st_size, path)
            key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
            if (known := self._linked.get(key)) is None:
                known = self._linked[key] = self.add_open(fh, st.st_size, path)
            return known

    def add_open(self, fh: IO[bytes], size: int, path: str) -> str:
        """:meth:`add_file` of the file open as ``fh`` (``size`` bytes as opened)."""
        if size <= _CHUNK:
            return self.add(OBJ_BLOB, fh.read())
        h = sha1(b"blob %d\0" % size, size=size)
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
        if self._known(oid := h.hexdigest()):
            return oid
        for _ in range(8):
            fh.seek(0)
            if (got := self.add_stream(fh, size)) is not None:
                return got
            size = os.fstat(fh.fileno()).st_size
        raise BusyError(f"{path} kept shrinking while it was being stored", hint="try again")

    def add_stream(self, fh: IO[bytes], size: int) -> str | None:
        """Store the first ``size`` bytes of ``fh`` as a blob, hashed as they are written;
        its id (a known object taken back out), or None if ``fh`` ended first (read again)."""
        start = self._offset
        h = sha1(b"blob %d\0" % size, size=size)
        self._write(head := _header(OBJ_BLOB, size))
        crc = zlib.crc32(head)
        comp = zlib.compressobj(1)
        left = size
        while left and (chunk := fh.read(min(_CHUNK, left))):
            left -= len(chunk)
            h.update(chunk)
            out = comp.compress(chunk)
            crc = zlib.crc32(out, crc)
            self._write(out)
        oid = h.hexdigest()
        if left or self._known(oid):  # (not kept: the pack truncated to where it began)
            self._fh.truncate(start)  # (flushes first)
            self._fh.seek(start)
            self._offset = start
            return None if left else oid
        self._write(out := comp.flush())
        self._entries[oid] = (start, zlib.crc32(out, crc))
        return oid

    def abort(self) -> None:
        if not self.done:
            self.done = True
            try:
                self._fh.close()  # flushes: fails on a full disk, and the files must go all the same
            except OSError:
                pass
            for path in (tmp_index(self._tmp), self._tmp):
                try:
                    os.unlink(path)
                except OSError:
                    pass
        self._unlock()

    def _unlock(self) -> None:
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    def finish(self) -> str | None:
        """Write the pack and its index into place; returns the pack name (None if empty)."""
        if self.done:
            return None
        if not self._entries:
            self.abort()
            return None
        fh = self._fh
        try:
            fh.seek(8)
            fh.write(struct.pack(">I", len(self._entries)))
            fh.seek(0)
            sha = sha1(size=self._offset)
            while chunk := fh.read(_CHUNK):
                sha.update(chunk)
            pack_sum = sha.digest()
            fh.seek(0, os.SEEK_END)
            fh.write(pack_sum)
            fh.close()
            self.done = True
            name = f"pack-{pack_sum.hex()}"
            base = os.path.join(self.pack_dir, name)
            idx_tmp = tmp_index(self._tmp)
            with open(idx_tmp, "wb") as ih:
                ih.write(self._index(pack_sum))
            os.chmod(self._tmp, 0o444)
            os.chmod(idx_tmp, 0o444)
            install(self._tmp, idx_tmp, base)
        except OSError as exc:
            self.abort()
            raise from_oserror(exc, self.pack_dir) from exc
        finally:
            self._unlock()
        for hook in FINISH_HOOKS:
            hook(self.pack_dir)
        return name

    def _index(self, pack_sum: bytes) -> bytes:
        return index_v2(self._entries, pack_sum)


def index_v2(entries: dict[str, tuple[int, int]], pack_sum: bytes) -> bytes:
    """The index (v2) of a pack whose objects are ``entries`` (id -> (offset, crc32 of the
    entry's bytes)) and whose trailing checksum is ``pack_sum``."""
    # each table built in one call, not per object (~0.4 ms at 300 objects): the ids sort
    # as hex as they do as bytes, and become bytes in one call
    oids = sorted(entries)
    n = len(oids)
    ids = bytes.fromhex("".join(oids))
    fanout = [0] * 256
    for first in ids[::20]:
        fanout[first] += 1
    offsets = [entries[oid][0] for oid in oids]
    large = [off for off in offsets if off >= 0x80000000]
    if large:  # a pack past 2 GiB: those offsets go to the 64-bit table, in order
        at = iter(range(len(large)))
        offsets = [off if off < 0x80000000 else 0x80000000 | next(at) for off in offsets]
    out = b"".join(
        (
            b"\xfftOc",
            struct.pack(">I", 2),
            struct.pack(">256I", *itertools.accumulate(fanout)),
            ids,
            struct.pack(f">{n}I", *(entries[oid][1] & 0xFFFFFFFF for oid in oids)),
            struct.pack(f">{n}I", *offsets),
            struct.pack(f">{len(large)}Q", *large),
            pack_sum,
        )
    )
    return out + sha1(out).digest()


def temp_file_stale(path: str, *, now: float | None = None) -> str | None:
    """Why the temporary pack file ``path`` (``tmp_avfs_*``) was left by a writer that is
    gone, or None when a writer may still be writing it.

    A writer holds the temporary pack's flock from just after creating it until the pack is
    in place, so a file whose lock is held is never stale. Otherwise: stale when the pid in
    its name is dead, or when its last write is older than ``STALE_TMP_S`` (a reused pid).
    An index (:data:`TMP_INDEX`, or ``.idx`` as an older avfs named it) goes with its pack
    (after the pack's rename: by pid and age alone).
    """
    now = time.time() if now is None else now
    name = os.path.basename(path)
    suffix = next((x for x in (TMP_INDEX, ".idx") if name.endswith(x)), "")
    pack = path[: -len(suffix)] if suffix else path
    if flock_held(pack):
        return None
    try:
        age = now - os.stat(path).st_mtime
    except FileNotFoundError:
        return None
    head = name[len(TMP_PREFIX) :].split("_", 1)[0]
    pid = int(head) if head.isdigit() else None
    if pid is not None and not pid_alive(pid):
        return f"temporary pack file of process {pid}, which is gone (killed while writing)"
    if age > STALE_TMP_S:
        return f"temporary pack file nobody is writing, last written {int(age)} s ago"
    return None


def keep_stale(path: str, *, now: float | None = None) -> str | None:
    """Why ``path`` is a ``.keep`` avfs made while it put a pack in place (:func:`install`)
    and its writer is gone, or None (not avfs's, or its writer may still be at it)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(64)
        age = (time.time() if now is None else now) - os.stat(path).st_mtime
    except OSError:
        return None
    if not head.startswith(KEEP_MARK):
        return None  # a person's or git's: never avfs's to remove
    pid = head[len(KEEP_MARK) :].strip()
    if pid.isdigit() and not pid_alive(int(pid)):
        return f"a pack's keep of process {int(pid)}, which is gone (killed while it put the pack in place)"
    if age > STALE_TMP_S:
        return f"a pack's keep nobody is writing, made {int(age)} s ago"
    return None


def stale_reason(path: str, now: float | None = None) -> str | None:
    """Why ``path`` (a temporary pack file or a pack's ``.keep``) was left by a writer that is gone, or None."""
    return keep_stale(path, now=now) if path.endswith(".keep") else temp_file_stale(path, now=now)


def stale_temp_files(git_dir: str, *, now: float | None = None) -> list[tuple[str, int, str]]:
    """(path, size, reason) of each temporary pack file (``objects/pack/tmp_avfs_*``) a
    killed writer left behind (see :func:`temp_file_stale`), and each ``.keep`` it left
    (:func:`keep_stale`)."""
    pack_dir = os.path.join(git_dir, "objects", "pack")
    try:
        names = sorted(
            n
            for n in os.listdir(pack_dir)
            if n.startswith(TMP_PREFIX) or (n.startswith("pack-") and n.endswith(".keep"))
        )
    except FileNotFoundError:
        return []
    out = []
    for n in names:
        path = os.path.join(pack_dir, n)
        why = stale_reason(path, now)
        if why is not None:
            try:
                out.append((path, os.stat(path).st_size, why))
            except FileNotFoundError:
                continue
    return out


def remove_stale_temp_files(git_dir: str, *, now: float | None = None) -> list[tuple[str, int, str]]:
    """Remove what :func:`stale_temp_files` lists (each re-checked just before); returns
    what was removed."""
    gone = []
    for path, size, why in stale_temp_files(git_dir, now=now):
        if stale_reason(path, now) is None:
            continue
        try:
            os.unlink(path)
        except FileNotFoundError:
            continue
        gone.append((path, size, why))
    if gone:
        for hook in FINISH_HOOKS:
            hook(os.path.join(git_dir, "objects", "pack"))
    return gone


def pack_count(git_dir: str) -> int:
    try:
        return sum(1 for n in os.listdir(os.path.join(git_dir, "objects", "pack")) if n.endswith(".idx"))
    except FileNotFoundError:
        return 0


def maybe_consolidate(git_dir: str, limit: int | None = None, *, wait: bool = False) -> bool:
    """Merge small packs (``git repack --geometric=2``; :mod:`.packroll`'s own in a lazy
    vault, where git 2.39 refuses it) once more than ``limit`` pile up.

    Geometric repacking rewrites only the small packs, so its cost follows what the recent
    checkpoints wrote, not the vault's size; still, it runs in a detached process (unless
    ``wait``) so no checkpoint waits for it (it made 1 in 48 checkpoints take ~400 ms).
    One repack runs at a time per vault: the caller takes the vault's repack lock and
    hands it to the process it starts, so while one runs no checkpoint starts another
    (each used to start a Python process that found the lock taken and exited: 77 in one
    test of many merges). The process is started through a shell that exits at once
    (reaped here), so it is nobody's child to reap or warn about (a dropped ``Popen`` was a
    ``ResourceWarning`` and a zombie). Returns True when one was started (or ran).
    """
    if pack_count(git_dir) <= (PACK_LIMIT if limit is None else limit):
        return False
    import subprocess
    import sys

    # -P: the caller's working directory (a mount a confined command wrote) not first on
    # sys.path, where -m puts it: a package `avfs_git` there would be what runs. And the
    # roll's working directory is the vault's, never the caller's: a `checkpoint save` typed
    # in a mount left a detached python and its git there, which `avfs unmount` found busy.
    cmd = [sys.executable, "-P", "-m", "avfs_git.core.store.packroll", git_dir]
    if wait:
        subprocess.run([*cmd, "--wait"], check=False, capture_output=True, cwd=git_dir)
        return True
    lock = repack_lock(git_dir)
    if lock is None:
        return False  # one runs
    try:
        fd = lock.fileno()
        sh = ["/bin/sh", "-c", '"$@" &', "sh", *cmd, "--lock-fd", str(fd)]
        subprocess.run(sh, check=False, pass_fds=(fd,), start_new_session=True, cwd=git_dir,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    finally:
        lock.close()  # the repack's process holds it (the same open file) until it ends
    return True


def repack_lock(git_dir: str, *, wait: bool = False) -> IO[str] | None:
    """The vault's repack lock, taken (an flock on ``avfs/locks/.repack.lock``; no fork
    name starts with '.'), or None when a repack holds it (and not ``wait``)."""
    lock_dir = os.path.join(git_dir, "avfs", "locks")
    os.makedirs(lock_dir, exist_ok=True)
    lock = open(os.path.join(lock_dir, ".repack.lock"), "w")  # noqa: SIM115 - handed on, closed by the caller
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        lock.close()
        return None
    return lock
