"""The change stream of a vault: every change to a fork's files and every vault event, in
order, from a cursor (``avfs watch``, MCP ``changes_since``, :func:`changes_since`).

Nothing is recorded for it: it reads the journals that exist, and costs nothing when
nobody reads.

==================  =========================================================  ==========
journal             what it says                                               its events
==================  =========================================================  ==========
``overlay.db``      avfs's own writes to a fork (file commands, the API, MCP,  file
                    a pure-FUSE mount), per path, sequence-numbered
``changes.db``      what the kernel wrote in an overlay mount (the daemon's    file
                    inotify journal made durable, :mod:`..workspace.changelog`)
reflog              every move of a fork's branch, by avfs or by git           ``ref_moved``
``oplog.db``        checkpoints, restores, merges, undo, forks, pushes,        vault
                    fetches
``audit.ndjson``    each ``proxy exec``                                        ``exec``
==================  =========================================================  ==========

A cursor is the position in each of them, as one opaque string (``avfs-w1.`` and
base64url JSON: the vault's stream id, the scope (one fork, or every fork), the op log's
id, the audit log's and each reflog's byte offset, each fork's overlay journal and change
log position with the fork's history id). It survives restarts of the daemon and of the
reader: it names only what is on disk. A cursor the stream cannot continue exactly gives
one ``resync_required`` event (and a new cursor), never a silent gap: another vault's, a
fork's history replaced (deleted and made again), the op log or a reflog expired past it
(``avfs gc``), the change log's oldest kept event newer than it, the kernel's event queue
overflowed. A cursor that does not parse, or names a position the vault has not reached
(from the future), is a :class:`~..errors.CursorInvalidError`.

Order: per path, as written; between journals, by time (the op log's to the second).
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..errors import want_str
from ..store import refs
from ..workspace.changelog import ChangeLog
from ..workspace.changelog import exists as changelog_exists
from ..workspace.changelog import overlay_last as _overlay_last
from ..workspace.execspans import ExecSpan
from ..workspace.execspans import spans as exec_spans
from ..workspace.sqlite import write_held
from . import audit, reflogevents
from .cursor import ForkPos, Pos, decode, invalid
from .cursor import stream_id as _stream_id
from .oplog import RECORDED_ONLY
from .streamfiles import advance, fork_ident, journal_from, now_pos, overlay_db, parse_time, size
from .streamfiles import wake_paths as wake_paths  # (the follower's: cli/watching.py)

if TYPE_CHECKING:
    from .vault import Vault

BATCH = 1000  # events read per call at most (the caller asks again with the new cursor)

FILE_KINDS = ("created", "modified", "deleted", "renamed", "mode")
SOURCES = ("mount", "exec", "api", "mcp", "merge", "restore", "git")

# an overlay journal row's op -> the event kind (None: avfs's own bookkeeping, no change
# anyone made: a checkpoint's pins, a materialized file, an overlay folded or reset)
_JOURNAL_KINDS: dict[str, str | None] = {
    "write": "modified",
    "create": "created",
    "symlink": "created",
    "mkdir": "created",
    "remove": "deleted",
    "chmod": "mode",
    "checkout": "modified",
}
# an op log kind -> (the event kind, its source)
_OP_KINDS: dict[str, tuple[str, str]] = {
    "fork": ("fork_created", "api"),
    "fork_delete": ("fork_deleted", "api"),
    "checkpoint": ("checkpoint", "api"),
    "exec": ("checkpoint", "exec"),  # a `proxy exec`'s commit
    "checkpoint_delete": ("checkpoint_deleted", "api"),
    "restore": ("restore", "restore"),
    "revert": ("revert", "api"),
    "checkout": ("checkout", "restore"),
    "merge": ("merge", "merge"),
    "merge_abort": ("merge_abort", "merge"),
    "undo": ("undo", "restore"),
    "vault_create": ("vault_created", "api"),
    "push": ("push", "api"),
    "fetch": ("fetch", "api"),
}


@dataclasses.dataclass(frozen=True, slots=True)
class ChangeEvent:
    """One event. ``cursor``: where to resume after it. File events (``kind`` in
    :data:`FILE_KINDS`) have ``path`` (and ``old_path`` for a rename); vault events have
    the op log's ``op`` id, and ``old``/``new`` commit ids where a ref moved."""

    cursor: str
    time: str
    kind: str
    fork: str | None = None
    path: str | None = None
    old_path: str | None = None
    blob: str | None = None
    source: str | None = None
    op: int | None = None
    exec_id: str | None = None
    ref: str | None = None
    old: str | None = None
    new: str | None = None
    summary: str | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if v is not None or f.name in ("cursor", "time", "kind", "fork"):
                out[f.name] = v
        return out


