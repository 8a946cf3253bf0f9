"""The git model's steps of its thirteenth round (gitmodel13, tests/test_git_model.py runs
them), each with avfs's own commands among git's: a remount between git's steps, a
checkpoint straight after `git submodule add` (before git's commit: the gitlink is
recorded, docs/fuse.md "Submodules"), `git switch -C`/`checkout -B` of the fork's own
branch to an older commit and of a new one, a `git commit -a` killed while its editor is
open (git's `index.lock` left: avfs's status works, its checkpoint refuses and changes
nothing, then the lock removed and git commits), a binary patch applied with `git apply
--index`/`--cached`, a rename and an exec-bit change staged together, a symlink replaced
by a directory, `commit-graph`/`multi-pack-index` writes in the mount, git's fsmonitor
turned off for the work tree, the index's untracked cache turned off and on, a `proxy
exec` that edits files without git, and a real project's history replayed (attrs's
releases).

A mixin of :class:`tests.test_git_model.GitModel`, as :class:`.gitmodel_steps.TenthRoundSteps`
(the older rules' draws stay as they were: a seed runs the same older steps). Each step's
non-git actions are noted in a line tests/replay_gitmodel.py replays."""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

from .gitmodel_attrs import ModelAttrs

# a `git commit` whose editor kills it (git runs the editor as `sh -c 'EDITOR "$@"'`: its
# parent is git), with `index.lock` held (`-a`: the index written under the lock first)
KILLING_EDITOR = "kill -9 $PPID; :"
LOCK_WAIT = 2  # seconds a checkpoint waits for the lock a killed git left (AVFS_LOCK_WAIT)
RELEASES = ["22.2.0", "23.1.0", "23.2.0", "24.1.0"]  # attrs's, replayed by ``release``
BINARY = b"\x89PNG\r\n\x1a\n\x00binary\x00" + bytes(range(256))


