"""The change stream (core/vaults/changes.py, `avfs watch`, MCP `changes_since`): real
mounts on both backends with a writer process in the mount while `avfs watch` runs as a
subprocess; replay after a remount; --once; resync_required; bad cursors."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from avfs_git.core.errors import CursorInvalidError
from avfs_git.core.operations import checkpoint, history, merge
from avfs_git.core.store import refs
from avfs_git.core.vaults import changes, cursor
from avfs_git.core.vaults.changes import changes_since
from avfs_git.ops import mounts

from .test_fuse import _mounted

AVFS = [sys.executable, "-m", "avfs_git"]


def _events(ch: changes.Changes) -> list[tuple[Any, ...]]:
    return [(e.kind, e.path, e.old_path, e.source) for e in ch.events if e.path is not None]


class _Watch:
    """`avfs --json watch ...` running as a subprocess, its NDJSON read as it comes."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen([*AVFS, "--json", "watch", *args], stdout=subprocess.PIPE)
        assert self.proc.stdout is not None
        self.fd = self.proc.stdout.fileno()
        self.buf = b""

    def docs(
        self, want_events: int, timeout: float = 15.0, *, until_cursor: bool = False
    ) -> list[dict[str, Any]]:
        """Documents until ``want_events`` watch_events came (or a watch_cursor, or the timeout)."""
        out: list[dict[str, Any]] = []
        end = time.time() + timeout
        while time.time() < end:
            while b"\n" in self.buf:
                line, self.buf = self.buf.split(b"\n", 1)
                out.append(json.loads(line))
            if until_cursor and any(d["kind"] == "watch_cursor" for d in out):
                break
            if not until_cursor and sum(d["kind"] == "watch_event" for d in out) >= want_events:
                break
            r, _, _ = select.select([self.fd], [], [], 0.2)
            if r:
                chunk = os.read(self.fd, 65536)
                if not chunk:
                    break
                self.buf += chunk
        return out

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        assert self.proc.stdout is not None
        self.proc.stdout.close()


@pytest.fixture(params=["overlay", "fuse"])
def mounted(
    request: pytest.FixtureRequest, home: Any, vault: Any, tmp_path: Any
) -> Iterator[tuple[Any, str, str]]:
    with _mounted(home, vault, tmp_path, request.param) as (v, mp):
        yield v, mp, request.param


WRITER = """
import os, sys
mp = sys.argv[1]
open(os.path.join(mp, "new.txt"), "w").write("hello")
with open(os.path.join(mp, "README.md"), "a") as f:
    f.write("more\\n")
os.rename(os.path.join(mp, "new.txt"), os.path.join(mp, "renamed.txt"))
os.chmod(os.path.join(mp, "src/app.py"), 0o755)
os.unlink(os.path.join(mp, "bin/run.sh"))
os.mkdir(os.path.join(mp, "d"))
"""
EXPECTED = [
    ("created", "new.txt", None, "mount"),
    ("modified", "README.md", None, "mount"),
    ("renamed", "renamed.txt", "new.txt", "mount"),
    ("mode", "src/app.py", None, "mount"),
    ("deleted", "bin/run.sh", None, "mount"),
    ("created", "d", None, "mount"),
]


def test_a_writer_in_the_mount_shows_in_a_running_watch_then_replays_after_a_remount(
    mounted: tuple[Any, str, str], home: Any
) -> None:
    vault, mp, backend = mounted
    w = _Watch("v:main")
    try:
        head = w.docs(0, 60.0, until_cursor=True)  # following starts with where it stands
        assert [d["kind"] for d in head] == ["watch_cursor"]
        start = head[0]["cursor"]
        subprocess.run([sys.executable, "-c", WRITER, mp], check=True)
        docs = w.docs(len(EXPECTED))
    finally:
        w.stop()
    evs = [d["event"] for d in docs if d["kind"] == "watch_event"]
    assert [(e["kind"], e["path"], e.get("old_path"), e["source"]) for e in evs] == EXPECTED, backend
    assert all(e["fork"] == "main" for e in evs)
    assert evs[2]["blob"] == vault.workspace("main").blob_of("renamed.txt")
    # the daemon goes and comes back: the cursor from before replays exactly the same
    mounts.unmount(home, vault, "main")
    mounts.mount(home, vault, "main", mp, backend=backend)
    replay = changes_since(vault, "main", start)
    assert _events(replay) == EXPECTED
    assert [e.cursor for e in replay.events] == [e["cursor"] for e in evs]
    # and from the last event's cursor: nothing, then what comes next
    assert changes_since(vault, "main", evs[-1]["cursor"]).events == ()
    with open(os.path.join(mp, "after.txt"), "w") as fh:
        fh.write("x")
    deadline = time.time() + 5
    while time.time() < deadline:
        after = _events(changes_since(vault, "main", evs[-1]["cursor"]))
        if after:
            break
        time.sleep(0.05)
    # (its bytes may come as an event of their own: the watcher can look between the open
    # that made the file and the write; ci22 saw created + modified at load ~5)
    assert after[0] == ("created", "after.txt", None, "mount"), after
    assert set(after[1:]) <= {("modified", "after.txt", None, "mount")}, after


