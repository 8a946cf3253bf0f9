"""Inter-process locks with a bounded wait.

A lock is ``flock`` on a file under the vault's state dir: the kernel drops it when the
holder dies, so a killed process never leaves a stale lock behind. Waiting is bounded;
past the bound the caller gets :class:`BusyError` (exit 75) naming the lock.

Within one process, a lock is re-entrant per thread (a checkpoint taken inside a restore
does not deadlock on its own fork lock).
"""

from __future__ import annotations

import errno
import fcntl
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ..errors import BusyError, from_oserror
from ..settings import DEFAULT_LOCK_WAIT_S
from .names import fs_name

DEFAULT_WAIT_S = DEFAULT_LOCK_WAIT_S

_held = threading.local()


@contextmanager
def file_lock(path: str, *, what: str, wait_s: float | None = None) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` for the duration of the ``with`` block.

    Args:
        path: the lock file (created if missing).
        what: how to name the locked thing in the busy error ("fork main of vault x").
        wait_s: how long to wait before giving up (default :data:`DEFAULT_WAIT_S`; a vault's
            own wait, from ``$AVFS_LOCK_WAIT``, is ``Vault.lock_wait_s``).
    """
    with FileLocks(((path, what),), wait_s):
        yield


class FileLocks:
    """:func:`file_lock` of several files, taken in the order given and released in the
    reverse order, as one context manager: a fork holds two (its source's and its new
    name's), and a generator and an ``ExitStack`` a lock cost as much as its system calls.
    Re-entrant per thread as :func:`file_lock` is (a path this thread holds is counted,
    not locked again). Not re-entrant itself: one ``with`` an instance."""

    __slots__ = ("_held", "_items", "_shared", "_taken", "_wait_s")

    def __init__(
        self,
        items: tuple[tuple[str, str], ...] | list[tuple[str, str]],
        wait_s: float | None,
        *,
        shared: bool = False,
    ) -> None:
        """``shared``: each taken shared (``LOCK_SH``: many holders at once, none while
        one holds it exclusively), as every mount's start takes its vault's mount gate."""
        self._items = items
        self._wait_s = DEFAULT_WAIT_S if wait_s is None else wait_s
        self._shared = shared
        self._taken: list[tuple[str, int | None]] = []
        self._held: dict[str, int] = {}

    def __enter__(self) -> None:
        held: dict[str, int] | None = getattr(_held, "locks", None)
        if held is None:
            held = _held.locks = {}
        self._held = held
        try:
            for path, what in self._items:
                if path in held:
                    held[path] += 1
                    self._taken.append((path, None))
                    continue
                fd = _lock_fd(path, what, self._wait_s, time.monotonic() + self._wait_s, self._shared)
                held[path] = 1
                self._taken.append((path, fd))
        except BaseException:
            self._release()
            raise

    def __exit__(self, *_exc: object) -> None:
        self._release()

    def _release(self) -> None:
        held, taken = self._held, self._taken
        while taken:
            path, fd = taken.pop()
            if fd is None:
                held[path] -= 1
                continue
            del held[path]
            try:
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)


# A busy lock is polled (``flock`` has no timeout): every :data:`POLL_S` for the first
# :data:`QUICK_S` of a wait, then doubling, up to every :data:`SLOW_POLL_S`. Most holders
# are short (a fork, a checkpoint, a fork's spare made after its answer: a snapshot's
# transaction commit, 3-57 ms under load), and a waiter wakes up to one poll after the
# holder lets go: a wait that doubled from 2 ms (2, 4, 8, 16 ... ms) overshot a 15 ms hold
# by 15 ms. Past the quick part the poll backs off, so a long wait costs little CPU.
POLL_S = 0.001
QUICK_S = 0.1
SLOW_POLL_S = 0.05


def next_poll(delay: float, left_s: float, wait_s: float) -> float:
    """The sleep before the next try of a busy lock, after one of ``delay`` with
    ``left_s`` of a ``wait_s`` bound left."""
    if wait_s - left_s < QUICK_S:
        return POLL_S
    return min(delay * 2, SLOW_POLL_S)


def _lock_fd(path: str, what: str, wait_s: float, deadline: float, shared: bool = False) -> int:
    """Open ``path`` and flock it (waiting until ``deadline``); the fd holding the lock.

    The lock counts only when ``path`` still names the file locked: a lock file unlinked
    (``avfs prune`` of a stale one) between our open and our flock would otherwise let a
    second process lock a new file of that name at the same time. So after the flock the
    fd and the path are compared, and on a mismatch the file is opened again.
    """
    delay = POLL_S
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise from_oserror(exc, path) from exc
        try:
            while True:
                try:
                    fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                        raise from_oserror(exc, path) from exc
                    if time.monotonic() >= deadline:
                        raise BusyError(
                            f"{what} is busy: another avfs process holds its lock",
                            hint="retry when the other command has finished",
                            details={"lock": path, "waited_s": wait_s},
                        ) from None
                    time.sleep(delay)
                    delay = next_poll(delay, deadline - time.monotonic(), wait_s)
            mine = os.fstat(fd)
            try:
                now = os.stat(path)
            except FileNotFoundError:
                now = None
        except BaseException:
            os.close(fd)
            raise
        if now is not None and (now.st_dev, now.st_ino) == (mine.st_dev, mine.st_ino):
            return fd
        os.close(fd)  # unlinked (or replaced) while we waited: lock the file there now


def remove_unused(path: str, unused: Callable[[], bool]) -> bool:
    """Unlink the lock file ``path`` when nobody holds it and ``unused()`` (asked under its
    flock) says nothing will take it again (the fork it locked is gone): a deleted fork
    leaves no lock file behind. Safe against a waiter: :func:`_lock_fd` compares its fd
    with the path after locking and locks a new file when this one was unlinked. Returns
    whether it was removed."""
    held: dict[str, int] = getattr(_held, "locks", None) or {}
    if path in held:
        return False  # this thread holds it: its holder releases it
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False  # held elsewhere: in use
        try:
            same = os.stat(path, follow_symlinks=False)
        except FileNotFoundError:
            return False
        mine = os.fstat(fd)
        if (same.st_dev, same.st_ino) != (mine.st_dev, mine.st_ino) or not unused():
            return False
        os.unlink(path)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def wait_free(path: str) -> None:
    """Wait, without a bound, until no process holds the lock ``path``; at once when nobody
    does or the file is missing. Held shared for a moment only: a process that tries to
    take it meanwhile waits as it does for any holder (:func:`_lock_fd`). For work that only
    matters once a holder is done (a mount daemon's, while the call that mounted it runs).
    Never from a thread that holds it itself (:func:`file_lock`): it would wait for itself."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        fcntl.flock(fd, fcntl.LOCK_UN)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_lock_path(state_dir: str, fork: str) -> str:
    """The lock of ``fork``'s optimistic writes (``expect``: held from the check to the
    write); named like :func:`exec_lock_path`."""
    return os.path.join(state_dir, "locks", ".write-" + fs_name(fork) + ".lock")


def exec_lock_path(state_dir: str, fork: str) -> str:
    """The lock a ``proxy exec`` holds on ``fork`` from its checkpoint before to its commit
    after; :func:`.checkpoint.save` takes it too, so a checkpoint never splits a command's
    changes between two commits. A leading '.': no fork's own lock file can have this name."""
    return os.path.join(state_dir, "locks", ".exec-" + fs_name(fork) + ".lock")


def mount_lock_path(state_dir: str, fork: str) -> str:
    """The lock between a mount daemon releasing its idle mount of ``fork`` (kept warm for
    ``proxy exec``) and a process adopting that mount as one to keep (``avfs mount``,
    ``--keep-mount``): held for moments, never while a command runs."""
    return os.path.join(state_dir, "locks", ".mount-" + fs_name(fork) + ".lock")


MOUNT_GATE = ".mounts"  # (a vault-wide lock's name: no fork name starts with ".")


def mount_gate_path(state_dir: str) -> str:
    """The vault's mount gate: every mount's start holds it shared until its daemon is
    recorded, a vault's delete holds it alone while it checks the mounts and moves the
    vault to the trash (one descriptor, however many forks the vault has)."""
    return os.path.join(state_dir, "locks", MOUNT_GATE + ".lock")


def pid_ns() -> str | None:
    """This process's PID namespace (``pid:[INODE]``), None where /proc cannot say."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def judged_here(data: dict[str, object]) -> bool:
    """Whether a mount record's daemon pid (``data``'s) means something in this PID
    namespace: the daemon's was recorded and is this one's, or none was (a daemon of
    before the fortieth round). Seen from another namespace (a container or a
    sandbox sharing the home) every daemon's pid looks gone, and a command there aborted
    and unmounted the person's live mount (review45 C)."""
    ns = data.get("pid_ns")
    return ns is None or ns == pid_ns()


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie does not: PID 1 of a container may be slow to
    reap; another user's process does)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def start_ticks(pid: int) -> int | None:
    """When process ``pid`` started, in clock ticks after boot (``/proc/PID/stat`` field 22):
    with its pid, what names one process (the kernel gives a pid again, never at the same
    tick); None when it cannot be read (gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return int(fh.read().rsplit(b")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def signal_process(
    pid: int, sig: int, *, ticks: int | None = None, is_it: Callable[[int], bool] | None = None
) -> bool:
    """Send ``sig`` to process ``pid``, found earlier, only if it is still that process: the
    one that started at ``ticks`` (:func:`start_ticks` when it was found), and of which
    ``is_it(pid)`` says so (its command line, say). A pid found earlier may have been given
    to another process since (the one found ended and was collected): the check is made
    after a pidfd is opened on the pid (Linux 5.3) and the signal sent on that pidfd, so what
    was checked is what gets it; without pidfds, checked and sent by pid (a moment's window).
    True when sent; False when the process is gone or is another. Never for a child of ours
    not yet collected (its pid is not given again): ``os.kill`` is right there."""
    import signal as _signal

    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return False
    except (OSError, AttributeError):  # no pidfd here
        fd = -1
    try:
        if ticks is not None and start_ticks(pid) != ticks:
            return False
        if is_it is not None and not is_it(pid):
            return False
        if fd >= 0:
            _signal.pidfd_send_signal(fd, sig)
        else:
            os.kill(pid, sig)
        return True
    except ProcessLookupError:
        return False
    finally:
        if fd >= 0:
            os.close(fd)


def flock_held(path: str) -> bool:
    """True when some process holds a flock on ``path`` (or it cannot be told); False when
    the file is gone or free. Used to tell a live writer's files from a killed one's."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    except OSError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # closing drops our flock
    return False
