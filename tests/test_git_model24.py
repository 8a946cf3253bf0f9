"""The git model's twenty-fourth round (gitmodel24): the person's own git hooks in a
mount as in a plain worktree, the steps of tests/gitmodel_steps24.py on a mount and a
plain clone, checked after every step as tests/test_git_model.py checks (avfs's status
among it), each once on both backends with a checkpoint or a remount after it, and a
short seeded random run of them among the older steps.

- A `core.hooksPath` the person set in the mount after it was mounted (`git config
  core.hooksPath .githooks`, husky's install) was not followed: the mount's own hooks
  directory (its worktree's `core.hooksPath`: avfs's guards) linked each other hook name
  to the person's hooks directory as the mount found it (the vault's `hooks/`), so the
  person's pre-commit, commit-msg and post-commit hooks did not run until the next mount
  (a commit the hooks would have changed or refused was made as it was). Each name
  there now leads through one link the mount's daemon points again as git's fsmonitor
  hook asks, where a config file changed since (mount/personhooks.py).

Scale the random run by hand: ``AVFS_MODEL24_EXAMPLES=3 AVFS_MODEL24_STEPS=30
AVFS_MODEL24_SEED=2402 pytest tests/test_git_model24.py -k random``."""

from __future__ import annotations

import os

import pytest

from . import test_git_model as tgm
from .gitmodel_steps24 import KINDS, WHERES, TwentyFourthRoundSteps
from .gitmount import _require

EXAMPLES = int(os.environ.get("AVFS_MODEL24_EXAMPLES", "1"))
STEPS = int(os.environ.get("AVFS_MODEL24_STEPS", "8"))
SEED = int(os.environ.get("AVFS_MODEL24_SEED", "2401"))
# the rules the random run draws: this round's, and the older ones they meet most
RULES = [
    "person_hooks",
    "write",
    "add",
    "commit",
    "checkpoint",
    "undo",
    "remount_anywhere",
    "fixup",
    "stash",
    "settle",
]


class GitModel24(TwentyFourthRoundSteps, tgm.GitModel):
    """The model with this round's steps."""


def _each_step_once(backend: str) -> None:
    tgm.BACKEND = backend
    model = GitModel24()
    try:
        model.check()
        n = 0
        for where in WHERES:
            for kind in KINDS:
                model.person_hooks(where, kind)
                model.check()
                if n % 2:
                    model.remount_anywhere()
                else:
                    model.checkpoint(False)
                model.check()
                n += 1
    finally:
        model.teardown()


@pytest.mark.timeout(900)
@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_the_persons_hooks_run_in_the_mount_as_in_a_plain_clone(backend: str) -> None:
    """Each place the person's hooks are set (:data:`.gitmodel_steps24.WHERES`), each kind
    (:data:`.gitmodel_steps24.KINDS`), beside a plain clone; a checkpoint or a remount
    after each."""
    _require(backend)
    _each_step_once(backend)


@pytest.mark.timeout(900)
@pytest.mark.parametrize("backend", ["overlay"])
def test_random_runs_of_the_new_steps_agree_with_plain_git(backend: str) -> None:
    _require(backend)
    tgm.run_seeded(GitModel24, RULES, backend, seed_=SEED, steps=STEPS, examples=EXAMPLES)
