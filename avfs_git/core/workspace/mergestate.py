"""An open merge: the state a merge with written conflicts leaves in the target's workspace.

``merge.json`` in the workspace's state dir (:data:`.types.MERGE_STATE_FILE`) records the
merge (source, ours, theirs, base, message, the conflicted and written paths, git's
unmerged stages for a mount's index). While it is there, every checkpoint refuses
(:func:`refuse_if_merging`), ``avfs status`` shows it (:func:`open_merge`), a mount's git
index shows the merge as git's own (:mod:`.worktree` reads :func:`peek_state`), and a fork
of the workspace starts with it open too (:func:`inherit_state`).

:mod:`.merge` makes and ends merges; this module only reads and writes their state, and
takes the workspace as a :class:`Merging` (what it needs of it), so that the workspace,
the worktree and the vault can ask about an open merge without importing the merge
machinery (or libgit2).
"""

from __future__ import annotations

import json
import os
from typing import Any, Protocol

from ..errors import AvfsError, MergeInProgressError, from_oserror
from ..types import MERGE_STATE_FILE, VIEW_RESETS, Stat

STATE_FILE = MERGE_STATE_FILE


class _Meta(Protocol):
    def get_meta(self, key: str) -> str | None: ...


class HasState(Protocol):
    """What reading a workspace's merge state needs of it."""

    state_dir: str

    @property
    def overlay(self) -> _Meta: ...
    @property
    def base(self) -> str: ...
    def is_dirty(self) -> bool: ...


class _GitSide(Protocol):
    def merge_given_up(self, ws: Any, theirs: str) -> bool: ...


class _Vault(Protocol):
    @property
    def mounts(self) -> _GitSide: ...


class Merging(HasState, Protocol):
    """What the rest of this module needs of a workspace (:class:`.workspace.Workspace` is one)."""

    fork: str

    @property
    def vault(self) -> _Vault: ...

    def exists(self, path: str) -> bool: ...
    def stat(self, path: str, *, follow: bool = False) -> Stat: ...
    def read(self, path: str) -> bytes: ...
    def base_moved(self, *, view_changed: bool) -> None: ...


def state_path(ws: HasState) -> str:
    return os.path.join(ws.state_dir, STATE_FILE)


def peek_state(ws: HasState) -> dict[str, Any] | None:
    """:func:`merge_state` without dropping a state left behind (no writes). A merge is
    left behind once the fork's base is no longer its ``ours`` or the workspace's view was
    set wholesale since it was written (:data:`.types.VIEW_RESETS`: an undo of it, a
    restore), whatever the workspace shows: a merge whose conflicts were all resolved to
    the fork's own version (nothing against the base) stays open for ``--continue``, which
    makes the two-parent commit, as git's does. (A state written before the count was
    recorded ends when the workspace is clean, as it did: an overlay mount's clean
    compares content, so such a merge ended by itself there and stayed open elsewhere.)"""
    try:
        with open(state_path(ws), encoding="utf-8") as fh:
            data = dict(json.load(fh))
    except FileNotFoundError:
        return None
    if ws.base != data.get("ours"):
        return None
    if VIEW_RESETS in data:
        return data if ws.overlay.get_meta(VIEW_RESETS) == data[VIEW_RESETS] else None
    return data if ws.is_dirty() else None


def merge_state(ws: Merging) -> dict[str, Any] | None:
    """The merge in progress in this workspace (conflicts written), or None. A state left
    behind (:func:`peek_state`: an undone merge, a restore) is dropped, and so
    is one git in the fork's mount gave up (``git merge --abort`` or ``--quit``, ``git
    reset``: the ``MERGE_HEAD`` avfs wrote there is gone), whatever the workspace still
    shows: git keeps a change it did not merge, and so does the fork (realproj10)."""
    data = peek_state(ws)
    if data is not None and ws.vault.mounts.merge_given_up(ws, str(data["theirs"])):
        data = None
    if data is None and os.path.exists(state_path(ws)):
        write_state(ws, None)
    return data


