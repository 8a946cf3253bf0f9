"""Doctor's ``oplog`` check: the operation log (``<vault>/avfs/oplog.db``, docs/concepts.md)
read as what undo needs it to be. Each kind of damage is reported as what it is:

- ``oplog_unreadable``: SQLite cannot read the file whole (truncated, overwritten);
  ``--repair`` keeps every entry that can still be read in a new log (same ids) and moves
  the damaged file to ``<vault>/avfs/lost+found/``: nothing is deleted;
- ``oplog_entry_malformed``: an entry whose fields are not what the log writes (JSON cut
  short, a ref record without its ids): undo cannot use it; reported only;
- ``oplog_duplicate``: an entry that repeats an earlier one field for field but its id;
  ``--repair`` deletes the copy when no other entry links to it;
- ``oplog_bad_link``: ``undone_by``/``undoes`` that do not pair up (an undo of an entry
  after it or of none, an entry undone by one that is not its undo): entries moved or
  rewritten; reported only;
- ``oplog_out_of_order`` (a warning): an entry older than the one before it (a clock
  stepped back does that too);
- ``oplog_missing_commit``: an entry names a commit the vault does not hold (removed by
  a gc outside avfs, lost): undo of it cannot bring it back; ``oplog_foreign_entry`` when
  it names none the vault holds (an entry of another vault's log); reported only.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ...core.vaults.oplog import COLUMNS, write_log
from ...core.workspace.sqlite import DEFAULT_WAIT_S, open_read_only
from .findings import Finding, finding

if TYPE_CHECKING:
    from ...core.vaults.vault import Vault

_HEX = frozenset("0123456789abcdef")
_NO_UNDO = ("undo", "vault_create", "push", "fetch")


def check_oplog(vault: Vault, repair: bool, now: float) -> Iterator[Finding]:
    path = vault.oplog.path
    if not os.path.exists(path):
        return
    rows, damage = _read(path)
    if damage is not None:
        yield _unreadable(vault, path, damage, repair, now)
        return
    yield from _entries(vault, path, rows, repair)


def _connect(path: str) -> sqlite3.Connection:
    if not os.access(os.path.dirname(path), os.W_OK):
        # (a home on a read-only mount: without its WAL index SQLite's `mode=ro` cannot
        # open it, and doctor called the log damaged and offered to replace it)
        return open_read_only(path, DEFAULT_WAIT_S)
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


def _read(path: str) -> tuple[list[tuple[Any, ...]], str | None]:
    """Every row, or the damage SQLite reports (then no rows)."""
    try:
        con = _connect(path)
        try:
            problems = [r[0] for r in con.execute("PRAGMA quick_check").fetchall()]
            if problems != ["ok"]:
                return [], "; ".join(map(str, problems[:5]))
            return con.execute(f"SELECT {COLUMNS} FROM ops ORDER BY id").fetchall(), None
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        return [], str(exc)


def salvage(path: str) -> list[tuple[Any, ...]]:
    """The rows of a damaged log that SQLite can still read, by id: a scan from each end of
    the table, then each id up to the last one given on its own. A file cut short is read
    from a copy whose header counts the pages it still has (SQLite refuses a file shorter
    than its header says, even the pages that are whole); the file itself is not changed."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="avfs-oplog-") as tmp:
        readable = _whole_pages(path, os.path.join(tmp, "oplog.db")) or path
        try:
            con = _connect(readable)
        except sqlite3.DatabaseError:
            return []
        try:
            return _rows_of(con)
        finally:
            con.close()


def _whole_pages(path: str, copy: str) -> str | None:
    """A copy of ``path`` cut to whole pages and with its header's page count set to them;
    None when the file is not shorter than its header says (or has no header)."""
    import struct

    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 100 or not data.startswith(b"SQLite format 3\x00"):
        return None
    size = struct.unpack(">H", data[16:18])[0]
    size = 65536 if size == 1 else size
    pages = len(data) // size if size >= 512 else 0
    if pages == 0 or struct.unpack(">I", data[28:32])[0] <= pages:
        return None
    with open(copy, "wb") as f:
        f.write(data[:28] + struct.pack(">I", pages) + data[32 : pages * size])
    return copy


def _rows_of(con: sqlite3.Connection) -> list[tuple[Any, ...]]:
    found: dict[int, tuple[Any, ...]] = {}
    for order in ("ASC", "DESC"):
        try:
            for row in con.execute(f"SELECT {COLUMNS} FROM ops ORDER BY id {order}"):
                found[int(row[0])] = row
        except sqlite3.DatabaseError:
            pass
    top = max(found, default=0)
    try:
        seq = con.execute("SELECT seq FROM sqlite_sequence WHERE name='ops'").fetchone()
        top = max(top, int(seq[0])) if seq else top
    except sqlite3.DatabaseError:
        pass
    for i in range(1, top + 1):
        if i not in found:
            try:
                row = con.execute(f"SELECT {COLUMNS} FROM ops WHERE id=?", (i,)).fetchone()
            except sqlite3.DatabaseError:
                continue
            if row is not None:
                found[i] = row
    return [found[i] for i in sorted(found)]


def _unreadable(vault: Vault, path: str, damage: str, repair: bool, now: float) -> Finding:
    kept = salvage(path)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now))
    dest = os.path.join(vault.state_dir, "lost+found", f"oplog.{stamp}.db")

    def rebuild() -> None:
        vault.oplog.close()
        fresh = f"{path}.salvage.tmp"
        for p in (fresh, f"{fresh}-journal"):
            if os.path.exists(p):
                os.unlink(p)
        write_log(fresh, kept)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(path + suffix):
                os.rename(path + suffix, dest + suffix)
        os.rename(fresh, path)

    return finding(
        vault,
        "oplog",
        "oplog_unreadable",
        f"the operation log cannot be read whole ({damage}); {len(kept)} entries can still be read",
        path,
        fix=rebuild,
        repair=repair,
        hint=f"`avfs doctor --repair` keeps those {len(kept)} in a new log and moves the damaged"
        " file to lost+found",
    )