@dataclasses.dataclass(frozen=True, slots=True)
class Changes:
    """What :func:`changes_since` read: the events, oldest first, and the cursor after
    them (to pass next time; equal to the last event's)."""

    events: tuple[ChangeEvent, ...]
    cursor: str
    more: bool  # a full batch: ask again at once


def _rfc(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts * 1000) % 1000:03d}Z"


def changes_since(vault: Vault, fork: str | None, cursor: str | None, *, limit: int = BATCH) -> Changes:
    """The events after ``cursor`` in ``fork`` (None: every fork of the vault, and the
    vault's events), at most ``limit``; with no cursor, none, and the cursor of now.

    Raises:
        CursorInvalidError: ``cursor`` does not parse, is of another scope, or is from the
            future.
        ForkNotFoundError: ``fork`` does not exist.
    """
    if cursor is not None:
        want_str(cursor, "cursor")
    if fork is not None:
        vault.require_fork(fork)
    if cursor is None:
        return Changes((), now_pos(vault, fork).encode(), False)
    pos = decode(cursor)
    if pos.scope != fork:
        want = "every fork" if fork is None else f"fork {fork}"
        have = "every fork" if pos.scope is None else f"fork {pos.scope}"
        raise invalid(cursor, f"it is a cursor of {have}, not of {want}")
    sid = _stream_id(vault.state_dir)
    if pos.stream != sid:
        return _resync(vault, fork, "the cursor is of another vault (or of one deleted and made again)")
    return _Reader(vault, fork, pos, cursor, limit).read()


def _resync(vault: Vault, fork: str | None, reason: str) -> Changes:
    now = now_pos(vault, fork).encode()
    ev = ChangeEvent(cursor=now, time=_rfc(time.time()), kind="resync_required", fork=fork, reason=reason)
    return Changes((ev,), now, False)


class _Resync(Exception):
    pass


