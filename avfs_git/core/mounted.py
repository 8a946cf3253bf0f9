"""Which forks of a vault are mounted now, read from the worktrees their mount daemons
registered (``<vault>/worktrees/avfs-<key>/avfs-mount``: the daemon's pid and mount point;
see :mod:`.worktree`). A leaf: the vault and the home ask it before they delete what a
live mount serves."""

from __future__ import annotations

import json
import os

from .locks import pid_alive
from .names import fs_name

OWNER_FILE = "avfs-mount"


def worktree_name(key: str) -> str:
    """The git worktree name of a mount of ``key`` (a fork, or ``FORK@REV``)."""
    return "avfs-" + fs_name(key, at=True)


def live_mountpoints(vault_path: str, key: str | None = None) -> dict[str, str]:
    """``{worktree name: mount point}`` of the vault's live mounts: the mount of fork
    ``key`` only (its git worktree ``avfs-<key>``, revisions not included) when given,
    else every one. A registration whose daemon died (``kill -9``) is not live."""
    root = os.path.join(vault_path, "worktrees")
    if key is not None:
        names = [worktree_name(key)]
    else:
        try:
            names = sorted(n for n in os.listdir(root) if n.startswith("avfs-"))
        except (FileNotFoundError, NotADirectoryError):
            return {}
    out: dict[str, str] = {}
    for name in names:
        try:
            with open(os.path.join(root, name, OWNER_FILE), encoding="utf-8") as fh:
                owner = json.load(fh)
            pid, mp = int(owner["pid"]), str(owner["mountpoint"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if pid_alive(pid) and is_daemon(pid):
            out[name] = mp
    return out


def is_daemon(pid: int) -> bool:
    """Whether ``pid`` runs a mount daemon (not a process that reused a dead one's pid)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return b"avfs_git.fuse.daemon" in fh.read()
    except FileNotFoundError:
        return False
    except OSError:
        return True  # no /proc to ask: trust the pid
