"""Each new file of a record read once: the blobs a status hashes written, as it hashes
them, into the pack the commit that follows it finishes, and taken from there by that
commit's capture instead of reading the files again (record3, the thirty-sixth round).

A ``proxy exec`` that added thousands of files read each of them twice: its status hashed
it (for the envelope's changes and their renames), then the checkpoint's capture read it
again to deflate it into its pack; git's ``add -A`` reads each once. Inside
:func:`one_read`, a status of the overlay in this thread hands each file it hashes to a
:class:`BlobSink`, which hashes and deflates the same bytes into a pack not yet in place;
the commit takes that pack as its own (:meth:`BlobSink.take_pack`), and its capture takes a
file's blob id from the sink (:meth:`BlobSink.taken`) only when the file's ``stat`` before the
capture's read (size, times, inode: :meth:`.overlaydb.OverlayDB.note_read`) is the one
taken before the status read it. Any write since changes its ctime or its size (the
reasoning the capture's retire already rests on), so such a file is read again, as before.
A pack the block ends with unfinished (no commit, a failure) is removed: nothing of it is
ever in the vault.

The files are opened as the status opened them (:func:`.safeopen.open_regular` from the
layer's root, no link followed, no FIFO waited on; a file of several names hashed once).
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from ..store.packwriter import OBJ_BLOB, PackWriter
from ..store.safeopen import HeldDirs

if TYPE_CHECKING:
    from ..store.gitstore import GitStore
    from .overlaydb import OverlayDB

# read whole, hashed, and deflated only if the pack lacks it (one read; a larger file is
# hashed first, then streamed: a copy the pack holds is never written again, attack25's
# names of one file written back as copies included; test_adv_links)
WHOLE = 64 << 20
SMALL = 1 << 20  # (the read of a file grown since: in steps of this)

Noted = tuple[int, int, int, int]  # (size, mtime_ns, ctime_ns, inode): a stat before a read


class BlobSink:
    """The blobs one record's status hashed, in the pack its commit takes, by file id."""

    def __init__(self, store: GitStore) -> None:
        self._store = store
        self._pack: PackWriter | None = None  # (made at the first blob: a record of nothing makes none)
        self.taken_by_commit = False
        # file id -> (its stat before the read, the blob id, whether the blob is its bytes as
        # they are, whether those hold no CR and no "$Id": what git's clean conversions leave
        # as they are; None: not looked at)
        self._kept: dict[str, tuple[Noted, str, bool, bool | None]] = {}
        self._linked: dict[tuple[int, ...], tuple[str, bool | None]] = {}  # hard links: read once
        # blobs the base holds at the paths the status compares (:meth:`know`): one of a file
        # rewritten with the same bytes (a build's output made again) is hashed, not deflated
        # into the pack again (record5)
        self._known: set[str] = set()
        # the trees the record's capture wrote, parsed: the store's cache once the pack is in
        # the vault (GitStore.know_trees), not read back by the retire and the index (record6)
        self.trees: dict[str, dict[str, tuple[str, int]]] = {}
        # the size of each blob written from bytes read whole: the index written ahead of the
        # record's move asks each recorded file's blob size (mount/index.py), not the pack
        self.sizes: dict[str, int] = {}

    @property
    def pack(self) -> PackWriter:
        if self._pack is None:
            self._pack = self._store.pack_writer(self._known.__contains__)
        return self._pack

    def know(self, oids: Iterable[str]) -> None:
        """Blobs the vault holds (the base's, at the paths a status compares): not written."""
        self._known.update(oids)

    def take_pack(self) -> PackWriter | None:
        """The pack, for the record's commit to finish (once); None when there is none (no
        blob written: the commit makes its own) or it was taken."""
        if self.taken_by_commit or self._pack is None or self._pack.done:
            return None
        self.taken_by_commit = True
        return self._pack

    def owns(self, pack: PackWriter) -> bool:
        """Whether ``pack`` is this sink's (a capture into another pack takes nothing)."""
        return self._pack is pack

    @property
    def writable(self) -> bool:
        return self._pack is None or not self._pack.done

    def hash_fd(self, fileid: str, fd: int, as_is: Callable[[bytes], bool]) -> str:
        """The blob id of the regular file open as ``fd``, its bytes deflated into the pack
        as they are hashed; kept for the capture by ``fileid`` with the ``stat`` taken
        before the read. ``as_is``: whether git's clean conversions leave bytes as they are."""
        st = os.fstat(fd)
        noted = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
        link = (st.st_dev, *noted) if st.st_nlink > 1 else None
        if link is not None and link in self._linked:
            oid, plain = self._linked[link]
        elif st.st_size > WHOLE:  # (hashed, then stored if new: add_file's two reads, no copy written twice)
            with os.fdopen(os.dup(fd), "rb") as fh:
                oid, plain = self.pack.add_open(fh, st.st_size, f"/proc/self/fd/{fd}"), None
        else:
            data = read_all(fd, st.st_size)
            oid, plain = self.pack.add(OBJ_BLOB, data), as_is(data)
            self.sizes[oid] = len(data)
        if link is not None:
            self._linked[link] = (oid, plain)
        self._kept[fileid] = (noted, oid, True, plain)
        return oid

    def hash_path(self, fileid: str, path: str, as_is: Callable[[bytes], bool]) -> str:
        """:meth:`hash_fd` of a ``/proc/PID/fd/N`` path (an open descriptor's own file): one of
        this process's, just opened and not read (``upper_oid``'s), read as it is, not opened
        again through ``/proc`` (record4)."""
        own = f"/proc/{os.getpid()}/fd/"
        if path.startswith(own) and path[len(own) :].isdigit():
            return self.hash_fd(fileid, int(path[len(own) :]), as_is)
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            return self.hash_fd(fileid, fd, as_is)
        finally:
            os.close(fd)

    def add_read(
        self, fileid: str, st: os.stat_result, data: bytes, stored: bytes | None, plain: bool
    ) -> str:
        """The blob git stores for a file the status read whole (``data``; ``st`` its
        descriptor's stat before the read): ``stored``, what its clean conversion made,
        or ``data`` itself (None); ``plain``: ``data`` holds no CR and no ``$Id``. Deflated
        into the pack, kept for the capture as :meth:`hash_fd`."""
        oid = self.pack.add(OBJ_BLOB, data if stored is None else stored)
        self.sizes[oid] = len(data if stored is None else stored)
        noted = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
        self._kept[fileid] = (noted, oid, stored is None or stored == data, plain)
        return oid

    def taken(self, fileid: str, noted: Noted | None, *, converts: bool = False) -> str | None:
        """The blob id of the file ``fileid``'s bytes as they are when the status wrote it
        into this pack and ``noted`` (the capture's stat before its read) is the stat taken
        before the status's; ``converts``: the capture converts it (only bytes no clean
        conversion changes are taken: the caller checked the conversions keep those)."""
        got = self._kept.get(fileid)
        pack = self._pack
        if (
            got is None
            or noted is None
            or got[0] != noted
            or pack is None
            or pack.done
            or not (pack.holds(got[1]) or got[1] in self._known)
        ):
            return None
        if not got[2] or (converts and got[3] is not True):
            return None
        return got[1]


