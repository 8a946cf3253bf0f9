"""Which process a mount record's pid names: a mount daemon (by its command line or its
process name, or the moment before the kernel has set them), when it started, whether it is the daemon of a given
vault and home; for :mod:`.registry`'s liveness rules (which re-exports them).

Moved here from :mod:`.registry` unchanged but for the just-started case (the registry was at
the module size limit). Standard library only (and :mod:`..store.locks`), as the registry.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Iterator

START_SLACK_S = 2.0  # /proc's boot time is whole seconds; a record's start time too
# the name a mount daemon gives its process (``/proc/PID/comm``, ``prctl(PR_SET_NAME)``):
# a daemon forked from the warm CLI server (cli/warmdaemon.py) carries the server's
# command line, not ``python -m avfs_git.fuse.daemon ...``; this name is what says it is
# one (a daemon started with ``exec`` sets it too). 15 bytes at most (the kernel's limit).
DAEMON_NAME = "avfs-mountd"
MARKER = b"avfs_git.fuse.daemon"  # in the command line of a daemon started with exec


def is_mount_daemon(pid: int) -> bool:
    """Whether ``pid`` runs a mount daemon (not a process that reused a dead one's pid):
    its command line runs the daemon's module, or its process is named
    :data:`DAEMON_NAME` (a daemon forked from a warm process); whatever /proc does not
    tell counts as one.

    A daemon just started has no command line for a moment: ``posix_spawn`` returns once
    the child's ``execve`` has let go of the parent's memory, and the kernel sets the new
    image's arguments a little later (under load, tens of ms: seen empty in 3 reads of 4
    made right after the spawn). An empty command line of a live process that is not a
    kernel thread is that moment, and counts as one; a zombie's (also empty) does not."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            cmdline = fh.read()
    except FileNotFoundError:
        return False
    except OSError:
        return True  # no /proc to ask: trust the pid
    if cmdline:
        return MARKER in cmdline or process_name(pid) == DAEMON_NAME
    return _execing(pid)


def process_name(pid: int) -> str | None:
    """The name of process ``pid`` (``/proc/PID/comm``); None when it cannot be read."""
    try:
        with open(f"/proc/{pid}/comm", "rb") as fh:
            return fh.read().rstrip(b"\n").decode("utf-8", "replace")
    except OSError:
        return None


def _execing(pid: int) -> bool:
    """Whether ``pid``, whose command line is empty, is a process in the middle of its
    ``execve``: not a zombie, not a kernel thread, and not a process on its way out (a
    daemon killed with -9 lets go of its memory, and so of its command line, before it is a
    zombie: the kernel marks it exiting first)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return False  # gone meanwhile
    state, flags = fields[0], int(fields[6])  # fields 3 and 9 of proc(5)
    return state not in (b"Z", b"X") and not flags & (PF_EXITING | PF_KTHREAD)


PF_EXITING = 0x00000004  # include/linux/sched.h
PF_KTHREAD = 0x00200000


def process_start(pid: int) -> float | None:
    """When process ``pid`` started (seconds since the epoch), from /proc; None if unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
        ticks = int(fields[19])  # field 22 (starttime): fields after the name start at 3
        with open("/proc/stat", "rb") as fh:
            btime = next(int(line.split()[1]) for line in fh if line.startswith(b"btime "))
    except (OSError, IndexError, ValueError, StopIteration):
        return None
    return btime + ticks / os.sysconf("SC_CLK_TCK")


def _arg(argv: list[str], name: str) -> str | None:
    for i, a in enumerate(argv[:-1]):
        if a == name:
            return argv[i + 1]
    return None


def daemon_alive(pid: int, vault: str, home_path: str | None, started: float | None) -> bool:
    """Whether ``pid`` is a running mount daemon of vault ``vault`` (of the home at
    ``home_path``, when given) that started no later than ``started`` (when given). Not
    alive: no such process, a zombie, a process that is no avfs program at all, one whose
    command line names another vault or home, one that started after ``started`` (the
    kernel reused the pid). Whatever /proc does not tell (another user's process under
    ``hidepid``, a daemon started with other arguments, any process in the moment after its
    spawn when its command line is not set yet: :func:`is_mount_daemon`) counts as alive:
    nothing of a live mount is ever removed on a guess. A daemon forked from the warm CLI
    server (named :data:`DAEMON_NAME`) has the server's command line, which says nothing
    of its vault: its start time alone decides; the server itself (``avfs_git.cli.resident
    --home ...``) is no daemon. What ``doctor`` asks before it removes anything."""
    from ..store.locks import pid_alive

    if pid <= 0 or not pid_alive(pid):
        return False
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        return False
    except OSError:
        return True
    if not raw:
        return _execing(pid)  # just started: its arguments not set yet (is_mount_daemon)
    argv = [a.decode("utf-8", "surrogateescape") for a in raw.split(b"\0")]
    if MARKER not in raw:  # a daemon forked from a warm process, or no daemon at all
        return process_name(pid) == DAEMON_NAME and _started_by(pid, started)
    name = _arg(argv, "--vault")
    if name is not None and name != vault:
        return False
    home = _arg(argv, "--home")
    if home is not None and home_path is not None and os.path.realpath(home) != os.path.realpath(home_path):
        return False
    return _started_by(pid, started)


def _started_by(pid: int, started: float | None) -> bool:
    """Whether ``pid`` started no later than ``started`` (when given and known): else the
    kernel gave the pid to a new process after the daemon wrote its record."""
    if started is not None:
        began = process_start(pid)
        if began is not None and began > started + START_SLACK_S:
            return False
    return True


# while :func:`serving_kept` is entered: (vault's state dir, mount key, pid, mount point) ->
# whether that daemon served that mount when first asked, per thread and task
_serving: contextvars.ContextVar[dict[tuple[str, str, int, str], bool] | None] = contextvars.ContextVar(
    "avfs_serving_kept", default=None
)


@contextlib.contextmanager
def serving_kept() -> Iterator[dict[tuple[str, str, int, str], bool]]:
    """While it is entered, whether a mount's daemon serves its mount point (the
    kernel's mount table and the daemon's command line read: mount/ownfiles.py
    ``daemon_serves``) is read once per daemon and mount point; a daemon that has exited
    since is still seen (its pid is looked at every time). A merge into a mounted fork asks
    it ~9 times (each step that writes through the mount or tells its daemon), ~0.2-1.5 ms
    each under load (h-merge15). Nested, the outermost keeps them; nothing is kept past
    its end."""
    memo = _serving.get()
    if memo is not None:
        yield memo
        return
    memo = {}
    token = _serving.set(memo)
    try:
        yield memo
    finally:
        _serving.reset(token)


def serving_memo() -> dict[tuple[str, str, int, str], bool] | None:
    """The answers :func:`serving_kept` keeps now (None: not entered)."""
    return _serving.get()
