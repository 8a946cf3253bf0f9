"""Nested repositories: a ``.git`` below the root (``git init sub``, ``git clone URL sub``) is
not part of the fork (git trees cannot hold one). Its files live as plain files in the
workspace's ``nested/`` directory and every call under it passes straight through to that
directory: git's own object and index I/O there runs at disk speed, nothing of it is
journaled, checkpointed or restored, and it goes when the fork is deleted.
"""

from __future__ import annotations

import errno
import os
from typing import Any

import mfusepy as fuse

from ..core.store import names
from ..core.types import MODE_COMMIT
from ..mount.heldstat import inode_of
from .opsbase import OpsBase


class NestedRepos(OpsBase):
    """Where a path lies in a nested repository, and its real file there."""

    def _nested(self, path: str) -> str | None:
        """The real path of ``path`` when it lies in a nested repository's ``.git``."""
        if "/.git" not in path:
            return None
        comps = path.split("/")
        try:
            i = comps.index(".git", 2)
        except ValueError:
            return None
        if self.read_only:
            raise fuse.FuseOSError(errno.ENOENT)  # a revision holds no nested repository
        if i == len(comps) - 1:
            # the .git itself: only inside a directory of the workspace
            parent = names.norm_path("/".join(comps[1:i]))
            node = self.ws.node(parent)
            if node is None or not (node.is_dir or node.mode == MODE_COMMIT):  # (a submodule's too)
                raise fuse.FuseOSError(errno.ENOENT)
        return os.path.join(self._nested_root, path[1:])

    def _nested_attrs(self, path: str, real: str) -> dict[str, Any]:
        s = os.lstat(real)
        return {
            "st_ino": inode_of(path[1:]),
            "st_mode": s.st_mode,
            "st_nlink": s.st_nlink,
            "st_size": s.st_size,
            "st_blocks": s.st_blocks,
            "st_uid": s.st_uid,
            "st_gid": s.st_gid,
            "st_atime": s.st_atime_ns,
            "st_mtime": s.st_mtime_ns,
            "st_ctime": s.st_ctime_ns,
        }

    def _nested_parent(self, real: str) -> None:
        os.makedirs(os.path.dirname(real), exist_ok=True)
        self._has_nested = True

    def _nested_prune(self, real: str) -> None:
        """After a nested ``.git`` itself went, remove the directories of ``nested/`` that
        only led to it (never anything inside a repository)."""
        if os.path.basename(real) != ".git":
            return
        d = os.path.dirname(real)
        while d != self._nested_root and d.startswith(self._nested_root):
            try:
                os.rmdir(d)
            except OSError:
                return
            d = os.path.dirname(d)

    def _nested_under(self, p: str) -> str | None:
        """``nested/<p>`` when something of a nested repository is kept at or below ``p``."""
        if not self._has_nested:
            return None
        real = os.path.join(self._nested_root, p) if p else self._nested_root
        return real if os.path.isdir(real) else None
