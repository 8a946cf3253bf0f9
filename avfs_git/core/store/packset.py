"""The vault's packs as a process last listed them, and a count of the times one of them
went (a repack rolled it into another, gc): what tells a long-lived process that the
object readers it keeps hold packs that are no longer there.

libgit2 never forgets a pack it opened: its pack backend adds the packs a rescan finds
and drops none, and keeps each one's file open. The repositories a store keeps, one a
thread (:class:`.gitstore.GitStore`), held every pack the session ever wrote, those the
geometric repack removed included (``packwriter.maybe_consolidate``, past 24 packs): an
overlay mount's daemon had 838 descriptors open after 600 checkpoints, 750 of them of
removed packs (a pure-FUSE one 430 after about 160), and every read that missed the pack
it last found an object in searched them all. Once :attr:`PackSet.gone` moves, the
threads' repositories opened before are let go of (:meth:`PackSet.let_go`, on the way
into libgit2: :meth:`.gitstore.GitStore._repo`), and the store's pure reader drops what its
listing no longer holds (:mod:`.objreader`: listed again once :attr:`PackSet.gone` moves,
on a miss, or when an object is found in a pack whose file went).

The directory is listed only when its ``stat`` changed (a new pack, a removed one), and
looked at no oftener than :data:`LOOK_S` by a store (a ``stat``, a few microseconds).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any

from .threads import ThreadSlots

LOOK_S = 0.5  # a store looks at its pack directory at most this often


class PackSet:
    """The ``.pack`` files of one repository's ``objects/pack`` as last listed."""

    def __init__(self, git_dir: str) -> None:
        self.dir = os.path.join(git_dir, "objects", "pack")
        self.gone = 0  # how many listings found a pack of the one before gone
        self.next_look = 0.0  # (monotonic) when the next look is due
        self._stamp: tuple[int, int, int] | None = None
        self._names: frozenset[str] = frozenset()
        self._swept = 0  # :attr:`gone` as the last sweep of the threads' repositories saw it
        self._lock = threading.Lock()

    def look(self) -> int:
        """List the directory if it changed since the last look; :attr:`gone` after it."""
        self.next_look = time.monotonic() + LOOK_S
        try:
            st = os.stat(self.dir)
        except OSError:
            return self.gone
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if stamp == self._stamp:
            return self.gone
        with self._lock:
            if stamp != self._stamp:
                try:
                    names = frozenset(n for n in os.listdir(self.dir) if n.endswith(".pack"))
                except OSError:
                    return self.gone
                # (listed after the stat: a change between the two is listed again next time)
                if self._names - names:
                    self.gone += 1
                self._names, self._stamp = names, stamp
        return self.gone

    def opened(self, ns: dict[str, Any], repo: Any) -> None:
        """Keep ``repo``, just opened by the caller, in a thread's namespace ``ns``, with
        what it saw and its references (pygit2's own among them: it refers to itself)."""
        ns["repo"], ns["repo_gone"] = repo, self.gone
        ns["repo_refs"] = sys.getrefcount(repo) - 2  # (the caller's and this call's)

    def let_go(self, slots: ThreadSlots) -> None:
        """Once a pack went since the last sweep, take every thread's repository opened
        before out of its namespace in ``slots`` (and the pack databases of
        :mod:`.odbdirect` beside it: each thread opens anew at its next use), freeing each
        that nothing else holds (a thread in the middle of a call on it holds it: that one
        is freed by the cycle collector once it is done; a repository changed under a
        walk would mix two). A thread that went idle holding one is swept too. Looks at
        the directory first when a look is due."""
        if time.monotonic() >= self.next_look:
            self.look()
        gone = self.gone
        if self._swept == gone:
            return
        self._swept = gone
        for ns in slots.spaces():
            if ns.get("repo_gone", gone) == gone:
                continue
            repo, refs = ns.pop("repo", None), ns.pop("repo_refs", 0)
            ns.pop("repo_gone", None)
            ns.pop("packs", None)
            if repo is not None and sys.getrefcount(repo) <= refs:
                repo.free()  # (it refers to itself: only the cycle collector would free it)
