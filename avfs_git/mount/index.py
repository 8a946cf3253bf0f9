"""The git index of a mounted fork's worktree: the base tree with the stat data the mount
reports (:func:`index_stat`), written whole or patched where the bases differ, under avfs's
index lock and git's ``index.lock``, stamped with the (base, view time, open merge) it was
written for, with the untracked cache and an open merge's stages (:func:`sync_index`).
mount/worktree.py's docstring gives the whole picture.
"""

from __future__ import annotations

import fcntl
import os
import struct
from collections.abc import Callable, Container, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from ..core.errors import from_oserror
from ..core.store.gitlib import libgit2_loaded
from ..core.store.treelist import Listing, walk_tree
from ..core.types import NodeKind
from ..core.workspace.mergestate import peek_state
from ..core.workspace.wssmudge import checkout_sizes
from . import indexflags
from .heldstat import held_stat, inode_of
from .indexguard import create_lock, dropped_on_error, held, open_guard, take_lock
from .indexpatch import SHOWN, StatFn, noted_after, patched_for
from .ownfiles import (
    INDEX_LOCK_WAIT_S,
    STAMP_FILE,
    MountedFork,
    MountedVault,
    files_dir,
    merge_head,
    owner_record,
    read_text,
    write_file,
)

if TYPE_CHECKING:
    from ..core.store.gitstore import GitStore
    from .untracked import HeadAhead


def fsmonitor_token(ws: MountedFork) -> str:
    """A token for the fsmonitor hook under which every path that may differ from the base
    is reported: the overlay's paths are all in the journal after the oldest overlay
    entry's sequence number."""
    return read_view(ws).token


class _View(NamedTuple):
    """What the index of a mount of a workspace is written for, read in one snapshot of
    the overlay's database: the stamp, the stat data and the fsmonitor token of one index
    always describe the same base and view time."""

    base: str | None
    view_time: str | None
    merging: dict[str, Any] | None  # the open merge, if any (.mergestate.peek_state)
    stamp: str  # "BASE VIEW_TIME MERGE" (STAMP_FILE)
    token: str  # the fsmonitor token

    def view_ns(self) -> int:
        return int(float(self.view_time or 0) * 1e9)


def read_view(ws: MountedFork) -> _View:
    """The workspace's base, view time, open merge and fsmonitor token, all read inside one
    SQLite read transaction: reads made one by one could straddle a move committed by
    another process (a base from before it, a view time from after), and an index written
    for the old base would then carry the stamp of the new one, so the mover, finding the
    stamp current, would leave that stale index in place."""
    ws.view_time  # noqa: B018 - set when missing (a write: not inside the snapshot)
    ov = ws.overlay
    db = ov.db
    own = not db.in_transaction  # inside the caller's transaction its view is consistent
    if own:
        db.execute("BEGIN")  # deferred: the snapshot starts at the first read
    try:
        meta = ov.get_metas("base", "view_time")
        base, view_time = meta.get("base"), meta.get("view_time")
        merging = peek_state(ws) if base is not None else None
        row = db.execute("SELECT MIN(seq) FROM entries").fetchone()
        seq = int(row[0]) - 1 if row and row[0] is not None else ov.last_seq()
    finally:
        if own:
            db.execute("COMMIT")
    stamp = f"{base} {view_time} {merging['theirs'] if merging else '-'}"
    return _View(base, view_time, merging, stamp, f"avfs:{base}:{view_time}:{seq}")


def view_ns(ws: MountedFork) -> int:
    """The time (ns) an unchanged file of the workspace shows as its ctime and mtime."""
    return int(ws.view_time * 1e9)


def index_stat(
    ws: MountedFork, uid: int, gid: int, view: _View | None = None, *, unknown_zero: bool = False
) -> StatFn:
    """``stat_of`` for :func:`write_index`: (ctime_ns, mtime_ns, ino, uid, gid, size) that a mount of
    ``ws`` (its daemon running as ``uid``/``gid``) reports for an unchanged file: what the index must hold
    for git to trust it without reading it (for ``view``'s view time when given, else the workspace's
    current one). ``unknown_zero``: a size the lazy vault's size cache does not have yet is 0."""
    return index_stat_sized(ws, uid, gid, view, unknown_zero=unknown_zero)[0]


