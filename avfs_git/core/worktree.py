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
from collections.abc import Callable
from typing import TYPE_CHECKING

from .errors import from_oserror
from .home import git_env

if TYPE_CHECKING:
    from .vault import Vault


def worktree_dir(vault: Vault, key: str) -> str:
    safe = key.replace("%", "%25").replace("/", "%2F").replace("@", "%40")
    return os.path.join(vault.path, "worktrees", f"avfs-{safe}")


_HOOK = """#!{python} -S
# git's fsmonitor hook (protocol v2) for an avfs mount, answered from the workspace's
# journal: only the paths changed since git's last token, so `git status` touches only them.
import sqlite3, sys

DB = {db!r}


def main():
    token = sys.argv[2] if len(sys.argv) > 2 else ""
    con = sqlite3.connect("file:" + DB + "?mode=ro", uri=True, timeout=5)
    meta = dict(con.execute("SELECT key, value FROM meta WHERE key IN ('base', 'view_time')"))
    seq = con.execute("SELECT COALESCE(MAX(seq), 0) FROM journal").fetchone()[0]
    state = "%s:%s" % (meta.get("base"), meta.get("view_time"))
    out = ["avfs:%s:%d" % (state, seq)]
    old = token.split(":")
    if len(old) != 4 or old[0] != "avfs":
        # git's first call (its index has no token of ours): the index avfs wrote holds the
        # base with the mount's stat data, so what may differ is exactly the overlay
        paths = [row[0] for row in con.execute("SELECT path FROM entries")]
        if "" in paths:
            out.append("/")  # the whole tree is replaced (after an undo): rescan
        else:
            seen = set()
            for path in paths:
                parent = path.rsplit("/", 1)[0] + "/" if "/" in path else ""
                for p in (path, path + "/", parent):
                    if p and p not in seen:
                        seen.add(p)
                        out.append(p)
    elif ":".join(old[1:3]) != state:
        out.append("/")  # the base moved: everything may have changed
    else:
        seen = set()
        for (path,) in con.execute("SELECT DISTINCT path FROM journal WHERE seq > ?", (int(old[3]),)):
            parent = path.rsplit("/", 1)[0] + "/" if "/" in path else ""
            for p in (path, path + "/", parent):
                if p and p not in seen:
                    seen.add(p)
                    out.append(p)
    sys.stdout.write("\\0".join(out) + "\\0")


main()
"""


def register(
    vault: Vault, key: str, mountpoint: str, head: str, index_commit: str, journal_db: str | None = None
) -> str:
    """Register ``mountpoint`` as a worktree whose HEAD is ``head`` (a ref name, or a
    commit id for a detached, read-only revision); returns the worktree's git dir.

    With ``journal_db`` (the workspace's overlay database), git's ``core.fsmonitor`` is set
    for this worktree only to a hook that answers from the journal, with the untracked cache.
    """
    import subprocess
    import sys

    d = worktree_dir(vault, key)
    try:
        shutil.rmtree(d, ignore_errors=True)  # a leftover of a killed mount
        os.makedirs(d)
        files = {
            "gitdir": os.path.join(mountpoint, ".git") + "\n",
            "commondir": "../..\n",
            "HEAD": (f"ref: {head}\n" if head.startswith("refs/") else f"{head}\n"),
        }
        if journal_db is not None:
            hook = os.path.join(d, "fsmonitor-hook")
            files["fsmonitor-hook"] = _HOOK.format(python=sys.executable, db=journal_db)
            files["config.worktree"] = (
                # with worktreeConfig on, the vault's core.bare=true would make git see this
                # worktree as bare: say otherwise, for this worktree only
                f"[core]\n\tbare = false\n\tfsmonitor = {hook}\n\tfsmonitorHookVersion = 2\n\tuntrackedCache = true\n"
            )
        for name, text in files.items():
            with open(os.path.join(d, name), "w", encoding="utf-8") as fh:
                fh.write(text)
        if journal_db is not None:
            os.chmod(os.path.join(d, "fsmonitor-hook"), 0o755)
            cfg = vault.store.repo.config
            if str(cfg["core.repositoryformatversion"]) == "0":
                cfg["core.repositoryformatversion"] = "1"
            cfg["extensions.worktreeConfig"] = "true"
    except OSError as exc:
        raise from_oserror(exc, d) from exc
    env = git_env()
    env["GIT_DIR"] = d
    proc = subprocess.run(["git", "read-tree", index_commit], env=env, capture_output=True, check=False)
    if proc.returncode != 0:  # git still works without an index; status then lists everything
        with open(os.path.join(d, "avfs-index-error"), "wb") as fh:
            fh.write(proc.stderr)
    return d


