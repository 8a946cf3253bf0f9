"""The git model's steps of its twelfth round (gitmodel12, tests/test_git_model.py runs
them): `git am` of a series stopped by a conflict then `--skip`, `git rebase -i` with an
`exec` line, `git stash -u` whose pop meets a conflict (a tracked file changed since, an
untracked file in the way), one of two changes of a file staged by `git apply --cached`,
a directory's case changed by `git mv`, `git rm --cached` then a checkpoint, `git
submodule add` of a local repository then a checkpoint, a file replaced by a link to a
directory and back, an empty file and one without a last newline under `core.autocrlf`,
`git reset --soft HEAD~2` across an avfs checkpoint, `git worktree add` inside the mount,
and avfs's own `merge` of another fork into the mounted one (its git equivalent on the
plain side: the capture as a checkpoint, then the merge commit avfs made, checked against
`git merge-tree`, taken as `git reset --keep`).

A mixin of :class:`tests.test_git_model.GitModel`, as :class:`tests.gitmodel_steps.
TenthRoundSteps`: the older rules' draws stay as they were (a seed runs the same older
steps; hypothesis picks among more rules, so a seed's sequence is a new one all the same)."""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

# `git rebase -i`'s todo list with an `exec` line after the first pick (git runs it with
# the shell in the work tree: here, a file written there and a git command)
EXEC_LINE = "exec echo ran >> exec-ran.txt && git log -1 --format=%s >> exec-ran.txt"
EXEC_SCRIPT = f'sed -i -e "1a {EXEC_LINE}"'


