"""A mounted fork as a linked worktree of its vault, so `git` works inside the mount.

The mount shows a file ``.git`` at its root that reads ``gitdir: <vault>/worktrees/<id>``;
that directory holds what git keeps per worktree (``HEAD``, ``index``, ``commondir``,
``gitdir``), and everything else (objects, refs, config) is the vault's own. So
``git status``, ``git diff``, ``git add`` and ``git commit`` in the mount run against the
vault, and a commit made there moves the fork's branch like any other push.

The index starts as the workspace's base tree (``git read-tree``); git then compares it with
the files the mount shows, so ``git status`` agrees with ``avfs status``.
"""

from __future__ import annotations

import os
import shutil
from typing import TYPE_CHECKING

from .errors import from_oserror
from .home import git_env

if TYPE_CHECKING:
    from .vault import Vault


def worktree_dir(vault: Vault, key: str) -> str:
    safe = key.replace("%", "%25").replace("/", "%2F").replace("@", "%40")
    return os.path.join(vault.path, "worktrees", f"avfs-{safe}")


def register(vault: Vault, key: str, mountpoint: str, head: str, index_commit: str) -> str:
    """Register ``mountpoint`` as a worktree whose HEAD is ``head`` (a ref name, or a
    commit id for a detached, read-only revision); returns the worktree's git dir."""
    import subprocess

    d = worktree_dir(vault, key)
    try:
        shutil.rmtree(d, ignore_errors=True)  # a leftover of a killed mount
        os.makedirs(d)
        files = {
            "gitdir": os.path.join(mountpoint, ".git") + "\n",
            "commondir": "../..\n",
            "HEAD": (f"ref: {head}\n" if head.startswith("refs/") else f"{head}\n"),
        }
        for name, text in files.items():
            with open(os.path.join(d, name), "w", encoding="utf-8") as fh:
                fh.write(text)
    except OSError as exc:
        raise from_oserror(exc, d) from exc
    env = git_env()
    env["GIT_DIR"] = d
    proc = subprocess.run(["git", "read-tree", index_commit], env=env, capture_output=True, check=False)
    if proc.returncode != 0:  # git still works without an index; status then lists everything
        with open(os.path.join(d, "avfs-index-error"), "wb") as fh:
            fh.write(proc.stderr)
    return d


def unregister(git_dir: str) -> None:
    shutil.rmtree(git_dir, ignore_errors=True)
