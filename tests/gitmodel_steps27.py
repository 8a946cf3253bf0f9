"""The git model's steps of its twenty-seventh round (gitmodel27, tests/test_git_model27.py
runs them): a fork's own settings as git in its mount reads them, where the condition
that includes them is the git dir (`includeIf "gitdir:"`, `"gitdir/i:"`) or the settings
are the ones that decide how the working tree is read (`core.fileMode`, `core.ignoreCase`,
`core.symlinks`), beside a plain worktree.

- ``gitdir_included(pair)``: :meth:`.gitmodel_steps25.TwentyFifthRoundSteps.included_setting`
  with the include's condition each side's own git dir, as ``git rev-parse
  --absolute-git-dir`` names it (the mount's: ``<vault>/worktrees/avfs-f``; the plain
  clone's ``.git``; for ``gitdir/i`` in upper case): git in the mount reads the file, and
  what avfs records and lists must be what it reads (autocrlf, an attributes file, an
  excludes file); ``vault``: ``gitdir:<vault>/`` (the clone's: its own directory), the
  checkpoints made while the fork is not mounted.
- ``fork_core(setting)``: `includeIf "onbranch:f"` on both sides naming a file that sets
  ``core.fileMode false`` (a tracked file made executable: no change, a checkpoint records
  none), ``core.ignoreCase true`` (a `.gitignore` pattern in upper case: the file in lower
  case ignored) or ``core.symlinks false`` (a committed symlink replaced by a regular file
  holding its target: git takes it for the link unchanged), a checkpoint made while the
  fork is not mounted; the same done again once the file no longer sets it (a checkpoint
  in the mount); the include unset.
- ``fsmonitor_bypass(how)``: a new ``core.hooksPath`` (the person's stage hooks) on both
  sides, then a commit that does not ask git's fsmonitor (``dash_c``: ``git -c
  core.fsmonitor=false commit``, after a `git status`: decided, docs/fuse.md "gitmodel27")
  or, with git's fsmonitor off for the worktree, does not run ``pre-commit``
  (``no_verify``: ``git commit --no-verify``, which still runs ``prepare-commit-msg`` and
  ``post-commit``): the hooks git runs are the new directory's on both sides; the setting
  unset and the same again (no hook runs).

A mixin of :class:`tests.test_git_model.GitModel` beside
:class:`.gitmodel_steps25.TwentyFifthRoundSteps` (its helpers)."""

from __future__ import annotations

import os
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import rule

from .gitmodel_steps24 import POST_COMMIT_MARK, STAGED_BY_HOOK

GITDIR_SETTINGS = ("autocrlf", "attributesFile", "excludesFile")
GITDIR_CONDS = ("gitdir", "gitdir/i")
# and `vault`: `gitdir:<vault>/` (the plain clone's: `gitdir:<clone>/`), its checkpoints made
# while the fork is not mounted
GITDIR_PAIRS = (
    *((s, c) for s in GITDIR_SETTINGS for c in GITDIR_CONDS),
    ("autocrlf", "vault"),
    ("attributesFile", "vault"),
)
CORE_SETTINGS = ("fileMode", "ignoreCase", "symlinks")
BYPASSES = ("dash_c", "no_verify")
IGNORE_DIR = "ignorecase-27"
LINK = "link-27"


