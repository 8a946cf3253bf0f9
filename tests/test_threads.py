"""Per-thread state (core/store/threads.py) under thread-id reuse, with real threads.

A thread's id is reused once it has ended. A thread that found an ended thread's namespace
under its (reused) id used to take it over unregistered, so the next thread to make a slot
took it for ended and closed its SQLite connection under it: the mount daemon segfaulted
in ``sqlite3_last_insert_rowid`` and in the statement cache's dict.
"""

from __future__ import annotations

import _thread
import os
import sqlite3
import threading
import time
from typing import Any

from avfs_git.core.store.threads import ThreadSlots
from avfs_git.core.workspace.sqlite import close_conn


def _in_unregistered_thread(fn: Any) -> Any:
    """Run ``fn`` in a thread started below :mod:`threading` (as libfuse's workers are) and
    return what it returned."""
    done = threading.Event()
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(fn())
        finally:
            done.set()

    _thread.start_new_thread(run, ())
    assert done.wait(10)
    return out[0]


def _round(slots: ThreadSlots, db: str) -> tuple[bool, bool, dict[str, Any]]:
    """One thread uses a slot and ends; a thread started below :mod:`threading` (its id
    likely the ended one's) makes its slot and holds it while a third thread makes its
    first. (id reused?, the holder kept its own namespace?, the ended thread's namespace)"""
    first: dict[str, Any] = {}

    def use_and_end() -> None:
        ns = slots.ns()
        ns["conn"] = sqlite3.connect(db, check_same_thread=False)
        first["ident"], first["ns"] = threading.get_ident(), ns

    hold, release = threading.Event(), threading.Event()
    seen: dict[str, Any] = {}

    def later() -> None:
        ns = slots.ns()
        seen["ident"] = threading.get_ident()
        ns["conn"] = conn = sqlite3.connect(":memory:", check_same_thread=False)
        seen["took_over"] = ns is first["ns"]
        hold.set()
        release.wait(10)
        # still this thread's, and still open, whatever other threads did meanwhile
        seen["kept"] = slots.ns() is ns and ns.get("conn") is conn and not seen["took_over"]
        try:
            conn.execute("SELECT 1").fetchone()
        except sqlite3.ProgrammingError:  # closed under it
            seen["kept"] = False

    # the thread that starts the unregistered one is made first, so that the ended
    # thread's stack (its id) is the one free when the unregistered thread is made
    go = threading.Event()

    def start_later() -> None:
        go.wait(10)
        _in_unregistered_thread(later)

    waiter = threading.Thread(target=start_later)
    waiter.start()
    t = threading.Thread(target=use_and_end)
    t.start()
    t.join()
    # join returns once the thread's Python is done, before the kernel has ended the task:
    # glibc hands its stack (and so its id) to a new thread only once the kernel cleared
    # the ended task's tid
    end = time.monotonic() + 10
    while os.path.exists(f"/proc/self/task/{t.native_id}") and time.monotonic() < end:
        time.sleep(0.001)
    go.set()
    assert hold.wait(10)
    other = threading.Thread(target=slots.ns)  # a new thread's first slot drops the ended ones'
    other.start()
    other.join()
    release.set()
    waiter.join()
    return seen["ident"] == first["ident"], seen["kept"], first["ns"]


def test_a_reused_thread_id_gets_its_own_namespace_and_keeps_it(tmp_path):
    dropped: list[dict[str, Any]] = []
    slots = ThreadSlots(on_drop=lambda ns: (dropped.append(ns), close_conn(ns)))
    reused = 0
    for _ in range(50):
        same_id, kept, ended = _round(slots, str(tmp_path / "db"))
        assert kept, "a live thread's namespace was taken over or dropped under it"
        if same_id:
            reused += 1
            assert any(ns is ended for ns in dropped)  # the ended thread's connection closed
    assert reused, "no thread id was reused in 50 tries: the test showed nothing"
