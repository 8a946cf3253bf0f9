"""Per-thread state that survives ctypes callbacks from foreign (C) threads.

libfuse calls into Python from its own worker threads through ctypes; each callback gets
a fresh Python thread state, so a ``threading.local`` is empty at every call and every
FUSE request opened a new SQLite connection and git repository (~1 ms: an uncached
``stat`` cost 1.3 ms instead of ~0.1). :class:`ThreadSlots` keys the state on the OS
thread id instead, which stays the same for the life of the thread, and checks that the
namespace found is the calling thread's own (its :class:`threading.Thread`): an id is
reused by a later thread once its thread ended (libfuse starts and ends worker threads as
load comes and goes, the mount daemon its ``proxy exec`` threads when idle), and a thread
that took over an ended thread's namespace was never registered, so a third thread took
it for ended and closed its SQLite connection under it (the daemon segfaulted in
``sqlite3_last_insert_rowid``, or in the statement cache's dict).

State does not outlive its threads for long: when a thread makes its first slot, the
slots of threads that have ended are dropped (so a program that starts and ends threads
does not pile up SQLite connections and git repositories, nor their file descriptors).
Threads Python did not start (libfuse's) register with :mod:`threading` on their first
slot and are never taken for ended (Python cannot see them end).
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable
from typing import Any, Protocol

_get_ident = threading.get_ident
_current = threading.current_thread
_OWNER = "\0owner"  # a namespace's thread (a key no attribute can have)


class ThreadSlots:
    """Attribute access like ``threading.local``, one namespace per OS thread."""

    def __init__(self, on_drop: Callable[[dict[str, Any]], object] | None = None) -> None:
        """``on_drop(namespace)`` is called (from another thread) for the namespace of each
        thread that ended, to close what it holds at once rather than at the next garbage
        collection (an SQLite connection sits in a reference cycle with its statement cache)."""
        object.__setattr__(self, "_slots", {})
        object.__setattr__(self, "_lock", threading.Lock())
        object.__setattr__(self, "_on_drop", on_drop)

    def ns(self) -> dict[str, Any]:
        """The calling thread's namespace, as a dict (the fast way in hot paths)."""
        me = _current()  # (registers a thread Python did not start: see above)
        mine: dict[str, Any] | None = self._slots.get(_get_ident())
        return mine if mine is not None and mine[_OWNER] is me else self._new(me)

    def _new(self, me: threading.Thread) -> dict[str, Any]:
        slots: dict[int, dict[str, Any]] = self._slots
        ident = _get_ident()
        with self._lock:
            alive = {t.ident: t for t in threading.enumerate()}
            ended = [slots.pop(i) for i in [i for i, ns in slots.items() if alive.get(i) is not ns[_OWNER]]]
            mine = slots[ident] = {_OWNER: me}
        if self._on_drop is not None:
            for ns in ended:
                self._on_drop(ns)
        return mine

    def release(self, name: str, close: Callable[[Any], object], *, others: bool = True) -> None:
        """Drop ``name`` from every thread's namespace, closing the calling thread's value
        with ``close``, and other threads' values too when ``others`` (else they are only
        dropped, and freed when their last reference goes: for handles that must not be
        closed under a thread still using them)."""
        with self._lock:
            spaces = list(self._slots.items())
        me = _get_ident()
        for ident, ns in spaces:
            value = ns.pop(name, None)
            if value is not None and (others or ident == me):
                close(value)

    def spaces(self) -> list[dict[str, Any]]:
        """Every thread's namespace (another thread's may change meanwhile: take from it
        only with ``pop``, which no other thread can see half done)."""
        with self._lock:
            return list(self._slots.values())

    def __getattr__(self, name: str) -> Any:
        try:
            return self.ns()[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self.ns()[name] = value


class ForkReset(Protocol):
    """An object whose locks (and what they guard) a forked child must make anew."""

    def after_fork(self) -> None: ...


# Every live object that asked (reset_at_fork). fork() copies a lock held by another
# thread of the parent as held, and that thread does not exist in the child: the child's
# first use of the lock would wait forever (a kept connection's fetch lock while a mount's
# thread waits on the server, and a warm server forking a call's process meanwhile).
_FORKED: weakref.WeakSet[ForkReset] = weakref.WeakSet()


def reset_at_fork(obj: ForkReset) -> None:
    """Have ``obj.after_fork()`` called in the child of every later ``fork()`` of this
    process (as long as ``obj`` lives), before anything else runs there."""
    _FORKED.add(obj)


def _after_fork() -> None:
    for obj in list(_FORKED):
        obj.after_fork()


os.register_at_fork(after_in_child=_after_fork)
