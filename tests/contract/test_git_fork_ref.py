"""git in a mount does not delete or rename the fork's branch (docs/fuse.md, "A fork's branch
deleted by git"): git itself refuses `git branch -D` of a branch a worktree has checked
out, and the mount is its fork whatever git's HEAD names (a detached HEAD included), so the
mount's `reference-transaction` guard refuses `git update-ref -d`, `git branch -D` and
`git branch -m` of it (and `git update-ref -d HEAD`) with a message naming the way to
delete a fork, the branch and its reflog as they were. Where git deletes it all the same
(hooks off, or from outside the mount), every avfs command names the commit avfs last
recorded and the one `git update-ref` that brings the fork back, changes and all. Both
backends, real mounts, real git."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ..gitmount import _git, mount_fork
from .backends import MOUNTS

pytestmark = pytest.mark.backends(*MOUNTS)


def test_git_does_not_delete_or_rename_the_fork_s_branch_and_a_bypass_is_named(
    backend: str, cli_proc: Any, tmp_path: Path
) -> None:
    with mount_fork(cli_proc, tmp_path, backend, in_process=True) as (mp, avfs):
        vault = Path(cli_proc("vault", "path", "v").out.strip())
        # the person's own reference-transaction hook still runs, with git's lines
        marks = tmp_path / "marks"
        hook = vault / "hooks" / "reference-transaction"
        hook.write_text(f'#!/bin/sh\n{{ echo "$1"; cat; }} >> {marks}\n')
        hook.chmod(0o755)
        (mp / "a.txt").write_text("committed\n")
        _git(mp, "commit", "-qam", "by git")
        tip = _git(mp, "rev-parse", "HEAD").stdout.strip()
        text = marks.read_text()
        assert text.startswith("prepared\n") and "\ncommitted\n" in text and f" {tip} " in text, text
        (mp / "new.txt").write_text("uncheckpointed\n")
        reflog = (vault / "logs" / "refs" / "heads" / "f").read_bytes()
        refs_before = _git(mp, "for-each-ref").stdout

        def refused(*args: str) -> None:
            got = _git(mp, *args, check=False)
            assert got.returncode != 0, got
            assert "avfs: refs/heads/f is fork f of vault v, mounted here" in got.stderr, got.stderr
            assert "avfs vault delete v:f" in got.stderr, got.stderr
            assert _git(mp, "for-each-ref").stdout == refs_before, args
            assert (vault / "logs" / "refs" / "heads" / "f").read_bytes() == reflog, args
            assert not (vault / "logs" / "refs" / ".tmp-renamed-log").exists(), args

        refused("update-ref", "-d", "refs/heads/f")
        refused("update-ref", "-d", "HEAD")
        refused("branch", "-m", "f", "other")
        refused("branch", "-m", "other")
        _git(mp, "checkout", "-q", "--detach")
        refused("branch", "-D", "f")  # (plain git allows it: no worktree has f checked out)
        refused("update-ref", "-d", "HEAD")  # (plain git removes HEAD's file: no repository)
        refused("branch", "-m", "f", "other")
        _git(mp, "switch", "-q", "f")
        # git's pack-refs deletes the loose ref it packed (`git gc`, `git maintenance`): it passes
        _git(mp, "gc", "-q")
        _git(mp, "pack-refs", "--all")
        assert _git(mp, "rev-parse", "refs/heads/f").stdout.strip() == tip
        refused("update-ref", "-d", "refs/heads/f")  # (a packed ref now)
        # other branches are git's to delete and rename as ever
        _git(mp, "branch", "x")
        _git(mp, "branch", "-m", "x", "y")
        _git(mp, "branch", "-D", "y")
        assert (mp / "new.txt").read_text() == "uncheckpointed\n"
        assert avfs("--json", "status").json()["changes"] == [{"path": "new.txt", "status": "added"}]

        # hooks off: git deletes it; every avfs command names what is kept and the way back
        _git(mp, "-c", "core.hooksPath=/dev/null", "update-ref", "-d", "refs/heads/f")
        for args in (("status",), ("checkpoint", "save", "-m", "x"), ("diff",)):
            res = avfs("--json", *args)
            doc = res.json()
            assert res.code == 1 and doc["error"]["code"] == "fork_not_found", res.out
            assert doc["error"]["details"]["kept_base"] == tip, doc
            assert "deleted outside avfs" in doc["error"]["message"], doc
            assert f"update-ref refs/heads/f {tip}" in doc["error"]["hint"], doc
        _git(mp, "update-ref", "refs/heads/f", tip)  # the hint's command (in the mount)
        doc = avfs("--json", "status").json()
        assert doc["head"] == doc["base"] == tip and doc["git"] is None, doc
        assert doc["changes"] == [{"path": "new.txt", "status": "added"}], doc
        assert avfs("checkpoint", "save", "-m", "kept").code == 0
        assert _git(mp, "show", "HEAD:new.txt").stdout == "uncheckpointed\n"
        assert _git(mp, "rev-parse", "HEAD~1").stdout.strip() == tip
        assert _git(mp, "status", "--porcelain").stdout == ""
        # a fork that never was: the plain error, no workspace named
        res = avfs("--json", "--vault", "v:nope", "status")
        assert (
            res.json()["error"]["code"] == "fork_not_found"
            and "kept_base" not in res.json()["error"]["details"]
        )
