"""Nothing fetched twice: a read that found its blob missing while another read's fetch on
the same vault handle was under way (a mount's threads, a parallel test run's workers
importing the same module, a miss in the directory a fetch is bringing) asks the server
only for what that fetch did not bring (core/store/promisor.py ``Promisor.fetch``'s
``since``; docs/lazy.md "How a read fetches"). Against a real `git daemon` on 127.0.0.1
(tests/test_lazy.py's fixture) behind tests/test_lazy_wire.py's relay, which counts the
fetch requests the server gets and holds its answers back while a second read comes; and
with the server dying under both reads: each fails with ``blob_not_local``, nothing hangs,
nothing is written."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from avfs_git.core.errors import BlobNotLocalError
from avfs_git.core.vaults.home import Home
from avfs_git.core.vaults.vault import Vault

from .test_lazy import Server, blob_at, objects
from .test_lazy import server as server
from .test_lazy_wire import Relay, _leftovers, _vault
from .test_lazy_wire import relay as relay

FIRST = "avfs_git/core/store/gitstore.py"
NEIGHBOUR = "avfs_git/core/store/promisor.py"  # in FIRST's directory: its fetch brings it
ELSEWHERE = "avfs_git/cli/output.py"  # another directory: opens the kept connection
# (``read_package_bytes`` 0: its miss would bring the whole package's modules, FIRST's too)
GUARD_S = 60.0  # (a wait for an event, not a measure: only a hang reaches it)


class _Waiting:
    """The vault handle's fetch lock (a real lock), counting the threads waiting for it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.changed = threading.Condition()
        self.waiting = 0

    def __enter__(self) -> None:
        with self.changed:
            self.waiting += 1
            self.changed.notify_all()
        self.lock.acquire()
        with self.changed:
            self.waiting -= 1

    def __exit__(self, *exc: object) -> None:
        self.lock.release()


def _until(what: Callable[[], bool]) -> None:
    deadline = time.monotonic() + GUARD_S
    while not what():
        assert time.monotonic() < deadline, "nothing happened"
        time.sleep(0.01)


def _read_in_thread(v: Vault, path: str) -> tuple[threading.Thread, dict[str, Any]]:
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["data"] = v.workspace("main").read(path)
        except BlobNotLocalError as exc:
            out["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, out


def _second_waits_for_first(
    v: Vault, relay: Relay, second: str
) -> tuple[list[threading.Thread], list[dict[str, Any]]]:
    """FIRST read in a thread, its fetch's answer held by the relay; then ``second`` read
    in another thread, which found its blob missing and waits for the handle's lock."""
    v.workspace("main").read(ELSEWHERE)  # (the kept connection, open: the relay can hold it)
    lock = _Waiting()
    v.store.promisor._lock = lock  # type: ignore[assignment]
    relay.requests = 0
    relay.hold(True)
    t1, out1 = _read_in_thread(v, FIRST)
    _until(lambda: relay.requests == 1)  # FIRST's request is out, its answer held
    t2, out2 = _read_in_thread(v, second)
    with lock.changed:
        assert lock.changed.wait_for(lambda: lock.waiting == 1, GUARD_S)
    return [t1, t2], [out1, out2]


@pytest.mark.parametrize("second", [FIRST, NEIGHBOUR], ids=["same-file", "neighbour"])
def test_a_miss_during_a_fetch_that_brings_its_blob_asks_the_server_nothing(
    home: Home, server: Server, relay: Relay, second: str
) -> None:
    v = _vault(home, relay, read_neighbours=100, read_package_bytes=0)
    src = server.base / "proj.git"
    before = objects(v.path)
    threads, outs = _second_waits_for_first(v, relay, second)
    relay.hold(False)
    for t in threads:
        t.join(GUARD_S)
        assert not t.is_alive()
    assert outs[0].get("data") == blob_at(src, "main", FIRST)
    assert outs[1].get("data") == blob_at(src, "main", second)
    # one request reached the server: the second read's blob came with the first's fetch
    assert relay.requests == 1
    brought = objects(v.path) - before
    # and the next read of a file of that directory is local too
    assert v.workspace("main").read(NEIGHBOUR) == blob_at(src, "main", NEIGHBOUR)
    assert relay.requests == 1 and objects(v.path) - before == brought


def test_a_server_dying_under_a_fetch_and_a_waiting_miss_fails_both_clearly(
    home: Home, server: Server, relay: Relay
) -> None:
    v = _vault(home, relay, read_neighbours=100, read_package_bytes=0)
    threads, outs = _second_waits_for_first(v, relay, NEIGHBOUR)
    before = objects(v.path)  # (nothing is written while the answer is held)
    # the server goes away with both reads under way: the held connection cut, no new one
    relay.close()
    relay.drop_all()
    server.stop()
    relay.hold(False)
    for t in threads:
        t.join(GUARD_S)
        assert not t.is_alive()  # no hang
    for out, path in zip(outs, (FIRST, NEIGHBOUR), strict=True):
        exc = out.get("error")
        assert isinstance(exc, BlobNotLocalError), out
        assert (
            exc.code == "blob_not_local" and exc.details["path"] == path and "did not give it" in exc.message
        )
    assert objects(v.path) == before and _leftovers(v) == []
    assert v.workspace("main").read(ELSEWHERE)  # fetched before: reads offline
