"""The index of a mounted fork written for a commit before the fork's branch moves to it
(a checkpoint, an exec's record: moves that keep the view), git's ``index.lock`` held
from before the index is written until after the branch moved.

Why: ``git commit`` reads HEAD, then the index, then takes ``index.lock``. With the branch
moved first and the index written after it (the retirement of the committed entries and
the index's patch between them: tens of ms), a ``git commit`` started in between read
the new HEAD and the old index and, taking ``index.lock`` once avfs let it go, committed
the old base's tree on the new commit: the checkpoint's changes undone by the person's
next commit (tests/contract/test_git_in_mount.py, a thread polling the branch hit it a
few rounds in 20; two gits in a plain worktree never did in 200: git renames its index
the moment after it moves the ref). Written first, the index a git reads after the move
is the new one, and a git that read HEAD before the move fails on its own
compare-and-swap of HEAD (``cannot lock ref 'HEAD'``) or on ``index.lock``, as beside
another git.

The index is written through a file of its own (``index.lock`` stays avfs's, taken by
:func:`.indexguard.guarded`) and its stamp is cleared first, so a crash before the branch
moves leaves an index no stamp vouches for, which the next writer writes whole; when the
branch does not move (another hand moved it first), the index and its stamp are put back.
A move that changes the view (a restore, an undo of one, a revert, ``view_changed``) is
written ahead the same way, patched from the current index where the two commits differ
(what git staged elsewhere stays staged in it, as after a ``git reset --soft``: a
``git commit`` racing the move commits it on the moved-to commit, never the old tree), and
its stamp stays cleared once the branch moved: the move's own write, after it, writes the
index whole with the new view's stat data (the files the move rewrites show its time).
Without it a ``git commit`` that read the new HEAD and, before avfs's write, the old index
committed the old tree on the restored commit (tests/contract/test_git_in_mount.py).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from typing import Protocol

from ..core.types import NodeKind
from .heldstat import Stat, written_stat
from .index import index_stat_sized, read_view
from .indexguard import held
from .indexpatch import StatFn, patched_index
from .ownfiles import CLEAN_FILE, MAX_INDEX, STAMP_FILE, MountedFork, read_bytes, read_text, write_file

AHEAD = "index.avfs-ahead"  # in the worktree's git dir: the index written before its rename
Land = Callable[[bool], None]  # called with whether the branch moved


class Ahead(Protocol):
    """:func:`write_ahead` for one mount, given to the caller holding its guard."""

    def __call__(
        self,
        commit: str,
        *,
        view_changed: bool = False,
        keep_staged: bool = False,
        merged: bool = False,
        written_ns: int | None = None,
    ) -> Land | None: ...


def ahead(ws: MountedFork, git_dir: str, own: str, uid: int, gid: int, overlay: bool = False) -> Ahead:
    """What :func:`write_ahead` does for this mount, for the caller holding its guard
    (``overlay``: the mount is the overlay backend's, where a merge's index may be final).
    On the pure-FUSE one where the merge says what time the files it rewrites show there
    (``written_ns``: ``kept_times``, which its move stamps with that time), given to their
    entries: the whole write after the move (its tree walked, a status for the untracked
    cache: a third of a merge there, h-merge14) was the only difference, so it may be too."""

    def call(
        commit: str,
        *,
        view_changed: bool = False,
        keep_staged: bool = False,
        merged: bool = False,
        written_ns: int | None = None,
    ) -> Land | None:
        final = merged and view_changed and (overlay or written_ns is not None)
        return write_ahead(
            ws, git_dir, own, uid, gid, commit, view_changed=view_changed, keep_staged=keep_staged,
            merged=final, written_ns=None if overlay or not final else written_ns,
        )  # fmt: skip

    return call


def write_ahead(
    ws: MountedFork,
    git_dir: str,
    own: str,
    uid: int,
    gid: int,
    commit: str,
    *,
    view_changed: bool = False,
    keep_staged: bool = False,
    merged: bool = False,
    written_ns: int | None = None,
) -> Land | None:
    """Write the mount's index for ``commit`` (the base about to be moved to it): the index
    written for the current base, patched, renamed over the index; the caller holds the
    index guard with git's ``index.lock``. Returns what the caller calls once the branch
    moved or failed to (True: the index is stamped for ``commit``, or, ``view_changed``,
    left unstamped for the move's own write; False: put back as it was); None when nothing
    was written (no lock held, an open merge, an index not written for the current base:
    the move's own write does it, as before; a fork's hidden paths are skip-worktree
    entries in it since gitmodel28). ``keep_staged`` (an exec's
    record: another writer's commit): an entry git staged at a path the move changes,
    neither the current base's nor ``commit``'s, stays (mount/indexpatch.py); without
    it, a checkpoint's (`git commit --only`), the entry becomes ``commit``'s.

    ``merged`` (a merge's move into an overlay mount, ``view_changed``): the merge keeps
    the view time (core/workspace/wsbase.py ``same_view``) and writes what it changes
    through the mount, so the index written here is the one the move's own write would
    make (the same entries and stat data, its token the view's), but for what git had
    staged, which that write dropped: where the patched index holds exactly ``commit``'s
    tree (:func:`.indexexact.holds_exactly`), it is final, git's untracked cache kept
    (mount/indexpatch.py ``untracked``), and stamped once the branch moved
    (``_Slot.final``: :func:`.live.sync_mounted` then writes nothing); else as any move
    that changes the view (whose own write made it whole: ~100 ms of a ~130 ms merge into
    a mounted 10k-file fork, h-merge12). ``written_ns``: :func:`ahead`'s (pure FUSE)."""
    from .stagednote import note, undone  # (a checkpoint's: not every status's modules)

    slot = held(own)
    if slot is None or slot.git_dir != git_dir or slot.fd is None:
        return None
    shown = ws.visible_filter()  # (a fork's hidden paths: skip-worktree, as written whole)
    hidden = None if shown is None else (lambda p: not shown(p, NodeKind.FILE))
    view = read_view(ws)
    stamp_path = os.path.join(own, STAMP_FILE)
    old_stamp = read_text(stamp_path)
    if view.base is None or view.merging is not None or old_stamp != view.stamp:
        return None
    base = view.base
    index = os.path.join(git_dir, "index")
    before = read_bytes(index, MAX_INDEX)
    seq = view.token.rsplit(":", 1)[1]  # (the journal's position now: the hook answers no less)
    # (a move that changes the view: a token of no view, for which the hook answers
    # "everything" until the move's own index replaces this one)
    token = f"avfs:{commit}:{'-' if view_changed and not merged else view.view_time}:{seq}"
    try:
        # (the sizes of the commit's checkout forms: its attributes may convert otherwise)
        sized = index_stat_sized(ws, uid, gid, view._replace(base=commit))
        stat_of = _written_at(_recorded_first(*sized, written_stat(ws, uid, gid)), written_ns)
        keep = frozenset() if view_changed else undone(own, view.base, commit)
        staged: set[str] = set()
        with ws.overlay.remembering():  # (written_stat's reads of the recorded paths share their ancestors)
            data = patched_index(
                ws,
                git_dir,
                view.base,
                commit,
                stat_of,
                token,
                keep=keep,
                staged=staged,
                keep_staged=keep_staged,
                hidden=hidden,
                untracked=merged,
            )
            if merged and data is not None and not _exact(ws, data, commit):
                merged = False  # (what git staged: dropped by the move's own write, as before)
                token = f"avfs:{commit}:-:{seq}"
                data = patched_index(
                    ws, git_dir, view.base, commit, stat_of, token, keep=keep, staged=staged, hidden=hidden
                )
    except Exception:  # (a lazy vault's size not answered...): the move's own write does it
        return None
    if data is None or before is None:
        return None
    write_file(own, STAMP_FILE, b"-")  # (vouches for no index until the move is made)
    try:
        _replace(git_dir, data)
    except OSError:
        write_file(own, STAMP_FILE, old_stamp.encode())  # (the index is as it was)
        return None

    def land(moved: bool) -> None:
        if moved and not view_changed:
            write_file(own, STAMP_FILE, f"{commit} {view.view_time} -".encode())
            note(own, base, commit, staged)
        elif moved and merged:
            final = f"{commit} {view.view_time} -"
            write_file(own, STAMP_FILE, final.encode())
            slot.final = final
            with contextlib.suppress(OSError):  # (nothing staged in it: mount/side.py ``staged``)
                st = os.stat(os.path.join(git_dir, "index"))
                write_file(own, CLEAN_FILE, f"{st.st_ino} {st.st_mtime_ns} {st.st_size}".encode())
        elif moved:
            pass  # (the view's new stat data: the move writes the index whole after it)
        else:
            _replace(git_dir, before)
            write_file(own, STAMP_FILE, old_stamp.encode())

    return land


def _exact(ws: MountedFork, data: bytes, commit: str) -> bool:
    """Whether index ``data`` holds exactly ``commit``'s tree (:mod:`.indexexact`)."""
    from .indexexact import holds_exactly  # (a merge's only)

    return holds_exactly(ws.store, data, ws.store.commit_tree(commit))


def _written_at(stat_of: StatFn, ns: int | None) -> StatFn:
    """``stat_of`` with the change and modification times ``ns`` (asked only of the files a
    merge rewrites); None: ``stat_of``."""
    if ns is None:
        return stat_of

    def call(path: str, mode: int, oid: str) -> tuple[int, int, int, int, int, int]:
        got = stat_of(path, mode, oid)
        return (ns, ns, *got[2:]) if mode != 0o160000 else got

    return call


def _recorded_first(
    stat_of: StatFn, size_of: Callable[[str, int, str], int], written: Callable[[str], Stat | None]
) -> StatFn:
    """``stat_of``, but a file the checkpoint recorded (read by its capture, unchanged
    since) with the stat the mount shows for it (:func:`.heldstat.written_stat`): the
    view time ``stat_of`` gives such a file made git hash it again at its next status.
    A converted file's own (``stat_of``'s ``held_stat``) comes first, as there. Such a
    file's ``stat_of`` is not asked, only its size (``size_of``: ``stat_of``'s sixth)."""

    def call(path: str, mode: int, oid: str) -> tuple[int, int, int, int, int, int]:
        if mode == 0o160000:
            return stat_of(path, mode, oid)
        mine = written(path)
        return stat_of(path, mode, oid) if mine is None or mine[5] != size_of(path, mode, oid) else mine

    return call


def _replace(git_dir: str, data: bytes) -> None:
    """``data`` as the index of ``git_dir``: written to a file of avfs's own there
    (``O_EXCL|O_NOFOLLOW``: a confined command may have planted anything at its name,
    which is removed, never followed) and renamed over it."""
    path = os.path.join(git_dir, AHEAD)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o644)
    except FileExistsError:
        os.unlink(path)
        fd = os.open(path, flags, 0o644)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(path, os.path.join(git_dir, "index"))
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise
