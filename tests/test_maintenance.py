"""stats, quota, gc, prune and doctor on real vaults with real git (and real mounts where
the point is a live daemon). Every mount is unmounted in `finally`."""

from __future__ import annotations

import errno
import glob
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from avfs_git.core.errors import BusyError, QuotaExceededError
from avfs_git.core.operations import checkpoint
from avfs_git.core.store import packwriter, refs
from avfs_git.core.store.locks import pid_alive
from avfs_git.core.vaults import mountinfo, registry
from avfs_git.core.vaults.home import Home
from avfs_git.core.vaults.registry import dead_mountpoint
from avfs_git.core.vaults.vault import Vault
from avfs_git.mount.side import MOUNT_SIDE
from avfs_git.ops import maintenance, mounts

from .conftest import git, skip_outside_ci
from .test_json_schemas import single_document, validate

DAY = 86400.0


def _doc(res: Any, kind: str, code: int = 0) -> dict[str, Any]:
    doc = single_document(res)
    assert validate(doc) == kind, doc
    assert res.code == code, (res.code, doc, res.err)
    return doc


def _fsck(vault: Vault) -> None:
    assert git("--git-dir", vault.path, "fsck", "--strict", "--no-dangling", "--no-progress") == ""


def _require_fuse() -> None:
    why = mounts.fuse_available()
    if why is not None:
        skip_outside_ci(f"requires FUSE: {why}", f"FUSE must be available in CI: {why}")


@contextmanager
def _mounted(home: Home, vault: Vault, fork: str, mp: Path) -> Iterator[mounts.MountInfo]:
    _require_fuse()
    mp.mkdir(exist_ok=True)
    info = mounts.mount(home, vault, fork, str(mp), backend="fuse")  # a killed FUSE daemon's leftovers
    try:
        yield info
    finally:
        try:
            mounts.unmount(home, vault, fork, lazy=True)
        finally:
            if mounts.mounted_at(str(mp)):
                subprocess.run(["fusermount3", "-u", "-z", str(mp)], check=False)


@contextmanager
def _held_elsewhere(vault: Vault, fork: str) -> Iterator[None]:
    """Hold a fork lock from another thread (locks are re-entrant within one thread)."""
    got, done = threading.Event(), threading.Event()

    def hold() -> None:
        with vault.lock(fork):
            got.set()
            done.wait(30)

    t = threading.Thread(target=hold)
    t.start()
    assert got.wait(10)
    try:
        yield
    finally:
        done.set()
        t.join()


def _hash(vault: Vault, data: bytes) -> str:
    """Write an unreachable loose blob with plain git."""
    cmd = ["git", "--git-dir", vault.path, "hash-object", "-w", "--stdin"]
    return subprocess.run(cmd, input=data, capture_output=True, check=True).stdout.decode().strip()


def _loose(vault: Vault, oid: str) -> str:
    return os.path.join(vault.path, "objects", oid[:2], oid[2:])


# -- stats ------------------------------------------------------------------------------------


def test_stats(vault: Vault, cli: Any) -> None:
    ws = vault.workspace("main")
    ws.write("a.txt", b"one\n")
    checkpoint.save(vault, "main", "first")
    vault.create_fork("main", "f")
    vault.workspace("f").write("b.txt", b"12345")
    res = maintenance.stats(vault, operations=2)
    assert [f.name for f in res.forks] == ["f", "main"]
    f, main = res.forks
    assert main.is_default and main.checkpoints == 1 and main.overlay_bytes == 0
    assert f.overlay_entries == 1 and f.overlay_bytes == 5 and not f.mounted
    assert res.checkpoints == 1 and res.commits == 2 and res.overlay_bytes == 5
    assert res.objects >= 4 and res.mounts == []
    assert [op.kind for op in res.operations] == ["fork", "checkpoint"]
    doc = _doc(cli("--json", "--vault", "v", "stats"), "stats")
    assert doc["forks"][0]["overlay_bytes"] == 5 and doc["objects"] == res.objects
    human = cli("--vault", "v", "stats")
    assert human.code == 0 and "fork f:" in human.out


def test_stats_of_a_fork_whose_name_has_a_slash(vault: Vault) -> None:
    """Its state dir is ``a%2Fb``: opened as a SQLite URI unquoted, that named ``a/b``
    (stats failed: "unable to open database file")."""
    vault.create_fork("main", "a/b")
    vault.workspace("a/b").write("b.txt", b"12345")
    res = maintenance.stats(vault)
    assert [(f.name, f.overlay_entries, f.overlay_bytes) for f in res.forks if f.name == "a/b"] == [
        ("a/b", 1, 5)
    ]


# -- quota ------------------------------------------------------------------------------------


def test_quota_set_below_use_is_accepted_with_a_warning_and_writes_are_refused(
    vault: Vault, cli: Any
) -> None:
    assert vault.home is not None
    ws = vault.workspace("main")
    ws.write("big.bin", b"x" * 4000)
    res = cli("--json", "--vault", "v", "quota", "set", "1K")
    doc = _doc(res, "quota")
    # the quota is the vault's: git objects + every fork's uncheckpointed bytes
    assert doc["quota_bytes"] == 1024 and doc["overlay_bytes"] == 4000
    assert doc["used_bytes"] == doc["objects_bytes"] + 4000 and doc["over"] == ["bytes"]
    assert "over the new quota" in res.err
    with pytest.raises(QuotaExceededError):
        ws.write("more.txt", b"y")  # the handle from before sees the new limit
    ws = Home(vault.home.path, mounts=MOUNT_SIDE).vault("v").workspace("main")
    with pytest.raises(QuotaExceededError):
        ws.write("more.txt", b"y")  # through the API
    err = _doc(cli("--json", "--vault", "v", "write", "more.txt", "y"), "error", 1)
    assert err["error"]["code"] == "quota_exceeded"
    ws.remove("big.bin")  # what brings it under is allowed
    ws.write("more.txt", b"y")


def test_write_over_quota_through_a_mount_is_edquot(home: Home, vault: Vault, tmp_path: Path) -> None:
    vault.set_config(quota_bytes=64 * 1024)
    with _mounted(home, vault, "main", tmp_path / "mnt") as info:
        with pytest.raises(OSError) as exc, open(os.path.join(info.mountpoint, "big.bin"), "wb") as fh:
            fh.write(b"x" * (1 << 20))
            fh.flush()
        assert exc.value.errno == errno.EDQUOT
    _fsck(vault)


# -- gc ---------------------------------------------------------------------------------------


