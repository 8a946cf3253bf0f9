"""The error for a fork that is not there, naming what avfs still keeps of one whose branch
git deleted behind avfs's back.

A mount refuses git's deletion of its fork's branch (mount/hookscripts.py, the
``reference-transaction`` guard), but git run with hooks off (``git -c core.hooksPath=...``)
or from outside the mount (``git --git-dir=VAULT update-ref -d``) deletes it all the same.
The fork's workspace (its overlay: the uncheckpointed changes, its base) is then still on
disk: avfs deletes that only with the fork itself. It is not taken back by itself (a branch
deleted on purpose, from another machine's push for one, would come back at every command);
the error names the commit avfs last recorded as the fork's and the one command that brings
the branch back, with every change as it was (docs/fuse.md, "A fork's branch deleted by git").
"""

from __future__ import annotations

import os
import sqlite3

from ..errors import ForkNotFoundError
from ..store import refs


def kept_base(ws_dir: str) -> str | None:
    """The base commit the overlay at ``ws_dir`` records, or None where there is no overlay
    (or it cannot be read): opened read-only, written to never."""
    path = os.path.join(ws_dir, "overlay.db")
    if not os.path.isfile(path):
        return None
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1.0)
        try:
            row = db.execute("SELECT value FROM meta WHERE key='base'").fetchone()
        finally:
            db.close()
    except sqlite3.Error:
        return None
    base = None if row is None else str(row[0])
    return (
        base
        if base is not None and len(base) in (40, 64) and all(c in "0123456789abcdef" for c in base)
        else None
    )


def fork_not_found(vault: str, fork: str, ws_dir: str | None) -> ForkNotFoundError:
    """The error for ``fork`` of ``vault`` not there; ``ws_dir``: its workspace's state
    directory where one is still on disk (None: none)."""
    base = None if ws_dir is None else kept_base(ws_dir)
    if base is None:
        return ForkNotFoundError(
            f"vault {vault} has no fork {fork!r}",
            hint=f"see `avfs --vault {vault} vault info` for its forks",
            details={"vault": vault, "fork": fork},
        )
    ref = refs.fork_ref(fork)
    return ForkNotFoundError(
        f"vault {vault} has no fork {fork!r}: its branch {ref} was deleted outside avfs;"
        f" its workspace is kept, last recorded at commit {base}",
        hint=f'`git --git-dir="$(avfs vault path {vault})" update-ref {ref} {base}` brings the fork back'
        " with its uncheckpointed changes (or `git update-ref` of a later commit of it: `git reflog`)",
        details={"vault": vault, "fork": fork, "kept_base": base},
    )
