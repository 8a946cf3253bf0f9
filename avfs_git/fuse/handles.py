"""Open files of a writable view: the handle table, a writable handle on the overlay file
(its shared ``flock`` tells a concurrent checkpoint to keep the entry), and the journaling
of what a handle wrote (see :mod:`.ops`, "File contents")."""

from __future__ import annotations

import errno
import fcntl
import os
from typing import TYPE_CHECKING

import mfusepy as fuse

from ..core.store.gitstore import file_blob_id
from ..core.workspace.workspace import Node
from .opsbase import Handle, OpsBase

if TYPE_CHECKING:
    from ..core.store.objects import BlobStream


class HandleTable(OpsBase):
    """The open handles of a view (a read-only view keeps none: see :meth:`.view.ViewOps.open`)."""

    def _new_handle(self, h: Handle) -> int:
        with self._lock:
            fh = next(self._ids)
            self._handles[fh] = h
        return fh

    def _handle(self, fh: int) -> Handle:
        h = self._handles.get(fh)
        if h is None:
            raise fuse.FuseOSError(errno.EBADF)
        return h

    def open_writers(self) -> list[str]:
        """The file ids of the overlay files this mount's write handles hold open (each
        with its shared ``flock``): what a merge asks of the mount in one request
        (mount/journalhook.py), where it probed every overlay file."""
        with self._lock:
            return [h.fileid for h in self._handles.values() if h.writable and h.fileid]

    def _open_rw(self, p: str, node: Node, flags: int) -> int:
        """A writable handle on ``p``'s overlay file (``node``: materialized; see
        :meth:`_held_file`)."""
        fd, fileid, st = self._held_file(p, node, flags & os.O_APPEND)
        h = Handle(p, fd, None, True)
        h.fileid = fileid
        h.limit = st.st_size + max(0, self.ws.quota_left())
        return self._new_handle(h)

    def _held_file(self, p: str, node: Node, flags: int = 0) -> tuple[int, str, os.stat_result]:
        """``p``'s overlay file open for writing (``flags`` added to ``O_RDWR``) and held
        ``flock``-shared: (descriptor, fileid, its stat). The shared flock says "in use"
        to a checkpoint, which then keeps the entry; one retiring the entry holds the file
        exclusively until it is gone (core/workspace/overlay.py, ``retire``), so a file
        found retired once the lock is ours is opened again from the new base: writes
        never go to a file the workspace no longer shows. A node that is not materialized
        (any more) is: a file ``create`` made, retired by a checkpoint in another process
        before it was opened here, is the new base's blob (twenty-sixth round,
        NAME=raced2: an assertion here was the ``EINVAL`` an editor's save got)."""
        for _ in range(8):
            fileid = node.entry.fileid if node.entry is not None else None
            real = self.ws.file_path(node) if fileid is not None else None
            if fileid is None or real is None:
                node = self._materialize_now(p)
                continue
            try:
                fd = os.open(real, os.O_RDWR | os.O_CLOEXEC | flags)
            except FileNotFoundError:
                node = self._materialize_now(p)  # retired meanwhile: the base's copy
                continue
            fcntl.flock(fd, fcntl.LOCK_SH)
            st = os.fstat(fd)
            # (the entry alone, not the node: no walk of the base tree for a file in use)
            now = self.ws.overlay.get(p) if st.st_nlink else None
            if now is None or now.fileid != fileid:
                os.close(fd)
                node = self._materialize_now(p)
                continue
            return fd, fileid, st
        raise fuse.FuseOSError(errno.EAGAIN)  # retired again and again: let the caller retry

    def _materialize_now(self, p: str) -> Node:
        """:meth:`_materialize` of what ``p`` is now (the entry a caller looked up was
        retired or replaced since): a retired file is the base's blob again, copied with
        its readers following, as for any first write."""
        node = self.ws.node(p)
        if node is None:
            raise fuse.FuseOSError(errno.ENOENT)
        return self._materialize(p, node)

    def _materialize(self, p: str, before: Node) -> Node:
        """``ws.materialize(p)`` (the overlay file, a copy of ``p``'s blob; ``before``: the
        node the caller looked up first), and the read handles still on that blob follow it
        there: on disk a descriptor opened before another one writes reads the same file,
        the new bytes. Left behind, such a reader read the old bytes, and its reads filled
        the kernel's page cache of the file with them, which every later open was served
        from (``kernel_cache``): a read-only SQLite connection opened first hid another
        process's inserts from every connection until the mount ended, and the next writer
        corrupted the database (docs/fuse.md, "read handles"). A reader is on the blob when
        it reads it from git (``oid``), or when it reads an overlay file a checkpoint has
        retired since (unlinked) and its bytes are that blob's; a file renamed over ``p``
        is another file, and its readers keep their bytes. The readers are listed once the
        copy is made, under the table's lock with ``_copies`` counted up: one whose handle
        is added after that sees the count moved since its lookup and follows the copy
        itself (:meth:`_new_reader`); listed before the copy, a reader opened meanwhile
        kept the old bytes, and so did every later open of the file (review2)."""
        node = self.ws.materialize(p, self._form)
        if before.oid is None or self.ws.file_path(before) is not None:
            return node  # nothing copied from a blob here
        with self._lock:
            self._copies += 1
            behind = [(fh, h) for fh, h in self._handles.items() if h.path == p and _behind(h)]
        real = self.ws.file_path(node)
        follow = [
            (fh, h)
            for fh, h in behind
            if h.oid == before.oid or (h.oid is None and h.fd is not None and _bytes_are(h.fd, before.oid))
        ]
        if real is None or not follow:
            return node
        with self._lock:  # release() pops a handle under this lock: none is closed meanwhile
            for fh, h in follow:
                if self._handles.get(fh) is not h:
                    continue
                try:
                    fd = os.open(real, os.O_RDONLY | os.O_CLOEXEC)
                except FileNotFoundError:  # retired at once by a checkpoint: the blob is right
                    break
                if h.fd is None:
                    h.fd = fd
                else:  # in place: a read running in another thread uses one file or the other
                    os.dup2(fd, h.fd)
                    os.close(fd)
                h.oid = None
        return node

    def _new_reader(self, h: Handle, copies: int) -> int:
        """:meth:`_new_handle` of a read handle on a blob (``h.oid``), whose node was looked
        up when the table's ``_copies`` was ``copies``: when a write copied a blob since, its
        list of readers to move may have missed this one, which then follows the copy of its
        path itself, if there is one now."""
        with self._lock:
            fh = next(self._ids)
            self._handles[fh] = h
            moved = self._copies != copies
        if not moved:
            return fh
        now = self.ws.node(h.path)
        real = self.ws.file_path(now) if now is not None else None
        if real is None:
            return fh
        try:
            fd = os.open(real, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:  # retired by a checkpoint: its bytes are the base's blob
            return fh
        with self._lock:
            if self._handles.get(fh) is h and h.fd is None and h.oid is not None:
                h.fd, h.oid, fd = fd, None, -1
        if fd >= 0:
            os.close(fd)
        return fh

    def _readers_follow(self, paths: set[str] | None) -> None:
        """Point the read handles on ``paths`` (None: all of them) at what their path holds
        now: called by the watcher when another process changed the workspace (a restore,
        an undo, a merge into the fork, ``avfs write``), before the kernel is told to
        forget those paths. On disk ``git reset --hard`` writes a new file, and a reader
        keeps the old one; here the path keeps its inode, so a reader left on the old
        bytes filled the page cache of the file with them once the kernel had forgotten
        it, and every later open and process was served the bytes from before the restore
        (``kernel_cache``), until the mount ended or a write made the daemon drop them
        (realproj4). The reader reads the new bytes from then on, as a descriptor does on
        disk after a rewrite in place; what it read before is closed at its release
        (``spent``: a read still running there finishes). A reader whose path is gone
        keeps its bytes."""
        with self._lock:
            readers = [
                (fh, h)
                for fh, h in self._handles.items()
                if not h.writable
                and not h.nested
                and (h.fd is not None or h.oid is not None)
                and (paths is None or h.path in paths)
            ]
        for fh, h in readers:
            try:
                node = self.ws.node(h.path)
            except Exception:  # (a path that is no file now: nothing to follow)
                continue
            if node is None or node.is_dir:
                continue
            real = self.ws.file_path(node)
            if real is not None:
                self._reader_to_file(fh, h, real)
            elif node.oid is not None and node.oid != h.oid and not self._holds(h, node.oid):
                self._reader_to_blob(fh, h, node.oid)

    def _holds(self, h: Handle, oid: str) -> bool:
        """Whether reader ``h`` reads blob ``oid``'s bytes already: from git, or a file of
        those bytes (a checkpoint's retired copy: hashed once per blob)."""
        fd = h.fd
        if fd is None:
            return h.oid == oid
        if h.verified != oid:
            if not _bytes_are(fd, oid):
                return False
            h.verified = oid
        return True

    def _reader_to_file(self, fh: int, h: Handle, real: str) -> None:
        try:
            fd = os.open(real, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:  # retired meanwhile: the next move of the view follows it
            return
        with self._lock:
            cur = h.fd
            if self._handles.get(fh) is not h or (cur is not None and _same_file(cur, fd)):
                os.close(fd)
                return
            if cur is None:
                h.fd = fd  # (read uses the descriptor first)
                if h.stream is not None:
                    h.spent.append(h.stream)
                    h.stream = None
            else:  # in place: a read running in another thread uses one file or the other
                os.dup2(fd, cur)
                os.close(fd)
            h.oid = h.verified = None

    def _reader_to_blob(self, fh: int, h: Handle, oid: str) -> None:
        """Reader ``h`` reads blob ``oid`` from its next read on (:meth:`_blob_source`
        loads it then: a lazy vault's fetch is not made in the watcher's thread)."""
        with self._lock:
            if self._handles.get(fh) is not h:
                return
            # oid first, then the old sources cleared (read takes the descriptor, stream
            # and data once each): a read meanwhile reads the old bytes or the new
            h.oid, h.verified = oid, None
            if h.stream is not None:
                h.spent.append(h.stream)
            h.stream, h.data = None, None
            if h.fd is not None:
                h.spent.append(h.fd)
                h.fd = None

    def _blob_source(self, h: Handle) -> tuple[BlobStream | None, bytes | None]:
        """The stream or the bytes of the blob reader ``h`` reads (``h.oid``), loaded when a
        view move pointed it there (:meth:`_reader_to_blob`)."""
        oid = h.oid
        assert oid is not None
        node = self.ws.node(h.path)
        data = self._form(node) if node is not None and node.oid == oid else None
        stream = self.ws.blob_stream(oid) if data is None else None
        if data is None and stream is None:
            data = self.ws.blob_data(oid, h.path)
        with self._lock:
            if h.oid != oid or h.stream is not None or h.data is not None:
                if stream is not None:  # moved again, or loaded by another read meanwhile
                    stream.close()
                return h.stream, h.data
            h.stream, h.data = stream, data
        return stream, data

    def _handles_moved(self, old: str, new: str) -> None:
        """The handles open at or below ``old`` are at ``new`` after a rename: a write
        there then reaches its readers as it reaches a descriptor on disk
        (:meth:`_materialize` finds readers by path), and what a writable one writes is
        journaled and sized at the path it landed in. Writable handles stayed behind
        (twenty-sixth round, NAME=raced2): their writes were recorded at ``old``, where no
        entry is, so nothing said ``new`` had changed (`git status` through the fsmonitor
        hook, `avfs watch`) and its size stayed the one from before (the quota's). A size
        left to record at ``old`` (a handle closed before the rename) moves too."""
        below = old + "/"

        def moved(path: str) -> str | None:
            if path == old:
                return new
            return new + path[len(old) :] if path.startswith(below) else None

        with self._lock:
            for h in self._handles.values():
                if not h.nested and (to := moved(h.path)) is not None:
                    h.path = to
            unsized = [(p, to) for p in self._unsized if (to := moved(p)) is not None]
            for p, to in unsized:
                self._unsized.discard(p)
                self._unsized.add(to)

    def _note(self, h: Handle, *, defer: bool = False) -> None:
        """Record what a handle wrote. ``defer``: at flush and release, the path is already
        in the journal (its first write or its creation put it there); only its size is
        left to record, so those are batched into one transaction by the watcher thread
        (within ``poll_s``) instead of one per close(), and recorded in place (no new
        journal entry or ``seq``: a checkpoint that captured the entry meanwhile still
        retires it)."""
        if not h.dirty:
            return
        h.dirty = False
        if defer and self._inval is not None:
            with self._lock:
                self._unsized.add(h.path)
                kick = self._kick_fd
                if kick is not None:
                    os.eventfd_write(kick, 1)  # the watcher records it (within poll_s)
            return
        try:
            self.ws.note_written(h.path)
        except BaseException:
            h.dirty = True  # (not recorded: the handle's next flush or its release tries again)
            raise

    def _kick_watcher(self) -> None:
        """Wake the watcher (fuse/invalidate.py) out of its wait, where it waits on one."""
        with self._lock:
            if self._kick_fd is not None:
                os.eventfd_write(self._kick_fd, 1)

    def _record_sizes(self) -> None:
        """Record the sizes :meth:`_note` left to record (the watcher's poll, an fsync, the
        unmount). Paths whose record fails (the home's disk full: "database or disk is
        full") stay to be recorded at the next call: they were dropped, and a file written
        into a full mount counted the size it had before (0 for a new one) for the quota
        until its next write or a checkpoint, past the unmount (nospace1 saw it, gitgc4)."""
        with self._lock:
            paths, self._unsized = self._unsized, set()
        if not paths:
            return
        try:
            self.ws.record_sizes(sorted(paths))
        except BaseException:
            with self._lock:
                self._unsized |= paths
            raise


def _behind(h: Handle) -> bool:
    """A read handle that may be on a blob a write is about to copy: reading it from git, or
    an overlay file no longer in the overlay (a checkpoint retired it)."""
    if h.writable or h.nested:
        return False
    if h.fd is None:
        return h.oid is not None
    try:
        return os.fstat(h.fd).st_nlink == 0
    except OSError:
        return False


def _same_file(a: int, b: int) -> bool:
    sa, sb = os.fstat(a), os.fstat(b)
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def _bytes_are(fd: int, oid: str) -> bool:
    """Whether the file open at ``fd`` holds exactly blob ``oid``'s bytes."""
    try:
        return file_blob_id(f"/proc/self/fd/{fd}", follow=True) == oid
    except (OSError, ValueError):
        return False
