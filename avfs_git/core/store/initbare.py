"""A new bare repository's files as ``git init --bare --template=`` writes them, without a
git process: a lazy clone's git is 0.1 s here, so a process around it is a visible part of
the clone (3-5 ms idle, more on a loaded machine: docs/benchmarks.md, "Lazy clone + mount
until `ls`"). Held to git's own by a differential test (tests/test_initbare.py).

What `git init` (2.39, ``create_default_files`` in builtin/init-db.c) writes with no
template: ``HEAD``, ``objects/info``, ``objects/pack``, ``refs/heads``, ``refs/tags`` and a
``config`` of ``core.repositoryformatversion = 0``, ``core.filemode`` (whether a change of
the exec bit holds on this file system), ``core.bare = true``, then ``core.symlinks =
false`` where a symlink cannot be made and ``core.ignorecase = true`` where the file
system folds case. Not copied from the person's config: ``core.sharedRepository`` (a vault
is its owner's, as libgit2 made it before `git init` did).
"""

from __future__ import annotations

import os
import stat
import tempfile

from .refs import HEADS, TAGS


def init_bare(path: str, head: str) -> None:
    """Make the bare repository at ``path`` (an empty or missing directory) with ``HEAD``
    pointing at ``head`` (a full ref name)."""
    for d in ("objects/info", "objects/pack", HEADS, TAGS):
        os.makedirs(os.path.join(path, d), exist_ok=True)
    with open(os.path.join(path, "HEAD"), "w", encoding="utf-8") as fh:
        fh.write(f"ref: {head}\n")
    config = os.path.join(path, "config")
    with open(config, "w", encoding="utf-8") as fh:
        fh.write("[core]\n")
    lines = ["\trepositoryformatversion = 0\n", f"\tfilemode = {_bool(_exec_bit_holds(config))}\n"]
    lines.append("\tbare = true\n")
    if not _symlinks_hold(path):
        lines.append("\tsymlinks = false\n")
    if os.path.exists(os.path.join(path, "CoNfIg")):
        lines.append("\tignorecase = true\n")
    with open(config, "a", encoding="utf-8") as fh:
        fh.write("".join(lines))


def _bool(flag: bool) -> str:
    return "true" if flag else "false"


def _exec_bit_holds(path: str) -> bool:
    """git's probe: the owner's exec bit flipped on ``path`` shows in its mode, and flips
    back (a file that had it already says no)."""
    try:
        before = os.lstat(path).st_mode
        os.chmod(path, stat.S_IMODE(before) ^ stat.S_IXUSR)
        changed = os.lstat(path).st_mode != before
        os.chmod(path, stat.S_IMODE(before))
    except OSError:
        return False
    return changed and not before & stat.S_IXUSR


def _symlinks_hold(path: str) -> bool:
    """git's probe: a symlink made in ``path`` is one."""
    fd, probe = tempfile.mkstemp(prefix="t", dir=path)
    os.close(fd)
    try:
        os.unlink(probe)
        os.symlink("testing", probe)
        return stat.S_ISLNK(os.lstat(probe).st_mode)
    except OSError:
        return False
    finally:
        try:
            os.unlink(probe)
        except OSError:
            pass