def index_stat_sized(
    ws: MountedFork, uid: int, gid: int, view: _View | None = None, *, unknown_zero: bool = False
) -> tuple[StatFn, Callable[[str, int, str], int]]:
    """:func:`index_stat`, and the size alone of what it gives (no inode, no kept times asked:
    the index written ahead of a record's move asks only that of each file it read, record4)."""
    t = view.view_ns() if view is not None else view_ns(ws)
    # (one by one for a patch's few paths: the table holds every file the session retired)
    kept = ws.overlay.kept_reader(view.view_time if view is not None else None)
    known = ws.store.promisor.size
    size = (lambda oid: n if (n := known(oid)) is not None else 0) if unknown_zero else sizes_of(ws.store)
    # (a record's blobs: their sizes as its sink wrote them, not read from the pack: record6)
    made: dict[str, int] = (
        getattr(getattr(getattr(ws.overlay, "recording", None), "sink", None), "sizes", None) or {}
    )
    held = held_stat(ws, uid, gid)  # (a file a checkpoint converted: its own stat)
    # git's checkout conversions: the converted file's size (git takes another for a change)
    converted = checkout_sizes(ws.store, view.base if view is not None else ws.base, ws.fork)

    def shown(path: str, mode: int, oid: str) -> int:
        # a submodule's entry names a commit, not a blob: git reads no stat data of it
        n = 0 if mode == 0o160000 else made[oid] if oid in made else size(oid)
        if converted is not None and (got := converted(path, mode, oid)) is not None:
            n = got
        return n

    def stat_of(path: str, mode: int, oid: str) -> tuple[int, int, int, int, int, int]:
        if (got := held(path)) is not None:
            return got
        n = shown(path, mode, oid)
        hit = kept(path)
        if hit is not None and hit[0] == oid:  # a file a checkpoint retired keeps its times
            return hit[2], hit[1], inode_of(path), uid, gid, n
        return t, t, inode_of(path), uid, gid, n

    def size_of(path: str, mode: int, oid: str) -> int:
        return got[5] if (got := held(path)) is not None else shown(path, mode, oid)

    return stat_of, size_of


FEW_SIZES = 256  # read by the store's own reader; past that libgit2 is loaded to read them


def sizes_of(store: GitStore) -> Callable[[str], int]:
    """Blob sizes from their headers: libgit2 reads many 7x faster than a Python lookup
    per blob, but loading it costs a process that has not ~80-150 ms; an index patched
    after a checkpoint (a few changed files) reads its few through the store's own reader,
    and an index written whole loads libgit2 once it has asked for :data:`FEW_SIZES`."""
    if store.promisor.remote() is not None:
        # a lazy vault: the size cache (its tree's sizes were asked first), read without
        # libgit2, whose import would stand between the mount and its first `git status`
        known = store.promisor.size
        return lambda oid: n if (n := known(oid)) is not None else store.blob_size(oid)
    if libgit2_loaded():
        from ..core.store.odbdirect import size_reader

        return size_reader(store)
    fast: list[Callable[[str], int]] = []
    asked = 0

    def size(oid: str) -> int:
        nonlocal asked
        if fast:
            return fast[0](oid)
        asked += 1
        if asked > FEW_SIZES:
            from ..core.store.odbdirect import size_reader

            fast.append(size_reader(store))
            return fast[0](oid)
        return store.blob_size(oid)

    return size


