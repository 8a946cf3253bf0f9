"""The object database read directly (core/store/odbdirect.py): many trees read through a
database of the vault's packs alone, then the whole one, with the same bytes either way."""

from __future__ import annotations

import gc
import os
import subprocess

import pytest

from avfs_git.core.errors import AvfsError
from avfs_git.core.operations import checkpoint
from avfs_git.core.store import odbdirect
from avfs_git.core.vaults.vault import Vault
from avfs_git.core.workspace.workspace import Workspace

from .conftest import git


def _tree(vault: Vault, rev: str) -> str:
    return git("--git-dir", vault.path, "rev-parse", f"{rev}^{{tree}}").strip()


def _raw(vault: Vault, oid: str) -> bytes:
    """What git itself reads of an object (its raw body)."""
    kind = git("--git-dir", vault.path, "cat-file", "-t", oid).strip()
    return subprocess.run(
        ["git", "--git-dir", vault.path, "cat-file", kind, oid], capture_output=True, check=True
    ).stdout


def _loose(vault: Vault, text: str) -> str:
    """A blob git writes as a loose object."""
    proc = subprocess.run(
        ["git", "--git-dir", vault.path, "hash-object", "-w", "--stdin"],
        input=text.encode(),
        capture_output=True,
        check=True,
    )
    return proc.stdout.decode().strip()


def test_packed_loose_and_newly_packed_objects_read_as_git_reads_them(vault: Vault, ws: Workspace) -> None:
    """Packed trees come from the packs' database; a loose object (git wrote it) and a pack
    written after the reader's database was made are read all the same."""
    ws.write("a/b/one.txt", b"one\n")
    checkpoint.save(vault, "main", "c1")
    read = odbdirect.raw_reader(vault.store, "tree")
    packed = _tree(vault, "main")
    assert read(packed) == _raw(vault, packed)
    # the packs read through the backend kept for the thread (the database around it owns it)
    assert vault.store._local.packs[0] == (
        odbdirect.packs_odb(vault.store),
        odbdirect.packs_backend(vault.store),
    )
    # a pack written since the database was made (checkpoints write packs)
    ws.write("a/c/two.txt", b"two\n")
    checkpoint.save(vault, "main", "c2")
    newer = _tree(vault, "main")
    assert read(newer) == _raw(vault, newer)
    # a loose object, as git writes them
    loose = _loose(vault, "loose\n")
    assert read(loose) == b"loose\n"


