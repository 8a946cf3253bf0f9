"""`git config --worktree core.fileMode false` in a mount (gitmodel18): git reads the
worktree's ``config.worktree`` after the vault's config (the mount turns
``extensions.worktreeConfig`` on), so its status and `git add` keep the index's mode for
an exec bit changed alone; avfs read the vault's config alone (core/store/filemode.py,
gitmodel17): its status listed the file modified and a checkpoint recorded the bit. The
setting outlives a remount (mount/gitkeep.py keeps it as the other booleans), and a
confined command cannot change it (the sandbox pins ``config.worktree``)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..forkhome import make_fork_home, mount_copied_fork
from ..gitmount import _git
from ..remount import remount
from ..test_confine import _need_bwrap
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


def _changes(avfs: Any) -> set[tuple[str, str]]:
    res = avfs("--json", "status")
    assert res.code == 0, res.err
    return {(c["path"], c["status"]) for c in res.json()["changes"]}


def test_the_worktree_s_file_mode_setting_is_followed_kept_and_not_a_command_s(
    mounted: Any, backend: str
) -> None:
    mp, avfs = mounted
    _git(mp, "config", "--worktree", "core.fileMode", "false")
    os.chmod(mp / "a.txt", 0o755)
    assert not _git(mp, "status", "--porcelain").stdout
    assert _changes(avfs) == set()  # (main: a.txt modified)
    (mp / "run.sh").write_text("#!/bin/sh\n")
    os.chmod(mp / "run.sh", 0o755)
    assert avfs("checkpoint", "save", "-m", "under the worktree's setting").code == 0
    tree = _git(mp, "ls-tree", "HEAD").stdout
    assert "100644 blob" in tree and "100755" not in tree, tree  # (main: both 100755)
    assert not _git(mp, "status", "--porcelain").stdout
    remount(mp, backend)  # (in process: tests/remount.py)
    assert _git(mp, "config", "--worktree", "--get", "core.fileMode").stdout.strip() == "false"
    assert _changes(avfs) == set()
    _need_bwrap()
    res = avfs("proxy", "exec", "--", "git", "config", "--worktree", "core.fileMode", "true")
    assert _git(mp, "config", "--worktree", "--get", "core.fileMode").stdout.strip() == "false", res.out
    assert _changes(avfs) == set()
    _git(mp, "config", "--worktree", "core.fileMode", "true")
    assert _changes(avfs) == {("a.txt", "modified"), ("run.sh", "modified")}


@pytest.mark.parametrize("where", ["vault", "worktree"])
def test_an_exec_bit_changed_under_false_is_a_change_once_the_setting_is_true_again(
    mounted: Any, where: str
) -> None:
    """A `chmod +x` made under `core.fileMode false` is no change, so the overlay backend's
    status remembered no top there (core/workspace/upperjournal.py); the setting turned
    back on, the next status read only what changed since and missed it, where git's
    status lists it (on main with the vault's own setting, gitmodel17's, as well). A mark
    made under the other setting is not taken now."""
    mp, avfs = mounted
    scope = ["--worktree"] if where == "worktree" else []
    _git(mp, "config", *scope, "core.fileMode", "false")
    os.chmod(mp / "a.txt", 0o755)
    assert _changes(avfs) == set()
    assert _changes(avfs) == set()  # (a second status: the mark made under false)
    _git(mp, "config", *scope, "core.fileMode", "true")
    assert _git(mp, "status", "--porcelain").stdout == " M a.txt\n"
    assert _changes(avfs) == {("a.txt", "modified")}
