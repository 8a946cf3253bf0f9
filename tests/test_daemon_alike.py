"""A mount daemon is the same process whichever way it started: spawned (a new interpreter,
``posix_spawn``) or forked from the caller's zygote (ops/warmstart.py, fuse/zygote.py,
fuse/forked.py). A caller that changed its state after its zygote started (nice, CPU
affinity, ``oom_score_adj``, signal mask and ignored signals, umask, limits, working
directory in a mount, a descriptor left inheritable) gets the same daemon both ways; one
that moved to other control groups gets its daemon in them (the zygote declines and ends,
the next one starts there); and where PID 1 collects no one's ended children (a container's
shell or Python), a forked daemon that ended is collected all the same, as the caller
collects a spawned one. Real mounts, real processes."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

from avfs_git.core.settings import Settings
from avfs_git.core.store.locks import signal_process
from avfs_git.core.vaults.home import Home
from avfs_git.core.vaults.vault import Vault
from avfs_git.mount.side import MOUNT_SIDE
from avfs_git.ops import mounts
from avfs_git.ops.mounts import MountInfo
from avfs_git.policy.pathsource import POLICY_PATHS

from .conftest import IN_CI, skip_outside_ci
from .test_zygote import _argv, _forked, _mount, _ppid, _ready, forks, fresh  # noqa: F401

STATUS = ("Umask", "SigBlk", "SigIgn", "Cpus_allowed_list", "NoNewPrivs")


def _seen(pid: int) -> dict[str, Any]:
    """What of process ``pid`` a daemon's start decides."""
    out: dict[str, Any] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in STATUS:
            out[key] = value.strip()
    out["nice"] = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])
    out["oom_score_adj"] = int(Path(f"/proc/{pid}/oom_score_adj").read_text())
    out["cgroup"] = Path(f"/proc/{pid}/cgroup").read_text()
    out["limits"] = Path(f"/proc/{pid}/limits").read_text()
    out["cwd"] = os.readlink(f"/proc/{pid}/cwd")
    return out


