"""A mount daemon killed while a request of its own to its own mount waits (docs/fuse.md
"A killed daemon's connection"): FUSE lets no signal interrupt a request the daemon has
read, so a thread of the daemon waiting in its own mount when the kill came waits for an
answer only the dead threads could give; the process, a zombie, keeps ``/dev/fuse`` open,
and the connection lives on answering nothing (ci47's hang, found by flaky5). The next
avfs command that finds the daemon gone aborts its connection before it touches the mount,
and the daemon ends.

Made to happen here through the product alone: a lazy fork's overlay mount lists its
merged root right after it answers (fuse/stacking.py ``_list_merged``), which waits in the
lower layer for the files' sizes, and a relay on 127.0.0.1 in front of a real `git daemon`
holds the mount's request for them. The daemon is killed while that listing waits; then
the person's command. Real mounts, a real server; a hang is bounded by the test."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from avfs_git.core.vaults.home import Home
from avfs_git.core.vaults.mountinfo import fuse_connection
from avfs_git.core.vaults.vault import Vault
from avfs_git.ops import mounts

from .test_fuse import require_fuse
from .test_lazy import Server
from .test_lazy import server as server
from .test_lazy_settle import Relay, _backend_or_skip

__all__ = ["server"]  # fixture

BOUND_S = 60.0  # a command that takes longer than this hangs (it answers in ~1 s)


def _until(what: Callable[[], bool], timeout_s: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if what():
            return True
        time.sleep(0.05)
    return what()


def _tasks(pid: int) -> dict[int, tuple[str, str]]:
    """{thread id: (state, wait channel)} of process ``pid`` (empty: gone)."""
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return {}
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat", "rb") as fh:
                state = fh.read().rsplit(b")", 1)[1].split()[0].decode()
            with open(f"/proc/{pid}/task/{tid}/wchan", encoding="ascii") as fh:
                out[int(tid)] = (state, fh.read())
        except OSError:
            continue
    return out


def _family(pid: int) -> list[int]:
    """``pid`` and its children."""
    kids = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                if int(fh.read().rsplit(b")", 1)[1].split()[1]) == pid:
                    kids.append(int(entry))
        except (OSError, IndexError, ValueError):
            continue
    return [pid, *kids]


def _a_request_waits(pid: int) -> bool:
    """Whether a thread of daemon ``pid`` (or of a child of it) waits for a FUSE answer."""
    return any(w == "request_wait_answer" for p in _family(pid) for _, w in _tasks(p).values())


def _ended(pid: int) -> bool:
    """Whether process ``pid`` is over: gone, or a zombie with no thread left but its
    leader (what its parent reaps)."""
    tasks = _tasks(pid)
    return not tasks or (list(tasks) == [pid] and tasks[pid][0] == "Z")


def _avfs(home: Home, *args: str, cwd: str | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "avfs_git", "--home", home.path, "--json", *args],
        capture_output=True,
        timeout=BOUND_S,
        cwd=cwd,
        env={**os.environ, "PYTHONSAFEPATH": "1"},  # (nothing imported from the mount)
    )


@pytest.mark.parametrize(
    "command",
    [("mount", "--list"), ("unmount", "p:main"), ("doctor",), ("status",)],
    ids=["list", "unmount", "doctor", "status-in-the-mount"],
)
def test_a_daemon_killed_while_its_own_request_waits_ends_at_the_next_command(
    home: Home, server: Server, tmp_path: Path, command: tuple[str, ...]
) -> None:
    _backend_or_skip("overlay")
    relay = Relay(server.port)
    pid = 0
    try:
        home.clone_vault(f"git://127.0.0.1:{relay.port}/proj.git", "p", lazy=True)
        v = home.vault("p")
        relay.arm()  # the mount's request for sizes held: its first listing waits on them
        info = mounts.mount(home, v, "main", None, backend="overlay")
        pid = info.pid
        lower = os.path.join(v.ws_dir("main"), "lower")
        assert fuse_connection(lower, "avfs:p:main") is not None
        assert _until(lambda: _a_request_waits(pid)), _tasks(pid)
        os.kill(pid, signal.SIGKILL)
        try:
            # (`status` run in the mount: the fork it acts on is the mount's)
            done = _avfs(home, *command, cwd=info.mountpoint if command == ("status",) else None)
        except subprocess.TimeoutExpired:
            pytest.fail(f"`avfs {' '.join(command)}` hung: {_tasks(pid)}")
        doc = json.loads(done.stdout)  # one document
        assert doc["kind"] != "error", doc
        # the killed daemon ends (its thread that waited in its own mount too)
        assert _until(lambda: _ended(pid)), (command, _tasks(pid))
        if command == ("doctor",):  # which changes nothing else: it says what is left
            found = {f["code"] for f in doc["findings"]}
            assert {"dead_mount_registry", "dead_mountpoint"} <= found, doc["findings"]
        # and nothing of the mount is left for a request to wait on
        assert mounts.list_mounts(home) == []
        assert _until(lambda: fuse_connection(lower, "avfs:p:main") is None), command
    finally:
        relay.close()
        if pid:
            mounts.unmount(home, home.vault("p"), "main", lazy=True)


def test_an_aborted_connection_answers_every_waiting_request(home: Home, vault: Vault) -> None:
    """What the commands above do to a dead daemon's mount, on a live one that answers
    nothing (stopped): a request waiting there ends (ECONNABORTED) once the connection is
    aborted, found by the mount's device numbers (its mount point is never looked at)."""
    require_fuse()
    info = mounts.mount(home, vault, "main", None, backend="fuse")
    got: list[int] = []

    def ask() -> None:
        try:
            os.statvfs(info.mountpoint)  # (always a request: no cache answers it)
            got.append(0)
        except OSError as exc:
            got.append(exc.errno or -1)

    asking = threading.Thread(target=ask, daemon=True)
    try:
        os.kill(info.pid, signal.SIGSTOP)
        asking.start()
        assert fuse_connection(info.mountpoint, "avfs:v:elsewhere") is None  # not that mount's
        assert mounts.abort_dead(info.mountpoint, "avfs:v:main")
        asking.join(BOUND_S)
        # (ECONNABORTED for a request the abort found waiting, ENOTCONN for one sent after it)
        assert not asking.is_alive() and got in ([errno.ENOTCONN], [errno.ECONNABORTED]), got
        with pytest.raises(OSError) as exc:
            os.stat(os.path.join(info.mountpoint, "README.md"))
        assert exc.value.errno in (errno.ENOTCONN, errno.ECONNABORTED)
    finally:
        os.kill(info.pid, signal.SIGCONT)  # its request loop ends with the connection
        mounts.unmount(home, vault, "main", lazy=True)
    assert _until(lambda: _ended(info.pid))
    assert mounts.list_mounts(home) == []


