"""Which of a fork's journaled changes a ``proxy exec`` command made: the call's span of the
fork's journals, kept in its ``overlay.db`` (core/workspace/execspans.py), so that
``avfs watch`` labels them ``source: exec`` with the call's ``exec_id``.

A span opens when the command is about to run and closes once the call has recorded what
it changed, both under the fork's exec lock, each after the mount's daemon has journaled
what the kernel had queued (in this process when it is the daemon, else over the
daemon's socket): so a write made before the command is not inside, and one the command
made is. The call's audit record names the span once it is written. Keeping the span is
best effort: a journal that cannot be written (a full quota) leaves the command's
changes labelled as the mount's, and the command runs all the same.
"""

from __future__ import annotations

import logging
import os
from typing import Any

log = logging.getLogger("avfs.proxy")


def _drain(ws: Any) -> None:
    """Have the overlay mount's daemon journal what the kernel has queued (its change log
    then holds every change made until now). Nothing to do without an upper layer."""
    overlay = ws.overlay
    if not overlay.upper_active():
        return
    journal = overlay.upper_journal()
    if journal is not None:  # this process is the mount's daemon
        journal.changed_since(None)
        return
    git_dir = ws.mount_git_dir()
    if git_dir is not None:
        from ..core.workspace import upperask

        upperask.journal(overlay.upper_dir, git_dir, None)


def _upper_seq(ws: Any) -> int:
    """The upper layer's change log's newest position (0: there is none yet)."""
    from ..core.workspace.changelog import ChangeLog, exists

    if not exists(ws.overlay.dir):
        return 0
    with ChangeLog(ws.overlay.dir, ws.vault.lock_wait_s) as changes:
        return changes.last_seq()


def _warn(what: str, exc: Exception) -> None:
    """Say the span could not be kept (the call goes on: the span is an aid, not a record);
    a full disk in one line, anything else with its traceback."""
    from ..core.errors import is_no_space

    full = is_no_space(exc)
    log.warning("cannot %s the command's span in the fork's journal%s", what, ": the disk is full" if full else "",
                exc_info=not full)  # fmt: skip


def open_span(ws: Any) -> int | None:
    """Open the span of the command about to run in ``ws``'s fork; its row (None: not kept)."""
    from ..core.workspace import execspans

    try:
        _drain(ws)
        useq = _upper_seq(ws)
        with ws.overlay.txn() as db:
            return execspans.began(db, useq, os.getpid())
    except Exception as exc:
        _warn("note", exc)
        return None


def close_span(ws: Any, row: int | None) -> None:
    """Close span ``row``: everything the call changed is journaled now. A span closed
    already (the call's record stage closes it, its cleanup again) costs no second drain
    of the mount's journal (a request to its daemon)."""
    if row is None:
        return
    from ..core.workspace import execspans

    try:
        with ws.overlay.txn() as db:
            if not execspans.is_open(db, row):
                return
        _drain(ws)
        useq = _upper_seq(ws)
        with ws.overlay.txn() as db:
            execspans.ended(db, row, useq)
    except Exception as exc:
        _warn("close", exc)


def name_span(ws: Any, row: int | None, exec_id: str) -> None:
    """Name span ``row`` by the call's audit record (``audit:OFFSET``)."""
    if row is None:
        return
    from ..core.workspace import execspans

    try:
        with ws.overlay.txn() as db:
            execspans.named(db, row, exec_id)
    except Exception as exc:
        _warn("name", exc)


class Carrying:
    """The span's note of the fork's branch moved by the call's carry-back
    (:func:`.seal.carry_back`): :meth:`moving` right before the move (the change stream
    then holds the reflog's lines from there back until the call's record is written),
    :meth:`done` after it (where the move's line is, if it was made)."""

    def __init__(self, ws: Any, row: int, reflog: str) -> None:
        self.ws, self.row, self.reflog = ws, row, reflog
        self.start = 0
        self.move: tuple[str, str, str] | None = None  # (old, new, message) once noted

    def moving(self, old: str | None, new: str, message: str) -> None:
        from ..core.store import refs
        from ..core.workspace import execspans

        try:
            st = os.stat(self.reflog)
            ino, self.start = st.st_ino, st.st_size
        except FileNotFoundError:
            ino, self.start = 0, 0
        try:
            with self.ws.overlay.txn() as db:
                execspans.moving(db, self.row, ino, self.start, old, new)
            self.move = (old or refs.ZERO_ID, new, message)
        except Exception as exc:
            _warn("note the carried move in", exc)

    def done(self) -> None:
        if self.move is None:
            return
        from ..core.workspace import execspans

        try:
            ino, at = self._line(self.move)
        except OSError:
            ino, at = None, None
        try:
            with self.ws.overlay.txn() as db:
                execspans.moved(db, self.row, ino, at)
        except Exception as exc:
            _warn("note the carried move in", exc)

    def _line(self, move: tuple[str, str, str]) -> tuple[int | None, int | None]:
        """(the reflog's inode, the offset of the move's line: the first from where the
        reflog ended before it naming this move with avfs's message); (None, None): none."""
        from ..core.store import refs

        with open(self.reflog, "rb") as fh:
            st = os.fstat(fh.fileno())
            start = self.start if self.start <= st.st_size else 0
            fh.seek(start)
            off = start
            for line in fh:
                at, off = off, off + len(line)
                entry = refs.reflog_entry(line.decode("utf-8", "replace").rstrip("\n"), len(refs.ZERO_ID))
                if entry is not None and line.endswith(b"\n") and (entry[0], entry[1], entry[3]) == move:
                    return st.st_ino, at
        return None, None
