"""The git model's thirtieth round (gitmodel30): the steps of tests/gitmodel_steps30.py
(git's commands no earlier round's step ran: ranges through git's sequencer, a failing
`rebase -x`, stashes that keep the staging, `apply --reject`, a huge file, `add -u`,
`reset -p`, an octopus merge, a nested repository, `restore --source` of a directory),
each followed by one of avfs's own, then a checkpoint, on a mount and a plain clone,
checked after every step as tests/test_git_model.py checks: each once on both backends,
then a short seeded random run of them among avfs's operations.

One mount a backend (the model's), each step once (suitetime: the suite is over its time).
Scale the random run by hand: ``AVFS_MODEL30_EXAMPLES=3 AVFS_MODEL30_STEPS=30 AVFS_MODEL30_SEED=3002 pytest
tests/test_git_model30.py -k random``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from . import test_git_model as tgm
from .gitmodel_steps30 import COMMANDS30, ThirtiethRoundSteps
from .gitmount import _git, _require, mount_fork

# the then of each command in COMMANDS30's order, on the overlay backend; pure FUSE's the
# next one's (each command meets two of avfs's operations across the two runs)
THENS = (
    "exec-write",  # revert-range
    "checkpoint",  # octopus
    "exec",  # revert-range-conflict (refused: the sequencer open)
    "checkpoint",  # rebase-exec-fails (refused: the rebase stopped)
    "remount",  # stash-pop-index
    "undo",  # stash-staged
    "exec-write",  # apply-reject
    "remount",  # huge-file
    "exec-write",  # add-u
    "undo",  # reset-p
    "checkpoint",  # nested-repo
    "restore",  # restore-source-dir
    "exec-write",  # odd-names
    "undo",  # many-files
    "checkpoint",  # pop-index-conflict
    "exec",  # moves-while-open (refused: git's revert open)
)
EXAMPLES = int(os.environ.get("AVFS_MODEL30_EXAMPLES", "1"))
STEPS = int(os.environ.get("AVFS_MODEL30_STEPS", "8"))
SEED = int(os.environ.get("AVFS_MODEL30_SEED", "3001"))
# (this round's step named twice: drawn as often as two of avfs's own; run_seeded draws
# among the names listed)
RULES = [
    "command30_then",
    "command30_then",
    "write",
    "add",
    "checkpoint",
    "undo",
    "restore",
    "remount_anywhere",
    "settle",
    "diverge",
]


class GitModel30(ThirtiethRoundSteps, tgm.GitModel):
    """The model with this round's steps."""


def _each_step_once(backend: str) -> None:
    tgm.BACKEND = backend
    model = GitModel30()
    shift = 0 if backend == "overlay" else 1
    steps: list[Any] = [
        lambda what=what, then=THENS[(i + shift) % len(THENS)]: model.command30_then(what, then)
        for i, what in enumerate(COMMANDS30)
    ]
    tgm.each_once(model, steps)


@pytest.mark.timeout(900)
@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_each_new_step_once_agrees_with_plain_git(backend: str) -> None:
    _require(backend)
    _each_step_once(backend)


@pytest.mark.timeout(900)
@pytest.mark.parametrize("backend", ["fuse"])
def test_random_runs_of_the_new_steps_agree_with_plain_git(backend: str) -> None:
    _require(backend)
    tgm.run_seeded(GitModel30, RULES, backend, seed_=SEED, steps=STEPS, examples=EXAMPLES)


@pytest.mark.parametrize("backend", ["overlay"])
def test_a_nested_repository_a_checkpoint_recorded_stays_after_a_write_unmounted(
    cli_proc: Any, tmp_path: Path, backend: str
) -> None:
    """A nested repository (`git init` in the mount, a commit there), its files recorded by
    a checkpoint, then `avfs unmount` and an `avfs write`: the write's fold of the upper
    layer dropped the files the checkpoint recorded and left their directory, opaque (the
    mount made it) and holding the nested `.git` alone, over the lower layer's: the files
    were gone from the fork (`avfs status`: deleted; the mount again: an empty directory).
    Only the overlay backend has an upper layer; the model's nested-repo step did not
    reach the fold's path that drops (gitmodel30)."""
    _require(backend)
    with mount_fork(cli_proc, tmp_path, backend) as (mp, avfs):
        nested = mp / "nested"
        nested.mkdir()
        (nested / "inner.txt").write_text("inside a nested repository\n")
        for args in (("init", "-q"), ("add", "inner.txt"), ("commit", "-q", "-m", "inner")):
            _git(nested, *args)
        assert avfs("checkpoint", "save").code == 0
        assert cli_proc("--vault", "v:f", "unmount", str(mp)).code == 0
        try:
            assert cli_proc("--vault", "v:f", "write", "f1.txt", "f1").code == 0
            doc = cli_proc("--vault", "v:f", "--json", "status").json()
        finally:
            assert cli_proc("--vault", "v:f", "mount", "--backend", backend, str(mp)).code == 0
        assert [(c["path"], c["status"]) for c in doc["changes"]] == [("f1.txt", "added")], doc
        assert (nested / "inner.txt").read_text() == "inside a nested repository\n"
        assert _git(mp, "status", "--porcelain").stdout == "?? f1.txt\n"
        assert _git(nested, "log", "--format=%s").stdout == "inner\n"
