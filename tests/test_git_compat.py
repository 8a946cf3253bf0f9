"""Vaults are plain git: the real git binary reads, clones, checks and pushes to them."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from avfs_git.core.operations import checkpoint, history

from .conftest import git

TRICKY = {
    "plain.txt": b"hello\n",
    "empty": b"",
    "binary.bin": bytes(range(256)) * 40,
    "ünïcødé/名前.txt": b"non-ascii\n",
    "with space/and'quote\".txt": b"q\n",
    "deep/a/b/c/d/e.txt": b"deep\n",
    "nl\\back.txt": b"backslash\n",
}


@pytest.fixture
def tricky(vault, ws):
    for p, data in TRICKY.items():
        ws.write(p, data)
    ws.write("tool.sh", b"#!/bin/sh\necho hi\n", mode=0o755)
    ws.symlink("plain.txt", "link-to-plain")
    ws.symlink("/absolute/target", "abs-link")
    ws.mkdir("empty-dir")
    checkpoint.save(vault, name="tricky")
    return vault


def test_fsck_strict_is_clean(tricky):
    ws = tricky.workspace()
    ws.rename("deep", "deeper")
    ws.remove("empty")
    checkpoint.save(tricky)
    checkpoint.restore(tricky, None, "tricky")
    checkpoint.undo(tricky)
    proc = git("--git-dir", tricky.path, "fsck", "--strict", "--no-dangling", "--no-progress")
    assert proc == ""


def test_clone_gives_exactly_the_checkpointed_tree(tricky, tmp_path):
    dest = tmp_path / "clone"
    git("clone", "-q", tricky.path, str(dest))
    for p, data in TRICKY.items():
        assert (dest / p).read_bytes() == data, p
    assert os.access(dest / "tool.sh", os.X_OK)
    assert not os.access(dest / "plain.txt", os.X_OK)
    assert os.readlink(dest / "link-to-plain") == "plain.txt"
    assert os.readlink(dest / "abs-link") == "/absolute/target"
    assert not (dest / "empty-dir").exists()  # git keeps no empty directories
    listed = set(git("ls-files", cwd=dest, check=True).splitlines())
    assert len(listed) == len(TRICKY) + 3


def test_git_log_agrees_with_avfs_log(tricky):
    ws = tricky.workspace()
    for i in range(3):
        ws.write("counter", str(i).encode())
        checkpoint.save(tricky, message=f"step {i}")
    ours = [c.id for c in history.log(tricky, "main")]
    theirs = git("--git-dir", tricky.path, "log", "--first-parent", "--format=%H", "main").split()
    assert ours == theirs
    msgs = git("--git-dir", tricky.path, "log", "--format=%s", "-1", "main").strip()
    assert msgs == "step 2"


def test_cli_log_json_matches_git(cli, tricky):
    r = cli("--json", "--vault", "v", "log")
    ids = [c["id"] for c in r.json()["commits"]]
    assert ids == git("--git-dir", tricky.path, "log", "--format=%H", "main").split()


def test_commits_pushed_back_are_seen(tricky, tmp_path):
    dest = tmp_path / "clone"
    git("clone", "-q", tricky.path, str(dest))
    (dest / "from-git.txt").write_text("made by git\n")
    (dest / "tool.sh").chmod(0o644)
    git("add", "-A", cwd=dest)
    git("commit", "-qm", "made by git", cwd=dest)
    git("push", "-q", "origin", "main", cwd=dest)
    # a new branch pushed becomes a fork
    git("checkout", "-qb", "feature", cwd=dest)
    (dest / "feature.txt").write_text("f\n")
    git("add", "-A", cwd=dest)
    git("commit", "-qm", "feature", cwd=dest)
    git("push", "-q", "origin", "feature", cwd=dest)
    ws = tricky.workspace("main")
    assert ws.read("from-git.txt") == b"made by git\n"
    assert ws.stat("tool.sh").mode == 0o100644
    assert history.log(tricky, "main")[0].message == "made by git\n"
    assert "feature" in tricky.fork_names()
    assert tricky.workspace("feature").read("feature.txt") == b"f\n"
    # and avfs can keep working on top of it
    ws.write("after.txt", b"after")
    res = checkpoint.save(tricky)
    assert res.checkpoint.parent == git("--git-dir", tricky.path, "rev-parse", "main~1").strip()


def test_reflog_records_every_ref_move(tricky):
    ws = tricky.workspace()
    ws.write("x", b"x")
    checkpoint.save(tricky)
    checkpoint.restore(tricky, None, "tricky")
    out = git("--git-dir", tricky.path, "reflog", "show", "--format=%gs", "refs/heads/main")
    assert "avfs: restore tricky" in out and "avfs: checkpoint" in out


def test_avfs_state_is_not_cloned(tricky, tmp_path):
    dest = tmp_path / "bare-clone.git"
    git("clone", "-q", "--bare", tricky.path, str(dest))
    assert not (Path(dest) / "avfs").exists()
    assert (Path(tricky.path) / "avfs").is_dir()


def test_permissions_in_clone(tricky, tmp_path):
    dest = tmp_path / "c"
    git("clone", "-q", tricky.path, str(dest))
    assert stat.S_IMODE(os.stat(dest / "tool.sh").st_mode) & 0o111
