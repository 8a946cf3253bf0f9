"""git in the mount is a first-class writer, proved against plain git (docs/fuse.md, "git
inside the mount"): a hypothesis state machine runs the same random sequence of git commands
(commits, resets to older commits, merges, picks, reverts and rebases, `rebase -i`,
conflicts left open and settled, a detached HEAD, stashes, directory moves, cleans, gc,
tags) and file changes (bytes, the exec bit, symlinks, a file made a directory and back,
ignored files) in a mounted fork and in a plain clone of the vault, with avfs's own
operations in between (status, checkpoint save, restore, undo, fork, and git commands run
through `proxy exec`) each modelled on the plain side by its git equivalent, and after
every step requires the same state on both: the files, `git status --porcelain=v2`, the
history (`git log --format='%T %P'`, each parent named by its tree, and HEAD the same
commit: the plain clone reads the vault's objects, so avfs's own commits are its too), the
tags, and `avfs --json status` against what the plain clone differs from the fork's branch
(and what git has open).

On a real project's files (attrs 24.2.0, tests/realdata.py), both backends. CI runs a small,
derandomized number of examples; scale it by hand (docs/testing.md):
``AVFS_MODEL_EXAMPLES=30 AVFS_MODEL_STEPS=80 pytest tests/test_git_model.py``; replay a
logged failure with ``python -m tests.replay_gitmodel BACKEND LOG``. The run of every
command once (:func:`_every_command_once`) is the test of a file of its own per backend,
tests/test_git_model_every_overlay.py and tests/test_git_model_every_fuse.py (suitetime20).
"""

from __future__ import annotations

import json
import os
import random
import re
import shlex
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
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
from .conftest import LAYERS, remove_home, run_in_process, scratch_home
from .forkhome import _print  # (every entry under a tree: mode, size, ctime, inode)
from .gitmodel_steps import EleventhRoundSteps, TenthRoundSteps
from .gitmodel_steps12 import TwelfthRoundSteps
from .gitmodel_steps13 import ThirteenthRoundSteps
from .gitmodel_steps14 import FourteenthRoundSteps
from .gitmount import warm_daemons
from .test_fuse import require_fuse
from .test_overlay import require_overlay

EXAMPLES = int(os.environ.get("AVFS_MODEL_EXAMPLES", "2"))  # the first is hypothesis's simplest
SEED = int(os.environ.get("AVFS_MODEL_SEED", "27"))  # the same sequences on every run
STEPS = int(os.environ.get("AVFS_MODEL_STEPS", "10"))
BACKEND = "overlay"  # set per test below (a state machine class per backend)
# the check after every step reads again only the files whose stat changed, and each file
# at least every FULL_READ_EVERY-th check (see _tree)
FULL_READ_EVERY = 8
VERBOSE = os.environ.get("AVFS_MODEL_VERBOSE")  # (read here too: run_seeded's rules printed)
LOG = os.environ.get("AVFS_MODEL_LOG")  # every step appended as it runs (read here: the tests drop AVFS_*)
RULES = [r for r in os.environ.get("AVFS_MODEL_RULES", "").split(",") if r]  # (see _machine)

# (a name of 200 bytes in a directory of 100: long names through the mount and its index)
NEW_NAMES = [
    "new.txt",
    "src/attr/added.py",
    "docs/notes.md",
    "deep/er/x.txt",
    "l" * 100 + "/" + "n" * 196 + ".txt",
]
WORDS = ["one\n", "two\n", "three\n", "changed line\n", "import os\n"]
# `.gitattributes` the model writes at the root: git's `add` converts what they name, and so
# does a checkpoint (docs/fuse.md, "`.gitattributes` conversions"); none converts on checkout
# (`eol=crlf`, `ident`: a mount shows a blob's bytes as they are, docs/fuse.md says why)
ATTRIBUTES = ["* text=auto\n", "* text eol=lf\n", "*.md text\n*.py -text\n", "* text=auto\n*.txt binary\n"]
CRLF_TEXTS = [b"crlf\r\nline\r\n", b"mixed\r\nends\n", b"lone\rcr\r\n", b"nul\0crlf\r\n"]
# `git rebase -i`'s todo list edited by a script (git runs it as `sh -c 'SCRIPT "$@"'`)
REBASE_SCRIPTS = {
    "squash": "sed -i -e '2,$s/^pick/squash/'",
    "fixup": "sed -i -e '2,$s/^pick/fixup/'",
    "drop": "sed -i -e '1s/^pick/drop/'",
    "reorder": 'f() { grep ^pick "$1" | tac > "$1.new" && mv "$1.new" "$1"; }; f',
    "edit": "sed -i -e '1s/^pick/edit/'",
}
# the plain side's identity, for git in `proxy exec` (the sandbox gets the fork's otherwise)
_IDENTITY = (
    "GIT_AUTHOR_NAME=Model GIT_AUTHOR_EMAIL=model@example.invalid"
    " GIT_COMMITTER_NAME=Model GIT_COMMITTER_EMAIL=model@example.invalid"
)
# git commands run through `avfs proxy exec -- sh -c CMD`: what an agent's tool call does
EXEC_COMMANDS = {
    "add": "git add -A",
    "amend": "git commit -q --amend --no-edit",
    "cherry-pick": "git cherry-pick side || git cherry-pick --abort",
    "commit-a": "git commit -qam 'in exec'",
    "merge": "git merge -q --no-edit side || git merge --abort",
    "rebase": "git rebase -q side || git rebase --abort",
    "rebase-i": "git -c sequence.editor=\"sed -i -e '2,\\$s/^pick/squash/'\" rebase -q -i HEAD~2 || git rebase --abort",
    "reset-hard": "git reset -q --hard HEAD~1",
    "reset-soft": "git reset -q --soft HEAD~1",
    "revert": "git revert --no-edit HEAD || git revert --abort",
    "rm-cached": "git rm -q --cached README.md",
    "checkout": "git checkout -q -- README.md",
    "stash-pop": "git stash -q && git stash pop -q",
    "mv-dir": "git mv -k docs documentation",
    # a tag is the vault's (every fork's): made and deleted in there, reported, not applied
    "tag": "git tag -f -a -m 'in exec' t1 && git tag -f t2 HEAD && (git tag -d t1 || true)",
}


def _entries(root: str) -> Iterator[tuple[str, str, os.stat_result]]:
    """(path below ``root``, its full path, its `lstat`) of every file below ``root`` (.git
    out), as `os.walk` lists them: a directory that cannot be listed is passed over, a link
    to a directory is neither entered nor listed. One `scandir` a directory, the relative
    path built as the walk goes (`os.walk` and a `relpath` a file were ~1/4 of the check's
    own CPU, suitetime3)."""
    todo = [("", root)]
    while todo:
        rel_dir, d = todo.pop()
        try:
            with os.scandir(d) as it:
                listed = list(it)
        except OSError:
            continue
        for e in listed:
            # (a nested `.git` too: a submodule's gitfile names its git dir, the vault's worktree
            # dir in the mount and the clone's own on the plain side; gitmodel13)
            if e.name == ".git":
                continue
            try:
                is_dir = e.is_dir()  # (follows a link, as os.walk's)
            except OSError:
                is_dir = False
            if is_dir:
                if not e.is_symlink():
                    todo.append((rel_dir + e.name + "/", e.path))
                continue
            yield rel_dir + e.name, e.path, os.lstat(e.path)


def _tree(root: str, kept: dict[str, tuple[Any, Any, int]] | None = None, now: int = 0) -> dict[str, Any]:
    """path -> (bytes, exec) | ("link", target) of the files below ``root`` (.git out).

    ``kept``: what earlier calls read, by path, with the file's `lstat` then (inode, size,
    mode, link count, mtime and ctime in ns) and ``now`` then (the check's number); a file
    whose `lstat` is the same now is taken as read then, as git's own status trusts stat
    data, unless it was read :data:`FULL_READ_EVERY` or more checks ago; ``kept`` is
    updated. Every path is still listed and stat'ed, every new or changed one read. (On
    pure FUSE the reads were the model's longest check: every file opened, read and
    released through the daemon after every step, 56 of 160 s of the every-command run.)
    What this could miss for a while is a file whose bytes changed with none of those six
    values: no file goes unread for :data:`FULL_READ_EVERY` checks, and the last check
    reads every file again. (Every file was read again at every eighth check until
    suitetime3, whatever read it just before: a remount's check, or one after a move of
    the branch that gave every file of a pure-FUSE mount new stat data, read them all, and
    the eighth a few checks later all again. The plain side's files are kept so too since
    suitetime3: they were read whole at every check.)"""
    out: dict[str, Any] = {}
    for rel, p, s in _entries(root):
        key = (s.st_ino, s.st_size, s.st_mode, s.st_nlink, s.st_mtime_ns, s.st_ctime_ns)
        got = kept.get(rel) if kept is not None else None
        if got is not None and got[0] == key and now - got[2] < FULL_READ_EVERY:
            out[rel] = got[1]
            continue
        if stat.S_ISLNK(s.st_mode):
            out[rel] = ("link", os.readlink(p))
        else:
            with open(p, "rb") as fh:
                out[rel] = (fh.read(), bool(s.st_mode & 0o100))
        if kept is not None:
            kept[rel] = (key, out[rel], now)
    if kept is not None:
        for rel in set(kept) - set(out):
            del kept[rel]
    return out


def _tree_difference(mount: dict[str, Any], plain: dict[str, Any]) -> str:
    """How two :func:`_tree` answers differ, by path: where the check fails. (The check
    compared them with `assert ==`, whose failure pytest explains by `difflib.ndiff` of
    the two trees pretty-printed in full where ``CI`` is set: 70 s of CPU for one
    differing file of a model's ~150 in ``tests/test_git_model_check.py``, suitetime4.)"""
    rows = []
    for path in sorted(mount.keys() | plain.keys()):
        m, p = mount.get(path), plain.get(path)
        if m == p:
            continue
        if m is None or p is None:
            rows.append(f"{path}: only in the {'plain clone' if m is None else 'mount'}")
        elif m[0] == "link" or p[0] == "link":
            rows.append(f"{path}: mount {m!r:.80}, plain {p!r:.80}")
        else:
            same = m[0] == p[0]
            rows.append(
                f"{path}: {'the exec bit' if same else 'bytes'} (mount {len(m[0])} bytes, exec {m[1]};"
                f" plain {len(p[0])} bytes, exec {p[1]})"
            )
    return "; ".join(rows[:20]) + (f"; and {len(rows) - 20} more" if len(rows) > 20 else "")


