"""The mount daemons running on this machine, as tests look for them in /proc: one started
with exec by its command line (``python -m avfs_git.fuse.daemon --home H ...``), one forked
from a home's warm CLI server (cli/warmdaemon.py) by its process name, its command line
being the server's (``python -m avfs_git.cli.resident --home H``); one forked from a
process's zygote (ops/warmstart.py) by the command line it writes, a spawned one's with
``--forked`` after (and the zygote's room zeroed: empty words at its end). A daemon's own child
(a ``git`` it runs) has both its name and command line until its ``execve``: it is no
daemon, and not listed."""

from __future__ import annotations

import os
import time

from avfs_git.core.store.locks import pid_alive
from avfs_git.core.vaults.daemonproc import DAEMON_NAME

# pids below this are never handed out again once the allocator wraps (the kernel's
# RESERVED_PIDS)
_RESERVED = 300
# what /proc does not show: tasks that came and went while the allocator skipped past pids
# in use (it may skip one a fork for each task alive); a margin on top of those alive now
_SLACK = 2048


def running(since: tuple[int, int] | None = None) -> list[tuple[int, list[bytes]]]:
    """(pid, command line) of each mount daemon; with ``since`` (a :func:`pid_mark`), of
    each started after the mark (all of them when the pids handed out since may have gone
    round past it)."""
    found = {pid: argv for pid, argv in _named(_new_pids(since) if since is not None else None)}
    return [
        (pid, argv)
        for pid, argv in found.items()
        if (ppid := _parent(pid)) not in found
        and not (since is not None and ppid is not None and _is_named(ppid))
    ]


def pid_mark() -> tuple[int, int]:
    """This pid namespace's last pid handed out, and the machine's count of forks (threads
    included): what :func:`running` needs to read only the processes started since, in
    two small reads rather than two of every process in /proc (a test's teardown asks:
    at 500-700 processes, 10-17 ms of CPU a test)."""
    return _last_pid(), _forks()


def _last_pid() -> int:
    with open("/proc/sys/kernel/ns_last_pid", "rb") as fh:
        return int(fh.read())


def _forks() -> int:
    with open("/proc/stat", "rb") as fh:
        for line in fh:
            if line.startswith(b"processes "):
                return int(line.split()[1])
    raise OSError("no fork count in /proc/stat")


def _new_pids(since: tuple[int, int]) -> set[int] | None:
    """The pids in /proc handed out after ``since`` (allocation goes round: those in the
    cyclic range after the mark up to the last), or None (every pid) when the allocator may
    have gone round past the mark: it moves one place a fork at least, and skips pids in
    use (at most one a task alive)."""
    start, forks = since
    end = _last_pid()
    with open("/proc/sys/kernel/pid_max", "rb") as fh:
        pid_max = int(fh.read())
    with open("/proc/loadavg", "rb") as fh:
        tasks = int(fh.read().split()[3].split(b"/")[1])  # running/total
    if _forks() - forks + tasks + _SLACK >= pid_max - _RESERVED:
        return None
    pids = {int(p) for p in os.listdir("/proc") if p.isdigit()}
    if end >= start:
        return {p for p in pids if start < p <= end}
    return {p for p in pids if p > start or p <= end}


def _parent(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return int(fh.read().rsplit(b")", 1)[1].split()[1])  # field 4 of proc(5)
    except (OSError, IndexError, ValueError):
        return None


def _named(pids: set[int] | None = None) -> list[tuple[int, list[bytes]]]:
    """(pid, command line) of each process named or started as a mount daemon (of
    ``pids``, or of every process)."""
    out = []
    if pids is None:
        pids = {int(p) for p in os.listdir("/proc") if p.isdigit()}
    for pid in pids:
        argv = _argv_if_named(pid)
        if argv is not None:
            out.append((pid, argv))
    return out


def _argv_if_named(pid: int) -> list[bytes] | None:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            argv = fh.read().split(b"\0")
        if b"avfs_git.fuse.daemon" not in argv:
            with open(f"/proc/{pid}/comm", "rb") as fh:
                if fh.read().strip() != DAEMON_NAME.encode():
                    return None
    except OSError:
        return None
    return argv


def _is_named(pid: int) -> bool:
    return _argv_if_named(pid) is not None


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


def server_of(pid: int, home: str) -> bool:
    """Whether ``pid`` is the resident CLI server of ``home`` (by its command line: ``python
    -m avfs_git.cli.resident --home HOME``): what a test asks before it signals a server's
    pid found earlier, which may be another process's by then
    (:func:`~avfs_git.core.store.locks.signal_process`)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            argv = fh.read().split(b"\0")
    except OSError:
        return False
    if b"avfs_git.cli.resident" not in argv or b"--home" not in argv[:-1]:
        return False
    return os.path.realpath(argv[argv.index(b"--home") + 1]) == os.path.realpath(home.encode())


def servers_under(root: str, since: tuple[int, int] | None = None) -> list[tuple[int, list[bytes]]]:
    """(pid, command line) of each resident CLI server (``python -m avfs_git.cli.resident
    --home H``) whose home is under directory ``root``; with ``since`` (a :func:`pid_mark`),
    of those started after the mark (all of them when the pids may have gone round). What
    a server forked (its spare, a call's process, a mount daemon) has its command line and
    is no server: a process whose parent is one is left out."""
    prefix = os.fsencode(root.rstrip("/") + "/")
    pids = _new_pids(since) if since is not None else None
    if pids is None:
        pids = {int(p) for p in os.listdir("/proc") if p.isdigit()}
    out = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                argv = fh.read().split(b"\0")
        except OSError:
            continue
        if b"avfs_git.cli.resident" not in argv or b"--home" not in argv[:-1] or _is_named(pid):
            continue
        if argv[argv.index(b"--home") + 1].startswith(prefix):
            out.append((pid, argv))
    found = {pid for pid, _ in out}
    return [(pid, argv) for pid, argv in out if _parent(pid) not in found]
