"""git's fsmonitor answers of a pure-FUSE mount, from the workspace's journal.

Every change the pure-FUSE mount serves is written by avfs into the workspace's overlay
and journaled there (the path, under a sequence number) before the system call that made it
returns, whoever made it: a process in the mount, the CLI, a checkpoint. The mount's daemon
answers git's hook (mount/hooksocket.py) with :class:`JournalAnswerer`, as the Python hook
that read the journal itself did before (``_HOOK`` in mount/worktree.py until the hook went
to the socket, where Perl starts in ~3 ms against Python's ~16; tests/test_fsmonitor.py
keeps it and compares the two):

- the token is ``avfs:BASE:VIEW_TIME:SEQ``: the journal up to SEQ over base BASE shown at
  VIEW_TIME (the form of the token avfs writes into the index it builds,
  :func:`.index.fsmonitor_token`, whose SEQ is the oldest overlay entry's, less one);
- a token of another form (git's first call, its index holding no token of ours): the
  overlay's entries, each with its parent directory (what may differ from the index avfs
  wrote: the base with the mount's stat data); ``/`` when one of them is the root (an
  undo's or a rebase's entry: the whole tree replaced);
- a token over another base or view time: ``/`` (the base moved and nobody rewrote the
  index yet);
- else the paths journaled after the token's SEQ, each with its parent directory (a
  journaled root, ``""``, answers ``/``).

Two answers are new, for tokens the old hook never saw: the tokens of the overlay backend's
daemon (``avfs-ovl:...``, among them ``avfs-ovl:none``, the hook's own when no daemon
answered: git then looked at every file, at a moment this journal cannot place) and avfs's
own question to that daemon (``avfs-since:...``) answer ``/``.

And one is not git's: avfs's question ``avfs-writers`` (:data:`.hookwire.WRITERS`) is
answered as :func:`.hookwire.own_reply` says (a token of no state and ``/``, which git
reads as "everything", then the question), then the file ids of the overlay files the mount's write handles hold
open (:attr:`JournalAnswerer.writers`: the daemon's handle table, set once it is made; until
then the question is answered as a token of another form, and the asker probes every file).
A merge into the mount asks it before it moves the fork (core/operations/mergeguard.py
``refuse_open_files``), where it probed each of the overlay's files for a write handle's
flock: ~370 ms a merge with minimist's ``node_modules`` in the overlay.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ..core.workspace.hookwire import WRITERS, own_reply

if TYPE_CHECKING:
    from ..core.workspace.overlay import Overlay

TOKEN_PREFIX = "avfs"  # the index token's (worktree.fsmonitor_token), and this answerer's
EVERYTHING = "/"
_NOT_OURS = ("avfs-ovl", "avfs-since")  # upperwatch.TOKEN_PREFIX, upperwatch.SINCE_PREFIX


class JournalAnswerer:
    """Answers git's fsmonitor hook of a pure-FUSE mount of the workspace whose overlay is
    ``overlay`` (see the module's docstring); from any thread (each reads the database on
    its own connection, in one read transaction: the token and the paths describe one
    state)."""

    def __init__(self, overlay: Overlay) -> None:
        self._overlay = overlay
        # the highest journal sequence number a token handed to git held: none yet. A token
        # an earlier daemon handed out (before a remount) is trusted only as far as the one
        # avfs writes into an index; another costs one "everything" answer. Starting at the
        # journal's end trusted one the agent planted ahead once the person's edits had moved
        # the journal past it (review39)
        self._issued = -1
        # the file ids the mount's write handles hold open (fuse/handles.py), once it serves
        self.writers: Callable[[], list[str]] | None = None

    def answer(self, token: str) -> list[str]:
        writers = self.writers
        if token == WRITERS and writers is not None:
            return own_reply(WRITERS, writers())
        ov = self._overlay
        db = ov.db
        own = not db.in_transaction
        if own:
            db.execute("BEGIN")  # deferred: the snapshot starts at the first read
        try:
            meta = ov.get_metas("base", "view_time", "journal_from")
            state = f"{meta.get('base')}:{meta.get('view_time')}"
            last = ov.last_seq()
            out = [f"{TOKEN_PREFIX}:{state}:{last}"]
            issued, self._issued = self._issued, max(self._issued, last)
            old = token.split(":")
            if old[0] in _NOT_OURS:
                return [*out, EVERYTHING]
            if len(old) != 4 or old[0] != TOKEN_PREFIX:
                paths = [str(r[0]) for r in db.execute("SELECT path FROM entries")]
                if "" in paths:
                    return [*out, EVERYTHING]
                return [*out, *_with_parents(paths)]
            if f"{old[1]}:{old[2]}" != state:
                return [*out, EVERYTHING]
            try:
                since = int(old[3])
            except ValueError:
                return [*out, EVERYTHING]  # (the old hook failed on it: git looked at everything)
            dropped = int(meta.get("journal_from") or 0)
            if dropped and since < dropped:
                return [*out, EVERYTHING]  # older than the journal keeps
            if since > last:  # dated past the journal's end: a token the agent wrote (review38)
                return [*out, EVERYTHING]
            if since > issued and since > _index_seq(db, last):
                # dated past every token handed out and the one avfs writes into an index (the
                # oldest entry's, less one): the agent's, a few events ahead, had the person's
                # next edits left out of their `git status` (plant5)
                return [*out, EVERYTHING]
            rows = db.execute("SELECT DISTINCT path FROM journal WHERE seq > ?", (since,))
            return [*out, *_with_parents(str(r[0]) for r in rows)]
        finally:
            if own:
                db.execute("COMMIT")


def _index_seq(db: Any, last: int) -> int:
    """The sequence number of the token avfs writes into an index it builds now
    (:func:`.index.read_view`): the oldest overlay entry's, less one, else the journal's end.
    One written earlier over the same base and view time held no more (entries only come
    with newer numbers)."""
    row = db.execute("SELECT MIN(seq) FROM entries").fetchone()
    return int(row[0]) - 1 if row and row[0] is not None else last


def _with_parents(paths: Iterable[str]) -> list[str]:
    """Each path, the same as a directory (``p/``: what was below it, when it was one), and
    its parent directory (``d/``: its listing changed), once each; the root as ``/``."""
    out: dict[str, None] = {}
    for path in paths:
        parent = path.rsplit("/", 1)[0] + "/" if "/" in path else ""
        for p in (path, path + "/", parent):
            if p:
                out[p] = None
    return list(out)


def start_journal_hook(ws: Any, own: str) -> Any:
    """Answer git's fsmonitor hook of a pure-FUSE mount from the workspace's journal
    (mount/journalhook.py); None when the socket cannot be served (the hook then answers
    "everything": git looks at every file, slower but right)."""
    import logging

    from .hooksocket import HookServer

    try:
        server = HookServer(own, JournalAnswerer(ws.overlay))
        server.start()
        return server
    except Exception:
        logging.getLogger("avfs.fuse").exception("serving git's fsmonitor hook from the journal")
        return None
