"""The git model's twenty-first round (gitmodel21): what gitmodel20 left, each a fixed
sequence checked against what git shows in a plain worktree, and the steps of
tests/gitmodel_steps21.py on a mount and a plain clone, checked after every step as
tests/test_git_model.py checks (each once, and a short seeded random run of them).

- `git add`, then `avfs checkpoint save` of the fork while it is not mounted, then `avfs
  mount` and `avfs undo`: staged again, as git's `reset --soft HEAD~1` leaves it (a
  checkpoint made unmounted noted nothing: ` M a.txt`).
- `git add`, `avfs checkpoint save`, `avfs unmount`, `avfs undo` (the fork not mounted),
  `avfs mount`: staged again (the note was not used where the branch moved unmounted).
- Another hand's commit that changes files the mount shows as HEAD has them, under
  uncheckpointed changes: adopted, those files follow it, as `git merge --ff-only` carries
  local changes in a plain worktree (it stayed stale until the next checkpoint).
- `MM` (staged, changed again), then another hand's commit of the file as it shows: `MM`
  still, as in a plain worktree, whose index git never moves for another hand's commit
  (avfs made the entry the commit's).

Scale the random run by hand: ``AVFS_MODEL21_EXAMPLES=3 AVFS_MODEL21_STEPS=30
AVFS_MODEL21_SEED=2102 pytest tests/test_git_model21.py -k random``."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from . import test_git_model as tgm
from .gitmodel_steps20 import other_hand_onto
from .gitmodel_steps21 import TwentyFirstRoundSteps
from .gitmount import _git, _require, mount_fork

EXAMPLES = int(os.environ.get("AVFS_MODEL21_EXAMPLES", "1"))
STEPS = int(os.environ.get("AVFS_MODEL21_STEPS", "8"))
SEED = int(os.environ.get("AVFS_MODEL21_SEED", "2101"))
# the rules the random run draws: this round's, and the older ones they meet most (and
# those gitmodel20's ``then`` calls: a masked rule refuses to run)
RULES = [
    "unmounted_then",
    "other_hand_unshown_then",
    "other_hand_mm_then",
    "squash_then",
    "rm_cached_then",
    "mv_dir_then",
    "skip_worktree_then",
    "reset_soft_then",
    "amend_then",
    "rebase_edit_then",
    "write",
    "add",
    "commit",
    "checkpoint",
    "undo",
    "restore",
    "remount_anywhere",
    "refused_while_busy",
]


class GitModel21(TwentyFirstRoundSteps, tgm.GitModel):
    """The model with this round's steps (and gitmodel20's, whose ``then`` they use)."""


def _inout(mp: Path, backend: str, what: str, *args: str) -> None:
    """`avfs --vault v:f WHAT` run from outside the mount (the mount and the unmount too)."""
    from .conftest import run_in_process
    from .gitmount import warm_daemons

    argv = ["--vault", "v:f", what, *args]
    if what == "mount":
        argv += ["--backend", backend, str(mp)]
    elif what == "unmount":
        argv.append(str(mp))
    with warm_daemons():
        res = run_in_process(argv)
    assert res.code == 0, res.err


def _stage(mp: Path, how: str) -> str:
    """What git stages (``how``), and d/c.txt changed unstaged; git's status then."""
    if how == "changed":
        (mp / "a.txt").write_text("staged\n")
        _git(mp, "add", "a.txt")
    elif how == "added":
        (mp / "new.txt").write_text("new\n")
        _git(mp, "add", "new.txt")
    else:
        _git(mp, "rm", "-q", "a.txt")
    (mp / "d" / "c.txt").write_text("not staged\n")
    return _git(mp, "status", "--porcelain").stdout


@pytest.mark.parametrize("backend", ["overlay", "fuse"])
@pytest.mark.parametrize("how", ["changed", "added", "removed"])
def test_what_git_staged_stays_staged_after_an_unmounted_checkpoint_and_its_undo(
    backend: str, how: str, cli_proc: Any, tmp_path: Path
) -> None:
    """`git add` (a new file `git add`ed, a file `git rm`ed), `avfs unmount`, `avfs
    checkpoint save` of the fork not mounted, `avfs mount`: git's status clean (the
    checkpoint is `git commit --only` of what the files differ from HEAD in); `avfs undo`:
    git's status what it was, staged, as `git reset --soft HEAD~1` leaves it."""
    from .conftest import run_in_process

    _require(backend)
    with mount_fork(cli_proc, tmp_path, backend, in_process=True) as (mp, avfs):
        before = _stage(mp, how)
        _inout(mp, backend, "unmount")
        assert run_in_process(["--vault", "v:f", "checkpoint", "save", "-m", "unmounted"]).code == 0
        _inout(mp, backend, "mount")
        assert _git(mp, "status", "--porcelain").stdout == ""
        assert avfs("undo").code == 0
        assert _git(mp, "status", "--porcelain").stdout == before