def _entries(vault: Vault, path: str, rows: list[tuple[Any, ...]], repair: bool) -> Iterator[Finding]:
    by_id = {int(r[0]): r for r in rows}
    seen: dict[tuple[Any, ...], int] = {}
    linked = {r[8] for r in rows if r[8] is not None} | {r[9] for r in rows if r[9] is not None}
    last_ts: float | None = None
    for row in rows:
        op_id, ts, kind, _fork, summary, refs_text, ws_text = row[:7]
        what = f"entry {op_id} ({summary!r})" if isinstance(summary, str) else f"entry {op_id}"
        why = _malformed(row)
        if why is not None:
            yield finding(
                vault,
                "oplog",
                "oplog_entry_malformed",
                f"{what}: {why}",
                path,
                hint=f"`avfs undo --op {op_id}` cannot use it; the other entries are whole",
            )
            continue
        key = tuple(row[1:8])
        first = seen.setdefault(key, op_id)
        if first != op_id:
            yield finding(
                vault,
                "oplog",
                "oplog_duplicate",
                f"{what} repeats entry {first} field for field",
                path,
                fix=None if op_id in linked else (lambda i=op_id: _delete(vault, i)),  # type: ignore[misc]
                repair=repair,
                hint="another entry links to it: reported only" if op_id in linked else None,
            )
            continue
        if last_ts is not None and ts < last_ts:
            yield finding(
                vault,
                "oplog",
                "oplog_out_of_order",
                f"{what} is older than the entry before it ({ts:.3f} < {last_ts:.3f})",
                path,
                hint="entries moved, or the clock stepped back; undo goes by id",
                severity="warning",
            )
        last_ts = ts if last_ts is None else max(last_ts, ts)
        yield from _links(vault, path, what, row, by_id)
        yield from _commits(vault, path, what, kind, refs_text, ws_text)


def _malformed(row: tuple[Any, ...]) -> str | None:
    ts, kind, fork, summary, refs_text, ws_text, details_text = row[1:8]
    if not isinstance(ts, (int, float)) or not isinstance(kind, str) or not kind:
        return "no time or kind"
    if not isinstance(summary, str) or (fork is not None and not isinstance(fork, str)):
        return "no summary"
    try:
        refs_v, ws_v, details_v = (json.loads(t) for t in (refs_text, ws_text, details_text))
    except (TypeError, ValueError) as exc:
        return f"a field is not JSON ({exc})"
    if not isinstance(refs_v, list) or not all(
        isinstance(r, dict) and isinstance(r.get("ref"), str) and {"old", "new"} <= set(r) for r in refs_v
    ):
        return "its refs are not {ref, old, new} records"
    if not isinstance(ws_v, list) or not all(isinstance(w, dict) and "fork" in w for w in ws_v):
        return "its workspaces are not {fork, before, after} records"
    if not isinstance(details_v, dict):
        return "its details are not an object"
    return None


def _links(
    vault: Vault, path: str, what: str, row: tuple[Any, ...], by_id: dict[int, tuple[Any, ...]]
) -> Iterator[Finding]:
    op_id, kind, undone_by, undoes = row[0], row[2], row[8], row[9]
    wrong = None
    if undoes is not None:
        target = by_id.get(undoes)
        if kind != "undo" or undoes >= op_id or target is None:
            wrong = f"undoes entry {undoes}, " + (
                "which is not there" if target is None else "which is not before it"
            )
    if undone_by is not None and wrong is None:
        undo = by_id.get(undone_by)
        if undo is None or undo[2] != "undo" or undo[9] != op_id:
            wrong = f"is undone by entry {undone_by}, which is not an undo of it"
    if wrong is not None:
        yield finding(
            vault,
            "oplog",
            "oplog_bad_link",
            f"{what} {wrong}",
            path,
            hint="entries were moved or rewritten; `avfs undo` of these may undo the wrong one",
        )


def _commits(
    vault: Vault, path: str, what: str, kind: str, refs_text: str, ws_text: str
) -> Iterator[Finding]:
    named: list[str] = []
    for r in json.loads(refs_text):
        named += [r[k] for k in ("old", "new") if _is_oid(r.get(k))]
    for w in json.loads(ws_text):
        for side in ("before", "after"):
            state = w.get(side)
            if isinstance(state, dict):
                named += [state[k] for k in ("base", "tree") if _is_oid(state.get(k))]
    if not named:
        return
    missing = sorted({oid for oid in named if not vault.store.has_object(oid)})
    if not missing:
        return
    foreign = len(missing) == len(set(named))
    yield finding(
        vault,
        "oplog",
        "oplog_foreign_entry" if foreign else "oplog_missing_commit",
        f"{what} names "
        + (
            "no object this vault holds (an entry of another vault's log?): "
            if foreign
            else "objects the vault does not hold: "
        )
        + ", ".join(o[:12] for o in missing[:5])
        + (f" and {len(missing) - 5} more" if len(missing) > 5 else ""),
        path,
        hint=None
        if kind in _NO_UNDO
        else "`avfs undo` of it cannot bring them back; fetch them from a clone or remote",
    )


def _is_oid(value: Any) -> bool:
    return isinstance(value, str) and len(value) in (40, 64) and set(value) <= _HEX


def _delete(vault: Vault, op_id: int) -> None:
    con = sqlite3.connect(vault.oplog.path)
    try:
        with con:
            con.execute("DELETE FROM ops WHERE id=?", (op_id,))
    finally:
        con.close()
