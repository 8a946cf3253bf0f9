"""A workspace: the live state of one fork, as base commit + overlay + journal.

Reads of paths the overlay does not hold come lazily from the base tree's git objects;
writes go to the overlay (:mod:`.overlay`). Nothing is copied to fork, mount, or rename a
directory that was not modified: a renamed directory becomes one OBJECT entry naming its tree.

:class:`Workspace` is the public class; its parts live beside it, one job each (the EdenFS
split): the merged view that every reader uses (:mod:`.wsview`) and its reads
(:mod:`.wsreads`), status and ignored paths (:mod:`.wsstatus`), the mutations and their
quota checks (:mod:`.wswrite`), commit building shared by checkpoints and merges
(:mod:`.wscommit`), and which commit the fork is on (:mod:`.wsbase`). This module holds
them together and is where they reach the vault and a live mount (through the
:class:`MountSide` its vault was given: mount/worktree.py), which the parts never reach.

Path rules: every path is normalised by :func:`.names.norm_path`. Symlinks inside the
workspace are followed by file commands when their target stays inside it; a symlink that
points outside (absolute, or ``..`` past the root) is never followed: reading or writing
through it raises :class:`SymlinkEscapeError` (``stat``/``ls`` show the link itself).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from ..errors import AvfsError, CorruptStateError, want_path
from ..store import names, refs
from ..store.gitnames import NotRecorded
from ..store.gitstore import GitStore
from ..store.identity import Signatures
from ..store.packwriter import PackWriter
from ..types import MERGE_STATE_FILE, Change, NodeKind, Refused
from . import localcopy, wsbase, wscapture, wscommit, wsfold
from .ignore import IgnoreRules
from .livedir import LiveDir
from .mergestate import open_merge, refuse_if_merging
from .overlay import Overlay
from .overlayentry import EMPTY_TREE_ID, NO_IGNORED, Entry, Ignored, ignored_count
from .pathguard import PathGuard, protected_entries
from .since import Since
from .upperjournal import Pending
from .wschecks import VaultQuota
from .wsreads import ViewReads
from .wsstatus import Changes
from .wsview import Node, View, dirty_dirs, norm_read
from .wswrite import Mutations

__all__ = ["NO_IGNORED", "Ignored", "Node", "Workspace", "WsVault"]


class WsQuota(VaultQuota, Protocol):
    """The vault's quota as a workspace keeps it (:class:`.quota.QuotaTracker`): checks,
    and the overlay's totals published after each committed change."""

    def note(self, fork: str, nbytes: int, nfiles: int) -> None: ...
    def room(self) -> AbstractContextManager[None]: ...
    def full_error(self, exc: BaseException) -> AvfsError | None: ...


class MountSide(Protocol):
    """What a workspace asks of a live mount of its fork: the worktree git dir that makes the
    mount a linked worktree of the vault, and the mount's daemon. Given to it (through its
    vault, from the home) by whoever opened the home: avfs's is mount/side.py's
    ``MOUNT_SIDE``. The workspace never imports the mount side; each call is one function of
    mount/worktree.py, named there."""

    def overlay_mountpoint(self, ws: Workspace[Any]) -> str | None:
        """The mount point of the fork's live overlay mount, else None."""
        ...

    def files_dir(self, ws: Workspace[Any]) -> str:
        """The directory of the fork's mount's own files (its fsmonitor socket)."""
        ...

    def live_fuse_mount(self, ws: Workspace[Any]) -> bool:
        """Whether the fork has a live pure-FUSE mount."""
        ...

    def show_written(self, ws: Workspace[Any], seq: int) -> None:
        """A change journaled up to ``seq`` shows in a live pure-FUSE mount on return."""
        ...

    def sync_mounted(self, ws: Workspace[Any], *, view_changed: bool, index: bool = True) -> None:
        """After a move of the base: the mount's git index follows, the mount shows it."""
        ...

    def moved_here(self, ws: Workspace[Any], commit: str, *, off_branch: bool = False) -> bool:
        """Whether git in the fork's mount made the last move of its HEAD, to ``commit``."""
        ...

    def git_state(self, ws: Workspace[Any]) -> dict[str, str | None] | None:
        """Where git in the fork's mount left HEAD, or what of its own it left open."""
        ...

    def merge_given_up(self, ws: Workspace[Any], theirs: str) -> bool:
        """Whether git in the fork's mount ended avfs's open merge of ``theirs`` itself."""
        ...

    def staged_gitlinks(self, ws: Workspace[Any], paths: list[str]) -> dict[str, str]:
        """Of ``paths``, those git's index in the fork's mount holds as gitlinks (path -> commit)."""
        ...

    def staged(self, ws: Workspace[Any]) -> list[str] | None:
        """Where git's index in the fork's live mount differs from its base ([]: nowhere; None: unknown)."""
        ...

    def worktree_git_dir(self, ws: Workspace[Any]) -> str | None:
        """The worktree git dir of the fork's mount, where it exists, else the one its unmount kept."""
        ...

    def stamp_current(self, ws: Workspace[Any], *, held: bool = False) -> None:
        """git in the mount made the commit that became the base: its index is current."""
        ...

    def index_guard(self, ws: Workspace[Any], *, git: bool = False) -> AbstractContextManager[Any]:
        """Held around a move of the base and its mount's index (``git``: git's lock too)."""
        ...


