"""Opening avfs' SQLite databases: WAL mode, schema versioning, cheap creation.

Every database avfs keeps (overlays, op log) is opened here. WAL with
``synchronous=NORMAL`` survives the death of any process; the journal mode is stored in
the file, and the schema is applied only when ``user_version`` says it is missing.
New databases are copied from a per-directory template: creating a WAL database from
scratch costs ~10 ms of fsyncs, a copy ~2 ms, which is what keeps a fork's first use cheap.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable
from typing import Any

from ..errors import BusyError, CorruptStateError, from_oserror, is_no_space, no_space

# SQLite's own busy wait where no setting reaches the opener (``AVFS_LOCK_WAIT``'s default
# is 10 s: callers that have the setting pass it, :func:`set_wait`)
DEFAULT_WAIT_S = 30.0


def close_conn(namespace: dict[str, Any]) -> None:
    """Close the connection a thread kept in ``namespace["conn"]`` (for ThreadSlots)."""
    conn = namespace.pop("conn", None)
    if conn is not None:
        conn.close()


def _create(
    path: str,
    schema: str,
    version: int,
    journal: str = "WAL",
    fill: Callable[[sqlite3.Connection], None] | None = None,
    sync: bool = True,
) -> None:
    for left in (path, f"{path}-wal", f"{path}-shm", f"{path}-journal"):
        try:  # left by a maker that died, whose pid and thread id are ours now
            os.unlink(left)
        except FileNotFoundError:
            pass
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        # (a rollback journal is not kept in the file: while the file is the maker's own,
        # in memory, not a journal file made and removed for each statement)
        conn.execute(f"PRAGMA journal_mode={journal if journal == 'WAL' else 'MEMORY'}")
        # a file of the maker's own until it is placed: no sync for each statement of the
        # schema (each its own commit: ~20 ms on btrfs), one of the whole file at the end
        conn.execute("PRAGMA synchronous=OFF")
        conn.executescript(schema)
        conn.execute(f"PRAGMA user_version={version}")
        if fill is not None:
            fill(conn)
    finally:
        conn.close()
    if not sync:
        return
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _place(src_maker: str, path: str) -> None:
    """Link a finished file into place; a concurrent creator's file wins, same content."""
    try:
        os.link(src_maker, path)
    except FileExistsError:
        pass
    finally:
        os.unlink(src_maker)


def make_unsynced(
    path: str, schema: str, fill: Callable[[sqlite3.Connection], None], *, journal: str = "WAL"
) -> None:
    """Make the database at ``path`` (replacing what is there) with ``schema`` and the rows
    ``fill`` writes, synced by nothing: for a file something else makes durable (a btrfs
    snapshot taken next commits it with the file system's transaction)."""
    _create(path, schema, 1, journal, fill, sync=False)


