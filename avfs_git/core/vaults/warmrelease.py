"""Asking a mount kept warm to go now: what deleting a fork or a vault, an undo that deletes
a fork, and ``gc`` do before they refuse because of a live mount.

A mount ``proxy exec`` (or ``exec_in``, MCP's ``exec``) made for a fork that was not mounted
is kept warm (``kept_warm`` in its registry record) so that the next call is fast; nobody
asked for it, so it must not stand in the way of what the person asks next (docs/fuse.md,
"Mounts kept warm"). :func:`release_kept_warm` writes a request file in each such mount's
own directory (``<vault>/avfs/mounts/<key>.d/release``: masked from confined commands) and
waits until the mount is gone; the daemon's idle timer (``fuse/idle.py``) sees the file at
its next tick, takes it away, and releases the mount as when its idle timeout passes: not
while a command runs in it or a process holds something in it. A mount someone asked for
(``avfs mount``) is never asked. What still stands after the wait is refused by the caller,
as before.

Standard library only (and :mod:`.registry`).
"""

from __future__ import annotations

import os
import time

from . import registry

# the request file in a mount's own directory
REQUEST_FILE = "release"
# how long a caller waits for kept-warm mounts to go: the idle timer's tick (at most 1 s),
# then an unmount and the daemon's teardown
WAIT_S = 10.0


def request_path(state_dir: str, key: str) -> str:
    """``<state_dir>/mounts/<key>.d/release``: the request to release mount ``key`` now."""
    return os.path.join(registry.mount_dir(state_dir, key), REQUEST_FILE)


def release_kept_warm(state_dir: str, key: str | None = None, wait_s: float = WAIT_S) -> list[str]:
    """Ask the live mounts kept warm of a vault (of mount ``key`` alone, when given) to
    release themselves, and wait (up to ``wait_s``) until each is gone or its daemon has
    answered by keeping it (a command runs in it, a process holds it). Returns the keys of
    the mounts that went. Mounts someone asked for are left alone."""
    from ..store.locks import pid_alive

    asked: dict[str, tuple[str, int]] = {}  # key -> (request file, daemon pid)
    for rec in registry.records(state_dir):
        if key is not None and rec.key != key:
            continue
        if not rec.data.get("kept_warm") or not registry.registered(rec):
            continue
        if not registry.is_mount_daemon(rec.pid):
            continue
        path = request_path(state_dir, rec.key)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError:
            continue  # its own directory gone: it is going anyway
        os.close(fd)
        asked[rec.key] = (path, rec.pid)
    gone: list[str] = []
    deadline = time.monotonic() + wait_s
    while asked:
        for k, (path, pid) in list(asked.items()):
            # gone once its daemon has ended: the teardown done, its locks let go
            if not pid_alive(pid) or not registry.is_mount_daemon(pid):
                gone.append(k)
                del asked[k]
            elif not os.path.exists(path):
                # taken by the daemon: releasing (the record says so) or kept (in use)
                data = registry.read_record(registry.record_path(state_dir, k))
                if data is not None and data.get("state") != "unmounting":
                    del asked[k]  # kept: the caller refuses, naming it
        if not asked or time.monotonic() >= deadline:
            break
        time.sleep(0.02)
    for path, _ in asked.values():  # not answered in time: the request would fire later
        try:
            os.unlink(path)
        except OSError:
            pass
    return gone
