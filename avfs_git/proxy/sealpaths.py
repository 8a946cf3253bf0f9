"""The fork's path policy over what the command's own git wrote (:func:`.seal.carry_back`):
a move of the fork's branch, and what the mount's index stages.

The rules hold in the kernel's path of the mount (docs/policy.md, "What each backend
guarantees"), and a checkpoint never records a protected change; but git in the sandbox
writes no file of the work tree to make a commit: ``git update-index --cacheinfo`` of a
blob it wrote, then ``git commit``, writes only the index, objects and the branch. Found in
the thirtieth round (NAME=attack21): a command in a fork whose policy held
``migrations/**`` read-only (its own ``echo > migrations/0001.sql`` refused, ``EROFS``)
changed that file on the fork's branch so, and the carry-back took the move (it checks
gitlinks and names, not the rules). Now the branch's move is refused when the commits'
net change (the tip before the run against the new one) touches a path a rule holds, as a
checkpoint would leave it out: any change to a ``read_only`` or ``hidden`` path, any but
an append to an ``append_only`` file. The index it leaves staging such a change (what the
person's next `git commit` in the mount would record) is put back to ``HEAD``'s there.
Cost: nothing without rules; the tree diff of the move (O(changes)) with them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..core.errors import AvfsError
from ..core.store.treediff import diff_trees
from ..core.types import MODE_TREE, Change

if TYPE_CHECKING:
    from ..core.store.gitstore import GitStore
    from ..core.vaults.vault import Vault
    from ..core.workspace.pathguard import Held, PathGuard

_SAYS = {"read_only": "read-only", "hidden": "hidden", "append_only": "append-only"}


def held_change(
    store: GitStore, guard: PathGuard, path: str, old: tuple[str, int] | None, new: tuple[str, int] | None
) -> Held | None:
    """The rule that a change of file ``path`` from ``old`` to ``new`` ((oid, mode) or
    None: absent) breaks, or None: no rule holds it, or it is an append to an
    ``append_only`` file (the same mode, the new bytes starting with the old)."""
    if old == new:
        return None
    held = guard.match(path)
    if held is None:
        return None
    if held.kind == "append_only" and new is not None and new[1] != MODE_TREE:
        if old is None:
            return None  # (a new file: appended to nothing)
        if old[1] == new[1]:
            try:
                if store.blob_data(new[0]).startswith(store.blob_data(old[0])):
                    return None
            except (AvfsError, OSError):  # (a blob the vault cannot read: no append)
                pass
    return held


def move_refusal(vault: Vault, fork: str, old: str | None, new: str, quarantine: str) -> str | None:
    """Why the command's commit ``new`` may be neither ``fork``'s branch (moved from
    ``old``, its value before the run) nor the mount's detached ``HEAD``: its objects (from
    ``quarantine`` into the vault, checked), its new commits (:mod:`.sealobjects`), or a
    path the fork's rules hold (:func:`branch_refusal`). Until the thirty-first round
    (attack22) a detached ``HEAD`` was set without the last: a command's `git checkout
    --detach` and commit of a read-only file's rewrite left it for the person's git."""
    from . import sealobjects

    why = sealobjects.import_objects(vault, quarantine, new)
    why = why or sealobjects.new_commits_refusal(vault, old, new)
    return why or branch_refusal(vault, fork, old, new)


def branch_refusal(vault: Vault, fork: str, old: str | None, new: str) -> str | None:
    """Why the command's move of ``fork``'s branch from ``old`` to ``new`` (its commits
    already in the vault, checked) must not be carried: it changes a path the fork's rules
    hold. None when it may."""
    guard = vault.path_guard(fork)
    if guard.empty:
        return None
    store = vault.store
    changes: list[Change] = []
    diff_trees(store, store.commit_tree(old) if old else None, store.commit_tree(new), "", changes)
    for c in changes:
        before = (c.old_oid, c.old_mode) if c.old_oid is not None and c.old_mode is not None else None
        after = (c.new_oid, c.new_mode) if c.new_oid is not None and c.new_mode is not None else None
        sides = (
            [(c.old_path, before, None), (c.path, None, after)] if c.old_path else [(c.path, before, after)]
        )
        for path, was, now in sides:
            if path is None:
                continue
            held = held_change(store, guard, path, was, now)
            if held is not None:
                return (
                    f"its commits change {path}, which is {_SAYS.get(held.kind, held.kind)} in this fork"
                    f" ({held.describe()}): the fork's policy holds a command's git commit as it"
                    " holds its writes (the work tree keeps what the command wrote)"
                )
    return None


def staged_held(vault: Vault, fork: str, staged: dict[str, tuple[str, str, str, str]]) -> list[str]:
    """The paths of ``staged`` (path -> HEAD's mode, HEAD's id, the index's mode, the
    index's id; mode ``000000``: absent) whose staged change a rule of ``fork`` holds."""
    guard = vault.path_guard(fork)
    if guard.empty:
        return []
    store = vault.store
    out = []
    for path, (old_mode, old_id, new_mode, new_id) in staged.items():
        was = (old_id, int(old_mode, 8)) if old_mode != "000000" else None
        now = (new_id, int(new_mode, 8)) if new_mode != "000000" else None
        if held_change(store, guard, path, was, now) is not None:
            out.append(path)
    return sorted(out)
