"""The mounts the kernel lists: ``/proc/self/mountinfo`` read line by line, with its escapes
(:class:`KernelMount`: mount point, file system type, source, an overlay's layer directories),
for what must see every mount (``doctor``'s stale mounts, a state dir's loop device, tests).
:func:`.registry.mounted_at` and :func:`.registry.mounted_as` answer one mount point for
less.

Standard library only; ``re`` is imported where it is used (as in :mod:`.registry`).
"""

from __future__ import annotations

__all__ = ["CONNECTIONS", "KernelMount", "abort_connection", "fuse_connection", "kernel_mounts"]

CONNECTIONS = "/sys/fs/fuse/connections"  # the kernel's fusectl file system


class KernelMount:
    """One line of /proc/self/mountinfo: ``mountpoint``, ``fstype`` ("fuse.avfs",
    "overlay", ...), ``source`` ("avfs:VAULT:KEY" for an avfs FUSE mount) and ``dirs`` (an
    overlay's lowerdir/upperdir/workdir/datadir paths)."""

    __slots__ = ("dirs", "fstype", "mountpoint", "source")

    def __init__(self, mountpoint: str, fstype: str, source: str, dirs: tuple[str, ...]) -> None:
        self.mountpoint = mountpoint
        self.fstype = fstype
        self.source = source
        self.dirs = dirs

    def __repr__(self) -> str:
        return f"KernelMount({self.mountpoint!r}, {self.fstype!r}, {self.source!r}, {self.dirs!r})"

    @property
    def avfs_fuse(self) -> bool:
        return self.fstype.startswith("fuse") and self.source.startswith("avfs:")

    @property
    def vault_name(self) -> str | None:
        return self.source.split(":")[1] if self.avfs_fuse and self.source.count(":") >= 2 else None


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes."""
    import re

    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def _overlay_dirs(options: str) -> tuple[str, ...]:
    import re

    dirs: list[str] = []
    for opt in re.split(r"(?<!\\),", options):
        key, _, value = opt.partition("=")
        if key in ("lowerdir", "lowerdir+", "datadir+"):
            dirs.extend(d.replace("\\:", ":").replace("\\,", ",") for d in re.split(r"(?<!\\):+", value) if d)
        elif key in ("upperdir", "workdir") and value:
            dirs.append(value.replace("\\,", ","))
    return tuple(dirs)


def kernel_mounts(path: str = "/proc/self/mountinfo") -> list[KernelMount]:
    """The mounts of this mount namespace (changes nothing)."""
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        head, sep, tail = line.partition(" - ")
        parts, rest = head.split(" "), tail.split(" ")
        if not sep or len(parts) < 5 or len(rest) < 3:
            continue
        fstype, source, options = rest[0], _unescape(rest[1]), _unescape(rest[2])
        dirs = _overlay_dirs(options) if fstype == "overlay" else ()
        out.append(KernelMount(_unescape(parts[4]), fstype, source, dirs))
    return out


def fuse_connection(
    mountpoint: str, source: str | None = None, path: str = "/proc/self/mountinfo"
) -> int | None:
    """The number of the FUSE connection mounted at ``mountpoint`` (a resolved path: the
    mount point as the kernel lists it), its directory under ``/sys/fs/fuse/connections``;
    None when no FUSE file system (of ``source``, when given: ``avfs:VAULT:KEY``) is
    mounted there. Read from the mount's device numbers in
    mountinfo (the kernel names a connection by its super block's device, ``st_dev``),
    never by a ``stat`` of the mount point: that is a request to the daemon, which a dead
    daemon's connection never answers. The last listed mount there wins (the one on top)."""
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return None
    found = None
    for line in lines:
        head, sep, tail = line.partition(" - ")
        parts, rest = head.split(" "), tail.split(" ")
        if not sep or len(parts) < 5 or len(rest) < 2 or _unescape(parts[4]) != mountpoint:
            continue
        if not (rest[0] == "fuse" or rest[0].startswith("fuse.")) or (
            source is not None and _unescape(rest[1]) != source
        ):
            found = None  # (another file system on top)
            continue
        major, _, minor = parts[2].partition(":")
        # (the kernel's own dev_t: MKDEV)
        found = (int(major) << 20) | int(minor) if major.isdigit() and minor.isdigit() else None
    return found


def abort_connection(mountpoint: str, source: str | None = None) -> bool:
    """Abort the FUSE connection mounted at ``mountpoint`` (resolved; of ``source`` when
    given) by writing ``1`` to its fusectl ``abort``: every request waiting there, and every
    later one, fails with ``ENOTCONN``. True when one was aborted; False when none is
    mounted there, or the file cannot be written (fusectl not mounted, another user's
    mount). Only for a connection whose daemon is gone: ops/detaching.py ``abort_dead``
    says why."""
    import os

    conn = fuse_connection(mountpoint, source)
    if conn is None:
        return False
    try:
        fd = os.open(f"{CONNECTIONS}/{conn}/abort", os.O_WRONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        os.write(fd, b"1")
    except OSError:
        return False
    finally:
        os.close(fd)
    return True
