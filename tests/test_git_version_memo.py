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
