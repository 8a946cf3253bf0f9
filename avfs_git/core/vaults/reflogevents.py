"""A fork's reflog read for the change stream (:mod:`.changes`): its ``ref_moved`` events.

A line is avfs's (``api``, ``exec``, at its operation's time) only where the op log, or a
proxy exec's audit record (the command's git moved the branch: avfs carried the move
back), names that move of that fork: git in the mount writes any message, identity and
time into the vault's reflog. Found in the thirty-fourth round (changes2): a line whose
message began ``avfs`` with a time to come counted as "its operation is not recorded
yet" for as long as that time was ahead (``GIT_COMMITTER_DATE=@4000000000 git update-ref
-m avfs...`` in the mount: the fork's later ref moves were missing from every watch until
2096), and any ``avfs...`` message was labelled ``api`` (``exec`` for ``avfs: avfs proxy
exec:``). Now a line names no operation by its message: one no record names is ``git``'s,
and it waits for its operation (:data:`.changes.OP_WAIT_S`) only where its time is within
that much before now.

The times are kept in the file's order and none after now: a line claiming an earlier
time sorted before the lines written ahead of it, and a batch cut after it resumed past
them (they were skipped); one claiming a later time sorted after every other journal's
events of the batch.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable
from typing import Any

from ..store import refs
from ..workspace import execspans
from ..workspace.execspans import CarriedMove

MoveKey = tuple[str, "str | None", "str | None"]  # (fork, old, new)
Mark = tuple[Any, ...]
# a proxy exec's carried-back move, its record not written yet: its line waits at most while
# the call's process lives, and this long after the line's time (its audit record could not
# be written: a full disk)
EXEC_WAIT_S = 120.0


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # (another user's: there)
    return True


def items(
    fork: str,
    path: str,
    after: int,
    size: int,
    op_moves: dict[MoveKey, list[tuple[float, str, int]]],
    exec_moves: dict[MoveKey, tuple[int, int]],
    wait_s: float,
    carried: tuple[list[CarriedMove], set[int]],
    pairs: list[tuple[Mark, Mark]],
    audit_end: int,
    held: set[int],
    writing: Callable[[], bool],
    cap: float,
) -> tuple[list[tuple[float, int, dict[str, Any], tuple[str, str, int]]], int | None]:
    """The stream's items of the reflog at ``path`` from byte ``after`` to ``size``, and
    where to stop (a line being written, or one waiting for its operation or its exec's
    record; None: the end). ``op_moves``: the operations' moves read (each taken by the
    first line naming it); ``exec_moves``: the audit records' (their start and end
    offsets), of calls whose span kept no move (``carried``: the fork's calls' moves
    carried back, :mod:`..workspace.execspans`). Each line an operation or audit record
    read names is added to ``pairs`` (the record's mark, the line's): a batch keeps both.
    ``carried``: :func:`carried`'s (the moves, the calls' processes that had ended);
    ``audit_end``: where this read's audit log ends (a line its call's record names comes
    in the read that has the record, which names the call's commit too); ``held``: the
    operations held back (a proxy exec's commit before its record: the line waits too);
    ``writing``: whether an operation holds the op log's write lock now (asked only of a
    line past ``wait_s``); ``cap``: the latest time a line is given (the read's start: a
    line dated ahead, or one git dated in the second after it, is as of then)."""
    out: list[tuple[float, int, dict[str, Any], tuple[str, str, int]]] = []
    if size <= after:
        return out, None
    moves, dead = carried
    with open(path, "rb") as fh:
        ino = os.fstat(fh.fileno()).st_ino
        fh.seek(after)
        data = fh.read(size - after)
    off, now, last = after, time.time(), 0.0
    for line in data.splitlines(keepends=True):
        start, off = off, off + len(line)
        if not line.endswith(b"\n"):
            return out, start
        entry = refs.reflog_entry(line.decode("utf-8", "replace").rstrip("\n"), len(refs.ZERO_ID))
        if entry is None:  # (git finds no entry there either)
            out.append((last, 3, {}, ("r", fork, off)))
            continue
        old, new, t, message = entry
        zero = "0" * len(old)
        key = (fork, None if old == zero else old, None if new == zero else new)
        mine = next((m for m in moves if m.at == start and m.ino == ino and _key(fork, m) == key), None)
        ops, by_exec = op_moves.get(key), exec_moves.get(key)
        source, exec_id = "git", None
        if mine is not None:  # a proxy exec's carried-back move, by where avfs wrote its line
            if mine.exec_id is None and mine.pid not in dead and now - t < EXEC_WAIT_S:
                return out, start  # its audit record is being written
            if mine.exec_id is not None and _record_at(mine.exec_id) >= audit_end:
                return out, start  # named by a record this read's audit log ends before: with it
            source, exec_id = "exec", mine.exec_id
            exec_moves.pop(key, None)
        elif ops and ops[0][2] in held:
            return out, start  # its operation waits for its audit record: the line with it
        elif ops:
            t, source, op_id = ops.pop(0)  # an operation's move: right by it (git's clock is seconds)
            pairs.append((("op", op_id), ("r", fork, off)))
        elif by_exec is not None:
            source, exec_id = "exec", f"audit:{by_exec[0]}"
            pairs.append((("audit", exec_moves.pop(key)[1]), ("r", fork, off)))
        elif any(
            m.at is None and m.open and m.ino in (0, ino) and start >= m.start and m.pid not in dead
            for m in moves
        ):
            # a proxy exec is moving the branch: its line may be this one (until the call
            # notes where it is, or, where it could not, closes its span)
            return out, start
        elif (
            message.startswith("avfs")
            and now - t >= 0
            and (now - t < wait_s or (now - t < EXEC_WAIT_S and writing()))
        ):
            # its operation may not be recorded yet: a line just written, or one while an
            # operation holds the op log's write lock (avfs moves a fork's branch in it, and
            # records the move before it lets go: a slow writer's line came as `git`'s, flaky5)
            return out, start
        last = max(last, min(t, now, cap))
        fields: dict[str, Any] = {
            "kind": "ref_moved",
            "fork": fork,
            "ref": refs.fork_ref(fork),
            "old": key[1],
            "new": key[2],
            "source": source,
            "summary": message or None,
        }
        if exec_id is not None:
            fields["exec_id"] = exec_id
        out.append((last, 3, fields, ("r", fork, off)))
    return out, None


def carried(
    conn: sqlite3.Connection | None, fork: str, after: int, exec_moves: dict[MoveKey, tuple[int, int]]
) -> tuple[list[CarriedMove], set[int]]:
    """The fork's proxy execs' carried-back moves whose line is at or after ``after`` (or
    under way), from its ``overlay.db`` (``conn``, closed here), and which of their calls'
    processes had ended before they were read (a call names its record, then ends: read
    before, its record was not named yet); an audit record of ``exec_moves`` whose call's
    span kept its move is taken out (the span says which line)."""
    if conn is None:
        return [], set()
    try:
        mine = {k: v for k, v in exec_moves.items() if k[0] == fork}
        kept = execspans.carried_ids(conn, [f"audit:{v[0]}" for v in mine.values()])
        for k, v in mine.items():
            if f"audit:{v[0]}" in kept:
                del exec_moves[k]
        moves = execspans.carried_moves(conn, after)
        waiting = {m.pid for m in moves if m.exec_id is None}
        if not waiting:
            return moves, set()
        dead = {pid for pid in waiting if not alive(pid)}
        return (execspans.carried_moves(conn, after) if dead else moves), dead
    finally:
        conn.close()


def unaudited(op_id: int, ts: float, commit: str, details: str) -> tuple[int, float, str, int] | None:
    """A proxy exec's commit (an ``exec`` row of the op log: ``details``) whose audit record
    was not written when the row was read: (op id, time, commit, the call's process)."""
    try:
        d = json.loads(details or "{}")
    except ValueError:
        return None
    pid = d.get("pid") if isinstance(d, dict) else None
    if isinstance(pid, int) and d.get("exec_id") is None:
        return (op_id, ts, commit, pid)
    return None


def unaudited_held(pending: list[tuple[int, float, str, int]], audited: set[Any]) -> set[int]:
    """Which of ``pending`` (:func:`unaudited`'s) to hold back, by op id: a commit no audit
    record read (``audited``: their commits) names yet while the call lives, at most
    :data:`EXEC_WAIT_S` past it. Its reflog line waits with it (:func:`items`' ``held``):
    read between the commit and the record, both came with no ``exec_id`` where a replay
    named the call (found by the official CI of session 51)."""
    now = time.time()
    return {
        op_id
        for op_id, ts, commit, pid in pending
        if commit not in audited and now - ts < EXEC_WAIT_S and alive(pid)
    }


def _record_at(exec_id: str) -> int:
    try:
        return int(exec_id.removeprefix("audit:"))
    except ValueError:
        return -1


def _key(fork: str, m: CarriedMove) -> MoveKey:
    zero = "0" * len(m.new or "")
    return (fork, None if not m.old or m.old == zero else m.old, m.new)


def batch_end(items: list[tuple[Any, ...]], limit: int, pairs: list[tuple[Mark, Mark]]) -> int:
    """How many of ``items`` (sorted) a batch of at most ``limit`` takes so that no
    operation or audit record comes without a reflog line it names after it (read in the
    next batch, the line had no record to name it: it was ``git``'s, found in the
    thirty-fifth round, changes3): the batch ends before the record, or, where the record
    is the batch's first item, after its lines."""
    n = min(limit, len(items))
    if n >= len(items) or not pairs:
        return n
    index = {it[3]: i for i, it in enumerate(items)}
    spans = [(index[a], index[b]) for a, b in pairs if a in index and b in index and index[a] < index[b]]
    while True:
        cut = [a for a, b in spans if a < n <= b]
        if not cut:
            return n
        if min(cut) == 0:
            break
        n = min(cut)
    while True:  # the first item's lines come with it (and so on, growing only)
        over = [b for a, b in spans if a < n <= b]
        if not over:
            return n
        n = max(over) + 1
