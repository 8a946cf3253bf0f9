"""Where git's HEAD may go in a mount (docs/fuse.md, "HEAD moves"): the mount is its fork,
so a branch switch git makes there (`git switch X`, `git checkout -b X`) is switched back
by the mount's post-checkout guard, with the way to work on X said, and nothing in the
mount changes; a detached HEAD is git's own state, which avfs names. The same holds inside
a confined `proxy exec`, whose HEAD is the mount's (written there, checked after the run).
The person's own hooks keep running in the mount. Both backends, real mounts, real git,
real bwrap. (The model check, tests/test_git_model.py, runs switches among its steps.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .test_confine import _need_bwrap
from .test_git_writer import BACKENDS, _clean_everywhere, _git, _status, mounted

__all__ = ["mounted"]


def _exec(mp: Path, script: str) -> dict[str, Any]:
    """``sh -c script`` by a confined `proxy exec` in the mount (the person's cwd)."""
    r = subprocess.run(
        [sys.executable, "-m", "avfs_git", "--json", "proxy", "exec", "--", "sh", "-c", script],
        cwd=mp,
        capture_output=True,
        text=True,
        timeout=180,
    )
    doc: dict[str, Any] = json.loads(r.stdout)
    assert doc["result"] is not None, doc
    return doc


def _state(mp: Path) -> tuple[str, str, str, dict[str, bytes]]:
    """HEAD's file, `git status --porcelain`, the branches, every file's bytes."""
    files = {
        str(p.relative_to(mp)): p.read_bytes()
        for p in sorted(mp.rglob("*"))
        if p.is_file() and p.name != ".git" and not p.is_symlink()
    }
    head = _git(mp, "symbolic-ref", "-q", "HEAD", check=False).stdout.strip()
    return head, _git(mp, "status", "--porcelain").stdout, _git(mp, "branch", "--list").stdout, files


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_branch_switch_in_the_mount_is_switched_back(mounted: Any, backend: str, cli_proc: Any) -> None:
    mp, avfs = mounted
    assert cli_proc("vault", "fork", "v:main", "g").code == 0
    assert cli_proc("--vault", "v:g", "write", "theirs.txt", "g's\n").code == 0
    assert cli_proc("--vault", "v:g", "checkpoint", "save", "-m", "g").code == 0
    # uncheckpointed work in the mount: a change and a new file, carried by git's switch
    with open(mp / "a.txt", "a") as fh:
        fh.write("mine\n")
    (mp / "new.txt").write_text("new\n")
    before = _state(mp)
    st = _status(avfs)
    sw = _git(mp, "switch", "g", check=False)
    assert sw.returncode == 1, sw
    assert "avfs: this mount is fork f of vault v: switching back to f" in sw.stderr, sw.stderr
    assert "avfs mount v:g DIR" in sw.stderr, sw.stderr
    assert _state(mp) == before  # g's theirs.txt is not there, the work is
    assert not (mp / "theirs.txt").exists()
    assert _status(avfs)["changes"] == st["changes"] and _status(avfs)["git"] is None
    # `checkout -b`: the branch is made (a fork of the vault, at the mount's commit), the
    # mount stays f
    tip = _git(mp, "rev-parse", "HEAD").stdout.strip()
    cb = _git(mp, "checkout", "-b", "x", check=False)
    assert cb.returncode == 1 and "switching back to f" in cb.stderr, cb
    assert _git(mp, "symbolic-ref", "HEAD").stdout.strip() == "refs/heads/f"
    assert _git(mp, "rev-parse", "x").stdout.strip() == tip
    assert "x" in json.dumps(cli_proc("--json", "vault", "info", "v").json())
    assert _state(mp)[1:] == (before[1], _git(mp, "branch", "--list").stdout, before[3])
    # a detached HEAD is git's own state: allowed, named by avfs, and left with `git switch f`
    assert _git(mp, "checkout", "-q", "--detach").returncode == 0
    assert _status(avfs)["git"]["detached"] == tip
    _git(mp, "switch", "-q", "f")
    # file checkouts pass: the guard looks at branch checkouts only
    _git(mp, "checkout", "-q", "--", "a.txt")
    assert (mp / "a.txt").read_text() == "one\n"
    assert avfs("checkpoint", "save", "-m", "work").code == 0
    _clean_everywhere(mp, avfs)


@pytest.mark.parametrize("backend", ["overlay"])
def test_the_persons_hooks_still_run_in_the_mount(
    mounted: Any, backend: str, cli_proc: Any, tmp_path: Path
) -> None:
    """The mount's own hooks directory (core.hooksPath of its worktree) reaches the vault's
    hooks: pre-commit and post-checkout run as they would without avfs, a hook added after
    mounting too."""
    mp, _avfs = mounted
    hooks = Path(cli_proc("vault", "path", "v").out.strip()) / "hooks"
    marks = tmp_path / "marks"
    for name in ("pre-commit", "post-checkout"):
        (hooks / name).write_text(f'#!/bin/sh\necho {name} "$@" >> {marks}\n')
        (hooks / name).chmod(0o755)
    (mp / "b.txt").write_text("b\n")
    _git(mp, "add", "b.txt")
    _git(mp, "commit", "-qm", "b")
    _git(mp, "checkout", "-q", "--detach")
    _git(mp, "switch", "-q", "f")
    lines = marks.read_text().splitlines()
    assert lines[0] == "pre-commit" and lines[1].startswith("post-checkout ") and len(lines) == 3, lines
    # a refused switch does not run the person's post-checkout (nothing was checked out)
    assert cli_proc("vault", "fork", "v:main", "g").code == 0
    _git(mp, "switch", "g", check=False)
    assert len(marks.read_text().splitlines()) == 3


@pytest.mark.parametrize("backend", BACKENDS)
def test_head_moves_inside_proxy_exec(mounted: Any, backend: str) -> None:
    """Inside a confined command git's HEAD is the mount's: a branch switch is switched back
    by the same guard (the branch it made is not carried out: refs_refused), a detached
    checkout stays, with no half-done state (HEAD used to be read-only there: git rewrote the
    files, then failed to move HEAD), and a commit made on a detached HEAD is carried back."""
    _need_bwrap()
    mp, avfs = mounted
    (mp / "b.txt").write_text("b\n")
    assert avfs("checkpoint", "save", "-m", "b").code == 0
    tip = _git(mp, "rev-parse", "HEAD").stdout.strip()
    before = _state(mp)
    doc = _exec(mp, "git switch -c x; echo rc=$?; git symbolic-ref HEAD")
    assert doc["result"]["stdout"] == "rc=1\nrefs/heads/f\n", doc["result"]
    assert "switching back to f" in doc["result"]["stderr"]
    assert [r["ref"] for r in doc["refs_refused"]] == ["refs/heads/x"], doc["refs_refused"]
    assert _state(mp) == before
    # detached: the files are HEAD~1's, HEAD is there on the host too
    doc = _exec(
        mp,
        "git checkout -q HEAD~1 && echo made > c.txt && git add c.txt && git commit -qm c && git rev-parse HEAD",
    )
    assert doc["exit_code"] == 0, doc["result"]
    made = doc["result"]["stdout"].strip()
    assert _git(mp, "rev-parse", "HEAD").stdout.strip() == made
    assert _git(mp, "rev-parse", "HEAD~1").stdout.strip() == _git(mp, "rev-parse", f"{tip}~1").stdout.strip()
    assert not (mp / "b.txt").exists() and (mp / "c.txt").read_text() == "made\n"
    assert _git(mp, "status", "--porcelain").stdout == ""
    assert _status(avfs)["git"]["detached"] == made
    vault = avfs("vault", "path").out.strip()
    fsck = subprocess.run(["git", "--git-dir", vault, "fsck", "--strict"], capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stderr
    assert _git(mp, "rev-parse", "refs/heads/f").stdout.strip() == tip  # the branch did not move
    # back on the fork, the commit made detached is kept where git keeps it (the reflog)
    _git(mp, "switch", "-q", "f")
    assert (mp / "b.txt").read_text() == "b\n" and not (mp / "c.txt").exists()
    assert _git(mp, "cat-file", "-t", made).stdout.strip() == "commit"
    _clean_everywhere(mp, avfs)


@pytest.mark.parametrize("backend", ["overlay"])
def test_a_rebase_finished_inside_proxy_exec_moves_the_fork(mounted: Any, backend: str) -> None:
    """A rebase detaches HEAD while it works: inside `proxy exec` it could not start before;
    one that finishes in the command moves the fork's branch like a commit."""
    _need_bwrap()
    mp, avfs = mounted
    for n in ("1", "2"):
        (mp / f"n{n}.txt").write_text(n)
        _git(mp, "add", f"n{n}.txt")
        _git(mp, "commit", "-qm", f"n{n}")
    base = _git(mp, "rev-parse", "HEAD~2").stdout.strip()
    doc = _exec(mp, "git rebase -q --onto HEAD~2 HEAD~1 && git log --format=%s -2")  # drops n1
    assert doc["exit_code"] == 0, doc["result"]
    assert doc["result"]["stdout"].splitlines()[0] == "n2", doc["result"]
    assert _git(mp, "symbolic-ref", "HEAD").stdout.strip() == "refs/heads/f"
    assert _git(mp, "rev-parse", "HEAD~1").stdout.strip() == base
    assert not (mp / "n1.txt").exists() and (mp / "n2.txt").read_text() == "2"
    _clean_everywhere(mp, avfs)