def test_gc_keeps_what_is_reachable_or_undoable_and_drops_old_unreachable(vault: Vault, cli: Any) -> None:
    ws = vault.workspace("main")
    for i in range(3):
        ws.write(f"f{i}.txt", f"{i}\n".encode())
        checkpoint.save(vault, "main", f"c{i}")
    # a fork with a commit of its own, then deleted: undo needs its tip, which no ref holds
    vault.create_fork("main", "gone")
    vault.workspace("gone").write("only-here.txt", b"unique\n")
    tip = checkpoint.save(vault, "gone").checkpoint.commit
    vault.delete_fork("gone")
    old, new = _hash(vault, b"old garbage\n"), _hash(vault, b"new garbage\n")
    week_ago = time.time() - 7 * DAY
    os.utime(_loose(vault, old), (week_ago, week_ago))

    dry = maintenance.gc(vault, grace_days=1, dry_run=True)
    assert dry.dry_run and dry.unreachable_loose >= 1 and dry.objects_after is None
    assert os.path.exists(_loose(vault, old))

    res = maintenance.gc(vault, grace_days=1)
    assert not os.path.exists(_loose(vault, old))  # unreachable and older than the grace
    assert git("--git-dir", vault.path, "cat-file", "-t", new).strip() == "blob"  # within the grace
    assert git("--git-dir", vault.path, "cat-file", "-t", tip).strip() == "commit"  # undo needs it
    assert res.objects_after is not None and res.kept_roots >= 1
    assert maintenance.stats(vault).packs == 1 and refs.read_ref_file(vault.path, maintenance.KEEP) is None
    _fsck(vault)
    for i in range(3):  # every checkpoint still readable
        c = vault.store.commit(
            git("--git-dir", vault.path, "rev-parse", f"refs/avfs/checkpoints/main/-/c{i}").strip()
        )
        assert c.tree[f"f{i}.txt"].data == f"{i}\n".encode()  # type: ignore[union-attr]
    checkpoint.undo(vault)  # the fork delete
    assert vault.workspace("gone").read("only-here.txt") == b"unique\n"
    doc = _doc(cli("--json", "--vault", "v", "gc", "--grace", "0"), "gc")
    assert doc["vaults"][0]["vault"] == "v" and doc["deleted_vaults_expired"] == []
    _fsck(vault)


def test_gc_expires_recovery_refs_operations_and_deleted_vaults_past_retention(
    home: Home, vault: Vault
) -> None:
    ws = vault.workspace("main")
    ws.write("a.txt", b"a\n")
    checkpoint.save(vault, "main", "base")
    ws.write("a.txt", b"uncheckpointed\n")
    rec = checkpoint.restore(vault, "main", "base").recovery_ref
    assert rec is not None
    home.create_vault("old")
    home.delete_vault("old", force=True)
    ops = len(vault.oplog.recent(100))
    soon = maintenance.gc(vault, now=time.time() + DAY)  # within every retention: nothing expires
    assert soon.expired_recovery_refs == [] and soon.expired_operations == []
    later = time.time() + 100 * DAY
    res = maintenance.gc(vault, now=later)
    assert res.expired_recovery_refs == [rec] and len(res.expired_operations) == ops
    assert vault.oplog.recent(100) == [] and maintenance.stats(vault).recovery_refs == 0
    assert [e.name for e in maintenance.expire_deleted_vaults(home, dry_run=True, now=later)] == ["old"]
    assert home.deleted_vaults()
    maintenance.expire_deleted_vaults(home, now=later)
    assert home.deleted_vaults() == []
    assert vault.workspace("main").read("a.txt") == b"a\n"
    _fsck(vault)


def test_retention_is_configurable(home: Home, vault: Vault) -> None:
    assert maintenance.retention_for(vault) == maintenance.Retention()
    home.set_config(maintenance={"oplog_days": 7, "grace_days": 1})
    vault.set_config(maintenance={"grace_days": 0})
    r = maintenance.retention_for(vault)
    assert (r.oplog_days, r.grace_days, r.recovery_days) == (7, 0, 30)


def test_gc_refuses_while_an_operation_holds_the_vault(vault: Vault, cli: Any) -> None:
    before = maintenance.count_objects(vault.path)
    with _held_elsewhere(vault, "main"):
        with pytest.raises(BusyError, match="busy"):
            maintenance.gc(vault)
        doc = _doc(cli("--json", "--vault", "v", "gc"), "error", 75)
        assert doc["error"]["code"] == "busy" and "gc changed nothing" in doc["error"]["message"]
    assert maintenance.count_objects(vault.path) == before
    maintenance.gc(vault)  # released: runs


def test_gc_refuses_while_a_fork_is_mounted(home: Home, vault: Vault, tmp_path: Path, cli: Any) -> None:
    with _mounted(home, vault, "main", tmp_path / "mnt") as info:
        with pytest.raises(BusyError, match="mounted"):
            maintenance.gc(vault)
        doc = _doc(cli("--json", "--vault", "v", "gc", "--dry-run"), "error", 75)
        assert doc["error"]["details"]["mounts"][0]["mountpoint"] == info.mountpoint
        st = maintenance.stats(vault)
        assert st.forks[0].mounted and st.mounts[0].alive
    maintenance.gc(vault)
    _fsck(vault)


# -- prune ------------------------------------------------------------------------------------


def test_prune_dry_run_then_real(home: Home, vault: Vault, cli: Any) -> None:
    vault.workspace("main").write("a.txt", b"a\n")
    checkpoint.save(vault, "main")
    vault.create_fork("main", "merged")
    vault.create_fork("main", "busy")
    vault.workspace("busy").write("b.txt", b"mine\n")  # uncheckpointed: not merged
    vault.create_fork("main", "ahead")
    vault.workspace("ahead").write("c.txt", b"c\n")
    checkpoint.save(vault, "ahead")  # not merged, and fresh
    (Path(vault.state_dir) / "locks").mkdir(exist_ok=True)
    (Path(vault.state_dir) / "locks" / "ghost.lock").write_text("")
    apv = Path(home.path) / "approvals"
    apv.mkdir()
    (apv / f"apv_{'0' * 32}.json").write_text('{"expires": 1}')
    later = time.time() + 2 * 3600  # past the "changed in the last hour" guard

    dry = maintenance.prune(vault, dry_run=True, now=later)
    got = {(i.kind, i.name): i for i in dry.items}
    assert got[("fork", "merged")].action == "would_remove"
    assert ("fork", "busy") not in got and ("fork", "ahead") not in got and ("fork", "main") not in got
    assert got[("lock", "avfs/locks/ghost.lock")].action == "would_remove"
    assert got[("approval", f"apv_{'0' * 32}.json")].action == "would_remove"
    assert vault.has_fork("merged") and (apv / f"apv_{'0' * 32}.json").exists()
    doc = _doc(cli("--json", "--vault", "v", "prune", "--dry-run"), "prune")
    assert doc["dry_run"] and any(i["kind"] == "lock" for i in doc["items"])

    res = maintenance.prune(vault, older_than_days=30, now=later)
    removed = {(i.kind, i.name) for i in res.items if i.action == "removed"}
    assert ("fork", "merged") in removed and not vault.has_fork("merged")
    assert not (apv / f"apv_{'0' * 32}.json").exists()
    assert not (Path(vault.state_dir) / "locks" / "ghost.lock").exists()

    # abandoned: no change for longer than --older-than; its changes stay undoable
    res = maintenance.prune(vault, older_than_days=0.01, now=later + DAY)
    forks = {i.name: i for i in res.items if i.kind == "fork"}
    assert forks["busy"].action == "removed" and forks["ahead"].action == "removed"
    assert vault.fork_names() == ["main"]
    checkpoint.undo(vault, forks["busy"].op_id)
    assert vault.workspace("busy").read("b.txt") == b"mine\n"
    _fsck(vault)


