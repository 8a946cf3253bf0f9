"""A database of avfs's held locked by another process (a write transaction that does not
end: a stopped process, a person's `sqlite3` shell): the call waits as ``AVFS_LOCK_WAIT``
says, as for every other lock of avfs's, then says which file and which process held it
(busy, one JSON document) and changes nothing, or, where the operation was done already
(the op log records it after), says it was done. It waited SQLite's fixed 30 s whatever
the setting said, and the op log's and the search index's were exit 70 ("internal error:
OperationalError: database is locked"), the op log's after the checkpoint was made.
docs/security.md, bad input.
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from avfs_git.core.settings import Settings, served_for
from avfs_git.core.vaults.home import Home

from .conftest import AUTHOR, MOUNT_SIDE, CliResult, skip_outside_ci
from .test_json_everypath import _changed, _home_state

Cli = Callable[..., CliResult]

_HOLD = """
import sqlite3, sys
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute("BEGIN EXCLUSIVE")
print("held", flush=True)
sys.stdin.read()
"""

# what a refused call may still write: objects gc expires, the usage cache, lock files, and
# git's answers kept by their files' stamps (gitspawn1: the commit identity's config)
CACHES = (
    "/vaults/v.git/objects/",
    "/vaults/v.git/avfs/usage/",
    "/vaults/v.git/avfs/locks/",
    "/vaults/v.git/avfs/identity-config",
    "/vaults/v.git/avfs/worktree-config",
)


@contextmanager
def _held(db: str) -> Iterator[int]:
    """Another process holding ``db``'s write lock until the block ends; yields its pid."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLD, db], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "held\n"
        yield proc.pid
    finally:
        proc.communicate("", timeout=60)


def _ws_db(home: str, name: str) -> str:
    (db,) = glob.glob(os.path.join(home, "**", "ws", "**", name), recursive=True)
    return db


def _busy(r: CliResult, db: str, pid: int) -> dict[str, object]:
    assert r.code == 75 and r.out.count("\n") == 1, (r.code, r.out, r.err)  # (was 70, or 30 s)
    err = r.json()["error"]
    assert err["code"] == "busy" and db in err["message"], err
    assert f"pid {pid} " in err["message"] and err["details"]["holders"][0]["pid"] == pid, err
    assert err["details"]["waited_s"] == 0.5, err
    return dict(err)


def test_a_locked_overlay_database_waits_as_the_setting_says_and_names_its_holder(
    cli: Cli, cli_proc: Cli, monkeypatch
) -> None:
    """The set-up in the test's process (``conftest.run_in_process``), each call after it
    a real process (as in the tests below)."""
    assert cli("vault", "create", "v").code == 0
    assert cli("--vault", "v", "write", "a.txt", "a").code == 0
    cli = cli_proc
    home = os.environ["AVFS_HOME"]
    db = _ws_db(home, "overlay.db")
    monkeypatch.setenv("AVFS_LOCK_WAIT", "0.5")
    before = _home_state(home)
    with _held(db) as pid:
        for args in (("write", "b.txt", "b"), ("rm", "a.txt"), ("checkpoint", "save")):
            err = _busy(cli("--vault", "v", "--json", *args), db, pid)
            assert "nothing was changed" in str(err["message"]) and "AVFS_LOCK_WAIT" in str(err["hint"])
        h = cli("--vault", "v", "write", "b.txt", "b")
        assert h.code == 75 and f"pid {pid} " in h.err and "hint:" in h.err, h.err
        # reads go on: a write transaction held in WAL mode blocks no reader
        r = cli("--vault", "v", "--json", "cat", "a.txt")
        assert r.code == 0 and r.json()["files"][0]["content"] == "a", r.out
    # (the refused checkpoint wrote its blobs' pack before it met the lock: unreachable
    # objects gc expires, as any refused checkpoint's; the usage cache counted them)
    changed = [c[len(home) :] for c in _changed(before, _home_state(home))]
    assert [c for c in changed if not c.startswith(CACHES)] == [], changed
    assert cli("--vault", "v", "write", "b.txt", "b").code == 0  # (the holder gone)


