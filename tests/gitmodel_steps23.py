"""The git model's steps of its twenty-third round (gitmodel23, tests/test_git_model23.py
runs them): `avfs unmount` and `avfs mount` between two of git's steps, with no avfs
command between the first and the unmount (the model's check runs one after every step:
its `avfs status` took git's moves before any remount of the older steps), and what git
shows compared with the plain clone's right after the remount (:meth:`deep_check`).

- ``remount_between(first, second, vault_gc)``: git's ``first`` (:data:`FIRSTS`: a
  detached HEAD whose branch git moved back by `branch -f` or `update-ref`, a staged and
  an unstaged change, an open merge, rebase or cherry-pick stopped on a conflict or an
  `edit`, an open bisect, stash entries, a worktree-local config value, notes, `git gc
  --prune=now` in the mount), `avfs unmount`, with ``vault_gc`` `git gc --prune=now` of
  the vault from outside, `avfs mount`, :meth:`deep_check`, then git's ``second``
  (:data:`SECONDS`). An open bisect is ended (`bisect reset`) within the step.

A mixin of :class:`tests.test_git_model.GitModel`."""

from __future__ import annotations

import os
import subprocess
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import rule

from .gitmodel_steps22 import ORIG_HEAD_LOGGED

FIRSTS = (
    "detach-branch-f",
    "detach-update-ref",
    "staged",
    "merge",
    "rebase",
    "cherry-pick",
    "bisect",
    "stash",
    "worktree-config",
    "notes",
    "gc-in-mount",
)
SECONDS = ("status", "commit", "add", "settle")
STAGED = "docs/staged-23.md"
CONFIG_KEY = "user.email"  # (the model's commits name theirs by the environment)


