"""The git model's staged-then-written round (h-staged1, the thirty-sixth round): the
person's staged version of a path another writer then writes in the mount, beside a
plain clone; the steps of tests/gitmodel_steps_staged.py checked after every step as
tests/test_git_model.py checks (avfs's status among it), each way once on both
backends, and a short seeded random run of them among the older steps.

- A ``proxy exec`` whose record commits a path the person had staged another version of
  set the mount's index entry to the record's: the staged version was gone, silently
  (found in the thirty-sixth round, h-gitspawn1; on main too). The record is another
  writer's commit on the branch now: the entry stays staged, as in a plain worktree whose
  branch another hand moves (mount/indexahead.py ``keep_staged``; h-staged1).
- ``avfs checkpoint save`` (after `avfs write` or not) is the person's `git commit --only`
  of the files, as the model always said: the entry becomes the commit's, as git's does.

Scale the random run by hand: ``AVFS_MODELSTAGED_EXAMPLES=3 AVFS_MODELSTAGED_STEPS=30
AVFS_MODELSTAGED_SEED=2602 pytest tests/test_git_model_staged.py -k random``."""

from __future__ import annotations

import os
import random

import pytest

from . import test_git_model as tgm
from .gitmodel_steps_staged import THENS, StagedThenSteps
from .gitmount import _require

EXAMPLES = int(os.environ.get("AVFS_MODELSTAGED_EXAMPLES", "1"))
STEPS = int(os.environ.get("AVFS_MODELSTAGED_STEPS", "8"))
SEED = int(os.environ.get("AVFS_MODELSTAGED_SEED", "2601"))
# the rules the random run draws: this round's, and the older ones they meet most
RULES = ["staged_then", "write", "add", "commit", "checkpoint", "exec_edit", "exec_git_command", "undo"]


class GitModelStaged(StagedThenSteps, tgm.GitModel):
    """The model with this round's steps."""


@pytest.mark.timeout(900)
@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_a_staged_version_then_another_writer_agrees_with_plain_git(backend: str) -> None:
    """:meth:`.gitmodel_steps_staged.StagedThenSteps.staged_then` each way (``again``
    both, each of :data:`.gitmodel_steps_staged.THENS`), beside a plain clone."""
    _require(backend)
    tgm.BACKEND = backend
    model = GitModelStaged()
    rng = random.Random(2600)  # (which tracked file each step stages)
    try:
        model.check()
        for then in THENS:
            for again in (False, True):
                model.staged_then(tgm._Seeded(rng), again, then)  # type: ignore[arg-type]
                model.check()
    finally:
        model.teardown()


@pytest.mark.timeout(900)
@pytest.mark.parametrize("backend", ["overlay"])
def test_random_runs_of_the_new_steps_agree_with_plain_git(backend: str) -> None:
    _require(backend)
    tgm.run_seeded(GitModelStaged, RULES, backend, seed_=SEED, steps=STEPS, examples=EXAMPLES)
