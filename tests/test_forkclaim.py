"""A snapshot fork's change log is made with its claim in it (core/workspace/changelog.py
``claim_new_fork``, core/workspace/sqlite.py ``create_filled``): the new fork's history starts
where its source's journal was, and a fork killed half-way is made again cleanly."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from avfs_git.core.types import IgnoredMode
from avfs_git.core.vaults.home import Home
from avfs_git.core.workspace import changelog
from avfs_git.core.workspace.changelog import ChangeLog

from .test_share import lhome  # noqa: F401  (the fixture)


def _meta(state_dir: str) -> dict[str, str]:
    conn = sqlite3.connect(os.path.join(state_dir, changelog.FILE))
    try:
        return dict(conn.execute("SELECT key, value FROM meta").fetchall())
    finally:
        conn.close()


def test_a_snapshot_of_a_source_without_a_log_gets_one_made_claimed(
    lhome: Home,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    vault = lhome.create_vault("v")
    ws = vault.workspace("main")
    for i in range(3):
        ws.write(f"f{i}.txt", b"x\n")
    assert not os.path.exists(os.path.join(ws.state_dir, changelog.FILE))
    at = ws.overlay.last_seq()
    claims: list[str] = []
    real = ChangeLog.claim

    def counted(self: ChangeLog, fork: str, overlay_seq: int, *, fresh: bool = False) -> tuple[str, int, int]:
        claims.append(fork)
        return real(self, fork, overlay_seq, fresh=fresh)

    monkeypatch.setattr(ChangeLog, "claim", counted)
    made = vault.fork("main", "f")
    assert made.ignored.mode == IgnoredMode.SNAPSHOT
    assert claims == []  # made with its rows, no transaction after
    sd = vault.ws_dir("f")
    meta = _meta(sd)
    assert meta["fork"] == "f" and meta["start"] == f"{at}:0" and len(meta["id"]) == 16
    assert not [n for n in os.listdir(sd) if n.startswith(changelog.FILE + ".")]  # no leftovers
    with ChangeLog(sd) as log:
        assert log.identity("f", at + 5) == (meta["id"], at, 0)
    # a source whose log exists (it was claimed or mounted): the fork gets a fresh log of
    # its own all the same, carried, no transaction
    fork = vault.workspace("f")
    fork.write("g.txt", b"g\n")
    at_f = fork.overlay.last_seq()
    made = vault.fork("f", "g")
    assert claims == []
    meta_g = _meta(vault.ws_dir("g"))
    assert meta_g["fork"] == "g" and meta_g["id"] != meta["id"] and meta_g["start"] == f"{at_f}:0"


_KILL_AT = """
import os, signal, sys
from avfs_git.core.store import refs
from avfs_git.core.vaults import layers
from avfs_git.core.workspace import changelog
from avfs_git.core.vaults.home import Home
from avfs_git.mount.side import MOUNT_SIDE
home = Home(sys.argv[1], author=("A", "a@example.invalid"), mounts=MOUNT_SIDE)
vault = home.vault("v")
where = sys.argv[2]
def die():
    os.kill(os.getpid(), signal.SIGKILL)
def after(mod, name, at):
    real = getattr(mod, name)
    def call(*a, **k):
        got = real(*a, **k)
        if where == at:
            die()
        return got
    setattr(mod, name, call)
after(changelog, "carry_claim", "carried")  # made in the source, not yet snapshotted
after(layers, "snapshot_state_dir", "snapshot")  # carried into the copy, not yet moved
real_rename = os.rename
def rename(src, dst, *a, **k):
    if where == "move" and os.path.basename(str(dst)) == "changes.db":
        die()
    return real_rename(src, dst, *a, **k)
os.rename = rename
real_cas = refs.cas_update
def cas(*a, **k):
    if where == "ref":
        die()
    return real_cas(*a, **k)
