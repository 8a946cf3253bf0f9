"""The git model's twenty-fifth round (gitmodel25): git's config through the files it
includes, and the person's hooks with git's fsmonitor off for the worktree, in a mount as
in a plain worktree; the steps of tests/gitmodel_steps25.py on a mount and a plain clone,
checked after every step as tests/test_git_model.py checks (avfs's status among it), each
once on both backends with a checkpoint or a remount after it, and a short seeded random
run of them among the older steps.

- A `core.hooksPath` set in a file the config includes (`[include] path`, `[includeIf
  "onbranch:f"]`) was not followed until the next mount: the mount's daemon watched the
  config files themselves only, so the person's hooks did not run (and, once the file no
  longer set it, still ran). The files a config includes are watched now, and the value
  is read as git in the mount's worktree reads it (mount/personhooks.py).
- With `git config --worktree core.fsmonitor false` in the mount, a new `core.hooksPath`
  was followed only at the next mount (nothing asked the daemon). While git's fsmonitor is
  off for the worktree, the hooks that start a command's chain are small scripts now that
  ask the daemon where the config changed (it makes them so as git rewrites the
  worktree's `config.worktree`).

Scale the random run by hand: ``AVFS_MODEL25_EXAMPLES=3 AVFS_MODEL25_STEPS=30
AVFS_MODEL25_SEED=2502 pytest tests/test_git_model25.py -k random``."""

from __future__ import annotations

import os

import pytest

from . import test_git_model as tgm
from .gitmodel_steps24 import TwentyFourthRoundSteps
from .gitmodel_steps25 import PAIRS, WHERES, TwentyFifthRoundSteps
from .gitmount import _require

EXAMPLES = int(os.environ.get("AVFS_MODEL25_EXAMPLES", "1"))
STEPS = int(os.environ.get("AVFS_MODEL25_STEPS", "8"))
SEED = int(os.environ.get("AVFS_MODEL25_SEED", "2501"))
# the rules the random run draws: this round's, and the older ones they meet most
RULES = [
    "included",
    "fsmonitor_off_hooks",
    "fsmonitor_off_exec",
    "person_hooks",
    "write",
    "add",
    "commit",
    "checkpoint",
    "remount_anywhere",
    "autocrlf",
    "settle",
]


class GitModel25(TwentyFifthRoundSteps, TwentyFourthRoundSteps, tgm.GitModel):
    """The model with this round's steps (and the twenty-fourth's, which the random run
    draws among them)."""


def _after(model: GitModel25, n: int) -> None:
    if n % 2:
        model.remount_anywhere()
    else:
        model.checkpoint(False)
    model.check()


@pytest.mark.timeout(900)
@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_settings_in_an_included_file_are_read_in_the_mount_as_in_a_plain_clone(backend: str) -> None:
    """Each setting in a file the config includes, each way (:data:`.gitmodel_steps25.PAIRS`),
    beside a plain clone; a checkpoint or a remount after each."""
    _require(backend)
    tgm.BACKEND = backend
    model = GitModel25()
    try:
        model.check()
        for n, pair in enumerate(PAIRS):
            model.included(pair)
            model.check()
            _after(model, n)
    finally:
        model.teardown()


@pytest.mark.timeout(900)
@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_the_persons_hooks_are_followed_with_fsmonitor_off(backend: str) -> None:
    """:meth:`.gitmodel_steps25.TwentyFifthRoundSteps.fsmonitor_off_hooks` each way
    (:data:`.gitmodel_steps25.WHERES`), then ``fsmonitor_off_exec``, beside a plain clone."""
    _require(backend)
    tgm.BACKEND = backend
    model = GitModel25()
    try:
        model.check()
        for n, where in enumerate(WHERES):
            model.fsmonitor_off_hooks(where)
            model.check()
            _after(model, n)
        model.fsmonitor_off_exec()
        model.check()
    finally:
        model.teardown()


@pytest.mark.timeout(900)
@pytest.mark.parametrize("backend", ["overlay"])
def test_random_runs_of_the_new_steps_agree_with_plain_git(backend: str) -> None:
    _require(backend)
    tgm.run_seeded(GitModel25, RULES, backend, seed_=SEED, steps=STEPS, examples=EXAMPLES)