def test_once_prints_what_happened_and_the_new_cursor(vault: Any, cli: Any) -> None:
    r = cli("--json", "watch", "v", "--once")
    assert r.code == 0
    docs = [json.loads(line) for line in r.out.splitlines()]
    assert [d["kind"] for d in docs] == ["watch_cursor"]
    c0 = docs[0]["cursor"]
    ws = vault.workspace("main")
    ws.write("a.txt", b"1")
    ws.write("a.txt", b"2")
    ws.rename("a.txt", "b.txt")
    checkpoint.save(vault, "main", name="s1")
    r = cli("--json", "watch", "v", "--once", "--since", c0)
    docs = [json.loads(line) for line in r.out.splitlines()]
    assert docs[-1]["kind"] == "watch_cursor"
    evs = [d["event"] for d in docs[:-1]]
    assert [(e["kind"], e.get("path")) for e in evs] == [
        ("created", "a.txt"),
        ("renamed", "b.txt"),
        ("checkpoint", None),
        ("ref_moved", None),
    ]
    assert evs[2]["op"] and evs[2]["new"] == evs[3]["new"] == vault.workspace("main").base
    assert all(e["source"] == "api" for e in evs)
    # the final cursor: nothing more
    r = cli("--json", "watch", "v", "--once", "--since", docs[-1]["cursor"])
    assert [json.loads(x)["kind"] for x in r.out.splitlines()] == ["watch_cursor"]
    # human output: a line per event
    r = cli("watch", "v", "--once", "--since", c0)
    assert "renamed  a.txt -> b.txt (api)" in r.out


def test_vault_events_restore_undo_merge_fork_with_their_source(vault: Any) -> None:
    ws = vault.workspace("main")
    ws.write("f", b"1")
    checkpoint.save(vault, "main", name="one")
    c0 = changes_since(vault, None, None).cursor
    vault.create_fork("main", "side")
    vault.workspace("side").write("g", b"g")
    checkpoint.save(vault, "side", name="g")
    merge.merge(vault, "side", "main")
    ws.write("f", b"2")
    checkpoint.restore(vault, "main", "one")
    checkpoint.undo(vault)
    ch = changes_since(vault, None, c0)
    kinds = [(e.kind, e.fork, e.source) for e in ch.events if e.kind != "ref_moved"]
    assert kinds == [
        ("fork_created", "side", "api"),
        ("created", "side", "api"),
        ("checkpoint", "side", "api"),
        ("merge", "main", "merge"),
        ("modified", "main", "api"),
        ("restore", "main", "restore"),
        ("undo", "main", "restore"),
    ], kinds
    moved = [e for e in ch.events if e.kind == "ref_moved"]
    assert {e.fork for e in moved} == {"main", "side"}
    assert all(e.new or e.old for e in moved)
    # one fork's stream holds only its own
    one = changes_since(vault, "side", changes_since(vault, "side", None).cursor)
    assert one.events == ()


