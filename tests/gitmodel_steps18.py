"""The git model's steps of its eighteenth round (gitmodel18, tests/test_git_model18.py
runs them):

- ``undo_keeps_staging``: gitmodel17's seed 1702 made a step. Something staged that the
  files do not show (a change `git add`ed and written back, or `git rm --cached` of a
  file kept), a checkpoint of another file, `avfs undo`. Decided: the undo is the
  inverse of the checkpoint's `git commit --only` (`reset --soft HEAD~1`, then the
  checkpoint's paths unstaged: the model's ``undo``), so what git staged that the
  checkpoint never touched stays staged, as it was before the checkpoint; the model said
  `git reset --mixed HEAD~1`, which drops it (docs/fuse.md "gitmodel18").
- ``worktree_file_mode``: `git config --worktree core.fileMode false` (the mount's
  ``config.worktree``), an exec bit flipped alone or a new executable file, a
  checkpoint or none, the setting unset (before gitmodel18 avfs read the vault's config
  alone).
- ``split_bits_moved``: skip-worktree and assume-unchanged bits set before or after `git
  update-index --split-index`, then the fork's branch moved by another hand (the
  model's ``worktree_moves_fork``): the mount's index written whole keeps the bits
  (before gitmodel18 it read a split index's own entries alone).
- ``stash_staged``: `git stash push --staged` (git 2.35), an avfs checkpoint between or
  none, `git stash pop --index`.
- ``amend_then_undo``: a checkpoint, `git commit --amend` of it in the mount, then `avfs
  undo`, refused (the fork moved on since the checkpoint: nothing moves).
- ``stash_across_restore``: a tracked change and an untracked file stashed (`stash push
  -u`), `avfs checkpoint restore HEAD~1`, then `git stash pop` (undone alike where it
  conflicts).
- ``mv_dir_undone``: `git mv` of a directory, a checkpoint, `avfs undo`: the rename's
  paths alike on both sides (unstaged in gitmodel18; since gitmodel19 staged again, as
  git's `mv` had staged them as the checkpoint recorded them: the model's ``undo``).

A mixin of :class:`tests.test_git_model.GitModel`, as the earlier rounds' (its own class,
:class:`tests.test_git_model18.GitModel18`, draws them)."""

from __future__ import annotations

import json
import os
import stat
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

from .gitmodel_attrs import ModelAttrs

STAGED_STASH = "docs/stash-staged.md"
STASHED_NEW = "docs/stashed-untracked.md"


