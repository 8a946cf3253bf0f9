"""The change stream read between two writes that belong together (flaky5, thirty-ninth round).

The official CI of session 51 found one such window (a proxy exec's commit read before its
audit record: `test_watch_labels`); these are the others the reader had, each held open
here on purpose, with no timing involved, the way a loaded machine holds it by chance:

- a proxy exec's span of the fork's journals, closed (the command's changes recorded) but
  not yet named by the call's audit record (:func:`.execspan.name_span` runs after the
  record is written): a read there gave the command's file events as ``exec`` with no
  ``exec_id``, for good, where a replay named the call.
- a ref avfs moved, its operation not yet in the op log (another writer holds the log, or
  the machine is slow): the line waited :data:`.changes.OP_WAIT_S` (2 s, from git's whole
  second: one to two) and then came as ``git``'s, for good, where a replay gave it as its
  operation's (``api``).
- the journals read one after another: an operation recorded after a read had read the op
  log, and a change the mount's daemon journaled after that operation but before the read
  reached the change log, came change first, operation next (its time earlier), where a
  replay gives them in the order they happened.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from typing import Any

from avfs_git.core.operations import checkpoint
from avfs_git.core.store import refs
from avfs_git.core.vaults import audit
from avfs_git.core.vaults.changes import OP_WAIT_S, changes_since
from avfs_git.proxy import execspan

from .test_watch_labels import _until


def _files(evs: Any) -> list[tuple[Any, ...]]:
    return [(e.kind, e.path, e.source, e.exec_id) for e in evs if e.path is not None]


def test_a_span_read_before_the_call_names_it_waits_for_its_name(vault: Any) -> None:
    """A call (this process, alive) ran its command, recorded what it changed (its span
    closed, its commit made), and is between its audit record and naming its span, or
    before both: a read there holds the command's file events back with the call's
    commit; once the span is named they come, the call's, as a replay from the same
    cursor gives them. On main they came at once, ``exec`` with no ``exec_id``, for good."""
    ws = vault.workspace("main")
    c0 = changes_since(vault, "main", None).cursor
    row = execspan.open_span(ws)
    assert row is not None
    ws.write("made.txt", b"by the command\n")
    execspan.close_span(ws, row)
    res = checkpoint.save(vault, "main", exec_of="make made")
    assert res.op_id is not None
    before = changes_since(vault, "main", c0)  # (before the audit record)
    assert _files(before.events) == [], before.events
    at = audit.append(
        vault.state_dir, {"request": {"fork": "main", "argv": ["make"]}, "commit": res.checkpoint.commit}
    )
    vault.oplog.name_exec(res.op_id, f"audit:{at}")
    between = changes_since(vault, "main", before.cursor)  # (the record written, the span not named)
    assert _files(between.events) == [], between.events
    execspan.name_span(ws, row, f"audit:{at}")
    after = changes_since(vault, "main", between.cursor)
    live = [*before.events, *between.events, *after.events]
    whole = changes_since(vault, "main", c0).events
    assert _files(live) == [("created", "made.txt", "exec", f"audit:{at}")], live
    assert [(e.kind, e.source, e.exec_id) for e in live] == [(e.kind, e.source, e.exec_id) for e in whole]


def _lines(vault: Any) -> list[str]:
    with open(refs.reflog_path(vault.path, refs.fork_ref("main")), encoding="utf-8") as fh:
        return fh.read().splitlines()


def _moves(evs: Any) -> list[tuple[Any, ...]]:
    return [(e.kind, e.new, e.source, e.op) for e in evs if e.path is None]


def _watch_once(cursor: str) -> list[dict[str, Any]]:
    """`avfs --json watch v:main --since CURSOR --once` (another process, as a reader is):
    its events, then its cursor."""
    got = subprocess.run(
        [sys.executable, "-m", "avfs_git", "--json", "watch", "v:main", "--since", cursor, "--once"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert got.returncode == 0, got
    return [json.loads(line) for line in got.stdout.splitlines()]


def test_a_move_read_before_its_operation_is_recorded_is_its_operation_s(vault: Any) -> None:
    """A checkpoint moved the fork's branch under the op log's lock (:meth:`.OpLog.held`,
    taken before the move) and has not recorded its operation yet (a slow machine; here
    this process between the two steps a checkpoint takes). Another process's read past
    the wait for an operation (:data:`.changes.OP_WAIT_S`) holds the move back while the
    op log's write lock is held; once the operation is recorded, the checkpoint and its
    move come, the move ``api``'s, as a replay from the same cursor gives them. On main
    the read gave the move as ``git``'s, with a cursor past it, for good."""
    c0 = changes_since(vault, "main", None).cursor
    ws = vault.workspace("main")
    ws.write("a.txt", b"a\n")
    tip = ws.tip()
    with vault.oplog.held("checkpoint"):
        commit, _ = ws.commit_overlay("a\n")  # (the branch moved: its reflog line)
        line = _lines(vault)[-1]
        stamp = float(line.split("> ", 1)[1].split(" ", 1)[0])
        time.sleep(max(0.0, stamp + OP_WAIT_S + 1.2 - time.time()))  # past the wait for an operation
        early = _watch_once(c0)
        vault.oplog.record(
            "checkpoint", f"checkpoint {commit[:12]} on main", fork="main",
            refs=[{"ref": refs.fork_ref("main"), "old": tip, "new": commit}],
        )  # fmt: skip
    assert commit is not None and line.split(" ")[1] == commit
    moved = [d["event"] for d in early if d["kind"] == "watch_event" and "path" not in d["event"]]
    assert moved == [], moved
    later = changes_since(vault, "main", early[-1]["cursor"]).events
    whole = changes_since(vault, "main", c0).events
    assert _moves(later) == _moves(whole), (early, later, whole)
    assert [m[:3] for m in _moves(later)] == [("checkpoint", commit, "api"), ("ref_moved", commit, "api")]


