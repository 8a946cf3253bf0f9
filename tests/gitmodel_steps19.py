"""The git model's steps of its nineteenth round (gitmodel19, tests/test_git_model19.py
runs them): avfs's own operations in the middle of git's, where the earlier rounds ran
them one after the other.

- ``crlf_commit``: `* text=auto eol=crlf` written and recorded by git's own `git add -A`
  and `git commit` in the mount (then, ``drop``, taken out by `git rm` and `git commit`):
  the files the commits leave alone keep their bytes, on both backends (the older
  ``crlf_attributes`` step writes them on the overlay backend only: pure FUSE showed
  every such file in its CRLF form at once, gitmodel10, fixed in gitmodel19).
- ``stash_across_checkpoint``: a tracked change (and, ``untracked``, a new file) stashed
  (`git stash push [-u]`), another change checkpointed (`avfs checkpoint save`), then
  `git stash pop` (undone alike where it conflicts).
- ``rebase_undo_between``: a checkpoint, then `git rebase -i` stopped at an `edit` (git's
  sequencer open in the mount), `avfs undo` of the checkpoint (refused: git has a rebase
  open, nothing moves), then the rebase continued or given up, then `avfs undo` again
  (refused where the rebase moved the branch, as after `--amend`; else the undo).
- ``reset_then_restore``: `git reset --hard HEAD~2` in the mount, then `avfs checkpoint
  restore` of the commit git left (`ORIG_HEAD`): the fork as that commit, as `git reset
  --hard ORIG_HEAD` and a fresh checkout on the plain side.

Already steps of earlier rounds (not added again): `git worktree add` inside the mount
(``worktree_inside``), `git sparse-checkout` (``sparse_checkout``), `git bisect run`
(``bisect``), `git submodule add` of a local repository (``submodule_checkpoint``,
``submodule_add_checkpoint``, ``submodule_bare``), `git commit --amend` of a checkpoint's
commit (``amend_checkpoint``, ``amend_then_undo``), `stash push -u` across a restore
(``stash_across_restore``).

A mixin of :class:`tests.test_git_model.GitModel`, as the earlier rounds' (its own class,
:class:`tests.test_git_model19.GitModel19`, draws them). Each step's non-git actions are
noted in a line."""

from __future__ import annotations

import json
import os
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

from .gitmodel_attrs import ModelAttrs

STASH_NEW = "docs/stashed-over-a-checkpoint.md"
CHECKPOINTED = "docs/checkpointed-under-a-stash.md"
CRLF_ATTRS = "* text=auto eol=crlf\n"
# `git rebase -i`'s todo list made to stop at its first commit (`edit`)
EDIT_FIRST = "sed -i -e '1s/^pick/edit/'"


