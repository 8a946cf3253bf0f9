"""The operation log of a vault: every mutating avfs action, so it can be listed and undone.

Stored in ``<vault>/avfs/oplog.db`` (SQLite, WAL). A record holds what an undo needs:

- ``refs``: each ref the operation moved, as ``{ref, old, new}`` (None = absent);
- ``workspaces``: each workspace it touched, as ``{fork, before, after, view_changed}``
  where ``before``/``after`` are ``{base, tree}`` (``tree`` is the workspace's tree when
  it had uncheckpointed changes, else None). ``view_changed`` says whether what the
  workspace *shows* changed (a restore) or only its base moved (a checkpoint).
"""

from __future__ import annotations

import errno
import json
import math
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from ..errors import (
    CorruptStateError,
    NoSpaceError,
    ReadOnlyError,
    from_oserror,
    is_no_space,
)
from ..store.digests import sha1
from ..store.gitstore import rfc3339
from ..store.refs import fork_ref
from ..store.threads import ThreadSlots
from ..types import Operation
from ..workspace.sqlite import DEFAULT_WAIT_S, busy_error, close_conn, is_busy, open_db, set_wait


@contextmanager
def interrupt_held() -> Iterator[None]:
    """Hold off SIGINT (Python's ``KeyboardInterrupt``) for the block, then raise it if one
    came: :meth:`OpLog.held` moves an operation's refs and commits its record as one block,
    and a Ctrl-C between the two rolled the record back with the refs moved (an interrupted
    ``avfs merge`` said "interrupted: rerun" with its target merged and no operation for
    ``avfs undo``: 2 of 36 Ctrl-Cs into an 800-file merge). Only where Python's own handler
    is installed (a program's own is left alone; nested, the outer holds it) and on the
    main thread (elsewhere no handler can be set). ``_signal``: loaded at start-up, where
    ``signal`` is a module more on a cold command's path."""
    import _signal  # type: ignore[import-not-found]

    came: list[int] = []
    try:
        if _signal.getsignal(_signal.SIGINT) is not _signal.default_int_handler:
            raise ValueError("not Python's own handler")
        _signal.signal(_signal.SIGINT, lambda signum, frame: came.append(signum))
    except ValueError:  # (another handler, or not the main thread)
        yield
        return
    try:
        yield
    finally:
        _signal.signal(_signal.SIGINT, _signal.default_int_handler)
    if came:
        raise KeyboardInterrupt


_SCHEMA = """
CREATE TABLE IF NOT EXISTS ops(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts INTEGER NOT NULL,
    kind TEXT NOT NULL,
    fork TEXT,
    summary TEXT NOT NULL,
    refs TEXT NOT NULL,
    workspaces TEXT NOT NULL,
    details TEXT NOT NULL,
    undone_by INTEGER,
    undoes INTEGER
);
"""

# operations the log records for the change stream (changes.py) that undo never takes back:
# a push moved the server's refs, a fetch only remote-tracking refs (the next fetch sets them)
RECORDED_ONLY = ("push", "fetch")
_INSERT = (
    "INSERT INTO ops(ts, kind, fork, summary, refs, workspaces, details, undoes) VALUES(?,?,?,?,?,?,?,?)"
)
_RECORDED_ONLY = ", ".join(f"'{k}'" for k in RECORDED_ONLY)
# every column of a row, in the order write_log takes them (doctor reads the log whole)
COLUMNS = "id, ts, kind, fork, summary, refs, workspaces, details, undone_by, undoes"


def exec_summary(fork: str, command: str, commit: str, exec_id: str | None = None) -> str:
    """The op log's line of a ``proxy exec``'s commit: the call (by its ``exec_id`` once
    known), the fork, the command and the commit."""
    return f"exec{' ' + exec_id if exec_id else ''} on {fork}: {command} (commit {commit[:12]})"


def write_log(path: str, rows: list[tuple[Any, ...]]) -> None:
    """A new op log at ``path`` holding ``rows`` (:data:`COLUMNS`, ids kept), its id
    sequence past the last: what doctor keeps of a damaged log."""
    con = sqlite3.connect(path)
    try:
        with con:
            con.executescript(_SCHEMA)
            con.executemany(f"INSERT INTO ops({COLUMNS}) VALUES(?,?,?,?,?,?,?,?,?,?)", rows)
        con.execute("PRAGMA journal_mode=WAL")
    finally:
        con.close()


