"""The git model's steps of its twenty-fourth round (gitmodel24, tests/test_git_model24.py
runs them): the person's own git hooks, set in the mount after it was mounted, as git runs
them in a plain worktree.

- ``person_hooks(where, kind)``: hooks the person sets up, then a commit that runs them,
  then the set-up undone, then a commit that runs none. ``where``: ``relative`` (a
  `.githooks/` directory committed in the tree and `git config core.hooksPath .githooks`,
  as husky's install and many repositories' set-up steps do), ``absolute`` (a directory
  outside both worktrees, `core.hooksPath` naming it), ``git-path`` (the hook written
  where `git rev-parse --git-path hooks` says, as `cp hook .git/hooks/` and hook
  installers do; in the mount that is the mount's own hooks directory). ``kind``:
  ``stage`` (a pre-commit hook that writes and stages a file, a prepare-commit-msg and a
  commit-msg hook that add lines to the message, a post-commit hook that writes an
  untracked file), ``reject`` (a pre-commit hook that exits 1: the commit fails alike,
  then is made with `--no-verify`) or ``rewrite`` (a post-rewrite hook that writes what
  `git commit --amend`, made after the commit, rewrote to an untracked file).

A mixin of :class:`tests.test_git_model.GitModel`."""

from __future__ import annotations

import os
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import rule

WHERES = ("relative", "absolute", "git-path")
KINDS = ("stage", "reject", "rewrite")
STAGED_BY_HOOK = "docs/hooked-24.md"
POST_COMMIT_MARK = "hooked-post-commit-24.txt"
POST_REWRITE_MARK = "hooked-post-rewrite-24.txt"
HOOKS = {
    "stage": {
        "pre-commit": f"printf 'pre-commit %s\\n' \"$(git write-tree)\" >> {STAGED_BY_HOOK}\n"
        f"git add -- {STAGED_BY_HOOK}\n",
        "prepare-commit-msg": 'printf \'\\nPrepared-by: a hook (%s)\\n\' "$2" >> "$1"\n',
        "commit-msg": "printf 'Hooked-by: model\\n' >> \"$1\"\n",
        "post-commit": f"git rev-parse HEAD > {POST_COMMIT_MARK}\n",
    },
    "reject": {"pre-commit": "echo 'pre-commit: refused by the person' >&2\nexit 1\n"},
    "rewrite": {"post-rewrite": f'{{ echo "$1"; cat; }} > {POST_REWRITE_MARK}\n'},
}


class TwentyFourthRoundSteps:
    """The steps; see the module's docstring."""

    # what else the model has (annotations only: the model's own are used)
    m: Any
    p: Any
    home: str
    clock: int
    last_checkpoint: bool
    both: Any
    busy: Any
    check: Any
    note: Any

    def _hook_files(self, where: str, kind: str) -> None:
        """The hooks of ``kind`` written where ``where`` says, on each side."""
        if where == "absolute":
            dirs = [os.path.join(self.home, f"hooks-24-{kind}")] * 2
        elif where == "relative":
            dirs = [os.path.join(side.root, ".githooks") for side in (self.p, self.m)]
        else:
            dirs = [
                side.git("rev-parse", "--path-format=absolute", "--git-path", "hooks").stdout.strip()
                for side in (self.p, self.m)
            ]
        self.note(f"hooks {kind} at {where}")
        for d in dirs:
            os.makedirs(d, exist_ok=True)
            if where == "relative":  # (the tree's hooks of another kind, from an earlier step)
                for name in set(os.listdir(d)) - set(HOOKS[kind]):
                    os.unlink(os.path.join(d, name))
            for name, body in HOOKS[kind].items():
                path = os.path.join(d, name)
                with open(path, "w") as fh:  # (over what is there, as `cp` writes: a link followed)
                    fh.write("#!/bin/sh\n" + body)
                os.chmod(path, 0o755)

    def _hooks_gone(self, where: str, kind: str) -> None:
        """The set-up of :meth:`_hook_files` undone on each side."""
        if where == "git-path":
            for side in (self.p, self.m):
                d = side.git("rev-parse", "--path-format=absolute", "--git-path", "hooks").stdout.strip()
                for name in HOOKS[kind]:
                    # (the hook itself: in the mount that path is a link of avfs's to it,
                    # whose removal leaves the hook to come back at the next mount)
                    self.note(f"rm {name} hook")
                    os.unlink(os.path.realpath(os.path.join(d, name)))
        else:
            self.both("config", "--unset", "core.hooksPath")

    def _change(self, word: str) -> None:
        self.note(f"write README.md {word!r}")
        for side in (self.p, self.m):
            with open(os.path.join(side.root, "README.md"), "a") as fh:
                fh.write(f"{word} {self.clock}\n")

    @rule(where=st.sampled_from(WHERES), kind=st.sampled_from(KINDS))
    def person_hooks(self, where: str, kind: str) -> None:
        """See the module's docstring."""
        if self.busy() is not None:
            return
        self._hook_files(where, kind)
        if where == "relative":  # (the hooks are the tree's, committed as a repository keeps them)
            self.both("add", "--", ".githooks")
            self.both("commit", "-q", "--no-verify", "-m", "the hooks of the tree")
        if where != "git-path":
            path = ".githooks" if where == "relative" else os.path.join(self.home, f"hooks-24-{kind}")
            self.both("config", "core.hooksPath", path)
        self._change("hooked")
        ran = self.both("commit", "-q", "-a", "-m", "a commit the hooks see")
        assert ran == (kind != "reject"), f"the person's {kind} hooks at {where}: commit ran={ran}"
        if not ran:
            self.both("commit", "-q", "-a", "--no-verify", "-m", "past a refusing hook")
        if kind == "rewrite":
            self._change("amended")
            self.both("commit", "-q", "-a", "--amend", "--no-edit")
            self.check()  # (the post-rewrite hook's mark)
        self._hooks_gone(where, kind)
        self._change("no hooks")
        self.both("commit", "-q", "-a", "-m", "a commit no hook sees")
        for side in (self.p, self.m):  # (the hooks' marks, on both sides alike)
            for name in (POST_COMMIT_MARK, POST_REWRITE_MARK):
                mark = os.path.join(side.root, name)
                if os.path.exists(mark):
                    os.unlink(mark)
        self.last_checkpoint = False
