"""The git model's steps of its twenty-eighth round (gitmodel28, tests/test_git_model28.py
runs them): git's commands a person or an agent runs in a worktree that no earlier
round's sequence ran, each followed by one of avfs's own (gitmodel22's ``then22``), then
finished alike on both sides.

- ``skip_then(op)``: a commit the next pick of `side` meets (:meth:`GitModel.diverge`),
  then `git rebase side`, `git cherry-pick side` or (over a commit of the same line)
  `git revert HEAD~1`, each stopped by the conflict and given up for that commit alone
  with `--skip`; then.
- ``strategy_then(how)``: the same commit, then `git merge -X ours side`, `-X theirs`,
  `-s ours`, or `--ff-only` (refused alike: no fast-forward); then.
- ``plumbing_then(how)``: git's plumbing as scripts use it: ``read-tree`` (`read-tree -m
  -u HEAD HEAD~1`: the index and the files moved to HEAD~1's tree, HEAD not),
  ``reset-tree`` (a file changed, a tracked one removed, `read-tree --reset -u HEAD`),
  ``checkout-index`` (tracked files removed and one changed, `checkout-index -a -f`),
  ``commit-tree`` (`hash-object -w`, `update-index --add --cacheinfo`, `write-tree`,
  `commit-tree -p HEAD`, `update-ref HEAD`: a commit made without `git commit`),
  ``really-refresh`` (a file's times changed, `update-index --really-refresh`),
  ``reindex`` (`rm -r --cached .` then `add -A`: the whole index made again); then.
- ``stash_store_then``: a local change, `git stash create` (the same commit on both
  sides: its dates fixed), `git stash store`, `reset --hard`; then; `stash pop`.
- ``mv_force_then``: `git mv -f A B` over another tracked file; then; a commit.
- ``filter_branch_then``: `git filter-branch --index-filter` of the last two commits (a
  file removed from them: the fork's branch rewritten, `refs/original/` kept); then.

A mixin of :class:`tests.test_git_model.GitModel` on gitmodel22's (``then22``,
``both_input``, ``_committed``)."""

from __future__ import annotations

import os
import subprocess
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

from .gitmodel_steps22 import THEN22, TwentySecondRoundSteps

SKIPS = ("rebase", "cherry-pick", "revert")
STRATEGIES = ("-X ours", "-X theirs", "-s ours", "--ff-only")
PLUMBING = (
    "read-tree",
    "reset-tree",
    "checkout-index",
    "commit-tree",
    "really-refresh",
    "reindex",
    "subtree",
    "index-info",
    "prefix-copy",
    "add-chmod",
    "apply-rename",
)
SUBTREE = "vendor-28/"
FORCED = ("changed", "removed", "beside")
FORCED_FILE = "docs/forced-28.gen"
PLUMBED = "docs/plumbed-28.txt"
FILTERED = "docs/filtered-28.txt"


