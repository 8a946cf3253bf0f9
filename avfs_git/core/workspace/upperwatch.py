"""What changed in an overlay mount, as the kernel reports it: the journal git's fsmonitor
hook is answered from on the overlay backend.

An overlay mount's writes are the kernel's (overlayfs into the upper layer, ``<ws>/upper``):
no avfs code sees them happen. The kernel does report them: every change overlayfs makes to
the upper layer (a file created, written, truncated, chmod-ed, renamed, removed, a whiteout
or a copy-up moved in from the work directory) is an ``inotify`` event on the upper layer's
directory that holds it. :class:`UpperWatch` keeps a watch on every directory of the upper
layer (a directory appearing gets its watch, then is listed, so nothing made in it before
the watch is missed) and appends each changed path to an in-memory journal: "what changed
since N" is then the journal's tail, O(changes), whatever the size of the upper layer
(a 50,000-file ``node_modules`` costs nothing until it changes). inotify works on any local
file system, so the upper layer may be ext4, btrfs (a subvolume) or tmpfs.

The mount daemon owns the watch and answers git's hook with it over a Unix socket in the
worktree's git dir (mount/hooksocket.py: :class:`UpperWatch` is the overlay backend's
:class:`~.hooksocket.Answerer`). An answer is complete: before it is computed, the daemon
reads every event the kernel has queued, and the kernel queues an event before the system
call that made the change returns, so a change made before git ran is in the answer. When
the answer cannot be complete it is ``/`` (everything may have changed; git then looks at
every file): a token from another daemon (a remount, a daemon killed with -9 and started
again), a token older than an event-queue overflow or than what the journal still holds,
a base moved under an index nobody rewrote, a watch or an instance the kernel refused or
the mount's budget of watches passed (until the whole upper layer is watched again:
:meth:`UpperWatch._give_up`). The hook answers ``/`` itself when the daemon does not answer
at all (killed).

Tokens (git stores the last one in the index's ``FSMN`` extension):

- ``avfs-ovl:INSTANCE:BASE:VIEW_TIME:SEQ``, handed out here: the journal of daemon INSTANCE
  up to SEQ, over base BASE shown at VIEW_TIME. A SEQ past the last this journal handed
  out is no token of its own: a confined command writes the index, and one dated a few
  events ahead had the person's next edits (the journal's first events after the run)
  left out of their `git status` and `git commit -a` (review38's leftover, plant5): it
  answers ``/``;
- ``avfs:BASE:VIEW_TIME:N``, the token avfs writes into an index it builds
  (:func:`.index.sync_index`: the base's entries with the stat data the mount reports for
  an unchanged file). What may differ from such an index is what the lower layer holds over
  the base (the overlay's entries) and what the upper layer holds; the answer lists those,
  not descending into directories the lower layer does not have (a new ``node_modules`` is
  one path) and naming a removed, opaque or redirected directory as a prefix (``dir/``).
"""

from __future__ import annotations

import errno
import logging
import os
import select
import stat
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from . import upper as up
from .hookwire import own_reply
from .upper import watch_budget
from .upperclassify import ChangeClassifier
from .upperlinks import TOO_MANY, LinkedNames

log = logging.getLogger("avfs.upperwatch")

TOKEN_PREFIX = "avfs-ovl"
SINCE_PREFIX = "avfs-since"  # avfs's own question: "avfs-since:INSTANCE:SEQ"; answered ":N" more (upperask)
INDEX_TOKEN_PREFIX = "avfs"  # worktree.fsmonitor_token's
EVERYTHING = "/"
MAX_JOURNAL = 500_000  # paths kept; a token older than the oldest kept answers "/"
# the watches one mount may hold (a watch a directory of its upper layer): the vault's or the
# home's config.json key, else half the user's limit (they share it with every program of theirs)
BUDGET_KEY = "mount_watches"
RETRY_S = (1.0, 60.0)  # a journal given up watches again after this long, doubled each time

