"""The vault's audit log: one NDJSON record per proxy exec, appended and fsynced.

``<vault>/avfs/audit.ndjson``. Records hold the request, the decision and its rule, the
checkpoint and commit ids, the exit, the duration and how many paths changed: never the
command's output (it may hold secrets) and never its environment. A record is one
``write`` of one line to a file opened with ``O_APPEND`` (atomic between processes for
lines of this size), then ``fsync``: a crash loses at most the record being written, and a
torn last line is skipped by readers.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from typing import Any

from ..store.redact import redact
from ..types import to_json

FILE = "audit.ndjson"


def path(state_dir: str) -> str:
    return os.path.join(state_dir, FILE)


def append(state_dir: str, record: dict[str, Any], *, sync: bool = True) -> int:
    """Append ``record`` (one line); returns the offset its line starts at. ``sync=False``:
    not fsynced yet (readers see it at once): the caller calls :func:`sync` soon after (a
    mount's daemon, once it has answered the client)."""
    rec = {"time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")}
    rec.update(to_json(record))
    # ASCII escapes: an argument that is not UTF-8 (a surrogate escape) still makes a line
    # no URL's credentials (a `git push https://TOKEN@host/...` request) in the log
    line = (redact(json.dumps(rec, ensure_ascii=True, separators=(",", ":"))) + "\n").encode()
    fd = os.open(path(state_dir), os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, line)  # O_APPEND: the line lands whole at the end, where this fd is now
        end = os.lseek(fd, 0, os.SEEK_CUR)
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)
    return end - len(line)


def sync(state_dir: str) -> None:
    """fsync the audit log (what :func:`append` wrote with ``sync=False``)."""
    fd = os.open(path(state_dir), os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read(state_dir: str, *, since: datetime | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    """Records oldest first (``since``: at or after that time; ``limit``: the newest N)."""
    out: list[dict[str, Any]] = []
    if not os.path.exists(path(state_dir)):
        return out
    with open(path(state_dir), "rb") as fh:
        for raw in fh:
            try:
                rec = json.loads(raw)
            except ValueError:
                continue  # a torn line from a crash mid-write
            if not isinstance(rec, dict):
                continue
            if since is not None:
                try:
                    t = datetime.fromisoformat(str(rec.get("time", "")).replace("Z", "+00:00"))
                except ValueError:
                    continue
                if t < since:
                    continue
            out.append(rec)
    if limit is not None:
        out = out[-limit:] if limit > 0 else []
    return out
