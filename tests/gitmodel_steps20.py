"""The git model's steps of its twentieth round (gitmodel20, tests/test_git_model20.py
runs them): git's operations a person runs in a mount, each followed by one of avfs's own
(``then``: `avfs checkpoint save`, `avfs undo` of a checkpoint made right there, `avfs
checkpoint restore HEAD~1`, `avfs unmount` and `avfs mount`, `avfs proxy exec`; while git
has something open the checkpoint and the exec must refuse to record, the remount keeps
it), then the operation finished alike on both sides.

- ``stash_staged_untracked``: a change `git add`ed, another not, a new file; `git stash
  push -u [--keep-index]`; then; `git stash pop --index` (undone alike where it cannot).
- ``notes_then``: `git notes add -f` on HEAD; then; `git notes append`.
- ``bisect_by_hand``: `git bisect start HEAD HEAD~2`, `git bisect good|bad` (git's
  checkout of a commit, detached); then; `git bisect reset`.
- ``cherry_pick_n_conflict``: a commit that makes `side`'s pick conflict, `git
  cherry-pick -n side` (a conflict in the index, no commit); each conflict taken from
  `side`; then; `git commit`.
- ``revert_conflict``: two commits of one line, `git revert HEAD~1` (a conflict); then;
  `--abort`, or the conflict taken as it is and `--continue`.
- ``patch_then``: `git format-patch -1 side` applied by `git am` or `git apply --index`;
  then.
- ``sparse_then``: `git sparse-checkout set src`; then; `git sparse-checkout disable`.
- ``clean_fdx_then``: files `.gitignore` ignores and an untracked directory, `git clean
  -fdx`; then.
- ``reset_older_then``: a file checkpointed (avfs's newest commit), `git reset --hard
  HEAD~2`; then (an undo of that checkpoint refused: git moved the branch off it).
- ``worktree_then``: `git worktree add -b wtN inner-wt` inside the work tree, a commit
  there, `git worktree remove`; then.
- ``other_hand_then``: a file written in the mount and another `git add`ed, then a commit
  of the first made by another hand (`git --git-dir=VAULT` with an index of its own:
  `commit-tree`, `update-ref`), `avfs status` (avfs adopts it: the commit records only
  what the mount shows); then. The plain side: `git update-ref HEAD` and the commit's
  path reset to it (what git staged elsewhere stays staged; the index was written whole
  for the commit until gitmodel20, which lost it).

A mixin of :class:`tests.test_git_model.GitModel`, as the earlier rounds' (its own class,
:class:`tests.test_git_model20.GitModel20`, draws them)."""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

from .gitmodel_attrs import ModelAttrs

THEN = ["checkpoint", "undo", "restore", "remount", "exec"]
STASH_NEW = "docs/stashed-untracked.md"
IGNORED = {"build/out.o": "built\n", "src/attr/__pycache__/x.pyc": "bytes\n", "tmp-scratch.txt": "tmp\n"}
UNTRACKED_DIR = "scratch/notes.txt"
OTHER_HAND = "docs/by-another-hand.md"


