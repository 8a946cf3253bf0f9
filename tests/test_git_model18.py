"""The git model's eighteenth round (gitmodel18): the steps of tests/gitmodel_steps18.py on
a mount and a plain clone, checked after every step as tests/test_git_model.py checks:
each step once in an order where each does something, a seeded random run of them among
the steps they meet most, and gitmodel17's seed 1702 (`avfs undo` of a checkpoint beside
what git staged) as a fixed sequence.

Scale the random run by hand: ``AVFS_MODEL18_EXAMPLES=3 AVFS_MODEL18_STEPS=30
AVFS_MODEL18_SEED=1802 pytest tests/test_git_model18.py -k random``."""

from __future__ import annotations

import os
from typing import Any

import pytest

from . import test_git_model as tgm
from .gitmodel_steps15 import FifteenthRoundSteps
from .gitmodel_steps16 import SixteenthRoundSteps
from .gitmodel_steps17 import SeventeenthRoundSteps
from .gitmodel_steps18 import EighteenthRoundSteps
from .test_fuse import require_fuse
from .test_overlay import require_overlay

EXAMPLES = int(os.environ.get("AVFS_MODEL18_EXAMPLES", "1"))
STEPS = int(os.environ.get("AVFS_MODEL18_STEPS", "12"))
SEED = int(os.environ.get("AVFS_MODEL18_SEED", "1801"))
# the rules the random run draws: this round's, and the older ones they meet most
RULES = [
    "undo_keeps_staging",
    "worktree_file_mode",
    "split_bits_moved",
    "stash_staged",
    "amend_then_undo",
    "stash_across_restore",
    "mv_dir_undone",
    "worktree_moves_fork",  # (split_bits_moved's move: unmasked)
    "index_version",
    "write",
    "add",
    "commit",
    "checkpoint",
    "undo",
    "restore",
    "remount_anywhere",
]


class GitModel18(
    EighteenthRoundSteps, SeventeenthRoundSteps, SixteenthRoundSteps, FifteenthRoundSteps, tgm.GitModel
):
    """The model with this round's steps (and the three before's)."""


def _require(backend: str) -> None:
    if backend == "overlay":
        require_overlay()
    else:
        require_fuse()


def _each_step_once(backend: str) -> None:
    tgm.BACKEND = backend
    model = GitModel18()
    steps: list[Any] = [
        lambda: model.undo_keeps_staging("add-reverted"),
        lambda: model.undo_keeps_staging("rm-cached"),
        lambda: model.both("add", "-A"),
        lambda: model.both("commit", "-q", "-m", "what the undone checkpoints left"),
        lambda: model.worktree_file_mode("exec-alone", True),
        lambda: model.worktree_file_mode("new-exec", False),
        lambda: model.both("add", "-A"),
        lambda: model.both("commit", "-q", "-m", "the exec bits, the setting unset"),
        lambda: model.split_bits_moved("before-split"),
        lambda: model.split_bits_moved("after-split"),
        lambda: model.stash_staged(True),
        lambda: model.checkpoint(False),
        model.amend_then_undo,
        model.stash_across_restore,
        lambda: model.both("add", "-A"),
        lambda: model.both("commit", "-q", "-m", "what the stash brought back"),
        model.mv_dir_undone,
    ]
    tgm.each_once(model, steps)


@pytest.mark.timeout(900)
@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_each_new_step_once_agrees_with_plain_git(backend: str) -> None:
    _require(backend)
    _each_step_once(backend)


def _random(backend: str) -> None:
    tgm.run_seeded(GitModel18, RULES, backend, seed_=SEED, steps=STEPS, examples=EXAMPLES)


@pytest.mark.timeout(900)
@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_random_runs_of_the_new_steps_agree_with_plain_git(backend: str) -> None:
    _require(backend)
    _random(backend)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_seed_1702_an_undo_keeps_what_git_staged_that_the_checkpoint_never_touched(backend: str) -> None:
    """gitmodel17's seed 1702 in its three steps: README.md's change `git add`ed and the
    file written back (staged, not in the files), a checkpoint of another file, `avfs
    undo`. git in the mount shows `MM README.md` after the undo, as it did before the
    checkpoint: the undo takes back what the checkpoint did (its `commit --only` of the new
    file) and nothing git staged beside it. The model's undo said `git reset --mixed
    HEAD~1` (all staging dropped: the plain side showed nothing); decided in gitmodel18 for
    avfs's behaviour, the model's undo now `reset --soft HEAD~1` and the checkpoint's paths
    unstaged (docs/fuse.md "gitmodel18")."""
    _require(backend)
    tgm.BACKEND = backend
    model = GitModel18()
    try:
        before = None
        model.index_version("2", "add-reverted")
        assert model.last_checkpoint
        before = model.m.git("diff", "--cached", "--name-only", "HEAD~1").stdout.split()
        assert "README.md" in before and "docs/index-version.md" in before, before
        model.undo()
        model.check()
        st = model.m.git("status", "--porcelain").stdout.splitlines()
        assert "MM README.md" in st and "?? docs/index-version.md" in st, st
        assert model.m.git("diff", "--cached", "--name-only").stdout.split() == ["README.md"]
    finally:
        model.teardown()