@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_a_command_from_another_pid_namespace_leaves_a_live_mount(
    home: Home, vault: Vault, backend: str
) -> None:
    """review45 C (the fortieth round): `avfs --json status` run in the person's mount from
    another PID namespace (a container or a sandbox sharing the home: `unshare -Urpf`) saw
    the daemon's pid as gone, aborted the live mount's FUSE connection, unmounted it and
    removed its record. A daemon of another namespace is never judged dead now."""
    _backend_or_skip(backend)
    info = mounts.mount(home, vault, "main", None, backend=backend)
    mp = info.mountpoint
    try:
        with open(os.path.join(mp, "uncommitted.txt"), "w") as fh:
            fh.write("the person's work\n")
        argv = [sys.executable, "-m", "avfs_git", "--home", home.path, "--json", "status"]
        r = subprocess.run(
            ["unshare", "-Urpf", "--mount-proc", *argv], cwd=mp, capture_output=True, timeout=BOUND_S
        )
        assert r.stdout.count(b"\n") == 1, (r.returncode, r.stdout, r.stderr)  # (one document)
        assert os.path.ismount(mp) and mounts.list_mounts(home) != []
        with open(os.path.join(mp, "uncommitted.txt")) as fh:
            assert fh.read() == "the person's work\n"
        assert [m.pid for m in mounts.list_mounts(home)] == [info.pid]
    finally:
        mounts.unmount(home, vault, "main")
