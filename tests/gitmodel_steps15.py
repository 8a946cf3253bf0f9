"""The git model's steps of its fifteenth round (gitmodel15, tests/test_git_model15.py runs
them): git commands a coding agent or a person runs that the model did not yet: `git stash
push -p` (hunks chosen on stdin, with `--keep-index`), `git rebase -i` with its todo list
edited by ``GIT_SEQUENCE_EDITOR`` (the environment, not `-c`), `git cherry-pick -x` of a
range, `git revert -m 1` of a merge, `git worktree add` of the fork's own branch (refused
alike, naming where it is checked out), a clean/smudge filter the person configures
(`filter.x.clean`/`smudge`), paths over 1,000 bytes long, files named like `.git` in
subdirectories (`.GIT`, `.git` as a file, `.git~1`...), and the person's own fsmonitor
setting (`git config --worktree core.fsmonitor false`) across a remount.

A mixin of :class:`tests.test_git_model.GitModel`, as :class:`.gitmodel_steps14.FourteenthRoundSteps`
(its own class, :class:`tests.test_git_model15.GitModel15`, draws them: the older model's
draws stay as they were). Each step's non-git actions are noted in a line."""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

from .gitmodel_attrs import ModelAttrs

# answers to `git stash push -p`'s questions, one a line (a hunk each; `q` ends it)
STASH_ANSWERS = {"first": "y\nq\n", "all-but-first": "n\na\n", "every": "a\n", "none": "q\n"}
# a clean/smudge pair a person configures (upper case in the repository, lower in the files)
FILTER_CLEAN = "tr a-z A-Z"
FILTER_SMUDGE = "tr A-Z a-z"
# a path of 1,200 bytes: six directories of 180 bytes and a name of 120
LONG_PATH = "/".join([f"{i}" + "d" * 179 for i in range(6)] + ["f" * 116 + ".txt"])
# names git refuses at any depth (`.GIT`, `.git` as a file, a `.Git` directory; `git~1`,
# `.git.` and `.git ` under core.protectNTFS, which git sets by default) or takes (`.gitx`,
# `git`, `x.git`, `.git~1`)
DOTGIT_TAKEN = ["sub/.gitx", "sub/git", "sub/x.git", "sub/.git~1"]
DOTGIT_REFUSED = ["sub/.GIT", "sub/.git", "sub/.Git/config", "sub/git~1", "sub/.git.", "sub/.git "]
DOTGIT_NAMES = DOTGIT_REFUSED + DOTGIT_TAKEN
# what a pure-FUSE mount refuses to make (EINVAL: core/store/names.py refuses `.git` of
# another case), where a local disk and an overlay mount make it: not written there
# (tests/test_git_model15.py, a strict xfail)
FUSE_REFUSED = {"sub/.GIT", "sub/.Git/config"}


