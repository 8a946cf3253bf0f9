"""What a vault's tree holds, read with git, and whether git's strictest checks take it:
shared by the tests of contents `git fsck` refuses (test_gitmodules.py, test_gitattributes.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from .conftest import git


def tree(vault: Any, ref: str = "main") -> dict[str, str]:
    """path -> blob id of every file of ``ref``'s tree."""
    out = git("--git-dir", vault.path, "ls-tree", "-r", ref)
    return {line.split("\t", 1)[1]: line.split()[2] for line in out.splitlines()}


def blob(vault: Any, oid: str) -> bytes:
    return subprocess.run(
        ["git", "--git-dir", vault.path, "cat-file", "blob", oid], capture_output=True, check=True
    ).stdout


def fsck_and_push(vault: Any, tmp_path: Path) -> None:
    """The vault passes `git fsck --strict`, and a remote that checks objects takes it."""
    git("--git-dir", vault.path, "fsck", "--strict", "--no-dangling")
    remote = tmp_path / f"remote{len(list(tmp_path.glob('remote*')))}.git"
    git("init", "-q", "--bare", str(remote))
    git("--git-dir", str(remote), "config", "receive.fsckObjects", "true")
    git("--git-dir", vault.path, "push", "-q", str(remote), "refs/heads/*:refs/heads/*")
