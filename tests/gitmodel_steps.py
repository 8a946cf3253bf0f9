"""The git model's steps of its tenth round (gitmodel10, tests/test_git_model.py runs them):
where git in the mount was least exercised. Untracked files in the way of `git reset
--hard/--merge/--keep` to an older commit, `git checkout --orphan` (switched back: the
mount is its fork), `git rebase --onto` with a conflict, refs moved by hand (`git
update-ref` of the fork's branch and of a new one, `git symbolic-ref HEAD` to another),
`git stash -u`/`-a` over untracked and ignored trees, `git commit --amend` of the commit a
checkpoint just made, `git pull` (merge or rebase) from a `git daemon` on 127.0.0.1, a
second worktree outside the mount (`git worktree add`, then `remove`), and line endings
changed between steps (`core.autocrlf`, `* text=auto eol=crlf`).

A mixin of :class:`tests.test_git_model.GitModel`: it uses the model's sides (``p``,
``m``), ``both``, ``conflicted``, ``busy`` and the rest, and keeps the draws of the
model's older rules as they were (a seed runs the same older steps)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

from .test_remotes import _free_port, _start_daemon, _stop_daemon

IN_THE_WAY = "in the way\n"
IGNORE_RULES = "build/\n*.log\n"


class TenthRoundSteps:
    """The steps; see the module's docstring."""

    daemon: subprocess.Popen[bytes] | None = None
    # what the model has (annotations only: the model's own are used)
    backend: str
    p: Any
    m: Any
    src: Path
    home: str
    last_checkpoint: bool
    forks: int
    clock: int
    both: Any
    note: Any
    busy: Any
    clean: Any
    has: Any
    tracked: Any
    pick: Any
    conflicted: Any
    switched_back: Any
    _tick: Any

    def write_all(self, files: dict[str, str]) -> None:
        """Each of ``files`` (path -> text) written on both sides, its directories made."""
        self.note(f"write-all {files!r}")
        for side in (self.p, self.m):
            for path, text in files.items():
                full = os.path.join(side.root, path)
                os.makedirs(os.path.dirname(full), exist_ok=True)
                with open(full, "w") as fh:
                    fh.write(text)

    # -- resets to older commits with untracked files in the way --------------------------
    @precondition(lambda self: self.busy() is None)
    @rule(data=st.data(), how=st.sampled_from(["--hard", "--merge", "--keep"]))
    def reset_in_the_way(self, data: st.DataObject, how: str) -> None:
        """A tracked file removed by a commit, an untracked file written at its path and one
        in a new directory, then `git reset HOW HEAD~1` back to the commit that has it:
        `--hard` overwrites the untracked file (the other stays), `--merge` and `--keep`
        refuse, as git would overwrite it; alike in the mount."""
        present = [f for f in self.tracked() if os.path.isfile(os.path.join(self.p.root, f))]
        path = self.pick(data, present)
        if path is None or not self.clean():
            return
        self.both("rm", "-q", "--", path)
        self.both("commit", "-q", "-m", "removed")
        self.write_all({path: IN_THE_WAY, "untracked/in/new.txt": IN_THE_WAY})
        self.both("reset", "-q", how, "HEAD~1")
        self.last_checkpoint = False

    # -- branches and refs by hand ----------------------------------------------------------
    @rule()
    def orphan(self) -> None:
        """`git checkout --orphan oN`: a switch to a new, unborn branch, which the mount
        switches back (the mount is its fork) as any other; on the plain side, what the
        guard does (:meth:`GitModel.switch`)."""
        self.forks += 1
        self.switched_back(["checkout", "-q", "--orphan", f"o{self.forks}"])
        if self.p.git("rev-parse", "-q", "--verify", "HEAD", check=False).returncode != 0:
            # git refused the way back (local changes it would overwrite: the index's exec
            # bit of a file, say), on both sides alike, and HEAD is the unborn branch, which
            # nothing of the model reads: put back on the fork's branch by hand, the index
            # and files as they are (gitmodel13, seed 1321 on pure FUSE)
            self.both("symbolic-ref", "HEAD", "refs/heads/f")

    @precondition(lambda self: self.busy() is None and self.has("HEAD~1"))
    @rule(how=st.sampled_from(["branch-back", "new-branch", "head-elsewhere"]))
    def by_hand(self, how: str) -> None:
        """Refs moved with git's plumbing: `git update-ref refs/heads/f HEAD~1` (the fork's
        branch moved back, the index and files stay: what `reset --soft` does), `git
        update-ref refs/heads/hN HEAD` (a new branch: a new fork of the vault, in the
        mount), `git symbolic-ref HEAD refs/heads/side` (HEAD on another branch, index and
        files as they were: avfs names it and refuses to record until `git switch f`)."""
        self._tick()
        if how == "branch-back":
            self.both("update-ref", "-m", "by-hand", "refs/heads/f", "HEAD~1")
        elif how == "new-branch":
            self.forks += 1
            self.both("update-ref", f"refs/heads/h{self.forks}", "HEAD")
        else:
            self.both("symbolic-ref", "HEAD", "refs/heads/side")
        self.last_checkpoint = False

    @precondition(lambda self: self.busy() == "detached")
    @rule()
    def head_back(self) -> None:
        """`git symbolic-ref HEAD refs/heads/f`: HEAD put back on the fork's branch by hand,
        the index and files as they are (where `git switch f` refuses: local changes that
        the switch from the other branch would overwrite)."""
        self.both("symbolic-ref", "HEAD", "refs/heads/f")

    @precondition(lambda self: self.busy() is None and self.has("HEAD~1"))
    @rule(data=st.data())
    def rebase_onto(self, data: st.DataObject) -> None:
        """`git rebase --onto side HEAD~1`: HEAD's own commit replayed on `side` (a conflict
        where it changed README.md's last line, as :meth:`GitModel.diverge` does), left open
        or given up (`--abort`)."""
        if self.p.git("status", "--porcelain", "--untracked-files=no").stdout.strip():
            return
        self.conflicted(data, "rebase", "rebase", "-q", "--onto", "side", "HEAD~1")
        self.last_checkpoint = False

    # -- stashes of untracked and ignored trees ---------------------------------------------
    @precondition(lambda self: self.busy() is None)
    @rule(how=st.sampled_from(["-u", "-a"]), pop=st.booleans())
    def stash_untracked(self, how: str, pop: bool) -> None:
        """An untracked file, a `.gitignore` and the trees it ignores (`build/` two levels
        deep, a `*.log`) written, then `git stash -u` (the untracked files, the ignored
        ones stay) or `git stash -a` (both), and `git stash pop` or the stash left."""
        self.write_all(
            {
                ".gitignore": IGNORE_RULES,
                "build/deep/out.o": "ignored\n",
                "build/top.o": "ignored\n",
                "src/attr/stash.log": "ignored\n",
                "untracked/stash.txt": "untracked\n",
            }
        )
        if self.both("stash", "-q", how) and pop:
            self.both("stash", "pop", "-q")
        self.last_checkpoint = False

    # -- git after avfs's own commit ----------------------------------------------------------
    @precondition(lambda self: self.last_checkpoint and self.busy() is None)
    @rule(everything=st.booleans())
    def amend_checkpoint(self, everything: bool) -> None:
        """`git commit --amend` (``-a``: with the files) of the commit an avfs checkpoint
        just made: git rewrites avfs's commit, and the fork follows."""
        self.both("commit", "-q", "--amend", "-m", "amended", *(["-a"] if everything else []))
        self.last_checkpoint = False

    # -- a real git server ----------------------------------------------------------------
    def daemon_url(self) -> str:
        """The source repository served by a `git daemon` on 127.0.0.1 (started at the first
        pull, as remote `dm` on both sides)."""
        if self.daemon is None:
            port = _free_port()
            self.daemon = _start_daemon(self.src.parent, port)
            url = f"git://127.0.0.1:{port}/{self.src.name}"
            for side in (self.p, self.m):
                side.git("remote", "add", "dm", url)
        return str(self.p.git("remote", "get-url", "dm").stdout.strip())

    def stop_daemon(self) -> None:
        if self.daemon is not None:
            _stop_daemon(self.daemon)
            self.daemon = None

    @precondition(lambda self: self.busy() is None)
    @rule(data=st.data(), rebase=st.booleans())
    def pull(self, data: st.DataObject, rebase: bool) -> None:
        """A commit more on the source's `topic` (a line of UPSTREAM.txt), then `git pull dm
        topic` from the `git daemon`: fetched (into the vault, in the mount) and merged,
        or rebased onto (`--rebase`); a conflict left open or given up."""
        if not self.clean():
            return
        self.upstream_commit()
        if rebase:
            self.conflicted(data, "rebase", "pull", "-q", "--rebase", "dm", "topic")
        else:
            self.conflicted(data, "merge", "pull", "-q", "--no-rebase", "--no-edit", "dm", "topic")
        self.last_checkpoint = False

    def upstream_commit(self) -> None:
        """A commit more on the served source's `topic` (a line of UPSTREAM.txt)."""
        self.daemon_url()
        self._tick()
        self.note("upstream-commit")
        env = {**self.p.env, "GIT_CEILING_DIRECTORIES": str(self.src.parent)}

        def g(*args: str) -> None:
            subprocess.run(["git", *args], cwd=self.src, env=env, check=True, capture_output=True)

        g("checkout", "-q", "topic")
        with open(self.src / "UPSTREAM.txt", "a") as fh:
            fh.write(f"upstream at {self.clock}\n")
        g("commit", "-q", "-a", "-m", "upstream")
        g("checkout", "-q", "main")

    # -- a second worktree, outside the mount -----------------------------------------------
    @precondition(lambda self: self.busy() is None)
    @rule(commit=st.booleans())
    def worktree_outside(self, commit: bool) -> None:
        """`git worktree add -b wN DIR` outside the mount (plain git on the vault: a new
        fork, in the mount), a commit there or none, then `git worktree remove`: the
        mount's fork, files and index as the plain side's. (`git worktree add` inside the
        mount makes a nested repository, docs/fuse.md: not a step here.)"""
        self._tick()
        self.forks += 1
        branch = f"w{self.forks}"
        self.note(f"worktree-outside commit={commit}")
        for side, tag in ((self.p, "p"), (self.m, "m")):
            where = os.path.join(self.home, f"wt-{tag}-{branch}")
            side.git("worktree", "add", "-q", "-b", branch, where)
            if commit:
                with open(os.path.join(where, "WORKTREE.txt"), "w") as fh:
                    fh.write("made in a second worktree\n")
                subprocess.run(["git", "add", "-A"], cwd=where, env=side.env, check=True, capture_output=True)
                subprocess.run(
                    ["git", "commit", "-q", "-m", "in a worktree"],
                    cwd=where,
                    env=side.env,
                    check=True,
                    capture_output=True,
                )
            side.git("worktree", "remove", "--force", where)

    # -- line endings changed between steps -------------------------------------------------
    @rule(value=st.sampled_from(["true", "input", "false"]))
    def autocrlf(self, value: str) -> None:
        """`git config core.autocrlf VALUE` (in the mount: the vault's config)."""
        self.both("config", "core.autocrlf", value)

    @precondition(lambda self: self.backend == "overlay")
    @rule(on=st.booleans())
    def crlf_attributes(self, on: bool) -> None:
        """The root's `.gitattributes` made `* text=auto eol=crlf` (or removed). On the
        overlay backend only: once a `git commit` in the mount records it, pure FUSE shows
        every text file in its CRLF form at once, where git's work tree (and the overlay)
        keeps the files as they were written (docs/fuse.md, "Checkout conversions": left
        open there since the seventeenth round; a restore or a remount shows the new form
        on both backends, as a fresh checkout does)."""
        self.note(f"gitattributes-crlf {on}")
        for side in (self.p, self.m):
            path = os.path.join(side.root, ".gitattributes")
            if on:
                with open(path, "w") as fh:
                    fh.write("* text=auto eol=crlf\n")
            elif os.path.lexists(path):
                os.unlink(path)
        self.last_checkpoint = False