def test_a_locked_op_log_refuses_the_checkpoint_before_the_branch_moves(
    cli: Cli, cli_proc: Cli, monkeypatch
) -> None:
    """The op log held by another process past the lock wait: the checkpoint moved the
    branch, then said "done, not recorded" (badinput8), and `avfs undo` then undid the
    operation before it (the fork's `write`... here its first checkpoint), leaving this one
    where it was. Now the checkpoint takes the log's lock before the branch moves: busy,
    nothing changed (the change still uncheckpointed); with the holder gone it is saved and
    recorded, and `undo` undoes it."""
    assert cli("vault", "create", "v").code == 0
    assert cli("--vault", "v", "write", "a.txt", "a").code == 0
    assert cli("--vault", "v", "checkpoint", "save", "-m", "first").code == 0
    assert cli("--vault", "v", "write", "b.txt", "b").code == 0
    cli = cli_proc
    home = os.environ["AVFS_HOME"]
    db = os.path.join(home, "vaults", "v.git", "avfs", "oplog.db")
    ops = len(cli("--vault", "v", "--json", "op", "log").json()["operations"])
    before = _home_state(home)
    monkeypatch.setenv("AVFS_LOCK_WAIT", "0.5")
    with _held(db) as pid:
        for args in (("checkpoint", "save", "-m", "kept"), ("checkpoint", "save", "named")):
            err = _busy(cli("--vault", "v", "--json", *args), db, pid)
            assert "nothing was changed" in str(err["message"]), err  # (was "done, not recorded")
            assert "done" not in err["details"] and "AVFS_LOCK_WAIT" in str(err["hint"]), err
    # nothing moved: the branch, the overlay, the log (a refused checkpoint's blobs are
    # unreachable objects gc expires, as any refused checkpoint's; the usage cache counted them)
    changed = [c[len(home) :] for c in _changed(before, _home_state(home))]
    assert [c for c in changed if not c.startswith(CACHES)] == [], changed
    log = cli("--vault", "v", "--json", "log").json()
    assert log["commits"][0]["message"].strip() == "first", log
    assert [c["path"] for c in cli("--vault", "v", "--json", "status").json()["changes"]] == ["b.txt"]
    # the holder gone: saved and recorded, and undo undoes this one (not the one before)
    assert cli("--vault", "v", "checkpoint", "save", "-m", "kept").code == 0
    assert len(cli("--vault", "v", "--json", "op", "log").json()["operations"]) == ops + 1
    assert cli("--vault", "v", "undo").code == 0
    log = cli("--vault", "v", "--json", "log").json()
    assert log["commits"][0]["message"].strip() == "first", log


def test_a_locked_op_log_refuses_an_undo_before_anything_moves(cli: Cli, cli_proc: Cli, monkeypatch) -> None:
    """An undo with the op log held: it moved the fork back, then said "done, not
    recorded": the undone operation was not marked (a second undo tried it again, `redo`
    had nothing); a restore moved the fork and left its recovery ref unrecorded; a fork
    was taken back and said it was made ("do not repeat it"). Now each is refused with
    nothing changed; with the holder gone the undo is recorded and
    `redo` brings the checkpoint back."""
    assert cli("vault", "create", "v").code == 0
    assert cli("--vault", "v", "write", "a.txt", "a").code == 0
    assert cli("--vault", "v", "checkpoint", "save", "-m", "first").code == 0
    assert cli("--vault", "v", "write", "b.txt", "b").code == 0
    assert cli("--vault", "v", "checkpoint", "save", "-m", "second").code == 0
    cli = cli_proc
    home = os.environ["AVFS_HOME"]
    db = os.path.join(home, "vaults", "v.git", "avfs", "oplog.db")
    before = _home_state(home)
    monkeypatch.setenv("AVFS_LOCK_WAIT", "0.5")
    first = cli("--vault", "v", "--json", "log").json()["commits"][1]["id"]
    with _held(db) as pid:
        for args in (("undo",), ("checkpoint", "restore", first), ("vault", "fork", "v", "f2")):
            err = _busy(cli("--vault", "v", "--json", *args), db, pid)
            assert "nothing was changed" in str(err["message"]) and "done" not in err["details"], (args, err)
    changed = [c[len(home) :] for c in _changed(before, _home_state(home))]
    assert [c for c in changed if not c.startswith(("/vaults/v.git/avfs/locks/",))] == [], changed
    assert cli("--vault", "v", "--json", "log").json()["commits"][0]["message"].strip() == "second"
    assert cli("--vault", "v", "undo").code == 0
    assert cli("--vault", "v", "--json", "log").json()["commits"][0]["message"].strip() == "first"
    assert cli("--vault", "v", "redo").code == 0
    assert cli("--vault", "v", "--json", "log").json()["commits"][0]["message"].strip() == "second"


def test_a_locked_search_index_names_its_holder(cli: Cli, cli_proc: Cli, monkeypatch) -> None:
    assert cli("vault", "create", "v").code == 0
    assert cli("--vault", "v", "write", "a.txt", "hello").code == 0
    assert cli("--vault", "v", "search", "hello").code == 0
    assert cli("--vault", "v", "write", "b.txt", "hello again").code == 0  # (a catch-up to make)
    cli = cli_proc
    home = os.environ["AVFS_HOME"]
    db = _ws_db(home, "search.db")
    monkeypatch.setenv("AVFS_LOCK_WAIT", "0.5")
    with _held(db) as pid:
        _busy(cli("--vault", "v", "--json", "search", "hello"), db, pid)
    r = cli("--vault", "v", "--json", "search", "hello")
    assert r.code == 0 and len(r.json()["hits"]) == 2, r.out


