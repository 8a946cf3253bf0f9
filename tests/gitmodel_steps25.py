"""The git model's steps of its twenty-fifth round (gitmodel25, tests/test_git_model25.py
runs them): git's config as the person's git in a mount reads it, through the files a
config includes and with git's fsmonitor off for the worktree, as in a plain worktree.

- ``included(pair)``, ``included_setting(setting, cond)``: ``git config include.path FILE`` (``cond``
  ``include``) or ``git config includeIf.onbranch:f.path FILE`` (``onbranch``: the fork's
  branch, checked out on both sides) on both sides, FILE empty; then a setting written
  into FILE alone (the including config unchanged, as a person's dotfiles change), and
  what it changes done on both sides: ``hooksPath`` (the person's hooks directory: a
  commit that runs them), ``autocrlf`` (``core.autocrlf true``: a CRLF file recorded by a
  checkpoint as `git add` stores it, in a directory whose `.gitattributes` leaves `text`
  unset: attrs's own say `* text=auto eol=lf`), ``attributesFile`` (``core.attributesFile``
  naming ``ident`` for a file: its `$Id: ...$` recorded as `$Id$`), ``excludesFile`` (``core.excludesFile`` naming a pattern: a
  file git ignores, which avfs's status must not list); then FILE emptied (the setting
  gone: the same done again), then the include unset.
- ``fsmonitor_off_hooks(where)``: ``git config --worktree core.fsmonitor false`` on both
  sides (in the mount nothing then asks avfs's daemon), then the person's hooks set
  (``relative``: a committed ``.githooks/`` and ``core.hooksPath .githooks``;
  ``included``: ``core.hooksPath`` in a file an include names), a commit that runs them,
  the set-up undone, a commit no hook sees, and each side's fsmonitor setting put back.
- ``fsmonitor_off_exec()``: the same off, the person's hooks in git's own hooks directory,
  and a `git commit` made through `avfs proxy exec` (the sandbox must show avfs's gate).

A mixin of :class:`tests.test_git_model.GitModel`."""

from __future__ import annotations

import os
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import rule

from .gitmodel_steps24 import HOOKS, POST_COMMIT_MARK, STAGED_BY_HOOK

SETTINGS = ("hooksPath", "autocrlf", "attributesFile", "excludesFile")
CONDS = ("include", "onbranch")
# (setting, cond) the model runs: `onbranch` for the person's hooks alone, which avfs reads as
# git in the mount's worktree does; avfs's own reading of the others matches `onbranch:`
# against the vault's HEAD, not the fork's branch (docs/fuse.md "gitmodel25": left)
PAIRS = tuple((s, c) for s in SETTINGS for c in CONDS if c == "include" or s == "hooksPath")
WHERES = ("relative", "included")
CRLF_DIR = "crlf-25"  # its own `.gitattributes`: attrs's `* text=auto eol=lf` left unset there
CRLF_FILE = f"{CRLF_DIR}/crlf.txt"
IDENT_FILE = "ident-25.txt"
IGNORED_FILE = "scratch.ignored-25"


