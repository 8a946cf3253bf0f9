"""Which of a fork's journaled changes a ``proxy exec`` command made: each call's span of
the fork's two journals (the overlay journal, ``overlay.db``; the upper layer's change log,
``changes.db``: core/workspace/changelog.py), kept in the ``execs`` table of the fork's
``overlay.db``, for ``avfs watch``'s ``source: exec``.

A call opens its span (:func:`began`) when its command is about to run and closes it
(:func:`ended`) once it has recorded what the command changed, both under the fork's exec
lock and each after the mount's daemon journaled what the kernel had queued (proxy/execspan.py):
what the mount journaled inside the span is the command's. It is decided by what was
written when, so a watch reading live and one replaying later say the same. A write by
another process in the same mount while the command runs falls inside the span too (the
kernel does not say who wrote; docs/watch.md). The call's audit record names its span
once written (:func:`named`). A span left open (a call killed) is closed where the next
call's opens: that call holds the lock now.

A command whose git moved the fork's branch has the move carried back by its call
(proxy/seal.py) before the call's audit record is written: the ``execmoves`` row of its
span says so first (:func:`moving`: the reflog's inode and size before the move), then
where the move's reflog line is (:func:`moved`). ``avfs watch`` labels that line the
call's (``exec``) by its place, holds lines there back while the move is under way
or its record not written (at most while the call's process lives), and never labels a
line so by what the line says (found in the thirty-fifth round, changes3: a read between
the carry-back and the audit record gave the call's move as ``git``'s).

``overlay.db`` is a WAL database written with ``synchronous=NORMAL``: a span costs no
fsync (the change log's rollback journal would cost two per call).
"""

from __future__ import annotations

import sqlite3

from ..records import dataclass

SCHEMA = """
CREATE TABLE IF NOT EXISTS execs(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    pid INTEGER NOT NULL,
    oseq_from INTEGER NOT NULL,
    useq_from INTEGER NOT NULL,
    oseq_to INTEGER,
    useq_to INTEGER,
    exec_id TEXT
);
"""
# a span's carried-back move of the fork's branch: ``at`` (the offset of its line in the
# reflog whose inode is ``ino``) NULL while the move is under way (from reflog offset ``start``)
MOVES_SCHEMA = """
CREATE TABLE IF NOT EXISTS execmoves(
    span INTEGER PRIMARY KEY,
    ino INTEGER NOT NULL,
    start INTEGER NOT NULL,
    at INTEGER,
    old TEXT,
    new TEXT
);
CREATE INDEX IF NOT EXISTS execmoves_at ON execmoves(at);
"""

_OSEQ = "(SELECT COALESCE(MAX(seq), 0) FROM journal)"


@dataclass(frozen=True, slots=True)
class ExecSpan:
    """One call's span: the overlay journal's rows and the upper log's events after
    ``*_from`` up to ``*_to`` (None: still running) are its command's; ``pid``: the process
    that ran the call (its own writes, a copy's carry-back, are the command's too);
    ``exec_id``: the call's audit record, once written."""

    pid: int
    oseq_from: int
    useq_from: int
    oseq_to: int | None
    useq_to: int | None
    exec_id: str | None

    def holds_overlay(self, seq: int) -> bool:
        return self.oseq_from < seq and (self.oseq_to is None or seq <= self.oseq_to)

    def holds_upper(self, seq: int) -> bool:
        return self.useq_from < seq and (self.useq_to is None or seq <= self.useq_to)


def began(db: sqlite3.Connection, upper_seq: int, pid: int) -> int:
    """Open a span from now (the overlay journal's newest row, the upper log's
    ``upper_seq``), closing one left open there; its row. Call inside a write transaction."""
    db.execute(f"UPDATE execs SET oseq_to = {_OSEQ}, useq_to = ? WHERE oseq_to IS NULL", (upper_seq,))
    cur = db.execute(f"INSERT INTO execs(pid, oseq_from, useq_from) VALUES(?, {_OSEQ}, ?)", (pid, upper_seq))
    return int(cur.lastrowid or 0)


def ended(db: sqlite3.Connection, row: int, upper_seq: int) -> None:
    """Close span ``row`` now (a closed one stays as it was). Inside a write transaction."""
    db.execute(
        f"UPDATE execs SET oseq_to = {_OSEQ}, useq_to = ? WHERE id = ? AND oseq_to IS NULL",
        (upper_seq, row),
    )