def _open(pid: int) -> set[str]:
    out = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            out.add(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            continue
    return out


def test_a_spawned_and_a_forked_daemon_start_alike(
    fresh: None,  # noqa: F811
    home: Home,
    forks: Vault,  # noqa: F811
    tmp_path: Path,
) -> None:
    """After its zygote started, the caller ignores SIGUSR2, sets another umask, fewer
    files, a higher ``oom_score_adj`` (as root), leaves a file inheritable and stands in its
    first mount; a thread of it raises its nice, keeps to one CPU and blocks SIGUSR1, and
    mounts twice: forked (its zygote) and spawned (``zygote=False``). Both daemons are
    alike in all of it: the caller's nice, CPUs, score, umask and limits (what a spawn
    inherits, given to the forked one), no signal blocked or ignored, cwd ``/`` and not the
    caller's file (what a fork is made, made by the spawned one: its starter's working
    directory kept the first mount busy, its unmount refused, while it served)."""
    import resource

    first = _mount(home, forks, "f1")
    _ready()
    off = Home(
        forks.home.path,
        mounts=MOUNT_SIDE,
        paths=POLICY_PATHS,
        settings=Settings(forks.home.path, zygote=False),
    )
    old_umask = os.umask(0o027)
    old_nofile = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(old_nofile[0], 1000) - 3, old_nofile[1]))
    old_usr2 = signal.signal(signal.SIGUSR2, signal.SIG_IGN)
    oom_path = Path("/proc/self/oom_score_adj")
    old_oom = int(oom_path.read_text())
    if os.geteuid() == 0:
        oom_path.write_text(str(min(old_oom + 100, 1000)))
    mine = tmp_path / "the-caller-s-file"
    fd = os.open(mine, os.O_RDWR | os.O_CREAT, 0o600)
    os.set_inheritable(fd, True)
    cwd = os.getcwd()
    os.chdir(first.mountpoint)
    cpus = sorted(os.sched_getaffinity(0))
    got: dict[str, MountInfo] = {}
    failed: list[BaseException] = []

    def caller_thread() -> None:
        # per thread on Linux: what a spawn from this thread inherits
        try:
            os.nice(3)
            if len(cpus) > 1:
                os.sched_setaffinity(0, cpus[-1:])
            signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])
            got["forked"] = _mount(home, forks, "f2")
            got["spawned"] = _mount(off, off.vault("v"), "f3")
        except BaseException as exc:  # (raised again below)
            failed.append(exc)

    try:
        t = threading.Thread(target=caller_thread)
        t.start()
        t.join()
    finally:
        os.chdir(cwd)
        os.umask(old_umask)
        resource.setrlimit(resource.RLIMIT_NOFILE, old_nofile)
        signal.signal(signal.SIGUSR2, old_usr2)
        if os.geteuid() == 0:
            oom_path.write_text(str(old_oom))
        os.close(fd)
    try:
        assert not failed, failed
        forked, spawned = got["forked"], got["spawned"]
        assert _forked(forked) and not _forked(spawned)
        a, b = _seen(spawned.pid), _seen(forked.pid)
        assert a == b
        assert b["nice"] == 3 and b["Umask"] == "0027" and b["cwd"] == "/"
        assert int(b["SigBlk"], 16) == 0 and not int(b["SigIgn"], 16) & (1 << (signal.SIGUSR2 - 1))
        assert b["Cpus_allowed_list"] == str(cpus[-1]) or len(cpus) == 1
        assert re.search(rf"Max open files\s+{min(old_nofile[0], 1000) - 3}\s", b["limits"])
        if os.geteuid() == 0:
            assert b["oom_score_adj"] == min(old_oom + 100, 1000)
        for pid in (spawned.pid, forked.pid):
            assert str(mine) not in _open(pid), pid
        # the mount the caller stood in is no daemon's working directory: it unmounts
        mounts.unmount(home, forks, "f1")
    finally:
        for h, fork in ((home, "f2"), (off, "f3"), (home, "f1")):
            mounts.unmount(h, h.vault("v"), fork)
        off.close()


def _new_group() -> Path:
    """A new control group a process may be moved into: in the unified hierarchy (v2), else
    v1's cpuacct; a skip where none can be made or entered (a container's read-only
    cgroupfs: no facility there, whoever runs the suite)."""
    root = Path("/sys/fs/cgroup")
    for base in (root, root / "cpuacct"):
        if not (base / "cgroup.procs").exists():
            continue
        group = base / f"avfs-test-{os.getpid()}"
        try:
            group.mkdir()
        except OSError:
            continue
        probe = subprocess.Popen(["sleep", "60"])
        try:
            (group / "cgroup.procs").write_text(str(probe.pid))
            return group
        except OSError:
            _rmdir(group)
        finally:
            probe.kill()
            probe.wait()
    if IN_CI:
        pytest.fail("CI runs as root with cgroups: a control group must be made and entered here")
    pytest.skip("no control group can be made and entered here")  # (under CI: failed above)


MOVER = textwrap.dedent(
    """
    import os, sys, time
    from avfs_git.core.vaults.home import Home
    from avfs_git.mount.side import MOUNT_SIDE
    from avfs_git.policy.pathsource import POLICY_PATHS
    from avfs_git.ops import mounts, warmstart
    home = Home(sys.argv[1], mounts=MOUNT_SIDE, paths=POLICY_PATHS)
    vault = home.vault("v")
    def ready():
        while not (warmstart.current() and warmstart.current().ready()):
            time.sleep(0.02)
        return warmstart.current()
    first = mounts.mount(home, vault, "f1")
    old = ready()
    with open(os.path.join(sys.argv[2], "cgroup.procs"), "w") as fh:
        fh.write(str(os.getpid()))
    second = mounts.mount(home, vault, "f2")
    print(old.pid, old.state, second.pid, flush=True)
    new = ready()
    third = mounts.mount(home, vault, "f3")
    print(new.pid, third.pid, flush=True)
    sys.stdin.read()
    for fork in ("f1", "f2", "f3"):
        mounts.unmount(home, vault, fork)
    home.close()
    """
)


