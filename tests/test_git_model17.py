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
import shutil
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
    tgm.each_once(model, steps)


@pytest.mark.timeout(900)
@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_each_new_step_once_agrees_with_plain_git(backend: str) -> None:
    _require(backend)
    _each_step_once(backend)


def _random(backend: str) -> None:
    tgm.run_seeded(GitModel17, RULES, backend, seed_=SEED, steps=STEPS, examples=EXAMPLES)


@pytest.mark.timeout(900)
@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_random_runs_of_the_new_steps_agree_with_plain_git(backend: str) -> None:
    _require(backend)
    _random(backend)


def _changes_of(model: Any) -> set[tuple[str, str]]:
    return {(c["path"], c["status"]) for c in model.avfs_status_doc()["changes"]}


@pytest.mark.timeout(600)
@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_a_replaced_head_commit_is_recorded_as_git_s_commit_records_it(backend: str) -> None:
    """`git replace HEAD side` (gitmodel16's strict xfail, decided in gitmodel17: avfs does
    not follow it). git's status then compares the files with side's tree (`M a`, `D c`
    staged where nothing was staged), but its `git commit -a` records the files as they
    are on HEAD's own commit: neither side's tree nor side as parent. avfs's status lists
    what that commit records, and its checkpoint is that commit's tree on that parent;
    `refs/replace/` stays a view for inspection (docs/fuse.md "gitmodel17")."""
    _require(backend)
    tgm.BACKEND = backend
    model = GitModel17()
    try:
        head = model.m.git("rev-parse", "HEAD").stdout.strip()
        model.both("replace", "-f", "HEAD", "side")
        model.write_all({"docs/under-replace.md": "written under a replaced HEAD\n"})
        assert _changes_of(model) == {("docs/under-replace.md", "added")}
        assert model.m.porcelain() == model.p.porcelain()
        assert len(model.p.porcelain()) > 1  # (git's status: side's changes too)
        model._tick()
        _ = tgm._avfs(model.avfs_home, "checkpoint", "save", "-m", "under a replace", cwd=model.mp)
        made = model.m.git("--no-replace-objects", "log", "-1", "--format=%T %P", "HEAD").stdout.split()
        model.p.git("add", "--", "docs/under-replace.md")
        model.p.git("commit", "-q", "-a", "-m", "git's own under a replace")
        own = model.p.git("--no-replace-objects", "log", "-1", "--format=%T %P", "HEAD").stdout.split()
        assert made == own and made[1] == head, (made, own, head)
        model.p.git("reset", "-q", "--soft", "HEAD~1")
        model.both("replace", "-d", head)
        assert model.plain_checkpoint("checkpoint", commit=model.m.git("rev-parse", "HEAD").stdout.strip())
        model.check()
    finally:
        model.teardown()


@pytest.mark.timeout(600)
@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_a_clone_inside_the_work_tree_is_kept_as_files_where_git_would_record_a_gitlink(backend: str) -> None:
    """`git clone . nested/clone` in the mount (gitmodel16's strict xfail, decided in
    gitmodel17: avfs does not follow git here). `git add -A` would record an embedded
    repository as a gitlink, a commit id of a repository the vault does not hold: a clone
    of the vault gets an empty directory there and `git submodule update` has no URL (git's
    own warning says so). avfs keeps the files as the fork's ("Nested repositories"): its
    status lists them, a checkpoint records them, and a restore brings them back after
    they were removed, which a gitlink could not."""
    _require(backend)
    tgm.BACKEND = backend
    model = GitModel17()
    try:
        model.m.git("clone", "-q", "--no-local", ".", "nested/clone")
        files = sorted(model.m.git("-C", "nested/clone", "ls-files", "-z").stdout.split("\0")[:-1])
        assert len(files) > 50
        assert _changes_of(model) == {(f"nested/clone/{f}", "added") for f in files}
        dry = model.m.git("add", "-A", "--dry-run").stdout.splitlines()
        assert dry == ["add 'nested/clone/'"], dry  # (git: one gitlink)
        model._tick()
        tgm._avfs(model.avfs_home, "checkpoint", "save", "-m", "a nested clone", cwd=model.mp)
        kept = model.m.git("ls-tree", "-r", "HEAD", "--", "nested/clone").stdout.splitlines()
        assert len(kept) == len(files) and not any(ln.startswith("160000") for ln in kept)
        shutil.rmtree(os.path.join(model.mp, "nested"))
        tgm._avfs(model.avfs_home, "checkpoint", "restore", "HEAD", cwd=model.mp)
        assert sorted(model.m.git("-C", "nested/clone", "ls-files", "-z").stdout.split("\0")[:-1]) == files
    finally:
        model.teardown()
