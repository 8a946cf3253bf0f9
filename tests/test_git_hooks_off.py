"""git in a mount with its hooks off, the reflogs expired, then git's gc, before any avfs
command looked: the mount keeps the person's checked-out state as a plain clone keeps its
files (the twenty-seventh round, gitgc4).

The mount's reference-transaction hook tells avfs that git in the mount moved the branch
(gitgc3), and the worktree's HEAD log does until the reflogs expire. With the hooks off
(`git -c core.hooksPath=/dev/null`) and the reflogs expired, nothing said who moved it:
avfs took the move for another hand's and the view followed the branch: the undone
commit's file left the mount, and once git's gc ran, the vault (only the held base ref had
kept that commit). Now what git leaves in the mount's worktree git dir tells it
(mount/live.py ``_git_marked``: ``ORIG_HEAD`` naming the new commit, or the index holding
the new commit's version of every path the two commits differ at), and the view stays, as in a plain
worktree; another hand's move writes neither there and is followed as before
(tests/test_git_gc_neighbours.py, tests/test_mount_moved_elsewhere.py). `reset --hard` and
`--amend` (git writes the files itself) passed before too. A person's own global ``core.hooksPath``
does not turn the mount's hooks off (the mount's worktree config names them, and chains
the person's): it is the control.

Each form runs beside a plain clone doing the same; then avfs's status, the files and `git
status` as the clone's, a remount the same, and the person's checkpoint records the files.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from avfs_git.core.operations import checkpoint
from avfs_git.core.vaults.home import Home
from avfs_git.core.vaults.vault import Vault
from avfs_git.ops import mounts

from .conftest import git
from .test_fuse import require_fuse
from .test_overlay import require_overlay

OFF = ["-c", "core.hooksPath=/dev/null"]


def _off(cwd: Path, *args: str) -> None:
    git(*OFF, *args, cwd=cwd)


def _reset_soft(cwd: Path) -> None:
    _off(cwd, "reset", "-q", "--soft", "HEAD~1")
    _off(cwd, "reset", "-q")


def _reset_mixed(cwd: Path) -> None:
    _off(cwd, "reset", "-q", "HEAD~1")


def _reset_hard(cwd: Path) -> None:
    _off(cwd, "reset", "-q", "--hard", "HEAD~1")


def _amend(cwd: Path) -> None:
    (cwd / "README.md").write_text("hello\namended\n")
    _off(cwd, "commit", "-q", "-a", "--amend", "-m", "amended")


def _global_hooks_path(cwd: Path) -> None:
    hooks = cwd.parent / f"hooks-{cwd.name}"
    hooks.mkdir(exist_ok=True)
    git("config", "--global", "core.hooksPath", str(hooks))  # (the test's own HOME: tests/conftest.py)
    try:
        git("reset", "-q", "--soft", "HEAD~1", cwd=cwd)
        git("reset", "-q", cwd=cwd)
    finally:
        git("config", "--global", "--unset", "core.hooksPath")


FORMS: dict[str, Callable[[Path], None]] = {
    "reset_soft": _reset_soft,
    "reset_mixed": _reset_mixed,
    "reset_hard": _reset_hard,
    "amend": _amend,
    "global_hooks_path": _global_hooks_path,
}


def _avfs(home: Home, *args: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "avfs_git", "--home", home.path, "--vault", "v:main", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _files(cwd: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(cwd.iterdir()) if p.is_file() and p.name != ".git"}


def _same(mp: Path, plain: Path) -> None:
    assert _files(mp) == _files(plain)
    assert git("status", "--porcelain", cwd=mp) == git("status", "--porcelain", cwd=plain)


def _clean_up(cwd: Path) -> None:
    git(*OFF, "reflog", "expire", "--expire=now", "--expire-unreachable=now", "--all", cwd=cwd)
    git(*OFF, "gc", "-q", "--prune=now", cwd=cwd)


@pytest.mark.parametrize("form", sorted(FORMS))
@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_git_with_its_hooks_off_then_its_clean_up_keeps_what_a_plain_clone_keeps(
    home: Home, vault: Vault, tmp_path: Path, backend: str, form: str
) -> None:
    if backend == "overlay":
        require_overlay()
    else:
        require_fuse()
    ws = vault.workspace("main")
    ws.write("README.md", b"hello\n")
    checkpoint.save(vault, "main")
    ws.write("NEW.txt", b"the last commit's file\n")
    checkpoint.save(vault, "main")
    plain = tmp_path / "plain"
    git("clone", "-q", vault.path, str(plain))
    FORMS[form](plain)
    _clean_up(plain)
    want = _files(plain), git("status", "--porcelain", cwd=plain)
    mp = tmp_path / "m"
    mp.mkdir()
    mounts.mount(home, vault, "main", str(mp), backend=backend)
    try:
        FORMS[form](mp)
        _clean_up(mp)
        _avfs(home, "status")
        _same(mp, plain)
        assert (_files(mp), git("status", "--porcelain", cwd=mp)) == want
        mounts.unmount(home, vault, "main")
        mounts.mount(home, vault, "main", str(mp), backend=backend)
        _same(mp, plain)
        _avfs(home, "checkpoint", "save", "-m", "the person's checkpoint")
        tracked = git("--git-dir", vault.path, "ls-tree", "--name-only", "main").split()
        assert sorted(tracked) == sorted(_files(plain))
        for name, data in _files(plain).items():
            assert git("--git-dir", vault.path, "show", f"main:{name}").encode() == data
    finally:
        mounts.unmount(home, vault, "main")
    fsck = subprocess.run(
        ["git", "--git-dir", vault.path, "fsck", "--strict", "--no-dangling"], capture_output=True, text=True
    )
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
