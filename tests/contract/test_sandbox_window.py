"""No sandbox outlives its owner killed in bubblewrap's last window (proxy/standby.py).

The outer ``bwrap`` arms ``--die-with-parent``'s signal, then writes the sandbox's
``child-pid`` to its ``--json-status-fd`` and only then lets its child (the sandbox's first
process, waiting on an eventfd only the outer writes) go on (bubblewrap.c, 0.8 to 0.11.1).
An owner killed between the two has its outer ``bwrap`` killed by that signal and the
child waits for good, parent 1, holding a copy of the host's mounts (flaky3's section of
docs/benchmarks.md left it). Here the window is held open for real: ``bwrap`` on the
daemon's ``PATH`` is a script that fills the status pipe before it ``exec``\\ s the real one,
so the outer blocks in that write, armed (its ``/proc/PID/syscall`` says so), until the
test kills the owner. Each process is found by the test's own home in its command line."""

from __future__ import annotations

import array
import fcntl
import os
import shutil
import signal
import subprocess
import sys
import termios
from pathlib import Path
from typing import Any

import pytest

from avfs_git.core.store.locks import pid_alive
from avfs_git.core.vaults.home import Home
from avfs_git.core.vaults.vault import Vault
from avfs_git.proxy import confine, standby

from ..conftest import skip_outside_ci
from .test_mount_kept_warm import LONG, _env, _listed, _until, cleanup, fork
from .test_sandbox_lifetime import HELD, _first_call, _marked, _none_left, _sandbox_left

pytestmark = pytest.mark.backends("overlay")
__all__ = ["cleanup", "fork"]  # fixtures

# fills the pipe of the descriptor it is given (non-blocking, then blocking again: the
# outer bwrap shares that open file), so bwrap's status write blocks after its clone
FILL = (
    "import os, sys\n"
    "fd = int(sys.argv[1])\n"
    "os.set_blocking(fd, False)\n"
    "for size in (65536, 4096, 1):\n"
    "    while True:\n"
    "        try:\n"
    "            os.write(fd, b'x' * size)\n"
    "        except BlockingIOError:\n"
    "            break\n"
    "os.set_blocking(fd, True)\n"
)


