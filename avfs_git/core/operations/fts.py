"""Ranked full-text search of a fork with SQLite FTS5, kept up to date incrementally.

The index of fork F lives in ``<vault>/avfs/ws/<F>/search.db`` beside the overlay (deleting
the fork deletes it). It holds one document per regular file the fork shows (base +
overlay), keyed by path, with the git blob id of the content it indexed, and it records
what it reflects:

- ``meta.tree``: the base tree it last caught up with;
- ``layer``: the overlay entries as they were then, each with a signature (kind, mode, ids,
  size, and for materialized files the overlay file's size and mtime in ns: a mount writes
  them in place) and, for files, the blob id of their content.

Each query first brings the index up to date, and only where something changed: the paths
of the tree diff between ``meta.tree`` and the current base tree (:mod:`.treediff`: cost by
changes), plus the overlay entries whose signature changed, appeared or went. Each such
region is compared with the view; a document is re-read only when its blob id differs. A
checkpoint therefore re-indexes nothing: the retired overlay files reappear in the new base
with the blob ids the index already holds. :attr:`SearchIndex.stats` counts the work.

Files over :data:`MAX_DOC_BYTES` (1 MiB) and binary files (a NUL in the first 8000 bytes)
are recorded but not indexed. Symlinks and submodules are not indexed.

Queries use FTS5 syntax: words (all must occur), ``"a phrase"``, ``prefix*``, ``OR``,
``NOT``, ``NEAR(a b, 5)``, ``path:word``. A query that FTS5 cannot parse and that uses none
of its operators (``" ( ) * ^ :``, ``AND OR NOT NEAR``) is retried with each
whitespace-separated term quoted (``foo.bar baz-qux`` -> ``"foo.bar" "baz-qux"``); one that
uses operators is refused with a :class:`UsageError`.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sqlite3
from typing import TYPE_CHECKING

from ..errors import UsageError
from ..records import dataclass
from ..store.gitstore import EMPTY_TREE
from ..store.treediff import diff_trees
from ..types import MODE_LINK, Change, NodeKind
from ..workspace.overlayentry import FILE, Entry
from ..workspace.sqlite import busy_error, is_busy, open_cache_in_memory, open_db
from ..workspace.wssnapshot import Snapshot
from ..workspace.wsview import Node, View
from .search import BINARY_PROBE

if TYPE_CHECKING:
    from ..vaults.vault import Vault
    from ..workspace.workspace import Workspace

MAX_DOC_BYTES = 1 << 20
DEFAULT_LIMIT = 20
MAX_LIMIT = 10_000  # hits one search returns at most (--limit)
INDEX_FILE = "search.db"
_VERSION = 1
_PATH_WEIGHT, _BODY_WEIGHT = 2.0, 1.0  # a word in a file's path counts double

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS docs(
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    oid TEXT NOT NULL,
    indexed INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS layer(path TEXT PRIMARY KEY, sig TEXT NOT NULL, oid TEXT);
CREATE VIRTUAL TABLE IF NOT EXISTS fts USING fts5(
    path, body, tokenize = 'unicode61 remove_diacritics 2'
);
INSERT INTO fts(fts, rank) VALUES('rank', 'bm25({_PATH_WEIGHT}, {_BODY_WEIGHT})');
"""

_EXPLICIT = re.compile(r'["()*^:]|\b(?:AND|OR|NOT|NEAR)\b')


@dataclass(frozen=True, slots=True)
class SearchHit:
    path: str
    score: float  # -bm25: higher is better
    snippet: str  # matched terms between ** and **; elided text is …


@dataclass(frozen=True, slots=True)
class IndexUpdate:
    """What one catch-up of the index did."""

    full: bool  # the index was built from scratch (first use, --rebuild, new index version)
    indexed: int  # documents whose content was read and (re)written
    removed: int  # documents dropped (the path is gone or no longer a regular file)
    regions: int  # paths (files or subtrees) that were compared with the view
    docs: int  # documents in the index afterwards


@dataclass(frozen=True, slots=True)
class SearchResult:
    query: str  # the FTS5 query that ran (after quoting, when that was needed)
    hits: list[SearchHit]
    index: IndexUpdate


