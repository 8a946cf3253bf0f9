"""Another hand's commit onto a fork (a push, `git --git-dir=VAULT commit-tree` and
`update-ref`, a linked worktree's commit outside the mount) adopted as the base while the
workspace holds uncheckpointed changes: :func:`settle`, called by :func:`.wsbase.sync_base`.

Until gitmodel21 only a commit that recorded nothing the workspace did not already show
was adopted (the view kept whole); one that changed a file the workspace shows as the old
base has it stayed unadopted: `avfs status` said stale, and git in the mount showed the
commit's change as a staged reversion (`M  a.txt`) until the next checkpoint rebased the
changes onto it. Now, where the fork is mounted, such paths (the commit changes them, the
person touched neither them nor a directory above or below them, the view shows the old
base's entry there) follow the commit, as `git merge --ff-only` carries local changes
over a fast-forward: on a live overlay mount written through the mount first (its kernel
caches the lower layer), elsewhere by the base's move itself. A path both changed
otherwise still leaves the commit unadopted (the next checkpoint three-way merges, or
stops on a conflict), as `git merge` refuses to overwrite local changes.

The steps, each taking the one before's result (adopt2, the thirty-third round): the
:class:`Plan` (:func:`plan`: what the commit changed, from the status the caller read once,
which paths follow it, which the person changed too); :func:`place` (on a live overlay
mount each path written through the mount, what the mount shows there compared with the
old base's entry, content and mode, just before: a file the person wrote since the status
is left alone and the adoption refused); :func:`adopt` (in the overlay's transaction,
under the fork lock: the base and the tip read again, the paths written or followed
checked again, the move); :func:`put_back` (a refused adoption's written files that still
hold what was written, made the old base's again). Before, the files were written before
anything was confirmed and left where the adoption then failed (the person wrote one of
them meanwhile, or the tip moved again): they showed as the person's own changes, which
the next checkpoint committed as theirs; and a file the person wrote between the status
and the write was overwritten, or on pure FUSE its entry dropped by the move. Left: a write
landing between one file's compare and its write (or its put back) is lost (the round's
review; a swap by ``renameat2(RENAME_EXCHANGE)`` and a check of what it swapped out would close it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import InternalError
from ..store import names
from ..store.treediff import diff_trees
from ..types import Change, Refused
from .overlayentry import Entry
from .wsattrs import file_oids
from .wstip import Based, take_tip

Held = tuple[str, int] | None  # what a tree holds at a path: (oid, mode), or nothing


@dataclass(frozen=True, slots=True)
class Plan:
    """Adopting ``tip`` over ``base`` as one status showed the workspace (:func:`plan`)."""

    base: str
    tip: str
    changed: tuple[Change, ...]  # what tip's commits changed since base
    follow: frozenset[str]  # the paths that follow tip (the person did not touch them)
    shown: bool  # the workspace shows what tip changed at every other path
    conflicts: tuple[str, ...]  # paths tip changed that the person changed otherwise
    live: bool  # ``follow`` is written through a live overlay mount (:func:`place`)


def _changed(ws: Based, base: str, tip: str) -> list[Change] | None:
    """What ``tip`` changed since ``base`` (None: it does not descend from it)."""
    try:
        if not ws.store.descendant_of(tip, base):
            return None
    except InternalError:  # libgit2 cannot tell (an id missing or malformed)
        return None
    changed: list[Change] = []
    diff_trees(ws.store, ws.store.commit_tree(base), ws.store.commit_tree(tip), "", changed)
    return changed


def differing(ws: Based, want: dict[str, Held]) -> list[str]:
    """The paths of ``want`` where the workspace does not show what it names (a file's
    content compared as `git add` stores it, its mode; None: nothing there), sorted."""
    out: set[str] = set()
    files: list[tuple[str, Entry]] = []
    for p, held in want.items():
        node = ws.view.lookup(p)
        if held is None:
            if node is not None and not node.is_dir:
                out.add(p)
        elif node is None or node.is_dir or node.mode != held[1]:
            out.add(p)
        elif node.materialized and node.entry is not None:
            files.append((p, node.entry))
        elif ws.view.entry_oid(node) != held[0]:
            out.add(p)
    got = file_oids(ws.view, files, None) if files else {}
    out.update(p for p, oid in got.items() if (h := want[p]) is not None and oid != h[0])
    return sorted(out)


def _new(c: Change) -> Held:
    return None if c.new_oid is None or c.new_mode is None else (c.new_oid, c.new_mode)


def plan(ws: Based, base: str, tip: str, status: list[Change]) -> Plan | None:
    """What adopting ``tip`` over ``base`` takes, ``status`` the workspace's (read once by
    the caller); None when ``tip`` does not descend from ``base``. Where the fork is
    mounted, ``follow``: the paths ``tip`` changed that the workspace shows as ``base``
    has them, untouched by the person (no change of theirs at the path, above it or below
    it, no entry of the overlay above it off a live mount): the view can show ``tip``'s
    there; none when the workspace does not show ``tip``'s change elsewhere (nothing is
    then written or followed: a file written through the mount for a commit then not
    adopted showed as the person's change, found by the model's random run)."""
    changed = _changed(ws, base, tip)
    if changed is None:
        return None
    live = ws.live_mount()
    mounted = live is not None or ws.mounted_without_upper()
    touched: set[str] = set()
    for c in status:
        touched.update(p for p in (c.path, c.old_path) if p)
    under = names.ancestors_of_all(touched)  # (the directories above what the person changed)
    base_tree = ws.store.commit_tree(base)
    out: set[str] = set()
    theirs: set[str] = set()  # what the person changed too
    for c in changed:
        p = c.path
        if p in touched or p in under or any(a in touched for a in names.ancestors(p)):
            theirs.add(p)
            continue
        if not mounted:
            # (a fork not mounted: its next checkpoint rebases the changes onto the commit,
            # or with `--no-rebase` stops, as docs/concepts.md "When the ref moved" says)
            continue
        # (the status says the person left it as the base has it, an overlay mount's copy
        # of an earlier adopted commit's file too: the kind and mode must agree)
        node = ws.view.lookup(p)
        was = ws.store.tree_lookup(base_tree, p)
        if was is None:
            shows_base = node is None
        else:
            shows_base = node is not None and not node.is_dir and node.mode == was[1]
        if shows_base and live is None:
            with ws.overlay.without_upper():  # (an entry above it: not followed)
                above, _, _ = ws.overlay.lookup(names.ancestors(p))
            shows_base = not above
        if shows_base:
            out.add(p)
    unshown = differing(ws, {c.path: _new(c) for c in changed if c.path not in out})
    follow = frozenset(out) if not unshown else frozenset()
    return Plan(
        base,
        tip,
        tuple(changed),
        follow,
        not unshown,
        tuple(p for p in unshown if p in theirs),
        live is not None and bool(follow),
    )


def place(ws: Based, p: Plan) -> tuple[frozenset[str], tuple[str, ...]]:
    """On a live overlay mount (``p.live``), ``p.follow``'s paths written through the mount
    as ``p.tip`` has them (the kernel caches the lower layer: before the base moves, as a
    checkpoint's rebase writes them), each only after what the mount shows there was
    found the old base's, content and mode: (the paths written, the path found changed).
    Where the person wrote one since the status, it is left alone, nothing more is
    written, and what was written is put back (:func:`put_back`)."""
    if not p.live:
        return frozenset(), ()
    live = ws.live_mount()
    if live is None:  # (unmounted meanwhile: nothing written, nothing adopted)
        return frozenset(), ("",)
    base_tree, tip_tree = ws.store.commit_tree(p.base), ws.store.commit_tree(p.tip)
    written: list[str] = []
    try:
        for path in sorted(p.follow, key=lambda q: (q.count("/"), q)):
            if differing(ws, {path: ws.store.tree_lookup(base_tree, path)}):
                put_back(ws, p, frozenset(written))
                return frozenset(), (path,)
            written.append(path)  # (before the write: one half written is put back too)
            live.reset([path], tip_tree)
    except BaseException:
        put_back(ws, p, frozenset(written))
        raise
    return frozenset(written), ()


def put_back(ws: Based, p: Plan, written: frozenset[str]) -> None:
    """``written`` (:func:`place`'s, for an adoption then refused) made the old base's
    again where the mount still shows what was written; a file the person wrote since is
    theirs and stays."""
    live = ws.live_mount()
    if not written or live is None:
        return
    tip_tree, base_tree = ws.store.commit_tree(p.tip), ws.store.commit_tree(p.base)
    changed = set(differing(ws, {q: ws.store.tree_lookup(tip_tree, q) for q in written}))
    from .noroom import cannot_write

    for q in sorted((q for q in written if q not in changed), key=lambda q: (q.count("/"), q)):
        # (each alone: where the fork's state has no room for one, as a full quota refused
        # the write put back here, the others still go back; :mod:`.noroom`)
        try:
            live.reset([q], base_tree)
        except Exception as exc:
            if not cannot_write(exc):
                raise


def adopt(ws: Based, db: Any, p: Plan, written: frozenset[str]) -> tuple[str, ...] | None:
    """In the overlay's transaction ``db`` (the fork lock held): take ``p.tip`` as the base,
    keeping the view, when the fork's base and tip are still ``p``'s, the paths
    :func:`place` wrote still show ``p.tip``'s and those that follow it by the move (off
    a live overlay mount) still show ``p.base``'s. None when it did (the caller then stamps
    the mount's index, the transaction committed), else the paths found changed since
    the plan (none: the base or the tip moved)."""
    from . import wsretire

    if (
        ws.overlay.get_meta("pending") is not None
        or ws.overlay.get_meta("base") != p.base
        or ws.tip() != p.tip
    ):
        return ()  # (the tip moved again, or a checkpoint's move is pending: not this plan's)
    if not p.shown:
        return p.conflicts or ()
    new = {c.path: c for c in p.changed}
    if written:
        # (the person wrote one of them since: theirs, refused as `git merge` refuses)
        again = differing(ws, {q: _new(new[q]) for q in written})
    else:
        base_tree = ws.store.commit_tree(p.base)
        again = differing(ws, {q: ws.store.tree_lookup(base_tree, q) for q in p.follow})
    if again:
        return tuple(again)
    # (never a root entry holding the old base's tree: the changes would then be measured
    # against it, and a status reading only what changed re-applied the old files)
    take_tip(ws, db, p.base, p.tip, follow=frozenset() if p.live else p.follow)
    if not ws.changes.status():
        # everything uncheckpointed is now in the tip: the overlay has nothing left but
        # what git does not hold (paths it ignores, empty directories)
        entries = ws.overlay.all()
        tip_tree = ws.store.commit_tree(p.tip)
        wsretire.retire_onto(
            ws, db, wsretire.retirable(ws, entries, tip_tree, fresh=True), p.tip, seen=entries
        )
    return None


def settle(ws: Based, p: Plan) -> Refused | None:
    """Adopt ``p`` (the fork lock held): :func:`place`, :func:`adopt` in one transaction,
    the mount's index stamped, or :func:`put_back` when refused; a :class:`Refused`
    naming the paths both changed when that is why, else None."""
    ov = ws.overlay
    # the index guard held from the writes to the index's patch: a pure-FUSE daemon's
    # refresh of the index (on seeing the base move) then finds it written for the new
    # base (before, it could come first and write it whole, what git had staged lost:
    # gitmodel20), as follow_git holds it
    with ws.index_guard():
        written, found = place(ws, p)
        refused: tuple[str, ...] | None = found
        if not found:
            try:
                with ov.txn() as db:
                    refused = adopt(ws, db, p, written)
            except BaseException:  # (the database busy past the lock wait, a disk full...)
                put_back(ws, p, written)
                raise
            if refused is None:
                # once the move is committed: a stamp naming a base other processes cannot
                # see yet makes the mount's daemon, reading the old base, rewrite the index
                # git just committed for that old base
                ws.stamp_index()  # (git's index kept where git made it, else patched)
            else:
                put_back(ws, p, written)
    if refused is None:
        if p.follow and not p.live:
            ws.base_moved(view_changed=False)  # (a pure-FUSE daemon drops its caches)
        return None
    conflicts = tuple(q for q in refused if q)
    return Refused(p.tip, conflicts) if conflicts else None
