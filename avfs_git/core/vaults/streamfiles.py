"""The change stream's files (:mod:`.changes`): where each journal it reads ends, a
cursor's positions in them, and the directories a follower waits on."""

from __future__ import annotations

import os
import sqlite3
from typing import TYPE_CHECKING, Any

from ..store import refs
from ..workspace.changelog import ChangeLog
from ..workspace.changelog import overlay_last as _overlay_last
from ..workspace.overlay import JOURNAL_FROM
from . import audit
from .cursor import ForkPos, Pos
from .cursor import stream_id as _stream_id

if TYPE_CHECKING:
    from .vault import Vault


def overlay_db(state_dir: str) -> sqlite3.Connection | None:
    path = os.path.join(state_dir, "overlay.db")
    if not os.path.exists(path):
        return None
    return sqlite3.connect(path, timeout=30.0, isolation_level=None)


def journal_from(state_dir: str) -> int:
    """The newest overlay journal row no longer kept (core/workspace/overlay.py)."""
    conn = overlay_db(state_dir)
    if conn is None:
        return 0
    try:
        r = conn.execute("SELECT value FROM meta WHERE key = ?", (JOURNAL_FROM,)).fetchone()
    except sqlite3.OperationalError:
        return 0  # made, its schema not yet
    finally:
        conn.close()
    return int(r[0]) if r else 0


def fork_ident(vault: Vault, fork: str) -> tuple[str, int, int]:
    state = vault.ws_dir(fork)
    os.makedirs(state, exist_ok=True)
    with ChangeLog(state, vault.lock_wait_s) as log:
        return log.identity(fork, _overlay_last(state))


def size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


def now_pos(vault: Vault, scope: str | None) -> Pos:
    forks = [scope] if scope is not None else vault.fork_names()
    pos = Pos(
        _stream_id(vault.state_dir), scope, vault.oplog.next_id() - 1, size(audit.path(vault.state_dir)), {}
    )
    for f in forks:
        ident, _, _ = fork_ident(vault, f)
        state = vault.ws_dir(f)
        with ChangeLog(state, vault.lock_wait_s) as log:
            pos.forks[f] = ForkPos(
                ident,
                _overlay_last(state),
                log.last_seq(),
                size(refs.reflog_path(vault.path, refs.fork_ref(f))),
            )
    return pos


def advance(pos: Pos, mark: tuple[Any, ...]) -> None:
    if mark[0] == "op":
        pos.op = max(pos.op, mark[1])
    elif mark[0] == "audit":
        pos.audit = max(pos.audit, mark[1])
    else:
        fp = pos.forks[mark[1]]
        if mark[0] == "o":
            fp.oseq = max(fp.oseq, mark[2])
        elif mark[0] == "u":
            fp.useq = max(fp.useq, mark[2])
        else:
            fp.reflog = max(fp.reflog, mark[2])


def parse_time(v: object) -> float:
    from datetime import datetime

    try:
        return datetime.fromisoformat(str(v).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def wake_paths(vault: Vault, fork: str | None) -> list[str]:
    """The directories whose files change when an event is journaled (a follower waits on
    them, with inotify): the vault's state dir (op log, audit log), the reflogs' directory
    and each watched fork's state dir."""
    forks = [fork] if fork is not None else vault.fork_names()
    out = [vault.state_dir, os.path.dirname(refs.reflog_path(vault.path, refs.fork_ref("x")))]
    for f in forks:
        state = vault.ws_dir(f)
        out.append(os.path.realpath(state))
        d = os.path.dirname(refs.reflog_path(vault.path, refs.fork_ref(f)))
        if d not in out:
            out.append(d)
    return out
