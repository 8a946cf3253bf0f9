"""A move of the fork's branch git makes in the mount is the fork's, even when the mount goes
right after it (docs/fuse.md, "git inside the mount"): avfs takes such a move when it next
looks (a status, a checkpoint) by the worktree's HEAD log, which goes with the mount; an
unmount before any avfs command left the fork's state on the old base ("the fork moved
since", git's deletions as changes). Found by hand in gitmodel6: `git reset --hard HEAD~1`,
`avfs unmount`, `avfs mount`: `avfs status` said `D other.txt`, git said `AD other.txt`.
Both backends, real mounts, real git."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..gitmount import _git, _status, mount_fork
from ..remount import remount
from .backends import MOUNTS

pytestmark = pytest.mark.backends(*MOUNTS)


@pytest.fixture
def mounted(backend: str, cli_proc: Any, tmp_path: Path) -> Iterator[tuple[Path, Any]]:
    with mount_fork(cli_proc, tmp_path, backend, in_process=True) as m:
        yield m


@pytest.mark.parametrize("how", ["reset --hard", "commit"])
def test_git_s_move_just_before_an_unmount_is_the_fork_s(mounted: Any, backend: str, how: str) -> None:
    mp, avfs = mounted
    (mp / "n.txt").write_text("n\n")
    assert avfs("checkpoint", "save", "-m", "c1").code == 0
    (mp / "other.txt").write_text("x\n")
    assert avfs("checkpoint", "save", "-m", "c2").code == 0
    if how == "reset --hard":
        _git(mp, "reset", "-q", "--hard", "HEAD~1")
    else:
        (mp / "n.txt").write_text("by git\n")
        _git(mp, "commit", "-qam", "by git")
    moved = _git(mp, "rev-parse", "HEAD").stdout.strip()
    files = sorted(p.name for p in mp.iterdir() if p.name != ".git")
    # (no avfs command in between: the unmount is the first to see the fork again)
    remount(mp, backend)  # (in process: tests/remount.py)
    doc = _status(avfs)
    assert doc["head"] == moved and doc["base"] == moved and not doc["stale"], doc
    assert doc["changes"] == [], doc
    assert _git(mp, "status", "--porcelain").stdout == ""
    assert sorted(p.name for p in mp.iterdir() if p.name != ".git") == files


@pytest.mark.parametrize("what", ["staged", "open merge"])
def test_git_s_own_state_outlives_a_remount(mounted: Any, backend: str, what: str) -> None:
    """What git keeps per worktree and a plain work tree keeps as long as it exists: its
    index (staged changes, a path staged removed, the index's exec bit, a skip-worktree
    bit) and an open merge, across `avfs unmount` and `avfs mount` of the fork, with the
    fork's branch where it was. After the remount, `git status` and the index's marks are
    as before it."""
    mp, avfs = mounted
    if what == "staged":
        (mp / "a.txt").write_text("staged\n")
        _git(mp, "add", "a.txt")
        (mp / "new.txt").write_text("new\n")
        _git(mp, "add", "new.txt")
        _git(mp, "rm", "-q", "--cached", "d/c.txt")
        _git(mp, "update-index", "--chmod=+x", "a.txt")
    else:
        assert avfs("checkpoint", "save", "-m", "base").code == 0
        _git(mp, "branch", "other")
        (mp / "a.txt").write_text("ours\n")
        _git(mp, "commit", "-qam", "ours")
        # the other branch changes the same line, through a linked worktree of the vault
        wt = mp.parent / "wt"
        _git(mp, "worktree", "add", "-q", str(wt), "other")
        (wt / "a.txt").write_text("theirs\n")
        _git(wt, "commit", "-qam", "theirs")
        _git(mp, "worktree", "remove", "--force", str(wt))
        assert _git(mp, "merge", "-q", "other", check=False).returncode == 1
    before = _git(mp, "status", "--porcelain=v2").stdout, _git(mp, "ls-files", "-s", "-v").stdout
    remount(mp, backend)  # (in process: tests/remount.py)
    after = _git(mp, "status", "--porcelain=v2").stdout, _git(mp, "ls-files", "-s", "-v").stdout
    assert after == before
