"""A mount kept warm: the daemon of a mount ``proxy exec`` made for a fork that was not
mounted releases it itself once it has gone its idle timeout without use.

An agent that never mounts (``proxy exec`` from the CLI, MCP's ``exec``, ``exec_in``) would
pay a mount and an unmount (~1 s) on every command; so the first call mounts the fork and
leaves it mounted (``kept_warm`` in its registry record, with ``idle_timeout_s``), and the
calls after it find a live mount (the CLI's fast path hands them to this daemon's exec
server). What counts as use, each bringing the last use (the modification time of the
mount's ``activity`` file, :func:`~avfs_git.core.vaults.registry.touch_activity`) to now:

- a ``proxy exec`` this daemon serves (from its start to its answer) or that another
  process runs in the mount (``exec_in``, MCP's ``exec``, the CLI without a fast path:
  they touch the file when they reuse the mount and when their call ends);
- a FUSE call the daemon serves (pure FUSE: every call that reaches it; overlay: its lower
  layer's) and a change in an overlay mount's upper layer (its inotify journal);
- while the timeout has passed: a process with its working directory, root, executable or
  an open file in the mount keeps it (nothing is yanked away); so does the kernel, which
  refuses a plain (not lazy) unmount of a mount in use, mapped files included.

Releasing, in order: the fork's mount lock (against an adoption: ``avfs mount`` of the fork
makes it a mount that stays, ops/mounts.adopt) and its exec lock (a command running in the
mount from another process holds it), taken without waiting; the record read again (still
kept warm, still idle); the holders looked for; the record's state ``unmounting``; a plain
unmount (``umount`` of the overlay, ``fusermount3 -u`` of a pure-FUSE mount). The daemon
then ends as after ``avfs unmount`` (its teardown removes the registry record, the exec
file, the worktree (git's own state there kept for the fork's next mount:
mount/gitkeep.py) and the mount's own directory), the locks held until it has: a
``proxy exec`` waiting for the exec lock then finds no mount and mounts the fork anew.
Requests that reach the exec server while it releases are handed back to the client
(``fallback``), which runs them itself. Anything failing leaves the mount as it was.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import threading
import time
from collections.abc import Callable

log = logging.getLogger("avfs.fuse")

MIN_TICK_S = 0.05
# at most this between two looks (at the activity, and at a request to release now:
# core/vaults/warmrelease.py, which a person's `vault delete` or `gc` waits on)
MAX_TICK_S = 1.0


class IdleRelease:
    """The idle timer of one mount kept warm (``timeout_s`` > 0).

    ``counters``: callables whose values move when the mount is used (FUSE calls served,
    the upper layer's journal position); ``on_release``: called once the mount is
    unmounted (ready sandboxes ended)."""

    def __init__(
        self,
        state_dir: str,
        key: str,
        fork: str,
        record: str,
        mountpoint: str,
        backend: str,
        timeout_s: float,
        counters: list[Callable[[], int]],
        on_release: Callable[[], None] | None = None,
    ) -> None:
        self.state_dir = state_dir
        self.key = key
        self.fork = fork
        self.record = record
        self.mountpoint = mountpoint  # resolved: a lookup of it would be a request to us
        self.backend = backend
        self.timeout_s = timeout_s
        self.counters = counters
        self.on_release = on_release
        self.tick_s = min(max(timeout_s / 10.0, MIN_TICK_S), MAX_TICK_S)
        self._lock = threading.Lock()
        self._in_flight = 0
        self.releasing = False
        self._stop = threading.Event()
        self._held: contextlib.ExitStack | None = None  # the locks, kept until the process ends
        self._seen: list[int] = []

    # -- use -------------------------------------------------------------------------------
    def touch(self) -> None:
        from ..core.vaults.registry import touch_activity

        touch_activity(self.state_dir, self.key)

    def enter(self) -> bool:
        """A ``proxy exec`` request came: False when the mount is being released (the
        client then runs the call itself)."""
        with self._lock:
            if self.releasing:
                return False
            self._in_flight += 1
        self.touch()
        return True

    def leave(self) -> None:
        with self._lock:
            self._in_flight -= 1
        self.touch()

    # -- the timer -------------------------------------------------------------------------
    def start(self) -> None:
        self.touch()
        self._seen = self._counts()
        threading.Thread(target=self._run, name="avfs-idle", daemon=True).start()

    def close(self) -> None:
        self._stop.set()

    def _counts(self) -> list[int]:
        out = []
        for fn in self.counters:
            try:
                out.append(int(fn()))
            except Exception:
                out.append(-1)
        return out

    def _kept_warm(self) -> bool:
        """False once adopted (``kept_warm`` cleared); a record gone (the home removed
        under the mount) still counts: the mount goes after its timeout like any other."""
        from ..core.vaults.registry import read_record

        data = read_record(self.record)
        return data is None or bool(data.get("kept_warm"))

    def _idle_for(self) -> float:
        from ..core.vaults.registry import last_activity

        last = last_activity(self.state_dir, self.key)
        if last is None:  # its own directory gone: with the vault, idle for good
            return 0.0 if os.path.isdir(self.state_dir) else float("inf")
        return time.time() - last

    def _run(self) -> None:
        while not self._stop.wait(self.tick_s):
            try:
                if not self._kept_warm():
                    return  # adopted (`avfs mount`, --keep-mount): it stays
                now = self._counts()
                if now != self._seen:
                    self._seen = now
                    self.touch()
                    continue
                if self._asked():
                    if self.release(asked=True):
                        return
                    self._answered()  # kept (in use): the one who asked refuses, naming it
                    continue
                with self._lock:
                    busy = self._in_flight > 0
                if busy or self._idle_for() < self.timeout_s:
                    continue
                if self.release():
                    return
            except Exception:
                log.exception("the idle timer of a mount kept warm")

    def _asked(self) -> bool:
        """Whether someone asked for the mount to go now (``vault delete``, ``gc``: see
        :mod:`~avfs_git.core.vaults.warmrelease`)."""
        from ..core.vaults.warmrelease import request_path

        return os.path.exists(request_path(self.state_dir, self.key))

    def _answered(self) -> None:
        from ..core.vaults.warmrelease import request_path

        with contextlib.suppress(OSError):
            os.unlink(request_path(self.state_dir, self.key))

    def release(self, asked: bool = False) -> bool:
        """Unmount now if the mount is idle (or ``asked``: someone asked for it to go, the
        timeout does not count) and nothing holds it; True when it is gone."""
        from ..core.errors import BusyError
        from ..core.store.locks import exec_lock_path, file_lock, mount_lock_path
        from ..core.vaults import registry
        from ..ops.mounts import mount_holders

        with self._lock:
            if self._in_flight:
                return False
            self.releasing = True
        stack = contextlib.ExitStack()
        try:
            orphan = not os.path.isdir(self.state_dir)  # the vault (or home) removed meanwhile
            try:
                for path in (
                    mount_lock_path(self.state_dir, self.fork),
                    exec_lock_path(self.state_dir, self.fork),
                ):
                    if orphan:
                        break  # no lock to take, and nothing to make there
                    os.makedirs(os.path.dirname(path), exist_ok=True)
                    stack.enter_context(file_lock(path, what="an idle mount", wait_s=0))
            except BusyError:
                return False  # a command runs in the mount, or it is being adopted
            data = registry.read_record(self.record)
            if (data is not None and not data.get("kept_warm")) or (
                not orphan and not asked and self._idle_for() < self.timeout_s
            ):
                return False
            holders = mount_holders(self.mountpoint)
            if holders:
                return False  # looked at again at the next tick
            if data is not None:
                data["state"] = "unmounting"
                data["released"] = "asked" if asked else "idle"
                registry.write_record(self.record, data)
            if self.backend == "overlay":
                cmd = ["umount", self.mountpoint]
            else:
                cmd = ["fusermount3", "-u", self.mountpoint]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                # in use after all (a mapped file, a process that came meanwhile): stays
                if data is not None:
                    data["state"] = "mounted"
                    data.pop("released", None)
                    registry.write_record(self.record, data)
                log.info("idle mount still in use, kept: %s", proc.stderr.strip())
                return False
            if asked:
                log.warning("released on request (kept warm for proxy exec; a fork or vault deleted, gc)")
            else:
                log.warning("released after %.0f s without use (kept warm for proxy exec)", self.timeout_s)
            self._held, stack = stack, contextlib.ExitStack()  # held until this process ends
            if self.on_release is not None:
                self.on_release()
            return True
        finally:
            stack.close()
            if self._held is None:
                with self._lock:
                    self.releasing = False
