"""The overlay of one workspace: what changed since the base commit, on disk.

Layout of a workspace state dir (``<vault>/avfs/ws/<fork>/``)::

    overlay.db   SQLite (WAL): entries, journal, meta (base commit, pending checkpoint)
    files/       contents of materialized files, one file per entry, named by a token

An entry describes the *absolute* state of one path, never a delta:

    DELETED  the path is gone (a whiteout over what the base or an ancestor entry has)
    FILE     a materialized file (or symlink, mode 120000) whose bytes are ``files/<fileid>``
    OBJECT   a git object by id: a blob (unchanged content moved or restored) or a tree
             (a renamed directory, an empty new directory, a restored subtree). Nothing is
             copied; deeper entries apply on top of the tree.

Because entries are absolute, an entry written while a checkpoint runs stays valid whatever
the checkpoint does: the checkpoint retires only the entries whose ``seq`` it captured.

Durability: SQLite in WAL mode with ``synchronous=NORMAL`` survives the death of any process
(``kill -9``) with nothing lost; a power cut may lose the last transactions. File contents
are written before their entry is committed, so an entry never names a missing file unless
the disk lost it (then reads fail with ``corrupt_state``).
"""

from __future__ import annotations

import dataclasses
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING

from ..errors import AvfsError, CorruptStateError, from_oserror
from ..store.names import ancestors, parent_of
from ..store.threads import ThreadSlots
from . import upper as up
from .sqlite import close_conn, open_db

if TYPE_CHECKING:
    from .upperwatch import UpperWatch