def _filling_bwrap(tmp_path: Path, real: str, held: str = HELD) -> Path:
    """A ``bwrap`` that, for a sandbox whose arguments hold ``held`` (its ``--json-status-fd``
    first: proxy/standby.py puts it there), fills its status pipe, says so in ``held.PID``
    (PID the process that becomes bwrap) and runs the real one."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (tmp_path / "fill.py").write_text(FILL)
    script = bindir / "bwrap"
    script.write_text(
        "#!/bin/sh\n"
        f"case \"$*\" in *'{held}'*)\n"
        f'  [ "$1" = --json-status-fd ] && {sys.executable} -S {tmp_path}/fill.py "$2" && : > "{tmp_path}/held.$$" ;;\n'
        "esac\n"
        f'exec {real} "$@"\n'
    )
    script.chmod(0o755)
    return bindir


def _in_the_window(pid: int) -> bool:
    """bwrap ``pid`` blocks in its status write (``write``, 1 on x86_64 and 64 on arm64), past
    its clone and the arming of its signal (bubblewrap.c: that write comes after both)."""
    try:
        with open(f"/proc/{pid}/syscall") as fh:
            got = fh.read().split()
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            argv = fh.read().split(b"\0")
    except OSError:
        return False
    write = {"x86_64": "1", "aarch64": "64"}.get(os.uname().machine)
    return (
        len(got) > 1
        and got[0] == write
        and os.path.basename(argv[0]) == b"bwrap"
        and int(got[1], 16) == int(argv[2])
        and bool(_children(pid))
    )


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(p) for p in fh.read().split()]
    except OSError:
        return []


def test_a_daemon_killed_as_its_ready_sandboxs_bwrap_lets_its_child_go_leaves_nothing(
    backend: str, home: Home, fork: Vault, cleanup: Any, tmp_path: Path
) -> None:
    """The daemon's ready sandbox held in the window, the daemon SIGKILLed: its outer bwrap
    dies of its signal; the child it never let go must not stay (on main it stayed, parent
    1, for good: blocked in its read of the eventfd)."""
    real = confine.bwrap_path()
    if real is None or not standby.available():
        skip_outside_ci("no bwrap, or no ready sandbox here (/usr/bin/perl)")
    if os.uname().machine not in ("x86_64", "aarch64"):
        skip_outside_ci("the write system call's number is known here for x86_64 and arm64")
    bindir = _filling_bwrap(tmp_path, real)
    _first_call(home, backend, bindir)
    assert _until(lambda: bool(_marked(tmp_path, "held."))), "no sandbox made ready"
    (held,) = _marked(tmp_path, "held.")
    assert _until(lambda: _in_the_window(held)), "the ready sandbox's bwrap never blocked in its status write"
    (child,) = _children(held)
    (live,) = _listed(home, backend)
    os.kill(live["pid"], signal.SIGKILL)
    assert _until(lambda: not pid_alive(held))  # (killed by its --die-with-parent signal)
    _none_left(home)
    assert _until(lambda: not pid_alive(child))  # (an exiting process shows no command line)


def test_a_call_killed_as_its_own_sandboxs_bwrap_lets_its_child_go_leaves_nothing(
    backend: str, home: Home, fork: Vault, cleanup: Any, tmp_path: Path
) -> None:
    """The same window in a CLI call's own sandbox (``--stdin``: not one set up ahead), the
    call SIGKILLed there: nothing of its sandbox may stay (on main its first process did,
    parent 1), and the command never runs."""
    real = confine.bwrap_path()
    if real is None:
        skip_outside_ci("no bwrap here")
    if os.uname().machine not in ("x86_64", "aarch64"):
        skip_outside_ci("the write system call's number is known here for x86_64 and arm64")
    bindir = _filling_bwrap(tmp_path, real, "MARK-HOLD")
    env = _env(backend, LONG)
    env["PATH"] = f"{bindir}:{env.get('PATH', '/usr/bin:/bin')}"
    call = subprocess.Popen(
        [sys.executable, "-m", "avfs_git", "--home", home.path, "--vault", "v:main", "--json",
         "proxy", "exec", "--stdin", "--", "sh", "-c", ": MARK-HOLD; echo ran > ran.txt"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
    )  # fmt: skip
    try:
        assert _until(lambda: bool(_marked(tmp_path, "held.")) or call.poll() is not None)
        (held,) = _marked(tmp_path, "held.")
        assert _until(lambda: _in_the_window(held)), "the call's bwrap never blocked in its status write"
        (child,) = _children(held)
    finally:
        call.kill()
        call.wait()
    assert _until(lambda: not pid_alive(held))  # (killed by its --die-with-parent signal)
    try:
        # (the daemon the call started keeps a ready sandbox of its own: not this one)
        assert _until(lambda: not pid_alive(child)), _sandbox_left(home)
    finally:
        if pid_alive(child):
            os.kill(child, signal.SIGKILL)
    assert not fork.workspace("main").exists("ran.txt")


def _at_its_gate(held: int) -> bool:
    """The sandbox of bwrap ``held`` waits at its ``--block-fd`` (bubblewrap's read of it,
    past the whole set-up), and no byte is there for it."""
    try:
        with open(f"/proc/{held}/cmdline", "rb") as fh:
            argv = fh.read().split(b"\0")
        gate = int(argv[argv.index(b"--block-fd") + 1])
    except (OSError, ValueError, IndexError):
        return False
    kids = _children(held)
    return bool(kids) and _reading(kids[0], gate) and _bytes_in(kids[0], gate) == 0


def _reading(pid: int, fd: int) -> bool:
    read = {"x86_64": "0", "aarch64": "63"}.get(os.uname().machine)
    try:
        with open(f"/proc/{pid}/syscall") as fh:
            got = fh.read().split()
    except OSError:
        return False
    return len(got) > 1 and got[0] == read and int(got[1], 16) == fd


def _bytes_in(pid: int, fd: int) -> int:
    """The bytes waiting in the pipe ``fd`` of ``pid`` (that pipe opened anew here)."""
    p = os.open(f"/proc/{pid}/fd/{fd}", os.O_RDONLY | os.O_NONBLOCK)
    try:
        buf = array.array("i", [0])
        fcntl.ioctl(p, termios.FIONREAD, buf)
        return buf[0]
    finally:
        os.close(p)


def _bwraps_of(home: Home) -> list[int]:
    mark = os.fsencode(home.path)
    out = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/cmdline", "rb") as fh:
                    cmd = fh.read()
            except OSError:
                continue
            if mark in cmd and os.path.basename(cmd.split(b"\0", 1)[0]) == b"bwrap":
                out.append(int(p))
    return out


def _end_all_of(home: Home) -> None:
    """Kill what is left naming ``home`` (this test's own: a daemon in its namespace)."""
    for pid, _ in _sandbox_left(home):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


NO_PERL = (
    "u=$1; w=$2; shift 2\n"
    'mount -t overlay overlay -o "lowerdir=/usr/bin,upperdir=$u,workdir=$w" /usr/bin || exit 99\n'
    "rm -f /usr/bin/perl && [ ! -e /usr/bin/perl ] || exit 99\n"
    'exec "$@"\n'
)


def test_a_first_call_killed_while_its_sandbox_waits_ahead_without_perl_leaves_nothing(
    backend: str, home: Home, fork: Vault, cleanup: Any, tmp_path: Path
) -> None:
    """Without Perl (hidden from the call's processes by a mount namespace of their own, an
    overlay of /usr/bin that has none) a first call's sandbox set up ahead waits at bwrap's
    ``--block-fd`` for the call's byte. The call stopped there and SIGKILLed: its outer bwrap
    dies of its signal; the sandbox, set up, never let go, must not stay (on main it
    waited for good, parent 1: its gate a pipe that never ends). Its command never runs."""
    real = confine.bwrap_path()
    if real is None or os.geteuid() != 0 or shutil.which("unshare") is None:
        skip_outside_ci("needs bwrap, root and unshare(1) to hide Perl", "CI runs as root, with bwrap")
    if os.uname().machine not in ("x86_64", "aarch64"):
        skip_outside_ci("the read system call's number is known here for x86_64 and arm64")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    # the call stopped as its sandbox's bwrap starts (its parent: the call's process), so it
    # cannot let the command go; the sandbox goes on setting itself up, to its gate
    (bindir / "bwrap").write_text(
        "#!/bin/sh\n"
        f'case "$*" in *MARK-AHEAD*) kill -STOP $PPID; : > "{tmp_path}/held.$$" ;; esac\n'
        f'exec {real} "$@"\n'
    )
    (bindir / "bwrap").chmod(0o755)
    env = _env(backend, LONG)
    env["PATH"] = f"{bindir}:{env.get('PATH', '/usr/bin:/bin')}"
    layers = [tmp_path / d for d in ("upper", "work")]
    for d in layers:
        d.mkdir()
    call = subprocess.Popen(
        ["unshare", "--mount", "sh", "-c", NO_PERL, "sh", *map(str, layers),
         sys.executable, "-m", "avfs_git", "--home", home.path, "--vault", "v:main", "--json",
         "proxy", "exec", "--", "sh", "-c", ": MARK-AHEAD; echo ran > ran.txt"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
    )  # fmt: skip
    try:
        try:
            assert _until(lambda: bool(_marked(tmp_path, "held.")) or call.poll() is not None)
            got = _marked(tmp_path, "held.")
            assert got, ("no sandbox set up ahead", call.wait(), call.stderr.read() if call.stderr else b"")
            (held,) = got
            assert _until(lambda: _at_its_gate(held)), "the sandbox set up ahead never waited at its gate"
        finally:
            call.kill()  # (stopped: SIGKILL ends it all the same)
            call.wait()
            if call.stderr is not None:
                call.stderr.close()
        assert _until(lambda: not pid_alive(held))  # (its outer: killed by its signal)
        assert _until(lambda: not _bwraps_of(home)), [(p, _sandbox_left(home)) for p in _bwraps_of(home)]
    finally:
        _end_all_of(home)  # (its daemon: the mount goes with its namespace)
    assert not fork.workspace("main").exists("ran.txt")
