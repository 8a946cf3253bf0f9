"""A fork mounted on one backend, unmounted, mounted on the other (or on the overlay backend
again): git's state comes back (mount/gitkeep.py) and its first `git status` looks only at
what the fork holds over its base (mount/indexrestate.py; docs/fuse.md, "What a remount
keeps of git's own state").

Found in the twenty-fourth round (daemonstart1): the index the overlay mount's unmount kept
carried the overlay daemon's fsmonitor token, which no later daemon answers, so the first
status of the next mount lstat-ed every file (10,000 files on pure FUSE: 4.6-5.1 s of CPU,
15-17 s of wall; ~5 s on the overlay backend again); and a pure-FUSE mount's token brought
to the overlay backend was answered with what the fork holds now, not what changed since
it: an untracked file removed after git's last status stayed in git's untracked cache, and
`git status` listed a file that was not there (backend1, the twenty-fifth round).

A real project's release (networkx's sdist), real mounts, real git, a plain clone beside
the mount doing the same: an open merge stopped on a conflict, a staged change, an
intent-to-add, a skip-worktree bit, an unstaged change, an untracked file and one removed
after git listed it."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from .. import realdata
from ..conftest import run_in_process
from ..gitmount import _git, _require, warm_daemons

PROJECT = ("networkx", "3.4.2")
SKIPPED = "networkx/__init__.py"


def _merge(wt: Path) -> None:
    # an open merge stopped on a conflict: branch `other` changes pyproject.toml (made by
    # plumbing: no checkout), the fork's branch changes it otherwise, then `git merge`
    theirs = subprocess.run(
        ["git", "hash-object", "-w", "--stdin"],
        cwd=wt,
        input="theirs\n",
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    listing = _git(wt, "ls-tree", "HEAD").stdout
    listing = re.sub(r"blob [0-9a-f]{40}\tpyproject.toml", f"blob {theirs}\tpyproject.toml", listing)
    tree = subprocess.run(
        ["git", "mktree"], cwd=wt, input=listing, capture_output=True, text=True, check=True
    ).stdout.strip()
    env = {
        **os.environ,
        "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z",
        "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z",
    }
    other = subprocess.run(
        ["git", "commit-tree", tree, "-p", "HEAD", "-m", "theirs"],
        cwd=wt, env=env, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    _git(wt, "branch", "other", other)
    (wt / "pyproject.toml").write_text("ours\n")
    _git(wt, "commit", "-qam", "ours")
    assert _git(wt, "merge", "-q", "other", check=False).returncode == 1


def _steps(wt: Path, merge: bool) -> None:
    """The same git and file operations in the mount and in the plain clone (``merge``:
    with the open merge first)."""
    if merge:
        _merge(wt)
    else:
        _gone(wt)
        return
    # a staged change, an intent-to-add, a skip-worktree bit, an unstaged change, untracked
    with open(wt / "README.rst", "a") as fh:
        fh.write("staged\n")
    _git(wt, "add", "README.rst")
    (wt / "new.txt").write_text("intent to add\n")
    _git(wt, "add", "-N", "new.txt")
    _git(wt, "update-index", "--skip-worktree", SKIPPED)
    with open(wt / "LICENSE.txt", "a") as fh:
        fh.write("unstaged\n")
    (wt / "u.txt").write_text("untracked\n")
    _gone(wt)


def _gone(wt: Path) -> None:
    # an untracked file git lists (its untracked cache holds it), removed after
    (wt / "requirements" / "gone.txt").write_text("gone\n")
    assert "?? requirements/gone.txt" in _git(wt, "status", "--porcelain").stdout
    (wt / "requirements" / "gone.txt").unlink()
    (wt / "examples" / "w.txt").write_text("untracked, after\n")


def _avfs(*args: str) -> Any:
    """`avfs ARGS` run in the test's process (conftest's ``run_in_process``), a mount's
    daemon forked by its zygote (tests/gitmount.py ``warm_daemons``, checked where one
    mounts): the test is about what the mounts keep and look at, not the CLI's process
    (suitetime24: seven CLI processes a test were ~1.5 s of CPU)."""
    with warm_daemons() as asked:
        res = run_in_process(list(args))
    if "mount" in args:
        assert asked == [False], asked
    return res


def _view(wt: Path) -> dict[str, str]:
    return {
        "v2": _git(wt, "status", "--porcelain=v2", "-uall").stdout,
        "stage": _git(wt, "ls-files", "--stage", "-v").stdout,
        "unmerged": _git(wt, "ls-files", "-u").stdout,
    }


def _looked(trace: Path) -> tuple[int, int]:
    """(files git lstat-ed, files it read and hashed) in a ``GIT_TRACE2_PERF`` trace."""
    text = trace.read_text()
    lstat = sum(int(n) for n in re.findall(r"(?:preload|refresh)/sum_lstat:(\d+)", text))
    scan = sum(int(n) for n in re.findall(r"refresh/sum_scan:(\d+)", text))
    return lstat, scan


@pytest.mark.parametrize(
    ("first", "then", "merge"),
    [
        ("overlay", "fuse", True),
        ("fuse", "overlay", True),
        ("overlay", "overlay", True),
        ("fuse", "overlay", False),
    ],
)
def test_a_remount_on_another_backend_keeps_git_s_state_and_looks_at_what_changed(
    tmp_path: Path, first: str, then: str, merge: bool
) -> None:
    """git's state after the remount is a plain clone's doing the same, and the first
    status there looks at the files the fork holds over its base and those in their
    directories, no others (before: every file of the tree)."""
    _require(first)
    _require(then)
    tree = realdata.extract(realdata.pypi_sdist(*PROJECT), tmp_path / "sdist")
    assert _avfs("vault", "create", "v", "--from", str(tree)).code == 0
    assert _avfs("vault", "fork", "v:main", "f").code == 0
    vault = Path(os.environ["AVFS_HOME"]) / "vaults" / "v.git"
    plain = tmp_path / "plain"
    subprocess.run(["git", "clone", "-q", "-b", "f", str(vault), str(plain)], check=True, capture_output=True)
    # a file the fork holds over its base before the mount
    assert _avfs("--vault", "v:f", "write", "n.txt", "n\n").code == 0
    (plain / "n.txt").write_text("n\n")
    mp = tmp_path / "m"
    mp.mkdir()
    assert _avfs("--vault", "v:f", "mount", "--backend", first, str(mp)).code == 0
    try:
        _steps(mp, merge)
        _steps(plain, merge)
        assert _avfs("--vault", "v:f", "unmount", str(mp)).code == 0
        assert _avfs("--vault", "v:f", "mount", "--backend", then, str(mp)).code == 0
        trace = tmp_path / "trace"
        env = {**os.environ, "GIT_TRACE2_PERF": str(trace), "GIT_CEILING_DIRECTORIES": str(tmp_path)}
        first_status = subprocess.run(
            ["git", "status", "--porcelain"], cwd=mp, env=env, check=True, capture_output=True, text=True
        ).stdout
        # (git's untracked cache serves the normal mode: -uall does not use it)
        assert first_status == _git(plain, "status", "--porcelain").stdout
        lstat, scan = _looked(trace)
        want = _view(plain)
        assert _view(mp) == want
        assert "requirements/gone.txt" not in want["v2"]
        assert not merge or re.search(rf"^S .*\t{SKIPPED}$", want["stage"], re.M)
        # what the fork holds over its base: the files the steps changed at the root, and
        # examples/w.txt, requirements/gone.txt (made and removed: a pure-FUSE journal names
        # requirements/)
        indexed = _git(mp, "ls-files").stdout.splitlines()
        near = sum(p.startswith(("requirements/", "examples/")) or "/" not in p for p in indexed)
        assert lstat <= near + 4, (lstat, near, len(indexed))
        assert scan <= 4, scan  # (the staged and unstaged files' new stat data: git hashes those)
    finally:
        _avfs("--vault", "v:f", "unmount", str(mp))
