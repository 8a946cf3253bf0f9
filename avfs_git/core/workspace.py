"""A workspace: the live state of one fork, as base commit + overlay + journal.

Reads of paths the overlay does not hold come lazily from the base tree's git objects;
writes go to the overlay (:mod:`.overlay`). Nothing is copied to fork, mount, or rename a
directory that was not modified: a renamed directory becomes one OBJECT entry naming its tree.

Path rules: every path is normalised by :func:`.names.norm_path`. Symlinks inside the
workspace are followed by file commands when their target stays inside it; a symlink that
points outside (absolute, or ``..`` past the root) is never followed: reading or writing
through it raises :class:`SymlinkEscapeError` (``stat``/``ls`` show the link itself).
"""

from __future__ import annotations

import dataclasses
import os
import posixpath
import re
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import IO, TYPE_CHECKING, Any, Protocol

from . import gitnames, names, refs, upper
from .errors import (
    AlreadyExistsError,
    CorruptStateError,
    DirectoryNotEmptyError,
    InvalidPathError,
    IsDirectoryError,
    NotDirectoryError,
    PathNotFoundError,
    QuotaExceededError,
    RefMovedError,
    SymlinkEscapeError,
    SymlinkLoopError,
    from_oserror,
)
from .gitnames import NotRecorded, refusal
from .gitstore import EMPTY_TREE, GitStore
from .ignore import GITIGNORE, IgnoreRules
from .livedir import LiveDir
from .overlay import DELETED, EMPTY_TREE_ID, FILE, OBJECT, SPECIAL_ORIGIN, UPPER_FILE, Entry, Overlay
from .packwriter import OBJ_TREE, PackWriter, file_blob_id, tree_bytes
from .treediff import diff_entry, diff_trees, pair_renames
from .types import (
    MERGE_STATE_FILE,
    MODE_BLOB,
    MODE_EXEC,
    MODE_LINK,
    MODE_TREE,
    Change,
    ChangeStatus,
    DirEntry,
    NodeKind,
    Stat,
    kind_of_mode,
)

if TYPE_CHECKING:
    from .vault import Vault

MAX_SYMLINK_HOPS = 40
_CHUNK = 1 << 20
# A path already in normal form whose names are plain ASCII not starting with '.' (so no
# '.', '..' or '.git'), too short for any name to be too long: what norm_path would return
# it as, without its checks of every character (a fifth of a stat's time).
_PLAIN_PATH = re.compile(r"[\w+,=@~-][\w+,=@~.-]*(?:/[\w+,=@~-][\w+,=@~.-]*)*", re.ASCII)


def _norm(path: str) -> str:
    """:func:`.names.norm_path`, with a fast way for paths already plain and normal."""
    if type(path) is str and len(path) <= names.MAX_COMPONENT_BYTES and _PLAIN_PATH.fullmatch(path):
        return path
    return names.norm_path(path)


class Readable(Protocol):
    """What content streams offer: a file object, or a blob streamed out of git."""

    def read(self, n: int = -1, /) -> bytes: ...


class Node:
    """One path as the workspace shows it (internal)."""

    __slots__ = ("entry", "mode", "oid", "path")

    def __init__(self, path: str, mode: int, oid: str | None, entry: Entry | None) -> None:
        self.path = path
        self.mode = mode
        self.oid = oid  # git object id: the blob, or the underlying tree of a directory
        self.entry = entry  # the overlay entry at this very path, if any

    @property
    def is_dir(self) -> bool:
        return self.mode == MODE_TREE

    @property
    def is_link(self) -> bool:
        return self.mode == MODE_LINK

    @property
    def materialized(self) -> bool:
        return self.entry is not None and self.entry.kind == FILE


@dataclasses.dataclass(frozen=True, slots=True)
class Ignored:
    """The new paths of a workspace that git ignores.

    ``files``: every ignored file and symlink (what is counted); ``tops``: the fewest paths
    that hold them all (a new directory whose new paths are all ignored stands for
    everything below it).
    """

    files: tuple[str, ...] = ()
    tops: frozenset[str] = frozenset()

    def covers(self, path: str) -> bool:
        """True when ``path`` is an ignored path or lies below an ignored directory."""
        return bool(self.tops) and _covered(path, self.tops)


NO_IGNORED = Ignored()