class TwelfthRoundSteps:
    """The steps; see the module's docstring."""

    # what the model has (annotations only: the model's own are used)
    backend: str
    p: Any
    m: Any
    home: str
    avfs_home: str
    mp: str
    last_checkpoint: bool
    forks: int
    both: Any
    note: Any
    busy: Any
    clean: Any
    has: Any
    tracked: Any
    files: Any
    pick: Any
    conflicted: Any
    checkpoint: Any
    am_series: Any
    am_open: Any
    diverge: Any
    write_all: Any
    write_bytes: Any
    plain_checkpoint: Any
    _tick: Any

    # -- git's sequencers ---------------------------------------------------------------------
    @precondition(lambda self: self.busy() is None)
    @rule(data=st.data(), how=st.sampled_from(["--skip", "--abort"]))
    def am_skip(self, data: st.DataObject, how: str) -> None:
        """A commit of README.md's last line (:meth:`GitModel.diverge`), then `git am -3` of
        side's and topic's series, which stops at side's patch, then `git am --skip` (the
        rest applied: topic's commit) or `--abort`."""
        if not self.clean():
            return
        self.diverge()
        self.am_series(_Never())
        if self.busy() == "rebase" and self.am_open():
            self.both("am", how)
        self.last_checkpoint = False

    @precondition(lambda self: self.busy() is None and self.has("HEAD~2"))
    @rule(data=st.data())
    def rebase_exec(self, data: st.DataObject) -> None:
        """`git rebase -i HEAD~2` whose todo list gets an `exec` line after its first pick
        (GIT_SEQUENCE_EDITOR's job): git runs it in the work tree between the picks (it
        writes an untracked file and runs `git log`)."""
        if self.p.git("status", "--porcelain", "--untracked-files=no").stdout.strip():
            return
        self.conflicted(
            data, "rebase", "-c", f"sequence.editor={EXEC_SCRIPT}", "rebase", "-q", "-i", "HEAD~2"
        )
        self.last_checkpoint = False

    # -- stashes and the index ----------------------------------------------------------------
    @precondition(lambda self: self.busy() is None)
    @rule(in_the_way=st.booleans())
    def stash_u_conflict(self, in_the_way: bool) -> None:
        """README.md changed and an untracked file written, `git stash -u`, then README.md
        changed and committed (``in_the_way``: the untracked file written again instead),
        and `git stash pop`: git refuses or conflicts and keeps the stash; undone alike
        (`reset --hard`, the untracked file removed) and popped again, or dropped."""
        if not self.clean():
            return
        self.write_all({"README.md": "stashed -u\n", "stash-u.txt": "untracked, stashed\n"})
        if not self.both("stash", "-q", "-u"):
            return
        if in_the_way:
            self.write_all({"stash-u.txt": "in the stash's way\n"})
        else:
            self.write_all({"README.md": "committed over the stash\n"})
            self.both("commit", "-q", "-a", "-m", "over the stash -u")
        if not self.both("stash", "pop", "-q"):
            self.both("reset", "-q", "--hard")
            self.note("rm -f stash-u.txt")
            for side in (self.p, self.m):
                path = os.path.join(side.root, "stash-u.txt")
                if os.path.lexists(path):
                    os.unlink(path)
            if in_the_way:
                self.both("stash", "pop", "-q")
            else:
                self.both("stash", "drop", "-q")
        self.last_checkpoint = False

    @rule()
    def apply_cached(self) -> None:
        """Two changes of README.md (a line at its top, one at its end), and only the first
        staged: the first hunk of `git diff -U0` applied to the index (`git apply --cached
        --unidiff-zero`), what `git add -p` does without a terminal."""
        self.note("two hunks in README.md, the first staged")
        if "README.md" not in self.tracked() or os.path.islink(os.path.join(self.p.root, "README.md")):
            return
        for side in (self.p, self.m):
            path = os.path.join(side.root, "README.md")
            if not os.path.isfile(path):
                return
        for side in (self.p, self.m):
            path = os.path.join(side.root, "README.md")
            with open(path, "rb") as fh:
                text = fh.read()
            with open(path, "wb") as fh:
                fh.write(b"a first line\n" + text + b"a last line\n")
        diff = self.p.git("diff", "-U0", "--no-color", "--", "README.md").stdout
        head, sep, rest = diff.partition("\n@@")
        if not sep:
            return
        first = head + sep + rest.split("\n@@", 1)[0] + "\n"
        patch = os.path.join(self.home, "first-hunk.patch")
        with open(patch, "w") as fh:
            fh.write(first)
        self.both("apply", "--cached", "--unidiff-zero", patch)
        self.last_checkpoint = False

    @rule(data=st.data())
    def mv_dir_case(self, data: st.DataObject) -> None:
        """`git mv DIR Dir` of a tracked directory (a case-only rename of many paths)."""
        dirs = sorted({f.split("/", 1)[0] for f in self.tracked() if "/" in f})
        path = self.pick(data, [d for d in dirs if os.path.isdir(os.path.join(self.p.root, d))])
        if path is None:
            return
        new = path.upper() if path != path.upper() else path.lower()
        if new != path and not os.path.lexists(os.path.join(self.p.root, new)):
            self.both("mv", "-k", path, new)
        self.last_checkpoint = False

    @precondition(lambda self: self.busy() is None)
    @rule(data=st.data())
    def rm_cached_checkpoint(self, data: st.DataObject) -> None:
        """`git rm --cached PATH` (the file stays, untracked), then `avfs checkpoint save`:
        the checkpoint records the files, so the path stays in the fork (git's removal
        from the index is not a change of the files), its index entry the commit's."""
        path = self.pick(data, [f for f in self.tracked() if os.path.lexists(os.path.join(self.p.root, f))])
        if path is None:
            return
        self.both("rm", "-q", "--cached", "--", path)
        self.checkpoint(False)

    @precondition(lambda self: self.busy() is None)
    @rule()
    def submodule_checkpoint(self) -> None:
        """`git submodule add` of a local repository (at `libN`) and `git commit` of it, a
        file written and `avfs checkpoint save` (the gitlink stays, the submodule's files
        are not recorded), then the submodule taken out again (`git rm -f`, its
        repository in the worktree's git dir kept) and a commit. (A checkpoint straight
        after `git submodule add`, before git's commit, records the submodule's files where
        `git add -A` records the gitlink: found in gitmodel12, not fixed, docs/fuse.md
        "Submodules"; not a step until it is.)"""
        lib = os.path.join(self.home, "sublib")
        if not os.path.isdir(lib):
            env = self.p.env
            subprocess.run(["git", "init", "-q", "-b", "main", lib], env=env, check=True, capture_output=True)
            with open(os.path.join(lib, "lib.txt"), "w") as fh:
                fh.write("a library\n")
            for args in (("add", "-A"), ("commit", "-q", "-m", "a library")):
                subprocess.run(["git", *args], cwd=lib, env=env, check=True, capture_output=True)
        self.forks += 1
        at = f"lib{self.forks}"
        if self.both("-c", "protocol.file.allow=always", "submodule", "add", "-q", lib, at):
            self.both("commit", "-q", "-m", "a submodule")
            self.write_all({"with-a-submodule.txt": f"beside {at}\n"})
            self.checkpoint(False)
            self.both("rm", "-q", "-f", "--", at)
            self.both("commit", "-q", "-m", "the submodule out", "--", at, ".gitmodules")
        self.last_checkpoint = False

    # -- the kinds of files -------------------------------------------------------------------
    @rule(data=st.data())
    def link_to_dir(self, data: st.DataObject) -> None:
        """A tracked file replaced by a link to a directory (`ln -s src PATH`), `git add`
        of it, then the link replaced by a file again."""
        path = self.pick(data, [f for f in self.tracked() if os.path.isfile(os.path.join(self.p.root, f))])
        if path is None or os.path.basename(path).startswith(".git"):
            return
        target = os.path.relpath("src", os.path.dirname(path) or ".")
        self.note(f"ln -sfn {target} {path}; git add; back to a file")
        for side in (self.p, self.m):
            full = os.path.join(side.root, path)
            os.unlink(full)
            os.symlink(target, full)
        self.both("add", "--", path)
        for side in (self.p, self.m):
            full = os.path.join(side.root, path)
            os.unlink(full)
            with open(full, "w") as fh:
                fh.write("a file again\n")
        self.last_checkpoint = False

    @precondition(lambda self: self.busy() is None)
    @rule(value=st.sampled_from(["true", "input"]), commit=st.booleans())
    def autocrlf_edges(self, value: str, commit: bool) -> None:
        """Under `core.autocrlf` (``true`` or ``input``): an empty file and one without a
        last newline (LF and CRLF inside), committed by git or checkpointed by avfs."""
        self.both("config", "core.autocrlf", value)
        self.write_bytes("empty.txt", b"", False)
        self.write_bytes("no-newline.txt", b"one\r\ntwo\nlast", False)
        if commit:
            self.both("add", "--", "empty.txt", "no-newline.txt")
            self.both("commit", "-q", "-m", "edges", "--", "empty.txt", "no-newline.txt")
        else:
            self.checkpoint(False)
        self.last_checkpoint = False

    # -- git over avfs's own commits ------------------------------------------------------------
    @precondition(lambda self: self.busy() is None)
    @rule()
    def reset_soft_over_checkpoint(self) -> None:
        """A change checkpointed by avfs, another committed by git, then `git reset --soft
        HEAD~2`: both commits gone from the branch, their changes staged."""
        self.write_all({"soft.txt": "checkpointed\n"})
        self.checkpoint(False)
        self.write_all({"soft.txt": "committed\n"})
        self.both("commit", "-q", "-a", "-m", "over a checkpoint")
        if self.has("HEAD~2"):
            self.both("reset", "-q", "--soft", "HEAD~2")
        self.last_checkpoint = False

    @precondition(lambda self: self.busy() is None)
    @rule(how=st.sampled_from(["detach", "break"]))
    def leave_after_commits(self, how: str) -> None:
        """Two `git commit`s (no avfs command between: the model's check runs after the
        step), then git leaves the branch at the commit before them: `git checkout --detach
        HEAD~2`, or `git rebase -i HEAD~2` whose todo list starts with `break` (left open).
        Before gitmodel12 the next avfs command took the branch as another hand's move and
        made the mount the branch's under git's HEAD (docs/fuse.md "One state, two
        writers")."""
        if not self.clean():
            return
        for word in ("left one\n", "left two\n"):
            self.write_all({"LEFT.txt": word})
            self.both("add", "--", "LEFT.txt")
            self.both("commit", "-q", "-m", word.strip(), "--", "LEFT.txt")
        if how == "detach":
            self.both("checkout", "-q", "--detach", "HEAD~2")
        else:
            self.both("-c", "sequence.editor=sed -i -e 1ibreak", "rebase", "-q", "-i", "HEAD~2")
        self.last_checkpoint = False

    @precondition(lambda self: self.busy() is None)
    @rule()
    def worktree_inside(self) -> None:
        """`git worktree add -b wiN inner` inside the work tree (a nested repository in the
        mount, docs/fuse.md), a commit there, then `git worktree remove`: the new branch
        (a fork, in the mount) holds the commit alike, nothing left in the tree."""
        self._tick()
        self.forks += 1
        branch = f"wi{self.forks}"
        self.note(f"worktree-inside {branch}")
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

    @precondition(lambda self: self.busy() is None)
    @rule(no_ff=st.booleans())
    def avfs_merge(self, no_ff: bool) -> None:
        """`avfs vault fork fN`, a file written and checkpointed there, then `avfs merge fN`
        into the mounted fork (``--no-ff``: a merge commit even where a fast-forward does).
        The plain side: what avfs captured first as a checkpoint, then avfs's merge commit
        (its tree `git merge-tree`'s, its parents the fork's then fN's) taken with `git
        reset --keep`, as `git merge` moves the files and the index; refused where git staged
        what the capture would not record (h-merge13), nothing moved on either side."""
        self._tick()
        self.forks += 1
        name = f"mf{self.forks}"
        self.note(f"avfs merge of fork {name}" + (" --no-ff" if no_ff else ""))
        avfs = _avfs()
        avfs(self.avfs_home, "vault", "fork", "v:f", name, cwd=self.home)
        other = f"v:{name}"
        avfs(self.avfs_home, "--vault", other, "write", f"from-{name}.txt", f"from {name}\n", cwd=self.home)
        avfs(self.avfs_home, "--vault", other, "checkpoint", "save", "-m", name, cwd=self.home)
        theirs = self.m.git("rev-parse", f"refs/heads/{name}").stdout.strip()
        head0 = self.m.git("rev-parse", "HEAD").stdout.strip()
        res = avfs(
            self.avfs_home, "--json", "merge", name, *(["--no-ff"] if no_ff else []), cwd=self.mp, check=False
        )
        doc = json.loads(res.stdout)
        head1 = self.m.git("rev-parse", "HEAD").stdout.strip()
        if res.returncode == 1 and doc["error"]["code"] == "dirty_workspace":
            # what git staged there and the capture would not record refuses it (h-merge13;
            # `git merge` refuses a true merge over it too): staged on the plain side as well
            # (its index differs from HEAD at each path named), nothing moved
            assert head1 == head0, doc
            staged = self.p.git("diff", "--cached", "--name-only", "--no-renames", "HEAD").stdout.split()
            assert set(doc["error"]["details"]["staged"]) <= set(staged), (doc, staged)
            return
        assert res.returncode == 0, f"avfs merge {name}: {res.stdout}{res.stderr}"
        parents = self.m.git("log", "-1", "--format=%P", head1).stdout.split()
        if len(parents) == 2:
            ours = parents[0]
            assert parents[1] == theirs, f"merge {head1}: parents {parents}, {name} is {theirs}: {doc}"
            if ours != head0:  # (what the fork had uncheckpointed, captured first)
                assert self.plain_checkpoint("merge capture", commit=ours), doc
            assert self.p.git("rev-parse", "HEAD").stdout.strip() == ours, doc
            want = self.p.git("merge-tree", "--write-tree", ours, theirs).stdout.split()[0]
            got = self.m.git("rev-parse", f"{head1}^{{tree}}").stdout.strip()
            assert got == want, f"avfs merge's tree {got}, git merge-tree's {want}: {doc}"
        else:
            assert head1 == theirs and not self.p.changes(), f"not a fast-forward to {theirs}: {doc}"
        self.p.git("reset", "-q", "--keep", head1)
        self.last_checkpoint = False


class _Never:
    """A stand-in for hypothesis's ``data`` whose draws are False (leave it open)."""

    def draw(self, _strategy: Any) -> bool:
        return False


def _avfs() -> Any:
    from .test_git_model import _avfs as run  # (the model's module imports this one)

    return run
