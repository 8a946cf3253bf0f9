"""The person's own worktree-local settings of a fork's mount kept across a remount
(gitmodel23; docs/fuse.md "What a remount keeps of git's own state"): `git config
--worktree user.email X` in a mount wrote the mount's ``config.worktree``, which the next
mount writes anew (mount/worktree.py), so a remount lost it where a plain worktree keeps
it. :func:`kept` reads them at the keep (mount/gitkeep.py, into ``kept.json``), :func:`text`
writes them back at the next mount's bring back, whatever moved the branch meanwhile (they
name no HEAD).

Only keys of sections git never runs as code nor reads a path or a program from are kept
(:data:`SECTIONS`): a confined command can write ``config.worktree``, and a hook's, an
editor's, a pager's, a filter's or a credential helper's key is code, never kept (the
booleans mount/gitkeep.py keeps besides: sparse-checkout's, ``core.fsmonitor``,
``core.fileMode``). Read by git as data (``--no-includes``), bounded, and what comes back
from ``kept.json`` is checked again before it is written.
"""

from __future__ import annotations

import os
import re
from typing import Any

from ..core.store.gitrun import git_env, run
from .ownfiles import read_bytes

__all__ = ["SECTIONS", "kept", "text"]

# the person's own worktree-local settings kept too (`git config --worktree user.email X`;
# lost at every remount before gitmodel23): of sections git never runs as code, nor
# reads a path or a program from (a confined command can write ``config.worktree``: a
# hook's, an editor's, a filter's or a pager's key is code, never kept), bounded
SECTIONS = frozenset({"user", "author", "committer", "color", "advice", "i18n", "column"})
# (avfs's own sections: [core], and [gc] and [maintenance] of mount/worktree.py's NO_DETACH)
_OTHER_SECTION = re.compile(r"^\s*\[(?!\s*(?:core|gc|maintenance)\s*\])", re.IGNORECASE | re.MULTILINE)
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9-]*")
_NOT_KEPT = frozenset({"user.signingkey"})  # (a key file's path: git signs with it)
_CONFIG_MAX = 64  # keys
_VALUE_MAX = 4096  # characters of each


def kept(git_dir: str) -> list[list[str]]:
    """The person's own settings of :data:`SECTIONS` in the worktree's
    ``config.worktree`` (key, value), read by git as data (no include followed); none,
    and no git run, where it holds no section but ``[core]`` (the usual unmount)."""
    path = os.path.join(git_dir, "config.worktree")
    data = read_bytes(path)  # (regular files only, never through a link, bounded)
    try:
        raw = None if data is None else data.decode("utf-8")
    except UnicodeDecodeError:
        raw = None
    if data is None or raw is None or not _OTHER_SECTION.search(raw):
        return []
    from ..core.store.configtext import parse_listing

    # git reads the very bytes checked, on its stdin: given the path, it opened the file
    # again, and a confined command's rename between (a link to a host file, a FIFO) had
    # git read what the check never saw (the review of the thirty-fourth round, review35)
    proc = run(
        ["config", "--no-includes", "--file", "-", "--list", "-z"],
        input=data,
        env=git_env(),
        cwd="/",
        check=False,
    )
    out_ = proc.stdout
    listing = out_.decode("utf-8", "replace") if isinstance(out_, bytes) else str(out_)
    if proc.returncode != 0:
        return []
    kept = [
        [key, val]
        for key, val in parse_listing(listing)
        if val is not None
        and key.split(".", 1)[0] in SECTIONS
        and key not in _NOT_KEPT
        and len(val) <= _VALUE_MAX
        and "\0" not in val
        and _NAME.fullmatch(key.rsplit(".", 1)[-1]) is not None
        and "\n" not in key
    ]
    return kept[:_CONFIG_MAX]


def text(pairs: Any) -> str:
    """:func:`kept`'s pairs (read back from ``kept.json``, as untrusted data) as
    ``config.worktree`` sections git reads back whole; anything else is left out."""
    from ..core.store.configtext import value

    out = []
    for pair in pairs if isinstance(pairs, list) else ():
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(x, str) for x in pair)):
            continue
        key, val = pair
        section, _, rest = key.partition(".")
        sub, _, name = rest.rpartition(".")
        if (
            section not in SECTIONS
            or key.lower() in _NOT_KEPT
            or not _NAME.fullmatch(name)
            or len(val) > _VALUE_MAX
            or any(c in key + val for c in "\0\r")
            or "\n" in sub
        ):
            continue
        head = (
            f'[{section} "{sub.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"]'
            if sub
            else f"[{section}]"
        )
        out.append(f"{head}\n\t{name} = {value(val)}\n")
    return "".join(out[:_CONFIG_MAX])
