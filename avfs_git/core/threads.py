"""Per-thread state that survives ctypes callbacks from foreign (C) threads.

libfuse calls into Python from its own worker threads through ctypes; each callback gets
a fresh Python thread state, so a ``threading.local`` is empty at every call and every
FUSE request opened a new SQLite connection and git repository (~1 ms: an uncached
``stat`` cost 1.3 ms instead of ~0.1). :class:`ThreadSlots` keys the state on the OS
thread id instead, which stays the same for the life of the thread. An id reused by a
later thread inherits the state of a thread that has ended: never used concurrently.
"""

from __future__ import annotations

import threading
from typing import Any


class ThreadSlots:
    """Attribute access like ``threading.local``, one namespace per OS thread."""

    def __init__(self) -> None:
        object.__setattr__(self, "_slots", {})

    def _mine(self) -> dict[str, Any]:
        slots: dict[int, dict[str, Any]] = object.__getattribute__(self, "_slots")
        ident = threading.get_ident()
        mine = slots.get(ident)
        if mine is None:
            mine = slots[ident] = {}
        return mine

    def __getattr__(self, name: str) -> Any:
        try:
            return self._mine()[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self._mine()[name] = value
