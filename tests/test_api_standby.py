"""`exec_in` (and so MCP's `exec`) keeps a sandbox ready for its process' next call in a
mounted fork, as the mount's daemon does for the CLI (proxy/standby.py, ``for_api``):
the next call starts in it; what the command sees there is what it sees in a sandbox set
up for it; a call with stdin sets up its own; an unmount ends the ready one. Real mounts,
real bubblewrap; the ready sandbox is found as this process' child."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import avfs_git
from avfs_git.core.vaults.home import Home
from avfs_git.core.vaults.vault import Vault
from avfs_git.ops import mounts
from avfs_git.proxy import standby

from .test_confine import _need_bwrap
from .test_fuse import require_fuse


def _ready_pids() -> set[int]:
    """This process' children that are a sandbox waiting for its command."""
    out = set()
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat", "rb") as fh:
                ppid = int(fh.read().rsplit(b")", 1)[1].split()[1])
            with open(f"/proc/{d}/cmdline", "rb") as fh:
                cmd = fh.read()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == os.getpid() and b"bwrap" in cmd and standby.PERL.encode() in cmd:
            out.add(int(d))
    return out


def _until(cond: Callable[[], bool], timeout: float = 30) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.02)


@pytest.fixture
def mounted(home: Home, vault: Vault) -> Iterator[Vault]:
    _need_bwrap()
    require_fuse()
    if not standby.available():
        pytest.fail(f"{standby.PERL} is in Debian's essential packages: sandboxes are kept ready with it")
    vault.workspace("main").write("sub/a.txt", b"one\n")
    mounts.mount(home, vault, "main", None)
    try:
        yield vault
    finally:
        mounts.unmount(home, vault, "main", lazy=True)


PROBE = "pwd; id; echo $HOME; env | sort; ls -a /; ls -a /tmp; cat a.txt; grep -c . /proc/self/mountinfo"


def test_the_next_call_starts_in_the_ready_sandbox_and_sees_the_same(mounted: Vault) -> None:
    ws = mounted.workspace("main")
    first = avfs_git.exec_in(ws, ["sh", "-c", PROBE], cwd="sub", env={"X": "1"})
    assert first.success and first.confinement is not None and first.confinement.kind == "bwrap", first
    _until(lambda: len(_ready_pids()) == 1)
    (ready,) = _ready_pids()
    second = avfs_git.exec_in(ws, ["sh", "-c", PROBE], cwd="sub", env={"X": "1"})
    assert second.success, second
    assert ready not in _ready_pids()  # taken: the command ran in it
    assert first.result is not None and second.result is not None
    assert second.result.stdout == first.result.stdout  # what the command sees is the same
    _until(lambda: len(_ready_pids()) == 1)  # and the next one made ready
    # a command that writes: its change is recorded and committed as before
    third = avfs_git.exec_in(ws, ["sh", "-c", "echo two > b.txt"])
    assert third.success and third.commit is not None
    assert mounted.workspace("main").read("b.txt") == b"two\n"


def test_a_call_with_stdin_sets_up_its_own(mounted: Vault) -> None:
    ws = mounted.workspace("main")
    assert avfs_git.exec_in(ws, ["true"]).success
    _until(lambda: len(_ready_pids()) == 1)
    (ready,) = _ready_pids()
    got = avfs_git.exec_in(ws, ["cat"], stdin=b"fed\n")
    assert got.success and got.result is not None and got.result.stdout == "fed\n"
    assert ready in _ready_pids()  # still waiting for a call that fits it


def test_an_unmount_ends_the_ready_sandbox(home: Home, mounted: Vault) -> None:
    ws = mounted.workspace("main")
    assert avfs_git.exec_in(ws, ["true"]).success
    _until(lambda: len(_ready_pids()) == 1)
    mounts.unmount(home, mounted, "main")
    _until(lambda: not _ready_pids())  # its bind would have kept the mount's file system alive
    assert mounts.check(mounted, "main") is None


def test_a_command_in_a_ready_sandbox_outlives_the_unmount_of_its_fork(home: Home, mounted: Vault) -> None:
    """The API's ready sandboxes are made by a thread that ends once its fork's mount goes,
    and a sandbox dies with the thread that started it (``--die-with-parent``: the parent
    thread's death): a command running in one when the fork was unmounted (lazily) was
    killed (137). Its thread now waits for it; the command ends as it would have in a
    sandbox of its own (its bind of the mount stays until then)."""
    ws = mounted.workspace("main")
    assert avfs_git.exec_in(ws, ["true"]).success
    _until(lambda: len(_ready_pids()) == 1)
    got = {}

    def run() -> None:
        got["r"] = avfs_git.exec_in(ws, ["sh", "-c", "echo started > started.txt; sleep 3; echo done"])

    t = threading.Thread(target=run)
    t.start()
    try:
        _until(lambda: ws.exists("started.txt"))
        mounts.unmount(home, mounted, "main", lazy=True)
    finally:
        t.join()
    r = got["r"]
    assert (r.exit_code, r.result.stdout if r.result else None) == (0, "done\n"), r


def _standby_threads() -> int:
    return sum(t.name == "avfs-exec-standby" for t in threading.enumerate())


def _mount_tables() -> int:
    """This process' descriptors open on its mount table (a standby thread holds one)."""
    table = os.path.realpath("/proc/self/mounts")
    n = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            n += os.readlink(f"/proc/self/fd/{fd}") == table
        except OSError:
            pass
    return n


def test_the_apis_standby_ends_with_its_mount(home: Home, mounted: Vault) -> None:
    """An agent runtime runs commands in fork after fork, each mount released when done
    (idle, deleted, unmounted): no thread, pipe or mount table is kept for a fork whose
    mount went (one thread and three descriptors per fork ever used, before), and the
    fork's next call gets a ready sandbox again."""
    ws = mounted.workspace("main")
    threads, tables = _standby_threads(), _mount_tables()
    assert avfs_git.exec_in(ws, ["true"]).success
    _until(lambda: len(_ready_pids()) == 1)
    assert _standby_threads() == threads + 1
    kept = standby.for_api(mounted.state_dir, "main")
    mounts.unmount(home, mounted, "main")
    _until(lambda: not _ready_pids())
    _until(lambda: _standby_threads() == threads)
    assert _mount_tables() == tables
    assert kept is not None and kept.closed
    assert (mounted.state_dir, "main") not in standby._api
    # the next call mounts the fork again (kept warm) and keeps a sandbox ready anew
    assert avfs_git.exec_in(ws, ["true"]).success
    _until(lambda: len(_ready_pids()) == 1)
    assert standby.for_api(mounted.state_dir, "main") is not kept
    mounts.unmount(home, mounted, "main")
    _until(lambda: _standby_threads() == threads)


def test_forks_keep_their_own_and_a_forked_child_none(tmp_path: Path) -> None:
    a, b = standby.for_api(str(tmp_path / "a"), "main"), standby.for_api(str(tmp_path / "b"), "main")
    assert a is not None and b is not None and a is not b
    assert standby.for_api(str(tmp_path / "a"), "main") is a
    assert not a.daemon  # the API's: a call still starts the mount when there is none
    pid = os.fork()
    if pid == 0:  # pragma: no cover - (the child)
        os._exit(0 if standby.for_api(str(tmp_path / "a"), "main") is not a else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
