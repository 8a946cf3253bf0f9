"""mount/indexflags.py ``gitlinks``: the gitlinks a real git index holds at the names asked
(what a status and a checkpoint take from git's index in a mount, docs/fuse.md
"Submodules"), found by a search of the index's bytes before any walk of its entries, on
indexes git itself writes (versions 2, 3 with an extended entry, 4), a gitlink's mode bytes
planted in the stat data of another entry included."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from avfs_git.mount.indexflags import gitlinks

LINK = "1234567890abcdef1234567890abcdef12345678"


def _index(tmp: Path, version: int) -> bytes:
    """A git index of 300 files, a gitlink at ``vendor/sub`` and one at ``top``, made by
    git (``version``: the index format), one file of the size 0xe000 (its size field holds
    the mode's bytes: ``00 00 e0 00``)."""
    repo = tmp / f"v{version}"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    for i in range(300):
        d = repo / f"d{i // 50}"
        d.mkdir(exist_ok=True)
        (d / f"f{i}.txt").write_text(f"{i}\n")
    (repo / "big.bin").write_bytes(b"x" * 0xE000)
    env = {**os.environ, "GIT_INDEX_VERSION": str(version)}
    subprocess.run(["git", "add", "-A"], cwd=repo, env=env, check=True)
    for path in ("vendor/sub", "top"):
        subprocess.run(
            ["git", "update-index", "--add", "--cacheinfo", f"160000,{LINK},{path}"], cwd=repo, check=True
        )
    if version == 3:  # an extended entry (skip-worktree)
        subprocess.run(["git", "update-index", "--skip-worktree", "d0/f0.txt"], cwd=repo, check=True)
    return (repo / ".git" / "index").read_bytes()


@pytest.mark.parametrize("version", [2, 3, 4])  # (4: compressed names, read since attack16)
def test_the_gitlinks_asked_for_are_found_and_no_other(tmp_path: Path, version: int) -> None:
    data = _index(tmp_path, version)
    assert b"\x00\x00\xe0\x00" in data
    assert gitlinks(data, {b"vendor/sub", b"top", b"d0", b"big.bin"}) == {
        b"vendor/sub": bytes.fromhex(LINK),
        b"top": bytes.fromhex(LINK),
    }
    assert gitlinks(data, {b"vendor", b"d1", b"big.bin"}) == {}
    assert gitlinks(data, set()) == {}