class TwentyEighthRoundSteps(TwentySecondRoundSteps):
    """The steps; see the module's docstring."""

    diverge: Any
    write_all: Any
    clock: int
    _tick: Any

    def _each(self, fn: Any) -> list[str]:
        """``fn(side)`` on the plain side then the mount's (stdout stripped)."""
        return [str(fn(side)).strip() for side in (self.p, self.m)]

    def _files(self, n: int) -> list[str]:
        """``n`` tracked regular files (not links) other than README.md, sorted."""
        out = []
        for f in self.tracked():
            full = os.path.join(self.p.root, f)
            if f != "README.md" and os.path.isfile(full) and not os.path.islink(full) and "/" in f:
                out.append(f)
            if len(out) == n:
                break
        return out

    # -- a conflict given up for one commit -------------------------------------------------
    @precondition(lambda self: self.busy() is None and self.has("side"))
    @rule(op=st.sampled_from(SKIPS), then=st.sampled_from(THEN22))
    def skip_then(self, op: str, then: str) -> None:
        self._committed(f"before {op} --skip")
        self.diverge()
        if op == "rebase":
            done = self.both("rebase", "-q", "side")
        elif op == "cherry-pick":
            done = self.both("cherry-pick", "side")
        else:  # (HEAD changes the line HEAD~1 made: its revert conflicts)
            self.write_all({"README.md": "a line over diverge's\n"})
            self.both("commit", "-q", "-m", "over diverge", "--", "README.md")
            done = self.both("revert", "--no-edit", "HEAD~1")
        if not done and self.busy() is not None:
            self.both(op, "--skip")
        self.then22(then)
        self.last_checkpoint = False

    @precondition(lambda self: self.busy() is None and self.has("side"))
    @rule(how=st.sampled_from(STRATEGIES), then=st.sampled_from(THEN22))
    def strategy_then(self, how: str, then: str) -> None:
        self._committed(f"before merge {how}")
        self.diverge()
        if not self.both("merge", "-q", "--no-edit", *how.split(), "side") and self.busy() == "merge":
            self.both("merge", "--abort")
        self.then22(then)
        self.last_checkpoint = False

    # -- git's plumbing ---------------------------------------------------------------------
    @precondition(lambda self: self.busy() is None and self.has("HEAD~1"))
    @rule(how=st.sampled_from(PLUMBING), then=st.sampled_from(THEN22))
    def plumbing_then(self, how: str, then: str) -> None:
        self._committed(f"before {how}")
        getattr(self, "_plumb_" + how.replace("-", "_"))()
        self.then22(then)
        self.last_checkpoint = False

    def _plumb_read_tree(self) -> None:
        self.both("read-tree", "-m", "-u", "HEAD", "HEAD~1")

    def _plumb_reset_tree(self) -> None:
        files = self._files(2)
        if len(files) < 2:
            return
        self.write_all({files[0]: f"changed before read-tree --reset {self.clock}\n"})
        self.note(f"rm {files[1]}")
        for side in (self.p, self.m):
            os.unlink(os.path.join(side.root, files[1]))
        self.both("read-tree", "--reset", "-u", "HEAD")

    def _plumb_checkout_index(self) -> None:
        files = self._files(3)
        if len(files) < 3:
            return
        self.note(f"rm {files[:2]}")
        for side in (self.p, self.m):
            for f in files[:2]:
                os.unlink(os.path.join(side.root, f))
        self.write_all({files[2]: f"changed before checkout-index {self.clock}\n"})
        self.both("checkout-index", "-a", "-f")

    def _plumb_commit_tree(self) -> None:
        self._tick()
        self.note("hash-object -w, update-index --cacheinfo, write-tree, commit-tree, update-ref HEAD")
        text = f"made by plumbing {self.clock}\n"
        blobs = self._each(
            lambda s: (
                subprocess.run(
                    ["git", "hash-object", "-w", "--stdin"],
                    cwd=s.root,
                    env=s.env,
                    input=text,
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
            )
        )
        assert blobs[0] == blobs[1], blobs
        self.both("update-index", "--add", "--cacheinfo", f"100644,{blobs[0]},{PLUMBED}")
        trees = self._each(lambda s: s.git("write-tree").stdout)
        assert trees[0] == trees[1], trees
        commits = self._each(lambda s: s.git("commit-tree", trees[0], "-p", "HEAD", "-m", "plumbed").stdout)
        assert commits[0] == commits[1], commits
        self.both("update-ref", "-m", "plumbed", "HEAD", commits[0])
        self.both("checkout-index", "-f", "--", PLUMBED)

    def _plumb_really_refresh(self) -> None:
        files = self._files(1)
        if not files:
            return
        self.note(f"touch {files[0]}")
        for side in (self.p, self.m):
            os.utime(os.path.join(side.root, files[0]), (self.clock, self.clock))
        self.both("update-index", "-q", "--really-refresh")

    def _plumb_reindex(self) -> None:
        self.both("rm", "-r", "-q", "--cached", ".")
        self.both("add", "-A")

    def _plumb_subtree(self) -> None:
        """side's tree read in under a prefix, its files written out (what `git subtree
        add` and a subtree merge do), committed, then removed by `git rm -r`."""
        if os.path.lexists(os.path.join(self.p.root, SUBTREE)):
            return
        self.both("read-tree", f"--prefix={SUBTREE}", "-u", "side")
        self.both("commit", "-q", "-m", "side vendored")
        self.both("rm", "-r", "-q", SUBTREE.rstrip("/"))

    def _plumb_index_info(self) -> None:
        """Entries staged by `update-index --index-info` (a mode and a path moved, one
        removed: what scripts feed it), the files then written from the index."""
        files = self._files(3)
        if len(files) < 3:
            return
        rows = self._each(lambda s: s.git("ls-files", "-s", "--", *files[:2]).stdout)
        assert rows[0] == rows[1], rows
        lines = []
        for row in rows[0].splitlines():
            meta, path = row.split("\t", 1)
            _mode, oid, _stage = meta.split()
            lines.append(f"100755 {oid}\t{path}-moved-28\n")
            lines.append(f"0 {'0' * 40}\t{path}\n")
        self.both_input("".join(lines), "update-index", "--index-info")
        self.both("checkout-index", "-f", "--", *(f"{f}-moved-28" for f in files[:2]))
        self.both("update-index", "--force-remove", "--", files[2])

    def _plumb_prefix_copy(self) -> None:
        """`checkout-index -a --prefix=DIR/`: every tracked file written again below a new
        directory (untracked there), then `git clean` of it."""
        self.both("checkout-index", "-a", "-f", "--prefix=copy-28/")
        self.both("clean", "-q", "-fd", "--", "copy-28")

    def _plumb_add_chmod(self) -> None:
        """A new file added executable by `add --chmod=+x` (its file not), one tracked file
        made executable in the index alone."""
        files = self._files(1)
        self.write_all({"docs/chmod-28.sh": f"echo {self.clock}\n"})
        self.both("add", "--chmod=+x", "--", "docs/chmod-28.sh", *files)

    def _plumb_apply_rename(self) -> None:
        """A commit that renames a file and flips its exec bit, as a patch (`format-patch
        -M`), the commit taken back (`reset --hard HEAD~1`), then `apply --index` of it."""
        files = self._files(1)
        if not files:
            return
        src, dst = files[0], f"{files[0]}-renamed-28"
        self.both("mv", src, dst)
        self.both("update-index", "--chmod=+x", "--", dst)
        self.both("commit", "-q", "-m", "renamed and executable")
        self.note("format-patch -M -1 HEAD")
        path = os.path.join(self.home, "rename-28.patch")
        with open(path, "w") as fh:
            fh.write(self.p.git("format-patch", "-M", "-1", "--stdout", "HEAD").stdout)
        self.both("reset", "-q", "--hard", "HEAD~1")
        self.both("apply", "--index", path)

    # -- a stash made by hand ---------------------------------------------------------------
    @precondition(lambda self: self.busy() is None)
    @rule(then=st.sampled_from(THEN22))
    def stash_store_then(self, then: str) -> None:
        self._committed("before stash create")
        if not self._two_hunks("stash-created"):
            return
        self._tick()
        self.note("git stash create; git stash store")
        made = self._each(lambda s: s.git("stash", "create", "by hand").stdout)
        assert made[0] == made[1] and made[0], made
        self.both("stash", "store", "-m", "stored by hand", made[0])
        self.both("reset", "-q", "--hard")
        self.then22(then)
        if self.busy() is None and not self.both("stash", "pop", "-q"):
            self.both("reset", "-q", "--hard")
            self.both("stash", "drop", "-q")
        self.last_checkpoint = False

    # -- a rename over a tracked file -------------------------------------------------------
    @precondition(lambda self: self.busy() is None)
    @rule(then=st.sampled_from(THEN22))
    def mv_force_then(self, then: str) -> None:
        self._committed("before mv -f")
        files = self._files(2)
        if len(files) < 2:
            return
        self.both("mv", "-f", files[0], files[1])
        self.then22(then)
        if self.busy() is None and not self.clean():
            self.both("commit", "-q", "-m", "moved over another")
        self.last_checkpoint = False

    # -- a tracked file its ignore rule names ------------------------------------------------
    @precondition(lambda self: self.busy() is None)
    @rule(how=st.sampled_from(FORCED), then=st.sampled_from(THEN22))
    def force_added_then(self, how: str, then: str) -> None:
        """A rule of a new `.gitignore` naming ``*.gen``, a file it names `git add -f`ed and
        committed (tracked: git's rules no longer apply to it), then the file ``changed``
        or ``removed`` (git lists both: `M`, `D`), or another file it names ``beside``
        (ignored: listed by nobody); then; `git commit -a` of what is left."""
        self._committed("before add -f")
        if not os.path.exists(os.path.join(self.p.root, FORCED_FILE)):
            self.write_all({"docs/.gitignore": "*.gen\n", FORCED_FILE: f"generated {self.clock}\n"})
            self.both("add", "--", "docs/.gitignore")
            self.both("add", "-f", "--", FORCED_FILE)
            self.both("commit", "-q", "-m", "a generated file kept")
        if how == "changed":
            self.write_all({FORCED_FILE: f"generated again {self.clock}\n"})
        elif how == "removed":
            self.note(f"rm {FORCED_FILE}")
            for side in (self.p, self.m):
                os.unlink(os.path.join(side.root, FORCED_FILE))
        else:
            self.write_all({"docs/beside-28.gen": f"ignored {self.clock}\n"})
        self.then22(then)
        if self.busy() is None and not self.clean():
            self.both("commit", "-q", "-a", "-m", "after add -f")
        self.last_checkpoint = False

    # -- history rewritten by filter-branch -------------------------------------------------
    @precondition(lambda self: self.busy() is None)
    @rule(then=st.sampled_from(THEN22))
    def filter_branch_then(self, then: str) -> None:
        self._committed("before filter-branch")
        self.write_all({FILTERED: f"to be filtered out {self.clock}\n"})
        self.both("add", "--", FILTERED)
        self.both("commit", "-q", "-m", "a file filter-branch removes")
        self.write_all({"README.md": f"after the filtered file {self.clock}\n"})
        self.both("commit", "-q", "-a", "-m", "after it")
        self.both(
            "filter-branch",
            "-f",
            "--index-filter",
            f"git rm -q --cached --ignore-unmatch {FILTERED}",
            "HEAD~2..HEAD",
        )
        self.then22(then)
        self.last_checkpoint = False
