"""A fork's change log: what the kernel changed in an overlay mount, kept on disk, and who
the fork's journals belong to.

The overlay journal (``overlay.db``) already records every change avfs itself makes (its
file commands, the API, MCP, a pure-FUSE mount's writes). What the *kernel* writes in an
overlay mount reaches no avfs code: the mount daemon sees it through inotify
(:mod:`.upperwatch`), whose journal is in memory and goes with the daemon. ``changes.db``
in the workspace's state dir is that journal's durable half, for ``avfs watch``: the
daemon's watcher thread appends what one drain of the kernel's queue found (coalesced:
one batch, at least :data:`.upperwatch.BATCH_S` long), classified as created, modified,
deleted, renamed or mode. A writer never waits for it: the kernel's write returned before
the daemon read the event.

It also holds:

- ``meta``: the log's identity (``id``, random) and the fork it belongs to. A fork made by
  snapshotting another's state dir (core/vaults/layers.py) starts with a copy of that
  fork's databases; :meth:`ChangeLog.claim` gives it an identity of its own and the
  positions its journals start from, so a cursor never reads another fork's history as
  this one's, nor a fork deleted and made again under the same name as the same fork.
- ``daemons``: the mount daemons that served the fork (pid, from, to), so an overlay
  journal row a daemon wrote (a pure-FUSE mount's write) is told apart from the API's.

Kept: the newest :data:`MAX_EVENTS` events; a cursor older than that is out of date
(``resync_required``).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import time
from collections.abc import Iterable

from ..errors import CorruptStateError
from ..store.threads import ThreadSlots
from . import execspans
from .sqlite import DEFAULT_WAIT_S, close_conn, create_filled, make_unsynced, open_db, open_past_hot_journal

FILE = "changes.db"
# + the name of the state dir it is for: a fork's log made in its source's state dir just
# before the snapshot that carries it into the fork's (:func:`carry_claim`)
CARRIED = FILE + ".carried-"
MAX_EVENTS = 200_000  # events kept; past it the older half goes
# the fork a spare state dir's log names (core/vaults/forkspare.py, which carries it into the
# spare as :func:`carry_claim` does a fork's): whichever fork takes the spare (``:`` cannot
# occur in a fork's name)
SPARE_FORK = ":spare"
# the start of an identity kept nowhere (ChangeLog._unclaimed: the claim had no room); a
# claimed log's id is hex
UNCLAIMED = "~"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS events(
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,
    kind TEXT NOT NULL,
    path TEXT NOT NULL,
    old_path TEXT
);
CREATE TABLE IF NOT EXISTS daemons(pid INTEGER NOT NULL, started REAL NOT NULL, ended REAL);
"""

# what a row of the upper layer's log says happened (``overflow``: the kernel dropped
# events; nothing since the last row is known)
KINDS = ("created", "modified", "deleted", "renamed", "mode", "overflow")

UpperEvent = tuple[float, str, str, str | None]  # (time, kind, path, old path)


