"""A warm `proxy exec`'s conversation with a mount daemon that is dying or dies
(cli/execclient.py `talk`). A daemon killed with -9 ends its main thread at once, but while
another of its threads is still in the kernel (a disk write under load) its listening
socket takes connections, which the kernel resets once the last thread is gone: that reset
was reported as avfs's own internal error (CI, tests/contract/test_exec_served.py). A real
process stands in for the daemon: one whose main thread has ended and another still holds
the socket, one that reads part of a request and dies."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator

import pytest

from avfs_git.cli.execclient import NoAnswer, dying, talk

FAKE = textwrap.dedent(
    """
    import ctypes, os, socket, sys, threading, time
    s = socket.socket(socket.AF_UNIX)
    s.bind("\\0" + sys.argv[1])
    s.listen(8)
    how = sys.argv[2]
    if how == "zombie":  # the main thread ends, another holds the socket
        threading.Thread(target=time.sleep, args=(120,)).start()
        print("ready", flush=True)
        ctypes.CDLL(None).syscall(60, 0)  # SYS_exit: this thread only
    print("ready", flush=True)
    conn, _ = s.accept()
    conn.recv(8)  # part of the request, then killed: the rest unread
    os._exit(9)
    """
)


@pytest.fixture
def fake(request: pytest.FixtureRequest) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    name = f"avfs-test-{uuid.uuid4().hex}"
    p = subprocess.Popen([sys.executable, "-c", FAKE, name, request.param], stdout=subprocess.PIPE)
    assert p.stdout is not None and p.stdout.readline() == b"ready\n"
    try:
        yield name, p
    finally:
        p.kill()
        p.wait()
        p.stdout.close()


def _state(pid: int) -> str:
    with open(f"/proc/{pid}/stat", "rb") as fh:
        stat = fh.read()
    return stat[stat.rfind(b")") + 2 :].split()[0].decode()


@pytest.mark.parametrize("fake", ["zombie"], indirect=True)
def test_a_daemon_whose_main_thread_ended_is_not_asked(fake: tuple[str, subprocess.Popen[bytes]]) -> None:
    name, p = fake
    for _ in range(200):  # the main thread's exit is seen at once, but not synchronously
        if _state(p.pid) == "Z":
            break
        os.sched_yield()
    assert _state(p.pid) == "Z"
    assert dying(p.pid) and not dying(os.getpid())
    # the socket still takes a connection; the request is not sent and the caller runs it
    assert talk(name, p.pid, ["--", "true"], True, {}) is None


@pytest.mark.parametrize("fake", ["reads"], indirect=True)
def test_a_daemon_that_dies_with_the_request_is_no_answer_not_an_error(
    fake: tuple[str, subprocess.Popen[bytes]],
) -> None:
    name, p = fake
    with pytest.raises(NoAnswer):  # the envelope says the mount died, its result unknown
        talk(name, p.pid, ["--", "sh", "-c", "x" * 100_000], True, {"X": "y" * 100_000})
    assert p.wait(timeout=30) == 9


def test_a_gone_process_is_dying() -> None:
    p = subprocess.Popen(["true"])
    p.wait()
    assert dying(p.pid) and not dying(os.getpid())


def test_a_process_that_has_begun_to_exit_is_dying() -> None:
    """A killed daemon's command line is empty once its memory is gone, which comes after
    its task is marked exiting (PF_EXITING) and before its state is a zombie: in that
    window it still looked alive and its socket still took the request."""
    from avfs_git.cli.execclient import PF_EXITING, stat_dying

    with open("/proc/self/stat", "rb") as fh:
        line = fh.read()
    assert not stat_dying(line)
    head, _, rest = line.rpartition(b") ")
    fields = rest.split(b" ")
    exiting = head + b") " + b" ".join([*fields[:6], str(int(fields[6]) | PF_EXITING).encode(), *fields[7:]])
    assert stat_dying(exiting)
    assert stat_dying(head + b") Z " + b" ".join(fields[1:]))
    assert stat_dying(b"1 (a) b) R")  # (a name with ") " in it, cut short)
    assert not stat_dying(b"1 (a) b) S 1 2 3 4 5 4194560 7")
