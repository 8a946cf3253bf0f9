"""Which commit a workspace is based on, and following its fork's ref: first use, a
checkpoint's crash finished, a ref moved by another hand (a push, ``git commit`` in the
mount) adopted when that is safe, and a new base set (restore, undo, pull).

The functions take the workspace as a :class:`Based` (what they need of it), so that this
module does not import :mod:`.workspace` (which is built on it)."""

from __future__ import annotations

import os
import time
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

from ..errors import CorruptStateError
from ..store import names
from ..store.gitstore import EMPTY_TREE
from ..store.treediff import diff_trees
from ..types import MODE_COMMIT, MODE_TREE, VIEW_RESETS, Change
from . import wsretire
from .livedir import LiveDir
from .overlayentry import FILE, OBJECT, Entry, split_at
from .wsattrs import converted_record, file_oids
from .wssmudge import reformed
from .wstip import Based as Based
from .wstip import _keep_parents, take_tip
from .wsview import settled_now

if TYPE_CHECKING:
    from .overlay import Overlay


def sync_base(ws: Based) -> bool:
    """Settle the base against the fork's ref (first use, crash recovery, moved refs).

    - a checkpoint interrupted after its ref moved is finished (its entries retired);
    - with an empty overlay the base simply follows the ref (a push or `git commit`
      into the vault is picked up: there is nothing to lose);
    - with a non-empty overlay and a moved ref: when the new commits only recorded
      what the workspace already shows (``git commit`` inside the mount), the new tip
      becomes the base and the view is kept; where the fork is mounted, paths the
      commits changed and the person did not follow them (:mod:`.wsadopt`, gitmodel21);
      otherwise the base stays, and the next checkpoint rebases the changes onto the
      new tip or (``rebase=False``) stops with :class:`RefMovedError`.

    Returns False when the fork's ref is gone (the fork was deleted), else True.
    """
    if ws.pinned is not None:
        return True
    ov = ws.overlay
    meta = ov.get_metas("base", "pending")  # one read: every vault.workspace() comes here
    base, pending = meta.get("base"), meta.get("pending")
    tip = ws.tip()  # read after base: a tip older than the base is never adopted
    if pending is None and base is not None and base == tip:
        return True  # the common case: nothing to settle, no write transaction
    if tip is None:
        if base is None:
            raise CorruptStateError(f"fork {ws.fork} has no commit")
        return False
    if pending is not None:
        _recover_pending(ws)
    if base is not None and ws.moved_here(tip):
        # git in the fork's mount moved its branch (commit, amend, reset, rebase, merge...):
        # the mount's files are the working tree, the ref is what is committed; the base
        # becomes the ref, the view stays, whatever the two commits' relation
        try:
            follow_git(ws)
        except Exception as exc:
            _unless_no_room(exc)
        return True
    if base is not None and ws.moved_here(tip, off_branch=True):
        # the same, where git has left the branch since (`git rebase -i` stopped before
        # its first pick, `git checkout --detach HEAD~2`: its HEAD log's last move is not
        # the branch's): git's files and index are its HEAD's, not the branch's, and stay
        # so (a view made the branch's wrote the branch's files under git's open rebase,
        # and its index entries; gitmodel12); its index is not stamped (not the base's)
        try:
            follow_git(ws, git_moved=True)
        except Exception as exc:
            _unless_no_room(exc)
        return True
    status = dirty_status(ws) if base is not None and ov.has_changes() else None
    if base is not None and status:
        # the ref moved under uncheckpointed changes: adopt it when that is safe, and
        # never while a checkpoint of this fork runs (it holds the fork lock, and its
        # ref move is not finished until it retired what it captured)
        from ..errors import BusyError
        from . import wsadopt  # (only where another hand moved the ref: not every command's)

        try:
            with ws.fork_lock(wait_s=0):
                # the status just read, passed on (adopt2: it was read again, and what the
                # commit changed compared twice, by each step of the adoption)
                was, now = ov.get_meta("base"), ws.tip()
                if wsadopt.left_behind(ws) or (was != base and was is not None):
                    status = ws.changes.status()  # (a checkpoint's move came first, or a killed swap's)
                plan = wsadopt.plan(ws, was, now, status) if was and now and was != now else None
                ws.unadopted = None if plan is None else wsadopt.settle(ws, plan)
        except BusyError:
            pass
        except Exception as exc:
            # no room in the fork's state for the move (a full quota or disk: a read of a
            # full fork must answer): the base stays, as while another hand holds the lock
            _unless_no_room(exc)
        return True
    from ..errors import BusyError as _Busy

    if base is None:
        _follow_ref(ws)  # first use: nothing to lose, nothing to race with
        return True
    try:
        # under the fork lock, never waiting: an operation that holds it (an undo moving
        # the ref back before it puts the view back) finishes the job itself
        with ws.fork_lock(wait_s=0):
            _follow_ref(ws)
    except _Busy:
        pass
    except Exception as exc:
        _unless_no_room(exc)  # (the same: the next command with room follows the ref)
    return True


