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
and the write was overwritten, or on pure FUSE its entry dropped by the move. adopt3 (the
thirty-fourth round) closed what adopt2 left: each file is swapped in with the path in one
step and what came out checked (:mod:`.liveswap`; the swaps 8 at once: each copy-up through
overlayfs ends in an fsync), and a file a program of the person's holds open for writing is
theirs while open, on both backends (before, its later writes went to a file no name
showed). A file the commit makes a directory, or back, is not followed."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ..errors import InternalError
from ..store import names
from ..store.gitstore import blob_id
from ..store.treediff import diff_trees
from ..types import MODE_BLOB, MODE_EXEC, MODE_LINK, Change, Refused
from .livedir import LiveDir
from .overlayentry import FILE, Entry
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
    paths = {c.path for c in changed}
    dirs = names.ancestors_of_all(paths)  # (a file the commit made a directory, or back)
    for c in changed:
        p = c.path
        if p in touched or p in under or any(a in touched for a in names.ancestors(p)):
            theirs.add(p)
            continue
        if live is not None and (p in dirs or any(a in paths for a in names.ancestors(p))):
            # a file replaced by a directory or back, on a live overlay mount: not followed
            # (no swap of a file makes a directory: adopt3 found such a commit written,
            # refused, and its put back leaving the paths as the person's changes); the
            # commit is then adopted once shown (pure FUSE follows it by the move)
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


def _order(paths: Iterable[str], tree: str, ws: Based) -> list[str]:
    """``paths`` in the order to change them towards ``tree``: those it removes first,
    deepest first (a directory the commit replaces by a file is emptied before the file
    comes), then the others, shallowest first."""
    gone = [q for q in paths if ws.store.tree_lookup(tree, q) is None]
    rest = [q for q in paths if q not in set(gone)]
    return sorted(gone, key=lambda q: (-q.count("/"), q)) + sorted(rest, key=lambda q: (q.count("/"), q))


Job = Callable[[], "str | None"]  # one path's swap: None done, "" refused, else a side file kept


def _job(ws: Based, live: LiveDir, path: str, old: str, new: str, sides: Sides) -> tuple[Job, bool]:
    """``path`` of the live mount to make commit ``new``'s in one step if it still holds
    commit ``old``'s (:func:`.liveswap.swap`): the call doing it (None when done, "" when
    the path holds something else, left as it is, a side file's path when something was
    kept there), and whether it may run on a thread of its own (it then makes system
    calls only: the bytes, read from the store here, are in it). ``sides`` gets the
    path and its side file's name, for :func:`_noted` (:mod:`.swapleft`)."""
    from .liveswap import IN_HANDS, Found, side_name, swap

    old_tree, new_tree = ws.store.commit_tree(old), ws.store.commit_tree(new)
    was, now = ws.store.tree_lookup(old_tree, path), ws.store.tree_lookup(new_tree, path)
    if any(h is not None and h[1] not in (MODE_BLOB, MODE_EXEC, MODE_LINK) for h in (was, now)):
        # (a directory or a submodule: never followed, :func:`plan`; a put back leaves it)
        return (lambda: ""), False

    def found(tree: str, held: Held) -> Found:
        if held is None:
            return None
        if held[1] == MODE_LINK:
            return MODE_LINK, ws.store.blob_data(held[0])
        return held[1], live.form(tree, path, *held)

    want, shown = found(new_tree, now), found(old_tree, was)

    def expect(got: Found) -> bool:
        if was is None or got is None or got == IN_HANDS:
            return got is None and was is None
        # what avfs's checkout writes there, or the blob's own bytes (a person's `git
        # checkout` without conversions); an equivalent other form is the person's
        return got == shown or (got[0] == was[1] and blob_id(got[1]) == was[0])

    name = side_name(live.side_key())
    sides.append((path, name))
    return (lambda: swap(live, path, want, expect, was is None, name)), True


Sides = list[tuple[str, str]]  # the swaps noted: (path, its side file's name)


def _noted(ws: Based, old: str, new: str, sides: Sides) -> None:
    """The swaps about to run noted in the workspace's state (:func:`.swapleft.note`): a
    process killed between a swap's steps leaves side files the next one puts right
    (livewrite2); :func:`settle` removes the note once they are all settled."""
    from . import swapleft

    swapleft.note(ws.state_dir, old, new, sides)


_THREADS = 8  # swaps at once: each copy-up through overlayfs ends in an fsync (adopt3's A/B)
_BATCH = 64  # paths whose bytes are read before their swaps run (memory bounded)...
_BATCH_BYTES = 256 << 20  # ...and bytes (both commits' blobs at each path)


def _batches(ws: Based, paths: list[str], old: str, new: str) -> list[list[str]]:
    """``paths`` in batches of at most :data:`_BATCH` paths and :data:`_BATCH_BYTES`
    of the two commits' blobs there (one path alone may pass it)."""
    trees = ws.store.commit_tree(old), ws.store.commit_tree(new)
    out: list[list[str]] = []
    cur: list[str] = []
    size = 0
    for q in paths:
        held = [ws.store.tree_lookup(t, q) for t in trees]
        n = sum(ws.store.blob_size(h[0]) for h in held if h is not None and h[1] in (MODE_BLOB, MODE_EXEC))
        if cur and (len(cur) >= _BATCH or size + n > _BATCH_BYTES):
            out.append(cur)
            cur, size = [], 0
        cur.append(q)
        size += n
    return [*out, cur] if cur else out


