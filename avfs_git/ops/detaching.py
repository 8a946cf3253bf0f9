"""Detaching a mount point: lazily, and a killed FUSE daemon's ``fusermount3`` helper
ended first (moved out of :mod:`.mounts`, which re-exports both); a dead daemon's FUSE
connection aborted (:func:`abort_dead`)."""

from __future__ import annotations

import os
import subprocess

from ..core.store.locks import signal_process


def abort_dead(mountpoint: str, source: str | None = None) -> bool:
    """Abort the FUSE connection mounted at ``mountpoint`` (of ``source``, when given:
    ``avfs:VAULT:KEY``), whose daemon the caller found gone; True when one was aborted.
    Asked before anything touches the mount point.

    A daemon killed while one of its own threads waited in a request to its own mount (a
    ``stat`` there, or a listing through the overlay stacked on it: the request was read by
    a thread the kill ended) never ends: FUSE lets no signal interrupt a request the daemon
    has read, so that thread waits for an answer only the dead threads could give, and the
    process, a zombie, keeps ``/dev/fuse`` open. Its connection then lives on, unanswered:
    every later request to the mount (a person's ``ls``, doctor's ``statvfs``) waits with
    it, and ``auto_unmount``'s helper never unmounts. Aborting the connection (what
    ``umount -f`` does to a FUSE mount) fails every request with ``ENOTCONN``, that
    thread's too, and the process ends. The connection is found by the mount's device
    numbers in mountinfo (:func:`..core.vaults.mountinfo.abort_connection`), never by a
    ``stat`` of the mount point; writing its ``abort`` needs the mount's owner (or root)
    and fusectl mounted (systemd does; else nothing is done: False)."""
    from ..core.vaults.mountinfo import abort_connection
    from ..core.vaults.registry import resolved_mountpoint

    return abort_connection(resolved_mountpoint(mountpoint), source)


def force_unmount(mountpoint: str) -> None:
    """Detach a mount point now (lazily): for dead mounts and cleanup paths."""
    for cmd in (["fusermount3", "-u", "-z", mountpoint], ["umount", "-l", mountpoint]):
        try:
            if subprocess.run(cmd, capture_output=True, check=False).returncode == 0:
                return
        except FileNotFoundError:
            continue


def detach(mountpoint: str, fs_type: str | None = None) -> None:
    """Lazily unmount what is mounted at ``mountpoint`` (of ``fs_type`` when given).

    A killed overlay daemon's lower mount can still have a live FUSE connection: libfuse's
    ``auto_unmount`` helper (``fusermount3``) holds the device and could not unmount it
    while the overlay used it, and every request there then waits forever (a ``stat`` of it
    hung the next daemon). That helper is ended first, which aborts the connection; the
    mount point itself is never looked at (realpath of its parent only)."""
    import signal
    import subprocess

    target = os.path.join(os.path.realpath(os.path.dirname(mountpoint)), os.path.basename(mountpoint))
    try:
        with open("/proc/self/mounts", encoding="utf-8", errors="surrogateescape") as fh:
            hits = [ln.split() for ln in fh]
    except OSError:
        return
    for parts in hits:
        if (
            len(parts) > 2
            and parts[1].replace("\\040", " ") == target
            and (fs_type is None or parts[2] == fs_type)
        ):
            if parts[2].startswith("fuse"):
                for pid in _helpers_of(target):  # (still that helper: its pid may be another's by now)
                    signal_process(pid, signal.SIGKILL, is_it=lambda p: _helps(p, target))
            subprocess.run(["umount", "-l", target], capture_output=True, check=False)
            return


def _helpers_of(target: str) -> list[int]:
    """The pids of ``fusermount3`` processes serving mount point ``target`` (auto_unmount)."""
    return [
        int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) != os.getpid() and _helps(p, target)
    ]


def _helps(pid: int | str, target: str) -> bool:
    """Whether process ``pid`` is a ``fusermount3`` serving mount point ``target``."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            argv = fh.read().split(b"\0")
    except OSError:
        return False
    return bool(argv) and argv[0].endswith(b"fusermount3") and target.encode() in argv
