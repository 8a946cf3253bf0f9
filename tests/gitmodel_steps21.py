"""The git model's steps of its twenty-first round (gitmodel21, tests/test_git_model21.py
runs them): what gitmodel20 left, as steps, and git's operations each followed by one of
avfs's own (``then``: gitmodel20's, :meth:`.gitmodel_steps20.TwentiethRoundSteps.then`).

- ``unmounted_then``: a change `git add`ed and another not; `avfs unmount`, then `avfs
  checkpoint save` of the fork not mounted (``what`` ``checkpoint``), or a checkpoint made
  mounted and its `avfs undo` made unmounted (``undo``); `avfs mount`; then. The plain
  side: `git commit --only` of what the files differ from HEAD in (the paths git had
  staged as it records them noted for the undo, as for a checkpoint made mounted: avfs
  noted nothing for one made unmounted until gitmodel21), and the undo as the model's;
  ``then`` ``undo`` undoes the checkpoint made unmounted itself.
- ``other_hand_unshown_then``: something staged, something not, then another hand's
  commit (`git --git-dir=VAULT`, an index of its own) of a change to a file the mount
  shows as HEAD has it and of a new file; `avfs status` adopts it (until gitmodel21 it
  stayed stale: the commit changes files the mount does not show). The plain side:
  `git merge --ff-only NEW` (git carries the local changes over the fast-forward).
- ``other_hand_mm_then``: README.md `git add`ed, changed again (`MM`), then another
  hand's commit of it as the file shows it; `avfs status` adopts it. The plain side:
  `git update-ref HEAD NEW` (git never moves its index for another hand's commit: `MM`,
  which avfs made clean until gitmodel21).
- git's operations, then: ``squash_then`` (`merge --squash side`, then, a commit),
  ``rm_cached_then`` (`rm --cached`, then, `add` back), ``mv_dir_then`` (`mv src/attrs
  src/attrs21`, then, a commit), ``skip_worktree_then`` (`update-index
  --skip-worktree`/`--assume-unchanged`, then, cleared), ``reset_soft_then`` (a
  checkpoint, `reset --soft HEAD~1` across it, then), ``amend_then`` (a checkpoint,
  `commit --amend` of it, then: its undo refused, git moved the branch off it),
  ``rebase_edit_then`` (`rebase -i HEAD~2` stopped at an `edit`, then: refused or kept
  across the remount, then `--continue`).

A mixin of :class:`tests.test_git_model.GitModel` on gitmodel20's (its own class,
:class:`tests.test_git_model21.GitModel21`, draws them)."""

from __future__ import annotations

import os
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

from .gitmodel_steps20 import THEN, TwentiethRoundSteps

OTHER_DIR = "docs/theirs"


