"""The planted-repository rule (:mod:`..workspace.plantedrule`) at a merge's results that
:func:`.merge._commit_merge` does not make (docs/security.md, "Every writer of a fork's
tree, and where it is checked"; the thirty-fifth round, plant3): where the merge brings a
name of git's own state (:func:`.plantedrule.dirs_of` of what it changes), the result is
read there first, and one holding a repository that runs a program in the person's git
refuses the merge (``invalid_path``, ``details.found``), nothing moved or written:

- a merge of a remote's branch, a fast-forward too (:func:`refuse_remote`);
- the tree a merge shows with its conflicts written (:func:`refuse_shown`);
- the commit ``merge --continue`` makes of the resolved workspace (:func:`refuse_result`).

Loaded only by those (a fork's merge and fast-forward never load it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..workspace.plantedrule import dirs_of, refuse_merged

if TYPE_CHECKING:
    from ..vaults.vault import Vault


def refuse_result(vault: Vault, commit: str, changed: tuple[str, ...], source: str, target: str) -> None:
    """``commit``, the result of merging ``source`` into ``target``, which changes
    ``changed`` in ours', looked at where those paths name git's own state."""
    dirs = dirs_of(changed)
    if dirs:
        what = f"merge of {source} into {target}"
        refuse_merged(vault.store, commit, dirs, what, {"source": source, "target": target})


def refuse_remote(vault: Vault, theirs: str, changed: tuple[str, ...], source: str, target: str) -> None:
    """Theirs, a remote's branch (``avfs pull``, ``avfs merge origin/x``), looked at where
    it differs from ours' (``changed``) in a name of git's own state, before anything
    moves: a fork's commits came through avfs's writes and the carry-back, a remote's from
    anyone who can push there, the agent's own ``git push`` from a run with a network
    included (found in the thirty-fifth round, plant3: a commit the carry-back refused,
    pushed, then pulled by the person as a fast-forward, planted ``src/`` whole in their
    mount; a trivial merge takes such a subtree whole). A merge brings only what theirs
    changed, so these directories hold each repository it could bring whole; where it
    joins halves, its result is looked at as a fork's is (:func:`.merge._commit_merge`)."""
    refuse_result(vault, theirs, changed, source, target)


def refuse_shown(vault: Vault, tree: str, changed: tuple[str, ...], names: tuple[str, str]) -> None:
    """The ``tree`` a merge shows with its conflicts written (``changed``: what it changes
    in ours'), before anything is written: the clean part of the merge brings theirs'
    files as a merge commit would (found in the thirty-fifth round, plant3: the bare half
    in ours, theirs' ``src/config`` naming ``core.fsmonitor`` written into the person's
    mount beside a conflict elsewhere), and a conflicted hook holds theirs' lines. The rule
    reads the tree itself: a commit made of it (as ``merge --continue`` would) was left
    unreferenced, one a merge, a dangling commit in the person's ``git fsck`` (review38,
    plant5). ``names``: (source, target)."""
    dirs = dirs_of(changed)
    if dirs:
        source, target = names
        what = f"merge of {source} into {target}"
        refuse_merged(vault.store, tree, dirs, what, {"source": source, "target": target}, tree=True)
