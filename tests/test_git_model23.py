"""The git model's twenty-third round (gitmodel23): git's state across `avfs unmount` and
`avfs mount` exactly as a plain worktree keeps it (which nothing changes), with no avfs
command between git's last step and the unmount, each a fixed sequence and the steps of
tests/gitmodel_steps23.py on a mount and a plain clone, checked after every step as
tests/test_git_model.py checks, and after each remount by what git shows beside that:
`status --porcelain=v2 --branch` with its header, `symbolic-ref`, `stash list`, HEAD's
reflog, `git fsck` (:meth:`.gitmodel_steps23.TwentyThirdRoundSteps.deep_check`).

- A detached HEAD whose branch git moved back (`git checkout --detach`, then `git branch
  -f f HEAD~1` or `git update-ref`) came back attached after a remount (`On branch f`,
  the detached commit's files untracked; its index and HEAD set aside as "the branch
  moved since"): the unmount took git's last move of the branch only where HEAD named it
  (mount/live.py ``follow_at_unmount``).
- What a mount set aside of git's kept state (``<fork>.set-aside``) was not held for git's
  gc: a blob only its index named went at the vault's `git gc --prune=now`.

Scale the random run by hand: ``AVFS_MODEL23_EXAMPLES=3 AVFS_MODEL23_STEPS=30
AVFS_MODEL23_SEED=2302 pytest tests/test_git_model23.py -k random``."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from . import test_git_model as tgm
from .gitmodel_steps23 import FIRSTS, SECONDS, TwentyThirdRoundSteps
from .gitmount import _git, _require, mount_fork
from .test_git_model21 import _inout

EXAMPLES = int(os.environ.get("AVFS_MODEL23_EXAMPLES", "1"))
STEPS = int(os.environ.get("AVFS_MODEL23_STEPS", "8"))
SEED = int(os.environ.get("AVFS_MODEL23_SEED", "2301"))
# (by hand: some of the first steps, comma-separated; the vault's gc at every remount, "1", or none)
ONLY = os.environ.get("AVFS_MODEL23_FIRSTS")
GC = os.environ.get("AVFS_MODEL23_GC")
# the rules the random run draws: this round's, and the older ones they meet most
RULES = [
    "remount_between",
    "write",
    "add",
    "commit",
    "checkpoint",
    "stash",
    "settle",
    "remount_anywhere",
]


class GitModel23(TwentyThirdRoundSteps, tgm.GitModel):
    """The model with this round's steps."""


def _each_step_once(backend: str, firsts: list[str]) -> None:
    tgm.BACKEND = backend
    model = GitModel23()
    try:
        model.check()
        for n, first in enumerate(firsts):
            model.remount_between(first, SECONDS[n % len(SECONDS)], n % 3 == 0 if GC is None else GC == "1")
            model.check()
    finally:
        model.teardown()


@pytest.mark.timeout(900)
@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_a_remount_after_each_git_step_agrees_with_plain_git(backend: str) -> None:
    """Each of this round's git steps (:data:`.gitmodel_steps23.FIRSTS`), a remount with
    no avfs command between, then a second git step, beside a plain clone."""
    _require(backend)
    _each_step_once(backend, ONLY.split(",") if ONLY else list(FIRSTS))


@pytest.mark.timeout(900)
@pytest.mark.parametrize("backend", ["overlay"])
def test_random_runs_of_the_new_steps_agree_with_plain_git(backend: str) -> None:
    _require(backend)
    tgm.run_seeded(GitModel23, RULES, backend, seed_=SEED, steps=STEPS, examples=EXAMPLES)


def _shown(mp: Path) -> list[str]:
    """What git shows of its state in ``mp``: status with its branch header, HEAD, the
    branch HEAD names (none: detached), the stash list, HEAD's reflog."""
    return [
        _git(mp, *args, check=False).stdout
        for args in (
            ("status", "--porcelain=v2", "--branch", "--untracked-files=all"),
            ("rev-parse", "HEAD"),
            ("symbolic-ref", "-q", "HEAD"),
            ("stash", "list"),
            ("reflog", "--format=%H %gs"),
        )
    ]


