"""git's own state in a mounted fork's worktree git dir that the person's plain git runs
code from, and what a confined command may do with it.

The sandbox writes the fork's worktree git dir ``<vault>/worktrees/avfs-<fork>/`` (git
needs its index there), and git keeps in it, for that worktree alone, state that later
runs programs when the person resumes it in the mount, on the host:

- ``rebase-merge/``: ``git rebase --continue`` runs its todo list's ``exec`` lines;
- ``rebase-apply/``: ``git am --continue`` or ``--skip`` (``git rebase --continue`` of
  its apply backend) passes the options its ``apply-opt`` names to ``git apply`` for each
  patch left: ``--build-fake-ancestor=FILE`` writes an index file over any file the person
  may write;
- ``sequencer/``: ``git cherry-pick --continue`` (or ``--skip``) runs ``git
  merge-<strategy>`` for the strategy its ``opts`` names, for each pick left: a strategy
  ``d/x`` runs the work tree's own ``git-merge-d/x``;
- ``modules/``: a submodule's git dir (a linked worktree keeps them in its own git dir,
  not the vault's): ``git submodule update`` takes one it finds there for the
  submodule's, and runs its hooks and its config's programs (``core.fsmonitor``...).

One the person had before the run is shown read-only in the sandbox (:func:`kept`, bound
by :mod:`.seal`); one the command left is removed after it (:func:`remove_made`) and
reported in the envelope's ``refs_refused``. git's other state there (``MERGE_HEAD``,
``MERGE_MSG``, ``CHERRY_PICK_HEAD``, ``BISECT_*``) names commits, paths and messages,
and runs nothing (git 2.39's ``sequencer.c``, ``builtin/am.c``, ``bisect.c``).
"""

from __future__ import annotations

import os
import shutil
from typing import Any

__all__ = ["NAMES", "kept", "remove_made"]

# name -> why one the command left is removed
NAMES: dict[str, str] = {
    "rebase-merge": (
        "an interactive rebase the command left unfinished (git runs its todo list's exec lines"
        " on `git rebase --continue`): its state removed, HEAD left where it was"
    ),
    "rebase-apply": (
        "a `git am` or rebase the command left unfinished (git passes the options its apply-opt"
        " names to `git apply` on `git am --continue`, which may write any file of the person's):"
        " its state removed, HEAD left where it was"
    ),
    "sequencer": (
        "a cherry-pick or revert the command left unfinished (git runs the merge strategy its"
        " options name, a program of the work tree too, on `git cherry-pick --continue`): its"
        " state removed, HEAD left where it was"
    ),
    "modules": (
        "submodule git dirs the command made in the worktree's git dir (`git submodule update`"
        " would take them for the submodules' and run their hooks and config): removed"
    ),
}


def kept(git_dir: str) -> tuple[str, ...]:
    """The names of :data:`NAMES` that are directories (not links) in ``git_dir`` now:
    the person's, shown read-only to the command."""
    return tuple(
        name
        for name in NAMES
        if os.path.isdir(os.path.join(git_dir, name)) and not os.path.islink(os.path.join(git_dir, name))
    )


def remove_made(git_dir: str, before: tuple[str, ...]) -> list[dict[str, Any]]:
    """Remove each of :data:`NAMES` that is in ``git_dir`` after a run but was not among
    ``before`` (a link is unlinked, never followed); a ``refs_refused`` entry for each."""
    refused: list[dict[str, Any]] = []
    for name, why in NAMES.items():
        made = os.path.join(git_dir, name)
        if name in before or not os.path.lexists(made):
            continue
        if os.path.isdir(made) and not os.path.islink(made):
            shutil.rmtree(made, ignore_errors=True)
        else:
            os.unlink(made)
        refused.append({"ref": name, "old": None, "new": None, "reason": why})
    return refused