def _reading_the_fork(thread: threading.Thread) -> bool:
    """Whether ``thread`` is in a read's journals of the fork (the op log read before)."""
    frame = sys._current_frames().get(thread.ident or 0)
    while frame is not None:
        if frame.f_code.co_name == "_fork":
            return True
        frame = frame.f_back
    return False


def test_an_operation_recorded_while_a_read_is_under_way_comes_before_what_came_after_it(vault: Any) -> None:
    """A read has read the op log and waits for the fork's change log (held here, as the
    mount's daemon holds it while it appends); meanwhile a checkpoint is recorded and the
    daemon journals a change after it. The read gives nothing after its start: the
    checkpoint and then the change come in the next read, in the order a replay gives
    them. On main the read gave the change, and the next one the checkpoint, dated before."""
    c0 = changes_since(vault, "main", None).cursor  # (the fork's change log made: its identity)
    held = sqlite3.connect(
        os.path.join(vault.ws_dir("main"), "changes.db"), timeout=30.0, isolation_level=None
    )
    got: list[Any] = []
    reader = threading.Thread(target=lambda: got.append(changes_since(vault, "main", c0)))
    try:
        held.execute("BEGIN EXCLUSIVE")
        reader.start()
        _until(lambda: _reading_the_fork(reader))
        vault.workspace("main").write("a.txt", b"a\n")
        op = checkpoint.save(vault, "main", name="a").op_id
        held.execute("INSERT INTO events(ts, kind, path) VALUES(?, 'created', 'b.txt')", (time.time(),))
        held.execute("COMMIT")
        reader.join(60)
    finally:
        held.close()
    assert got, "the read did not end"
    later = changes_since(vault, "main", got[0].cursor).events
    live = [(e.kind, e.path, e.op) for e in [*got[0].events, *later]]
    whole = [(e.kind, e.path, e.op) for e in changes_since(vault, "main", c0).events]
    assert live == whole, (live, whole)
    assert [k for k in live if k[0] != "ref_moved"] == [
        ("created", "a.txt", None),
        ("checkpoint", None, op),
        ("created", "b.txt", None),
    ]