StatFn = Callable[[str, int, str], tuple[int, int, int, int, int, int]]


def write_index(
    vault: Vault, git_dir: str, commit: str, stat_of: StatFn, fsmonitor_token: str | None = None
) -> bool:
    """Write the worktree's index for ``commit`` with the stat data the mount reports.

    git trusts an index entry whose stat data equals what ``lstat`` returns, and otherwise
    re-reads the file: an index from ``git read-tree`` (zeroed stat data) makes the first
    ``git status`` read every file through FUSE. ``stat_of(path, mode, oid)`` gives
    (ctime_ns, mtime_ns, ino, uid, gid, size) as the mount shows them. The index is written
    under git's own ``index.lock``; when git holds it, nothing is written (returns False).
    Format: git's index version 2 (Documentation/gitformat-index.txt). With
    ``fsmonitor_token`` it carries git's ``FSMN`` extension (version 2, that token, an empty
    dirty bitmap): git then trusts every entry and asks the hook only what changed since
    the token, instead of lstat-ing every file on its first status (47 s at 100k files).
    """
    import hashlib
    import struct

    entries: list[tuple[bytes, bytes]] = []

    def walk(tree: str, prefix: str) -> None:
        for name, (oid, mode) in vault.store.tree_items(tree).items():
            path = f"{prefix}{name}"
            if mode == 0o040000:
                walk(oid, path + "/")
                continue
            ctime, mtime, ino, uid, gid, size = stat_of(path, mode, oid)
            raw = path.encode("utf-8", "surrogateescape")
            head = struct.pack(
                ">IIIIIIIIII",
                ctime // 10**9,
                ctime % 10**9,
                mtime // 10**9,
                mtime % 10**9,
                0,
                ino & 0xFFFFFFFF,
                mode,
                uid,
                gid,
                size & 0xFFFFFFFF,
            )
            body = head + bytes.fromhex(oid) + struct.pack(">H", min(len(raw), 0xFFF)) + raw
            body += b"\0" * (8 - len(body) % 8)
            entries.append((raw, body))

    walk(vault.store.commit_tree(commit), "")
    entries.sort(key=lambda e: e[0])
    data = b"DIRC" + struct.pack(">II", 2, len(entries)) + b"".join(b for _, b in entries)
    if fsmonitor_token is not None:
        # an EWAH bitmap with no bit set: bit count 0, one (empty) running-length word
        ewah = struct.pack(">II", 0, 1) + struct.pack(">Q", 0) + struct.pack(">I", 0)
        ext = struct.pack(">I", 2) + fsmonitor_token.encode() + b"\0" + struct.pack(">I", len(ewah)) + ewah
        data += b"FSMN" + struct.pack(">I", len(ext)) + ext
    data += hashlib.sha1(data).digest()
    index = os.path.join(git_dir, "index")
    lock = index + ".lock"
    try:
        fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(lock, index)
    except BaseException:
        try:
            os.unlink(lock)
        except OSError:
            pass
        raise
    return True


def unregister(git_dir: str) -> None:
    shutil.rmtree(git_dir, ignore_errors=True)