def _file_id(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


class OpLog:
    def __init__(
        self, state_dir: str, templates: str | None = None, lock_wait: Callable[[], float] | None = None
    ) -> None:
        """``templates``: a directory where a ready-made empty op log is kept (made on first
        need) and copied for a new vault's (:func:`.sqlite.open_db`): creating one costs a
        schema's statements and an fsync, ~20 ms of a `vault clone` here, a copy ~0.5 ms.
        Named by the schema's hash: a changed schema never gets an old template's copy.
        ``lock_wait``: how long a record waits for the log's lock another process holds (the
        vault's ``AVFS_LOCK_WAIT``), read at each record; None: SQLite's 30 s."""
        self.lock_wait = lock_wait
        self.path = os.path.join(state_dir, "oplog.db")
        self._template = None
        if templates is not None:
            digest = sha1(_SCHEMA.encode(), usedforsecurity=False).hexdigest()[:12]
            self._template = os.path.join(templates, f".oplog-template-{digest}.db")
        self._local = ThreadSlots(on_drop=close_conn)
        self._file: tuple[int, int] | None = None  # (device, inode) of the last one opened

    @property
    def db(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            wait = DEFAULT_WAIT_S if self.lock_wait is None else self.lock_wait()
            conn = open_db(self.path, _SCHEMA, template=self._template, wait_s=wait)
            self._local.conn = conn
            self._local.wait = wait
            self._file = _file_id(self.path)
        return conn

    def _waiting(self) -> float:
        """This call's lock wait, made the busy timeout of this thread's connection."""
        db = self.db
        wait = DEFAULT_WAIT_S if self.lock_wait is None else self.lock_wait()
        if getattr(self._local, "wait", None) != wait:
            set_wait(db, wait)
            self._local.wait = wait
        return wait

    def replaced(self) -> bool:
        """Whether the database last opened (its file held open by its connection, so no
        other file can have its inode number) is no longer the one at :attr:`path`: another
        process deleted the vault, or moved another vault's files in (a handle kept from
        call to call asks, :meth:`.Home.drop_replaced`)."""
        return self._file is not None and _file_id(self.path) != self._file

    def close(self) -> None:
        """Release every thread's connection (each reopens on next use)."""
        self._local.release("conn", sqlite3.Connection.close)

    @contextmanager
    def held(self, kind: str) -> Iterator[None]:
        """Hold the log's write lock while an operation of ``kind`` moves its refs, so that
        its :meth:`record` in the block cannot meet the lock held by another process after
        the refs moved (a checkpoint moved the branch, then said "not recorded": `avfs
        undo` then undid the operation before it). Taken before anything is done: held by
        another process for all of the lock wait, it is :class:`BusyError` with "nothing
        was changed"; a log that cannot be written (damaged, read-only) is refused the same
        way, before anything moves (:class:`CorruptStateError`, :class:`ReadOnlyError`;
        the operation moved its refs and then said "done, not recorded", which `avfs
        undo` cannot take back). The record is committed as the
        block ends, rolled back on an error. Re-entrant in one thread: a merge holds it
        while the checkpoint capturing its target records in it."""
        wait = DEFAULT_WAIT_S
        try:
            wait = self._waiting()
            db = self.db
            if db.in_transaction:  # (this thread's own: an outer operation holds it)
                yield
                return
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if is_busy(exc):
                raise busy_error(f"the operation log (the {kind} needs it)", self.path, wait) from exc
            raise self._refused(exc, kind) from exc
        except (sqlite3.DatabaseError, CorruptStateError) as exc:
            raise self._refused(exc, kind) from exc
        with interrupt_held():  # (a Ctrl-C here moved the refs and rolled the record back)
            try:
                yield
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            try:
                db.execute("COMMIT")
            except (sqlite3.DatabaseError, NoSpaceError) as exc:  # (the refs moved: done, not recorded)
                if db.in_transaction:
                    db.execute("ROLLBACK")
                err = self._not_recorded(exc, kind, kind, wait)
                if err is exc:
                    raise
                raise err from exc

    def _refused(self, exc: Exception, kind: str) -> Exception:
        """The error for a log that cannot take an operation's record, met before the
        operation did anything (:meth:`held`)."""
        if isinstance(exc, sqlite3.OperationalError) and "readonly" in str(exc):
            return ReadOnlyError(
                f"the operation log {self.path} cannot be written ({exc}): the {kind} needs it;"
                " nothing was changed",
                hint="make the file and its directory writable (or use a writable --home), then retry",
                details={"path": self.path, "kind": kind},
            )
        if isinstance(exc, sqlite3.OperationalError) and is_no_space(exc, self.path):
            return from_oserror(OSError(errno.ENOSPC, str(exc)), self.path)  # (nothing was changed)
        cause = exc.__cause__ if isinstance(exc, CorruptStateError) and exc.__cause__ else exc
        return CorruptStateError(
            f"the operation log {self.path} is damaged ({cause}): the {kind} needs it; nothing was changed",
            hint="`avfs doctor` names what it holds (`--fix` keeps the entries it can read);"
            " or move the damaged file aside to start a new log",
            details={"path": self.path, "kind": kind},
        )

    def record(
        self,
        kind: str,
        summary: str,
        *,
        fork: str | None = None,
        refs: list[dict[str, str | None]] | None = None,
        workspaces: list[dict[str, Any]] | None = None,
        details: dict[str, Any] | None = None,
        undoes: int | None = None,
    ) -> int:
        """Record an operation that was done; returns its id.

        Raises:
            CorruptStateError: the op log's file is damaged (truncated, not a database): what
                was done stays done, and the error says so rather than "internal error".
        """
        wait = DEFAULT_WAIT_S
        try:
            wait = self._waiting()
            return self._record(kind, summary, fork, refs, workspaces, details, undoes)
        except (sqlite3.DatabaseError, NoSpaceError, CorruptStateError) as exc:
            err = self._not_recorded(exc, kind, summary, wait)
            if err is exc:
                raise
            raise err from exc

    def name_exec(self, op_id: int, exec_id: str) -> None:
        """Name the ``proxy exec`` that operation ``op_id`` (an ``exec``) recorded by its
        ``exec_id`` (``audit:OFFSET``, known once its audit record is written, after the
        commit was recorded), its line saying it too. Best effort: a log busy or damaged
        now keeps the operation as recorded, without the id."""
        try:
            row = self.db.execute("SELECT fork, refs, details FROM ops WHERE id=? AND kind='exec'", (op_id,))
            got = row.fetchone()
            if got is None:
                return
            moved = [r.get("new") for r in json.loads(got[1]) if r.get("new")]
            command = str(json.loads(got[2]).get("command") or "")
            line = exec_summary(str(got[0]), command, str(moved[0]) if moved else "", exec_id)
            self.db.execute(
                "UPDATE ops SET summary=?, details=json_set(details, '$.exec_id', ?) WHERE id=?",
                (line, exec_id, op_id),
            )
        except sqlite3.DatabaseError:
            pass  # (the envelope and the audit log name the call; the op log says exec)

    def _not_recorded(self, exc: Exception, kind: str, summary: str, wait: float) -> Exception:
        """The error for a record that failed after its operation was done, saying so."""
        if isinstance(exc, sqlite3.OperationalError) and is_busy(exc):
            # (was exit 70, "database is locked", after SQLite's 30 s)
            return busy_error("the operation log", self.path, wait, done=f"the {kind} was done ({summary})")
        if isinstance(exc, NoSpaceError) or is_no_space(exc, self.path):  # (not "nothing was changed")
            return NoSpaceError(
                f"no space left on the device: the {kind} was done, but not recorded in {self.path}",
                hint="free some space under the avfs home; `avfs log` shows the fork as it is"
                " (`avfs undo` cannot reach what the log does not hold)",
                details={"path": self.path, "kind": kind, "summary": summary, "done": True},
            )
        if isinstance(exc, sqlite3.OperationalError) and not isinstance(exc, CorruptStateError):
            return exc  # (read-only: its own translation)
        # (CorruptStateError: the file found damaged as it opened, whose own message says
        # "nothing was changed": here the operation was done)
        cause = exc.__cause__ if isinstance(exc, CorruptStateError) and exc.__cause__ else exc
        return CorruptStateError(
            f"the operation log {self.path} is damaged ({cause}): the {kind} was done, but not recorded",
            hint="`avfs log` shows the fork as it is; move the damaged file aside to start a new log"
            " (`avfs undo` cannot reach what it does not hold)",
            details={"path": self.path, "kind": kind, "summary": summary},
        )

    def _record(
        self,
        kind: str,
        summary: str,
        fork: str | None,
        refs: list[dict[str, str | None]] | None,
        workspaces: list[dict[str, Any]] | None,
        details: dict[str, Any] | None,
        undoes: int | None,
    ) -> int:
        db = self.db
        row = (
            # to the millisecond: the change stream (changes.py) orders an operation
            # among the file changes around it by this time
            math.floor(time.time() * 1000) / 1000,
            kind,
            fork,
            summary,
            json.dumps(refs or []),
            json.dumps(workspaces or []),
            json.dumps(details or {}),
            undoes,
        )
        if undoes is None:
            # one statement is one transaction of its own (the connection is in autocommit
            # mode): as atomic as BEGIN/INSERT/COMMIT, two statements fewer (every fork,
            # checkpoint and exec records one)
            return int(db.execute(_INSERT, row).lastrowid or 0)
        held = db.in_transaction  # (in :meth:`held`'s transaction: committed as it ends)
        if not held:
            db.execute("BEGIN IMMEDIATE")
        try:
            op_id = int(db.execute(_INSERT, row).lastrowid or 0)
            db.execute("UPDATE ops SET undone_by=? WHERE id=?", (op_id, undoes))
            # undoing an undo (a redo) makes the operation it had undone current again
            db.execute(
                "UPDATE ops SET undone_by=NULL WHERE id=(SELECT undoes FROM ops WHERE id=? AND kind='undo')",
                (undoes,),
            )
            if not held:
                db.execute("COMMIT")
        except BaseException:
            if not held:
                db.execute("ROLLBACK")
            raise
        return op_id

    def next_id(self) -> int:
        r = self.db.execute("SELECT seq FROM sqlite_sequence WHERE name='ops'").fetchone()
        return (int(r[0]) if r else 0) + 1

    def _op(self, r: tuple[Any, ...]) -> Operation:
        try:
            refs = json.loads(r[5])
            return Operation(
                id=int(r[0]),
                time=rfc3339(int(r[1])),
                kind=str(r[2]),
                fork=r[3],
                summary=str(r[4]),
                refs=refs,
                undone_by=r[6],
                undoes=r[7],
                kept_open=_kept_open(r[8]) if isinstance(r[8], str) and "kept_open" in r[8] else (),
                exec_id=None if r[9] is None else str(r[9]),
            )
        except (TypeError, ValueError) as exc:  # a row avfs did not write: cut short, edited
            raise CorruptStateError(
                f"entry {r[0]} of the operation log {self.path} is damaged ({exc})",
                hint="`avfs doctor` names every damaged entry of the log",
                details={"path": self.path, "op_id": r[0]},
            ) from None

    # (an exec's id read where the row says it: a damaged details column fails no listing)
    _COLS = (
        "id, ts, kind, fork, summary, refs, undone_by, undoes, details,"
        " CASE WHEN kind = 'exec' AND json_valid(details) THEN json_extract(details, '$.exec_id') END"
    )

    def recent(self, limit: int = 50, *, fork: str | None = None) -> list[Operation]:
        """The newest ``limit`` operations; with ``fork``, those that touched that fork
        (:func:`touches`)."""
        if fork is None:
            rows = self.db.execute(
                f"SELECT {self._COLS} FROM ops ORDER BY id DESC LIMIT ?", (limit,)
            ).fetchall()
            return [self._op(r) for r in rows]
        out: list[Operation] = []
        for op in self._newest(fork, ""):
            out.append(op)
            if len(out) >= limit:
                break
        return out

    def _newest(self, fork: str | None, where: str) -> Iterator[Operation]:
        """Operations matching the SQL condition ``where`` (may be empty), newest first;
        with ``fork``, only those that touched it."""
        cond = f"WHERE {where}" if where else ""
        cur = self.db.execute(f"SELECT {self._COLS} FROM ops {cond} ORDER BY id DESC")
        for r in cur:
            op = self._op(r)
            if fork is None or touches(op, fork):
                yield op

    def created(self) -> float:
        """When the vault was cloned (its ``vault_create`` entry's time; 0.0 when there is
        none: a vault made here, or the entry expired by gc). A clone's branches come
        packed, with no reflog (docs/benchmarks.md, "Clone, fetch and push with 20,000
        branches"): this time is what their reflog entries said of them."""
        r = self.db.execute("SELECT ts FROM ops WHERE kind='vault_create' ORDER BY id LIMIT 1").fetchone()
        return float(r[0]) if r is not None else 0.0

    def get(self, op_id: int) -> Operation | None:
        if not -(2**63) <= op_id < 2**63:
            return None  # no row has it (SQLite's integers are 64-bit: binding it overflows)
        r = self.db.execute(f"SELECT {self._COLS} FROM ops WHERE id=?", (op_id,)).fetchone()
        return None if r is None else self._op(r)

    def workspaces(self, op_id: int) -> list[dict[str, Any]]:
        r = self.db.execute("SELECT workspaces FROM ops WHERE id=?", (op_id,)).fetchone()
        return [] if r is None else list(self._loads(op_id, r[0], list))

    def details(self, op_id: int) -> dict[str, Any]:
        r = self.db.execute("SELECT details FROM ops WHERE id=?", (op_id,)).fetchone()
        return {} if r is None else dict(self._loads(op_id, r[0], dict))

    def _loads(self, op_id: int, text: Any, kind: type) -> Any:
        try:
            value = json.loads(text)
            if not isinstance(value, kind):
                raise ValueError(f"not a JSON {kind.__name__}")
        except (TypeError, ValueError) as exc:
            raise CorruptStateError(
                f"entry {op_id} of the operation log {self.path} is damaged ({exc})",
                hint="`avfs doctor` names every damaged entry of the log",
                details={"path": self.path, "op_id": op_id},
            ) from None
        return value

    def last_undoable(self, fork: str | None = None) -> Operation | None:
        """The newest operation that is not undone and is not itself an undo of one; with
        ``fork``, the newest such operation that touched that fork (``undo`` inside a mount:
        another fork's operations are not that fork's to undo)."""
        cond = f"undone_by IS NULL AND kind NOT IN ('undo', 'vault_create', {_RECORDED_ONLY})"
        return next(self._newest(fork, cond), None)

    def last_redoable(self, fork: str | None = None) -> Operation | None:
        """The newest undo that is still in effect (not itself undone, and not a redo: an
        undo of an undo); ``redo`` undoes it. With ``fork``: of that fork's operations."""
        cond = (
            "kind = 'undo' AND undone_by IS NULL"
            f" AND undoes IN (SELECT id FROM ops WHERE kind NOT IN ('undo', {_RECORDED_ONLY}))"
        )
        return next(self._newest(fork, cond), None)


def touches(op: Operation, fork: str) -> bool:
    """Whether operation ``op`` acted on ``fork``: recorded as its fork, or it moved the
    fork's branch (a merge into it, its creation or deletion)."""
    if op.fork == fork:
        return True
    ref = fork_ref(fork)
    return any(r.get("ref") == ref for r in op.refs)


def _kept_open(details: str) -> tuple[str, ...]:
    """The ``kept_open`` paths an operation's details name (:func:`kept_detail`)."""
    got = json.loads(details)
    got = got.get("kept_open") if isinstance(got, dict) else None
    return tuple(str(p) for p in got) if isinstance(got, list) else ()


def kept_paths(kept: list[str]) -> tuple[str, ...]:
    """The paths in ``kept`` (a workspace's ``kept_open``: files a restore, an undo, a
    merge, a revert or a checkout left at their path, a process holding them open for
    writing), sorted, each once. An operation empties it as it starts (the fork's lock
    held) and reads it as it ends, for its result's and its record's ``kept_open``
    (livewrite2: the warning on stderr alone reached no agent reading ``--json``, the API
    or MCP)."""
    return tuple(sorted(set(kept)))


def kept_detail(kept: tuple[str, ...]) -> dict[str, list[str]]:
    """``kept`` (:func:`kept_paths`) as the operation log's record keeps it in its details
    (``kept_open``, read back as :attr:`..types.Operation.kept_open`); nothing when empty."""
    return {"kept_open": list(kept)} if kept else {}