class _Reader:
    def __init__(self, vault: Vault, fork: str | None, pos: Pos, cursor: str, limit: int) -> None:
        self.vault, self.fork, self.pos, self.cursor, self.limit = vault, fork, pos, cursor, limit
        # the journals are read one after another: what was written after this read began
        # is the next read's (an operation recorded after the op log was read came after a
        # change journaled later still, read in a journal read later: flaky5)
        self.started = time.time()
        # (time, order, event kind tag, apply-to-position fn, fields)
        self.items: list[tuple[float, int, dict[str, Any], tuple[str, str, int] | tuple[str, int]]] = []
        self._daemons: dict[str, list[tuple[int, float, float | None]]] = {}
        self.cut: float | None = None
        # (fork, old, new) of a move the op log names -> its operations' (time, source, id);
        # of a move an exec's audit record names (its carry-back) -> the record's offsets
        self._op_moves: dict[reflogevents.MoveKey, list[tuple[float, str, int]]] = {}
        self._exec_moves: dict[reflogevents.MoveKey, tuple[int, int]] = {}
        self._pairs: list[tuple[reflogevents.Mark, reflogevents.Mark]] = []  # (record, its line)
        # a proxy exec's commit whose audit record is not written yet: (op id, time, commit,
        # the call's process); those held back, by op id
        self._unaudited: list[tuple[int, float, str, int]] = []
        self._held: set[int] = set()
        # nothing at or after this time comes in this read (a proxy exec's changes or commit
        # read before the call's audit record names them: they and what came after wait)
        self.hold: float | None = None
        self._writing: bool | None = None

    def _cut(self, t: float) -> None:
        self.cut = t if self.cut is None else min(self.cut, t)

    def _hold(self, t: float) -> None:
        self.hold = t if self.hold is None else min(self.hold, t)

    def read(self) -> Changes:
        try:
            self._check_future()
            self._oplog()
            self._audit()
            self._hold_unaudited()
            forks = (
                [self.fork]
                if self.fork is not None
                else sorted(set(self.pos.forks) | set(self.vault.fork_names()))
            )
            for f in forks:
                self._fork(f)
        except _Resync as exc:
            return _resync(self.vault, self.fork, str(exc))
        self.items.sort(key=lambda it: (it[0], it[1]))
        # an exec's commit (its checkpoint, its ref move) names the exec (its audit record)
        by_commit: dict[str, str] = {}
        for it in self.items:
            if it[2].get("kind") == "exec" and it[2].get("new"):
                by_commit[it[2]["new"]] = it[2]["exec_id"]
        for it in self.items:
            fields = it[2]
            if (
                fields.get("source") == "exec"
                and fields.get("kind") != "exec"
                and fields.get("new") in by_commit
            ):
                fields["exec_id"] = by_commit[fields["new"]]
        items = [it for it in self.items if it[3][0] != "op" or int(it[3][1]) <= self._end.op]
        if self.cut is not None:  # a journal had more than one batch: up to its last row read
            items = [it for it in items if it[0] <= self.cut]
        # nothing after this read began, nor from a call's change waiting for its audit record
        # nothing after this read began, nor from a call's change waiting for its audit record
        items = _held_back(items, self.started, self.hold, self._pairs)
        n = reflogevents.batch_end(items, self.limit, self._pairs)
        more = self.cut is not None or len(items) > n
        items = items[:n]
        pos = self.pos.copy()
        events: list[ChangeEvent] = []
        for t, _, fields, mark in items:
            advance(pos, mark)
            if fields:
                events.append(ChangeEvent(cursor=pos.encode(), time=_rfc(t), **fields))
        if not more and len(items) == len(self.items):
            pos = self._end  # everything read: the positions at the ends, skipped rows included
        return Changes(tuple(_blobs(self.vault, events)), pos.encode(), more)

    # -- validation ------------------------------------------------------------------------
    def _check_future(self) -> None:
        pos, vault = self.pos, self.vault
        last_op = vault.oplog.next_id() - 1
        if pos.op > last_op:
            raise invalid(
                self.cursor, f"op log position {pos.op} is past the vault's last operation {last_op}"
            )
        if pos.audit > size(audit.path(vault.state_dir)):
            raise invalid(self.cursor, "its audit log position is past the log's end")
        self._end = pos.copy()
        self._end.op = last_op
        self._end.audit = size(audit.path(vault.state_dir))
        first = vault.oplog.db.execute("SELECT MIN(id) FROM ops").fetchone()[0]
        if first is not None and int(first) > pos.op + 1 and pos.op < last_op:
            raise _Resync(f"the op log no longer holds what came after operation {pos.op} (expired by gc)")

    # -- the vault's journals --------------------------------------------------------------
    def _oplog(self) -> None:
        rows = self.vault.oplog.db.execute(
            "SELECT id, ts, kind, fork, summary, refs, details FROM ops WHERE id > ? ORDER BY id",
            (self.pos.op,),
        ).fetchall()
        for op_id, ts, kind, fork, summary, ref_json, details in rows:
            touched = {r.get("ref") for r in json.loads(ref_json)}
            if self.fork is not None and fork != self.fork and refs.fork_ref(self.fork) not in touched:
                self.items.append((float(ts), 0, {}, ("op", int(op_id))))  # not ours: skipped
                continue
            ev_kind, source = _OP_KINDS.get(str(kind), (str(kind), "api"))
            fields: dict[str, Any] = {"kind": ev_kind, "fork": fork, "source": source, "op": int(op_id)}
            fields["summary"] = summary
            moved = [r for r in json.loads(ref_json) if r.get("ref") == refs.fork_ref(fork)] if fork else []
            if moved:
                fields["old"], fields["new"] = moved[0].get("old"), moved[0].get("new")
                if ev_kind == "checkpoint" and fields["new"] and self._by_exec(str(fields["new"])):
                    fields["source"] = "exec"  # the one commit of what a proxy exec changed
                if str(kind) == "exec" and fields["new"]:
                    pending = reflogevents.unaudited(int(op_id), float(ts), str(fields["new"]), details)
                    self._unaudited += [pending] if pending is not None else []
            for r in json.loads(ref_json):  # each fork's branch it moved: its reflog line's
                name = str(r.get("ref") or "")
                # (a push's or fetch's refs are a remote's, never a fork's move: a push of
                # fork a1 took the person's own `git commit` line there as its: the review)
                if name.startswith(refs.HEADS) and str(kind) not in RECORDED_ONLY:
                    key = (name[len(refs.HEADS) :], r.get("old"), r.get("new"))
                    src = "exec" if fields["source"] == "exec" and name == refs.fork_ref(fork) else "api"
                    self._op_moves.setdefault(key, []).append((float(ts), src, int(op_id)))
            self.items.append((float(ts), 0, fields, ("op", int(op_id))))

    def _hold_unaudited(self) -> None:
        """A proxy exec's commit its audit record does not name yet, held back with its
        reflog line and the operations after it (:func:`.reflogevents.unaudited_held`)."""
        audited = {it[2].get("new") for it in self.items if it[2].get("kind") == "exec"}
        self._held = reflogevents.unaudited_held(self._unaudited, audited)
        for op_id, ts, _commit, _pid in self._unaudited:
            if op_id in self._held:
                self._end.op = min(self._end.op, op_id - 1)
                self._hold(ts)

    def _by_exec(self, commit: str) -> bool:
        try:
            return self.vault.store.commit_fields(commit).message.startswith("avfs proxy exec:")
        except Exception:
            return False

    def _audit(self) -> None:
        path = audit.path(self.vault.state_dir)
        if self.pos.audit >= size(path):
            return
        with open(path, "rb") as fh:
            fh.seek(self.pos.audit)
            data = fh.read(self._end.audit - self.pos.audit)
        off = self.pos.audit
        for line in data.splitlines(keepends=True):
            start, off = off, off + len(line)
            if not line.endswith(b"\n"):
                self._end.audit = start  # a line being written: next time
                break
            try:
                rec = json.loads(line)
            except ValueError:
                rec = None
            req = rec.get("request") if isinstance(rec, dict) else None
            fork = req.get("fork") if isinstance(req, dict) else None
            t = parse_time(rec.get("time") if isinstance(rec, dict) else None)
            if not isinstance(rec, dict) or (self.fork is not None and fork != self.fork):
                self.items.append((t, 1, {}, ("audit", off)))
                continue
            moved = rec.get("branch_moved")
            if isinstance(moved, dict):  # the command's git moved the branch: avfs's line says so
                self._exec_moves[(str(fork), moved.get("from"), moved.get("to"))] = (start, off)
            fields = {
                "kind": "exec",
                "fork": fork,
                "source": "exec",
                "exec_id": f"audit:{start}",
                "new": rec.get("commit"),
                "summary": " ".join(map(str, req.get("argv") or [])) if isinstance(req, dict) else None,
            }
            self.items.append((t, 1, fields, ("audit", off)))

    # -- a fork's journals -----------------------------------------------------------------
    def _fork(self, fork: str) -> None:
        vault, pos = self.vault, self.pos
        if not vault.has_fork(fork):
            pos.forks.pop(fork, None)
            self._end.forks.pop(fork, None)
            return  # deleted: its fork_deleted event came from the op log
        ident, start_o, start_u = fork_ident(vault, fork)
        state = vault.ws_dir(fork)
        with ChangeLog(state, vault.lock_wait_s) as log:
            self._fork_journals(fork, state, log, ident, start_o, start_u)

    def _fork_journals(
        self, fork: str, state: str, log: ChangeLog, ident: str, start_o: int, start_u: int
    ) -> None:
        pos, vault = self.pos, self.vault
        have = pos.forks.get(fork)
        reflog = refs.reflog_path(vault.path, refs.fork_ref(fork))
        if have is None or have.ident != ident:
            if self.fork is not None or not self._made_after_cursor(fork):
                raise _Resync(
                    f"fork {fork}'s history was replaced (deleted and made again, or restored by undo)"
                )
            have = ForkPos(ident, start_o, start_u, 0)
            pos.forks[fork] = dataclasses.replace(have)
        o_last, u_last = _overlay_last(state), log.last_seq()
        if have.oseq > o_last or have.useq > u_last:
            raise invalid(self.cursor, f"fork {fork}'s journal position is past its end")
        if have.reflog > size(reflog):
            raise _Resync(f"fork {fork}'s reflog was expired (gc) past the cursor")
        if have.useq + 1 < log.first_kept() and have.useq < u_last:
            raise _Resync(f"fork {fork}'s change log no longer holds what came after the cursor")
        if (dropped := journal_from(state)) > 0 and have.oseq < dropped:
            raise _Resync(f"fork {fork}'s overlay journal no longer holds what came after the cursor")
        self._end.forks[fork] = ForkPos(ident, o_last, u_last, size(reflog))
        spans = self._spans(state, have.oseq, have.useq)
        self._journal(fork, state, have.oseq, o_last, spans)
        self._upper(fork, log, have.useq, u_last, spans)
        self._reflog(fork, state, reflog, have.reflog)

    def _made_after_cursor(self, fork: str) -> bool:
        rows = self.vault.oplog.db.execute(
            "SELECT refs FROM ops WHERE id > ? AND kind IN ('fork', 'undo', 'vault_create')", (self.pos.op,)
        ).fetchall()
        ref = refs.fork_ref(fork)
        return any(r.get("ref") == ref and r.get("old") is None for (j,) in rows for r in json.loads(j))

    def _source_of(self, fork: str, state: str, pid: int | None, ts: float) -> str:
        daemons = self._daemons.get(fork)
        if daemons is None:
            daemons = []
            if changelog_exists(state):
                with ChangeLog(state, self.vault.lock_wait_s) as log:
                    daemons = log.daemons()
            self._daemons[fork] = daemons
        for d_pid, started, ended in daemons:
            if d_pid == pid and started <= ts and (ended is None or ts <= ended):
                return "mount"
        return "api"

    def _unnamed(self, span: ExecSpan, ts: float) -> None:
        """Hold back a change of a call's span that is closed (what the command changed is
        recorded) but not named by the call's audit record yet, while the call lives (at
        most :data:`.reflogevents.EXEC_WAIT_S`): read there, it came with no ``exec_id``, for
        good, where a replay named the call (flaky5: the record is written, then the span
        named). A change read while the command still runs comes at once (docs/watch.md)."""
        if span.exec_id is not None or span.oseq_to is None or time.time() - ts >= reflogevents.EXEC_WAIT_S:
            return
        if reflogevents.alive(span.pid):
            self._hold(ts)

    @staticmethod
    def _spans(state: str, overlay_after: int, upper_after: int) -> list[ExecSpan]:
        """The proxy execs' spans of the fork's journals after these positions."""
        conn = overlay_db(state)
        if conn is None:
            return []
        try:
            return exec_spans(conn, overlay_after, upper_after)
        finally:
            conn.close()

    def _journal(self, fork: str, state: str, after: int, upto: int, spans: list[ExecSpan]) -> None:
        if upto <= after:
            return
        conn = overlay_db(state)
        if conn is None:
            return
        try:
            q = "SELECT seq, path, op, ts, pid, {} FROM journal WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?"
            try:
                rows = conn.execute(q.format("src"), (after, upto, self.limit)).fetchall()
            except sqlite3.OperationalError:  # a database nobody opened since `src` came
                rows = conn.execute(q.format("NULL"), (after, upto, self.limit)).fetchall()
        finally:
            conn.close()
        if len(rows) >= self.limit:
            self._cut(float(rows[-1][3]))
        for seq, path, op, ts, pid, src in rows:
            op = str(op)
            old = None
            if "\t" in op:  # "rename\tOLD" / "copy\tOLD": the entry a move or copy made
                op, old = op.split("\t", 1)
                kind: str | None = "renamed" if op == "rename" else "created"
                if op != "rename":
                    old = None
            else:
                kind = _JOURNAL_KINDS.get(op)
            mark = ("o", fork, int(seq))
            if kind is None or not path:
                self.items.append((float(ts), 2, {}, mark))
                continue
            fields = {"kind": kind, "fork": fork, "path": path, "old_path": old}
            if op == "checkout":
                fields["source"] = "restore"
            else:
                fields["source"] = self._source_of(fork, state, pid, float(ts))
                # inside an exec's span: what its command wrote through the mount, or the
                # call itself (a copy's carry-back)
                span = next((s for s in spans if s.holds_overlay(int(seq))), None)
                if span is not None and (fields["source"] == "mount" or pid == span.pid):
                    fields.update(source="exec", exec_id=span.exec_id)
                    self._unnamed(span, float(ts))
                elif src is not None and fields["source"] == "api":
                    fields["source"] = str(src)  # a front end that said who it is (mcp)
            self.items.append((float(ts), 2, fields, mark))
        self._coalesce(fork, "o")

    def _upper(self, fork: str, log: ChangeLog, after: int, upto: int, spans: list[ExecSpan]) -> None:
        # only up to ``upto``, the end this read's cursor names: a batch the daemon appends
        # meanwhile is the next read's (read here, it came again after that cursor)
        rows = [r for r in log.since(after, self.limit) if r[0] <= upto]
        if len(rows) >= self.limit:
            self._cut(rows[-1][1])
        for seq, ts, kind, path, old in rows:
            mark = ("u", fork, seq)
            if kind == "overflow":
                raise _Resync(f"the kernel dropped events of fork {fork}'s mount (its queue overflowed)")
            fields = {"kind": kind, "fork": fork, "path": path, "old_path": old, "source": "mount"}
            span = next((s for s in spans if s.holds_upper(seq)), None)
            if span is not None:
                fields.update(source="exec", exec_id=span.exec_id)
                self._unnamed(span, ts)
            self.items.append((ts, 2, fields, mark))

    def _reflog(self, fork: str, state: str, path: str, after: int) -> None:
        end = self._end.forks[fork]
        if end.reflog <= after:
            return
        conn = overlay_db(state)
        carried = reflogevents.carried(conn, fork, after, self._exec_moves)
        items, stop = reflogevents.items(
            fork,
            path,
            after,
            end.reflog,
            self._op_moves,
            self._exec_moves,
            OP_WAIT_S,
            carried,
            self._pairs,
            self._end.audit,
            self._held,
            self._op_writing,
            self.started,
        )
        self.items += items
        if stop is not None:
            end.reflog = stop
            # an operation whose line is past the one held back waits with it (emitted now,
            # its line would come later with no operation to name it)
            left = [op for key, moves in self._op_moves.items() if key[0] == fork for _, _, op in moves]
            if left:
                self._end.op = min(self._end.op, min(left) - 1)

    def _op_writing(self) -> bool:
        """Whether an operation holds the op log's write lock now (asked once a read)."""
        if self._writing is None:
            self._writing = write_held(self.vault.oplog.path)
        return self._writing

    def _coalesce(self, fork: str, tag: str) -> None:
        """A run of one kind at one path, journaled within a write's few calls (a FUSE
        write's flush and release), is one event; a creation absorbs the writes after it."""
        out: list[Any] = []
        last: dict[str, int] = {}
        for it in self.items:
            fields, mark = it[2], it[3]
            if mark[0] != tag or mark[1] != fork or not fields:
                out.append(it)
                continue
            i = last.get(fields["path"])
            if i is not None and it[0] - out[i][0] < COALESCE_S and out[i][2]["source"] == fields["source"]:
                prev = out[i][2]["kind"]
                if prev == fields["kind"] or (prev == "created" and fields["kind"] == "modified"):
                    out[i] = (out[i][0], out[i][1], out[i][2], mark)  # resumes after the later row
                    continue
            last[fields["path"]] = len(out)
            out.append(it)
        self.items = out