def test_prune_never_removes_a_mounted_fork(home: Home, vault: Vault, tmp_path: Path, cli: Any) -> None:
    vault.create_fork("main", "m")
    with _mounted(home, vault, "m", tmp_path / "mnt") as info:
        res = maintenance.prune(vault, older_than_days=0, now=time.time() + 2 * DAY)
        (item,) = [i for i in res.items if i.kind == "fork"]
        assert item.name == "m" and item.action == "skipped" and info.mountpoint in item.reason
        assert vault.has_fork("m")
        doc = _doc(cli("--json", "--vault", "v", "prune", "--older-than", "0"), "prune")
        assert not [i for i in doc["items"] if i["action"] == "removed"]
    assert vault.has_fork("m")


# -- doctor -----------------------------------------------------------------------------------


def test_doctor_finds_and_repairs(home: Home, vault: Vault, tmp_path: Path, cli: Any) -> None:
    assert maintenance.doctor(home).ok
    _doc(cli("--json", "doctor"), "doctor")
    # a mount daemon killed: its registry entry stays behind
    with _mounted(home, vault, "main", tmp_path / "mnt") as info:
        os.kill(info.pid, signal.SIGKILL)
        # libfuse's auto_unmount helper takes the mount point, as a rule; but it unmounts
        # only when opening the mount point fails with ENOTCONN, and it looks as soon as
        # the daemon's end of its socket closes: when that is before the daemon's /dev/fuse
        # descriptor is released (the helper running on the other CPU), its open fails with
        # ECONNABORTED and it leaves the mount, dead (1 in ~15 kills with three at once,
        # fusermount3 3.14). Then doctor finds it (dead_mountpoint) and --repair takes it.
        deadline = time.monotonic() + 30
        while mounts.mounted_at(info.mountpoint) and time.monotonic() < deadline:
            if not pid_alive(info.pid) and dead_mountpoint(info.mountpoint):
                time.sleep(0.5)  # (the helper's unmount, if it is coming)
                break
            time.sleep(0.01)
        left_dead = mounts.mounted_at(info.mountpoint)
        assert not left_dead or dead_mountpoint(info.mountpoint), "the killed daemon's mount answers"
        registry = mounts.registry_path(vault, "main")
        assert os.path.exists(registry)
        # an orphan state dir with changes (its fork deleted behind avfs' back), one without
        vault.create_fork("main", "lost")
        vault.workspace("lost").write("keep-me.txt", b"precious\n")
        vault.create_fork("main", "empty")
        vault.workspace("empty")
        vault.close()
        git("--git-dir", vault.path, "update-ref", "-d", "refs/heads/lost")
        git("--git-dir", vault.path, "update-ref", "-d", "refs/heads/empty")
        # a ref lock left by a killed process
        stale = Path(vault.path) / "refs" / "heads" / "main.lock"
        stale.write_text("")
        old = time.time() - 3600
        os.utime(stale, (old, old))

        res = cli("--json", "doctor")
        doc = _doc(res, "doctor", 1)
        assert not doc["ok"]
        checks = sorted((f["check"], f["code"]) for f in doc["findings"])
        assert checks == sorted(
            [
                ("locks", "orphan_fork_lock"),
                ("locks", "orphan_fork_lock"),
                ("locks", "stale_git_lock"),
                ("mounts", "dead_mount_registry"),
                ("mounts", "stale_exec_socket"),
                ("mounts", "stale_worktree"),
                ("mounts", "stale_held_base"),  # (the base the killed mount held: gitgc4)
                ("state_dirs", "orphan_state_dir"),
                ("state_dirs", "orphan_state_dir_with_changes"),
            ]
            + ([("mounts", "dead_mountpoint")] if left_dead else [])
        ), doc["findings"]
        assert os.path.exists(registry) and stale.exists()  # nothing repaired without --repair

        doc = _doc(cli("--json", "doctor", "--repair"), "doctor")
        assert doc["ok"] and all(f["repaired"] for f in doc["findings"])
        assert not os.path.exists(registry) and not stale.exists()
        assert not mounts.mounted_at(info.mountpoint)
        lost = list((Path(vault.state_dir) / "lost+found").iterdir())
        assert len(lost) == 1 and lost[0].name.startswith("lost.")
        assert not (Path(vault.state_dir) / "ws" / "empty").exists()
        assert maintenance.doctor(home).findings == []
    _fsck(vault)


# -- lock files -------------------------------------------------------------------------------


def test_exec_locks_and_held_locks_are_never_stale(home: Home, vault: Vault, cli: Any) -> None:
    from avfs_git.proxy.placement import exec_lock

    vault.workspace("main").write("a", b"1")
    checkpoint.save(vault, "main")
    vault.create_fork("main", "team/x")
    for fork in ("main", "team/x"):
        exec_lock(vault, fork)()  # what `avfs proxy exec` leaves: locks/.exec-<fork>.lock
    locks = Path(vault.state_dir) / "locks"
    assert {".exec-main.lock", ".exec-team%2Fx.lock"} <= {p.name for p in locks.iterdir()}
    assert maintenance.stale_locks(vault) == []
    assert maintenance.doctor(home).ok
    assert [i for i in maintenance.prune(vault).items if i.kind == "lock"] == []
    assert (locks / ".exec-main.lock").exists() and (locks / ".exec-team%2Fx.lock").exists()
    # a fork lock asked to be removed directly: re-checked, kept while its fork exists
    maintenance.pruning.remove_lock(str(locks / ".exec-main.lock"))
    assert (locks / ".exec-main.lock").exists()

    # the fork deleted: its lock files go with it
    vault.delete_fork("team/x")
    assert not (locks / ".exec-team%2Fx.lock").exists() and not (locks / "team%2Fx.lock").exists()
    # one left after (a late exec of the deleted fork): stale only while nobody holds it
    release = exec_lock(vault, "team/x")
    try:
        assert maintenance.stale_locks(vault) == []
        maintenance.pruning.remove_lock(str(locks / ".exec-team%2Fx.lock"))
        assert (locks / ".exec-team%2Fx.lock").exists()
    finally:
        release()
    stale = [".exec-team%2Fx.lock"]
    assert [os.path.basename(p) for p, _ in maintenance.stale_locks(vault)] == stale
    assert [i.name for i in maintenance.prune(vault).items if i.kind == "lock"] == [
        f"avfs/locks/{n}" for n in stale
    ]
    assert not (locks / ".exec-team%2Fx.lock").exists() and (locks / ".exec-main.lock").exists()


