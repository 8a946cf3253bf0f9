"""The mount daemons running on this machine, as tests look for them in /proc: one started
with exec by its command line (``python -m avfs_git.fuse.daemon --home H ...``), one forked
from a home's warm CLI server (cli/warmdaemon.py) by its process name, its command line
being the server's (``python -m avfs_git.cli.resident --home H``). A daemon's own child
(a ``git`` it runs) has both its name and command line until its ``execve``: it is no
daemon, and not listed."""

from __future__ import annotations

import os
import time

from avfs_git.core.store.locks import pid_alive
from avfs_git.core.vaults.daemonproc import DAEMON_NAME


def running() -> list[tuple[int, list[bytes]]]:
    """(pid, command line) of each mount daemon."""
    found = {pid: argv for pid, argv in _named()}
    return [(pid, argv) for pid, argv in found.items() if _parent(pid) not in found]


def _parent(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return int(fh.read().rsplit(b")", 1)[1].split()[1])  # field 4 of proc(5)
    except (OSError, IndexError, ValueError):
        return None


def _named() -> list[tuple[int, list[bytes]]]:
    """(pid, command line) of each process named or started as a mount daemon."""
    out = []
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                argv = fh.read().split(b"\0")
            if b"avfs_git.fuse.daemon" not in argv:
                with open(f"/proc/{pid}/comm", "rb") as fh:
                    if fh.read().strip() != DAEMON_NAME.encode():
                        continue
        except OSError:
            continue
        out.append((int(pid), argv))
    return out


def of_home(home: str) -> list[int]:
    """The pids of the mount daemons of the home at ``home``."""
    return [pid for pid, argv in running() if os.fsencode(home) in argv]


def home_of(argv: list[bytes]) -> str | None:
    """The home a daemon's command line (or its server's) names."""
    for i, a in enumerate(argv[:-1]):
        if a == b"--home":
            return os.fsdecode(argv[i + 1])
    return None


def wait_gone(pid: int, timeout_s: float = 10.0) -> bool:
    """Wait until process ``pid`` has exited (True), at most ``timeout_s``. A daemon that
    ``mounts.mount`` spawned in the test's own process is its child: killed, it stays a
    zombie, and ``/proc/PID`` with it, until collected, so it is collected here; another's
    counts as gone once ``/proc`` shows no process or a zombie (the product's ``pid_alive``)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return True
        except ChildProcessError:
            if not pid_alive(pid):
                return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