@pytest.mark.parametrize("backend", ["overlay", "fuse"])
@pytest.mark.parametrize("how", ["branch -f", "update-ref"])
def test_a_detached_head_whose_branch_git_moved_back_stays_detached_after_a_remount(
    backend: str, how: str, cli_proc: Any, tmp_path: Path
) -> None:
    """Two commits, `git checkout --detach`, the branch moved back one commit by git
    (``how``), a staged and an unstaged change, then (no avfs command between) `avfs
    unmount` and `avfs mount`: git shows what it showed before, "HEAD detached at" the
    second commit (it came back `On branch f`, the second commit's file untracked)."""
    _require(backend)
    with mount_fork(cli_proc, tmp_path, backend, in_process=True) as (mp, _avfs):
        for n in (1, 2):
            (mp / f"d{n}.txt").write_text(f"commit {n}\n")
            _git(mp, "add", f"d{n}.txt")
            _git(mp, "commit", "-q", "-m", f"commit {n}")
        _git(mp, "checkout", "-q", "--detach")
        if how == "branch -f":
            _git(mp, "branch", "-f", "f", "HEAD~1")
        else:
            _git(mp, "update-ref", "refs/heads/f", "HEAD~1")
        (mp / "a.txt").write_text("staged\n")
        _git(mp, "add", "a.txt")
        (mp / "d" / "c.txt").write_text("not staged\n")
        before = _shown(mp)
        assert "# branch.head (detached)\n" in before[0]
        _inout(mp, backend, "unmount")
        _inout(mp, backend, "mount")
        assert _shown(mp) == before
        _git(mp, "switch", "-q", "f")  # (the person's next step: back on the branch)
        assert _git(mp, "status", "--porcelain").stdout == "M  a.txt\n M d/c.txt\n"
        assert not (mp / "d2.txt").exists()


def _vault_git(*args: str) -> subprocess.CompletedProcess[str]:
    vault = Path(os.environ["AVFS_HOME"]) / "vaults" / "v.git"
    return subprocess.run(
        ["git", "--git-dir", str(vault), *args], capture_output=True, text=True, check=False
    )


@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_what_a_mount_set_aside_outlives_git_s_gc(backend: str, cli_proc: Any, tmp_path: Path) -> None:
    """A commit, new.txt `git add`ed then changed again (its staged blob named by git's
    index alone), `git checkout --detach`, `avfs unmount`, the fork's branch moved back by
    another hand (`update-ref` on the vault: the next mount sets git's detached HEAD and
    index aside), `avfs mount`, the reflogs expired and `git gc --prune=now` of the vault:
    the set-aside index's blob is there still (it was pruned: nothing held it)."""
    _require(backend)
    with mount_fork(cli_proc, tmp_path, backend, in_process=True) as (mp, _avfs):
        _git(mp, "commit", "-q", "--allow-empty", "-m", "to move back from")
        (mp / "new.txt").write_text("staged only\n")
        _git(mp, "add", "new.txt")
        (mp / "new.txt").write_text("changed after\n")
        blob = _git(mp, "rev-parse", ":new.txt").stdout.strip()
        _git(mp, "checkout", "-q", "--detach")
        _inout(mp, backend, "unmount")
        assert _vault_git("update-ref", "refs/heads/f", "f~1").returncode == 0
        _inout(mp, backend, "mount")
        aside = Path(os.environ["AVFS_HOME"]) / "vaults" / "v.git" / "avfs" / "gitkept" / "f.set-aside"
        assert (aside / "index").is_file()
        for args in (("reflog", "expire", "--expire=now", "--all"), ("gc", "-q", "--prune=now")):
            assert _vault_git(*args).returncode == 0
        assert _vault_git("cat-file", "-t", blob).stdout == "blob\n"
        env = {**os.environ, "GIT_INDEX_FILE": str(aside / "index")}
        got = subprocess.run(
            ["git", "--git-dir", str(aside.parent.parent.parent), "diff", "--cached", "--name-only", "f"],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        assert got.returncode == 0 and "new.txt" in got.stdout, got
        assert "/-/aside" in _vault_git("for-each-ref", "refs/avfs/held/").stdout