def write_index(
    vault: MountedVault, git_dir: str, commit: str, stat_of: StatFn, fsmonitor_token: str | None = None
) -> bool:
    """Write the worktree's index for ``commit`` with the stat data the mount reports (a
    read-only revision's mount; a fork's mount uses :func:`sync_index`).

    git trusts an index entry whose stat data equals what ``lstat`` returns, and otherwise
    re-reads the file: an index from ``git read-tree`` (zeroed stat data) makes the first
    ``git status`` read every file through FUSE. ``stat_of(path, mode, oid)`` gives
    (ctime_ns, mtime_ns, ino, uid, gid, size) as the mount shows them. The index is written
    under git's own ``index.lock``; when git holds it, nothing is written (returns False).
    """
    try:
        fd = create_lock(git_dir)
    except FileExistsError:
        return False
    with dropped_on_error(git_dir, fd):  # (an error of the index's making left the lock)
        data = index_bytes(vault, commit, stat_of, fsmonitor_token)
    write_locked(git_dir, fd, data)
    return True


def index_bytes(
    vault: MountedVault,
    commit: str,
    stat_of: StatFn,
    fsmonitor_token: str | None = None,
    *,
    tree: str | None = None,
    unmerged: Sequence[Sequence[Any]] = (),
    skeleton: list[tuple[str, str | None]] | None = None,
    hidden: Callable[[str], bool] | None = None,
    sized: bool = True,
) -> bytes:
    """An index holding ``commit``'s tree (or ``tree``) with ``stat_of``'s stat data, and
    the ``unmerged`` entries ``(path, stage, oid, mode)`` in place of those paths' own.

    Format: git's index version 2 (Documentation/gitformat-index.txt). With
    ``fsmonitor_token`` it carries git's ``FSMN`` extension (version 2, that token, an empty
    dirty bitmap): git then trusts every entry and asks the hook only what changed since
    the token, instead of lstat-ing every file on its first status (47 s at 100k files).
    ``skeleton`` collects the tree's directories ``(path, None)`` and ``.gitignore`` files
    ``(path, oid)`` on the way (mount/untracked.py builds git's untracked cache from them).
    Without unmerged entries it carries git's cache tree (``TREE``: every directory's tree
    id and entry count, exact since the entries are that tree's), with which ``git status``
    compares the index with ``HEAD`` without reading every tree object (100k files: ~0.1 s).

    ``hidden``: the files the fork's path policy hides (the mount does not show them):
    their entries get git's ``skip-worktree`` bit (index version 3), so git neither reports
    them deleted nor writes them out.

    ``sized`` False: a lazy vault's sizes are not asked here (a mount's settling asks them
    on another thread meanwhile, from the same listing, which stays kept for it).
    """
    import hashlib

    store = vault.store
    root = tree or store.commit_tree(commit)
    if sized:
        store.ensure_sizes(root)  # a lazy vault: one request

    # a lazy vault's trees listed by git (its sizes were asked from the same listing), a
    # whole vault's walked through libgit2 (loaded by a mount before it serves)
    lazy = store.promisor.remote() is not None
    listing = store.tree_listing(root, keep=not sized) if lazy else walk_tree(root, store.tree_items)
    entries, nodes, skipped = _entries(root, listing, stat_of, skeleton, hidden)
    add = entries.append
    entry, pad = _ENTRY, _PAD
    if unmerged:
        # git's unmerged entries: the path at stages 1-3, never also at stage 0
        gone = {str(u[0]).encode("utf-8", "surrogateescape") for u in unmerged}
        entries = [e for e in entries if e[0] not in gone]
        add = entries.append
        for path, stage, oid, mode in sorted(unmerged, key=lambda u: (u[0], u[1])):
            raw = str(path).encode("utf-8", "surrogateescape")
            n = len(raw)
            flags = (int(stage) << 12) | min(n, 0xFFF)
            add(
                (
                    raw,
                    entry(0, 0, 0, 0, 0, 0, int(mode), 0, 0, 0, bytes.fromhex(oid), flags) + raw + pad[n % 8],
                )
            )
    entries.sort(key=lambda e: e[0])  # stable: a path's stages stay in order
    data = b"DIRC" + struct.pack(">II", 3 if skipped else 2, len(entries)) + b"".join(b for _, b in entries)
    if not unmerged:
        cache_tree = b"".join(
            name.encode("utf-8", "surrogateescape") + b"\0" + b"%d %d\n" % (count, subs) + bytes.fromhex(oid)
            for name, count, subs, oid in nodes
        )
        data += b"TREE" + struct.pack(">I", len(cache_tree)) + cache_tree
    if fsmonitor_token is not None:
        # an EWAH bitmap with no bit set: bit count 0, one (empty) running-length word
        ewah = struct.pack(">II", 0, 1) + struct.pack(">Q", 0) + struct.pack(">I", 0)
        ext = struct.pack(">I", 2) + fsmonitor_token.encode() + b"\0" + struct.pack(">I", len(ewah)) + ewah
        data += b"FSMN" + struct.pack(">I", len(ext)) + ext
    return data + hashlib.sha1(data).digest()