class TwentiethRoundSteps(ModelAttrs):
    """The steps; see the module's docstring."""

    # what else the model has (annotations only: the model's own are used)
    tracked: Any
    has: Any
    has_parent: Any
    write_all: Any
    checkpoint: Any
    undo: Any
    restore: Any
    remount_now: Any
    refused_while_busy: Any
    exec_script: Any
    format_patch: Any
    clean: Any
    _tick: Any
    clock: int
    env: dict[str, str]
    vault: str

    def _avfs_json(self, *args: str) -> tuple[int, dict[str, Any]]:
        from .test_git_model import _avfs

        res = _avfs(self.avfs_home, "--json", *args, cwd=self.mp, check=False)
        return res.returncode, json.loads(res.stdout)

    def _committed(self, message: str) -> None:
        """What the random run wrote committed first (`commit -a`), where there is any."""
        if not self.clean():
            self.both("commit", "-q", "-a", "-m", message)

    def then(self, then: str) -> None:
        """One of avfs's own operations (see the module's docstring)."""
        if then == "remount":
            self.remount_now()
            return
        if self.busy() is not None:
            self.refused_while_busy("exec" if then == "exec" else "checkpoint")
            return
        if then == "checkpoint":
            self.checkpoint(False)
        elif then == "undo":
            self.checkpoint(False)
            if self.last_checkpoint:
                self.undo()
        elif then == "restore":
            if self.has_parent():
                self.restore()
        else:
            self.exec_script("git status --porcelain > /dev/null")

    # -- a stash of staged, unstaged and untracked changes -------------------------------------
    @precondition(lambda self: self.busy() is None)
    @rule(keep_index=st.booleans(), then=st.sampled_from(THEN))
    def stash_staged_untracked(self, keep_index: bool, then: str) -> None:
        tracked = self.tracked()
        if "README.md" not in tracked or "pyproject.toml" not in tracked or STASH_NEW in tracked:
            return
        self.note("append to README.md (staged) and pyproject.toml (not)")
        for side in (self.p, self.m):
            for name, line in (
                ("README.md", "staged, stashed\n"),
                ("pyproject.toml", "# not staged, stashed\n"),
            ):
                with open(os.path.join(side.root, name), "a") as fh:
                    fh.write(line)
        self.both("add", "README.md")
        self.write_all({STASH_NEW: "untracked, stashed\n"})
        args = [
            "stash",
            "push",
            "-q",
            "-u",
            *(["--keep-index"] if keep_index else []),
            "-m",
            "staged and not",
        ]
        if not self.both(*args):
            return
        self.then(then)
        if self.busy() is None and not self.both("stash", "pop", "-q", "--index"):
            self.both("reset", "-q", "--hard")
            self.both("clean", "-qfd", "--", os.path.dirname(STASH_NEW))
            self.both("stash", "drop", "-q")
        self.last_checkpoint = False

    # -- notes ---------------------------------------------------------------------------------
    @precondition(lambda self: self.busy() is None)
    @rule(then=st.sampled_from(THEN))
    def notes_then(self, then: str) -> None:
        self.both("notes", "add", "-f", "-m", f"a note {self.clock}", "HEAD")
        self.then(then)
        if self.busy() is None:
            self.both("notes", "append", "-m", "appended after avfs", "HEAD")
        self.last_checkpoint = False

    # -- bisect, by hand -----------------------------------------------------------------------
    @precondition(lambda self: self.busy() is None and self.has("HEAD~2"))
    @rule(good=st.booleans(), then=st.sampled_from(THEN))
    def bisect_by_hand(self, good: bool, then: str) -> None:
        self._committed("before a bisect")
        if not self.both("bisect", "start", "HEAD", "HEAD~2"):
            self.both("bisect", "reset")
            return
        self.both("bisect", "good" if good else "bad")
        self.then(then)
        self.both("bisect", "reset")
        self.last_checkpoint = False

    # -- cherry-pick -n over a conflict --------------------------------------------------------
    @precondition(lambda self: self.busy() is None and self.has("side"))
    @rule(then=st.sampled_from(THEN))
    def cherry_pick_n_conflict(self, then: str) -> None:
        self._committed("before a pick")
        self.note("append a line to README.md (side's pick meets it)")
        for side in (self.p, self.m):
            with open(os.path.join(side.root, "README.md"), "a") as fh:
                fh.write("a line from f\n")
        self.both("commit", "-q", "-a", "-m", "a line side's pick meets")
        if self.both("cherry-pick", "-n", "side"):
            self.then(then)
        else:
            for path in filter(
                None, self.p.git("diff", "--name-only", "-z", "--diff-filter=U").stdout.split("\0")
            ):
                self.both("checkout", "--theirs", "--", path)
                self.both("add", "--", path)
            self.then(then)
        if self.busy() is None and not self.clean():
            self.both("commit", "-q", "-m", "side's change, picked by hand")
        self.last_checkpoint = False

    # -- revert over a conflict ----------------------------------------------------------------
    @precondition(lambda self: self.busy() is None)
    @rule(finish=st.sampled_from(["abort", "continue"]), then=st.sampled_from(THEN))
    def revert_conflict(self, finish: str, then: str) -> None:
        self._committed("before a revert")
        for word in ("first", "second"):
            self.write_all({"docs/reverted.md": f"the {word} version {self.clock}\n"})
            self.both("add", "docs/reverted.md")
            self.both("commit", "-q", "-m", f"reverted.md, {word}")
        if not self.both("revert", "--no-edit", "HEAD~1"):
            self.then(then)
            if self.busy() == "revert":
                if finish == "continue":
                    self.both("add", "-A")
                self.both("revert", f"--{finish}")
        self.last_checkpoint = False

    # -- a real patch: am, apply --index -------------------------------------------------------
    @precondition(lambda self: self.busy() is None and self.has("side"))
    @rule(how=st.sampled_from(["am", "apply-index"]), then=st.sampled_from(THEN))
    def patch_then(self, how: str, then: str) -> None:
        self._committed("before a patch")
        path = self.format_patch("side")
        args = ["am", "-q", path] if how == "am" else ["apply", "--index", path]
        if not self.both(*args) and how == "am":
            self.both("am", "--abort")
        self.then(then)
        self.last_checkpoint = False

    # -- sparse-checkout -----------------------------------------------------------------------
    @precondition(lambda self: self.busy() is None)
    @rule(then=st.sampled_from(THEN))
    def sparse_then(self, then: str) -> None:
        self._committed("before sparse-checkout")
        self.both("sparse-checkout", "set", "src")
        self.then(then)
        self.both("sparse-checkout", "disable")
        self.last_checkpoint = False

    # -- clean -fdx with ignored files ---------------------------------------------------------
    @precondition(lambda self: self.busy() is None)
    @rule(then=st.sampled_from(THEN))
    def clean_fdx_then(self, then: str) -> None:
        self.write_all({**IGNORED, UNTRACKED_DIR: "untracked\n"})
        self.both("clean", "-q", "-fdx")
        self.then(then)
        self.last_checkpoint = False

    # -- git's reset to an older commit under avfs's newer checkpoint --------------------------
    @precondition(lambda self: self.busy() is None)
    @rule(then=st.sampled_from(THEN))
    def reset_older_then(self, then: str) -> None:
        self.write_all({"docs/checkpointed-then-reset.md": f"checkpointed {self.clock}\n"})
        self.checkpoint(False)
        if not self.last_checkpoint or not self.has("HEAD~2"):
            return
        self.both("reset", "-q", "--hard", "HEAD~2")
        if then == "undo":
            # (the checkpoint's commit is no longer the branch's: refused, nothing moves)
            self.note("avfs undo (refused: git moved the branch off the checkpoint)")
            head = self.m.git("rev-parse", "HEAD").stdout
            code, doc = self._avfs_json("undo")
            assert code != 0 and doc["kind"] == "error", doc
            assert self.m.git("rev-parse", "HEAD").stdout == head
        else:
            self.last_checkpoint = False
            self.then(then)
        self.last_checkpoint = False

    # -- a worktree inside the mount -----------------------------------------------------------
    @precondition(lambda self: self.busy() is None)
    @rule(then=st.sampled_from(THEN))
    def worktree_then(self, then: str) -> None:
        self._tick()
        self.forks += 1
        branch = f"wt{self.forks}"
        self.note(f"worktree add -b {branch} inner-wt, a commit there, worktree remove")
        made = []
        for side in (self.p, self.m):
            side.git("worktree", "add", "-q", "-b", branch, "inner-wt")
            where = os.path.join(side.root, "inner-wt")
            with open(os.path.join(where, "INNER.txt"), "w") as fh:
                fh.write("made in a worktree inside\n")
            for args in (("add", "-A"), ("commit", "-q", "-m", "inside")):
                subprocess.run(["git", *args], cwd=where, env=side.env, check=True, capture_output=True)
            side.git("worktree", "remove", "--force", "inner-wt")
            made.append(side.git("log", "-1", "--format=%T %P", branch).stdout.strip())
        assert made[0] == made[1], f"{branch}: plain {made[0]}, mount {made[1]}"
        self.then(then)

    # -- another hand's commit of what the mount shows -----------------------------------------
    @precondition(lambda self: self.busy() is None)
    @rule(then=st.sampled_from(THEN))
    def other_hand_then(self, then: str) -> None:
        if OTHER_HAND in self.tracked():
            return
        text = f"written in the mount, committed by another hand {self.clock}\n"
        self.write_all({OTHER_HAND: text, "docs/staged-beside.md": "staged beside\n"})
        self.both("add", "docs/staged-beside.md")
        old, new = self.other_hand_commit({OTHER_HAND: text})
        self.p.git("update-ref", "HEAD", new, old)
        self.p.git("reset", "-q", new, "--", OTHER_HAND)
        self.last_checkpoint = False
        self.then(then)

    def other_hand_commit(self, files: dict[str, str]) -> tuple[str, str]:
        """Another hand's commit of ``files`` onto the fork's branch (`git --git-dir=VAULT`
        with an index of its own), then `avfs status`, which adopts it; (old, new)."""
        self._tick()
        self.note(f"another hand: git --git-dir=VAULT commit-tree of {sorted(files)}, update-ref")
        index = os.path.join(self.home, "other-hand-index")
        entries = {path: ("100644", text) for path, text in files.items()}
        old, new = other_hand_onto(self.vault, index, entries, "by another hand", self.p.env)
        self.note("avfs status (adopts it)")
        code, doc = self._avfs_json("status")
        assert code == 0 and doc["base"] == new and not doc["stale"], doc
        return old, new