def test_a_caller_in_other_cgroups_gets_its_daemon_there(
    home: Home,
    forks: Vault,  # noqa: F811
) -> None:
    """A caller that moved to another control group after its zygote started: its next
    mount's daemon is spawned (the zygote, in the old group, declines and ends), its
    zygote started anew in the new group, and the mount after forked from that one; each
    daemon in the caller's group, as a spawned one is."""
    group = _new_group()
    proc = subprocess.Popen(
        [sys.executable, "-c", MOVER, home.path, str(group)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None and proc.stdin is not None
        old_zygote, old_state, second = proc.stdout.readline().split()
        new_zygote, third = map(int, proc.stdout.readline().split())
        assert old_state == b"gone" and int(old_zygote) != new_zygote
        assert _ppid(int(second)) == proc.pid and b"--forked" not in _argv(int(second))
        assert b"--forked" in _argv(third)
        mine = Path(f"/proc/{proc.pid}/cgroup").read_text()
        for pid in (int(second), new_zygote, third):
            assert Path(f"/proc/{pid}/cgroup").read_text() == mine, pid
        proc.stdin.close()
        assert proc.wait(timeout=120) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()
        for fork in ("f1", "f2", "f3"):
            mounts.unmount(home, forks, fork)
        for pid in (group / "cgroup.procs").read_text().split():  # (none left: a leftover would keep it)
            signal_process(
                int(pid),
                signal.SIGKILL,
                is_it=lambda p: str(p) in (group / "cgroup.procs").read_text().split(),
            )
        _rmdir(group)


def _rmdir(group: Path) -> None:
    import time

    deadline = time.monotonic() + 30
    while True:
        try:
            group.rmdir()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


UNSHARE = ["unshare", "--pid", "--fork", "--mount-proc"]  # (a PID namespace, its /proc)
# a PID 1 that collects no one's children but its own (a container's ``python`` or ``tail -f
# /dev/null``): it runs the caller and waits for it alone
INIT = textwrap.dedent(
    """
    import subprocess, sys
    sys.exit(subprocess.run(sys.argv[1:]).returncode)
    """
)

IN_NAMESPACE = textwrap.dedent(
    """
    import os, signal, sys, time
    from avfs_git.core.vaults.home import Home
    from avfs_git.mount.side import MOUNT_SIDE
    from avfs_git.policy.pathsource import POLICY_PATHS
    from avfs_git.ops import mounts, warmstart
    def stat(pid):
        try:
            with open(f"/proc/{pid}/stat") as fh:
                return fh.read().rsplit(")", 1)[1].split()[:2]
        except OSError:
            return None
    def ended(pid):  # its pid gone: collected by someone, not a zombie of PID 1
        deadline = time.monotonic() + 30
        while stat(pid) is not None and time.monotonic() < deadline:
            time.sleep(0.02)
        return stat(pid) is None
    home = Home(sys.argv[1], mounts=MOUNT_SIDE, paths=POLICY_PATHS)
    vault = home.vault("v")
    first = mounts.mount(home, vault, "f1")
    while not (warmstart.current() and warmstart.current().ready()):
        time.sleep(0.02)
    zygote = warmstart.current().pid
    second = mounts.mount(home, vault, "f2")
    with open(f"/proc/{second.pid}/cmdline", "rb") as fh:
        forked = fh.read().rstrip(b"\\0").endswith(b"--forked")
    parent = stat(second.pid)[1]
    mounts.unmount(home, vault, "f2")
    unmounted = ended(second.pid)
    third = mounts.mount(home, vault, "f3")
    os.kill(third.pid, signal.SIGKILL)
    killed = ended(third.pid)
    listed = sorted(m.fork for m in mounts.list_mounts(home))
    again = mounts.mount(home, vault, "f3")
    again_ok = open(os.path.join(again.mountpoint, "a.txt")).read() == "one\\n"
    for fork in ("f1", "f3"):
        mounts.unmount(home, vault, fork)
    home.close()
    print(forked, int(parent) == zygote, unmounted, killed, listed, again_ok)
    """
)


def test_forked_daemons_that_end_are_collected_under_a_pid_1_that_collects_none(
    home: Home,
    forks: Vault,  # noqa: F811
    tmp_path: Path,
) -> None:
    """In a PID namespace whose PID 1 waits for its own child alone: a forked daemon is its
    zygote's child (not PID 1's), and once it ends, unmounted or killed, it is collected
    (before, each stayed a zombie of PID 1 for good); the killed one's mount is not listed
    and mounts again at its place."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        skip_outside_ci("needs root and unshare(1) for a PID namespace", "CI runs as root with util-linux")
    proc = subprocess.run(
        [*UNSHARE, sys.executable, "-c", INIT, sys.executable, "-c", IN_NAMESPACE, home.path],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", "True", "True", "True", "['f1']", "True"], (
        proc.stdout + proc.stderr
    )


CLI_IN_NAMESPACE = textwrap.dedent(
    """
    import json, os, signal, subprocess, sys, time
    home = sys.argv[1]
    env = {**os.environ, "AVFS_HOME": home, "AVFS_SERVER": "auto"}
    def avfs(*args, check=True):
        p = subprocess.run(
            [sys.executable, "-m", "avfs_git", *args], env=env, capture_output=True, text=True, timeout=120
        )
        assert p.returncode == 0 or not check, (args, p.stdout, p.stderr)
        return p.stdout
    def stat(pid):
        try:
            with open(f"/proc/{pid}/stat") as fh:
                return fh.read().rsplit(")", 1)[1].split()[:2]
        except OSError:
            return None
    def ended(pid):  # its pid gone: collected by someone, not a zombie of PID 1
        deadline = time.monotonic() + 30
        while stat(pid) is not None and time.monotonic() < deadline:
            time.sleep(0.02)
        return stat(pid) is None
    avfs("server", "start")
    with open(os.path.join(home, "run", "cli.pid")) as fh:
        server = int(fh.read())
    first = json.loads(avfs("--json", "--vault", "v:f1", "mount"))["mount"]["pid"]
    parent = int(stat(first)[1])
    avfs("--vault", "v:f1", "unmount")
    unmounted = ended(first)
    second = json.loads(avfs("--json", "--vault", "v:f2", "mount"))["mount"]["pid"]
    os.kill(second, signal.SIGKILL)
    killed = ended(second)
    avfs("--vault", "v:f2", "unmount", check=False)
    avfs("server", "stop")
    print(parent == server, parent != 1, unmounted, killed)
    """
)


def test_cli_mounts_daemons_are_collected_under_a_pid_1_that_collects_none(
    home: Home,
    forks: Vault,  # noqa: F811
) -> None:
    """`avfs mount` from the CLI, served by the home's warm server: its daemon was forked
    twice and handed to PID 1, and in a PID namespace whose PID 1 waits for its own child
    alone each daemon that ended, unmounted or killed, stayed a zombie for good. The server
    is now the reaper of its descendants (cli/adopted.py): the daemon is its child and is
    collected once it ends."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        skip_outside_ci("needs root and unshare(1) for a PID namespace", "CI runs as root with util-linux")
    proc = subprocess.run(
        [*UNSHARE, sys.executable, "-c", INIT, sys.executable, "-c", CLI_IN_NAMESPACE, home.path],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", "True", "True", "True"], proc.stdout + proc.stderr