@pytest.mark.parametrize("backend", ["overlay", "fuse"])
@pytest.mark.parametrize("how", ["changed", "removed"])
def test_an_undo_made_unmounted_keeps_what_git_staged(
    backend: str, how: str, cli_proc: Any, tmp_path: Path
) -> None:
    """`git add`, `avfs checkpoint save` (mounted), `avfs unmount`, `avfs undo` of the fork
    not mounted, `avfs mount`: git's status what it was before the checkpoint, staged (the
    note of what git had staged was kept only where the branch had not moved)."""
    _require(backend)
    with mount_fork(cli_proc, tmp_path, backend, in_process=True) as (mp, avfs):
        before = _stage(mp, how)
        assert avfs("checkpoint", "save", "-m", "mounted").code == 0
        _inout(mp, backend, "unmount")
        _inout(mp, backend, "undo")
        _inout(mp, backend, "mount")
        assert _git(mp, "status", "--porcelain").stdout == before


def _other_hand(vault: Path, index: Path, files: dict[str, str | None]) -> tuple[str, str]:
    """A commit of ``files`` (None: removed) onto fork f's branch by another hand
    (:func:`.gitmodel_steps20.other_hand_onto`); (old, new)."""
    entries = {p: None if t is None else ("100644", t) for p, t in files.items()}
    return other_hand_onto(vault, index, entries)


def _plain(vault: Path, where: Path) -> Path:
    """A plain clone of fork f (branch f checked out) at ``where``."""
    subprocess.run(["git", "clone", "-q", "-b", "f", str(vault), str(where)], check=True, capture_output=True)
    return where


@pytest.mark.parametrize("backend", ["overlay", "fuse"])
@pytest.mark.parametrize("how", ["changed", "added", "removed"])
def test_another_hand_s_commit_of_files_the_mount_does_not_show_is_adopted(
    backend: str, how: str, cli_proc: Any, tmp_path: Path
) -> None:
    """In the mount new.txt `git add`ed and d/c.txt written; another hand commits a change
    to a.txt (a new file e/theirs.txt, a.txt removed), which the mount shows as HEAD has
    it. `avfs status` adopts it (not stale), the mount shows the commit's a.txt, and git's
    status and files are a plain clone's with the same changes after `git fetch` and `git
    merge --ff-only` (git carries local changes over a fast-forward): `A  new.txt`, ` M
    d/c.txt`. Before, the base stayed (stale) and git showed the commit's change as a
    staged reversion, `M  a.txt`, until the next checkpoint rebased onto it. A checkpoint
    then and its undo keep what git staged."""
    _require(backend)
    with mount_fork(cli_proc, tmp_path, backend, in_process=True) as (mp, avfs):
        vault = Path(os.environ["AVFS_HOME"]) / "vaults" / "v.git"
        plain = _plain(vault, tmp_path / "plain")
        for side in (mp, plain):
            (side / "new.txt").write_text("new\n")
            _git(side, "add", "new.txt")
            (side / "d" / "c.txt").write_text("mine\n")
        assert (mp / "a.txt").read_text() == "one\n"  # (the kernel holds the old base's a.txt)
        files: dict[str, str | None] = {
            "changed": {"a.txt": "theirs\n"},
            "added": {"e/theirs.txt": "theirs\n"},
            "removed": {"a.txt": None},
        }[how]
        _, new = _other_hand(vault, tmp_path / "other-index", files)
        res = avfs("--json", "status")
        assert res.code == 0 and res.json()["base"] == new and not res.json()["stale"], res.out
        _git(plain, "fetch", "-q", "origin", "f")
        _git(plain, "merge", "-q", "--ff-only", new)
        want = _git(plain, "status", "--porcelain").stdout
        assert want == " M d/c.txt\nA  new.txt\n"
        assert _git(mp, "status", "--porcelain").stdout == want
        for path in ("a.txt", "e/theirs.txt", "new.txt", "d/c.txt"):
            there = (plain / path).read_text() if (plain / path).exists() else None
            assert ((mp / path).read_text() if (mp / path).exists() else None) == there, path
        assert avfs("checkpoint", "save", "-m", "after another hand").code == 0
        assert _git(mp, "status", "--porcelain").stdout == ""
        assert avfs("undo").code == 0
        assert _git(mp, "status", "--porcelain").stdout == want


@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_another_hand_s_commits_of_one_file_adopted_one_after_another(
    backend: str, cli_proc: Any, tmp_path: Path
) -> None:
    """d/c.txt written in the mount; another hand's commit of a.txt, `avfs status`, then
    another of a.txt again: each adopted, a.txt the last commit's (on the overlay backend
    the first one's a.txt is a copy in the upper layer, which the person did not change:
    the random run, seed 2103, found the second left stale)."""
    _require(backend)
    with mount_fork(cli_proc, tmp_path, backend, in_process=True) as (mp, avfs):
        vault = Path(os.environ["AVFS_HOME"]) / "vaults" / "v.git"
        (mp / "d" / "c.txt").write_text("mine\n")
        for n in (1, 2):
            _, new = _other_hand(vault, tmp_path / "other-index", {"a.txt": f"theirs {n}\n"})
            doc = avfs("--json", "status").json()
            assert doc["base"] == new and not doc["stale"], doc
            assert doc["changes"] == [{"path": "d/c.txt", "status": "modified"}], doc
            assert (mp / "a.txt").read_text() == f"theirs {n}\n"
            assert _git(mp, "status", "--porcelain").stdout == " M d/c.txt\n"


