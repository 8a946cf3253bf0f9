"""The git version a mount's hook depends on (mount/hookscripts.py, FIXED_GIT) asked of a
git binary once per process: a mount daemon forked from the warm CLI server finds the
server's answer and starts no ``git --version`` before the mount answers; another binary
(another PATH, or the same path rewritten) is asked again."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from avfs_git.mount import hookscripts


def _fake_git(d: Path, version: str) -> None:
    d.mkdir(exist_ok=True)
    git = d / "git"
    git.write_text(f"#!/bin/sh\necho 'git version {version}'\n")
    git.chmod(0o755)


def test_a_binary_is_asked_once_and_a_changed_one_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    asked: list[list[str]] = []
    real_run = hookscripts.run

    def counted(args, **kw):  # the real run, counted
        asked.append(list(args))
        return real_run(args, **kw)

    monkeypatch.setattr(hookscripts, "run", counted)
    monkeypatch.setattr(hookscripts, "_FOUND", {})
    assert hookscripts.git_trusts_fsmonitor_in_diff() == hookscripts.git_trusts_fsmonitor_in_diff()
    assert len(asked) == 1  # the machine's git, asked once

    old = tmp_path / "old"
    _fake_git(old, "2.30.1")
    monkeypatch.setenv("PATH", f"{old}{os.pathsep}{os.environ['PATH']}")
    assert hookscripts.git_trusts_fsmonitor_in_diff() is False
    assert hookscripts.git_trusts_fsmonitor_in_diff() is False
    assert len(asked) == 2
    # the same path rewritten (an upgrade in place): asked again
    os.utime(old / "git", ns=(1, 1))
    (old / "git").write_text("#!/bin/sh\necho 'git version 2.43.0'\n")
    assert hookscripts.git_trusts_fsmonitor_in_diff() is True
    assert len(asked) == 3


def test_the_next_process_takes_the_kept_answer_of_the_same_binary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """A daemon started cold (its memo empty) finds the answer an earlier one kept in the
    vault's ``avfs/`` (h-gitspawn1): no ``git --version`` for the same binary; a binary
    rewritten in place, another on PATH, or a kept file that is not what avfs wrote: asked."""
    asked: list[list[str]] = []
    real_run = hookscripts.run

    def counted(args, **kw):  # the real run, counted
        asked.append(list(args))
        return real_run(args, **kw)

    monkeypatch.setattr(hookscripts, "run", counted)
    keep = tmp_path / "avfs"
    keep.mkdir()
    old = tmp_path / "old"
    _fake_git(old, "2.30.1")
    monkeypatch.setenv("PATH", f"{old}{os.pathsep}{os.environ['PATH']}")

    def next_process(kept: Path | None = keep) -> bool:
        monkeypatch.setattr(hookscripts, "_FOUND", {})
        return hookscripts.git_trusts_fsmonitor_in_diff(None if kept is None else str(kept))

    assert next_process() is False
    assert len(asked) == 1
    assert next_process() is False and next_process() is False
    assert len(asked) == 1  # taken from the kept file
    assert next_process(None) is False
    assert len(asked) == 2  # (nowhere to keep it: asked)
    os.utime(old / "git", ns=(1, 1))
    (old / "git").write_text("#!/bin/sh\necho 'git version 2.43.0'\n")
    assert next_process() is True
    assert next_process() is True
    assert len(asked) == 3
    other = tmp_path / "other"
    _fake_git(other, "2.29.0")
    monkeypatch.setenv("PATH", f"{other}{os.pathsep}{os.environ['PATH']}")
    assert next_process() is False
    assert len(asked) == 4
    kept = keep / hookscripts.KEPT_FILE
    for junk in (b"", b"x\n1", kept.read_bytes()[:-1] + b"2", kept.read_bytes()[:-3] + b"\n1"):
        kept.write_bytes(junk)
        assert next_process() is False
    assert len(asked) == 8
    # a git whose version cannot be read: False, and nothing kept for it
    _fake_git(other, "unknown")
    kept.unlink()
    assert next_process() is False and not kept.exists()
