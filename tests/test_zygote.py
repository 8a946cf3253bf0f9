"""A process's mount daemons forked from its zygote (ops/warmstart.py, fuse/zygote.py,
fuse/forked.py): once the first mount has started it, a mount gets a daemon forked from a
warm process, not its own interpreter, which serves, is known by its command line (home,
vault, fork) and holds nothing of the caller's; a zygote killed means a spawned daemon and a
new zygote; one whose code changed, or asked for a daemon its start-up environment would
not start as a new process does, declines; a caller killed leaves no zygote; and
``AVFS_ZYGOTE=off`` (``Settings.zygote``) spawns every daemon. Real mounts, real processes."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from avfs_git.core.settings import Settings
from avfs_git.core.vaults import registry
from avfs_git.core.vaults.daemonproc import DAEMON_NAME
from avfs_git.core.vaults.home import Home
from avfs_git.core.vaults.vault import Vault
from avfs_git.mount.side import MOUNT_SIDE
from avfs_git.ops import daemonstart, framed, mounts, warmstart
from avfs_git.ops.mounts import MountInfo
from avfs_git.policy.pathsource import POLICY_PATHS

from .daemons import of_home
from .test_overlay import require_overlay

WAIT_S = 60.0


def _wait_for(cond: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def _gone(pid: int) -> bool:
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:  # (our child: collected here)
            return True
    except ChildProcessError:
        pass
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state in ("Z", "X")


def _ready() -> warmstart.Zygote:
    """This process's zygote, once it is ready."""
    _wait_for(lambda: (z := warmstart.current()) is not None and z.ready(), "the zygote to be ready")
    z = warmstart.current()
    assert z is not None
    return z


def _argv(pid: int) -> list[bytes]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")


def _ppid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _forked(info: MountInfo) -> bool:
    """Whether the daemon of ``info`` was forked from a zygote (else spawned by us)."""
    argv = _argv(info.pid)
    forked = argv[-1] == b"--forked"
    assert (_ppid(info.pid) == os.getpid()) is not forked, argv  # a spawned one is our child
    return forked


@pytest.fixture
def fresh() -> Iterator[None]:
    """No zygote in this process as the test starts (the next mount spawns and starts one),
    and none left from it."""
    pid = warmstart.stop()
    if pid is not None:
        _wait_for(lambda: _gone(pid), "the old zygote to end")
    yield
    pid = warmstart.stop()
    if pid is not None:
        _wait_for(lambda: _gone(pid), "the test's zygote to end")


@pytest.fixture
def forks(vault: Vault) -> Vault:
    vault.workspace("main").write("a.txt", b"one\n")
    for name in ("f1", "f2", "f3"):
        vault.create_fork("main", name)
    return vault


def _mount(home: Home, vault: Vault, fork: str, backend: str = "auto") -> MountInfo:
    info = mounts.mount(home, vault, fork, backend=backend)
    assert Path(info.mountpoint, "a.txt").read_bytes() == b"one\n"
    return info


@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_a_second_mount_gets_its_daemon_forked_from_the_zygote(
    fresh: None, home: Home, forks: Vault, backend: str
) -> None:
    if backend == "overlay":
        require_overlay()
    first = _mount(home, forks, "f1", backend)
    assert not _forked(first)  # spawned: no zygote yet, and the mount did not wait for one
    z = _ready()
    assert _ppid(z.pid) == os.getpid() and Path(f"/proc/{z.pid}/comm").read_text().strip() == "avfs-zygote"
    assert _argv(z.pid) == [os.fsencode(sys.executable), b"-P", b"-m", b"avfs_git.fuse.zygote"]
    second = _mount(home, forks, "f2", backend)
    assert _forked(second) and second.backend == first.backend
    pid = second.pid
    # a mount daemon by its name and by its command line, a spawned one's but for --forked
    assert Path(f"/proc/{pid}/comm").read_text().strip() == DAEMON_NAME
    argv = _argv(pid)
    assert argv[:4] == [os.fsencode(sys.executable), b"-P", b"-m", b"avfs_git.fuse.daemon"]
    i = argv.index(b"--home")
    assert argv[i : i + 6] == [b"--home", home.path.encode(), b"--vault", b"v", b"--fork", b"f2"]
    assert registry.is_mount_daemon(pid) and registry.daemon_alive(pid, "v", home.path, time.time())
    assert not registry.daemon_alive(pid, "other", home.path, None)  # (its vault is known)
    assert sorted(of_home(home.path)) == sorted([first.pid, pid])
    assert not registry.is_mount_daemon(z.pid)
    # it serves: writes go to the fork, and it unmounts
    Path(second.mountpoint, "b.txt").write_bytes(b"two\n")
    mounts.unmount(home, forks, "f2")
    assert forks.workspace("f2").read("b.txt") == b"two\n"
    _wait_for(lambda: _gone(pid), "the forked daemon to end")
    mounts.unmount(home, forks, "f1")
    third = _mount(home, forks, "f3", backend)  # (and again: one zygote, many daemons)
    assert _forked(third) and warmstart.current() is z
    mounts.unmount(home, forks, "f3")


