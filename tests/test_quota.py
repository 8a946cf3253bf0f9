"""The vault-wide quota: bytes (git objects + every fork's overlay) and uncheckpointed files,
enforced on every write (API, CLI, another process, a real FUSE mount as EDQUOT)."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from avfs_git.core.errors import QuotaExceededError
from avfs_git.core.operations import checkpoint
from avfs_git.core.vaults.home import Home
from avfs_git.core.vaults.quota import PUBLISH_BYTES, PUBLISH_FILES
from avfs_git.core.vaults.vault import Vault
from avfs_git.mount.side import MOUNT_SIDE
from avfs_git.ops import mounts

from .conftest import AUTHOR, IN_CI
from .test_json_schemas import single_document, validate


def _doc(res: Any, kind: str, code: int = 0) -> dict[str, Any]:
    doc = single_document(res)
    assert validate(doc) == kind, doc
    assert res.code == code, (res.code, doc, res.err)
    return doc


def _fresh(vault: Vault) -> Vault:
    """Another handle on the vault, as another process would have."""
    assert vault.home is not None
    return Home(vault.home.path, author=AUTHOR, mounts=MOUNT_SIDE).vault(vault.name)


def _used(vault: Vault) -> int:
    return vault.quota_usage().used_bytes


# -- bytes ------------------------------------------------------------------------------------


def test_bytes_limit_is_shared_by_the_forks(vault: Vault) -> None:
    vault.create_fork("main", "a")
    vault.create_fork("main", "b")
    vault.set_quota(max_bytes=_used(vault) + 10_000)
    a = vault.workspace("a")
    b = _fresh(vault).workspace("b")  # its own handle: sees a's writes only through the vault
    a.write("fill.bin", b"a" * 8000)
    with pytest.raises(QuotaExceededError) as info:
        b.write("more.bin", b"b" * 5000)
    err = info.value
    assert err.details["what"] == "bytes" and err.details["quota"] == vault.quota_limits()[0]
    assert err.details["used"] >= 8000 and err.details["adding"] == 5000
    assert str(err.details["quota"]) in err.message and str(err.details["used"]) in err.message
    assert not b.exists("more.bin")
    b.write("small.bin", b"b" * 1000)  # what is left is usable
    u = vault.quota_usage()
    assert {f.fork: f.overlay_bytes for f in u.forks if f.overlay_bytes} == {"a": 8000, "b": 1000}
    assert u.used_bytes == u.objects_bytes + 9000 <= vault.quota_limits()[0]  # type: ignore[operator]
    a.remove("fill.bin")  # freeing space in one fork makes room in the other
    b.write("more.bin", b"b" * 5000)


def test_another_process_filling_a_fork_is_seen(vault: Vault, cli_proc: Any, tmp_path: Path) -> None:
    vault.create_fork("main", "a")
    b = vault.workspace("main")
    b.write("warm.txt", b"x")  # the handle's cache is warm before the other process writes
    vault.set_quota(max_bytes=_used(vault) + PUBLISH_BYTES * 3)
    # a real process writes more than the slack a fork may be ahead of what it published
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(PUBLISH_BYTES * 2 + 100))
    assert cli_proc("--json", "--vault", "v:a", "write", "big.bin", "--file", str(big)).code == 0
    with pytest.raises(QuotaExceededError):
        b.write("more.bin", b"m" * (PUBLISH_BYTES + 1000))
    b.write("fits.bin", b"m" * 1000)


def test_many_small_writes_elsewhere_stay_within_the_limit(vault: Vault) -> None:
    """Writes that each stay below the publication threshold still add up exactly."""
    vault.create_fork("main", "a")
    limit = _used(vault) + 3 * PUBLISH_FILES * 100
    vault.set_quota(max_bytes=limit)
    a = _fresh(vault).workspace("a")
    main = vault.workspace("main")
    n = 0
    with pytest.raises(QuotaExceededError):
        while True:
            (a if n % 2 else main).write(f"f{n}.bin", b"z" * 100)
            n += 1
    assert _used(vault) <= limit < _used(vault) + 100


def test_a_checkpoint_moves_bytes_into_objects_and_the_total_stays(vault: Vault) -> None:
    ws = vault.workspace("main")
    before = vault.quota_usage()
    ws.write("data.bin", os.urandom(200_000))  # random: does not compress
    mid = vault.quota_usage()
    assert mid.overlay_bytes == 200_000 and mid.objects_bytes == before.objects_bytes
    vault.set_quota(max_bytes=mid.used_bytes + 20_000)
    checkpoint.save(vault, "main", "c1")
    after = vault.quota_usage()
    assert after.overlay_bytes == 0 and after.used_files == 0
    assert after.objects_bytes >= before.objects_bytes + 200_000
    assert abs(after.used_bytes - mid.used_bytes) < 10_000  # moved, not freed
    # the writer's cached objects' size followed the checkpoint's pack: 30 KB is refused
    # although the overlay is empty
    with pytest.raises(QuotaExceededError):
        ws.write("more.bin", b"m" * 30_000)
    ws.write("ok.bin", b"m" * 1000)


def test_objects_written_by_another_process_are_counted(vault: Vault, cli_proc: Any) -> None:
    ws = vault.workspace("main")
    ws.write("warm.txt", b"x")
    vault.set_quota(max_bytes=_used(vault) + 100_000)
    ws.write("a.bin", os.urandom(60_000))
    assert cli_proc("--json", "--vault", "v", "checkpoint", "save", "c").code == 0
    with pytest.raises(QuotaExceededError):  # 60 KB now in objects + 60 KB > 100 KB left
        ws.write("b.bin", os.urandom(60_000))


def test_sealed_pack_files_are_sized_once_and_a_replaced_one_again(
    vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pack's files do not change under their names: a later scan of ``objects/pack``
    sizes only the new ones (each checkpoint adds a pack: a fresh process's checks stat
    them all twice otherwise); a file replaced under its name (another inode), and any
    other file there, are sized every time, and so is everything in an exact recount."""
    from avfs_git.core.vaults import objscan

    ws = vault.workspace("main")
    for i in range(3):
        ws.write(f"f{i}.txt", os.urandom(1000))
        checkpoint.save(vault, "main", f"c{i}")
    tracker = vault.quota
    pack_dir = Path(vault.path, "objects", "pack")
    packs = sorted(p.name for p in pack_dir.iterdir() if p.name.endswith(".pack"))
    assert len(packs) >= 3
    first = tracker._scan_objects()
    sized: list[str] = []
    real = objscan.size_of

    def counting(e: os.DirEntry[str]) -> int:
        sized.append(e.name)
        return real(e)

    monkeypatch.setattr(objscan, "size_of", counting)  # (where _scan_objects calls it)
    assert tracker._scan_objects() == first
    assert not [n for n in sized if n.startswith("pack-")]
    # another file in the pack dir is sized every time
    stray = pack_dir / "stray"
    stray.write_bytes(b"s" * 500)
    sized.clear()
    assert tracker._scan_objects() == first + 500
    assert sized == ["stray"]
    # a pack file replaced under its name (another inode, other bytes) is sized again
    victim = pack_dir / packs[0]
    data = victim.read_bytes()
    tmp = pack_dir / "tmp_replacing"
    tmp.write_bytes(data + b"\0" * 4096)
    os.replace(tmp, victim)
    sized.clear()
    assert tracker._scan_objects() == first + 500 + 4096
    assert packs[0] in sized and len([n for n in sized if n.startswith("pack-")]) == 1
    # a file grown in place keeps its inode: the exact recount (after a confined command)
    # sizes every file anew
    with open(victim, "ab") as fh:
        fh.write(b"\0" * 100)
    sized.clear()
    assert tracker._scan_objects(exact=True) == first + 500 + 4096 + 100
    assert len([n for n in sized if n.startswith("pack-")]) == len(
        [p for p in pack_dir.iterdir() if p.name.startswith("pack-")]
    )
    stray.unlink()
    tmp.write_bytes(data)  # the pack as it was (the fixture checks the vault with git fsck)
    os.replace(tmp, victim)


