"""Which entries of an overlay mount's upper layer a status must read: what the last status
found different from the base, and what the mount's journal says changed since.

A fork mounted on overlayfs keeps in its upper layer every file written while it was
mounted, also once a checkpoint recorded it (the layers are never re-stacked under a live
mount): after a day of agent work that is a ``node_modules``, a venv and every file the
agent checkpointed. Reading all of it for every status makes ``avfs status``, ``is_dirty``
and ``proxy exec`` cost the size of the upper layer. They need not: a status remembers
(:func:`remember`) the journal's position it started from (the mount daemon's inotify
journal, :mod:`.upperwatch`) and the *tops* of what it found different from the base
(changes, ignored paths, whiteouts, as the shallowest upper-layer entry holding each). The
next status (:func:`entries`) reads the upper layer only at those tops, at what the journal
says changed since, at what the base's own move changed (a checkpoint, a merge: a tree
diff), and at the overlay database's entries; everything else in the upper layer showed
the base unchanged then and has not been touched since, so it still does. That is O(what
changed since the last status), whatever the upper layer holds.

A checkpoint remembers too (:func:`remember_commit`): what it read of the upper layer is
in its commit, so once the commit is the base those paths show the base unchanged, and the
mark it leaves holds only what the commit left out (paths git ignores or refuses, what the
path policy protects) and what a status keeps in view whatever the base (whiteouts, fifos
and sockets, renamed directories), with the journal's position from before the capture
read anything. A directory made in the mount (opaque) that the base now holds is looked
through (:meth:`.overlayupper.UpperEntries.change_top`): a change below it is read at its
own path. Without it, what every checkpoint recorded stayed a top, or was read again
as the base's move, until a status ran: a session of checkpoints without a status between
them read (and hashed) every file written since the last status at each checkpoint, O(the
session). With it, status and checkpoints cost the changes since the last of either.

Where no live daemon answers (unmounted, a daemon killed, a fork's snapshot of a mounted
fork's state), the mark still holds: it keeps the kernel's clock from before its status
read anything, and what changed in the layer since is what has a later inode change time
(:func:`offline`: a ``stat`` walk outside the tops, no file read), so an unmounted status,
checkpoint or fold (:func:`.wsfold.shown_by_mark`) reads what the mark does not vouch for.

When it cannot tell, it reads everything, as before: another daemon's journal (a
remount), a journal that overflowed or lost a watch, a restore or undo (the view time
moved: what the lower layer shows changed wholesale), no status remembered yet (or a mark
made before marks kept a time).

Within one operation (a merge: :func:`status_kept`), a status whose journal names no path
since the last one's position, over the same base, view time, ``core.fileMode`` and overlay
database, answers what that one did (:func:`status_again`): a merge into an overlay mount
read the target's status at its capture, again before the move (`refuse_changed`) and once
more at it, each ~10 ms of a ~60 ms fast-forward of minimist with an installed
``node_modules`` where only the journal's question (one to the daemon) was new (h-merge15).
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import stat
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

from ..store.names import ancestors
from .hookwire import SOCKET_NAME
from .overlay import Overlay
from .overlayentry import DELETED, EMPTY_TREE_ID, OBJECT, Entry

if TYPE_CHECKING:
    from ..store.gitstore import GitStore
    from ..types import Change
    from .overlayentry import Ignored

__all__ = [
    "MARK_KEY",
    "Pending",
    "entries",
    "held_deletions",
    "offline",
    "offline_read",
    "remember",
    "remember_commit",
    "status_again",
    "status_keep",
    "status_kept",
]

MARK_KEY = "upper_mark"  # in the overlay database's meta table (JSON)
MAX_TOPS = 100_000  # more than this is not remembered: the next status reads everything


class Pending:
    """What a status started from, remembered once it is done (:func:`remember`)."""

    __slots__ = ("base", "instance", "seq", "since_ns", "suspects", "trusted", "view_time")

    def __init__(
        self,
        instance: str,
        seq: int,
        base: str,
        view_time: float,
        trusted: bool = True,
        since_ns: int | None = None,
        suspects: Iterable[str] = (),
    ) -> None:
        self.instance = instance
        self.seq = seq
        self.base = base
        self.view_time = view_time
        self.trusted = trusted  # git's core.fileMode the status compared under
        # the kernel's clock before the status read anything (:func:`_clock_ns`): every
        # change of the upper layer since has an inode change time at or after it, which
        # is how the mark is read once no journal answers (:func:`offline`)
        self.since_ns = since_ns
        # names the journal cannot vouch for (a hard link's that lost a name, review44: a
        # write through them may be no event): kept in the mark, never vouched offline
        self.suspects = tuple(suspects)


def _stored(overlay: Overlay) -> dict[str, object] | None:
    raw = overlay.get_meta(MARK_KEY)
    if not raw:
        return None
    import json

    try:
        got = json.loads(raw)
    except ValueError:
        return None
    return got if isinstance(got, dict) else None


def entries(
    overlay: Overlay,
    *,
    base: str,
    view_time: float,
    git_dir: str | None,
    base_diff: Callable[[str, str], list[str] | None],
    pin_diff: Callable[[str, str], list[str] | None] | None = None,
    trusted: bool = True,
    last: tuple[list[Entry], Pending | None, bool] | None = None,
) -> tuple[list[Entry], Pending | None, bool]:
    """(the entries a status reads: :meth:`.Overlay.all`'s, or as many of them as can
    differ from ``base``; what to :func:`remember` once the status is done, None when no
    journal answered; whether the entries are so restricted: then every directory none of
    them is in shows the base unchanged, whatever the upper layer holds there).
    ``git_dir``: the mount's worktree (its daemon's socket); ``base_diff(old, new)``: the
    paths where two base commits differ (None: unknown); ``pin_diff(tree, base)``: the
    paths where a tree differs from the base commit's (None: unknown). ``trusted``: git's
    ``core.fileMode`` now; a mark made under the other value is not taken (gitmodel18: an
    exec bit changed alone under ``false`` is no change, so no top, and the setting turned
    back on left it unread: the status missed it).

    An entry at the root naming a tree other than the base's (a fork's seed, or the old
    base kept in view when a ``git commit`` in the mount was adopted, core/workspace/wsbase.py) is
    what shows below it where the upper layer does not: a path the upper layer holds
    with the base's content there still differs from it, though no status found it
    different from the base. So the paths where that tree and the base differ are read
    too (O(that diff)).

    ``last``: what this function answered a status whose position is the mark now, taken
    again when the journal says nothing changed since (a record's capture right after its
    status, :mod:`.recordblobs`: the upper layer's walk of 12,285 new files twice, record3)."""
    if not overlay.upper_active():
        return overlay.all(), None, False
    if not _journal_kept(git_dir):
        return offline(
            overlay, base=base, view_time=view_time, base_diff=base_diff, pin_diff=pin_diff, trusted=trusted
        )
    from . import upperask  # sockets, select (~15 ms): only with a journal to ask

    stored = _stored(overlay)
    mark = None
    if stored is not None and isinstance(stored.get("instance"), str) and isinstance(stored.get("seq"), int):
        mark = (str(stored["instance"]), int(stored["seq"]))  # type: ignore[call-overload]
    since = _clock_ns()  # (before the journal's position is taken: see Pending.since_ns)
    got = upperask.journal(overlay.upper_dir, git_dir, mark)
    if got is None:
        return offline(
            overlay, base=base, view_time=view_time, base_diff=base_diff, pin_diff=pin_diff, trusted=trusted
        )
    instance, seq, paths, suspects = got
    pending = Pending(instance, seq, base, view_time, trusted, since, suspects)
    if (
        last is not None
        and last[1] is not None
        and not paths
        and mark == (instance, seq)
        and _same(last[1], pending)
    ):
        return list(last[0]), pending, last[2]
    if (
        stored is None
        or paths is None
        or stored.get("view_time") != view_time
        or stored.get("trusted", True) != trusted
    ):
        return overlay.all(), pending, False
    read = _to_read(overlay, stored, base, base_diff, pin_diff)
    if read is None:
        return overlay.all(), pending, False
    return overlay.changed_entries([*read, *paths]), pending, True


def _to_read(
    overlay: Overlay,
    stored: dict[str, object],
    base: str,
    base_diff: Callable[[str, str], list[str] | None],
    pin_diff: Callable[[str, str], list[str] | None] | None,
) -> list[str] | None:
    """The paths a mark (``stored``) says a status must read besides what changed since it:
    its tops, what the base's move since changed, and what a root entry's tree changes
    (see :func:`entries`); None when that cannot be told."""
    tops = stored.get("tops")
    old_base = stored.get("base")
    if not isinstance(tops, list) or not isinstance(old_base, str):
        return None
    moved = [] if old_base == base else base_diff(old_base, base)
    if moved is None:
        return None
    root = overlay.get("")
    if root is not None and root.oid is not None:
        pinned = pin_diff(root.oid, base) if pin_diff is not None else None
        if pinned is None:
            return None
        moved = [*moved, *pinned]
    return [*map(str, tops), *moved]


# Linux's CLOCK_REALTIME_COARSE (Python names it from 3.13 only)
_COARSE: int = getattr(time, "CLOCK_REALTIME_COARSE", 5)
OFFLINE = "offline"  # the instance of a mark made where no journal answered (:func:`offline`)


def _clock_ns() -> int:
    """The clock the kernel stamps inode change times from (the coarse real-time one; a
    fine-grained stamp is never earlier): a change after this call has a ``ctime`` at or
    after what it returns."""
    return time.clock_gettime_ns(_COARSE)


def offline(
    overlay: Overlay,
    *,
    base: str,
    view_time: float,
    base_diff: Callable[[str, str], list[str] | None],
    pin_diff: Callable[[str, str], list[str] | None] | None = None,
    trusted: bool = True,
) -> tuple[list[Entry], Pending | None, bool]:
    """:func:`entries` where no journal answers: the mount is gone (unmounted, its daemon
    killed) or never was this state's (a fork's snapshot of a mounted fork's state). The
    last mark still says what showed the base then; what changed in the upper layer since
    is what has an inode change time at or after the mark's (``since_ns``: the kernel sets
    ``ctime`` on every write, rename, link count or attribute change, and nobody can set
    it back), found by a walk of the layer's ``lstat`` data outside the mark's tops (read
    anyway: an ignored ``node_modules`` among them is not walked). No file is read or
    hashed. Without a mark (none made, or one from before marks kept a time), a view
    time or ``core.fileMode`` that moved, or a base move that cannot be told: the whole
    layer is read, as before (found in the thirty-eighth round, h-polish3: with the mount
    gone, the files a session's checkpoints had recorded were read, hashed and counted
    as changes again by the next checkpoint, 2,000 of them for one file written).
    """
    got = offline_read(
        overlay, base=base, view_time=view_time, base_diff=base_diff, pin_diff=pin_diff, trusted=trusted
    )
    return (overlay.all(), None, False) if got is None else (got[0], got[1], True)


def offline_read(
    overlay: Overlay,
    *,
    base: str,
    view_time: float,
    base_diff: Callable[[str, str], list[str] | None],
    pin_diff: Callable[[str, str], list[str] | None] | None = None,
    trusted: bool = True,
    some_kept: bool = False,
    skip: frozenset[str] = frozenset(),
) -> tuple[list[Entry], Pending] | None:
    """:func:`offline`'s answer when the mark can tell (None: the whole layer is to be
    read). ``some_kept``: None too where every file outside the mark's tops changed since
    (the mark then saves nothing: a fold's, :func:`.wsfold.shown_by_mark`). ``skip``: top
    names not walked (a fold's kept directories: an installed ``node_modules`` it leaves)."""
    stored = _stored(overlay)
    since = stored.get("ctime_ns") if stored is not None else None
    if (
        stored is None
        or not isinstance(since, int)
        or stored.get("view_time") != view_time
        or stored.get("trusted", True) != trusted
    ):
        return None
    now = _clock_ns()  # (before the walk: the next mark's time)
    if os.lstat(overlay.upper_dir).st_ctime_ns % 1_000_000_000 == 0:  # (a file system keeping seconds)
        since -= since % 1_000_000_000
    tops = stored.get("tops")
    touched, kept = _changed_since(
        overlay.upper_dir, since, frozenset(tops if isinstance(tops, list) else ()) | skip
    )
    suspects = stored.get("suspects")
    touched += [str(p) for p in suspects] if isinstance(suspects, list) else []
    if some_kept and not kept:
        return None
    read = _to_read(overlay, stored, base, base_diff, pin_diff)
    if read is None:
        return None
    pending = Pending(OFFLINE, 0, base, view_time, trusted, now)
    return overlay.changed_entries([*read, *touched]), pending


def _changed_since(upper_dir: str, since_ns: int, tops: frozenset[str]) -> tuple[list[str], int]:
    """(the paths of the upper layer, ``.git`` left out, whose inode changed at or after
    ``since_ns`` or that are a file with other names, not looking at or below ``tops``; how many others are not directories)."""
    out: list[str] = []
    kept = 0
    stack = [("", upper_dir)]
    while stack:
        p, real = stack.pop()
        try:
            it = os.scandir(real)
        except (FileNotFoundError, NotADirectoryError):
            continue
        with it:
            for de in it:
                child = f"{p}/{de.name}" if p else de.name
                if de.name == ".git" or child in tops:
                    continue
                try:
                    st = de.stat(follow_symlinks=False)
                except OSError:
                    out.append(child)  # (unreadable: read as changed)
                    continue
                # a file with other names: never vouched for (a write through one named
                # another to the journal whose mark this is: review43's F4 after the unmount)
                if st.st_ctime_ns >= since_ns or (st.st_nlink > 1 and stat.S_ISREG(st.st_mode)):
                    out.append(child)
                elif not stat.S_ISDIR(st.st_mode):
                    kept += 1
                if stat.S_ISDIR(st.st_mode):
                    stack.append((child, de.path))
    return out, kept


def _same(a: Pending, b: Pending) -> bool:
    return (a.instance, a.seq, a.base, a.view_time, a.trusted) == (
        b.instance,
        b.seq,
        b.base,
        b.view_time,
        b.trusted,
    )


def _journal_kept(git_dir: str | None) -> bool:
    """Whether a journal may answer: this process keeps one (a mount's daemon, which imported
    upperwatch to start its watch: :func:`.upperwatch.live`), or a daemon's socket is in
    ``git_dir``. Else there is none to ask (a fork whose upper layer outlived its mount: a
    cold `avfs status` imported upperwatch's sockets and logging, ~15 ms, to learn that)."""
    if "avfs_git.core.workspace.upperwatch" in sys.modules:
        return True
    return git_dir is not None and os.path.exists(os.path.join(git_dir, SOCKET_NAME))


def held_deletions(
    overlay: Overlay, entries: Iterable[Entry], store: GitStore | None, base: str
) -> list[str]:
    """The paths of the deletion entries among ``entries`` that stay in view (tops) whatever
    the base: a fifo, socket or device (never recorded), one of the overlay database's, a
    whiteout that hides something of commit ``base`` (all do without a ``store``), or one
    with an entry of the database at, below or above it (a pin: a renamed directory's
    source, a directory the base lost, core/workspace/wsretire.py).
    A whiteout of the upper layer over nothing of the base shows the base unchanged: kept
    in view, every file a session removed was read again at each status and checkpoint
    (O(the session's removals)); a base move that brings something there names the path
    (the base diff), so it is read then."""
    out: list[str] = []
    tree: list[str] = []
    for e in entries:
        if e.kind != DELETED or not e.path:
            continue
        if store is not None and not tree:
            tree.append(store.commit_tree(base))
        if e.origin is not None or e.seq or store is None or store.tree_lookup(tree[0], e.path) is not None:
            out.append(e.path)
            continue
        with overlay.without_upper():  # a pin at, below or above it (a vanished directory's)
            if overlay.has_under(e.path) or any(
                overlay.get(a) is not None for a in (*ancestors(e.path), e.path)
            ):
                out.append(e.path)
    return out


def remember(overlay: Overlay, pending: Pending | None, paths: Iterable[str]) -> None:
    """Remember what a status found (``paths``: every path it found different from the
    base, ignored ones included) as of ``pending``. Where the state dir has no room for it
    (a full disk; the vault's quota as the kernel counts it, avfs's own room taken:
    :mod:`.noroom`) nothing is remembered: the mark is a shortcut, the status answers all
    the same (``proxy exec`` names what its command left in a fork it could not commit),
    and the old mark stays right for what it says (the next status reads what changed
    since it: a little more)."""
    try:
        _remember(overlay, pending, paths)
    except Exception as exc:
        from .noroom import cannot_write  # (not every status's module)

        if not cannot_write(exc):
            raise


def _remember(overlay: Overlay, pending: Pending | None, paths: Iterable[str]) -> None:
    if pending is None or overlay.db.in_transaction:
        # (inside a caller's own transaction, which may yet roll back: the mark stays as it
        # was, still right for what it says, and the next status reads a little more)
        return
    tops: set[str] = set()
    with overlay.remembering():
        for p in paths:
            t = overlay.change_top(p.rstrip("/"))
            if t is not None:
                tops.add(t[0])
                if len(tops) > MAX_TOPS:
                    overlay.set_meta(MARK_KEY, "")
                    return
    import json

    mark: dict[str, object] = {
        "instance": pending.instance,
        "seq": pending.seq,
        "base": pending.base,
        "view_time": pending.view_time,
        "trusted": pending.trusted,
        "tops": sorted(tops),
    }
    if pending.since_ns is not None:
        mark["ctime_ns"] = pending.since_ns
    if pending.suspects:
        mark["suspects"] = sorted(pending.suspects)
    overlay.set_meta(MARK_KEY, json.dumps(mark, separators=(",", ":")))


def remember_commit(
    overlay: Overlay,
    pending: Pending | None,
    base: str,
    read: Iterable[Entry],
    committed: Iterable[Entry],
    left_out: Iterable[str] = (),
    store: GitStore | None = None,
) -> None:
    """Remember, once commit ``base`` is the workspace's base, that what a capture ``read``
    (its entries, read as of ``pending``) shows the base unchanged where the commit holds
    it (``committed``: the entries it recorded). What stays a top: the entries it did not
    record (ignored, refused, protected, left out by ``only``, an empty directory), the
    paths ``left_out`` (the ignored directories it never read), and what a status keeps
    in view whatever the base (whiteouts, fifos, sockets and devices, renamed
    directories; with ``store``, only those :func:`held_deletions` keeps). Call it
    outside a transaction, after the base moved."""
    if pending is None:
        return
    done = {e.path for e in committed}
    paths = [*left_out]
    deletions: list[Entry] = []
    for e in read:
        if not e.path:
            continue
        if e.path not in done:
            paths.append(e.path)
        elif e.kind == DELETED:
            # as a status keeps them (held_deletions): a fifo or socket is never recorded
            # (not_recorded lists it), and a whiteout may hide what the commit's retirement
            # pinned below it (a renamed directory's source: core/workspace/wsretire.py),
            # which no change names
            deletions.append(e)
        elif e.kind == OBJECT and e.oid != EMPTY_TREE_ID and e.mode == 0o040000:
            paths.append(e.path)  # a renamed directory: as a status keeps it
    paths += held_deletions(overlay, deletions, store, base)
    p = pending
    kept = Pending(p.instance, p.seq, base, p.view_time, p.trusted, p.since_ns, p.suspects)
    remember(overlay, kept, paths)


# -- a status taken again within one operation (see the module) --------------------------


class StatusReader(Protocol):
    """What :func:`status_again` and :func:`status_keep` need of a status's reader
    (:class:`.wsstatus.Changes`)."""

    overlay: Overlay
    view: Any  # (its ``base``)
    mount_git_dir: Callable[[], str | None] | None
    view_time: Callable[[], float] | None
    last_read: list[Entry] | None
    last_pending: Pending | None

    def modes_trusted(self) -> tuple[bool, bool]: ...


Answer = tuple[list["Change"], "Ignored"]

# while :func:`status_kept` is entered: an upper layer's directory -> (what the status was
# of: its journal position, base, view time, core.fileMode, the database's state; the
# entries it read; its answer), per thread and task (a context's own)
_kept: contextvars.ContextVar[dict[str, tuple[tuple[object, ...], list[Entry], Answer]] | None] = (
    contextvars.ContextVar("avfs_status_kept", default=None)
)


@contextlib.contextmanager
def status_kept() -> Iterator[None]:
    """While it is entered, a status of an overlay mount whose journal names no change since
    the last one is that one's answer (see the module). Nested, the outermost keeps them;
    nothing is kept past its end."""
    if _kept.get() is not None:
        yield
        return
    token = _kept.set({})
    try:
        yield
    finally:
        _kept.reset(token)


def status_again(ch: StatusReader) -> tuple[Answer | None, object]:
    """(the last status's answer when it still holds, see the module; else None, and the
    state of the overlay's database now, for :func:`status_keep`). Where it holds, ``ch``'s
    :attr:`~.wsstatus.Changes.last_read` is the entries that status read. A copy: the
    caller may change what it gets."""
    memo = _kept.get()
    overlay = ch.overlay
    if memo is None or not overlay.upper_active():
        return None, None
    state = overlay.base_and_seq()
    got = memo.get(overlay.upper_dir)
    git_dir = None if ch.mount_git_dir is None else ch.mount_git_dir()
    if got is None or git_dir is None or ch.view_time is None:
        return None, state
    key, read, (changes, ignored) = got
    instance, seq = key[0], key[1]
    if not isinstance(instance, str) or not isinstance(seq, int) or key[5] != state:
        return None, state
    if key[2:5] != (ch.view.base, ch.view_time(), all(ch.modes_trusted())):
        return None, state
    from . import upperask  # (loaded by the status that made the memo)

    now = upperask.journal(overlay.upper_dir, git_dir, (instance, seq))
    if now is None or now[:2] != (instance, seq) or now[2] != []:
        return None, state
    ch.last_read = list(read)
    return (list(changes), ignored), state


def status_keep(ch: StatusReader, state: object, answer: Answer) -> Answer:
    """``answer``, a status of ``ch`` read from the overlay's database in ``state`` (from
    :func:`status_again`; None: nothing is kept), kept while :func:`status_kept` is entered."""
    memo = _kept.get()
    p = ch.last_pending
    if memo is not None and state is not None and p is not None and p.instance != OFFLINE:
        key = (p.instance, p.seq, p.base, p.view_time, p.trusted, state)
        memo[ch.overlay.upper_dir] = (key, list(ch.last_read or ()), (list(answer[0]), answer[1]))
    return answer
