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
from typing import Protocol

from ..errors import AvfsError, ForkNotFoundError
from ..store import refs


class _Vault(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def default_fork(self) -> str: ...
    def ws_link(self, fork: str) -> str: ...
    def ws_dir(self, fork: str) -> str: ...
    def fork_names(self) -> list[str]: ...


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


# the names a default branch goes by: one asked for where the vault's default fork has the
# other (a vault made from a git checkout keeps its branch's name, `master`) is a guess of the
# default, not a typo difflib would catch
USUAL_DEFAULTS = frozenset({"main", "master", "trunk", "default"})


def fork_not_found(
    vault: str, fork: str, ws_dir: str | None, default: str | None = None, close: list[str] | None = None
) -> ForkNotFoundError:
    """The error for ``fork`` of ``vault`` not there; ``ws_dir``: its workspace's state
    directory where one is still on disk (None: none); ``default``: the vault's default
    fork, named in the hint when ``fork`` is another usual name of a default branch;
    ``close``: the forks whose names are close to it (a typo's fix), named otherwise."""
    base = None if ws_dir is None else kept_base(ws_dir)
    if base is None:
        hint = f"see `avfs --vault {vault} vault info` for its forks"
        details: dict[str, object] = {"vault": vault, "fork": fork}
        if default is not None and default != fork and fork in USUAL_DEFAULTS:
            hint = (
                f"did you mean {default!r}? it is this vault's default fork"
                f" (`--vault {vault}:{default}`, or `--vault {vault}` alone); " + hint
            )
            details["suggestions"] = [default]
        elif close:  # (as the CLI said them, cli/suggest.py: the API and MCP now too)
            hint = f"did you mean {' or '.join(repr(c) for c in close)}? " + hint
            details["suggestions"] = close
        return ForkNotFoundError(f"vault {vault} has no fork {fork!r}", hint=hint, details=details)
    ref = refs.fork_ref(fork)
    return ForkNotFoundError(
        f"vault {vault} has no fork {fork!r}: its branch {ref} was deleted outside avfs;"
        f" its workspace is kept, last recorded at commit {base}",
        hint=f'`git --git-dir="$(avfs vault path {vault})" update-ref {ref} {base}` brings the fork back'
        " with its uncheckpointed changes (or `git update-ref` of a later commit of it: `git reflog`)",
        details={"vault": vault, "fork": fork, "kept_base": base},
    )


def missing(vault: _Vault, fork: str) -> ForkNotFoundError:
    """:func:`fork_not_found` for ``fork`` of ``vault``, which has no such branch: its
    workspace named where one is still on disk, its default fork where the config says one."""
    ws_dir = vault.ws_dir(fork) if os.path.lexists(vault.ws_link(fork)) else None
    import difflib  # (an error's: not on a command's cold start)

    try:
        default: str | None = vault.default_fork
        close = difflib.get_close_matches(fork, vault.fork_names(), n=3, cutoff=0.6)
    except AvfsError:  # (a config.json, a branch file that cannot be read: the hint goes without)
        default, close = None, []
    return fork_not_found(vault.name, fork, ws_dir, default, close)
