"""Folding an unmounted overlay's upper layer into the overlay's entries (what a write
through the API, the CLI or a merge does first when a mount left its upper layer behind,
so that the change lands on one layer: :meth:`.workspace.Workspace.live_dir`)."""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Callable, Iterator
from typing import Any

from ..store import names
from ..types import MODE_BLOB, MODE_EXEC, MODE_LINK
from . import upper
from .overlay import Overlay
from .overlaydb import sql_text
from .overlayentry import DELETED, FILE, Entry
from .wschecks import unlink_quiet


def fold_upper(
    overlay: Overlay,
    store_bytes: Callable[[bytes], tuple[str, int]],
    discard: Callable[[Any, str, str], None],
    keep: frozenset[str] = frozenset(),
    shown: Shown | None = None,
) -> int:
    """Move what an unmounted overlay's upper layer holds into the overlay's entries
    (files are hard-linked into ``files/`` before the entries commit, and leave the
    upper layer after: a crash in between folds them again, nothing is lost). What git
    cannot hold (fifos, sockets, device nodes) and a name that is not UTF-8 stay in the
    upper layer, and so do the top directories named in ``keep`` (:func:`kept_tops`), not
    read. Returns the number of paths folded.

    ``shown``: what the upper layer's last mark says may differ from the base
    (:class:`Shown`): the rest, what the mount's checkpoints recorded, is dropped from
    the layer instead, the lower layer showing the same (:func:`_recorded`)."""
    import shutil  # (not at the top: a cold status, cat or log never runs it)

    up_dir = overlay.upper_dir
    upper.drop_gitfile(up_dir)
    done: list[tuple[str, bool]] = []  # (upper path, is a directory)
    merging: set[str] = set()  # the directories dropped as showing the lower layer's
    folded = 0
    # the directories this fold made entries of its own, with nothing of the database's
    # left below them: what is below one has no entry to look up or remove (an installed
    # node_modules: 13,963 entries, each asked for its old entry and for entries below it)
    fresh: set[str] = set()
    with overlay.without_upper(), overlay.remembering():
        todo = list(upper.entries(up_dir, keep))
        todo.sort(key=lambda t: t[0])
        gone: list[str] = []  # what the mark says is gone where the upper layer holds nothing
        if shown is not None and (split := _recorded(todo, shown)) is not None:
            todo, dropped, gone = split
            done += dropped
            merging = {real for real, is_dir in dropped if is_dir}
        linked: list[str] = []
        try:
            with overlay.txn() as db:
                for child in gone:
                    discard(db, child, "fold")
                    folded += 1
                for child, real, st in todo:
                    if not sql_text(child):
                        # a name that is not UTF-8 (git's, or one the mount's upper layer
                        # wrote): no entry can hold it (:func:`.overlaydb.sql_text`); it
                        # stays in the upper layer, as a fifo does, and is read there (a
                        # write through the CLI after such a mount was exit 70 here)
                        continue
                    kind = upper.classify(real, st)
                    if kind == upper.SPECIAL:
                        continue
                    new = child.rpartition("/")[0] in fresh
                    old: bool | None = None if new else True  # (None: no entry there)
                    if kind in (upper.DIR, upper.OPAQUE):
                        got = overlay.upper_dir_entry(child, real, st)
                        if got is not None:  # not merging with the lower directory
                            if not new:
                                overlay.remove_under(db, child, "fold")
                                overlay.remove(db, child, "fold")
                            overlay.put(db, got, "fold", old=None)
                            fresh.add(child)
                        done.append((real, True))
                    elif kind == upper.GONE:
                        discard(db, child, "fold")
                        done.append((real, False))
                    elif kind == upper.LINK:
                        fid, size = store_bytes(os.fsencode(os.readlink(real)))
                        linked.append(fid)
                        if not new:
                            overlay.remove_under(db, child, "fold")
                        overlay.put(db, Entry(child, FILE, MODE_LINK, None, fid, None, size), "fold", old=old)
                        done.append((real, False))
                    else:
                        fid = overlay.new_fileid()
                        dest = overlay.file_path(fid)
                        if st.st_nlink > 1:
                            shutil.copyfile(real, dest)
                        else:
                            os.link(real, dest)
                        linked.append(fid)
                        mode = MODE_EXEC if st.st_mode & 0o100 else MODE_BLOB
                        if not new:
                            overlay.remove_under(db, child, "fold")
                        e = Entry(child, FILE, mode, None, fid, None, st.st_size)
                        overlay.put(db, e, "fold", old=old)
                        done.append((real, False))
                    folded += 1
        except BaseException:
            for fid in linked:
                unlink_quiet(overlay.file_path(fid))
            raise
    for real, is_dir in sorted(done, key=lambda t: -t[0].count("/")):
        try:
            if is_dir:
                os.rmdir(real)
            else:
                os.unlink(real)
        except OSError:
            # a directory still holding what git cannot (a fifo), or a nested repository's
            # `.git` (never part of the fork): it stays; one the mark says shows the lower
            # layer's merges with it, or the opaque mark the mount gave it (a directory made
            # there) hid the files below it a checkpoint recorded: a nested repository's
            # work tree was gone from the fork at its first write unmounted (gitmodel30)
            if real in merging:
                upper.merge_with_lower(real)
    return folded