COALESCE_S = 0.05  # a path's events closer than this are one (see docs/watch.md)
# avfs moves a ref, then records the operation: a read between the two gave the move alone
# (git's time, a cursor of its own) where a replay gives it after its operation. A move
# waits this long (git's whole seconds: up to one more) for its operation, then comes alone.
OP_WAIT_S = 2.0


def _held_back(
    items: list[Any], started: float, hold: float | None, pairs: list[tuple[Any, Any]]
) -> list[Any]:
    """``items`` but those dated after ``started`` or at or after ``hold``, the reflog lines
    of operations left out, and in each journal everything after what is left out (a
    cursor is a position in each: one past a row left out would skip it)."""
    out = {it[3] for it in items if it[0] > started or (hold is not None and it[0] >= hold)}
    if not out:
        return items
    out |= {line for op, line in pairs if op in out}
    first: dict[tuple[Any, ...], Any] = {}
    for mark in out:
        key, at = mark[:-1], mark[-1]
        first[key] = min(first.get(key, at), at)
    return [it for it in items if it[3][:-1] not in first or it[3][-1] < first[it[3][:-1]]]


def _blobs(vault: Vault, events: Iterable[ChangeEvent]) -> list[ChangeEvent]:
    """The blob id each file event's path holds now, for its newest event (what to pass as
    ``--expect``); older events of a path, directories and what is gone have none."""
    evs = list(events)
    newest: dict[tuple[str, str], int] = {}
    for i, ev in enumerate(evs):
        if ev.path and ev.fork and ev.kind in ("created", "modified", "renamed", "mode"):
            newest[(ev.fork, ev.path)] = i
    out = list(evs)
    for (fork, path), i in newest.items():
        try:
            blob = vault.workspace(fork).blob_of(path)
        except Exception:  # gone meanwhile, a directory: no blob
            blob = None
        if blob is not None:
            out[i] = dataclasses.replace(out[i], blob=blob)
    return out