def read_all(fd: int, size: int) -> bytes:
    """The bytes of the regular file ``fd`` (``size`` as its stat said; read on to its end)."""
    chunks = [os.read(fd, size + 1)]
    while chunks[-1]:
        chunks.append(os.read(fd, SMALL))
    return b"".join(chunks)


@contextmanager
def one_read(overlay: OverlayDB, store: GitStore, on: bool = True) -> Iterator[BlobSink | None]:
    """Within the block, in this thread: a status of ``overlay`` writes the blobs it
    hashes into a pack (:class:`BlobSink`, kept in ``overlay.recording``: the thread's)
    that a commit of it takes (:meth:`BlobSink.take_pack`), and its files are reached through
    directories held open (:class:`.safeopen.HeldDirs`). ``on`` false: nothing (a record
    that commits nothing). The pack is removed at the end unless a commit finished it.

    Python's cyclic collector waits until the block ends (record6): a record of thousands
    of new files makes as many short-lived entries, changes and index rows, and each
    collection of the oldest generation walked the daemon's whole heap (its tree caches,
    the journal): ~5 % of the record's CPU in a daemon of 5,000 new files."""
    if not on or getattr(overlay.recording, "sink", None) is not None:
        yield None
        return
    sink = overlay.recording.sink = BlobSink(store)
    held = overlay.recording.dirs = HeldDirs()  # (each directory reached from the root once)
    paused = gc.isenabled()
    gc.disable()
    try:
        yield sink
    finally:
        if paused:
            gc.enable()
        overlay.recording.sink = overlay.recording.dirs = overlay.recording.read = None
        held.close()
        if not sink.taken_by_commit and sink._pack is not None:
            sink._pack.abort()


def sink_of(overlay: object) -> BlobSink | None:
    """The sink of this thread's record of ``overlay`` while its pack takes blobs (a
    snapshot's view or another source has none). Its callers (a status, a capture, a
    commit) ask ``overlay.recording`` themselves: this module loads with the record stage
    only, on no cold command's path."""
    sink: BlobSink | None = getattr(getattr(overlay, "recording", None), "sink", None)
    return sink if sink is not None and sink.writable else None