class FifteenthRoundSteps(ModelAttrs):
    """The steps; see the module's docstring."""

    # what else the model has (annotations only: the model's own are used)
    clean: Any
    has: Any
    fetched: Any
    conflicted: Any
    write_all: Any
    checkpoint: Any
    remount_now: Any
    plain_checkpoint: Any
    _tick: Any

    def both_input(self, stdin: str, *args: str) -> bool:
        """:meth:`both` with ``stdin`` given to git (its interactive questions answered)."""
        self._tick()
        self.note(f"git {' '.join(args)} <<< {stdin!r}")
        got = []
        for side in (self.p, self.m):
            got.append(
                subprocess.run(
                    ["git", *args], cwd=side.root, env=side.env, input=stdin, capture_output=True, text=True
                )
            )
        a, b = got
        assert (a.returncode == 0) == (b.returncode == 0), (
            f"git {' '.join(args)}: plain {a.returncode} {a.stderr!r}, mount {b.returncode} {b.stderr!r}"
        )
        return a.returncode == 0

    # -- stashes of chosen hunks -----------------------------------------------------------------
    @precondition(lambda self: self.busy() is None)
    @rule(answers=st.sampled_from(sorted(STASH_ANSWERS)), keep_index=st.booleans(), pop=st.booleans())
    def stash_patch(self, answers: str, keep_index: bool, pop: bool) -> None:
        """Two hunks in README.md and one in tox.ini, then `git stash push -p` (with
        `--keep-index`: what is staged stays) choosing hunks on stdin, and (``pop``) `git
        stash pop`: what was stashed, what stayed and the stash itself alike."""
        if not os.path.isfile(os.path.join(self.p.root, "README.md")) or not self.clean():
            return
        for side in (self.p, self.m):
            for path, head, tail in (("README.md", "top of the file\n", "end of the file\n"),):
                full = os.path.join(side.root, path)
                with open(full) as fh:
                    text = fh.read()
                with open(full, "w") as fh:
                    fh.write(head + text + tail)
            if os.path.isfile(os.path.join(side.root, "tox.ini")):
                with open(os.path.join(side.root, "tox.ini"), "a") as fh:
                    fh.write("# stash -p\n")
        self.note("write README.md top and end, tox.ini end")
        if keep_index:
            self.both("add", "--", "README.md")
        args = ["stash", "push", "-q", "-p", *(["--keep-index"] if keep_index else [])]
        stashed = self.both_input(STASH_ANSWERS[answers], *args)
        if (
            stashed
            and pop
            and self.p.git("stash", "list").stdout.strip()
            and not self.both("stash", "pop", "-q")
        ):
            self.both("reset", "-q", "--hard")  # (a pop that conflicts keeps the stash: undone alike)
        self.last_checkpoint = False

    # -- `rebase -i` whose todo list GIT_SEQUENCE_EDITOR edits ------------------------------------
    @precondition(lambda self: self.busy() is None and self.has("HEAD~2"))
    @rule(data=st.data(), script=st.sampled_from(["squash", "drop", "reword", "reorder"]))
    def rebase_i_env(self, data: st.DataObject, script: str) -> None:
        """`GIT_SEQUENCE_EDITOR=SCRIPT git rebase -i HEAD~2` (what an agent sets: the
        environment, not `-c`), ``reword`` with ``GIT_EDITOR`` rewriting the message too."""
        if self.p.git("status", "--porcelain", "--untracked-files=no").stdout.strip():
            return
        scripts = {
            "squash": "sed -i -e '2,$s/^pick/squash/'",
            "drop": "sed -i -e '2s/^pick/drop/'",
            "reword": "sed -i -e '1s/^pick/reword/'",
            "reorder": 'f() { grep ^pick "$1" | tac > "$1.new" && mv "$1.new" "$1"; }; f',
        }
        extra = {"GIT_SEQUENCE_EDITOR": scripts[script]}
        if script == "reword":
            extra["GIT_EDITOR"] = "sed -i -e '1s/^/reworded: /'"
        self.note(f"env {extra!r}")
        saved = [dict(side.env) for side in (self.p, self.m)]
        for side in (self.p, self.m):
            side.env.update(extra)
        try:
            self.conflicted(data, "rebase", "rebase", "-q", "-i", "HEAD~2")
        finally:
            for side, env in zip((self.p, self.m), saved, strict=True):
                side.env.clear()
                side.env.update(env)
        self.last_checkpoint = False

    # -- `cherry-pick -x` of a range, `revert -m 1` of a merge ------------------------------------
    @precondition(lambda self: self.busy() is None)
    @rule(data=st.data())
    def cherry_pick_x(self, data: st.DataObject) -> None:
        """`git cherry-pick -x HEAD..side up/topic`: each commit's message names the one it
        was picked from (the same ids on both sides: the plain clone reads the vault's
        objects); a conflict left open or aborted."""
        if self.clean():
            self.fetched()
            self.conflicted(data, "cherry-pick", "cherry-pick", "-x", "HEAD..side", "up/topic")
        self.last_checkpoint = False

    @precondition(lambda self: self.busy() is None)
    @rule(data=st.data(), which=st.sampled_from(["side", "up/topic"]))
    def revert_merge(self, data: st.DataObject, which: str) -> None:
        """`git merge --no-ff BRANCH` (given up where it conflicts), then `git revert -m 1
        HEAD`: the merge's changes taken back by a commit on top of it."""
        if not self.clean():
            return
        if which == "up/topic":
            self.fetched()
        if not self.both("merge", "-q", "--no-ff", "--no-edit", which):
            if self.busy() == "merge":
                self.both("merge", "--abort")
            return
        if len(self.p.git("log", "-1", "--format=%P").stdout.split()) == 2:
            self.conflicted(data, "revert", "revert", "--no-edit", "-m", "1", "HEAD")
        self.last_checkpoint = False

    # -- a second worktree of the fork's own branch ------------------------------------------------
    @precondition(lambda self: self.busy() is None)
    @rule()
    def worktree_own_branch(self) -> None:
        """`git worktree add DIR f`: the fork's branch is checked out (in the mount, the
        mount's worktree), so git refuses alike, naming where."""
        self.note("worktree add of the branch checked out")
        for side, tag in ((self.p, "p"), (self.m, "m")):
            where = os.path.join(self.home, f"wt-own-{tag}")
            got = side.git("worktree", "add", "-q", where, "f", check=False)
            assert got.returncode != 0, f"worktree add of f in {side.root}: {got.stdout}{got.stderr}"
            assert "already checked out" in got.stderr and side.root in got.stderr, got.stderr
            assert not os.path.exists(where), where

    # -- a clean/smudge filter the person configures -------------------------------------------------
    @precondition(lambda self: self.busy() is None)
    @rule(how=st.sampled_from(["commit", "checkpoint", "status"]))
    def filter_driver(self, how: str) -> None:
        """`git config filter.up.clean "tr a-z A-Z"` and `smudge "tr A-Z a-z"` (in the
        mount: the vault's config), `*.up filter=up` in `.gitattributes` and a file
        `notes.up` in lower case, then: `git add` and `git commit` (the blob upper case,
        the file as written), an avfs checkpoint, or git's status alone."""
        self.note(f"filter driver, then {how}")
        for side in (self.p, self.m):
            side.git("config", "filter.up.clean", FILTER_CLEAN)
            side.git("config", "filter.up.smudge", FILTER_SMUDGE)
        self.write_all({".gitattributes": "*.up filter=up\n", "notes.up": "lower case words\n"})
        if how == "commit":
            self.both("add", "--", ".gitattributes", "notes.up")
            self.both("commit", "-q", "-m", "a filtered file", "--", ".gitattributes", "notes.up")
        elif how == "checkpoint":
            self.checkpoint(False)
        self.last_checkpoint = how == "checkpoint" and self.last_checkpoint

    # -- long paths, names like `.git` ------------------------------------------------------------
    @rule(how=st.sampled_from(["commit", "checkpoint", "mv"]))
    def long_path(self, how: str) -> None:
        """A file at a path of 1,200 bytes (six directories of 180, a name of 120), then
        `git add` and `git commit`, an avfs checkpoint, or `git mv` of its top directory."""
        self.write_all({LONG_PATH: "at the end of a long path\n"})
        if how == "commit":
            if self.both("add", "--", LONG_PATH):
                self.both("commit", "-q", "-m", "a long path", "--", LONG_PATH)
        elif how == "checkpoint" and self.busy() is None:
            self.checkpoint(False)
        elif how == "mv" and self.both("add", "--", LONG_PATH):
            top = LONG_PATH.split("/", 1)[0]
            self.both("mv", "-k", top, "long-" + top[:20])
        self.last_checkpoint = how == "checkpoint" and self.last_checkpoint

    @rule(how=st.sampled_from(["add", "checkpoint", "status"]))
    def dotgit_names(self, how: str) -> None:
        """Files named like `.git` in a subdirectory (:data:`DOTGIT_NAMES`), then: git's status (each side's
        untracked files alike), `git add -A` (refused whole, alike), or an avfs checkpoint
        (the names git takes recorded, as `git add` of those alone; the refused ones left
        out). The refused names are removed after (the model's check asks `git add -A`)."""
        names = [n for n in DOTGIT_NAMES if self.backend != "fuse" or n not in FUSE_REFUSED]
        self.write_all(dict.fromkeys(names, "named like .git\n"))
        assert self.m.porcelain() == self.p.porcelain(), (self.m.porcelain(), self.p.porcelain())
        if how == "add":
            assert not self.both("add", "-A")
        elif how == "checkpoint" and self.busy() is None:
            self._tick()
            self.note("avfs checkpoint save (names like .git)")
            before = self.m.git("rev-parse", "HEAD").stdout.strip()
            _avfs()(self.avfs_home, "checkpoint", "save", "-m", "checkpoint", cwd=self.mp)
            after = self.m.git("rev-parse", "HEAD").stdout.strip()
            aside = os.path.join(self.home, "dotgit-aside")
            os.makedirs(aside, exist_ok=True)
            os.rename(os.path.join(self.p.root, "sub"), os.path.join(aside, "sub"))
            try:
                os.makedirs(os.path.join(self.p.root, "sub"))
                for name in DOTGIT_TAKEN:
                    os.rename(os.path.join(aside, name), os.path.join(self.p.root, name))
                made = self.plain_checkpoint("checkpoint", commit=after if after != before else None)
            finally:
                for name in DOTGIT_TAKEN:
                    os.rename(os.path.join(self.p.root, name), os.path.join(aside, name))
                os.rmdir(os.path.join(self.p.root, "sub"))
                os.rename(os.path.join(aside, "sub"), os.path.join(self.p.root, "sub"))
            assert made == (before != after), (
                f"checkpoint made a commit: mount {before != after}, plain {made}"
            )
            self.last_checkpoint = made
        for side in (self.p, self.m):
            for name in DOTGIT_REFUSED:
                full = os.path.join(side.root, name)
                if os.path.isdir(full):
                    shutil.rmtree(full)
                elif os.path.lexists(full):
                    os.unlink(full)
            top = os.path.join(side.root, "sub", ".Git")
            if os.path.isdir(top):
                shutil.rmtree(top)
        self.note(f"rm -r {' '.join(DOTGIT_REFUSED)}")
        if how != "checkpoint":
            self.last_checkpoint = False

    # -- the person's own fsmonitor setting, across a remount --------------------------------------
    @rule(value=st.sampled_from(["false", "true"]))
    def fsmonitor_setting(self, value: str) -> None:
        """`git config --worktree core.fsmonitor VALUE`, then a remount (the plain side
        does nothing): the setting as the person left it, `git config --worktree --get
        core.fsmonitor` the same on both sides (a plain worktree's `config.worktree` is
        the person's; the mount's was written anew at every mount: avfs's hook again)."""
        self.both("config", "--worktree", "core.fsmonitor", value)
        self.remount_now()
        got = [
            side.git("config", "--worktree", "--get", "core.fsmonitor", check=False).stdout.strip()
            for side in (self.p, self.m)
        ]
        assert got[0] == got[1] == value, (
            f"core.fsmonitor after a remount: plain {got[0]!r}, mount {got[1]!r}"
        )


def _avfs() -> Any:
    from .test_git_model import _avfs as run  # (the model's module imports this one's users)

    return run
