"""Every process avfs starts is collected, and nothing is left running that no one asked to
outlive its caller: a Python process that mounted (its zygote, ops/warmstart.py, and its
daemons) leaves nothing once its last home closes or it ends. Each process is found by the
control group the caller moved itself into (the zygote and the daemons start their own
sessions: a scan of the caller's session would not see them). Real mounts, real processes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from avfs_git.core.store.locks import signal_process
from avfs_git.core.vaults.home import Home
from avfs_git.core.vaults.vault import Vault
from avfs_git.ops import mounts

from .conftest import skip_outside_ci
from .test_daemon_alike import _new_group, _rmdir
from .test_zygote import forks  # noqa: F401

WAIT_S = 60.0

PRELUDE = textwrap.dedent(
    """
    import os, sys, time
    from avfs_git.core.vaults.home import Home
    from avfs_git.mount.side import MOUNT_SIDE
    from avfs_git.policy.pathsource import POLICY_PATHS
    from avfs_git.ops import mounts, warmstart
    with open(os.path.join(sys.argv[2], "cgroup.procs"), "w") as fh:
        fh.write(str(os.getpid()))  # (its zygote and daemons start there too)
    def group():
        with open(os.path.join(sys.argv[2], "cgroup.procs")) as fh:
            return sorted(int(p) for p in fh.read().split())
    def ready():
        while not (warmstart.current() and warmstart.current().ready()):
            time.sleep(0.02)
        return warmstart.current().pid
    def running(pid):  # not gone, and not a zombie (of ours, not collected)
        try:
            with open(f"/proc/{pid}/stat") as fh:
                return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False
    def collected(pid):
        try:
            return os.waitpid(pid, os.WNOHANG)[0] == pid or not os.path.exists(f"/proc/{pid}")
        except ChildProcessError:
            return not os.path.exists(f"/proc/{pid}")
    """
)

# two homes of one process mount through its zygote; each closes in turn, the process stays
CLOSES = PRELUDE + textwrap.dedent(
    """
    one = Home(sys.argv[1], mounts=MOUNT_SIDE, paths=POLICY_PATHS)
    two = Home(sys.argv[1], mounts=MOUNT_SIDE, paths=POLICY_PATHS)
    mounts.mount(one, one.vault("v"), "f1")
    zygote = ready()
    second = mounts.mount(two, two.vault("v"), "f2")
    with open(f"/proc/{second.pid}/cmdline", "rb") as fh:
        forked = fh.read().rstrip(b"\\0").endswith(b"--forked")
    mounts.unmount(one, one.vault("v"), "f1")
    mounts.unmount(two, two.vault("v"), "f2")
    one.close()
    kept = running(zygote)  # the other home still has it
    two.close()
    print(forked, kept, running(zygote), collected(zygote), group() == [os.getpid()], flush=True)
    sys.stdin.read()
    """
)

# a process that mounts (its second daemon forked) and ends, its home never closed
ENDS = PRELUDE + textwrap.dedent(
    """
    home = Home(sys.argv[1], mounts=MOUNT_SIDE, paths=POLICY_PATHS)
    mounts.mount(home, home.vault("v"), "f1")
    zygote = ready()
    mounts.mount(home, home.vault("v"), "f2")
    mounts.unmount(home, home.vault("v"), "f1")
    mounts.unmount(home, home.vault("v"), "f2")
    print(zygote, flush=True)
    """
)


@pytest.fixture
def group() -> Iterator[Path]:
    """A control group of the test's own for a caller to move into; emptied and removed after."""
    made = _new_group()
    yield made
    for pid in (made / "cgroup.procs").read_text().split():  # (a leftover: the test's failure, reported)
        signal_process(
            int(pid), signal.SIGKILL, is_it=lambda p: str(p) in (made / "cgroup.procs").read_text().split()
        )
    _rmdir(made)


