"""The exec server's kept threads (proxy/workers.py): a job runs on an idle thread that
ran an earlier one, with what that thread kept (its ThreadSlots), never waits for a busy
one, and idle threads end after their time, beyond their number, or on close."""

from __future__ import annotations

import threading
import time
from typing import Any

from avfs_git.core.store.threads import ThreadSlots
from avfs_git.proxy.workers import Workers


def _until(pred: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.005)
    return bool(pred())


def _idle(w: Workers) -> int:
    with w._lock:
        return len(w._idle)


def test_a_job_after_another_runs_on_its_thread_with_what_the_thread_kept():
    w = Workers("t")
    slots = ThreadSlots()
    got: list[tuple[int, Any]] = []
    done = threading.Event()

    def job(value: int) -> None:
        got.append((threading.get_ident(), getattr(slots, "conn", None)))
        slots.conn = value
        done.set()

    try:
        for i in range(3):
            done.clear()
            w.run(job, i)
            assert done.wait(10)
            assert _until(lambda: _idle(w) == 1)
        assert len({ident for ident, _ in got}) == 1 and w.started == 1
        assert [kept for _, kept in got] == [None, 0, 1]  # (a thread per job: None each time)
    finally:
        w.close()


def test_a_busy_thread_is_never_waited_for_and_idle_ones_are_bounded():
    w = Workers("t", keep_max=2)
    release = threading.Event()
    running = threading.Semaphore(0)
    idents: set[int] = set()

    def blocked() -> None:
        idents.add(threading.get_ident())
        running.release()
        release.wait(10)

    try:
        for _ in range(4):
            w.run(blocked)
        for _ in range(4):
            assert running.acquire(timeout=10)  # all four run at once
        assert len(idents) == 4 and w.started == 4
        release.set()
        assert _until(lambda: _idle(w) == 2)
        before = set(threading.enumerate())
        assert _until(lambda: len([t for t in threading.enumerate() if t.name == "t"]) == 2), before
    finally:
        w.close()


def test_idle_threads_end_after_their_time_and_on_close():
    w = Workers("short", keep_s=0.05)
    ran = threading.Event()
    w.run(ran.set)
    assert ran.wait(10)
    assert _until(lambda: not any(t.name == "short" for t in threading.enumerate()))
    assert _idle(w) == 0
    w2 = Workers("closing")
    ran.clear()
    w2.run(ran.set)
    assert ran.wait(10) and _until(lambda: _idle(w2) == 1)
    w2.close()
    assert _until(lambda: not any(t.name == "closing" for t in threading.enumerate()))
    # a job after close still runs (a request accepted as the server closes), on a thread
    # that is not kept
    ran.clear()
    w2.run(ran.set)
    assert ran.wait(10) and _until(lambda: not any(t.name == "closing" for t in threading.enumerate()))
    assert _idle(w2) == 0