class WsVault(Protocol):
    """What a workspace needs of its vault (:class:`.vault.Vault` is one): the vault makes
    its workspaces, so this module knows it by these names only. Its ``mounts`` is what
    reaches a live mount of a fork (:class:`MountSide`)."""

    name: str
    path: str
    state_dir: str
    store: GitStore
    mounts: MountSide

    @property
    def lock_wait_s(self) -> float: ...
    @property
    def quota(self) -> WsQuota: ...
    def author(self, branch: str | None = None) -> Signatures: ...
    def lock(self, *forks: str, wait_s: float | None = None) -> AbstractContextManager[None]: ...
    def path_guard(self, fork: str) -> PathGuard: ...


# The vault a workspace names back is a type parameter: ``Vault.workspace()`` returns a
# ``Workspace[Vault]``, so ``ws.vault`` is the concrete vault to a caller's type checker
# while this module never imports it. A bare ``Workspace`` is one of some ``WsVault``.
if TYPE_CHECKING:
    import typing_extensions  # its TypeVar takes a default (PEP 696; typing's own from 3.13)

    V_co = typing_extensions.TypeVar("V_co", bound=WsVault, covariant=True, default=WsVault)
else:
    V_co = TypeVar("V_co", covariant=True)  # typing's TypeVar takes no default before 3.13