_ENTRY = struct.Struct(">IIIIIIIIII20sH").pack  # one index entry's fixed part
_PAD = [b"\0" * (8 - (62 + n) % 8) for n in range(8)]  # NUL-terminated, to 8 bytes
_PAD_EXT = [b"\0" * (8 - (64 + n) % 8) for n in range(8)]  # with extended flags


def _entries(
    root: str,
    listing: Listing,
    stat_of: StatFn,
    skeleton: list[tuple[str, str | None]] | None,
    hidden: Callable[[str], bool] | None,
) -> tuple[list[tuple[bytes, bytes]], list[list[Any]], int]:
    """(the index entries (path, bytes), in the listing's order; the cache tree's nodes,
    depth first: [name, entries, subtrees, tree id]; how many are skip-worktree) of the
    tree ``root`` listed as ``listing`` (:func:`index_bytes` says the rest)."""
    entry, pad, pad_ext = _ENTRY, _PAD, _PAD_EXT
    skipped = 0
    entries: list[tuple[bytes, bytes]] = []
    add = entries.append
    nodes: list[list[Any]] = [["", 0, 0, root]]
    # the directories being listed, innermost last: (prefix, node); a node counts its
    # own files, and hands the count to its parent when the listing leaves it
    open_dirs: list[tuple[str, list[Any]]] = [("", nodes[0])]
    for path, mode, oid in listing:
        while len(open_dirs) > 1 and not path.startswith(open_dirs[-1][0]):
            done = open_dirs.pop()[1]
            open_dirs[-1][1][1] += done[1]
        parent = open_dirs[-1][1]
        name = path[len(open_dirs[-1][0]) :]
        if mode == 0o040000:
            if skeleton is not None:
                skeleton.append((path, None))
            parent[2] += 1
            node: list[Any] = [name, 0, 0, oid]
            nodes.append(node)
            open_dirs.append((path + "/", node))
            continue
        parent[1] += 1
        if skeleton is not None and name == ".gitignore" and mode in (0o100644, 0o100755):
            skeleton.append((path, oid))
        raw = path.encode("utf-8", "surrogateescape")
        n = len(raw)
        if hidden is not None and hidden(path):
            skipped += 1
            # extended (0x4000) with skip-worktree (0x4000 of the extended flags); no
            # stat data: git does not look at the file
            add((raw, entry(0, 0, 0, 0, 0, 0, mode, 0, 0, 0, bytes.fromhex(oid), 0x4000 | min(n, 0xFFF))
                 + b"\x40\x00" + raw + pad_ext[n % 8]))  # fmt: skip
            continue
        ctime, mtime, ino, uid, gid, size = stat_of(path, mode, oid)
        add((raw, entry(
            ctime // 10**9 & 0xFFFFFFFF, ctime % 10**9, mtime // 10**9 & 0xFFFFFFFF, mtime % 10**9, 0,  # (git: 32 bits)
            ino & 0xFFFFFFFF, mode, uid, gid, size & 0xFFFFFFFF,
            bytes.fromhex(oid), min(n, 0xFFF),
        ) + raw + pad[n % 8]))  # fmt: skip
    while len(open_dirs) > 1:
        done = open_dirs.pop()[1]
        open_dirs[-1][1][1] += done[1]
    return entries, nodes, skipped


