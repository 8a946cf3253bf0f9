"""The blob sizes a read-only view learned (an overlay's lower layer, a revision's mount),
kept in the vault for the next view (core/store/keptsizes.py): the sizes git gives, the
packed objects' only, and none trusted once a pack they were learned from is another file."""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from avfs_git.core.operations import checkpoint
from avfs_git.core.store import keptsizes
from avfs_git.ops import mounts

from .conftest import git
from .test_fuse_teardown import require_fuse


def _git_sizes(vault: Any, rev: str) -> dict[str, int]:
    """blob id -> size of every blob of ``rev``'s tree, by git."""
    out = git("--git-dir", vault.path, "ls-tree", "-r", "-l", rev)
    return {line.split()[2]: int(line.split()[3]) for line in out.splitlines() if line.split()[1] == "blob"}


def _loose(vault: Any) -> set[str]:
    objects = Path(vault.path, "objects")
    return {d.name + f.name for d in objects.iterdir() if len(d.name) == 2 for f in d.iterdir()}


def _walk_sizes(mp: Path) -> dict[str, int]:
    out = {}
    for d, dirs, names in os.walk(mp):
        dirs[:] = [x for x in dirs if x != ".git"]
        for name in names:
            if name != ".git":
                p = os.path.join(d, name)
                out[os.path.relpath(p, mp)] = os.lstat(p).st_size
    return out


@pytest.fixture
def packed(home: Any, vault: Any) -> Iterator[tuple[Any, str]]:
    """Fork main with 40 files in a pack and one more loose, checkpointed as ``rev``."""
    ws = vault.workspace("main")
    for i in range(40):
        ws.write(f"d{i % 4}/f{i}.txt", f"file {i}\n".encode() * (i + 1))
    checkpoint.save(vault, "main", name="one")
    vault.store.close()
    git("--git-dir", vault.path, "repack", "-adq")
    late = b"written after the repack\n" * 3
    ws.write("late.txt", late)
    checkpoint.save(vault, "main", name="rev")
    vault.store.close()
    # its blob loose as well (a checkpoint packs its objects; git writes a loose copy of one
    # to mend it): a size from a loose object is not kept
    oid = git("--git-dir", vault.path, "rev-parse", "main:late.txt").strip()
    loose = Path(vault.path, "objects", oid[:2], oid[2:])
    loose.parent.mkdir(exist_ok=True)
    loose.write_bytes(zlib.compress(b"blob %d\0" % len(late) + late))
    yield vault, git("--git-dir", vault.path, "rev-parse", "refs/heads/main").strip()


def _mounted_walk(home: Any, vault: Any, tmp_path: Path, name: str) -> dict[str, int]:
    mp = tmp_path / name
    mp.mkdir()
    info = mounts.mount(home, vault, "main", str(mp), revision="rev")
    try:
        return _walk_sizes(mp)
    finally:
        mounts.unmount(home, vault, "main", revision=info.revision, lazy=True)


def test_a_view_keeps_the_sizes_it_learned_as_git_gives_them(home, packed, tmp_path):
    require_fuse()
    vault, head = packed
    want = _git_sizes(vault, head)
    loose = _loose(vault) & set(want)
    assert loose and len(want) > len(loose)  # (both kinds in the tree)
    assert keptsizes.load(vault.path) == {}
    first = _mounted_walk(home, vault, tmp_path, "one")
    kept = keptsizes.load(vault.path)
    assert kept == {oid: size for oid, size in want.items() if oid not in loose}
    # the next view answers from them, the same sizes as git and as the first view
    again = _mounted_walk(home, vault, tmp_path, "two")
    assert again == first
    by_path = git("--git-dir", vault.path, "ls-tree", "-r", "-l", head)
    assert first == {line.split("\t")[1]: int(line.split()[3]) for line in by_path.splitlines()}


def test_kept_sizes_of_a_pack_put_back_are_not_trusted(home, packed, tmp_path):
    """A pack whose file changed under its name since the sizes were learned (put back,
    mended, damaged in place): none of them is read (a size read from a damaged index
    would stay wrong mount after mount); a file cut short or of another kind: none."""
    require_fuse()
    vault, head = packed
    want = _git_sizes(vault, head)
    _mounted_walk(home, vault, tmp_path, "one")
    assert keptsizes.load(vault.path)
    kept_file = Path(vault.path, "avfs", keptsizes.FILE)
    text = kept_file.read_bytes()
    pack = next(Path(vault.path, "objects", "pack").glob("pack-*.pack"))
    data = pack.read_bytes()
    pack.unlink()
    pack.write_bytes(data)  # the same bytes, another file
    assert keptsizes.load(vault.path) == {}
    # a kept file naming a wrong size under the pack's new stamp would be believed; one
    # under its old stamp is not: the view reads the header again
    oid = next(o for o in want if bytes.fromhex(o) in text)
    record = bytes.fromhex(oid) + want[oid].to_bytes(8, "little")
    forged = text.replace(record, bytes.fromhex(oid) + (want[oid] + 1000).to_bytes(8, "little"))
    assert forged != text
    kept_file.write_bytes(forged)
    assert keptsizes.load(vault.path) == {}
    sizes = _mounted_walk(home, vault, tmp_path, "two")
    by_path = git("--git-dir", vault.path, "ls-tree", "-r", "-l", head)
    assert sizes == {line.split("\t")[1]: int(line.split()[3]) for line in by_path.splitlines()}
    fresh = kept_file.read_bytes()  # (that view's, under the pack's new stamp)
    assert keptsizes.load(vault.path) == {o: n for o, n in want.items() if o in keptsizes.load(vault.path)}
    for bad in (b"", b"avfs-kept-sizes 1 x\n", b"avfs-kept-sizes 1 3\nonly one line\n", b"\x00" * 40):
        kept_file.write_bytes(bad)
        assert keptsizes.load(vault.path) == {}
    kept_file.write_bytes(fresh[:-5])  # a record cut short: the whole ones are read
    assert 0 < len(keptsizes.load(vault.path)) < len(want)
