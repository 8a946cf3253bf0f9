"""The home a kept process keeps open between pushes and fetches (avfs_git/cli/homekeep.py):
whatever another process changes between two calls, the second call sees it.

Each test runs its calls through the resident server's kept process (tests/test_keptcall.py's
``setup``: a ``git`` first on ``PATH`` logs the pid of the process that ran each push and
fetch), changes one thing from elsewhere (this test's own process, or a git or avfs
process of its own) between two of them, and requires both that the second call saw the
change and that one process ran them all (the home was kept, not opened anew by a new
process)."""

from __future__ import annotations

import fcntl
import json
import os
import platform
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

from avfs_git.cli import spare
from avfs_git.core.operations import checkpoint
from avfs_git.core.store import transferlock
from avfs_git.core.vaults.home import Home
from avfs_git.core.vaults.vault import Vault

from .test_keptcall import GIT, _avfs, _lines
from .test_keptcall import setup as setup  # the fixture: a served home, a logging git, a bare remote

V = ("--json", "--vault", "v")


_RECVMSG = {"x86_64": "47", "aarch64": "212"}[platform.machine()]


def _ok(env: dict[str, str], *args: str) -> dict[str, Any]:
    got = _avfs(*V, *args, env=env)
    assert got.returncode == 0, got.stdout + got.stderr
    doc: dict[str, Any] = json.loads(got.stdout)
    log = Path(env["PATH"].split(":", 1)[0]).parent / "git.log"
    if log.exists():
        _settled(int(_lines(log)[-1][0]))
    return doc