class EighteenthRoundSteps(ModelAttrs):
    """The steps; see the module's docstring."""

    # what else the model has (annotations only: the model's own are used)
    tracked: Any
    has_parent: Any
    write_all: Any
    checkpoint: Any
    undo: Any
    restore: Any
    on_both: Any
    clean: Any
    index_version: Any
    worktree_moves_fork: Any
    _tick: Any
    last_checkpoint: bool

    def _regular(self, path: str) -> bool:
        full = os.path.join(self.p.root, path)
        return path in set(self.tracked()) and os.path.isfile(full) and not os.path.islink(full)

    # -- seed 1702: what git staged outlives the undo of a checkpoint ------------------------
    @precondition(lambda self: self.busy() is None)
    @rule(how=st.sampled_from(["add-reverted", "rm-cached"]))
    def undo_keeps_staging(self, how: str) -> None:
        """The sixteenth round's ``index_version`` (at version 2: staged what the files do
        not show, then a checkpoint of a new file), then `avfs undo` of that checkpoint."""
        self.index_version("2", how)
        if self.last_checkpoint:
            self.undo()

    # -- core.fileMode in the worktree's own config ------------------------------------------
    @precondition(lambda self: self.busy() is None)
    @rule(how=st.sampled_from(["exec-alone", "new-exec"]), save=st.booleans())
    def worktree_file_mode(self, how: str, save: bool) -> None:
        """`git config --worktree core.fileMode false` (the plain clone's
        `extensions.worktreeConfig` turned on first: every mount's vault has it), an exec
        bit flipped alone (tox.ini) or a new executable file, `avfs checkpoint save` or
        nothing, then `git config --worktree --unset core.fileMode`."""
        self.p.git("config", "extensions.worktreeConfig", "true")
        self.both("config", "--worktree", "core.fileMode", "false")
        if how == "exec-alone" and self._regular("tox.ini"):
            full = os.path.join(self.p.root, "tox.ini")
            mode = 0o644 if os.stat(full).st_mode & stat.S_IXUSR else 0o755
            self.note(f"chmod {mode:o} tox.ini")
            self.on_both(lambda root: os.chmod(os.path.join(root, "tox.ini"), mode))
        elif how == "new-exec":
            self.write_all({"tools/worktree-tool.sh": "#!/bin/sh\necho under the worktree's setting\n"})
            self.note("chmod 755 tools/worktree-tool.sh")
            self.on_both(lambda root: os.chmod(os.path.join(root, "tools/worktree-tool.sh"), 0o755))
        if save:
            self.checkpoint(False)
        self.both("config", "--worktree", "--unset", "core.fileMode")

    # -- a split index's bits, the branch moved by another hand -------------------------------
    @precondition(lambda self: self.busy() is None)
    @rule(when=st.sampled_from(["before-split", "after-split"]))
    def split_bits_moved(self, when: str) -> None:
        """README.md marked skip-worktree and tox.ini assume-unchanged, before or after `git
        update-index --split-index`, then the model's ``worktree_moves_fork`` (a commit
        in a linked worktree put on the fork's branch; the mount follows, its index
        written whole), then the split undone (`--no-split-index`)."""
        if self.p.changes("refs/heads/f"):
            return
        marks = [(f, p) for f, p in (("--skip-worktree", "README.md"), ("--assume-unchanged", "tox.ini"))]
        marks = [(f, p) for f, p in marks if self._regular(p)]
        if when == "after-split":
            self.both("update-index", "--split-index")
        for flag, path in marks:
            self.both("update-index", flag, "--", path)
        if when == "before-split":
            self.both("update-index", "--split-index")
        self.worktree_moves_fork()
        self.both("update-index", "--no-split-index")

    # -- git stash push --staged --------------------------------------------------------------
    @precondition(lambda self: self.busy() is None)
    @rule(between=st.booleans())
    def stash_staged(self, between: bool) -> None:
        """A new file `git add`ed and README.md changed unstaged, `git stash push --staged`
        (only what was staged goes), an avfs checkpoint of what is left (``between``) or
        none, then `git stash pop --index`."""
        if STAGED_STASH in self.tracked() or not self._regular("README.md"):
            return
        self.write_all({STAGED_STASH: "staged, then stashed alone\n"})
        self.both("add", "--", STAGED_STASH)
        self.note("append a line to README.md")
        for side in (self.p, self.m):
            with open(os.path.join(side.root, "README.md"), "a") as fh:
                fh.write("unstaged beside a staged stash\n")
        if not self.both("stash", "push", "-q", "--staged", "-m", "staged only"):
            return
        if between:
            self.checkpoint(False)
        if not self.both("stash", "pop", "-q", "--index"):
            self.both("reset", "-q", "--hard")
            self.both("stash", "drop", "-q")
        self.last_checkpoint = False

    # -- git commit --amend of a checkpoint, then avfs undo -----------------------------------
    @precondition(lambda self: self.busy() is None and self.last_checkpoint)
    @rule()
    def amend_then_undo(self) -> None:
        """`git commit --amend -m ...` of the commit a checkpoint just made, then `avfs undo`:
        refused (`ref_moved`, the fork moved on since that checkpoint), nothing moves; the
        plain side does nothing."""
        from .test_git_model import _avfs  # (the model's module imports this one)

        self.both("commit", "-q", "--amend", "-m", "the checkpoint, amended by git")
        self.note("avfs undo (refused: git amended the checkpoint)")
        head = self.m.git("rev-parse", "HEAD").stdout.strip()
        res = _avfs(self.avfs_home, "--json", "undo", cwd=self.mp, check=False)
        doc = json.loads(res.stdout)
        assert res.returncode != 0 and doc["kind"] == "error", res.stdout + res.stderr
        assert doc["error"]["code"] == "ref_moved", res.stdout
        assert self.m.git("rev-parse", "HEAD").stdout.strip() == head
        self.last_checkpoint = False

    # -- git stash -u across avfs checkpoint restore -----------------------------------------
    @precondition(lambda self: self.busy() is None and self.has_parent())
    @rule()
    def stash_across_restore(self) -> None:
        """A line appended to README.md and an untracked file, `git stash push -u`, `avfs
        checkpoint restore HEAD~1` (the model's ``restore``), then `git stash pop`; where it
        conflicts, `reset --hard` and the stash dropped alike."""
        if not self._regular("README.md") or STASHED_NEW in self.tracked():
            return
        self.note("append a line to README.md")
        for side in (self.p, self.m):
            with open(os.path.join(side.root, "README.md"), "a") as fh:
                fh.write("stashed across a restore\n")
        self.write_all({STASHED_NEW: "untracked, stashed across a restore\n"})
        if not self.both("stash", "push", "-q", "-u", "-m", "across a restore"):
            return
        self.restore()
        if not self.both("stash", "pop", "-q"):
            self.both("reset", "-q", "--hard")
            self.both("clean", "-qfd", "--", os.path.dirname(STASHED_NEW))
            self.both("stash", "drop", "-q")
        self.last_checkpoint = False

    # -- git mv of a directory, checkpointed, undone ------------------------------------------
    @precondition(lambda self: self.busy() is None)
    @rule()
    def mv_dir_undone(self) -> None:
        """`git mv -k changelog.d moved-changelog.d` (or docs), `avfs checkpoint save`,
        `avfs undo`: the rename's paths alike (staged as `git mv` left them, gitmodel19)."""
        tracked = self.tracked()
        src = next((d for d in ("changelog.d", "docs") if any(t.startswith(d + "/") for t in tracked)), None)
        if src is None:
            return
        if not self.both("mv", "-k", src, "moved-" + src):
            return
        self.checkpoint(False)
        if self.last_checkpoint:
            self.undo()