DELETED = 0
FILE = 1
OBJECT = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS entries(
    path TEXT PRIMARY KEY,
    parent TEXT NOT NULL,
    kind INTEGER NOT NULL,
    mode INTEGER NOT NULL,
    oid TEXT,
    fileid TEXT,
    origin TEXT,
    size INTEGER NOT NULL DEFAULT 0,
    seq INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_parent ON entries(parent);
CREATE TABLE IF NOT EXISTS journal(
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    path TEXT NOT NULL,
    op TEXT NOT NULL,
    ts REAL NOT NULL,
    pid INTEGER
);
"""
# The bytes of materialized files, kept by triggers (quota checks ran SUM(size) over every
# entry on each write: O(entries), ~2 ms per created file at 10k entries).
_TOTALS = """
CREATE TABLE IF NOT EXISTS totals(id INTEGER PRIMARY KEY CHECK (id = 1), file_bytes INTEGER NOT NULL);
INSERT OR IGNORE INTO totals(id, file_bytes)
    SELECT 1, COALESCE(SUM(size), 0) FROM entries WHERE kind = 1;
CREATE TRIGGER IF NOT EXISTS totals_ins AFTER INSERT ON entries WHEN NEW.kind = 1 BEGIN
    UPDATE totals SET file_bytes = file_bytes + NEW.size WHERE id = 1;
END;
CREATE TRIGGER IF NOT EXISTS totals_del AFTER DELETE ON entries WHEN OLD.kind = 1 BEGIN
    UPDATE totals SET file_bytes = file_bytes - OLD.size WHERE id = 1;
END;
CREATE TRIGGER IF NOT EXISTS totals_upd AFTER UPDATE ON entries BEGIN
    UPDATE totals SET file_bytes = file_bytes
        - (CASE WHEN OLD.kind = 1 THEN OLD.size ELSE 0 END)
        + (CASE WHEN NEW.kind = 1 THEN NEW.size ELSE 0 END) WHERE id = 1;
END;
"""
# collect_garbage asks whether a file id is still used: without an index every removal
# scanned the table (n removals cost n^2; 55% of the daemon's CPU in a 10k unlink run)
_FILEID_INDEX = "CREATE INDEX IF NOT EXISTS entries_fileid ON entries(fileid);"
# The number of materialized files (what the vault's file quota counts), in the same row
# as their bytes (one page written per transaction, not two), kept by the same triggers.
# Two steps: ADD COLUMN may meet a column another process just added (open_db tolerates
# that), then one transaction counts and replaces the triggers (idempotent).
_FILES_COLUMN = "ALTER TABLE totals ADD COLUMN files INTEGER NOT NULL DEFAULT 0;"
_FILES_TRIGGERS = """
BEGIN IMMEDIATE;
UPDATE totals SET files = (SELECT COUNT(*) FROM entries WHERE kind = 1) WHERE id = 1;
DROP TRIGGER IF EXISTS totals_ins;
DROP TRIGGER IF EXISTS totals_del;
DROP TRIGGER IF EXISTS totals_upd;
CREATE TRIGGER totals_ins AFTER INSERT ON entries WHEN NEW.kind = 1 BEGIN
    UPDATE totals SET file_bytes = file_bytes + NEW.size, files = files + 1 WHERE id = 1;
END;
CREATE TRIGGER totals_del AFTER DELETE ON entries WHEN OLD.kind = 1 BEGIN
    UPDATE totals SET file_bytes = file_bytes - OLD.size, files = files - 1 WHERE id = 1;
END;
CREATE TRIGGER totals_upd AFTER UPDATE ON entries BEGIN
    UPDATE totals SET file_bytes = file_bytes
        - (CASE WHEN OLD.kind = 1 THEN OLD.size ELSE 0 END)
        + (CASE WHEN NEW.kind = 1 THEN NEW.size ELSE 0 END),
        files = files - (OLD.kind = 1) + (NEW.kind = 1) WHERE id = 1;
END;
COMMIT;
"""
# the git ids of the upper layer's files by their stat data (what git's index does for a
# worktree): a status of a mounted overlay hashes only what changed since it last looked
_UPPER_OIDS = (
    "CREATE TABLE IF NOT EXISTS upper_oids(path TEXT PRIMARY KEY, sig TEXT NOT NULL, oid TEXT NOT NULL);"
)
_SCHEMA += _TOTALS + _FILEID_INDEX + _FILES_COLUMN + _FILES_TRIGGERS + _UPPER_OIDS
_VERSION = 7
_MIGRATIONS = {
    7: _UPPER_OIDS,
    2: "ALTER TABLE journal ADD COLUMN pid INTEGER",
    3: _TOTALS,
    4: _FILEID_INDEX,
    5: _FILES_COLUMN,
    6: _FILES_TRIGGERS,
}
_TOTALS_Q = "SELECT file_bytes, files FROM totals WHERE id = 1"


@dataclasses.dataclass(frozen=True, slots=True)
class Entry:
    path: str
    kind: int
    mode: int
    oid: str | None = None
    fileid: str | None = None
    origin: str | None = None
    size: int = 0
    seq: int = 0


def _row(r: tuple[object, ...]) -> Entry:
    # the columns are _COLS in Entry's order, typed by the schema (TEXT, INTEGER)
    return Entry(*r)  # type: ignore[arg-type]


_COLS = "path, kind, mode, oid, fileid, origin, size, seq"
EMPTY_TREE_ID = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
UPPER_FILE = "u:"  # a file id naming a file of the upper layer by its path
LINK_FILE = "l:"  # a file id naming a side file that holds a symlink's target
_MERGED = "merged"
SPECIAL_ORIGIN = "special:"  # the origin of the deletion entry a fifo, socket or device makes  # the upper layer's directory at a path merges with the lower one
_LOCK_WAIT_S = 30.0  # as long as SQLite's busy timeout (sqlite.open_db)


class Overlay:
    """SQLite-backed overlay store of one workspace; one connection per thread."""

    def __init__(self, state_dir: str) -> None:
        self.dir = state_dir
        self.files_dir = os.path.join(state_dir, "files")
        # the upper layer of an overlay mount (core/workspace/upper.py): its paths are entries too,
        # over the database's, unless with_upper is off (the mount's lower view itself)
        self.upper_dir = os.path.join(state_dir, "upper")
        self.links_dir = os.path.join(state_dir, "links")
        self.with_upper = True
        # whether the view without the upper layer has a directory at a path (set by the
        # workspace: a directory of the upper layer is new or merges, by what is below)
        self.lower_is_dir: Callable[[str], bool] | None = None
        self.lower_tree: Callable[[str], str | None] | None = None
        self._no_upper = threading.local()
        # upper_oids' rows this process has read or written, by path: (sig, oid). A status
        # in a mount's daemon (proxy exec's, before every command) asks for every upper file
        # each time; a dict answers in a microsecond where the query costs ~20
        self._oid_memo: dict[str, tuple[str, str]] = {}
        self.db_path = os.path.join(state_dir, "overlay.db")
        self._local = ThreadSlots(on_drop=close_conn)
        self._write_lock = threading.Lock()
        # called with the overlay's (bytes, files) after each committed transaction (the
        # workspace publishes its totals for the vault's quota, see Vault.quota_usage)
        self.after_commit: Callable[[int, int], None] | None = None
        # called with the newest journal position after a transaction that journaled
        # changes committed (the workspace then lets a live pure-FUSE mount show them)
        self.after_change: Callable[[int], None] | None = None
        # room for a write transaction while the kernel's quota of the state dir is full
        # (Vault.own_room), and the error a write that still found it full is (the quota's)
        self.room: Callable[[], AbstractContextManager[None]] | None = None
        self.full_error: Callable[[BaseException], AvfsError | None] | None = None
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
            template = os.path.join(os.path.dirname(os.path.dirname(self.dir)), "overlay-template.db")
            # opening writes the WAL index SQLite maps (a page the kernel's full quota
            # cannot reserve is a SIGBUS): with room, as a transaction is
            with self._room():
                conn = open_db(
                    self.db_path, _SCHEMA, version=_VERSION, migrations=_MIGRATIONS, template=template
                )
            # INSERT OR REPLACE deletes the old row: its delete trigger must fire (totals)
            conn.execute("PRAGMA recursive_triggers=ON")
            ns["conn"] = conn
            ns["depth"] = 0
        return conn

    def close(self) -> None:
        """Release the SQLite connections of every thread (each thread reopens its own on
        next use). Not while another thread is inside a transaction of this overlay."""
        # the last connection's close checkpoints the WAL into the database: with room
        with self._room():
            self._local.release("conn", sqlite3.Connection.close)

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
        held = self._write_lock.acquire(timeout=_LOCK_WAIT_S)
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
                raise CorruptStateError(f"overlay database busy or broken: {exc}") from exc
            ns["depth"] = 1
            ns["garbage"] = []
            ns.pop("journaled", None)
            totals: tuple[int, int] | None = None
            try:
                yield db
                dead = self._dead_files(db, ns["garbage"])
                if self.after_commit is not None:
                    totals = ns.pop("totals", None) or self._totals(db)
            except BaseException as exc:
                ns["depth"] = 0
                ns["garbage"] = []
                ns.pop("totals", None)
                if db.in_transaction:  # an I/O error may have rolled it back already
                    db.execute("ROLLBACK")
                self._release_claims()
                ns.pop("journaled", None)
                self._raise_if_full(exc)
                raise
            ns["depth"] = 0
            ns["garbage"] = []
            try:
                db.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                self._release_claims()
                if db.in_transaction:
                    db.execute("ROLLBACK")
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
        try:
            self._unlink_files(dead)
        finally:
            self._release_claims()
        journaled = ns.pop("journaled", None)
        if journaled is not None and self.after_change is not None:
            self.after_change(journaled)
        hook = self.after_commit
        if hook is not None and totals is not None:
            hook(*totals)

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
            if value is None:
                db.execute("DELETE FROM meta WHERE key=?", (key,))
            else:
                db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)", (key, value))

    # -- reads --------------------------------------------------------------------------
    # -- the upper layer (an overlay mount's; core/workspace/upper.py) --------------------------------
    def upper_active(self) -> bool:
        """Whether the upper layer holds anything this view reads."""
        if not self.with_upper or int(getattr(self._no_upper, "depth", 0)):
            return False
        return not up.is_empty(self.upper_dir)

    @contextmanager
    def without_upper(self) -> Iterator[None]:
        """Reads in this thread see the database's entries only (the lower view)."""
        self._no_upper.depth = int(getattr(self._no_upper, "depth", 0)) + 1
        try:
            yield
        finally:
            self._no_upper.depth -= 1

    def _lower_dir(self, path: str) -> bool:
        if self.lower_is_dir is None:
            return False
        with self.without_upper():
            return self.lower_is_dir(path)

    def lower_path(self, path: str) -> str | None:
        """The lower layer's path under ``path`` once the upper layer's redirects (renamed
        directories) are followed; ``path`` itself when none is on the way; None when an
        opaque directory of the upper layer (one made where a removed one was) at or above
        ``path`` hides the lower layer there."""
        lp: str | None = ""
        q = ""
        for comp in path.split("/"):
            q = f"{q}/{comp}" if q else comp
            r, opaque = up.dir_marks(os.path.join(self.upper_dir, q))
            if r is not None and r.startswith("/"):
                lp = r.strip("/")  # from the layer's root, whatever is above
            elif lp is not None:
                # a name in the same directory (a rename that kept the parent), or the same
                # name: below the parent's lower path
                name = r if r is not None else comp
                lp = f"{lp}/{name}" if lp else name
            if opaque:
                lp = None  # it hides the lower layer below it (a redirect below starts over)
        return lp

    def _lower_tree(self, path: str) -> str | None:
        """The git tree the lower layer shows at ``path`` (None: no directory there)."""
        if self.lower_tree is None:
            return None
        with self.without_upper():
            return self.lower_tree(path)

    def _u_entry(self, path: str) -> Entry | str | None:
        """What the upper layer holds at ``path``: an entry, :data:`_MERGED` (a directory
        merging with the lower one) or None (nothing: the lower layer shows through)."""
        real = os.path.join(self.upper_dir, path) if path else self.upper_dir
        st = up.lstat(real)
        if st is None:
            return None
        try:
            return self._u_classified(path, real, st)
        except FileNotFoundError:
            return None

    def upper_dir_entry(self, path: str, real: str, st: os.stat_result) -> Entry | None:
        """The entry the upper layer's directory at ``path`` makes (None: it merges with the
        lower one)."""
        got = self._u_classified(path, real, st)
        return got if isinstance(got, Entry) else None

    def _u_classified(self, path: str, real: str, st: os.stat_result) -> Entry | str:
        kind = up.classify(real, st)
        if kind == up.REG:
            mode = 0o100755 if st.st_mode & 0o100 else 0o100644
            return Entry(path, FILE, mode, None, UPPER_FILE + path, None, st.st_size, 0)
        if kind == up.LINK:
            target = os.fsencode(os.readlink(real))
            return Entry(
                path,
                FILE,
                0o120000,
                None,
                LINK_FILE + up.link_file(self.links_dir, target),
                None,
                len(target),
                0,
            )
        if kind == up.OPAQUE:
            return Entry(path, OBJECT, 0o040000, EMPTY_TREE_ID)
        if kind == up.DIR:
            if not path:
                return _MERGED
            lower = self.lower_path(path)
            if lower is None:  # below an opaque directory: nothing of the lower layer
                return Entry(path, OBJECT, 0o040000, EMPTY_TREE_ID)
            if up.redirect(real) is not None:
                oid = self._lower_tree(lower)
                if oid is not None:
                    return Entry(path, OBJECT, 0o040000, oid)
            if self._lower_dir(lower):
                if lower != path:  # below a renamed directory: its lower content moved too
                    oid = self._lower_tree(lower)
                    return Entry(path, OBJECT, 0o040000, oid or EMPTY_TREE_ID)
                return _MERGED
            return Entry(path, OBJECT, 0o040000, EMPTY_TREE_ID)
        if kind == up.SPECIAL:  # a fifo, socket, device: git has none (origin says which)
            return Entry(path, DELETED, 0, None, None, SPECIAL_ORIGIN + up.special_kind(st))
        return Entry(path, DELETED, 0)  # a whiteout

    def _u_chain(self, path: str) -> tuple[Entry | None, bool]:
        """(the upper layer's entry at ``path``, whether the upper layer hides the database's
        entries at and below ``path``: an entry of its own there or above)."""
        hidden = False
        parts = path.split("/") if path else []
        for i in range(len(parts) + 1):
            p = "/".join(parts[:i])
            got = self._u_entry(p)
            if got is None:
                return None, hidden  # nothing deeper in the upper layer either
            if got == _MERGED:
                continue
            assert isinstance(got, Entry)
            if i == len(parts):
                return got, True
            if got.kind != OBJECT:
                return None, True  # a file or whiteout above: nothing below it
            hidden = True
        return None, hidden

    @contextmanager
    def pruning(self, prune: Callable[[list[str], list[Entry]], set[str]]) -> Iterator[None]:
        """Walks of the upper layer in this thread leave out the new directories ``prune``
        names (given the new top directories and the entries found so far): the ones git
        ignores, whose thousands of files (a node_modules, a venv) a status or checkpoint
        never reads. Such a directory shows as a new empty one."""
        self._no_upper.prune = prune
        try:
            yield
        finally:
            self._no_upper.prune = None

    def _u_walk(self, prefix: str) -> tuple[list[Entry], list[str]]:
        """(the upper layer's entries strictly below directory ``prefix``, the paths whose
        database entries it hides: those of its own entries that are not merging dirs)."""
        out: list[Entry] = []
        hides: list[str] = []
        prune = getattr(self._no_upper, "prune", None)
        deferred: list[tuple[str, str]] = []  # new top directories, walked once asked about
        top = os.path.join(self.upper_dir, prefix) if prefix else self.upper_dir
        stack = [(prefix, top, False)]
        while True:
            while stack:
                p, real, inside_new = stack.pop()
                try:
                    it = os.scandir(real)
                except (FileNotFoundError, NotADirectoryError):
                    continue
                with it:
                    for de in it:
                        if de.name == ".git":
                            continue  # a nested repository's own (never part of the fork)
                        child = f"{p}/{de.name}" if p else de.name
                        try:
                            st = de.stat(follow_symlinks=False)
                            got = self._u_classified(child, de.path, st)
                        except FileNotFoundError:
                            continue  # gone since it was listed: the kernel's writes go on
                        if got != _MERGED:
                            assert isinstance(got, Entry)
                            out.append(got)
                            hides.append(child)
                        if de.is_dir(follow_symlinks=False):
                            new = isinstance(got, Entry) and self._new_dir(child, de.path, st, got)
                            if prune is not None and new and not inside_new:
                                deferred.append((child, de.path))
                            else:
                                stack.append((child, de.path, inside_new or new))
            if not deferred:
                break
            assert prune is not None
            skip = prune([d for d, _ in deferred], out)
            stack = [(d, real, True) for d, real in deferred if d not in skip]
            deferred = []
        return out, hides

    def upper_top(self, path: str) -> str | None:
        """The shallowest of ``path`` and its ancestors that the upper layer holds as an
        entry of its own (a file, whiteout, or a directory that does not merge with the
        lower layer's); None when it holds nothing there but merging directories (the
        lower layer shows through at ``path``)."""
        parts = path.split("/") if path else []
        for i in range(1, len(parts) + 1):
            got = self._u_entry("/".join(parts[:i]))
            if got is None:
                return None
            if got != _MERGED:
                return "/".join(parts[:i])
        return None

    def changed_entries(self, candidates: Iterable[str]) -> list[Entry]:
        """What :meth:`all` returns, with the upper layer read only at and below
        ``candidates`` (paths; ``dir/`` stands for ``dir``): every entry elsewhere must be
        one the caller knows shows the base unchanged (the journal of what changed since
        a status found so). The database's entries are all there, and are candidates too
        (what the upper layer hides of them is known only by looking)."""
        db = self._db_all()
        if not self.upper_active():
            return db
        tops: set[str] = set()
        for c in {c.rstrip("/") for c in candidates} | {e.path for e in db if e.path}:
            t = self.upper_top(c) if c else None
            if t is not None:
                tops.add(t)
        upper: list[Entry] = []
        hides: list[str] = []
        prune = getattr(self._no_upper, "prune", None)
        for t in sorted(tops):
            if any(a in tops for a in ancestors(t) if a):
                continue  # below another top: walked with it
            got = self._u_entry(t)
            if not isinstance(got, Entry):
                continue  # gone since
            upper.append(got)
            hides.append(t)
            if got.kind != OBJECT:
                continue
            real = os.path.join(self.upper_dir, t)
            st = up.lstat(real)
            if st is None:
                continue
            if prune is not None and self._new_dir(t, real, st, got) and t in prune([t], upper):
                continue  # a new directory git ignores: shown empty, not read
            below, hidden = self._u_walk(t)
            upper += below
            hides += hidden
        root = [e for e in db if e.path == ""]
        return root + self._merge([e for e in db if e.path], upper, hides)

    def _new_dir(self, path: str, real: str, st: os.stat_result, got: Entry) -> bool:
        """Whether the upper layer's directory ``path`` (its entry ``got``) is new: nothing
        of the lower layer under it, where the lower layer has no directory either (an
        opaque one made where none was: overlayfs marks some so, and so does a remount's
        tidying, core/workspace/upper.py). One that replaced a lower directory is not: what it hides
        of the base is a change."""
        if got.kind != OBJECT or got.oid != EMPTY_TREE_ID:
            return False
        kind = up.classify(real, st)
        if kind == up.DIR:
            return True
        if kind != up.OPAQUE:
            return False
        parent, _, name = path.rpartition("/")
        lp = self.lower_path(parent) if parent else ""
        return lp is None or not self._lower_dir(f"{lp}/{name}" if lp else name)

    def _merge(self, db: list[Entry], upper: list[Entry], hides: list[str]) -> list[Entry]:
        if not upper and not hides:
            return db
        hidden = set(hides)

        def shown(path: str) -> bool:
            if path in hidden:
                return False
            i = path.rfind("/")
            while i > 0:
                if path[:i] in hidden:
                    return False
                i = path.rfind("/", 0, i)
            return True

        out = [e for e in db if shown(e.path)] + upper
        out.sort(key=lambda e: e.path)
        return out

    def upper_journal(self) -> UpperWatch | None:
        """The journal of this overlay's upper layer when this process keeps it (the mount
        daemon, and ``proxy exec``'s warm server in it): what changed there, O(changes).
        A process that never loaded :mod:`.upperwatch` keeps none (and loads nothing)."""
        watches = sys.modules.get(f"{__package__}.upperwatch")
        if watches is None or not self.upper_active():
            return None
        got: UpperWatch | None = watches.live(self.upper_dir)
        return got

    def upper_changed_since(self, t_ns: int) -> list[str]:
        """The paths of the upper layer whose inode changed at or after ``t_ns`` (what a
        command run in an overlay mount wrote, deleted or renamed: the kernel keeps no
        journal of ours)."""
        if not self.upper_active():
            return []
        return [p for p, _real, st in up.entries(self.upper_dir) if st.st_ctime_ns >= t_ns]

    def upper_oid(self, fileid: str, hash_file: Callable[[str], str]) -> str:
        """The git blob id of an upper-layer file, from the cache when its stat data match
        (``hash_file`` computes it otherwise, and the cache keeps it)."""
        path = self.file_path(fileid)
        rel = fileid[len(UPPER_FILE) :]
        st = os.lstat(path)
        sig = f"{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_mode}"
        memo = self._oid_memo.get(rel)
        if memo is not None and memo[0] == sig:
            return memo[1]
        r = self.db.execute("SELECT oid FROM upper_oids WHERE path=? AND sig=?", (rel, sig)).fetchone()
        if r is not None:
            self._oid_memo[rel] = (sig, str(r[0]))
            return str(r[0])
        oid = hash_file(path)
        if time.time_ns() - st.st_mtime_ns > 2_000_000_000:
            # not while the file may still be written within its timestamp's granularity
            with self.txn() as db:
                db.execute(
                    "INSERT OR REPLACE INTO upper_oids(path, sig, oid) VALUES(?, ?, ?)", (rel, sig, oid)
                )
            self._oid_memo[rel] = (sig, oid)
        return oid

    # -- reads: the upper layer over the database ----------------------------------------
    def get(self, path: str) -> Entry | None:
        if not self.upper_active():
            return self._db_get(path)
        got, hidden = self._u_chain(path)
        if got is not None:
            return got
        return None if hidden else self._db_get(path)

    def get_many(self, paths: list[str]) -> dict[str, Entry]:
        if not self.upper_active():
            return self._db_get_many(paths)
        out: dict[str, Entry] = {}
        for p in paths:
            e = self.get(p)
            if e is not None:
                out[p] = e
        return out

    def lookup(
        self, chain: list[str], children_of: str | None = None
    ) -> tuple[dict[str, Entry], list[Entry], str | None]:
        got, kids, base = self._db_lookup(chain, children_of)
        if not self.upper_active():
            return got, kids, base
        got = self.get_many(chain)
        if children_of is not None:
            kids = self.children(children_of)
        return got, kids, base

    def children(self, parent: str) -> list[Entry]:
        if not self.upper_active():
            return self._db_children(parent)
        here, hidden = self._u_chain(parent)
        db = [] if hidden else self._db_children(parent)
        if here is not None and here.kind != OBJECT:
            return []
        real = os.path.join(self.upper_dir, parent) if parent else self.upper_dir
        upper: list[Entry] = []
        hides: list[str] = []
        try:
            it = os.scandir(real)
        except (FileNotFoundError, NotADirectoryError):
            return db
        with it:
            for de in it:
                if de.name == ".git":
                    continue
                child = f"{parent}/{de.name}" if parent else de.name
                try:
                    got = self._u_classified(child, de.path, de.stat(follow_symlinks=False))
                except FileNotFoundError:
                    continue
                if got != _MERGED:
                    assert isinstance(got, Entry)
                    upper.append(got)
                    hides.append(child)
        return self._merge(db, upper, hides)

    def under(self, prefix: str) -> list[Entry]:
        """Entries strictly below directory ``prefix`` ('' means every entry but the root)."""
        if not self.upper_active():
            return self._db_under(prefix)
        here, hidden = self._u_chain(prefix) if prefix else (None, False)
        db = [] if hidden else self._db_under(prefix)
        if here is not None and here.kind != OBJECT:
            return []
        upper, hides = self._u_walk(prefix)
        return self._merge(db, upper, hides)

    def all(self) -> list[Entry]:
        if not self.upper_active():
            return self._db_all()
        db = self._db_all()
        root = [e for e in db if e.path == ""]
        return root + self.under("")

    def has_under(self, prefix: str) -> bool:
        if not self.upper_active():
            return self._db_has_under(prefix)
        return bool(self.under(prefix))

    def has_changes(self) -> bool:
        """True when an entry other than an empty new directory exists (git can't see those)."""
        if not self.upper_active():
            return self._db_has_changes()
        return any(
            not (e.kind == OBJECT and e.mode == 0o040000 and e.oid == EMPTY_TREE_ID) for e in self.all()
        )

    def _db_get(self, path: str) -> Entry | None:
        r = self.db.execute(f"SELECT {_COLS} FROM entries WHERE path=?", (path,)).fetchone()
        return None if r is None else _row(r)

    def _db_get_many(self, paths: list[str]) -> dict[str, Entry]:
        if not paths:
            return {}
        q = f"SELECT {_COLS} FROM entries WHERE path IN ({','.join('?' * len(paths))})"
        return {e.path: e for e in map(_row, self.db.execute(q, paths))}

    def _db_lookup(
        self, chain: list[str], children_of: str | None = None
    ) -> tuple[dict[str, Entry], list[Entry], str | None]:
        """What a workspace lookup reads, in one query (one read transaction: each costs a
        round of file locking, more than the query): the entries at the paths of
        ``chain`` (like :meth:`get_many`), the children of ``children_of`` when given (like
        :meth:`children`), and the base commit (meta ``base``)."""
        q = f"SELECT 0, {_COLS} FROM entries WHERE path IN ({','.join('?' * len(chain))})"
        args: list[str] = list(chain)
        if children_of is not None:
            q += f" UNION ALL SELECT 1, {_COLS} FROM entries WHERE parent=? AND path != ''"
            args.append(children_of)
        q += " UNION ALL SELECT 2, value, 0, 0, NULL, NULL, NULL, 0, 0 FROM meta WHERE key='base'"
        got: dict[str, Entry] = {}
        kids: list[Entry] = []
        base: str | None = None
        for r in self.db.execute(q, args):
            if r[0] == 0:
                got[r[1]] = _row(r[1:])
            elif r[0] == 1:
                kids.append(_row(r[1:]))
            else:
                base = r[1]
        return got, kids, base

    def _db_children(self, parent: str) -> list[Entry]:
        q = f"SELECT {_COLS} FROM entries WHERE parent=? AND path != ''"
        return [_row(r) for r in self.db.execute(q, (parent,))]

    def _db_under(self, prefix: str) -> list[Entry]:
        """Entries strictly below directory ``prefix`` ('' means every entry but the root)."""
        if not prefix:
            q = f"SELECT {_COLS} FROM entries WHERE path != '' ORDER BY path"
            return [_row(r) for r in self.db.execute(q)]
        # '0' sorts right after '/', so this range is exactly 'prefix/...'.
        q = f"SELECT {_COLS} FROM entries WHERE path >= ? AND path < ? ORDER BY path"
        return [_row(r) for r in self.db.execute(q, (prefix + "/", prefix + "0"))]

    def _db_all(self) -> list[Entry]:
        return [_row(r) for r in self.db.execute(f"SELECT {_COLS} FROM entries ORDER BY path")]

    def _db_has_under(self, prefix: str) -> bool:
        if not prefix:
            return self.db.execute("SELECT 1 FROM entries WHERE path != '' LIMIT 1").fetchone() is not None
        r = self.db.execute(
            "SELECT 1 FROM entries WHERE path >= ? AND path < ? LIMIT 1",
            (prefix + "/", prefix + "0"),
        ).fetchone()
        return r is not None

    def _db_has_changes(self) -> bool:
        """True when an entry other than an empty new directory exists (git can't see those)."""
        r = self.db.execute(
            "SELECT 1 FROM entries WHERE NOT (kind=? AND mode=? AND oid=?) LIMIT 1",
            (OBJECT, 0o040000, EMPTY_TREE_ID),
        ).fetchone()
        return r is not None

    def may_have_changes(self) -> bool:
        """:meth:`has_changes` without reading the upper layer's tree: its top level holds
        anything but the pinned ``.git`` (a mount's own directories count as changes)."""
        if self._db_has_changes():
            return True
        try:
            with os.scandir(self.upper_dir) as it:
                return any(e.name != ".git" for e in it)
        except FileNotFoundError:
            return False

    def is_empty(self) -> bool:
        if self.upper_active():
            return not self.all()
        return self.db.execute("SELECT 1 FROM entries LIMIT 1").fetchone() is None

    def count(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM entries").fetchone()[0])

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

    def last_seq(self) -> int:
        r = self.db.execute("SELECT COALESCE(MAX(seq), 0) FROM journal").fetchone()
        return int(r[0])

    def changes_by_others(self, seq: int) -> tuple[int, list[str]]:
        """Like :meth:`changes_since`, leaving out this process' own changes (a mount uses
        it to invalidate the kernel's caches for what the CLI and others changed)."""
        rows = self.db.execute(
            "SELECT seq, path, pid FROM journal WHERE seq > ? ORDER BY seq", (seq,)
        ).fetchall()
        last = int(rows[-1][0]) if rows else seq
        me = os.getpid()
        seen: dict[str, None] = {}
        for _, p, pid in rows:
            if pid != me:
                seen.setdefault(str(p), None)
        return last, list(seen)

    def changes_since(self, seq: int) -> tuple[int, list[str]]:
        """Paths changed after journal position ``seq``, and the newest position."""
        rows = self.db.execute("SELECT seq, path FROM journal WHERE seq > ? ORDER BY seq", (seq,)).fetchall()
        last = int(rows[-1][0]) if rows else seq
        seen: dict[str, None] = {}
        for _, p in rows:
            seen.setdefault(str(p), None)
        return last, list(seen)

    # -- writes (call inside txn()) -----------------------------------------------------
    def _journal(self, db: sqlite3.Connection, path: str, op: str) -> int:
        cur = db.execute(
            "INSERT INTO journal(path, op, ts, pid) VALUES(?, ?, ?, ?)", (path, op, time.time(), os.getpid())
        )
        seq = int(cur.lastrowid or 0)
        self._local.ns()["journaled"] = seq
        return seq

    def put(self, db: sqlite3.Connection, e: Entry, op: str, *, old: Entry | bool | None = True) -> Entry:
        """Insert or replace the entry at ``e.path``; returns it with its new ``seq``.

        ``old``: the entry at ``e.path`` when the caller read it in this transaction
        (``None``: there is none); by default it is looked up here.
        """
        seq = self._journal(db, e.path, op)
        if old is True:
            row = db.execute("SELECT fileid FROM entries WHERE path=?", (e.path,)).fetchone()
            exists, old_fileid = row is not None, None if row is None else row[0]
        else:
            exists, old_fileid = isinstance(old, Entry), old.fileid if isinstance(old, Entry) else None
        if exists:
            # in place: the row keeps its id, so the path and parent indexes are not touched
            # (INSERT OR REPLACE writes 7 pages to the WAL here, this 5)
            db.execute(
                "UPDATE entries SET kind=?, mode=?, oid=?, fileid=?, origin=?, size=?, seq=? WHERE path=?",
                (e.kind, e.mode, e.oid, e.fileid, e.origin, e.size, seq, e.path),
            )
        else:
            db.execute(
                f"INSERT OR REPLACE INTO entries({_COLS}, parent) VALUES(?,?,?,?,?,?,?,?,?)",
                (e.path, e.kind, e.mode, e.oid, e.fileid, e.origin, e.size, seq, parent_of(e.path)),
            )
        if old_fileid and old_fileid != e.fileid:
            self._garbage(db, str(old_fileid))
        return Entry(e.path, e.kind, e.mode, e.oid, e.fileid, e.origin, e.size, seq)

    def set_size(self, db: sqlite3.Connection, path: str, fileid: str, size: int) -> bool:
        """Record a materialized file's new size in place: no journal entry and no new
        ``seq`` (a checkpoint retiring the entry by its ``seq`` still finds it)."""
        cur = db.execute(
            "UPDATE entries SET size=? WHERE path=? AND fileid=? AND size != ?", (size, path, fileid, size)
        )
        return bool(cur.rowcount)

    def remove(self, db: sqlite3.Connection, path: str, op: str, *, journal: bool = True) -> None:
        old = db.execute("SELECT fileid FROM entries WHERE path=?", (path,)).fetchone()
        if old is None:
            return
        db.execute("DELETE FROM entries WHERE path=?", (path,))
        if journal:
            self._journal(db, path, op)
        if old[0]:
            self._garbage(db, str(old[0]))

    def forget(self, db: sqlite3.Connection, path: str, op: str) -> None:
        """Drop the entry at ``path``, journaled, keeping its file (a rename gives the file
        to the entry at the new path)."""
        db.execute("DELETE FROM entries WHERE path=?", (path,))
        self._journal(db, path, op)

    def remove_under(self, db: sqlite3.Connection, prefix: str, op: str) -> list[Entry]:
        gone = self.under(prefix)
        for e in gone:
            self.remove(db, e.path, op)
        return gone

    def retire(self, db: sqlite3.Connection, captured: Iterable[Entry]) -> int:
        """Drop the entries a checkpoint captured, unless they changed since (seq differs).

        A file a mount holds open for writing (:meth:`in_use`) keeps its entry: its bytes
        are in the checkpoint, and later writes through the open descriptor must land in a
        file the workspace still shows.
        """
        n = 0
        for e in captured:
            if e.kind == FILE and e.fileid and not self._claim(e.fileid):
                continue
            cur = db.execute("DELETE FROM entries WHERE path=? AND seq=?", (e.path, e.seq))
            if cur.rowcount:
                n += 1
                if e.fileid:
                    self._garbage(db, e.fileid)
        return n

    def clear(self, db: sqlite3.Connection, op: str) -> None:
        for e in self.all():
            self.remove(db, e.path, op)

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
        if fd >= 0:
            self._local.ns().setdefault("claims", []).append(fd)
        return True

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

    def open_file(self, fileid: str) -> int:
        try:
            return os.open(self.file_path(fileid), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError as exc:
            raise CorruptStateError(
                f"overlay file {fileid} is missing from {self.files_dir}",
                hint="bring the path back with `avfs checkout PATH --from HEAD` (or rm it)",
            ) from exc