class ThirteenthRoundSteps(ModelAttrs):
    """The steps; see the module's docstring."""

    # what else the model has (annotations only: the model's own are used)
    clock: int
    has: Any
    clean: Any
    tracked: Any
    pick: Any
    switched_back: Any
    checkpoint: Any
    exec_script: Any
    write_all: Any
    check: Any
    _tick: Any

    # -- avfs's own mount, between git's steps ---------------------------------------------
    @precondition(lambda self: self.busy() is None)
    @rule()
    def remount(self) -> None:
        """`avfs unmount` then `avfs mount` of the fork (the same backend), where git has
        nothing staged or marked in its index: the files, git's status, the history and
        avfs's status as before (the plain side does nothing). Not where git has staged
        something or has an operation open: the remount loses that (found in gitmodel13,
        not fixed: docs/fuse.md "What a remount keeps of git's own state")."""
        if self.p.git("diff", "--cached", "--quiet", check=False).returncode != 0 or self.p.flags():
            return
        self.remount_now()

    def remount_now(self) -> None:
        self.note("avfs unmount; avfs mount")
        avfs = _avfs()
        avfs(self.avfs_home, "--vault", "v:f", "unmount", self.mp, cwd=self.home)
        avfs(self.avfs_home, "--vault", "v:f", "mount", "--backend", self.backend, self.mp, cwd=self.home)
        self.kept.clear()  # (every file of the new mount read again)
        # (avfs's note of what git staged outlives the remount since gitmodel20: kept with git's state)

    # -- submodules: avfs's checkpoint before git's commit ---------------------------------
    @precondition(lambda self: self.busy() is None)
    @rule(commit=st.booleans())
    def submodule_add_checkpoint(self, commit: bool) -> None:
        """`git submodule add` of a local repository (at `libN`), then `avfs checkpoint
        save` at once (before git's commit: it records the gitlink git staged, as `git add
        -A` does, and `.gitmodules`), then the submodule taken out (`git rm -f`) and that
        recorded by `git commit` or by another checkpoint."""
        lib = self.sublib()
        self.forks += 1
        at = f"lib{self.forks}"
        if self.both("-c", "protocol.file.allow=always", "submodule", "add", "-q", lib, at):
            self.checkpoint(False)
            self.both("rm", "-q", "-f", "--", at)
            if commit:
                self.both("commit", "-q", "-m", "submodule-out", "--", at, ".gitmodules")
            else:
                self.checkpoint(False)
        self.last_checkpoint = False

    def sublib(self) -> str:
        """A local repository of one commit (made once), as gitmodel12's step uses."""
        lib = os.path.join(self.home, "sublib")
        if not os.path.isdir(lib):
            env = self.p.env
            subprocess.run(["git", "init", "-q", "-b", "main", lib], env=env, check=True, capture_output=True)
            with open(os.path.join(lib, "lib.txt"), "w") as fh:
                fh.write("a library\n")
            for args in (("add", "-A"), ("commit", "-q", "-m", "a library")):
                subprocess.run(["git", *args], cwd=lib, env=env, check=True, capture_output=True)
        return lib

    # -- branches forced ----------------------------------------------------------------------
    @precondition(lambda self: self.busy() is None and self.has("HEAD~1"))
    @rule(how=st.sampled_from(["switch-C-own", "checkout-B-own", "switch-C-new"]))
    def switch_force(self, how: str) -> None:
        """`git switch -C f HEAD~1` / `git checkout -B f HEAD~1`: the fork's own branch
        reset to its parent and checked out (local changes carried, or git refuses where
        they conflict), which the mount follows as any move git makes; `git switch -C
        swN` (a new branch at HEAD: switched back, the mount is its fork)."""
        if how == "switch-C-new":
            self.forks += 1
            self.switched_back(["switch", "-q", "-C", f"sw{self.forks}"])
        elif how == "switch-C-own":
            self.both("switch", "-q", "-C", "f", "HEAD~1")
        else:
            self.both("checkout", "-q", "-B", "f", "HEAD~1")
        self.last_checkpoint = False

    # -- a git killed with its lock held ---------------------------------------------------
    @precondition(lambda self: self.busy() is None)
    @rule(then_checkpoint=st.booleans())
    def killed_commit(self, then_checkpoint: bool) -> None:
        """A change, then `git commit -a` killed (-9) while its editor is open: git's
        `index.lock` stays. With it there, everything is checked (git's status, avfs's),
        and (``then_checkpoint``) `avfs checkpoint save` refuses (busy, exit 75, naming the
        lock) and changes nothing; then the lock removed by hand, as git's message says,
        and `git commit -a` made again."""
        self._tick()  # (a line of its own each time: the commit has something to commit)
        self.write_all({"KILLED.txt": f"a commit killed at {self.clock}\n"})
        self.both("add", "--", "KILLED.txt")
        self.kill_commit()
        self.check()
        if then_checkpoint:
            self.refused_locked()
            self.check()
        self.unlock()
        self.both("commit", "-q", "-a", "-m", "after-a-killed-commit")
        self.last_checkpoint = False

    def kill_commit(self) -> None:
        self._tick()
        self.note("git commit -a (killed)")
        for side in (self.p, self.m):
            env = {**side.env, "GIT_EDITOR": KILLING_EDITOR}
            got = subprocess.run(
                ["git", "commit", "-a"], cwd=side.root, env=env, capture_output=True, timeout=120
            )
            assert got.returncode == -9 or got.returncode == 137, (side.root, got)
            assert os.path.exists(self.lock_of(side)), side.root

    def lock_of(self, side: Any) -> str:
        path = str(side.git("rev-parse", "--git-path", "index.lock").stdout.strip())
        return path if os.path.isabs(path) else os.path.join(side.root, path)

    def refused_locked(self) -> None:
        """`avfs checkpoint save` with git's `index.lock` left: busy (exit 75) once the
        caller's ``AVFS_LOCK_WAIT`` is out (:data:`LOCK_WAIT`: the default 10 s was
        ~10 s of each every-command run's wall), the branch where it was."""
        self.note("avfs checkpoint save (refused: index.lock)")
        head = self.m.git("rev-parse", "HEAD").stdout
        argv = ("--json", "checkpoint", "save", "-m", "x")
        res = _avfs()(self.avfs_home, *argv, cwd=self.mp, check=False, lock_wait=LOCK_WAIT)
        doc = json.loads(res.stdout)
        assert res.returncode == 75 and doc["error"]["code"] == "busy", res.stdout + res.stderr
        assert "index.lock" in doc["error"]["message"], doc
        assert f"(waited {LOCK_WAIT} s)" in doc["error"]["message"], doc  # the caller's wait
        assert self.m.git("rev-parse", "HEAD").stdout == head

    def unlock(self) -> None:
        self.note("rm index.lock")
        for side in (self.p, self.m):
            os.unlink(self.lock_of(side))

    # -- patches and the kinds of files --------------------------------------------------------
    @precondition(lambda self: self.busy() is None)
    @rule(data=st.data(), how=st.sampled_from(["--index", "--cached"]))
    def binary_patch(self, data: st.DataObject, how: str) -> None:
        """A binary patch (`git diff --binary`: a PNG's bytes over a tracked file as HEAD
        has it, or a new file) applied with `git apply --index` (files and index) or
        `--cached` (the index only); where the file or the index differs from HEAD there,
        git refuses alike."""
        path = self.pick(data, [f for f in self.tracked() if os.path.isfile(os.path.join(self.p.root, f))])
        if path is None or os.path.islink(os.path.join(self.p.root, path)):
            path = "bin/new.bin"
        self.make_binary_patch(path)
        self.both("apply", how, os.path.join(self.home, "binary.patch"))
        self.last_checkpoint = False

    def make_binary_patch(self, path: str) -> None:
        """``home``/binary.patch: ``path`` (HEAD's blob, or none) made :data:`BINARY`, made in
        a scratch repository."""
        self.note(f"binary-patch {path}")
        shown = subprocess.run(
            ["git", "cat-file", "blob", f"HEAD:{path}"], cwd=self.p.root, env=self.p.env, capture_output=True
        )
        old = shown.stdout if shown.returncode == 0 else None
        scratch = os.path.join(self.home, "binpatch")
        env = self.p.env
        subprocess.run(["rm", "-rf", scratch], check=True)
        subprocess.run(["git", "init", "-q", scratch], env=env, check=True, capture_output=True)
        full = os.path.join(scratch, path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        if old is not None:
            with open(full, "wb") as fh:
                fh.write(old)
            for args in (("add", "-A"), ("commit", "-q", "-m", "before")):
                subprocess.run(["git", *args], cwd=scratch, env=env, check=True, capture_output=True)
        with open(full, "wb") as fh:
            fh.write(BINARY)
        subprocess.run(["git", "add", "-N", "--", path], cwd=scratch, env=env, check=True)
        diff = subprocess.run(
            ["git", "diff", "--binary", "--", path], cwd=scratch, env=env, check=True, capture_output=True
        ).stdout
        with open(os.path.join(self.home, "binary.patch"), "wb") as fh:
            fh.write(diff)

    @rule(data=st.data())
    def mode_rename(self, data: st.DataObject) -> None:
        """`git mv PATH PATH.x` and its exec bit flipped (`chmod`), then `git add` of it:
        a rename and a mode change staged together."""
        files = [f for f in self.tracked() if os.path.isfile(os.path.join(self.p.root, f))]
        path = self.pick(data, [f for f in files if not os.path.islink(os.path.join(self.p.root, f))])
        if path is None or os.path.lexists(os.path.join(self.p.root, path + ".x")):
            return
        if not self.both("mv", "--", path, path + ".x"):
            return
        new = path + ".x"
        mode = 0o644 if os.stat(os.path.join(self.p.root, new)).st_mode & 0o100 else 0o755
        self.note(f"chmod {mode:o} {new}")
        for side in (self.p, self.m):
            os.chmod(os.path.join(side.root, new), mode)
        self.both("add", "--", new)
        self.last_checkpoint = False

    @precondition(lambda self: self.busy() is None)
    @rule(how=st.sampled_from(["commit", "checkpoint"]))
    def link_to_tree(self, how: str) -> None:
        """A tracked symlink (`LINKED`, to README.md, committed) replaced by a directory of
        the same name with a file in it, recorded by `git add -A` and `git commit` or by
        `avfs checkpoint save`."""
        if not self.clean():
            return
        self.note("link-to-tree LINKED")
        for side in (self.p, self.m):
            full = os.path.join(side.root, "LINKED")
            if os.path.lexists(full) and not os.path.islink(full):
                return
        self.make_link()
        self.both("add", "--", "LINKED")
        self.both("commit", "-q", "-m", "a-link", "--", "LINKED")
        self.link_to_dir_now()
        if how == "commit":
            self.both("add", "-A", "--", "LINKED")
            self.both("commit", "-q", "-m", "link-made-a-directory", "--", "LINKED")
        else:
            self.checkpoint(False)
        self.last_checkpoint = False

    def make_link(self) -> None:
        self.note("ln -sfn README.md LINKED")
        for side in (self.p, self.m):
            full = os.path.join(side.root, "LINKED")
            if os.path.lexists(full):
                os.unlink(full)
            os.symlink("README.md", full)

    def link_to_dir_now(self) -> None:
        self.note("LINKED made a directory")
        for side in (self.p, self.m):
            full = os.path.join(side.root, "LINKED")
            os.unlink(full)
            os.mkdir(full)
            with open(os.path.join(full, "inside.txt"), "w") as fh:
                fh.write("was a link\n")

    # -- git's own files in the mount ----------------------------------------------------------
    @rule(how=st.sampled_from(["commit-graph", "multi-pack-index", "maintenance"]))
    def graphs(self, how: str) -> None:
        """`git commit-graph write --reachable --changed-paths`, `git multi-pack-index
        write`, `git maintenance run --task=commit-graph`: in the mount they write the
        vault's `objects/info/` (which libgit2 reads too)."""
        args = {
            "commit-graph": ["commit-graph", "write", "--reachable", "--changed-paths"],
            "multi-pack-index": ["multi-pack-index", "write"],  # (the mount's side only: below)
            "maintenance": ["maintenance", "run", "--quiet", "--task=commit-graph"],
        }[how]
        if how == "multi-pack-index":
            # (of the packs in the repository's own object store: the vault's in the mount,
            # the plain clone's own there, which may have none: git then says so, exit 1)
            self.note("git multi-pack-index write (the mount's side)")
            got = self.m.git(*args, check=False)
            assert got.returncode == 0 or "no pack files" in got.stderr, got.stderr
            return
        self.both(*args)

    @rule(then_remount=st.booleans())
    def fsmonitor_off(self, then_remount: bool) -> None:
        """`git config --worktree core.fsmonitor false`: the person turns git's fsmonitor
        off for this work tree (in the mount: avfs's hook, which its worktree config
        names, is no longer asked, and git looks at every file; on the plain side, its
        own hook), then (``then_remount``) a remount, which names avfs's hook again: git's
        answers are the same either way."""
        self.both("config", "--worktree", "core.fsmonitor", "false")
        if then_remount:
            self.remount()

    @rule(on=st.booleans())
    def untracked_cache(self, on: bool) -> None:
        """`git update-index --untracked-cache` / `--no-untracked-cache` (in the mount avfs's
        worktree config sets `core.untrackedCache`, which git warns of and keeps)."""
        self.both("update-index", "--untracked-cache" if on else "--no-untracked-cache")

    # -- a real project's history replayed -------------------------------------------------------
    @precondition(lambda self: self.busy() is None)
    @rule(data=st.data(), how=st.sampled_from(["commit", "checkpoint"]))
    def release(self, data: st.DataObject, how: str) -> None:
        """A real project's history replayed in the mount: attrs's releases (22.2.0 to
        24.1.0, tests/realdata.py ``history``: a commit each, its sdist's files) fetched
        from a local repository (`fetch --no-tags`, into the vault in the mount), then one
        release's tree taken whole by git (`restore --source=rel/main~N --staged --worktree
        -- .`: hundreds of files changed, added and removed as attrs really changed them)
        and recorded by `git commit` or by `avfs checkpoint save`."""
        if not self.clean():
            return
        self.fetch_releases()
        back = int(data.draw(st.integers(0, len(RELEASES) - 1)))
        self.both("restore", f"--source=rel/main~{back}", "--staged", "--worktree", "--", ".")
        if how == "commit":
            self.both("commit", "-q", "-m", f"release-{RELEASES[-1 - back]}")
        else:
            self.checkpoint(False)
        self.last_checkpoint = False

    def fetch_releases(self) -> None:
        """attrs's release history as ``rel/main`` on both sides (made and fetched once)."""
        if self.has("rel/main"):
            return
        from pathlib import Path

        from . import realdata

        hist = realdata.history("attrs", RELEASES, Path(self.home), aggressive=False)
        self.note(f"releases {hist}")
        self.both("fetch", "-q", "--no-tags", str(hist), "+refs/heads/main:refs/remotes/rel/main")

    # -- proxy exec without git -----------------------------------------------------------------
    @precondition(lambda self: self.busy() is None)
    @rule(data=st.data(), new=st.booleans())
    def exec_edit(self, data: st.DataObject, new: bool) -> None:
        """`avfs proxy exec -- sh -c 'printf ... >> PATH'`: a command that edits a tracked
        file (or makes a new one) and runs no git; the exec commits its change on top of
        its record of what was uncheckpointed (:meth:`GitModel.exec_script`)."""
        path = (
            "exec-made.txt" if new else self.pick(data, [f for f in self.tracked() if _plain_file(self, f)])
        )
        if path is None:
            return
        self.exec_script(f"printf 'from exec\\n' >> '{path}'")


def _plain_file(model: Any, path: str) -> bool:
    full = os.path.join(model.p.root, path)
    return os.path.isfile(full) and not os.path.islink(full) and "'" not in path


def _avfs() -> Any:
    from .test_git_model import _avfs as run  # (the model's module imports this one)

    return run
