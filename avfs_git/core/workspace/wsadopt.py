"""Another hand's commit onto a fork (a push, `git --git-dir=VAULT commit-tree` and
`update-ref`, a linked worktree's commit outside the mount) adopted as the base while the
workspace holds uncheckpointed changes: :func:`adopt`, called by :func:`.wsbase.sync_base`.

Until gitmodel21 only a commit that recorded nothing the workspace did not already show
was adopted (the view kept whole); one that changed a file the workspace shows as the old
base has it stayed unadopted: `avfs status` said stale, and git in the mount showed the
commit's change as a staged reversion (`M  a.txt`) until the next checkpoint rebased the
changes onto it. Now, where the fork is mounted, such paths (:func:`followed`: the commit changes them, the person
touched neither them nor a directory above or below them, the view shows the old base's
entry there) follow the commit, as `git merge --ff-only` carries local changes over a
fast-forward: on a live overlay mount written through the mount first (its kernel
caches the lower layer), elsewhere by the base's move itself. A path both changed
otherwise still leaves the commit unadopted (the next checkpoint three-way merges, or
stops on a conflict), as `git merge` refuses to overwrite local changes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import InternalError
from ..store import names
from ..store.treediff import diff_trees
from ..types import Change
from .overlayentry import Entry
from .wsattrs import file_oids
from .wstip import Based, take_tip

if TYPE_CHECKING:
    from .livedir import LiveDir


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


def _shown(ws: Based, changed: list[Change], follow: frozenset[str]) -> bool:
    """Whether the workspace shows what ``changed`` made each path but ``follow``'s."""
    files: list[tuple[str, Entry]] = []  # (compared as `git add` stores them: wsattrs)
    for c in changed:
        if c.path in follow:
            continue
        node = ws.view.lookup(c.path)
        if c.new_oid is None:
            if node is not None and not node.is_dir:
                return False
        elif node is None or node.is_dir or node.mode != c.new_mode:
            return False
        elif node.materialized and node.entry is not None:
            files.append((c.path, node.entry))
        elif ws.view.entry_oid(node) != c.new_oid:
            return False
    got = file_oids(ws.view, files, None) if files else {}
    return not any(got[c.path] != c.new_oid for c in changed if c.path in got)


def followed(ws: Based, base: str, tip: str) -> frozenset[str]:
    """The paths ``tip`` changed that the workspace shows as ``base`` has them, untouched
    by the person (no change of theirs at the path, above it or below it, no entry of the
    overlay there): the view can show ``tip``'s there. On a live overlay mount they are
    written through the mount here (then they show it, and none is left to follow);
    elsewhere the caller's move leaves them to the new base (:func:`adopt`)."""
    live = ws.live_mount()
    if live is None and not ws.mounted_without_upper():
        # (a fork not mounted: its next checkpoint rebases the changes onto the commit, or
        # with `--no-rebase` stops, as docs/concepts.md "When the ref moved" says)
        return frozenset()
    changed = _changed(ws, base, tip)
    if not changed:
        return frozenset()
    touched: set[str] = set()
    for c in ws.changes.status():
        touched.update(p for p in (c.path, c.old_path) if p)
    under = names.ancestors_of_all(touched)  # (the directories above what the person changed)
    base_tree = ws.store.commit_tree(base)
    out: set[str] = set()
    for c in changed:
        p = c.path
        if p in touched or p in under or any(a in touched for a in names.ancestors(p)):
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
    if out and not _shown(ws, changed, frozenset(out)):
        # (the commit changed something else the workspace shows otherwise: not adopted,
        # so nothing is written; a file written through the mount for a commit then not
        # adopted showed as the person's change, found by the model's random run)
        return frozenset()
    if out and live is not None:
        # (the kernel caches the lower layer: the commit's files go through the mount,
        # before the base moves, as a checkpoint's rebase writes them)
        _write_through(live, out, ws.store.commit_tree(tip), base_tree)
        return frozenset()
    return frozenset(out)


def _write_through(live: LiveDir, paths: set[str], tip_tree: str, base_tree: str) -> None:
    """Write ``paths`` as ``tip_tree`` has them through the live mount ``live``. Where the
    fork's state has no room for them (its quota as the kernel counts it, a full disk:
    :mod:`.noroom`), what was written is put back as ``base_tree`` has it, as far as that
    goes (a removal of a file the commit added always does), and nothing is followed: the
    view then does not show the commit, which is not adopted (:func:`adopt`); the base
    stays, `avfs status` says the fork moved, and the next command with room adopts it
    (or the next checkpoint rebases onto it). So a read of a full fork answers; before, the
    failed write failed every command that opened the fork (`quota_exceeded`)."""
    from .noroom import cannot_write

    wrote: list[str] = []
    try:
        live.reset(paths, tip_tree, wrote)
    except Exception as exc:
        if not cannot_write(exc):
            raise
        try:
            live.reset(wrote, base_tree)
        except Exception as again:
            if not cannot_write(again):
                raise


def adopt(ws: Based, db: Any, base: str, tip: str, follow: frozenset[str] = frozenset()) -> bool:
    """Take ``tip`` as the base, keeping the view, when its commits (descending from the
    base) changed nothing the workspace does not already show but ``follow``'s paths
    (:func:`followed`), which then show ``tip``'s; True when it did (the caller then
    stamps the mount's index, the transaction committed)."""
    from . import wsretire

    changed = _changed(ws, base, tip)
    if changed is None or not _shown(ws, changed, follow):
        return False
    # (never a root entry holding the old base's tree: the changes would then be measured
    # against it, and a status reading only what changed re-applied the old files)
    take_tip(ws, db, base, tip, follow=follow)
    if not ws.changes.status():
        # everything uncheckpointed is now in the tip: the overlay has nothing left but
        # what git does not hold (paths it ignores, empty directories)
        entries = ws.overlay.all()
        tip_tree = ws.store.commit_tree(tip)
        wsretire.retire_onto(ws, db, wsretire.retirable(ws, entries, tip_tree, fresh=True), tip, seen=entries)
    return True
