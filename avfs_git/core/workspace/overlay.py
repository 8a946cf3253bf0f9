"""The overlay of one workspace: what changed since the base commit, on disk.

Layout of a workspace state dir (``<vault>/avfs/ws/<fork>/``)::

    overlay.db   SQLite (WAL): entries, journal, meta (base commit, pending checkpoint)
    files/       contents of materialized files, one file per entry, named by a token
    upper/       the upper layer of an overlay mount (the kernel's), when the fork has one

An entry (:mod:`.overlayentry`) describes the *absolute* state of one path, never a delta.
Because entries are absolute, an entry written while a checkpoint runs stays valid whatever
the checkpoint does: the checkpoint retires only the entries whose ``seq`` it captured.

:class:`Overlay` is built in layers, each a module: the database and the files directory
(:mod:`.overlaydb`: connections, transactions, meta, totals, file ids and their garbage),
the upper layer read as entries (:mod:`.overlayupper`), the times of the files checkpoints
retired (:mod:`.overlaykept`), and here what every caller uses:
the entries as read (the upper layer's over the database's), written and journaled.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from ..store.names import ancestors, parent_of
from ..store.safeopen import PATH_MAX
from ..types import MODE_COMMIT
from . import upper as up
from .overlaydb import ENTRY_COLS, entry_of_row, sql_text
from .overlayentry import DELETED, EMPTY_TREE_ID, FILE, OBJECT, SPECIAL_ORIGIN, Entry, unignored_rows
from .overlaykept import KeptTimes
from .overlayupper import MERGED, SUBMODULE

# The journal keeps about this many rows: past it, the oldest go in steps of TRIM_STEP,
# looked at every TRIM_STEP rows (a write never waits for more than one step's delete).
# What read further back than is kept is "everything" (the root, ""), or for `avfs watch`
# ``resync_required``; JOURNAL_FROM (meta) is the newest row dropped.
MAX_JOURNAL = 1_000_000
TRIM_STEP = 16_384
JOURNAL_FROM = "journal_from"
# A lookup's chain longer than this reads its last paths first (Overlay._db_lookup)
LOOKUP_TAIL = 8
# ... and one longer than this reads the paths above those by a range of the index, not
# named one by one: the range reads every entry that sorts between the chain's first name
# and its path (a fork with many changes there: thousands of rows), so only where naming
# each would cost more (a tree hundreds of levels deep)
DEEP_CHAIN = 64


class Overlay(KeptTimes):
    """SQLite-backed overlay store of one workspace; one connection per thread."""

    def changed_entries(self, candidates: Iterable[str]) -> list[Entry]:
        """What :meth:`all` returns, with the upper layer read only at and below
        ``candidates`` (paths; ``dir/`` stands for ``dir``): every entry elsewhere must be
        one the caller knows shows the base unchanged (the journal of what changed since
        a status found so). The database's entries are all there, and are candidates too
        (what the upper layer hides of them is known only by looking), but under the
        pruning of ignored directories (:meth:`pruning`) those below a new directory git
        ignores (:func:`.overlayentry.unignored_rows`)."""
        if not self.upper_active():
            return self._db_rows()
        prune = getattr(self._no_upper, "prune", None)
        db = self._db_all() if prune is None else unignored_rows(self, prune)
        tops: dict[str, bool] = {}  # top -> gone below a directory looked through
        with self.remembering():
            for c in {c.rstrip("/") for c in candidates} | {e.path for e in db if e.path}:
                top = self.change_top(c) if c else None
                if top is not None:
                    tops[top[0]] = tops.get(top[0], False) or top[1]
        upper: list[Entry] = []
        hides: list[str] = []
        dirs: list[tuple[str, Entry]] = []
        for t in sorted(tops):
            if any(a in tops for a in ancestors(t) if a):
                continue  # below another top: walked with it
            got = self._u_entry(t)
            if got is None and tops[t]:
                got = Entry(t, DELETED, 0)  # nothing there below an opaque directory: gone
            if not isinstance(got, Entry):
                continue  # gone since
            upper.append(got)
            hides.append(t)
            dirs += [(t, got)] if got.kind == OBJECT else []
        # walked once every top is read: whether git ignores a directory is judged with the
        # .gitignore files and whiteouts at every top (a `git rm .gitignore`), wherever they sort
        tops_read = list(upper)
        for t, got in dirs:
            real = os.path.join(self.upper_dir, t)
            if (st := up.lstat(real)) is None:
                continue
            if prune is not None and self._new_dir(t, real, st, got) and t in prune([t], tops_read):
                continue  # a new directory git ignores: shown empty, not read
            below, hidden = self._u_walk(t, tops_read)
            upper += below
            hides += hidden
        root = [e for e in db if e.path == ""]
        return root + self._merge([e for e in db if e.path], upper, hides)

    # -- reads: the upper layer over the database ----------------------------------------
    def get(self, path: str) -> Entry | None:
        if not self.upper_active():
            return self._db_get(path)
        got, hidden, _ = self._u_chain(path)
        if got is not None:
            return got
        return None if hidden else self._db_get(path)

    def get_many(self, paths: list[str]) -> dict[str, Entry]:
        if not self.upper_active():
            return self._db_get_many(paths)
        out: dict[str, Entry] = {}
        with self.remembering():  # (the paths of one read share their ancestors)
            for p in paths:
                e = self.get(p)
                if e is not None:
                    out[p] = e
        return out

    def lookup(
        self, chain: list[str], children_of: str | None = None
    ) -> tuple[dict[str, Entry], list[Entry], str | None]:
        got, kids, base = self._db_lookup(chain, children_of)
        if not self.upper_active():
            return got, kids, base
        got = self.get_many(chain)
        if children_of is not None:
            kids = self.children(children_of)
        return got, kids, base

    def children(self, parent: str) -> list[Entry]:
        if not self.upper_active():
            return self._db_children(parent)
        here, hidden, shut = self._u_chain(parent)
        db = [] if hidden else self._db_children(parent)
        if shut or (here is not None and here.kind != OBJECT):
            return [] if here is not None else db
        real = os.path.join(self.upper_dir, parent) if parent else self.upper_dir
        upper: list[Entry] = []
        hides: list[str] = []
        if len(os.fsencode(real)) >= PATH_MAX:
            raise OSError(errno.ENAMETOOLONG, "past PATH_MAX", real)
        # listed through the directory reached from the layer's root without following a
        # link, and each name asked of it (not by a path a running command's swap of a
        # directory for a link could lead out of the fork: :meth:`_u_walk_read`)
        fd = up.open_listed(self.upper_dir, parent, None)
        if fd is None:
            return db
        at = f"/proc/{os.getpid()}/fd/{fd}"
        room = PATH_MAX - len(os.fsencode(real)) - 1  # (bytes left for a name below it)
        try:
            with os.scandir(fd) as it:
                for de in it:
                    if de.name == ".git":
                        continue
                    child = f"{parent}/{de.name}" if parent else de.name
                    try:
                        if 4 * len(de.name) >= room and len(os.fsencode(de.name)) >= room:
                            raise OSError(errno.ENAMETOOLONG, "past PATH_MAX", child)
                        got = self._u_classified(child, f"{at}/{de.name}", de.stat(follow_symlinks=False))
                    except FileNotFoundError:
                        continue
                    except OSError as exc:  # past PATH_MAX: not recorded (overlayupper, TOO_LONG)
                        if exc.errno != errno.ENAMETOOLONG:
                            raise
                        got = Entry(child, DELETED, 0, None, None, SPECIAL_ORIGIN + up.TOO_LONG)
                    if got == SUBMODULE:
                        continue  # the lower layer's gitlink shows
                    if got != MERGED:
                        assert isinstance(got, Entry)
                        upper.append(got)
                        hides.append(child)
        finally:
            os.close(fd)
        return self._merge(db, upper, hides)

    def under(self, prefix: str) -> list[Entry]:
        """Entries strictly below directory ``prefix`` ('' means every entry but the root)."""
        if not self.upper_active():
            return self._db_under(prefix)
        here, hidden, shut = self._u_chain(prefix) if prefix else (None, False, False)
        db = [] if hidden else self._db_under(prefix)
        if shut or (here is not None and here.kind != OBJECT):
            return [] if here is not None else db
        upper, hides = self._u_walk(prefix)
        return self._merge(db, upper, hides)

    def all(self) -> list[Entry]:
        if not self.upper_active():
            return self._db_rows()
        prune = getattr(self._no_upper, "prune", None)
        if prune is None:
            db = self._db_all()
            return [e for e in db if e.path == ""] + self.under("")
        # (a status's first read of a mount: the rows below a new directory git ignores
        # not read, as :meth:`changed_entries` reads them)
        db = unignored_rows(self, prune)
        return [e for e in db if e.path == ""] + self._merge([e for e in db if e.path], *self._u_walk(""))

    @contextmanager
    def rows_pruned(self, on: bool = True) -> Iterator[None]:
        """While entered, :meth:`pruning` prunes the database's rows (``on``) without an
        upper layer too (:func:`.overlayentry.unignored_rows`): a status listing ignored tops,
        not their files (`avfs status`: an unmounted fork's read 14,000 rows, ~80 ms)."""
        was, self._no_upper.rows = getattr(self._no_upper, "rows", False), on
        try:
            yield
        finally:
            self._no_upper.rows = was

    def _db_rows(self) -> list[Entry]:  # (all of them, but as :meth:`rows_pruned` says)
        prune = getattr(self._no_upper, "prune", None) if getattr(self._no_upper, "rows", 0) else None
        return self._db_all() if prune is None else unignored_rows(self, prune)

    def pruned(self, prune: Callable[[Entry], str | None]) -> list[Entry]:
        """The database's entries in path order (no upper layer: the caller checked), less
        those at or below the directories ``prune`` names. Asked of each entry read, it
        answers a directory at or above the entry whose entries are not wanted (a new
        directory git ignores), or None; the read then jumps past that directory's range
        (``dir/`` sorts before ``dir0``), so what is below one is never read: one row of
        an ignored ``node_modules`` where :meth:`all` reads its 15,000."""
        q = f"SELECT {ENTRY_COLS} FROM entries WHERE path >= ? ORDER BY path"
        out: list[Entry] = []
        start: str | None = ""
        db = self.db
        mine = not db.in_transaction  # its queries one snapshot, as :meth:`all`'s one query is
        if mine:
            db.execute("BEGIN")
        try:
            while start is not None:
                at, start = start, None
                for r in db.execute(q, (at,)):
                    e = entry_of_row(r)
                    top = prune(e)
                    if top is None:
                        out.append(e)
                    elif e.path != top:  # below it: what follows up to "top0" is too
                        start = top + "0"
                        break
        finally:
            if mine and db.in_transaction:
                db.execute("COMMIT")
        return out

    def has_under(self, prefix: str) -> bool:
        if not self.upper_active():
            return self._db_has_under(prefix)
        return bool(self.under(prefix))

    def has_changes(self) -> bool:
        """True when an entry other than an empty new directory exists (git can't see those)."""
        if not self.upper_active():
            return self._db_has_changes()
        return any(
            not (e.kind == OBJECT and e.mode == 0o040000 and e.oid == EMPTY_TREE_ID) for e in self.all()
        )

    def _db_get(self, path: str) -> Entry | None:
        if not sql_text(path):
            return None  # (a name from git that is not UTF-8: the database holds none)
        r = self.db.execute(f"SELECT {ENTRY_COLS} FROM entries WHERE path=?", (path,)).fetchone()
        return None if r is None else entry_of_row(r)

    def _db_get_many(self, paths: list[str]) -> dict[str, Entry]:
        paths = [p for p in paths if sql_text(p)]
        if not paths:
            return {}
        q = f"SELECT {ENTRY_COLS} FROM entries WHERE path IN ({','.join('?' * len(paths))})"
        return {e.path: e for e in map(entry_of_row, self.db.execute(q, paths))}

    def with_fileids(self, fileids: Iterable[str]) -> list[Entry]:
        """The database's entries whose overlay file is one of ``fileids`` (the files a
        pure-FUSE mount's daemon says it holds open for writing: the upper layer's, which
        the kernel writes, are never among them)."""
        ids = list(dict.fromkeys(fileids))
        out: list[Entry] = []
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            q = f"SELECT {ENTRY_COLS} FROM entries WHERE fileid IN ({','.join('?' * len(chunk))})"
            out += map(entry_of_row, self.db.execute(q, chunk))
        return out

    def _db_lookup(
        self, chain: list[str], children_of: str | None = None
    ) -> tuple[dict[str, Entry], list[Entry], str | None]:
        """What a workspace lookup reads, in one query (one read transaction: each costs a
        round of file locking, more than the query): the entries at the paths of
        ``chain`` (like :meth:`get_many`), the children of ``children_of`` when given (like
        :meth:`children`), and the base commit (meta ``base``).

        A lookup needs only the deepest entry at or above the path it looks up (``chain``
        being a path's ancestors, root first, then maybe the path). A chain longer than
        :data:`LOOKUP_TAIL` asks its last paths first: when one of them but the last holds
        an entry, those last paths' entries are the answer (every lookup along the chain
        below that entry, of the last path or of its parent, finds its deepest entry
        there); else the whole chain is read again as one query, as a shorter one is. A
        path 1,100 levels deep made a level at a time read O(depth^2) paths of O(depth)
        bytes each."""
        if len(chain) > LOOKUP_TAIL:
            tail = chain[-LOOKUP_TAIL:]
            got, kids, base = self._db_lookup_once(tail, children_of)
            if any(p in got for p in tail[:-1]):
                return got, kids, base
            if len(chain) > DEEP_CHAIN and sql_text(tail[0]):
                # the paths above the tail by one range of the index, not each named: a
                # committed tree 1,200 levels deep (no entry on the chain) had every lookup
                # and getattr below it ask ~1.4 MB of paths, ~10 ms each, and the person's
                # `git status` on the pure-FUSE backend took 95 s (the thirty-second round)
                for e in self._db_above(tail[0]):
                    if e.path or chain[0] == "":
                        got[e.path] = e
                return got, kids, base
        return self._db_lookup_once(chain, children_of)

    def _db_above(self, path: str) -> list[Entry]:
        """The entries at the directories above ``path`` (the root's ``""`` among them): each
        sorts between ``path``'s first name and ``path``, and is a prefix of it before a ``/``."""
        q = (
            f"SELECT {ENTRY_COLS} FROM entries WHERE path = ''"
            f" UNION ALL SELECT {ENTRY_COLS} FROM entries WHERE path >= ? AND path < ?"
            " AND substr(?, 1, length(path) + 1) = path || '/'"
        )
        first = path.split("/", 1)[0]
        return [entry_of_row(r) for r in self.db.execute(q, (first, path, path))]

    def _db_lookup_once(
        self, chain: list[str], children_of: str | None
    ) -> tuple[dict[str, Entry], list[Entry], str | None]:
        # a name from git that is not UTF-8 (a read of it: wsview.norm_read) has no entry
        # (:func:`.overlaydb.sql_text`): not asked, nor the children of such a directory
        args: list[str] = [p for p in chain if sql_text(p)]
        q = f"SELECT 0, {ENTRY_COLS} FROM entries WHERE path IN ({','.join('?' * len(args))})"
        if children_of is not None and sql_text(children_of):
            q += f" UNION ALL SELECT 1, {ENTRY_COLS} FROM entries WHERE parent=? AND path != ''"
            args.append(children_of)
        q += " UNION ALL SELECT 2, value, 0, 0, NULL, NULL, NULL, 0, 0 FROM meta WHERE key='base'"
        got: dict[str, Entry] = {}
        kids: list[Entry] = []
        base: str | None = None
        for r in self.db.execute(q, args):
            if r[0] == 0:
                got[r[1]] = entry_of_row(r[1:])
            elif r[0] == 1:
                kids.append(entry_of_row(r[1:]))
            else:
                base = r[1]
        return got, kids, base

    def _db_children(self, parent: str) -> list[Entry]:
        if not sql_text(parent):
            return []
        q = f"SELECT {ENTRY_COLS} FROM entries WHERE parent=? AND path != ''"
        return [entry_of_row(r) for r in self.db.execute(q, (parent,))]

    def _db_under(self, prefix: str) -> list[Entry]:
        """Entries strictly below directory ``prefix`` ('' means every entry but the root)."""
        if not sql_text(prefix):
            return []
        if not prefix:
            q = f"SELECT {ENTRY_COLS} FROM entries WHERE path != '' ORDER BY path"
            return [entry_of_row(r) for r in self.db.execute(q)]
        # '0' sorts right after '/', so this range is exactly 'prefix/...'.
        q = f"SELECT {ENTRY_COLS} FROM entries WHERE path >= ? AND path < ? ORDER BY path"
        return [entry_of_row(r) for r in self.db.execute(q, (prefix + "/", prefix + "0"))]

    def _db_all(self) -> list[Entry]:
        """Every row of the database, as entries; read again only when the database
        changed since this thread last read them (a merge asked for them eight times, each
        ~0.08 s for the 18,000 rows a fork's ignored ``node_modules`` makes)."""
        db = self.db
        # this connection's writes (total_changes), or another's committed (data_version)
        key = (db, db.total_changes, db.execute("PRAGMA data_version").fetchone()[0])
        ns = self._local.ns()
        memo: tuple[object, list[Entry]] | None = ns.get("all")
        if memo is not None and memo[0] == key:
            return list(memo[1])
        got = [entry_of_row(r) for r in db.execute(f"SELECT {ENTRY_COLS} FROM entries ORDER BY path")]
        ns["all"] = (key, got)
        return list(got)

    def _db_has_under(self, prefix: str) -> bool:
        if not sql_text(prefix):
            return False
        if not prefix:
            return self.db.execute("SELECT 1 FROM entries WHERE path != '' LIMIT 1").fetchone() is not None
        r = self.db.execute(
            "SELECT 1 FROM entries WHERE path >= ? AND path < ? LIMIT 1",
            (prefix + "/", prefix + "0"),
        ).fetchone()
        return r is not None

    def _db_has_changes(self) -> bool:
        """True when an entry other than an empty new directory exists (git can't see those)."""
        r = self.db.execute(
            "SELECT 1 FROM entries WHERE NOT (kind=? AND mode=? AND oid=?) LIMIT 1",
            (OBJECT, 0o040000, EMPTY_TREE_ID),
        ).fetchone()
        return r is not None

    def settled_state(self) -> tuple[str | None, str | None, bool]:
        """The base commit (meta ``base``), a checkpoint's pending move (meta ``pending``)
        and whether the database holds a change (:meth:`has_changes` without the upper
        layer), in one query: one read transaction where a fork asked two (the base
        sync's, then the base and the changes)."""
        r = self.db.execute(
            "SELECT (SELECT value FROM meta WHERE key='base'), (SELECT value FROM meta WHERE key='pending'),"
            " EXISTS(SELECT 1 FROM entries WHERE NOT (kind=? AND mode=? AND oid=?))",
            (OBJECT, 0o040000, EMPTY_TREE_ID),
        ).fetchone()
        return (None if r[0] is None else str(r[0])), (None if r[1] is None else str(r[1])), bool(r[2])

    def may_have_changes(self) -> bool:
        """:meth:`has_changes` without reading the upper layer's tree: its top level holds
        anything but the pinned ``.git`` (a mount's own directories count as changes)."""
        if self._db_has_changes():
            return True
        try:
            with os.scandir(self.upper_dir) as it:
                return any(e.name != ".git" for e in it)
        except FileNotFoundError:
            return False

    def is_empty(self) -> bool:
        if self.upper_active():
            return not self.all()
        return self.db.execute("SELECT 1 FROM entries LIMIT 1").fetchone() is None

    def count(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM entries").fetchone()[0])

    def last_seq(self) -> int:
        r = self.db.execute("SELECT COALESCE(MAX(seq), 0) FROM journal").fetchone()
        return int(r[0])

    def base_and_seq(self) -> tuple[str | None, int]:
        """The base commit and the newest journal row, in one query: what the entries over
        the base are of (a base can come back with other entries: an undo of a checkpoint
        returns to the base before it, with a root entry holding what the view showed)."""
        r = self.db.execute(
            "SELECT (SELECT value FROM meta WHERE key='base'), (SELECT COALESCE(MAX(seq), 0) FROM journal)"
        ).fetchone()
        return (None if r[0] is None else str(r[0])), int(r[1])

    def journal_from(self) -> int:
        """The newest journal row no longer kept (0: all are); a position before it cannot
        say what changed since."""
        got = self.get_meta(JOURNAL_FROM)
        return int(got) if got else 0

    def _before_kept(self, seq: int) -> bool:
        dropped = self.journal_from()
        return dropped > 0 and seq < dropped

    def changes_by_others(self, seq: int) -> tuple[int, list[str]]:
        """Like :meth:`changes_since`, leaving out this process' own changes (a mount uses
        it to invalidate the kernel's caches for what the CLI and others changed)."""
        rows = self.db.execute(
            "SELECT seq, path, pid FROM journal WHERE seq > ? ORDER BY seq", (seq,)
        ).fetchall()
        last = int(rows[-1][0]) if rows else seq
        if self._before_kept(seq):
            return last, [""]
        me = os.getpid()
        seen: dict[str, None] = {}
        for _, p, pid in rows:
            if pid != me:
                seen.setdefault(str(p), None)
        return last, list(seen)

    def changes_since(self, seq: int, *, but: frozenset[str] = frozenset()) -> tuple[int, list[str]]:
        """Paths changed after journal position ``seq``, and the newest position (``[""]``,
        the root: anything may have, when ``seq`` is older than the journal keeps);
        ``but``: leave out the records of these operations."""
        rows = self.db.execute(
            "SELECT seq, path, op FROM journal WHERE seq > ? ORDER BY seq", (seq,)
        ).fetchall()
        last = int(rows[-1][0]) if rows else seq
        if self._before_kept(seq):
            return last, [""]
        seen: dict[str, None] = {}
        for _, p, op in rows:
            if op not in but:
                seen.setdefault(str(p), None)
        return last, list(seen)

    # -- writes (call inside txn()) -----------------------------------------------------
    def _journal(self, db: sqlite3.Connection, path: str, op: str) -> int:
        cur = db.execute(
            "INSERT INTO journal(path, op, ts, pid, src) VALUES(?, ?, ?, ?, ?)",
            (path, op, time.time(), os.getpid(), self.writer),
        )
        seq = int(cur.lastrowid or 0)
        self._local.ns()["journaled"] = seq
        if seq % TRIM_STEP == 0:
            self._trim_journal(db, seq)
        return seq

    @staticmethod
    def _trim_journal(db: sqlite3.Connection, seq: int) -> None:
        """Drop the oldest step of rows when more than :data:`MAX_JOURNAL` are kept."""
        r = db.execute("SELECT value FROM meta WHERE key = ?", (JOURNAL_FROM,)).fetchone()
        dropped = int(r[0]) if r else 0
        if seq - dropped <= MAX_JOURNAL:
            return
        upto = min(dropped + TRIM_STEP, seq - MAX_JOURNAL)
        db.execute("DELETE FROM journal WHERE seq <= ?", (upto,))
        db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)", (JOURNAL_FROM, str(upto)))

    def put(self, db: sqlite3.Connection, e: Entry, op: str, *, old: Entry | bool | None = True) -> Entry:
        """Insert or replace the entry at ``e.path``; returns it with its new ``seq``.

        ``old``: the entry at ``e.path`` when the caller read it in this transaction
        (``None``: there is none); by default it is looked up here.
        """
        seq = self._journal(db, e.path, op)
        if old is True:
            row = db.execute("SELECT fileid FROM entries WHERE path=?", (e.path,)).fetchone()
            exists, old_fileid = row is not None, None if row is None else row[0]
        else:
            exists, old_fileid = isinstance(old, Entry), old.fileid if isinstance(old, Entry) else None
        if exists:
            # in place: the row keeps its id, so the path and parent indexes are not touched
            # (INSERT OR REPLACE writes 7 pages to the WAL here, this 5)
            db.execute(
                "UPDATE entries SET kind=?, mode=?, oid=?, fileid=?, origin=?, size=?, seq=? WHERE path=?",
                (e.kind, e.mode, e.oid, e.fileid, e.origin, e.size, seq, e.path),
            )
        else:
            db.execute(
                f"INSERT OR REPLACE INTO entries({ENTRY_COLS}, parent) VALUES(?,?,?,?,?,?,?,?,?)",
                (e.path, e.kind, e.mode, e.oid, e.fileid, e.origin, e.size, seq, parent_of(e.path)),
            )
        if old_fileid and old_fileid != e.fileid:
            self._garbage(db, str(old_fileid))
        if e.kind == OBJECT and e.oid and e.mode != MODE_COMMIT and e.oid != EMPTY_TREE_ID:
            self.note_held(e)  # (kept reachable for git's gc: core/workspace/wsheld.py)
        return Entry(e.path, e.kind, e.mode, e.oid, e.fileid, e.origin, e.size, seq)

    def named_objects(self) -> list[Entry]:
        """The database's entries that name a git object (a blob or tree, not the empty
        tree) by id: what core/workspace/wsheld.py keeps reachable for git's gc."""
        rows = self.db.execute(
            f"SELECT {ENTRY_COLS} FROM entries WHERE kind = ? AND oid IS NOT NULL AND oid != ? AND mode != ?",
            (OBJECT, EMPTY_TREE_ID, MODE_COMMIT),
        )
        return [entry_of_row(r) for r in rows]

    def set_size(self, db: sqlite3.Connection, path: str, fileid: str, size: int) -> bool:
        """Record a materialized file's new size in place: no journal entry and no new
        ``seq`` (a checkpoint retiring the entry by its ``seq`` still finds it)."""
        cur = db.execute(
            "UPDATE entries SET size=? WHERE path=? AND fileid=? AND size != ?", (size, path, fileid, size)
        )
        return bool(cur.rowcount)

    def remove(self, db: sqlite3.Connection, path: str, op: str, *, journal: bool = True) -> None:
        old = db.execute("SELECT fileid FROM entries WHERE path=?", (path,)).fetchone()
        if old is None:
            return
        db.execute("DELETE FROM entries WHERE path=?", (path,))
        if journal:
            self._journal(db, path, op)
        if old[0]:
            self._garbage(db, str(old[0]))

    def forget(self, db: sqlite3.Connection, path: str, op: str) -> None:
        """Drop the entry at ``path``, journaled, keeping its file (a rename gives the file
        to the entry at the new path)."""
        db.execute("DELETE FROM entries WHERE path=?", (path,))
        self._journal(db, path, op)

    def remove_under(self, db: sqlite3.Connection, prefix: str, op: str) -> list[Entry]:
        gone = self.under(prefix)
        for e in gone:
            self.remove(db, e.path, op)
        return gone

    def retire(
        self,
        db: sqlite3.Connection,
        captured: Iterable[Entry],
        oid_of: Callable[[str], str | None] | None = None,
    ) -> int:
        """Drop the entries a checkpoint captured, unless they changed since (seq differs).

        A file a mount holds open for writing (:meth:`in_use`) keeps its entry: its bytes
        are in the checkpoint, and later writes through the open descriptor must land in a
        file the workspace still shows.

        ``oid_of``: the new base's blob at a path; each retired file's times are kept with
        it (:meth:`kept_times`), so the file shows them from the base as it did from its copy.
        """
        n = 0
        kept: list[tuple[str, str, int, int]] = []
        stale: list[Entry] = []  # retired paths whose kept times the new base made stale
        for e in captured:
            if not e.seq or (e.kind == FILE and e.fileid and not self._claim(e.fileid)):
                continue  # (seq 0: the upper layer's; every row's seq is the journal's, from 1)
            if not sql_text(e.path):
                continue  # (no entry of the database holds it: one of the upper layer's)
            cur = db.execute("DELETE FROM entries WHERE path=? AND seq=?", (e.path, e.seq))
            if cur.rowcount:
                n += 1
                times = self._times_of(e, oid_of) if oid_of is not None and e.kind == FILE and e.seq else []
                kept.extend(times)
                if not times:
                    stale.append(e)
                if e.fileid:
                    self._garbage(db, e.fileid)
        if oid_of is not None and (kept or stale):
            self.keep_times(db, kept, stale)
        return n

    def clear(self, db: sqlite3.Connection, op: str) -> None:
        for e in self.all():
            self.remove(db, e.path, op)
