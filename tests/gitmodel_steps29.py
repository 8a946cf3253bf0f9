"""The git model's steps of its twenty-ninth round (gitmodel29, tests/test_git_model29.py
runs them), each on the mount and a plain clone, checked after every step:

- ``staged_remount_then(other, then)``: what git stages in every form (a version the file
  no longer shows, a removal by `git rm --cached`, a new file `git add`ed then changed,
  an intent-to-add), then the fork unmounted and mounted again (``other``: on the other
  backend, overlay <-> pure FUSE), then ``then``: the person's plain `git commit` (no
  `-a`), a checkpoint, a run that writes (the exec's record), or `commit --amend`; then
  back on the model's own backend. A plain worktree keeps its index through all of it.
- ``command_then(what, then)``: git's commands named by the round's brief, each followed
  by one of avfs's own (gitmodel22's ``then22``), then a checkpoint and a remount:
  ``cherry-pick-n`` (`cherry-pick -n side`, the pick left staged), ``reset-merge`` /
  ``reset-keep`` (`reset --merge|--keep HEAD~1` with a local change), ``switch-orphan``
  (refused in the mount by its guard, as the model's `switched_back`), ``clean-ignored``
  (`clean -fdx` over ignored files and an untracked directory), ``am-series`` (`am` of a
  two-commit `format-patch` series), ``bisect-run`` (`bisect run` to its end, `bisect
  reset`), ``notes-add``, ``sparse-set`` (`sparse-checkout set`, then `disable`: a
  checkpoint is refused meanwhile, as docs/fuse.md says), ``worktree-add`` (a second
  worktree of a new branch, made from the mount, removed), ``split-index`` and
  ``index-v4`` (then a checkpoint with something staged), ``amend-after-checkpoint``,
  ``rm-cached`` (then a checkpoint).

A mixin of :class:`tests.test_git_model.GitModel` on gitmodel28's."""

from __future__ import annotations

import os
import shutil
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

from .gitmodel_steps22 import THEN22
from .gitmodel_steps28 import TwentyEighthRoundSteps

THEN29 = ("commit", "checkpoint", "exec-write", "amend")
COMMANDS29 = (
    "cherry-pick-n",
    "reset-merge",
    "reset-keep",
    "switch-orphan",
    "clean-ignored",
    "am-series",
    "bisect-run",
    "notes-add",
    "sparse-set",
    "worktree-add",
    "split-index",
    "index-v4",
    "amend-after-checkpoint",
    "rm-cached",
)
NEW_STAGED = "docs/staged-new-29.md"
INTENT = "docs/intent-29.md"


