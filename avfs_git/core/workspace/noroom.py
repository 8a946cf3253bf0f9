"""Bookkeeping a read makes, where the fork's state has no room for it.

A read-only command (``status``, ``diff``, ``cat``, ``vault info``, ``watch``) writes a little
into the fork's state dir as it goes: a status's mark of what it found
(:func:`.upperjournal.remember`), an upper-layer file's hashed id (``upper_oids``), the first
view time, the change log's claim (:meth:`.changelog.ChangeLog.identity`), and, on opening
the fork, another hand's commit adopted (:func:`.wsbase.sync_base`). Each is a shortcut or a
record the next command can make again; none is what the read answers. Where the state
dir is in the layers file system, the kernel's limit of the vault's qgroup refuses such a write once a writer in an overlay mount
filled it (and avfs's own room, ``Vault.own_room``, was taken or cannot be given: a quota
lowered under what the forks hold); a full disk refuses it anywhere. The read answers all
the same: :func:`cannot_write` tells such a refusal from a fault, and the caller leaves its
bookkeeping as it was (each says what that means for the next command).
"""

from __future__ import annotations

import errno
import sqlite3

from ..errors import NoSpaceError, QuotaExceededError, ReadOnlyError, is_no_space

__all__ = ["cannot_write"]

# what SQLite says when it cannot write: EDQUOT/ENOSPC on a page ("disk I/O error", "database
# or disk is full"), on its journal file's creation ("unable to open database file"), a
# read-only file system ("attempt to write a readonly database")
_SQLITE = ("disk i/o error", "database or disk is full", "unable to open database file", "readonly database")
_ERRNOS = (errno.EDQUOT, errno.ENOSPC, errno.EROFS)


def cannot_write(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) is a write refused for want of room or of write
    access: the vault's quota (``quota_exceeded``, ``EDQUOT``), a full disk (``no_space``,
    ``ENOSPC``), a read-only file system, or SQLite saying so. A lock another process holds
    (``busy``) and a broken database are not: they are reported as they are."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, (QuotaExceededError, NoSpaceError, ReadOnlyError)):
            return True
        if isinstance(cur, OSError) and cur.errno in _ERRNOS:
            return True
        if isinstance(cur, sqlite3.OperationalError) and any(m in str(cur).lower() for m in _SQLITE):
            return True
        cur = cur.__cause__ or cur.__context__
    return is_no_space(exc)
