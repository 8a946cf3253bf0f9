"""A damaged object store read through a mount, on both backends: the overlay mount's lower
layer (avfs's own FUSE view of the base tree's git objects) and the pure-FUSE mount. Each of
tests/test_badinput_corrupt.py's damages (a zeroed loose blob, a loose tree gone, a pack cut
short, an `.idx` giving an object another's offset) is `EIO` to the reader: not a crash of
the daemon, not an empty file, not another file's bytes, not "no such file". The daemon
goes on serving every other file and the fork's own changes; `doctor` names the object;
once the object is back the same mount reads it; nothing of the vault changed.
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from avfs_git.core.store.objreader import ObjectReader
from avfs_git.core.vaults.home import Home
from avfs_git.core.vaults.vault import Vault
from avfs_git.ops import mounts
from avfs_git.ops.maintenance import doctor

from .conftest import IN_CI, git
from .test_badinput_corrupt import C2, DAMAGE, _oid, _one_pack
from .test_badinput_corrupt import bad as bad
from .test_fuse import require_fuse
from .test_objects_bad import _put, _state

CASES = [(d, b) for d in sorted(DAMAGE) for b in ("overlay", "fuse")]


def _errno(read: Callable[[], object]) -> int | str:
    """The errno ``read`` failed with, or what it returned (a wrong answer)."""
    try:
        got = read()
    except OSError as exc:
        return exc.errno or -1
    return repr(got)[:200]


@pytest.mark.parametrize(("damage", "backend"), CASES, ids=[f"{d}-{b}" for d, b in CASES])
def test_a_damaged_object_is_eio_through_a_mount_and_the_rest_reads(
    home: Home, bad: tuple[Vault, Path], tmp_path: Path, damage: str, backend: str
) -> None:
    require_fuse()
    if backend == "overlay" and (why := mounts.overlay_available()) is not None:
        if IN_CI:
            pytest.fail(f"overlayfs must be available in CI: {why}")
        pytest.skip(f"requires overlayfs: {why}")
    v, _remote = bad
    root = _oid(v, "main^{tree}")
    oids, restore = DAMAGE[damage](v)
    before = _state(v)
    mp = tmp_path / "mnt"
    mp.mkdir()
    try:
        assert mounts.mount(home, v, "main", str(mp), backend=backend).backend == backend
        try:
            got = _errno(lambda: (mp / "sub" / "c.txt").read_bytes())
            assert got == errno.EIO, (damage, backend, got)
            assert _errno(lambda: (mp / "sub" / "c.txt").read_bytes()) == errno.EIO  # again: no cached answer
            if damage == "missing-tree":  # the directory whose tree is gone: not an empty one
                assert _errno(lambda: os.listdir(mp / "sub")) == errno.EIO
            if root in oids.split():  # the pack cut short took the root tree with it
                assert _errno(lambda: os.listdir(mp)) == errno.EIO  # not an empty tree
                if backend == "fuse":
                    assert (mp / "f.txt").read_bytes() == b"not saved\n"
                else:  # overlayfs looks every name up in the lower's root too: EIO, kept so (an
                    # empty root there would show git in the mount every base file deleted)
                    assert _errno(lambda: (mp / "f.txt").read_bytes()) == errno.EIO
                # the fork's own change is read by avfs either way (and kept: below)
                assert v.workspace("main").read("f.txt") == b"not saved\n"
            else:
                assert (mp / "f.txt").read_bytes() == b"not saved\n"  # the fork's own change
                assert "a.txt" in os.listdir(mp) and (mp / "a.txt").read_bytes() == b"a\n"
            found = [f for f in doctor(home, full=True).findings if f.check == "objects"]
            assert any(o in f.problem for f in found for o in oids.split()), found
            v.store.close()
            restore()
            v.store.close()
            # once the object is back the same mount reads it: a pack put back under its own
            # name too (it needed a new mount: the daemon kept the damaged map), and an index
            # that gave the object another's offset (the size read there, the other
            # object's, stayed with the running mount, whose reads stopped short at it)
            assert os.stat(mp / "sub" / "c.txt").st_size == len(C2)
            assert (mp / "sub" / "c.txt").read_bytes() == C2
            assert (mp / "a.txt").read_bytes() == b"a\n"
        finally:
            mounts.unmount(home, v, "main", lazy=True)
    finally:
        v.store.close()
        restore()
        v.store.close()
    after = _state(v)
    assert after["refs"] == before["refs"] and after["ops"] == before["ops"]
    assert after["overlays"] == before["overlays"]


def _flip(pack: Path, oid: str) -> None:
    """Damage ``oid``'s copy in ``pack`` (8 bytes of its compressed data turned over), the
    rest of the pack as it was."""
    with pack.with_suffix(".idx").open("rb") as idx:
        listed = subprocess.run(["git", "show-index"], stdin=idx, capture_output=True, text=True).stdout
    offsets = {line.split()[1]: int(line.split()[0]) for line in listed.splitlines()}
    data = bytearray(pack.read_bytes())
    for i in range(offsets[oid] + 4, offsets[oid] + 12):
        data[i] ^= 0x55
    _put(pack, bytes(data))


@pytest.mark.parametrize("damaged", ["older", "newer"])
def test_a_damaged_pack_s_copy_is_read_from_another_pack_as_git_reads_it(
    home: Home, bad: tuple[Vault, Path], tmp_path: Path, damaged: str
) -> None:
    """The same blob in two packs, one copy damaged: git reads the other (`cat-file`); so do
    avfs's readers (its own pack reader gave up at the first pack that held it: libgit2 and
    git both try the newest pack first, so the pure-FUSE mount's reads were `EIO`)."""
    require_fuse()
    v, _remote = bad
    oid = _oid(v, "main:sub/c.txt")
    old = _one_pack(v)
    packs = Path(v.path, "objects", "pack")
    subprocess.run(
        ["git", "pack-objects", "-q", str(packs / "pack")],
        input=oid + "\n",
        text=True,
        check=True,
        cwd=v.path,
        capture_output=True,
    )
    new = next(p for p in packs.glob("pack-*.pack") if p != old)
    os.utime(old, (1, 1))  # the older by its time too (git and libgit2 try the newest first)
    target = old if damaged == "older" else new
    good = target.read_bytes()
    _flip(target, oid)
    v.store.close()
    got = subprocess.run(["git", "--git-dir", v.path, "cat-file", "blob", oid], capture_output=True)
    assert got.returncode == 0 and got.stdout == C2, got.stderr  # git reads on: the differential's side
    before = _state(v)
    assert v.workspace("main").read("sub/c.txt") == C2
    backends = ["fuse"] + ([] if mounts.overlay_available() is not None else ["overlay"])
    for backend in backends:
        mp = tmp_path / f"mnt-{backend}"
        mp.mkdir()
        mounts.mount(home, v, "main", str(mp), backend=backend)
        try:
            assert (mp / "sub" / "c.txt").read_bytes() == C2, backend
        finally:
            mounts.unmount(home, v, "main", lazy=True)
    v.store.close()
    after = _state(v)
    _put(target, good)
    for key in ("refs", "ops", "overlays"):
        assert after[key] == before[key], key
    objects = [{k: h for k, h in st["files"].items() if k.startswith("objects/")} for st in (before, after)]  # type: ignore[union-attr]
    assert objects[0] == objects[1]  # nothing written, nothing repaired behind the person's back


