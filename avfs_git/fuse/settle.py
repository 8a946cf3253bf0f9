"""A lazy fork's mount answers before its sizes and its git index exist (docs/lazy.md,
"Mounting a lazy fork: sizes before contents").

Both grow with the number of files: the blobs' sizes (one ``object-info`` request to the
server, or one fetch of the tree's missing blobs where the server cannot say) and the
worktree's git index (every file's entry with the stat data the mount reports). A mount of
a whole vault writes its index before it serves; a lazy fork's mount serves first (``ls``
answers at once) and does both here, on a thread of its own started as FUSE's handshake
is done:

1. the base tree's sizes are asked (core/store/treesizes.py ``ask``), on a thread of
   their own, the root directory's files first in a small request of their own
   (overlayfs looks them up as it lists the root); meanwhile a ``stat`` of a file whose
   size is not known yet waits for it (:meth:`.GitStore.blob_size`; its directory's sizes
   asked meanwhile in a small request of their own: treesizes.py ``ask_dir``), so the mount never
   shows a size it does not know, and a listing hands the kernel such a file's name
   without its attributes (:meth:`.fuse.view.ViewOps.plus_ok`);
2. meanwhile the index and its untracked cache are made (the daemon's
   :meth:`write_index`, mount/index.py ``sync_index``) with the sizes not yet known left
   0; once the sizes are in, they are filled in and the index is written. A fork's index
   is git's ``read-tree`` of the base tree (mount/readtree.py), started as the sizes are
   first asked (:meth:`Settle._first`), and the sizes read the tree's blobs from that
   index, so git lists the tree once (else, or for a revision's mount, from one ``git
   ls-tree``, core/store/treelist.py, read in bulk; its ``read-tree`` then starts once the
   mount is announced); the index's work on this
   interpreter starts once the whole tree's request has gone out (:data:`SENDING_S`); so libgit2 is not needed: it is loaded
   once the git commands that waited at the gate have ended (:meth:`Settle.wait` notes
   them; at most :data:`AFTER_GIT_S`), as are the exec server's warm-up and the index
   kept per base (:attr:`Settle.after_git`): its import holds the interpreter ~0.05 s,
   the warm-up's 0.1-0.2 s, the kept index's check and write ~0.03 s, which those git
   commands' requests (the fsmonitor hook's answer, their `lstat`s) would wait for. The index is never written with a size left 0: git
   compares the contents of such an entry's file whenever it looks at it (``ie_modified``
   in git's read-cache.c), and a git run without the fsmonitor (``-c
   core.fsmonitor=false``) looks at every file, so it would read, and fetch, every blob.
   The waits on git and on the server (git's listing, the root's sizes, and over
   ``git://`` the whole tree's request, the server answering while the mount comes up)
   start at once; the work that holds this interpreter for long (the whole tree's answer,
   the index) waits until the mount is announced (``stacked``, :meth:`Settle._announced`),
   so the caller's wait for the mount does not share the interpreter with it. This step and
   what follows it (the tree's ``.gitignore`` files fetched for the untracked
   cache, the index kept per base, the skeleton's removal, the lower layer's walk) wait
   while another process uses the mount (:meth:`Settle.asked_by`, told of every FUSE
   request by :class:`.libfuse.FastFUSE`) until it has been quiet for :data:`QUIET_S` and
   the thread that made the last request is off the CPUs (:func:`_computing`), unless
   a git command waits at the gate (:meth:`Settle.wait`): none of it is for anyone but git,
   and a program run the moment ``ls`` answered (a test run) shared the daemon's
   interpreter and the machine's cores with it (docs/lazy.md, "The index waits while the
   mount is used"); a mount closing meanwhile makes no index;
3. the gate on the mount's ``.git`` opens: git reads ``.git`` first, so every git command
   in the mount waits in its ``open`` (a ``stat`` of it does not) (at most :data:`GATE_S`) for the index it must trust, never finding
   ``git read-tree``'s (zeroed stat data: git would read, and so fetch, every file);
4. for the overlay backend, once the overlay is stacked, ``.git`` is pinned immutable in
   the upper layer through the overlay (it was served by the lower layer, gated, until
   now; docs/fuse.md), written over without being truncated first (a git command reading
   it then must never find it empty).

A failure of 1 or 2 (the server gone) is logged and the gate opens anyway: the mount then
behaves as an offline one (an unfetched file's read or ``stat`` fails with ``EIO``), except
that git's ``open`` of ``.git`` fails with ``EIO`` while no index is written (each git
command tries to make it once more): git finding no index would take every file for
deleted, and a ``git commit`` would commit the tree's deletion.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from ..mount import baselisting

GATE_S = 180.0  # how long a git command in a mount waits for its index (a size request: 60 s)
# what waits for the git commands that waited at the gate (libgit2's load, the exec server's
# warm-up, the kept index's write) waits this long at most for them to end
AFTER_GIT_S = 5.0
# the interpreter's switch interval while the mount settles (CPython's default: 5 ms): the
# mount's requests (the caller's check, `ls`, overlayfs's lookups) each take the
# interpreter for a moment, and waited up to the interval for each of those moments
# behind the two threads of the settling (`avfs mount` 0.45 s against 0.32 s without them)
SWITCH_S = 0.0005
# the index waits until the mount has been this long without a request from another process
# (or until a git command waits for it): a test run's requests come milliseconds apart
QUIET_S = 2.0
# a mount quiet that long whose last user (the thread of another process that made the last
# request) is still on a CPU (a test run between its imports: its tests, seconds without a
# request at load 20-40) is still used: the index waits, looking again this often, until
# that thread sleeps or ends, or at most BUSY_MAX_S past the quiet (git asking ends it too)
BUSY_POLL_S = 0.25
BUSY_MAX_S = 30.0
# how long the index waits for the whole tree's request for sizes to go out before it takes
# the interpreter (it is ready in 0.02-0.1 s once the mount is announced)
SENDING_S = 1.0


class Settle:
    """What a lazy fork's mount does after it answers: sizes, index, ``.git``."""

    def __init__(
        self, ws: Any, write_index: Callable[..., bool], *, beside: bool = True, quiet_s: float = QUIET_S
    ) -> None:
        """``ws``: the workspace the mount serves; ``write_index(sizes)``: the daemon's index
        writer (``sizes()`` waits for the sizes); ``beside`` False: it is called with no
        argument once the sizes are in (a revision's mount: its index is not a fork's);
        ``quiet_s``: how long the mount must be quiet before the index is made unasked."""
        self.ws = ws
        self.quiet_s = quiet_s
        self._own = os.getpid()  # the daemon's own requests (the merged listings) are no one's use
        self._asked_at = time.monotonic() - quiet_s  # another process's last request
        self._asker = 0  # the thread that made it (its id in the daemon's pid namespace)
        self._wanted = threading.Event()  # set: a git command waits at the gate, or the mount closes
        self._closing = False
        self.write_index = write_index
        self.beside = beside
        self.gate = threading.Event()  # set: the index is written (or cannot be)
        self.indexed = False  # the index is written: git may run (see :meth:`wait`)
        self._again = threading.Lock()  # one try again at a time (:meth:`wait`)
        self._once = threading.Lock()  # (:meth:`_ahead`)
        self._started = False  # git's index of the tree is started (:meth:`_ahead`)
        self._tree: str | None = None  # the tree whose sizes are asked (:meth:`_listed`)
        self._read_after = False  # :meth:`_announced` ran
        self.pin: Callable[[], None] | None = None  # the overlay backend's .git pin
        # set: the mount is announced (the overlay stacked, the caller told): the settling's
        # work on this interpreter waits for it, not to hold up the announcement
        self.stacked = threading.Event()
        self._asked = threading.Event()  # set: the sizes are asked (or will not be)
        # set: the whole tree's request for sizes goes out (or none will): the index's work
        # on this interpreter waits for it (:data:`SENDING_S`)
        self._sending = threading.Event()
        self._switch = sys.getswitchinterval()  # the interpreter's own, put back once settled
        self._waited: set[int] = set()  # the processes that waited at the gate (:meth:`wait`)
        # set: those have ended (or :data:`AFTER_GIT_S` passed, or the mount closes): what
        # is not for them (libgit2's load, the exec server's warm-up, the kept index) may run
        self.after_git = threading.Event()

    def start(self) -> threading.Thread:
        """Start the work (returned: its thread, for the teardown to join), the sizes on a
        thread of their own, marked as being asked before this returns. Their waits on git
        and on the server (the root's sizes, the tree's listing by ``git ls-tree``) go on
        while the mount is announced; what takes this interpreter (the listing's parse, the
        whole tree's request and answer, the index) waits for the announcement."""
        self._switch = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_S)
        sizes = threading.Thread(target=self._sizes, args=(self._asked,), name="avfs-sizes", daemon=True)
        sizes.start()
        t = threading.Thread(target=self._run, args=(self._asked, sizes), name="avfs-settle", daemon=True)
        t.start()
        self._asked.wait(GATE_S)
        return t

    def _sizes(self, asked: threading.Event) -> None:
        try:
            self.ws.ask_sizes(
                asked.set,
                first=self._first,
                then=self._listed,
                sending=self._sending.set,
                reading=self._announced,
            )
        except Exception:
            logging.getLogger("avfs.fuse").exception("asking the sizes of the mount's files")
        finally:
            asked.set()
            self._sending.set()

    def _first(self, tree: str) -> None:
        """Before the root's sizes are asked: a fork's git index of ``tree`` started
        (mount/baselisting.py ``read_tree_first``), its process running while the root's
        request waits on the server (the whole tree's request waits for its blob ids)."""
        if self.beside and not self.stacked.is_set():
            baselisting.read_tree_first(self.ws, tree)

    def _listed(self, tree: str) -> None:
        """Between the root's sizes and the whole tree's: git's listing of ``tree`` started
        (for a fork, git's index of it, whose blob ids the sizes read: mount/baselisting.py
        ``read_tree_first``). The whole tree's request then goes out, and its answer is read
        once the mount is announced (:meth:`_announced`)."""
        self._tree = tree
        if baselisting.kept_now(self.ws, tree):
            self._tree = None
            return  # (made with its sizes by a process of its own: the mount's index patches it)
        if not self.stacked.is_set():
            if self.beside:
                baselisting.read_tree_first(self.ws, tree)
            else:
                baselisting.prelist(self.ws, tree)

    def _announced(self) -> None:
        """Before the whole tree's answer for sizes is read (or, none asked, before anything
        else is done): the wait for the mount's announcement, then :meth:`_ahead`; once. The
        request went out before it (the server answers while the mount comes up: the gate
        had waited for that answer, 0.1-0.3 s after the announcement at load 14-20); its
        answer's parse and the index wait for the announcement, as they did."""
        if self._read_after:
            return
        self._read_after = True
        if self._tree is None:
            return
        self.stacked.wait(GATE_S)
        self._ahead(self._tree)

    def _ahead(self, tree: str | None) -> None:
        """A fork's index: git's read-tree of the tree and the head of its untracked cache
        started, once (read once git asks: mount/baselisting.py ``read_tree_ahead``), when
        the mount is announced (before, their processes shared the cores with the mount's
        start, `avfs mount` 0.2 s slower at load 5), whether or not the tree's sizes are
        to be asked (where every size is known, git's read-tree had waited for the gate)."""
        if not self.beside:
            return
        with self._once:  # (held while it starts: the index's maker then finds what it started)
            if self._started:
                return
            self._started = True
            try:
                baselisting.read_tree_ahead(self.ws, tree if tree is not None else self.ws.view.base_tree)
            except Exception:
                logging.getLogger("avfs.fuse").exception("starting git's index of the mount's tree")

    def _serial(self, sizes: threading.Thread) -> bool:
        sizes.join(GATE_S)
        return self.write_index()

    @property
    def over(self) -> bool:
        """The index is written (or cannot be): no request needs telling any more."""
        return self.gate.is_set()

    def asked_by(self, pid: int) -> None:
        """A FUSE request from thread ``pid`` (0: the kernel's own) is being served: unless it
        is one of the daemon's own (its listing of the merged directories, the ``.git`` pin),
        the index waits for the mount to be quiet again."""
        if pid != 0 and pid != self._own and not os.path.exists(f"/proc/{self._own}/task/{pid}"):
            self._asked_at = time.monotonic()
            self._asker = pid

    def wait(self, pid: int = 0) -> bool:
        """Block until the index is written (at most :data:`GATE_S`), made now if it was
        waiting for quiet: for a git command at ``.git`` (``pid``: its process, noted while
        the gate is shut: :attr:`after_git` waits for it to end). False when there is none (the
        server did not answer the sizes): git must not run then, or it finds no index and
        takes every file for deleted (a `git commit` commits the tree's deletion). Each git
        command tries again once (the server may be back), one at a time."""
        if pid > 0 and not self.gate.is_set():
            self._waited.add(pid)
        self._wanted.set()
        if not self.gate.wait(GATE_S):
            return False
        if self.indexed or self._closing:
            return self.indexed
        with self._again:
            if not self.indexed and not self._closing:
                try:
                    self.indexed = bool(self.write_index())
                except Exception as exc:
                    logging.getLogger("avfs.fuse").warning(
                        "git in this mount is refused (EIO) until its index can be made: %s", exc
                    )
                if self.indexed and self.pin is not None and self.stacked.is_set():
                    # (not on this request's thread: the pin's copy-up reads .git here)
                    threading.Thread(target=self._pin, name="avfs-pin", daemon=True).start()
        return self.indexed

    def _pin(self) -> None:
        assert self.pin is not None
        try:
            self.pin()
        except Exception:
            logging.getLogger("avfs.fuse").exception("pinning .git in the upper layer")

    def settled(self) -> None:
        """Block until the index is written (at most :data:`GATE_S`), without asking for it:
        for what comes after it in the background (the lower layer's walk, a later index)."""
        self.gate.wait(GATE_S)

    def after_gits(self) -> None:
        """Block until the git commands that waited at the gate have ended (:attr:`after_git`;
        at most twice :data:`AFTER_GIT_S`): for what comes after the index but is not theirs."""
        self.after_git.wait(2 * AFTER_GIT_S)

    @property
    def closing(self) -> bool:
        """The mount is closing (:meth:`close`)."""
        return self._closing

    def close(self) -> None:
        """The mount is closing: an index still waiting for quiet is not made (the gate opens)."""
        self._closing = True
        self._wanted.set()
        self.after_git.set()

    def _stand_aside(self) -> None:
        """Wait until the mount has been quiet for ``quiet_s`` and the thread that made the
        last request is not on a CPU (at most :data:`BUSY_MAX_S` past the quiet), or the
        index is wanted."""
        busy_since: float | None = None
        while not self._wanted.is_set():
            now = time.monotonic()
            quiet = now - self._asked_at
            if quiet < self.quiet_s:
                self._wanted.wait(self.quiet_s - quiet)
                continue
            if busy_since is None:
                busy_since = now
            if now - busy_since >= BUSY_MAX_S or not _computing(self._asker):
                return
            self._wanted.wait(BUSY_POLL_S)

    def _run(self, asked: threading.Event, sizes: threading.Thread) -> None:
        from ..core.store.gitstore import prefer_libgit2

        log = logging.getLogger("avfs.fuse")
        try:
            self.stacked.wait(GATE_S)
            self._ahead(None)  # (or the sizes' thread did, having listed the tree)
            # whoever mounted it uses it next (an `ls`, a test run): counted as a request
            self._asked_at = max(self._asked_at, time.monotonic())
            asked.wait(GATE_S)  # (the index must find them asked: a size it looks up waits)
            self._stand_aside()
            if self._closing:
                return  # (nobody will run git here: the mount goes away)
            # the whole tree's request for sizes leaves first: the gate waits for the
            # server's answer, and the index's pass would hold the interpreter the request's
            # ids are read on (0.1 s later on the wire at 20,538 files)
            self._sending.wait(SENDING_S)
            try:
                self.indexed = bool(
                    self.write_index(lambda: sizes.join(GATE_S)) if self.beside else self._serial(sizes)
                )
                if not self.indexed:
                    log.warning("index.lock stayed taken: index not written")
            except Exception:
                log.exception("writing the worktree index")
        finally:
            asked.set()
            self.gate.set()
        sizes.join(GATE_S)
        sys.setswitchinterval(self._switch)
        baselisting.drop(self.ws)  # (the listing both took)
        if self.pin is not None and self.stacked.is_set() and self.indexed:
            self._pin()  # (not without an index: .git stays the lower layer's, gated)
        try:
            self._gits_ended()
        finally:
            self.after_git.set()
        # libgit2 from here on (the lower layer's walk, reads): loaded once git may run,
        # not before (its import, 50-300 ms here, was on the way to `ls`, then on the way
        # to the first `git status`; the sizes and the index list the tree through git),
        # and not at once: the git commands that waited at the gate run first (the import
        # holds the interpreter ~0.05 s, which the first `git status`'s requests waited for)
        prefer_libgit2()

    def _gits_ended(self) -> None:
        """Wait (at most :data:`AFTER_GIT_S`) until the processes that waited at the gate
        have ended: what follows the index on this interpreter is not theirs, and their
        requests (the fsmonitor hook's answer, an ``lstat``) waited for it. None waited (the
        index made once the mount was quiet): no wait."""
        deadline = time.monotonic() + AFTER_GIT_S
        for pid in sorted(self._waited):
            while not self._closing and time.monotonic() < deadline and _running(pid):
                time.sleep(0.01)


