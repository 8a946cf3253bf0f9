"""The git model's steps of its sixteenth round (gitmodel16, tests/test_git_model16.py runs
them): git commands a person or an agent runs that the model did not yet: an index git
writes at version 4 (what `feature.manyFiles` makes) with something staged the files do
not show, then a checkpoint; `git add -N`; `git rerere` replaying a resolution; `git
cherry-pick -n` of a range and `git revert -n` of one; hunks chosen on stdin by `add -p`,
`reset -p`, `checkout -p`, `restore -p --staged` and `commit -p`; `git stash branch` (the
mount's guard refuses the switch: the stash stays); `git switch --orphan`; `git merge
--no-commit` (a checkpoint refused meanwhile); `rebase --update-refs`, `rebase -r`,
`rebase -i --root`, `rebase --exec`; `commit --fixup=amend:`/`reword:` then
`--autosquash`; a second worktree locked, moved, removed by hand and pruned; notes in a
ref of their own (`notes --ref=review`, `copy`); `.gitattributes` made `-text`/`binary`
and `git add --renormalize`; a submodule whose origin is a local bare repository, `deinit`
and `update --init` of it. What git did that avfs did not (a replaced commit, a nested
clone, `core.fileMode=false`) was in tests/test_git_model16.py as strict xfails, until
gitmodel17 (tests/test_git_model17.py).

A mixin of :class:`tests.test_git_model.GitModel`, as :class:`.gitmodel_steps15.FifteenthRoundSteps`
(its own class, :class:`tests.test_git_model16.GitModel16`, draws them). Each step's
non-git actions are noted in a line."""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

from .gitmodel_attrs import ModelAttrs

# answers to an interactive hunk selection over README.md's two hunks (its top and end)
HUNK_COMMANDS = {
    "add-p": ("y\nn\n", ["add", "-p", "--", "README.md"]),
    "reset-p": ("y\nn\n", ["reset", "-q", "-p", "--", "README.md"]),
    "checkout-p": ("y\nn\n", ["checkout", "-p", "--", "README.md"]),
    "restore-staged-p": ("n\ny\n", ["restore", "-p", "--staged", "--", "README.md"]),
    "commit-p": ("y\nn\n", ["commit", "-q", "-p", "-m", "one hunk of two", "--", "README.md"]),
}
# `.gitattributes` a person changes, then `git add --renormalize .`
RENORMALIZED = {"-text": "*.txt -text\n*.png binary\n", "binary": "*.txt binary\n", "auto": "* text=auto\n"}
INTENT_PATH = "intended.txt"


