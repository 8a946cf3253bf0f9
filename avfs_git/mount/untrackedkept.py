"""The head of git's untracked cache (mount/untracked.py :class:`~.untracked.HeadAhead`), kept
beside the vault for the next mount (``<vault>/avfs/untracked-head``, h-mountcost2).

Every overlay mount's index (and a lazy fork's) carries git's untracked cache, whose head
(the ``Location`` of the tree git ran in, the ids and stat data of ``info/exclude`` and of
the global excludes file, the flags of this kind of status) git writes from a ``status`` on
an empty tree: a git process per mount (~2 ms of its CPU and ~1-2 ms of the daemon's, its
scratch tree made and removed). What git writes there depends on: the git binary, the files
git reads its config from (``core.excludesFile`` names the excludes file), ``info/exclude``
and the global excludes file (their stat data and ids), the worktree's ``config.worktree``
(copied into git's scratch directory) and ``$HOME``/``$XDG_CONFIG_HOME`` (where the global
excludes file is). The head is kept under the stamps of all of them, as gitrun's kept config
answers are (:func:`.gitrun.kept_config`: not kept while a file changed within the last
second), and taken only where every one is the same; git is asked as before where a config
file includes another or names ``core.excludesFile`` (the file it names is not in the key),
or where the worktree's ``commondir`` does not lead to the vault (a confined command can
write the worktree git dir: the kept file is the vault's, found by the caller's own path).
"""

from __future__ import annotations

import hashlib
import os

from ..core.store.gitrun import (
    CONFIG_READ_MAX,
    config_text,
    git_config_files,
    git_env,
    git_identity,
    keep_config,
    kept_config,
)
from .ownfiles import read_bytes, read_text

HEAD_FILE = "untracked-head"


def key(git_dir: str, vault_path: str) -> list[list[str | int]] | None:
    """What the head git writes for a ``status`` of ``git_dir`` (a worktree of the vault at
    ``vault_path``, or the vault) is kept by; None where it is not kept (git is asked)."""
    env = git_env()
    ident = git_identity(env)
    if ident is None:
        return None
    common_file = read_text(os.path.join(git_dir, "commondir"))
    common = git_dir if common_file is None else os.path.normpath(os.path.join(git_dir, common_file.strip()))
    if os.path.realpath(common) != os.path.realpath(vault_path):
        return None
    worktree_config = read_bytes(os.path.join(git_dir, "config.worktree"))
    if worktree_config is not None and _names_more(worktree_config.lower()):
        return None
    configs = [
        os.path.join(vault_path, "config"),
        os.path.join(vault_path, "config.worktree"),
        *git_config_files(env),
    ]
    for path in configs:
        text = config_text(path)
        if text is not None and (_names_more(text) or len(text) >= CONFIG_READ_MAX):
            return None
    xdg = env.get("XDG_CONFIG_HOME") or os.path.join(env.get("HOME", ""), ".config")
    out: list[list[str | int]] = [
        [ident.hex()],
        [f"HOME={env.get('HOME', '')}"],
        [f"XDG_CONFIG_HOME={env.get('XDG_CONFIG_HOME', '')}"],
        [
            "config.worktree="
            + ("-" if worktree_config is None else hashlib.sha1(worktree_config).hexdigest())
        ],
    ]
    for path in [*configs, os.path.join(vault_path, "info", "exclude"), os.path.join(xdg, "git", "ignore")]:
        try:
            st = os.stat(path)
        except OSError:
            out.append([path])
            continue
        # (git's stat data of the excludes files: device, owner and mode too)
        out.append([path, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns])
        out.append([f"{path}\0{st.st_dev}:{st.st_uid}:{st.st_gid}:{st.st_mode}"])
    return out


def _names_more(text: bytes) -> bool:
    """(``text`` in lower case) Whether a config file includes another or names the excludes
    file (whose stamp the key would not hold)."""
    return b"include" in text or b"excludesfile" in text


def kept(vault_path: str, where: list[list[str | int]]) -> tuple[bytes, str] | None:
    """The head kept under ``where`` and the path of the tree it names, or None."""
    got = kept_config(vault_path, HEAD_FILE, where)
    if got is None:
        return None
    head, made_in = got.get("head"), got.get("made_in")
    if not isinstance(head, str) or not isinstance(made_in, str) or not made_in:
        return None
    try:
        return bytes.fromhex(head), made_in
    except ValueError:
        return None


def keep(vault_path: str, where: list[list[str | int]], head: bytes, made_in: str) -> None:
    """Keep git's ``head`` (made in the tree at ``made_in``) under ``where``."""
    try:
        keep_config(vault_path, HEAD_FILE, where, {"head": head.hex(), "made_in": made_in})
    except OSError:
        pass  # (a cache: the next mount asks git)
