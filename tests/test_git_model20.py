"""The git model's twentieth round (gitmodel20): what last round left, each a fixed
sequence beside a plain clone, and the steps of tests/gitmodel_steps20.py on a mount and a
plain clone, checked after every step as tests/test_git_model.py checks (each once, and a
seeded random run of them among the steps they meet most).

- A change `git add`ed, then `avfs checkpoint save`, `avfs unmount` and `avfs mount`,
  then `avfs undo`: staged again, as git's `reset --soft HEAD~1` leaves it (the undo's
  note of what git had staged went with the mount: gitmodel19's note).
- Another hand's commit of what the mount shows (`git --git-dir=VAULT`, or a linked
  worktree's commit outside the mount) adopted by avfs while the mount has uncheckpointed changes: what git had staged
  elsewhere stays staged (the index was written whole for the commit: lost).

Scale the random run by hand: ``AVFS_MODEL20_EXAMPLES=3 AVFS_MODEL20_STEPS=30
AVFS_MODEL20_SEED=2002 pytest tests/test_git_model20.py -k random``."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from . import test_git_model as tgm
from .gitmodel_steps20 import TwentiethRoundSteps
from .gitmount import _git, _require, mount_fork

EXAMPLES = int(os.environ.get("AVFS_MODEL20_EXAMPLES", "1"))
STEPS = int(os.environ.get("AVFS_MODEL20_STEPS", "12"))
SEED = int(os.environ.get("AVFS_MODEL20_SEED", "2001"))
# the rules the random run draws: this round's, and the older ones they meet most
RULES = [
    "stash_staged_untracked",
    "notes_then",
    "bisect_by_hand",
    "cherry_pick_n_conflict",
    "revert_conflict",
    "patch_then",
    "sparse_then",
    "clean_fdx_then",
    "reset_older_then",
    "worktree_then",
    "other_hand_then",
    "write",
    "add",
    "commit",
    "checkpoint",
    "undo",
    "restore",
    "remount_anywhere",
    "refused_while_busy",
]


class GitModel20(TwentiethRoundSteps, tgm.GitModel):
    """The model with this round's steps."""


@pytest.mark.parametrize("backend", ["overlay", "fuse"])
@pytest.mark.parametrize("how", ["changed", "added", "removed"])
def test_what_git_staged_as_the_checkpoint_recorded_it_stays_staged_after_a_remount_and_its_undo(
    backend: str, how: str, cli_proc: Any, tmp_path: Path
) -> None:
    """A change `git add`ed (a new file `git add`ed, a file `git rm`ed), `avfs checkpoint
    save`, `avfs unmount` and `avfs mount`, then `avfs undo`: git's status is what it was
    before the checkpoint, staged, as git's `reset --soft HEAD~1` leaves it in a plain
    worktree whatever happened between."""
    from .conftest import run_in_process

    _require(backend)
    with mount_fork(cli_proc, tmp_path, backend, in_process=True) as (mp, avfs):
        if how == "changed":
            (mp / "a.txt").write_text("staged\n")
            _git(mp, "add", "a.txt")
        elif how == "added":
            (mp / "new.txt").write_text("new\n")
            _git(mp, "add", "new.txt")
        else:
            _git(mp, "rm", "-q", "a.txt")
        (mp / "d" / "c.txt").write_text("not staged\n")
        before = _git(mp, "status", "--porcelain").stdout
        assert avfs("checkpoint", "save", "-m", "what git staged, and more").code == 0
        assert _git(mp, "status", "--porcelain").stdout == ""
        assert run_in_process(["--vault", "v:f", "unmount", str(mp)]).code == 0
        assert run_in_process(["--vault", "v:f", "mount", "--backend", backend, str(mp)]).code == 0
        assert _git(mp, "status", "--porcelain").stdout == ""
        assert avfs("undo").code == 0
        assert _git(mp, "status", "--porcelain").stdout == before