def _settled(pid: int, within_s: float = 30) -> None:
    """Wait until the kept process ``pid`` has cleaned up after its call and waits for the
    next (in its ``recvmsg`` on :data:`.spare.REPORT_FD`), or has ended. Its caller has the
    answer before that: a test that changed the vault's files at once (moved its directory
    away) raced the process's check that what it keeps is still under the home (``_clean``:
    a descriptor of a file moved out is not kept, the process ends, and the next call ran in
    a new one; CI saw it at load ~4)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/syscall") as f:
                fields = f.read().split()
            with open(f"/proc/{pid}/stat") as f:
                zombie = f.read().rsplit(")", 1)[1].split()[0] == "Z"
        except OSError:
            return  # (ended)
        if zombie or fields[:2] == [_RECVMSG, hex(spare.REPORT_FD)]:
            return
        time.sleep(0.005)
    raise AssertionError(f"the kept process {pid} never settled within {within_s} s")


def _remote_tip(bare: Path, ref: str = "main") -> str:
    assert GIT is not None
    got = subprocess.run([GIT, "--git-dir", str(bare), "rev-parse", ref], capture_output=True, text=True)
    return got.stdout.strip()


def _tip(vault: Vault, fork: str = "main") -> str:
    assert GIT is not None
    got = subprocess.run(
        [GIT, "--git-dir", vault.path, "rev-parse", f"refs/heads/{fork}"], capture_output=True, text=True
    )
    return got.stdout.strip()


def _one_process(log: Path, calls: int) -> None:
    """Every push and fetch logged ran in one process (the kept one), at least ``calls``."""
    runs = _lines(log)
    assert len(runs) >= calls, runs
    assert len({r[0] for r in runs}) == 1, runs


def _commit(vault: Vault, path: str, data: bytes, fork: str = "main") -> str:
    vault.workspace(fork).write(path, data)
    checkpoint.save(vault, fork, message=path)
    return _tip(vault, fork)


def test_a_branch_moved_elsewhere_and_its_packed_refs_rewritten_are_read_afresh(
    setup: Any, vault: Vault
) -> None:
    env, log, bare = setup
    _ok(env, "push", "origin", "main")
    assert _remote_tip(bare) == _tip(vault)
    assert GIT is not None
    for i in range(2):
        # moved by this process, then packed by git (refs/heads/main only in packed-refs,
        # a file of the same size each time, made anew)
        tip = _commit(vault, f"p{i}.txt", b"%d" % i)
        subprocess.run([GIT, "--git-dir", vault.path, "pack-refs", "--all", "--prune"], check=True)
        assert not os.path.exists(os.path.join(vault.path, "refs", "heads", "main"))
        _ok(env, "push", "origin", "main")
        assert _remote_tip(bare) == tip
    _one_process(log, 3)


def test_a_remote_url_changed_by_git_between_two_calls_is_the_one_used(
    setup: Any, vault: Vault, tmp_path: Path
) -> None:
    env, log, _bare = setup
    assert GIT is not None
    other = tmp_path / "other.git"
    subprocess.run([GIT, "init", "-q", "--bare", str(other)], check=True)
    _ok(env, "push", "origin", "main")
    subprocess.run([GIT, "--git-dir", vault.path, "config", "remote.origin.url", str(other)], check=True)
    listed = _ok(env, "remote", "list")
    assert [r["url"] for r in listed["remotes"]] == [str(other)]
    _ok(env, "push", "origin", "main")
    assert _remote_tip(other) == _tip(vault)
    # and a fetch from it sees the branch there (one the first remote never had)
    subprocess.run([GIT, "--git-dir", str(other), "branch", "elsewhere", "main"], check=True)
    fetched = _ok(env, "fetch", "origin")
    assert "refs/remotes/origin/elsewhere" in [u["ref"] for u in fetched["result"]["updates"]]
    _one_process(log, 3)


def test_changes_written_elsewhere_between_two_pushes_are_counted_as_left_behind(
    setup: Any, vault: Vault
) -> None:
    env, log, _bare = setup
    checkpoint.save(vault, "main", message="setup's write")
    first = _ok(env, "push", "origin", "main")
    assert first["result"]["left_behind"] == []
    vault.workspace("main").write("later.txt", b"not checkpointed\n")  # this process's overlay write
    second = _ok(env, "push", "origin", "main")
    assert second["result"]["left_behind"] == [{"fork": "main", "uncheckpointed_changes": 1}]
    checkpoint.save(vault, "main", message="later")
    third = _ok(env, "push", "origin", "main")
    assert third["result"]["left_behind"] == []
    # a fork with a change, deleted and made again (clean) elsewhere between two pushes:
    # the second reads the new fork's overlay, not the deleted one's
    vault.create_fork("main", "f")
    vault.workspace("f").write("gone.txt", b"deleted with its fork\n")
    assert _ok(env, "push", "origin", "f")["result"]["left_behind"] == [
        {"fork": "f", "uncheckpointed_changes": 1}
    ]
    vault.delete_fork("f")
    vault.create_fork("main", "f")
    assert _ok(env, "push", "origin", "f")["result"]["left_behind"] == []
    _one_process(log, 5)


def test_the_vault_default_fork_set_elsewhere_is_the_one_pushed(setup: Any, vault: Vault) -> None:
    env, log, bare = setup
    vault.create_fork("main", "feature")
    tip = _commit(vault, "f.txt", b"feature\n", fork="feature")
    _ok(env, "push")  # the default fork: main
    assert _remote_tip(bare, "feature") == "feature"  # (not there: rev-parse echoes the name)
    vault.set_config(default_fork="feature")
    _ok(env, "push")
    assert _remote_tip(bare, "feature") == tip
    _one_process(log, 2)


def test_a_vault_replaced_between_two_calls_is_the_new_one(
    setup: Any, home: Home, vault: Vault, tmp_path: Path
) -> None:
    """Another vault moved in under the name (the home's config untouched: the home is
    kept, its handle on the old vault must not be)."""
    env, log, bare = setup
    assert GIT is not None
    other = tmp_path / "other.git"
    subprocess.run([GIT, "init", "-q", "--bare", str(other)], check=True)
    w = home.create_vault("w")
    new_tip = _commit(w, "new.txt", b"another vault\n")
    subprocess.run([GIT, "--git-dir", w.path, "remote", "add", "origin", str(other)], check=True)
    w_path = w.path
    w.close()
    _ok(env, "push", "origin", "main")
    old = _tip(vault)
    os.rename(vault.path, tmp_path / "old-v.git")
    os.rename(w_path, vault.path)
    _ok(env, "push", "origin", "main")
    assert _remote_tip(other) == new_tip != old
    assert _remote_tip(bare) == old
    # the push is in the new vault's op log (not in the old one's, moved away)
    db = sqlite3.connect(os.path.join(vault.path, "avfs", "oplog.db"))
    try:
        last = db.execute("SELECT kind FROM ops ORDER BY id DESC LIMIT 1").fetchone()
    finally:
        db.close()
    assert last == ("push",)
    _one_process(log, 2)


def test_each_call_commits_as_its_own_identity(setup: Any, vault: Vault) -> None:
    """``push --checkpoint`` by two callers of different ``GIT_AUTHOR_NAME``, one after the
    other: each checkpoint is its own caller's (the identity is part of the kept home's key)."""
    env, log, bare = setup
    assert GIT is not None
    for who in ("alice", "bob"):
        vault.workspace("main").write(f"{who}.txt", who.encode())
        _ok({**env, "GIT_AUTHOR_NAME": who}, "push", "--checkpoint", "origin", "main")
        got = subprocess.run(
            [GIT, "--git-dir", str(bare), "log", "-1", "--format=%an", "main"], capture_output=True, text=True
        )
        assert got.stdout.strip() == who
    _one_process(log, 2)


def test_no_lock_is_held_between_calls(setup: Any, vault: Vault) -> None:
    """Between two calls the kept process holds no lock of the vault's: another process
    takes the transfer lock and the fork's lock at once (neither waits)."""
    env, log, _bare = setup
    _ok(env, "push", "origin", "main")
    _ok(env, "fetch", "origin")
    path = transferlock.lock_path(vault.state_dir)
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # (raises BlockingIOError if held)
    finally:
        os.close(fd)
    with vault.lock("main", wait_s=0):
        pass
    _ok(env, "push", "origin", "main")
    _one_process(log, 3)


