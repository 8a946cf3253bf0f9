"""Keeping the kernel's caches true: a writable view lets the kernel cache attributes and
entries for a long time (:func:`.ops.fuse_options`); when another process (the CLI, a
checkpoint, a restore) changes the workspace, a watcher thread reads the journal and tells
the kernel to forget those paths (libfuse 3's ``fuse_invalidate_path``), and tells whoever
moved the base that the mount shows it now. A read-only view never changes.
"""

from __future__ import annotations

import ctypes
import logging
import os
import select
import threading
import time
from typing import Any

import mfusepy as fuse

from ..core.store import names
from ..core.workspace.wssmudge import attribute_dirs
from .handles import HandleTable

log = logging.getLogger("avfs.fuse")


class Invalidation(HandleTable):
    """The watcher thread of a writable view, started at FUSE's ``init``."""

    # the least time between two looks at the journal for changes made by other processes (a
    # busy mount's writes wake the watcher at each commit: it looks at most this often)
    poll_s = 0.02
    # where the state directory is watched (inotify: a commit to the overlay database by any
    # process is a write of its WAL there, a close a kick of :meth:`_kick_watcher`), a look
    # at least this often anyway; an idle mount polled 50 times a second, ~7 ms of CPU a
    # second (docs/benchmarks.md, h-mountcost2's section)
    idle_poll_s = 30.0
    # after a wake-up by a write of the state directory, looks again after poll_s, then
    # twice as long each time while nothing new shows, up to this: SQLite writes a commit's
    # WAL frames (the inotify event) before it publishes the commit in the ``-shm`` by mmap
    # (no event), so the look the write woke may come too early (review42 F2: a writer
    # paused between the two left the mount stale for idle_poll_s). A pause of t shows
    # within ~2t; an idle mount has no events, so no looks
    recheck_most_s = 5.0

    def _setup_invalidation(self) -> None:
        """The kernel caches attributes and entries for a long time (the daemon sets 60 s);
        when another process (the CLI, a checkpoint, a restore) changes the workspace, a
        watcher thread reads the journal and tells the kernel to forget those paths
        (libfuse 3's ``fuse_invalidate_path``). A read-only revision never changes."""
        try:
            lib = fuse._libfuse
            self._fuse_ptr = ctypes.c_void_p(lib.fuse_get_context().contents.fuse)
            inval = lib.fuse_invalidate_path
            inval.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
            inval.restype = ctypes.c_int
            self._inval = inval
        except (AttributeError, ValueError):
            # the watcher still runs: sizes, the git index, and the movers' acknowledgement
            if not self.read_only:
                log.warning("fuse_invalidate_path is unavailable: changes made outside the mount show late")
        if self.read_only:
            return  # (no watcher; a file whose read failed is forgotten: forget_unread)
        self._start_watcher()

    def forget_unread(self, path: str, oid: object, *, now: bool, said: bool = False) -> None:
        """A file served from git whose blob could not be read (``EIO``): the size this
        daemon and the kernel keep of it may be another object's (an `.idx` giving the blob
        another's offset: its header was read there), and the kernel keeps a read-only
        view's attributes for good. Both forget it, so that once the vault is put right
        the running mount reads the whole file, not up to that size. ``now`` at ``OPEN``;
        from a ``READ`` another thread does it (the kernel holds the page being read
        locked until this request is answered, and the invalidation waits for it). ``said``:
        the size was a lazy vault's server's, not the blob's: its reads are EIO until the
        kernel has forgotten it (an unreadable object's are EIO anyway, and each failed read
        asks the kernel to forget again: a lookup between may have cached the size anew)."""
        if isinstance(oid, str):
            with self._lock:
                self._sizes.pop(oid, None)
                self._sizes_new = True  # (kept without it)
        p = path.lstrip("/")
        if not p or self._inval is None:
            return
        if now:
            self.invalidate(p)
        elif said and isinstance(oid, str):
            # until the kernel has forgotten the size, a read of the blob would be cut to it
            # (a size a lazy vault's server said wrong: promisor.check_size): EIO meanwhile
            self.unsettled.add(oid)
            threading.Thread(target=self._forget, args=(p, oid), name="avfs-forget", daemon=True).start()
        else:
            threading.Thread(target=self.invalidate, args=(p,), name="avfs-forget", daemon=True).start()

    def _forget(self, path: str, oid: str) -> None:
        try:
            self.invalidate(path)
        finally:
            self.unsettled.discard(oid)

    def _start_watcher(self) -> None:
        """Start the watcher from what the workspace is now: read here, in FUSE's init,
        before any request is served, not by the thread when it first runs (under load,
        after getattrs had read an older view: a restore or a write between the two became
        the watcher's start, and it never made the kernel or this daemon forget them)."""
        self._watch_from = self._look()
        self._notify = _watch_state(os.path.dirname(self.ws.overlay.db_path))
        if self._notify is not None:
            with self._lock:
                self._kick_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._watcher = threading.Thread(target=self._watch, name="avfs-invalidate", daemon=True)
        self._watcher.start()

    def _look(self) -> tuple[int, dict[str, str]]:
        """The journal's end, then the view's meta (a change between the two is read again)."""
        ov = self.ws.overlay
        return ov.last_seq(), ov.get_metas("base", "view_time", "view_moves", "kept_times")

    def _kept_changed(self, view_time: str | None, seen: str | None) -> set[str]:
        """The paths whose kept times for ``view_time`` a checkpoint wrote since count
        ``seen`` (the watcher's last look) or since this view first asked for them, if
        earlier; what this view answered is forgotten (it asks again)."""
        since = [int(t) for t in (seen, self._kept_token if self._kept is not None else None) if t]
        self._kept = None
        self._kept_read = None
        self._kept_token = None
        return set(self.ws.overlay.kept_since(min(since, default=0), view_time))

    def _moved_paths(self, old: str | None, new: str | None) -> set[str] | None:
        """The paths the kernel may hold something of (:attr:`_known`) where the trees of
        base commits ``old`` and ``new`` differ, with the directories above them (their
        listings): what a base move under one view time changed in the mount. O(that
        diff, and the files below a ``.gitattributes`` it changed), where every known path
        was the session's every file at each checkpoint.
        None when it cannot tell (a commit not there): then every known path."""
        if old is None or new is None:
            return None
        moved = self.ws.changes.base_diff(old, new)
        if moved is None:
            return None
        known = self._known
        got: set[str] = set()
        for top in attribute_dirs(moved):
            # a file below a changed .gitattributes has a new checkout form (and size)
            # with its blob the same (core/workspace/wssmudge.py)
            got.update(k for k in known if not top or k.startswith(top + "/"))
        for p in moved:
            while p and p not in got:
                if p in known:
                    got.add(p)
                p = names.parent_of(p)
        return got

    def invalidate(self, path: str, *, name: bool = False) -> None:
        """The kernel forgets what it cached of ``path`` (attributes, pages, a listing);
        ``name``: and looks the name up again before it next uses it, so that a path whose
        kind changed (a file made a link or a directory) gets a new inode, not ``EIO``."""
        with self._inval_lock:
            if self._inval is not None:
                if name and self.expire_entry is not None:
                    self.expire_entry(path)
                self._inval(self._fuse_ptr, ("/" + path).encode("utf-8", "surrogateescape"))

    def stop_invalidating(self, timeout: float) -> bool:
        """Stop the watcher for good; called when FUSE's request loop has ended, before
        libfuse frees the ``struct fuse`` that ``fuse_invalidate_path`` reads (see
        :class:`.libfuse.FastFUSE`). Returns once no call is inside libfuse and none can start; False
        when a call is still in there after ``timeout`` (then the ``struct fuse`` must be
        left alone). The watcher thread itself is joined, bounded: once it can no longer
        reach libfuse, a slow journal read there is harmless."""
        self._stop.set()
        self._kick_watcher()  # (out of its wait: up to idle_poll_s)
        if not self._inval_lock.acquire(timeout=timeout):
            return False
        try:
            self._inval = None
        finally:
            self._inval_lock.release()
        if self._watcher is not None and self._watcher is not threading.current_thread():
            self._watcher.join(timeout)
        return True

    def _sleep(self, recheck: float | None = None) -> tuple[bool, bool]:
        """Wait for something to look at: a write in the state directory (the overlay
        database's commits, any process's), a close whose size is left to record
        (:meth:`_kick_watcher`), a process that moved the base (``wake_fd``: at once), or
        ``recheck`` (else :attr:`idle_poll_s`); where nothing is watched, one poll
        interval. A wake that is not a mover's comes at most every :attr:`poll_s` after
        the last look. (Whether the mount is stopping, whether something woke it.)"""
        notify = self._notify
        fds = [fd for fd in (self.wake_fd, self._kick_fd, notify and notify.fileno()) if fd is not None]
        if not fds:
            return self._stop.wait(self.poll_s), False
        timeout = self.poll_s if notify is None else self.idle_poll_s if recheck is None else recheck
        ready, _, _ = select.select(fds, [], [], timeout)
        for fd in ready:
            try:
                os.read(fd, 4096)  # (inotify's events, the eventfd's count, the fifo's bytes)
            except (BlockingIOError, OSError):
                pass
        if ready and self.wake_fd not in ready:
            rest = self._looked_at + self.poll_s - time.monotonic()
            if rest > 0:
                self._stop.wait(rest)
        self._looked_at = time.monotonic()
        return self._stop.is_set(), bool(ready)

    def _watch(self) -> None:
        try:
            self._watch_journal()
        finally:
            with self._lock:
                kick, self._kick_fd = self._kick_fd, None
            for closing in (kick, self._notify):
                if closing is not None:
                    try:
                        os.close(closing) if isinstance(closing, int) else closing.close()
                    except OSError:
                        pass
            self._notify = None

    def _watch_journal(self) -> None:
        ov = self.ws.overlay
        seq, meta = self._watch_from if self._watch_from is not None else self._look()
        view = (meta.get("base"), meta.get("view_time"))
        moves = meta.get("view_moves")
        kept = meta.get("kept_times")
        if self.on_view is not None:
            self.on_view(view, False, seq)
        looked: tuple[object, int] | None = None  # (this thread's connection, its data_version)
        unrecorded = False  # (the last poll's record of sizes failed: logged once a streak)
        recheck: float | None = None  # (the next look without an event: recheck_most_s)
        while True:
            stopping, woke = self._sleep(recheck)
            if stopping:
                break
            recheck = self.poll_s if woke else recheck
            try:
                self._record_sizes()
                unrecorded = False
            except Exception:
                # kept for the next poll (the home's disk full); the poll goes on: the
                # invalidations below were skipped with it
                if not unrecorded:
                    log.exception("recording the sizes of files closed (kept for the next poll)")
                unrecorded = True
            try:
                # nothing another connection committed since the last look (SQLite's
                # ``data_version`` is the same on the same connection: the journal and the
                # meta read below are as they were) and no kept times read meanwhile that
                # are not the last seen: nothing to do. Each poll ran the two queries below
                # otherwise, ~13 ms of CPU a second of an idle mount (docs/benchmarks.md,
                # "The suite's CPU: the costs every test pays")
                conn = ov.db
                version = int(conn.execute("PRAGMA data_version").fetchone()[0])
                if looked == (conn, version) and not (self._kept is not None and self._kept_token != kept):
                    if not woke and recheck is not None:  # (a look again: still nothing new)
                        recheck = recheck * 2 if recheck * 2 <= self.recheck_most_s else None
                    continue
                looked = (conn, version)
                recheck = None if recheck is None else self.poll_s  # (one may follow it)
                before = seq
                seq, paths = ov.changes_by_others(seq)
                meta = ov.get_metas("base", "view_time", "view_moves", "kept_times")
                now = (meta.get("base"), meta.get("view_time"))
                moved = now != view
                token = meta.get("kept_times")
                loaded = self._kept is not None and token != self._kept_token
                if (token != kept or loaded) and not moved:
                    # a checkpoint that moved no view (one that committed nothing: files
                    # edited back to the base's bytes) kept its files' times: read them
                    # now, not at the next move (they showed the view time meanwhile,
                    # once the kernel's attributes lapsed), and the kernel forgets those.
                    # ``loaded``: a getattr read them before this watcher's first look
                    # (its thread started late) and they changed since
                    paths = [*paths, *self._kept_changed(now[1], kept)]
                kept = token
                # a path another process changed may have changed kind: its name is looked
                # up again (``name``), and every name after a move that changed the view
                # (not a checkpoint's, which keeps every kind: a getattr does there)
                name = True
                if moved or "" in paths:
                    # the base moved (checkpoint, restore, undo, a push), or the root's entry
                    # changed (a restore and its undo within one second onto one base: the
                    # view time, in whole seconds, cannot tell them apart): anything may differ
                    name = "" in paths or meta.get("view_moves") != moves or now[1] != view[1]
                    # ...but a base that moved under the same view (a checkpoint, a push, a
                    # merge) changed what the mount shows only where the two trees differ
                    narrow = None if name else self._moved_paths(view[0], now[0])
                    moves = meta.get("view_moves")
                    if moved:
                        view = now
                        self._view_time_ns = None
                        self._kept = None
                        self._kept_read = None
                        self._kept_token = None
                    paths = sorted(self._known) if narrow is None else sorted({*paths, *narrow})
                if moved or paths:  # readers first: one reading after the kernel forgot would refill it
                    self._readers_follow(None if moved or "" in paths else set(paths))
                for p in paths:
                    if self._stop.is_set():
                        break  # unmounting: thousands of paths may be left, none matter now
                    self.invalidate(p, name=name)
                    if p:
                        self.invalidate(names.parent_of(p))
                if (moved or seq != before) and self.on_view is not None and not self._stop.is_set():
                    # the kernel forgot the old view's caches, and those of these paths
                    self.on_view(view, moved, seq)
            except Exception:
                log.exception("invalidation watcher")


def _watch_state(state_dir: str) -> Any:
    """An inotify watch of ``state_dir`` (the overlay database, its WAL: a commit writes
    it, whichever process makes it; a database put in place by a rename), None where it
    cannot be made (the watcher polls then)."""
    try:
        from inotify_simple import INotify, flags

        ino = INotify()
    except Exception:  # (no inotify_simple, no inotify: the limit of instances)
        return None
    try:
        ino.add_watch(state_dir, flags.MODIFY | flags.CREATE | flags.MOVED_TO | flags.DELETE)
    except OSError:
        ino.close()
        return None
    return ino