def test_a_lock_file_unlinked_while_waited_for_is_not_held_twice(vault: Vault) -> None:
    """B waits on the lock file (opened); the file is unlinked (prune of a stale lock) and
    A lets go; C locks the new file of that name. B must not hold the old file's lock at
    the same time as C: it notices the path now names another file and waits for C."""
    import fcntl

    from avfs_git.core.store.locks import file_lock

    lock_dir = Path(vault.state_dir) / "locks"
    lock_dir.mkdir(exist_ok=True)
    path = str(lock_dir / "gone.lock")
    fd_a = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd_a, fcntl.LOCK_EX)  # A
    b_in = threading.Event()

    def waiter() -> None:
        with file_lock(path, what="B", wait_s=20):
            b_in.set()

    b = threading.Thread(target=waiter)
    b.start()
    try:
        time.sleep(0.3)  # B has opened the file and polls its flock
        os.unlink(path)
        os.close(fd_a)  # A lets go
        with file_lock(path, what="C", wait_s=5):  # C: a new file of that name
            time.sleep(0.5)  # B polls at least every 50 ms
            assert not b_in.is_set(), "B and C held the lock at the same time"
    finally:
        b.join(30)
    assert b_in.is_set()


# -- debris of a killed writer: temporary packs -------------------------------------------------

_KILLED_SAVE = """
import sys, time
from avfs_git.core.store import packwriter
from avfs_git.cli.main import main

real_finish = packwriter.PackWriter.finish

def finish(self):
    # the pack is written; stop here, before it is renamed into place, and wait to be killed
    self._fh.flush()
    print("writing", self._tmp, flush=True)
    time.sleep(600)
    return real_finish(self)

packwriter.PackWriter.finish = finish
sys.exit(main(["--vault", "v", "checkpoint", "save"]))
"""


def _temp_packs(vault: Vault) -> list[str]:
    pack_dir = os.path.join(vault.path, "objects", "pack")
    return sorted(n for n in os.listdir(pack_dir) if n.startswith("tmp_"))


def test_killed_checkpoint_leaves_a_temp_pack_that_gc_and_doctor_handle(
    home: Home, vault: Vault, cli: Any
) -> None:
    ws = vault.workspace()
    ws.write("big.bin", os.urandom(3 << 20))
    ws.write("a.txt", b"a\n")
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_SAVE], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("writing "), (line, proc.stderr.read() if proc.poll() is not None else "")
        tmp = line.split(" ", 1)[1].strip()
        assert os.path.basename(tmp).startswith(f"tmp_avfs_{proc.pid}_") and os.path.getsize(tmp) > 3 << 20
        # a live writer: not debris (gc cannot even start: the checkpoint holds its fork)
        before = home.vault("v").quota_usage().objects_bytes
        assert packwriter.stale_temp_files(vault.path) == []
        with pytest.raises(BusyError):
            maintenance.gc(vault, grace_days=0)
        assert os.path.exists(tmp)
        assert not [f for f in maintenance.doctor(home).findings if f.check == "objects"]
        assert home.vault("v").quota_usage().objects_bytes == before  # not counted while written
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
    size = os.path.getsize(tmp)
    # killed: the quota counts it, doctor reports it, gc removes it
    assert home.vault("v").quota_usage().objects_bytes == before + size
    found = [f for f in maintenance.doctor(home).findings if f.check == "objects"]
    assert [f.path for f in found] == [tmp] and found[0].repairable and str(proc.pid) in found[0].problem
    dry = maintenance.gc(vault, grace_days=0, dry_run=True)
    assert dry.stale_temp_files == [tmp] and dry.stale_temp_bytes == size and os.path.exists(tmp)
    doc = _doc(cli("--json", "--vault", "v", "gc", "--grace", "0"), "gc")
    assert doc["vaults"][0]["stale_temp_files"] == [tmp] and doc["vaults"][0]["stale_temp_bytes"] == size
    assert _temp_packs(vault) == []
    assert home.vault("v").quota_usage().objects_bytes < before + size
    # the killed checkpoint changed nothing: the changes are still there to checkpoint
    assert ws.read("a.txt") == b"a\n"
    checkpoint.save(vault)
    _fsck(vault)


def test_doctor_repairs_temp_packs_but_never_a_live_writers(home: Home, vault: Vault, cli: Any) -> None:
    pack_dir = os.path.join(vault.path, "objects", "pack")
    now = time.time()

    def left(name: str, age: float) -> str:
        path = os.path.join(pack_dir, name)
        with open(path, "wb") as fh:
            fh.write(b"PACK" + os.urandom(1000))
        os.utime(path, (now - age, now - age))
        return path

    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    dead_pid = int(dead.stdout)
    killed = left(f"tmp_avfs_{dead_pid}_abc123", 5)  # its writer is gone
    killed_idx = left(f"tmp_avfs_{dead_pid}_abc123.idx", 5)  # an older avfs's index name
    killed_idx2 = left(f"tmp_avfs_{dead_pid}_abc456{packwriter.TMP_INDEX}", 5)

    def keep(name: str, text: bytes, age: float) -> str:
        path = os.path.join(pack_dir, name)
        with open(path, "wb") as fh:
            fh.write(text)
        os.utime(path, (now - age, now - age))
        return path

    # a .keep avfs makes while it puts a pack in place (packwriter.install): its writer killed
    killed_keep = keep("pack-" + "1" * 40 + ".keep", b"avfs %d\n" % dead_pid, 5)
    live_keep = keep("pack-" + "2" * 40 + ".keep", b"avfs %d\n" % os.getpid(), 5)  # still at it
    persons_keep = keep("pack-" + "3" * 40 + ".keep", b"keep this one\n", 10 * packwriter.STALE_TMP_S)
    old = left("tmp_avfs_q1w2e3", 2 * packwriter.STALE_TMP_S)  # an older avfs's name, long untouched
    # kept: a pid that lives (ours; no lock: the moment before a writer locks it) and recent
    fresh = left(f"tmp_avfs_{os.getpid()}_zzz999", 5)
    fresh_old_name = left("tmp_avfs_r4t5y6", 5)
    live = packwriter.PackWriter(vault.path)  # a writer in this process holds its lock
    live_old = os.path.join(pack_dir, os.path.basename(live._tmp))
    os.utime(live_old, (now - 10 * packwriter.STALE_TMP_S,) * 2)  # even long untouched
    try:
        doc = _doc(cli("--json", "doctor"), "doctor", code=1)
        paths = sorted(f["path"] for f in doc["findings"] if f["check"] == "objects")
        assert paths == sorted([killed, killed_idx, killed_idx2, killed_keep, old])
        doc = _doc(cli("--json", "doctor", "--repair"), "doctor")
        assert all(f["repaired"] for f in doc["findings"])
        assert sorted(_temp_packs(vault)) == sorted(
            os.path.basename(p) for p in (fresh, fresh_old_name, live_old)
        )
        # (git prune itself drops tmp_* files older than the grace: --grace 0 would take them)
        assert maintenance.gc(vault).stale_temp_files == []
        assert os.path.exists(live_old) and os.path.exists(fresh)
        assert not os.path.exists(killed_keep) and os.path.exists(live_keep) and os.path.exists(persons_keep)
    finally:
        live.abort()
        for p in (live_keep, persons_keep):
            os.unlink(p)
    assert not os.path.exists(live_old)
    for p in (fresh, fresh_old_name):
        os.unlink(p)