def write_locked(git_dir: str, fd: int, data: bytes) -> None:
    """Write ``data`` through git's ``index.lock`` (``fd``, created by the caller
    ``O_EXCL|O_NOFOLLOW``) and rename it over the index: git's own protocol, so git never
    reads half an index; the rename replaces whatever ``index`` is (a symlink planted there
    too), never follows it."""
    index = os.path.join(git_dir, "index")
    lock = index + ".lock"
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(lock, index)
    except BaseException:
        try:
            os.unlink(lock)
        except OSError:
            pass
        raise


def sync_index(
    ws: MountedFork,
    git_dir: str,
    uid: int,
    gid: int,
    *,
    view_changed: bool = True,
    wait_s: float = INDEX_LOCK_WAIT_S,
    sizes: Callable[[], object] | None = None,
    kept_after: Callable[[], object] | None = None,
    note: bool = False,
    keep_staged: bool = False,
) -> bool:
    """Make the index of ``git_dir`` (a mount of ``ws``'s fork) hold ``ws``'s current base,
    with the stat data and fsmonitor token the mount answers with; left alone when it was
    already written for this base and view time (the stamp), so nothing staged since is
    lost. See the module's docstring for the locking. False when the worktree is gone or
    git held ``index.lock`` for ``wait_s``.

    A lazy vault's index is the one kept for the base (mount/keptindex.py), patched, when
    it has one. ``sizes``: waits for a lazy vault's sizes, asked on another thread (a
    mount's settling): else the index is made meanwhile with unknown sizes left 0 (by
    git where it can: mount/readtree.py), filled in before it is written (docs/lazy.md).

    ``view_changed`` False (a checkpoint, ``merge --continue``: the base moved under an
    unchanged view): the index written for the old base is patched where the two bases
    differ, O(index entries) in bytes, not a pass over the tree with an object lookup per
    file; what ``git add`` staged elsewhere stays staged, as after a commit.
    ``kept_after``: what the index kept per base waits for before it is written (a
    mount's: the git commands that waited for this index to end, fuse/settle.py).
    ``note``, ``keep_staged``: how a patch is made (mount/indexpatch.py ``patched_for``)."""
    ws.view_time  # noqa: B018 - set when missing: no write to the database under the guard
    own = files_dir(ws.vault, ws.fork)
    slot = held(own)  # (this thread moved the base under the guard: mount/indexguard.py)
    try:
        guard = open_guard(own) if slot is None else None
    except (FileNotFoundError, NotADirectoryError):
        return False  # unmounted meanwhile
    except OSError as exc:
        raise from_oserror(exc, own) from exc
    try:
        if guard is not None:
            fcntl.flock(guard, fcntl.LOCK_EX)
        # read only now, the guard held: a writer after us reads a base at least as new;
        # and in one snapshot: what is written and its stamp describe the same base
        view = read_view(ws)
        base, stamp, merging = view.base, view.stamp, view.merging
        stamp_path = os.path.join(own, STAMP_FILE)
        if base is None or read_text(stamp_path) == stamp:
            return True  # written already: git's index.lock is not even touched
        fd = take_lock(git_dir, wait_s) if slot is None else slot.take_lock(git_dir)
        if fd is None and slot is not None:
            fd = take_lock(git_dir, 0)  # (git kept it while the guard was taken)
        if fd is None:
            return False
        with dropped_on_error(git_dir, fd):
            later = sizes is not None and merging is None  # (a merge's tree: sizes first)
            if sizes is not None and not later:
                sizes()
            stat_of = index_stat(ws, uid, gid, view, unknown_zero=later)
            old = (read_text(stamp_path) or "").split(" ")
            data, noted, shown = None, None, ws.visible_filter()
            hidden = None if shown is None else (lambda p: not shown(p, NodeKind.FILE))
            # (a fork with hidden paths too since gitmodel28: written whole, its index lost
            # what git had staged at every checkpoint, at every run's record)
            if not view_changed and old[1:] == [*stamp.split(" ")[1:2], "-" if merging is None else SHOWN]:
                how = (note, keep_staged, hidden, merging)
                data, noted = patched_for(ws, git_dir, own, old[0], base, stat_of, view.token, *how)
            keeps, lazy, patched = False, ws.store.promisor.remote() is not None, data is not None
            fetching: Callable[[], None] | None = None
            if data is None and lazy and hidden is None and merging is None:
                data = _kept(ws, base, uid, gid, view)  # the index kept for this base, patched
                later = later and data is None
            sized_at = None  # (an index made by git: where the sizes not known yet go)
            if data is None:
                owner = (uid, gid) if later else None
                data, skeleton, sized_at, head = _whole(ws, base, stat_of, view, merging, hidden, owner, own)
                if merging is None:
                    ignores = _gitignores_now(ws, {p for p, oid in skeleton if oid is None})
                    if later and not ignores:  # (the untracked cache needs only their ids)
                        fetching = _aside(_fetch_gitignores, ws, skeleton)
                    made = _with_untracked_cache(
                        ws, git_dir, own, skeleton, data, ignores, fetching is not None, head
                    )
                    keeps, data = lazy and hidden is None and not ignores and made is not data, made
            if later:
                assert sizes is not None
                sizes()
                data = _sizes_in(ws, data, sized_at)
            if fetching is not None:
                fetching()  # git's first status reads them: fetched before it may run
        if lazy and not patched:  # (the blobs' sizes: git's checkout conversions' now)
            from .indexsizes import with_converted  # (a lazy fork's only)

            data = with_converted(ws, base, data)
        merge_head(git_dir, own, merging)  # before the index: git sees both or neither
        # (git's skip-worktree and assume-unchanged bits: kept where the index is made anew)
        write_locked(git_dir, fd, data if patched else indexflags.carried(git_dir, data))
        write_file(own, STAMP_FILE, stamp.encode())
        noted_after(own, noted)
        if keeps:  # for the next mount of this base, off git's way (mount/keptindex.py)
            _keep_later(ws, base, data, kept_after)
        return True
    except OSError as exc:
        raise from_oserror(exc, git_dir) from exc
    finally:
        if guard is not None:
            os.close(guard)