def test_after_enough_misses_the_reader_reads_through_the_whole_database(
    vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A vault whose objects are loose (git wrote them) would rescan the pack directory on
    every miss: after PACK_MISSES the reader stops asking the packs' database."""
    blobs = [_loose(vault, f"loose {i}\n") for i in range(odbdirect.PACK_MISSES + 3)]
    asked: list[str] = []
    refreshed: list[int] = []
    backend = odbdirect.packs_backend(vault.store)

    class Counting:
        def read(self, oid: str) -> tuple[int, bytes]:
            asked.append(oid)
            return backend.read(oid)  # type: ignore[no-any-return]

        def refresh(self) -> None:
            refreshed.append(1)
            backend.refresh()

    monkeypatch.setattr(odbdirect, "packs_backend", lambda store, lane=0: Counting())
    read = odbdirect.raw_reader(vault.store, "blob")
    assert [read(b) for b in blobs] == [f"loose {i}\n".encode() for i in range(len(blobs))]
    # each miss looked again once (a pack written since?), then stopped asking the packs
    assert asked == [b for b in blobs[: odbdirect.PACK_MISSES] for _ in (0, 1)]
    assert len(refreshed) == odbdirect.PACK_MISSES


def test_an_object_nowhere_is_named(vault: Vault) -> None:
    read = odbdirect.raw_reader(vault.store, "tree")
    with pytest.raises(AvfsError, match="0123456789abcdef0123456789abcdef01234567"):
        read("0123456789abcdef0123456789abcdef01234567")


def test_close_drops_the_packs_database(vault: Vault) -> None:
    """A vault's store closed (gc removes packs after it) holds no pack open through it."""
    odbdirect.packs_odb(vault.store)
    odbdirect.packs_backend(vault.store, 1)
    vault.store.close()
    assert getattr(vault.store._local, "packs", None) is None


def _open_packs(vault: Vault) -> list[str]:
    """The vault's pack files this process holds open."""
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(os.path.join(vault.path, "objects", "pack") + os.sep):
            out.append(target)
    return out


def test_readers_keep_no_pack_open_once_the_store_is_closed(vault: Vault, ws: Workspace) -> None:
    """Every merge reads its trees through :func:`raw_reader` in three lanes: once the
    store is closed and the readers are gone, no pack stays open (pygit2 never frees a
    pack backend that is in no database: each one read alone held its packs, a pack gc
    deleted included, for the life of the process)."""
    trees = []
    for i in range(3):
        ws.write(f"d{i}/f.txt", f"{i}\n".encode())
        checkpoint.save(vault, "main", f"c{i}")  # a pack each
        trees.append(_tree(vault, "main"))
    vault.store.close()
    readers = [odbdirect.raw_reader(vault.store, "tree", lane) for lane in range(3)]
    for read in readers:
        assert [read(t) for t in trees] == [_raw(vault, t) for t in trees]
    assert _open_packs(vault)
    del read, readers
    vault.store.close()
    gc.collect()
    assert _open_packs(vault) == []


def test_each_lane_is_a_database_of_its_own_kept_for_the_thread(vault: Vault, ws: Workspace) -> None:
    """Readers of objects in different packs each keep libgit2's hint of the pack it last
    found an object in: one database per lane, the same bytes through each."""
    ws.write("a/one.txt", b"one\n")
    checkpoint.save(vault, "main", "c1")
    first = _tree(vault, "main")
    ws.write("b/two.txt", b"two\n")
    checkpoint.save(vault, "main", "c2")  # another pack
    second = _tree(vault, "main")
    odbs = [odbdirect.packs_odb(vault.store, lane) for lane in range(3)]
    assert len({id(o) for o in odbs}) == 3
    assert odbs == [odbdirect.packs_odb(vault.store, lane) for lane in range(3)]
    for lane in range(3):
        read = odbdirect.raw_reader(vault.store, "tree", lane)
        assert (read(first), read(second)) == (_raw(vault, first), _raw(vault, second))


def test_a_merge_reads_base_ours_and_theirs_each_through_its_own_lane(
    vault: Vault, ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    from avfs_git.core.operations import merge
    from avfs_git.core.store import trivialmerge

    ws.write("d/x", b"1")
    ws.write("d/y", b"1")
    checkpoint.save(vault, "main")
    vault.create_fork("main", "other")
    vault.workspace("other").write("d/y", b"2")
    ws.write("d/x", b"2")
    checkpoint.save(vault, "main")
    checkpoint.save(vault, "other")
    lanes: dict[int, set[str]] = {}
    real = odbdirect.raw_reader

    def recording(store, what="object", lane=0):  # type: ignore[no-untyped-def]
        read = real(store, what, lane)

        def rec(oid: str) -> bytes:
            lanes.setdefault(lane, set()).add(oid)
            return read(oid)

        return rec

    monkeypatch.setattr(trivialmerge, "raw_reader", recording)
    res = merge.merge(vault, "other", "main")
    assert res.status == "merged"
    store = vault.store
    assert lanes == {
        0: {store.commit_tree(res.base), git("--git-dir", vault.path, "rev-parse", f"{res.base}:d").strip()},
        1: {store.commit_tree(res.ours), git("--git-dir", vault.path, "rev-parse", f"{res.ours}:d").strip()},
        2: {
            store.commit_tree(res.theirs),
            git("--git-dir", vault.path, "rev-parse", f"{res.theirs}:d").strip(),
        },
    }


def test_a_corrupt_packed_tree_is_not_read_as_good_bytes(vault: Vault, ws: Workspace) -> None:
    """The packs are read without libgit2's SHA-1 check of each object: a tree whose bytes
    changed in its pack still fails (zlib's checksum of the stream), and the error names it."""
    import os

    ws.write("a/one.txt", b"one\n")
    checkpoint.save(vault, "main", "c1")
    tree = _tree(vault, "main")
    good = _raw(vault, tree)
    vault.store.close()
    pack_dir = os.path.join(vault.path, "objects", "pack")
    kept: dict[str, bytes] = {}
    for name in os.listdir(pack_dir):
        if not name.endswith(".pack"):
            continue
        path = os.path.join(pack_dir, name)
        with open(path, "rb") as fh:
            data = bytearray(fh.read())
        at = data.find(good)
        if at < 0:
            continue
        kept[path] = bytes(data)
        data[at + len(good) // 2] ^= 0x01  # a bit of the tree's stored bytes
        os.chmod(path, 0o644)
        with open(path, "wb") as fh:
            fh.write(bytes(data))
    assert kept
    try:
        read = odbdirect.raw_reader(vault.store, "tree")
        with pytest.raises(AvfsError, match=tree):
            read(tree)
    finally:  # the vault whole again (the fixtures check it with git fsck)
        vault.store.close()
        for path, data in kept.items():
            with open(path, "wb") as fh:
                fh.write(data)