def test_a_killed_zygote_means_a_spawned_daemon_and_a_new_zygote(
    fresh: None, home: Home, forks: Vault
) -> None:
    _mount(home, forks, "f1")
    z = _ready()
    os.kill(z.pid, signal.SIGKILL)
    _wait_for(lambda: _gone(z.pid), "the zygote to die")
    info = _mount(home, forks, "f2")  # as before: spawned, and it serves
    assert not _forked(info) and z.state == "gone"
    again = _ready()
    assert again is not z and again.pid != z.pid
    assert _forked(_mount(home, forks, "f3"))
    for fork in ("f1", "f2", "f3"):
        mounts.unmount(home, forks, fork)


def test_a_zygote_declines_another_avfs_and_ends(
    fresh: None, home: Home, forks: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A caller whose code is not the zygote's (its stamp: where warmstart asks it) gets
    "another avfs": the daemon is spawned, the zygote ends, the next mount starts another."""
    _mount(home, forks, "f1")
    z = _ready()
    asked: list[str] = []

    def other() -> str:
        asked.append("stamp")
        return "another interpreter and package"

    monkeypatch.setattr(warmstart, "code_stamp", other)
    info = _mount(home, forks, "f2")
    assert asked == ["stamp"] and not _forked(info)
    _wait_for(lambda: _gone(z.pid), "the zygote to end")
    assert z.state == "gone"
    monkeypatch.undo()
    _ready()
    assert _forked(_mount(home, forks, "f3"))
    for fork in ("f1", "f2", "f3"):
        mounts.unmount(home, forks, fork)


def _zygote_of(pkg_root: Path, env: dict[str, str]) -> tuple[int, socket.socket]:
    """A zygote of the package under ``pkg_root``, started by hand as warmstart starts one:
    (its pid, our end), once it is ready."""
    mine, theirs = socket.socketpair()
    os.set_inheritable(theirs.fileno(), True)
    try:
        pid = os.posix_spawn(
            sys.executable,
            [sys.executable, "-P", "-m", "avfs_git.fuse.zygote", "--room", "." * warmstart.ROOM],
            {**env, "PYTHONPATH": str(pkg_root)},
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_DUP2, theirs.fileno(), warmstart.ZYGOTE_FD),
            ],
        )
    finally:
        theirs.close()
    mine.settimeout(WAIT_S)
    assert mine.recv(1) == warmstart.READY
    return pid, mine


def _exit_code(pid: int) -> int:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    raise AssertionError("the zygote did not end")


def _ask(sock: socket.socket, stamp: str, env: dict[str, str], tmp: Path) -> object:
    """A request the zygote declines before it forks (its mount point is not one)."""
    r, w = os.pipe()
    log = os.open(tmp / "log", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        args = [
            "--home",
            str(tmp / "nohome"),
            "--vault",
            "v",
            "--fork",
            "main",
            "--mountpoint",
            str(tmp / "nomp"),
        ]
        msg = {"v": 1, "stamp": stamp, "daemon": args, "env": env, "umask": 0o022}
        framed.send_framed(sock, msg, (w, log))
        got = framed.recv_framed(sock, 0)
        assert got is not None
        import marshal

        return marshal.loads(got[0])
    finally:
        for fd in (r, w, log):
            os.close(fd)


def test_a_zygote_whose_code_changed_on_disk_declines_and_ends(tmp_path: Path) -> None:
    """A copy of the package, its zygote: a request whose start-up environment is not the
    zygote's is declined and it stays; once a module of its code changed on disk, the next
    request is declined as "another avfs" and it ends."""
    import avfs_git

    root = tmp_path / "copy"
    # its bytecode with it, times kept: the zygote of the copy compiles none of its modules
    # (the zygote's watch passes over __pycache__; the changed module's no longer matches)
    shutil.copytree(os.path.dirname(avfs_git.__file__), root / "avfs_git")
    env = warmstart.start_vars({**os.environ, "FUSE_LIBRARY_NAME": "fuse3"})
    pid, sock = _zygote_of(root, env)
    try:
        stamp = f"{sys.executable} {sys.version_info[:3]} {root / 'avfs_git'}"
        started = {**env, "PYTHONPATH": str(root)}
        assert _ask(sock, stamp, {**started, "LANG": "xx_XX.UTF-8"}, tmp_path) == {
            "fallback": "start environment"
        }
        assert _ask(sock, stamp + "x", started, tmp_path) == {"fallback": "another avfs"}
        assert _exit_code(pid) == 0  # (ended: its asker's code is not its own)
    finally:
        sock.close()
    pid, sock = _zygote_of(root, env)
    try:
        with (root / "avfs_git" / "fuse" / "daemon.py").open("a") as fh:
            fh.write("# changed\n")
        assert _ask(sock, stamp, started, tmp_path) == {"fallback": "another avfs"}
        assert _exit_code(pid) == 0
    finally:
        sock.close()


def _fds(pid: int) -> set[str]:
    out = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            out.add(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            continue
    return out


def test_the_caller_s_fds_environment_threads_and_cwd_stay_its_own(
    fresh: None, home: Home, forks: Vault, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The caller opens an inheritable file, sets a variable (and a token its home's
    settings do not give daemons), runs a thread and stands in a directory of its own as
    its zygote starts and as it mounts: its forked daemon has none of them, nor has the
    zygote."""
    mine = tmp_path / "the-caller-s-file"
    fd = os.open(mine, os.O_RDWR | os.O_CREAT, 0o600)
    os.set_inheritable(fd, True)
    monkeypatch.setenv("AVFS_ZYGOTE_TEST_MARK", "the caller's")
    monkeypatch.setenv("AVFS_GIT_TOKEN", "the caller's secret")
    here = tmp_path / "caller-cwd"
    here.mkdir()
    monkeypatch.chdir(here)
    stop = threading.Event()
    waiter = threading.Thread(target=stop.wait, name="the caller's thread")
    waiter.start()
    try:
        _mount(home, forks, "f1")
        z = _ready()
        info = _mount(home, forks, "f2")
        assert _forked(info)
        for pid in (z.pid, info.pid):
            environ = Path(f"/proc/{pid}/environ").read_bytes()
            assert b"AVFS_ZYGOTE_TEST_MARK" not in environ and b"secret" not in environ, pid
            assert str(mine) not in _fds(pid), pid
            assert os.readlink(f"/proc/{pid}/cwd") == "/"
        assert len(os.listdir(f"/proc/{z.pid}/task")) == 1  # the zygote holds no thread
        assert len(os.listdir(f"/proc/{os.getpid()}/task")) >= 2
        # the daemon's fds: /dev/null, its log on 1 and 2, what it opened itself
        assert os.readlink(f"/proc/{info.pid}/fd/0") == os.devnull
        assert os.readlink(f"/proc/{info.pid}/fd/1") == registry.log_path(forks.state_dir, "f2")
        for fork in ("f1", "f2"):
            mounts.unmount(home, forks, fork)
    finally:
        stop.set()
        waiter.join()
        os.close(fd)


def test_off_spawns_every_daemon(fresh: None, tmp_path: Path, forks: Vault) -> None:
    """``Settings(zygote=False)`` (``AVFS_ZYGOTE=off``): no zygote, every daemon spawned."""
    assert Settings.from_environ({"AVFS_ZYGOTE": "off"}).zygote is False
    assert Settings.from_environ({}).zygote is True
    off = Home(
        forks.home.path,
        mounts=MOUNT_SIDE,
        paths=POLICY_PATHS,
        settings=Settings(forks.home.path, zygote=False),
    )
    try:
        vault = off.vault("v")
        for fork in ("f1", "f2"):
            info = _mount(off, vault, fork)
            assert not _forked(info)
            time.sleep(0.5)  # (a zygote, were one started, would be on its way)
        assert warmstart.current() is None
        for fork in ("f1", "f2"):
            mounts.unmount(off, vault, fork)
    finally:
        off.close()


CALLER = textwrap.dedent(
    """
    import os, sys, time
    from avfs_git.core.vaults.home import Home
    from avfs_git.mount.side import MOUNT_SIDE
    from avfs_git.policy.pathsource import POLICY_PATHS
    from avfs_git.ops import mounts, warmstart
    home = Home(sys.argv[1], mounts=MOUNT_SIDE, paths=POLICY_PATHS)
    vault = home.vault("v")
    first = mounts.mount(home, vault, "f1")
    while not (warmstart.current() and warmstart.current().ready()):
        time.sleep(0.02)
    second = mounts.mount(home, vault, "f2")
    print(warmstart.current().pid, first.pid, second.pid, flush=True)
    time.sleep(600)
    """
)


def test_a_killed_caller_leaves_no_zygote(home: Home, forks: Vault) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", CALLER, home.path], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL
    )
    try:
        assert proc.stdout is not None
        zpid, _first, second = map(int, proc.stdout.readline().split())
        assert _ppid(zpid) == proc.pid and _ppid(second) != proc.pid
        assert b"--forked" in _argv(second)
        proc.kill()
        proc.wait()
        _wait_for(lambda: _gone(zpid), "the zygote to end with its caller")
        # the daemons are no one's children: they serve on, and unmount as any
        assert Path(mounts.list_mounts(home)[0].mountpoint, "a.txt").read_bytes() == b"one\n"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        for fork in ("f1", "f2"):
            mounts.unmount(home, forks, fork)


