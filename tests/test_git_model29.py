"""The git model's twenty-ninth round (gitmodel29): the steps of tests/gitmodel_steps29.py
(what git staged across a remount, on the other backend too, then the person's `git
commit`, a checkpoint, a run's record or an amend; and git's commands the round's brief
named, each followed by one of avfs's own, a checkpoint and a remount), each once on both
backends, on a mount and a plain clone, checked after every step as tests/test_git_model.py
checks.

One mount a backend (the model's), each step once (suitetime: the suite is over its time)."""

from __future__ import annotations

from typing import Any

import pytest

from . import test_git_model as tgm
from .gitmodel_steps29 import COMMANDS29, THEN29, TwentyNinthRoundSteps
from .gitmount import _require

THENS = ("checkpoint", "undo", "restore", "remount", "exec", "exec-write")


class GitModel29(TwentyNinthRoundSteps, tgm.GitModel):
    """The model with this round's steps."""


def _each_step_once(backend: str) -> None:
    tgm.BACKEND = backend
    model = GitModel29()
    steps: list[Any] = []
    for i, then in enumerate(THEN29):
        steps.append(lambda then=then, other=i % 2 == 0: model.staged_remount_then(other, then))
        steps.append(lambda then=then, other=i % 2 == 1: model.staged_remount_then(other, then))
    for i, what in enumerate(COMMANDS29):
        steps.append(lambda what=what, then=THENS[i % len(THENS)]: model.command_then(what, then))
    tgm.each_once(model, steps)


@pytest.mark.timeout(1200)
@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_each_new_step_once_agrees_with_plain_git(backend: str) -> None:
    _require("overlay")
    _require("fuse")  # (the remount onto the other backend needs both)
    _each_step_once(backend)