refs.cas_update = cas
vault.fork("main", "f")
"""


@pytest.mark.parametrize("where", ["carried", "snapshot", "move", "ref"])
def test_a_fork_killed_while_its_log_is_made_is_made_again_cleanly(
    lhome: Home,  # noqa: F811
    where: str,
) -> None:
    vault = lhome.create_vault("v")
    ws = vault.workspace("main")
    ws.write("a.txt", b"a\n")
    at = ws.overlay.last_seq()
    src = ws.state_dir
    vault.close()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    p = subprocess.run([sys.executable, "-c", _KILL_AT, lhome.path, where], env=env, capture_output=True)
    assert p.returncode == -9, p.stderr.decode()
    vault = lhome.vault("v")
    assert not vault.has_fork("f")  # killed before its ref: no fork
    made = vault.fork("main", "f")
    assert made.ignored.mode == IgnoredMode.SNAPSHOT
    sd = vault.ws_dir("f")
    meta = _meta(sd)
    assert meta["fork"] == "f" and meta["start"] == f"{at}:0"
    assert vault.workspace("f").read("a.txt") == b"a\n"
    assert vault.workspace("main").read("a.txt") == b"a\n"
    # nothing of the killed fork's is left in the source, nor carried into the new fork
    for d in (src, sd):
        assert not [n for n in os.listdir(d) if n.startswith(changelog.FILE + ".")], d
    assert not changelog.exists(src)


def test_a_carried_log_whose_move_a_crash_lost_is_moved_by_its_first_reader(
    lhome: Home,  # noqa: F811
) -> None:
    """The snapshot's commit made the carried log durable; its move into place was not
    synced: a fork whose name survived a crash but not the move still has its claim."""
    vault = lhome.create_vault("v")
    ws = vault.workspace("main")
    ws.write("a.txt", b"a\n")
    at = ws.overlay.last_seq()
    vault.fork("main", "f")
    sd = vault.ws_dir("f")
    meta = _meta(sd)
    carried = os.path.join(sd, changelog.CARRIED + os.path.basename(os.path.realpath(sd)))
    os.rename(os.path.join(sd, changelog.FILE), carried)  # as the crash left it
    assert changelog.exists(sd)
    with ChangeLog(sd) as log:
        assert log.identity("f", at + 7) == (meta["id"], at, 0)
    assert not os.path.exists(carried)
    # through the fork's link, as the change stream opens it
    os.rename(os.path.join(sd, changelog.FILE), carried)
    with ChangeLog(vault.ws_link("f")) as log:
        assert log.identity("f", at + 7) == (meta["id"], at, 0)
    # a source with a log of its own: the crash left the copy of the source's in place
    os.rename(os.path.join(sd, changelog.FILE), carried)
    stale = sqlite3.connect(os.path.join(sd, changelog.FILE), isolation_level=None)
    stale.executescript(changelog._SCHEMA)
    stale.execute("INSERT INTO meta(key, value) VALUES('fork', 'main'), ('id', 'x'), ('start', '0:0')")
    stale.execute("INSERT INTO events(ts, kind, path) VALUES(1.0, 'created', 'x.txt')")
    stale.close()
    with ChangeLog(sd) as log:
        assert log.identity("f", at + 7) == (meta["id"], at, 0) and log.last_seq() == 0


def test_a_source_s_log_mid_append_at_the_snapshot_is_replaced_by_the_fork_s_own(
    lhome: Home,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A source's log (its mount's daemon appending to it, its rollback journal hot when
    the snapshot is taken) comes along in the copy: the fork's carried log replaces it, and
    the hot journal goes first, so it is never rolled into the fork's log."""
    from avfs_git.core.vaults import layers

    vault = lhome.create_vault("v")
    ws = vault.workspace("main")
    ws.write("a.txt", b"a\n")
    at = ws.overlay.last_seq()
    real = layers.snapshot_state_dir

    with ChangeLog(ws.state_dir) as log:
        log.append([(1.0, "created", "x.txt", None)])

    def snapshot(home: str, src: str, *a: object, **k: object) -> str:
        # a daemon's append under way: its transaction open, its journal hot
        db = sqlite3.connect(os.path.join(src, changelog.FILE), isolation_level=None)
        db.execute("PRAGMA journal_mode=DELETE")
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO events(ts, kind, path) VALUES(2.0, 'created', 'y.txt')")
        db.execute("INSERT INTO meta(key, value) VALUES('poison', 'rolled in')")
        db.execute("DELETE FROM meta WHERE key = 'fork'")
        db.execute("PRAGMA cache_spill=1")
        for i in range(200):  # past the page cache: pages written, the journal hot
            db.execute(
                "INSERT INTO events(ts, kind, path) VALUES(?, 'created', ?)", (3.0, "z" * 500 + str(i))
            )
        try:
            return real(home, src, *a, **k)  # type: ignore[arg-type]
        finally:
            db.execute("ROLLBACK")
            db.close()

    monkeypatch.setattr(layers, "snapshot_state_dir", snapshot)
    vault.fork("main", "f")
    sd = vault.ws_dir("f")
    meta = _meta(sd)
    assert meta == {"id": meta["id"], "fork": "f", "start": f"{at}:0"}
    assert not [n for n in os.listdir(sd) if n.startswith(changelog.FILE + ".") or n.endswith("-journal")]
    with ChangeLog(sd) as log:
        assert log.last_seq() == 0 and log.identity("f", at + 3) == (meta["id"], at, 0)