def _computing(tid: int) -> bool:
    """Thread ``tid`` is on a CPU or waiting for one (state ``R``) in one of three looks 10 ms
    apart: a program computing between its requests, not one asleep or gone."""
    for i in range(3):
        if i:
            time.sleep(0.01)
        try:
            with open(f"/proc/{tid}/stat", "rb") as fh:
                if fh.read().rpartition(b")")[2][1:2] == b"R":
                    return True
        except OSError:
            return False
    return False


def _running(pid: int) -> bool:
    """Process ``pid`` runs (not gone, not a zombie waiting for its parent)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rpartition(b")")[2][1:2] not in (b"Z", b"X")
    except OSError:
        return False


def pin_through(merged: str, text: bytes) -> None:
    """Pin the worktree's ``.git`` in an overlay's upper layer through the overlay at
    ``merged`` (its lower layer shows it): copied up with ``text``, read-only and immutable
    (``chattr +i``'s flag, set in process), so nothing in the mount can delete or replace it
    (stacking._pin_gitfile does the same in the upper directory before an overlay is stacked)."""
    from ..core.workspace.upper import set_immutable

    path = os.path.join(merged, ".git")
    # not truncated first: the lower layer's ``.git`` holds ``text`` already, and a git
    # command reading it right as the gate opened found it empty in between ("invalid
    # gitfile format", exit 128)
    fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.write(fd, text)
        os.ftruncate(fd, len(text))
    finally:
        os.close(fd)
    os.chmod(path, 0o444)
    set_immutable(path, True)