@pytest.mark.parametrize("damaged", ["older", "newer"])
def test_gc_s_kinds_read_another_pack_s_copy_as_the_reads_do(
    home: Home, bad: tuple[Vault, Path], damaged: str
) -> None:
    """A tree in two packs, one copy's type damaged in place (its header's type bits made
    the reserved 5): the reads take the other copy (the test above); so must the kinds gc's
    keep commit reads of many objects at once (`ObjectReader.kinds`: it left the object out,
    `{}`, where the reads and git say `tree`), and the keep commit then names it a tree."""
    v, _remote = bad
    oid = _oid(v, "main:sub")
    old = _one_pack(v)
    packs = Path(v.path, "objects", "pack")
    subprocess.run(
        ["git", "pack-objects", "-q", str(packs / "pack")],
        input=oid + "\n",
        text=True,
        check=True,
        cwd=v.path,
        capture_output=True,
    )
    new = next(p for p in packs.glob("pack-*.pack") if p != old)
    os.utime(old, (1, 1))  # (git and libgit2 try the newest first)
    target = old if damaged == "older" else new
    good = target.read_bytes()
    with target.with_suffix(".idx").open("rb") as idx:
        listed = subprocess.run(["git", "show-index"], stdin=idx, capture_output=True, text=True).stdout
    at = {line.split()[1]: int(line.split()[0]) for line in listed.splitlines()}[oid]
    with target.open("r+b") as fh:  # in place: the same file, its byte changed
        fh.seek(at)
        head = fh.read(1)[0]
        fh.seek(at)
        fh.write(bytes([(head & 0x8F) | (5 << 4)]))
    try:
        v.store.close()
        reader = ObjectReader(v.path)
        assert reader.header(oid) is not None and reader.header(oid)[0] == "tree"  # type: ignore[index]
        assert ObjectReader(v.path).kinds([oid]) == {oid: "tree"}  # (was {})
        assert ObjectReader(v.path).read(oid) is not None
        got = v.store.keep_commit([oid], "keep\n", ("t", "t@example.com"))
        assert got is not None and got[1] == [oid], got
        listed = git("--git-dir", v.path, "ls-tree", got[0])
        assert listed.split() == ["040000", "tree", oid, oid], listed
    finally:
        v.store.close()
        _put(target, good)
        v.store.close()