def test_a_vault_made_again_in_the_same_directory_between_two_calls_is_the_new_one(
    setup: Any, home: Home, vault: Vault, tmp_path: Path
) -> None:
    """Another vault's files moved into the vault's own directory (as a restore by ``rsync
    --delete`` does, and as a vault deleted for good and made again at once looks when the
    file system gives the new directory the old one's inode number, as ext4 does when it is
    the lowest free): the directory's (device, inode) is the same, the vault is not; the kept
    handle recorded the push in the old op log, a file no longer there."""
    env, log, _bare = setup
    assert GIT is not None
    other = tmp_path / "other.git"
    subprocess.run([GIT, "init", "-q", "--bare", str(other)], check=True)
    w = home.create_vault("w")
    new_tip = _commit(w, "new.txt", b"another vault\n")
    subprocess.run([GIT, "--git-dir", w.path, "remote", "add", "origin", str(other)], check=True)
    w_path = w.path
    w.close()
    _ok(env, "push", "origin", "main")
    old = tmp_path / "old-v"
    old.mkdir()
    for name in os.listdir(vault.path):
        os.rename(os.path.join(vault.path, name), old / name)
    for name in os.listdir(w_path):
        os.rename(os.path.join(w_path, name), os.path.join(vault.path, name))
    os.rmdir(w_path)
    _ok(env, "push", "origin", "main")
    assert _remote_tip(other) == new_tip
    db = sqlite3.connect(os.path.join(vault.path, "avfs", "oplog.db"))
    try:
        last = db.execute("SELECT kind FROM ops ORDER BY id DESC LIMIT 1").fetchone()
    finally:
        db.close()
    assert last == ("push",)
    _one_process(log, 2)


def test_a_promisor_remote_set_by_git_between_two_calls_is_the_one_a_kept_vault_reads(
    home: Home, vault: Vault, tmp_path: Path
) -> None:
    """The vault's promisor remote (where a lazy vault's missing blobs come from, and
    whether it is lazy at all) is part of its git config, set here by git between two calls
    of one kept home: the second reads it as a new process would (the vault handle's
    promisor kept what it read in the first: a URL changed went on to the old server)."""
    from avfs_git.cli.homekeep import KeptHome
    from avfs_git.core.settings import Settings

    assert GIT is not None
    settings = Settings.from_environ(os.environ, home.path)
    kept = KeptHome()
    try:
        first = kept.open(home.path, settings).vault("v")
        assert first.store.promisor.remote() is None and not first.lazy
        kept.release()
        url = (tmp_path / "server.git").as_uri()
        for key, value in (("remote.origin.url", url), ("remote.origin.promisor", "true")):
            subprocess.run([GIT, "--git-dir", vault.path, "config", key, value], check=True)
        again = kept.open(home.path, settings).vault("v")
        assert again is first  # (the kept handle)
        assert again.store.promisor.remote() == ("origin", url)
        assert again.lazy
    finally:
        kept.close()


def _fd_of(path: str) -> int:
    for name in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{name}") == path:
                return int(name)
        except OSError:
            pass
    raise AssertionError(f"{path} is not open")


def test_a_read_transaction_left_open_is_not_a_descriptor_a_kept_home_may_hold(
    home: Home, vault: Vault
) -> None:
    """:meth:`KeptHome.holds` (what a kept process may keep between calls) lets an idle
    SQLite connection's locks through, never a read transaction's: in a database with a
    rollback journal (the changelog's), a read transaction's lock on the file is the very
    lock an idle connection keeps on a WAL database, and it kept every writer of that
    database out until the next call (it was let through)."""
    from avfs_git.cli.homekeep import KeptHome
    from avfs_git.core.settings import Settings

    kept = KeptHome()
    kept.open(home.path, Settings.from_environ(os.environ, home.path))
    real = os.path.realpath(vault.state_dir)
    try:
        for journal in ("WAL", "DELETE"):
            path = os.path.join(real, f"{journal}.db")
            conn = sqlite3.connect(path, isolation_level=None)
            try:
                conn.execute(f"PRAGMA journal_mode={journal}")
                conn.execute("CREATE TABLE t (x)")
                conn.execute("INSERT INTO t VALUES (1), (2)")
                fd = _fd_of(path)
                assert kept.holds(fd)  # idle
                conn.execute("BEGIN")
                assert conn.execute("SELECT x FROM t").fetchone() == (1,)
                files = [path, f"{path}-shm"] if journal == "WAL" else [path]
                assert not all(kept.holds(_fd_of(f)) for f in files), journal
                conn.execute("COMMIT")
                assert all(kept.holds(_fd_of(f)) for f in files)
            finally:
                conn.close()
    finally:
        kept.close()