def test_doctor_repairs_an_overlay_file_a_killed_writer_left_but_not_one_being_written(
    vault: Vault, cli: Any
) -> None:
    """A writer killed between an overlay file and the entry that would name it (``kill -9``
    of a mount's daemon or of a CLI write; a failed transaction takes its file with it:
    test_nospace.py) leaves a file no entry names: `avfs doctor --repair` removes it once it
    is older than a writer could still be (``ORPHAN_FILE_S``); a younger one may be a
    write in flight, and stays; the files entries name stay (twenty-sixth round, nospace1)."""
    ws = vault.workspace("main")
    ws.write("kept.txt", b"kept\n")
    files = ws.overlay.files_dir
    named = os.listdir(files)
    killed = os.path.join(files, ws.overlay.new_fileid())
    in_flight = os.path.join(files, ws.overlay.new_fileid())
    for path in (killed, in_flight):
        with open(path, "wb") as fh:
            fh.write(b"x" * 5000)
    old = time.time() - 2 * maintenance.ORPHAN_FILE_S
    os.utime(killed, (old, old))
    doc = _doc(cli("--json", "doctor"), "doctor", code=1)
    found = [f for f in doc["findings"] if f["code"] == "overlay_orphan_files"]
    assert [f["path"] for f in found] == [files], doc["findings"]
    doc = _doc(cli("--json", "doctor", "--repair"), "doctor")
    assert all(f["repaired"] for f in doc["findings"] if f["code"] == "overlay_orphan_files")
    assert sorted(os.listdir(files)) == sorted([*named, os.path.basename(in_flight)])
    assert vault.workspace("main").read("kept.txt") == b"kept\n"
    os.unlink(in_flight)


# -- doctor: what a crashed mount daemon leaves -----------------------------------------------


def _children(pid: int) -> list[int]:
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/stat", "rb") as fh:
                ppid = int(fh.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid:
            out.append(int(p))
    return out


def _crash(info: mounts.MountInfo) -> None:
    """End a mount daemon as a segfault does (SIGKILL: no teardown runs), its auto-unmount
    helper (fusermount3, the daemon's child) first: the kernel keeps the mount, dead
    ("Transport endpoint is not connected"), as when that helper fails too."""
    helpers = [c for c in _children(info.pid) if Path(f"/proc/{c}/comm").read_text().strip() == "fusermount3"]
    assert helpers, "the daemon's auto_unmount helper (fusermount3) is not running"
    for c in helpers:
        os.kill(c, signal.SIGKILL)
    os.kill(info.pid, signal.SIGKILL)
    try:
        os.waitpid(info.pid, 0)  # our child (mounts.mount spawned it)
    except ChildProcessError:
        pass
    deadline = time.monotonic() + 30
    while pid_alive(info.pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not pid_alive(info.pid)


def _worktrees_git(vault: Vault) -> dict[str, bool]:
    """worktree path -> prunable, as `git worktree list --porcelain` says."""
    out: dict[str, bool] = {}
    for block in git("--git-dir", vault.path, "worktree", "list", "--porcelain").split("\n\n"):
        lines = block.splitlines()
        if lines and lines[0].startswith("worktree ") and "bare" not in lines:
            out[lines[0][len("worktree ") :]] = any(x.startswith("prunable") for x in lines)
    return out


def _leftovers(vault: Vault, key: str) -> dict[str, str]:
    reg = mounts.registry_path(vault, key)
    return {
        "registry": reg,
        "exec": reg[: -len(".json")] + ".exec",
        "worktree": os.path.join(vault.path, "worktrees", f"avfs-{key}"),
        "files": registry.mount_dir(vault.state_dir, key),  # the mount's own directory
        # the base the mount held for git's gc (core/store/heldref.py; gitgc4)
        "held_base": os.path.join(vault.path, refs.held_base_ref(key)),
    }


def _state_of(vault: Vault, key: str, mp: str) -> dict[str, Any]:
    """Everything of a live mount that a repair must leave as it is."""
    paths = _leftovers(vault, key)
    files: dict[str, Any] = {}
    for what in ("registry", "exec"):
        files[what] = Path(paths[what]).read_bytes()
    wt = Path(paths["worktree"])
    files["worktree"] = sorted(
        (p.name, p.stat().st_ino, p.stat().st_mtime_ns) for p in wt.iterdir() if p.name != "index.lock"
    )
    files["mounted"] = mounts.mounted_at(mp)
    files["held_base"] = refs.read_ref_file(vault.path, refs.held_base_ref(key))  # (a live mount's: kept)
    assert files["held_base"] is not None
    files["git"] = _worktrees_git(vault).get(mp)
    return files


def test_doctor_repairs_what_a_killed_daemon_left_and_nothing_else(
    home: Home, vault: Vault, tmp_path: Path, cli: Any
) -> None:
    _require_fuse()
    ws = vault.workspace("main")
    ws.write("a.txt", b"a\n")
    checkpoint.save(vault)
    vault.create_fork("main", "other")
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    with _mounted(home, vault, "other", b):
        info = mounts.mount(home, vault, "main", str(a), backend="fuse")
        try:
            (a / "written.txt").write_text("before the crash\n")
            _crash(info)
            with pytest.raises(OSError) as exc:
                os.statvfs(a)
            assert exc.value.errno in registry.DEAD_ERRNOS, exc.value  # (ECONNABORTED: forked, 6.18)
            left = _leftovers(vault, "main")
            assert all(os.path.exists(p) for p in left.values())
            assert _worktrees_git(vault) == {str(a): True, str(b): False}  # git: prunable / not
            other = _state_of(vault, "other", str(b))

            doc = _doc(cli("--json", "doctor"), "doctor", 1)
            found = {f["code"]: f["path"] for f in doc["findings"]}
            assert found == {
                "dead_mount_registry": left["registry"],
                "stale_exec_socket": left["exec"],
                "stale_worktree": left["worktree"],
                "dead_mountpoint": str(a),
                "stale_held_base": left["held_base"],
            }, doc["findings"]
            assert all(f["vault"] == "v" and f["repairable"] and not f["repaired"] for f in doc["findings"])
            assert all(os.path.exists(p) for p in left.values()) and mounts.mounted_at(str(a))  # untouched
            assert {
                f.code: f.path for f in maintenance.mount_findings(home)
            } == found  # the mounts check alone
            human = cli("doctor")
            assert human.code == 1
            assert "stale_worktree" in human.out and left["worktree"] in human.out, human.out

            doc = _doc(cli("--json", "doctor", "--repair"), "doctor")
            assert doc["ok"] and sorted(f["code"] for f in doc["findings"]) == sorted(found)
            assert not any(os.path.exists(p) for p in left.values())
            assert not mounts.mounted_at(str(a))
            assert _worktrees_git(vault) == {str(b): False}
            # the other fork's live mount: its registry, exec file, worktree and mount as they were
            assert _state_of(vault, "other", str(b)) == other
            (b / "still.txt").write_text("live\n")
            assert vault.workspace("other").read("still.txt") == b"live\n"
            assert [m.fork for m in mounts.list_mounts(home)] == ["other"]
            assert maintenance.doctor(home).findings == []
            assert vault.workspace("main").read("written.txt") == b"before the crash\n"
            again = mounts.mount(home, vault, "main", str(a), backend="fuse")  # nothing left in the way
            assert (a / "written.txt").read_text() == "before the crash\n" and again.pid != info.pid
        finally:
            mounts.unmount(home, vault, "main", lazy=True)
            if mounts.mounted_at(str(a)):
                subprocess.run(["fusermount3", "-u", "-z", str(a)], check=False)
    _fsck(vault)


def test_doctor_tells_a_reused_pid_from_a_live_daemon(
    home: Home, vault: Vault, tmp_path: Path, cli: Any
) -> None:
    """A dead daemon's files naming a pid that now runs something else (the kernel reuses
    pids), or a live daemon that started after the file was written, are leftovers."""
    _require_fuse()
    vault.workspace("main").write("a.txt", b"a\n")
    checkpoint.save(vault)
    vault.create_fork("main", "other")
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    sleeper = subprocess.Popen(["sleep", "300"])
    try:
        with _mounted(home, vault, "other", b) as live:
            info = mounts.mount(home, vault, "main", str(a), backend="fuse")
            _crash(info)
            subprocess.run(["fusermount3", "-u", "-z", str(a)], check=True)  # not the point here
            # what the crash left, with the dead daemon's pid given to another process
            left = _leftovers(vault, "main")
            assert all(os.path.exists(p) for p in left.values())
            reg = json.loads(Path(left["registry"]).read_text())
            Path(left["registry"]).write_text(json.dumps({**reg, "pid": sleeper.pid}))
            name = Path(left["exec"]).read_text().split("\n")[0]
            Path(left["exec"]).write_text(f"{name}\n{sleeper.pid}\n")
            # a record of key "ghost" naming the live daemon and its mount, written an hour
            # before that daemon started: its pid was reused by a daemon
            ghost = mounts.registry_path(vault, "ghost")
            other_reg = json.loads(Path(mounts.registry_path(vault, "other")).read_text())
            hour_ago = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3600))
            Path(ghost).write_text(json.dumps({**other_reg, "fork": "ghost", "started": hour_ago}))
            other = _state_of(vault, "other", str(b))

            doc = _doc(cli("--json", "doctor"), "doctor", 1)
            found = sorted((f["code"], f["path"]) for f in doc["findings"])
            assert found == sorted(
                [
                    ("dead_mount_registry", left["registry"]),
                    ("dead_mount_registry", ghost),
                    ("stale_exec_socket", left["exec"]),
                    ("stale_worktree", left["worktree"]),
                    ("stale_held_base", left["held_base"]),
                ]
            ), doc["findings"]
            doc = _doc(cli("--json", "doctor", "--repair"), "doctor")
            assert doc["ok"]
            assert not any(os.path.exists(p) for p in (*left.values(), ghost))
            assert sleeper.poll() is None  # the process that has the pid now: untouched
            assert _state_of(vault, "other", str(b)) == other
            assert maintenance.doctor(home).findings == []
            assert pid_alive(live.pid)
    finally:
        sleeper.kill()
        sleeper.wait()
        if mounts.mounted_at(str(a)):
            subprocess.run(["fusermount3", "-u", "-z", str(a)], check=False)