def first_view_time(ws: Based) -> float:
    """A workspace's first view time (``Workspace.view_time``): its base commit's time, or
    now if that is later, kept in the overlay. Where the fork's state has no room to keep
    it (:mod:`.noroom`) it is worked out again at the next ask, the same (a read of a full
    fork answers)."""
    t = float(min(ws.store.commit_time(ws.base), settled_now()))
    try:
        ws.overlay.set_meta("view_time", repr(t))
    except Exception as exc:
        _unless_no_room(exc)
    return t


def _unless_no_room(exc: Exception) -> None:
    """Raise ``exc`` again unless it is a write the fork's state had no room for
    (:mod:`.noroom`). A base move :func:`sync_base` could not write is left to the next
    command that opens the fork with room: meanwhile the base stays where it was, `avfs
    status` says the fork moved since (``stale``), and a checkpoint rebases onto the ref,
    as where another hand held the fork's lock; nothing the fork shows is lost."""
    from .noroom import cannot_write

    if not cannot_write(exc):
        raise exc


# the journal's operations of a base move that keeps the view (take_tip and what it calls):
# entries that keep showing what was shown, written by no one (an exec's "what the command
# wrote" leaves them out: on pure FUSE, `git reset --soft` in an exec got a commit of the
# files the reset left staged, as if the command had written them; the git model, gitmodel2)
BASE_MOVE_OPS = frozenset({"git", "keep", "empty", "pin"})


def follow_git(ws: Based, *, wait_s: float | None = 0, git_moved: bool = False) -> bool:
    """Take the fork's ref as the base, keeping the view, when git in the fork's mount
    made its last move (:meth:`Based.moved_here`, or ``git_moved``: the caller read it so
    from a worktree no longer live); True when it did (or nothing was to do). Under the
    fork lock (``wait_s``: how long to wait for it; a checkpoint holding it calls with it
    held and the lock reentrant), never while a checkpoint's move is pending."""
    from ..errors import BusyError

    ov = ws.overlay
    base, tip = ov.get_meta("base"), ws.tip()
    if base is None or tip is None or base == tip:
        # nothing to do, as the transaction below would find: every checkpoint asks first,
        # and a write transaction (the lock, BEGIN IMMEDIATE, COMMIT) to read two values
        # was one of three a save made on the overlay. The base is read before the ref,
        # as there: a ref that moves after the check is what a CAS of the ref catches.
        return True
    try:
        # the index guard held from the move to its stamp: a pure-FUSE daemon's refresh of
        # the index (on seeing the base move) finds it stamped, and leaves what git staged
        with ws.fork_lock(wait_s=wait_s), ws.index_guard():
            _keep_git_forms(ws, git_moved)
            with ov.txn() as db:
                base, tip = ov.get_meta("base"), ws.tip()
                if base is None or tip is None or base == tip:
                    return True
                if ov.get_meta("pending") is not None or not (git_moved or ws.moved_here(tip)):
                    return False
                take_tip(ws, db, base, tip)
            # once the move is committed (see sync_base): git's index is right as it is
            ws.stamp_index(held=True)
    except BusyError:
        return False
    return True