def other_hand_onto(
    vault: str | os.PathLike[str],
    index: str | os.PathLike[str],
    entries: dict[str, tuple[str, str] | None],
    message: str = "another hand",
    env: dict[str, str] | None = None,
) -> tuple[str, str]:
    """A commit of ``entries`` (path -> (mode, text), None: removed) onto fork f's branch
    by another hand: `git --git-dir=VAULT` with an index of its own (``index``, removed
    after), `commit-tree`, `update-ref`; (old, new). The one form of the tests that adopt."""
    genv = {**(os.environ if env is None else env), "GIT_INDEX_FILE": os.fspath(index)}

    def g(*args: str, stdin: str | None = None) -> str:
        return subprocess.run(
            ["git", "--git-dir", os.fspath(vault), *args],
            env=genv,
            input=stdin,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()

    old = g("rev-parse", "refs/heads/f")
    g("read-tree", old)
    for path, held in entries.items():
        if held is None:
            g("update-index", "--index-info", stdin=f"0 {'0' * 40}\t{path}\n")
        else:
            blob = g("hash-object", "-w", "--stdin", stdin=held[1])
            g("update-index", "--add", "--cacheinfo", f"{held[0]},{blob},{path}")
    new = g("commit-tree", g("write-tree"), "-p", old, "-m", message)
    g("update-ref", "refs/heads/f", new, old)
    os.unlink(index)
    return old, new