def _overlay_why() -> str | None:
    if os.geteuid() != 0:
        return "mounting overlayfs needs root here"
    try:
        if "overlay" not in Path("/proc/filesystems").read_text():
            subprocess.run(["modprobe", "overlay"], capture_output=True, check=False)
        if "overlay" not in Path("/proc/filesystems").read_text():
            return "the kernel has no overlayfs"
    except OSError as exc:
        return str(exc)
    return None


def _overlay(lower: Path, upper: Path, work: Path, mp: Path) -> None:
    for d in (lower, upper, work, mp):
        d.mkdir(parents=True, exist_ok=True)
    opts = f"lowerdir={lower},upperdir={upper},workdir={work}"
    proc = subprocess.run(
        ["mount", "-t", "overlay", "overlay", "-o", opts, str(mp)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr


def test_doctor_detaches_an_overlay_left_without_its_daemon(
    home: Home, vault: Vault, tmp_path: Path, cli: Any
) -> None:
    """An overlay mount whose layers lie in the home (a crashed overlay-backed mount: the
    kernel keeps the overlay when the daemon of its lower layer dies) and that no live
    daemon's registry entry names is detached; its upper layer's files stay on disk. An
    overlay of another home, and a live mount of another fork, are left alone."""
    why = _overlay_why()
    if why is not None:
        skip_outside_ci(why, f"overlayfs must be mountable in CI: {why}")
    _require_fuse()
    vault.create_fork("main", "other")
    state = Path(vault.state_dir) / "crashed-overlay"
    ours = tmp_path / "ovl"
    foreign = tmp_path / "foreign-ovl"
    b = tmp_path / "b"
    try:
        with _mounted(home, vault, "other", b):
            _overlay(tmp_path / "lower", state / "upper", state / "work", ours)
            (ours / "made-in-overlay.txt").write_text("upper\n")
            elsewhere = tmp_path / "elsewhere"
            _overlay(elsewhere / "lower", elsewhere / "upper", elsewhere / "work", foreign)
            other = _state_of(vault, "other", str(b))

            doc = _doc(cli("--json", "doctor"), "doctor", 1)
            assert [(f["code"], f["path"], f["vault"]) for f in doc["findings"]] == [
                ("orphan_overlay_mount", str(ours), "v")
            ], doc["findings"]
            assert mounts.mounted_at(str(ours))
            doc = _doc(cli("--json", "doctor", "--repair"), "doctor")
            assert doc["ok"] and [f["code"] for f in doc["findings"]] == ["orphan_overlay_mount"]
            assert not mounts.mounted_at(str(ours))
            assert (state / "upper" / "made-in-overlay.txt").read_text() == "upper\n"
            assert mounts.mounted_at(str(foreign)) and _state_of(vault, "other", str(b)) == other
            assert maintenance.doctor(home).findings == []
    finally:
        for mp in (ours, foreign):
            if mounts.mounted_at(str(mp)):
                subprocess.run(["umount", "-l", str(mp)], check=False)


def test_mountinfo_lines_are_read_with_their_escapes(tmp_path: Path) -> None:
    """The kernel's own format: octal escapes in paths, an overlay's layers in its options."""
    info = tmp_path / "mountinfo"
    info.write_text(
        "40 27 0:40 / /tmp/a\\040b rw,nosuid - fuse.avfs avfs:v:main rw,user_id=0\n"
        "41 27 0:41 / /m rw - overlay overlay rw,lowerdir=/l1:/l2,upperdir=/u\\040x,workdir=/w\n"
        "42 27 0:42 / /n rw - overlay overlay rw,lowerdir+=/x,datadir+=/y,upperdir=/u2,workdir=/w2\n"
        "43 27 8:1 / / rw - ext4 /dev/sda1 rw\n"
    )
    got = mountinfo.kernel_mounts(str(info))
    assert [(k.mountpoint, k.fstype, k.avfs_fuse, k.vault_name) for k in got] == [
        ("/tmp/a b", "fuse.avfs", True, "v"),
        ("/m", "overlay", False, None),
        ("/n", "overlay", False, None),
        ("/", "ext4", False, None),
    ]
    assert got[1].dirs == ("/l1", "/l2", "/u x", "/w")
    assert got[2].dirs == ("/x", "/y", "/u2", "/w2")


def test_prune_removes_what_a_killed_daemon_left(home: Home, vault: Vault, tmp_path: Path, cli: Any) -> None:
    _require_fuse()
    a = tmp_path / "a"
    a.mkdir()
    info = mounts.mount(home, vault, "main", str(a), backend="fuse")
    try:
        _crash(info)
        left = _leftovers(vault, "main")
        assert all(os.path.exists(p) for p in left.values()) and mounts.mounted_at(str(a))
        doc = _doc(cli("--json", "--vault", "v", "prune", "--dry-run"), "prune")
        assert [(i["kind"], i["action"]) for i in doc["items"]] == [("mount", "would_remove")]
        assert all(os.path.exists(p) for p in left.values()) and mounts.mounted_at(str(a))
        doc = _doc(cli("--json", "--vault", "v", "prune"), "prune")
        assert [(i["kind"], i["action"]) for i in doc["items"]] == [("mount", "removed")]
        assert not any(os.path.exists(p) for p in left.values()) and not mounts.mounted_at(str(a))
        assert maintenance.doctor(home).findings == []
    finally:
        if mounts.mounted_at(str(a)):
            subprocess.run(["fusermount3", "-u", "-z", str(a)], check=False)


def test_doctor_removes_a_registry_temp_file_only_when_its_writer_is_gone(
    home: Home, vault: Vault, cli: Any
) -> None:
    root = Path(vault.state_dir) / "mounts"
    root.mkdir(parents=True, exist_ok=True)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    old = time.time() - 3600
    gone = root / f"main.json.{int(dead.stdout)}.tmp"  # write_registry's name: its writer is gone
    gone.write_text("{}")
    os.utime(gone, (old, old))
    mine = root / f"other.json.{os.getpid()}.tmp"  # its writer lives (this process)
    mine.write_text("{}")
    os.utime(mine, (old, old))
    doc = _doc(cli("--json", "doctor"), "doctor", 1)
    assert [(f["code"], f["path"]) for f in doc["findings"]] == [("stale_registry_tmp", str(gone))]
    doc = _doc(cli("--json", "doctor", "--repair"), "doctor")
    assert doc["ok"] and not gone.exists() and mine.exists()


def test_doctor_removes_a_mount_directory_nobody_owns(
    home: Home, vault: Vault, cli: Any, tmp_path: Path
) -> None:
    """A mount's own directory (``<vault>/avfs/mounts/<key>.d``) left with no worktree and
    no live daemon is a leftover; a young one (being made) and a live mount's are not."""
    _require_fuse()
    root = Path(vault.state_dir) / "mounts"
    root.mkdir(parents=True, exist_ok=True)
    old = time.time() - 3600
    gone = Path(registry.mount_dir(vault.state_dir, "gone"))
    gone.mkdir()
    (gone / "avfs-index").write_text("x")
    os.utime(gone, (old, old))
    young = Path(registry.mount_dir(vault.state_dir, "young"))
    young.mkdir()
    vault.workspace("main").write("a.txt", b"a\n")
    checkpoint.save(vault)
    mp = tmp_path / "m"
    mp.mkdir()
    mounts.mount(home, vault, "main", str(mp), backend="fuse")
    try:
        live = Path(registry.mount_dir(vault.state_dir, "main"))
        os.utime(live, (old, old))
        doc = _doc(cli("--json", "doctor"), "doctor", 1)
        assert [(f["code"], f["path"]) for f in doc["findings"]] == [("stale_mount_dir", str(gone))]
        doc = _doc(cli("--json", "doctor", "--repair"), "doctor")
        assert doc["ok"] and not gone.exists() and young.is_dir() and live.is_dir()
        assert (mp / "a.txt").read_text() == "a\n"
    finally:
        mounts.unmount(home, vault, "main")
    assert not live.exists()


# -- doctor after normal use ------------------------------------------------------------------


def test_doctor_reports_nothing_after_forks_are_used_and_deleted(home: Home, vault: Vault, cli: Any) -> None:
    """Every way a fork goes (`down --discard`/`--keep`'s delete, `vault delete V:F`) takes its
    lock files with it: doctor has nothing to say after normal use, and an undo that brings
    a fork back works with new lock files."""
    from avfs_git.proxy.placement import exec_lock

    vault.workspace("main").write("a", b"1")
    checkpoint.save(vault, "main")
    for fork in ("gone", "team/gone", "kept"):
        vault.create_fork("main", fork)
        vault.workspace(fork).write(f"{fork.replace('/', '-')}.txt", b"work\n")
        checkpoint.save(vault, fork)  # takes the fork lock and the exec lock
        exec_lock(vault, fork)()  # as `avfs proxy exec` leaves it
    locks = Path(vault.state_dir) / "locks"
    assert {"gone.lock", ".exec-gone.lock", "team%2Fgone.lock"} <= {p.name for p in locks.iterdir()}
    op = vault.delete_fork("gone")
    _doc(cli("--json", "vault", "delete", "--force", "v:team/gone"), "vault_delete")
    names_left = {p.name for p in locks.iterdir()}
    assert not {"gone.lock", ".exec-gone.lock", "team%2Fgone.lock", ".exec-team%2Fgone.lock"} & names_left
    assert {"kept.lock", ".exec-kept.lock"} <= names_left
    doc = _doc(cli("--json", "doctor"), "doctor")
    assert doc["ok"] and doc["findings"] == []
    checkpoint.undo(vault, op.id)
    assert vault.workspace("gone").read("gone.txt") == b"work\n"
    checkpoint.save(vault, "gone")
    assert maintenance.doctor(home).findings == []


def test_doctor_warns_of_an_upstream_commit_with_a_bad_time_zone(
    home: Home, tmp_path: Path, cli: Any
) -> None:
    """A real project's history whose one commit has a malformed time zone (as some old
    upstream histories do): git keeps and clones it; doctor names it as a warning about the
    upstream history and exits 0, with no hint to restore objects."""
    from . import realdata

    src = realdata.extract(realdata.pypi_sdist("attrs", "24.2.0"), tmp_path / "attrs")
    git("init", "-q", "-b", "master", cwd=src)
    git("add", "-A", cwd=src)
    git("commit", "-qm", "attrs 24.2.0", cwd=src)
    tree = git("-C", str(src), "rev-parse", "HEAD^{tree}").strip()
    parent = git("-C", str(src), "rev-parse", "HEAD").strip()
    raw = (
        f"tree {tree}\nparent {parent}\nauthor Old <old@example.org> 1200000000 +051\n"
        "committer Old <old@example.org> 1200000000 +051\n\nan old commit\n"
    )
    bad = (
        subprocess.run(
            ["git", "-C", str(src), "hash-object", "-t", "commit", "-w", "--literally", "--stdin"],
            input=raw.encode(),
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .strip()
    )
    git("-C", str(src), "update-ref", "refs/heads/master", bad)
    v = home.create_vault("up", from_dir=str(src))
    assert v.workspace("master").base == bad
    strict = subprocess.run(["git", "--git-dir", v.path, "fsck", "--strict"], capture_output=True, text=True)
    assert "badTimezone" in strict.stderr  # git's own verdict: the history is as upstream made it
    res = cli("--json", "doctor", "--full")
    doc = _doc(res, "doctor")
    assert res.code == 0 and doc["ok"]
    (f,) = doc["findings"]
    assert f["severity"] == "warning" and f["code"] == "fsck_upstream_format" and f["check"] == "fsck"
    assert bad[:12] in f["problem"] and "badTimezone" in f["problem"] and "restore" not in (f["hint"] or "")
    human = cli("doctor", "--full")
    assert human.code == 0 and "warning:" in human.err + human.out
    home.close()
    shutil.rmtree(v.path)  # (the suite fscks --strict every vault a test leaves)


def test_doctor_still_reports_a_missing_object_as_a_problem(home: Home, vault: Vault, cli: Any) -> None:
    vault.workspace("main").write("a.txt", b"precious\n")
    checkpoint.save(vault, "main")
    blob = git("--git-dir", vault.path, "rev-parse", "main:a.txt").strip()
    vault.close()
    # the blob's pack goes (a disk lost it): git fsck names what is missing
    for idx in (Path(vault.path) / "objects" / "pack").glob("*.idx"):
        if _pack_has(idx, blob):
            for part in idx.parent.glob(idx.stem + ".*"):
                part.unlink()
    res = cli("--json", "doctor")
    doc = _doc(res, "doctor", 1)
    codes = {(f["code"], f["severity"]) for f in doc["findings"]}
    assert ("fsck_error", "problem") in codes
    home.close()
    shutil.rmtree(vault.path)  # (the suite fscks --strict every vault a test leaves)


def _pack_has(idx: Path, oid: str) -> bool:
    with idx.open("rb") as fh:
        out = subprocess.run(
            ["git", "show-index"], stdin=fh, capture_output=True, text=True, check=True
        ).stdout
    return oid in out


def test_a_new_vaults_op_log_is_a_copy_of_a_template_beside_the_vaults(home: Home, cli: Any) -> None:
    """Creating an op log costs its schema's statements and an fsync: a new vault's is a
    copy of an empty one kept in the home's vaults directory (named by the schema's hash),
    which lists as no vault, holds no operation, and troubles no doctor."""
    a = home.create_vault("a")
    templates = glob.glob(os.path.join(home.vaults_dir, ".oplog-template-*.db"))
    assert len(templates) == 1
    b = home.create_vault("b")
    b.workspace("main").write("x.txt", b"x\n")
    checkpoint.save(b, "main")
    assert [op.kind for op in b.oplog.recent()][:2] == ["checkpoint", "vault_create"]
    assert [op.kind for op in a.oplog.recent()] == ["vault_create"]
    with sqlite3.connect(templates[0]) as conn:
        assert conn.execute("SELECT COUNT(*) FROM ops").fetchone()[0] == 0
    assert [v.name for v in home.list_vaults()] == ["a", "b"]
    doc = _doc(cli("--json", "--home", home.path, "doctor"), "doctor")
    assert doc["ok"], doc


def test_gc_in_a_new_process_imports_gc_alone() -> None:
    """`avfs gc` in a new process pays for gc's imports only: the package's names come
    from their modules when first asked for, and gc's object counts are not stats' module
    (which reads a lazy vault's locality)."""
    script = (
        "import json, sys\n"
        "from avfs_git.ops import maintenance\n"
        "maintenance.gc, maintenance.GcResult, maintenance.count_objects\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('avfs_git'))))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    loaded = set(json.loads(proc.stdout))
    assert "avfs_git.ops.maintenance.collect" in loaded
    for heavy in ("checkup", "pruning", "vaultstats", "leftovers", "findings"):
        assert f"avfs_git.ops.maintenance.{heavy}" not in loaded
    assert "avfs_git.core.operations.hydrate" not in loaded


def test_every_name_the_package_offers_comes_from_its_module() -> None:
    offered = set(maintenance.__all__)
    assert offered <= set(dir(maintenance))
    for name in offered:
        assert getattr(maintenance, name) is not None
    with pytest.raises(AttributeError):
        maintenance.no_such_name  # noqa: B018


def test_the_keep_commit_is_made_without_pygit2(vault: Vault) -> None:
    """gc's keep commit, made in a process that has not loaded pygit2 (a cold `avfs gc`):
    the kinds from object headers, the commits its parents, trees and blobs named in its
    tree, a missing id left out; git reads it all back."""
    ws = vault.workspace("main")
    ws.write("d/f.txt", b"kept\n")
    commit = checkpoint.save(vault, "main").checkpoint.commit
    tree = git("--git-dir", vault.path, "rev-parse", f"{commit}:d").strip()
    blob = git("--git-dir", vault.path, "rev-parse", f"{commit}:d/f.txt").strip()
    missing = "0123456789abcdef0123456789abcdef01234567"
    script = (
        "import json, sys\n"
        "from avfs_git.core.store.gitstore import GitStore\n"
        f"got = GitStore({vault.path!r}).keep_commit({[blob, missing, tree, commit, blob]!r},"
        " 'avfs gc: objects undo still needs\\n', ('avfs gc', 'gc@avfs.invalid'))\n"
        "print(json.dumps({'got': got, 'pygit2': 'pygit2' in sys.modules}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    out = json.loads(proc.stdout)
    assert out["pygit2"] is False
    keep, held = out["got"]
    assert held == [blob, tree, commit]
    body = git("--git-dir", vault.path, "cat-file", "commit", keep)
    assert f"\nparent {commit}\n" in body and "author avfs gc <gc@avfs.invalid> 0 +0000\n" in body
    listing = git("--git-dir", vault.path, "ls-tree", f"{keep}^{{tree}}").splitlines()
    assert sorted(listing) == sorted([f"100644 blob {blob}\t{blob}", f"040000 tree {tree}\t{tree}"])
    _fsck(vault)