def _whole(
    ws: MountedFork,
    base: str,
    stat_of: StatFn,
    view: _View,
    merging: dict[str, Any] | None,
    hidden: Callable[[str], bool] | None,
    owner: tuple[int, int] | None,
    scratch: str,
) -> tuple[bytes, list[tuple[str, str | None]], list[tuple[int, str]] | None, HeadAhead | None]:
    """:func:`sync_index`'s index written whole, its tree's skeleton, where the sizes not
    known yet go when git made it, and the head of its untracked cache when git was set to
    make it before (mount/untracked.py ``HeadAhead``: the caller's to read or drop; None
    with ``merging``).
    ``owner``: (uid, gid) of a lazy fork's mount whose sizes may come later: its index
    (none hidden, no merge) made by ``git read-tree`` (mount/readtree.py; its scratch file
    in memory or in ``scratch``), its stat data and the sizes known filled in now and the
    other sizes once they come; else, or where git cannot, by :func:`index_bytes` (None:
    with its sizes)."""
    later = owner is not None
    if owner is not None and hidden is None and merging is None:
        from . import baselisting, readtree, untracked

        store = ws.store
        tree = store.commit_tree(base)  # (git may have made it as the mount started)
        ahead = baselisting.index_ahead(ws, tree)
        if ahead is None:
            ahead = readtree.Ahead(store.path, tree, untracked.scratch_parent(scratch))
        head, ahead.head = ahead.head, None
        made = ahead.made(view.token, view.view_ns(), owner, store.promisor.size)
        head_ahead = head if isinstance(head, untracked.HeadAhead) else None
        if made is not None:
            return made.data, made.skeleton, made.sized_at, head_ahead
        if head_ahead is not None:
            head_ahead.drop()
    skeleton: list[tuple[str, str | None]] = []
    data = index_bytes(
        ws.vault,
        base,
        stat_of,
        view.token,
        tree=merging.get("view_tree") if merging else None,
        unmerged=merging.get("stages", ()) if merging else (),
        skeleton=skeleton,
        hidden=hidden,
        sized=not later,
    )
    return data, skeleton, None, None