def test_the_objects_are_rescanned_only_for_a_figure_that_needs_them(
    vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pack written (a checkpoint, a merge) marks the objects' size stale; noting a fork's
    totals, or checking a write with no limit set, does not rescan the pack directory for
    it; the next check against a limit does, and counts the new pack."""
    vault.set_quota(max_bytes=None, max_files=None)  # (a vault has a bytes limit by default)
    ws = vault.workspace("main")
    ws.write("warm.txt", b"x")
    base = _used(vault)
    quota = vault.quota
    scans: list[int] = []
    real = quota._scan_objects

    def counted(**kw: Any) -> int:
        scans.append(1)
        return int(real(**kw))

    monkeypatch.setattr(quota, "_scan_objects", counted)
    ws.write("a.bin", os.urandom(60_000))
    checkpoint.save(vault, "main")  # a pack; the workspace's totals noted after it
    ws.write("b.txt", b"y")  # a check with no limit
    assert scans == []
    vault.set_quota(max_bytes=base + 100_000)
    ws.write("c.bin", os.urandom(30_000))  # checked against the limit: the objects scanned
    assert scans
    with pytest.raises(QuotaExceededError):  # the 60 KB pack counted: 30 + 80 > 100 KB left
        ws.write("e.bin", os.urandom(80_000))


def _loose(vault: Vault, data: bytes) -> None:
    subprocess.run(
        ["git", "hash-object", "-w", "--stdin"], cwd=vault.path, input=data, check=True, capture_output=True
    )


def test_warm_lists_the_objects_ahead_so_the_next_count_lists_only_what_changed(
    vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    """:meth:`~avfs_git.core.vaults.quota.QuotaTracker.warm` (a first ``proxy exec`` while
    its mount comes up) lists the object store as a count would: a fresh handle's next
    :meth:`outside_bytes` then lists no pack file and no loose fan-out directory that did
    not change, counts the same figure as an unwarmed handle, and sees a new one. Without a
    bytes quota it lists nothing."""
    from avfs_git.core.vaults import objscan, quota

    ws = vault.workspace("main")
    ws.write("a.txt", os.urandom(1000))
    checkpoint.save(vault, "main", "c")
    _loose(vault, b"loose")  # a loose object: a fan-out directory
    time.sleep(objscan.RACY_S * 3)  # (a directory changed within the clock's tick is listed again)
    expected = _fresh(vault).quota.outside_bytes()
    tracker = _fresh(vault).quota
    listed: list[str] = []
    sized: list[str] = []
    tree, size = objscan.tree_bytes, objscan.size_of

    def listing(path: str) -> int:
        listed.append(os.path.relpath(path, vault.path))
        return int(tree(path))

    def sizing(e: os.DirEntry[str]) -> int:
        sized.append(e.name)
        return int(size(e))

    for where in (quota, objscan):  # (the objects scanned in objscan, the rest in quota)
        monkeypatch.setattr(where, "tree_bytes", listing)
    monkeypatch.setattr(objscan, "size_of", sizing)
    tracker.warm()
    assert any(len(p) == len("objects/ab") and p.startswith("objects/") for p in listed)
    assert any(n.startswith("pack-") for n in sized)
    listed.clear()
    sized.clear()
    assert tracker.outside_bytes() == expected
    assert [p for p in listed if p.startswith("objects") and p != "objects/info"] == []  # not again
    assert not [n for n in sized if n.startswith("pack-")]
    _loose(vault, b"another")
    assert tracker.outside_bytes() > expected  # a new object is counted
    none = _fresh(vault)
    none.set_quota(max_bytes=None, max_files=None)
    listed.clear()
    sized.clear()
    _fresh(none).quota.warm()
    assert listed == [] and sized == []


# -- files ------------------------------------------------------------------------------------


def test_file_limit_counts_uncheckpointed_files_of_every_fork(vault: Vault) -> None:
    vault.create_fork("main", "a")
    vault.set_quota(max_files=3)
    main, a = vault.workspace("main"), _fresh(vault).workspace("a")
    main.write("1.txt", b"1")
    main.write("2.txt", b"2")
    a.write("3.txt", b"3")
    with pytest.raises(QuotaExceededError) as info:
        a.write("4.txt", b"4")
    assert info.value.details == {"what": "files", "used": 3, "adding": 1, "quota": 3}
    with pytest.raises(QuotaExceededError):
        main.symlink("1.txt", "link")
    with pytest.raises(QuotaExceededError):
        main.copy("1.txt", "copy.txt")
    main.write("1.txt", b"rewritten")  # no new file
    main.mkdir("dir")  # directories are not files
    main.rename("2.txt", "dir/2.txt")
    u = vault.quota_usage()
    assert u.used_files == 3 and u.over == []
    checkpoint.save(vault, "main", "c")  # checkpointed files do not count
    assert vault.quota_usage().used_files == 1
    main.write("4.txt", b"4")
    main.write("5.txt", b"5")
    with pytest.raises(QuotaExceededError):
        main.write("6.txt", b"6")


def test_file_limit_with_many_files(vault: Vault) -> None:
    n = PUBLISH_FILES * 2 + 10
    vault.create_fork("main", "a")
    vault.set_quota(max_files=n)
    a, main = _fresh(vault).workspace("a"), vault.workspace("main")
    for i in range(n - 5):
        a.write(f"f{i}", b"")
    for i in range(5):
        main.write(f"g{i}", b"")
    with pytest.raises(QuotaExceededError):
        main.write("one-more", b"")
    assert vault.quota_usage().used_files == n


# -- setting ----------------------------------------------------------------------------------


def test_set_below_use_is_accepted_and_blocks_growth_only(vault: Vault, cli: Any) -> None:
    vault.create_fork("main", "a")
    ws = vault.workspace("main")
    ws.write("big.bin", b"x" * 5000)
    ws.write("small.bin", b"y" * 100)
    vault.workspace("a").write("other.bin", b"z" * 3000)
    res = cli("--json", "--vault", "v", "quota", "set", "--bytes", "2K", "--files", "1")
    doc = _doc(res, "quota")
    assert doc["quota_bytes"] == 2048 and doc["quota_files"] == 1
    assert doc["over"] == ["bytes", "files"] and doc["used_files"] == 3
    assert "over the new quota" in res.err
    with pytest.raises(QuotaExceededError):
        ws.write("more.bin", b"m")
    with pytest.raises(QuotaExceededError):
        ws.write("small.bin", b"y" * 101)  # grows
    ws.write("small.bin", b"y" * 50)  # shrinks: allowed, frees space
    ws.remove("big.bin")
    checkpoint.save(vault, "main", "while-over")  # always possible
    vault.delete_fork("a")  # always possible
    assert vault.quota_usage().used_files == 0


def test_lifting_a_limit(vault: Vault, cli: Any) -> None:
    ws = vault.workspace("main")
    assert _doc(cli("--json", "--vault", "v", "quota", "set", "1K", "--files", "0"), "quota")["over"] == []
    with pytest.raises(QuotaExceededError):
        ws.write("a.bin", b"a" * 2000)
    doc = _doc(cli("--json", "--vault", "v", "quota", "set", "--bytes", "none"), "quota")
    assert doc["quota_bytes"] is None and doc["quota_files"] == 0
    with pytest.raises(QuotaExceededError):  # the file limit is still there
        ws.write("a.bin", b"a" * 2000)
    doc = _doc(cli("--json", "--vault", "v", "quota", "set", "--files", "none"), "quota")
    assert doc["quota_bytes"] is None and doc["quota_files"] is None
    ws.write("a.bin", b"a" * 2_000_000)
    assert vault.quota_limits() == (None, None)
    assert json.loads(Path(vault.path, "avfs", "config.json").read_text())["quota_bytes"] is None


def test_an_old_config_keeps_its_number_as_the_vault_bytes_limit(home: Home, vault: Vault) -> None:
    cfg = Path(vault.path, "avfs", "config.json")
    data = json.loads(cfg.read_text()) if cfg.exists() else {}
    data["quota_bytes"] = 50_000
    cfg.write_text(json.dumps(data))
    v = Home(home.path, author=AUTHOR, mounts=MOUNT_SIDE).vault("v")
    assert v.quota_limits() == (50_000, None) and v.quota_bytes == 50_000
    v.create_fork("main", "a")
    v.workspace("main").write("a.bin", b"a" * 30_000)
    with pytest.raises(QuotaExceededError):
        v.workspace("a").write("b.bin", b"b" * 30_000)


def test_default_limit(vault: Vault) -> None:
    assert vault.quota_limits() == (10 * 1024**3, None)


# -- CLI ----------------------------------------------------------------------------------------


def test_cli_show_set_and_errors(vault: Vault, cli: Any) -> None:
    vault.create_fork("main", "a")
    vault.workspace("a").write("x.bin", b"x" * 1234)
    doc = _doc(cli("--json", "--vault", "v", "quota", "show"), "quota")
    assert doc["vault"] == "v" and doc["fork"] == "main" and doc["over"] == []
    assert doc["quota_bytes"] == 10 * 1024**3 and doc["quota_files"] is None
    assert doc["overlay_bytes"] == 1234 and doc["used_files"] == 1
    assert doc["used_bytes"] == doc["objects_bytes"] + 1234 and doc["objects_bytes"] > 0
    assert {"fork": "a", "overlay_bytes": 1234, "overlay_files": 1} in doc["forks"]
    human = cli("--vault", "v", "quota", "show")
    assert human.code == 0 and "uncheckpointed files" in human.out
    doc = _doc(cli("--json", "--vault", "v", "quota", "set", "--bytes", "500M", "--files", "10"), "quota")
    assert doc["quota_bytes"] == 500 * 1024**2 and doc["quota_files"] == 10
    assert _doc(cli("--json", "--vault", "v", "quota", "set", "10G"), "quota")["quota_bytes"] == 10 * 1024**3
    # a write over the quota: one error document, exit 1
    cli("--json", "--vault", "v", "quota", "set", "--files", "1")
    err = _doc(cli("--json", "--vault", "v", "write", "new.txt", "y"), "error", 1)
    assert err["error"]["code"] == "quota_exceeded" and err["error"]["details"]["what"] == "files"
    assert "1" in err["error"]["message"] and err["error"]["hint"]
    # usage errors: exit 2, one document
    for bad in (
        ["quota", "set"],
        ["quota", "set", "abc"],
        ["quota", "set", "--files", "-1"],
        ["quota", "set", "--files", "many"],
        ["quota", "set", "1K", "--bytes", "2K"],
    ):
        assert _doc(cli("--json", "--vault", "v", *bad), "error", 2)["error"]["code"] == "usage"


# -- through a mount ----------------------------------------------------------------------------


def _require_fuse() -> None:
    why = mounts.fuse_available()
    if why is not None:
        if IN_CI:
            pytest.fail(f"FUSE must be available in CI: {why}")
        pytest.skip(f"requires FUSE: {why}")


@contextmanager
def _mounted(home: Home, vault: Vault, fork: str, mp: Path) -> Iterator[str]:
    _require_fuse()
    mp.mkdir(exist_ok=True)
    # these set the quota while mounted: the pure-FUSE backend checks each write (an overlay
    # mount's writes are the kernel's; a vault with a quota mounts pure FUSE, test_fuse.py)
    mounts.mount(home, vault, fork, str(mp), backend="fuse")
    try:
        yield str(mp)
    finally:
        try:
            mounts.unmount(home, vault, fork, lazy=True)
        finally:
            if mounts.mounted_at(str(mp)):
                subprocess.run(["fusermount3", "-u", "-z", str(mp)], check=False)


def test_edquot_through_a_mount_for_bytes_another_fork_used(
    home: Home, vault: Vault, cli_proc: Any, tmp_path: Path
) -> None:
    vault.create_fork("main", "a")
    with _mounted(home, vault, "main", tmp_path / "mnt") as mp:
        with open(os.path.join(mp, "first.txt"), "wb") as fh:  # the daemon's cache is warm
            fh.write(b"first")
        # set by another process while mounted; the other fork then fills the vault
        limit = _used(vault) + 300_000
        assert cli_proc("--json", "--vault", "v", "quota", "set", "--bytes", str(limit)).code == 0
        _fresh(vault).workspace("a").write("fill.bin", os.urandom(250_000))
        with pytest.raises(OSError) as info, open(os.path.join(mp, "big.bin"), "wb") as fh:
            fh.write(b"x" * (1 << 20))
            fh.flush()
        assert info.value.errno == errno.EDQUOT
        with open(os.path.join(mp, "small.bin"), "wb") as fh:  # what is left is usable
            fh.write(b"s" * 10_000)
    assert vault.workspace("main").read("small.bin") == b"s" * 10_000


def test_one_long_write_through_a_mount_stops_at_the_limit(home: Home, vault: Vault, tmp_path: Path) -> None:
    """`dd bs=1M count=500` under a 20 MiB quota: the write fails with EDQUOT near the limit
    (it used to run to 500 MiB: each recheck counted the file at its last recorded size)."""
    with _mounted(home, vault, "main", tmp_path / "mnt") as mp:
        limit = _used(vault) + (20 << 20)
        vault.set_quota(max_bytes=limit)
        dd = subprocess.run(
            ["dd", "if=/dev/zero", f"of={mp}/big.bin", "bs=1M", "count=500"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert dd.returncode != 0 and "quota exceeded" in dd.stderr.lower(), dd.stderr
        size = os.path.getsize(os.path.join(mp, "big.bin"))
        assert 0 < size <= 20 << 20, size
    assert _used(_fresh(vault)) <= limit
    assert len(vault.workspace("main").read("big.bin")) == size


def test_edquot_through_a_mount_for_files(home: Home, vault: Vault, tmp_path: Path) -> None:
    with _mounted(home, vault, "main", tmp_path / "mnt") as mp:
        vault.set_quota(max_files=2)
        Path(mp, "1.txt").write_text("1")
        Path(mp, "2.txt").write_text("2")
        with pytest.raises(OSError) as info:
            Path(mp, "3.txt").write_text("3")
        assert info.value.errno == errno.EDQUOT
        Path(mp, "1.txt").write_text("one")  # rewriting is not a new file
        os.unlink(os.path.join(mp, "2.txt"))
        Path(mp, "3.txt").write_text("3")
    assert sorted(e.name for e in vault.workspace("main").listdir()) == ["1.txt", "3.txt"]


def test_a_file_written_then_renamed_counts_at_its_size(vault: Vault) -> None:
    """A move gives the entry the file's size now: a pure-FUSE mount records a closed
    file's size a moment after the close, by its path, and a rename right after it (an
    editor's save) took the entry at the size last recorded (0 for a file the mount
    created) while the record found its path gone: the file's bytes were missing from
    the overlay's totals, which the quota reads, for good (a 5 MiB file written and
    renamed through a mount: 0 bytes; under a quota the writes' rechecks of the limit
    record most of it; twenty-fifth round, raced1). Made exact: the bytes written to
    the overlay file as the mount's descriptor writes them, not recorded yet, then the
    rename."""
    ws = vault.workspace("main")
    ws.write(".save.tmp", b"")
    e = ws.overlay.get(".save.tmp")
    assert e is not None and e.fileid is not None and e.size == 0
    with open(ws.overlay.file_path(e.fileid), "ab") as fh:  # (the mount's descriptor)
        fh.write(b"x" * 3_000_000)
    before = _used(vault)
    ws.rename(".save.tmp", "saved.bin")
    got = ws.overlay.get("saved.bin")
    assert got is not None and got.size == 3_000_000
    assert ws.overlay.totals()[0] == 3_000_000
    assert _used(_fresh(vault)) >= before + 3_000_000


def test_a_pack_is_signalled_in_place_and_seen_by_another_handle(vault: Vault) -> None:
    """Every pack written changes ``usage/objects`` and counts one more in ``usage/gen``;
    the signal is written in place (a rename over it would start its writeback on ext4,
    milliseconds on a busy disk), and another handle's cached size of the objects follows."""
    other = _fresh(vault)
    ws = vault.workspace("main")
    ws.write("warm.txt", b"x")
    checkpoint.save(vault, "main", "c0")
    seen = other.quota_usage().objects_bytes  # the other handle's cache is warm
    usage_dir = os.path.join(vault.path, "avfs", "usage")
    sig = os.path.join(usage_dir, "objects")
    before = (os.stat(sig).st_ino, Path(sig).read_bytes(), Path(usage_dir, "gen").read_bytes())
    ws.write("data.bin", os.urandom(100_000))
    checkpoint.save(vault, "main", "c1")
    after = (os.stat(sig).st_ino, Path(sig).read_bytes(), Path(usage_dir, "gen").read_bytes())
    assert after[0] == before[0]  # the same file, written in place
    assert after[1] != before[1] and after[2] != before[2]
    assert other.quota_usage().objects_bytes >= seen + 100_000