class SixteenthRoundSteps(ModelAttrs):
    """The steps; see the module's docstring."""

    # what else the model has (annotations only: the model's own are used)
    clean: Any
    has: Any
    tracked: Any
    fetched: Any
    diverge: Any
    conflicted: Any
    write_all: Any
    write_bytes: Any
    checkpoint: Any
    refused_while_busy: Any
    switched_back: Any
    both_input: Any
    _tick: Any

    def _edit_both(self, path: str, edit: Any, what: str) -> None:
        """``edit(text)`` of ``path``'s text written on both sides (noted as ``what``)."""
        self.note(f"edit {path}: {what}")
        for side in (self.p, self.m):
            full = os.path.join(side.root, path)
            with open(full) as fh:
                text = fh.read()
            with open(full, "w") as fh:
                fh.write(edit(text))

    def _git_path(self, side: Any, name: str) -> str:
        return os.path.join(side.root, side.git("rev-parse", "--git-path", name).stdout.strip())

    # -- an index at version 4 ---------------------------------------------------------------
    @precondition(lambda self: self.busy() is None)
    @rule(version=st.sampled_from(["4", "2"]), staged=st.sampled_from(["rm-cached", "add-reverted"]))
    def index_version(self, version: str, staged: str) -> None:
        """`git update-index --index-version V` (4: names compressed, what
        `feature.manyFiles` makes a new index), something staged the files do not show
        (`git rm --cached tox.ini`, the file kept; or a change of README.md `git add`ed
        and the file written back), a new file, then `avfs checkpoint save`: the new file
        recorded, what git staged still staged and the index still at V (before gitmodel16
        a version 4 index was written whole from the checkpoint's commit: the staged
        removal or change was gone, and the index was at version 2)."""
        self.both("update-index", "--index-version", version)
        if staged == "rm-cached":
            if "tox.ini" in self.tracked() and os.path.isfile(os.path.join(self.p.root, "tox.ini")):
                self.both("rm", "-q", "--cached", "--", "tox.ini")
        elif "README.md" in self.tracked() and os.path.isfile(os.path.join(self.p.root, "README.md")):
            self._edit_both("README.md", lambda t: t + "staged, then written back\n", "a line at the end")
            self.both("add", "--", "README.md")
            self._edit_both("README.md", lambda t: t[: -len("staged, then written back\n")], "that line out")
        self.write_all({"docs/index-version.md": f"beside an index at version {version}\n"})
        self.checkpoint(False)
        for side in (self.p, self.m):
            with open(self._git_path(side, "index"), "rb") as fh:
                head = fh.read(8)
            assert head == b"DIRC" + int(version).to_bytes(4, "big"), f"{side.root}'s index: {head!r}"

    @precondition(lambda self: self.busy() is None)
    @rule(how=st.sampled_from(["add", "rm-cached"]))
    def split_index(self, how: str) -> None:
        """`git config core.splitIndex true` and a `git status`, a new file `git add`ed
        (``add``) or a tracked one `git rm --cached` and kept (``rm-cached``: staged, not in
        the files), `git update-index --split-index` (git's entries moved to a shared index
        the index then names by a `link` extension), `avfs checkpoint save`, then the
        setting off (`git update-index --no-split-index`). Before gitmodel16 the checkpoint
        patched the split index's few entries and dropped its link: git in the mount saw
        every other file staged as removed; before gitmodel17 it wrote the index whole from
        its commit: the staged removal was dropped (git's `commit --only` keeps it)."""
        self.both("config", "core.splitIndex", "true")
        self.both("status", "--porcelain")
        self.write_all({"docs/split-index.md": "written under a split index\n"})
        if how == "add":
            self.both("add", "--", "docs/split-index.md")
        elif "tox.ini" in self.tracked() and os.path.isfile(os.path.join(self.p.root, "tox.ini")):
            self.both("rm", "-q", "--cached", "--", "tox.ini")
        self.both("update-index", "--split-index")  # (split now, whatever git's heuristics)
        self.checkpoint(False)
        self.both("config", "--unset", "core.splitIndex")
        self.both("update-index", "--no-split-index")

    # -- intent to add -----------------------------------------------------------------------
    @rule(how=st.sampled_from(["checkpoint", "commit", "status"]))
    def intent_to_add(self, how: str) -> None:
        """A new file and `git add -N` of it (an index entry of no content, git's
        intent-to-add bit), then `avfs checkpoint save`, `git commit -a`, or nothing."""
        self.write_all({INTENT_PATH: "meant to be added\n"})
        if not self.both("add", "-N", "--", INTENT_PATH):
            return
        if how == "checkpoint" and self.busy() is None:
            self.checkpoint(False)
        elif how == "commit" and self.busy() is None:
            self.both("commit", "-q", "-a", "-m", "an intended file")
        self.last_checkpoint = how == "checkpoint" and self.last_checkpoint

    # -- rerere ------------------------------------------------------------------------------
    @precondition(lambda self: self.busy() is None)
    @rule()
    def rerere(self) -> None:
        """`git config rerere.enabled true`, a merge of `side` that conflicts, resolved
        from `side` and committed, `reset --hard HEAD~1`, the merge again: rerere (its
        cache in the common git dir: the vault's, in the mount) resolves it as before;
        then `add -A` and a commit."""
        if not self.clean():
            return
        self.both("config", "rerere.enabled", "true")
        self.diverge()
        if self.both("merge", "-q", "--no-edit", "side") or self.busy() != "merge":
            self.last_checkpoint = False
            return
        for path in filter(
            None, self.p.git("diff", "--name-only", "-z", "--diff-filter=U").stdout.split("\0")
        ):
            if not self.both("checkout", "--theirs", "--", path):
                self.both("rm", "-q", "--", path)
        self.both("add", "-A")
        self.both("commit", "-q", "--no-edit")
        self.both("reset", "-q", "--hard", "HEAD~1")
        self.both("merge", "-q", "--no-edit", "side")  # (resolved by rerere: git still stops)
        rr = [self.p.git("rerere", "status").stdout, self.m.git("rerere", "status").stdout]
        assert rr[0] == rr[1], f"rerere status: plain {rr[0]!r}, mount {rr[1]!r}"
        if self.busy() == "merge":
            self.both("add", "-A")
            self.both("commit", "-q", "--no-edit")
        self.both("config", "rerere.enabled", "false")
        self.last_checkpoint = False

    # -- picks and reverts without commits -----------------------------------------------------
    @precondition(lambda self: self.busy() is None)
    @rule(then=st.sampled_from(["commit", "checkpoint"]))
    def cherry_pick_n(self, then: str) -> None:
        """`git cherry-pick -n HEAD..side up/topic`: the range's changes in the index and
        the files, no commit; then one `git commit` of them, or an avfs checkpoint (what
        git staged is what the files show). A conflict: given up alike."""
        if not self.clean():
            return
        self.fetched()
        if not self.both("cherry-pick", "-n", "HEAD..side", "up/topic"):
            self.both("cherry-pick", "--abort") if self.busy() is not None else self.both(
                "reset", "-q", "--merge"
            )
        elif then == "commit":
            self.both("commit", "-q", "-m", "picked without commits")
        else:
            self.checkpoint(False)
            return
        self.last_checkpoint = False

    @precondition(lambda self: self.busy() is None and self.has("HEAD~2"))
    @rule()
    def revert_n(self) -> None:
        """`git revert -n HEAD~2..HEAD`: the last two commits taken back in the index and
        the files, then one commit (a conflict: given up alike)."""
        if not self.clean():
            return
        if self.both("revert", "-n", "HEAD~2..HEAD"):
            self.both("commit", "-q", "-m", "two commits taken back")
        elif self.busy() is not None:
            self.both("revert", "--abort")
        else:
            self.both("reset", "-q", "--merge")
        self.last_checkpoint = False

    # -- hunks chosen on stdin -------------------------------------------------------------------
    @precondition(lambda self: self.busy() is None)
    @rule(how=st.sampled_from(sorted(HUNK_COMMANDS)))
    def hunks(self, how: str) -> None:
        """Two hunks in README.md (its top and end), then `add -p`, `reset -p` (staged
        first), `checkout -p`, `restore -p --staged` (staged first) or `commit -p`, the
        hunks chosen on stdin: one taken, one left."""
        if not self.clean() or "README.md" not in self.tracked():
            return
        self._edit_both("README.md", lambda t: "a hunk at the top\n" + t + "a hunk at the end\n", "two hunks")
        stdin, args = HUNK_COMMANDS[how]
        if how in ("reset-p", "restore-staged-p"):
            self.both("add", "--", "README.md")
        self.both_input(stdin, *args)
        self.last_checkpoint = False

    # -- branches the mount does not follow --------------------------------------------------------
    @precondition(lambda self: self.busy() is None)
    @rule()
    def stash_branch(self) -> None:
        """A change stashed, then `git stash branch sbN`: git makes sbN at the stash's
        commit and switches to it, which the mount's guard switches back (git exits 1
        before its pop): in the mount the stash stays and the files are as they were; on
        the plain side, that: `git branch sbN stash@{0}^`. Then `git stash pop` on both."""
        if not self.clean() or "README.md" not in self.tracked():
            return
        self.write_all({"README.md": "stashed for a branch\n"})
        if not self.both("stash", "push", "-q", "--", "README.md"):
            return
        self.forks += 1
        name = f"sb{self.forks}"
        self._tick()
        self.note(f"git stash branch {name} (switched back)")
        got = self.m.git("stash", "branch", name, check=False)
        assert got.returncode != 0, f"git stash branch in the mount: {got.stdout}{got.stderr}"
        self.p.git("branch", name, "stash@{0}^")
        ids = [side.git("rev-parse", name).stdout for side in (self.p, self.m)]
        assert ids[0] == ids[1], f"{name}: plain {ids[0]}, mount {ids[1]}"
        lists = [side.git("stash", "list").stdout for side in (self.p, self.m)]
        assert lists[0] == lists[1], f"stash list: plain {lists[0]!r}, mount {lists[1]!r}"
        if not self.both("stash", "pop", "-q"):
            self.both("reset", "-q", "--hard")
        self.last_checkpoint = False

    @rule()
    def switch_orphan(self) -> None:
        """`git switch --orphan NAME` (an empty index and work tree on an unborn branch):
        switched back, as :meth:`switch`."""
        self.forks += 1
        self.switched_back(["switch", "-q", "--orphan", f"orphan{self.forks}"])
        self.last_checkpoint = False

    @precondition(lambda self: self.busy() is None)
    @rule(data=st.data())
    def merge_no_commit(self, data: st.DataObject) -> None:
        """`git merge --no-commit --no-ff side`: merged into the index and the files, git's
        merge left open (a checkpoint refuses meanwhile), then committed; a conflict left
        open or aborted."""
        if not self.clean():
            return
        if self.both("merge", "--no-commit", "--no-ff", "side"):
            if self.busy() == "merge":  # (not where `side` is merged already: nothing open)
                self.refused_while_busy("checkpoint")
                self.both("commit", "-q", "--no-edit")
        elif self.busy() == "merge" and data.draw(st.booleans()):
            self.both("merge", "--abort")
        self.last_checkpoint = False

    # -- rebases of other kinds -----------------------------------------------------------------
    @precondition(lambda self: self.busy() is None and self.has("HEAD~2"))
    @rule(data=st.data(), how=st.sampled_from(["update-refs", "rebase-merges", "root", "exec"]))
    def rebase_kind(self, data: st.DataObject, how: str) -> None:
        """`rebase -f --update-refs HEAD~2` with a branch `mid` at HEAD~1 (moved to the
        commit made again in its place), `rebase -r -f HEAD~2` (merges made again), `rebase -i --root` squashing
        the second commit into the first (the whole history made again), `rebase --exec
        CMD HEAD~1` (CMD in the work tree after each commit)."""
        if self.p.git("status", "--porcelain", "--untracked-files=no").stdout.strip():
            return
        if how == "update-refs":
            self.both("branch", "-f", "mid", "HEAD~1")
            self.conflicted(data, "rebase", "rebase", "-q", "-f", "--update-refs", "HEAD~2")
            ids = [side.git("rev-parse", "mid").stdout for side in (self.p, self.m)]
            assert ids[0] == ids[1], f"mid: plain {ids[0]}, mount {ids[1]}"
        elif how == "rebase-merges":
            self.conflicted(data, "rebase", "rebase", "-q", "-r", "-f", "HEAD~2")
        elif how == "root":
            editor = "sequence.editor=sed -i -e '2s/^pick/squash/'"
            self.conflicted(data, "rebase", "-c", editor, "rebase", "-q", "-i", "--root")
        else:
            self.conflicted(data, "rebase", "rebase", "-q", "--exec", "echo ran >> exec-ran.txt", "HEAD~1")
        self.last_checkpoint = False

    @precondition(lambda self: self.busy() is None and self.has("HEAD~2"))
    @rule(data=st.data(), kind=st.sampled_from(["amend", "reword"]))
    def fixup_kind(self, data: st.DataObject, kind: str) -> None:
        """`git commit --fixup=amend:HEAD~1` of a change (its message replacing that
        commit's) or `--fixup=reword:HEAD~1` (the message alone), then `rebase -i
        --autosquash`."""
        if not self.clean() or "tox.ini" not in self.tracked():
            return
        if kind == "amend":
            self.write_all({"tox.ini": "# fixed up\n"})
        # (no `-m`: git refuses it with `amend:`; its message is "amend! SUBJECT" and the
        # commit's, kept by the model's GIT_EDITOR=true)
        args = ["commit", "-q", *(["-a"] if kind == "amend" else []), f"--fixup={kind}:HEAD~1"]
        if self.both(*args):
            base = "HEAD~3" if self.has("HEAD~3") else "HEAD~2"
            self.conflicted(
                data, "rebase", "-c", "sequence.editor=true", "rebase", "-q", "-i", "--autosquash", base
            )
        self.last_checkpoint = False

    # -- a second worktree's life ---------------------------------------------------------------
    @rule()
    def worktree_life(self) -> None:
        """`git worktree add --detach DIR HEAD` outside the work tree, `lock`, `unlock`,
        `move` to DIR2, DIR2 removed by hand (`rm -rf`), `git worktree prune`: the moved
        worktree is gone from `worktree list` and the side's own stays."""
        self.note("worktree add, lock, unlock, move, rm -rf, prune")
        for side, tag in ((self.p, "p"), (self.m, "m")):
            where = os.path.join(self.home, f"wt-life-{tag}")
            side.git("worktree", "add", "-q", "--detach", where, "HEAD")
            side.git("worktree", "lock", "--reason", "a model step", where)
            side.git("worktree", "unlock", where)
            side.git("worktree", "move", where, where + "2")
            shutil.rmtree(where + "2")
            side.git("worktree", "prune")
            listed = side.git("worktree", "list", "--porcelain").stdout
            assert f"worktree {where}" not in listed and f"worktree {side.root}\n" in listed, listed

    @rule(how=st.sampled_from(["add", "copy", "remove"]))
    def notes_ref(self, how: str) -> None:
        """Notes in a ref of their own (`git notes --ref=review`): added to HEAD, copied
        from HEAD to `side`, or removed from HEAD (refs/notes/review: the vault's, in the
        mount)."""
        args = {
            "add": ["add", "-f", "-m", "reviewed", "HEAD"],
            "copy": ["copy", "-f", "HEAD", "side"],
            "remove": ["remove", "--ignore-missing", "HEAD"],
        }[how]
        self.both("notes", "--ref=review", *args)

    # -- attributes changed, renormalized ---------------------------------------------------------
    @precondition(lambda self: self.busy() is None)
    @rule(which=st.sampled_from(sorted(RENORMALIZED)))
    def renormalize(self, which: str) -> None:
        """A CRLF text file committed, then `.gitattributes` changed (`*.txt -text` and
        `*.png binary`, `*.txt binary`, or `* text=auto`) and `git add --renormalize .`:
        what the new rules make of the files already committed, then a commit."""
        self.write_bytes("crlf-notes.txt", b"one\r\ntwo\r\n", False)
        self.both("add", "--", "crlf-notes.txt")
        self.write_all({".gitattributes": RENORMALIZED[which]})
        self.both("add", "--renormalize", ".")
        self.both("add", "--", ".gitattributes")
        self.both("commit", "-q", "-m", f"renormalized ({which})")
        self.last_checkpoint = False

    # -- a submodule whose origin is a bare repository ----------------------------------------------
    def bare_origin(self) -> str:
        """A local bare repository (a clone of a one-commit library), made once."""
        bare = os.path.join(self.home, "sublib.git")
        if not os.path.isdir(bare):
            lib = os.path.join(self.home, "sublib-src")
            env = self.p.env
            subprocess.run(["git", "init", "-q", "-b", "main", lib], env=env, check=True, capture_output=True)
            with open(os.path.join(lib, "lib.txt"), "w") as fh:
                fh.write("a library from a bare origin\n")
            for args in (("add", "-A"), ("commit", "-q", "-m", "a library")):
                subprocess.run(["git", *args], cwd=lib, env=env, check=True, capture_output=True)
            subprocess.run(
                ["git", "clone", "-q", "--bare", lib, bare], env=env, check=True, capture_output=True
            )
        return bare

    @precondition(lambda self: self.busy() is None)
    @rule(then=st.sampled_from(["deinit", "update", "checkpoint"]))
    def submodule_bare(self, then: str) -> None:
        """`git submodule add BARE vendor/libN` (a local bare repository as its origin) and
        a commit, then `submodule deinit -f` (its files gone, the gitlink stays),
        `deinit` then `submodule update --init` (checked out again from its origin), or a
        file written and `avfs checkpoint save`; then `git rm -f` of it and a commit."""
        bare = self.bare_origin()
        self.forks += 1
        at = f"vendor/lib{self.forks}"
        allow = ("-c", "protocol.file.allow=always")
        if not self.both(*allow, "submodule", "add", "-q", bare, at):
            return
        self.both("commit", "-q", "-m", "a submodule from a bare origin")
        if then in ("deinit", "update"):
            self.both("submodule", "deinit", "-q", "-f", "--", at)
            if then == "update":
                self.both(*allow, "submodule", "update", "-q", "--init", "--", at)
            status = [side.git("submodule", "status", "--", at).stdout for side in (self.p, self.m)]
            assert status[0] == status[1], f"submodule status: plain {status[0]!r}, mount {status[1]!r}"
        else:
            self.write_all({"beside-the-submodule.txt": f"beside {at}\n"})
            self.checkpoint(False)
        self.both("rm", "-q", "-f", "--", at)
        self.both("commit", "-q", "-m", "the submodule out", "--", at, ".gitmodules")
        self.last_checkpoint = False
