"""git's per-entry bits under a split index (`core.splitIndex`, `update-index
--split-index`), across avfs's whole rewrites of a mount's index (gitmodel18).

A split index holds only the entries changed since git wrote the shared index it names
(``sharedindex.<id>``); the others are the shared index's. avfs's whole rewrite of the
index (a restore, an undo: mount/index.py) keeps the skip-worktree and assume-unchanged
bits of the index it replaces (mount/indexflags.py ``carried``), and read the split
index's own entries only: a bit set before the split (its entry in the shared index)
was dropped, and one set after it (a replaced entry, which names no path in the split
index) was read under the empty name. git's `reset --hard` keeps both."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..forkhome import make_fork_home, mount_copied_fork
from ..gitmount import _git
from ..remount import remount
from .backends import MOUNTS

pytestmark = pytest.mark.backends(*MOUNTS)  # git runs in a mount; the API has no git


@pytest.fixture(scope="module")
def fork_home(tmp_path_factory: pytest.TempPathFactory) -> Path | None:
    return make_fork_home(tmp_path_factory.mktemp("fork-home"))


@pytest.fixture
def mounted(
    backend: str, cli_proc: Any, tmp_path: Path, fork_home: Path | None
) -> Iterator[tuple[Path, Any]]:
    with mount_copied_fork(fork_home, cli_proc, tmp_path, backend, in_process=True) as m:
        yield m


def _flags(mp: Path) -> list[str]:
    return sorted(ln for ln in _git(mp, "ls-files", "-v").stdout.splitlines() if not ln.startswith("H "))


def _split_with_bits(mp: Path, avfs: Any, when: str) -> str:
    """Two checkpoints, then the bits set before or after `git update-index
    --split-index`; the worktree's git dir."""
    (mp / "b.txt").write_text("b\n")
    (mp / "d" / "n.txt").write_text("n\n")
    assert avfs("checkpoint", "save", "-m", "with b").code == 0
    (mp / "e.txt").write_text("e\n")
    assert avfs("checkpoint", "save", "-m", "with e").code == 0
    if when == "after-split":
        _git(mp, "update-index", "--split-index")
    _git(mp, "update-index", "--skip-worktree", "d/c.txt")
    _git(mp, "update-index", "--assume-unchanged", "a.txt")
    if when == "before-split":
        _git(mp, "update-index", "--split-index")
    assert _flags(mp) == ["S d/c.txt", "h a.txt"]
    git_dir = _git(mp, "rev-parse", "--absolute-git-dir").stdout.strip()
    assert list(Path(git_dir).glob("sharedindex.*"))  # (split: the move meets a link)
    return git_dir


def _after(mp: Path) -> None:
    assert _flags(mp) == ["S d/c.txt", "h a.txt"]
    _git(mp, "rm", "-r", "-q", "--cached", "--", "d")  # (git leaves a skip-worktree entry staged)
    assert _git(mp, "ls-files", "--", "d").stdout.split() == ["d/c.txt"]


@pytest.mark.parametrize("move", ["restore", "undo"])
@pytest.mark.parametrize("when", ["before-split", "after-split"])
def test_bits_of_a_split_index_s_entries_survive_avfs_rewriting_the_index(
    mounted: Any, move: str, when: str
) -> None:
    """A restore and an undo (their index written ahead of the move, patched: a split
    index merged first since gitmodel17, then written whole keeping the bits): passed
    before gitmodel18 too, the control of the next test."""
    mp, avfs = mounted
    _split_with_bits(mp, avfs, when)
    if move == "restore":
        res = avfs("checkpoint", "restore", _git(mp, "rev-parse", "HEAD~1").stdout.strip())
    else:
        res = avfs("undo")
    assert res.code == 0, res.err
    assert avfs("status").code == 0  # (the daemon's refresh, if any, has run by now)
    _after(mp)


def _commit_outside(tmp_path: Path, vault: str, old: str) -> str:
    """A commit on ``old`` adding ``x.txt``, made with an index of its own outside the mount."""
    env = {"GIT_INDEX_FILE": str(tmp_path / "outside-index")}
    import os
    import subprocess

    def g(*args: str, stdin: str | None = None) -> str:
        proc = subprocess.run(
            ["git", "--git-dir", vault, *args], input=stdin, capture_output=True, text=True,
            env={**os.environ, **env}, check=True,
        )  # fmt: skip
        return proc.stdout.strip()

    g("read-tree", old)
    blob = g("hash-object", "-w", "--stdin", stdin="x\n")
    g("update-index", "--add", "--cacheinfo", f"100644,{blob},x.txt")
    return g("commit-tree", g("write-tree"), "-p", old, "-m", "another hand's")


@pytest.mark.parametrize("direction", ["back", "forward"])
@pytest.mark.parametrize("when", ["before-split", "after-split"])
def test_bits_of_a_split_index_s_entries_survive_another_hand_s_move(
    mounted: Any, when: str, direction: str, tmp_path: Path
) -> None:
    """Another hand moves the fork's branch (`git update-ref` from outside the mount, back
    to the commit before or forward to one that adds a file) with nothing uncheckpointed:
    the mount follows and its index is written whole from the new commit, keeping the bits
    of the index it replaces (mount/indexflags.py ``carried``). On main (``forward``) both
    bits were dropped: that reader took a split index's own entries alone, so a bit set
    before the split (its entry in the shared index) was not seen and one set after it
    (a replaced entry, which names no path there) was read under the empty name. And
    (``back``) the move was not followed at all: asked whether git in the mount had made
    it (mount/live.py ``_git_marked``: the index holding the new commit's version of each
    path the two commits differ in), the same reader found no entry for ``e.txt`` in the
    split index, as if git had removed it, took the move for git's own and kept the view
    (``e.txt`` stayed, staged as removed by nobody)."""
    mp, avfs = mounted
    git_dir = _split_with_bits(mp, avfs, when)
    vault = _git(mp, "rev-parse", "--path-format=absolute", "--git-common-dir").stdout.strip()
    old = _git(mp, "rev-parse", "HEAD").stdout.strip()
    if direction == "back":
        new = _git(mp, "rev-parse", "HEAD~1").stdout.strip()
    else:
        new = _commit_outside(tmp_path, vault, old)
    _git(tmp_path, "--git-dir", vault, "update-ref", "refs/heads/f", new, old)
    assert avfs("status").code == 0  # (takes the move: the mount follows)
    assert _git(mp, "rev-parse", "HEAD").stdout.strip() == new
    assert (mp / "e.txt").exists() is (direction == "forward")
    assert (mp / "x.txt").exists() is (direction == "forward")
    assert not _git(mp, "status", "--porcelain").stdout
    assert Path(git_dir).is_dir()
    _after(mp)


@pytest.mark.parametrize("when", ["before-split", "after-split"])
def test_a_split_index_outlives_a_remount(mounted: Any, when: str, backend: str) -> None:
    """`avfs unmount` keeps git's index (mount/gitkeep.py), a split one with the shared
    index it names: git in the mount after the next mount reads it, bits and what was
    staged included."""
    mp, avfs = mounted
    _split_with_bits(mp, avfs, when)
    (mp / "staged.txt").write_text("staged\n")
    _git(mp, "add", "staged.txt")
    before = _git(mp, "status", "--porcelain").stdout
    remount(mp, backend)  # (in process: tests/remount.py)
    assert _git(mp, "status", "--porcelain").stdout == before
    _after(mp)
