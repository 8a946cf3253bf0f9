"""An overlay mount remounted over a database entry whose blob git's gc pruned (found in the
twenty-third round, NAME=race1: gitmodel13's every-command run, a remount late in it).

On the overlay backend a file written in the mount goes to the upper layer; an entry of the
overlay's database at that path (a blob id: git's move of the branch keeps what the view
showed there as one, `take_tip`'s held entries) stays below it, hidden, and nothing of git's
names its blob. `git gc --prune=now` in the mount then prunes that blob. The old mount's
kernel held the lower layer's attributes; a new mount's lower layer answered its root's
listing (readdirplus: every entry with its attributes) with ``EIO``, since one entry's size
could not be read: the mount's root listed nothing but ``EIO`` (the model's run saw this
once and an empty root once, right after `avfs mount` returned 0). Now such an entry is
listed without its attributes: its own lookup fails, the directory's listing does not."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from avfs_git.core.operations import checkpoint
from avfs_git.core.store import refs
from avfs_git.core.vaults.home import Home
from avfs_git.core.vaults.vault import Vault
from avfs_git.core.workspace.overlayentry import OBJECT, Entry
from avfs_git.ops import mounts

from .conftest import git
from .test_fuse import require_fuse
from .test_overlay import require_overlay

MODE_BLOB = 0o100644


def test_a_remount_over_an_entry_whose_blob_git_pruned_lists_its_root(
    home: Home, vault: Vault, tmp_path: Path
) -> None:
    require_overlay()
    ws = vault.workspace("main")
    ws.write("kept.txt", b"in git\n")
    checkpoint.save(vault, "main")
    blob = (
        subprocess.run(
            ["git", "--git-dir", vault.path, "hash-object", "-w", "--stdin"],
            input=b"only the database names this blob\n",
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .strip()
    )
    with ws.overlay.txn() as db:  # what take_tip keeps where git moved the branch (an "git" entry)
        ws.overlay.put(db, Entry("held.txt", OBJECT, MODE_BLOB, blob), "git")
    assert ws.read("held.txt") == b"only the database names this blob\n"
    mp = tmp_path / "m"
    mp.mkdir()
    mounts.mount(home, vault, "main", str(mp), backend="overlay")
    try:
        (mp / "held.txt").write_bytes(b"written in the mount\n")  # the upper layer's, over it
        # the fork's held ref keeps such a blob from git's gc since gitgc1 (test_git_gc_held.py):
        # gone, as before it (a vault an older avfs left, a ref removed by hand), the gc prunes it
        git("--git-dir", str(vault.path), "update-ref", "-d", refs.held_ref("main"))
        git("gc", "-q", "--prune=now", cwd=mp)
        gone = subprocess.run(["git", "--git-dir", vault.path, "cat-file", "-e", blob], capture_output=True)
        assert gone.returncode != 0, "git's gc kept the blob: the case is not made"
        with ws.overlay.without_upper():
            assert ws.overlay.get("held.txt") is not None  # the hidden entry is still there
        mounts.unmount(home, vault, "main")
        mounts.mount(home, vault, "main", str(mp), backend="overlay")
        assert sorted(n for n in os.listdir(mp) if n != ".git") == ["held.txt", "kept.txt"]
        assert (mp / "held.txt").read_bytes() == b"written in the mount\n"
        assert (mp / "kept.txt").read_bytes() == b"in git\n"
        assert "held.txt" in git("status", "--porcelain", cwd=mp)
    finally:
        mounts.unmount(home, vault, "main")


@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_an_untracked_file_held_as_a_blob_id_outlives_git_s_gc_in_the_mount(
    home: Home, vault: Vault, tmp_path: Path, backend: str
) -> None:
    if backend == "overlay":
        require_overlay()
    else:
        require_fuse()
    ws = vault.workspace("main")
    ws.write("kept.txt", b"in git\n")
    checkpoint.save(vault, "main")
    blob = (
        subprocess.run(
            ["git", "--git-dir", vault.path, "hash-object", "-w", "--stdin"],
            input=b"only the database names this blob\n",
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .strip()
    )
    with ws.overlay.txn() as db:  # what take_tip keeps where git moved the branch (a "git" entry)
        ws.overlay.put(db, Entry("held.txt", OBJECT, MODE_BLOB, blob), "git")
    mp = tmp_path / "m"
    mp.mkdir()
    mounts.mount(home, vault, "main", str(mp), backend=backend)
    try:
        assert "?? held.txt" in git("status", "--porcelain", cwd=mp)  # untracked: no index names it
        git("gc", "-q", "--prune=now", cwd=mp)
        mounts.unmount(home, vault, "main")
        mounts.mount(home, vault, "main", str(mp), backend=backend)
        assert (mp / "held.txt").read_bytes() == b"only the database names this blob\n"
    finally:
        mounts.unmount(home, vault, "main")
