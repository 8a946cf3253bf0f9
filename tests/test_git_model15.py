"""The git model's fifteenth round (gitmodel15): the steps of tests/gitmodel_steps15.py (git
commands an agent or a person runs that the model did not yet) on a mount and a plain
clone, checked after every step as tests/test_git_model.py checks (the files, git's status
and index bits, the history, tags and notes, avfs's status): each step once in an order
where each does something, and a seeded random run of them among the model's older git
and avfs steps. Their own file, not the every-command run (the suite's slowest test).

Scale the random run by hand: ``AVFS_MODEL15_EXAMPLES=5 AVFS_MODEL15_STEPS=40
AVFS_MODEL15_SEED=1502 pytest tests/test_git_model15.py -k random``."""

from __future__ import annotations

import os
from typing import Any

import pytest

from . import test_git_model as tgm
from .gitmodel_steps15 import FifteenthRoundSteps
from .test_fuse import require_fuse
from .test_overlay import require_overlay

EXAMPLES = int(os.environ.get("AVFS_MODEL15_EXAMPLES", "1"))
STEPS = int(os.environ.get("AVFS_MODEL15_STEPS", "12"))
SEED = int(os.environ.get("AVFS_MODEL15_SEED", "1501"))
# the rules the random run draws: this round's (not ``filter_driver``: a strict xfail
# below), and the older ones they meet most
RULES = [
    "stash_patch",
    "rebase_i_env",
    "cherry_pick_x",
    "revert_merge",
    "worktree_own_branch",
    "long_path",
    "dotgit_names",
    "fsmonitor_setting",
    "write",
    "add",
    "commit",
    "diverge",
    "settle",
    "checkpoint",
    "undo",
    "restore",
    "exec_git_command",
    "remount_anywhere",
    "avfs_merge",
]


class GitModel15(FifteenthRoundSteps, tgm.GitModel):
    """The model with this round's steps."""


def _require(backend: str) -> None:
    if backend == "overlay":
        require_overlay()
    else:
        require_fuse()


def _each_step_once(backend: str) -> None:
    tgm.BACKEND = backend
    model = GitModel15()
    draw = tgm._Draw
    steps: list[Any] = [
        lambda: model.stash_patch("first", False, True),
        lambda: model.stash_patch("all-but-first", True, False),
        lambda: model.stash_patch("every", False, False),
        lambda: model.both("stash", "pop", "-q"),
        lambda: model.both("commit", "-q", "-a", "-m", "after the stashes"),
        lambda: model.rebase_i_env(draw(False), "squash"),
        lambda: model.long_path("commit"),
        lambda: model.rebase_i_env(draw(False), "reword"),
        lambda: model.rebase_i_env(draw(False), "reorder"),
        lambda: model.cherry_pick_x(draw(False)),
        lambda: model.settle("theirs") if model.busy() is not None else None,
        lambda: model.revert_merge(draw(False), "up/topic"),
        lambda: model.settle("abort") if model.busy() is not None else None,
        model.worktree_own_branch,
        lambda: model.long_path("mv"),
        lambda: model.both("commit", "-q", "-m", "moved a long path"),
        lambda: model.long_path("checkpoint"),
        lambda: model.dotgit_names("status"),
        lambda: model.dotgit_names("add"),
        lambda: model.dotgit_names("checkpoint"),
        lambda: model.filter_driver("status"),
        lambda: model.fsmonitor_setting("false"),
        lambda: model.fsmonitor_setting("true"),
    ]
    tgm.each_once(model, steps)


@pytest.mark.timeout(900)
@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_each_new_step_once_agrees_with_plain_git(backend: str) -> None:
    _require(backend)
    _each_step_once(backend)


def _filtered(backend: str, how: str) -> None:
    tgm.BACKEND = backend
    model = GitModel15()
    try:
        model.filter_driver(how)
        model.check()
    finally:
        model.teardown()


@pytest.mark.xfail(
    strict=True,
    reason="avfs runs no clean/smudge filter a person configures (filter.X.clean, code from"
    " the vault's config): its status lists a file git committed through one as modified,"
    " its checkpoint records the file's bytes where `git add` records the filter's output"
    " (docs/fuse.md, gitmodel15)",
)
@pytest.mark.timeout(600)
@pytest.mark.parametrize("how", ["commit", "checkpoint"])
@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_a_file_through_a_person_s_filter_agrees_with_plain_git(backend: str, how: str) -> None:
    _require(backend)
    _filtered(backend, how)


@pytest.mark.xfail(
    strict=True,
    reason="a pure-FUSE mount refuses to make `.GIT` or `.Git` below the root (EINVAL:"
    " core/store/names.py refuses `.git` of any case; the mount lets `.git` itself through"
    " for a nested repository), where a local disk and an overlay mount make them (git"
    " refuses to add them; gitmodel15)",
)
def test_names_like_git_s_own_in_another_case_are_made_in_a_pure_fuse_mount(
    tmp_path: Any, cli_proc: Any
) -> None:
    from .gitmount import _git, mount_fork

    require_fuse()
    with mount_fork(cli_proc, tmp_path, "fuse", in_process=True) as (mp, _avfs):
        _git(mp, "init", "-q", "nested")  # (a `.git` directory of a nested repository: made)
        failed = []
        for name in ("sub/.GIT", "sub/.git", "sub/.Git/config", "sub/nested/.git/config"):
            try:
                os.makedirs(os.path.dirname(mp / name), exist_ok=True)
                (mp / name).write_text("named like .git\n")
            except OSError as exc:
                failed.append(f"{name}: {exc.strerror}")
        assert not failed, failed


def _random(backend: str) -> None:
    tgm.run_seeded(GitModel15, RULES, backend, seed_=SEED, steps=STEPS, examples=EXAMPLES)


@pytest.mark.timeout(900)
@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_random_runs_of_the_new_steps_agree_with_plain_git(backend: str) -> None:
    _require(backend)
    _random(backend)