def _aside(fn: Callable[..., object], *args: Any) -> Callable[[], None]:
    """``fn(*args)`` on a thread of its own; returned: what waits for it to end and raises
    what it raised (a lazy mount's ``.gitignore`` files fetched while its index waits for
    the tree's sizes and fills them in)."""
    import threading

    failed: list[BaseException] = []

    def run() -> None:
        try:
            fn(*args)
        except BaseException as exc:
            failed.append(exc)

    t = threading.Thread(target=run, name="avfs-gitignores", daemon=True)
    t.start()

    def join() -> None:
        t.join()
        if failed:
            raise failed[0]

    return join


def _fetch_gitignores(ws: MountedFork, skeleton: list[tuple[str, str | None]]) -> None:
    from . import untracked

    untracked.fetch_gitignores(ws.store, skeleton)


def _keep_later(ws: MountedFork, base: str, data: bytes, after: Callable[[], object] | None) -> None:
    from . import keptindex  # (here: a command that writes no lazy index never loads it)

    keptindex.keep_later(ws.vault.state_dir, ws.store, base, data, after)


def _kept(ws: MountedFork, base: str, uid: int, gid: int, view: _View) -> bytes | None:
    """The index kept for ``base``'s tree (mount/keptindex.py), patched for this mount."""
    from . import keptindex

    store = ws.store
    tree = store.commit_tree(base)
    return keptindex.from_kept(
        ws.vault.state_dir,
        tree,
        view.view_ns(),
        uid,
        gid,
        view.token,
        (owner_record(ws.vault, ws.fork) or {}).get("mountpoint"),
        lambda: _gitignores_now(ws, keptindex.BaseDirs(store.tree_items, tree)),
    )


def _sizes_in(ws: MountedFork, data: bytes, sized_at: list[tuple[int, str]] | None) -> bytes:
    """:func:`_whole`'s ``data`` with its sizes in: every entry's (``sized_at`` None), else
    those at ``sized_at`` (git made it; none left where every size was known)."""
    if not sized_at:
        from .indexsizes import with_sizes  # (a lazy fork's only)

        return data if sized_at is not None else with_sizes(data, sizes_of(ws.store))
    from .readtree import sizes_filled

    return sizes_filled(data, sized_at, sizes_of(ws.store))


def _gitignores_now(ws: MountedFork, dirs: Container[str]) -> dict[str, bytes | None]:
    from . import untracked  # (here: a command that writes no index whole never loads it)

    return untracked.gitignores_shown(ws, dirs)


def _with_untracked_cache(
    ws: MountedFork,
    git_dir: str,
    own: str,
    skeleton: list[tuple[str, str | None]],
    data: bytes,
    ignores: dict[str, bytes | None],
    fetched: bool = False,
    head: HeadAhead | None = None,
) -> bytes:
    """``data`` (an index for the mount of ``git_dir``; ``skeleton``: its tree's directories
    and ``.gitignore`` files) with git's untracked cache saying every directory of the tree
    holds no untracked file (mount/untracked.py): the first ``git status`` then lists only
    the directories the fsmonitor hook names. The mount point is the registry record's,
    git's scratch files go in the mount's own directory ``own``. ``fetched``: the caller
    fetches the tree's ``.gitignore`` files itself (:func:`.untracked.extension`);
    ``head``: the extension's head, started before (taken: read or dropped)."""
    from . import untracked

    mountpoint = (owner_record(ws.vault, ws.fork) or {}).get("mountpoint")
    if not isinstance(mountpoint, str) or not mountpoint:
        if head is not None:
            head.drop()
        return data
    ext = untracked.extension(
        ws.store, skeleton, data, mountpoint, git_dir, ignores, scratch=own, fetched=fetched, head_ahead=head
    )
    return data if ext is None else untracked.with_extension(data, ext)
