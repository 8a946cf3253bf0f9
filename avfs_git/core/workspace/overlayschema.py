"""The schema of a workspace's overlay database (``overlay.db``) and its migrations, by
version (:func:`.sqlite.open_db` runs those a database has not had yet), and the empty
database state dirs copy (:func:`template_path`), named by the schema's version.
:class:`.overlaydb.OverlayDB` opens its connections with them.
"""

from __future__ import annotations

import os

from . import execspans
from .sqlite import make_template

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS entries(
    path TEXT PRIMARY KEY,
    parent TEXT NOT NULL,
    kind INTEGER NOT NULL,
    mode INTEGER NOT NULL,
    oid TEXT,
    fileid TEXT,
    origin TEXT,
    size INTEGER NOT NULL DEFAULT 0,
    seq INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_parent ON entries(parent);
CREATE TABLE IF NOT EXISTS journal(
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    path TEXT NOT NULL,
    op TEXT NOT NULL,
    ts REAL NOT NULL,
    pid INTEGER,
    src TEXT
);
"""
# The bytes of materialized files, kept by triggers (quota checks ran SUM(size) over every
# entry on each write: O(entries), ~2 ms per created file at 10k entries).
_TOTALS = """
CREATE TABLE IF NOT EXISTS totals(id INTEGER PRIMARY KEY CHECK (id = 1), file_bytes INTEGER NOT NULL);
INSERT OR IGNORE INTO totals(id, file_bytes)
    SELECT 1, COALESCE(SUM(size), 0) FROM entries WHERE kind = 1;
CREATE TRIGGER IF NOT EXISTS totals_ins AFTER INSERT ON entries WHEN NEW.kind = 1 BEGIN
    UPDATE totals SET file_bytes = file_bytes + NEW.size WHERE id = 1;
END;
CREATE TRIGGER IF NOT EXISTS totals_del AFTER DELETE ON entries WHEN OLD.kind = 1 BEGIN
    UPDATE totals SET file_bytes = file_bytes - OLD.size WHERE id = 1;
END;
CREATE TRIGGER IF NOT EXISTS totals_upd AFTER UPDATE ON entries BEGIN
    UPDATE totals SET file_bytes = file_bytes
        - (CASE WHEN OLD.kind = 1 THEN OLD.size ELSE 0 END)
        + (CASE WHEN NEW.kind = 1 THEN NEW.size ELSE 0 END) WHERE id = 1;
END;
"""
# collect_garbage asks whether a file id is still used: without an index every removal
# scanned the table (n removals cost n^2; 55% of the daemon's CPU in a 10k unlink run)
_FILEID_INDEX = "CREATE INDEX IF NOT EXISTS entries_fileid ON entries(fileid);"
# The number of materialized files (what the vault's file quota counts), in the same row
# as their bytes (one page written per transaction, not two), kept by the same triggers.
# Two steps: ADD COLUMN may meet a column another process just added (open_db tolerates
# that), then one transaction counts and replaces the triggers (idempotent).
_FILES_COLUMN = "ALTER TABLE totals ADD COLUMN files INTEGER NOT NULL DEFAULT 0;"
_FILES_TRIGGERS = """
BEGIN IMMEDIATE;
UPDATE totals SET files = (SELECT COUNT(*) FROM entries WHERE kind = 1) WHERE id = 1;
DROP TRIGGER IF EXISTS totals_ins;
DROP TRIGGER IF EXISTS totals_del;
DROP TRIGGER IF EXISTS totals_upd;
CREATE TRIGGER totals_ins AFTER INSERT ON entries WHEN NEW.kind = 1 BEGIN
    UPDATE totals SET file_bytes = file_bytes + NEW.size, files = files + 1 WHERE id = 1;
END;
CREATE TRIGGER totals_del AFTER DELETE ON entries WHEN OLD.kind = 1 BEGIN
    UPDATE totals SET file_bytes = file_bytes - OLD.size, files = files - 1 WHERE id = 1;
END;
CREATE TRIGGER totals_upd AFTER UPDATE ON entries BEGIN
    UPDATE totals SET file_bytes = file_bytes
        - (CASE WHEN OLD.kind = 1 THEN OLD.size ELSE 0 END)
        + (CASE WHEN NEW.kind = 1 THEN NEW.size ELSE 0 END),
        files = files - (OLD.kind = 1) + (NEW.kind = 1) WHERE id = 1;
END;
COMMIT;
"""
# the git ids of the upper layer's files by their stat data (what git's index does for a
# worktree): a status of a mounted overlay hashes only what changed since it last looked
_UPPER_OIDS = (
    "CREATE TABLE IF NOT EXISTS upper_oids(path TEXT PRIMARY KEY, sig TEXT NOT NULL, oid TEXT NOT NULL);"
)
# the times of files a checkpoint retired (their copies unlinked, the base's blob shown in
# their place) while the view time was ``view``: the file keeps them, as on a disk, and
# make or Python's bytecode check see an edit a checkpoint recorded as an edit still
_KEPT_TIMES = (
    "CREATE TABLE IF NOT EXISTS kept_times(path TEXT PRIMARY KEY, oid TEXT NOT NULL,"
    " mtime_ns INTEGER NOT NULL, ctime_ns INTEGER NOT NULL, view TEXT NOT NULL);"
)
# which keep_times call wrote each row (the meta's ``kept_times`` count then), indexed with
# the view: a mount's watcher reads what changed since its last look, a new view's first
# keep drops the old view's rows, neither reading every file a long session retired
_KEPT_GEN = "ALTER TABLE kept_times ADD COLUMN gen INTEGER NOT NULL DEFAULT 0;"
_KEPT_INDEXES = (
    "CREATE INDEX IF NOT EXISTS kept_times_gen ON kept_times(gen);"
    "CREATE INDEX IF NOT EXISTS kept_times_view ON kept_times(view);"
)
# the oldest entry's sequence number, which the token of every index avfs writes for a
# mount names (mount/index.py ``read_view``, the fsmonitor hook's ``_index_seq``): without
# an index each asked every row (~2 ms of CPU for an installed node_modules' 14,000, twice a
# merge into the mount and at each `git status` there)
_SEQ_INDEX = "CREATE INDEX IF NOT EXISTS entries_seq ON entries(seq);"
SCHEMA += (
    _TOTALS + _FILEID_INDEX + _FILES_COLUMN + _FILES_TRIGGERS + _UPPER_OIDS + execspans.SCHEMA + _KEPT_TIMES
    + _KEPT_GEN + _KEPT_INDEXES + execspans.MOVES_SCHEMA + _SEQ_INDEX
)  # fmt: skip
VERSION = 14
MIGRATIONS = {
    14: _SEQ_INDEX,
    13: execspans.MOVES_SCHEMA,
    12: _KEPT_INDEXES,
    11: _KEPT_GEN,
    10: _KEPT_TIMES,
    9: execspans.SCHEMA,
    8: "ALTER TABLE journal ADD COLUMN src TEXT",
    7: _UPPER_OIDS,
    2: "ALTER TABLE journal ADD COLUMN pid INTEGER",
    3: _TOTALS,
    4: _FILEID_INDEX,
    5: _FILES_COLUMN,
    6: _FILES_TRIGGERS,
}


def template_path(parent: str) -> str:
    """The empty overlay database the state dirs under ``parent`` copy (a vault's ``avfs/``
    for plain state dirs), named by the schema's version: a template of an older one would
    be migrated again in every database copied from it."""
    return os.path.join(parent, f"overlay-template-v{VERSION}.db")


def make_overlay_template(parent: str) -> None:
    """Make :func:`template_path` under ``parent`` now, unless it is there (a lazy clone,
    while its fetch waits on the server: the first mount then copies it, ~2 ms, instead of
    making it with its sync, 4-5 ms here)."""
    make_template(template_path(parent), SCHEMA, VERSION)