class Shown:
    """What an unmounted upper layer's last mark says (:func:`.upperjournal.offline`): the
    paths whose entries may differ from the base (``paths``: the upper layer's there, and
    the database's), and ``lower(path)``: what the lower layer (the base and the
    database's entries) shows at a path as (git mode, object id), None for nothing."""

    __slots__ = ("deleted", "lower", "paths")

    def __init__(
        self,
        paths: frozenset[str],
        deleted: frozenset[str],
        lower: Callable[[str], tuple[int, str | None] | None],
    ) -> None:
        self.paths = paths
        self.deleted = deleted  # of ``paths``, those that show nothing
        self.lower = lower


Todo = list[tuple[str, str, os.stat_result]]


def _recorded(todo: Todo, shown: Shown) -> tuple[Todo, list[tuple[str, bool]], list[str]] | None:
    """(what of ``todo`` to fold, what to drop from the upper layer with nothing folded,
    the paths the mark says are gone where the upper layer holds nothing: a file a session
    removed from a directory it made, which a checkpoint had recorded), or None to fold
    everything. Outside ``shown.paths``, the mark says the layer shows the base: each file,
    link and whiteout there is checked against the lower layer (a file's blob id hashed:
    no entry, no copy, no blob written) and dropped when it shows the same; one that does
    not (the mark was wrong) is folded as ever. A directory there merges with the lower
    one or stands for it (an opaque one made in the mount that a checkpoint recorded): it
    goes once empty. Something git cannot hold there (a fifo, a name not UTF-8) would stay,
    and the directories above it with their marks: then everything is folded, as before."""
    from ..store.gitstore import blob_id, file_blob_id  # (a fold's only)

    fold: Todo = []
    drop: list[tuple[str, bool]] = []
    held = {child for child, _r, _s in todo}
    for child, real, st in todo:
        if child in shown.paths:
            fold.append((child, real, st))
            continue
        kind = upper.classify(real, st)
        if kind == upper.SPECIAL or not sql_text(child):
            return None
        if kind in (upper.DIR, upper.OPAQUE):
            drop.append((real, True))
            continue
        low = shown.lower(child)
        if kind == upper.GONE:
            same = low is None
        elif kind == upper.LINK:
            same = (
                low is not None and low[0] == MODE_LINK and low[1] == blob_id(os.fsencode(os.readlink(real)))
            )
        else:
            mode = MODE_EXEC if st.st_mode & 0o100 else MODE_BLOB
            same = low is not None and low[0] == mode and low[1] == file_blob_id(real)
        if same:
            drop.append((real, False))
        else:
            fold.append((child, real, st))
    gone = sorted(p for p in shown.deleted if p not in held and shown.lower(p) is not None)
    return fold, drop, gone


def shown_by_mark(ws: Any, keep: frozenset[str] = frozenset()) -> Shown | None:
    """:class:`Shown` for workspace ``ws``'s unmounted upper layer, from its last mark
    (:func:`.upperjournal.offline`); None when the mark cannot say (the whole layer is
    then folded). ``keep``: the fold's kept top directories, not walked."""
    from .upperjournal import offline_read

    ch = ws.changes
    read = offline_read(
        ws.overlay,
        base=ws.view.base,
        view_time=ws.view_time,
        base_diff=ch.base_diff,
        pin_diff=ch.pin_diff,
        trusted=all(ch.modes_trusted()),
        some_kept=True,
        skip=keep,
    )
    if read is None:
        return None
    got, view, store = read[0], ws.view, ws.store
    with ws.overlay.without_upper():
        held = {e.path for e in ws.overlay.all()}  # (the database's entries: few, or none)
    tree = store.commit_tree(view.base)

    def lower(path: str) -> tuple[int, str | None] | None:
        if held and (path in held or any(a in held for a in names.ancestors(path))):
            n = view.lookup(path)  # (in the fold: without the upper layer)
            return None if n is None else (n.mode, n.oid)
        hit = store.tree_lookup(tree, path)  # (nothing of the database on its way: the base's)
        return None if hit is None else (hit[1], hit[0])

    return Shown(frozenset(e.path for e in got), frozenset(e.path for e in got if e.kind == DELETED), lower)