class _Git:
    """git in ``root`` with ``env`` (its ``GIT_INDEX_FILE``: ``index``), stdout as text;
    never sparse: under `git sparse-checkout` the files it left out are removals to avfs
    (gone from the mount: what a checkpoint would record, which is why it refuses), where
    git's own `add` leaves the paths outside the cone alone."""

    def __init__(self, root: str, env: dict[str, str], index: str) -> None:
        self.root, self.env, self.index = root, env, index

    def __call__(self, *args: str) -> str:
        return subprocess.run(
            ["git", "-c", "core.sparseCheckout=false", *args],
            cwd=self.root,
            env=self.env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout


class Side:
    """One side: a directory where git runs (the mount, or the plain clone)."""

    def __init__(self, root: str, env: dict[str, str], refs_dir: str) -> None:
        self.root = root
        self.env = env
        self.refs_dir = refs_dir  # git's common dir: where the tags and notes are (labels)

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

    def history(self, rev: str = "HEAD") -> list[str]:
        """`git log --format='%T %P'`, each parent named by its tree."""
        return self.log(rev)[1]

    def log(self, rev: str = "HEAD") -> tuple[str, list[str]]:
        """(``rev``'s commit id, :meth:`history`), from one `git log`."""
        rows = [ln.split() for ln in self.git("log", "--format=%H %T %P", rev).stdout.splitlines() if ln]
        tree_of = {r[0]: r[1] for r in rows}
        return rows[0][0], [" ".join([r[1], *(tree_of[p] for p in r[2:])]) for r in rows]

    def porcelain(self) -> list[str]:
        return sorted(self.git("status", "--porcelain=v2", "--untracked-files=all").stdout.splitlines())

    def porcelain_head(self) -> tuple[str, list[str]]:
        """(HEAD's commit id as git's status names it, :meth:`porcelain`), from one `git
        status --branch`: its ``# branch.oid`` line, the ``# branch.*`` header lines out of
        the rows (the check's: HEAD was a `git log` of each side's, suitetime27)."""
        out = self.git(
            "status", "--porcelain=v2", "--branch", "--no-ahead-behind", "--untracked-files=all"
        ).stdout.splitlines()
        head = next(ln.split()[2] for ln in out if ln.startswith("# branch.oid "))
        return head, sorted(ln for ln in out if not ln.startswith("# branch."))

    def worktree_tree(self, paths: list[str] | None = None) -> str:
        """The tree of the files as `git add -A` over HEAD sees them (in another index),
        or of HEAD with only ``paths`` taken from the files."""
        idx = os.path.abspath(os.path.join(self.root, "..", f"model-tree-index-{os.getpid()}"))
        env = {**self.env, "GIT_INDEX_FILE": idx}

        g = _Git(self.root, env, idx)
        try:
            self.stat_index(g, "HEAD")
            if paths is None:
                g("add", "-A")
            else:
                # (a path neither HEAD nor the files hold: `git add` would refuse its pathspec)
                known = set(g("ls-files", "-z", "--", *paths).split("\0"))
                present = [p for p in paths if p in known or os.path.lexists(os.path.join(self.root, p))]
                if present:
                    g("add", "-A", "--", *present)
            return g("write-tree").strip()
        finally:
            if os.path.exists(idx):
                os.unlink(idx)

    def stat_index(self, g: Any, rev: str, flagged: bool = True, at_rev: bool = False) -> None:
        """The index ``g`` writes (``GIT_INDEX_FILE``) made ``rev``'s, with the stat data
        of git's own index where an entry stays and no skip-worktree or assume-unchanged
        bit: `git add -A` then reads only the files changed since git last looked, as a
        checkpoint reads only those written since its base (a `read-tree` index reads them
        all: under a `.gitattributes` changed since, `* text eol=lf`, it took every file
        committed with a CR, binaries included, for a change, as `git add --renormalize`).
        ``flagged``: False when the caller read git's index just now and found no entry
        marked (:meth:`flags`): a reset of its copy marks none (git marks skip-worktree on
        a reset only under sparse-checkout, off here), so no `ls-files` is asked.
        ``at_rev``: True when the caller read git's status just now and git's index held
        ``rev``'s tree there (nothing staged, no intent-to-add, nothing unmerged): the
        reset would leave the copy as it is, so none is run (suitetime24: one git of the
        check's eleven)."""
        shutil.copyfile(os.path.join(self.root, ".git", "index"), g.index)
        if not at_rev:
            g("reset", "-q", rev, "--", ".")
        if not flagged:
            return
        rows = [ln for ln in g("ls-files", "-v", "-z").split("\0") if ln]
        # (one flag a call: given both, git's update-index applies only the last)
        for flag, marked in (
            ("--no-skip-worktree", [ln[2:] for ln in rows if ln[0] in "Ss"]),
            ("--no-assume-unchanged", [ln[2:] for ln in rows if ln[0].islower()]),
        ):
            if marked:
                g("update-index", flag, "--", *marked)

    def index_path(self) -> str:
        """git's index of this side: ``.git/index``, or the mount's gitfile's directory's
        (``gitdir: <vault>/worktrees/<id>``, mount/worktree.py)."""
        dot = os.path.join(self.root, ".git")
        if os.path.isdir(dot):
            return os.path.join(dot, "index")
        with open(dot) as fh:
            gitdir = fh.read().removeprefix("gitdir: ").strip()
        return os.path.join(self.root, gitdir, "index")  # (an absolute gitdir stays as it is)

    def flags(self) -> list[str]:
        """`git ls-files -v` of the entries git marked (skip-worktree ``S``/``s``,
        assume-unchanged lower case, unmerged ``M``): what porcelain does not show."""
        return sorted(ln for ln in self.git("ls-files", "-v").stdout.splitlines() if not ln.startswith("H "))

    def labels(self, kept: dict[str, Any] | None = None) -> dict[str, str]:
        """Each tag's name -> its commit's tree (a light tag's commit's, or the commit an
        annotated one names), and each notes ref's -> its tree (the notes: each note's blob
        by the id of the commit it annotates, as `git notes list` lists them), in one
        `for-each-ref` (was a `rev-parse` a tag and a `git notes list`).

        ``kept``: what an earlier call read, with the `lstat` then of every file the refs
        are in (:func:`_ref_files` of :attr:`refs_dir`, git's common dir); where all are the
        same now, that is the answer, as :func:`_tree` takes a file whose `lstat` is the
        same as read then (git writes a ref file or `packed-refs` anew, renamed over the
        old: a new inode). The check asks so, and again every :data:`FULL_READ_EVERY`-th
        time (suitetime24: the `for-each-ref` of both sides was ~2.5 % of a model's CPU)."""
        seen = _ref_files(self.refs_dir) if kept is not None else None
        if kept is not None and kept.get("files") == seen:
            return dict(kept["labels"])
        fmt = "--format=%(refname) %(tree)%(*tree)"
        rows = self.git("for-each-ref", fmt, "refs/tags", "refs/notes").stdout
        out = dict(ln.split() for ln in rows.splitlines() if ln)
        if kept is not None:
            kept.update(files=seen, labels=dict(out))
        return out

    def changes(
        self, rev: str = "HEAD", refresh: bool = True, flagged: bool = True, at_rev: bool = False
    ) -> set[tuple[str, str]]:
        """What the working tree differs from ``rev``: (path, added|modified|deleted), the
        untracked files git does not ignore included (what `avfs status` lists).

        ``refresh``: git's index refreshed first (`update-index --refresh`), so that the
        `add -A` below reads only files whose stat changed; the check passes False, its
        `git status` just did that (the fsmonitor hook: git writes its index at every
        status). Either way the answer is the same: a stale entry is read again.
        ``flagged``, ``at_rev``: as :meth:`stat_index`'s."""
        out: set[tuple[str, str]] = set()
        if refresh:
            self.git("update-index", "-q", "--refresh", check=False)
        tmp_index = os.path.abspath(os.path.join(self.root, "..", f"model-index-{os.getpid()}"))
        env = {**self.env, "GIT_INDEX_FILE": tmp_index}
        try:
            g = _Git(self.root, env, tmp_index)
            self.stat_index(g, rev, flagged, at_rev)
            g("add", "-A")
            diff = subprocess.run(
                ["git", "diff", "--cached", "--no-renames", "--name-status", "-z", rev],
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


def _unflagged(index: str) -> bool:
    """Whether git's ``index`` file marks no entry, read as git's documentation of the format
    says (gitformat-index(5)): a version-2 index (skip-worktree needs version 3's extended
    flags) none of whose entries has the assume-valid bit or a stage (unmerged), and no
    split index (its ``link`` extension: the entries are another file's). Then `git ls-files
    -v` lists every entry ``H``: :meth:`Side.flags` is empty. False where any of that is
    not so, or the file is not there: ask git (two git processes of the check's eight,
    suitetime27)."""
    try:
        with open(index, "rb") as fh:
            data = fh.read()
    except OSError:
        return False
    if len(data) < 32 or data[:4] != b"DIRC" or int.from_bytes(data[4:8], "big") != 2:
        return False
    at, end = 12, len(data) - 20
    for _ in range(int.from_bytes(data[8:12], "big")):
        flags = int.from_bytes(data[at + 60 : at + 62], "big")
        if flags & 0xF000:  # (assume-valid 0x8000, extended 0x4000, the stage 0x3000)
            return False
        size = flags & 0xFFF
        if size == 0xFFF:
            size = data.index(b"\0", at + 62) - (at + 62)
        at += (62 + size + 8) & ~7
        if at > end:
            return False
    while at < end:  # the extensions: a signature and a size each
        if data[at : at + 4] == b"link":
            return False
        at += 8 + int.from_bytes(data[at + 4 : at + 8], "big")
    return at == end


def _ref_files(git_dir: str) -> list[tuple[str, int, int, int, int]]:
    """(path, inode, size, mtime and ctime in ns) of `packed-refs` and of every file below
    `refs/tags` and `refs/notes` of ``git_dir``: where the tags and notes are."""
    out = []
    for top in ("packed-refs", "refs/tags", "refs/notes"):
        for d, dirs, files in os.walk(os.path.join(git_dir, top)):
            dirs.sort()
            for name in sorted(files):
                p = os.path.join(d, name)
                s = os.lstat(p)
                out.append((p, s.st_ino, s.st_size, s.st_mtime_ns, s.st_ctime_ns))
        if top == "packed-refs" and os.path.lexists(os.path.join(git_dir, top)):
            s = os.lstat(os.path.join(git_dir, top))
            out.append((top, s.st_ino, s.st_size, s.st_mtime_ns, s.st_ctime_ns))
    return out


def _avfs(
    home: str,
    *args: str,
    cwd: str,
    check: bool = True,
    lock_wait: int | None = None,
) -> subprocess.CompletedProcess[str]:
    """`avfs ARGS` in ``cwd`` with ``home``, run in the test's process as the console script
    runs it (conftest's ``run_in_process``, the environment a process of the model had:
    ``AVFS_HOME``, ``AVFS_LAYERS``); a mount's daemon forked by the process's zygote
    (tests/gitmount.py ``warm_daemons``), a process of its own as ever. ``lock_wait``: its
    ``AVFS_LOCK_WAIT`` (a call the model expects to find a lock held). Each call was a
    process, the home's resident CLI server's child (suitetime21), the server started by a
    model's first command: ~0.75 s of CPU a model in the server's start and the `vault
    path` that started it, ~50 models a run, and ~25 ms a call in its client (suitetime24);
    what the model checks is what each command does, not its process (the CLI's processes
    and its server are the CLI tests')."""
    env = {"AVFS_HOME": home, "AVFS_LAYERS": os.environ.get("AVFS_LAYERS", "off")}
    if lock_wait is not None:
        env["AVFS_LOCK_WAIT"] = str(lock_wait)
    with warm_daemons() as asked:
        res = run_in_process(list(args), cwd=cwd, env=env)
    assert all(a is False for a in asked), asked  # (each mount's daemon forked warm)
    proc = subprocess.CompletedProcess(["avfs", *args], res.code, res.out, res.err)
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


_MADE: dict[str, Any] = {}  # "top": the source and the home made once a process, "print": them then


def _made() -> Path | None:
    """The source (:func:`_source`, under ``unpacked/``) and the avfs home (``avfs/``:
    vault ``v`` made by ``avfs vault create v --from SRC``, its fork ``f`` by ``avfs vault
    fork``) that every :class:`GitModel` starts from, made once a process (the first model
    asks) and copied by each (suitetime21: the three as each model's own were ~0.7 s of
    CPU of its ~1.9 s set-up, ~50 models a run); checked unchanged at every copy (a model
    writes to its copy only). Made by the CLI's processes, the home's resident CLI server
    off; a copy is the same home
    only where nothing in it names where it is (checked once). None with
    ``AVFS_TEST_LAYERS=1`` (a fork's state is in the home's file system image, which a copy
    does not carry): each model makes its own then."""
    if LAYERS:
        return None
    if "top" not in _MADE:
        top = Path(scratch_home("gitmodel-made-"))
        src = _MADE["src"] = _source(top)
        home = str(top / "avfs")
        for argv in (("vault", "create", "v", "--from", str(src)), ("vault", "fork", "v:main", "f")):
            # (processes: one in this process leaves the op log's `-wal` beside it, a copy's)
            env = {k: v for k, v in os.environ.items() if not k.startswith("AVFS_")}
            env.update(AVFS_HOME=home, AVFS_LAYERS=os.environ.get("AVFS_LAYERS", "off"), AVFS_SERVER="off")
            proc = subprocess.run(
                [sys.executable, "-m", "avfs_git", *argv], cwd=top, env=env, capture_output=True, text=True
            )
            assert proc.returncode == 0, f"avfs {' '.join(argv)}: {proc.stdout}{proc.stderr}"
        # a copy is the same home where nothing in it names where it is but the vault's
        # record of the directory it was imported from (set to the copy's own source at each
        # copy: _imported_from) and words (git's FETCH_HEAD and reflogs of the fetch, the op
        # log's message of the create)
        named = subprocess.run(
            ["grep", "-rlaF", str(top), home], capture_output=True, text=True
        ).stdout.split()
        words = {"FETCH_HEAD", "logs", "oplog.db"}
        left = [p for p in named if not words & set(Path(p).relative_to(home).parts)]
        assert left == [str(_config_json(home))], f"the model's home names where it is: {left}"
        assert json.loads(_config_json(home).read_text())["imported"]["dir"] == str(src)
        # the source's branch `topic`, made after the vault (only a fetch brings it): made
        # here once, not in each model's copy (four git processes a model, suitetime27)
        _topic(src)
        _MADE["top"], _MADE["print"] = top, _print(top)
    top = _MADE["top"]
    assert _print(top) == _MADE["print"], f"the model's made source and home {top} were changed"
    return Path(top)


def _config_json(home: str) -> Path:
    """Vault ``v``'s own config (ops/origin.py reads where it was imported from there)."""
    return Path(home, "vaults", "v.git", "avfs", "config.json")


def _imported_from(home: str, src: Path) -> None:
    """Vault ``v`` of ``home`` (a copy of :func:`_made`'s) imported from ``src``: what
    ``vault create --from SRC`` writes, the copy's own source (no model asks it so far)."""
    doc = json.loads(_config_json(home).read_text())
    doc["imported"]["dir"] = str(src)
    _config_json(home).write_text(json.dumps(doc, indent=2, sort_keys=True))  # (as the vault writes it)


def _topic(src: Path) -> None:
    """Branch ``topic`` of the source: main and a commit of a new file and a new line."""
    env = {**os.environ, "GIT_AUTHOR_DATE": "@1700000050 +0000", "GIT_COMMITTER_DATE": "@1700000050 +0000"}

    def g(*args: str) -> None:
        subprocess.run(["git", *args], cwd=src, env=env, check=True, capture_output=True)

    g("checkout", "-qb", "topic", "main")
    (src / "UPSTREAM.txt").write_text("fetched from up\n")
    with open(src / "tox.ini", "a") as fh:
        fh.write("\n# from up\n")
    g("add", "-A")
    g("commit", "-qm", "topic")
    g("checkout", "-q", "main")


class GitModel(
    TenthRoundSteps,
    EleventhRoundSteps,
    TwelfthRoundSteps,
    ThirteenthRoundSteps,
    FourteenthRoundSteps,
    RuleBasedStateMachine,
):
    """The mount (``m``) and the plain clone (``p``), driven alike."""

    def __init__(self) -> None:
        super().__init__()
        self.home = scratch_home("gitmodel-")
        self.mounted = False
        self.clock = 1700000100
        self.forks = 0
        self.last_checkpoint = False  # the last step was a checkpoint that made a commit
        self.undo_staged: set[str] = set()  # its paths git had staged as it records them
        self.backend = BACKEND
        self.kept: dict[str, tuple[Any, Any, int]] = {}  # the mount's files as the checks read them
        self.kept_plain: dict[str, tuple[Any, Any, int]] = {}  # the plain side's (cleared with kept)
        # run_seeded's answers of `has` while it asks every rule's preconditions (nothing moves
        # between them: one `rev-parse` a revision a step, not one a rule; suitetime3)
        self.has_memo: dict[str, bool] | None = None
        self.kept_labels: tuple[dict[str, Any], dict[str, Any]] = ({}, {})  # (mount, plain): Side.labels
        self.checks = 0
        root = Path(self.home)
        avfs_home = str(root / "avfs")
        self.avfs_home = avfs_home
        made = _made()
        if made is None:
            src = self.src = _source(root)
            _avfs(avfs_home, "vault", "create", "v", "--from", str(src), cwd=self.home)
            _avfs(avfs_home, "vault", "fork", "v:main", "f", cwd=self.home)
        else:  # (the same source and home, made once: _made)
            shutil.copytree(made / "unpacked", root / "unpacked", symlinks=True)
            shutil.copytree(made / "avfs", avfs_home, symlinks=True)
            src = self.src = root / "unpacked" / os.path.relpath(_MADE["src"], made / "unpacked")
            _imported_from(avfs_home, src)
        vault = _avfs(avfs_home, "--vault", "v", "vault", "path", cwd=self.home).stdout.strip()
        self.vault = vault
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
        # the plain clone reads the vault's objects: the commits avfs makes (checkpoints, an
        # exec's records) are the plain side's too, so every commit after them is the same
        # object on both sides (a conflict marker names a commit by its id)
        with open(os.path.join(plain, ".git", "objects", "info", "alternates"), "w") as fh:
            fh.write(os.path.join(vault, "objects") + "\n")
        mp = str(root / "m")
        os.mkdir(mp)
        self.m = Side(mp, env, vault)  # (the mount's tags and notes are the vault's: checked below)
        self.p = Side(plain, env, os.path.join(plain, ".git"))
        # the plain clone's git has an fsmonitor hook, as the mount's has avfs's: git with one
        # writes its index at every status (the hook's new token), so what git changes in
        # memory when it reads the index is kept at once on both sides (under sparse-checkout,
        # the skip-worktree bit of a present file, gone: seed 82, docs/fuse.md "gitmodel9");
        # this hook names everything changed ("/"), so git still looks at every file; its
        # new token is a count kept beside it, in the shell's builtins only (it was `date`'s
        # nanoseconds: a subshell and a `date` process at each of ~1,500 git commands a run)
        hook = os.path.join(self.home, "fsmonitor.sh")
        with open(hook + ".n", "w") as fh:
            fh.write("0\n")
        with open(hook, "w") as fh:
            fh.write(
                '#!/bin/sh\nread n < "$0.n"; n=$((n + 1)); echo $n > "$0.n"; printf \'tok%s\\0/\\0\' $n\n'
            )
        os.chmod(hook, 0o755)
        self.p.git("config", "core.fsmonitor", hook)
        self.p.git("config", "core.fsmonitorHookVersion", "2")
        self.p.git("branch", "side", "origin/side")
        # the mount (its daemon forked warm by this process's zygote, as every remount's: _avfs)
        _avfs(avfs_home, "--vault", "v:f", "mount", "--backend", BACKEND, mp, cwd=self.home)
        self.mounted = True
        common = self.m.git("rev-parse", "--path-format=absolute", "--git-common-dir").stdout.strip()
        assert os.path.samefile(common, vault), (common, vault)
        self.mp = mp
        # a local remote `up` on both sides (the source, a branch `topic` one commit ahead
        # of main, made after the vault: only a fetch brings it): `git fetch up` in the
        # mount fetches into the vault
        if made is None:  # (else in the made source already: _made)
            _topic(src)
        for side in (self.m, self.p):
            side.git("remote", "add", "up", str(src))
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
            try:
                self.stop_daemon()
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
        """The plain side's files' paths (:func:`_tree`'s, none read)."""
        return sorted(rel for rel, _, _ in _entries(self.p.root))

    def pick(self, data: st.DataObject, paths: list[str]) -> str | None:
        if not paths:
            return None
        return str(data.draw(st.sampled_from(paths)))

    def clean(self) -> bool:
        return not self.p.git("status", "--porcelain", "--untracked-files=no").stdout.strip()

    def has_parent(self) -> bool:
        return self.has("HEAD~1")

    def has(self, rev: str) -> bool:
        memo = self.has_memo
        if memo is not None and rev in memo:
            return memo[rev]
        got = self.p.git("rev-parse", "-q", "--verify", rev, check=False).returncode == 0
        if memo is not None:
            memo[rev] = got
        return got

    def busy(self) -> str | None:
        """What git has open on the plain side: ``merge``, ``cherry-pick``, ``revert``,
        ``rebase``, ``detached`` (HEAD off branch f), or None."""
        gd = os.path.join(self.p.root, ".git")
        for name, op in (
            ("MERGE_HEAD", "merge"),
            ("CHERRY_PICK_HEAD", "cherry-pick"),
            ("REVERT_HEAD", "revert"),
        ):
            if os.path.exists(os.path.join(gd, name)):
                return op
        if os.path.isdir(os.path.join(gd, "rebase-merge")) or os.path.isdir(os.path.join(gd, "rebase-apply")):
            return "rebase"
        if os.path.exists(os.path.join(gd, "sequencer")):
            return "cherry-pick"  # a multi-commit pick stopped (never in this model)
        if _sparse(gd):
            return "sparse-checkout"  # (avfs refuses to record what it left out as removals)
        # (HEAD's file read, not `git symbolic-ref`: this runs in every check and in the
        # preconditions of most rules; the plain clone's HEAD is never a packed ref)
        with open(os.path.join(gd, "HEAD")) as fh:
            head = fh.read()
        return None if head == "ref: refs/heads/f\n" else "detached"

    def am_open(self) -> bool:
        """Whether the plain side's open rebase-apply/ is `git am`'s."""
        return os.path.exists(os.path.join(self.p.root, ".git", "rebase-apply", "applying"))

    def fetched(self) -> None:
        """`git fetch up` on both sides, where `up/topic` is not there yet."""
        if not self.has("up/topic"):
            self.both("fetch", "-q", "up")

    def plain_checkpoint(
        self,
        message: str,
        only: list[str] | None = None,
        commit: str | None = None,
        keep: frozenset[str] = frozenset(),
    ) -> bool:
        """A checkpoint on the plain side: the paths the working tree differs from HEAD in
        (or ``only`` those), committed as they are, and the index's entries of those paths
        set to the commit's (as `git commit --only` does, and avfs patches the mount's
        index): what git staged elsewhere stays staged (avfs has no index of its own: a
        checkpoint records the files). ``commit``: the one avfs made (its tree and parent
        must be these), taken as it is. ``keep``: paths whose index entry stays as git
        staged it (an exec's record, :meth:`staged_apart`). True when it made a commit."""
        paths = sorted(p for p, _ in self.p.changes()) if only is None else only
        if not paths:
            return False
        head = self.p.git("rev-parse", "HEAD").stdout.strip()
        tree = self.p.worktree_tree(paths)
        if commit is None:
            new = self.p.git("commit-tree", tree, "-p", head, "-m", message).stdout.strip()
        else:
            got = self.p.git("log", "-1", "--format=%T %P", commit).stdout.split()
            assert got[:2] == [tree, head], (
                f"avfs's commit {commit} is {got}, the plain side's {tree} on {head}"
            )
            new = commit
        # the paths git had staged as the commit records them: an undo of it leaves them
        # staged, as `reset --soft` does (avfs notes them in the mount's own directory,
        # mount/indexahead.py; gitmodel19), the others unstaged
        differ = self.p.git("diff", "--cached", "--no-renames", "--name-only", "-z", new, "--", *paths).stdout
        self.undo_staged = set(paths) - {p for p in differ.split("\0") if p} | (keep & set(paths))
        self.p.git("update-ref", "-m", "checkpoint", "HEAD", new, head)
        if reset := [x for x in paths if x not in keep]:
            self.p.git("reset", "-q", new, "--", *reset)
        return True

    def staged_apart(self, old: str, new: str | None) -> frozenset[str]:
        """The paths whose entry in the plain side's index is neither ``old``'s nor
        ``new``'s: what git staged there, which a ``proxy exec``'s record (another writer's
        commit on the branch, moving it from ``old`` to ``new``) leaves staged, as a
        plain worktree's index stays when another hand commits on its branch
        (h-staged1: before, the record's index took the new commit's entry)."""
        if new is None or new == old:
            return frozenset()

        def apart(rev: str) -> set[str]:
            out = self.p.git("diff", "--cached", "--no-renames", "--name-only", "-z", rev).stdout
            return {x for x in out.split("\0") if x}

        return frozenset(apart(old) & apart(new))

    def on_both(self, fn: Any) -> None:
        for side in (self.p, self.m):
            fn(side.root)

    # -- file changes -----------------------------------------------------------------------
    @rule(data=st.data(), word=st.sampled_from(WORDS), append=st.booleans())
    def write(self, data: st.DataObject, word: str, append: bool) -> None:
        path = self.pick(data, self.files() + NEW_NAMES)
        assert path is not None
        if _blocked(self.p.root, path):
            return
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

    # -- file changes git tracks besides bytes ----------------------------------------------
    @rule(data=st.data())
    def chmod(self, data: st.DataObject) -> None:
        path = self.pick(data, [f for f in self.files() if not os.path.islink(os.path.join(self.p.root, f))])
        if path is None:
            return
        mode = 0o644 if os.stat(os.path.join(self.p.root, path)).st_mode & 0o100 else 0o755
        self.note(f"chmod {mode:o} {path}")
        self.on_both(lambda root: os.chmod(os.path.join(root, path), mode))
        self.last_checkpoint = False

    @rule(which=st.sampled_from([*ATTRIBUTES, None]))
    def attributes(self, which: str | None) -> None:
        """The root's `.gitattributes` written anew (None: removed)."""
        self.note(f"gitattributes {which!r}")

        def w(root: str) -> None:
            p = os.path.join(root, ".gitattributes")
            if which is not None:
                with open(p, "w") as fh:
                    fh.write(which)
            elif os.path.lexists(p):
                os.unlink(p)

        self.on_both(w)
        self.last_checkpoint = False

    @rule(data=st.data(), text=st.sampled_from(CRLF_TEXTS), append=st.booleans())
    def crlf_write(self, data: st.DataObject, text: bytes, append: bool) -> None:
        """CRLF, mixed, lone-CR or NUL bytes written to a file (what `.gitattributes` convert)."""
        path = self.pick(data, self.files() + NEW_NAMES)
        assert path is not None
        self.write_bytes(path, text, append)

    def write_bytes(self, path: str, text: bytes, append: bool) -> None:
        if _blocked(self.p.root, path):
            return
        self.note(f"write-bytes {path} {text!r} append={append}")

        def w(root: str) -> None:
            p = os.path.join(root, path)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, "ab" if append else "wb") as fh:
                fh.write(text)

        self.on_both(w)
        self.last_checkpoint = False

    @rule(data=st.data(), dangling=st.booleans())
    def symlink(self, data: st.DataObject, dangling: bool) -> None:
        """A link (relative, to a file or to nothing) made at a new name or over a file."""
        # (not at a name whose link avfs leaves out of its commits by design, as git never
        # follows it: `.gitattributes`, `.gitignore`, `.mailmap`, core/store/gitnames.py;
        # the plain side's stand-ins record what `git add` records)
        at = self.pick(
            data, [*(f for f in self.files() if not _git_rule_file(f)), "link.txt", "src/attr/link.py"]
        )
        to = self.pick(data, self.files())
        assert at is not None
        if to is None or to == at:
            return
        target = "missing.txt" if dangling else os.path.relpath(to, os.path.dirname(at) or ".")
        self.note(f"ln -sf {target} {at}")
        _link_both(self, target, at)
        self.last_checkpoint = False

    @rule(data=st.data(), to_dir=st.booleans())
    def file_and_dir(self, data: st.DataObject, to_dir: bool) -> None:
        """A file replaced by a directory of the same name, or a directory by a file."""
        if to_dir:  # (nor a directory there: git refuses a `.gitattributes` that is one)
            path = self.pick(data, [f for f in self.files() if not _git_rule_file(f)])
        else:
            path = self.pick(data, sorted({os.path.dirname(f) for f in self.files()} - {""}))
        if path is None:
            return
        _swap_both(self, path, to_dir)
        self.last_checkpoint = False

    @rule(data=st.data())
    def ignored(self, data: st.DataObject) -> None:
        """A `.gitignore` (build/, *.log) and a file it ignores."""
        path = str(data.draw(st.sampled_from(["build/out.o", "run.log", "src/attr/cache.log"])))
        if _blocked(self.p.root, path):
            return
        self.note(f".gitignore, write {path}")

        def w(root: str) -> None:
            with open(os.path.join(root, ".gitignore"), "w") as fh:
                fh.write("build/\n*.log\n")
            os.makedirs(os.path.dirname(os.path.join(root, path)) or root, exist_ok=True)
            with open(os.path.join(root, path), "a") as fh:
                fh.write("ignored\n")

        self.on_both(w)
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

    @rule(data=st.data(), how=st.sampled_from(["", "-a", "--amend", "-a --amend", "--only", "--allow-empty"]))
    def commit(self, data: st.DataObject, how: str) -> None:
        args = ["commit", "-q", "-m", "made with git", *how.split()]
        if "--amend" in args:
            args.append("--no-edit")
        if how == "--only":  # `git commit -- PATH`: that path as it is, the rest of the index stays
            path = self.pick(data, self.tracked())
            if path is None:
                return
            args += ["--", path]
        self.both(*args)
        self.last_checkpoint = False

    @precondition(lambda self: self.has_parent())
    @rule(how=st.sampled_from(["--soft", "--mixed", "--hard", "--keep"]), back=st.integers(1, 4))
    def reset(self, how: str, back: int) -> None:
        """`git reset` to an older commit (HEAD~1..3, as deep as the history goes) or to
        `side`. (Not ORIG_HEAD: the plain side's stand-ins for avfs's operations set it.)"""
        target = f"HEAD~{back}"
        if back == 4:
            target = "side"
        elif not self.has(target):
            target = "HEAD~1"
        self.both("reset", "-q", how, target)
        self.last_checkpoint = False

    @precondition(lambda self: self.busy() is None)
    @rule(data=st.data())
    def revert(self, data: st.DataObject) -> None:
        if self.clean() and self.has_parent():
            self.conflicted(data, "revert", "revert", "--no-edit", "HEAD")
        self.last_checkpoint = False

    @precondition(lambda self: self.busy() is None)
    @rule(data=st.data())
    def cherry_pick(self, data: st.DataObject) -> None:
        if self.clean():
            self.conflicted(data, "cherry-pick", "cherry-pick", "side")
        self.last_checkpoint = False

    @precondition(lambda self: self.busy() is None)
    @rule(cone=st.sampled_from(["src", "docs changelog.d"]))
    def sparse_checkout(self, cone: str) -> None:
        """`git sparse-checkout set DIRS` (cone mode): the files it leaves out go from the
        working tree; avfs refuses to record them as removals (checkpoint, exec: exit 75)
        until `git sparse-checkout disable` (:meth:`settle`) brings them back."""
        self.both("sparse-checkout", "set", *cone.split())

    @precondition(lambda self: self.busy() is None)
    @rule(data=st.data())
    def cherry_pick_range(self, data: st.DataObject) -> None:
        """`git cherry-pick HEAD..side up/topic`: two commits through git's sequencer; one
        that conflicts (after `diverge`) stops it, left open for :meth:`settle`'s
        `--continue` (which picks the next) or aborted."""
        if self.clean():
            self.fetched()
            self.conflicted(data, "cherry-pick", "cherry-pick", "HEAD..side", "up/topic")
        self.last_checkpoint = False

    @precondition(lambda self: self.busy() is None)
    @rule(data=st.data())
    def am_series(self, data: st.DataObject) -> None:
        """`git am -3` of a series `git format-patch` made (side's and topic's commits not
        in HEAD, one mailbox): a conflict stops it, left open for :meth:`settle` (`git am
        --continue`, `--abort`, `--quit`) or aborted."""
        if not self.clean():
            return
        self.fetched()
        path = os.path.join(self.home, "series.mbox")
        self.note("format-patch --stdout HEAD..side; HEAD..up/topic")
        with open(path, "w") as fh:
            for rng in ("HEAD..side", "HEAD..up/topic"):
                fh.write(self.p.git("format-patch", "--stdout", rng).stdout)
        if not self.both("am", "-q", "-3", path) and self.am_open() and data.draw(st.booleans()):
            self.both("am", "--abort")
        self.last_checkpoint = False

    @precondition(lambda self: self.busy() is None)
    @rule(data=st.data(), squash=st.booleans())
    def merge(self, data: st.DataObject, squash: bool) -> None:
        """`git merge side` (a merge commit, or `--squash` then a commit of it)."""
        if not self.clean():
            return
        if squash:
            if self.both("merge", "-q", "--squash", "side"):
                self.both("commit", "-q", "--no-edit")
            else:
                self.both("reset", "-q", "--merge")
        else:
            self.conflicted(data, "merge", "merge", "--no-edit", "side")
        self.last_checkpoint = False

    @precondition(lambda self: self.busy() is None)
    @rule()
    def diverge(self) -> None:
        """A commit of README.md's last line, which `side` changes too: the next merge,
        cherry-pick or rebase of `side` conflicts."""
        if not self.clean():
            return
        _write_both(self, "README.md", "a line from f\n")
        self.both("commit", "-q", "-m", "diverge", "--", "README.md")
        self.last_checkpoint = False

    @precondition(lambda self: self.busy() is None)
    @rule(data=st.data())
    def rebase(self, data: st.DataObject) -> None:
        dirty = self.p.git("status", "--porcelain").stdout.strip()
        if not dirty:
            self.conflicted(data, "rebase", "rebase", "-q", "side")
        self.last_checkpoint = False

    @precondition(lambda self: self.busy() is None)
    @rule(data=st.data())
    def rebase_autostash(self, data: st.DataObject) -> None:
        """`git rebase --autostash side` over local changes: git stashes them, rebases and
        applies them back (a conflict of the rebase is left open or aborted: the stash is
        applied at its end either way)."""
        if self.p.git("status", "--porcelain", "--untracked-files=no").stdout.strip():
            self.conflicted(data, "rebase", "rebase", "-q", "--autostash", "side")
        self.last_checkpoint = False

    @precondition(lambda self: self.busy() is None)
    @rule(data=st.data(), merge=st.booleans())
    def fetch(self, data: st.DataObject, merge: bool) -> None:
        """`git fetch up` (a local remote), and a merge of what it brought."""
        self.both("fetch", "-q", "up")
        if merge and self.clean():
            self.conflicted(data, "merge", "merge", "--no-edit", "up/topic")
        self.last_checkpoint = False

    @precondition(lambda self: self.busy() is None and self.has("HEAD~2"))
    @rule(data=st.data(), script=st.sampled_from(sorted(REBASE_SCRIPTS)), back=st.integers(2, 3))
    def rebase_i(self, data: st.DataObject, script: str, back: int) -> None:
        """`git rebase -i HEAD~N` with a scripted todo list (GIT_SEQUENCE_EDITOR's job):
        squash, fixup, drop, reorder, or stop at the first commit to edit it."""
        if self.p.git("status", "--porcelain", "--untracked-files=no").stdout.strip():
            return
        base = f"HEAD~{back}" if self.has(f"HEAD~{back}") else "HEAD~2"
        editor = f"sequence.editor={REBASE_SCRIPTS[script]}"
        self.conflicted(data, "rebase", "-c", editor, "rebase", "-q", "-i", base)
        self.last_checkpoint = False

    def conflicted(self, data: st.DataObject, op: str, *args: str) -> None:
        """Run ``args`` on both sides; where it stops (a conflict, an `edit`), either
        `git OP --abort` at once or leave it open for the steps that follow (:meth:`settle`)."""
        if not self.both(*args) and self.busy() is not None and data.draw(st.booleans()):
            self.both(op, "--abort")

    @precondition(lambda self: self.busy() is not None)
    @rule(how=st.sampled_from(["abort", "ours", "theirs", "as-is", "quit"]))
    def settle(self, how: str) -> None:
        """An open merge, cherry-pick, revert or rebase (or a detached HEAD) settled: given
        up, or each conflict taken from one side (or as it is, markers and all) and continued."""
        op = self.busy()
        assert op is not None
        if op == "detached":
            self.both("switch", "-q", "f")
            return
        if op == "sparse-checkout":
            self.both("sparse-checkout", "disable")
            return
        if op == "rebase" and self.am_open():
            op = "am"  # (`git am` stopped: rebase-apply/, which avfs and git's prompt call a rebase)
        if how == "abort":
            self.both(op, "--abort")
            return
        if how == "quit" and op in ("cherry-pick", "revert", "rebase", "am"):
            self.both(op, "--quit")
            return
        if how in ("ours", "theirs"):
            for path in filter(
                None, self.p.git("diff", "--name-only", "-z", "--diff-filter=U").stdout.split("\0")
            ):
                if not self.both("checkout", f"--{how}", "--", path):
                    self.both("rm", "-q", "--", path)
        self.both("add", "-A")
        if op == "merge":
            self.both("commit", "-q", "--no-edit")
        else:
            self.both(op, "--continue")
        self.last_checkpoint = False

    @precondition(lambda self: self.busy() is None and self.has_parent())
    @rule(back=st.integers(1, 2), switch=st.booleans())
    def detach(self, back: int, switch: bool = False) -> None:
        """`git checkout --detach HEAD~N` or `git switch --detach HEAD~N`: git's own state in
        the mount (avfs refuses to record on the fork until `git switch f`); commits made
        there are left behind."""
        rev = f"HEAD~{back}" if self.has(f"HEAD~{back}") else "HEAD~1"
        self.both("switch" if switch else "checkout", "-q", "--detach", rev)
        self.last_checkpoint = False

    @precondition(lambda self: self.busy() is None and self.has("HEAD~2"))
    @rule(data=st.data(), word=st.sampled_from(WORDS))
    def fixup(self, data: st.DataObject, word: str) -> None:
        """`git commit --fixup=HEAD~1` of a change, then `git rebase -i --autosquash` (the
        todo list as git makes it): the fixup folded into the commit it names."""
        path = self.pick(data, self.tracked())
        if path is None or not self.clean():
            return
        _write_both(self, path, word)
        if self.both("commit", "-q", "-a", "--fixup=HEAD~1"):
            self.conflicted(
                data,
                "rebase",
                "-c",
                "sequence.editor=true",
                "rebase",
                "-q",
                "-i",
                "--autosquash",
                "HEAD~3" if self.has("HEAD~3") else "HEAD~2",
            )
        self.last_checkpoint = False

    @precondition(lambda self: self.busy() is None)
    @rule(how=st.sampled_from(["am", "apply", "apply-index", "apply-reverse", "apply-3way"]))
    def patch(self, how: str) -> None:
        """`git format-patch -1 side` applied: `git am` (a commit), `git apply` (the files),
        `git apply --index` (and the index), `git apply --3way` (a conflict left in the
        index), or `git apply -R` of HEAD's own patch; one that does not apply is given up
        alike (`git am --abort`)."""
        rev = "HEAD" if how == "apply-reverse" else "side"
        if not self.has(rev):
            return
        path = self.format_patch(rev)
        args = {
            "am": ["am", "-q", path],
            "apply": ["apply", path],
            "apply-index": ["apply", "--index", path],
            "apply-reverse": ["apply", "-R", path],
            # (a conflict leaves the index's stages and the markers, no MERGE_HEAD: git exits 1)
            "apply-3way": ["apply", "--3way", path],
        }[how]
        if not self.both(*args) and how == "am":
            self.both("am", "--abort")
        self.last_checkpoint = False

    def format_patch(self, rev: str) -> str:
        """`git format-patch -1 --stdout REV` of the plain side, in a file beside both."""
        self.note(f"format-patch {rev}")
        path = os.path.join(self.home, "side.patch")
        with open(path, "w") as fh:
            fh.write(self.p.git("format-patch", "-1", "--stdout", rev).stdout)
        return path

    @precondition(lambda self: self.busy() is None and self.has("HEAD~2"))
    @rule(test=st.sampled_from(["test -f NEW.txt", "grep -q one README.md", "true"]))
    def bisect(self, test: str) -> None:
        """`git bisect start HEAD HEAD~2`, `git bisect run TEST` (git checks out
        commits detached, one after the other), `git bisect reset`: back on the branch."""
        self.both("bisect", "start", "HEAD", "HEAD~2")
        self.both("bisect", "run", *test.split())
        self.both("bisect", "reset")
        self.last_checkpoint = False

    @precondition(lambda self: self.busy() is None)
    @rule()
    def hooked_commit(self) -> None:
        """`git commit -a` with a pre-commit hook that rewrites a file and stages it (what a
        formatter run as a hook does): the mount's hooks are the vault's (docs/fuse.md)."""
        self._tick()
        self.note("hooked-commit")
        hooks = [os.path.join(self.vault, "hooks"), os.path.join(self.p.root, ".git", "hooks")]
        for d in hooks:
            os.makedirs(d, exist_ok=True)
            with open(os.path.join(d, "pre-commit"), "w") as fh:
                fh.write("#!/bin/sh\nprintf 'hooked\\n' >> README.md && git add README.md\n")
            os.chmod(os.path.join(d, "pre-commit"), 0o755)
        try:
            a = self.p.git("commit", "-q", "-a", "-m", "hooked", check=False)
            b = self.m.git("commit", "-q", "-a", "-m", "hooked", check=False)
            assert a.returncode == b.returncode, f"hooked commit: plain {a.stderr!r}, mount {b.stderr!r}"
        finally:
            for d in hooks:
                os.unlink(os.path.join(d, "pre-commit"))
        self.last_checkpoint = False

    @rule(
        data=st.data(),
        how=st.sampled_from(
            ["--skip-worktree", "--no-skip-worktree", "--assume-unchanged", "--no-assume-unchanged"]
        ),
    )
    def index_flag(self, data: st.DataObject, how: str) -> None:
        """`git update-index --skip-worktree` / `--assume-unchanged` (and back) of a path: a
        bit of git's index entry, which avfs's own writes of the mount's index keep."""
        path = self.pick(data, self.tracked())
        if path is not None:
            self.both("update-index", how, "--", path)
        self.last_checkpoint = False

    @rule(data=st.data(), how=st.sampled_from(["add", "append", "remove"]))
    def notes(self, data: st.DataObject, how: str) -> None:
        """`git notes add -f` / `append` / `remove` on HEAD (refs/notes/commits: the vault's,
        in the mount)."""
        args = {
            "add": ["add", "-f", "-m", "a note"],
            "append": ["append", "-m", "more"],
            "remove": ["remove", "--ignore-missing"],
        }[how]
        self.both("notes", *args, "HEAD")

    @rule(data=st.data(), upper=st.booleans())
    def case_rename(self, data: st.DataObject, upper: bool) -> None:
        """`git mv PATH Path` (a case-only rename: two names on Linux, one on a folding disk)."""
        path = self.pick(data, self.tracked())
        if path is None:
            return
        d, name = os.path.split(path)
        new = os.path.join(d, name.upper() if upper else name.lower())
        if new != path and not os.path.lexists(os.path.join(self.p.root, new)):
            self.both("mv", "-k", path, new)
        self.last_checkpoint = False

    @rule(data=st.data(), remove=st.booleans())
    def empty_dir(self, data: st.DataObject, remove: bool) -> None:
        """An empty directory made (git sees nothing) or every file of a directory removed
        and the directory too (`rm -r`, then a `git commit -a` records the removal)."""
        if not remove:
            self.note("mkdir empty/dir")
            self.on_both(lambda r: os.makedirs(os.path.join(r, "empty", "dir"), exist_ok=True))
            return
        dirs = sorted({os.path.dirname(f) for f in self.tracked()} - {""})
        # (those there: `git sparse-checkout` leaves some out)
        path = self.pick(data, [d for d in dirs if os.path.isdir(os.path.join(self.p.root, d))])
        if path is None or not self.clean():
            return
        self.note(f"rm -r {path}")
        self.on_both(lambda r: shutil.rmtree(os.path.join(r, path)))
        self.both("commit", "-q", "-a", "-m", "without a directory")
        self.last_checkpoint = False

    @precondition(lambda self: self.busy() is None)
    @rule(
        data=st.data(),
        how=st.sampled_from(["", "-u", "--keep-index", "apply", "pop", "path", "pop-resolve"]),
    )
    def stash(self, data: st.DataObject, how: str) -> None:
        """`git stash` (`-u`, `--keep-index`, `push -- PATH`), `stash pop`, `stash apply`
        then `stash drop`; a pop that conflicts undone (`reset --hard`), or resolved
        (`pop-resolve`: each conflict taken from the stash, `git reset`, `git stash drop`)."""
        if how in ("pop", "apply", "pop-resolve"):
            if not self.p.git("stash", "list").stdout.strip():
                return
            if not self.both("stash", "pop" if how == "pop-resolve" else how, "-q"):
                conflicts = self.p.git("diff", "--name-only", "-z", "--diff-filter=U").stdout.split("\0")
                if how == "pop-resolve" and any(conflicts):
                    for path in filter(None, conflicts):
                        if not self.both("checkout", "--theirs", "--", path):
                            self.both("rm", "-q", "--", path)
                    self.both("reset", "-q")
                    self.both("stash", "drop", "-q")
                    return
                # a conflicting pop keeps the stash and leaves the conflict: undo alike
                self.both("reset", "-q", "--hard")
            elif how == "apply":
                self.both("stash", "drop", "-q")
        elif how == "path":
            path = self.pick(data, self.tracked())
            if path is not None:
                self.both("stash", "push", "-q", "--", path)
        else:
            self.both("stash", "-q", *how.split())
        self.last_checkpoint = False

    @rule(
        data=st.data(),
        how=st.sampled_from(
            [
                "checkout",
                "restore",
                "restore-staged",
                "rm-cached",
                "rm",
                "from-side",
                "from-old",
                "source-side",
                "checkout-old",
            ]
        ),
    )
    def path_command(self, data: st.DataObject, how: str) -> None:
        path = self.pick(data, self.tracked())
        if path is None:
            return
        args = {
            "checkout": ["checkout", "-q", "--", path],
            "restore": ["restore", "--", path],
            "restore-staged": ["restore", "--staged", "--", path],
            "rm-cached": ["rm", "-q", "--cached", "--", path],
            "rm": ["rm", "-q", "-f", "--", path],
            "from-side": ["checkout", "-q", "side", "--", "SIDE.txt", "README.md"],
            "from-old": ["restore", "-s", "HEAD~1", "-SW", "--", path],
            "source-side": ["restore", "--source=side", "--", path],
            "checkout-old": ["checkout", "-q", "HEAD~1", "--", path],
        }[how]
        self.both(*args)
        self.last_checkpoint = False

    @rule(
        data=st.data(),
        to=st.sampled_from(["moved-dir", "src/moved-dir"]),
        how=st.sampled_from(["mv", "rm", "rm-cached"]),
    )
    def directory_command(self, data: st.DataObject, to: str, how: str) -> None:
        """`git mv DIR NEW` (a directory renamed: many paths at once), `git rm -r [--cached] DIR`."""
        path = self.pick(data, sorted({os.path.dirname(f) for f in self.tracked()} - {""}))
        if path is None:
            return
        if how == "mv":
            self.both("mv", "-k", path, to)
        else:
            self.both("rm", "-r", "-q", "-f", *(["--cached"] if how == "rm-cached" else []), "--", path)
        self.last_checkpoint = False

    @rule(how=st.sampled_from(["-fd", "-fdx", "-fX", "-f"]))
    def clean_untracked(self, how: str) -> None:
        self.both("clean", "-q", how)
        self.last_checkpoint = False

    @rule(
        how=st.sampled_from(
            [
                "gc -q",
                "gc -q --prune=now",
                "repack -adq",
                "pack-refs --all",
                "prune",
                "maintenance run --quiet --task=gc",
                "maintenance run --quiet --task=loose-objects --task=incremental-repack --task=pack-refs",
            ]
        )
    )
    def housekeeping(self, how: str) -> None:
        """git's own housekeeping: in the mount it packs and prunes the vault itself."""
        self.both(*how.split())

    @rule(
        data=st.data(),
        name=st.sampled_from(["t1", "t2"]),
        how=st.sampled_from(["light", "annotated", "delete", "reset"]),
    )
    def tag(self, data: st.DataObject, name: str, how: str) -> None:
        """Tags (the vault's, in the mount) at HEAD or HEAD~1, deleted, or reset to."""
        back = "HEAD~1" if data.draw(st.booleans()) and self.has_parent() else "HEAD"
        if how == "light":
            self.both("tag", "-f", name, back)
        elif how == "annotated":
            self.both("tag", "-f", "-a", "-m", "a tag", name, back)
        elif self.has(f"refs/tags/{name}"):
            if how == "delete":
                self.both("tag", "-d", name)
            else:
                self.both("reset", "-q", "--hard", name)
                self.last_checkpoint = False

    @rule(new=st.booleans())
    def switch(self, new: bool) -> None:
        """A branch switch in the mount is switched back (the mount is its fork): git exits 1;
        on the plain side, what the guard does: the switch, then `git checkout f` (local
        changes git carried come back; ``-c X`` leaves branch X made)."""
        self.forks += 1
        self.switched_back(["switch", "-q", "-c", f"sw{self.forks}"] if new else ["switch", "-q", "side"])

    def switched_back(self, args: list[str]) -> None:
        """git ``args`` switch to another branch: see :meth:`switch`."""
        self._tick()
        self.note("git " + " ".join(args) + " (switched back)")
        got = self.m.git(*args, check=False)
        assert got.returncode != 0, f"git {' '.join(args)} in the mount: {got.stdout}{got.stderr}"
        if self.p.git(*args, check=False).returncode == 0:
            # (from a detached HEAD, git may refuse the way back for local changes: the
            # guard then leaves HEAD on X and says so, in the mount as here)
            self.p.git("checkout", "-q", "--ignore-other-worktrees", "f", "--", check=False)

    # -- avfs operations, and their git equivalents on the plain side -------------------------
    @rule()
    def avfs_status(self) -> None:
        self.note("avfs status")
        _avfs(self.avfs_home, "status", cwd=self.mp)

    @precondition(lambda self: self.busy() is None)
    @rule(name_it=st.booleans())
    def checkpoint(self, name_it: bool) -> None:
        """`avfs checkpoint save` = `git commit --only` of what the files differ from HEAD in."""
        self._tick()
        self.note("avfs checkpoint save")
        before = self.m.git("rev-parse", "HEAD").stdout.strip()
        _avfs(self.avfs_home, "checkpoint", "save", "-m", "checkpoint", cwd=self.mp)
        after = self.m.git("rev-parse", "HEAD").stdout.strip()
        made = self.plain_checkpoint("checkpoint", commit=after if after != before else None)
        assert made == (before != after), f"checkpoint made a commit: mount {before != after}, plain {made}"
        self.last_checkpoint = made

    @precondition(lambda self: self.busy() is not None)
    @rule(how=st.sampled_from(["checkpoint", "exec"]))
    def refused_while_busy(self, how: str) -> None:
        """While git has something open in the mount (a conflicted merge, a rebase, a
        detached HEAD), a checkpoint refuses with `git_in_progress` (exit 75) and changes
        nothing; `proxy exec` runs its command (exit: the command's) and takes no record
        of what was uncheckpointed before it (git's checkout of another commit, in a bisect:
        docs/proxy.md), so a command that changes nothing records nothing, refuses nothing,
        and its envelope's state still counts what is uncheckpointed. The plain side does
        nothing."""
        self._tick()
        op = self.busy()
        if how == "checkpoint":
            self.note(f"avfs checkpoint save (refused: {op})")
            res = _avfs(self.avfs_home, "--json", "checkpoint", "save", "-m", "x", cwd=self.mp, check=False)
            doc = json.loads(res.stdout)
            assert res.returncode == 75 and doc["kind"] == "error", res.stdout + res.stderr
        else:
            self.note(f"avfs proxy exec -- true (refused: {op})")
            dirty = bool(self.p.changes("refs/heads/f"))
            res = _avfs(self.avfs_home, "--json", "proxy", "exec", "--", "true", cwd=self.mp, check=False)
            doc = json.loads(res.stdout)
            assert res.returncode == 0 and doc["commit"] is None, res.stdout + res.stderr
            assert doc["success"] and doc["error"] is None and not doc["changes"], res.stdout + res.stderr
            assert bool(doc["state"]["uncheckpointed_changes"]) == dirty, res.stdout + res.stderr
            return
        assert not doc.get("success") and doc["error"]["code"] == "git_in_progress", res.stdout + res.stderr

    @precondition(lambda self: self.last_checkpoint)
    @rule()
    def undo(self) -> None:
        """`avfs undo` of a checkpoint = `git reset --soft HEAD~1`, then the paths the
        checkpoint recorded unstaged (`git reset -q HEAD -- PATHS`): the inverse of the
        checkpoint's `git commit --only`, the view staying. What git staged that the
        checkpoint never touched stays staged, as it was before the checkpoint (decided in
        gitmodel18, seed 1702: the model said `git reset --mixed HEAD~1`, which drops all
        of it; docs/fuse.md "gitmodel18"), and so does what git had staged as the
        checkpoint recorded it (gitmodel19: ``undo_staged``; across a remount since gitmodel20;
        not for a checkpoint made unmounted, where avfs has no note of it)."""
        self.note("avfs undo")
        _avfs(self.avfs_home, "undo", cwd=self.mp)
        out = self.p.git("diff", "--no-renames", "--name-only", "-z", "HEAD~1", "HEAD").stdout
        self.p.git("reset", "-q", "--soft", "HEAD~1")
        paths = [p for p in out.split("\0") if p and p not in self.undo_staged]
        if paths:
            self.p.git("reset", "-q", "HEAD", "--", *paths)
        self.last_checkpoint = False

    @precondition(lambda self: self.busy() is None and self.has_parent())
    @rule()
    def restore(self) -> None:
        """`avfs checkpoint restore HEAD~1` = `git reset --hard HEAD~1 && git clean -fd`,
        the paths ignored before the restore kept (docs/concepts.md "Ignored files": a
        restore keeps them like `git checkout`, judged by the rules as they were when it
        ran; a `.gitignore` the restore takes back does not make them new files to drop),
        then every tracked file written again (`git rm -r --cached .`, `git reset --hard`):
        a restore shows the commit as a fresh checkout
        writes it, under the line-ending settings of now, where `reset --hard` leaves a
        file whose stat data git's index holds as it was written (a CRLF file recorded LF
        under `core.autocrlf=true`, restored after `core.autocrlf=false`: LF in the mount,
        CRLF on the plain side without it; gitmodel10, docs/fuse.md "Checkout conversions")."""
        self.note("avfs checkpoint restore HEAD~1")
        target = self.m.git("rev-parse", "HEAD~1").stdout.strip()
        ignored = self.p.git("ls-files", "-z", "-o", "-i", "--exclude-standard", "--directory")
        keep = [a for q in ignored.stdout.split("\0") if q for a in ("-e", "/" + q)]
        _avfs(self.avfs_home, "checkpoint", "restore", target, cwd=self.mp)
        # (git's skip-worktree and assume-unchanged bits kept, as avfs keeps them in the
        # mount's index; a skip-worktree file written too: `reset --hard` and `rm --cached`
        # leave one as it is, a local change and all, or refuse where the commit changes
        # it, where avfs's restore shows the commit's, the change kept in the recovery
        # ref: decided in gitmodel18, docs/fuse.md "gitmodel18")
        rows = [ln for ln in self.p.git("ls-files", "-v", "-z").stdout.split("\0") if ln]
        skipped = [ln[2:] for ln in rows if ln[0] in "Ss"]
        if skipped:
            self.p.git("update-index", "--no-skip-worktree", "--", *skipped)
        self.p.git("reset", "-q", "--hard", "HEAD~1")
        self.p.git("clean", "-qfd", *keep)
        rows = [ln for ln in self.p.git("ls-files", "-v", "-z").stdout.split("\0") if ln]
        held = {ln[2:] for ln in rows}
        # (a fresh checkout: the index made again from HEAD, every file written)
        self.p.git("rm", "-r", "-q", "--cached", "--", ".")
        self.p.git("reset", "-q", "--hard")
        for flag, marked in (
            ("--skip-worktree", [p for p in skipped if p in held]),
            ("--assume-unchanged", [ln[2:] for ln in rows if ln[0].islower()]),
        ):
            if marked:
                self.p.git("update-index", flag, "--", *marked)
        self.last_checkpoint = False

    @precondition(lambda self: self.busy() is None)
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
        # (git's identity and dates as the plain side's: the commit is the same object there)
        cmd = (
            f"printf %s {shlex.quote(word)} >> {shlex.quote(path)} &&"
            f" git add -- {shlex.quote(path)} && {_IDENTITY}"
            f" GIT_AUTHOR_DATE='{date}' GIT_COMMITTER_DATE='{date}' git commit -qm 'made in exec'"
        )
        self.note(f"avfs proxy exec -- sh -c {cmd!r}")
        res = _avfs(
            self.avfs_home, "--json", "proxy", "exec", "--", "sh", "-c", cmd, cwd=self.mp, check=False
        )
        doc = json.loads(res.stdout)
        assert doc["success"] and doc["result"]["exit_code"] == 0, res.stdout + res.stderr
        subprocess.run(["sh", "-c", cmd], cwd=self.p.root, env=self.p.env, check=True, capture_output=True)
        self.last_checkpoint = False

    @precondition(lambda self: self.busy() is None)
    @rule(cmd=st.sampled_from(sorted(EXEC_COMMANDS)))
    def exec_git_command(self, cmd: str) -> None:
        """`avfs proxy exec -- sh -c 'git ...'` (the confined path) = the same git command
        on the plain side, with avfs's records around it (docs/proxy.md "Git inside"):
        what was uncheckpointed before is recorded first, below the command's changes when
        the command did not move the branch (a commit of that tree, then the exec's commit
        of what the command changed), beside the branch when it did (then only what the
        command left uncommitted of its own changes is committed on top)."""
        self.exec_script(EXEC_COMMANDS[cmd])

    def exec_script(self, text: str) -> None:
        """:meth:`exec_git_command` of shell ``text`` (any command: gitmodel13's
        ``exec_edit`` edits files without git)."""
        self._tick()
        date = self.env["GIT_AUTHOR_DATE"]
        script = (
            f"export {_IDENTITY} GIT_AUTHOR_DATE='{date}' GIT_COMMITTER_DATE='{date}' GIT_EDITOR=true; "
            + text
        )
        self.note(f"avfs proxy exec -- sh -c {text!r}")
        p = self.p
        head0 = p.git("rev-parse", "HEAD").stdout.strip()
        record = p.worktree_tree()
        files0 = _tree(p.root)
        res = _avfs(
            self.avfs_home, "--json", "proxy", "exec", "--", "sh", "-c", script, cwd=self.mp, check=False
        )
        doc = json.loads(res.stdout)
        if doc["decision"]["action"] == "require_approval":
            # (`git -c sequence.editor=...` may run a program: the policy asks a person,
            # who approves the very request, as `proxy exec --approve TOKEN` does)
            token = doc["approval"]["token"]
            argv = ["--json", "proxy", "exec", "--approve", token, "--", "sh", "-c", script]
            res = _avfs(self.avfs_home, *argv, cwd=self.mp, check=False)
            doc = json.loads(res.stdout)
        assert doc["result"] is not None and doc["error"] is None, res.stdout + res.stderr
        tags0 = p.git("for-each-ref", "--format=%(refname) %(objectname)", "refs/tags").stdout.splitlines()
        code = subprocess.run(["sh", "-c", script], cwd=p.root, env=p.env, capture_output=True).returncode
        assert doc["result"]["exit_code"] == code, (
            f"exit {doc['result']['exit_code']}, plain {code}: {res.stdout}"
        )
        # the command's tags live as long as its run (docs/proxy.md), each one reported
        tags1 = p.git("for-each-ref", "--format=%(refname) %(objectname)", "refs/tags").stdout.splitlines()
        moved = {ln.split()[0] for ln in set(tags0) ^ set(tags1)}
        said = {r["ref"] for r in doc["refs_refused"] if r["ref"].startswith("refs/tags/")}
        assert said == moved, f"tags the command changed {sorted(moved)}, reported {sorted(said)}"
        for ln in tags1:
            p.git("update-ref", "-d", ln.split()[0])
        for ln in tags0:
            p.git("update-ref", *ln.split())
        head1 = p.git("rev-parse", "HEAD").stdout.strip()
        assert (doc["branch_moved"] is not None) == (head1 != head0), (
            f"branch moved: plain {head0}->{head1}: {res.stdout}"
        )
        made = doc["commit"] and doc["commit"]["commit"]
        if head1 == head0:
            rec = doc["checkpoint"]
            landed = rec["commit"] if rec is not None and rec["on_branch"] else None
            keep = self.staged_apart(head0, made or landed)
            if record != p.git("rev-parse", "HEAD^{tree}").stdout.strip():
                assert rec is not None and rec["on_branch"], f"no record below the command: {res.stdout}"
                assert p.git("log", "-1", "--format=%T %P", rec["commit"]).stdout.split() == [record, head0]
                # (NUL-separated: attrs has names with a space, `docs/_static/social card.png`)
                diff = p.git("diff", "--name-only", "-z", "--no-renames", head0, rec["commit"]).stdout
                gone = [x for x in diff.split("\0") if x]
                p.git("update-ref", "refs/heads/f", rec["commit"], head0)
                if gone := [x for x in gone if x not in keep]:
                    p.git("reset", "-q", rec["commit"], "--", *gone)  # the index follows the base there
            self.plain_checkpoint("exec", commit=made, keep=keep)
        else:
            files1 = _tree(p.root)
            own = {f for f in set(files0) | set(files1) if files0.get(f) != files1.get(f)}
            left = sorted(path for path, _ in p.changes() if path in own)
            self.plain_checkpoint("exec", left, commit=made, keep=self.staged_apart(head1, made))
        self.last_checkpoint = False

    @precondition(lambda self: self.busy() is None)
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
    def avfs_status_doc(self) -> dict[str, Any]:
        """`avfs --json status` in the mount, run in this process as the console script
        runs it (``run_in_process``), with :func:`_avfs`'s environment: it was a real
        process after every step, ~1/6 of the check's CPU (a process, and the warm
        server's child that ran the call: suitetime11); every avfs command of the model
        runs so since suitetime24."""
        env = {"AVFS_HOME": self.avfs_home, "AVFS_LAYERS": os.environ.get("AVFS_LAYERS", "off")}
        res = run_in_process(["--json", "status"], cwd=self.mp, env=env)
        assert res.code == 0, f"avfs --json status: {res.out}{res.err}"
        doc = json.loads(res.out)
        assert isinstance(doc, dict)
        return doc

    @invariant()
    def check(self) -> None:
        where = "after: " + " | ".join(self.steps[-4:])
        self.checks += 1
        # (a file read FULL_READ_EVERY checks ago is read again, whatever its stat says: _tree)
        if not self.kept:  # (where a step or the last check cleared it)
            self.kept_plain.clear()  # the plain side's files read again too
        if not self.kept or self.checks % FULL_READ_EVERY == 0:
            for kept in self.kept_labels:
                kept.clear()  # the tags and notes read again too
        m_tree, p_tree = (
            _tree(self.m.root, self.kept, self.checks),
            _tree(self.p.root, self.kept_plain, self.checks),
        )
        if m_tree != p_tree:  # (not an `assert ==`: under CI=true pytest diffs the two trees, 70 s)
            raise AssertionError(f"files differ {where}: {_tree_difference(m_tree, p_tree)}")
        (m_head, m_status), (p_head, p_status) = self.m.porcelain_head(), self.p.porcelain_head()
        assert m_status == p_status, f"git status differs {where}\nmount: {m_status}\nplain: {p_status}"
        # (`ls-files -v` of each side where either index may mark an entry: _unflagged)
        if _unflagged(self.p.index_path()) and _unflagged(self.m.index_path()):
            p_flags = []
        else:
            p_flags = self.p.flags()
            assert self.m.flags() == p_flags, f"index bits differ {where}"
        # the history: HEAD the same commit on both sides (the same objects, avfs's own
        # commits included: see __init__), which names its history, every parent and tree
        # (a commit's id is its hash); each side's `git log` is read only to say how they
        # differ (it was read at every check: two git processes of its eight, suitetime27)
        if m_head != p_head:
            m_history, p_history = self.m.history(), self.p.history()
            assert m_history == p_history, f"history differs {where}"
            raise AssertionError(f"HEAD differs {where}: mount {m_head}, plain {p_head}")
        m_labels, p_labels = self.m.labels(self.kept_labels[0]), self.p.labels(self.kept_labels[1])
        assert m_labels == p_labels, f"tags or notes differ {where}"
        op = self.busy()
        if op is not None:  # the fork's branch is where git left it (a rebase moves HEAD only)
            assert self.m.history("refs/heads/f") == self.p.history("refs/heads/f"), f"branch differs {where}"
        doc = self.avfs_status_doc()
        # (HEAD is the branch when git has nothing open: no `rev-parse` then)
        head = m_head if op is None else self.m.git("rev-parse", "refs/heads/f").stdout.strip()
        assert doc["fork"] == "f" and doc["head"] == head and doc["base"] == head and not doc["stale"], (
            f"avfs status is not on the fork's branch {head} {where}: {doc}"
        )
        git = doc.get("git")
        if op is None:
            assert git is None, f"avfs status names git's state {git} {where}"
        else:
            off = op == "detached" and (git or {}).get("head") != "refs/heads/f"  # detached, or on a branch X
            assert git is not None and (git["in_progress"] == op or off), (
                f"avfs status does not name git's {op} {where}: {git}"
            )
        got: set[tuple[str, str]] = set()
        for c in doc["changes"]:
            if c["status"] == "renamed":
                got |= {(c["path"], "added"), (c["old_path"], "deleted")}
            else:  # (git's T, a file made a link or back, is a modification to the model)
                got.add((c["path"], "modified" if c["status"] == "type_changed" else c["status"]))
        # (p.porcelain() refreshed the index; p_flags read it after: no ls-files of its copy
        # when it marks nothing, as most checks)
        flagged = any(ln[:1] in ("S", "s") or ln[:1].islower() for ln in p_flags)
        # (git's index is the branch's tree where HEAD is the branch and its status shows
        # nothing staged, intent-to-add or unmerged: porcelain v2's X of every entry `.`)
        at_rev = op is None and all((ln[:3] == "1 ." and ln[3] != "A") or ln[:2] == "? " for ln in p_status)
        want = _status_changes(p_status) if at_rev and not flagged else None
        if want is None:
            want = self.p.changes("refs/heads/f", refresh=False, flagged=flagged, at_rev=at_rev)
        assert got == want, f"avfs status differs from git {where}\navfs: {sorted(got)}\ngit: {sorted(want)}"


def _status_changes(rows: list[str]) -> set[tuple[str, str]] | None:
    """What the plain side's working tree differs from the branch, read from its `git status
    --porcelain=v2 --untracked-files=all` ``rows`` where git's index is the branch's tree
    and marks no entry (the check's ``at_rev`` and not ``flagged``): each unstaged change
    (``1 .M``, ``.T``: modified; ``.D``: deleted) and each untracked file (added), as
    :meth:`Side.changes` finds them with `add -A` and `diff --cached` of a copy of the
    same index (two git processes of the check's: suitetime27). None (ask
    :meth:`Side.changes`) where a row is anything else: a submodule's, a quoted path, an
    untracked directory (a repository inside: `add -A` records a gitlink)."""
    words = {"M": "modified", "T": "modified", "D": "deleted"}
    out: set[tuple[str, str]] = set()
    for ln in rows:
        if ln.startswith("? "):
            path = ln[2:]
            if path.startswith('"') or path.endswith("/"):
                return None
            out.add((path, "added"))
            continue
        fields = ln.split(" ", 8)
        if len(fields) != 9 or fields[0] != "1" or fields[1][0] != "." or fields[2] != "N...":
            return None
        if fields[1][1] not in words or fields[8].startswith('"'):
            return None
        out.add((fields[8], words[fields[1][1]]))
    return out


_SPARSE = re.compile(r"^\s*sparsecheckout\s*=\s*(\S+)\s*$", re.IGNORECASE | re.MULTILINE)


def _sparse(git_dir: str) -> bool:
    """Whether `core.sparseCheckout` is on in the plain clone (``git_dir``): the last
    setting of its `config.worktree` (where `git sparse-checkout` writes it), else of its
    `config`, read as files (was a `git config --bool` in every check and precondition)."""
    for name in ("config.worktree", "config"):
        try:
            with open(os.path.join(git_dir, name)) as fh:
                found = _SPARSE.findall(fh.read())
        except FileNotFoundError:
            continue
        if found:
            return found[-1].lower() in ("true", "yes", "on", "1")
    return False


def _blocked(root: str, path: str) -> bool:
    """Whether a directory of ``path`` below ``root`` is something else now (a file or a
    link made there: ``file_and_dir``, ``symlink``), so no file can be written at ``path``
    (gitmodel13: seed 1321 wrote `src/attr/cache.log` with `src/attr` a file, and the
    model itself raised FileExistsError), or ``path`` itself a directory."""
    parts = path.split("/")[:-1]
    for i in range(1, len(parts) + 1):
        full = os.path.join(root, *parts[:i])
        if os.path.lexists(full) and (os.path.islink(full) or not os.path.isdir(full)):
            return True
    full = os.path.join(root, path)
    return os.path.isdir(full) and not os.path.islink(full)  # (a directory made there)


def _git_rule_file(path: str) -> bool:
    """A name git reads rules from and never follows as a link (core/store/gitnames.py)."""
    return os.path.basename(path) in (".gitattributes", ".gitignore", ".mailmap", ".gitmodules")


def _write_both(model: GitModel, path: str, text: str) -> None:
    model.note(f"write {path} {text!r}")
    for root in (model.p.root, model.m.root):
        os.makedirs(os.path.dirname(os.path.join(root, path)), exist_ok=True)
        with open(os.path.join(root, path), "a") as fh:
            fh.write(text)


def _link_both(model: GitModel, target: str, at: str) -> None:
    """``ln -sf TARGET AT`` on both sides (AT's directory made first)."""

    def ln(root: str) -> None:
        p = os.path.join(root, at)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        if os.path.lexists(p):
            os.unlink(p)
        os.symlink(target, p)

    model.on_both(ln)


def _swap_both(model: GitModel, path: str, to_dir: bool) -> None:
    """A file made a directory of the same name (with a file in it), or the reverse."""
    model.note(f"{'file' if to_dir else 'dir'} {path} -> {'dir' if to_dir else 'file'}")
    for root in (model.p.root, model.m.root):
        p = os.path.join(root, path)
        if to_dir:
            os.unlink(p)
            os.mkdir(p)
            p = os.path.join(p, "inner.txt")
        else:
            shutil.rmtree(p)
        with open(p, "w") as fh:
            fh.write("was the other kind\n")


class _Draw:
    """A stand-in for hypothesis's ``data`` that draws ``value``."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def draw(self, _strategy: Any) -> Any:
        return self.value


class _Unchecked:
    """A step of the every-command run not checked after: a file written on both sides,
    which the check after the git command or avfs operation that follows it compares (the
    files, git's status and avfs's), as a person's next command sees it (gitmodel12: the
    run's time kept while steps were added; and git then runs right after a write, with no
    avfs command between)."""

    def __init__(self, fn: Any) -> None:
        self.fn = fn

    def __call__(self) -> None:
        self.fn()


def _every_command_once(backend: str) -> None:
    """Each git command and avfs operation of the model at least once, in an order where
    each does something, checked after every step (the random runs may miss some).

    Run by a file of its own for each backend (tests/test_git_model_every_overlay.py,
    tests/test_git_model_every_fuse.py): ``--dist loadfile`` gives a file to one worker,
    and the two runs in this file held one for 179 s of a whole run's (suitetime20)."""
    global BACKEND
    BACKEND = backend
    model = GitModel()
    try:
        g = model.both
        steps: list[Any] = [
            _Unchecked(lambda: _write_both(model, "README.md", "edited\n")),
            _Unchecked(lambda: _write_both(model, "NEW.txt", "new\n")),
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
            _Unchecked(lambda: _write_both(model, "src/attr/_make.py", "# mine\n")),
            lambda: g("commit", "-q", "-a", "-m", "to rebase"),
            lambda: g("rebase", "-q", "side"),
            _Unchecked(lambda: _write_both(model, "NEW.txt", "stashed\n")),
            _Unchecked(lambda: _write_both(model, "src/attr/_make.py", "# stashed\n")),
            lambda: g("stash", "-q"),
            lambda: g("stash", "pop", "-q"),
            lambda: g("checkout", "-q", "--", "src/attr/_make.py"),
            _Unchecked(lambda: _write_both(model, "src/attr/_make.py", "# again\n")),
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
            # a file the restore took away, made again (`>>`: an O_CREAT open without O_EXCL,
            # ENOENT on pure FUSE until the open of a gone name answered ESTALE)
            _Unchecked(lambda: _write_both(model, "NEW.txt", "made again\n")),
            # what git tracks besides bytes, and git's own housekeeping
            lambda: model.on_both(lambda r: os.chmod(os.path.join(r, "tox.ini"), 0o755)),
            lambda: model.on_both(lambda r: os.symlink("README.md", os.path.join(r, "link.md"))),
            lambda: _swap_both(model, "conftest.py", to_dir=True),
            lambda: _swap_both(model, "bench", to_dir=False),
            lambda: g("add", "-A"),
            lambda: model.checkpoint(False),
            lambda: _swap_both(model, "conftest.py", to_dir=False),
            lambda: model.ignored(_Draw("build/out.o")),
            lambda: g("mv", "-k", "changelog.d", "src/moved-dir"),
            lambda: g("rm", "-r", "-q", "--cached", "--", ".github"),
            lambda: g("commit", "-q", "-m", "dirs"),
            lambda: g("clean", "-q", "-fdx"),
            lambda: g("gc", "-q", "--prune=now"),
            lambda: g("tag", "-a", "-m", "a tag", "t1", "HEAD~1"),
            lambda: g("reset", "-q", "--hard", "t1"),
            _Unchecked(lambda: _write_both(model, "README.md", "two\n")),
            lambda: g("commit", "-q", "-a", "-m", "two"),
            lambda: g("-c", f"sequence.editor={REBASE_SCRIPTS['squash']}", "rebase", "-q", "-i", "HEAD~2"),
            # a conflicted merge left open: avfs refuses to record until git settles it
            model.diverge,
            _Unchecked(lambda: _write_both(model, "README.md", "next to it\n")),
            lambda: g("commit", "-q", "-a", "-m", "next to it"),
            lambda: g("revert", "--no-edit", "HEAD~1"),  # the line after it changed since
            lambda: model.refused_while_busy("checkpoint"),
            model.remount_anywhere,  # (git's open revert and its conflict stages outlive it)
            lambda: model.settle("theirs"),
            lambda: model.detach(1),
            lambda: model.refused_while_busy("exec"),
            lambda: model.settle("abort"),
            # git commands through proxy exec
            _Unchecked(lambda: _write_both(model, "README.md", "three\n")),
            lambda: model.exec_git_command("stash-pop"),
            lambda: model.exec_git_command("reset-soft"),
            lambda: model.exec_git_command("cherry-pick"),
            lambda: model.exec_git_command("commit-a"),
            lambda: model.exec_git_command("tag"),  # (t1 is the vault's: deleted in there only)
            lambda: model.exec_git_command("rebase-i"),  # (the policy asks approval: given)
            # (gitmodel3's rules, once each)
            lambda: model.notes(_Draw(None), "add"),
            lambda: model.path_command(_Draw("README.md"), "source-side"),
            lambda: model.index_flag(_Draw("tox.ini"), "--skip-worktree"),
            lambda: model.checkpoint(False),
            lambda: model.patch("am"),
            lambda: model.detach(1, switch=True),
            lambda: model.settle("abort"),
            # (gitmodel7's: a fetch from a local remote and its merge, a rebase --autostash)
            lambda: model.fetch(_Draw(False), True),
            _Unchecked(lambda: _write_both(model, "README.md", "autostashed\n")),
            lambda: model.rebase_autostash(_Draw(False)),
            # (gitmodel8's: a range picked over a conflict and continued, a series through
            # `git am -3` stopped and continued, a conflicting stash pop resolved)
            lambda: model.settle("abort") if model.busy() is not None else None,
            lambda: g("reset", "-q", "--hard"),
            model.diverge,
            lambda: model.cherry_pick_range(_Draw(False)),
            lambda: model.settle("theirs") if model.busy() is not None else None,
            lambda: model.settle("abort") if model.busy() is not None else None,
            lambda: g("reset", "-q", "--hard", "HEAD~1"),
            lambda: model.am_series(_Draw(False)),
            lambda: model.settle("ours") if model.busy() is not None else None,
            lambda: model.settle("abort") if model.busy() is not None else None,
            _Unchecked(lambda: _write_both(model, "README.md", "stashed again\n")),
            lambda: g("stash", "-q"),
            _Unchecked(lambda: _write_both(model, "README.md", "committed over it\n")),
            lambda: g("commit", "-q", "-a", "-m", "over the stash"),
            lambda: model.stash(_Draw(None), "pop-resolve"),
            # (gitmodel9's: git maintenance, bisect run, a pre-commit hook that rewrites a
            # file, `git apply --3way`)
            lambda: model.housekeeping("maintenance run --quiet --task=gc"),
            lambda: model.bisect("grep -q stashed README.md"),
            lambda: model.hooked_commit(),
            lambda: model.patch("apply-3way"),
            lambda: g("reset", "-q", "--hard"),
            lambda: model.sparse_checkout("src"),
            lambda: model.refused_while_busy("checkpoint"),
            lambda: model.refused_while_busy("exec"),
            lambda: model.settle("abort"),
            model.fork,
            # (gitmodel10's: untracked files in the way of resets, an orphan branch, refs
            # by hand, `rebase --onto` over a conflict, stashes of untracked and ignored
            # trees, an amended checkpoint, pulls from a `git daemon`, a worktree outside,
            # line endings changed between steps)
            lambda: model.reset_in_the_way(_Draw("README.md"), "--keep"),
            lambda: model.reset_in_the_way(_Draw("tox.ini"), "--merge"),
            lambda: model.reset_in_the_way(_Draw("tox.ini"), "--hard"),
            model.orphan,
            lambda: g("commit", "-q", "-a", "-m", "in the way"),
            lambda: model.by_hand("branch-back"),
            lambda: model.by_hand("new-branch"),
            lambda: model.by_hand("head-elsewhere"),
            model.head_back,
            lambda: g("reset", "-q", "--hard"),
            model.diverge,
            lambda: model.rebase_onto(_Draw(True)),
            lambda: model.stash_untracked("-u", True),
            lambda: model.stash_untracked("-a", False),
            lambda: g("stash", "pop", "-q"),
            _Unchecked(lambda: _write_both(model, "README.md", "checkpointed\n")),
            lambda: model.checkpoint(False),
            lambda: model.amend_checkpoint(True),
            lambda: g("reset", "-q", "--hard"),
            lambda: model.pull(_Draw(False), False),
            lambda: model.settle("theirs") if model.busy() is not None else None,
            lambda: model.pull(_Draw(False), True),
            lambda: model.settle("abort") if model.busy() is not None else None,
            lambda: model.worktree_outside(True),
            lambda: model.autocrlf("true"),
            lambda: model.write_bytes("NEWCRLF.txt", b"a\r\nb\r\n", False),
            lambda: model.checkpoint(False),
            lambda: model.crlf_attributes(True) if model.backend == "overlay" else None,
            lambda: g("add", "-A"),
            lambda: g("commit", "-q", "-m", "line endings"),
            lambda: model.autocrlf("false"),
            model.restore,
            lambda: model.crlf_attributes(False) if model.backend == "overlay" else None,
            lambda: model.autocrlf("input"),
            # (gitmodel11's: a cherry-pick over a conflict continued, a revert over one
            # given up, a graft and its removal, reflogs expired and pruned then a
            # checkpoint, the index's exec bit and a chmod then `git add`, `switch -c` +
            # checkpoint + `switch -`, a linked worktree's commit moving the fork)
            lambda: g("reset", "-q", "--hard"),
            model.diverge,
            lambda: model.cherry_pick(_Draw(False)),
            lambda: model.settle("ours") if model.busy() is not None else None,
            _Unchecked(lambda: _write_both(model, "README.md", "after the pick\n")),
            lambda: g("commit", "-q", "-a", "-m", "after the pick"),
            lambda: model.conflicted(_Draw(True), "revert", "revert", "--no-edit", "HEAD~1"),
            lambda: model.replace("graft"),
            lambda: model.reflog_expire(),
            _Unchecked(lambda: _write_both(model, "README.md", "after the prune\n")),
            lambda: model.checkpoint(False),
            lambda: model.replace("delete"),
            lambda: model.index_chmod(_Draw("tox.ini"), "-x"),
            lambda: model.chmod_add(_Draw("README.md")),
            model.switch_checkpoint_back,
            lambda: g("commit", "-q", "-m", "exec bits"),
            lambda: model.checkpoint(False),  # (nothing uncheckpointed: the mount follows)
            model.worktree_moves_fork,
            # (gitmodel12's: `am` stopped by a conflict then `--skip`, `rebase -i` with an
            # `exec` line, `stash -u` popped over a conflict and over an untracked file in
            # its way, one of two hunks staged by `apply --cached`, a directory's case
            # changed by `git mv`, `rm --cached` then a checkpoint, `submodule add` then a
            # checkpoint, a file made a link to a directory and back, an empty file and one
            # without a last newline under autocrlf, `reset --soft HEAD~2` over a
            # checkpoint, `worktree add` inside, avfs's merge of another fork (three-way,
            # then a fast-forward), git leaving its branch after two commits)
            lambda: g("reset", "-q", "--hard"),
            lambda: model.am_skip(_Draw(None), "--skip"),
            lambda: model.rebase_exec(_Draw(False)),
            lambda: model.stash_u_conflict(False),
            lambda: model.stash_u_conflict(True),
            model.apply_cached,
            lambda: model.mv_dir_case(_Draw("docs")),
            lambda: model.rm_cached_checkpoint(_Draw("tox.ini")),
            model.submodule_checkpoint,
            lambda: model.link_to_dir(_Draw("README.md")),
            lambda: model.autocrlf_edges("true", False),
            lambda: model.autocrlf_edges("input", True),
            lambda: model.autocrlf("false"),
            model.reset_soft_over_checkpoint,
            model.worktree_inside,
            _Unchecked(lambda: _write_both(model, "NEW.txt", "before a merge\n")),
            lambda: model.avfs_merge(False),
            lambda: model.avfs_merge(False),
            lambda: model.leave_after_commits("break"),
            lambda: model.settle("abort"),
            lambda: model.leave_after_commits("detach"),
            lambda: model.settle("abort"),
            # (gitmodel13's: a checkpoint and its undo, a checkpoint straight after
            # `submodule add`, `switch -C`/`checkout -B` of the fork's branch and of a new one, a killed `commit -a` with its lock (a
            # checkpoint refused meanwhile), a link made a directory then checkpointed, a
            # rename with a mode change, binary patches (`apply --index`, `--cached`),
            # commit-graph and multi-pack-index writes, the untracked cache off and on, an
            # exec that edits without git)
            lambda: g("reset", "-q", "--hard"),
            # a remount after this run's earlier steps (its `git gc --prune=now` pruned a
            # blob a hidden overlay entry named: the root listed EIO, found in gitmodel13,
            # fixed by race1)
            model.remount_now,
            _Unchecked(lambda: _write_both(model, "README.md", "before a checkpoint\n")),
            lambda: model.checkpoint(False),
            model.undo,
            lambda: model.submodule_add_checkpoint(False),
            lambda: model.submodule_add_checkpoint(True),
            lambda: model.switch_force("switch-C-own"),
            lambda: model.switch_force("checkout-B-own"),
            lambda: model.switch_force("switch-C-new"),
            lambda: model.killed_commit(True),
            lambda: model.link_to_tree("checkpoint"),
            lambda: model.mode_rename(_Draw("tox.ini")),
            lambda: g("commit", "-q", "-m", "renamed, mode changed"),
            lambda: model.binary_patch(_Draw("README.md"), "--index"),
            lambda: model.binary_patch(_Draw("pyproject.toml"), "--cached"),
            lambda: g("commit", "-q", "-m", "binary patches"),
            lambda: g("reset", "-q", "--hard"),
            lambda: model.graphs("commit-graph"),
            lambda: model.graphs("multi-pack-index"),
            lambda: model.graphs("maintenance"),
            lambda: model.untracked_cache(False),
            lambda: model.untracked_cache(True),
            _Unchecked(lambda: _write_both(model, "README.md", "fsmonitor off\n")),
            lambda: model.fsmonitor_off(False),
            lambda: model.checkpoint(False),
            lambda: model.exec_edit(_Draw("README.md"), False),
            lambda: model.exec_edit(_Draw(None), True),
            # (gitmodel14's: a checkpoint while unmounted, a nested ignore rule removed and
            # put back; then a real release, whose tree drops the run's `.gitignore`)
            model.checkpoint_unmounted,
            lambda: model.unignore_deep(True, True),
            lambda: model.release(_Draw(2), "checkpoint"),
        ]
        model.check()
        for step in steps:
            step()
            if not isinstance(step, _Unchecked):
                model.check()
        model.kept.clear()  # (the last check reads every file)
        model.check()
    finally:
        model.teardown()