def _keep_git_forms(ws: Based, git_moved: bool) -> None:
    """Before :func:`follow_git` takes git's commit as the base (the fork lock held, outside
    the overlay's transactions): where the commit changed a ``.gitattributes``, the files
    it left alone keep the bytes the mount shows, as git's work tree keeps them after its
    own `commit`, `merge` or `reset` (:func:`.wsforms.keep_forms`, as a checkpoint's move
    does). Before (gitmodel19), the new base's form showed: on pure FUSE at once, on the
    overlay backend once the kernel dropped a file's pages, cut to the old form's size
    (`one\\r` for `one\\n`): the every-command run's `src/attrs/validators.py`."""
    ov = ws.overlay
    base, tip = ov.get_meta("base"), ws.tip()
    if base is None or tip is None or base == tip or ov.get_meta("pending") is not None:
        return
    from .wsforms import keep_forms, moved_paths
    from .wssmudge import attribute_dirs

    old_tree, new_tree = ws.store.commit_tree(base), ws.store.commit_tree(tip)
    moved = moved_paths(ws, old_tree, new_tree)  # (O(changes): the trees' differing paths)
    if attribute_dirs(moved) and (git_moved or ws.moved_here(tip)):
        keep_forms(ws, old_tree, new_tree, moved)


def changed_since_base(ws: Based) -> bool:
    """Whether the workspace holds a change git would see: :meth:`.wsstatus.Changes.is_dirty`,
    and where that counts entries without reading them (no upper layer: a tracked file
    written with its own bytes again, `git stash` writing a file back), a status, which
    compares them. A move of the ref by another hand is followed where there is none
    (found in gitmodel13: on pure FUSE such a file kept the base, the mount showed the old
    commit and git's index staged the new commit's files deleted)."""
    return dirty_status(ws) is not None


def dirty_status(ws: Based) -> list[Change] | None:
    """The workspace's status where it holds a change git would see (as
    :func:`changed_since_base` tells), else None: read once where the status is read at
    all, and passed on to an adoption (:mod:`.wsadopt`), which reads it."""
    if ws.overlay.upper_active():
        # (the upper layer keeps what checkpoints recorded while it was mounted: the status
        # decides, as Changes.is_dirty's would)
        return ws.changes.status() or None
    if not ws.changes.is_dirty():
        return None
    return ws.changes.status() or None


def _follow_ref(ws: Based) -> None:
    ov = ws.overlay
    if _follow_ref_live(ws):
        return
    base, tip = ov.get_meta("base"), ws.tip()
    if base is not None and tip is not None and base != tip and ws.changes.is_dirty():
        if not changed_since_base(ws):
            # entries that show the base as it is: the move is taken as a restore of the
            # new commit (paths git ignores kept), so none of them keeps showing the old one
            set_base(ws, tip, keep_view=False)
        return
    moved = False
    with ov.txn() as db:
        base = ov.get_meta("base")
        tip = ws.tip()
        if tip is None or base == tip:
            return
        if base is None:
            seed = _read_seed(ws)
            if seed is not None:
                # a fork of a workspace with changes starts with them (vault.create_fork)
                ov.set_meta("base", seed[0])
                ov.put(db, Entry("", OBJECT, MODE_TREE, seed[1]), "fork")
            else:
                ov.set_meta("base", tip)
        elif not ws.changes.is_dirty():
            # nothing but empty directories and paths git ignores: follow the ref; where
            # the new base has something at such a path, the base's version wins
            tree = ws.store.commit_tree(tip)
            for e in ov.all():
                if ws.store.tree_lookup(tree, e.path) is not None:
                    ov.remove(db, e.path, "follow")
            ov.set_meta("base", tip)
            _keep_parents(ws, db, [e.path for e in ov.all()])
            new_view(ov)
            moved = True
    if moved:
        # as a restore does (set_base): a pure-FUSE mount of the fork shows the new view,
        # its git index the new base, before the call returns (mount/live.py sync_mounted)
        ws.base_moved(view_changed=True)