def test_a_note_after_another_process_published_reads_its_own_fork_s_file_only(
    vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fork's totals noted after a committed transaction, once another process has
    published since: only that fork's file is read again, not every fork's (h-merge4: a
    merge in the kept process read the whole usage directory after each agent's
    checkpoint elsewhere, O(forks) a merge); the figures read afterwards are every fork's."""
    from avfs_git.core.vaults import quota as quota_mod

    for i in range(12):
        vault.create_fork("main", f"f{i}")
        vault.workspace(f"f{i}").write("x.txt", b"x" * 100)  # (each fork's first: published)
    mine = _fresh(vault)
    ws = mine.workspace("main")
    ws.write("a.txt", b"a")
    mine.quota.usage(rescan=False)  # (every file read: the counter as it is now)
    vault.create_fork("main", "late")
    vault.workspace("late").write("y.txt", b"y" * 100)  # another handle publishes
    read: list[str] = []
    real = quota_mod.read_small

    def counted(path: str) -> bytes | None:
        read.append(os.path.basename(path))
        return real(path)

    monkeypatch.setattr(quota_mod, "read_small", counted)
    with ws.overlay.txn():  # a transaction (a merge's, which holds the fork's writers): its note
        pass
    assert read == ["f.main"], read  # (the patch ran: main's own file read)
    monkeypatch.setattr(quota_mod, "read_small", real)
    assert mine.quota.usage(rescan=False) == _fresh(vault).quota.usage(rescan=False)
    late = [f for f in mine.quota.usage(rescan=False).forks if f.fork == "late"]
    assert late and late[0].overlay_bytes == 100


def test_a_count_bound_for_one_fork_is_at_least_the_exact_one(vault: Vault) -> None:
    """`recount(bound_for=FORK)` (after a `proxy exec` in FORK) reads FORK's overlay and
    takes the others at their published totals plus the slack: never below the exact
    count, even for writes another fork has not published yet."""
    from avfs_git.core.vaults.quota import PUBLISH_BYTES

    vault.create_fork("main", "a")
    vault.create_fork("main", "b")
    a = vault.workspace("a")
    a.write("x.bin", b"a" * 8000)  # published at once (the fork's first bytes)
    a.write("y.bin", b"a" * 8000)  # not published: within the slack
    vault.workspace("b").write("z.bin", b"b" * 3000)
    exact = vault.quota.recount()
    bound = vault.quota.recount(bound_for="b")
    others = [f for f in bound.forks if f.fork != "b"]
    assert exact.used_bytes < bound.used_bytes <= exact.used_bytes + len(others) * PUBLISH_BYTES
    assert {f.fork: f.overlay_bytes for f in exact.forks}["a"] == 16000
    assert {f.fork: f.overlay_bytes for f in bound.forks}["a"] == 8000 + PUBLISH_BYTES
    assert {f.fork: f.overlay_bytes for f in bound.forks}["b"] == 3000  # its own: exact
    assert vault.quota.usage(rescan=False) == exact


def test_the_human_lines_read_as_sentences(vault: Vault, cli: Any) -> None:
    """`quota set --files none` said `quota of v is now 500.0M and no limit files`, `quota
    show` `0 uncheckpointed files of no limit`, and `doctor` `1 vaults checked`."""
    res = cli("--vault", "v", "quota", "set", "500M", "--files", "none")
    assert res.code == 0 and "quota of v is now 500.0M and no file limit (" in res.err + res.out, res
    shown = cli("--vault", "v", "quota", "show").out
    assert " of 500.0M (" in shown and shown.rstrip().endswith("uncheckpointed files, no file limit"), shown
    res = cli("--vault", "v", "quota", "set", "--bytes", "none", "--files", "7")
    assert "quota of v is now no byte limit and 7 files (" in res.err + res.out, res
    shown = cli("--vault", "v", "quota", "show").out
    assert ", no byte limit (" in shown and shown.rstrip().endswith("uncheckpointed files of 7"), shown
    assert cli("doctor").out.startswith("1 vault checked: no problems"), cli("doctor").out