class TwentyFifthRoundSteps:
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
    checkpoint: Any
    exec_script: Any
    note: Any
    vault: str

    def _write(self, path: str, text: str) -> None:
        self.note(f"write {path} {text!r}")
        with open(path, "w") as fh:
            fh.write(text)

    def _both_files(self, rel: str, data: bytes) -> None:
        self.note(f"write {rel} {data!r}")
        for side in (self.p, self.m):
            with open(os.path.join(side.root, rel), "wb") as fh:
                fh.write(data)

    def _stage_hooks(self, d: str) -> None:
        """The ``stage`` hooks of tests/gitmodel_steps24.py in directory ``d``."""
        os.makedirs(d, exist_ok=True)
        for name in set(os.listdir(d)) - set(HOOKS["stage"]):
            os.unlink(os.path.join(d, name))
        for name, body in HOOKS["stage"].items():
            with open(os.path.join(d, name), "w") as fh:
                fh.write("#!/bin/sh\n" + body)
            os.chmod(os.path.join(d, name), 0o755)

    def _change_and_commit(self, word: str, hooked: bool) -> None:
        """A change of README.md committed on both sides; ``hooked``: the person's stage
        hooks must have run (the file they stage is in the commit, on both sides alike)."""
        self.note(f"write README.md {word!r}")
        for side in (self.p, self.m):
            with open(os.path.join(side.root, "README.md"), "a") as fh:
                fh.write(f"{word} {self.clock}\n")
        assert self.both("commit", "-q", "-a", "-m", f"a commit ({word})")
        for side in (self.p, self.m):
            files = side.git("show", "--name-only", "--format=", "HEAD").stdout.split()
            assert (STAGED_BY_HOOK in files) == hooked, f"{side.root}: hooks ran={not hooked}: {files}"
            mark = os.path.join(side.root, POST_COMMIT_MARK)
            if os.path.exists(mark):
                os.unlink(mark)

    def _exercise(self, setting: str, on: bool) -> None:
        """What ``setting`` changes, done on both sides and checked (``on``: it is set)."""
        if setting == "hooksPath":
            self._change_and_commit("hooked-25" if on else "unhooked-25", on)
            self.last_checkpoint = False
        elif setting == "excludesFile":
            self._both_files(IGNORED_FILE, f"scratch {self.clock}\n".encode())
            self.check()
            for side in (self.p, self.m):
                os.unlink(os.path.join(side.root, IGNORED_FILE))
        else:  # autocrlf, attributesFile: a file recorded as `git add` stores it
            if setting == "autocrlf":  # (where the tree's attributes leave `text` unset)
                for side in (self.p, self.m):
                    os.makedirs(os.path.join(side.root, CRLF_DIR), exist_ok=True)
                self._both_files(f"{CRLF_DIR}/.gitattributes", b"* !text !eol\n")
                self._both_files(CRLF_FILE, b"crlf %d\r\nline\r\n" % self.clock)
            else:  # (an attribute the tree's own files do not name)
                self._both_files(IDENT_FILE, b"$Id: by hand %d $\n" % self.clock)
            self.check()
            self.checkpoint(False)
        self.check()

    def _setting_text(self, setting: str) -> str:
        if setting == "hooksPath":
            d = os.path.join(self.home, "hooks-25")
            self._stage_hooks(d)
            return f"[core]\n\thooksPath = {d}\n"
        if setting == "autocrlf":
            return "[core]\n\tautocrlf = true\n"
        path = os.path.join(self.home, f"{setting}-25")
        self._write(path, "ident-25.txt ident\n" if setting == "attributesFile" else "*.ignored-25\n")
        return f"[core]\n\t{setting} = {path}\n"

    @rule(pair=st.sampled_from(PAIRS))
    def included(self, pair: tuple[str, str]) -> None:
        """:meth:`included_setting` of one of :data:`PAIRS`."""
        self.included_setting(*pair)

    def included_setting(self, setting: str, cond: str) -> None:
        """See the module's docstring."""
        if self.busy() is not None:
            return
        included = os.path.join(self.home, f"included-25-{setting}.conf")
        self._write(included, "")
        key = "include.path" if cond == "include" else "includeIf.onbranch:f.path"
        self.both("config", key, included)
        self.check()
        self._write(included, self._setting_text(setting))  # (the including config as it was)
        self._exercise(setting, True)
        self._write(included, "# nothing set here now\n")
        self._exercise(setting, False)
        self.both("config", "--unset", key)
        made = [p for p in (CRLF_DIR, IDENT_FILE) if os.path.lexists(os.path.join(self.p.root, p))]
        if made:
            self.both("rm", "-q", "-r", "--", *made)
            self.both("commit", "-q", "--no-verify", "-m", "the converted files gone")
            self.last_checkpoint = False

    @rule(where=st.sampled_from(WHERES))
    def fsmonitor_off_hooks(self, where: str) -> None:
        """See the module's docstring."""
        if self.busy() is not None:
            return
        kept = [
            side.git("config", "--worktree", "--get", "core.fsmonitor", check=False).stdout.strip()
            for side in (self.p, self.m)
        ]
        self.both("config", "--worktree", "core.fsmonitor", "false")
        included = os.path.join(self.home, "included-25-fsmonitor.conf")
        if where == "relative":
            for side in (self.p, self.m):
                self._stage_hooks(os.path.join(side.root, ".githooks"))
            self.both("add", "--", ".githooks")
            self.both("commit", "-q", "--no-verify", "-m", "the hooks of the tree")
            self.both("config", "core.hooksPath", ".githooks")
        else:
            self._write(included, "")
            self.both("config", "include.path", included)
            self._write(included, self._setting_text("hooksPath"))
        self._change_and_commit("hooked-25 fsmonitor off", True)
        self.check()
        if where == "relative":
            self.both("config", "--unset", "core.hooksPath")
        else:
            self._write(included, "")
        self._change_and_commit("unhooked-25 fsmonitor off", False)
        if where == "included":
            self.both("config", "--unset", "include.path")
        for side, value in zip((self.p, self.m), kept, strict=True):
            self.note(f"git config --worktree core.fsmonitor {value!r} ({side.root})")
            if value:
                side.git("config", "--worktree", "core.fsmonitor", value)
            else:
                side.git("config", "--worktree", "--unset", "core.fsmonitor")
        self.last_checkpoint = False
        self.check()

    @rule()
    def fsmonitor_off_exec(self) -> None:
        """With git's fsmonitor off for the worktree, the person's hooks in git's own hooks
        directory (the vault's `hooks/`; the plain clone's `.git/hooks`) run for a commit
        made by `git commit` through `avfs proxy exec`: in the mount `pre-commit` is then a
        link to avfs's gate script, which the sandbox must show."""
        if self.busy() is not None:
            return
        kept = [
            side.git("config", "--worktree", "--get", "core.fsmonitor", check=False).stdout.strip()
            for side in (self.p, self.m)
        ]
        self.both("config", "--worktree", "core.fsmonitor", "false")
        dirs = [os.path.join(self.p.root, ".git", "hooks"), os.path.join(self.vault, "hooks")]
        for d in dirs:
            self.note(f"stage hooks in {d}")
            os.makedirs(d, exist_ok=True)
            for name, body in HOOKS["stage"].items():
                with open(os.path.join(d, name), "w") as fh:
                    fh.write("#!/bin/sh\n" + body)
                os.chmod(os.path.join(d, name), 0o755)
        self.exec_script(f"printf 'in exec {self.clock}\\n' >> README.md && git commit -q -a -m 'in exec'")
        self.check()
        for d in dirs:
            for name in HOOKS["stage"]:
                os.unlink(os.path.join(d, name))
        for side in (self.p, self.m):
            mark = os.path.join(side.root, POST_COMMIT_MARK)
            if os.path.exists(mark):
                os.unlink(mark)
        for side, value in zip((self.p, self.m), kept, strict=True):
            self.note(f"git config --worktree core.fsmonitor {value!r} ({side.root})")
            if value:
                side.git("config", "--worktree", "core.fsmonitor", value)
            else:
                side.git("config", "--worktree", "--unset", "core.fsmonitor")
        self.last_checkpoint = False
        self.check()