def test_a_read_between_a_ref_move_and_its_operation_gives_what_a_replay_gives(
    vault: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """avfs moves a fork's ref, then records the operation. A live read in between gave the
    move alone (git's whole-second time, a cursor of its own) before the checkpoint, where a
    replay of the same cursor gives it after the checkpoint at the operation's time: a
    watcher and a replay disagreed (docs/watch.md: the same events, the same cursors). The
    move now waits for its operation (OP_WAIT_S; set long here, so no timing is tested)."""
    from avfs_git.core.vaults import oplog as oplog_mod

    monkeypatch.setattr(changes, "OP_WAIT_S", 600.0)
    c0 = changes_since(vault, "main", None).cursor
    vault.workspace("main").write("f", b"1")
    between: list[changes.Changes] = []
    record = oplog_mod.OpLog.record

    def record_after_a_read(self: Any, kind: str, *args: Any, **kw: Any) -> int:
        if kind == "checkpoint" and not between:
            between.append(changes_since(vault, "main", c0))  # the ref moved, no operation yet
        return record(self, kind, *args, **kw)

    monkeypatch.setattr(oplog_mod.OpLog, "record", record_after_a_read)
    checkpoint.save(vault, "main", name="one")
    assert between, "the checkpoint recorded no operation"
    live = list(between[0].events) + list(changes_since(vault, "main", between[0].cursor).events)
    replay = list(changes_since(vault, "main", c0).events)

    def shown(evs: list[Any]) -> list[tuple[Any, ...]]:
        return [(e.kind, e.path, e.time, e.cursor) for e in evs]

    assert shown(live) == shown(replay)
    assert [e.kind for e in replay] == ["created", "checkpoint", "ref_moved"]
    # a move no operation names waits OP_WAIT_S at most, then comes alone
    c1 = changes_since(vault, "main", None).cursor
    head, parent = (c.id for c in history.log(vault, "main", limit=2))
    refs.cas_update(vault.store, refs.fork_ref("main"), parent, head, "avfs: moved with no operation")
    assert changes_since(vault, "main", c1).events == ()
    monkeypatch.setattr(changes, "OP_WAIT_S", 0.0)
    alone = changes_since(vault, "main", c1).events
    assert [(e.kind, e.old, e.new, e.summary) for e in alone] == [
        ("ref_moved", head, parent, "avfs: moved with no operation")
    ]


def test_bad_cursors_are_clear_errors_and_change_nothing(vault: Any, cli: Any, home: Any) -> None:
    ws = vault.workspace("main")
    ws.write("a", b"a")
    good = changes_since(vault, "main", None).cursor
    before = (vault.oplog.next_id(), ws.overlay.last_seq())
    for bad in ("garbage", cursor.PREFIX + "!!!", cursor.PREFIX + "e30"):
        r = cli("--json", "watch", "v", "--once", "--since", bad)
        assert r.code == 1
        doc = json.loads(r.out)
        assert doc["kind"] == "error" and doc["error"]["code"] == "cursor_invalid"
    # from the future: a position the vault never reached
    pos = cursor.decode(good)
    pos.forks["main"].oseq += 100
    with pytest.raises(CursorInvalidError, match="past its end"):
        changes_since(vault, "main", pos.encode())
    pos = cursor.decode(good)
    pos.op += 5
    with pytest.raises(CursorInvalidError, match="past the vault's last operation"):
        changes_since(vault, "main", pos.encode())
    # another scope's cursor
    with pytest.raises(CursorInvalidError, match="not of every fork"):
        changes_since(vault, None, good)
    assert (vault.oplog.next_id(), ws.overlay.last_seq()) == before
    # another vault's cursor: resync_required, with a cursor that works
    other = home.create_vault("w")
    ch = changes_since(other, "main", changes_since(vault, "main", None).cursor.replace("main", "main"))
    assert [e.kind for e in ch.events] == ["resync_required"]
    assert "another vault" in (ch.events[0].reason or "")
    assert changes_since(other, "main", ch.cursor).events == ()


def test_resync_when_the_fork_was_made_again_or_the_op_log_expired(vault: Any) -> None:
    vault.create_fork("main", "f")
    c = changes_since(vault, "f", None).cursor
    vault.delete_fork("f")
    vault.create_fork("main", "f")
    ch = changes_since(vault, "f", c)
    assert [e.kind for e in ch.events] == ["resync_required"]
    # an op log expired past the cursor (gc)
    c = changes_since(vault, "main", None).cursor
    vault.workspace("main").write("q", b"q")
    checkpoint.save(vault, "main", name="x")
    vault.workspace("main").write("r", b"r")
    checkpoint.save(vault, "main", name="y")
    vault.oplog.db.execute("DELETE FROM ops WHERE id <= ?", (cursor.decode(c).op + 1,))
    ch = changes_since(vault, "main", c)
    assert [e.kind for e in ch.events] == ["resync_required"]
    assert "op log" in (ch.events[0].reason or "")


def test_a_watcher_that_never_reads_does_not_block_writers(mounted: tuple[Any, str, str]) -> None:
    vault, mp, _ = mounted
    c0 = changes_since(vault, "main", None).cursor
    proc = subprocess.Popen([*AVFS, "--json", "watch", "v:main"], stdout=subprocess.PIPE)  # never read
    try:
        time.sleep(1.0)
        for i in range(400):  # far more than a pipe holds (~64 KiB of events)
            with open(os.path.join(mp, f"f{i:04d}-{'x' * 150}.txt"), "w") as fh:
                fh.write("x")
        ws = vault.workspace("main")
        for i in range(200):
            ws.write(f"api{i}", b"x")
        assert proc.poll() is None  # stuck on its pipe, still there
        # the writers were not held: everything is written and journaled
        assert len([n for n in os.listdir(mp) if n.startswith("f")]) == 400
    finally:
        proc.kill()
        proc.wait(10)
        assert proc.stdout is not None
        proc.stdout.close()
    # what it missed is all there for the next reader
    # (the overlay daemon appends the kernel's events from its own thread, after the writes
    # returned: read until they are all there)
    made: set[str] = set()
    cursor = c0
    deadline = time.time() + 60
    while len(made) < 600 and time.time() < deadline:
        ch = changes_since(vault, "main", cursor)
        made |= {e.path for e in ch.events if e.kind == "created" and e.path}
        cursor = ch.cursor
        if not ch.more:
            time.sleep(0.1)
    assert len(made) == 600


def test_proxy_exec_events_name_the_exec(vault: Any) -> None:
    import avfs_git

    ws = vault.workspace("main")
    ws.write("a", b"a")
    checkpoint.save(vault, "main", name="b")
    c = changes_since(vault, "main", None).cursor
    res = avfs_git.exec_in(ws, ["sh", "-c", "echo hi > out.txt"], timeout_ms=60_000)
    assert res.exit_code == 0 and res.commit is not None
    evs = changes_since(vault, "main", c).events
    got = [(e.kind, e.path, e.source) for e in evs]
    assert ("created", "out.txt", "exec") in got  # written through the mount it ran in, by it
    commit = res.commit.commit
    execs = [e for e in evs if e.kind == "exec"]
    assert len(execs) == 1 and execs[0].new == commit and execs[0].exec_id
    assert next(e for e in evs if e.path == "out.txt").exec_id == execs[0].exec_id
    for kind in ("checkpoint", "ref_moved"):
        e = next(e for e in evs if e.kind == kind)
        assert (e.source, e.new, e.exec_id) == ("exec", commit, execs[0].exec_id), e


def test_push_and_fetch_are_vault_events_that_undo_passes_over(vault: Any, tmp_path: Any) -> None:
    """A push and a fetch (to and from a real bare repository) are `push`/`fetch` events
    naming the refs they moved, in the vault's stream and in the pushed fork's; `undo`
    passes over them to the operation before, and refuses one named by id."""
    from avfs_git.core.errors import UsageError
    from avfs_git.core.operations import remote

    server = tmp_path / "server.git"
    subprocess.run(["git", "init", "-q", "--bare", str(server)], check=True)
    remote.add(vault, "origin", str(server))
    ws = vault.workspace("main")
    ws.write("f", b"1")
    checkpoint.save(vault, "main", name="one")
    c0 = changes_since(vault, None, None).cursor
    f0 = changes_since(vault, "main", None).cursor
    pushed = remote.push(vault, "origin", ["main"])
    fetched = remote.fetch(vault, "origin")
    got = [(e.kind, e.fork, e.source) for e in changes_since(vault, None, c0).events]
    assert got == [("push", "main", "api"), ("fetch", None, "api")], got
    push_ev = next(e for e in changes_since(vault, None, c0).events if e.kind == "push")
    assert push_ev.summary is not None and "origin" in push_ev.summary
    assert [u.ref for u in pushed.updates] == ["refs/heads/main"]
    assert fetched.updates == ()  # the push already set the remote-tracking ref
    # the fork's own stream has its push, not the vault's fetch
    assert [e.kind for e in changes_since(vault, "main", f0).events] == ["push"]
    # undo takes back the checkpoint, not the push or the fetch
    done = checkpoint.undo(vault)
    assert done.undone.kind == "checkpoint"
    push_op = next(op for op in vault.oplog.recent() if op.kind == "push")
    with pytest.raises(UsageError, match="recorded, not undone"):
        checkpoint.undo(vault, push_op.id)


def _until(pred: Any, timeout: float = 10.0) -> Any:
    end = time.time() + timeout
    while True:
        got = pred()
        if got or time.time() > end:
            return got
        time.sleep(0.05)


def test_what_a_proxy_exec_command_writes_is_its_own_live_and_replayed(
    mounted: tuple[Any, str, str],
) -> None:
    """A person writes in the mount, then a `proxy exec` command (the CLI, served by the
    mount's daemon) writes and removes, then the person again: a running watch labels the
    command's changes `exec` and the person's `mount`, and a replay from the same cursor
    says the same, the command's changes naming its `exec` event's id."""
    vault, mp, backend = mounted
    w = _Watch("v:main")
    try:
        start = w.docs(0, 60.0, until_cursor=True)[0]["cursor"]
        with open(os.path.join(mp, "before.txt"), "w") as fh:
            fh.write("person\n")
        cmd = "echo agent > by-exec.txt; rm bin/run.sh"
        r = subprocess.run(
            [*AVFS, "--json", "--vault", "v:main", "proxy", "exec", "--", "sh", "-c", cmd],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert r.returncode == 0, r.stderr
        env = json.loads(r.stdout)
        assert env["result"]["exit_code"] == 0 and env["commit"], env
        with open(os.path.join(mp, "after.txt"), "w") as fh:
            fh.write("person\n")
        docs: list[dict[str, Any]] = []
        end = time.time() + 30
        while time.time() < end and not any(d.get("event", {}).get("path") == "after.txt" for d in docs):
            docs += w.docs(1, timeout=1.0)
    finally:
        w.stop()
    live = [d["event"] for d in docs if d["kind"] == "watch_event" and d["event"].get("path")]
    want = [
        ("created", "before.txt", "mount"),
        ("created", "by-exec.txt", "exec"),
        ("deleted", "bin/run.sh", "exec"),
        ("created", "after.txt", "mount"),
    ]
    assert [(e["kind"], e["path"], e["source"]) for e in live] == want, (backend, live)
    replay = changes_since(vault, "main", start).events
    assert [(e.kind, e.path, e.source) for e in replay if e.path] == want
    exec_ev = [e for e in replay if e.kind == "exec"]
    assert len(exec_ev) == 1 and exec_ev[0].exec_id
    for e in replay:
        if e.path:
            assert e.exec_id == (exec_ev[0].exec_id if e.source == "exec" else None), e


def test_a_write_while_no_exec_runs_is_the_mounts_even_after_an_exec_was_killed(
    mounted: tuple[Any, str, str],
) -> None:
    """An exec whose span was left open (its process killed) does not label what comes
    after it: the next exec, holding the lock, closes it where it starts."""
    from avfs_git.core.workspace import execspans

    vault, mp, _backend = mounted
    ws = vault.workspace("main")
    c0 = changes_since(vault, "main", None).cursor
    with ws.overlay.txn() as db:  # what a call killed after its span opened leaves
        execspans.began(db, 0, 1)
    import avfs_git

    res = avfs_git.exec_in(ws, ["sh", "-c", "echo x > mine.txt"], timeout_ms=60_000)
    assert res.exit_code == 0
    with open(os.path.join(mp, "later.txt"), "w") as fh:
        fh.write("person\n")
    got = _until(
        lambda: (
            [(e.path, e.source) for e in changes_since(vault, "main", c0).events if e.path]
            if any(e.path == "later.txt" for e in changes_since(vault, "main", c0).events)
            else None
        )
    )
    assert got == [("mine.txt", "exec"), ("later.txt", "mount")]


def test_mcp_writes_are_labelled_mcp_and_the_apis_api(home: Any, vault: Any) -> None:
    from avfs_git.mcp.tools import AvfsTools

    c0 = changes_since(vault, "main", None).cursor
    tools = AvfsTools(home.path, "v:main")
    json.loads(tools.call("write_file", {"path": "from-mcp.txt", "content": "m\n"}))
    vault.workspace("main").write("from-api.txt", b"a\n")
    json.loads(tools.call("write_file", {"path": "again-mcp.txt", "content": "m2\n"}))
    got = [(e.kind, e.path, e.source) for e in changes_since(vault, "main", c0).events if e.path]
    assert got == [
        ("created", "from-mcp.txt", "mcp"),
        ("created", "from-api.txt", "api"),
        ("created", "again-mcp.txt", "mcp"),
    ]


def test_the_overlay_journal_is_bounded_and_what_reads_past_it_hears_everything(
    vault: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The overlay journal keeps about MAX_JOURNAL rows, dropping the oldest in steps: a
    watch cursor from before the drop is `resync_required`, a journal position before it
    is "everything" (the root) to every reader, git's fsmonitor token from before it is
    answered `/`; positions after it read as before."""
    from avfs_git.core.workspace import overlay as ov_mod
    from avfs_git.mount.journalhook import JournalAnswerer

    monkeypatch.setattr(ov_mod, "MAX_JOURNAL", 64)
    monkeypatch.setattr(ov_mod, "TRIM_STEP", 16)
    ws = vault.workspace("main")
    ws.write("first.txt", b"0")
    c0 = changes_since(vault, "main", None).cursor
    s0 = ws.overlay.last_seq()
    token = JournalAnswerer(ws.overlay).answer("")[0]
    for i in range(200):
        ws.write(f"f{i}.txt", b"x")
    kept = ws.overlay.db.execute("SELECT COUNT(*) FROM journal").fetchone()[0]
    dropped = ws.overlay.journal_from()
    assert dropped > s0 and kept <= 64 + 16, (dropped, kept)
    # past what is kept: everything / resync
    assert ws.overlay.changes_since(s0)[1] == [""]
    assert ws.overlay.changes_by_others(s0)[1] == [""]
    assert JournalAnswerer(ws.overlay).answer(token)[1:] == ["/"]
    ch = changes_since(vault, "main", c0)
    assert [e.kind for e in ch.events] == ["resync_required"]
    assert "overlay journal" in (ch.events[0].reason or "")
    # within what is kept: exactly what came after
    s1 = ws.overlay.last_seq()
    c1 = changes_since(vault, "main", None).cursor
    answerer = JournalAnswerer(ws.overlay)  # (the daemon's one: it trusts the tokens it handed out)
    t1 = answerer.answer("")[0]
    ws.write("late.txt", b"y")
    assert ws.overlay.changes_since(s1)[1] == ["late.txt"]
    assert answerer.answer(t1)[1:] == ["late.txt", "late.txt/"]
    # a daemon started since trusts no token it did not hand out or write (fix39b: a token
    # planted ahead and then passed by the person's edits): "everything"
    assert JournalAnswerer(ws.overlay).answer(t1)[1:] == ["/"]
    assert [(e.kind, e.path) for e in changes_since(vault, "main", c1).events] == [("created", "late.txt")]


def test_a_batch_appended_while_a_read_runs_comes_once(vault: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The daemon appends to the change log while a watch reads it: a row past the end the
    read's cursor names is left for the next read, never given twice."""
    from avfs_git.core.workspace.changelog import ChangeLog

    ws = vault.workspace("main")
    ws.write("seed", b"s")
    c0 = changes_since(vault, "main", None).cursor
    with ChangeLog(ws.overlay.dir) as log:
        log.append([(time.time(), "created", "one.txt", None)])
    real = ChangeLog.since
    appended: list[bool] = []

    def since(self: ChangeLog, seq: int, limit: int) -> list[Any]:
        if not appended:  # after the read took the log's end: the daemon's next batch
            appended.append(True)
            self.append([(time.time(), "created", "two.txt", None)])
        return real(self, seq, limit)

    monkeypatch.setattr(ChangeLog, "since", since)
    first = changes_since(vault, "main", c0)
    second = changes_since(vault, "main", first.cursor)
    paths = [e.path for e in (*first.events, *second.events)]
    assert paths == ["one.txt", "two.txt"]


def test_a_reader_that_goes_away_ends_the_watch_with_exit_0(vault: Any) -> None:
    """`avfs --json watch v:main | head -1`: the reader takes the cursor and goes; the
    next event's write fails (EPIPE) and the watch ends with exit 0, nothing on stderr.
    Found by review43: stdout is the JSON mode's capture there (no ``fileno``), and the
    broken pipe ended in a traceback, exit 1."""
    proc = subprocess.Popen(
        [*AVFS, "--json", "watch", "v:main"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        assert json.loads(proc.stdout.readline())["kind"] == "watch_cursor"
        proc.stdout.close()  # (the reader went away)
        ws = vault.workspace("main")
        for i in range(100):  # (each one an event the watch writes, until it has ended)
            ws.write(f"w{i}.txt", b"x\n")
            if proc.poll() is not None:
                break
            time.sleep(0.2)
        code, err = proc.wait(30), proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        assert proc.stderr is not None
        proc.stderr.close()
    assert (code, err) == (0, b"")