class Workspace:
    """The workspace of fork ``fork`` of ``vault``. Get one with ``Vault.workspace()``."""

    def __init__(self, vault: Vault, fork: str, state_dir: str, *, pinned: str | None = None) -> None:
        """``pinned``: a read-only view of that commit (``state_dir`` then only holds an
        empty overlay); see :meth:`Vault.revision_view`."""
        self.vault = vault
        self.fork = fork
        self.store: GitStore = vault.store
        self.overlay = Overlay(state_dir)
        self.state_dir = state_dir
        self.pinned = pinned
        self._base_tree_cache: tuple[str, str] | None = None
        self._lower_trees: dict[tuple[str, str, int], str] = {}  # see _lower_tree
        self._ignore_rules: IgnoreRules | None = None
        # what the last capture left out (a checkpoint, holding the fork lock, reports it)
        self.captured_ignored: Ignored = NO_IGNORED
        self.overlay.lower_is_dir = self._lower_is_dir
        self.overlay.lower_tree = self._lower_tree
        if pinned is not None:
            self.overlay.set_meta("base", pinned)
        else:
            # every committed change of the overlay: publish its totals for the vault's quota
            self.overlay.after_commit = self._note_totals
            self.overlay.after_change = self._show_in_mount
            self.sync_base()

    # -- base -----------------------------------------------------------------------------
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
        base = self.base
        cached = self._base_tree_cache
        if cached is not None and cached[0] == base:
            return cached[1]
        tree = self.store.commit_tree(base)
        self._base_tree_cache = (base, tree)
        return tree

    def tip(self) -> str | None:
        return refs.read_ref_file(self.store.path, self.ref)

    def sync_base(self) -> bool:
        """Settle the base against the fork's ref (first use, crash recovery, moved refs).

        - a checkpoint interrupted after its ref moved is finished (its entries retired);
        - with an empty overlay the base simply follows the ref (a push or `git commit`
          into the vault is picked up: there is nothing to lose);
        - with a non-empty overlay and a moved ref: when the new commits only recorded
          what the workspace already shows (``git commit`` inside the mount), the new tip
          becomes the base and the view is kept; otherwise the base stays, and the next
          checkpoint stops with :class:`RefMovedError`.

        Returns False when the fork's ref is gone (the fork was deleted), else True.
        """
        if self.pinned is not None:
            return True
        ov = self.overlay
        meta = ov.get_metas("base", "pending")  # one read: every vault.workspace() comes here
        base, pending = meta.get("base"), meta.get("pending")
        tip = self.tip()  # read after base: a tip older than the base is never adopted
        if pending is None and base is not None and base == tip:
            return True  # the common case: nothing to settle, no write transaction
        if tip is None:
            if base is None:
                raise CorruptStateError(f"fork {self.fork} has no commit")
            return False
        if pending is not None:
            self._recover_pending()
        if base is not None and ov.has_changes() and self.is_dirty():
            # the ref moved under uncheckpointed changes: adopt it when that is safe, and
            # never while a checkpoint of this fork runs (it holds the fork lock, and its
            # ref move is not finished until it retired what it captured)
            from .errors import BusyError

            try:
                with self.vault.lock(self.fork, wait_s=0):
                    with ov.txn() as db:
                        base = ov.get_meta("base")
                        tip = self.tip()
                        adopted = (
                            ov.get_meta("pending") is None
                            and base is not None
                            and tip is not None
                            and base != tip
                            and self._adopt(db, base, tip)
                        )
                    if adopted:
                        # once the move is committed: a stamp naming a base other processes
                        # cannot see yet makes the mount's daemon, reading the old base,
                        # rewrite the index git just committed for that old base
                        from . import worktree

                        worktree.stamp_current(self)  # git's index is right: it made the commit
            except BusyError:
                pass
            return True
        from .errors import BusyError as _Busy

        if base is None:
            self._follow_ref()  # first use: nothing to lose, nothing to race with
            return True
        try:
            # under the fork lock, never waiting: an operation that holds it (an undo moving
            # the ref back before it puts the view back) finishes the job itself
            with self.vault.lock(self.fork, wait_s=0):
                self._follow_ref()
        except _Busy:
            pass
        return True

    def _follow_ref(self) -> None:
        ov = self.overlay
        if self._follow_ref_live():
            return
        with ov.txn() as db:
            base = ov.get_meta("base")
            tip = self.tip()
            if tip is None or base == tip:
                return
            if base is None:
                seed = self._read_seed()
                if seed is not None:
                    # a fork of a workspace with changes starts with them (vault.create_fork)
                    ov.set_meta("base", seed[0])
                    ov.put(db, Entry("", OBJECT, MODE_TREE, seed[1]), "fork")
                else:
                    ov.set_meta("base", tip)
            elif not self.is_dirty():
                # nothing but empty directories and paths git ignores: follow the ref; where
                # the new base has something at such a path, the base's version wins
                tree = self.store.commit_tree(tip)
                for e in ov.all():
                    if self.store.tree_lookup(tree, e.path) is not None:
                        ov.remove(db, e.path, "follow")
                ov.set_meta("base", tip)
                self._base_tree_cache = None
                self._keep_parents(db, [e.path for e in ov.all()])
                ov.set_meta("view_time", repr(float(_settled_now())))

    def _follow_ref_live(self) -> bool:
        """:meth:`_follow_ref` for a fork with a live overlay mount (the fork lock held):
        the kernel caches the mount's lower layer for good, so a base that simply moved
        under it would show the old bytes, or the new ones cut to the old size. The new
        commit is written through the mount instead, as a restore is (an open file keeps
        what it had), and then becomes the base. True when it did (or nothing was to do)."""
        if self._live_mount() is None:
            return False
        base, tip = self.overlay.get_meta("base"), self.tip()
        if base is None or tip is None or base == tip:
            return base is not None
        if self.is_dirty():
            return True  # uncheckpointed changes: the base stays (sync_base's rule)
        self.set_base(tip, keep_view=False)
        return True

    def _adopt(self, db: Any, base: str, tip: str) -> bool:
        """Take ``tip`` as the base, keeping the view, when its commits (descending from the
        base) changed nothing the workspace does not already show; True when it did (the
        caller then stamps the mount's index, the transaction committed)."""
        import pygit2

        repo = self.store.repo
        try:
            if not repo.descendant_of(pygit2.Oid(hex=tip), pygit2.Oid(hex=base)):
                return False
        except (KeyError, ValueError, pygit2.GitError):
            return False
        base_tree = self.store.commit_tree(base)
        tip_tree = self.store.commit_tree(tip)
        changed: list[Change] = []
        diff_trees(self.store, base_tree, tip_tree, "", changed)
        for c in changed:
            node = self._lookup(c.path)
            if c.new_oid is None:
                if node is not None and not node.is_dir:
                    return False
            elif (
                node is None
                or node.is_dir
                or node.mode != c.new_mode
                or self._ws_entry_oid(node) != c.new_oid
            ):
                return False
        if self.overlay.get("") is None and base_tree != tip_tree:
            self.overlay.put(db, Entry("", OBJECT, MODE_TREE, base_tree), "adopt")
        self.overlay.set_meta("base", tip)
        self._base_tree_cache = None
        if not self.status():
            # everything uncheckpointed is now in the tip: the overlay has nothing left but
            # what git does not hold (paths it ignores, empty directories)
            entries = self.overlay.all()
            self.retire_onto(db, self._retirable(entries, tip_tree), tip, seen=entries)
        return True

    def _read_seed(self) -> tuple[str, str] | None:
        path = os.path.join(self.state_dir, "seed")
        try:
            with open(path, encoding="ascii") as fh:
                base, tree = fh.read().split()
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise CorruptStateError(f"unreadable fork seed {path}: {exc}") from exc
        return base, tree

    def _recover_pending(self) -> None:
        """Finish or drop a checkpoint whose process died between its steps.

        Only when the fork lock is free: a live checkpoint holds it, and its pending
        record is not ours to settle.
        """
        from .errors import BusyError

        ov = self.overlay
        try:
            with self.vault.lock(self.fork, wait_s=0), ov.txn():
                pending = ov.get_meta("pending")
                if pending is None:
                    return
                _old, new = pending.split(" ", 1)
                if self.tip() == new:
                    # the ref moved: the captured entries are in the commit; entries written
                    # meanwhile have a newer seq than recorded and stay.
                    upto = int(ov.get_meta("pending_seq") or "0")
                    tree = self.store.commit_tree(new)
                    ov.retire(ov.db, self._retirable([e for e in ov.all() if e.seq <= upto], tree))
                    ov.set_meta("base", new)
                ov.set_meta("pending", None)
                ov.set_meta("pending_seq", None)
        except BusyError:
            return

    # -- the upper layer of an overlay mount (core/upper.py, core/livedir.py) --------------
    def _lower_is_dir(self, path: str) -> bool:
        node = self._lookup(path)
        return node is not None and node.is_dir

    def _lower_tree(self, path: str) -> str | None:
        """The git tree the view without the upper layer shows at ``path`` (the lower layer
        of an overlay mount: what a renamed directory's redirect shows): the base's tree
        with the overlay's entries below ``path`` applied (entries made before the mount),
        written as objects when there are such entries (kept per base and entries)."""
        node = self._lookup(path)
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
        dirty = {a for a in self._dirty_dirs(below) if a == path or a.startswith(path + "/")}
        sub_dirty: dict[str, list[str]] = {}
        for d in dirty:
            if d != path:
                sub_dirty.setdefault(names.parent_of(d), []).append(names.basename(d))
        pw = self.store.pack_writer()
        try:
            tree = self._build(path, node.oid, by_parent, dirty, sub_dirty, pw) or EMPTY_TREE_ID
            pw.finish()
        except BaseException:
            pw.abort()
            raise
        if len(self._lower_trees) > 64:
            self._lower_trees.clear()
        self._lower_trees[key] = tree
        return tree

    def _live_mount(self) -> LiveDir | None:
        """:meth:`live_dir` when the fork has a live overlay mount, else None (an upper
        layer left behind is not folded: for callers in the middle of a commit)."""
        if self.pinned is not None or not self.overlay.with_upper:
            return None  # the mount's own lower view follows the base; it never writes
        from .worktree import overlay_mountpoint

        mp = overlay_mountpoint(self.vault, self.fork)
        return None if mp is None else LiveDir(mp, self.store)

    def live_dir(self) -> LiveDir | None:
        """The mount point of this fork's live overlay mount, as a directory that changes go
        through (None when there is none: then an upper layer a mount left behind is first
        folded into the overlay's entries, so the change lands on one layer)."""
        if self.pinned is not None or not self.overlay.with_upper:
            return None
        from .worktree import overlay_mountpoint

        mp = overlay_mountpoint(self.vault, self.fork)
        if mp is not None:
            return LiveDir(mp, self.store)
        if self.overlay.upper_active():
            self.fold_upper()
        return None

    def fold_upper(self) -> int:
        """Move what an unmounted overlay's upper layer holds into the overlay's entries
        (files are hard-linked into ``files/`` before the entries commit, and leave the
        upper layer after: a crash in between folds them again, nothing is lost). What git
        cannot hold (fifos, sockets, device nodes) stays in the upper layer. Returns the
        number of paths folded."""
        up_dir = self.overlay.upper_dir
        upper.drop_gitfile(up_dir)
        done: list[tuple[str, bool]] = []  # (upper path, is a directory)
        folded = 0
        with self.overlay.without_upper():
            todo = list(upper.entries(up_dir))
            todo.sort(key=lambda t: t[0])
            linked: list[str] = []
            try:
                with self.overlay.txn() as db:
                    for child, real, st in todo:
                        kind = upper.classify(real, st)
                        if kind == upper.SPECIAL:
                            continue
                        if kind in (upper.DIR, upper.OPAQUE):
                            got = self.overlay.upper_dir_entry(child, real, st)
                            if got is not None:  # not merging with the lower directory
                                self.overlay.remove_under(db, child, "fold")
                                self.overlay.remove(db, child, "fold")
                                self.overlay.put(db, got, "fold")
                            done.append((real, True))
                        elif kind == upper.GONE:
                            self._discard(db, child, "fold")
                            done.append((real, False))
                        elif kind == upper.LINK:
                            fid, size = self._store_bytes(os.fsencode(os.readlink(real)))
                            linked.append(fid)
                            self.overlay.remove_under(db, child, "fold")
                            self.overlay.put(db, Entry(child, FILE, MODE_LINK, None, fid, None, size), "fold")
                            done.append((real, False))
                        else:
                            fid = self.overlay.new_fileid()
                            dest = self.overlay.file_path(fid)
                            if st.st_nlink > 1:
                                shutil.copyfile(real, dest)
                            else:
                                os.link(real, dest)
                            linked.append(fid)
                            mode = MODE_EXEC if st.st_mode & 0o100 else MODE_BLOB
                            self.overlay.remove_under(db, child, "fold")
                            self.overlay.put(
                                db, Entry(child, FILE, mode, None, fid, None, st.st_size), "fold"
                            )
                            done.append((real, False))
                        folded += 1
            except BaseException:
                for fid in linked:
                    _unlink_quiet(self.overlay.file_path(fid))
                raise
        for real, is_dir in sorted(done, key=lambda t: -t[0].count("/")):
            try:
                if is_dir:
                    os.rmdir(real)
                else:
                    os.unlink(real)
            except OSError:
                pass  # a directory still holding what git cannot (a fifo): it stays
        return folded

    def _live_reset(self, live: LiveDir, target_tree: str) -> None:
        """Make the live mount show ``target_tree`` (paths git ignores stay, as git's
        checkout keeps them): the paths that differ from it now are rewritten through the
        mount point; the lower layer is not touched."""
        paths: set[str] = set()
        for c in self.status():
            paths.add(c.path)
            if c.old_path:
                paths.add(c.old_path)
        out: list[Change] = []
        diff_trees(self.store, self.base_tree, target_tree, "", out)
        for c in out:
            paths.add(c.path)
            if c.old_path:
                paths.add(c.old_path)
        live.reset(paths, target_tree)

    @property
    def stale(self) -> bool:
        """True when the fork's ref moved away from the base under a non-empty overlay."""
        tip = self.tip()
        return tip is not None and tip != self.base

    # -- lookup ---------------------------------------------------------------------------
    def _node_from_entry(self, e: Entry) -> Node | None:
        if e.kind == DELETED:
            return None
        if e.kind == FILE:
            return Node(e.path, e.mode, None, e)
        return Node(e.path, e.mode, e.oid, e)

    def _lookup(self, path: str, *, skip_self: bool = False) -> Node | None:
        """The node at normalised ``path`` without following symlinks (None if absent).

        With ``skip_self`` the entry at ``path`` itself is ignored: the result is what the
        path would be without it (its *underlying* state).
        """
        chain = names.ancestors(path)
        if path or not skip_self:
            chain.append(path)
        if not chain:
            return self._lookup_in(path, chain, {}, skip_self=skip_self)
        entries, _, base = self.overlay.lookup(chain)
        return self._lookup_in(path, chain, entries, skip_self=skip_self, base=base)

    def _lookup_in(
        self,
        path: str,
        chain: list[str],
        entries: Mapping[str, Entry],
        *,
        skip_self: bool = False,
        base: str | None = None,
    ) -> Node | None:
        """:meth:`_lookup` from the overlay entries of ``chain`` (``path``'s ancestors and,
        unless skipped, ``path``) read by the caller (``entries`` may hold more), and the
        base commit read with them (None: read it when needed)."""
        deepest: Entry | None = None
        for p in reversed(chain):
            e = entries.get(p)
            if e is not None and not (skip_self and p == path):
                deepest = e
                break
        if deepest is not None and deepest.path == path:
            return self._node_from_entry(deepest)
        if deepest is not None:
            if deepest.kind != OBJECT or deepest.mode != MODE_TREE or deepest.oid is None:
                return None
            rest = path[len(deepest.path) + 1 :] if deepest.path else path
            hit = self.store.tree_lookup(deepest.oid, rest)
        else:
            base_tree = self._tree_of_base(base)
            if not path:
                return Node("", MODE_TREE, base_tree, None)
            hit = self.store.tree_lookup(base_tree, path)
        if hit is None:
            return None
        return Node(path, hit[1], hit[0], None)

    def _tree_of_base(self, base: str | None) -> str:
        """The tree of base commit ``base`` (read with the caller's entries), or of the
        current base when None."""
        if base is None:
            return self.base_tree
        cached = self._base_tree_cache
        if cached is not None and cached[0] == base:
            return cached[1]
        tree = self.store.commit_tree(base)
        self._base_tree_cache = (base, tree)
        return tree

    def _link_target(self, node: Node) -> str:
        return self._read_node(node).decode("utf-8", "surrogateescape")

    def _follow(self, link_path: str, target: str) -> str:
        """Resolve a symlink target relative to its directory, refusing escapes."""
        if target.startswith("/"):
            raise SymlinkEscapeError(
                f"{link_path} is a symlink to an absolute path ({target}); avfs does not follow"
                " links out of the workspace",
                hint="use `avfs ls -l` or `stat` to see the link itself",
                details={"path": link_path, "target": target},
            )
        joined = posixpath.normpath(posixpath.join(names.parent_of(link_path), target))
        if joined == ".":
            return ""
        if joined == ".." or joined.startswith("../"):
            raise SymlinkEscapeError(
                f"{link_path} is a symlink that points outside the workspace ({target})",
                hint="use `avfs ls -l` or `stat` to see the link itself",
                details={"path": link_path, "target": target},
            )
        return names.norm_path(joined)

    def resolve(self, path: str, *, follow: bool = True) -> Node:
        """The node at ``path``, following in-workspace symlinks (the last one if ``follow``).

        Raises:
            PathNotFoundError, NotDirectoryError, SymlinkEscapeError, SymlinkLoopError.
        """
        p = _norm(path)
        node = self._resolve(p, follow)
        if node is None:
            raise PathNotFoundError(f"{p or '/'}: no such file or directory", details={"path": p})
        return node

    def _resolve(self, p: str, follow: bool, hops: int = 0) -> Node | None:
        if hops > MAX_SYMLINK_HOPS:
            raise SymlinkLoopError(f"{p}: too many levels of symbolic links")
        node = self._lookup(p)
        if node is None and p:
            # the direct lookup failed: an ancestor may be a symlink or a file. Find the
            # deepest ancestor that exists by bisection (a path exists only below existing
            # ones; paths can be 2,000 levels deep, and a missing level is no symlink hop)
            comps = p.split("/")
            lo, hi = 0, len(comps)  # comps[:lo] exists (the root), comps[:hi] does not
            anode: Node | None = None
            while hi - lo > 1:
                mid = (lo + hi) // 2
                hit = self._lookup("/".join(comps[:mid]))
                if hit is None:
                    hi = mid
                else:
                    lo, anode = mid, hit
            if anode is None:
                return None  # nothing of p exists below the root
            anc = "/".join(comps[:lo])
            if anode.is_link:
                real = self._resolve(anc, True, hops + 1)
                if real is None:
                    return None
                if not real.is_dir:
                    raise NotDirectoryError(f"{anc}: not a directory", details={"path": anc})
                return self._resolve(names.join(real.path, "/".join(comps[lo:])), follow, hops + 1)
            if not anode.is_dir:
                raise NotDirectoryError(f"{anc}: not a directory", details={"path": anc})
            return None
        if node is not None and follow and node.is_link:
            target = self._follow(p, self._link_target(node))
            return self._resolve(target, True, hops + 1)
        return node

    def _dir_node(self, p: str) -> Node:
        node = self._resolve(p, True)
        if node is None:
            raise PathNotFoundError(f"{p or '/'}: no such directory", details={"path": p})
        if not node.is_dir:
            raise NotDirectoryError(f"{p}: not a directory", details={"path": p})
        return node

    def exists(self, path: str) -> bool:
        try:
            return self._resolve(_norm(path), False) is not None
        except (NotDirectoryError, SymlinkEscapeError, SymlinkLoopError):
            return False

    # -- reading --------------------------------------------------------------------------
    def _raise_if_replaced(self, node: Node) -> None:
        """Raise :class:`_Raced` when the entry ``node`` was looked up from has been
        replaced since (a write unlinks the file it replaced): the caller looks again."""
        assert node.entry is not None
        now = self.overlay.get(node.path)
        if now is None or now.seq != node.entry.seq or now.fileid != node.entry.fileid:
            raise _Raced(f"{node.path} was replaced while being read", details={"path": node.path})

    def _read_node(self, node: Node) -> bytes:
        if node.entry is not None and node.entry.kind == FILE:
            assert node.entry.fileid is not None
            try:
                fd = self.overlay.open_file(node.entry.fileid)
            except CorruptStateError:
                self._raise_if_replaced(node)
                raise
            try:
                # sized by the entry (a mount's writes may have changed the file since: read
                # on to the end), without a file object's fstat and seek calls
                chunks = []
                want = max(node.entry.size, 4096) + 1
                while chunk := os.read(fd, want):
                    chunks.append(chunk)
                    want = _CHUNK
            finally:
                os.close(fd)
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)
        assert node.oid is not None
        return self.store.blob_data(node.oid)

    def read(self, path: str) -> bytes:
        """Return the bytes of a file (following in-workspace symlinks)."""
        for tries_left in range(_RACE_TRIES - 1, -1, -1):
            node = self.resolve(path)
            if node.is_dir:
                raise IsDirectoryError(f"{node.path or '/'}: is a directory", details={"path": node.path})
            try:
                return self._read_node(node)
            except _Raced:
                if not tries_left:
                    raise
        raise AssertionError("unreachable")

    def read_link(self, path: str) -> str:
        node = self.resolve(path, follow=False)
        if not node.is_link:
            raise InvalidPathError(f"{node.path}: not a symlink", details={"path": node.path})
        return self._link_target(node)

    def _size(self, node: Node) -> int:
        if node.is_dir:
            return 0
        if node.entry is not None and node.entry.kind == FILE:
            assert node.entry.fileid is not None
            try:
                return os.stat(self.overlay.file_path(node.entry.fileid)).st_size
            except FileNotFoundError as exc:
                self._raise_if_replaced(node)
                raise CorruptStateError(f"overlay file of {node.path} is missing") from exc
        assert node.oid is not None
        return self.store.blob_size(node.oid)

    def stat(self, path: str, *, follow: bool = False) -> Stat:
        for tries_left in range(_RACE_TRIES - 1, -1, -1):
            node = self.resolve(path, follow=follow)
            try:
                target = self._link_target(node) if node.is_link else None
                size = self._size(node)
            except _Raced:
                if not tries_left:
                    raise
                continue
            return Stat(
                path=node.path,
                kind=kind_of_mode(node.mode),
                mode=node.mode,
                size=size,
                oid=None if node.materialized else node.oid,
                materialized=node.materialized,
                target=target,
            )
        raise AssertionError("unreachable")

    def _children(self, d: Node) -> dict[str, Node]:
        """name -> node of a directory (underlying tree overlaid with overlay entries)."""
        return self._children_of(d, self.overlay.children(d.path))

    def _children_of(self, d: Node, entries: Iterable[Entry]) -> dict[str, Node]:
        """:meth:`_children` from the overlay entries whose parent is ``d`` (read already)."""
        out: dict[str, Node] = {}
        prefix = d.path + "/" if d.path else ""
        for name, (oid, mode) in self.store.tree_items(d.oid).items():
            out[name] = Node(prefix + name, mode, oid, None)
        for e in entries:
            name = names.basename(e.path)
            n = self._node_from_entry(e)
            if n is None:
                out.pop(name, None)
            else:
                out[name] = n
        return out

    def listdir(self, path: str = "", *, sizes: bool = False) -> list[DirEntry]:
        """The entries of a directory, sorted by name."""
        p = _norm(path)
        # one query for the directory's chain and its children; a directory reached
        # through a symlink (or not there) takes the general way
        chain = names.ancestors(p)
        chain.append(p)
        entries, kids, base = self.overlay.lookup(chain, p)
        d = self._lookup_in(p, chain, entries, base=base)
        if d is not None and d.is_dir:
            children = self._children_of(d, kids)
        else:
            d = self._dir_node(p)
            children = self._children(d)
        out = []
        for name, n in sorted(children.items()):
            out.append(
                DirEntry(
                    name=name,
                    path=n.path,
                    kind=kind_of_mode(n.mode),
                    mode=n.mode,
                    size=(self._size(n) if sizes and not n.is_dir else None),
                )
            )
        return out

    def walk(self, path: str = "", *, max_depth: int | None = None) -> Iterator[DirEntry]:
        """Every entry below ``path``, depth first, directories before their contents."""
        d = self._dir_node(_norm(path))

        def rec(node: Node, depth: int) -> Iterator[DirEntry]:
            for name, n in sorted(self._children(node).items()):
                yield DirEntry(name, n.path, kind_of_mode(n.mode), n.mode, None)
                if n.is_dir and (max_depth is None or depth < max_depth):
                    yield from rec(n, depth + 1)

        yield from rec(d, 1)

    # -- writing helpers ------------------------------------------------------------------
    def _check_quota_size(self, adding: int) -> None:
        """Refuse content that alone is over the vault's bytes limit, before storing it
        (the check of the whole vault follows with the entry)."""
        quota = self.vault.quota.limits()[0]
        if quota is not None and adding > quota:
            raise QuotaExceededError(
                f"file of {adding} bytes is over the vault's quota of {quota} bytes",
                hint="raise it with `avfs quota set --bytes SIZE`",
                details={"what": "bytes", "used": None, "adding": adding, "quota": quota},
            )

    def _check_quota(self, adding: int, replacing: int = 0, new_files: int = 0) -> tuple[int, int]:
        """Refuse a change that adds ``adding`` bytes in place of ``replacing`` and
        ``new_files`` overlay files when the vault would pass its quota (vault-wide: git
        objects and every fork's overlay; see :class:`.vault.QuotaTracker`). Inside the
        overlay's transaction the fork's own totals are exact. Returns the fork's overlay
        totals (bytes, files) once the change is made."""
        self._check_quota_size(adding)
        nbytes, nfiles = self.overlay.totals()
        after = (nbytes - replacing + adding, nfiles + new_files)
        self.vault.quota.check(self.fork, after[0], after[1], adding - replacing, new_files)
        return after

    def _show_in_mount(self, seq: int) -> None:
        """A change this process made (journal position ``seq``) shows in a live pure-FUSE
        mount of the fork when the call returns (see :func:`.worktree.show_written`)."""
        from . import worktree

        worktree.show_written(self, seq)

    def _note_totals(self, nbytes: int, nfiles: int) -> None:
        self.vault.quota.note(self.fork, nbytes, nfiles)

    def _parent_for_write(self, p: str, parents: bool) -> str:
        """Resolve the directory that will hold ``p``; returns the real path of the target.

        Follows in-workspace symlinks in the parent chain and at the last component, creates
        missing parents when ``parents``.
        """
        if not p:
            raise IsDirectoryError("the workspace root is a directory")
        parent = names.parent_of(p)
        node = self._resolve(parent, True)
        if node is None:
            if not parents:
                raise PathNotFoundError(f"{parent}: no such directory", details={"path": parent})
            self.mkdir(parent, parents=True, exist_ok=True)
            node = self._dir_node(parent)
        if not node.is_dir:
            raise NotDirectoryError(f"{node.path}: not a directory", details={"path": node.path})
        real = names.join(node.path, names.basename(p))
        last = self._lookup(real)
        hops = 0
        while last is not None and last.is_link:
            hops += 1
            if hops > MAX_SYMLINK_HOPS:
                raise SymlinkLoopError(f"{p}: too many levels of symbolic links")
            real = self._follow(real, self._link_target(last))
            if not real:
                raise IsDirectoryError(f"{p}: is a directory")
            pnode = self._resolve(names.parent_of(real), True)
            if pnode is None or not pnode.is_dir:
                raise PathNotFoundError(f"{p}: symlink target's directory is missing")
            real = names.join(pnode.path, names.basename(real))
            last = self._lookup(real)
        return real

    def _origin(self, p: str) -> str | None:
        """The base path whose content ``p`` shows (None for new content)."""
        chain = [*names.ancestors(p), p]
        return self._origin_in(p, chain, self.overlay.get_many(chain))

    def _origin_in(self, p: str, chain: list[str], entries: Mapping[str, Entry]) -> str | None:
        """:meth:`_origin` from the overlay entries of ``chain`` (``p`` and its ancestors)."""
        for q in reversed(chain):
            e = entries.get(q)
            if e is None:
                continue
            if e.origin is None:
                return None
            rest = p[len(q) :].lstrip("/")
            return names.join(e.origin, rest) if rest else e.origin
        return p

    def _store_bytes(
        self, src: bytes | Readable | str, replacing: int = 0, *, used_later: bool = False, new_file: int = 1
    ) -> tuple[str, int]:
        """Write content into a new overlay file; returns (fileid, size).

        ``replacing`` is the size of overlay content this write replaces (not counted twice
        against the quota); ``new_file``: 1 when the content becomes a file the overlay did
        not have (the file quota), else 0. ``used_later``: check here only that the content
        fits the quota at all (streams: while they are read); the caller checks the
        vault's totals in its transaction.
        """
        fid = self.overlay.new_fileid()
        dest = self.overlay.file_path(fid)
        try:
            if isinstance(src, bytes):
                if used_later:
                    self._check_quota_size(len(src))
                else:
                    self._check_quota(len(src), replacing, new_file)
                fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
                try:
                    view = memoryview(src)
                    while view:
                        view = view[os.write(fd, view) :]
                finally:
                    os.close(fd)
                return fid, len(src)
            if isinstance(src, str):
                self._check_quota(os.stat(src).st_size, replacing, new_file)
                shutil.copyfile(src, dest)
                return fid, os.stat(dest).st_size
            size = 0
            if not used_later:
                self._check_quota(0, 0, new_file)
            quota_left = self.quota_left() + replacing
            with open(dest, "wb") as fh:
                while chunk := src.read(_CHUNK):
                    size += len(chunk)
                    if size > quota_left:
                        quota = self.vault.quota_limits()[0]
                        raise QuotaExceededError(
                            f"content is over what is left of vault {self.vault.name}'s quota of"
                            f" {quota} bytes ({max(0, quota_left)} bytes)",
                            hint="checkpoint or rm changes, or raise it with `avfs quota set --bytes SIZE`",
                            details={"what": "bytes", "used": None, "adding": size, "quota": quota},
                        )
                    fh.write(chunk)
            return fid, size
        except BaseException as exc:
            _unlink_quiet(dest)
            if isinstance(exc, OSError):
                raise from_oserror(exc, dest) from exc
            raise

    # -- writing --------------------------------------------------------------------------
    def write(
        self,
        path: str,
        data: bytes | IO[bytes],
        *,
        mode: int | None = None,
        parents: bool = True,
    ) -> Stat:
        """Create or replace a file with ``data`` (bytes or a binary stream).

        Args:
            mode: 0o100644 or 0o100755 (or 0o644/0o755); by default a replaced file keeps
                its executable bit.
            parents: create missing parent directories.
        """
        p = _norm(path)
        live = self.live_dir()
        if live is not None:
            real = self._parent_for_write(p, parents)
            old = self._lookup(real)
            if old is not None and old.is_dir:
                raise IsDirectoryError(f"{real}: is a directory", details={"path": real})
            fmode = _file_mode(mode, old.mode if old is not None else None)
            size = live.write(real, data, fmode)
            return Stat(real, kind_of_mode(fmode), fmode, size, None, True)
        target = self._plain_write_target(p)
        if target is not None:
            real, old = p, target[0]
        else:
            real = self._parent_for_write(p, parents)
            old = self._lookup(real)
        if old is not None and old.is_dir:
            raise IsDirectoryError(f"{real}: is a directory", details={"path": real})
        fmode = _file_mode(mode, old.mode if old is not None else None)
        replacing = (
            old.entry.size if old is not None and old.entry is not None and old.entry.kind == FILE else 0
        )
        # the quota (vault-wide totals) is checked with the entry's write, in its transaction
        fid, size = self._store_bytes(data, replacing, used_later=True)
        try:
            with self.overlay.txn() as db:
                chain = names.ancestors(real)
                chain.append(real)
                entries = self.overlay.get_many(chain)
                prior = entries.get(real)
                if prior is not None and prior.kind == FILE:
                    totals = self._check_quota(size, prior.size, 0)
                else:
                    totals = self._check_quota(size, 0, 1)
                origin = self._origin_in(real, chain, entries) if old is not None else None
                e = Entry(real, FILE, fmode, None, fid, origin, size)
                self.overlay.put(db, e, "write", old=prior)
                self.overlay.expect_totals(*totals)
        except BaseException:
            _unlink_quiet(self.overlay.file_path(fid))
            raise
        # what stat() would find, without looking it up again (this is a mount's create path)
        return Stat(real, kind_of_mode(fmode), fmode, size, None, True)

    def _plain_write_target(self, p: str) -> tuple[Node | None] | None:
        """``(node at p,)`` when ``p``'s parent is a directory at that very path and ``p``
        is not a symlink, from one read of the overlay (the common case of a write); None
        when :meth:`_parent_for_write` must resolve symlinks or create parents."""
        if not p:
            return None
        chain = names.ancestors(p)
        chain.append(p)
        entries, _, base = self.overlay.lookup(chain)
        pnode = self._lookup_in(chain[-2], chain[:-1], entries, base=base)
        if pnode is None or not pnode.is_dir:
            return None
        node = self._lookup_in(p, chain, entries, base=base)
        if node is not None and node.is_link:
            return None
        return (node,)

    def write_from_file(self, path: str, src: str, *, mode: int | None = None) -> Stat:
        """Like :meth:`write`, copying the bytes of local file ``src``."""
        with open(src, "rb") as fh:
            return self.write(path, fh, mode=mode)

    def symlink(self, target: str, path: str) -> Stat:
        """Create symlink ``path`` pointing at ``target`` (``ln -s TARGET PATH``)."""
        if not target or "\x00" in target:
            raise InvalidPathError(f"invalid symlink target {target!r}")
        p = _norm(path)
        parent = self._dir_node(names.parent_of(p)) if p else None
        if parent is None:
            raise IsDirectoryError("the workspace root is a directory")
        real = names.join(parent.path, names.basename(p))
        if self._lookup(real) is not None:
            raise AlreadyExistsError(f"{real}: already exists", details={"path": real})
        live = self.live_dir()
        if live is not None:
            live.symlink(target, real)
            return self.stat(real)
        fid, size = self._store_bytes(target.encode("utf-8", "surrogateescape"))
        with self.overlay.txn() as db:
            self.overlay.put(db, Entry(real, FILE, MODE_LINK, None, fid, None, size), "symlink")
        return self.stat(real)

    def mkdir(self, path: str, *, parents: bool = False, exist_ok: bool = False) -> None:
        p = _norm(path)
        if not p:
            if exist_ok or parents:
                return
            raise AlreadyExistsError("the workspace root exists")
        existing = self._resolve(p, True) if parents or exist_ok else self._lookup(p)
        if existing is not None:
            if existing.is_dir and (exist_ok or parents):
                return
            raise AlreadyExistsError(f"{p}: already exists", details={"path": p})
        parent = names.parent_of(p)
        pnode = self._resolve(parent, True)
        if pnode is None:
            if not parents:
                raise PathNotFoundError(f"{parent}: no such directory", details={"path": parent})
            self.mkdir(parent, parents=True, exist_ok=True)
            pnode = self._dir_node(parent)
        if not pnode.is_dir:
            raise NotDirectoryError(f"{pnode.path}: not a directory", details={"path": pnode.path})
        real = names.join(pnode.path, names.basename(p))
        live = self.live_dir()
        if live is not None:
            live.mkdir(real)
            return
        with self.overlay.txn() as db:
            self.overlay.put(db, Entry(real, OBJECT, MODE_TREE, EMPTY_TREE), "mkdir")

    def _discard(self, db: Any, p: str, op: str) -> None:
        """Make ``p`` absent: drop entries at and under it, whiteout what lies beneath."""
        self.overlay.remove_under(db, p, op)
        self.overlay.remove(db, p, op)
        if self._lookup(p, skip_self=True) is not None:
            self.overlay.put(db, Entry(p, DELETED, 0), op)

    def remove(self, path: str, *, recursive: bool = False) -> None:
        """Delete a file, symlink or (with ``recursive`` or when empty) a directory."""
        p = _norm(path)
        if not p:
            raise InvalidPathError("refusing to remove the workspace root")
        node = self.resolve(p, follow=False)
        p = node.path
        if node.is_dir and not recursive and self._children(node):
            raise DirectoryNotEmptyError(f"{p}: directory not empty", details={"path": p})
        live = self.live_dir()
        if live is not None:
            live.remove(p)
            return
        with self.overlay.txn() as db:
            self._discard(db, p, "remove")

    def rmdir(self, path: str) -> None:
        node = self.resolve(path, follow=False)
        if not node.is_dir:
            raise NotDirectoryError(f"{node.path}: not a directory")
        self.remove(node.path)

    def chmod(self, path: str, executable: bool) -> Stat:
        """Set or clear the executable bit (the only mode bit git keeps)."""
        node = self.resolve(path)
        if node.is_dir or node.is_link:
            raise InvalidPathError(f"{node.path}: only files have an executable bit")
        mode = MODE_EXEC if executable else MODE_BLOB
        if mode == node.mode:
            return self.stat(node.path)
        live = self.live_dir()
        if live is not None:
            live.chmod(node.path, executable)
            return self.stat(node.path)
        with self.overlay.txn() as db:
            e = node.entry
            if e is not None:
                self.overlay.put(db, Entry(e.path, e.kind, mode, e.oid, e.fileid, e.origin, e.size), "chmod")
            else:
                origin = self._origin(node.path)
                self.overlay.put(db, Entry(node.path, OBJECT, mode, node.oid, None, origin), "chmod")
        return self.stat(node.path)

    def _move_or_copy(self, src: str, dst: str, *, copy: bool) -> str:
        s = _norm(src)
        d = _norm(dst)
        if not s:
            raise InvalidPathError("cannot move or copy the workspace root")
        node = self.resolve(s, follow=False)
        s = node.path
        if not d:
            raise InvalidPathError("the destination is the workspace root")
        dparent = self._dir_node(names.parent_of(d))
        d = names.join(dparent.path, names.basename(d))
        if d == s:
            return d
        if node.is_dir and names.is_within(d, s):
            raise InvalidPathError(f"cannot move {s} into itself ({d})")
        target = self._lookup(d)
        if target is not None:
            if target.is_dir:
                if not node.is_dir:
                    raise IsDirectoryError(f"{d}: is a directory", details={"path": d})
                if self._children(target):
                    raise DirectoryNotEmptyError(f"{d}: directory not empty", details={"path": d})
            elif node.is_dir:
                raise NotDirectoryError(f"{d}: not a directory", details={"path": d})
        live = self.live_dir()
        if live is not None:
            if copy:
                live.copy(s, d)
            else:
                live.rename(s, d)
            return d
        op = "copy" if copy else "rename"
        new_files: list[str] = []
        try:
            with self.overlay.txn() as db:
                origin = None if copy else self._origin(s)
                under = self.overlay.under(s) if node.is_dir else []
                e = node.entry
                if e is not None and e.kind == FILE:
                    fid = e.fileid
                    if copy:
                        assert e.fileid is not None
                        fid, _ = self._store_bytes(self.overlay.file_path(e.fileid))
                        new_files.append(fid)
                    top = Entry(d, FILE, e.mode, None, fid, origin, e.size)
                else:
                    top = Entry(d, OBJECT, node.mode, node.oid, None, origin)
                self.overlay.remove_under(db, d, op)
                self.overlay.remove(db, d, op)
                self.overlay.put(db, top, op)
                for sub in under:
                    rel = sub.path[len(s) + 1 :]
                    fid = sub.fileid
                    if copy and sub.kind == FILE:
                        assert sub.fileid is not None
                        fid, _ = self._store_bytes(self.overlay.file_path(sub.fileid))
                        new_files.append(fid)
                    sub_origin = None if copy else sub.origin
                    moved = Entry(names.join(d, rel), sub.kind, sub.mode, sub.oid, fid, sub_origin, sub.size)
                    if not copy:
                        # keep the file: the old entry goes without unlinking it
                        db.execute("DELETE FROM entries WHERE path=?", (sub.path,))
                        self.overlay._journal(db, sub.path, op)
                    self.overlay.put(db, moved, op)
                if not copy:
                    if e is not None:
                        db.execute("DELETE FROM entries WHERE path=?", (s,))
                        self.overlay._journal(db, s, op)
                    if self._lookup(s, skip_self=True) is not None:
                        self.overlay.put(db, Entry(s, DELETED, 0), op)
        except BaseException:
            for fid in new_files:
                _unlink_quiet(self.overlay.file_path(fid))
            raise
        return d

    def rename(self, src: str, dst: str) -> str:
        """POSIX ``rename``: replaces a file or an empty directory at ``dst``."""
        return self._move_or_copy(src, dst, copy=False)

    def copy(self, src: str, dst: str, *, recursive: bool = False) -> str:
        node = self.resolve(src, follow=False)
        if node.is_dir and not recursive:
            raise IsDirectoryError(f"{node.path}: is a directory (use recursive copy)")
        return self._move_or_copy(src, dst, copy=True)

    # -- for a mount (the FUSE layer calls these; the kernel resolves symlinks itself) --------
    def node(self, path: str) -> Node | None:
        """The node at normalised ``path``, symlinks not followed (None when absent)."""
        return self._lookup(path)

    def node_size(self, node: Node) -> int:
        return self._size(node)

    def node_children(self, node: Node) -> dict[str, Node]:
        return self._children(node)

    def file_path(self, node: Node) -> str | None:
        """Where a materialized file's bytes are (None for content still in git)."""
        if node.entry is not None and node.entry.kind == FILE and node.entry.fileid:
            return self.overlay.file_path(node.entry.fileid)
        return None

    def materialize(self, path: str) -> Node:
        """Make a file's bytes a real overlay file (copying them out of git once), so
        writes can go straight to disk; returns the (now materialized) node."""
        p = _norm(path)
        node = self._lookup(p)
        if node is None:
            raise PathNotFoundError(f"{p}: no such file", details={"path": p})
        if node.is_dir:
            raise IsDirectoryError(f"{p}: is a directory", details={"path": p})
        if node.materialized:
            return node
        assert node.oid is not None
        stream = self.store.blob_stream(node.oid)
        if stream is None:
            fid, size = self._store_bytes(self.store.blob_data(node.oid))
        else:
            try:
                fid, size = self._store_bytes(stream)
            finally:
                stream.close()
        with self.overlay.txn() as db:
            e = Entry(p, FILE, node.mode, None, fid, self._origin(p), size)
            self.overlay.put(db, e, "materialize")
        got = self._lookup(p)
        assert got is not None
        return got

    def _written_sizes(self, paths: Iterable[str]) -> Iterator[tuple[Entry, int]]:
        """(entry, current size) of each path that is a materialized file of the overlay."""
        for path in paths:
            e = self.overlay.get(_norm(path))
            if e is None or e.kind != FILE or not e.fileid:
                continue
            try:
                yield e, os.stat(self.overlay.file_path(e.fileid)).st_size
            except FileNotFoundError:
                continue

    def note_written(self, *paths: str) -> None:
        """Record that materialized files changed through open descriptors: their sizes in
        the overlay and journal entries (what status, quota and `changes since` read), all
        in one transaction."""
        with self.overlay.txn() as db:
            for e, size in self._written_sizes(paths):
                self.overlay.put(db, Entry(e.path, e.kind, e.mode, e.oid, e.fileid, e.origin, size), "write")

    def record_sizes(self, paths: Iterable[str]) -> None:
        """Record the sizes of materialized files written through descriptors whose paths
        are journaled already (what quota reads), in one transaction, without journaling
        them again (a mount batches these after close())."""
        with self.overlay.txn() as db:
            for e, size in self._written_sizes(paths):
                assert e.fileid is not None
                self.overlay.set_size(db, e.path, e.fileid, size)

    def quota_left(self) -> int:
        """Bytes the vault may still grow by (a mount bounds its open files' writes by it):
        exact when little is left, a lower bound otherwise; negative when over."""
        return self.vault.quota.bytes_left(self.fork, self.overlay.totals()[0])

    @property
    def view_time(self) -> float:
        """The time unchanged files show as their mtime: when the workspace last changed
        what it shows wholesale (a restore, an undo, a pull of pushed commits). A checkpoint
        leaves it alone, so files it commits keep their times; a restore moves it forward,
        so tools like make see restored files as new."""
        raw = self.overlay.get_meta("view_time")
        if raw is None:
            t = min(self.store.commit_time(self.base), _settled_now())
            self.overlay.set_meta("view_time", repr(float(t)))
            return float(t)
        return float(raw)

    # -- status ---------------------------------------------------------------------------
    def is_dirty(self) -> bool:
        """True when there are uncheckpointed changes: empty new directories and paths git
        ignores (a venv, caches) don't count. Content is not compared: a file rewritten with
        the same bytes counts."""
        if self.overlay.upper_active():
            # the upper layer keeps what checkpoints recorded while it was mounted (a status
            # walks it once; has_changes would walk it first for nothing)
            return bool(self.status())
        if not self.overlay.has_changes():
            return False
        entries = self.overlay.all()
        added, tracked = self._added_paths(entries)
        if tracked:
            return True  # a deletion, or a change of a tracked path
        if added is None:
            changes = self._changes(entries, hash_files=False)
            if any(c.status is not ChangeStatus.ADDED for c in changes):
                return True
            added = [c.path for c in changes]
        if not added:
            return False
        ignored = set(self._ignored_among(added, entries).files)
        return any(p not in ignored for p in added)

    def _dirty_dirs(self, entries: list[Entry]) -> set[str]:
        out: set[str] = set()
        for e in entries:
            for a in names.ancestors(e.path):
                out.add(a)
        return out

    def _ws_entry_oid(self, n: Node) -> str:
        """The git id of what a node shows (materialized files are hashed, not stored)."""
        if n.entry is not None and n.entry.kind == FILE:
            assert n.entry.fileid is not None
            try:
                if n.entry.fileid.startswith(UPPER_FILE):
                    try:
                        return self.overlay.upper_oid(n.entry.fileid, file_blob_id)
                    except FileNotFoundError:
                        raise _Raced(
                            f"{n.path} was replaced while being read", details={"path": n.path}
                        ) from None
                return file_blob_id(self.overlay.file_path(n.entry.fileid))
            except OSError as exc:
                raise CorruptStateError(f"overlay file of {n.path} is unreadable: {exc}") from exc
        assert n.oid is not None
        return n.oid

    def status_report(
        self,
        changes: list[Change] | None = None,
        ignored: Ignored | None = None,
        *,
        list_ignored: bool = False,
    ) -> dict[str, object]:
        """What `avfs status` reports (its JSON document but the vault and fork): the base,
        the fork's tip (``stale`` when another hand moved it), the merge in progress
        (:func:`.merge.open_merge`, or None), the changes, and how many paths git ignores
        (``ignored``; listed in ``ignored_paths`` with ``list_ignored``). ``changes`` and
        ``ignored``: :meth:`status_ignored` already taken."""
        merging: dict[str, object] | None = None
        if os.path.exists(os.path.join(self.state_dir, MERGE_STATE_FILE)):
            # merge's module costs ~4 ms to import: only when a merge left its state
            from .merge import open_merge

            merging = open_merge(self)
        if changes is None or ignored is None:
            changes, ignored = self.status_ignored()
        tip = self.tip()
        out: dict[str, object] = {
            "base": self.base,
            "head": tip,
            "stale": tip != self.base,
            "merge": merging,  # a merge with written conflicts, still open
            "clean": not changes,
            "changes": [
                {
                    k: v
                    for k, v in (("path", c.path), ("status", c.status), ("old_path", c.old_path))
                    if v is not None
                }
                for c in changes
            ],
            "ignored": len(ignored.files),
        }
        if list_ignored:
            out["ignored_paths"] = list(ignored.files)
        return out

    def status(self) -> list[Change]:
        """What changed in the workspace since its base commit (O(changes)); paths git
        ignores are left out (see :meth:`status_ignored`)."""
        return self.status_ignored()[0]

    def status_ignored(self) -> tuple[list[Change], Ignored]:
        """(what changed since the base commit, the new paths git ignores), O(changes)."""
        for tries_left in range(_RACE_TRIES - 1, -1, -1):
            try:
                return self._status_ignored()
            except _Raced:
                if not tries_left:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def not_recorded(self) -> list[NotRecorded]:
        """What the workspace shows that a checkpoint leaves out: names git refuses, and the
        fifos, sockets and device nodes of an overlay mount's live tree (paths git ignores
        aside: they are never recorded anyway)."""
        with self.overlay.pruning(self._prune_ignored):
            entries = self.overlay.all()
        left = gitnames.not_recorded((e.path, e.mode) for e in entries if e.kind != DELETED)
        specials = [
            NotRecorded(
                e.path,
                e.origin[len(SPECIAL_ORIGIN) :],
                f"git records no {e.origin[len(SPECIAL_ORIGIN) :].replace('_', ' ')}: it stays in the live tree",
            )
            for e in entries
            if e.kind == DELETED and e.origin and e.origin.startswith(SPECIAL_ORIGIN)
        ]
        return sorted(left + specials, key=lambda n: n.path)

    def _prune_ignored(self, tops: list[str], found: list[Entry]) -> set[str]:
        """Which of the upper layer's new top directories ``tops`` git ignores (``found``:
        the upper layer's entries read so far, whose .gitignore files count)."""
        with self.overlay.without_upper():
            by_path = {e.path: e for e in self.overlay.all()}
        by_path.update((e.path, e) for e in found)
        base = self.base
        return set(
            self.ignore_rules.ignored((), lambda d: self._gitignore_source(by_path, base, d), dirs=set(tops))
        )

    def _status_ignored(self) -> tuple[list[Change], Ignored]:
        with self.overlay.pruning(self._prune_ignored):
            entries = self.overlay.all()
        if not entries:
            return [], NO_IGNORED
        # which paths are new needs no file read; ignored ones (a venv's thousands) are then
        # never hashed: only the rest are, to compare and to pair renames
        skip = self._ignored_dirs(entries)  # not walked at all: a venv costs one question
        raw = self._changes(entries, hash_files=False, skip=skip)
        ignored = self._ignored_among([c.path for c in raw if c.status is ChangeStatus.ADDED], entries, skip)
        gone = set(ignored.files)
        by_path = {e.path: e for e in entries}
        out: list[Change] = []
        for c in raw:
            if c.path in gone:
                continue
            e = by_path.get(c.path) if c.new_oid is None else None
            if e is not None and e.kind == FILE and c.status in (ChangeStatus.ADDED, ChangeStatus.MODIFIED):
                oid = self._ws_entry_oid(Node(c.path, e.mode, None, e))
                old = None if c.status is ChangeStatus.ADDED else (c.old_oid or "", c.old_mode or 0)
                diff_entry(self.store, c.path, old, (oid, e.mode), out)
            else:
                out.append(c)
        hints: dict[str, str] = {}
        for c in out:
            if c.status is ChangeStatus.ADDED:
                o = self._origin(c.path)
                if o is not None and o != c.path:
                    hints[c.path] = o
        return pair_renames(out, hints), ignored

    def ignored(self) -> Ignored:
        """The new paths git ignores (without comparing contents: cheaper than a status)."""
        return self._ignored_in(self.overlay.all())

    def _ignored_in(self, entries: list[Entry]) -> Ignored:
        """The new paths of the workspace made of ``entries`` that git ignores."""
        if not entries:
            return NO_IGNORED
        skip = self._ignored_dirs(entries)
        added = self._added_paths([e for e in entries if not _covered(e.path, skip)] if skip else entries)[0]
        if added is None:
            added = [
                c.path
                for c in self._changes(entries, hash_files=False, skip=skip)
                if c.status is ChangeStatus.ADDED
            ]
        return self._ignored_among(added, entries, skip)

    def _added_paths(self, entries: list[Entry]) -> tuple[list[str] | None, bool]:
        """(the new paths, absent from the base tree, that ``entries`` show; whether an
        entry deletes or changes a tracked path), from the entries alone: O(entries), no
        listing. The paths are None when an entry names a git tree other than the base's
        there (a renamed or restored directory, a fork's view): only a tree diff tells."""
        base_tree = self.base_tree
        out: list[str] | None = []
        tracked = False
        for e in entries:
            if e.kind == DELETED:
                tracked = True
                continue
            hit = self.store.tree_lookup(base_tree, e.path)
            if e.mode == MODE_TREE:
                if hit == (e.oid, MODE_TREE) or (hit is None and e.oid == EMPTY_TREE):
                    continue  # the base's own tree, or a new empty directory
                out = None
            elif hit is None or hit[1] == MODE_TREE:
                if out is not None:
                    out.append(e.path)
            else:
                tracked = True
        return out, tracked

    def _changes(
        self, entries: list[Entry], *, hash_files: bool = True, skip: frozenset[str] = frozenset()
    ) -> list[Change]:
        """The changes since the base made by ``entries`` (the overlay), renames unpaired.
        Without ``hash_files`` a materialized file over a base file counts as modified
        unread (what ignore rules and :meth:`is_dirty` need: which paths are new). The new
        directories ``skip`` (ignored ones) are not walked."""
        if skip:
            dirty = self._dirty_dirs([e for e in entries if not _covered(e.path, skip)])
        else:
            dirty = self._dirty_dirs(entries)
        out: list[Change] = []
        root = self._lookup("")
        assert root is not None
        self._status_dir("", self.base_tree, root, dirty, out, hash_files, skip)
        return out

    def _status_dir(
        self,
        p: str,
        base_oid: str | None,
        w: Node,
        dirty: set[str],
        out: list[Change],
        hash_files: bool = True,
        skip: frozenset[str] = frozenset(),
    ) -> None:
        if p not in dirty:
            diff_trees(self.store, base_oid, w.oid, p, out)
            return
        b = self.store.tree_items(base_oid)
        ws = self._children(w)
        for name in sorted(b.keys() | ws.keys()):
            child = names.join(p, name)
            bo = b.get(name)
            n = ws.get(name)
            if child in skip:
                if bo is not None and bo[1] != MODE_TREE:
                    diff_entry(self.store, child, bo, None, out)  # a tracked file it replaced
                continue
            if n is None:
                diff_entry(self.store, child, bo, None, out)
            elif n.is_dir:
                if bo is not None and bo[1] == MODE_TREE:
                    self._status_dir(child, bo[0], n, dirty, out, hash_files, skip)
                else:
                    if bo is not None:
                        diff_entry(self.store, child, bo, None, out)
                    self._status_dir(child, None, n, dirty, out, hash_files, skip)
            elif n.materialized:
                if hash_files:
                    self._status_file(child, bo, n, out)
                elif bo is None or bo[1] == MODE_TREE:
                    if bo is not None:
                        diff_entry(self.store, child, bo, None, out)
                    out.append(Change(child, ChangeStatus.ADDED, new_mode=n.mode))
                else:  # a new path's content is not needed to know it is new
                    out.append(
                        Change(child, ChangeStatus.MODIFIED, old_mode=bo[1], new_mode=n.mode, old_oid=bo[0])
                    )
            else:
                assert n.oid is not None
                diff_entry(self.store, child, bo, (n.oid, n.mode), out)

    def _status_file(self, child: str, bo: tuple[str, int] | None, n: Node, out: list[Change]) -> None:
        oid = self._ws_entry_oid(n)
        diff_entry(self.store, child, bo, (oid, n.mode), out)

    # -- ignore rules (git's, see .ignore) ------------------------------------------------
    @property
    def ignore_rules(self) -> IgnoreRules:
        rules = self._ignore_rules
        if rules is None:
            rules = self._ignore_rules = IgnoreRules(self.store.path, self._excludes_setting)
        return rules

    def _excludes_setting(self) -> str | None:
        if "pygit2" not in sys.modules:
            # read-only commands (status, ls, cat) never import pygit2 (~85 ms): git itself
            # answers, with its own config rules (vault, global, includes), in ~2 ms
            from .ignore import config_value

            return config_value(self.store.path, "core.excludesFile")
        import pygit2

        try:
            value = self.store.repo.config["core.excludesFile"]
        except (KeyError, ValueError, pygit2.GitError):
            return None
        return str(value) if value else None

    def _gitignore_source(
        self, entries: Mapping[str, Entry], base: str, d: str
    ) -> tuple[str, Callable[[], bytes]] | None:
        """The ``.gitignore`` of directory ``d`` as the workspace made of ``entries`` (every
        overlay entry, by path) on ``base`` shows it (see :data:`.ignore.Source`)."""
        path = names.join(d, GITIGNORE)
        node = self._lookup_in(path, [*names.ancestors(path), path], entries, base=base)
        if node is None or node.is_dir or node.is_link:
            return None
        e = node.entry
        if e is not None and e.kind == FILE:
            assert e.fileid is not None
            fpath = self.overlay.file_path(e.fileid)
            try:
                st = os.stat(fpath)
            except OSError:
                return None

            def load() -> bytes:
                with open(fpath, "rb") as fh:
                    return fh.read()

            return f"f:{e.fileid}:{st.st_size}:{st.st_mtime_ns}", load
        oid = node.oid
        assert oid is not None
        return oid, lambda: self.store.blob_data(oid)

    def _ignored_dirs(self, entries: list[Entry]) -> frozenset[str]:
        """The new directories (absent from the base tree, their parent not) holding the
        entries' new content that git ignores as directories: everything below them is
        ignored, so nothing below needs walking or asking about (one question for a venv)."""
        base_tree = self.base_tree
        is_tree: dict[str, bool] = {"": True}
        tops: set[str] = set()
        for e in entries:
            if e.kind == DELETED or not e.path:
                continue
            parts = e.path.split("/")
            d = ""
            for i, comp in enumerate(parts):
                d = f"{d}/{comp}" if d else comp
                if i == len(parts) - 1 and e.mode != MODE_TREE:
                    break
                got = is_tree.get(d)
                if got is None:
                    hit = self.store.tree_lookup(base_tree, d)
                    got = is_tree[d] = hit is not None and hit[1] == MODE_TREE
                if not got:
                    tops.add(d)
                    break
        if not tops:
            return frozenset()
        by_path = {e.path: e for e in entries}
        base = self.base
        return frozenset(
            self.ignore_rules.ignored((), lambda d: self._gitignore_source(by_path, base, d), dirs=tops)
        )

    def _ignored_among(
        self, added: list[str], entries: list[Entry], skip: frozenset[str] | None = None
    ) -> Ignored:
        """Which of the new paths ``added`` (absent from the base tree: tracked paths never
        are) of the workspace made of ``entries`` git ignores; ``skip``: the ignored new
        directories (:meth:`_ignored_dirs`, found here when None)."""
        if skip is None:
            skip = self._ignored_dirs(entries)
        under = (
            [e.path for e in entries if e.kind != DELETED and e.mode != MODE_TREE and _covered(e.path, skip)]
            if skip
            else []
        )
        added = [p for p in added if not _covered(p, skip)] if skip else added
        if not added:
            return Ignored(tuple(sorted(under)), skip) if under or skip else NO_IGNORED
        base_tree = self.base_tree
        is_tree: dict[str, bool] = {"": True}

        def tracked_dir(d: str) -> bool:
            got = is_tree.get(d)
            if got is None:
                hit = self.store.tree_lookup(base_tree, d) if tracked_dir(names.parent_of(d)) else None
                got = is_tree[d] = hit is not None and hit[1] == MODE_TREE
            return got

        by_path = {e.path: e for e in entries}
        base = self.base
        hit = self.ignore_rules.ignored(added, lambda d: self._gitignore_source(by_path, base, d))
        if not hit:
            return Ignored(tuple(sorted(under)), skip) if under or skip else NO_IGNORED
        # a new directory whose new paths are all ignored goes as one unit (git answers for
        # files; below an ignored directory every file is ignored)
        total: dict[str, int] = {}
        ignored: dict[str, int] = {}
        for p in added:
            for a in names.ancestors(p):
                if a and not tracked_dir(a):
                    total[a] = total.get(a, 0) + 1
                    if p in hit:
                        ignored[a] = ignored.get(a, 0) + 1
        ign_dirs = {d for d, n in ignored.items() if n == total[d]}
        tops = {d for d in ign_dirs if not any(a in ign_dirs for a in names.ancestors(d))}
        files = [p for p in added if p in hit]
        tops |= {p for p in files if not any(a in ign_dirs for a in names.ancestors(p))}
        return Ignored(tuple(sorted(files + under)), frozenset(tops | skip))

    # -- capture (build trees from the overlay) -------------------------------------------
    def capture(
        self, pack: PackWriter | None = None, *, include_ignored: bool = False
    ) -> tuple[str, list[Entry]]:
        """Write blobs and trees for the workspace; returns (root tree id, captured entries).

        Paths git ignores are left out of the tree (``include_ignored``: kept) and their
        entries are not among the captured ones: a checkpoint, which retires what it
        captured, leaves them in the overlay (a venv keeps working across checkpoints).

        Cost: one blob per materialized file plus the trees on changed paths
        (O(changed paths x depth)), never O(tree). The objects go into ``pack`` (which the
        caller finishes), or into a pack of their own.
        """
        self.captured_ignored = NO_IGNORED
        if include_ignored:
            entries = self.overlay.all()
        else:
            with self.overlay.pruning(self._prune_ignored):
                entries = self.overlay.all()
        if not entries:
            return self.base_tree, []
        own = pack is None
        pw = pack if pack is not None else self.store.pack_writer()
        try:
            for tries_left in range(_RACE_TRIES - 1, -1, -1):
                try:
                    build = entries
                    if not include_ignored:
                        build, entries = self._leave_out_ignored(entries)
                    tree = self._capture_entries(build, pw)
                    break
                except _Raced:
                    # a file was replaced (and its old bytes unlinked) by a write that came
                    # after the entries were read: read them again (objects already in the
                    # pack are harmless duplicates)
                    if not tries_left:
                        from .errors import BusyError

                        raise BusyError(
                            f"the workspace of fork {self.fork} kept changing during the checkpoint",
                            hint="try again",
                            details={"fork": self.fork},
                        ) from None
                    if include_ignored:
                        entries = self.overlay.all()
                    else:
                        with self.overlay.pruning(self._prune_ignored):
                            entries = self.overlay.all()
            if own:
                pw.finish()
        except BaseException:
            if own:
                pw.abort()
            raise
        return tree, entries

    def _leave_out_ignored(self, entries: list[Entry]) -> tuple[list[Entry], list[Entry]]:
        """(the entries to build a tree from, the entries that count as captured), the
        paths git ignores left out of both: their own entries are dropped, and a deletion
        of each takes them out of git trees that hold them (a fork's or an undo's view)."""
        self.captured_ignored = NO_IGNORED
        if not any(e.kind != DELETED for e in entries):
            return entries, entries
        ign = self.captured_ignored = self._ignored_in(entries)
        if not ign.tops:
            return entries, entries
        self._pin_ignored(entries, ign)
        kept = [e for e in entries if not ign.covers(e.path)]
        return kept + [Entry(t, DELETED, 0) for t in sorted(ign.tops)], kept

    def _pin_ignored(self, entries: list[Entry], ign: Ignored) -> None:
        """Give each ignored path that only a git tree of an ancestor entry holds (a fork's
        or an undo's view) an entry of its own, as it shows now (the view does not change),
        so that retiring the ancestor after a checkpoint does not take it away."""
        have = {e.path for e in entries}
        todo = sorted(t for t in ign.tops if t not in have)
        if not todo:
            return
        with self.overlay.txn() as db:
            for t in todo:
                chain = [*names.ancestors(t), t]
                got = self.overlay.get_many(chain)
                if t in got:
                    continue
                deepest = max((i for i, q in enumerate(chain) if q in got), default=None)
                if deepest is None:
                    continue  # no entry holds it: nothing would take it away
                ok = True
                for q in chain[deepest + 1 : -1]:
                    node = self._lookup(q)
                    if node is None or not node.is_dir or node.oid is None:
                        ok = False
                        break
                    self.overlay.put(db, Entry(q, OBJECT, MODE_TREE, node.oid, None, self._origin(q)), "pin")
                node = self._lookup(t)
                if ok and node is not None and node.oid is not None and node.entry is None:
                    self.overlay.put(db, Entry(t, OBJECT, node.mode, node.oid), "pin")

    def _capture_entries(self, entries: list[Entry], pw: PackWriter) -> str:
        """The root tree of the workspace made of ``entries`` (see :meth:`capture`)."""
        dirty = self._dirty_dirs(entries)
        by_parent: dict[str, list[Entry]] = {}
        for e in entries:
            if e.path:
                by_parent.setdefault(names.parent_of(e.path), []).append(e)
        sub_dirty: dict[str, list[str]] = {}
        for d in dirty:
            if d:
                sub_dirty.setdefault(names.parent_of(d), []).append(names.basename(d))
        root_entry = next((e for e in entries if e.path == ""), None)
        root_oid = root_entry.oid if root_entry is not None else self.base_tree
        tree = self._build("", root_oid, by_parent, dirty, sub_dirty, pw)
        assert tree is not None
        return tree

    def _build(
        self,
        p: str,
        under: str | None,
        by_parent: dict[str, list[Entry]],
        dirty: set[str],
        sub_dirty: dict[str, list[str]],
        pw: PackWriter,
    ) -> str | None:
        """The new tree of directory ``p`` (None when it ends up empty; the root never is)."""
        items = dict(self.store.tree_items(under))
        subdirs: dict[str, str | None] = {}
        for e in by_parent.get(p, []):
            name = names.basename(e.path)
            if e.kind == DELETED:
                items.pop(name, None)
            elif refusal(name, e.mode) is not None:
                continue  # git refuses the name: left out, the entry stays (see _retirable)
            elif e.kind == FILE:
                assert e.fileid is not None
                try:
                    oid = pw.add_file(self.overlay.file_path(e.fileid))
                except FileNotFoundError as exc:
                    now = self.overlay.get(e.path)
                    if now is None or now.seq != e.seq or e.fileid.startswith(UPPER_FILE):
                        # replaced since the entries were read (an upper-layer file: the
                        # kernel renames and unlinks under a capture at any time)
                        raise _Raced(f"{e.path} was replaced while being captured") from exc
                    raise CorruptStateError(
                        f"overlay file of {e.path} is missing",
                        hint=f"bring it back with `avfs checkout {e.path} --from HEAD` or remove it",
                    ) from exc
                items[name] = (oid, e.mode)
            elif e.mode == MODE_TREE:
                subdirs[name] = e.oid
                items.pop(name, None)
            else:
                assert e.oid is not None
                items[name] = (e.oid, e.mode)
        # directories with changes below them but no entry of their own
        for name in sub_dirty.get(p, []):
            if name not in subdirs:
                existing = items.get(name)
                subdirs[name] = existing[0] if existing is not None and existing[1] == MODE_TREE else None
        for name, sub_oid in subdirs.items():
            child = names.join(p, name)
            if refusal(name, MODE_TREE) is not None:
                continue  # a directory git refuses (GIT~1, '.git '...): left out with all below it
            new: str | None
            if child in dirty:
                new = self._build(child, sub_oid, by_parent, dirty, sub_dirty, pw)
            else:
                new = (
                    sub_oid if sub_oid and sub_oid != EMPTY_TREE and self.store.tree_items(sub_oid) else None
                )
            items.pop(name, None)
            if new is not None:
                items[name] = (new, MODE_TREE)
        if not items and p:
            return None
        return pw.add(OBJ_TREE, tree_bytes((n, o, m) for n, (o, m) in items.items()))

    # -- checkpoint -----------------------------------------------------------------------
    def commit_overlay(
        self, message: str, *, allow_empty: bool = False, rebase: bool = True
    ) -> tuple[str | None, list[Entry]]:
        """Commit the overlay on the base and move the ref by CAS; returns (commit, captured).

        The commit is None when the tree equals the base tree (nothing to record). When the
        fork moved since the base (a push, a merge, a commit elsewhere), the changes are
        rebased onto the new tip with a three-way merge (``rebase``, when conflict-free);
        otherwise nothing changes and :class:`RefMovedError` (or, for conflicts,
        :class:`ConflictError` with the paths) says why.
        """
        from .merge import refuse_if_merging

        # an open merge's view holds conflict markers: only `merge --continue` commits it
        # (two parents), never a checkpoint, an exec's commit or any automatic one
        refuse_if_merging(self, "a checkpoint")
        base = self.base
        tip = self.tip()
        if tip is not None and tip != base and self.overlay.has_changes() and rebase:
            return self._rebase_commit(message, base, tip)
        if tip != base and self.overlay.has_changes():
            raise RefMovedError(
                f"fork {self.fork} moved to {tip} since this workspace was based on {base};"
                " your uncheckpointed changes are kept",
                hint="`avfs log` shows the new commits; `avfs checkpoint restore HEAD` adopts them"
                " (your changes are kept under a recovery ref, `avfs undo` brings them back)",
                details={"fork": self.fork, "expected": base, "current": tip},
            )
        # blobs, trees and the commit go into one pack (two files, whatever the count)
        pack = self.store.pack_writer()
        try:
            tree, captured = self.capture(pack)
            if tree == self.base_tree and not allow_empty:
                pack.abort()
                captured = self._retirable(captured, tree)
                if captured:
                    with self.overlay.txn() as db:
                        self.overlay.retire(db, captured)
                return None, captured
            commit = self.store.create_commit(tree, [base], message, self.vault.author(), pack=pack)
            pack.finish()
        except BaseException:
            pack.abort()
            raise
        # directories that end up empty are not in git's tree: keep their entries so the
        # workspace still shows them (git semantics: an untracked empty directory)
        seen = captured
        captured = self._retirable(captured, tree)
        self._publish(commit, base, captured, f"avfs: {message.splitlines()[0]}", seen=seen)
        return commit, captured

    def _publish(
        self,
        commit: str,
        expected: str,
        captured: list[Entry],
        reason: str,
        *,
        seen: list[Entry] | None = None,
    ) -> None:
        """Move the fork's ref from ``expected`` to ``commit`` (CAS) and retire what the
        commit holds, with a pending record so that a crash between the two is finished by
        the next :meth:`sync_base`. Entries the commit did not retire (in use, or written
        since) stay, on top of the new base."""
        upto = max((e.seq for e in captured), default=0)
        with self.overlay.txn():
            self.overlay.set_meta("pending", f"{expected} {commit}")
            self.overlay.set_meta("pending_seq", str(upto))
        try:
            refs.cas_update(self.store.repo, self.ref, commit, expected, reason)
        except BaseException:
            with self.overlay.txn():
                self.overlay.set_meta("pending", None)
                self.overlay.set_meta("pending_seq", None)
            raise
        with self.overlay.txn() as db:
            # a captured entry whose row went since (a rename or rm after the capture read
            # it) leaves its path showing the old base there: the new base must not show
            # the committed content in its place (the renamed file's old name came back)
            gone = [e.path for e in captured if e.seq > 0]
            have = self.overlay.get_many(gone) if gone else {}
            gone = [p for p in gone if p not in have]
            before = {p: self._lookup(p) for p in gone}
            self.retire_onto(db, captured, commit, seen=seen)
            for p, was in before.items():
                now = self._lookup(p)
                if (was is None) != (now is None) or (
                    was is not None and now is not None and (was.oid, was.mode) != (now.oid, now.mode)
                ):
                    if was is None:
                        self.overlay.put(db, Entry(p, DELETED, 0), "keep")
                    elif was.oid is not None:
                        self.overlay.put(db, Entry(p, OBJECT, was.mode, was.oid), "keep")
            self.overlay.set_meta("pending", None)
            self.overlay.set_meta("pending_seq", None)
        self._base_tree_cache = None
        self._base_moved(view_changed=False)

    def retire_onto(
        self, db: Any, captured: list[Entry], commit: str, *, seen: list[Entry] | None = None
    ) -> None:
        """In the overlay's transaction ``db``: retire the ``captured`` entries (``commit``
        holds them) and make ``commit`` the base, keeping what the upper layer's renamed
        directories show (:meth:`_pin_sources`; ``seen``: every entry the capture read,
        retirable or not, where those directories are looked for)."""
        sources = self._redirect_sources(seen if seen is not None else captured)
        vanishing, emptied = self._vanishing_dirs(commit)
        self.overlay.retire(db, captured)
        self.overlay.set_meta("base", commit)
        self._base_tree_cache = None
        self._pin_sources(db, {**{p: (n, False) for p, n in vanishing.items()}, **sources})
        for d in emptied:
            # git keeps no empty directory, the workspace does (as git's checkout leaves one)
            if self._lookup(d) is None:
                self.overlay.put(db, Entry(d, OBJECT, MODE_TREE, EMPTY_TREE_ID), "empty")
        if seen is not None:
            self._empty_kept_trees(db, seen, captured, commit)

    def _empty_kept_trees(self, db: Any, seen: list[Entry], retired: list[Entry], commit: str) -> None:
        """A directory entry the commit does not hold (it showed empty: ``mv a/x b/d`` then
        ``rm b/d/*``) stays, to keep the empty directory, while the deletions below it are
        retired with the commit: it must then show an empty tree, not the tree it was made
        from, or the removed files come back."""
        gone = {e.path for e in retired}
        tree = self.store.commit_tree(commit)
        for e in seen:
            if (
                e.seq
                and e.path
                and e.path not in gone
                and e.kind == OBJECT
                and e.mode == MODE_TREE
                and e.oid != EMPTY_TREE_ID
                and self.store.tree_lookup(tree, e.path) is None
            ):
                self.overlay.put(db, Entry(e.path, OBJECT, MODE_TREE, EMPTY_TREE_ID), "empty")

    def _mounted_without_upper(self) -> bool:
        """Whether a pure-FUSE mount of the fork is live (its kernel caches directories)."""
        from . import worktree

        return worktree.live_fuse_mount(self)

    def _vanishing_dirs(self, commit: str) -> tuple[dict[str, Node], list[str]]:
        """The directories the move to ``commit`` takes away from the base (all they held
        was removed, and git keeps no empty directory) while the workspace shows them:

        - those the upper layer holds as merge directories, as the lower layer holds them
          now: the kernel keeps them as merge directories whose lower half must stay
          readable (a rename of one records a redirect to it; a removal lists it): see
          :meth:`_pin_sources`;
        - the others, which stay as empty directories while a pure-FUSE mount is live (its
          kernel has them cached; a mounted tree behaves as a disk: a directory goes when
          it is removed); with nothing mounted such a directory goes at this checkpoint.

        Cost: the diff of the two trees (the changes), not the upper layer."""
        out: dict[str, Node] = {}
        emptied: list[str] = []
        old_tree, new_tree = self.base_tree, self.store.commit_tree(commit)
        if old_tree == new_tree:
            return out, emptied
        active = self.overlay.upper_active()
        mounted: bool | None = None
        changes: list[Change] = []
        diff_trees(self.store, old_tree, new_tree, "", changes)
        candidates: set[str] = set()
        for c in changes:
            for p in (c.path, c.old_path):
                if p:
                    candidates.update(names.ancestors(p))
                    candidates.add(p)
        for d in sorted(candidates):
            if not d:
                continue
            hit = self.store.tree_lookup(new_tree, d)
            if hit is not None and hit[1] == MODE_TREE:
                continue  # still a directory in the new base
            real = os.path.join(self.overlay.upper_dir, d)
            if not active or not os.path.isdir(real) or os.path.islink(real):
                if mounted is None:
                    mounted = self._mounted_without_upper()
                shown = self._lookup(d) if mounted else None
                if shown is not None and shown.is_dir:
                    emptied.append(d)
                continue
            r, opaque = upper.dir_marks(real)
            if r is not None or opaque:
                continue  # a redirect (see _redirect_sources) or hiding the lower layer
            lp = self.overlay.lower_path(d)
            if lp is None:
                continue
            node = self._lookup_lower(lp)
            if node is not None and node.is_dir and node.oid is not None:
                out[lp] = node
        return out, emptied

    def _redirect_sources(self, captured: list[Entry]) -> dict[str, tuple[Node, bool]]:
        """The lower layer's directories that the upper layer's renamed directories show
        (overlayfs ``redirect_dir``: ``mv d e`` in an overlay mount makes ``upper/e`` with
        an xattr naming ``d``, and a whiteout at ``d``), as the lower layer holds them now,
        with the directories on their way (``path -> (node, is a source)``): the kernel
        reaches a source by its path. Once the base moves (a checkpoint records ``e``, and
        ``d`` no more), the redirect still names ``d``, in the lower layer of the kernel's
        caches and of every reader: see :meth:`_pin_sources`."""
        out: dict[str, tuple[Node, bool]] = {}
        if not self.overlay.upper_active():
            return out
        for e in captured:
            if e.kind != OBJECT or e.mode != MODE_TREE or e.seq:
                continue  # a redirect is a directory of the upper layer (seq 0)
            if upper.redirect(os.path.join(self.overlay.upper_dir, e.path)) is None:
                continue
            src = self.overlay.lower_path(e.path)
            if src is None:
                continue
            node = self._lookup_lower(src)
            if node is None or node.oid is None or not node.is_dir:
                continue
            out[src] = (node, True)
            for a in names.ancestors(src):
                if a and a not in out:
                    got = self._lookup_lower(a)
                    if got is not None and got.oid is not None:
                        out[a] = (got, False)
        return out

    def _lookup_lower(self, path: str) -> Node | None:
        """What the view without the upper layer (an overlay mount's lower layer) has."""
        with self.overlay.without_upper():
            return self._lookup(path)

    def _pin_sources(self, db: Any, sources: Mapping[str, tuple[Node, bool]]) -> None:
        """After the base moved: each redirect source (``is a source``) the new lower layer
        no longer shows as it was, and each other directory (on a source's way, or a merge
        directory of the upper layer) the new lower layer lost, is pinned there with what
        it held (an entry the upper layer's whiteouts hide from the view), so that renamed
        and emptied directories keep their content in the mount, in status and
        checkpoints, and after a remount; the fold of the upper layer takes the pins away
        with the whiteouts. A directory pinned whole covers what is below it."""
        pinned: list[str] = []
        for path in sorted(sources):
            was, is_source = sources[path]
            if any(path.startswith(p + "/") for p in pinned):
                continue
            now = self._lookup_lower(path)
            gone = now is None or not now.is_dir
            if gone or (is_source and now is not None and (now.oid, now.mode) != (was.oid, was.mode)):
                self.overlay.put(db, Entry(path, OBJECT, was.mode, was.oid), "pin")
                pinned.append(path)

    def _base_moved(self, *, view_changed: bool) -> None:
        """After a move of the base by this process: the git index of a live mount of the
        fork follows before the move returns, and the mount shows the new view when it
        changed (see :mod:`.worktree`)."""
        from . import worktree

        worktree.sync_mounted(self, view_changed=view_changed)

    def _rebase_commit(self, message: str, base: str, tip: str) -> tuple[str | None, list[Entry]]:
        """Commit the overlay's changes on top of ``tip`` (the fork moved under them):
        libgit2 merges base -> overlay into base -> tip; the commit's one parent is ``tip``
        (a rebase: history stays linear). Conflicts change nothing and are raised."""
        from .errors import BusyError, ConflictError

        pack = self.store.pack_writer()
        try:
            tree, captured = self.capture(pack)
            pack.finish()  # libgit2 reads these objects; unreferenced if we stop here
        except BaseException:
            pack.abort()
            raise
        repo = self.store.repo
        tip_tree = self.store.commit_tree(tip)
        index = repo.merge_trees(self.base_tree, tip_tree, tree)
        if index.conflicts is not None:
            paths = sorted({(a or o or t).path for a, o, t in index.conflicts})
            raise ConflictError(
                f"fork {self.fork} moved to {tip} since this workspace was based on {base}, and"
                f" your uncheckpointed changes conflict with it in {len(paths)} path(s); they are kept",
                hint="`avfs checkpoint restore HEAD` adopts the new commits (your changes are kept"
                " under a recovery ref), or edit the paths so they no longer conflict",
                details={"fork": self.fork, "expected": base, "current": tip, "paths": paths},
            )
        merged = str(index.write_tree(repo))
        seen = captured
        captured = self._retirable(captured, tree)
        for e in captured:
            # a file a mount holds open keeps its entry after the commit (see retire): that is
            # only right when the merge left its content as the workspace shows it
            if (
                e.kind == FILE
                and e.fileid
                and self.overlay.in_use(e.fileid)
                and self.store.tree_lookup(merged, e.path) != self.store.tree_lookup(tree, e.path)
            ):
                raise BusyError(
                    f"{e.path} is open for writing and the moved fork changed it too",
                    hint="close it and checkpoint again",
                    details={"path": e.path, "expected": base, "current": tip},
                )
        if merged == tip_tree and not captured:
            return None, captured
        live = self._live_mount()
        if live is not None:
            # the lower layer becomes the merged commit, which the kernel would not see where
            # it caches the old base: what the moved fork changed is written through the mount
            # (before the ref moves: a failed move leaves those as changes, never a stale view)
            out: list[Change] = []
            diff_trees(self.store, self.base_tree, tip_tree, "", out)
            live.reset({p for c in out for p in (c.path, c.old_path) if p}, merged)
        commit = self.store.create_commit(merged, [tip], message, self.vault.author())
        self._publish(commit, tip, captured, f"avfs: {message.splitlines()[0]} (rebased)", seen=seen)
        return commit, captured

    def _retirable(self, captured: list[Entry], tree: str) -> list[Entry]:
        """The captured entries that ``tree`` (the commit's) now shows: an entry showing
        something at a path the commit does not hold (an empty new directory, a path git
        ignores, a name git refuses: see :mod:`.gitnames`) stays in the overlay."""
        return [e for e in captured if e.kind == DELETED or self.store.tree_lookup(tree, e.path) is not None]

    def set_base(self, base: str, *, keep_view: bool, view_tree: str | None = None) -> None:
        """Point the workspace at a new base (call with the fork lock held).

        Args:
            keep_view: keep what the workspace shows now (overlay kept, a root entry added
                when the base's tree differs); else the overlay is cleared and the workspace
                shows ``view_tree`` (or the new base's tree when None).
        """
        if not keep_view:
            live = self.live_dir()
            if live is not None:
                # the mount shows the new view by writes through it; the lower layer stays
                # what the kernel has of it: the upper layer's renamed directories keep the
                # lower trees they show (pinned where the new base differs)
                self._live_reset(live, view_tree or self.store.commit_tree(base))
                with self.overlay.txn() as db:
                    sources = self._redirect_sources(self.overlay.all())
                    vanishing, _ = self._vanishing_dirs(base)
                    self.overlay.set_meta("base", base)
                    self._base_tree_cache = None
                    self._pin_sources(db, {**{p: (n, False) for p, n in vanishing.items()}, **sources})
                self._base_tree_cache = None
                self._base_moved(view_changed=False)
                return
        kept: list[Entry] = []
        pins: list[Entry] = []
        have: set[str] = set()
        if not keep_view and not self.overlay.is_empty():
            # like git's checkout and reset --hard, paths git ignores stay (a venv keeps
            # working), unless the new view has something at their place
            entries = self.overlay.all()
            ign = self._ignored_in(entries)
            kept = [e for e in entries if ign.covers(e.path)]
            have = {e.path for e in kept}
            for t in sorted(ign.tops - have):
                node = self._lookup(t)
                if node is not None and node.oid is not None and node.entry is None:
                    pins.append(Entry(t, OBJECT, node.mode, node.oid))
        with self.overlay.txn() as db:
            if keep_view:
                cur_root = self.overlay.get("")
                if cur_root is None:
                    old_tree = self.base_tree
                    new_tree = self.store.commit_tree(base)
                    if old_tree != new_tree:
                        self.overlay.put(db, Entry("", OBJECT, MODE_TREE, old_tree), "rebase")
            else:
                if kept or pins:
                    keep = {(e.path, e.seq) for e in kept}
                    for e in self.overlay.all():
                        if (e.path, e.seq) not in keep:
                            self.overlay.remove(db, e.path, "reset")
                else:
                    self.overlay.clear(db, "reset")
                if view_tree is not None and view_tree != self.store.commit_tree(base):
                    self.overlay.put(db, Entry("", OBJECT, MODE_TREE, view_tree), "reset")
                self.overlay.set_meta("view_time", repr(float(_settled_now())))
            self.overlay.set_meta("base", base)
            self._base_tree_cache = None
            if kept or pins:
                for e in pins:
                    if self._lookup(e.path, skip_self=True) is None:
                        self.overlay.put(db, e, "reset")
                tops = sorted(
                    {e.path for e in pins}
                    | {e.path for e in kept if not any(a in have for a in names.ancestors(e.path))}
                )
                for t in tops:
                    if self._lookup(t, skip_self=True) is not None:
                        # the new view has something there: its version wins
                        self.overlay.remove_under(db, t, "reset")
                        self.overlay.remove(db, t, "reset")
                self._keep_parents(db, tops)
        self._base_tree_cache = None
        self._base_moved(view_changed=not keep_view)

    def _keep_parents(self, db: Any, paths: list[str]) -> None:
        """Make the directories above each of ``paths`` (entries kept over a new base)
        exist; where one is a file or symlink there, the kept entries go."""
        for p in sorted(paths):
            if self.overlay.get(p) is None:
                continue  # gone with an entry above it
            for a in names.ancestors(p)[1:]:
                node = self._lookup(a)
                if node is None:
                    self.overlay.put(db, Entry(a, OBJECT, MODE_TREE, EMPTY_TREE), "keep")
                elif not node.is_dir:
                    self.overlay.remove_under(db, a, "keep")
                    self.overlay.remove(db, a, "keep")
                    break

    def checkout_path(self, path: str, tree: str) -> None:
        """Make ``path`` show what it is in ``tree`` (absent there: removed here)."""
        p = _norm(path)
        hit = self.store.tree_lookup(tree, p)
        if p and self._resolve(names.parent_of(p), True) is None and hit is not None:
            self.mkdir(names.parent_of(p), parents=True)
        live = self.live_dir()
        if live is not None:
            if hit is None and self._lookup(p) is None:
                raise PathNotFoundError(f"{p}: not in that revision nor in the workspace")
            live.put(p, hit)
            return
        with self.overlay.txn() as db:
            if hit is None:
                if self._lookup(p) is None:
                    raise PathNotFoundError(f"{p}: not in that revision nor in the workspace")
                self._discard(db, p, "checkout")
                return
            self.overlay.remove_under(db, p, "checkout")
            origin = self._origin(p) if self._lookup(p, skip_self=True) is not None else None
            self.overlay.put(db, Entry(p, OBJECT, hit[1], hit[0], None, origin), "checkout")

    def materialize_to(self, dest: str, progress: Callable[[int], None] | None = None) -> int:
        """Write the workspace's files into local directory ``dest``; returns the file count."""
        count = 0
        for de in self.walk(""):
            target = os.path.join(dest, de.path)
            if de.kind is NodeKind.DIR:
                os.makedirs(target, exist_ok=True)
            elif de.kind is NodeKind.SYMLINK:
                os.symlink(self.read_link(de.path), target)
            elif de.kind is NodeKind.FILE:
                n = self.resolve(de.path, follow=False)
                with open(target, "wb") as fh:
                    fh.write(self._read_node(n))
                if n.mode == MODE_EXEC:
                    os.chmod(target, 0o755)
                count += 1
                if progress:
                    progress(count)
        return count