class Workspace(Mutations, ViewReads, Generic[V_co]):
    """The workspace of fork ``fork`` of ``vault``. Get one with ``Vault.workspace()``."""

    vault: V_co
    unadopted: Refused | None = None  # the last sync_base's refusal of the tip (wsadopt.py)

    def __init__(self, vault: V_co, fork: str, state_dir: str, *, pinned: str | None = None) -> None:
        """``pinned``: a read-only view of that commit (``state_dir`` then only holds an
        empty overlay); see :meth:`Vault.revision_view`."""
        self.vault = vault
        self.fork = fork
        self.store: GitStore = vault.store
        self.overlay = Overlay(state_dir)
        # its database's writes wait for another process's lock as the vault's locks do
        self.overlay.lock_wait = lambda: vault.lock_wait_s
        self.view = View(self.store, self.overlay)
        self.view.branch = fork  # (its config as git in the fork's worktree reads it)
        self.changes = Changes(
            self.view,
            self.overlay,
            view_time=lambda: self.view_time,
            mount_git_dir=self.mount_git_dir,
            staged_gitlinks=self.staged_gitlinks,
            worktree_git_dir=self.worktree_git_dir,
        )
        self.since = Since(self)  # what changed since a mark (proxy exec's before and after)
        self.quota = vault.quota
        self.vault_name = vault.name
        self.state_dir = state_dir
        self.pinned = pinned
        self._lower_trees: dict[tuple[str, str, int], str] = {}  # see _lower_tree
        # what the last capture left out (a checkpoint, holding the fork lock, reports it)
        self.captured_ignored: Ignored = NO_IGNORED
        self.captured_converted: frozenset[str] = frozenset()  # and converted (wsattrs)
        self.captured_read: tuple[Pending, list[Entry]] | None = None  # and what it read
        self.kept_open: list[str] = []  # files the mount's writes left, open for writing (livedir.py)
        self.overlay.lower_mode = self._lower_mode
        self.overlay.lower_tree = self._lower_tree
        if pinned is not None:
            self.overlay.set_meta("base", pinned)
        else:
            # every committed change of the overlay: publish its totals for the vault's quota
            self.overlay.after_commit = self._note_totals
            self.overlay.room = self.quota.room
            self.overlay.full_error = self.quota.full_error
            self.overlay.after_change = self._show_in_mount
            # entries naming git objects by id: held for git's gc (a `git gc` in a mount)
            self.overlay.after_held = self._after_held
            self.sync_base()

    def _after_held(self, entries: list[Entry], moved: tuple[str | None, str] | None) -> None:
        from . import wsheld  # (imported only once an entry names an object: not on read paths)

        wsheld.after_txn(self.store, self.fork, self.overlay, entries, moved)

    def hold_base(self, *, mounted: bool) -> None:
        """A mount of the fork starting (``mounted``): its base held for git's gc there,
        and moved with it while the mount lives; ending: let go (core/workspace/wsheld.py)."""
        from . import wsheld

        if mounted:
            wsheld.hold_base(self.store, self.fork, lambda: self.overlay.get_meta("base"))
        else:
            wsheld.drop_base(self.store, self.fork)

    # -- base (see .wsbase) ---------------------------------------------------------------
    @property
    def ref(self) -> str:
        return refs.fork_ref(self.fork)

    @property
    def base(self) -> str:
        base = self.overlay.get_meta("base")
        if base is None:  # pragma: no cover - set by sync_base
            raise CorruptStateError(f"workspace of {self.fork} has no base commit")
        return base

    @property
    def base_tree(self) -> str:
        return self.view.base_tree

    def tip(self) -> str | None:
        return refs.read_ref_file(self.store.path, self.ref)

    def sync_base(self) -> bool:
        """Settle the base against the fork's ref (first use, crash recovery, moved refs);
        False when the fork's ref is gone. See :func:`.wsbase.sync_base`."""
        return wsbase.sync_base(self)

    def set_base(
        self,
        base: str,
        *,
        keep_view: bool,
        view_tree: str | None = None,
        keep_forms: bool = False,
        same_view: bool = False,
        changes: list[Change] | None = None,
        index_after: bool = False,
    ) -> None:
        """Point the workspace at a new base (the fork lock held): :func:`.wsbase.set_base`."""
        wsbase.set_base(self, base, keep_view=keep_view, view_tree=view_tree, keep_forms=keep_forms,
                        same_view=same_view, changes=changes, index_after=index_after)  # fmt: skip

    @property
    def stale(self) -> bool:
        """True when the fork's ref moved away from the base under a non-empty overlay."""
        tip = self.tip()
        return tip is not None and tip != self.base

    @property
    def view_time(self) -> float:
        """The time unchanged files show as their mtime: when the workspace last changed
        what it shows wholesale (a restore, an undo, a pull of pushed commits). A checkpoint
        leaves it alone, and the files it commits keep their times (``Overlay.kept_times``);
        a restore moves it forward (make sees restored files as new; those it rewrites show its time);
        a merge leaves it, and the files it writes show its time (``set_base(same_view=True)``)."""
        raw = self.overlay.get_meta("view_time")
        return wsbase.first_view_time(self) if raw is None else float(raw)

    # -- what the parts need of the fork: its vault, lock and mounts ------------------------
    def author(self) -> Signatures:
        """Author and committer of the fork's next commit (the vault's)."""
        return self.vault.author(self.fork)  # (the fork's config: an includeIf onbranch)

    def fork_lock(self, *, wait_s: float | None = None) -> AbstractContextManager[None]:
        """The fork's lock (:meth:`.vault.Vault.lock`)."""
        return self.vault.lock(self.fork, wait_s=wait_s)

    def write_lock(self) -> AbstractContextManager[None]:
        """The lock of the fork's optimistic writes (``expect``): held from the check to
        the write by every avfs writer that asks (CLI, API, MCP, any process), so of two
        writes expecting the same blob exactly one goes ahead. Not the fork lock: a
        checkpoint holding that does not stall them. A write without ``expect``, or one
        made through a mount's files, takes no lock: it is not coordinated."""
        from ..store.locks import file_lock, write_lock_path

        path = write_lock_path(self.vault.state_dir, self.fork)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return file_lock(path, what=f"the writes of fork {self.fork}")

    def stamp_index(self, *, held: bool = False) -> None:
        """git made the base: its index in the mount is current (mount/live.py ``stamp_current``)."""
        self.vault.mounts.stamp_current(self, held=held)

    def index_guard(self, *, git: bool = False) -> AbstractContextManager[Any]:
        """The live mount's index guard, held: mount/live.py ``index_guard`` (what it gives)."""
        return self.vault.mounts.index_guard(self, git=git)

    def staged_gitlinks(self, paths: list[str]) -> dict[str, str]:
        """Of ``paths``, the gitlinks git's index in the live mount holds ({}: pinned, unmounted)."""
        if self.pinned is not None:
            return {}
        return self.vault.mounts.staged_gitlinks(self, paths)

    def worktree_git_dir(self) -> str | None:
        """The fork's mount's worktree git dir, or the one its unmount kept (its ``config.worktree``: ``core.fileMode``)."""
        return None if self.pinned is not None else self.vault.mounts.worktree_git_dir(self)

    def moved_here(self, commit: str, *, off_branch: bool = False) -> bool:
        """Whether git in the live mount moved HEAD to ``commit``: mount/live.py ``moved_here``."""
        return self.vault.mounts.moved_here(self, commit, off_branch=off_branch)

    def git_state(self) -> dict[str, str | None] | None:
        """Where git in the live mount left HEAD, or what it left open: mount/live.py ``git_state``."""
        if self.pinned is not None:
            return None
        return self.vault.mounts.git_state(self)

    def refuse_if_git_busy(self, action: str, would: str = "record it on") -> None:
        """Raise :class:`.errors.GitInProgressError` when git in the fork's mount is off its
        branch or mid-operation: ``action`` ``would`` (record git's half-done work on) the fork."""
        st = self.git_state()
        if st is None:
            return
        from ..errors import GitInProgressError

        branch, back = refs.fork_ref(self.fork), refs.switch_back(self.vault.path, self.fork)
        if (op := st["in_progress"]) is not None:
            what = f"a git {op} is in progress in the mount"
            hint = GitInProgressError.ENDS.get(op) or (
                f"finish it with `git {op} --continue` (or give it up with"
                f" `git {op} --abort`), then {action.split(' ', 1)[-1]} again"
            )
        elif st["detached"] is not None:
            what = f"git's HEAD in the mount is detached at {st['detached'][:12]}, not on fork {self.fork}"
            hint = f"`{back}` in the mount goes back to the fork (`git switch -c NAME` keeps the commits)"
        else:
            what = f"git's HEAD in the mount is on {st['head']}, not on the fork's branch {branch}"
            hint = f"`{back}` in the mount goes back to the fork; mount the other fork to work on it"
        raise GitInProgressError(
            f"{what}: {action} would {would} fork {self.fork}",
            hint=hint,
            details={"fork": self.fork, **st},
        )

    def live_mount(self) -> LiveDir | None:
        """:meth:`live_dir` when the fork has a live overlay mount, else None (an upper
        layer left behind is not folded: for callers in the middle of a commit)."""
        if self.pinned is not None or not self.overlay.with_upper:
            return None  # the mount's own lower view follows the base; it never writes
        if (mp := self.vault.mounts.overlay_mountpoint(self)) is None:
            return None
        up = self.overlay.upper_dir
        return LiveDir(mp, self.store, self.vault.quota.room, self.kept_open, up, self.fork)

    def live_dir(self) -> LiveDir | None:
        """The mount point of this fork's live overlay mount, as a directory that changes go
        through (None when there is none: then an upper layer a mount left behind is first
        folded into the overlay's entries, so the change lands on one layer)."""
        live = self.live_mount()
        if live is None and self.overlay.with_upper and self.overlay.upper_active():
            self.fold_upper()
        return live

    def live_dir_for_move(self, avoid: frozenset[str] = frozenset()) -> LiveDir | None:
        """:meth:`live_dir` for a move of the base (a merge, a restore, an undo): an upper
        layer a mount left behind is folded but for its new top directories git ignores
        (:func:`.wsfold.kept_tops`; not those named in ``avoid``, where the new view may have
        something), which stay where they are, shown over the new base as a live mount's
        upper layer shows them (:func:`.wsbase.set_base`). O(what else the layer holds):
        the first merge after an ``npm install`` in a mount folded all of ``node_modules``."""
        return self.live_dir_and_kept_tops(avoid)[0]

    def live_dir_and_kept_tops(
        self, avoid: frozenset[str] = frozenset()
    ) -> tuple[LiveDir | None, frozenset[str] | None]:
        """(:meth:`live_dir_for_move`, the new top directories it left in the upper layer:
        None when it asked nothing, no upper layer held anything). With nothing in
        ``avoid``, those are what :meth:`upper_kept_tops` answers after it: a move of the
        base takes them from here rather than asking the ignore rules again (a merge asked
        three times, ~12 % of a served fast-forward's CPU on minimist; h-merge4)."""
        live = self.live_mount()
        keep: frozenset[str] | None = None
        if live is None and self.overlay.with_upper and self.overlay.upper_active():
            keep = self.upper_kept_tops() - avoid
            if not keep or not self.overlay.upper_holds_only(keep):
                self.fold_upper(keep)
        return live, keep

    def upper_kept_tops(self) -> frozenset[str]:
        """:func:`.wsfold.kept_tops` of this fork's upper layer (its ignore rules asked)."""
        return wsfold.kept_tops(self.overlay, lambda tops: self.changes.prune_ignored(tops, []))

    def mount_git_dir(self) -> str | None:
        """The own directory of this fork's mount (where its daemon answers for the upper
        layer's journal, over a socket: core/vaults/registry.py ``mount_dir``), when an overlay
        mount's upper layer holds anything."""
        if self.pinned is not None or not self.overlay.upper_active():
            return None
        return self.vault.mounts.files_dir(self)

    def mounted_without_upper(self) -> bool:
        """Whether a pure-FUSE mount of the fork is live (its kernel caches directories)."""
        return self.vault.mounts.live_fuse_mount(self)

    def base_moved(self, *, view_changed: bool, index: bool = True) -> None:
        """After a move of the base by this process: a live mount's git index follows, its view
        too (mount/live.py ``sync_mounted``; ``index`` False: the caller writes the index)."""
        self.vault.mounts.sync_mounted(self, view_changed=view_changed, index=index)

    def _show_in_mount(self, seq: int) -> None:
        """A change journaled up to ``seq`` shows in a live pure-FUSE mount on return."""
        self.vault.mounts.show_written(self, seq)

    def _note_totals(self, nbytes: int, nfiles: int) -> None:
        self.vault.quota.note(self.fork, nbytes, nfiles)

    # -- the upper layer of an overlay mount (core/workspace/upper.py, core/workspace/livedir.py) --------------
    def _lower_mode(self, path: str) -> int | None:
        node = self.view.lookup(path)
        return None if node is None else node.mode

    def _lower_tree(self, path: str) -> str | None:
        """The git tree the view without the upper layer shows at ``path`` (the lower layer
        of an overlay mount: what a renamed directory's redirect shows): the base's tree
        with the overlay's entries below ``path`` applied (entries made before the mount),
        written as objects when there are such entries (kept per base and entries)."""
        node = self.view.lookup(path)
        if node is None or not node.is_dir:
            return None
        below = self.overlay.under(path)
        if not below:
            return node.oid
        key = (path, self.base, self.overlay.last_seq())
        hit = self._lower_trees.get(key)
        if hit is not None:
            return hit
        by_parent: dict[str, list[Entry]] = {}
        for e in below:
            by_parent.setdefault(names.parent_of(e.path), []).append(e)
        dirty = {a for a in dirty_dirs(below) if a == path or a.startswith(path + "/")}
        sub_dirty: dict[str, list[str]] = {}
        for d in dirty:
            if d != path:
                sub_dirty.setdefault(names.parent_of(d), []).append(names.basename(d))
        pw = self.store.pack_writer()
        try:
            tree = wscapture.build(self, path, node.oid, by_parent, dirty, sub_dirty, pw) or EMPTY_TREE_ID
            pw.finish()
        except BaseException:
            pw.abort()
            raise
        if len(self._lower_trees) > 64:
            self._lower_trees.clear()
        self._lower_trees[key] = tree
        return tree

    # -- the path policy (see .pathguard) ---------------------------------------------------
    @property
    def guard(self) -> PathGuard:
        """The fork's path rules (the vault's and home's policy files, ``[paths]`` and its
        ``[forks."PAT".paths]``), asked fresh each time: an edited policy holds at once."""
        return self.vault.path_guard(self.fork)

    def check_shown(self, path: str, op: str = "read", *, follow: bool = True) -> None:
        """Refuse (``path_hidden``) to serve ``path`` when it, or what it resolves to
        (symlinks followed with ``follow``), is hidden from the fork's users: what the file
        commands, MCP and the API's readers ask before they read."""
        guard = self.guard
        if guard.empty:
            return
        p = norm_read(path)
        self.check_visible(p, op, guard=guard)
        node = self.view.lookup(p)  # no symlink on the way (the common case): p itself
        if node is None or (follow and node.is_link):
            node = self.view.resolve_path(p, follow)
        if node is not None and (node.path != p or node.is_dir):
            self.check_visible(node.path, op, is_dir=node.is_dir, guard=guard)

    def walk_paths(self, path: str) -> Iterator[tuple[str, bool]]:
        for de in self.view.walk(path):
            yield de.path, de.kind is NodeKind.DIR

    # -- status (see .wsstatus) -----------------------------------------------------------
    def is_dirty(self) -> bool:
        """True when there are uncheckpointed changes: empty new directories and paths git
        ignores (a venv, caches) don't count. Content is not compared: a file rewritten with
        the same bytes counts."""
        return self.changes.is_dirty()

    def status(self) -> list[Change]:
        """What changed in the workspace since its base commit (O(changes)); paths git
        ignores are left out (see :meth:`status_ignored`)."""
        return self.changes.status()

    def status_ignored(self) -> tuple[list[Change], Ignored]:
        """(what changed since the base commit, the new paths git ignores), O(changes)."""
        return self.changes.status_ignored()

    def ignored(self) -> Ignored:
        """The new paths git ignores (without comparing contents: cheaper than a status)."""
        return self.changes.ignored()

    def not_recorded(self, entries: list[Entry] | None = None) -> list[NotRecorded]:
        """What the workspace shows that a checkpoint leaves out (see
        :meth:`.wsstatus.Changes.not_recorded`), and the changes to paths the fork's path
        policy protects (kind ``path_read_only``, ``path_hidden``, ``path_append_only``)."""
        left = self.changes.not_recorded(entries)
        if not self.guard.empty:
            with self.overlay.pruning(self.changes.prune_ignored):
                entries = self.changes.entries()
            held = protected_entries(self, entries)
            left += [
                NotRecorded(p, f"path_{h.kind}", f"the fork's path policy protects it ({h.describe()})")
                for p, h in held.items()
            ]
            left.sort(key=lambda n: n.path)
        return left

    @property
    def ignore_rules(self) -> IgnoreRules:
        return self.changes.ignore_rules

    def status_report(
        self,
        changes: list[Change] | None = None,
        ignored: Ignored | None = None,
        *,
        list_ignored: bool = False,
    ) -> dict[str, object]:
        """What `avfs status` reports (its JSON document but the vault and fork): the base,
        the fork's tip (``stale`` when another hand moved it), the merge in progress
        (:func:`.mergestate.open_merge`, or None), the changes, and how many paths git ignores
        (``ignored``; listed in ``ignored_paths`` with ``list_ignored``), and what no
        checkpoint records (``not_recorded``: a tree past ``PATH_MAX`` a command made, a fifo,
        a name git refuses), and ``unadopted`` (:mod:`.wsadopt`'s refusal of the tip, for
        paths both changed). ``changes``, ``ignored``: :meth:`status_ignored` taken."""
        merging = open_merge(self) if os.path.exists(os.path.join(self.state_dir, MERGE_STATE_FILE)) else None
        if changes is None or ignored is None:
            changes, ignored = self.changes.status_ignored(files=False)
        read, self.changes.last_read = self.changes.last_read, None  # (what that status read)
        tip = self.tip()
        out: dict[str, object] = {
            "base": self.base,
            "head": tip,
            "stale": tip != self.base,
            "merge": merging,  # a merge with written conflicts, still open
            "git": self.git_state(),  # git's HEAD off the fork's branch, or its own work open
            "clean": not changes,
            "changes": [
                {
                    k: v
                    for k, v in (("path", c.path), ("status", c.status), ("old_path", c.old_path))
                    if v is not None
                }
                for c in changes
            ],
            "ignored": ignored_count(ignored),
            "not_recorded": [dataclasses.asdict(n) for n in self.not_recorded(read)],
        }
        if list_ignored:
            out["ignored_paths"] = ignored.listed(self.view.lookup)
        if (no := self.unadopted) is not None and no.head == tip != self.base:
            out["unadopted"] = {"head": no.head, "conflicts": list(no.conflicts)}
        return out

    # -- checkpoint (see .wscommit) -------------------------------------------------------
    def capture(
        self, pack: PackWriter | None = None, *, include_ignored: bool = False
    ) -> tuple[str, list[Entry]]:
        """Blobs and trees for the workspace: (root tree id, captured entries); see :func:`.wscapture.capture`."""
        return wscapture.capture(self, pack, include_ignored=include_ignored)

    def commit_overlay(
        self,
        message: str,
        *,
        allow_empty: bool = False,
        rebase: bool = True,
        on: str | None = None,
        only: Callable[[str], bool] | None = None,
        exec_of: str | None = None,
    ) -> tuple[str | None, list[Entry]]:
        """Commit the overlay on the base and move the ref by CAS; returns (commit, captured).
        See :func:`.wscommit.commit_overlay`."""
        # an open merge's view holds conflict markers: only `merge --continue` commits it
        # (two parents), never a checkpoint, an exec's commit or any automatic one
        refuse_if_merging(self, "a checkpoint")
        self.refuse_if_git_busy("a checkpoint")
        from ..errors import RefMovedError

        for tries_left in range(2, -1, -1):
            # a ref git in the mount moved is the base, whatever it did (the view stays):
            # never rebased, never re-applied; git may move it again until the ref is ours
            wsbase.follow_git(self, wait_s=None)
            try:
                return wscommit.commit_overlay(
                    self, message, allow_empty=allow_empty, rebase=rebase, on=on, only=only, exec_of=exec_of
                )
            except RefMovedError:
                tip = self.tip()
                # a record to land on (``on``) was made on the old tip: its caller keeps it
                if on is not None or not tries_left or tip is None or not self.moved_here(tip):
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def materialize_to(
        self, dest: str | os.PathLike[str], progress: Callable[[int], None] | None = None
    ) -> int:
        """Write the workspace's files into local directory ``dest``; returns the file count.

        Raises:
            PathNotFoundError: ``dest`` does not exist; NotDirectoryError: it is not a
                directory (nothing written in either case).
        """
        return localcopy.materialize(self, want_path(dest, "dest"), progress)