@pytest.mark.parametrize("backend", ["overlay", "fuse"])
@pytest.mark.parametrize("how", ["git-dir", "worktree", "daemon-first"])
def test_another_hand_s_commit_adopted_under_changes_keeps_what_git_staged(
    backend: str, how: str, cli_proc: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In the mount a.txt written, new.txt `git add`ed, d/c.txt written; another hand
    commits a.txt as the mount shows it onto the fork's branch (`git --git-dir=VAULT`
    with an index of its own, or a commit in a linked worktree of the vault outside the
    mount and `git update-ref`; a clone's `git push` git refuses, the branch checked out
    in the mount's worktree, as in any repository); `avfs status` adopts it (the
    commit records only what the mount shows). git's status is a plain worktree's after
    `git update-ref HEAD` and `git reset -q NEW -- a.txt`: `A  new.txt` (still staged),
    ` M d/c.txt`. Before, the index was written whole for the commit: `?? new.txt` (both
    backends). A checkpoint then and its undo keep it staged.

    ``daemon-first``: the adopting process waits 1.5 s between the move and the index's
    patch (``Workspace.stamp_index``, where wsbase calls it), so a pure-FUSE daemon's
    refresh of the index on seeing the base move comes first: unless the move and the
    patch hold the index guard together, it wrote the index whole (`?? new.txt`; the
    model's each-once run on pure FUSE at load ~35 met it)."""
    from avfs_git.core.workspace.workspace import Workspace

    _require(backend)
    delayed: list[bool] = []
    if how == "daemon-first":
        stamp = Workspace.stamp_index

        def slow_stamp(self: Workspace[Any], *, held: bool = False) -> None:
            delayed.append(held)
            time.sleep(1.5)
            stamp(self, held=held)

        monkeypatch.setattr(Workspace, "stamp_index", slow_stamp)
    with mount_fork(cli_proc, tmp_path, backend, in_process=True) as (mp, avfs):
        vault = Path(os.environ["AVFS_HOME"]) / "vaults" / "v.git"
        (mp / "a.txt").write_text("by the mount\n")
        (mp / "new.txt").write_text("staged new\n")
        _git(mp, "add", "new.txt")
        (mp / "d" / "c.txt").write_text("not staged\n")
        old = _git(vault, "rev-parse", "refs/heads/f").stdout.strip()
        if how != "worktree":
            env = {**os.environ, "GIT_INDEX_FILE": str(tmp_path / "other-index")}

            def g(*args: str, stdin: str | None = None) -> str:
                return subprocess.run(
                    ["git", "--git-dir", str(vault), *args],
                    env=env,
                    input=stdin,
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout.strip()

            g("read-tree", old)
            blob = g("hash-object", "-w", "--stdin", stdin="by the mount\n")
            g("update-index", "--cacheinfo", f"100644,{blob},a.txt")
            new = g("commit-tree", g("write-tree"), "-p", old, "-m", "another hand")
            g("update-ref", "refs/heads/f", new, old)
        else:  # (a clone's `git push` is refused by git: the branch is checked out in the mount)
            other = tmp_path / "other-wt"
            _git(mp, "worktree", "add", "-q", "--detach", str(other), "refs/heads/f")
            (other / "a.txt").write_text("by the mount\n")
            _git(other, "commit", "-q", "-a", "-m", "another hand")
            new = _git(other, "rev-parse", "HEAD").stdout.strip()
            _git(other, "update-ref", "refs/heads/f", new, old)
            _git(mp, "worktree", "remove", "--force", str(other))
        res = avfs("--json", "status")
        assert res.code == 0 and res.json()["base"] == new, res.out
        assert delayed == ([False] if how == "daemon-first" else []), delayed  # (the adoption's stamp ran)
        assert _git(mp, "rev-parse", "HEAD").stdout.strip() == new
        assert _git(mp, "status", "--porcelain").stdout == " M d/c.txt\nA  new.txt\n"
        assert avfs("checkpoint", "save", "-m", "after another hand").code == 0
        assert _git(mp, "status", "--porcelain").stdout == ""
        assert avfs("undo").code == 0
        assert _git(mp, "status", "--porcelain").stdout == " M d/c.txt\nA  new.txt\n"


# -- the new steps on the model ------------------------------------------------------------


def _each_step_once(backend: str) -> None:
    tgm.BACKEND = backend
    model = GitModel20()
    steps: list[Any] = [
        lambda: model.stash_staged_untracked(False, "checkpoint"),
        lambda: model.stash_staged_untracked(True, "remount"),
        lambda: model.both("commit", "-q", "-a", "-m", "what the stashes brought back"),
        lambda: model.both("add", "-A"),
        lambda: model.both("commit", "-q", "-m", "and the untracked file"),
        lambda: model.notes_then("undo"),
        lambda: model.notes_then("exec"),
        lambda: model.bisect_by_hand(True, "checkpoint"),
        lambda: model.bisect_by_hand(False, "remount"),
        lambda: model.cherry_pick_n_conflict("exec"),
        lambda: model.cherry_pick_n_conflict("remount"),
        lambda: model.revert_conflict("abort", "remount"),
        lambda: model.revert_conflict("continue", "checkpoint"),
        lambda: model.patch_then("am", "undo"),
        lambda: model.patch_then("apply-index", "checkpoint"),
        lambda: model.sparse_then("exec"),
        lambda: model.sparse_then("remount"),
        lambda: model.clean_fdx_then("restore"),
        lambda: model.clean_fdx_then("checkpoint"),
        lambda: model.reset_older_then("undo"),
        lambda: model.reset_older_then("restore"),
        lambda: model.reset_older_then("remount"),
        lambda: model.worktree_then("checkpoint"),
        lambda: model.worktree_then("remount"),
        lambda: model.other_hand_then("undo"),
        lambda: model.both("commit", "-q", "-m", "what was staged beside"),
        lambda: model.both("rm", "-q", "--", "docs/by-another-hand.md"),
        lambda: model.both("commit", "-q", "-m", "taken out"),
        lambda: model.other_hand_then("remount"),
    ]
    tgm.each_once(model, steps)


@pytest.mark.timeout(1200)
@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_each_new_step_once_agrees_with_plain_git(backend: str) -> None:
    _require(backend)
    _each_step_once(backend)


@pytest.mark.timeout(900)
@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_random_runs_of_the_new_steps_agree_with_plain_git(backend: str) -> None:
    _require(backend)
    tgm.run_seeded(GitModel20, RULES, backend, seed_=SEED, steps=STEPS, examples=EXAMPLES)


@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_a_linked_worktree_inside_is_kept_as_files_as_a_clone_inside_is(
    backend: str, cli_proc: Any, tmp_path: Path
) -> None:
    """`git worktree add -b wt1 inner-wt` inside the mount, a file written there, `avfs
    checkpoint save` while it is there: the checkpoint records its files (`inner-wt/...`,
    no gitlink; git's `add -A` would record a gitlink to wt1's commit, as for a clone
    inside: decided in gitmodel17) and git's status in the mount is clean; the worktree
    still works (a commit there moves wt1), `avfs undo` leaves it untracked again and `git
    worktree remove` leaves nothing."""
    _require(backend)
    with mount_fork(cli_proc, tmp_path, backend, in_process=True) as (mp, avfs):
        _git(mp, "worktree", "add", "-q", "-b", "wt1", "inner-wt")
        (mp / "inner-wt" / "INNER.txt").write_text("made inside\n")
        assert _git(mp, "status", "--porcelain").stdout == "?? inner-wt/\n"
        assert avfs("checkpoint", "save", "-m", "a worktree inside").code == 0
        tree = _git(mp, "ls-tree", "-r", "HEAD").stdout
        assert "160000" not in tree and "\tinner-wt/INNER.txt\n" in tree, tree
        assert _git(mp, "status", "--porcelain").stdout == ""
        _git(mp / "inner-wt", "add", "-A")
        _git(mp / "inner-wt", "commit", "-q", "-m", "inside")
        assert _git(mp, "log", "-1", "--format=%s", "wt1").stdout == "inside\n"
        assert avfs("undo").code == 0
        assert _git(mp, "status", "--porcelain").stdout == "?? inner-wt/\n"
        _git(mp, "worktree", "remove", "--force", "inner-wt")
        assert _git(mp, "status", "--porcelain").stdout == ""
        assert not (mp / "inner-wt").exists()
