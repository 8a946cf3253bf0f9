"""The walk of an overlay mount's lower layer that its daemon starts once the mount is ready,
and that stands aside while git runs ``status``.

Each directory listing (readdirplus) of the read-only FUSE lower brings its entries'
attributes into the kernel's cache for good, so a later walk, ``find`` or build over the
mount finds them there instead of asking Python one lookup at a time. At 100k files the walk
takes ~5-10 s of the daemon's time (a listing of each of ~1,000 directories, in Python).

git's first ``status`` after mounting needs none of it: the index avfs wrote (fsmonitor
token, untracked cache) makes git list only the directories the hook names, but each of
those that merges an upper and a lower half is listed by overlayfs with one lookup per lower
entry (``xino``), a round trip into the same daemon, and each such request waited behind the
walk's: that first status took 1.1-1.4 s instead of 0.31-0.35 s without the walk (100k files,
native 0.21-0.23 s; docs/benchmarks.md). So the daemon tells the walk about every query of
git's fsmonitor hook (the first thing ``git status`` does), and the walk lists nothing more
until :data:`PAUSE_S` have passed without one.

Nor does anything else that uses the mount: a process's first reads after mounting (a lazy
fork's test run right after ``ls`` answered, a build, an agent's first command) each
waited behind the walk's listings, which took the daemon's Python from them: a cold lazy
mount's Django test run took 4.4-4.6 s with the walk beside it against 2.7-2.8 s without
(the daemon's CPU during it 2.1 s against 0.5 s: 15,000 of its 17,000 calls were the
walk's). So every FUSE request from another process than the walk's
(:meth:`Warm.asked_by`, called by :class:`.libfuse.FastFUSE` for each request while the walk
is not over) is a pause too: the walk takes the mount's quiet moments only.

A lazy fork's mount starts the walk once its git index is written (fuse/settle.py): before
its sizes are known the walk's listings only wait on them, and they take the daemon's
Python from the index that git's first ``status`` waits for (20,538 files: that wait went
from 2.2-10 s to 1.2-2.6 s on a loaded machine, docs/scale.md).

The walk is a child process (``python -I -S`` running this file: standard library only), not
a thread of the daemon: a thread of the daemon waiting on a request to its own mount kept a
daemon killed with -9 from exiting. It reads the daemon's signals from a pipe; the pipe's end
of file (the daemon gone, or closing) ends it at once. Its process imports only ``os``,
``select``, ``sys`` and ``time``: ``subprocess`` and ``threading``, the daemon's side's, are
imported where the daemon uses them (they were 20-25 ms of the walk's ~35 ms of CPU, on every
overlay mount: docs/benchmarks.md, "The mount daemon's start and an unmount").
"""

from __future__ import annotations

import os
import select
import sys
import time

TYPE_CHECKING = False  # (not `from typing`: the walk's process does without it)
if TYPE_CHECKING:
    import subprocess

DEVNULL = -3  # subprocess.DEVNULL (checked by tests/test_mountstart.py)

PAUSE_S = 2.0  # quiet after a hook query before the walk goes on (a first status: ~0.3 s)
# another process's requests pause the walk at most this often (a pause is a write to a
# pipe; the walk waits PAUSE_S after the last one it read)
ASKED_EVERY_S = 0.05


class Warm:
    """The walk of ``lower``, started by :meth:`start`, paused by :meth:`pause` (also before
    it started: a ``git status`` can come between the mount's readiness and the start).
    ``stdout``: where the walk prints how many directories it listed."""

    def __init__(self, lower: str, pause_s: float = PAUSE_S, stdout: int = DEVNULL) -> None:
        import threading

        self.lower = lower
        self.pause_s = pause_s
        self.stdout = stdout
        self.proc: subprocess.Popen[bytes] | None = None
        self._rfd: int | None = None
        self._wfd: int | None = None
        self._closed = False
        self._lock = threading.Lock()
        self.over = False  # the walk ended (or will never run): nothing pauses it any more
        self._asked_at = -ASKED_EVERY_S
        self._own = os.getpid()  # the daemon: its own listings (the merged directories) are no one's wait

    def _pipe(self) -> int:
        if self._closed:
            raise OSError("closed")
        if self._wfd is None:
            self._rfd, self._wfd = os.pipe2(os.O_CLOEXEC)
            os.set_blocking(self._wfd, False)  # a walk that does not read never holds the daemon up
        return self._wfd

    def start(self) -> None:
        """Start the walk in the background; nothing when it cannot start (the walk only
        saves later lookups)."""
        import subprocess
        import threading

        with self._lock:
            if self.proc is not None or self._closed:
                return
            self._pipe()
            rfd, self._rfd = self._rfd, None
            assert rfd is not None
            try:
                self.proc = subprocess.Popen(
                    [sys.executable, "-I", "-S", __file__, self.lower, str(rfd), repr(self.pause_s)],
                    stdin=subprocess.DEVNULL,
                    stdout=self.stdout,
                    stderr=subprocess.DEVNULL,
                    pass_fds=(rfd,),
                )
            except OSError:
                self.over = True
                return
            finally:
                os.close(rfd)
        threading.Thread(target=self._wait, args=(self.proc,), name="avfs-warm", daemon=True).start()

    def _wait(self, proc: subprocess.Popen[bytes]) -> None:
        proc.wait()
        self.over = True

    def asked_by(self, pid: int) -> None:
        """A FUSE request from process ``pid`` (0: the kernel's own) is being served: unless
        it is the walk's or the daemon's own, the walk stands aside (:meth:`pause`, at most
        every :data:`ASKED_EVERY_S`)."""
        if pid == 0 or pid == self._own or self.over:
            return
        proc = self.proc
        if proc is not None and pid == proc.pid:
            return
        now = time.monotonic()
        if now - self._asked_at >= ASKED_EVERY_S:  # (threads racing here: a pause too many)
            self._asked_at = now
            self.pause()

    def pause(self) -> None:
        """git is about to list directories: the walk stands aside for ``pause_s``."""
        with self._lock:
            try:
                os.write(self._pipe(), b"p")
            except BlockingIOError:
                pass  # the pipe is full of pauses the walk has not read yet: it will
            except OSError:
                pass  # the walk is over (its end of the pipe closed)

    def close(self) -> None:
        """End the walk (at its next directory: the end of the pipe it reads)."""
        with self._lock:
            for fd in (self._rfd, self._wfd):
                if fd is not None:
                    os.close(fd)
            self._rfd = self._wfd = None
            self._closed = True
            self.over = True


def _go_on(fd: int, pause_s: float) -> bool:
    """Wait while the daemon asks for quiet; False when it is gone (end of file)."""
    timeout = 0.0
    while select.select([fd], [], [], timeout)[0]:
        if not os.read(fd, 4096):
            return False
        timeout = pause_s  # a pause: wait until one has passed without another
    return True


def walk(root: str, fd: int, pause_s: float) -> int:
    """List every directory below ``root`` (not following symbolic links), asking ``fd``
    before each one; the number of directories listed."""
    stack = [root]
    listed = 0
    while stack:
        if not _go_on(fd, pause_s):
            break
        path = stack.pop()
        try:
            with os.scandir(path) as it:
                listed += 1
                for de in it:
                    try:
                        if de.is_dir(follow_symlinks=False):
                            stack.append(de.path)
                    except OSError:
                        continue
        except OSError:
            continue
    return listed


if __name__ == "__main__":
    print(walk(sys.argv[1], int(sys.argv[2]), float(sys.argv[3])))