def test_a_forked_child_of_the_caller_does_not_hold_its_zygote(fresh: None, home: Home, forks: Vault) -> None:
    """A process forked from the caller closes its copy of our end (the zygote still ends
    with the caller) and has no zygote of its own until it mounts."""
    _mount(home, forks, "f1")
    z = _ready()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            ok = warmstart.current() is None and z.sock.fileno() == -1
            os.write(w, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.close(w)
    try:
        assert os.read(r, 1) == b"1"
    finally:
        os.close(r)
        os.waitpid(pid, 0)
    assert warmstart.current() is z and z.ready()
    mounts.unmount(home, forks, "f1")
    daemonstart.reap_exited()


def test_a_zygote_that_cannot_load_is_started_again_at_most_three_times(fresh: None) -> None:
    """One whose libfuse does not load ends before it is ready: failed. The next start
    makes another; after MAX_FAILURES, none (each would cost its imports for nothing)."""
    env = {"FUSE_LIBRARY_PATH": "/nonexistent/libfuse3.so.3"}
    pids = []
    for _ in range(warmstart.MAX_FAILURES):
        pid = warmstart.start(sys.executable, env)
        assert pid is not None
        pids.append(pid)
        z = warmstart.current()
        assert z is not None
        _wait_for(lambda z=z: not z.ready() and z.state == "failed", "the zygote to fail")
        _wait_for(lambda pid=pid: _gone(pid), "the failed zygote to end")
    assert warmstart.start(sys.executable, env) is None
    assert warmstart.starter(sys.executable, env) is None
    assert len(set(pids)) == warmstart.MAX_FAILURES


def test_a_cli_call_starts_no_zygote(fresh: None, home: Home, forks: Vault, cli: Callable[..., Any]) -> None:
    """A CLI call is one command: its mounts are spawned and it starts no zygote (one would
    end with the call, its imports spent for nothing); the MCP server and the Python API,
    which live on, do."""
    for fork in ("f1", "f2"):
        r = cli("--json", "--vault", f"v:{fork}", "mount")
        assert r.code == 0, r.err
        time.sleep(0.5)  # (a zygote, were one started, would be on its way)
        assert warmstart.current() is None
    assert [m.pid for m in mounts.list_mounts(home) if b"--forked" in _argv(m.pid)] == []
    for fork in ("f1", "f2"):
        assert cli("--vault", f"v:{fork}", "unmount").code == 0


def test_a_forked_daemon_runs_under_its_caller_s_limits(fresh: None, home: Home, forks: Vault) -> None:
    """Resource limits the caller set after its zygote started (fewer files here) are its
    forked daemon's, as a spawned one inherits them; one the zygote could not give (a hard
    limit above its own: only a privileged process raises one) is declined."""
    import resource

    from avfs_git.fuse import forked

    _mount(home, forks, "f1")
    _ready()
    old = resource.getrlimit(resource.RLIMIT_NOFILE)
    fewer = min(old[0], 1000) - 1
    resource.setrlimit(resource.RLIMIT_NOFILE, (fewer, old[1]))
    try:
        info = _mount(home, forks, "f2")
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, old)
    assert _forked(info)
    limits = Path(f"/proc/{info.pid}/limits").read_text()
    assert re.search(rf"Max open files\s+{fewer}\s", limits), limits
    for fork in ("f1", "f2"):
        mounts.unmount(home, forks, fork)
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    assert forked._limits({resource.RLIMIT_NOFILE: (fewer, hard)}) == {resource.RLIMIT_NOFILE: (fewer, hard)}
    if hard != resource.RLIM_INFINITY:
        assert forked._limits({resource.RLIMIT_NOFILE: (fewer, hard + 1)}) is None
        assert forked._limits({resource.RLIMIT_NOFILE: (fewer, resource.RLIM_INFINITY)}) is None
    assert forked._limits("not limits") is None and forked._limits(None) == {}