# inotify (linux/inotify.h)
BATCH_S = 0.02  # how long the watcher lets events gather before it reads them
IN_MODIFY = 0x2
IN_ATTRIB = 0x4
IN_CLOSE_WRITE = 0x8
IN_MOVED_FROM = 0x40
IN_MOVED_TO = 0x80
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_UNMOUNT = 0x2000
IN_Q_OVERFLOW = 0x4000
IN_IGNORED = 0x8000
IN_ONLYDIR = 0x01000000
IN_DONT_FOLLOW = 0x02000000
IN_ISDIR = 0x40000000
WATCH_MASK = (
    (IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE)
    | IN_ONLYDIR
    | IN_DONT_FOLLOW
)
_GONE = IN_DELETE | IN_MOVED_FROM
_CAME = IN_CREATE | IN_MOVED_TO

UNMOUNTED = "the upper layer's file system was unmounted"

LowerKind = Callable[[str], "str | None"]  # what the lower layer has at a path: None, "dir", "other"
EntryPaths = Callable[[], Iterable[tuple[str, bool]]]  # the overlay's entries: (path, is a file or link)
ViewFn = Callable[[], str]  # "BASE:VIEW_TIME" of the workspace now


# this process's watches, by their upper layer's real path. Process-wide on purpose: an
# inotify watch belongs to the process (the mount daemon starts one, fuse/daemon.py), and a
# status in that process must find it from whichever workspace object asks (several can
# hold one state dir: the daemon's, the one it serves the lower view through, a workspace a
# proxy exec in its warm server opens), by the directory alone; asking the daemon over its
# socket from inside the daemon would be asking itself. One entry per overlay mount this
# process serves (a daemon serves one), removed at close().
_live: dict[str, UpperWatch] = {}


def live(upper_dir: str) -> UpperWatch | None:
    """The watch this process keeps on ``upper_dir`` (the mount daemon's, asked by ``proxy
    exec``'s warm server running in it), None elsewhere."""
    return _live.get(os.path.realpath(upper_dir))