def is_open(db: sqlite3.Connection, row: int) -> bool:
    """Whether span ``row`` is still open."""
    got = db.execute("SELECT 1 FROM execs WHERE id = ? AND oseq_to IS NULL", (row,)).fetchone()
    return got is not None


def named(db: sqlite3.Connection, row: int, exec_id: str) -> None:
    db.execute("UPDATE execs SET exec_id = ? WHERE id = ?", (exec_id, row))


def any_open(db: sqlite3.Connection) -> bool:
    """Whether a span is open (a call is running, or was killed and not yet closed)."""
    try:
        return db.execute("SELECT 1 FROM execs WHERE oseq_to IS NULL LIMIT 1").fetchone() is not None
    except sqlite3.OperationalError:
        return False  # a database from before spans were kept


def close_open(db: sqlite3.Connection, overlay_seq: int, upper_seq: int) -> None:
    """Close any open span at these positions (a fork made by snapshotting another's state
    while a call ran there: that call is not this fork's)."""
    db.execute("UPDATE execs SET oseq_to = ?, useq_to = ? WHERE oseq_to IS NULL", (overlay_seq, upper_seq))


def spans(db: sqlite3.Connection, overlay_after: int, upper_after: int) -> list[ExecSpan]:
    """The spans that may hold a row after those positions, oldest first ([]: a database
    from before spans were kept)."""
    try:
        rows = db.execute(
            "SELECT pid, oseq_from, useq_from, oseq_to, useq_to, exec_id FROM execs"
            " WHERE oseq_to IS NULL OR oseq_to > ? OR useq_to > ? ORDER BY id",
            (overlay_after, upper_after),
        ).fetchall()
    except sqlite3.OperationalError:
        return []
    return [ExecSpan(*r) for r in rows]


@dataclass(frozen=True, slots=True)
class CarriedMove:
    """A span's carried-back move: ``at`` None while it is under way (its line, if any, at
    or after ``start`` in the reflog of inode ``ino``); ``exec_id`` None until the call's
    audit record is written; ``pid`` the call's process; ``open``: its span is (the call
    has not recorded what its command changed)."""

    ino: int
    start: int
    at: int | None
    old: str | None
    new: str | None
    pid: int
    exec_id: str | None
    open: bool


def moving(db: sqlite3.Connection, row: int, ino: int, start: int, old: str | None, new: str) -> None:
    """Span ``row``'s call is about to move the fork's branch from ``old`` to ``new``; its
    reflog (inode ``ino``, 0: none yet) is ``start`` bytes long. Inside a write transaction."""
    db.execute(
        "INSERT OR REPLACE INTO execmoves(span, ino, start, at, old, new) VALUES(?, ?, ?, NULL, ?, ?)",
        (row, ino, start, old, new),
    )


def moved(db: sqlite3.Connection, row: int, ino: int | None, at: int | None) -> None:
    """Span ``row``'s move is done: its line is at ``at`` in the reflog of inode ``ino``
    (None: it did not move, or its line was not found: the row goes)."""
    if ino is None or at is None:
        db.execute("DELETE FROM execmoves WHERE span = ?", (row,))
    else:
        db.execute("UPDATE execmoves SET ino = ?, at = ? WHERE span = ?", (ino, at, row))


def carried_moves(db: sqlite3.Connection, after: int) -> list[CarriedMove]:
    """The moves whose line is at or after reflog offset ``after``, and those under way
    ([]: a database from before they were kept)."""
    try:
        rows = db.execute(
            "SELECT m.ino, m.start, m.at, m.old, m.new, e.pid, e.exec_id, e.oseq_to IS NULL FROM execmoves m"
            " JOIN execs e ON e.id = m.span WHERE m.at IS NULL OR m.at >= ? ORDER BY m.span",
            (after,),
        ).fetchall()
    except sqlite3.OperationalError:
        return []
    return [
        CarriedMove(
            ino=r[0], start=r[1], at=r[2], old=r[3], new=r[4], pid=r[5], exec_id=r[6], open=bool(r[7])
        )
        for r in rows
    ]


def carried_ids(db: sqlite3.Connection, exec_ids: list[str]) -> set[str]:
    """Which of ``exec_ids`` (``audit:OFFSET``) name a call whose move is kept here."""
    if not exec_ids:
        return set()
    marks = ",".join("?" * len(exec_ids))
    try:
        rows = db.execute(
            f"SELECT e.exec_id FROM execmoves m JOIN execs e ON e.id = m.span WHERE e.exec_id IN ({marks})",
            exec_ids,
        ).fetchall()
    except sqlite3.OperationalError:
        return set()
    return {str(r[0]) for r in rows}
