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
from collections.abc import Callable
from pathlib import Path

import pytest

from avfs_git.core.vaults.home import Home
from avfs_git.core.vaults.vault import Vault
from avfs_git.ops import mounts
from avfs_git.ops.maintenance import doctor

from .conftest import IN_CI
from .test_badinput_corrupt import C2, DAMAGE, _oid
from .test_badinput_corrupt import bad as bad
from .test_fuse import require_fuse
from .test_objects_bad import _state

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
                if backend == "fuse":  # (overlayfs looks every name up in the lower's root too)
                    assert (mp / "f.txt").read_bytes() == b"not saved\n"
            else:
                assert (mp / "f.txt").read_bytes() == b"not saved\n"  # the fork's own change
                assert "a.txt" in os.listdir(mp) and (mp / "a.txt").read_bytes() == b"a\n"
            found = [f for f in doctor(home).findings if f.check == "objects"]
            assert any(o in f.problem for f in found for o in oids.split()), found
            v.store.close()
            restore()
            v.store.close()
            if damage in ("idx-disagrees", "truncated-pack"):  # a pack (and its index) is opened
                mounts.unmount(home, v, "main", lazy=True)  # once per mount: one put back under
                mounts.mount(home, v, "main", str(mp), backend=backend)  # its own name needs a new one
            assert (mp / "sub" / "c.txt").read_bytes() == C2  # once the object is back (a loose one:
            # the same mount)
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