class TwentySeventhRoundSteps:
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
    checkpoint_unmounted: Any
    note: Any
    vault: str
    _write: Any
    _both_files: Any
    _exercise: Any
    _setting_text: Any
    _stage_hooks: Any

    def _gitdir_keys(self, cond: str) -> list[str]:
        """Each side's (plain, mount) ``includeIf`` key naming its own git dir (``vault``:
        the directory of the vault, of the plain clone)."""
        if cond == "vault":
            return [f"includeIf.gitdir:{self.p.root}/.path", f"includeIf.gitdir:{self.vault}/.path"]
        keys = []
        for side in (self.p, self.m):
            gd = side.git("rev-parse", "--absolute-git-dir").stdout.strip()
            keys.append(f"includeIf.{cond}:{gd.upper() if cond.endswith('/i') else gd}.path")
        return keys

    def _each(self, keys: list[str], value: str | None) -> None:
        """`git config KEY VALUE` (None: `--unset KEY`) on each side with its own key
        (plain, mount)."""
        self.note(f"git config {keys[1]} {value} (plain: {keys[0]})")
        for side, key in zip((self.p, self.m), keys, strict=True):
            side.git("config", *((key, value) if value is not None else ("--unset", key)))

    @rule(pair=st.sampled_from(GITDIR_PAIRS))
    def gitdir_included(self, pair: tuple[str, str]) -> None:
        """See the module's docstring."""
        if self.busy() is not None:
            return
        setting, cond = pair
        included = os.path.join(self.home, f"included-27-{setting}.conf")
        self._write(included, "")
        keys = self._gitdir_keys(cond)
        self._each(keys, included)
        self.check()
        self._write(included, self._setting_text(setting))
        for side in (self.p, self.m):  # (git itself reads it on both sides)
            got = side.git(
                "config", "--show-origin", "--get-regexp", f"core\\.{setting.lower()}", check=False
            )
            assert included in got.stdout, f"{side.root}: {keys}: {got.stdout!r}"
        if cond == "vault":  # (the exercise's checkpoints made while the fork is not mounted)
            self.__dict__["checkpoint"] = lambda _name_it: self.checkpoint_unmounted()
        try:
            self._exercise(setting, True)
            self._write(included, "# nothing set here now\n")
            self._exercise(setting, False)
        finally:
            self.__dict__.pop("checkpoint", None)
        self._each(keys, None)
        self._tidy()

    def _tidy(self) -> None:
        made = [p for p in ("crlf-25", "ident-25.txt") if os.path.lexists(os.path.join(self.p.root, p))]
        if made:
            self.both("rm", "-q", "-r", "--", *made)
            self.both("commit", "-q", "--no-verify", "-m", "the converted files gone")
            self.last_checkpoint = False

    @rule(setting=st.sampled_from(CORE_SETTINGS))
    def fork_core(self, setting: str) -> None:
        """See the module's docstring."""
        if self.busy() is not None:
            return
        included = os.path.join(self.home, f"included-27-{setting}.conf")
        self._write(included, "")
        self.both("config", "includeIf.onbranch:f.path", included)
        if setting == "symlinks":  # (a committed link, made while git trusts links)
            for side in (self.p, self.m):
                if os.path.lexists(os.path.join(side.root, LINK)):
                    os.unlink(os.path.join(side.root, LINK))
                os.symlink("README.md", os.path.join(side.root, LINK))
            self.both("add", "--", LINK)
            self.both("commit", "-q", "--no-verify", "-m", "a link")
            self.last_checkpoint = False
        self.check()
        self._write(included, f"[core]\n\t{setting} = {'true' if setting == 'ignoreCase' else 'false'}\n")
        self._core_exercise(setting, unmounted=True)
        self._write(included, "# nothing set here now\n")
        self._core_exercise(setting, unmounted=False)
        self.both("config", "--unset", "includeIf.onbranch:f.path")
        if setting == "symlinks":
            self.both("rm", "-q", "--", LINK)
            self.both("commit", "-q", "--no-verify", "-m", "the link gone")
            self.last_checkpoint = False
        self.check()

    def _checkpoint(self, unmounted: bool) -> None:
        if unmounted:
            self.checkpoint_unmounted()
        else:
            self.checkpoint(False)

    def _core_exercise(self, setting: str, unmounted: bool) -> None:
        """What ``setting`` changes, done on both sides, checked, a checkpoint (``unmounted``:
        made while the fork is not mounted), put back."""
        if setting == "fileMode":
            for side in (self.p, self.m):
                os.chmod(os.path.join(side.root, "README.md"), 0o755)
            self.note("chmod +x README.md")
            self.check()
            self._checkpoint(unmounted)
            self.check()
            for side in (self.p, self.m):
                os.chmod(os.path.join(side.root, "README.md"), 0o644)
            self.note("chmod -x README.md")
        elif setting == "ignoreCase":
            for side in (self.p, self.m):
                os.makedirs(os.path.join(side.root, IGNORE_DIR), exist_ok=True)
            self._both_files(f"{IGNORE_DIR}/.gitignore", b"*.IGN27\n")
            self._both_files(f"{IGNORE_DIR}/scratch.ign27", b"scratch %d\n" % self.clock)
            self.check()
            for side in (self.p, self.m):
                os.unlink(os.path.join(side.root, IGNORE_DIR, "scratch.ign27"))
                os.unlink(os.path.join(side.root, IGNORE_DIR, ".gitignore"))
                os.rmdir(os.path.join(side.root, IGNORE_DIR))
        else:  # symlinks: the link replaced by a file holding its target
            for side in (self.p, self.m):
                os.unlink(os.path.join(side.root, LINK))
            self._both_files(LINK, b"README.md")
            self.check()
            self._checkpoint(unmounted)
            self.check()
            for side in (self.p, self.m):
                os.unlink(os.path.join(side.root, LINK))
                os.symlink("README.md", os.path.join(side.root, LINK))
            self.note(f"ln -s README.md {LINK}")
        self.check()

    @rule(how=st.sampled_from(BYPASSES))
    def fsmonitor_bypass(self, how: str) -> None:
        """See the module's docstring."""
        if self.busy() is not None:
            return
        kept = [
            side.git("config", "--worktree", "--get", "core.fsmonitor", check=False).stdout.strip()
            for side in (self.p, self.m)
        ]
        if how == "no_verify":
            self.both("config", "--worktree", "core.fsmonitor", "false")
        hooks = os.path.join(self.home, "hooks-27")
        self._stage_hooks(hooks)
        self.both("config", "core.hooksPath", hooks)
        self._bypass_commit(how, True)
        self.both("config", "--unset", "core.hooksPath")
        self._bypass_commit(how, False)
        for side, value in zip((self.p, self.m), kept, strict=True):
            self.note(f"git config --worktree core.fsmonitor {value!r} ({side.root})")
            if value:
                side.git("config", "--worktree", "core.fsmonitor", value)
            else:
                side.git("config", "--worktree", "--unset", "core.fsmonitor")
        self.check()

    def _bypass_commit(self, how: str, hooked: bool) -> None:
        word = f"{how} {'hooked' if hooked else 'unhooked'}-27"
        self.note(f"write README.md {word!r}")
        for side in (self.p, self.m):
            with open(os.path.join(side.root, "README.md"), "a") as fh:
                fh.write(f"{word} {self.clock}\n")
        if how == "dash_c":  # (a command that asks fsmonitor first: docs/fuse.md "gitmodel27")
            self.both("status", "--porcelain")
            assert self.both("-c", "core.fsmonitor=false", "commit", "-q", "-a", "-m", word)
        else:
            assert self.both("commit", "--no-verify", "-q", "-a", "-m", word)
        self.last_checkpoint = False
        for side in (self.p, self.m):
            files = side.git("show", "--name-only", "--format=", "HEAD").stdout.split()
            ran = os.path.exists(os.path.join(side.root, POST_COMMIT_MARK))
            staged = STAGED_BY_HOOK in files
            assert ran == hooked and staged == (hooked and how == "dash_c"), (
                f"{side.root}: {how}: post-commit ran={ran}, pre-commit staged={staged}, set={hooked}"
            )
        self.check()
        for side in (self.p, self.m):
            mark = os.path.join(side.root, POST_COMMIT_MARK)
            if os.path.exists(mark):
                os.unlink(mark)
