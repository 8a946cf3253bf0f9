"""A status of an overlay mount taken again within one operation where nothing changed since.

A merge into a fork an overlay mount serves reads the target's status at its capture and
again, in the moment before the move, to see whether a write through the mount came in
between (:func:`..operations.mergeguard.refuse_changed`): each a question to the daemon's
journal and a walk of what the last status found, ~10 ms of a ~60 ms fast-forward of
minimist with an installed ``node_modules`` (h-merge15). The second asks only what the
first did not know: while :func:`status_kept` is entered, a status whose upper layer's
journal (:mod:`.upperask`) names no path since the last one's position, over the same base,
view time, ``core.fileMode`` and overlay database (its base and newest journal row: every
entry put or removed moves it), answers what that one did. The journal is the same one
the status itself trusts for what it reads (:mod:`.upperjournal`); where none answers, or
it cannot say, the status is read.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import TYPE_CHECKING

from .upperjournal import OFFLINE

if TYPE_CHECKING:
    from ..types import Change
    from .overlayentry import Entry, Ignored
    from .wsstatus import Changes

Answer = tuple[list["Change"], "Ignored"]

# while :func:`status_kept` is entered: an upper layer's directory -> (what the status was
# of: its journal position, base, view time, core.fileMode, the database's state; the
# entries it read; its answer), per thread and task (a context's own)
_kept: contextvars.ContextVar[dict[str, tuple[tuple[object, ...], list[Entry], Answer]] | None] = (
    contextvars.ContextVar("avfs_status_kept", default=None)
)


@contextlib.contextmanager
def status_kept() -> Iterator[None]:
    """While it is entered, a status of an overlay mount whose journal names no change since
    the last one is that one's answer (see the module). Nested, the outermost keeps them;
    nothing is kept past its end."""
    if _kept.get() is not None:
        yield
        return
    token = _kept.set({})
    try:
        yield
    finally:
        _kept.reset(token)


def again(ch: Changes) -> tuple[Answer | None, object]:
    """(the last status's answer when it still holds, see the module; else None, and the
    state of the overlay's database now, for :func:`keep`). Where it holds, ``ch``'s
    :attr:`~.wsstatus.Changes.last_read` is the entries that status read. A copy: the
    caller may change what it gets."""
    memo = _kept.get()
    overlay = ch.overlay
    if memo is None or not overlay.upper_active():
        return None, None
    state = overlay.base_and_seq()
    got = memo.get(overlay.upper_dir)
    git_dir = None if ch.mount_git_dir is None else ch.mount_git_dir()
    if got is None or git_dir is None or ch.view_time is None:
        return None, state
    key, read, (changes, ignored) = got
    instance, seq = key[0], key[1]
    if not isinstance(instance, str) or not isinstance(seq, int) or key[5] != state:
        return None, state
    if key[2:5] != (ch.view.base, ch.view_time(), all(ch.modes_trusted())):
        return None, state
    from . import upperask  # (loaded by the status that made the memo)

    now = upperask.journal(overlay.upper_dir, git_dir, (instance, seq))
    if now is None or now[:2] != (instance, seq) or now[2] != []:
        return None, state
    ch.last_read = list(read)
    return (list(changes), ignored), state


def keep(ch: Changes, state: object, answer: Answer) -> Answer:
    """``answer``, a status of ``ch`` read from the overlay's database in ``state`` (from
    :func:`again`; None: nothing is kept), kept while :func:`status_kept` is entered."""
    memo = _kept.get()
    p = ch.last_pending
    if memo is not None and state is not None and p is not None and p.instance != OFFLINE:
        key = (p.instance, p.seq, p.base, p.view_time, p.trusted, state)
        memo[ch.overlay.upper_dir] = (key, list(ch.last_read or ()), (list(answer[0]), answer[1]))
    return answer