@dataclass
class IndexStats:
    """Counters over the life of one :class:`SearchIndex` (tests and benchmarks read them)."""

    updates: int = 0
    indexed: int = 0
    removed: int = 0
    full_builds: int = 0


def _sig(e: Entry, overlay_file: str | None) -> str:
    sig = f"{e.kind}:{e.mode}:{e.oid or ''}:{e.fileid or ''}:{e.size}"
    if overlay_file is not None:
        try:
            st = os.stat(overlay_file)
            sig += f":{st.st_size}:{st.st_mtime_ns}"
        except OSError:
            sig += ":gone"
    return sig


class SearchIndex:
    """The full-text index of one fork. Not shared between threads (one SQLite connection)."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.path = os.path.join(ws.state_dir, INDEX_FILE)
        # (its catch-up waits for another process's as the vault's locks do)
        self.wait_s = ws.vault.lock_wait_s
        if os.access(ws.state_dir, os.W_OK) or not os.path.isdir(ws.state_dir):
            self.db: sqlite3.Connection = open_db(self.path, _SCHEMA, version=_VERSION, wait_s=self.wait_s)
        else:
            # a home this process cannot write (a read-only mount): the index is a cache,
            # caught up in memory from its file (or made there); it was `read_only` without
            # an index, exit 70 with one ("attempt to write a readonly database")
            self.db = open_cache_in_memory(self.path, _SCHEMA, version=_VERSION)
        self.stats = IndexStats()
        self._skip: list[str] = []  # paths whose documents a query leaves out (search's skip)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> SearchIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- catching up -------------------------------------------------------------------------
    def update(self, *, rebuild: bool = False) -> IndexUpdate:
        """Bring the index up to date with what the fork shows now (see the module doc)."""
        from ..store.packwriter import file_blob_id

        ws = self.ws
        db = self.db
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:  # (was exit 70 after SQLite's 30 s)
            if is_busy(exc):
                raise busy_error("the fork's search index", self.path, self.wait_s) from exc
            raise
        try:
            # one snapshot of the base and the overlay: what the view shows is what gets recorded
            base = ws.base
            base_tree = ws.store.commit_tree(base)
            snapshot = ws.overlay.all()
            view = View(ws.store, Snapshot(base, snapshot, ws.overlay), scan=True)
            entries = {e.path: e for e in snapshot}
            row = db.execute("SELECT value FROM meta WHERE key='tree'").fetchone()
            full = rebuild or row is None
            old_layer: dict[str, tuple[str, str | None]] = {}
            if full:
                db.execute("DELETE FROM docs")
                db.execute("DELETE FROM fts")
                db.execute("DELETE FROM layer")
            else:
                old_layer = {
                    str(p): (str(s), o) for p, s, o in db.execute("SELECT path, sig, oid FROM layer")
                }
            # the overlay: entries whose signature changed, appeared or went
            regions: set[str] = set()
            new_layer: dict[str, tuple[str, str | None]] = {}
            for p, e in entries.items():
                ofile = ws.overlay.file_path(e.fileid) if e.kind == FILE and e.fileid else None
                sig = _sig(e, ofile)
                old = old_layer.get(p)
                if old is not None and old[0] == sig:
                    new_layer[p] = old
                    continue
                oid = None
                if ofile is not None and e.fileid is not None and e.mode != MODE_LINK:
                    try:
                        oid = file_blob_id(ofile, root=ws.overlay.file_root(e.fileid))  # (no link on the way)
                    except OSError:
                        oid = None
                new_layer[p] = (sig, oid)
                regions.add(p)
            regions.update(p for p in old_layer if p not in entries)
            # the base: what the tree diff says changed
            if full:
                regions = {""}
            else:
                old_tree = str(row[0])
                if old_tree != base_tree:
                    changes: list[Change] = []
                    diff_trees(ws.store, old_tree or EMPTY_TREE, base_tree, "", changes)
                    regions.update(c.path for c in changes)
            indexed = removed = 0
            todo = _outermost(regions)
            for r in todo:
                i, d = self._reconcile(view, r, new_layer)
                indexed += i
                removed += d
            if regions or full:
                changed = [(p, s, o) for p, (s, o) in new_layer.items() if old_layer.get(p) != (s, o)]
                db.executemany("INSERT OR REPLACE INTO layer(path, sig, oid) VALUES(?, ?, ?)", changed)
                db.executemany(
                    "DELETE FROM layer WHERE path=?", [(p,) for p in old_layer if p not in new_layer]
                )
            db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES('tree', ?)", (base_tree,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        total = int(db.execute("SELECT COUNT(*) FROM docs WHERE indexed=1").fetchone()[0])
        self.stats.updates += 1
        self.stats.indexed += indexed
        self.stats.removed += removed
        self.stats.full_builds += int(full)
        return IndexUpdate(full, indexed, removed, len(todo), total)

    def _reconcile(
        self, view: View, region: str, layer: dict[str, tuple[str, str | None]]
    ) -> tuple[int, int]:
        """Make the documents at and below ``region`` agree with the view; (indexed, removed)."""
        db = self.db
        current: dict[str, tuple[Node, str]] = {}
        node = view.lookup(region)
        if node is not None:
            for f in view.files([node]):
                oid = f.oid if f.oid is not None else (layer.get(f.path, ("", None))[1])
                if oid is not None:
                    current[f.path] = (f, oid)
        if region:
            rows = db.execute(
                "SELECT id, path, oid FROM docs WHERE path = ? OR (path >= ? AND path < ?)",
                (region, region + "/", region + "0"),
            ).fetchall()
        else:
            rows = db.execute("SELECT id, path, oid FROM docs").fetchall()
        have = {str(p): (int(i), str(o)) for i, p, o in rows}
        removed = 0
        for p, (doc_id, _) in have.items():
            if p not in current:
                db.execute("DELETE FROM fts WHERE rowid=?", (doc_id,))
                db.execute("DELETE FROM docs WHERE id=?", (doc_id,))
                removed += 1
        todo = {p: fo for p, fo in current.items() if have.get(p, (0, None))[1] != fo[1]}
        self._prefetch(view, todo)
        indexed = 0
        for p, (f, oid) in todo.items():
            old = have.get(p)
            body = self._body(view, f)
            if old is not None:
                doc_id = old[0]
                db.execute("DELETE FROM fts WHERE rowid=?", (doc_id,))
                db.execute(
                    "UPDATE docs SET oid=?, indexed=? WHERE id=?", (oid, int(body is not None), doc_id)
                )
            else:
                cur = db.execute(
                    "INSERT INTO docs(path, oid, indexed) VALUES(?, ?, ?)", (p, oid, int(body is not None))
                )
                doc_id = int(cur.lastrowid or 0)
            if body is not None:
                db.execute("INSERT INTO fts(rowid, path, body) VALUES(?, ?, ?)", (doc_id, p, body))
            indexed += 1
        return indexed, removed

    def _prefetch(self, view: View, todo: dict[str, tuple[Node, str]]) -> None:
        """In a lazy vault, fetch the committed files about to be read in one batch (not one
        fetch per file); none the size cache knows to be over the cap, none hidden."""
        store = view.store
        if store.promisor.remote() is None:
            return
        store.prefetch(
            {
                f.oid: p
                for p, (f, _) in todo.items()
                if f.oid is not None
                and (store.promisor.size(f.oid) or 0) <= MAX_DOC_BYTES
                and not self.ws.hidden(p)
            }
        )

    def _body(self, view: View, node: Node) -> str | None:
        """The text to index, or None for a binary file, one over the size cap, or one
        the fork's path policy hides (its words never reach the index)."""
        if self.ws.hidden(node.path):
            return None
        if node.oid is not None and view.store.blob_size(node.oid) > MAX_DOC_BYTES:
            return None
        data = view.read_node(node)
        if len(data) > MAX_DOC_BYTES or data.find(b"\0", 0, BINARY_PROBE) >= 0:
            return None
        return data.decode("utf-8", "replace")

    # -- querying ----------------------------------------------------------------------------
    def search(
        self,
        query: str,
        *,
        limit: int = DEFAULT_LIMIT,
        update: bool = True,
        skip: frozenset[str] = frozenset(),
    ) -> SearchResult:
        """The best ``limit`` documents for ``query`` (FTS5 syntax, see the module doc);
        none at or below the paths ``skip`` (what git ignores: a venv, node_modules)."""
        _check(query, limit)
        upd = self.update() if update else IndexUpdate(False, 0, 0, 0, self._count())
        self._skip = sorted(skip)
        try:
            return SearchResult(query, self._query(query, limit), upd)
        except sqlite3.OperationalError as exc:
            if _EXPLICIT.search(query):
                raise UsageError(
                    f"invalid search query {query!r}: {exc}",
                    hint='FTS5 syntax: words, "a phrase", prefix*, OR, NOT, NEAR(a b), path:word;'
                    " quote terms that hold punctuation",
                    details={"query": query},
                ) from exc
        quoted = " ".join('"' + t.replace('"', '""') + '"' for t in query.split())
        try:
            return SearchResult(quoted, self._query(quoted, limit), upd)
        except sqlite3.OperationalError as exc:  # pragma: no cover - quoted terms always parse
            raise UsageError(f"invalid search query {query!r}: {exc}", details={"query": query}) from exc

    def _query(self, q: str, limit: int) -> list[SearchHit]:
        skip = self._skip
        cond = "".join(" AND docs.path != ? AND substr(docs.path, 1, ?) != ?" for _ in skip)
        args: list[object] = [q]
        for p in skip:
            args += [p, len(p) + 1, p + "/"]
        rows = self.db.execute(
            "SELECT docs.path, rank, snippet(fts, -1, '**', '**', '…', 12) FROM fts"
            f" JOIN docs ON docs.id = fts.rowid WHERE fts MATCH ?{cond} ORDER BY rank LIMIT ?",
            (*args, limit),
        ).fetchall()
        hits = [SearchHit(str(p), round(-float(r), 6), str(s)) for p, r, s in rows]
        shown = self.ws.visible_filter()
        if shown is not None:  # the fork's hidden paths: never a hit, nor a snippet
            hits = [h for h in hits if shown(h.path, NodeKind.FILE)]
        return hits

    def _count(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM docs WHERE indexed=1").fetchone()[0])


def _outermost(paths: set[str]) -> list[str]:
    """``paths`` without those below another one of them ('' covers everything)."""
    if "" in paths:
        return [""]
    out: list[str] = []
    for p in sorted(paths):
        if out and (p == out[-1] or p.startswith(out[-1] + "/")):
            continue
        out.append(p)
    return out


def search(
    vault: Vault,
    fork: str | None,
    query: str,
    *,
    limit: int = DEFAULT_LIMIT,
    rebuild: bool = False,
    include_ignored: bool = False,
) -> SearchResult:
    """Search fork ``fork`` of ``vault`` (its current state: base + overlay), catching the
    index up first (or rebuilding it from git and the overlay with ``rebuild``). Paths git
    ignores (a venv, node_modules) are not among the hits, as `git grep` skips them, unless
    ``include_ignored``."""
    ws = vault.workspace(fork)
    skip = frozenset() if include_ignored else ws.ignored().tops
    with SearchIndex(ws) as index:
        if not rebuild:
            return index.search(query, limit=limit, skip=skip)
        _check(query, limit)
        upd = index.update(rebuild=True)
        return dataclasses.replace(index.search(query, limit=limit, update=False, skip=skip), index=upd)


def rebuild(vault: Vault, fork: str | None) -> IndexUpdate:
    """Rebuild the index of ``fork`` from git and the overlay."""
    with SearchIndex(vault.workspace(fork)) as index:
        return index.update(rebuild=True)


def _check(query: str, limit: int) -> None:
    if not query.strip():
        raise UsageError("the search query is empty", hint='e.g. `avfs search "parse config"`')
    try:
        query.encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError(
            f"the search query {query!r} is not valid UTF-8 text",
            hint="the index holds UTF-8 text: search for words in UTF-8, or use `avfs grep` for bytes",
            details={"query": query.encode("utf-8", "backslashreplace").decode("utf-8")},
        ) from None
    if limit < 1:
        raise UsageError(f"--limit must be at least 1, not {limit}")
    if limit > MAX_LIMIT:
        raise UsageError(f"--limit must be at most {MAX_LIMIT}, not {limit}")


__all__ = [
    "DEFAULT_LIMIT",
    "MAX_DOC_BYTES",
    "MAX_LIMIT",
    "IndexStats",
    "IndexUpdate",
    "SearchHit",
    "SearchIndex",
    "SearchResult",
    "rebuild",
    "search",
]