class TwentyThirdRoundSteps:
    """The steps; see the module's docstring."""

    # what else the model has (annotations only: the model's own are used)
    m: Any
    p: Any
    home: str
    vault: str
    avfs_home: str
    mp: str
    backend: str
    kept: dict[str, Any]
    clock: int
    last_checkpoint: bool
    both: Any
    busy: Any
    has: Any
    clean: Any
    note: Any
    diverge: Any
    settle: Any
    _tick: Any

    def _avfs(self, *args: str) -> Any:
        from .test_git_model import _avfs

        return _avfs(self.avfs_home, "--vault", "v:f", *args, cwd=self.home)

    def _write(self, path: str, text: str, append: bool = False) -> None:
        self.note(f"write {path} {text!r} append={append}")
        for side in (self.p, self.m):
            full = os.path.join(side.root, path)
            os.makedirs(os.path.dirname(full), exist_ok=True)
            with open(full, "a" if append else "w") as fh:
                fh.write(text)

    def _bisecting(self) -> bool:
        return os.path.exists(os.path.join(self.p.root, ".git", "BISECT_LOG"))

    def _committed(self) -> None:
        if not self.clean():
            self.both("commit", "-q", "-a", "-m", "before a remount")

    def _staged_and_not(self) -> None:
        """A file staged then changed again, and README.md changed unstaged."""
        self._write(STAGED, f"staged {self.clock}\n")
        self.both("add", "--", STAGED)
        self._write(STAGED, f"changed after it was staged {self.clock}\n")
        self._write("README.md", f"not staged {self.clock}\n", append=True)

    # -- git's first step --------------------------------------------------------------------
    def first_step(self, first: str) -> None:
        """git's ``first`` on both sides, where it can run (else nothing)."""
        idle = self.busy() is None
        if first.startswith("detach-") and idle:
            # (two commits no avfs command saw, as a person makes them, each of a file of
            # its own: the unmount is the first to find the branch moved, and the next
            # mount adopts the first commit as another hand's, the overlay holding its file
            # as it is; with the check's `avfs status` between, or a file the later steps
            # change again, main kept the detached HEAD)
            for n in (1, 2):
                path = f"docs/detach-{n}-{self.clock}.md"
                self._write(path, f"commit {n} before a detach\n")
                self.both("add", "--", path)
                self.both("commit", "-q", "-m", f"commit {n} before a detach")
            self.both("checkout", "-q", "--detach")
            if first == "detach-branch-f":
                self.both("branch", "-f", "f", "HEAD~1")
            else:
                self.both("update-ref", "-m", "moved back", "refs/heads/f", "HEAD~1")
            self._staged_and_not()
        elif first == "staged":
            self._staged_and_not()
        elif first in ("merge", "cherry-pick") and idle and self.has("side"):
            self._committed()
            self.diverge()
            self.both(first, *(["--no-edit"] if first == "merge" else []), "side")
        elif first == "rebase" and idle and self.has("HEAD~2"):
            self._committed()
            editor = "sequence.editor=sed -i -e '1s/^pick/edit/'"
            self.both("-c", editor, "rebase", "-q", "-i", "HEAD~2")
        elif first == "bisect" and idle and self.has("HEAD~2"):
            self.both("bisect", "start", "HEAD", "HEAD~2")
        elif first == "stash":
            self._write("README.md", f"stashed {self.clock}\n", append=True)
            self.both("stash", "push", "-q")
            self._write(STAGED, f"stashed with -u {self.clock}\n")
            self.both("stash", "push", "-q", "-u")
        elif first == "worktree-config":
            self.both("config", "--worktree", CONFIG_KEY, f"remount-{self.clock}@example.invalid")
        elif first == "notes":
            self.both("notes", "add", "-f", "-m", f"remounted {self.clock}", "HEAD")
        elif first == "gc-in-mount":
            self.both("gc", "-q", "--prune=now")

    # -- what git shows, compared after the remount --------------------------------------------
    def shown(self, side: Any) -> dict[str, str]:
        """What git shows of its own state on ``side`` beyond the model's check: the status
        header's HEAD lines, `symbolic-ref`, the stash list, the worktree-local config value."""
        status = side.git("status", "--porcelain=v2", "--branch", "--no-ahead-behind").stdout
        return {
            "head": "".join(
                ln + "\n" for ln in status.splitlines() if ln.startswith(("# branch.oid", "# branch.head"))
            ),
            "symbolic-ref": side.git("symbolic-ref", "-q", "HEAD", check=False).stdout,
            "stash": side.git("stash", "list", "--format=%H %gs").stdout,
            "config": side.git("config", "--get", CONFIG_KEY, check=False).stdout,
        }

    def reflogs(self, vault_gc: bool = False) -> str:
        """The mount's HEAD reflog and its branch's (a remount changes neither in a plain
        worktree); none where git's gc of the vault runs: it expires the entries older than
        `gc.reflogExpire` (the model's dates are 2023's: every one) of the branch and of
        every worktree it sees, in a plain repository too (and it sees the mount's where a
        loaded machine's unmount killed its daemon at 10 s, before it kept git's state)."""
        refs = () if vault_gc else ("HEAD", "refs/heads/f")
        return "".join(
            self.m.git("reflog", "show", "--format=%H %gs", ref, check=False).stdout for ref in refs
        )

    def deep_check(self, reflogs: str, vault_gc: bool = False) -> None:
        """Right after the remount: :meth:`shown` the same on both sides, the mount's reflogs
        ``reflogs`` as before the unmount (:meth:`reflogs`), and `git fsck` in the mount finds nothing (but
        gitmodel22's accepted line of ORIG_HEAD's log)."""
        where = " | ".join(self.steps[-4:])  # type: ignore[attr-defined]
        m, p = self.shown(self.m), self.shown(self.p)
        assert m == p, f"git shows another state after a remount, after: {where}\nmount: {m}\nplain: {p}"
        now = self.reflogs(vault_gc)
        assert now == reflogs, (
            f"the mount's reflogs changed at a remount, after: {where}\nbefore: {reflogs}\nafter: {now}"
        )
        got = self.m.git("fsck", "--no-dangling", "--no-progress", check=False)
        lines = (got.stdout + got.stderr).splitlines()
        said = [ln for ln in lines if not ORIG_HEAD_LOGGED.fullmatch(ln)]
        assert not said and (got.returncode == 0 or lines), (
            f"git fsck after a remount: {got.stdout}{got.stderr}"
        )

    # -- the step --------------------------------------------------------------------------------
    @rule(first=st.sampled_from(FIRSTS), second=st.sampled_from(SECONDS), vault_gc=st.booleans())
    def remount_between(self, first: str, second: str, vault_gc: bool = False) -> None:
        """git's ``first``, `avfs unmount`, (``vault_gc``) `git gc --prune=now` of the vault,
        `avfs mount`, :meth:`deep_check`, git's ``second``."""
        self.first_step(first)
        reflogs = self.reflogs(vault_gc)
        self._tick()
        self.note(
            "avfs unmount" + ("; git --git-dir=VAULT gc --prune=now" if vault_gc else "") + "; avfs mount"
        )
        self._avfs("unmount", self.mp)
        try:
            if vault_gc:  # (its reflogs kept: the plain side reads the vault's objects)
                subprocess.run(
                    ["git", "--git-dir", self.vault, "gc", "-q", "--prune=now"],
                    env=self.p.env,
                    check=True,
                    capture_output=True,
                )
        finally:
            self._avfs("mount", "--backend", self.backend, self.mp)
        self.kept.clear()  # (every file of the new mount read again)
        self.deep_check(reflogs, vault_gc)
        if second == "status":
            self.both("status", "-s")
        elif second == "commit":
            self.both("commit", "-q", "-a", "-m", "after a remount")
        elif second == "add":
            self.both("add", "-A")
        elif self._bisecting():
            self.both("bisect", "reset")
        elif self.busy() is not None:
            self.settle("abort")
        if self._bisecting():  # (an open bisect is no state the model's other steps know)
            self.both("bisect", "reset")
        self.last_checkpoint = False