@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_git_s_mm_stays_after_another_hand_s_commit(backend: str, cli_proc: Any, tmp_path: Path) -> None:
    """a.txt `git add`ed, then changed again (`MM a.txt`); another hand commits a.txt as
    the file shows it. `avfs status` adopts it (the commit records what the mount shows);
    git's status is a plain worktree's after `git update-ref HEAD NEW`: `MM a.txt` (git
    never moves its index for another hand's commit; avfs made the entry the commit's
    before, where git had staged something else: clean). A file git had not staged
    follows the commit, as gitmodel20 decided (c.txt here), and a checkpoint changes
    nothing git staged: `MM` still."""
    _require(backend)
    with mount_fork(cli_proc, tmp_path, backend, in_process=True) as (mp, avfs):
        vault = Path(os.environ["AVFS_HOME"]) / "vaults" / "v.git"
        plain = _plain(vault, tmp_path / "plain")
        for side in (mp, plain):
            (side / "a.txt").write_text("staged\n")
            _git(side, "add", "a.txt")
            (side / "a.txt").write_text("changed again\n")
            (side / "d" / "c.txt").write_text("written\n")
        assert _git(mp, "status", "--porcelain").stdout == "MM a.txt\n M d/c.txt\n"
        old, new = _other_hand(
            vault, tmp_path / "other-index", {"a.txt": "changed again\n", "d/c.txt": "written\n"}
        )
        res = avfs("--json", "status")
        assert res.code == 0 and res.json()["base"] == new and not res.json()["stale"], res.out
        _git(plain, "fetch", "-q", "origin", "f")
        _git(plain, "update-ref", "HEAD", new, old)
        _git(plain, "reset", "-q", new, "--", "d/c.txt")  # (git had staged nothing there)
        want = _git(plain, "status", "--porcelain").stdout
        assert want == "MM a.txt\n"
        assert _git(mp, "status", "--porcelain").stdout == want
        assert avfs("checkpoint", "save", "-m", "nothing to record").code == 0
        assert _git(mp, "status", "--porcelain").stdout == want


# -- the new steps on the model ------------------------------------------------------------


def _each_step_once(backend: str) -> None:
    tgm.BACKEND = backend
    model = GitModel21()
    steps: list[Any] = [
        lambda: model.unmounted_then("checkpoint", "undo"),
        lambda: model.unmounted_then("undo", "checkpoint"),
        lambda: model.other_hand_unshown_then("remount"),
        lambda: model.other_hand_mm_then("checkpoint"),
        lambda: model.squash_then("exec"),
        lambda: model.rm_cached_then("undo"),
        lambda: model.mv_dir_then("restore"),
        lambda: model.skip_worktree_then("skip-worktree", "checkpoint"),
        lambda: model.reset_soft_then("remount"),
        lambda: model.amend_then("undo"),
        lambda: model.rebase_edit_then("checkpoint"),
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
    tgm.run_masked(GitModel21, RULES, backend, seed_=SEED, steps=STEPS, examples=EXAMPLES)


@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_another_hand_s_commit_on_git_s_commit_not_followed_yet_writes_nothing(
    backend: str, cli_proc: Any, tmp_path: Path
) -> None:
    """`git commit -a` in the mount, d/c.txt written again, then (no avfs command between)
    another hand's commit of a new file e/theirs.txt on top: avfs's base is still the
    commit before git's, whose change of d/c.txt the mount no longer shows, so nothing is
    adopted (stale, as before gitmodel21) and nothing is written: the random run found e/theirs.txt written through the overlay mount for an
    adoption that then failed, listed as the person's new file."""
    _require(backend)
    with mount_fork(cli_proc, tmp_path, backend, in_process=True) as (mp, avfs):
        vault = Path(os.environ["AVFS_HOME"]) / "vaults" / "v.git"
        (mp / "d" / "c.txt").write_text("mine\n")
        _git(mp, "commit", "-q", "-a", "-m", "git's own")
        (mp / "d" / "c.txt").write_text("mine again\n")
        _, new = _other_hand(vault, tmp_path / "other-index", {"e/theirs.txt": "theirs\n"})
        doc = avfs("--json", "status").json()
        assert doc["stale"] and doc["head"] == new, doc
        assert doc["changes"] == [{"path": "d/c.txt", "status": "modified"}], doc
        assert not (mp / "e").exists()
        assert _git(mp, "status", "--porcelain").stdout == " M d/c.txt\nD  e/theirs.txt\n"
        # (the checkpoint's three-way merge from that base meets git's own d/c.txt: a
        # conflict, exit 3, nothing changed, as before)
        assert avfs("checkpoint", "save", "-m", "rebased").code == 3
        assert (mp / "d" / "c.txt").read_text() == "mine again\n" and not (mp / "e").exists()