def create_filled(
    path: str,
    schema: str,
    fill: Callable[[sqlite3.Connection], None],
    *,
    version: int = 1,
    journal: str = "WAL",
) -> bool:
    """Make the database at ``path`` whole: ``schema`` and the rows ``fill`` writes, in a
    file of the maker's own (no sync per statement), synced once, linked into place, its
    directory synced. False, writing nothing, when a database is there already (the caller
    then writes its rows the ordinary way).

    A row written into a database just made costs its own transaction otherwise: in a
    rollback journal, syncs of the journal, its directory and the database (on btrfs, each
    a commit of the file system's log). Here the file is durable with its rows or absent,
    never present without them."""
    try:
        if os.path.exists(path):
            return False
        tmp = f"{path}.new-{os.getpid()}-{threading.get_ident()}"
        _create(tmp, schema, version, journal, fill)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        finally:
            os.unlink(tmp)
        fd = os.open(os.path.dirname(path) or ".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        return True
    except OSError as exc:
        raise from_oserror(exc, path) from exc


def make_template(template: str, schema: str, version: int) -> None:
    """Make the empty database ``template`` with ``schema`` (synced, linked into place; a
    concurrent maker's wins), unless it is there: what :func:`open_db` copies for a new
    database."""
    if os.path.exists(template):
        return
    ttmp = f"{template}.new-{os.getpid()}-{threading.get_ident()}"
    _create(ttmp, schema, version)
    _place(ttmp, template)


def open_db(
    path: str,
    schema: str,
    *,
    version: int = 1,
    migrations: dict[int, str] | None = None,
    template: str | None = None,
    journal: str = "WAL",
    wait_s: float = DEFAULT_WAIT_S,
) -> sqlite3.Connection:
    """Open (creating when missing) the database at ``path`` with ``schema``.

    Args:
        version: the schema version ``schema`` creates (kept in ``user_version``).
        migrations: version -> SQL that brings a database from version-1 to version.
        template: a path where a ready-made empty database with this schema is kept (and
            made on first need), copied for new databases.
        journal: SQLite's journal mode. ``WAL`` maps a shared-memory file (``-shm``); on a
            file system that allocates on write (btrfs) under a full quota, a store into
            that mapping is SIGBUS, not an error. ``DELETE`` maps nothing: a full quota is
            an error (``SQLITE_FULL``), for a database a process writes while what it
            serves fills the same quota (the overlay daemon's change log).
        wait_s: how long a statement waits for a lock another connection holds (SQLite's
            busy timeout; the caller's ``AVFS_LOCK_WAIT`` where it has one): past it the
            statement fails ``SQLITE_BUSY`` (:func:`busy_error` words it).
    """
    try:
        if not os.path.exists(path):
            # the maker's name is its own thread's: threads of one process creating the
            # same database at once each applied the schema to one shared file, and the
            # second ALTER TABLE failed ("duplicate column name")
            maker = f"new-{os.getpid()}-{threading.get_ident()}"
            tmp = f"{path}.{maker}"
            if template is not None:
                import shutil  # (here: a cold status or cat opens databases that are there)

                make_template(template, schema, version)
                shutil.copyfile(template, tmp)
            else:
                _create(tmp, schema, version, journal)
            _place(tmp, path)
        # one connection per thread (threads.ThreadSlots), used by that thread alone; not
        # checked by sqlite3 so that closing a vault (or the end of its thread) can close
        # it from another thread
        if os.access(os.path.dirname(path) or ".", os.W_OK):
            conn = sqlite3.connect(path, timeout=wait_s, isolation_level=None, check_same_thread=False)
        else:
            # a home on a read-only mount, another user's files: SQLite cannot make the
            # WAL's index (``-shm``) there, and a read-write open fails whole ("unable to
            # open database file", every read of the fork); read-only, it keeps the index
            # in memory and reads, and a write fails `read_only`
            return open_read_only(path, wait_s)  # (as it is: no schema or migration to write)
        conn.execute("PRAGMA synchronous=NORMAL")
        have = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if have == 0:
            conn.execute(f"PRAGMA journal_mode={journal}")
            conn.executescript(schema)
            conn.execute(f"PRAGMA user_version={version}")
        elif have < version:
            # migrations are idempotent scripts (IF NOT EXISTS / OR IGNORE), so two processes
            # migrating at once both end at the same schema
            for v in range(have + 1, version + 1):
                try:
                    conn.executescript((migrations or {})[v])
                except sqlite3.OperationalError as exc:
                    if "duplicate column" not in str(exc):
                        raise
            conn.execute(f"PRAGMA user_version={version}")
        return conn
    except OSError as exc:
        raise from_oserror(exc, path) from exc
    except sqlite3.OperationalError as exc:
        if "readonly" in str(exc):
            raise from_oserror(OSError(30, str(exc)), path) from exc
        if is_no_space(exc, path):
            raise no_space(path) from exc
        raise CorruptStateError(
            f"cannot open database {path}: {exc}", hint="check that the avfs home is writable"
        ) from exc
    except sqlite3.DatabaseError as exc:  # (not SQLite's file: cut short, overwritten; was exit 70)
        raise CorruptStateError(
            f"the database {path} is damaged ({exc}); nothing was changed",
            hint="`avfs doctor` names what holds it; put the file back from a copy, or move it"
            " aside (a fork's overlay: its changes not checkpointed are lost with it)",
            details={"path": path},
        ) from exc


def open_read_only(path: str, wait_s: float) -> sqlite3.Connection:
    """``path`` opened read-only, in a directory this process cannot write. With its WAL
    index (``-shm``) there, as any reader; without it, SQLite cannot read a WAL database
    read-only ("unable to open database file") unless told that nothing changes it
    (``immutable``): then only when no WAL file holds transactions the file lacks (the
    last writer's close moved them in and removed it)."""
    quoted = path.replace("%", "%25").replace("?", "%3F").replace("#", "%23")
    conn = sqlite3.connect(
        f"file:{quoted}?mode=ro", uri=True, timeout=wait_s, isolation_level=None, check_same_thread=False
    )
    try:
        conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
        return conn
    except sqlite3.OperationalError:
        conn.close()
        try:
            if os.path.getsize(f"{path}-wal") > 0:
                raise
        except FileNotFoundError:
            pass
    return sqlite3.connect(
        f"file:{quoted}?immutable=1", uri=True, timeout=wait_s, isolation_level=None, check_same_thread=False
    )


def open_cache_in_memory(path: str, schema: str, *, version: int = 1) -> sqlite3.Connection:
    """A cache database (a search index: what it holds can be made again) for a process
    that cannot write where it lives (a home on a read-only mount): ``path``'s rows copied
    into memory when it is there and of this ``version``, else ``schema`` made there.
    What the caller adds is its own and is gone when it closes; nothing is written."""
    mem = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
    try:
        if os.path.exists(path):
            try:
                src = open_read_only(path, DEFAULT_WAIT_S)
                try:
                    src.backup(mem)
                finally:
                    src.close()
            except sqlite3.DatabaseError:
                pass  # (unreadable: made anew in memory, as a writable home remakes it)
        if int(mem.execute("PRAGMA user_version").fetchone()[0]) != version:
            mem.close()
            mem = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
            mem.executescript(schema)
            mem.execute(f"PRAGMA user_version={version}")
        return mem
    except BaseException:
        mem.close()
        raise


# the most of a database and its hot journal :func:`open_past_hot_journal` copies (into the
# host's temporary directory, outside any quota, a copy a reader: review44 D)
HOT_COPY_MAX = 64 << 20


def open_past_hot_journal(path: str, wait_s: float) -> sqlite3.Connection | None:
    """The rollback-journal database ``path`` whose journal a writer left hot (it died
    mid-write, or its commit and then its rollback found no room), where it cannot be
    rolled back: SQLite's every reader must first write the journal's pages back, a write
    its file system (a fork's state at its quota, a full disk) refuses. Read instead from a
    private copy of the two files that SQLite rolls back in a temporary directory: the
    database as it was before that writer's transaction, as any reader with room would see
    it, open ``query_only`` (a write fails "attempt to write a readonly database", as on a
    read-only home). None when ``path`` has no hot journal, the two are past
    :data:`HOT_COPY_MAX`, or the files changed while they were copied (someone with room
    rolled it back: open it again)."""
    import shutil  # (only here: a hot journal no one can roll back is rare)
    import tempfile

    journal = f"{path}-journal"

    def look() -> tuple[int, int, int, int, int, int] | None:
        try:
            a, b = os.stat(path), os.stat(journal)
            with open(journal, "rb") as fh:
                if fh.read(1) in (b"", b"\0"):  # (SQLite's "not hot": no header yet)
                    return None
        except OSError:
            return None
        return (a.st_ino, a.st_size, a.st_mtime_ns, b.st_ino, b.st_size, b.st_mtime_ns)

    seen = look()
    if seen is None or seen[1] + seen[4] > HOT_COPY_MAX:
        return None
    tmp = tempfile.mkdtemp(prefix="avfs-rollback-")
    try:
        copy = os.path.join(tmp, os.path.basename(path))
        shutil.copyfile(path, copy)
        shutil.copyfile(journal, f"{copy}-journal")
        if look() != seen:
            return None
        conn = sqlite3.connect(copy, timeout=wait_s, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()  # (rolls the copy back)
            conn.execute("PRAGMA query_only=ON")
        except BaseException:
            conn.close()
            raise
        return conn  # (its files unlinked below: open, they are this connection's alone)
    except OSError:
        return None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def set_wait(conn: sqlite3.Connection, wait_s: float) -> None:
    """Make ``conn`` wait ``wait_s`` seconds for a lock another connection holds (SQLite's
    busy timeout, as ``sqlite3.connect(timeout=)`` sets it at open)."""
    conn.execute(f"PRAGMA busy_timeout={max(0, min(int(wait_s * 1000), 2**31 - 1))}")


# what SQLite says when its busy wait ran out: another connection held on (not damage)
HELD = frozenset({"SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_BUSY_SNAPSHOT", "SQLITE_BUSY_RECOVERY"})


def is_busy(exc: BaseException) -> bool:
    """Whether ``exc`` is SQLite's "database is locked": its busy wait ran out."""
    return isinstance(exc, sqlite3.OperationalError) and getattr(exc, "sqlite_errorname", "") in HELD


def holders(path: str) -> list[tuple[int, str]]:
    """The other processes holding a write lock on the database at ``path`` (its file, its
    WAL index ``-shm``, its journal), as (pid, command line), read from ``/proc/locks``
    (SQLite's locks are POSIX record locks, listed there by inode): empty when none is
    seen (another user's process may hide its command line: then only its pid)."""
    inodes = set()
    for f in (path, f"{path}-shm", f"{path}-wal", f"{path}-journal"):
        try:
            inodes.add(os.stat(f).st_ino)
        except OSError:
            pass
    try:
        with open("/proc/locks", encoding="ascii", errors="replace") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return []
    pids: list[int] = []
    for line in lines:
        cols = line.split()
        # "1: POSIX  ADVISORY  WRITE 9168 fe:00:2795629 120 120" ("->" marks a waiter)
        if len(cols) < 6 or cols[1] == "->" or cols[3] != "WRITE":
            continue
        try:
            pid, ino = int(cols[4]), int(cols[5].rsplit(":", 1)[1])
        except (ValueError, IndexError):
            continue
        if ino in inodes and pid > 0 and pid != os.getpid() and pid not in pids:
            pids.append(pid)
    out = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                cmd = fh.read().replace(b"\0", b" ").strip().decode("utf-8", "replace")
        except OSError:
            cmd = ""
        out.append((pid, cmd[:200]))
    return out


# the byte of a WAL database's ``-shm`` file a write transaction holds locked (SQLite's
# WAL_WRITE_LOCK: the first of its locks, at offset 120 of the shared memory's file)
_WAL_WRITE_BYTE = "120"


def write_held(path: str) -> bool:
    """Whether a process (this one too) holds the write lock of the WAL database at ``path``
    (a write transaction is open: ``BEGIN IMMEDIATE`` to its ``COMMIT``), from
    ``/proc/locks``, without taking any lock. False where that cannot be read."""
    try:
        ino = os.stat(f"{path}-shm").st_ino
        with open("/proc/locks", encoding="ascii", errors="replace") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return False
    for line in lines:
        cols = line.split()
        # "1: POSIX  ADVISORY  WRITE 9168 fe:00:2795629 120 120" ("->" marks a waiter)
        if len(cols) < 8 or cols[1] == "->" or cols[3] != "WRITE" or cols[6] != _WAL_WRITE_BYTE:
            continue
        try:
            if int(cols[5].rsplit(":", 1)[1]) == ino:
                return True
        except (ValueError, IndexError):
            continue
    return False


def busy_error(what: str, path: str, wait_s: float, *, done: str | None = None) -> BusyError:
    """The error for a lock on the database at ``path`` (``what`` names it: "the fork's
    overlay database") that another connection held for all of ``wait_s`` seconds, naming
    the holder when :func:`holders` sees it. ``done``: what was done already (a message
    saying it, not "nothing was changed")."""
    held = holders(path)
    by = (
        "; ".join(f"pid {pid}" + (f" ({cmd})" if cmd else "") for pid, cmd in held)
        if held
        else "another process or connection"
    )
    outcome = f"{done}, but it is not recorded there" if done else "nothing was changed"
    return BusyError(
        f"{what} {path} stayed locked for {wait_s:g} s, held by {by}: {outcome}",
        hint="retry once that process is done, or wait longer: AVFS_LOCK_WAIT=SECONDS"
        if done is None
        else "do not repeat it; `avfs log` and `avfs status` show the fork as it is",
        details={"path": path, "holders": [{"pid": p, "command": c} for p, c in held], "waited_s": wait_s}
        | ({"done": True} if done else {}),
    )