class UpperWatch(ChangeClassifier):
    """The journal of an overlay mount's upper layer (see the module's docstring).

    ``start()`` before the overlay is stacked (it watches every directory the upper layer
    holds then); ``answer(token)`` and ``changed_since(seq)`` from any thread; ``close()``
    at unmount."""

    def __init__(
        self,
        upper_dir: str,
        lower_kind: LowerKind,
        entry_paths: EntryPaths,
        view: ViewFn,
        lower_paths: dict[str, str | None] | None = None,
        budget: int = 0,
    ) -> None:
        self.upper_dir = upper_dir
        self._lower_kind = lower_kind
        # the lower paths ``lower_kind`` found and keeps (fuse/stacking.upper_watch): what
        # the upper layer's directory marks made of them, forgotten here before any event
        # that may change a mark or a directory at a path (see _forget_lower)
        self.lower_paths = lower_paths if lower_paths is not None else {}
        self._entry_paths = entry_paths
        self._view = view
        self.instance = os.urandom(6).hex()
        self.budget = budget or watch_budget(None)
        self._ino: Any = None  # (None: given up, :meth:`_give_up`)
        self._wds: dict[int, str] = {}  # watch descriptor -> the directory's path ("" = root)
        self._journal: list[str] = []
        self._first = 0  # the sequence number of _journal[0]
        self._valid_from = 0  # a token before this sequence number answers "/" (overflow)
        # why no answer can be complete now (a watch refused: given up; not watched yet)
        self._broken = "the upper layer is not watched yet"
        self._lapsed = False  # given up since the last watch of the whole upper layer
        self._answered = 0  # the sequence number the last answer's token holds
        self._issued = -1  # the highest a token handed to git held (a higher one is forged)
        self._lock = threading.RLock()  # (re-entered: a status in an answer asks the journal)
        self._stop = threading.Event()
        # written by close(): the thread's poll ends at once, not at its next 0.5 s timeout
        # (each overlay unmount's daemon waited out up to that much of it)
        self._wake: tuple[int, ...] = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self._thread: threading.Thread | None = None
        # what the kernel changed, classified, for a durable log (core/workspace/changelog.py):
        # set by the mount daemon; each drain hands it one coalesced batch
        self.on_events: Callable[[list[tuple[float, str, str, str | None]]], None] | None = None
        self._batch: list[tuple[float, str, str, str | None]] = []
        self._held, self._held_since = [], 0.0  # (upperclassify: rows not in the log yet)
        self._unlogged = False  # a batch of the change log was lost: the next says so
        self._moved: dict[int, str] = {}  # a rename's cookie -> the path it left
        self._swapped_in: dict[str, int] = {}  # (upperclassify's _swap, within one batch)
        self.side_key: bytes | None = None  # (upperclassify's _own_side: the mount sets it)
        self._owned: dict[str, bool] = {}
        self._modes: dict[str, int] = {}  # the mode last seen at a path (a chmod, not a touch)
        self.came: tuple[str, os.stat_result | None] | None = None  # (_event's lstat of a new file)
        self.also: list[str] = []  # (_event's other names of the file an event names: the log's too)
        self._links = LinkedNames()  # every name of a linked file: a write names one (review42)
        self.lower_mode: Callable[[str], int | None] | None = None  # the lower layer's file mode at a path
        self.lower_file_kind: LowerKind | None = None  # (``lower_kind`` of a path that is no directory)

    # -- the journal ----------------------------------------------------------------------
    @property
    def seq(self) -> int:
        return self._first + len(self._journal)

    def start(self) -> None:
        """Watch every directory of the upper layer, then keep reading the kernel's events
        in a thread (so its queue does not overflow between two hooks)."""
        self._rewatch()
        self._thread = threading.Thread(target=self._run, name="avfs-upperwatch", daemon=True)
        self._thread.start()
        _live[os.path.realpath(self.upper_dir)] = self

    def close(self) -> None:
        if live(self.upper_dir) is self:
            del _live[os.path.realpath(self.upper_dir)]
        self._stop.set()
        wake, self._wake = self._wake, ()  # (a second close finds none: no fd closed twice)
        if wake:
            os.write(wake[1], b"\0")
        if self._thread is not None:
            self._thread.join(5.0)
        with self._lock:
            self.write_held()  # (rows a flood left held: the log holds every change it read)
            if self._ino is not None:
                self._ino.close()
            for fd in wake:
                os.close(fd)

    def _run(self) -> None:
        behind = False  # the last drain left events queued (a flood: read on at once)
        retry = RETRY_S[0]
        while not self._stop.is_set():
            if self._ino is None:  # given up: every answer is "everything" until watched again
                if self._broken.startswith(UNMOUNTED) or self._stop.wait(retry):
                    return
                self._rewatch()
                retry = min(retry * 2, RETRY_S[1])
                continue
            retry = RETRY_S[0]
            poller = select.poll()  # (of this instance: a journal watched again has another)
            poller.register(self._ino.fileno(), select.POLLIN)
            poller.register(self._wake[0], select.POLLIN)
            while self._ino is not None and not self._stop.is_set():
                wait = self.held_for()  # (the change log's rows held in a flood: upperclassify)
                if poller.poll(500 if wait is None else int(wait * 1000) + 1) and not self._stop.is_set():
                    # let a burst gather first: one read of many events, not a wake-up for
                    # each (an unlink of 10,000 files cost the daemon 2x the CPU woken per
                    # event). Answers drain first, so nothing is missed; the kernel's queue
                    # holds 16,384. Behind a flood, a millisecond only: an answer waiting
                    # takes the lock then
                    self._stop.wait(0.001 if behind else BATCH_S)
                    with self._lock:
                        behind = not self._drain(hold=True)
                elif wait is not None:
                    with self._lock:  # (the flood is over, or its rows waited long enough)
                        self.write_held()
                if self._broken and self._ino is not None:
                    with self._lock:
                        self._give_up(self._broken)

    def _rewatch(self) -> None:
        """Watch every directory of the upper layer in a new inotify instance, then make it
        the journal's. A token from before answers "everything" (what changed while nothing
        watched is unknown), and readers of the change log are told to resync.

        The walk holds no lock: answers meanwhile are "everything", at once (the journal is
        given up until the new instance is taken); what changes during the walk is queued
        in the new instance from the moment its directory is watched, and read as any other
        event once it is taken. Found in the thirty-third round (tidy2, from the review): a
        retry walked a big upper layer under the lock an answer waits on, and git's
        fsmonitor hook in the mount (so `git status`) waited out the walk."""
        from inotify_simple import INotify

        log.debug("watching the upper layer %s", self.upper_dir)
        try:
            ino = INotify(nonblocking=True)
        except OSError as exc:  # the user's instances used up (max_user_instances)
            with self._lock:
                self._give_up(f"inotify refused an instance: {exc.strerror}")
            return
        wds: dict[int, str] = {}
        with self._lock:  # (what the last instance knew: a name lost meanwhile makes suspects)
            links = self._links.fresh()
        why = self._walk(ino, wds, "", record=False, links=links)
        if not why:
            links.settle()  # (a walk cut short settles nothing: the next starts from it)
        with self._lock:
            if why or self._stop.is_set():
                ino.close()
                if why:
                    self._give_up(why)
                return
            self._ino, self._wds, self._broken, self._moved, self._links = ino, wds, "", {}, links
            self.lower_paths.clear()
            if self._lapsed:  # (given up before: what changed meanwhile is unknown)
                self._lapsed = False
                self._valid_from = self.seq + 1
                self._record("")
                self._overflowed()
        log.debug("the upper layer %s is watched: %d directories", self.upper_dir, len(wds))

    def _give_up(self, why: str) -> None:
        """Stop watching (the caller holds the lock): every watch goes back to the user at
        once (a journal holding them all until unmount denied every other program of the
        user inotify); answers are "everything" until :meth:`_run` watches again. Found in
        the thirty-second round (NAME=attack23): a refused watch (the user's watches used
        up, by a confined command's own for one) ended the journal for good, and the change
        log heard nothing more from the mount, with no ``resync_required``."""
        if self._ino is not None:
            self._ino.close()
            self._ino = None
        again = self._lapsed  # (a retry that failed too: said once, at the first give-up)
        self._broken = why or "the upper layer's watch was given up"
        self._lapsed = True
        self._wds, self._moved = {}, {}
        self.lower_paths.clear()
        if again:
            return
        if not why.startswith(UNMOUNTED):
            log.warning("%s: git's fsmonitor answers 'everything' until it is watched again", why)
        self._overflowed()

    def _overflowed(self) -> None:
        """Tell the change log's readers that what happened meanwhile is not in it."""
        self._batch.append((time.time(), "overflow", "", None))
        self._flush()

    def _record(self, path: str) -> None:
        if self._journal and self._journal[-1] == path and self.seq > self._answered:
            return  # a file written: created, modified, closed (one path; no token between)
        self._journal.append(path)
        if len(self._journal) > MAX_JOURNAL:
            drop = len(self._journal) // 2
            del self._journal[:drop]
            self._first += drop

    def _watch(self, ino: Any, wds: dict[int, str], path: str, real: str) -> str | None:
        """Watch directory ``path`` (reached as ``real``) in ``ino``, its descriptor kept in
        ``wds``: None when watched, "" when gone already (its parent's event says so), else
        why the watch was refused (the journal is given up)."""
        try:
            wd = ino.add_watch(real, WATCH_MASK)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                return ""
            return f"inotify refused a watch on {real}: {exc.strerror}"
        if wd not in wds and len(wds) >= self.budget:
            # (counted once the kernel answers: a directory watched already, walked again
            # after a queue overflow, has its old descriptor and takes no more)
            try:
                ino.rm_watch(wd)
            except OSError:
                pass  # (the instance is let go whole just after: the give-up closes it)
            return f"the mount's upper layer holds more than {self.budget} directories ({BUDGET_KEY})"
        wds[wd] = path
        return None

    def _watch_tree(self, path: str, real: str, *, record: bool) -> None:
        """:meth:`_walk` from directory ``path`` in the journal's own instance (the caller
        holds the lock); a watch refused breaks the journal. ``real``: its path (unused:
        each directory is reached from the layer's root, or as its parent's listing named
        it, never through a link: :func:`.upper.open_listed`)."""
        del real
        if self._broken or self._ino is None:
            return
        why = self._walk(self._ino, self._wds, path, record=record, links=self._links)
        if why:
            self._broken = why

    def _walk(self, ino: Any, wds: dict[int, str], path: str, *, record: bool, links: LinkedNames) -> str:
        """Watch directory ``path`` and every directory below it in ``ino``; with
        ``record`` (the journal's instance, under the lock), journal everything found there
        (a directory that just appeared: what was made in it before its watch existed is
        known only from this listing). Why a watch was refused ("" when none was)."""
        pid = os.getpid()
        follow = links.following()  # (files of one link too: a suspect's new name, review44)
        stack: list[tuple[str, up.Ident | None]] = [(path, None)]
        while stack:
            p, ident = stack.pop()
            fd = up.open_listed(self.upper_dir, p, ident)
            if fd is None:
                continue
            try:
                # the very directory listed (its descriptor; "." so that the watch is of the
                # directory, IN_DONT_FOLLOW and all)
                why = self._watch(ino, wds, p, f"/proc/{pid}/fd/{fd}/.")
                if why:
                    return why
                if why is not None:
                    continue
                with os.scandir(fd) as it:
                    for de in it:
                        if de.name == ".git" and not p:
                            continue
                        child = f"{p}/{de.name}" if p else de.name
                        at = f"/proc/{pid}/fd/{fd}/{de.name}"
                        try:
                            st = de.stat(follow_symlinks=False)
                        except OSError:
                            continue
                        if stat.S_ISDIR(st.st_mode):
                            if record:
                                self._dir_came(child, at)
                                if self.on_events is not None and self._lower_kind(child) is None:
                                    self._batch.append((time.time(), "created", child, None))
                            stack.append((child, (st.st_dev, st.st_ino)))
                            continue
                        if (st.st_nlink > 1 or follow) and stat.S_ISREG(st.st_mode):
                            links.found(child, st)
                        if record:
                            self._record(child)
                            if up.classify(at, st) == up.GONE:
                                self._record(child + "/")
                            if self.on_events is not None:
                                self._found(child, at, st)
            except OSError:
                continue
            finally:
                os.close(fd)
        return TOO_MANY if links.full else ""

    def _drain(self, hold: bool = False) -> bool:
        """Journal the events the kernel has queued (the caller holds the lock): all of
        those queued when it was called (its first read takes them all: every change made
        before an answer's question is in the answer), and more only for :data:`BATCH_S`.
        Found in the twenty-third round (NAME=attack14): it read until the queue was
        empty, and a command renaming a file in a loop queued events faster than they were
        read: no answer came while it ran (the person's `avfs status` and git's fsmonitor
        hook each waited out their 10 s, then read the whole upper layer). An event read and
        not journaled would be a change no answer names: after any failure here every
        answer is "everything". Whether it left none queued. ``hold``: the watcher's own
        drain, whose change log rows may wait for more (upperclassify's ``LOG_ROWS``); any
        other's writes them all first."""
        started = time.monotonic()
        while not self._broken and self._ino is not None and time.monotonic() - started <= BATCH_S:
            try:
                events = self._ino.read(timeout=0)
                if not events:
                    if not hold:
                        self.write_held()
                    return True
                # a path's newest event in this read: only it may ask the upper layer what
                # is there now (an earlier one's file may be renamed or removed since)
                final = {(ev.wd, ev.name): i for i, ev in enumerate(events)} if self.on_events else {}
                for i, ev in enumerate(events):
                    if i and (again := self._again(events[i - 1], ev)):
                        self._record(again)  # (all its handling would do)
                        continue
                    self._event(ev.wd, ev.mask, ev.name)
                    if self.on_events is not None:
                        self._classify(ev.wd, ev.mask, ev.name, ev.cookie, final[(ev.wd, ev.name)] == i)
                for path in self._links.search(self.upper_dir):
                    self._record(path)  # (names of a file linked anew: its other names changed)
                if self._links.full:
                    self._broken = TOO_MANY
                self._flush(hold)
            except Exception:
                log.exception("reading the upper layer's events")
                self._broken = "an event could not be journaled"
        if not hold:
            self.write_held()
        return bool(self._broken)  # (broken: nothing more is read; else the time was up)

    def _event(self, wd: int, mask: int, name: str) -> None:
        self.came, self.also = None, []
        self._forget_lower(wd, mask, name)
        if mask & IN_Q_OVERFLOW:
            # events were lost: no token from before is good, and directories made meanwhile
            # have no watch yet (every directory is watched again: the same inode keeps its wd)
            self._links = self._links.fresh()  # (a name removed in the lost events: suspects)
            self._watch_tree("", self.upper_dir, record=False)
            if not self._broken:
                self._links.settle()
            self._valid_from = self.seq + 1
            self._record("")
            return
        if mask & IN_IGNORED:
            self._wds.pop(wd, None)
            return
        if mask & IN_UNMOUNT:
            self._broken = UNMOUNTED
            return
        if self._broken:
            return  # (given up in this read: what follows is not journaled)
        parent = self._wds.get(wd)
        if parent is None or not name:
            return  # a directory's own attributes: git keeps none
        if not parent and name == ".git":
            return  # the worktree link avfs pins there
        path = f"{parent}/{name}" if parent else name
        if mask & IN_ISDIR:
            if mask & _GONE:
                self._record(path)
                self._record(path + "/")  # everything that was below it
                self._links.gone_below(path + "/", self.upper_dir, bool(mask & IN_MOVED_FROM))
            elif mask & _CAME:
                # made, copied up, or renamed here: watch it and what it holds
                real = os.path.join(self.upper_dir, path)
                self._dir_came(path, real)
                self._watch_tree(path, real, record=True)
            return
        self._record(path)
        if mask & _CAME:
            real = os.path.join(self.upper_dir, path)
            st = up.lstat(real)
            self.came = (path, st)  # (the classifier's of the same event: one lstat, record4)
            if st is None or up.classify(real, st) == up.GONE:
                self._record(path + "/")  # a whiteout: a directory may be gone
            self._links.found(path, st)
        elif mask & _GONE:
            self._links.gone(path, self.upper_dir, bool(mask & IN_MOVED_FROM))
        else:  # written or chmod-ed: the kernel names one of a linked file's names
            self.also = self._links.others(path, bool(mask & (IN_MODIFY | IN_CLOSE_WRITE)))
            for other in self.also:
                self._record(other)

    def _dir_came(self, path: str, real: str) -> None:
        """Journal a directory that appeared in the upper layer. git takes a path it has no
        entry for as a directory and looks again at every entry below it, so a directory
        copied up from the lower layer (what is below it unchanged but for what is journaled
        on its own) is not named; a new one is (git lists it as untracked), and a renamed
        or opaque one as a prefix (the lower content below it moved or went)."""
        redirect, opaque = up.dir_marks(real)
        lower = self._lower_kind(path)
        if redirect is not None or (opaque and lower is not None):
            self._record(path + "/")
        elif lower != "dir":
            self._record(path)

    # -- answers ----------------------------------------------------------------------------
    def changed_since(self, seq: int | None) -> tuple[int, list[str] | None]:
        """(the journal's sequence number now, the paths of the upper layer changed after
        ``seq``), complete as :meth:`answer`'s; the paths are None when the journal cannot
        say (``seq`` None: a first mark; older than what it holds; a watch refused). A
        directory named ``dir/`` stands for what is below it; ``""``: everything. (And
        the :meth:`suspects`.)"""
        with self._lock:
            self._drain()
            self._answered = self.seq
            now, paths = self._changed_since(seq)
            return now, paths if paths is None else self._links.with_suspects(paths)

    def suspects(self) -> list[str]:
        """Names a write through may name no event (:meth:`.LinkedNames.suspects`, review44)."""
        with self._lock:
            return self._links.suspects()

    def _changed_since(self, seq: int | None) -> tuple[int, list[str] | None]:
        now = self.seq
        if self._broken or seq is None or seq < max(self._first, self._valid_from) or seq > now:
            return now, None
        changed = list(dict.fromkeys(self._journal[seq - self._first :]))
        return now, None if "" in changed else changed  # "": the root itself (everything)

    def answer(self, token: str) -> list[str]:
        """git's fsmonitor answer for ``token``: the new token, then the paths that may
        have changed since it (``/``: everything)."""
        parts = token.split(":")
        # what the index was made over (base, view time), asked before the journal's lock
        # is taken: finding it may take a status, which asks this journal itself
        view = "" if parts[0] == SINCE_PREFIX else self._view()
        with self._lock:
            self._drain()
            if len(parts) == 3 and parts[0] == SINCE_PREFIX:  # avfs's own question
                mine = parts[1] == self.instance and parts[2].isdigit()
                self._answered = self.seq
                now, paths = self._changed_since(int(parts[2]) if mine else None)
                more = self._links.suspects()  # (the last ones, counted in the reply's head)
                reply = f"{SINCE_PREFIX}:{self.instance}:{now}:{len(more)}"
                # (as an answer to avfs's own question: git, asking with such a token planted
                # in the index, reads "everything", never a journal it did not ask; plant5)
                return own_reply(reply, [*([EVERYTHING] if paths is None else paths), *more])
            issued, seq = self._issued, self.seq
            self._answered = self._issued = seq
            new = f"{TOKEN_PREFIX}:{self.instance}:{view}:{seq}"
            if self._broken:
                return [new, EVERYTHING]
            if len(parts) == 5 and parts[0] == TOKEN_PREFIX and parts[1] == self.instance:
                if f"{parts[2]}:{parts[3]}" != view or not parts[4].isdigit():
                    return [new, EVERYTHING]  # the base moved and nobody rewrote the index
                since = int(parts[4])
                if since < max(self._first, self._valid_from) or since > issued:
                    return [new, EVERYTHING]  # (past the last token handed out: forged)
                changed = self._journal[since - self._first :]
                if "" in changed:
                    return [new, EVERYTHING]
                return [new, *self._links.with_suspects(list(dict.fromkeys(changed)))]
            if len(parts) == 4 and parts[0] == INDEX_TOKEN_PREFIX and f"{parts[1]}:{parts[2]}" == view:
                return [new, *self._differs_from_base()]
            return [new, EVERYTHING]

    def _differs_from_base(self) -> list[str]:
        """What may differ from an index of the base with the mount's stat data for an
        unchanged file: the overlay's entries, and the upper layer, walked only where it
        merges with a lower directory."""
        out: dict[str, None] = {}
        for path, plain in self._entry_paths():
            if not path:
                return [EVERYTHING]  # the whole tree replaced (an undo's entry)
            out[path] = None
            if not plain:
                out[path + "/"] = None  # a removal or a directory: what was below it
        pid = os.getpid()
        stack: list[tuple[str, up.Ident | None]] = [("", None)]
        while stack:
            p, ident = stack.pop()
            fd = up.open_listed(self.upper_dir, p, ident)  # (never through a link: _watch_tree)
            if fd is None:
                continue
            try:
                with os.scandir(fd) as it:
                    for de in it:
                        if de.name == ".git" and not p:
                            continue
                        child = f"{p}/{de.name}" if p else de.name
                        at = f"/proc/{pid}/fd/{fd}/{de.name}"
                        try:
                            st = de.stat(follow_symlinks=False)
                        except OSError:
                            continue
                        kind = up.classify(at, st)
                        if kind not in (up.DIR, up.OPAQUE):
                            out[child] = None
                            if kind == up.GONE:
                                out[child + "/"] = None
                            continue
                        # a directory: named only when git must look below it (see _dir_came)
                        redirect, opaque = up.dir_marks(at)
                        lower = self._lower_kind(child)
                        if redirect is not None or (opaque and lower is not None):
                            out[child + "/"] = None
                        elif lower == "dir":
                            stack.append((child, (st.st_dev, st.st_ino)))  # merges: what is below may differ
                        else:
                            out[child] = None  # new: nothing of the base is below it
            except OSError:
                continue
            finally:
                os.close(fd)
        return list(out)