class ChangeLog:
    """``<state_dir>/changes.db`` (see the module's docstring); a connection per thread."""

    def __init__(self, state_dir: str, wait_s: float = DEFAULT_WAIT_S) -> None:
        """``wait_s``: how long a statement waits for another process's lock (the caller's
        ``AVFS_LOCK_WAIT`` where it has one)."""
        self.state_dir = state_dir
        self.path = os.path.join(state_dir, FILE)
        self.wait_s = wait_s
        self._local = ThreadSlots(on_drop=close_conn)

    @property
    def db(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            _adopt(self.state_dir)
            # a rollback journal, not WAL: the overlay daemon appends here while the kernel
            # fills the fork's quota, and a WAL's shared-memory mapping faults (SIGBUS) on a
            # btrfs subvolume past its quota, where a write only fails (sqlite.open_db)
            try:
                conn = open_db(self.path, _SCHEMA, journal="DELETE", wait_s=self.wait_s)
            except CorruptStateError as exc:
                # a hot journal (a writer's append that found no room at its commit, then
                # at its rollback) on a fork still full: read as it was before that append
                from .noroom import cannot_write

                got = open_past_hot_journal(self.path, self.wait_s) if cannot_write(exc) else None
                if got is None:
                    raise
                conn = got
            self._local.conn = conn
        return conn

    def close(self) -> None:
        self._local.release("conn", sqlite3.Connection.close)

    def __enter__(self) -> ChangeLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- identity ---------------------------------------------------------------------------
    def identity(self, fork: str, overlay_seq: int) -> tuple[str, int, int]:
        """(this log's id, the overlay journal position and the upper log position the
        fork's history starts after). Made on first ask: a log that names no fork belongs
        to a state dir made for this fork (a fork's state is made on its first use, its
        journals empty then: its history starts at their beginning); one that names another
        fork is a snapshot's copy nobody claimed (:func:`claim_new_fork`), whose history
        starts at ``overlay_seq`` and the upper log's end."""
        got: dict[str, str] = {}
        try:
            db = self.db
            got = dict(
                db.execute("SELECT key, value FROM meta WHERE key IN ('id', 'fork', 'start')").fetchall()
            )
            if got.get("fork") == fork and got.get("id") and got.get("start"):
                a, _, b = str(got["start"]).partition(":")
                return str(got["id"]), int(a), int(b)
            if not got.get("fork"):
                return self.claim(fork, 0, fresh=True)
            if got.get("fork") == SPARE_FORK and got.get("id") and got.get("start"):
                # a spare's log, made with its history's start for whichever fork claims it
                # (core/vaults/forkspare.py): this fork's, named now
                db.execute("UPDATE meta SET value=? WHERE key='fork' AND value=?", (fork, SPARE_FORK))
                a, _, b = str(got["start"]).partition(":")
                return str(got["id"]), int(a), int(b)
            return self.claim(fork, overlay_seq)
        except Exception as exc:
            from .noroom import cannot_write  # (only where the claim failed)

            if not cannot_write(exc):
                raise
            return self._unclaimed(fork, overlay_seq, fresh=not got.get("fork"))

    def _unclaimed(self, fork: str, overlay_seq: int, *, fresh: bool) -> tuple[str, int, int]:
        """:meth:`identity` where the claim cannot be written (the fork's state has no room:
        its quota as the kernel counts it, a full disk, :mod:`.noroom`): an identity kept
        nowhere, :data:`UNCLAIMED` and a digest of the log's file and the fork, the same
        at each ask until the claim is written. A cursor made with it reads on exactly
        while it lasts; once a later ask has room and claims the log, such a cursor gets
        one ``resync_required`` (never a silent gap)."""
        import hashlib

        try:
            st = os.stat(self.path)
            made = f"{st.st_dev}:{st.st_ino}"
        except OSError:
            made = "none"  # (not even the file could be made: the log is empty)
        key = f"{os.path.realpath(self.state_dir)}\0{made}\0{fork}"
        ident = UNCLAIMED + hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:16]
        if fresh:
            return ident, 0, 0
        try:
            return ident, overlay_seq, self.last_seq()
        except Exception as exc:
            from .noroom import cannot_write

            if not cannot_write(exc):
                raise
            return ident, overlay_seq, 0

    def claim(self, fork: str, overlay_seq: int, *, fresh: bool = False) -> tuple[str, int, int]:
        """Make this log ``fork``'s, its history starting now (at ``overlay_seq`` of the
        overlay journal and the upper log's last row; from the start when ``fresh``)."""
        db = self.db
        ident = os.urandom(8).hex()
        db.execute("BEGIN IMMEDIATE")
        try:
            upper = 0 if fresh else self._last(db)
            db.executemany(
                "INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)",
                [("id", ident), ("fork", fork), ("start", f"{overlay_seq}:{upper}")],
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return ident, overlay_seq, upper

    # -- the upper layer's events -----------------------------------------------------------
    @staticmethod
    def _last(db: sqlite3.Connection) -> int:
        r = db.execute("SELECT seq FROM sqlite_sequence WHERE name='events'").fetchone()
        return int(r[0]) if r else 0

    def last_seq(self) -> int:
        return self._last(self.db)

    def first_kept(self) -> int:
        """The oldest event's position (the next one's when none is kept)."""
        r = self.db.execute("SELECT MIN(seq) FROM events").fetchone()
        return int(r[0]) if r and r[0] is not None else self.last_seq() + 1

    def append(self, events: Iterable[UpperEvent]) -> None:
        """Append one batch (one transaction), dropping the older half past the bound."""
        rows = [
            (ts, kind, _text(path), None if old is None else _text(old)) for ts, kind, path, old in events
        ]
        if not rows:
            return
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany("INSERT INTO events(ts, kind, path, old_path) VALUES(?, ?, ?, ?)", rows)
            last = self._last(db)
            first = db.execute("SELECT MIN(seq) FROM events").fetchone()[0]
            if first is not None and last - int(first) + 1 > MAX_EVENTS:
                db.execute("DELETE FROM events WHERE seq <= ?", (last - MAX_EVENTS // 2,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def since(self, seq: int, limit: int) -> list[tuple[int, float, str, str, str | None]]:
        """Up to ``limit`` events after ``seq``, oldest first: (seq, time, kind, path, old)."""
        rows = self.db.execute(
            "SELECT seq, ts, kind, path, old_path FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
            (seq, limit),
        ).fetchall()
        return [(int(r[0]), float(r[1]), str(r[2]), str(r[3]), r[4]) for r in rows]

    # -- the daemons that served the fork ---------------------------------------------------
    def daemon_started(self, pid: int) -> None:
        self.db.execute("INSERT INTO daemons(pid, started) VALUES(?, ?)", (pid, time.time()))

    def daemon_ended(self, pid: int) -> None:
        self.db.execute("UPDATE daemons SET ended=? WHERE pid=? AND ended IS NULL", (time.time(), pid))

    def daemons(self) -> list[tuple[int, float, float | None]]:
        rows = self.db.execute("SELECT pid, started, ended FROM daemons").fetchall()
        return [(int(r[0]), float(r[1]), None if r[2] is None else float(r[2])) for r in rows]


def overlay_last(state_dir: str) -> int:
    """The overlay journal's newest position in ``state_dir`` (0: none yet), read without
    opening the workspace."""
    path = os.path.join(state_dir, "overlay.db")
    if not os.path.exists(path):
        return 0
    conn = sqlite3.connect(path, timeout=30.0, isolation_level=None)
    try:
        return int(conn.execute("SELECT COALESCE(MAX(seq), 0) FROM journal").fetchone()[0])
    except sqlite3.OperationalError:
        return 0  # made, its schema not yet
    finally:
        conn.close()


def carry_claim(src_dir: str, new_dir: str, fork: str, journal: int) -> str | None:
    """Make the change log of ``fork``, about to be snapshotted from state dir ``src_dir``
    into ``new_dir``, with its claim (its history starting at ``journal`` of the overlay
    journal and at the start of this log), in ``src_dir`` under a name of ``new_dir``'s
    (:data:`CARRIED`), synced by nothing: the snapshot's own transaction commit makes it
    durable in the copy, where :func:`claim_new_fork` moves it into place, over the copy
    of the source's log if it has one (and, should a crash lose that, the copy's first
    reader: :func:`_adopt`). Its path, for the caller to remove from the source once the
    snapshot is taken; None, making nothing, when the file cannot be made (a full quota).

    So a fork syncs nothing for its log, where making it in the copy cost two syncs (the
    file and its directory) and claiming a copied log a rollback-journal transaction's,
    each a commit of btrfs's log. What the source's log held is the source's history,
    never the fork's: a fresh log says the same of the fork."""
    _adopt(src_dir)  # the source's own, if a crash lost its move: never one to remove
    with contextlib.suppress(OSError), os.scandir(src_dir) as it:  # a killed fork's, never
        for e in it:  # carried anywhere (cannot list or remove them: the fork goes on)
            if e.name.startswith(CARRIED):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(e.path)
    path = os.path.join(src_dir, CARRIED + os.path.basename(new_dir))
    rows = _claim_rows(fork, journal)
    try:
        make_unsynced(path, _SCHEMA, lambda db: _fill(db, rows), journal="DELETE")
    except (OSError, sqlite3.Error):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        return None
    return path


def _put_in_place(state_dir: str, carried: str) -> None:
    """Move the carried log over the state dir's: the copy of the source's log goes, and
    its rollback journal first (the source's daemon mid-append when the snapshot was taken
    left a hot one, which SQLite would otherwise roll into the new file)."""
    path = os.path.join(state_dir, FILE)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path + "-journal")
    os.rename(carried, path)


def _adopt(state_dir: str) -> bool:
    """Move the log carried into this state dir by its snapshot (:func:`carry_claim`) into
    place, where a crash lost :func:`claim_new_fork`'s move; True when there was one.
    Readers doing so at once take turns on the carried file's ``flock``: the first moves
    it, the others find it gone."""
    real = os.path.realpath(state_dir) if os.path.islink(state_dir) else os.path.normpath(state_dir)
    carried = os.path.join(state_dir, CARRIED + os.path.basename(real))
    try:
        fd = os.open(carried, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if os.path.exists(carried):
            _put_in_place(state_dir, carried)
    except FileNotFoundError:
        pass  # another reader moved it first
    finally:
        os.close(fd)
    return True


def _claim_rows(fork: str, oseq: int) -> list[tuple[str, str]]:
    return [("id", os.urandom(8).hex()), ("fork", fork), ("start", f"{oseq}:0")]


def _fill(db: sqlite3.Connection, rows: list[tuple[str, str]]) -> None:
    db.executemany("INSERT INTO meta(key, value) VALUES(?, ?)", rows)


def claim_new_fork(state_dir: str, fork: str, journal: int | None = None, *, carried: bool = False) -> None:
    """A fork just made: its history starts now, where its state dir exists already (a
    snapshot of its source's, whose journals it carries; an exec running on the source
    when it was taken is not this fork's).

    ``journal``: the overlay journal's newest position in the snapshot, read from the
    source while it was held still (``OverlayDB.still``: no exec span open there). Then the
    snapshot's overlay database is not opened here: opening it recovers the WAL the
    snapshot carries (a source open in another process has one) and the last connection's
    close checkpoints it (three syncs); the fork's first user does that instead, as it
    opens the database anyway. ``carried``: the snapshot brought the fork's log, claimed
    (:func:`carry_claim`; ``state_dir`` is then the snapshot's own path, not a link): it is
    moved into place, over the copy of the source's log if there is one, no sync."""
    overlay = os.path.join(state_dir, "overlay.db")
    if journal is not None:
        if carried:
            try:
                _put_in_place(state_dir, os.path.join(state_dir, CARRIED + os.path.basename(state_dir)))
                return
            except FileNotFoundError:
                pass
        _claim_log(state_dir, fork, journal)
        return
    if not os.path.exists(overlay):
        if exists(state_dir):
            with ChangeLog(state_dir) as log:
                log.claim(fork, 0)
        return
    # one connection to the snapshot's overlay for both its reads and its writes: the last
    # one closed checkpoints the WAL the snapshot carries (its syncs), once
    conn = sqlite3.connect(overlay, timeout=30.0, isolation_level=None)
    try:
        try:
            oseq = int(conn.execute("SELECT COALESCE(MAX(seq), 0) FROM journal").fetchone()[0])
        except sqlite3.OperationalError:
            oseq = 0  # made, its schema not yet
        useq = _claim_log(state_dir, fork, oseq)
        try:
            execspans.close_open(conn, oseq, useq)
        except sqlite3.OperationalError:
            pass  # a database from before spans were kept: none is open
    finally:
        conn.close()


def _claim_log(state_dir: str, fork: str, oseq: int) -> int:
    """Make ``state_dir``'s change log ``fork``'s, its history starting at ``oseq`` of the
    overlay journal and the log's own end; that end (0 for a log made here)."""
    rows = _claim_rows(fork, oseq)

    def fill(db: sqlite3.Connection) -> None:
        _fill(db, rows)

    # a source that was never mounted has no log: the fork's is made with its claim in
    # it (one sync of the file and one of its directory, not a creation and then a
    # transaction's three), so it is never there unclaimed
    if create_filled(os.path.join(state_dir, FILE), _SCHEMA, fill, journal="DELETE"):
        return 0
    with ChangeLog(state_dir) as log:
        return log.claim(fork, oseq)[2]


def exists(state_dir: str) -> bool:
    return _adopt(state_dir) or os.path.exists(os.path.join(state_dir, FILE))


def _text(path: str) -> str:
    """``path`` as SQLite can keep it: a name that is not UTF-8 (a confined command can make
    one in an overlay mount) with its bytes written ``\\xNN``; it failed the whole batch
    before (found in the fifteenth round: the other paths' events were lost with it)."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return path