def _follow_ref_live(ws: Based) -> bool:
    """:func:`_follow_ref` for a fork with a live overlay mount (the fork lock held):
    the kernel caches the mount's lower layer for good, so a base that simply moved
    under it would show the old bytes, or the new ones cut to the old size. The new
    commit is written through the mount instead, as a restore is (an open file keeps
    what it had), and then becomes the base. True when it did (or nothing was to do)."""
    if ws.live_mount() is None:
        return False
    base, tip = ws.overlay.get_meta("base"), ws.tip()
    if base is None or tip is None or base == tip:
        return base is not None
    if changed_since_base(ws):
        return True  # uncheckpointed changes: the base stays (sync_base's rule)
    set_base(ws, tip, keep_view=False)
    return True


def _converted_kept(ws: Based, entries: list[Entry], target: str, *, keep_forms: bool = False) -> list[Entry]:
    """The entries of files a checkpoint converted (a CRLF file kept over its LF blob:
    :mod:`.wsattrs`) that a move to the view ``target`` leaves as they are, as `git reset
    --hard` leaves a file its index holds unchanged: the path's blob the same in the base
    and in the target, and the file still what `git add` stores as that blob. But for a
    merge's move (``keep_forms``), not those whose checkout form a changed
    ``.gitattributes`` changes: a restore and an undo show them as a fresh checkout does,
    as an overlay mount's move writes them (:func:`_live_reset`)."""
    converted = converted_record(ws.overlay)
    if not converted:
        return []
    files: list[tuple[str, Entry]] = []
    for e in entries:
        if e.path in converted and e.kind == FILE:
            held = ws.store.tree_lookup(ws.base_tree, e.path)
            if held is not None and held == ws.store.tree_lookup(target, e.path):
                files.append((e.path, e))
    if files and not keep_forms:
        changes: list[Change] = []
        diff_trees(ws.store, ws.base_tree, target, "", changes)
        moved = {q for c in changes for q in (c.path, c.old_path) if q}
        anew = set(reformed(ws.store, ws.base_tree, target, moved, ws.fork))
        files = [(p, e) for p, e in files if p not in anew]
    got = file_oids(ws.view, files, None) if files else {}
    return [e for p, e in files if (got[p], e.mode) == ws.store.tree_lookup(target, p)]


def _read_seed(ws: Based) -> tuple[str, str] | None:
    path = os.path.join(ws.state_dir, "seed")
    try:
        with open(path, encoding="ascii") as fh:
            base, tree = fh.read().split()
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise CorruptStateError(f"unreadable fork seed {path}: {exc}") from exc
    return base, tree


def _recover_pending(ws: Based) -> None:
    """Finish or drop a checkpoint whose process died between its steps.

    Only when the fork lock is free: a live checkpoint holds it, and its pending
    record is not ours to settle.
    """
    from ..errors import BusyError

    ov = ws.overlay
    try:
        with ws.fork_lock(wait_s=0), ov.txn():
            pending = ov.get_meta("pending")
            if pending is None:
                return
            _old, new = pending.split(" ", 1)
            if ws.tip() == new:  # the ref moved: the captured entries are in the commit
                wsretire.finish(ws, new, int(ov.get_meta("pending_seq") or "0"))
            ov.set_meta("pending", None)
            ov.set_meta("pending_seq", None)
    except BusyError:
        return


def new_view(ov: Overlay, *, keep_time: bool = False) -> None:
    """What the workspace shows changed wholesale (a restore, an undo, the ref followed): a
    new view time (files unchanged since the base show it) and one more ``view_moves``, by
    which a pure-FUSE mount's watcher tells such a move from one that keeps the view (a
    checkpoint) when the view time, in whole seconds, cannot (fuse/invalidate.py: it then
    has the kernel look every name up again).
    ``keep_time``: a merge's, which adds and removes names but leaves the files it does
    not write at their times: ``view_moves`` alone (without it a pure-FUSE mount kept the
    kernel's entries of the old view: a file the merge added was not found, gitmodel)."""
    if not keep_time:
        ov.set_meta("view_time", repr(float(settled_now())))
    ov.set_meta("view_moves", str(int(ov.get_meta("view_moves") or 0) + 1))


