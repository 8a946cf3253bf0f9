"""What every reader sees of a fork, whichever backend wrote it: the workspace's status and
the checkpoint's tree in git."""

from __future__ import annotations

from typing import Any

from ..conftest import git


def _status(fs: Any) -> set[tuple[str, str]]:
    return {(c.path, c.status.value) for c in fs.ws.status()}


def _committed(fs: Any, rev: str, path: str) -> bytes:
    out = git("--git-dir", fs.ws.vault.path, "cat-file", "-p", f"{rev}:{path}")
    return out.encode()


def _tree(fs: Any, rev: str) -> dict[str, str]:
    """path -> git mode of every entry of ``rev``'s tree."""
    out = git("--git-dir", fs.ws.vault.path, "ls-tree", "-r", "-z", rev)
    entries = {}
    for rec in out.split("\0"):
        if rec:
            meta, path = rec.split("\t", 1)
            entries[path] = meta.split()[0]
    return entries