def test_every_database_connection_waits_as_the_caller_s_setting_says(tmp_path) -> None:
    """The overlay's and the op log's connections take the vault's lock wait as SQLite's
    busy timeout, the calling process's in a served call (both were 30 s, always)."""
    h = str(tmp_path / "h")
    home = Home(h, author=AUTHOR, mounts=MOUNT_SIDE, settings=Settings(h, lock_wait="0.5"))
    try:
        v = home.create_vault("v")
        ws = v.workspace("main")
        ws.write("a.txt", b"a")
        assert ws.overlay.db.execute("PRAGMA busy_timeout").fetchone()[0] == 500
        with served_for({"AVFS_LOCK_WAIT": "2"}):
            ws.write("b.txt", b"b")
            assert ws.overlay.db.execute("PRAGMA busy_timeout").fetchone()[0] == 2000
            v.oplog.record("test", "a record")
            assert v.oplog.db.execute("PRAGMA busy_timeout").fetchone()[0] == 2000
    finally:
        home.close()


def _ro_bind(src: str, dst: str) -> None:
    os.makedirs(dst)
    subprocess.run(["mount", "--bind", src, dst], check=True)
    subprocess.run(["mount", "-o", "remount,ro,bind", dst], check=True)


def _umount_bind(path: str) -> None:
    """Unmount the read-only bind at ``path``: right after the layers file system's lazy
    unmount below it the kernel can still call it busy (EBUSY, `umount` exit 32: 1 run in
    ~20 under load, ci34), so it is asked again for up to 5 s, then detached."""
    deadline = time.monotonic() + 5.0
    while subprocess.run(["umount", path], capture_output=True).returncode != 0:
        if time.monotonic() > deadline:
            subprocess.run(["umount", "-l", path], check=True)
            return
        time.sleep(0.1)


@pytest.mark.parametrize("with_layers", [False, True], ids=["plain", "layers"])
def test_a_read_only_home_serves_reads_and_refuses_writes(
    cli_proc: Cli, tmp_path, monkeypatch, with_layers: bool
) -> None:
    """A person's home on a read-only mount (here: bound read-only at another path, its
    layers file system not mounted there): every read failed, `read_only` on the layers'
    lock file, then exit 70 (the state dir's owner file, its WAL index); `rm`/`mv` in a
    home without layers were exit 70 ("attempt to write a readonly database"). Reads now
    answer from the read-only home; writes are `read_only`; nothing changes."""
    if os.geteuid() != 0:  # (a missing facility: fails under CI=true, skips elsewhere)
        skip_outside_ci(
            "a read-only bind mount needs root", "a read-only bind mount needs root, and CI runs as root"
        )
    from avfs_git.core.vaults import layers

    cli = cli_proc
    if with_layers:  # (the product's default: the state dirs in the home's layers image)
        monkeypatch.delenv("AVFS_LAYERS", raising=False)
    assert cli("vault", "create", "v").code == 0
    assert cli("--vault", "v", "write", "a.txt", "a").code == 0
    assert cli("--vault", "v", "checkpoint", "save", "-m", "one").code == 0
    assert cli("--vault", "v", "write", "b.txt", "uncommitted").code == 0
    home = os.environ["AVFS_HOME"]
    layers.unmount(home)  # (a home whose layers the read-only path does not show mounted)
    before = _home_state(home)
    ro = str(tmp_path / "ro")
    _ro_bind(home, ro)
    try:
        monkeypatch.setenv("AVFS_HOME", ro)
        for args in (
            ("status",),
            ("log",),
            ("cat", "a.txt"),
            ("diff",),
            ("ls",),
            ("vault", "list"),
            ("vault", "info", "v"),
        ):
            r = cli("--vault", "v", "--json", *args)
            assert r.code == 0 and r.out.count("\n") == 1, (args, r.code, r.out)
        st = cli("--vault", "v", "--json", "status").json()
        assert [c["path"] for c in st["changes"]] == ["b.txt"], st
        for args in (
            ("write", "c.txt", "c"),
            ("rm", "a.txt"),
            ("mv", "a.txt", "z.txt"),
            ("checkpoint", "save"),
            ("vault", "fork", "v", "f"),
        ):
            r = cli("--vault", "v", "--json", *args)
            assert r.code == 1 and r.out.count("\n") == 1, (args, r.code, r.out)  # (was 70)
            assert r.json()["error"]["code"] == "read_only", (args, r.out)
    finally:
        layers.unmount(ro)
        _umount_bind(ro)
    monkeypatch.setenv("AVFS_HOME", home)
    assert _changed(before, _home_state(home)) == []
