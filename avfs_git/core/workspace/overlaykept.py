"""The times of the files a checkpoint retired, kept for the current view time (the
``kept_times`` table of ``overlay.db``): a mount shows a file the base now holds with the
times it had while it was a change, not the view time, for as long as the view lasts.
:class:`KeptTimes` (over :class:`.overlayupper.UpperEntries`) is the base of
:class:`.overlay.Overlay`: :meth:`.overlay.Overlay.retire` keeps them, the mount's views and
index patches read them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable

from .overlaydb import sql_text
from .overlayentry import DELETED, Entry
from .overlayupper import UpperEntries

FEW_KEPT = 256  # kept times asked one by one before :meth:`KeptTimes.kept_reader` reads them all


def _sql_times(*ns: int) -> bool:
    """Whether SQLite's INTEGER (64 bits) holds each of ``ns``."""
    return all(-(1 << 63) <= n < 1 << 63 for n in ns)


class KeptTimes(UpperEntries):
    """The kept times of one workspace's overlay (its database's ``kept_times`` table)."""

    def _times_of(self, e: Entry, oid_of: Callable[[str], str | None]) -> list[tuple[str, str, int, int]]:
        if e.fileid is None:
            return []
        oid = oid_of(e.path)
        try:
            st = self.file_stat(e.fileid)
        except FileNotFoundError:
            return []
        return [] if oid is None else [(e.path, oid, st.st_mtime_ns, st.st_ctime_ns)]

    def keep_times(
        self, db: sqlite3.Connection, rows: list[tuple[str, str, int, int]], stale: Iterable[Entry] = ()
    ) -> None:
        """Keep ``(path, blob id, mtime_ns, ctime_ns)`` for the current view time, and drop
        what was kept at the paths of ``stale`` (a checkpoint's other retired entries: a file
        it removed or made a link, a directory and what was under it), so the table holds
        no more than the view's files a checkpoint retired, not every path ever checkpointed
        since the view began. Each change counts ``kept_times`` in the meta table: a mount's
        watcher reads the times again when it moves (fuse/invalidate.py), without a new view."""
        view = self.get_meta("view_time")
        if view is None:
            return  # (no file has shown a view time yet)
        # a name SQLite cannot take (not UTF-8: a git tree's, a restore rewrote it) keeps
        # no time, as :meth:`kept_time` answers for it: it shows the view time; so does a
        # time past SQLite's 64 bits of ns (after 2262: a command's `touch -d 2300-01-01`
        # failed every later checkpoint and `avfs status`, the twenty-eighth round)
        rows = [r for r in rows if sql_text(r[0]) and _sql_times(r[2], r[3])]
        stale = [e for e in stale if sql_text(e.path)]
        # (two ranges of the view's index: `view != ?` read every row the session kept,
        # ~150 pages at 600 checkpoints, at every checkpoint)
        db.execute("DELETE FROM kept_times WHERE view < ? OR view > ?", (view, view))
        for e in stale:
            db.execute("DELETE FROM kept_times WHERE path = ?", (e.path,))
            if e.kind == DELETED:  # a removed directory: what was under it ("/" + 1 is "0")
                db.execute("DELETE FROM kept_times WHERE path > ? AND path < ?", (e.path + "/", e.path + "0"))
        db.execute(
            "INSERT OR REPLACE INTO meta(key, value) VALUES('kept_times',"
            " COALESCE((SELECT value FROM meta WHERE key = 'kept_times'), 0) + 1)"
        )
        db.executemany(
            "INSERT OR REPLACE INTO kept_times(path, oid, mtime_ns, ctime_ns, view, gen) VALUES(?, ?, ?, ?, ?,"
            " (SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'kept_times'))",
            [(*r, view) for r in rows],
        )

    def kept_times(self, view: str | None = None) -> dict[str, tuple[str, int, int]]:
        """``path -> (blob id, mtime_ns, ctime_ns)``: the times a file a checkpoint retired
        had, kept for as long as the view time (``view``, else the current one) stays and
        the base holds that blob there; every other unchanged file shows the view time."""
        if view is None:
            view = self.get_meta("view_time")
        q = "SELECT path, oid, mtime_ns, ctime_ns FROM kept_times WHERE view = ?"
        return {str(p): (str(o), int(m), int(c)) for p, o, m, c in self.db.execute(q, (view,))}

    def kept_since(self, gen: int, view: str | None = None) -> list[str]:
        """The paths whose kept times a :meth:`keep_times` after count ``gen`` (the meta's
        ``kept_times``) wrote, for ``view`` (else the current view time): O(those rows)."""
        if view is None:
            view = self.get_meta("view_time")
        q = "SELECT path FROM kept_times WHERE gen > ? AND view = ?"
        return [str(p) for (p,) in self.db.execute(q, (gen, view))]

    def kept_time(self, path: str, view: str | None = None) -> tuple[str, int, int] | None:
        """:meth:`kept_times` of one path (its primary key: O(1), where the table holds every
        file a long session's checkpoints retired). A name SQLite cannot take
        (:func:`.overlaydb.sql_text`) has none."""
        if not sql_text(path):
            return None
        if view is None:
            view = self.get_meta("view_time")
        q = "SELECT oid, mtime_ns, ctime_ns FROM kept_times WHERE path = ? AND view = ?"
        r = self.db.execute(q, (path, view)).fetchone()
        return None if r is None else (str(r[0]), int(r[1]), int(r[2]))

    def kept_reader(self, view: str | None = None) -> Callable[[str], tuple[str, int, int] | None]:
        """``path -> kept_time(path)`` for one view: a query per path for the first
        :data:`FEW_KEPT` paths asked, then the whole table read once (a walk of the tree
        asks for every path). A checkpoint's index patch asks for its few paths, not for the
        session's every retired file."""
        if view is None:
            view = self.get_meta("view_time")
        whole: list[dict[str, tuple[str, int, int]]] = []
        asked = 0

        def kept(path: str) -> tuple[str, int, int] | None:
            nonlocal asked
            if whole:
                return whole[0].get(path)
            asked += 1
            if asked > FEW_KEPT:
                whole.append(self.kept_times(view))
                return whole[0].get(path)
            return self.kept_time(path, view)

        return kept
