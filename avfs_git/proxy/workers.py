"""Threads a mount's exec server keeps between ``proxy exec`` requests.

What a request opens is kept per thread (:class:`..core.store.threads.ThreadSlots`): the
overlay's and the upper journal's SQLite connections, the vault's git repository and its
object caches. A thread per request, ended with it, opened all of them again on every
warm call, and started a second thread to watch the client: ~0.7 ms of the request's
~6 ms of CPU here, plus statements compiled anew and a repository's caches cold. So a
request, and the watch of its client, runs on a thread that served an earlier one when
one is idle; a new thread is started only when every kept one is busy (a request waiting
for the fork's exec lock holds its thread, so none waits for another's). An idle thread
ends after :data:`KEEP_S` without work, and at most :data:`KEEP_MAX` stay idle; what it
kept is closed when it ends, as before (ThreadSlots drops an ended thread's state).

Nothing of a request outlives it on its thread but those handles: the locks a thread
holds, the identity a request commits with and the upper layer's bypass are scoped to
``with`` blocks (:mod:`..core.store.locks`, :mod:`..core.store.identity`), and a new
thread would start with the same signal mask (the server's: empty, see
:meth:`.server.ExecServer._serve`).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger("avfs.proxy")

KEEP_S = 300.0  # an idle thread ends after this long without work
KEEP_MAX = 4  # threads kept idle at most (a burst of parallel requests leaves no more)

_Job = tuple[Callable[..., object], tuple[Any, ...]]


class Workers:
    """Run jobs each on a thread of its own, reusing threads that have finished one."""

    def __init__(self, name: str, keep_s: float = KEEP_S, keep_max: int = KEEP_MAX) -> None:
        self.name = name
        self.keep_s = keep_s
        self.keep_max = keep_max
        self._lock = threading.Lock()
        self._idle: list[queue.SimpleQueue[_Job | None]] = []
        self._closed = False
        self.started = 0  # threads started so far (the rest of the jobs reused one)

    def run(self, fn: Callable[..., object], *args: Any) -> None:
        """Start ``fn(*args)`` now, on an idle kept thread or a new one (an exception it
        raises is logged)."""
        with self._lock:
            inbox = self._idle.pop() if self._idle else None
            if inbox is None:
                self.started += 1
        if inbox is not None:
            inbox.put((fn, args))
            return
        threading.Thread(target=self._work, args=((fn, args),), name=self.name, daemon=True).start()

    def close(self) -> None:
        """End the idle threads; busy ones end after their job."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for inbox in idle:
            inbox.put(None)

    def _work(self, job: _Job | None) -> None:
        inbox: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        while job is not None:
            fn, args = job
            try:
                fn(*args)
            except Exception:
                log.exception("proxy exec: a request's thread")
            del job, fn, args  # (nothing of the request kept while idle)
            with self._lock:
                if self._closed or len(self._idle) >= self.keep_max:
                    return
                self._idle.append(inbox)
            try:
                job = inbox.get(timeout=self.keep_s)
            except queue.Empty:
                with self._lock:
                    if inbox in self._idle:  # not taken meanwhile: end
                        self._idle.remove(inbox)
                        return
                job = inbox.get()  # taken just as the time ran out: its job is coming
