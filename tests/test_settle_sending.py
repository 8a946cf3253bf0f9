"""A lazy fork's mount makes its index only once the whole tree's request for sizes has
gone out (fuse/settle.py ``SENDING_S``): the gate waits for the server's answer, and the
index's pass over the entries held the interpreter the request's ids were read on. The
mount's workspace and index writer are stand-ins here: what is tested is the order."""

from __future__ import annotations

import threading
from collections.abc import Callable

from avfs_git.fuse.settle import Settle


class _Listed:
    def drop(self) -> None:
        pass


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
        then: Callable[[str], None] | None = None,
        sending: Callable[[], None] | None = None,
    ) -> None:
        """(The workspace's, :meth:`.Workspace.ask_sizes`, with ``then`` not called: it
        lists the tree, which a stand-in store does not hold.)"""
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