class EleventhRoundSteps:
    """The git model's steps of its eleventh round (gitmodel11): `git replace --graft`
    (history as git shows it, in the vault) and its removal, `git reflog expire` with a
    `gc` that prunes, the index's exec bit set by `git update-index --chmod`, a file made
    executable by `chmod` then `git add`, `git switch -c` + `avfs checkpoint` + `git switch -`
    (both switched back: the fork stays the mount's branch), and a commit made in a linked
    worktree outside the mount that moves the fork's branch (another hand's move: the mount
    follows it when nothing is uncheckpointed, as `git reset --hard` on the plain side).
    A mixin of :class:`tests.test_git_model.GitModel`, as :class:`TenthRoundSteps`."""

    # what the model has (annotations only: the model's own are used)
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
    has: Any
    tracked: Any
    pick: Any
    switched_back: Any
    checkpoint: Any
    _tick: Any

    @precondition(lambda self: self.busy() is None)
    @rule(how=st.sampled_from(["graft", "delete"]))
    def replace(self, how: str) -> None:
        """`git replace -f --graft HEAD~1` (HEAD~1 shown without parents: git's history ends
        there, its tree the same) or `git replace -d` of every replacement. avfs reads
        commits as they are (libgit2 has no replace refs): a graft changes no tree avfs
        reads, so its status, checkpoints and restores agree with git's (docs/fuse.md,
        "gitmodel11")."""
        if how == "graft":
            if self.has("HEAD~1"):
                self.both("replace", "-f", "--graft", "HEAD~1")
        else:
            made = self.p.git("replace", "-l").stdout.split()
            if made:
                self.both("replace", "-d", *made)
        self.last_checkpoint = False  # (an undo's HEAD~1 is read through the graft on the plain side)

    @rule()
    def reflog_expire(self) -> None:
        """`git reflog expire --expire=now --all` then `git gc --prune=now`: in the mount
        the vault's reflogs go and what only they kept is pruned (avfs keeps its own
        records under refs, not in reflogs)."""
        self.both("reflog", "expire", "--expire=now", "--all")
        self.both("gc", "-q", "--prune=now")

    @rule(data=st.data(), how=st.sampled_from(["+x", "-x"]))
    def index_chmod(self, data: st.DataObject, how: str) -> None:
        """`git update-index --chmod=+x PATH` (or ``-x``): the exec bit of the index's entry
        only, the file as it was (git status: staged one way, changed back in the files)."""
        path = self.pick(data, [f for f in self.tracked() if os.path.isfile(os.path.join(self.p.root, f))])
        if path is not None and not os.path.islink(os.path.join(self.p.root, path)):
            self.both("update-index", f"--chmod={how}", "--", path)
        self.last_checkpoint = False

    @rule(data=st.data())
    def chmod_add(self, data: st.DataObject) -> None:
        """A tracked file's exec bit flipped by `chmod`, then `git add` of it."""
        files = [f for f in self.tracked() if os.path.isfile(os.path.join(self.p.root, f))]
        path = self.pick(data, [f for f in files if not os.path.islink(os.path.join(self.p.root, f))])
        if path is None:
            return
        mode = 0o644 if os.stat(os.path.join(self.p.root, path)).st_mode & 0o100 else 0o755
        self.note(f"chmod {mode:o} {path}")
        for side in (self.p, self.m):
            os.chmod(os.path.join(side.root, path), mode)
        self.both("add", "--", path)
        self.last_checkpoint = False

    @precondition(lambda self: self.busy() is None)
    @rule()
    def switch_checkpoint_back(self) -> None:
        """`git switch -c swN` (switched back: the mount is its fork), `avfs checkpoint
        save`, then `git switch -` (to swN: switched back again). The fork is the mount's
        branch throughout; swN stays at the commit it was made at."""
        self.forks += 1
        branch = f"sw{self.forks}"
        self.switched_back(["switch", "-q", "-c", branch])
        self.checkpoint(False)
        self.switched_back(["switch", "-q", "-"])
        made = [side.git("rev-parse", branch).stdout.strip() for side in (self.p, self.m)]
        assert made[0] == made[1], f"{branch}: plain {made[0]}, mount {made[1]}"

    @precondition(lambda self: self.busy() is None)
    @rule()
    def worktree_moves_fork(self) -> None:
        """A linked worktree outside the mount at the fork's commit (`git worktree add
        --detach`), a commit there, and `git update-ref refs/heads/f HEAD OLD` from it: the
        fork's branch moved by another hand, where nothing is uncheckpointed (else not a
        step: the mount keeps its view until a checkpoint rebases it, docs/fuse.md "One
        state, two writers"). The mount follows it (an avfs command takes it: `avfs
        status`), as `git reset --hard` does on the plain side, before the command returns."""
        if self.p.changes("refs/heads/f"):
            return
        self._tick()
        self.forks += 1
        self.note("worktree-moves-fork")
        for side, tag in ((self.p, "p"), (self.m, "m")):
            where = os.path.join(self.home, f"wt-{tag}-mv{self.forks}")
            old = side.git("rev-parse", "refs/heads/f").stdout.strip()
            side.git("worktree", "add", "-q", "--detach", where, "refs/heads/f")
            with open(os.path.join(where, "WORKTREE.txt"), "a") as fh:
                fh.write("committed in a linked worktree\n")
            for args in (
                ("add", "-A"),
                ("commit", "-q", "-m", "from a linked worktree"),
                ("update-ref", "-m", "from a linked worktree", "refs/heads/f", "HEAD", old),
            ):
                subprocess.run(["git", *args], cwd=where, env=side.env, check=True, capture_output=True)
            side.git("worktree", "remove", "--force", where)
        self.p.git("reset", "-q", "--hard")
        from .test_git_model import _avfs  # (the model's module imports this one)

        # the status takes the move; on pure FUSE it returns once the daemon has had the
        # kernel forget the old view (wsbase._follow_ref waits, as a restore does)
        _avfs(self.avfs_home, "status", cwd=self.mp)
        self.last_checkpoint = False
