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

import os
from typing import Any

import pytest

from . import test_git_model as tgm
from .gitmodel_steps25 import TwentyFifthRoundSteps
from .gitmodel_steps27 import BYPASSES, CORE_SETTINGS, GITDIR_PAIRS, TwentySeventhRoundSteps
from .gitmount import _require

# what each backend runs (the suite's CPU: every condition, setting and way once on one
# backend at least, those whose path differs by backend on both; all of them by hand with
# AVFS_MODEL27_ALL=1)
ALL = bool(os.environ.get("AVFS_MODEL27_ALL"))
GITDIR_RUNS = {
    "overlay": [("autocrlf", "gitdir"), ("attributesFile", "vault")],
    "fuse": [("excludesFile", "gitdir/i")],
}
CORE_RUNS = {"overlay": list(CORE_SETTINGS), "fuse": ["symlinks"]}  # (pure FUSE: the retired file)
BYPASS_RUNS = {"overlay": list(BYPASSES), "fuse": ["no_verify"]}


class GitModel27(TwentySeventhRoundSteps, TwentyFifthRoundSteps, tgm.GitModel):
    """The model with this round's steps (and the twenty-fifth's helpers)."""


def _after(model: GitModel27, n: int) -> None:
    if n % 2:
        model.remount_anywhere()
    else:
        model.checkpoint(False)
    model.check()


def _steps(backend: str, step: str, each: Any, *, check_each: bool = False) -> None:
    """The model's ``step`` with each of ``each`` on ``backend``, a remount or a checkpoint
    and the check after each (``check_each``: the check right after the step too)."""
    _require(backend)
    tgm.BACKEND = backend
    model = GitModel27()
    try:
        model.check()
        for n, arg in enumerate(each):
            getattr(model, step)(arg)
            if check_each:
                model.check()
            _after(model, n)
    finally:
        model.teardown()


@pytest.mark.timeout(900)
@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_settings_a_gitdir_condition_includes_are_read_as_git_in_the_mount_reads_them(backend: str) -> None:
    """:data:`GITDIR_RUNS` (of :data:`.gitmodel_steps27.GITDIR_PAIRS`) beside a plain clone."""
    _steps(backend, "gitdir_included", GITDIR_PAIRS if ALL else GITDIR_RUNS[backend], check_each=True)


@pytest.mark.timeout(900)
@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_a_forks_own_filemode_ignorecase_and_symlinks_are_read_as_git_reads_them(backend: str) -> None:
    """:data:`CORE_RUNS` (of :data:`.gitmodel_steps27.CORE_SETTINGS`), each in an `includeIf "onbranch:f"`."""
    _steps(backend, "fork_core", CORE_SETTINGS if ALL else CORE_RUNS[backend])


@pytest.mark.timeout(900)
@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_the_persons_new_hooks_run_in_a_commit_that_does_not_ask_fsmonitor(backend: str) -> None:
    """:data:`BYPASS_RUNS` (of :data:`.gitmodel_steps27.BYPASSES`) beside a plain clone."""
    _steps(backend, "fsmonitor_bypass", BYPASSES if ALL else BYPASS_RUNS[backend])
