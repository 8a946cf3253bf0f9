"""A file open for writing in a pure-FUSE mount and renamed while open: its later writes
are the renamed file's, as on any POSIX file system (twenty-sixth round, raced2). The
daemon moved read handles to the new path at a rename, not writable ones: their writes
landed in the right file (the overlay file moves with its entry) but were journaled and
sized at the old path, which no entry holds any more. So nothing recorded that the new
path changed (`git status` through the fsmonitor hook, `avfs watch` and `changes since`
missed the write) and the overlay kept the size from before it (what the quota reads).

The same calls beside a plain directory give what the mount must show."""

from __future__ import annotations

import os
from pathlib import Path

from avfs_git.core.operations import checkpoint
from avfs_git.core.vaults.home import Home
from avfs_git.core.vaults.vault import Vault
from avfs_git.ops import mounts

from .conftest import git
from .gitmount import _require


def _write_through_a_moved_handle(root: Path) -> tuple[bytes, bool]:
    """Open ``d/a.txt`` for writing, rename it to ``b.txt``, write through the descriptor
    (fsync'd), close; returns (``b.txt``'s bytes, whether ``d/a.txt`` exists)."""
    fd = os.open(root / "d" / "a.txt", os.O_WRONLY | os.O_APPEND)
    try:
        os.rename(root / "d" / "a.txt", root / "b.txt")
        os.write(fd, b"written after the move\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    return (root / "b.txt").read_bytes(), (root / "d" / "a.txt").exists()


def test_a_write_through_a_handle_opened_before_a_rename(home: Home, vault: Vault, tmp_path: Path) -> None:
    _require("fuse")
    plain = tmp_path / "plain"
    (plain / "d").mkdir(parents=True)
    (plain / "d" / "a.txt").write_bytes(b"first\n")
    ws = vault.workspace("main")
    ws.write("d/a.txt", b"first\n")
    checkpoint.save(vault, "main", message="base")
    mp = tmp_path / "m"
    mp.mkdir()
    mounts.mount(home, vault, "main", str(mp), backend="fuse")
    try:
        fd = os.open(mp / "d" / "a.txt", os.O_WRONLY | os.O_APPEND)  # (materialized now)
        os.close(fd)
        seq = ws.overlay.last_seq()
        on_mount = _write_through_a_moved_handle(mp)
        # the last record is the write's: after the rename, the path it landed in
        after_move, changed = ws.overlay.changes_since(seq)
        since_move = ws.overlay.changes_since(after_move - 1)[1]
        entry = ws.overlay.get("b.txt")
    finally:
        mounts.unmount(home, vault, "main")
    assert on_mount == _write_through_a_moved_handle(plain) == (b"first\nwritten after the move\n", False)
    assert "b.txt" in changed
    assert since_move == ["b.txt"], since_move
    assert entry is not None and entry.size == len(on_mount[0])
    checkpoint.save(vault, "main", message="after")
    assert git("--git-dir", vault.path, "show", "main:b.txt") == "first\nwritten after the move\n"
    assert "d/a.txt" not in git("--git-dir", vault.path, "ls-tree", "-r", "--name-only", "main")