def view_reset(ov: Overlay) -> None:
    """One more view set wholesale (:data:`.types.VIEW_RESETS`), on either backend (an
    overlay mount's is written through the mount, with no new view time): what ends an
    open merge (mergestate.peek_state), whatever the workspace then shows."""
    ov.set_meta(VIEW_RESETS, str(int(ov.get_meta(VIEW_RESETS) or 0) + 1))


def set_base(
    ws: Based,
    base: str,
    *,
    keep_view: bool,
    view_tree: str | None = None,
    keep_forms: bool = False,
    same_view: bool = False,
    changes: list[Change] | None = None,
    index_after: bool = False,
    written_ns: int | None = None,
) -> None:
    """Point the workspace at a new base (call with the fork lock held).

    Args:
        keep_view: keep what the workspace shows now (overlay kept, a root entry added
            when the base's tree differs); else the overlay is cleared and the workspace
            shows ``view_tree`` (or the new base's tree when None).
        keep_forms: a merge's move (git's ``merge`` rewrites only the files whose blob
            changes): the files whose checkout form alone a changed ``.gitattributes``
            changes keep the bytes the mount showed (:func:`.wsforms.keep_forms`, recorded
            converted); else (a restore, an undo: a fresh checkout) written in the new form.
        same_view: a merge's move too: the files it leaves keep the times they showed (the
            view time stays, as ``git merge`` leaves the files it does not write), and those
            it writes show its time (``written_ns``, default now: a merge's index written
            ahead gave them that one, mount/indexahead.py); else (a restore, an undo) every
            file shows a new view time. On the pure-FUSE mount a merge showed every file at
            the merge's time: every ``.pyc`` stale, every object ``make`` built older than
            its sources (tests/test_realdata3.py).
        changes: the workspace's status the caller read just before, under the fork lock
            (a merge's move into a live mount: its recovery's look), not read again.
        index_after: a live mount's git index is the caller's to write right after (a
            merge's conflicts: their state's write, mergestate.py ``write_state``).
    """
    keeping: AbstractContextManager[None] = nullcontext()
    if not keep_view:
        live, kept = ws.live_dir_and_kept_tops()
        if live is None:
            keeping = _keeping_upper(ws, view_tree or ws.store.commit_tree(base), kept)
        if live is not None:
            # the mount shows the new view by writes through it; the lower layer stays
            # what the kernel has of it: the upper layer's renamed directories keep the
            # lower trees they show (pinned where the new base differs)
            tree = view_tree or ws.store.commit_tree(base)
            reset = _live_reset(ws, live, tree, keep_forms=keep_forms, changes=changes)
            with ws.overlay.txn() as db:
                sources = wsretire.redirect_sources(ws, wsretire.seen_after(ws, reset))
                vanishing, _ = wsretire.vanishing_dirs(ws, base)
                ws.overlay.set_meta("base", base)
                wsretire.pin_sources(ws, db, {**{p: (n, False) for p, n in vanishing.items()}, **sources})
                view_reset(ws.overlay)
            ws.base_moved(view_changed=True, index=not index_after)  # (only the index follows)
            return
    with keeping:
        _move(ws, base, keep_view=keep_view, view_tree=view_tree, keep_forms=keep_forms, same_view=same_view,
              written_ns=written_ns)  # fmt: skip
    ws.base_moved(view_changed=not keep_view, index=not index_after)


