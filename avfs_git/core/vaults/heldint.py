"""Ctrl-C held off while an operation's refs move and its record in the op log commits.

:meth:`.oplog.OpLog.held` moves an operation's refs and commits its record as one block: a
``KeyboardInterrupt`` between the two rolled the record back with the refs moved (an
interrupted ``avfs merge`` said "interrupted: avfs keeps no half-done change: rerun the
command" with its target merged and no operation for ``avfs undo``: 4 of 14 Ctrl-Cs in a
merge of 800 files). The block is short (a ref moved, a workspace pointed at it, a row
written); a SIGINT in it is noted and raised once it is over, so the operation is either
not begun or done and recorded when the caller sees the interruption.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


@contextmanager
def interrupt_held() -> Iterator[None]:
    """Hold off SIGINT (Python's ``KeyboardInterrupt``) for the block, then raise it if
    one came. Only on the main thread with Python's own handler installed (elsewhere a
    handler cannot be set, or a program's own is left alone); nested, the outer holds it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return
    came: list[int] = []

    def note(signum: int, frame: FrameType | None) -> None:
        came.append(signum)

    signal.signal(signal.SIGINT, note)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if came:
        raise KeyboardInterrupt