class TwentyNinthRoundSteps(TwentyEighthRoundSteps):
    """The steps; see the module's docstring."""

    remount_now: Any
    checkpoint: Any
    switched_back: Any
    exec_script: Any
    avfs_home: str
    home: str
    mp: str
    backend: str
    kept: dict[str, Any]

    # -- what git staged, across a remount (on the other backend) ------------------------
    def _stage_every_form(self) -> None:
        files = self._files(3)
        if len(files) < 3:
            return
        a, b, c = files
        self.write_all({a: f"staged, then changed again {self.clock}\n"})
        self.both("add", "--", a)
        self.write_all({a: f"changed after the add {self.clock}\n"})
        self.both("rm", "-q", "--cached", "--", b)
        self.write_all({NEW_STAGED: f"new and staged {self.clock}\n"})
        self.both("add", "--", NEW_STAGED)
        self.write_all({NEW_STAGED: f"new, staged, changed {self.clock}\n", INTENT: "intent to add\n"})
        self.both("add", "-N", "--", INTENT)
        self.note(f"(and {c} left as it is)")

    def remount_on(self, backend: str) -> None:
        """`avfs unmount` then `avfs mount --backend BACKEND` (the plain side does nothing)."""
        from .test_git_model import _avfs

        self.note(f"avfs unmount; avfs mount --backend {backend}")
        _avfs(self.avfs_home, "--vault", "v:f", "unmount", self.mp, cwd=self.home)
        _avfs(self.avfs_home, "--vault", "v:f", "mount", "--backend", backend, self.mp, cwd=self.home)
        self.kept.clear()

    @precondition(lambda self: self.busy() is None)
    @rule(other=st.booleans(), then=st.sampled_from(THEN29))
    def staged_remount_then(self, other: bool, then: str) -> None:
        self._committed("before staging for a remount")
        self._stage_every_form()
        there = {"overlay": "fuse", "fuse": "overlay"}[self.backend] if other else self.backend
        self.remount_on(there)
        if then == "commit":
            self.both("commit", "-q", "-m", "staged before the remount")
        elif then == "amend":
            self.both("commit", "-q", "--amend", "-m", "amended after the remount")
        elif then == "checkpoint":
            self.checkpoint(False)
        else:
            self.then22("exec-write")
        if other:
            self.remount_on(self.backend)
        self.last_checkpoint = False

    # -- the brief's commands, each then one of avfs's own, a checkpoint and a remount -----
    @precondition(lambda self: self.busy() is None and self.has("HEAD~2") and self.has("side"))
    @rule(what=st.sampled_from(COMMANDS29), then=st.sampled_from(THEN22))
    def command_then(self, what: str, then: str) -> None:
        self._committed(f"before {what}")
        getattr(self, "_cmd_" + what.replace("-", "_"))()
        self.then22(then)
        if self.busy() is None:
            self.checkpoint(False)
        self.remount_now()
        self.last_checkpoint = False

    def _cmd_cherry_pick_n(self) -> None:
        self.both("cherry-pick", "-n", "side")
        if self.busy() is not None:
            self.both("reset", "-q", "--merge")

    def _local_change(self, what: str) -> None:
        files = self._files(1)
        if files:
            self.write_all({files[-1]: f"a local change before {what} {self.clock}\n"})

    def _cmd_reset_merge(self) -> None:
        self._local_change("reset --merge")
        self.both("reset", "-q", "--merge", "HEAD~1")

    def _cmd_reset_keep(self) -> None:
        self._local_change("reset --keep")
        self.both("reset", "-q", "--keep", "HEAD~1")

    def _cmd_switch_orphan(self) -> None:
        self.forks += 1
        self.switched_back(["switch", "-q", "--orphan", f"orphan29-{self.forks}"])

    def _cmd_clean_ignored(self) -> None:
        self.write_all({
            "build/out.o": "built\n",
            "tmp-scratch.txt": "scratch\n",
            "scratch29/notes.txt": "untracked\n",
            "docs/ignored-29.pyc": "bytes\n",
        })  # fmt: skip
        self.both("clean", "-q", "-fdx")

    def _cmd_am_series(self) -> None:
        series = os.path.join(self.home, f"series29-{self.clock}")
        self.note(f"format-patch HEAD~2..HEAD -o {series} (plain side), reset --hard HEAD~2")
        self.p.git("format-patch", "-q", "HEAD~2..HEAD", "-o", series)
        self.both("reset", "-q", "--hard", "HEAD~2")
        patches = sorted(os.path.join(series, n) for n in os.listdir(series))
        if not self.both("am", "-q", "--committer-date-is-author-date", *patches):
            self.both("am", "--abort")
        shutil.rmtree(series, ignore_errors=True)

    def _cmd_bisect_run(self) -> None:
        self.both("bisect", "start", "HEAD", "HEAD~2")
        self.both("bisect", "run", "sh", "-c", "test -f README.md")
        self.both("bisect", "reset")

    def _cmd_notes_add(self) -> None:
        self.both("notes", "add", "-f", "-m", f"a note {self.clock}", "HEAD")

    def _cmd_sparse_set(self) -> None:
        if self.both("sparse-checkout", "set", "src"):
            self.refused_while_busy("checkpoint")
            self.both("sparse-checkout", "disable")

    def _cmd_worktree_add(self) -> None:
        self.forks += 1
        name = f"wt29-{self.forks}"
        where = {s.root: os.path.join(self.home, f"{name}-{i}") for i, s in enumerate((self.p, self.m))}
        self.note(f"git worktree add -b {name} ../{name} HEAD~1; git worktree remove")
        for side in (self.p, self.m):
            side.git("worktree", "add", "-q", "-b", name, where[side.root], "HEAD~1")
        for side in (self.p, self.m):
            side.git("worktree", "remove", "--force", where[side.root])
            side.git("branch", "-q", "-D", name)

    def _staged_note(self, what: str) -> None:
        self.write_all({f"docs/{what}-29.md": f"staged under {what} {self.clock}\n"})
        self.both("add", "--", f"docs/{what}-29.md")
        self.write_all({f"docs/{what}-29.md": f"changed after the add under {what} {self.clock}\n"})

    def _cmd_split_index(self) -> None:
        self.both("update-index", "--split-index")
        self._staged_note("split")
        self.checkpoint(False)
        self.both("update-index", "--no-split-index")

    def _cmd_index_v4(self) -> None:
        self.both("update-index", "--index-version", "4")
        self._staged_note("v4")
        self.checkpoint(False)
        self.both("update-index", "--index-version", "2")

    def _cmd_amend_after_checkpoint(self) -> None:
        self._local_change("a checkpoint, then --amend")
        self.checkpoint(False)
        self.both("commit", "-q", "--amend", "-m", "amended after a checkpoint")

    def _cmd_rm_cached(self) -> None:
        files = self._files(2)
        if files:
            self.both("rm", "-q", "--cached", "--", files[0])
            self.checkpoint(False)