def _machine() -> type[GitModel]:
    """The model, or with ``AVFS_MODEL_RULES`` (rule names, comma-separated) a subclass
    where only those rules are drawn (the rest made plain methods): a soak by hand of some
    steps more often, avfs's own operations among git's (gitmodel12)."""
    keep = RULES
    if not keep:
        return GitModel
    rules = {n for n, f in vars_of(GitModel).items() if hasattr(f, "hypothesis_stateful_rule")}
    assert set(keep) <= rules, f"not rules of the model: {sorted(set(keep) - rules)}"

    def masked(self: GitModel, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("a masked rule ran")

    return type("MaskedGitModel", (GitModel,), {n: masked for n in rules - set(keep)})


def vars_of(cls: type) -> dict[str, Any]:
    """Every attribute of ``cls`` and its bases, by name (the nearest one)."""
    out: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        out.update(vars(klass))
    return out


def each_once(model: GitModel, steps: list[Any]) -> None:
    """The each-once runs' driver: the check before the first step, after every step, and
    once more with the kept stats forgotten (it reads every file); the model torn down
    however the run ends."""
    try:
        model.check()
        for step in steps:
            step()
            model.check()
        model.kept.clear()
        model.check()
    finally:
        model.teardown()


def run_masked(model: type, keep: list[str], backend: str, *, seed_: int, steps: int, examples: int) -> None:
    """A random run of ``model`` (a later round's model: a subclass of :class:`GitModel`) on
    ``backend`` taking only the rules ``keep`` (every other rule masked: a later round's
    random run draws its own steps), with ``seed_``, ``steps`` and ``examples``."""
    global BACKEND
    BACKEND = backend
    rules = {n for n, f in vars_of(model).items() if hasattr(f, "hypothesis_stateful_rule")}
    assert set(keep) <= rules, sorted(set(keep) - rules)

    def masked(self: Any, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("a masked rule ran")

    machine = type(f"Masked{model.__name__}", (model,), {n: masked for n in rules - set(keep)})
    run_state_machine_as_test(
        seed(seed_)(machine),
        _min_steps=steps,
        settings=settings(
            max_examples=examples,
            stateful_step_count=steps,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.explicit, Phase.generate],
        ),
    )


class _Seeded:
    """``st.data()``'s object for :func:`run_seeded`: each draw made by ``rng``."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def draw(self, strategy: Any) -> Any:
        return _seeded_draw(self.rng, strategy)


def _seeded_draw(rng: random.Random, strategy: Any) -> Any:
    """A value of ``strategy`` chosen by ``rng``, for the strategies the model's rules take:
    `sampled_from` (untransformed), `booleans` and `data`; any other is an error here."""
    from hypothesis.strategies._internal.core import DataStrategy
    from hypothesis.strategies._internal.misc import BooleansStrategy
    from hypothesis.strategies._internal.strategies import SampledFromStrategy

    s = getattr(strategy, "wrapped_strategy", strategy)  # (a LazyStrategy: st.booleans())
    if isinstance(s, SampledFromStrategy) and not s._transformations:
        return rng.choice(list(s.elements))
    if isinstance(s, BooleansStrategy):
        return rng.random() < 0.5
    if isinstance(s, DataStrategy):
        return _Seeded(rng)
    raise TypeError(f"run_seeded draws no {strategy!r}")


def run_seeded(
    model: type, keep: list[str], backend: str, *, seed_: int, steps: int, examples: int = 1
) -> None:
    """``examples`` random runs of ``model`` on ``backend`` of ``steps`` steps each, the rules
    ``keep`` only, each step a rule whose preconditions hold and its arguments chosen by
    `random.Random(seed_ + n)` for the n-th run, the model checked (its invariant, ``check``)
    after the set-up and after every step, as hypothesis runs a state machine.

    :func:`run_masked` with one example (what CI ran) runs hypothesis's simplest example
    only, the first rule by hypothesis's order with every argument its simplest, every
    step: `test_git_model19`'s random run was `remount_anywhere` twelve times. A seeded run
    draws each step among the rules (suitetime27); a failure names its seed and steps
    (replayed by ``python -m tests.replay_gitmodel``, the steps logged with
    ``AVFS_MODEL_LOG``). Scale it by hand with more ``examples`` or steps, or run
    :func:`run_masked` for hypothesis's own search and shrinking."""
    global BACKEND
    BACKEND = backend
    found = {
        n: f.hypothesis_stateful_rule
        for n, f in vars_of(model).items()
        if hasattr(f, "hypothesis_stateful_rule")
    }
    assert set(keep) <= set(found), sorted(set(keep) - set(found))
    rules = [found[n] for n in keep]
    for n in range(examples):
        rng = random.Random(seed_ + n)
        machine = model()
        done: list[str] = []
        try:
            machine.check()
            for _ in range(steps):
                machine.has_memo = {}
                can = [r for r in rules if all(pre(machine) for pre in r.preconditions)]
                machine.has_memo = None
                rule = rng.choice(can)
                args = {k: _seeded_draw(rng, v) for k, v in sorted(rule.arguments_strategies.items())}
                done.append(rule.function.__name__ + str({k: v for k, v in args.items() if k != "data"}))
                rule.function(machine, **args)
                machine.check()
        except BaseException as exc:
            exc.add_note(f"run_seeded: seed {seed_ + n} on {backend}, rules: {' | '.join(done)}")
            raise
        finally:
            if VERBOSE:
                print(f"\nrun_seeded seed {seed_ + n}: " + " | ".join(done), file=sys.stderr)
            machine.teardown()


def _run(backend: str) -> None:
    global BACKEND
    BACKEND = backend
    run_state_machine_as_test(
        seed(SEED)(_machine()),
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
