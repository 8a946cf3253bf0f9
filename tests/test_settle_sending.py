"""A lazy fork's mount makes its index only once the whole tree's request for sizes has
gone out (fuse/settle.py ``SENDING_S``): the gate waits for the server's answer, and the
index's pass over the entries held the interpreter the request's ids were read on; that
request goes out before the mount is announced, and its answer is read after
(``Settle._announced``). The mount's workspace and index writer are stand-ins here: what
is tested is the order."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from avfs_git.fuse.settle import Settle


class _Listed:
    def drop(self) -> None:
        pass

    def prelist(self, tree: str, out: Callable[[], bytes | None]) -> None:
        pass  # (a stand-in store lists nothing)


class _Store:
    listed = _Listed()


class _Workspace:
    """Asks its sizes as a mount's does, but holds the whole tree's request until
    ``release`` is set (then says it goes out)."""

    store = _Store()

    def __init__(self, events: list[str], made: threading.Event) -> None:
        self.events = events
        self.release = threading.Event()
        self.made = made  # (the answer comes after the index is under way, as the server's does)

    def ask_sizes(
        self,
        asking: Callable[[], None],
        first: Callable[[str], None] | None = None,
        then: Callable[[str], None] | None = None,
        sending: Callable[[], None] | None = None,
        reading: Callable[[], None] | None = None,
    ) -> None:
        """(The workspace's, :meth:`.Workspace.ask_sizes`, with ``first``, ``then`` and
        ``reading`` not called: they list the tree, which a stand-in store does not hold.)"""
        asking()
        assert self.release.wait(30)
        self.events.append("sending")
        assert sending is not None
        sending()
        assert self.made.wait(30)
        self.events.append("answered")


def test_the_index_is_made_once_the_whole_tree_s_request_for_sizes_goes_out() -> None:
    """git waits at the gate (the index is wanted at once), the mount is announced, the
    whole tree's request is held: no index yet; once it goes out, the index is made (and
    the gate opens)."""
    events: list[str] = []
    made = threading.Event()
    ws = _Workspace(events, made)

    def write_index(sizes: Callable[[], object]) -> bool:
        events.append("index")
        made.set()
        sizes()
        return True

    settle = Settle(ws, write_index, quiet_s=0.0)
    thread = settle.start()
    settle.stacked.set()
    waiter = threading.Thread(target=settle.wait, daemon=True)  # git at the gate
    waiter.start()
    try:
        assert not made.wait(0.5)  # (held: the index waits for the request)
        assert events == []
    finally:
        ws.release.set()
    assert made.wait(30)
    waiter.join(30)
    assert settle.over
    assert events == ["sending", "index", "answered"]
    thread.join(30)


class _Vault:
    def __init__(self, state_dir: str) -> None:
        self.state_dir = state_dir


class _SentEarly:
    """Asks its sizes as a mount's does over ``git://``: the tree listed (``then``), the
    whole tree's request sent, then ``reading()`` before its answer is read."""

    store = _Store()

    def __init__(self, events: list[str], state_dir: str) -> None:
        self.events = events
        self.vault = _Vault(state_dir)

    def ask_sizes(
        self,
        asking: Callable[[], None],
        first: Callable[[str], None] | None = None,
        then: Callable[[str], None] | None = None,
        sending: Callable[[], None] | None = None,
        reading: Callable[[], None] | None = None,
    ) -> None:
        asking()
        assert then is not None and sending is not None and reading is not None
        then("4b825dc642cb6eb9a060e54bf8d69288fbe4904b")
        sending()
        self.events.append("sent")
        reading()
        self.events.append("read")


def test_the_whole_tree_s_request_goes_out_before_the_announcement_its_answer_is_read_after(
    tmp_path: Path,
) -> None:
    """The whole tree's request for sizes goes out while the mount is not announced yet (the
    server answers while the mount comes up); reading its answer waits for the announcement
    (its parse holds the interpreter the caller's mount needs), then goes on."""
    events: list[str] = []
    ws = _SentEarly(events, str(tmp_path))
    settle = Settle(ws, lambda: True, beside=False, quiet_s=0.0)
    thread = settle.start()
    try:
        deadline = time.monotonic() + 30
        while "sent" not in events and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.3)
        assert events == ["sent"]  # (the answer not read: the mount is not announced)
        settle.stacked.set()
        deadline = time.monotonic() + 30
        while "read" not in events and time.monotonic() < deadline:
            time.sleep(0.01)
        assert events == ["sent", "read"]
    finally:
        settle.stacked.set()
        settle.close()
        thread.join(30)
