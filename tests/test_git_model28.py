"""The git model's twenty-eighth round (gitmodel28): the steps of tests/gitmodel_steps28.py
(git's commands no earlier round's sequence ran: `--skip` of a conflicted rebase, pick or
revert, merge strategies, git's plumbing, a stash made by hand, `mv -f`, `filter-branch`),
each followed by one of avfs's own, on a mount and a plain clone, checked after every step
as tests/test_git_model.py checks, each once on both backends and a short seeded random
run of them.

Scale the random run by hand: ``AVFS_MODEL28_EXAMPLES=3 AVFS_MODEL28_STEPS=30
AVFS_MODEL28_SEED=2802 pytest tests/test_git_model28.py -k random``."""

from __future__ import annotations

import os
from typing import Any

import pytest

from . import test_git_model as tgm
from .gitmodel_steps28 import TwentyEighthRoundSteps
from .gitmount import _require

EXAMPLES = int(os.environ.get("AVFS_MODEL28_EXAMPLES", "1"))
STEPS = int(os.environ.get("AVFS_MODEL28_STEPS", "8"))
SEED = int(os.environ.get("AVFS_MODEL28_SEED", "2801"))
RULES = [
    "skip_then",
    "strategy_then",
    "plumbing_then",
    "stash_store_then",
    "mv_force_then",
    "filter_branch_then",
    "force_added_then",
    "write",
    "add",
    "commit",
    "checkpoint",
    "undo",
    "restore",
    "remount_anywhere",
    "refused_while_busy",
    "settle",
    "diverge",
]


class GitModel28(TwentyEighthRoundSteps, tgm.GitModel):
    """The model with this round's steps (and gitmodel22's, whose ``then22`` they use)."""


def _each_step_once(backend: str) -> None:
    tgm.BACKEND = backend
    model = GitModel28()
    steps: list[Any] = [
        lambda: model.skip_then("rebase", "checkpoint"),
        lambda: model.skip_then("cherry-pick", "remount"),
        lambda: model.skip_then("revert", "exec-write"),
        lambda: model.strategy_then("-X ours", "undo"),
        lambda: model.strategy_then("-X theirs", "checkpoint"),
        lambda: model.strategy_then("-s ours", "restore"),
        lambda: model.strategy_then("--ff-only", "exec"),
        lambda: model.plumbing_then("read-tree", "checkpoint"),
        lambda: model.plumbing_then("reset-tree", "remount"),
        lambda: model.plumbing_then("checkout-index", "exec-write"),
        lambda: model.plumbing_then("commit-tree", "undo"),
        lambda: model.plumbing_then("really-refresh", "checkpoint"),
        lambda: model.plumbing_then("reindex", "restore"),
        lambda: model.plumbing_then("subtree", "checkpoint"),
        lambda: model.plumbing_then("index-info", "remount"),
        lambda: model.plumbing_then("prefix-copy", "exec-write"),
        lambda: model.plumbing_then("add-chmod", "undo"),
        lambda: model.plumbing_then("apply-rename", "checkpoint"),
        lambda: model.stash_store_then("remount"),
        lambda: model.stash_store_then("checkpoint"),
        lambda: model.mv_force_then("exec-write"),
        lambda: model.mv_force_then("undo"),
        lambda: model.force_added_then("changed", "checkpoint"),
        lambda: model.force_added_then("removed", "exec-write"),
        lambda: model.force_added_then("beside", "checkpoint"),
        lambda: model.force_added_then("changed", "exec"),
        lambda: model.force_added_then("changed", "undo"),
        lambda: model.force_added_then("removed", "restore"),
        lambda: model.filter_branch_then("checkpoint"),
        lambda: model.filter_branch_then("remount"),
    ]
    tgm.each_once(model, steps)


@pytest.mark.timeout(900)
@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_each_new_step_once_agrees_with_plain_git(backend: str) -> None:
    _require(backend)
    _each_step_once(backend)


@pytest.mark.timeout(900)
@pytest.mark.parametrize("backend", ["overlay"])
def test_random_runs_of_the_new_steps_agree_with_plain_git(backend: str) -> None:
    _require(backend)
    tgm.run_seeded(GitModel28, RULES, backend, seed_=SEED, steps=STEPS, examples=EXAMPLES)
