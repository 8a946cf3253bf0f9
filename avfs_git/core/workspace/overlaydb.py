"""The storage of a workspace's overlay: its SQLite database (the schema and its
migrations, :mod:`.overlayschema`; one connection per thread, write transactions, meta
records, the totals the quota reads) and its ``files/`` directory (file ids, files unlinked
once the removal of their entries committed, claims against a mount's writers).
:class:`OverlayDB` is the base of :class:`.overlay.Overlay`.

Durability: SQLite in WAL mode with ``synchronous=NORMAL`` survives the death of any process
(``kill -9``) with nothing lost; a power cut may lose the last transactions. File contents
are written before their entry is committed, so an entry never names a missing file unless
the disk lost it (then reads fail with ``corrupt_state``).
"""

from __future__ import annotations

import errno
import os
import sqlite3
import stat
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

from ..errors import AvfsError, BusyError, CorruptStateError, from_oserror
from ..store.safeopen import NotRegular, lstat_beneath, open_regular
from ..store.threads import ThreadSlots
from . import execspans
from .overlayentry import LINK_FILE, UPPER_FILE, Entry
from .overlayschema import MIGRATIONS, SCHEMA, VERSION, template_path
from .sqlite import DEFAULT_WAIT_S, busy_error, close_conn, is_busy, open_db, set_wait

_TOTALS_Q = "SELECT file_bytes, files FROM totals WHERE id = 1"


