"""The resident server's spare (avfs_git/cli/spare.py) copies ahead only the pages calls
write: a call's process reports the pages it wrote (``/proc/self/pagemap``), the next spare
copies them (``MADV_POPULATE_WRITE``) and its call then writes them without a fault, while
the pages no call wrote stay shared. Real forks of this process; the pages are a buffer's,
written by the "call"."""

from __future__ import annotations

import ctypes
import marshal
import mmap
import os
import resource
import signal
import socket
import time
from collections.abc import Callable
from typing import Any

import pytest

from avfs_git.cli import spare

PAGES = 1024  # the buffer: 4 MiB, present in this process (written once)
HOT = list(range(0, PAGES, 16))  # the pages each call writes: 64 of them


@pytest.fixture(scope="module")
def buffer() -> Any:
    buf = ctypes.create_string_buffer(PAGES * spare.PAGE)
    ctypes.memset(buf, 1, PAGES * spare.PAGE)
    return buf


def _first_page(buf: Any) -> int:
    return -(-ctypes.addressof(buf) // spare.PAGE)  # the first whole page in it


def _call(buf: Any) -> Callable[[socket.socket, dict[str, Any], list[int], spare.Report], None]:
    """A call's process as the server's (callproc.child) in what matters here: it writes
    its pages, answers with the faults that took, and reports."""
    first = _first_page(buf)

    def run(conn: socket.socket, req: dict[str, Any], fds: list[int], report: spare.Report) -> None:
        fd = report.keep()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for p in HOT:
            ctypes.memset((first + p) * spare.PAGE, 2, 1)
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
        conn.sendall(marshal.dumps(faults))
        conn.close()
        report.send(fd)
        os._exit(0)

    return run


def _copied(pid: int, pages: list[int]) -> list[int]:
    """Which of ``pages`` process ``pid`` holds alone (its pagemap: "exclusively mapped")."""
    fd = os.open(f"/proc/{pid}/pagemap", os.O_RDONLY)
    try:
        return [p for p in pages if int.from_bytes(os.pread(fd, 8, p * 8), "little") >> 56 & 1]
    finally:
        os.close(fd)


def _serve(s: spare.Spare) -> tuple[int, spare.Written | None]:
    """Hand ``s`` a call; the faults its writes took and what it reported."""
    mine, theirs = socket.socketpair()
    fds = [os.open(os.devnull, os.O_RDWR) for _ in range(3)]
    try:
        assert s.hand(theirs, {"argv": []}, fds)
        theirs.close()
        faults = marshal.loads(mine.recv(64))
        os.waitpid(s.pid, 0)
        os.close(s.pidfd)
        return faults, spare.read_report(s.ctl)
    finally:
        mine.close()
        for fd in fds:
            os.close(fd)


def _in(runs: list[spare.Run], page: int) -> bool:
    return any(lo <= page < hi for lo, hi in runs)


@pytest.mark.parametrize("kept", [False, True], ids=["own-layout", "server-layout"])
def test_a_spare_copies_the_pages_calls_wrote_and_not_the_rest(buffer: Any, kept: bool) -> None:
    """(with ``kept``, as the server forks: the memory's runs and the known pages clipped
    to them made in this process, a :class:`spare.Layout` kept between forks)"""
    first = _first_page(buffer)
    hot = [first + p for p in HOT]
    cold = [first + p for p in range(PAGES - 1) if p not in HOT]
    layout = spare.Layout() if kept else None
    # the first spare knows nothing: it copies nothing, and its call faults on every page
    s = spare.fork(_call(buffer), (signal.SIGINT,), spare.Written([]), layout)
    assert s is not None
    time.sleep(0.5)
    assert _copied(s.pid, hot) == []
    faults, learned = _serve(s)
    assert faults >= len(HOT)
    # it reported them, and hardly any of the pages it did not write
    assert learned is not None and learned.runs is not None
    assert all(_in(learned.runs, p) for p in hot)
    assert sum(_in(learned.runs, p) for p in cold) < len(cold) // 10
    # the next spare copies them ahead (and not the rest): its call writes them without
    # a fault
    s = spare.fork(_call(buffer), (signal.SIGINT,), learned, layout)
    assert s is not None
    end = time.monotonic() + 60
    while len(_copied(s.pid, hot)) < len(hot):
        assert time.monotonic() < end, "the spare never copied the pages"
        time.sleep(0.02)
    assert len(_copied(s.pid, cold)) < len(cold) // 10
    faults, _again = _serve(s)
    assert faults < len(HOT) // 4, faults


def test_a_call_not_asked_to_look_reports_only_its_answer_and_one_that_died_nothing(buffer: Any) -> None:
    """A call's process looks for new pages only when the server asks (``Written.scan``:
    while calls still find some, then one call in ``SCAN_EVERY``); else its report says
    only that it answered."""
    s = spare.fork(_call(buffer), (signal.SIGINT,), spare.Written([]))
    assert s is not None
    learned = _serve(s)[1]
    assert learned is not None and learned.scan
    learned.scan = False
    s = spare.fork(_call(buffer), (signal.SIGINT,), learned)
    assert s is not None
    mine, theirs = socket.socketpair()
    fds = [os.open(os.devnull, os.O_RDWR) for _ in range(3)]
    assert s.hand(theirs, {"argv": []}, fds)
    assert marshal.loads(mine.recv(64)) >= 0
    os.waitpid(s.pid, 0)
    s.ctl.setblocking(False)
    got = spare.recv_framed(s.ctl, 0)
    assert got is not None and marshal.loads(got[0]) is False  # answered, nothing more
    for fd in (*fds, s.pidfd):
        os.close(fd)
    for sock in (mine, theirs, s.ctl):
        sock.close()


def test_a_call_that_died_before_its_report_reports_nothing() -> None:
    """(the server then goes on with what it knew; it reaps the process as ever)"""
    s = spare.fork(lambda *_a: os._exit(9), (signal.SIGINT,), spare.Written([(1, 2)]))
    assert s is not None
    mine, theirs = socket.socketpair()
    fds = [os.open(os.devnull, os.O_RDWR) for _ in range(3)]
    assert s.hand(theirs, {"argv": []}, fds)
    _, status = os.waitpid(s.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 9
    assert spare.read_report(s.ctl) is None
    for fd in (*fds, s.pidfd):
        os.close(fd)
    mine.close()
    theirs.close()


def test_a_report_that_cannot_see_its_pages_asks_for_everything() -> None:
    """Where ``pagemap`` cannot be read, the report says so, and the server's spares copy
    all of their memory again (as before they learned)."""
    mine, theirs = socket.socketpair()
    report = spare.Report(theirs, spare.Written([]), regions=[(1 << 40, (1 << 40) + 1)])
    fd = report.keep()
    # a region past what pagemap maps: the read comes back short, as it does where the
    # file cannot be read
    report.regions = [(1 << 52, (1 << 52) + 4)]
    report.send(fd)
    os.close(fd)
    got = spare.read_report(mine)
    assert got is not None and got.runs is None


def test_runs_merged_clipped_and_stepped() -> None:
    assert spare.union([(1, 3), (10, 12)], [(2, 5), (12, 13), (20, 21)]) == [(1, 5), (10, 13), (20, 21)]
    assert spare.clip([(0, 5), (8, 20), (30, 40)], [(2, 10), (15, 35)]) == [
        (2, 5),
        (8, 10),
        (15, 20),
        (30, 35),
    ]
    steps = list(spare._steps([(0, 600), (700, 710)], 256))
    assert steps == [[(0, 256)], [(256, 512)], [(512, 600), (700, 710)]]
    many = [(i * 2, i * 2 + 1) for i in range(3000)]
    assert all(len(s) <= spare.MAX_IOV for s in spare._steps(many, 1 << 20))
    assert sum(len(s) for s in spare._steps(many, 1 << 20)) == 3000


def test_the_layout_is_kept_until_the_known_pages_or_the_address_space_change() -> None:
    """The server's :class:`spare.Layout`: its memory's runs and the known pages clipped to
    them, made once and reused by every fork while neither changes; a new mapping (the
    address space grown) or another written set makes them again."""
    layout = spare.Layout()
    mine = spare.regions()
    lo = max(mine, key=lambda r: r[1] - r[0])[0]  # (the largest region: a few pages at least)
    known = spare.Written([(lo, lo + 2), (mine[-1][1] + 10, mine[-1][1] + 20)])
    first = layout.of(known)
    assert first.mine == spare.regions()
    assert first.runs == [(lo, lo + 2)]  # (the run outside every region dropped)
    kept_mine, kept_runs = first.mine, first.runs
    again = layout.of(known)
    assert again.mine is kept_mine and again.runs is kept_runs  # not made again
    other = spare.Written([(lo, lo + 1)])
    assert layout.of(other).runs == [(lo, lo + 1)] and layout.mine is kept_mine
    assert layout.of(spare.Written(None)).runs is None  # unknown: the spare copies everything
    # a new private mapping: the address space grew, the runs are read again and hold it
    new = mmap.mmap(-1, 64 * spare.PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    try:
        new.write(b"x" * len(new))
        base = ctypes.addressof(ctypes.c_char.from_buffer(new)) // spare.PAGE
        grown = layout.of(other)
        assert grown.mine is not kept_mine
        assert any(a <= base and base + 64 <= b for a, b in grown.mine)
    finally:
        new.close()


def test_a_call_tells_the_server_only_of_more_than_a_few_new_pages() -> None:
    """A call's new pages are news while the server knows none, and then past
    1/``NEW_MIN`` of the known ones: a few (the server's own allocations between calls, a
    call's stray pages) do not keep every later call looking."""
    known = spare.Written([(0, 3200)])
    assert not spare.news_in([(0, 3200)], known)
    assert not spare.news_in([(0, 3200), (5000, 5000 + 3200 // spare.NEW_MIN)], known)
    assert spare.news_in([(0, 3200), (5000, 5001 + 3200 // spare.NEW_MIN)], known)
    assert spare.news_in([(7, 8)], spare.Written([]))
    assert not spare.news_in([], spare.Written([]))