def _journal_end(state_dir: str) -> int:
    conn = sqlite3.connect(os.path.join(state_dir, "overlay.db"))
    try:
        return int(conn.execute("SELECT COALESCE(MAX(seq), 0) FROM journal").fetchone()[0])
    finally:
        conn.close()


def test_the_snapshot_s_overlay_database_is_not_opened_on_the_fork_s_path(
    lhome: Home,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The claim's position comes from the source, held still: the copy's database (and the
    WAL a source open elsewhere carries) is left for the fork's first user, whose reads and
    journal see the source's state and go on from the claim."""
    vault = lhome.create_vault("v")
    ws = vault.workspace("main")
    for i in range(3):
        ws.write(f"f{i}.txt", f"{i}\n".encode())
    at = ws.overlay.last_seq()
    opened: list[str] = []
    real = sqlite3.connect

    def connect(path: str, *a: object, **k: object) -> sqlite3.Connection:
        opened.append(os.path.realpath(str(path)))
        return real(path, *a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(sqlite3, "connect", connect)
    made = vault.fork("main", "f")
    monkeypatch.undo()
    assert made.ignored.mode == IgnoredMode.SNAPSHOT
    sd = os.path.realpath(vault.ws_dir("f"))
    assert os.path.join(sd, "overlay.db") not in opened
    assert os.path.exists(os.path.join(sd, "overlay.db-wal"))  # the source's WAL, as copied
    assert _meta(sd)["start"] == f"{at}:0" == f"{_journal_end(sd)}:0"
    fork = vault.workspace("f")
    assert [fork.read(f"f{i}.txt") for i in range(3)] == [b"0\n", b"1\n", b"2\n"]
    fork.write("g.txt", b"g\n")
    assert fork.overlay.last_seq() == at + 1  # the fork's own history goes on from the claim
    assert vault.workspace("main").exists("g.txt") is False


_WRITE_WHEN_TOLD = """
import sys
from avfs_git.core.vaults.home import Home
from avfs_git.mount.side import MOUNT_SIDE
home = Home(sys.argv[1], author=("A", "a@example.invalid"), mounts=MOUNT_SIDE)
ws = home.vault("v").workspace("main")
print("ready", flush=True)
sys.stdin.readline()
ws.write("late.txt", b"late\\n")
print("wrote", flush=True)
"""


def test_a_write_to_the_source_during_the_snapshot_waits_and_is_not_the_fork_s(
    lhome: Home,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another process's commit to the source cannot land between the journal's end read
    and the copy: it waits for the snapshot, so the fork neither shows it nor counts rows
    of its copy as its own history."""
    import select

    from avfs_git.core.vaults import layers

    vault = lhome.create_vault("v")
    vault.workspace("main").write("a.txt", b"a\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    writer = subprocess.Popen(
        [sys.executable, "-c", _WRITE_WHEN_TOLD, lhome.path],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert writer.stdin is not None and writer.stdout is not None
    try:
        assert writer.stdout.readline() == "ready\n"
        real = layers.snapshot_state_dir
        waited: list[bool] = []

        def snapshot(*a: object, **k: object) -> str:
            writer.stdin.write("go\n")  # type: ignore[union-attr]
            writer.stdin.flush()  # type: ignore[union-attr]
            # held still: the write cannot commit while the snapshot is being taken
            waited.append(bool(select.select([writer.stdout], [], [], 2.0)[0]))
            return real(*a, **k)  # type: ignore[arg-type]

        monkeypatch.setattr(layers, "snapshot_state_dir", snapshot)
        vault.fork("main", "f")
        assert waited == [False]
        assert writer.stdout.readline() == "wrote\n"  # and went in once it was taken
    finally:
        writer.stdin.close()
        writer.wait(30)
        writer.stdout.close()
    sd = vault.ws_dir("f")
    assert _meta(sd)["start"] == f"{_journal_end(sd)}:0"
    assert not vault.workspace("f").exists("late.txt")
    assert vault.workspace("main").read("late.txt") == b"late\n"


def test_a_source_with_an_exec_running_has_its_span_closed_in_the_fork(
    lhome: Home,  # noqa: F811
) -> None:
    """A ``proxy exec`` running on the source when it is snapshotted is not the fork's: its
    span is closed in the copy (the copy is read then, as the source cannot say alone)."""
    from avfs_git.core.workspace import execspans

    vault = lhome.create_vault("v")
    ws = vault.workspace("main")
    ws.write("a.txt", b"a\n")
    with ws.overlay.txn() as db:
        execspans.began(db, 0, os.getpid())
    at = ws.overlay.last_seq()
    vault.fork("main", "f")
    sd = vault.ws_dir("f")
    assert _meta(sd)["start"] == f"{at}:0"
    fork = vault.workspace("f")
    assert not execspans.any_open(fork.overlay.db)
    assert execspans.any_open(ws.overlay.db)  # the source's own call runs on
    fork.write("b.txt", b"b\n")
    assert [s for s in execspans.spans(fork.overlay.db, at, 0) if s.holds_overlay(at + 1)] == []


_KILL_HELD = """
import os, signal, sys
from avfs_git.core.vaults import layers
from avfs_git.core.vaults.home import Home
from avfs_git.mount.side import MOUNT_SIDE
home = Home(sys.argv[1], author=("A", "a@example.invalid"), mounts=MOUNT_SIDE)
vault = home.vault("v")
def snapshot(*a, **k):
    os.kill(os.getpid(), signal.SIGKILL)
layers.snapshot_state_dir = snapshot
vault.fork("main", "f")
"""


def test_a_fork_killed_while_it_holds_its_source_still_leaves_the_source_writable(
    lhome: Home,  # noqa: F811
) -> None:
    vault = lhome.create_vault("v")
    vault.workspace("main").write("a.txt", b"a\n")
    vault.close()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    p = subprocess.run([sys.executable, "-c", _KILL_HELD, lhome.path], env=env, capture_output=True)
    assert p.returncode == -9, p.stderr.decode()
    vault = lhome.vault("v")
    assert not vault.has_fork("f")
    ws = vault.workspace("main")
    ws.write("b.txt", b"b\n")  # the hold went with the process
    at = ws.overlay.last_seq()
    vault.fork("main", "f")
    assert _meta(vault.ws_dir("f"))["start"] == f"{at}:0"
    assert vault.workspace("f").read("b.txt") == b"b\n"


def test_a_fork_of_a_fork_whose_log_move_a_crash_lost_keeps_that_log(
    lhome: Home,  # noqa: F811
) -> None:
    """A fork whose carried log a crash left under its carried name, forked again before
    anything read its log: the new fork's snapshot must not take that log for a killed
    fork's leftover and remove it (the fork would keep its source's log and claim)."""
    vault = lhome.create_vault("v")
    ws = vault.workspace("main")
    ws.write("a.txt", b"a\n")
    vault.fork("main", "f")
    sd = vault.ws_dir("f")
    meta = _meta(sd)
    carried = os.path.join(sd, changelog.CARRIED + os.path.basename(os.path.realpath(sd)))
    os.rename(os.path.join(sd, changelog.FILE), carried)  # as the crash left it
    vault.close()
    v2 = lhome.vault("v")
    v2.fork("f", "g")
    assert _meta(sd)["id"] == meta["id"] and _meta(sd)["fork"] == "f"
    assert not os.path.exists(carried)
    assert _meta(v2.ws_dir("g"))["fork"] == "g"
