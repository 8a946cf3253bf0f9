"""The change stream's labels of a fork's ref moves, as a running reader sees them
(changes3, thirty-fifth round; review36's two leftovers).

A ``proxy exec`` whose command's git moved the fork's branch has avfs carry the move back
(its own reflog line), then record what the command changed, then write its audit record,
which names the move. On main a reader between the carry-back and the record (a running
`avfs watch`, the API) held the line for `OP_WAIT_S` (its message begins `avfs`) and then
gave it as `git`'s, for good. And an operation and its reflog line read in two batches
(`limit`) gave the line as `git`'s: the batch boundary decided the label."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from avfs_git.core.operations import checkpoint
from avfs_git.core.store import refs
from avfs_git.core.vaults import audit
from avfs_git.core.vaults.changes import OP_WAIT_S, changes_since

from .test_fuse import _mounted
from .test_watch import _Watch
from .test_watch_sides import journaled

AVFS = [sys.executable, "-m", "avfs_git"]
CARRIED = "\tavfs proxy exec: main moved by the command's git"
# the command: a commit of its own (carried back by avfs), a change beside it (committed by
# the call's record), then it says so and waits for the test's word
STEP = """
set -e
echo one > one.txt
git add one.txt
git commit -qm inside
echo more > extra.txt
: > ready
while [ ! -e go ]; do sleep 0.02; done
"""


@pytest.fixture(params=["overlay", "fuse"])
def mounted(
    request: pytest.FixtureRequest, home: Any, vault: Any, tmp_path: Any
) -> Iterator[tuple[Any, str]]:
    with _mounted(home, vault, tmp_path, request.param) as m:
        yield m


def _exec(mp: str) -> subprocess.Popen[str]:
    with open(os.path.join(mp, "step.sh"), "w") as fh:
        fh.write(STEP)
    cmd = [*AVFS, "--json", "--vault", "v:main", "proxy", "exec", "--", "sh", "step.sh"]
    return subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=mp,
        env={**os.environ, "AVFS_LOCK_WAIT": "120"},
    )


def _until(what: Any, timeout: float = 60.0) -> Any:
    end = time.time() + timeout
    while time.time() < end:
        got = what()
        if got:
            return got
        time.sleep(0.02)
    raise AssertionError(f"not reached: {what}")


def _carried_line(vault: Any) -> str | None:
    with open(refs.reflog_path(vault.path, refs.fork_ref("main")), encoding="utf-8") as fh:
        return next((line for line in fh if line.rstrip("\n").endswith(CARRIED)), None)


def _moves(evs: Any) -> list[tuple[Any, ...]]:
    return [(e["new"], e["source"], e.get("exec_id")) for e in evs if e["kind"] == "ref_moved"]


def test_a_carried_back_move_read_before_the_exec_s_record_is_the_exec_s(mounted: tuple[Any, str]) -> None:
    """The user's side: a running `avfs watch` while a real confined `proxy exec` records
    what its command changed (the op log held by another writer meanwhile, as another avfs
    operation holds it: the call waits there, after its carry-back, before its audit
    record). Past the wait for an operation the watch has not given the carried move as
    `git`'s; once the record lands, the move is `exec`, named by the call's record, and a
    replay from the same cursor says the same. On main the watch gave it as `git`."""
    vault, mp = mounted
    w = _Watch("v:main")
    held: sqlite3.Connection | None = None
    proc = None
    try:
        c0 = w.docs(0, 60.0, until_cursor=True)[0]["cursor"]
        proc = _exec(mp)
        _until(lambda: os.path.exists(os.path.join(mp, "ready")) or proc.poll() is not None)
        assert proc.poll() is None, proc.communicate()
        held = sqlite3.connect(vault.oplog.path, timeout=30.0, isolation_level=None)
        held.execute("BEGIN IMMEDIATE")  # (what a checkpoint of another process holds)
        with open(os.path.join(mp, "go"), "w"):
            pass
        line = _until(lambda: _carried_line(vault))
        stamp = float(line.split("> ", 1)[1].split(" ", 1)[0])
        carried = line.split(" ")[1]
        docs: list[dict[str, Any]] = []
        while time.time() < stamp + OP_WAIT_S + 1.5:  # past the wait for an operation
            docs += w.docs(1, timeout=0.3)
        early = _moves(d["event"] for d in docs if d["kind"] == "watch_event")
        api = [(e.new, e.source) for e in changes_since(vault, "main", c0).events if e.kind == "ref_moved"]
        assert proc.poll() is None  # (still recording: its audit record not written)
        assert all(m[1] == "exec" for m in early if m[0] == carried), early
        assert all(m[1] == "exec" for m in api if m[0] == carried), api
        held.rollback()
        held.close()
        held = None
        out, err = proc.communicate(timeout=120)
        env = json.loads(out)
        assert env["branch_moved"]["to"] == carried and env["result"]["exit_code"] == 0, (out, err)
        want = env["commit"]["commit"]

        def came() -> bool:
            nonlocal docs
            docs += w.docs(1, timeout=0.5)
            evs = [d["event"] for d in docs if d["kind"] == "watch_event"]
            return any(e.get("new") == want and e["kind"] == "ref_moved" for e in evs) and any(
                e["kind"] == "exec" for e in evs
            )

        _until(came)
    finally:
        if held is not None:
            held.rollback()
            held.close()
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        w.stop()
    live = [d["event"] for d in docs if d["kind"] == "watch_event"]
    exec_ids = {e["exec_id"] for e in live if e["kind"] == "exec"}
    assert len(exec_ids) == 1, live
    moves = _moves(live)
    assert (carried, "exec", *exec_ids) in moves, moves
    replay = [e.to_dict() for e in changes_since(vault, "main", c0).events]
    assert _moves(replay) == moves, (replay, live)


def _labels(evs: Any) -> list[tuple[Any, ...]]:
    """The vault's events and ref moves with their labels, in order, and which source wrote
    each path (a path's run of writes read in two batches may come as two events: the
    journal's own batch, not a label)."""
    evs = list(evs)
    moves = [(e.kind, e.fork, e.old, e.new, e.source, e.exec_id, e.op) for e in evs if e.path is None]
    paths = sorted({(e.fork, e.path, e.source, e.exec_id) for e in evs if e.path is not None})
    return [*moves, *paths]


def test_a_batch_boundary_never_changes_a_label(mounted: tuple[Any, str]) -> None:
    """The stream of operations and their ref moves (checkpoints, a fork made, a restore, a
    proxy exec whose command committed) read from one cursor in batches of every size from
    one up: each gives the events one read gives, labels and all. On main an operation at
    a batch's end left its move to the next batch, which named no operation for it: `git`."""
    vault, mp = mounted
    c0 = changes_since(vault, None, None).cursor
    ws = vault.workspace("main")
    ws.write("a.txt", b"a\n")
    first = checkpoint.save(vault, "main", name="a").checkpoint.commit
    ws.write("b.txt", b"b\n")
    checkpoint.save(vault, "main", name="b")
    vault.create_fork("main", "side")
    proc = _exec(mp)
    _until(lambda: os.path.exists(os.path.join(mp, "ready")) or proc.poll() is not None)
    with open(os.path.join(mp, "go"), "w"):
        pass
    out, err = proc.communicate(timeout=120)
    assert json.loads(out)["branch_moved"], (out, err)
    checkpoint.restore(vault, "main", first)
    # (the restore's writes through the mount are in the change log once the daemon has read
    # the kernel's queue: asked here, or a read right after the restore may come first and
    # the restore's changes only in the later reads, as in ci53; tests/test_watch_sides.py)
    journaled(vault, "main")
    whole = changes_since(vault, None, c0)
    assert not whole.more
    want = _labels(whole.events)
    moved = [w for w in want if w[0] == "ref_moved"]
    assert sorted({m[4] for m in moved}) == ["api", "exec"], moved  # (none git's)
    vault_events = sum(e.path is None for e in whole.events)
    for limit in range(1, len(whole.events) + 2):
        got: list[Any] = []
        cursor = c0
        end = time.time() + 30
        while time.time() < end:  # (a move waits for its operation on main, then comes)
            ch = changes_since(vault, None, cursor, limit=limit)
            # (more only where the batch begins with an operation: its lines come with it)
            assert len(ch.events) <= limit or ch.events[0].op is not None, (limit, ch.events)
            got += ch.events
            cursor = ch.cursor
            if not ch.more and sum(e.path is None for e in got) >= vault_events:
                break
        assert _labels(got) == want, (limit, _labels(got), want)


def test_git_in_the_mount_passes_no_move_of_its_own_for_an_exec_s(mounted: tuple[Any, str]) -> None:
    """The attacker's side: after a real confined `proxy exec` whose command's commit avfs
    carried back (A to B), git in the mount, which nothing confines, moves the branch back
    to A and then A to B again with the carry-back's own message. Replayed from before the
    call (`avfs watch --since --once`), the carried move is the exec's and the second A to B
    is `git`'s (a running `avfs watch --since`). On main both were `exec`: the audit record
    named a move by its ids."""
    vault, mp = mounted
    c0 = changes_since(vault, "main", None).cursor
    proc = _exec(mp)
    _until(lambda: os.path.exists(os.path.join(mp, "ready")) or proc.poll() is not None)
    with open(os.path.join(mp, "go"), "w"):
        pass
    out, _ = proc.communicate(timeout=120)
    moved = json.loads(out)["branch_moved"]
    a, b = moved["from"], moved["to"]
    tip = vault.workspace("main").tip()
    for args in ([a, tip], [b, a]):
        message = CARRIED.strip() if args[0] == b else "back"
        subprocess.run(["git", "update-ref", "-m", message, "refs/heads/main", *args], cwd=mp, check=True)
    w = _Watch("v:main", "--since", c0)  # (a line saying `avfs...` dated now waits for an operation)
    docs: list[dict[str, Any]] = []
    try:

        def both() -> bool:
            nonlocal docs
            docs += w.docs(1, timeout=0.5)
            return (
                sum((d["event"].get("old"), d["event"].get("new")) == (a, b) for d in docs if "event" in d)
                >= 2
            )

        _until(both)
    finally:
        w.stop()
    evs = [d["event"] for d in docs if d["kind"] == "watch_event"]
    exec_ids = {e["exec_id"] for e in evs if e["kind"] == "exec"}
    again = [
        (e["source"], e.get("exec_id"))
        for e in evs
        if e["kind"] == "ref_moved" and (e.get("old"), e.get("new")) == (a, b)
    ]
    assert again == [("exec", *exec_ids), ("git", None)], (again, evs)


def _exec_commit(vault: Any) -> tuple[str, int]:
    """A proxy exec's commit as the call records it (this process the call's, alive): its
    checkpoint, an ``exec`` in the op log; its audit record not written yet."""
    vault.workspace("main").write("x.txt", b"x\n")
    res = checkpoint.save(vault, "main", exec_of="make x")
    assert res.op_id is not None
    return res.checkpoint.commit, res.op_id


def test_an_exec_s_commit_read_before_its_audit_record_waits_for_it(vault: Any) -> None:
    """A reader between a proxy exec's commit (its op log row, its ref move) and the call's
    audit record, which names both: the commit and its move wait (the call lives) and come
    once the record is written, named by it, as a replay from the same cursor gives them.
    On main they came at once, `exec` with no `exec_id`, for good (the official CI of
    session 51, `test_a_carried_back_move_read_before_the_exec_s_record_is_the_exec_s`)."""
    c0 = changes_since(vault, "main", None).cursor
    commit, op_id = _exec_commit(vault)
    early = changes_since(vault, "main", c0)
    assert [e for e in early.events if e.new == commit] == [], early.events
    at = audit.append(vault.state_dir, {"request": {"fork": "main", "argv": ["make", "x"]}, "commit": commit})
    vault.oplog.name_exec(op_id, f"audit:{at}")
    later = changes_since(vault, "main", early.cursor)
    whole = changes_since(vault, "main", c0)
    live = [*early.events, *later.events]
    assert _labels(live) == _labels(whole.events)
    named = [(e.kind, e.source, e.exec_id) for e in live if e.new == commit]
    want = (
        ("checkpoint", "exec", f"audit:{at}"),
        ("exec", "exec", f"audit:{at}"),
        ("ref_moved", "exec", f"audit:{at}"),
    )
    assert sorted(named) == sorted(want), live


def test_an_exec_s_commit_whose_call_died_before_its_record_comes_at_once(vault: Any) -> None:
    """The call killed between its commit and its audit record (its process gone): the
    commit and its move come in the next read, the call's (`exec`), with no record to name."""
    c0 = changes_since(vault, "main", None).cursor
    dead = subprocess.Popen(["true"])
    dead.wait()
    commit, op_id = _exec_commit(vault)
    vault.oplog.db.execute(
        "UPDATE ops SET details=json_set(details, '$.pid', ?) WHERE id=?", (dead.pid, op_id)
    )
    got = [(e.kind, e.source, e.exec_id) for e in changes_since(vault, "main", c0).events if e.new == commit]
    assert sorted(got) == [("checkpoint", "exec", None), ("ref_moved", "exec", None)], got