class TwentyFirstRoundSteps(TwentiethRoundSteps):
    """The steps; see the module's docstring."""

    plain_checkpoint: Any
    kept: Any
    undo_staged: set[str]
    last_checkpoint: bool

    # -- helpers ----------------------------------------------------------------------------
    def _outside(self, *args: str) -> Any:
        from .test_git_model import _avfs

        return _avfs(self.avfs_home, "--vault", "v:f", *args, cwd=self.home)

    def _plain_undo(self) -> None:
        """The model's undo on the plain side alone: `reset --soft HEAD~1`, the paths the
        checkpoint recorded unstaged but those git had staged as it recorded them."""
        out = self.p.git("diff", "--no-renames", "--name-only", "-z", "HEAD~1", "HEAD").stdout
        self.p.git("reset", "-q", "--soft", "HEAD~1")
        paths = [p for p in out.split("\0") if p and p not in self.undo_staged]
        if paths:
            self.p.git("reset", "-q", "HEAD", "--", *paths)
        self.last_checkpoint = False

    def _stage_two(self, tag: str) -> None:
        """README.md appended and `git add`ed, pyproject.toml appended (not staged)."""
        self._committed("before " + tag)
        self.note(f"append to README.md (staged) and pyproject.toml (not): {tag}")
        for side in (self.p, self.m):
            for name in ("README.md", "pyproject.toml"):
                with open(os.path.join(side.root, name), "a") as fh:
                    fh.write(f"{tag} {self.clock}\n")
        self.both("add", "README.md")

    def _other_hand(self, files: dict[str, str]) -> tuple[str, str]:
        """`avfs status` (avfs follows what git committed in the mount: a commit of
        another hand's on top of one avfs has not followed yet is not adopted, test_git_model21.py),
        then :meth:`other_hand_commit` of ``files``; (old, new)."""
        assert self._avfs_json("status")[0] == 0
        return self.other_hand_commit(files)

    # -- what gitmodel20 left ---------------------------------------------------------------
    @precondition(lambda self: self.busy() is None)
    @rule(what=st.sampled_from(["checkpoint", "undo"]), then=st.sampled_from(THEN))
    def unmounted_then(self, what: str, then: str) -> None:
        self._stage_two("unmounted " + what)
        if what == "undo":
            self.checkpoint(False)
            if not self.last_checkpoint:
                return
        self._tick()
        self.note(f"avfs unmount; avfs {what} (unmounted); avfs mount")
        before = self.m.git("rev-parse", "HEAD").stdout.strip()
        self._outside("unmount", self.mp)
        try:
            self._outside(*(["checkpoint", "save", "-m", "unmounted"] if what == "checkpoint" else ["undo"]))
        finally:
            self._outside("mount", "--backend", self.backend, self.mp)
        self.kept.clear()
        after = self.m.git("rev-parse", "HEAD").stdout.strip()
        if what == "checkpoint":
            made = self.plain_checkpoint("checkpoint", commit=after if after != before else None)
            assert made == (before != after), (
                f"checkpoint made a commit: mount {before != after}, plain {made}"
            )
            self.last_checkpoint = made  # (its note kept: what git had staged as it recorded it)
        else:
            self._plain_undo()
        if then == "undo" and self.last_checkpoint:
            self.undo()  # (of the checkpoint made unmounted itself)
        else:
            self.then(then)
        self.last_checkpoint = False

    @precondition(lambda self: self.busy() is None)
    @rule(then=st.sampled_from(THEN))
    def other_hand_unshown_then(self, then: str) -> None:
        self._stage_two("beside another hand's")
        path = f"{OTHER_DIR}/new-{self.clock}.md"
        old_text = self.p.git("show", "HEAD:CHANGELOG.md", check=False)
        if old_text.returncode != 0 or path in self.tracked():
            return
        _, new = self._other_hand(
            {"CHANGELOG.md": old_text.stdout + f"a line by another hand {self.clock}\n", path: "theirs\n"}
        )
        assert self.p.git("merge", "-q", "--ff-only", new).returncode == 0
        self.last_checkpoint = False
        self.then(then)

    @precondition(lambda self: self.busy() is None)
    @rule(then=st.sampled_from(THEN))
    def other_hand_mm_then(self, then: str) -> None:
        self._committed("before MM")
        for word in ("staged", "changed again"):
            for side in (self.p, self.m):
                with open(os.path.join(side.root, "README.md"), "a") as fh:
                    fh.write(f"{word} {self.clock}\n")
            if word == "staged":
                self.both("add", "README.md")
        with open(os.path.join(self.p.root, "README.md")) as fh:
            shown = fh.read()
        old, new = self._other_hand({"README.md": shown})
        self.p.git("update-ref", "HEAD", new, old)
        self.last_checkpoint = False
        self.then(then)

    # -- git's operations, then avfs's ---------------------------------------------------------
    @precondition(lambda self: self.busy() is None and self.has("side"))
    @rule(then=st.sampled_from(THEN))
    def squash_then(self, then: str) -> None:
        self._committed("before a squash")
        if not self.both("merge", "-q", "--squash", "side"):
            self.both("reset", "-q", "--merge")
            return
        self.then(then)
        if self.busy() is None and not self.clean():
            self.both("commit", "-q", "-m", "side, squashed")
        self.last_checkpoint = False

    @precondition(lambda self: self.busy() is None)
    @rule(then=st.sampled_from(THEN))
    def rm_cached_then(self, then: str) -> None:
        if "pyproject.toml" not in self.tracked():
            return
        self.both("rm", "-q", "--cached", "--", "pyproject.toml")
        self.then(then)
        if os.path.exists(os.path.join(self.p.root, "pyproject.toml")):
            self.both("add", "--", "pyproject.toml")
        self.last_checkpoint = False

    @precondition(lambda self: self.busy() is None)
    @rule(then=st.sampled_from(THEN))
    def mv_dir_then(self, then: str) -> None:
        src = "src/attrs"
        dest = "src/attrs21" if any(p.startswith("src/attrs/") for p in self.tracked()) else None
        if dest is None:
            src, dest = "src/attrs21", "src/attrs"
            if not any(p.startswith("src/attrs21/") for p in self.tracked()):
                return
        if not self.both("mv", src, dest):
            return
        self.then(then)
        if self.busy() is None and not self.clean():
            self.both("commit", "-q", "-m", f"{src} moved")
        self.last_checkpoint = False

    @precondition(lambda self: self.busy() is None)
    @rule(flag=st.sampled_from(["skip-worktree", "assume-unchanged"]), then=st.sampled_from(THEN))
    def skip_worktree_then(self, flag: str, then: str) -> None:
        if "tox.ini" not in self.tracked():
            return
        self.both("update-index", f"--{flag}", "--", "tox.ini")
        self.then(then)
        if "tox.ini" in self.tracked():
            self.both("update-index", f"--no-{flag}", "--", "tox.ini")
        self.last_checkpoint = False

    @precondition(lambda self: self.busy() is None and self.has("HEAD~1"))
    @rule(then=st.sampled_from(THEN))
    def reset_soft_then(self, then: str) -> None:
        self.write_all({"docs/checkpointed-21.md": f"checkpointed {self.clock}\n"})
        self.checkpoint(False)
        if not self.last_checkpoint:
            return
        self.both("reset", "-q", "--soft", "HEAD~1")
        self.last_checkpoint = False
        self.then(then)
        self.last_checkpoint = False

    @precondition(lambda self: self.busy() is None)
    @rule(then=st.sampled_from(THEN))
    def amend_then(self, then: str) -> None:
        self.write_all({"docs/amended-21.md": f"amended {self.clock}\n"})
        self.checkpoint(False)
        if not self.last_checkpoint:
            return
        self.both("commit", "-q", "--amend", "-m", "the checkpoint, amended by git")
        if then == "undo":
            self.note("avfs undo (refused: git moved the branch off the checkpoint)")
            head = self.m.git("rev-parse", "HEAD").stdout
            code, doc = self._avfs_json("undo")
            assert code != 0 and doc["kind"] == "error", doc
            assert self.m.git("rev-parse", "HEAD").stdout == head
        else:
            self.last_checkpoint = False
            self.then(then)
        self.last_checkpoint = False

    @precondition(lambda self: self.busy() is None and self.has("HEAD~2"))
    @rule(then=st.sampled_from(THEN))
    def rebase_edit_then(self, then: str) -> None:
        self._committed("before a rebase with an edit stop")
        editor = "sed -i '1s/^pick/edit/'"
        self.both("-c", f"sequence.editor={editor}", "rebase", "-q", "-i", "HEAD~2")
        self.then(then)
        if self.busy() == "rebase":
            self.both("commit", "-q", "--amend", "--no-edit", "--allow-empty")
            if not self.both("rebase", "--continue"):
                self.both("rebase", "--abort")
        self.last_checkpoint = False
