"""The git model's steps of its thirtieth round (gitmodel30, tests/test_git_model30.py runs
them): git's commands a person or an agent plausibly runs in a mount that no earlier
round's step ran (every step name of tests/gitmodel_steps*.py and tests/test_git_model.py
checked against git's porcelain first), each on the mount and a plain clone, checked after
every step, each followed by one of avfs's own (gitmodel22's ``then22``), then a checkpoint:

- ``revert-range``: `git revert --no-edit HEAD~2..HEAD` (git's sequencer, two reverts).
- ``revert-range-conflict``: a commit over the line HEAD~1 made, `git revert HEAD~1 HEAD`
  (the first revert conflicts; the sequencer open), then (busy: avfs refuses), the file
  resolved by hand, `revert --continue` (and `--skip`/`--abort` where it stops again).
- ``rebase-exec-fails``: `git rebase -x 'echo ... >> FILE; false' HEAD~1`: the exec line
  writes an untracked file and fails, the rebase stops (avfs refuses meanwhile), `rebase
  --continue` finishes it.
- ``stash-pop-index``: a file staged, another changed unstaged, a new file staged, `git
  stash`, a commit of a third file, `git stash pop --index` (the staging given back).
- ``stash-staged``: `git stash push --staged` (git 2.35: only what is staged), then a
  commit, then `git stash pop`.
- ``apply-reject``: a two-hunk patch of README.md whose end hunk no longer applies, `git
  apply --reject` (one hunk in, `README.md.rej` written, git exits 1), the `.rej` removed.
- ``huge-file``: a 24 MiB file (past the size a blob is read whole: streamed) `git add`ed; then; a commit; one byte of its middle changed (the step's checkpoint).
- ``add-u``: a change, a removal and an untracked file, `git add -u`, `git commit` (the
  untracked file left).
- ``reset-p``: two hunks of README.md staged, `git reset -p` of the first (answers on stdin).
- ``octopus``: `git merge side up/topic` (an octopus merge commit of three parents, or
  git's refusal and its state given up alike).
- ``nested-repo``: `git init` of a directory inside the tree and a commit there (a nested
  repository, as an agent's `git clone` of a dependency into the workspace makes), the
  outer `git status` and the then (a checkpoint records its files, as docs/fuse.md
  "Nested repositories" decides: the plain side's nested git dir is kept outside its work
  tree); the nested repository removed. (Its files recorded, then `avfs unmount` and an
  `avfs write`: tests/test_git_model30.py's own test, the fix of this round.)
- ``restore-source-dir``: `git restore --source=HEAD~2 --staged --worktree -- docs`, then
  a commit of it.
- ``odd-names``: files whose names hold spaces, a quote, a backslash, a leading dash, glob
  characters, accents (composed and not), an emoji, `git add -A` and a commit; then; one
  changed, one `git mv`ed, one removed, and `commit -a`.
- ``many-files``: 600 new files in 24 directories, `git add -A`, a commit; then; `git rm
  -r` of half the directories, a commit.
- ``moves-while-open``: git's revert of two commits stopped by a conflict, and a rebase
  stopped by its failing exec line, and meanwhile avfs's own moves of the branch, `avfs
  merge side` and `avfs revert HEAD`: each refused (`git_in_progress`, exit 75), nothing
  changed, as a checkpoint, an undo and a restore are (before gitmodel30 both went
  through: the merge's index written whole over git's conflict, and `rebase --continue`
  put its own result over the merge); then git's operation given up.
- ``pop-index-conflict``: a staged change and an unstaged one stashed, a commit of the
  staged file's other content, `git stash pop --index` (git refuses: the index cannot take
  the stash's, conflicts stay out, the stash kept), then `reset --hard`, `stash pop` (a
  conflict in the file: unmerged), then (busy-free: a stash pop opens nothing), the
  conflict taken as is and the stash dropped.

A mixin of :class:`tests.test_git_model.GitModel` on gitmodel29's."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

from .gitmodel_steps22 import FIRST_HUNK, THEN22
from .gitmodel_steps29 import TwentyNinthRoundSteps
from .test_git_model import _avfs

COMMANDS30 = (
    "revert-range",
    "octopus",
    "revert-range-conflict",
    "rebase-exec-fails",
    "stash-pop-index",
    "stash-staged",
    "apply-reject",
    "huge-file",
    "add-u",
    "reset-p",
    "nested-repo",
    "restore-source-dir",
    "odd-names",
    "many-files",
    "pop-index-conflict",
    "moves-while-open",
)
MANY = "gen-30"  # (many-files: 24 directories of 25 files, as a generator or `npm install` writes)
# names a person's files have and no step wrote: a space (leading and trailing too), a
# quote, a backslash, a leading dash, glob characters, a colon, accents (composed and
# not), an emoji (a control character or, on pure FUSE, a byte that is not UTF-8 the mount
# refuses, EINVAL: docs/security.md)
ODD_NAMES = (
    "docs/with space.md",
    'docs/quote"d.md',
    "docs/back\\slash.md",
    "-dash-30.md",
    "docs/glob*?[x].md",
    " lead and trail .md",
    "docs/colon:30.md",
    "docs/\u00fcml\u00e4ut-\u00df.md",
    "docs/u\u0308ml-decomposed.md",
    "docs/emoji-\U0001f600.md",
)
EXEC_MARK = "exec-failed-30.txt"
HUGE = "data/huge-30.bin"
# (over recordblobs.WHOLE on the overlay backend: a checkpoint streams it; on pure FUSE,
# whose reads the daemon serves, less: the streaming is the same for both)
# past STREAM_MIN (16 MiB: its blob streamed, never read whole), on both backends; a file
# past the record's WHOLE (64 MiB) in a mount is test_fuse's 2 GiB one (65 MiB here cost
# ~2 min of the step's CPU a run at load 20-25: the suite's time, the lead's cut)
HUGE_SIZES = {"overlay": 24 << 20, "fuse": 24 << 20}
NESTED = "nested-30"
UNTRACKED = "docs/untracked-30.md"


class ThirtiethRoundSteps(TwentyNinthRoundSteps):
    """The steps; see the module's docstring."""

    @precondition(lambda self: self.busy() is None and self.has("HEAD~2") and self.has("side"))
    @rule(what=st.sampled_from(COMMANDS30), then=st.sampled_from(THEN22))
    def command30_then(self, what: str, then: str) -> None:
        self._committed(f"before {what}")
        getattr(self, "_cmd30_" + what.replace("-", "_"))(then)
        if self.busy() is None:
            self.checkpoint(False)
        self.last_checkpoint = False

    def _rm_both(self, rel: str) -> None:
        self.note(f"rm -rf {rel}")
        for side in (self.p, self.m):
            full = os.path.join(side.root, rel)
            if os.path.isdir(full) and not os.path.islink(full):
                shutil.rmtree(full)
            elif os.path.lexists(full):
                os.unlink(full)

    # -- git's sequencer over ranges ------------------------------------------------------
    def _cmd30_revert_range(self, then: str) -> None:
        if not self.both("revert", "--no-edit", "HEAD~2..HEAD") and self.busy() is not None:
            self.both("revert", "--abort")
        self.then22(then)

    def _cmd30_revert_range_conflict(self, then: str) -> None:
        self.diverge()
        self.write_all({"README.md": f"a line over diverge's {self.clock}\n"})
        self.both("commit", "-q", "-m", "over diverge", "--", "README.md")
        if not self.both("revert", "--no-edit", "HEAD~1", "HEAD"):
            self.then22(then)  # (git's sequencer open: refused, as any busy state)
            for finish in ("--continue", "--skip", "--abort"):
                if self.busy() is None:
                    break
                if finish == "--continue":
                    self.write_all({"README.md": f"resolved by hand {self.clock}\n"})
                    self.both("add", "--", "README.md")
                self.both("revert", finish)
        else:
            self.then22(then)

    def _cmd30_rebase_exec_fails(self, then: str) -> None:
        script = f"echo 'the exec line ran {self.clock}' >> {EXEC_MARK}; false"
        if not self.both("rebase", "-q", "-x", script, "HEAD~1"):
            self.then22(then)
            for _ in range(3):
                if self.busy() is None:
                    break
                self.both("rebase", "--continue")
            if self.busy() is not None:
                self.both("rebase", "--abort")
        else:
            self.then22(then)

    # -- stashes that keep what was staged --------------------------------------------------
    def _cmd30_stash_pop_index(self, then: str) -> None:
        files = self._files(3)
        if len(files) < 3:
            return
        a, b, c = files
        self.write_all({a: f"staged for the stash {self.clock}\n", b: f"unstaged {self.clock}\n"})
        self.write_all({UNTRACKED: f"new and staged {self.clock}\n"})
        self.both("add", "--", a, UNTRACKED)
        if not self.both("stash", "push", "-q"):
            return
        self.write_all({c: f"committed over the stash {self.clock}\n"})
        self.both("commit", "-q", "-m", "over the stash", "--", c)
        self.then22(then)
        if not self.both("stash", "pop", "-q", "--index"):
            self.both("reset", "-q", "--hard")
            self.both("stash", "drop", "-q")

    def _cmd30_stash_staged(self, then: str) -> None:
        files = self._files(2)
        if len(files) < 2:
            return
        a, b = files
        self.write_all({a: f"staged, stashed alone {self.clock}\n", b: f"left unstaged {self.clock}\n"})
        self.both("add", "--", a)
        if not self.both("stash", "push", "-q", "--staged"):
            return
        self.then22(then)
        if self.busy() is None and not self.clean():
            self.both("commit", "-q", "-a", "-m", "the unstaged change, committed")
        if not self.both("stash", "pop", "-q"):
            self.both("reset", "-q", "--hard")
            self.both("stash", "drop", "-q")

    # -- patches ---------------------------------------------------------------------------
    def _cmd30_apply_reject(self, then: str) -> None:
        if not self._two_hunks("apply-reject"):
            return
        patch = os.path.join(self.home, f"reject-{self.clock}.patch")
        self.note(f"git diff > {patch} (plain side); checkout README.md")
        with open(patch, "w") as fh:
            fh.write(self.p.git("diff", "--", "README.md").stdout)
        self.both("checkout", "-q", "--", "README.md")
        for side in (self.p, self.m):
            with open(os.path.join(side.root, "README.md"), "a") as fh:
                fh.write(f"a new last line {self.clock}\n")
        self.note("README.md: a new last line")
        self.both("commit", "-q", "-m", "the end moved", "--", "README.md")
        self.both("apply", "--reject", patch)
        self.then22(then)
        self._rm_both("README.md.rej")
        os.unlink(patch)

    # -- a huge file --------------------------------------------------------------------------
    def _cmd30_huge_file(self, then: str) -> None:
        block = bytes(range(256)) * 4096  # (1 MiB: a pattern zlib takes fast)
        size = HUGE_SIZES[self.backend]
        self.note(f"write {HUGE} ({size >> 20} MiB); git add")
        for side in (self.p, self.m):
            full = os.path.join(side.root, HUGE)
            os.makedirs(os.path.dirname(full), exist_ok=True)
            with open(full, "wb") as fh:
                for i in range(size >> 20):
                    fh.write(block[i:] + block[:i])
        self.both("add", "--", HUGE)
        self.then22(then)  # (a checkpoint, an exec's record: avfs's, streamed)
        if self.busy() is None and not self.clean():
            self.both("commit", "-q", "-m", "a huge file")
        self.note(f"{HUGE}: one byte of its middle changed (then the step's checkpoint)")
        for side in (self.p, self.m):
            fd = os.open(os.path.join(side.root, HUGE), os.O_WRONLY)
            try:
                os.pwrite(fd, b"\xff", size // 2 + 7)
            finally:
                os.close(fd)

    # -- the index, by hand -------------------------------------------------------------------
    def _cmd30_add_u(self, then: str) -> None:
        files = self._files(2)
        if len(files) < 2:
            return
        self.write_all({files[0]: f"changed for add -u {self.clock}\n", UNTRACKED: "left untracked\n"})
        self._rm_both(files[1])
        self.both("add", "-u")
        self.then22(then)
        if self.busy() is None:
            self.both("commit", "-q", "-m", "add -u")

    def _cmd30_reset_p(self, then: str) -> None:
        if not self._two_hunks("reset-p"):
            return
        self.both("add", "--", "README.md")
        self.both_input(FIRST_HUNK, "reset", "-p")
        self.then22(then)

    def _cmd30_restore_source_dir(self, then: str) -> None:
        self.both("restore", "--source=HEAD~2", "--staged", "--worktree", "--", "docs")
        self.then22(then)
        if self.busy() is None and self.p.git("diff", "--cached", "--quiet", check=False).returncode:
            self.both("commit", "-q", "-m", "docs as HEAD~2 had them")

    # -- merges and a nested repository -------------------------------------------------------
    def _cmd30_octopus(self, then: str) -> None:
        self.fetched()
        if not self.both("merge", "-q", "--no-edit", "side", "up/topic"):
            if self.busy() == "merge":
                self.both("merge", "--abort")
            else:
                self.both("reset", "-q", "--merge")
        self.then22(then)

    def _cmd30_nested_repo(self, then: str) -> None:
        # (avfs's decision, docs/fuse.md "Nested repositories": a nested repository's work
        # tree is the fork's files, its `.git` not; the plain side's nested repository keeps
        # its git dir outside its work tree, so that `add -A` there records its files too,
        # not the gitlink of an embedded repository, which would name a commit the vault
        # does not hold)
        self.note(f"git init {NESTED}; a commit there")
        for side in (self.p, self.m):
            where = os.path.join(side.root, NESTED)
            os.makedirs(where)
            env = dict(side.env)
            if side is self.p:
                env.update(GIT_DIR=os.path.join(self.home, f"{NESTED}-plain.git"), GIT_WORK_TREE=where)
            with open(os.path.join(where, "inner.txt"), "w") as fh:
                fh.write(f"inside a nested repository {self.clock}\n")
            for args in (["init", "-q"], ["add", "inner.txt"], ["commit", "-q", "-m", "inner"]):
                subprocess.run(["git", *args], cwd=where, env=env, check=True, capture_output=True)
        got = [side.git("status", "--porcelain").stdout for side in (self.p, self.m)]
        assert got[0] == got[1], got
        self.then22(then)
        self._rm_both(NESTED)
        shutil.rmtree(os.path.join(self.home, f"{NESTED}-plain.git"))

    # -- names a person's files have ---------------------------------------------------------
    def _cmd30_odd_names(self, then: str) -> None:
        self.write_all({name: f"an odd name {i} {self.clock}\n" for i, name in enumerate(ODD_NAMES)})
        self.both("add", "-A")
        self.both("commit", "-q", "-m", "odd names")
        self.then22(then)
        if self.busy() is not None:
            return
        self.write_all({ODD_NAMES[1]: f"changed {self.clock}\n"})
        self.both("mv", "--", ODD_NAMES[4], "docs/moved *glob.md")
        self.both("rm", "-q", "--", ODD_NAMES[8])
        self.both("commit", "-q", "-a", "-m", "odd names moved")

    # -- many files at once ---------------------------------------------------------------------
    def _cmd30_many_files(self, then: str) -> None:
        self.note(f"write {MANY}/d00..d23/f00..f24")
        for side in (self.p, self.m):
            for d in range(24):
                where = os.path.join(side.root, MANY, f"d{d:02d}")
                os.makedirs(where, exist_ok=True)
                for f in range(25):
                    with open(os.path.join(where, f"f{f:02d}.txt"), "w") as fh:
                        fh.write(f"generated {d} {f} {self.clock}\n")
        self.both("add", "-A")
        self.both("commit", "-q", "-m", "many files")
        self.then22(then)
        if self.busy() is None:
            self.both("rm", "-r", "-q", "--", *(f"{MANY}/d{d:02d}" for d in range(0, 24, 2)))
            self.both("commit", "-q", "-m", "half of them removed")

    # -- a stash whose index cannot come back ---------------------------------------------------
    def _cmd30_pop_index_conflict(self, then: str) -> None:
        files = self._files(2)
        if len(files) < 2:
            return
        a, b = files
        self.write_all({a: f"staged in the stash {self.clock}\n", b: f"unstaged in the stash {self.clock}\n"})
        self.both("add", "--", a)
        if not self.both("stash", "push", "-q"):
            return
        self.write_all({a: f"committed over the stash's staging {self.clock}\n"})
        self.both("commit", "-q", "-m", "over the stash's staging", "--", a)
        if self.both("stash", "pop", "-q", "--index"):
            self.then22(then)
            return
        self.both("reset", "-q", "--hard")
        popped = self.both("stash", "pop", "-q")
        self.then22(then)
        if not popped:
            self.both("add", "-A")
            self.both("reset", "-q")
            self.both("stash", "drop", "-q")

    # -- avfs's own moves of the branch while git has an operation open -------------------------
    def _refused_moves(self) -> None:
        """`avfs merge side` and `avfs revert HEAD` in the mount while git has an operation
        open there: refused, nothing changed (the plain side does nothing)."""
        op = self.busy()
        for args in (("merge", "side"), ("revert", "HEAD")):
            self._tick()
            self.note(f"avfs {' '.join(args)} (refused: {op})")
            res = _avfs(self.avfs_home, "--json", *args, cwd=self.mp, check=False)
            doc = json.loads(res.stdout)
            assert res.returncode == 75 and doc["kind"] == "error", res.stdout + res.stderr
            assert doc["error"]["code"] == "git_in_progress", res.stdout + res.stderr

    def _cmd30_moves_while_open(self, then: str) -> None:
        self.diverge()
        self.write_all({"README.md": f"a line over diverge's {self.clock}\n"})
        self.both("commit", "-q", "-m", "over diverge", "--", "README.md")
        if not self.both("revert", "--no-edit", "HEAD~1", "HEAD") and self.busy() is not None:
            self._refused_moves()
            self.then22(then)
            self.both("revert", "--abort")
        script = f"echo 'the exec line ran {self.clock}' >> {EXEC_MARK}; false"
        if not self.both("rebase", "-q", "-x", script, "HEAD~1") and self.busy() is not None:
            self._refused_moves()
            self.both("rebase", "--abort")
