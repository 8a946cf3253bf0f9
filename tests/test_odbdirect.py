"""The object database read directly (core/store/odbdirect.py): many trees read through a
database of the vault's packs alone, then the whole one, with the same bytes either way."""

from __future__ import annotations

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
    assert vault.store._local.packs[0] is odbdirect.packs_odb(vault.store)  # kept for the thread
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
    odb = odbdirect.packs_odb(vault.store)

    class Counting:
        def read(self, oid: str) -> tuple[int, bytes, int]:
            asked.append(oid)
            return odb.read(oid)

    monkeypatch.setattr(odbdirect, "packs_odb", lambda store, lane=0: Counting())
    read = odbdirect.raw_reader(vault.store, "blob")
    assert [read(b) for b in blobs] == [f"loose {i}\n".encode() for i in range(len(blobs))]
    assert asked == blobs[: odbdirect.PACK_MISSES]


def test_an_object_nowhere_is_named(vault: Vault) -> None:
    read = odbdirect.raw_reader(vault.store, "tree")
    with pytest.raises(AvfsError, match="0123456789abcdef0123456789abcdef01234567"):
        read("0123456789abcdef0123456789abcdef01234567")


def test_close_drops_the_packs_database(vault: Vault) -> None:
    """A vault's store closed (gc removes packs after it) holds no pack open through it."""
    odbdirect.packs_odb(vault.store)
    vault.store.close()
    assert getattr(vault.store._local, "packs", None) is None


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
