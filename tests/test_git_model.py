"""git in the mount is a first-class writer, proved against plain git (docs/fuse.md, "git
inside the mount"): a hypothesis state machine runs the same random sequence of git commands
and file changes in a mounted fork and in a plain clone of the vault, with avfs's own
operations in between (status, checkpoint save, restore, undo, fork) each modelled on the
plain side by its git equivalent, and after every step requires the same state on both:
the files, `git status --porcelain=v2`, the history's trees (`git log --format='%T %P'`, each
parent named by its tree: avfs's checkpoints are commits of avfs's own author and time),
and `avfs --json status` against what the plain clone differs from its HEAD.

On a real project's files (attrs 24.2.0, tests/realdata.py), both backends. CI runs a small,
derandomized number of examples; scale it by hand (docs/testing.md):
``AVFS_MODEL_EXAMPLES=20 AVFS_MODEL_STEPS=60 pytest tests/test_git_model.py``.
"""

from __future__ import annotations

import json
import os
import shlex
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, seed, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from . import realdata
from .conftest import remove_home, scratch_home
from .test_fuse import require_fuse
from .test_overlay import require_overlay

EXAMPLES = int(os.environ.get("AVFS_MODEL_EXAMPLES", "3"))  # the first is hypothesis's simplest
SEED = int(os.environ.get("AVFS_MODEL_SEED", "27"))  # the same sequences on every run
STEPS = int(os.environ.get("AVFS_MODEL_STEPS", "12"))
BACKEND = "overlay"  # set per test below (a state machine class per backend)
LOG = os.environ.get("AVFS_MODEL_LOG")  # every step appended as it runs (read here: the tests drop AVFS_*)

NEW_NAMES = ["new.txt", "src/attr/added.py", "docs/notes.md", "deep/er/x.txt"]
WORDS = ["one\n", "two\n", "three\n", "changed line\n", "import os\n"]


def _tree(root: str) -> dict[str, Any]:
    """path -> (bytes, exec) | ("link", target) of the files below ``root`` (.git out)."""
    out: dict[str, Any] = {}
    for d, dirs, files in os.walk(root):
        dirs[:] = sorted(x for x in dirs if not (d == root and x == ".git"))
        for name in files:
            if d == root and name == ".git":
                continue
            p = os.path.join(d, name)
            rel = os.path.relpath(p, root)
            s = os.lstat(p)
            if stat.S_ISLNK(s.st_mode):
                out[rel] = ("link", os.readlink(p))
            else:
                with open(p, "rb") as fh:
                    out[rel] = (fh.read(), bool(s.st_mode & 0o100))
    return out


class Side:
    """One side: a directory where git runs (the mount, or the plain clone)."""

    def __init__(self, root: str, env: dict[str, str]) -> None:
        self.root = root
        self.env = env

    def git(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            ["git", *args],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"git {' '.join(args)} in {self.root}: {proc.stdout}{proc.stderr}")
        return proc

    def history(self) -> list[str]:
        """`git log --format='%T %P'`, each parent named by its tree."""
        rows = [ln.split() for ln in self.git("log", "--format=%H %T %P", "HEAD").stdout.splitlines() if ln]
        tree_of = {r[0]: r[1] for r in rows}
        return [" ".join([r[1], *(tree_of[p] for p in r[2:])]) for r in rows]

    def porcelain(self) -> list[str]:
        return sorted(self.git("status", "--porcelain=v2", "--untracked-files=all").stdout.splitlines())

    def changes(self) -> set[tuple[str, str]]:
        """What the working tree differs from HEAD: (path, added|modified|deleted), the
        untracked files git does not ignore included (what `avfs status` lists)."""
        out: set[tuple[str, str]] = set()
        self.git("update-index", "-q", "--refresh", check=False)
        tmp_index = os.path.join(self.root, "..", f"model-index-{os.getpid()}")
        env = {**self.env, "GIT_INDEX_FILE": os.path.abspath(tmp_index)}
        try:
            for args in (["read-tree", "HEAD"], ["add", "-A"]):
                subprocess.run(["git", *args], cwd=self.root, env=env, check=True, capture_output=True)
            diff = subprocess.run(
                ["git", "diff", "--cached", "--no-renames", "--name-status", "-z", "HEAD"],
                cwd=self.root,
                env=env,
                check=True,
                capture_output=True,
                text=True,
            ).stdout.split("\0")
        finally:
            if os.path.exists(tmp_index):
                os.unlink(tmp_index)
        words = {"A": "added", "M": "modified", "D": "deleted", "T": "modified"}
        for i in range(0, len(diff) - 1, 2):
            out.add((diff[i + 1], words[diff[i][0]]))
        return out