def _keeping_upper(
    ws: Based, new_tree: str, kept: frozenset[str] | None = None
) -> AbstractContextManager[None]:
    """Where an unmounted upper layer holds nothing but new directories git ignores
    (:meth:`.workspace.Workspace.live_dir_for_move` folded the rest) and the new view has
    nothing at their places, the move reads and writes the database's entries only: the
    upper layer stays as it is, shown over the new base (as a live mount's is). Where the
    new view has something at one, the layer is folded first (the view's version wins
    there as over any ignored entry, :func:`_yield_to_view`). ``kept``: what
    :meth:`~.workspace.Workspace.live_dir_and_kept_tops` just left there (the same
    answer, not asked again), None: asked here."""
    if not ws.overlay.upper_active():
        return nullcontext()
    keep = ws.upper_kept_tops() if kept is None else kept
    if (
        keep
        and ws.overlay.upper_holds_only(keep)
        and all(ws.store.tree_lookup(new_tree, t) is None for t in keep)
    ):
        return ws.overlay.without_upper()
    ws.live_dir()  # (folds what is left)
    return nullcontext()


def _move(
    ws: Based,
    base: str,
    *,
    keep_view: bool,
    view_tree: str | None,
    keep_forms: bool = False,
    same_view: bool = False,
    written_ns: int | None = None,
) -> None:  # (:func:`set_base` on the overlay's entries: no live mount)
    kept: list[Entry] = []
    same: list[Entry] = []  # (kept over the same blob in the new view: not a top below)
    pins: list[Entry] = []
    have: set[str] = set()
    rest: list[Entry] = []  # (the entries the move drops: neither ignored nor kept over the same blob)
    if not keep_view and not ws.overlay.is_empty():
        # like git's checkout and reset --hard, paths git ignores stay (a venv keeps
        # working), unless the new view has something at their place; below a new
        # directory git ignores (a node_modules) nothing is read, as git never looks there
        entries, unread = (
            (ws.overlay.all(), frozenset()) if ws.overlay.upper_active() else ws.changes.pruned()
        )
        ign = ws.changes.ignored_in(entries, skip=unread)
        rest, kept = split_at(entries, ign.tops)  # (passing an ignored tree by as a whole)
        for t in sorted(unread):  # the entry at each, or where there is none what is below
            own = ws.overlay.get(t)
            kept += [own] if own is not None else ws.overlay.under(t)
        kept.sort(key=lambda e: e.path)
        same = _converted_kept(ws, rest, view_tree or ws.store.commit_tree(base), keep_forms=keep_forms)
        kept += same
        have = {e.path for e in kept}
        rest = [e for e in rest if e.path not in have]
        for t in sorted(ign.tops - have):
            node = ws.view.lookup(t)
            if node is not None and node.oid is not None and node.entry is None:
                pins.append(Entry(t, OBJECT, node.mode, node.oid))
    rewritten = [] if keep_view else _rewritten(ws, view_tree or ws.store.commit_tree(base), rest)
    with ws.overlay.txn() as db:
        if keep_view:
            cur_root = ws.overlay.get("")
            if cur_root is None:
                old_tree = ws.base_tree
                new_tree = ws.store.commit_tree(base)
                if old_tree != new_tree:
                    ws.overlay.put(db, Entry("", OBJECT, MODE_TREE, old_tree), "rebase")
        else:
            if kept or pins:
                for e in rest:
                    ws.overlay.remove(db, e.path, "reset")
            else:
                ws.overlay.clear(db, "reset")
            if view_tree is not None and view_tree != ws.store.commit_tree(base):
                ws.overlay.put(db, Entry("", OBJECT, MODE_TREE, view_tree), "reset")
            new_view(ws.overlay, keep_time=same_view)
            view_reset(ws.overlay)
            now = time.time_ns() if written_ns is None else written_ns
            ws.overlay.keep_times(db, [(p, oid, now, now) for p, oid in rewritten])
        ws.overlay.set_meta("base", base)
        if kept or pins:
            for e in pins:
                if ws.view.lookup(e.path, skip_self=True) is None:
                    ws.overlay.put(db, e, "reset")
            tops = sorted({e.path for e in pins} | _tops_of(kept, have) - {e.path for e in same})
            for t in tops:
                _yield_to_view(ws, db, t)
            _keep_parents(ws, db, tops)