def _emptied(group: Path) -> list[str]:
    """What is still in ``group`` once it empties, or after :data:`WAIT_S`."""
    deadline = time.monotonic() + WAIT_S
    while (left := (group / "cgroup.procs").read_text().split()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return [f"{p} {_cmdline(p)}" for p in left]


def _cmdline(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "?"


def _unmount_all(home: Home, vault: Vault) -> None:
    for fork in ("f1", "f2"):
        mounts.unmount(home, vault, fork)


def test_the_last_home_closed_ends_the_process_zygote(
    home: Home,
    forks: Vault,  # noqa: F811
    group: Path,
) -> None:
    """A Python caller that mounted through two homes, unmounted and closed both, and lives
    on: its zygote stays while one home is open, and ends, collected, when the last closes,
    so nothing of avfs is left in the caller's control group but the caller (before, the
    zygote ran until the caller ended: one `avfs-zygote` a test worker, named by
    tests/cputime.py as left running at each worker's end)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", CLOSES, home.path, str(group)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None and proc.stdin is not None
        said = proc.stdout.readline().decode().split()
        proc.stdin.close()
        assert proc.wait(timeout=120) == 0, proc.stderr.read() if proc.stderr else ""
        # forked from the zygote; kept for the open home; ended and collected at the last close;
        # the caller alone in its group
        assert said == ["True", "True", "False", "True", "True"], said
        assert _emptied(group) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
        _unmount_all(home, forks)


def test_a_python_process_that_mounts_and_ends_leaves_nothing_running(
    home: Home,
    forks: Vault,  # noqa: F811
    group: Path,
) -> None:
    """A Python caller that mounted (its second daemon forked from its zygote), unmounted and
    ended without closing its home: nothing of it is left in its control group (the zygote
    ends on the end of file of its socket, the daemons with their unmounts)."""
    proc = subprocess.run(
        [sys.executable, "-c", ENDS, home.path, str(group)], capture_output=True, text=True, timeout=120
    )
    try:
        assert proc.returncode == 0, proc.stderr
        assert int(proc.stdout.split()[0]) > 0  # (it had a zygote)
        assert _emptied(group) == []
    finally:
        _unmount_all(home, forks)


UNSHARE = ["unshare", "--pid", "--fork", "--mount-proc"]  # (a PID namespace, its /proc)
# a PID 1 that collects no one's children but its own (a container's ``python`` or ``tail -f
# /dev/null``): it runs the caller and waits for it alone
INIT = "import subprocess, sys\nsys.exit(subprocess.run(sys.argv[1:]).returncode)\n"

CLI_CALLS = textwrap.dedent(
    """
    import json, os, subprocess, sys, time
    home = sys.argv[1]
    env = {**os.environ, "AVFS_HOME": home, "AVFS_SERVER": "auto"}
    def avfs(*args, server="auto"):
        p = subprocess.run(
            [sys.executable, "-m", "avfs_git", *args], env={**env, "AVFS_SERVER": server},
            capture_output=True, text=True, timeout=120,
        )
        assert p.returncode == 0, (args, p.stdout, p.stderr)
        return p.stdout
    def processes():  # pid -> (state, ppid, name), this one and PID 1 aside
        out = {}
        for d in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{d}/stat") as fh:
                    stat = fh.read()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(d) not in (1, os.getpid()):
                out[int(d)] = (fields[0], int(fields[1]), stat[stat.index("(") + 1 : stat.rindex(")")])
        return out
    avfs("--json", "mount", "--list")  # direct: it starts the home's server
    deadline = time.monotonic() + 60
    while not os.path.exists(os.path.join(home, "run", "cli.sock")) and time.monotonic() < deadline:
        time.sleep(0.05)
    with open(os.path.join(home, "run", "cli.pid")) as fh:
        server = int(fh.read())
    avfs("--vault", "v:f1", "mount")
    avfs("--vault", "v:f1", "unmount")
    for _ in range(2):  # a mount kept warm, then its reuse
        avfs("--vault", "v:f2", "proxy", "exec", "--", "true")
    avfs("--vault", "v:f2", "unmount")
    avfs("--vault", "v:f3", "mount")
    avfs("server", "stop")  # while f3's daemon, the server's, serves
    avfs("--vault", "v:f3", "unmount", server="off")
    deadline = time.monotonic() + 60  # (until nothing runs: each ended, collected or not)
    while any(s != "Z" for s, _, _ in processes().values()) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = processes()
    print(json.dumps({"server": server, "left": {str(p): list(v) for p, v in left.items()}}))
    """
)


def test_cli_calls_leave_no_zombie_under_a_pid_1_that_collects_none(
    home: Home,
    forks: Vault,  # noqa: F811
) -> None:
    """In a PID namespace whose PID 1 waits for its own child alone, CLI calls served by the
    home's server (mounts, unmounts, `proxy exec` twice, a mount left serving as `server
    stop` runs, then unmounted by a direct call): once everything has ended, nothing is
    left but the server itself, a zombie of PID 1 (its starter, a call, ended long before:
    nothing of avfs is left to collect it). Before, `server stop`'s own call process and
    the daemon the stopped server had forked were PID 1's too, each a zombie for good."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        skip_outside_ci("needs root and unshare(1) for a PID namespace", "CI runs as root with util-linux")
    proc = subprocess.run(
        [*UNSHARE, sys.executable, "-c", INIT, sys.executable, "-c", CLI_CALLS, home.path],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    said = json.loads(proc.stdout)
    assert said["left"] == {str(said["server"]): ["Z", 1, "python"]}, said


DISCARDED = textwrap.dedent(
    """
    import os, subprocess, sys, time
    from avfs_git.proxy.standby import Standby
    argv = ["bwrap", "--die-with-parent", "--new-session", "--unshare-pid", "--ro-bind", "/", "/"]
    argv += ["--proc", "/proc", "--dev", "/dev", "sleep", "600"]
    proc = subprocess.Popen(argv, start_new_session=True)  # (as a sandbox kept ready is started)
    def children(pid):
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as fh:
                return [int(p) for p in fh.read().split()]
        except OSError:
            return []
    def state(pid):  # (state, parent), or None: gone, collected
        try:
            with open(f"/proc/{pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            return fields[0], int(fields[1])
        except OSError:
            return None
    deadline = time.monotonic() + 60
    while not children(proc.pid) and time.monotonic() < deadline:  # the sandbox is up
        time.sleep(0.02)
    inner = children(proc.pid)[0]
    Standby(("k",), proc, -1, -1, -1).discard()
    while (now := state(inner)) is not None and now[0] != "Z" and time.monotonic() < deadline:
        time.sleep(0.02)
    print(proc.returncode is not None, now)
    """
)


def test_a_discarded_sandbox_leaves_no_zombie_under_a_pid_1_that_collects_none() -> None:
    """A sandbox set up ahead or kept ready and then discarded (proxy/standby.py, ahead.py):
    its outer bubblewrap's group was SIGKILLed, and the inner one (the sandbox's first
    process, in a session of its own) died by ``--die-with-parent`` after it, PID 1's: a
    zombie for good where PID 1 collects no one's (main: ``['Z', 1]``). The inner is now
    killed first, and collected by the outer as it exits."""
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("bwrap") is None:
        skip_outside_ci("needs root, unshare(1) and bwrap", "CI runs as root with util-linux and bubblewrap")
    proc = subprocess.run(
        [*UNSHARE, sys.executable, "-c", INIT, sys.executable, "-c", DISCARDED],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", "None"], proc.stdout


SANDBOXES = textwrap.dedent(
    """
    import os, subprocess, sys
    from avfs_git.proxy import reaping
    reaper = sys.argv[1] == "reaper" and reaping.become_reaper()
    for _ in range(5):  # a confined command's run, as proxy/runner.py starts bubblewrap
        r, w = os.pipe()
        argv = ["bwrap", "--json-status-fd", str(w), "--die-with-parent", "--new-session"]
        argv += ["--unshare-pid", "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "true"]
        subprocess.run(argv, pass_fds=(w,), check=True)
        os.close(w)
        with os.fdopen(r, "rb") as fh:
            status = fh.read()
        reaping.collect_sandbox(status)
    zombies = []
    for d in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{d}/stat") as fh:
                if fh.read().rsplit(")", 1)[1].split()[0] == "Z":
                    zombies.append(d)
        except OSError:
            pass
    print(reaper, len(zombies))
    """
)


def test_sandboxes_first_processes_are_collected_by_an_avfs_reaper() -> None:
    """bubblewrap ends once its sandbox's first process has told it the command's status,
    most often before that process has ended, which is then PID 1's: under a PID 1 that
    collects none, a zombie for good, one a confined command (main: 10 runs, 10 zombies).
    A process that made itself their reaper (a mount daemon, a CLI call's own) collects
    each by the pid bubblewrap's status names; an API caller's, not one, leaves them as
    before (which this checks too: the count is not a lucky order)."""
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("bwrap") is None:
        skip_outside_ci("needs root, unshare(1) and bwrap", "CI runs as root with util-linux and bubblewrap")
    said = {}
    for how in ("reaper", "not"):
        proc = subprocess.run(
            [*UNSHARE, sys.executable, "-c", INIT, sys.executable, "-c", SANDBOXES, how],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        said[how] = proc.stdout.split()
    assert said["reaper"] == ["True", "0"], said
    assert said["not"][0] == "False" and int(said["not"][1]) > 0, said
