"""The git model's twenty-seventh round (gitmodel27): a fork's own settings where git in
its mount reads them by its git dir (`includeIf "gitdir:"`, `"gitdir/i:"`), and the
settings that decide how git reads the working tree (`core.fileMode`, `core.ignoreCase`,
`core.symlinks`) included for the fork alone; the steps of tests/gitmodel_steps27.py on
a mount and a plain clone, checked after every step as tests/test_git_model.py checks
(avfs's status among it), a checkpoint or a remount after each.

- avfs read a fork's settings (where a config holds an `includeIf`) through a git dir of
  its process's (`/tmp/avfs-forkconfig-*`), so a `gitdir:` condition naming the mount's
  git dir (`<vault>/worktrees/avfs-f`) was not met for avfs where git in the mount met
  it: a checkpoint stored CRLF and `$Id: ...$` where `git add` there stores LF and
  `$Id$`, and the status listed a file git ignores. While the fork is mounted on its
  branch they are read through the mount's own git dir now (core/store/lineconfig.py)."""

from __future__ import annotations

import pytest

from . import test_git_model as tgm
from .gitmodel_steps25 import TwentyFifthRoundSteps
from .gitmodel_steps27 import BYPASSES, CORE_SETTINGS, GITDIR_PAIRS, TwentySeventhRoundSteps
from .gitmount import _require


class GitModel27(TwentySeventhRoundSteps, TwentyFifthRoundSteps, tgm.GitModel):
    """The model with this round's steps (and the twenty-fifth's helpers)."""


def _after(model: GitModel27, n: int) -> None:
    if n % 2:
        model.remount_anywhere()
    else:
        model.checkpoint(False)
    model.check()


@pytest.mark.timeout(900)
@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_settings_a_gitdir_condition_includes_are_read_as_git_in_the_mount_reads_them(backend: str) -> None:
    """Each of :data:`.gitmodel_steps27.GITDIR_PAIRS` beside a plain clone."""
    _require(backend)
    tgm.BACKEND = backend
    model = GitModel27()
    try:
        model.check()
        for n, pair in enumerate(GITDIR_PAIRS):
            model.gitdir_included(pair)
            model.check()
            _after(model, n)
    finally:
        model.teardown()


@pytest.mark.timeout(900)
@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_a_forks_own_filemode_ignorecase_and_symlinks_are_read_as_git_reads_them(backend: str) -> None:
    """Each of :data:`.gitmodel_steps27.CORE_SETTINGS` in an `includeIf "onbranch:f"`."""
    _require(backend)
    tgm.BACKEND = backend
    model = GitModel27()
    try:
        model.check()
        for n, setting in enumerate(CORE_SETTINGS):
            model.fork_core(setting)
            _after(model, n)
    finally:
        model.teardown()


@pytest.mark.timeout(900)
@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_the_persons_new_hooks_run_in_a_commit_that_does_not_ask_fsmonitor(backend: str) -> None:
    """Each of :data:`.gitmodel_steps27.BYPASSES` beside a plain clone."""
    _require(backend)
    tgm.BACKEND = backend
    model = GitModel27()
    try:
        model.check()
        for n, how in enumerate(BYPASSES):
            model.fsmonitor_bypass(how)
            _after(model, n)
    finally:
        model.teardown()
