"""The git model's seventeenth round (gitmodel17): the steps of tests/gitmodel_steps17.py
(the sixteenth round's strict xfails, fixed: `core.fileMode false`, a staged file
checkpointed, undone and restored away) on a mount and a plain clone, checked after every
step as tests/test_git_model.py checks: each step once in an order where each does
something, and a seeded random run of them among the steps they meet most (the split
index's staged removal is the sixteenth round's ``split_index``, drawn here too).

Scale the random run by hand: ``AVFS_MODEL17_EXAMPLES=5 AVFS_MODEL17_STEPS=40
AVFS_MODEL17_SEED=1702 pytest tests/test_git_model17.py -k random``."""

from __future__ import annotations

import os
from typing import Any

import pytest

from . import test_git_model as tgm
from .gitmodel_steps15 import FifteenthRoundSteps
from .gitmodel_steps16 import SixteenthRoundSteps
from .gitmodel_steps17 import SeventeenthRoundSteps
from .test_fuse import require_fuse
from .test_overlay import require_overlay

EXAMPLES = int(os.environ.get("AVFS_MODEL17_EXAMPLES", "1"))
STEPS = int(os.environ.get("AVFS_MODEL17_STEPS", "12"))
SEED = int(os.environ.get("AVFS_MODEL17_SEED", "1701"))
# the rules the random run draws: this round's, and the older ones they meet most
RULES = [
    "file_mode",
    "staged_undone_restored",
    "split_index",
    "index_version",
    "write",
    "add",
    "commit",
    "diverge",
    "checkpoint",
    "undo",
    "restore",
    "exec_git_command",
    "remount_anywhere",
]


class GitModel17(SeventeenthRoundSteps, SixteenthRoundSteps, FifteenthRoundSteps, tgm.GitModel):
    """The model with this round's steps (and the sixteenth's and fifteenth's)."""


def _require(backend: str) -> None:
    if backend == "overlay":
        require_overlay()
    else:
        require_fuse()


def _each_step_once(backend: str) -> None:
    tgm.BACKEND = backend
    model = GitModel17()
    try:
        steps: list[Any] = [
            lambda: model.file_mode("exec-alone", True),
            lambda: model.file_mode("with-change", True),
            lambda: model.file_mode("new-exec", True),
            lambda: model.both("add", "-A"),
            lambda: model.both("commit", "-q", "-m", "the exec bits, with core.fileMode true"),
            lambda: model.file_mode("exec-alone", False),
            lambda: model.checkpoint(False),  # (the bit recorded now: the setting is unset)
            model.diverge,
            model.staged_undone_restored,
            lambda: model.split_index("rm-cached"),
            lambda: model.both("add", "-A"),
        ]
        model.check()
        for step in steps:
            step()
            model.check()
        model.kept.clear()
        model.check()
    finally:
        model.teardown()


@pytest.mark.timeout(900)
@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_each_new_step_once_agrees_with_plain_git(backend: str) -> None:
    _require(backend)
    _each_step_once(backend)


def _random(backend: str) -> None:
    tgm.run_masked(GitModel17, RULES, backend, seed_=SEED, steps=STEPS, examples=EXAMPLES)


@pytest.mark.timeout(900)
@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_random_runs_of_the_new_steps_agree_with_plain_git(backend: str) -> None:
    _require(backend)
    _random(backend)
