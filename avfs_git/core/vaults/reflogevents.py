"""A fork's reflog read for the change stream (:mod:`.changes`): its ``ref_moved`` events.

A line is avfs's (``api``, ``exec``, at its operation's time) only where the op log, or a
proxy exec's audit record (the command's git moved the branch: avfs carried the move
back), names that move of that fork: git in the mount writes any message, identity and
time into the vault's reflog. Found in the thirty-fourth round (changes2): a line whose
message began ``avfs`` with a time to come counted as "its operation is not recorded
yet" for as long as that time was ahead (``GIT_COMMITTER_DATE=@4000000000 git update-ref
-m avfs...`` in the mount: the fork's later ref moves were missing from every watch until
2096), and any ``avfs...`` message was labelled ``api`` (``exec`` for ``avfs: avfs proxy
exec:``). Now a line names no operation by its message: one no record names is ``git``'s,
and it waits for its operation (:data:`.changes.OP_WAIT_S`) only where its time is within
that much before now.

The times are kept in the file's order and none after now: a line claiming an earlier
time sorted before the lines written ahead of it, and a batch cut after it resumed past
them (they were skipped); one claiming a later time sorted after every other journal's
events of the batch.
"""

from __future__ import annotations

import time
from typing import Any

from ..store import refs

MoveKey = tuple[str, "str | None", "str | None"]  # (fork, old, new)


def items(
    fork: str,
    path: str,
    after: int,
    size: int,
    op_moves: dict[MoveKey, list[tuple[float, str]]],
    exec_moves: dict[MoveKey, int],
    wait_s: float,
) -> tuple[list[tuple[float, int, dict[str, Any], tuple[str, str, int]]], int | None]:
    """The stream's items of the reflog at ``path`` from byte ``after`` to ``size``, and
    where to stop (a line being written, or one waiting for its operation; None: the
    end). ``op_moves``: the operations' moves read (each taken by the first line naming
    it); ``exec_moves``: the audit records' (their offsets)."""
    out: list[tuple[float, int, dict[str, Any], tuple[str, str, int]]] = []
    if size <= after:
        return out, None
    with open(path, "rb") as fh:
        fh.seek(after)
        data = fh.read(size - after)
    off, now, last = after, time.time(), 0.0
    for line in data.splitlines(keepends=True):
        start, off = off, off + len(line)
        if not line.endswith(b"\n"):
            return out, start
        entry = refs.reflog_entry(line.decode("utf-8", "replace").rstrip("\n"), len(refs.ZERO_ID))
        if entry is None:  # (git finds no entry there either)
            out.append((last, 3, {}, ("r", fork, off)))
            continue
        old, new, t, message = entry
        zero = "0" * len(old)
        key = (fork, None if old == zero else old, None if new == zero else new)
        ops, by_exec = op_moves.get(key), exec_moves.get(key)
        source, exec_id = "git", None
        if ops:
            t, source = ops.pop(0)  # an operation's move: right by it (git's clock is seconds)
        elif by_exec is not None:
            source, exec_id = "exec", f"audit:{by_exec}"
        elif message.startswith("avfs") and 0 <= now - t < wait_s:
            return out, start  # its operation may not be recorded yet
        last = max(last, min(t, now))
        fields: dict[str, Any] = {
            "kind": "ref_moved",
            "fork": fork,
            "ref": refs.fork_ref(fork),
            "old": key[1],
            "new": key[2],
            "source": source,
            "summary": message or None,
        }
        if exec_id is not None:
            fields["exec_id"] = exec_id
        out.append((last, 3, fields, ("r", fork, off)))
    return out, None