def _avfs(home: str, *args: str, cwd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AVFS_")}
    env["AVFS_HOME"] = home
    env["AVFS_LAYERS"] = os.environ.get("AVFS_LAYERS", "off")
    proc = subprocess.run(
        [sys.executable, "-m", "avfs_git", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"avfs {' '.join(args)}: {proc.stdout}{proc.stderr}")
    return proc


def _source(root: Path) -> Path:
    """A git checkout of attrs 24.2.0 (fork `main`) with a branch `side` one commit ahead
    (a changed and a new file): what merges, cherry-picks and rebases take."""
    src = realdata.extract(realdata.pypi_sdist("attrs", "24.2.0"), root / "unpacked")
    env = {**os.environ, "GIT_AUTHOR_DATE": "@1700000000 +0000", "GIT_COMMITTER_DATE": "@1700000000 +0000"}

    def g(*args: str) -> None:
        subprocess.run(["git", *args], cwd=src, env=env, check=True, capture_output=True)

    g("init", "-q", "-b", "main")
    g("add", "-A")
    g("commit", "-qm", "attrs 24.2.0")
    g("checkout", "-qb", "side")
    with open(src / "README.md", "a") as fh:
        fh.write("\na line from side\n")
    (src / "SIDE.txt").write_text("made on side\n")
    g("add", "-A")
    g("commit", "-qm", "side")
    g("checkout", "-q", "main")
    return src


class GitModel(RuleBasedStateMachine):
    """The mount (``m``) and the plain clone (``p``), driven alike."""

    def __init__(self) -> None:
        super().__init__()
        self.home = scratch_home("gitmodel-")
        self.mounted = False
        self.clock = 1700000100
        self.forks = 0
        self.last_checkpoint = False  # the last step was a checkpoint that made a commit
        root = Path(self.home)
        avfs_home = str(root / "avfs")
        self.avfs_home = avfs_home
        src = _source(root)
        _avfs(avfs_home, "vault", "create", "v", "--from", str(src), cwd=self.home)
        _avfs(avfs_home, "vault", "fork", "v:main", "f", cwd=self.home)
        vault = _avfs(avfs_home, "--vault", "v", "vault", "path", cwd=self.home).stdout.strip()
        mp = str(root / "m")
        os.mkdir(mp)
        _avfs(avfs_home, "--vault", "v:f", "mount", "--backend", BACKEND, mp, cwd=self.home)
        self.mounted = True
        self.mp = mp
        env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
        env.update(
            GIT_CEILING_DIRECTORIES=str(root),
            GIT_CONFIG_NOSYSTEM="1",
            GIT_AUTHOR_NAME="Model",
            GIT_AUTHOR_EMAIL="model@example.invalid",
            GIT_COMMITTER_NAME="Model",
            GIT_COMMITTER_EMAIL="model@example.invalid",
            GIT_EDITOR="true",
        )
        self.env = env
        plain = str(root / "p")
        subprocess.run(
            ["git", "clone", "-q", "-b", "f", vault, plain], env=env, check=True, capture_output=True
        )
        self.m = Side(mp, env)
        self.p = Side(plain, env)
        self.p.git("branch", "side", "origin/side")
        self.steps: list[str] = []
        self.log = LOG
        self.note(f"--- new example ({BACKEND})")

    def teardown(self) -> None:
        if os.environ.get("AVFS_MODEL_VERBOSE"):
            print(f"\n{BACKEND}: {len(self.steps)} steps: " + " | ".join(self.steps), file=sys.stderr)
        try:
            if self.mounted:
                _avfs(self.avfs_home, "--vault", "v:f", "unmount", self.mp, cwd=self.home, check=False)
        finally:
            remove_home(self.home)

    # -- helpers ----------------------------------------------------------------------------
    def note(self, step: str) -> None:
        self.steps.append(step)
        if self.log:
            with open(self.log, "a") as fh:
                fh.write(step + "\n")

    def _tick(self) -> None:
        self.clock += 60
        date = f"@{self.clock} +0000"
        for side in (self.m, self.p):
            side.env["GIT_AUTHOR_DATE"] = date
            side.env["GIT_COMMITTER_DATE"] = date

    def both(self, *args: str) -> bool:
        """Run git ``args`` on both sides; they must succeed or fail alike (a failure is
        then aborted alike by the caller). True when they succeeded."""
        self._tick()
        self.note("git " + " ".join(args))
        a = self.p.git(*args, check=False)
        b = self.m.git(*args, check=False)
        assert (a.returncode == 0) == (b.returncode == 0), (
            f"git {' '.join(args)}: plain {a.returncode} {a.stderr!r}, mount {b.returncode} {b.stderr!r}"
        )
        return a.returncode == 0

    def tracked(self) -> list[str]:
        return sorted(self.p.git("ls-files").stdout.splitlines())

    def files(self) -> list[str]:
        return sorted(_tree(self.p.root))

    def pick(self, data: st.DataObject, paths: list[str]) -> str | None:
        if not paths:
            return None
        return str(data.draw(st.sampled_from(paths)))

    def clean(self) -> bool:
        return not self.p.git("status", "--porcelain", "--untracked-files=no").stdout.strip()

    def has_parent(self) -> bool:
        return self.p.git("rev-parse", "-q", "--verify", "HEAD~1", check=False).returncode == 0

    def plain_checkpoint(self, message: str) -> bool:
        """A checkpoint on the plain side: the paths the working tree differs from HEAD in,
        committed as they are (`git commit --only`): what git staged elsewhere stays staged,
        as the mount's index keeps it (avfs has no index of its own: a checkpoint records
        the files). True when it made a commit."""
        paths = sorted(p for p, _ in self.p.changes())
        if not paths:
            return False
        # (a deletion git has staged already is in neither the index nor the files:
        # `git add` would refuse its pathspec; `commit --only` takes it from HEAD)
        indexed = set(self.p.git("ls-files", "--", *paths).stdout.splitlines())
        present = [p for p in paths if p in indexed or os.path.lexists(os.path.join(self.p.root, p))]
        if present:
            self.p.git("add", "-A", "--", *present)
        self.p.git("commit", "-q", "-m", message, "--only", "--", *paths)
        return True

    def on_both(self, fn: Any) -> None:
        for side in (self.p, self.m):
            fn(side.root)

    # -- file changes -----------------------------------------------------------------------
    @rule(data=st.data(), word=st.sampled_from(WORDS), append=st.booleans())
    def write(self, data: st.DataObject, word: str, append: bool) -> None:
        path = self.pick(data, self.files() + NEW_NAMES)
        assert path is not None
        self.note(f"write {path} {word!r} append={append}")

        def w(root: str) -> None:
            p = os.path.join(root, path)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, "a" if append else "w") as fh:
                fh.write(word)

        self.on_both(w)
        self.last_checkpoint = False

    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        path = self.pick(data, self.files())
        if path is None:
            return
        self.note(f"rm {path}")
        self.on_both(lambda root: os.unlink(os.path.join(root, path)))
        self.last_checkpoint = False

    @rule(data=st.data(), to=st.sampled_from(["moved.txt", "src/moved.py", "docs/moved.rst"]))
    def rename(self, data: st.DataObject, to: str) -> None:
        path = self.pick(data, self.files())
        if path is None or path == to:
            return
        self.note(f"mv {path} {to}")

        def mv(root: str) -> None:
            os.makedirs(os.path.dirname(os.path.join(root, to)) or root, exist_ok=True)
            os.replace(os.path.join(root, path), os.path.join(root, to))

        self.on_both(mv)
        self.last_checkpoint = False

    # -- git commands -----------------------------------------------------------------------
    @rule(data=st.data(), everything=st.booleans())
    def add(self, data: st.DataObject, everything: bool) -> None:
        if everything:
            self.both("add", "-A")
        else:
            path = self.pick(data, self.files())
            if path is not None:
                self.both("add", "--", path)
        self.last_checkpoint = False

    @rule(amend=st.booleans(), all_=st.booleans())
    def commit(self, amend: bool, all_: bool) -> None:
        args = ["commit", "-q", "-m", "made with git"]
        if all_:
            args.append("-a")
        if amend:
            args += ["--amend", "--no-edit"]
        self.both(*args)
        self.last_checkpoint = False

    @precondition(lambda self: self.has_parent())
    @rule(how=st.sampled_from(["--soft", "--mixed", "--hard"]))
    def reset(self, how: str) -> None:
        self.both("reset", "-q", how, "HEAD~1")
        self.last_checkpoint = False

    @rule()
    def revert(self) -> None:
        if self.clean() and self.has_parent() and not self.both("revert", "--no-edit", "HEAD"):
            self.both("revert", "--abort")
        self.last_checkpoint = False

    @rule()
    def cherry_pick(self) -> None:
        if self.clean() and not self.both("cherry-pick", "side"):
            self.both("cherry-pick", "--abort")
        self.last_checkpoint = False

    @rule()
    def merge(self) -> None:
        if self.clean() and not self.both("merge", "--no-edit", "side"):
            self.both("merge", "--abort")
        self.last_checkpoint = False

    @rule()
    def rebase(self) -> None:
        dirty = self.p.git("status", "--porcelain").stdout.strip()
        if not dirty and not self.both("rebase", "-q", "side"):
            self.both("rebase", "--abort")
        self.last_checkpoint = False

    @rule(pop=st.booleans())
    def stash(self, pop: bool) -> None:
        if pop:
            if self.p.git("stash", "list").stdout.strip() and not self.both("stash", "pop", "-q"):
                # a conflicting pop keeps the stash and leaves the conflict: undo alike
                self.both("reset", "-q", "--hard")
        else:
            self.both("stash", "-q")
        self.last_checkpoint = False

    @rule(data=st.data(), how=st.sampled_from(["checkout", "restore", "restore-staged", "rm-cached"]))
    def path_command(self, data: st.DataObject, how: str) -> None:
        path = self.pick(data, self.tracked())
        if path is None:
            return
        args = {
            "checkout": ["checkout", "-q", "--", path],
            "restore": ["restore", "--", path],
            "restore-staged": ["restore", "--staged", "--", path],
            "rm-cached": ["rm", "-q", "--cached", "--", path],
        }[how]
        self.both(*args)
        self.last_checkpoint = False

    @rule(new=st.booleans())
    def switch(self, new: bool) -> None:
        """A branch switch in the mount is switched back (the mount is its fork): git exits 1;
        on the plain side, what the guard does: the switch, then `git checkout f` (local
        changes git carried come back; ``-c X`` leaves branch X made)."""
        self._tick()
        self.forks += 1
        args = ["switch", "-q", "-c", f"sw{self.forks}"] if new else ["switch", "-q", "side"]
        self.note("git " + " ".join(args) + " (switched back)")
        got = self.m.git(*args, check=False)
        assert got.returncode != 0, f"git {' '.join(args)} in the mount: {got.stdout}{got.stderr}"
        if self.p.git(*args, check=False).returncode == 0:
            self.p.git("checkout", "-q", "--ignore-other-worktrees", "f", "--")

    # -- avfs operations, and their git equivalents on the plain side -------------------------
    @rule()
    def avfs_status(self) -> None:
        self.note("avfs status")
        _avfs(self.avfs_home, "status", cwd=self.mp)

    @rule(name_it=st.booleans())
    def checkpoint(self, name_it: bool) -> None:
        """`avfs checkpoint save` = `git commit --only` of what the files differ from HEAD in."""
        self._tick()
        self.note("avfs checkpoint save")
        before = self.m.git("rev-parse", "HEAD").stdout.strip()
        _avfs(self.avfs_home, "checkpoint", "save", "-m", "checkpoint", cwd=self.mp)
        after = self.m.git("rev-parse", "HEAD").stdout.strip()
        made = self.plain_checkpoint("checkpoint")
        assert made == (before != after), f"checkpoint made a commit: mount {before != after}, plain {made}"
        self.last_checkpoint = made

    @precondition(lambda self: self.last_checkpoint)
    @rule()
    def undo(self) -> None:
        """`avfs undo` of a checkpoint = `git reset --mixed HEAD~1` (the view stays)."""
        self.note("avfs undo")
        _avfs(self.avfs_home, "undo", cwd=self.mp)
        self.p.git("reset", "-q", "--mixed", "HEAD~1")
        self.last_checkpoint = False

    @precondition(lambda self: self.has_parent())
    @rule()
    def restore(self) -> None:
        """`avfs checkpoint restore HEAD~1` = `git reset --hard HEAD~1 && git clean -fd`."""
        self.note("avfs checkpoint restore HEAD~1")
        target = self.m.git("rev-parse", "HEAD~1").stdout.strip()
        _avfs(self.avfs_home, "checkpoint", "restore", target, cwd=self.mp)
        self.p.git("reset", "-q", "--hard", "HEAD~1")
        self.p.git("clean", "-qfd")
        self.last_checkpoint = False

    @rule(data=st.data(), word=st.sampled_from(WORDS))
    def exec_git(self, data: st.DataObject, word: str) -> None:
        """`avfs proxy exec -- sh -c 'edit; git add; git commit'` in the mount = the command
        itself: the agent's commit is the fork's next commit (the exec's record of the fork
        before it is kept beside the branch, docs/proxy.md "Git inside"), and what it left
        uncommitted of its own changes goes on top (here: nothing)."""
        path = self.pick(data, self.tracked())
        if path is not None:
            self.exec_edit_commit(path, word)

    def exec_edit_commit(self, path: str, word: str) -> None:
        self._tick()
        date = self.env["GIT_AUTHOR_DATE"]
        # (git's identity as options: the sandbox's git has no user of its own here)
        cmd = (
            f"printf %s {shlex.quote(word)} >> {shlex.quote(path)} &&"
            f" git -c user.name=Model -c user.email=model@example.invalid add -- {shlex.quote(path)} &&"
            f" GIT_AUTHOR_DATE='{date}' GIT_COMMITTER_DATE='{date}'"
            " git -c user.name=Model -c user.email=model@example.invalid commit -qm 'made in exec'"
        )
        self.note(f"avfs proxy exec -- sh -c {cmd!r}")
        res = _avfs(
            self.avfs_home, "--json", "proxy", "exec", "--", "sh", "-c", cmd, cwd=self.mp, check=False
        )
        doc = json.loads(res.stdout)
        assert doc["success"] and doc["result"]["exit_code"] == 0, res.stdout + res.stderr
        subprocess.run(["sh", "-c", cmd], cwd=self.p.root, env=self.p.env, check=True, capture_output=True)
        self.last_checkpoint = False

    @rule()
    def fork(self) -> None:
        """`avfs vault fork` starts from what the fork shows: its checkpoint's tree is the
        plain clone's working tree (`git add -A` into another index)."""
        self.forks += 1
        name = f"g{self.forks}"
        self.note(f"avfs vault fork {name}")
        _avfs(self.avfs_home, "vault", "fork", name, cwd=self.mp)
        _avfs(self.avfs_home, "--vault", f"v:{name}", "checkpoint", "save", "-m", "fork", cwd=self.home)
        vault = _avfs(self.avfs_home, "--vault", "v", "vault", "path", cwd=self.home).stdout.strip()
        got = subprocess.run(
            ["git", "--git-dir", vault, "rev-parse", f"refs/heads/{name}^{{tree}}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        idx = os.path.join(self.home, "fork-index")
        env = {**self.p.env, "GIT_INDEX_FILE": idx}
        subprocess.run(["git", "read-tree", "HEAD"], cwd=self.p.root, env=env, check=True)
        subprocess.run(["git", "add", "-A"], cwd=self.p.root, env=env, check=True)
        want = subprocess.run(
            ["git", "write-tree"], cwd=self.p.root, env=env, check=True, capture_output=True, text=True
        ).stdout.strip()
        os.unlink(idx)
        assert got == want, f"fork {name} holds tree {got}, the working tree is {want}"

    # -- after every step ---------------------------------------------------------------------
    @invariant()
    def check(self) -> None:
        where = "after: " + " | ".join(self.steps[-4:])
        assert _tree(self.m.root) == _tree(self.p.root), f"files differ {where}"
        assert self.m.porcelain() == self.p.porcelain(), (
            f"git status differs {where}\nmount: {self.m.porcelain()}\nplain: {self.p.porcelain()}"
        )
        assert self.m.history() == self.p.history(), f"history differs {where}"
        doc = json.loads(_avfs(self.avfs_home, "--json", "status", cwd=self.mp).stdout)
        head = self.m.git("rev-parse", "HEAD").stdout.strip()
        assert doc["fork"] == "f" and doc["head"] == head and doc["base"] == head and not doc["stale"], (
            f"avfs status is not on git's HEAD {head} {where}: {doc}"
        )
        got: set[tuple[str, str]] = set()
        for c in doc["changes"]:
            if c["status"] == "renamed":
                got |= {(c["path"], "added"), (c["old_path"], "deleted")}
            else:
                got.add((c["path"], c["status"]))
        want = self.p.changes()
        assert got == want, f"avfs status differs from git {where}\navfs: {sorted(got)}\ngit: {sorted(want)}"


def _write_both(model: GitModel, path: str, text: str) -> None:
    model.note(f"write {path} {text!r}")
    for root in (model.p.root, model.m.root):
        os.makedirs(os.path.dirname(os.path.join(root, path)), exist_ok=True)
        with open(os.path.join(root, path), "a") as fh:
            fh.write(text)


def _every_command_once(backend: str) -> None:
    """Each git command and avfs operation of the model at least once, in an order where
    each does something, checked after every step (the random runs may miss some)."""
    global BACKEND
    BACKEND = backend
    model = GitModel()
    try:
        g = model.both
        steps: list[Any] = [
            lambda: _write_both(model, "README.md", "edited\n"),
            lambda: _write_both(model, "NEW.txt", "new\n"),
            lambda: g("add", "README.md"),
            lambda: g("commit", "-q", "-m", "git commit"),
            model.avfs_status,
            lambda: model.checkpoint(False),
            model.undo,
            lambda: g("commit", "-q", "-a", "-m", "everything tracked"),
            lambda: g("commit", "-q", "--amend", "-m", "amended"),
            lambda: g("reset", "-q", "--soft", "HEAD~1"),
            lambda: model.checkpoint(False),
            lambda: g("reset", "-q", "--mixed", "HEAD~1"),
            lambda: g("commit", "-q", "-a", "-m", "again"),
            lambda: g("reset", "-q", "--hard", "HEAD~1"),
            lambda: g("revert", "--no-edit", "HEAD") if model.has_parent() else None,
            lambda: g("cherry-pick", "side"),
            lambda: g("reset", "-q", "--hard", "HEAD~1"),
            lambda: g("merge", "--no-edit", "side"),
            lambda: g("reset", "-q", "--hard", "HEAD~1"),
            lambda: _write_both(model, "src/attr/_make.py", "# mine\n"),
            lambda: g("commit", "-q", "-a", "-m", "to rebase"),
            lambda: g("rebase", "-q", "side"),
            lambda: _write_both(model, "NEW.txt", "stashed\n"),
            lambda: _write_both(model, "src/attr/_make.py", "# stashed\n"),
            lambda: g("stash", "-q"),
            lambda: g("stash", "pop", "-q"),
            lambda: g("checkout", "-q", "--", "src/attr/_make.py"),
            lambda: _write_both(model, "src/attr/_make.py", "# again\n"),
            lambda: g("add", "src/attr/_make.py"),
            lambda: g("restore", "--staged", "--", "src/attr/_make.py"),
            lambda: g("restore", "--", "src/attr/_make.py"),
            lambda: g("rm", "-q", "--cached", "--", "NEW.txt") if "NEW.txt" in model.tracked() else None,
            lambda: model.exec_edit_commit("README.md", "from exec\n"),
            lambda: model.switch(False),
            lambda: model.switch(True),
            model.fork,
            lambda: model.checkpoint(False),
            model.restore,
            model.avfs_status,
        ]
        model.check()
        for step in steps:
            step()
            model.check()
    finally:
        model.teardown()


@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_every_command_once_agrees_with_plain_git(backend: str) -> None:
    if backend == "overlay":
        require_overlay()
    else:
        require_fuse()
    _every_command_once(backend)


def _run(backend: str) -> None:
    global BACKEND
    BACKEND = backend
    run_state_machine_as_test(
        seed(SEED)(GitModel),
        _min_steps=STEPS,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=STEPS,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
            phases=[
                Phase.explicit,
                Phase.generate,
            ],  # a failure names its steps; shrinking remounts for minutes
        ),
    )


@pytest.mark.timeout(900)  # a loaded 2-core machine: ~2-5 s a step, both sides and the checks
@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_git_in_the_mount_agrees_with_plain_git(backend: str) -> None:
    if backend == "overlay":
        require_overlay()
    else:
        require_fuse()
    _run(backend)