def _swap_all(
    ws: Based, live: LiveDir, paths: list[str], old: str, new: str, written: list[str], sides: Sides
) -> tuple[str, ...]:
    """Each of ``paths`` swapped from commit ``old``'s to ``new``'s (:func:`_job`), up to
    :data:`_THREADS` at once; ``written`` gets each path before its swap (one failing half
    way is put back too) and loses those not swapped. Stops after the batch where one was
    refused: (the paths refused, then the side files kept), else ()."""
    from concurrent.futures import ThreadPoolExecutor

    refused: list[str] = []
    kept: list[str] = []
    with live.room(), ThreadPoolExecutor(min(_THREADS, max(1, len(paths)))) as pool:
        for batch in _batches(ws, paths, old, new):
            jobs = [(q, *_job(ws, live, q, old, new, sides)) for q in batch]
            _noted(ws, old, new, sides)
            written.extend(batch)
            futures = {q: pool.submit(job) for q, job, threaded in jobs if threaded}
            got = {q: job() for q, job, threaded in jobs if not threaded}
            got.update((q, f.result()) for q, f in futures.items())
            for q in batch:
                if got[q] is not None:
                    written.remove(q)
                    refused.append(q)
                    if got[q]:
                        kept.append(str(got[q]))
            if refused:
                break
    return (*sorted(refused), *kept)


def place(ws: Based, p: Plan) -> tuple[frozenset[str], tuple[str, ...]]:
    """On a live overlay mount (``p.live``), ``p.follow``'s paths made what ``p.tip`` has
    there through the mount (the kernel caches the lower layer: before the base moves, as
    a checkpoint's rebase writes them), each swapped in only if what it swapped out was
    the old base's, content and mode, and no process held it open for writing
    (:func:`.liveswap.swap`, adopt3): (the paths written, the paths found changed). Where
    the person wrote one since the status, or writes it still, it is theirs and stays,
    nothing more is written, and what was written is put back (:func:`put_back`)."""
    if not p.live:
        return frozenset(), ()
    live = ws.live_mount()
    if live is None:  # (unmounted meanwhile: nothing written, nothing adopted)
        return frozenset(), ("",)
    tip_tree = ws.store.commit_tree(p.tip)
    order = _order(p.follow, tip_tree, ws)
    gone = [q for q in order if ws.store.tree_lookup(tip_tree, q) is None]
    written: list[str] = []
    sides: Sides = []
    try:
        found = _swap_all(ws, live, gone, p.base, p.tip, written, sides)
        if not found:
            # (the removals first: the directories they left empty go before anything is
            # made where one of them was)
            live.prune_empty(written, tip_tree)
            found = _swap_all(ws, live, order[len(gone) :], p.base, p.tip, written, sides)
        if found:
            kept = put_back(ws, p, frozenset(written))
            return frozenset(), (*found, *kept)
    except BaseException:
        put_back(ws, p, frozenset(written))
        raise
    return frozenset(written), ()


def put_back(ws: Based, p: Plan, written: frozenset[str]) -> tuple[str, ...]:
    """``written`` (:func:`place`'s, for an adoption then refused) made the old base's
    again, each in one step where the mount still shows what was written; a file the
    person wrote since is theirs and stays. The side files left holding what the put back
    could not tell from the person's (:func:`.liveswap.swap`: nothing is lost), by path."""
    live = ws.live_mount()
    if not written or live is None:
        return ()
    from .noroom import cannot_write

    base_tree = ws.store.commit_tree(p.base)
    kept: list[str] = []
    sides: Sides = []
    for q in _order(written, base_tree, ws):
        # (each alone: where the fork's state has no room for one, as a full quota refused
        # the write put back here, the others still go back; :mod:`.noroom`)
        try:
            with live.room():
                job = _job(ws, live, q, p.tip, p.base, sides)[0]
                _noted(ws, p.tip, p.base, sides)
                got = job()
        except Exception as exc:
            if not cannot_write(exc):
                raise
            continue
        if got:
            kept.append(got)
    live.prune_empty([q for q in written if ws.store.tree_lookup(base_tree, q) is None], base_tree)
    return tuple(kept)


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
    if not p.live and p.follow:
        # a file a program of the person's holds open for writing through a pure-FUSE
        # mount (its daemon's handle holds the overlay file's shared flock) is theirs while
        # open, whatever its bytes now: the move would drop the entry its writes go to
        # (adopt3); the others' files are claimed until the transaction ends, so a handle
        # opened meanwhile waits, then finds the entry gone and opens the new base's
        with ws.overlay.without_upper():
            held = ws.overlay.get_many(sorted(p.follow))
        busy = [
            q
            for q, e in sorted(held.items())
            if e.kind == FILE and e.fileid and not ws.overlay.claim(e.fileid)
        ]
        if busy:
            return tuple(busy)
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


def left_behind(ws: Based) -> bool:
    """Whether an adoption killed between a swap's steps left a note (:mod:`.swapleft`):
    then put right (the fork lock held), before the status the plan reads."""
    from . import swapleft

    if swapleft.pending(ws.state_dir) is None:
        return False
    swapleft.recover(ws)
    return True


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
                kept = put_back(ws, p, written)
                refused = (*refused, *kept) if refused or kept else refused
        if p.live:
            from . import swapleft

            swapleft.done(ws.state_dir)  # (every swap settled: none left to put right)
    if refused is None:
        if p.follow and not p.live:
            ws.base_moved(view_changed=False)  # (a pure-FUSE daemon drops its caches)
        return None
    conflicts = tuple(q for q in refused if q)
    return Refused(p.tip, conflicts) if conflicts else None