def has_markers(data: bytes, size: int = 7) -> bool:
    """Whether ``data`` holds a conflict marker at the start of a line: ``size`` times ``<``
    (or ``>``, not at the start) and a blank, as the merge wrote it (its length the
    ``conflict-marker-size`` attribute's: git's own Documentation/git-merge.txt shows
    7-long markers as examples and has its own written 32 long)."""
    lt, gt = b"<" * size + b" ", b">" * size + b" "
    return data.startswith(lt) or b"\n" + lt in data or b"\n" + gt in data


def unresolved(ws: Merging, state: dict[str, Any]) -> list[str]:
    """The paths of an open merge that still need a hand: conflicted files that hold
    markers, and ``PATH~ours``/``PATH~theirs`` files that are still there (sorted)."""
    left = []
    sizes = state.get("marker_sizes") or {}
    for p in state["conflicts"]:
        if ws.exists(p) and ws.stat(p).kind.value != "dir":
            try:
                if has_markers(ws.read(p), sizes.get(p, 7)):
                    left.append(p)
            except AvfsError:
                pass
    left += [p for p in state["written"] if ("~ours" in p or "~theirs" in p) and ws.exists(p)]
    return sorted(set(left))


def open_merge(ws: Merging) -> dict[str, Any] | None:
    """What ``avfs status`` says of the merge in progress in this workspace, or None:
    ``source``, ``theirs`` (the commit being merged), ``ours``, ``base``, ``conflicts``
    (every conflicted path) and ``unresolved`` (see :func:`unresolved`)."""
    st = merge_state(ws)
    if st is None:
        return None
    return {
        "source": st["source"],
        "theirs": st["theirs"],
        "ours": st["ours"],
        "base": st["base"],
        "conflicts": list(st["conflicts"]),
        "unresolved": unresolved(ws, st),
    }


def refuse_if_merging(ws: Merging, action: str) -> None:
    """Raise :class:`MergeInProgressError` when a merge with written conflicts is open in
    this workspace: ``action`` (a checkpoint, an exec's commit...) would record what it
    shows, conflict markers included, as an ordinary one-parent commit and end the merge."""
    st = merge_state(ws)
    if st is None:
        return
    left = unresolved(ws, st)
    raise MergeInProgressError(
        f"fork {ws.fork} has a merge of {st['source']} in progress ({len(left)} path(s) unresolved);"
        f" {action} would record it as an ordinary commit: finish it with `avfs merge --continue`"
        " or give it up with `avfs merge --abort`",
        hint=(
            "`avfs status` lists the unresolved paths; resolve them, then `avfs merge --continue`"
            if left
            else "every path is resolved: `avfs merge --continue`"
        )
        + " (the two-parent merge commit), or `avfs merge --abort`",
        details={
            "fork": ws.fork,
            "source": st["source"],
            "theirs": st["theirs"],
            "unresolved": left,
        },
    )


def inherit_state(src: Merging, ws_dir: str) -> None:
    """A fork of a workspace with an open merge starts with that merge open too (it shows
    the same markers on the same base): its checkpoints refuse likewise, and
    ``merge --continue`` there makes the two-parent commit. Call before the new
    workspace is first used."""
    st = merge_state(src)
    if st is None:
        return
    if VIEW_RESETS in st:
        st[VIEW_RESETS] = None  # the new workspace's count: none set yet
    path = os.path.join(ws_dir, STATE_FILE)
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(ws_dir, exist_ok=True)
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(st, fh)
        os.replace(tmp, path)
    except OSError as exc:
        raise from_oserror(exc, path) from exc


def write_state(ws: Merging, data: dict[str, Any] | None) -> None:
    """Record the workspace's open merge (``data``), or remove it (None)."""
    path = state_path(ws)
    if data is None:
        try:
            os.unlink(path)
        except FileNotFoundError:
            return
    else:
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(data, fh)
        os.replace(tmp, path)
    # git in the fork's mount sees the merge as git's own (MERGE_HEAD, unmerged paths): the
    # mount's index follows as after a move of the base that keeps the view
    ws.base_moved(view_changed=False)