def _tops_of(kept: list[Entry], have: set[str]) -> set[str]:
    """The paths of ``kept`` no other path of ``have`` holds: in path order, what follows one
    below it is passed by a prefix test (a kept ``node_modules``: not its 15,000 entries)."""
    out: set[str] = set()
    below = "\0"
    for e in kept:
        p = e.path
        if p.startswith(below):
            continue
        if not any(a in have for a in names.ancestors(p)):
            out.add(p)
            below = p + "/"
    return out


def _rewritten(ws: Based, new_tree: str, dropped: list[Entry]) -> list[tuple[str, str]]:
    """``(path, blob id)`` of the files a reset to ``new_tree`` shows other bytes or another
    kind at (the paths git's checkout would write): they show the time of the reset, as
    written files do (the others the view time, a second back: git's index trusts that at
    once): a build made the second before, from what they held, is older than them.
    Cost: the overlay's entries the reset drops (``dropped``: not those it keeps) and the
    two bases' differences."""
    root = ws.overlay.get("")
    old_tree = (
        root.oid if root is not None and root.kind == OBJECT and root.mode == MODE_TREE else ws.base_tree
    )
    changes: list[Change] = []
    diff_trees(ws.store, old_tree, new_tree, "", changes)
    out = {c.path: c.new_oid for c in changes if c.new_oid and c.new_mode not in (MODE_TREE, MODE_COMMIT)}
    for e in dropped:
        if not e.path:
            continue
        hit = ws.store.tree_lookup(new_tree, e.path)
        if hit is None or hit[1] == MODE_COMMIT:
            continue
        if hit[1] != MODE_TREE:
            out[e.path] = hit[0]
            continue
        sub: list[Change] = []
        old = e.oid if e.kind == OBJECT and e.mode == MODE_TREE and e.oid else EMPTY_TREE
        diff_trees(ws.store, old, hit[0], e.path, sub)
        out.update(
            (c.path, c.new_oid) for c in sub if c.new_oid and c.new_mode not in (MODE_TREE, MODE_COMMIT)
        )
    return sorted((p, oid) for p, oid in out.items() if oid is not None)


def _yield_to_view(ws: Based, db: Any, top: str) -> None:
    """Where the new view has something at kept entry ``top``, its version wins; but a kept
    directory and a directory of the view merge, as git's reset --hard leaves an ignored
    file in a directory it writes: what is kept below goes only where the view has a path."""
    node = ws.view.lookup(top, skip_self=True)
    if node is None:
        return
    own = ws.overlay.get(top)
    if not node.is_dir or own is None or own.kind != OBJECT or own.mode != MODE_TREE:
        ws.overlay.remove_under(db, top, "reset")
        ws.overlay.remove(db, top, "reset")
        return
    ws.overlay.remove(db, top, "reset")
    for e in sorted(ws.overlay.under(top), key=lambda e: e.path):
        if ws.overlay.get(e.path) is not None:  # (not gone with a directory above it)
            _yield_to_view(ws, db, e.path)


def _live_reset(
    ws: Based,
    live: LiveDir,
    target_tree: str,
    *,
    keep_forms: bool = False,
    changes: list[Change] | None = None,
) -> set[str]:
    """Make the live mount show ``target_tree`` (paths git ignores stay, as git's
    checkout keeps them): the paths that differ from it now are rewritten through the
    mount point; the lower layer is not touched. Returns those paths. ``keep_forms``,
    ``changes`` (the status, read just before): see :func:`set_base`."""
    paths: set[str] = set()
    for c in ws.changes.status() if changes is None else changes:
        paths.add(c.path)
        if c.old_path:
            paths.add(c.old_path)
    out: list[Change] = []
    diff_trees(ws.store, ws.base_tree, target_tree, "", out)
    for c in out:
        paths.add(c.path)
        if c.old_path:
            paths.add(c.old_path)
    # and the files a changed .gitattributes shows in another form (their blobs the same),
    # but where a merge keeps them as they are (written through the mount already)
    if not keep_forms:
        paths.update(reformed(ws.store, ws.base_tree, target_tree, paths, ws.fork))
    live.reset(paths, target_tree)
    return paths
