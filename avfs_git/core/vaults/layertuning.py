"""The layers file system's tuning: the image should cost no more than btrfs itself (the loop
device's direct I/O, btrfs's no-copy-on-write flag on state dirs); :mod:`.layers` sets both
on what it makes, the mount daemon and ``doctor`` on what was made before."""

from __future__ import annotations

import fcntl
import os
import struct

# linux/fs.h: FS_IOC_GETFLAGS/SETFLAGS (_IOR/_IOW('f', 1/2, long)) and FS_NOCOW_FL (chattr +C)
_GETFLAGS = 0x80086601
_SETFLAGS = 0x40086602
NOCOW_FL = 0x00800000
_LOOP_SET_DIRECT_IO = 0x4C08  # linux/loop.h


# -- tuning: the image should cost no more than btrfs itself ----------------------------------------
# (docs/benchmarks.md, "The layers file system against the host's"). Without direct I/O the
# image's blocks sit in the page cache twice (btrfs's, and the host's copy of the image file:
# a 512 MiB write grew it by 1,046 MiB); the loop device's direct I/O drops the second copy.
# No copy-on-write for the state dirs (and so no data checksums, as on the host's ext4) spares
# btrfs's per-block checksumming and extent splitting on rewrites. Snapshots still share: the
# first write to a shared block after a snapshot copies it, once.


def loop_device(mp: str) -> str | None:
    """The block device mounted at ``mp`` when it is a loop device (``/dev/loopN``)."""
    from .mountinfo import kernel_mounts

    for m in kernel_mounts():
        if m.mountpoint == mp and os.path.basename(m.source).startswith("loop"):
            return m.source
    return None


def direct_io(mp: str) -> bool | None:
    """Whether the loop device under ``mp`` does direct I/O on its image (None: no loop device)."""
    dev = loop_device(mp)
    if dev is None:
        return None
    try:
        with open(f"/sys/block/{os.path.basename(dev)}/loop/dio", encoding="ascii") as fh:
            return fh.read().strip() == "1"
    except OSError:
        return None


def set_direct_io(mp: str) -> bool:
    """Make the loop device under ``mp`` read and write its image with direct I/O, so the
    image's blocks are not cached a second time by the host; True when it does now. Best
    effort: a host file system without ``O_DIRECT`` keeps buffered I/O."""
    dev = loop_device(mp)
    if dev is None:
        return False
    try:
        fd = os.open(dev, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.ioctl(fd, _LOOP_SET_DIRECT_IO, 1)
    except OSError:
        return False
    finally:
        os.close(fd)
    return True


def nocow(path: str) -> bool:
    """Whether directory ``path`` has btrfs's no-copy-on-write flag (new files inherit it)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        buf = fcntl.ioctl(fd, _GETFLAGS, b"\0" * 8)
    except OSError:
        return False
    finally:
        os.close(fd)
    return bool(struct.unpack("=q", buf)[0] & NOCOW_FL)


def set_nocow(path: str) -> bool:
    """Give directory ``path`` on the layers file system btrfs's no-copy-on-write flag, which
    files and directories made in it later inherit (a file's own flag can only change while
    it is empty); True when it has it now. Callers check the path is on the layers fs:
    other file systems give the bit other meanings or none."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        flags = struct.unpack("=q", fcntl.ioctl(fd, _GETFLAGS, b"\0" * 8))[0]
        if not flags & NOCOW_FL:
            fcntl.ioctl(fd, _SETFLAGS, struct.pack("=q", flags | NOCOW_FL))
    except OSError:
        return False
    finally:
        os.close(fd)
    return True