def file_id(path: str) -> tuple[int, int] | None:
    """(device, inode) of the file at ``path`` (links followed); None when there is none."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def entry_of_row(r: tuple[object, ...]) -> Entry:
    # the columns are ENTRY_COLS in Entry's order, typed by the schema (TEXT, INTEGER)
    return Entry(*r)  # type: ignore[arg-type]


ENTRY_COLS = "path, kind, mode, oid, fileid, origin, size, seq"


class OverlayDB:
    """The overlay's database and files directory; one connection per thread."""

    def __init__(self, state_dir: str) -> None:
        self.dir = state_dir
        self.files_dir = os.path.join(state_dir, "files")
        # the upper layer of an overlay mount (core/workspace/upper.py): its paths are entries too,
        # over the database's, unless with_upper is off (the mount's lower view itself)
        self.upper_dir = os.path.join(state_dir, "upper")
        # where its mount's daemon mounts the lower view (fuse/daemon.py: lower, upper, work)
        self.lower_dir = os.path.join(state_dir, "lower")
        self.links_dir = os.path.join(state_dir, "links")
        self.with_upper = True
        # the git mode of what the view without the upper layer has at a path, None for nothing (set by
        # the workspace: an upper directory is new or merges, by what is below; at a submodule, the gitlink)
        self.lower_mode: Callable[[str], int | None] | None = None
        self.lower_tree: Callable[[str], str | None] | None = None
        self._no_upper = threading.local()
        self.recording = threading.local()  # .sink, .dirs: a record's in this thread (recordblobs)
        # upper_oids' rows this process has read or written, by path: (sig, oid). A status in a mount's
        # daemon (proxy exec's, before every command) asks for every upper file; a dict answers in 1 us
        self._oid_memo: dict[str, tuple[str, str]] = {}
        # each overlay file's (size, mtime, ctime, inode) as a capture found it before reading it (note_read)
        self._read_stats: dict[str, tuple[int, int, int, int]] = {}
        self.db_path = os.path.join(state_dir, "overlay.db")
        # who writes through this handle, kept with each journal row when not the API itself (mcp)
        self.writer: str | None = None
        self._local = ThreadSlots(on_drop=close_conn)
        self._write_lock = threading.Lock()
        # (device, inode) of the database file as a connection was last opened on it: a
        # handle kept from call to call asks whether it is still the file there (:meth:`opened_on`)
        self._file: tuple[int, int] | None = None
        # called with the overlay's (bytes, files) after each committed transaction (the
        # workspace publishes its totals for the vault's quota, see Vault.quota_usage)
        self.after_commit: Callable[[int, int], None] | None = None
        # called with the newest journal position after a transaction that journaled
        # changes committed (the workspace then lets a live pure-FUSE mount show them)
        self.after_change: Callable[[int], None] | None = None
        # called after a committed transaction that put entries naming git objects (blobs,
        # trees) by id, or moved the base: with those entries and (the base before it, the
        # base after it) or None; the workspace keeps them reachable for git's gc
        # (core/workspace/wsheld.py); None: not asked (a read-only view)
        self.after_held: Callable[[list[Entry], tuple[str | None, str] | None], None] | None = None
        # room for a write transaction while the kernel's quota of the state dir is full
        # (Vault.own_room), and the error a write that still found it full is (the quota's)
        self.room: Callable[[], AbstractContextManager[None]] | None = None
        self.full_error: Callable[[BaseException], AvfsError | None] | None = None
        # how long a write waits for the database's lock another process holds (the
        # vault's ``AVFS_LOCK_WAIT``, the calling process's: the workspace sets it), read at
        # each write transaction; unset, SQLite's 30 s
        self.lock_wait: Callable[[], float] | None = None
        try:
            os.makedirs(self.files_dir, exist_ok=True)
        except OSError as exc:
            raise from_oserror(exc, self.files_dir) from exc

    # -- connection ---------------------------------------------------------------------
    @property
    def db(self) -> sqlite3.Connection:
        ns = self._local.ns()
        conn: sqlite3.Connection | None = ns.get("conn")
        if conn is None:
            template = template_path(os.path.dirname(os.path.dirname(self.dir)))
            # opening writes the WAL index SQLite maps (a page the kernel's full quota
            # cannot reserve is a SIGBUS): with room, as a transaction is
            wait = self._wait()
            with self._room():
                conn = open_db(
                    self.db_path,
                    SCHEMA,
                    version=VERSION,
                    migrations=MIGRATIONS,
                    template=template,
                    wait_s=wait,
                )
            # INSERT OR REPLACE deletes the old row: its delete trigger must fire (totals)
            conn.execute("PRAGMA recursive_triggers=ON")
            self._file = file_id(self.db_path)  # (held open by it: no other file takes its inode number)
            ns["conn"] = conn
            ns["depth"] = 0
            ns["wait"] = wait
        return conn

    def opened_on(self) -> tuple[int, int] | None:
        """(device, inode) of the database file a connection was last opened on; None
        before any was."""
        return self._file

    def _wait(self) -> float:
        return DEFAULT_WAIT_S if self.lock_wait is None else self.lock_wait()

    def _waiting(self, db: sqlite3.Connection, ns: dict[str, object]) -> float:
        """This call's lock wait, made SQLite's busy timeout of this thread's connection
        when it changed since the last (a resident server's calls each wait as their
        caller's ``AVFS_LOCK_WAIT`` says, :class:`.settings.served_for`)."""
        wait = self._wait()
        if ns.get("wait") != wait:
            set_wait(db, wait)
            ns["wait"] = wait
        return wait

    def close(self) -> None:
        """Release the SQLite connections of every thread (each thread reopens its own on
        next use). Not while another thread is inside a transaction of this overlay."""
        # the last connection's close checkpoints the WAL into the database: with room
        with self._room():
            self._local.release("conn", sqlite3.Connection.close)
            self._local.release("all", lambda _: None)  # (what Overlay._db_all kept of them)

    def in_read_snapshot(self) -> bool:
        """Whether this thread's connection is inside a transaction :meth:`txn` did not
        begin (a read snapshot a caller holds, :meth:`still`'s): a write transaction cannot
        start in it, and what is written there would go with the caller's end."""
        db = self.db
        return db.in_transaction and not self._local.ns()["depth"]

    @contextmanager
    def txn(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (``BEGIN IMMEDIATE``); nests by joining the outer one.

        Threads of this process take turns on an in-process lock first: SQLite's own wait
        for the write lock sleeps in steps of milliseconds, a thread lock hands over at
        once. Files of entries the transaction removed are unlinked after it committed.
        """
        db = self.db
        ns = self._local.ns()
        if ns["depth"]:
            ns["depth"] += 1
            try:
                yield db
            finally:
                ns["depth"] -= 1
            return
        # never wait forever: past the timeout SQLite's busy wait decides (and reports)
        wait = self._waiting(db, ns)
        held = self._write_lock.acquire(timeout=wait)
        room = self._room()
        try:
            room.__enter__()
        except BaseException:
            if held:
                self._write_lock.release()
            raise
        try:
            try:
                db.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                if "readonly" in str(exc):
                    raise from_oserror(OSError(30, str(exc)), self.db_path) from exc
                self._raise_if_full(exc)
                if is_busy(exc):
                    raise busy_error("the fork's overlay database", self.db_path, wait) from exc
                raise CorruptStateError(f"overlay database broken: {exc}") from exc
            ns["depth"] = 1
            ns["garbage"] = []
            ns["after"] = []
            ns["fresh"] = []
            ns.pop("journaled", None)
            ns.pop("held", None)
            ns.pop("held_moved", None)
            totals: tuple[int, int] | None = None
            try:
                yield db
                dead = self._dead_files(db, ns["garbage"])
                if self.after_commit is not None:
                    totals = ns.pop("totals", None) or self._totals(db)
            except BaseException as exc:
                ns["depth"] = 0
                ns["garbage"] = []
                ns["after"] = []
                ns.pop("totals", None)
                if db.in_transaction:  # an I/O error may have rolled it back already
                    db.execute("ROLLBACK")
                self._unlink_fresh(ns)
                self._release_claims()
                ns.pop("journaled", None)
                ns.pop("held", None)
                ns.pop("held_moved", None)
                self._raise_if_full(exc)
                if isinstance(exc, sqlite3.OperationalError) and "readonly" in str(exc):
                    # (a home on a read-only mount: BEGIN IMMEDIATE passes there, the first
                    # write fails; was exit 70, "attempt to write a readonly database")
                    raise from_oserror(OSError(30, str(exc)), self.db_path) from exc
                raise
            ns["depth"] = 0
            ns["garbage"] = []
            try:
                db.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                ns.pop("held", None)
                ns.pop("held_moved", None)
                self._release_claims()
                if db.in_transaction:
                    db.execute("ROLLBACK")
                self._unlink_fresh(ns)
                if "readonly" in str(exc):
                    raise from_oserror(OSError(30, str(exc)), self.db_path) from exc
                self._raise_if_full(exc)
                raise
        finally:
            try:
                room.__exit__(None, None, None)
            finally:
                if held:
                    self._write_lock.release()
        ns["fresh"] = []  # (committed: named by the entries put)
        try:
            self._unlink_files(dead)
        finally:
            self._release_claims()
        journaled = ns.pop("journaled", None)
        if journaled is not None and self.after_change is not None:
            self.after_change(journaled)
        named, moved = ns.pop("held", None), ns.pop("held_moved", None)
        if (named or moved) and self.after_held is not None:
            self.after_held(named or [], moved)
        hook = self.after_commit
        if hook is not None and totals is not None:
            hook(*totals)
        after, ns["after"] = ns.get("after") or [], []
        for fn in after:
            fn()

    def made_for_txn(self, fileid: str) -> None:
        """Overlay file ``fileid`` was made for an entry this thread's open transaction
        puts: unlinked if the transaction does not commit (a file no entry names: a full
        disk's failed commit left them in ``files/``, twenty-sixth round, nospace1). A
        caller that made the file before its transaction began unlinks it itself."""
        ns = self._local.ns()
        if ns.get("depth"):
            ns["fresh"].append(fileid)

    def _unlink_fresh(self, ns: dict[str, object]) -> None:
        fresh = ns.get("fresh")
        ns["fresh"] = []
        if isinstance(fresh, list) and fresh:
            self._unlink_files(fresh)

    def note_held(self, e: Entry) -> None:
        """Note that this thread's open transaction put entry ``e``, which names a git
        object (:attr:`after_held` is called with them once it committed)."""
        if self.after_held is not None:
            self._local.ns().setdefault("held", []).append(e)

    def after_txn(self, fn: Callable[[], object]) -> bool:
        """Call ``fn`` once this thread's open transaction has committed (not if it rolls
        back); False, nothing kept, when none is open (the caller calls it now). What
        waits on another process to see what the transaction writes (a mount's daemon
        showing a move of the base: mount/live.py) waits there, never inside it."""
        ns = self._local.ns()
        if not ns.get("depth"):
            return False
        ns["after"].append(fn)
        return True

    @contextmanager
    def still(self) -> Iterator[int | None]:
        """Hold the overlay still while the caller copies its state dir: the database's
        write lock held and nothing written (``BEGIN IMMEDIATE``, then ``ROLLBACK``: no
        sync), so no process commits to it meanwhile (an overlay mount's kernel writes to
        its upper layer are not held). Yields the journal's newest position, which is the
        copy's too; None when a ``proxy exec`` span is open here (the copy's must be
        closed in the copy) or the lock cannot be taken (a read-only database, a
        transaction of this thread's already open): the caller reads the copy instead."""
        ns = self._local.ns()
        db = self.db
        if ns["depth"] or db.in_transaction:
            yield None
            return
        held = self._write_lock.acquire(timeout=self._waiting(db, ns))
        try:
            try:
                db.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError:
                yield None
                return
            try:
                seq = int(db.execute("SELECT COALESCE(MAX(seq), 0) FROM journal").fetchone()[0])
                yield None if execspans.any_open(db) else seq
            finally:
                if db.in_transaction:
                    db.execute("ROLLBACK")
        finally:
            if held:
                self._write_lock.release()

    @contextmanager
    def _room(self) -> Iterator[None]:
        """:attr:`room`, when set; a room that cannot be had (its lock, the kernel's
        counters unreadable) is no room, never a failure of what it was for."""
        cm = None
        if self.room is not None:
            try:
                cm = self.room()
                cm.__enter__()
            except Exception:
                cm = None
        try:
            yield
        finally:
            if cm is not None:
                cm.__exit__(None, None, None)

    def _raise_if_full(self, exc: BaseException) -> None:
        """Raise the quota's error for ``exc`` when it is a write that found the kernel's
        quota of this state dir full (EDQUOT; SQLite says "disk I/O error" or "database or
        disk is full"): not an internal error, and not the host's disk."""
        if isinstance(exc, AvfsError) or self.full_error is None:
            return
        err = self.full_error(exc)
        if err is not None:
            raise err from exc

    # -- meta ---------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def get_metas(self, *keys: str) -> dict[str, str]:
        """The meta values of ``keys`` that are set, in one query."""
        q = f"SELECT key, value FROM meta WHERE key IN ({','.join('?' * len(keys))})"
        return {str(k): str(v) for k, v in self.db.execute(q, keys)}

    def set_meta(self, key: str, value: str | None) -> None:
        with self.txn() as db:
            if key == "base" and value is not None and self.after_held is not None:
                # a move of the base: what is held for git's gc follows (core/workspace/wsheld.py)
                ns = self._local.ns()
                was = ns.get("held_moved")
                old = was[0] if was is not None else self.get_meta("base")
                ns["held_moved"] = None if old == value else (old, value)
            if value is None:
                db.execute("DELETE FROM meta WHERE key=?", (key,))
            else:
                db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)", (key, value))

    def file_bytes(self) -> int:
        r = self.db.execute("SELECT file_bytes FROM totals WHERE id = 1").fetchone()
        return int(r[0]) if r is not None else 0

    def totals(self) -> tuple[int, int]:
        """(bytes, count) of the materialized files: what the vault's quota counts of this
        overlay (kept by triggers: one row read, whatever the number of entries)."""
        return self._totals(self.db)

    def expect_totals(self, nbytes: int, nfiles: int) -> None:
        """Inside a transaction, after its last change: what :meth:`totals` will be once it
        commits (spares :attr:`after_commit` a query; a write knows it already). Ignored
        in a nested transaction: the outer one may change more."""
        ns = self._local.ns()
        if ns.get("depth") == 1:
            ns["totals"] = (nbytes, nfiles)

    @staticmethod
    def _totals(db: sqlite3.Connection) -> tuple[int, int]:
        r = db.execute(_TOTALS_Q).fetchone()
        return (int(r[0]), int(r[1])) if r is not None else (0, 0)

    # -- garbage: files of removed entries ---------------------------------------------
    def _garbage(self, db: sqlite3.Connection, fileid: str) -> None:
        # The file is unlinked once the transaction committed (a rollback would leave an
        # entry whose file is missing if the unlink ran first): see txn().
        pending: list[str] | None = self._local.ns().get("garbage")
        if pending is None:
            pending = self._local.ns()["garbage"] = []
        pending.append(fileid)

    def _dead_files(self, db: sqlite3.Connection, pending: list[str]) -> list[str]:
        """Of the file ids whose entries went in this transaction, those no entry uses
        (asked before COMMIT, with the write lock held: the answer is the committed one)."""
        if not pending:
            return []
        live: set[str] = set()
        for i in range(0, len(pending), 500):
            chunk = pending[i : i + 500]
            q = f"SELECT fileid FROM entries WHERE fileid IN ({','.join('?' * len(chunk))})"
            live.update(str(r[0]) for r in db.execute(q, chunk))
        return [f for f in dict.fromkeys(pending) if f not in live]

    def _unlink_files(self, fileids: list[str]) -> None:
        for fid in fileids:
            try:
                os.unlink(self.file_path(fid))
            except FileNotFoundError:
                pass

    def collect_garbage(self) -> None:
        """Unlink the overlay files of entries removed by committed transactions (txn()
        does it on commit; this is for a pending list left outside one)."""
        ns = self._local.ns()
        pending: list[str] = ns.get("garbage") or []
        ns["garbage"] = []
        self._unlink_files(self._dead_files(self.db, pending))

    # -- files --------------------------------------------------------------------------
    def file_path(self, fileid: str) -> str:
        if fileid.startswith(UPPER_FILE):
            return os.path.join(self.upper_dir, fileid[len(UPPER_FILE) :])
        if fileid.startswith(LINK_FILE):
            return os.path.join(self.links_dir, fileid[len(LINK_FILE) :])
        return os.path.join(self.files_dir, fileid)

    def _claim(self, fileid: str) -> bool:
        """For :meth:`retire`: False when a mount has the file open for writing; else the
        file is locked (``flock`` exclusive) until the transaction has ended and its dead
        files are unlinked, so a mount opening it for writing meanwhile waits, then finds
        it retired and opens the base's copy instead (fuse/ops.py, ``_open_rw``): a probe
        that let go at once left a window where a write went to a file being retired."""
        fd = self._exclusive(fileid)
        if fd is None:
            return False
        if fd >= 0 and self._written_since_read(fileid, fd):
            os.close(fd)
            return False
        if fd >= 0:
            self._local.ns().setdefault("claims", []).append(fd)
        return True

    def claim(self, fileid: str) -> bool:
        """:meth:`_claim`, for a move that drops the entry (another hand's commit adopted)."""
        return self._claim(fileid)

    def note_read(self, fileid: str, st: os.stat_result | None = None) -> tuple[int, int, int, int] | None:
        """Before a capture reads overlay file ``fileid``: its stat, which :meth:`_claim`
        compares when the checkpoint retires the entry. A pure-FUSE mount records a closed
        handle's size a moment after the close (fuse/writes.py ``release``: no new journal
        entry, no new ``seq``) and journals a created file's writes not at all past its
        creation, so a file written after the capture read it and closed before the retire
        looked untouched: found in the twentieth round (NAME=review10), a file created and
        written through the mount during a checkpoint was recorded empty and its entry
        retired (its bytes gone), ~1 file in 300 written every 5 ms over eight checkpoints.
        Any write after the read changes the file's ctime (multigrain timestamps: a stat
        makes the next change's time a fine-grained one) or its size.

        An upper layer's file (the kernel's, never claimed: see :meth:`_exclusive`) is
        noted too, for :meth:`unchanged_since_read` alone (gitmodel15). Returns what it
        noted (size, mtime, ctime, inode; None: nothing, a link's or a file gone); ``st``: its
        stat, just taken (record4: the capture's holes check takes the one stat of it)."""
        if fileid.startswith(LINK_FILE):
            return None
        try:
            st = self.file_stat(fileid) if st is None else st  # (an upper layer's: no link followed)
        except OSError:
            return None
        got = self._read_stats[fileid] = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
        return got

    def noted(self, fileid: str) -> tuple[int, int, int, int] | None:
        """What :meth:`note_read` noted of ``fileid`` in this capture, if it did."""
        return self._read_stats.get(fileid)

    def unchanged_since_read(self, fileid: str) -> os.stat_result | None:
        """The file's ``stat`` now when it is the one :meth:`note_read` took before this
        capture read it (so its bytes are the ones read, by the reasoning of
        :meth:`_claim`); None otherwise or when the capture did not read it. A mount's
        index written for the commit of those bytes holds this stat, so git reads the file
        no more than after its own ``git add`` (mount/heldstat.py ``written_stat``)."""
        was = self._read_stats.get(fileid)
        if was is None:
            return None
        try:
            st = self.file_stat(fileid)
        except OSError:
            return None
        return st if (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino) == was else None

    def forget_reads(self) -> None:
        """A new capture begins: the last one's stats (:meth:`note_read`) are spent."""
        self._read_stats.clear()

    def _written_since_read(self, fileid: str, fd: int) -> bool:
        was = self._read_stats.pop(fileid, None)
        if was is None:
            return False  # (not read by a capture of this handle: retired by its seq alone)
        st = os.fstat(fd)
        return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino) != was

    def _release_claims(self) -> None:
        for fd in self._local.ns().pop("claims", []):
            os.close(fd)

    def in_use(self, fileid: str) -> bool:
        """True when a mount has the file open for writing (it holds a shared flock on it)."""
        fd = self._exclusive(fileid)
        if fd is not None and fd >= 0:
            os.close(fd)  # closing drops the probe's lock
        return fd is None

    def _exclusive(self, fileid: str) -> int | None:
        """The overlay file opened and locked exclusively (its descriptor); -1 when there is
        nothing to lock (an upper-layer file: the kernel's, never opened by avfs; or gone);
        None when a mount holds it open for writing (a shared flock)."""
        import fcntl

        if fileid.startswith((UPPER_FILE, LINK_FILE)):
            return -1
        try:
            fd = os.open(self.file_path(fileid), os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return -1
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return None
        return fd

    def new_fileid(self) -> str:
        return os.urandom(12).hex()

    def file_root(self, fileid: str) -> str:
        """The directory ``fileid``'s path starts from: what is below it (an upper layer's
        directories) may be a confined command's (:func:`.safeopen.open_regular`)."""
        if fileid.startswith(UPPER_FILE):
            return self.upper_dir
        return self.links_dir if fileid.startswith(LINK_FILE) else self.files_dir

    def file_stat(self, fileid: str) -> os.stat_result:
        """The ``stat`` of the file of ``fileid``: an upper layer's asked from its root with
        no link followed on the way or at the end (:func:`.safeopen.beneath`: a host file's,
        through a directory a running command swapped for a link, was shown as the fork's
        file's size; twenty-third round, NAME=attack14), and a regular file only
        (:class:`.safeopen.NotRegular`, a FileNotFoundError, otherwise)."""
        if not fileid.startswith(UPPER_FILE):
            return os.stat(self.file_path(fileid))
        try:
            st = lstat_beneath(
                self.upper_dir, fileid[len(UPPER_FILE) :], getattr(self.recording, "dirs", None)
            )
        except NotADirectoryError:  # (a link on the way)
            raise NotRegular(errno.ENOENT, "not a regular file", self.file_path(fileid)) from None
        if not stat.S_ISREG(st.st_mode):
            raise NotRegular(errno.ENOENT, "not a regular file", self.file_path(fileid))
        return st

    def open_regular(self, fileid: str) -> int:
        """:func:`.safeopen.open_regular` of the file of ``fileid``, from its root."""
        return open_regular(
            self.file_path(fileid), self.file_root(fileid), getattr(self.recording, "dirs", None)
        )

    def open_file(self, fileid: str) -> int:
        """A descriptor of the overlay file ``fileid`` (a regular file: an upper layer's may
        have been replaced by a link or a FIFO meanwhile, which is never followed or waited
        on: :func:`.safeopen.open_regular`)."""
        try:
            return self.open_regular(fileid)
        except NotRegular as exc:
            raise BusyError(
                f"overlay file {fileid} was replaced while being read",
                hint="retry when the command writing the fork has finished",
                details={"fileid": fileid},
            ) from exc
        except FileNotFoundError as exc:
            raise CorruptStateError(
                f"overlay file {fileid} is missing from {self.files_dir}",
                hint="bring the path back with `avfs checkout PATH --from HEAD` (or rm it)",
            ) from exc


def sql_text(name: str) -> bool:
    """Whether ``name`` is text SQLite takes (UTF-8: no lone surrogate, which a name that
    is not UTF-8 holds once decoded with ``surrogateescape``). A path that is not is in no
    table: a confined command's, in a directory it made in an overlay mount (found in the
    fifteenth round: asked about, it failed every later status, checkpoint and exec)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