class NineteenthRoundSteps(ModelAttrs):
    """The steps; see the module's docstring."""

    # what else the model has (annotations only: the model's own are used)
    tracked: Any
    has: Any
    write_all: Any
    checkpoint: Any
    undo: Any
    clean: Any
    _tick: Any
    clock: int

    def _avfs_json(self, *args: str) -> tuple[int, dict[str, Any]]:
        from .test_git_model import _avfs

        res = _avfs(self.avfs_home, "--json", *args, cwd=self.mp, check=False)
        return res.returncode, json.loads(res.stdout)

    # -- git's own commit of attributes that convert on checkout -----------------------------
    @precondition(lambda self: self.busy() is None)
    @rule(drop=st.booleans())
    def crlf_commit(self, drop: bool) -> None:
        """`.gitattributes` of `* text=auto eol=crlf`, `git add -A`, `git commit` (and,
        ``drop``, `git rm .gitattributes` and `git commit`), on both backends."""
        if ".gitattributes" in self.tracked():
            return
        self.write_all({".gitattributes": CRLF_ATTRS})
        self.both("add", "-A")
        self.both("commit", "-q", "-m", "line endings by git")
        if drop:
            self.both("rm", "-q", ".gitattributes")
            self.both("commit", "-q", "-m", "line endings dropped by git")
        self.last_checkpoint = False

    # -- a stash across a checkpoint -----------------------------------------------------------
    @precondition(lambda self: self.busy() is None)
    @rule(untracked=st.booleans())
    def stash_across_checkpoint(self, untracked: bool) -> None:
        """README.md appended to (and ``untracked``: a new file), `git stash push [-u]`,
        another file written and `avfs checkpoint save`, `git stash pop`; where the pop
        conflicts, `reset --hard` and the stash dropped alike."""
        tracked = self.tracked()
        if "README.md" not in tracked or STASH_NEW in tracked or CHECKPOINTED in tracked:
            return
        self.note("append a line to README.md")
        for side in (self.p, self.m):
            with open(os.path.join(side.root, "README.md"), "a") as fh:
                fh.write("stashed across a checkpoint\n")
        if untracked:
            self.write_all({STASH_NEW: "untracked, stashed across a checkpoint\n"})
        if not self.both("stash", "push", "-q", *(["-u"] if untracked else []), "-m", "across a checkpoint"):
            return
        self.write_all({CHECKPOINTED: "checkpointed while a stash waits\n"})
        self.checkpoint(False)
        if not self.both("stash", "pop", "-q"):
            self.both("reset", "-q", "--hard")
            self.both("clean", "-qfd", "--", os.path.dirname(STASH_NEW))
            self.both("stash", "drop", "-q")
        self.last_checkpoint = False

    # -- avfs undo while git's rebase is open --------------------------------------------------
    @precondition(lambda self: self.busy() is None)
    @rule(then=st.sampled_from(["continue", "abort"]))
    def rebase_undo_between(self, then: str) -> None:
        """A file written and checkpointed, `git rebase -i HEAD~2` stopped at an `edit`,
        `avfs undo` (refused: `git_in_progress`, nothing moves), the rebase continued or
        given up, `avfs undo` again: after `--abort` the undo of the checkpoint (the branch
        is where the checkpoint left it), after `--continue` refused where the rebase
        rewrote the checkpoint's commit (`ref_moved`, as after `--amend`)."""
        if not self.clean():
            self.both("commit", "-q", "-a", "-m", "before a rebase")  # (the random run's writes)
        self.write_all({"docs/before-a-rebase.md": f"checkpointed before a rebase {self.clock}\n"})
        self.checkpoint(False)
        if not self.last_checkpoint or not self.has("HEAD~2"):
            return
        editor = f"sequence.editor={EDIT_FIRST}"
        self.both("-c", editor, "rebase", "-q", "-i", "HEAD~2")
        assert self.busy() == "rebase", self.busy()
        head = self.m.git("rev-parse", "refs/heads/f").stdout
        self.note("avfs undo (refused: a rebase is open)")
        code, doc = self._avfs_json("undo")
        assert code != 0 and doc["kind"] == "error", doc
        assert doc["error"]["code"] == "git_in_progress", doc
        assert self.m.git("rev-parse", "refs/heads/f").stdout == head  # (nothing moved)
        self.both("rebase", f"--{then}")
        moved = self.m.git("rev-parse", "refs/heads/f").stdout != head
        if moved:
            self.note("avfs undo (refused: the rebase moved the branch)")
            code, doc = self._avfs_json("undo")
            assert code != 0 and doc["kind"] == "error", doc
            assert doc["error"]["code"] == "ref_moved", doc
            self.last_checkpoint = False
        else:
            self.undo()

    # -- git's reset to an older commit, then avfs's restore of the one git left ---------------
    @precondition(lambda self: self.busy() is None)
    @rule()
    def reset_then_restore(self) -> None:
        """`git reset --hard HEAD~2`, then `avfs checkpoint restore ORIG_HEAD's commit`: the
        plain side `git reset --hard` to it, `git clean -fd` (ignored paths kept) and every
        tracked file written again (the model's ``restore``, to that commit)."""
        rows = [ln for ln in self.p.git("ls-files", "-v", "-z").stdout.split("\0") if ln]
        if any(ln[0] != "H" for ln in rows):
            return  # (entries marked by the older rounds' steps: the model's own restore's)
        if not self.clean():
            self.both("commit", "-q", "-a", "-m", "before a reset")  # (the random run's writes)
        if not self.clean() or not self.has("HEAD~2"):
            return
        tip = self.p.git("rev-parse", "HEAD").stdout.strip()
        if not self.both("reset", "-q", "--hard", "HEAD~2"):
            return
        self.note(f"avfs checkpoint restore {tip[:12]} (git's ORIG_HEAD)")
        ignored = self.p.git("ls-files", "-z", "-o", "-i", "--exclude-standard", "--directory")
        keep = [a for q in ignored.stdout.split("\0") if q for a in ("-e", "/" + q)]
        code, doc = self._avfs_json("checkpoint", "restore", tip)
        assert code == 0, doc
        self.p.git("reset", "-q", "--hard", tip)
        self.p.git("clean", "-qfd", *keep)
        self.p.git("rm", "-r", "-q", "--cached", "--", ".")
        self.p.git("reset", "-q", "--hard")
        self.last_checkpoint = False