def kept_tops(overlay: Overlay, ignored: Callable[[list[str]], set[str]]) -> frozenset[str]:
    """The names at the top of an unmounted overlay's upper layer that a move of the base
    may leave there (:meth:`.workspace.Workspace.live_dir_for_move`): each a new directory
    (nothing of the lower layer at or below it, no rename) that git ignores (``ignored``:
    which of the names it ignores, asked once of them all) and that the database holds
    nothing at or below. Such a directory shows the same over any base that has nothing at
    its place, as the upper layer of a live mount shows it; folding it (an installed
    ``node_modules``: 12,212 hard links and 28,043 statements, 1.5 s of CPU) is what made
    the first merge after a mount O(tree)."""
    try:
        names = sorted(n for n in os.listdir(overlay.upper_dir) if n != ".git")
    except (FileNotFoundError, NotADirectoryError):
        return frozenset()
    memo = _kept_answers.get()
    state = _state(overlay, names) if memo is not None else None
    if memo is not None and (got := memo.get(overlay.upper_dir)) is not None and got[0] == state:
        return got[1]
    new: list[str] = []
    with overlay.remembering():
        for n in names:
            if not overlay.new_upper_dir(n):
                continue
            with overlay.without_upper():
                if overlay.get(n) is not None or overlay.has_under(n):
                    continue
            new.append(n)
    answer = frozenset(ignored(new)) if new else frozenset()
    if memo is not None:
        memo[overlay.upper_dir] = (state, answer)
    return answer


# while :func:`tops_kept` is entered: each upper layer's directory -> (what :func:`kept_tops`
# read it in, its answer), per thread and task (a context's own)
_kept_answers: contextvars.ContextVar[dict[str, tuple[object, frozenset[str]]] | None] = (
    contextvars.ContextVar("avfs_kept_tops", default=None)
)


@contextlib.contextmanager
def tops_kept() -> Iterator[None]:
    """While it is entered, :func:`kept_tops` answers again what it answered for the same
    upper layer in the same state (:func:`_state`) without asking again: a merge asks it
    when it holds the target's writers and again at the move of the base, each ask a
    listing, each top directory's attributes and the ignore rules (~0.6 ms on minimist,
    ~8 % of a served fast-forward's CPU; h-merge7). Enter it inside
    :func:`.ignore.globals_kept` (the rules' globals are then the same too). Nested, the
    outermost keeps them; nothing is kept past its end."""
    if _kept_answers.get() is not None:
        yield
        return
    token = _kept_answers.set({})
    try:
        yield
    finally:
        _kept_answers.reset(token)


def holds_only_kept(overlay: Overlay) -> bool:
    """Whether the upper layer holds nothing but the top directories :func:`kept_tops`
    answered for it in this state while :func:`tops_kept` is entered (never asked here:
    False when it was not). Each is a new directory git ignores with nothing of the
    database or the lower layer at or below it, so the view's changes are the database's
    alone: a merge's capture of its target looked for them with a status walking the
    layer (~0.5 ms of a served fast-forward on minimist, h-merge8)."""
    memo = _kept_answers.get()
    got = None if memo is None else memo.get(overlay.upper_dir)
    if got is None or not got[1]:
        return False
    try:
        names = sorted(os.listdir(overlay.upper_dir))
    except (FileNotFoundError, NotADirectoryError):
        return False
    return set(names) <= got[1] and got[0] == _state(overlay, names)


def _state(overlay: Overlay, names: list[str]) -> object:
    """What :func:`kept_tops`'s answer is made of, cheaply: the base and the journal's newest
    row (every entry of the database put or removed moves it; the view's ``.gitignore`` files
    and what is below each name), the upper layer's names at its top, and each one's and
    the top's own stat (a ``.gitignore`` written in place, a directory's attributes made
    opaque or redirected change its ctime)."""
    stats: list[tuple[int, int, int, int] | None] = []
    for n in ("", *names):
        try:
            st = os.lstat(os.path.join(overlay.upper_dir, n) if n else overlay.upper_dir)
        except OSError:
            stats.append(None)
            continue
        stats.append((st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size))
    return (overlay.base_and_seq(), tuple(names), tuple(stats))