# reads of the overlay a capture makes before it gives up (busy) while writers keep replacing
# files under it; a retry only re-reads entries (objects already packed stay as duplicates).
# 5 was too few with 7 threads rewriting one file while the ignore rules are applied (CI)
_RACE_TRIES = 16


class _Raced(CorruptStateError):
    """An entry read a moment ago was replaced, and the file it named unlinked, by a write
    of another thread or process: read, stat and capture look again (a few times)."""


def _settled_now() -> int:
    """Now, in whole seconds, one second back: a file time git's index can trust at once
    (an entry as new as the index file itself is "racily clean" and gets re-read)."""
    return int(time.time()) - 1


def _covered(path: str, dirs: frozenset[str]) -> bool:
    """True when ``path`` is one of ``dirs`` or lies below one."""
    if path in dirs:
        return True
    i = path.find("/")
    while i >= 0:
        if path[:i] in dirs:
            return True
        i = path.find("/", i + 1)
    return False


def _file_mode(mode: int | None, old: int | None) -> int:
    if mode is None:
        return old if old in (MODE_BLOB, MODE_EXEC) else MODE_BLOB
    if mode in (0o644, MODE_BLOB):
        return MODE_BLOB
    if mode in (0o755, MODE_EXEC):
        return MODE_EXEC
    raise InvalidPathError(f"invalid file mode {oct(mode)}: use 644 or 755")


def _unlink_quiet(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
