"""A fork's path policy as the workspace enforces it: what it is given (a :class:`PathGuard`,
the policy's ``PathRules``: core never imports the policy package), the errors a refused
change raises, and the checks every mutation makes first (:class:`GuardChecks`, a base of
:class:`.wswrite.Mutations`).

The kinds (docs/policy.md "Path policies"): ``read_only`` paths are never changed by the
fork's users, ``hidden`` ones do not exist for them (nor can be made), ``append_only``
files only grow by appends. What a checkpoint records is filtered by the same rules
(:func:`protected_entry`), so a change that reached the overlay another way (a rule added
later, the overlay mount's kernel path) is kept in the workspace and reported, never
committed. Merges and restores move the fork's ref: nothing here sees them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from typing import Protocol

from ..errors import PathAppendOnlyError, PathHiddenError, PathProtectedError, PathReadOnlyError
from ..store.gitstore import GitStore
from ..types import MERGE_STATE_FILE, MODE_TREE, NodeKind
from .overlayentry import DELETED, OBJECT, Entry
from .wsview import View


class Held(Protocol):
    """The rule that holds a path (the policy's ``PathMatch``)."""

    @property
    def kind(self) -> str: ...
    @property
    def pattern(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def fork_pattern(self) -> str | None: ...
    def describe(self) -> str: ...


class PathGuard(Protocol):
    """A fork's path rules (the policy's ``PathRules``)."""

    @property
    def empty(self) -> bool: ...
    def has(self, kind: str) -> bool: ...
    def match(self, path: str, *, is_dir: bool = False) -> Held | None: ...


class GuardSource(Protocol):
    """Where a home's vaults get their forks' path rules (``policy.pathsource.POLICY_PATHS``)."""

    def rules(self, home_dir: str, vault_dir: str | None, fork: str | None) -> PathGuard: ...


class _NoGuard:
    empty = True

    def has(self, kind: str) -> bool:
        return False

    def match(self, path: str, *, is_dir: bool = False) -> Held | None:
        return None


NO_GUARD: PathGuard = _NoGuard()

_ERRORS: dict[str, type[PathProtectedError]] = {
    "read_only": PathReadOnlyError,
    "hidden": PathHiddenError,
    "append_only": PathAppendOnlyError,
}
_SAYS = {
    "read_only": "is read-only",
    "hidden": "is hidden",
    "append_only": "is append-only",
}


def refusal(held: Held, path: str, op: str) -> PathProtectedError:
    """The error for ``op`` on ``path``, which ``held`` holds: one code per kind, the rule
    in the message and ``details``."""
    return _ERRORS[held.kind](
        f"{path} {_SAYS[held.kind]} in this fork ({held.describe()}): {op} refused",
        hint="the vault's policy decides (`avfs policy check --path PATH` explains); "
        "a change from outside the fork (a merge, a restore) is not refused",
        details={
            "path": path,
            "kind": held.kind,
            "pattern": held.pattern,
            "source": held.source,
            "fork_pattern": held.fork_pattern,
            "op": op,
        },
    )


class Walkable(Protocol):
    """What the subtree checks read: a directory's paths below it."""

    def walk_paths(self, path: str) -> Iterator[tuple[str, bool]]: ...


class GuardChecks:
    """The path policy's checks, first thing in every mutation of a workspace."""

    @property
    def guard(self) -> PathGuard:
        """The fork's path rules (see the workspace)."""
        raise NotImplementedError

    def walk_paths(self, path: str) -> Iterator[tuple[str, bool]]:
        """(path, is a directory) of everything below directory ``path`` (see the workspace)."""
        raise NotImplementedError

    def guard_change(
        self,
        path: str,
        op: str,
        *,
        is_dir: bool = False,
        append: bool = False,
        guard: PathGuard | None = None,
    ) -> None:
        """Refuse ``op`` on ``path`` when a rule holds it: any rule, or (``append``: the
        change only adds bytes at the end of a file, or makes a new one) any but
        ``append_only``. ``guard``: the rules already fetched (else :attr:`guard`)."""
        guard = guard if guard is not None else self.guard
        if guard.empty:
            return
        held = guard.match(path, is_dir=is_dir)
        if held is not None and not (append and held.kind == "append_only"):
            raise refusal(held, path, op)

    def guard_tree(self, path: str, op: str, *, is_dir: bool, kinds: tuple[str, ...] | None = None) -> None:
        """Refuse ``op`` on ``path`` and everything below it (a directory removed, renamed or
        copied) when a rule (of ``kinds``; None: any) holds one of them."""
        guard = self.guard
        if guard.empty:
            return
        for p, d in [(path, is_dir), *(self.walk_paths(path) if is_dir else ())]:
            held = guard.match(p, is_dir=d)
            if held is not None and (kinds is None or held.kind in kinds):
                # a hidden path below is not named: the directory is
                raise refusal(held, path if held.kind == "hidden" else p, op)

    def guard_moved(self, src: str, dst: str, op: str, is_dir: bool) -> None:
        """Refuse a rename or copy of ``src`` (a directory: and what is below it) to
        ``dst`` when a rule holds a path it would make (any rule)."""
        guard = self.guard
        if guard.empty:
            return
        self.guard_change(dst, op, is_dir=is_dir)
        if is_dir:
            for p, d in self.walk_paths(src):
                self.guard_change(dst + p[len(src) :], op, is_dir=d)

    def hidden(self, path: str, *, is_dir: bool = False) -> bool:
        """Whether ``path`` is hidden from the fork's users."""
        guard = self.guard
        if guard.empty or not path:
            return False
        held = guard.match(path, is_dir=is_dir)
        return held is not None and held.kind == "hidden"

    def check_visible(
        self, path: str, op: str = "read", *, is_dir: bool = False, guard: PathGuard | None = None
    ) -> None:
        """Refuse to serve ``path`` when it is hidden (``path_hidden``)."""
        guard = guard if guard is not None else self.guard
        if guard.empty or not path:
            return
        held = guard.match(path, is_dir=is_dir)
        if held is not None and held.kind == "hidden":
            raise refusal(held, path, op)

    def visible_filter(self) -> Callable[[str, NodeKind], bool] | None:
        """A filter of (path, kind) for what a reader may list (None: everything is shown)."""
        guard = self.guard
        if guard.empty:
            return None

        def shown(path: str, kind: NodeKind) -> bool:
            held = guard.match(path, is_dir=kind is NodeKind.DIR)
            return held is None or held.kind != "hidden"

        return shown


# -- what a checkpoint never records ----------------------------------------------------------
class Capturing(Protocol):
    """What :func:`protected_entries` reads of a workspace (:class:`.workspace.Workspace`)."""

    store: GitStore
    view: View
    state_dir: str

    @property
    def guard(self) -> PathGuard: ...
    @property
    def base(self) -> str: ...
    @property
    def base_tree(self) -> str: ...


def _from_outside(ws: Capturing) -> str:
    """The tree the fork's own changes are measured from: the base's, or while a merge with
    written conflicts is open, the tree that merge showed (what it brought in came from
    outside the fork: a person's update of a read-only path merges, see docs/policy.md)."""
    try:
        with open(os.path.join(ws.state_dir, MERGE_STATE_FILE), encoding="utf-8") as fh:
            state = json.load(fh)
    except (OSError, ValueError):
        return ws.base_tree
    view = state.get("view_tree") if isinstance(state, dict) else None
    if isinstance(view, str) and state.get("ours") == ws.base:
        return view
    return ws.base_tree


def _below(store: GitStore, tree: str | None, prefix: str) -> Iterator[tuple[str, str, int]]:
    """(path, oid, mode) of everything below ``tree`` (named ``prefix``), depth first."""
    for name, (oid, mode) in store.tree_items(tree).items():
        p = f"{prefix}/{name}" if prefix else name
        yield p, oid, mode
        if mode == MODE_TREE:
            yield from _below(store, oid, p)


def protected_entries(ws: Capturing, entries: list[Entry]) -> dict[str, Held]:
    """The overlay entries a checkpoint must not record, each with the rule it breaks:
    a change to a path a rule holds (a directory removed, replaced or renamed away holds
    what was below it; one made or renamed in holds what is below it now), but for an
    ``append_only`` file whose new bytes keep its old ones as their start (same mode).
    Cost: O(entries) with no rule; the subtrees of deleted or replaced directories else."""
    guard = ws.guard
    if guard.empty or not entries:
        return {}
    store, base = ws.store, _from_outside(ws)
    out: dict[str, Held] = {}
    for e in entries:
        is_tree = e.kind == OBJECT and e.mode == MODE_TREE
        old = (base, MODE_TREE) if not e.path else store.tree_lookup(base, e.path)
        if e.kind == OBJECT and old == (e.oid, e.mode):
            continue  # as the base (or the open merge) shows it: not the fork's change
        held = guard.match(e.path, is_dir=is_tree)
        if held is not None and not (held.kind == "append_only" and _appended(ws, e, old)):
            out[e.path] = held
            continue
        # the subtrees: what was there (removed or replaced) and what is there now
        if old is not None and old[1] == MODE_TREE and (e.kind == DELETED or e.mode != MODE_TREE or is_tree):
            now = dict((p, (o, m)) for p, o, m in _below(store, e.oid, e.path)) if is_tree else {}
            for p, oid, mode in _below(store, old[0], e.path):
                if now.get(p) != (oid, mode) and (h := guard.match(p, is_dir=mode == MODE_TREE)) is not None:
                    out[e.path] = h
                    break
        if e.path not in out and is_tree:
            for p, oid, mode in _below(store, e.oid, e.path):
                was = store.tree_lookup(base, p)
                if was != (oid, mode) and (h := guard.match(p, is_dir=mode == MODE_TREE)) is not None:
                    out[e.path] = h
                    break
    return out


def _appended(ws: Capturing, e: Entry, old: tuple[str, int] | None) -> bool:
    """Whether entry ``e`` of an ``append_only`` path only appended to what the base held
    there (or made a new file)."""
    if e.kind == DELETED or e.mode == MODE_TREE:
        return False
    if old is None:
        return True
    if old[1] != e.mode or old[1] == MODE_TREE:
        return False
    node = ws.view.lookup(e.path)
    if node is None:
        return False
    try:
        return ws.view.read_node(node).startswith(ws.store.blob_data(old[0]))
    except FileNotFoundError:
        return False
