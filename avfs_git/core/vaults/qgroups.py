"""A vault's bytes quota in the home's layers file system: btrfs qgroups.

A vault with an explicit bytes quota gets a level-1 qgroup holding its workspaces'
subvolumes: the kernel then refuses a write past its limit with EDQUOT, whoever writes
(overlayfs, a process in the mount, avfs itself), and counts extents that forks share
once. Quotas are enabled on the layers file system when the first vault asks for one
(qgroup accounting costs every transaction a little). The commands are btrfs-progs'
(rare: quota set, a mount); a new subvolume joins its vault's qgroup in its own ioctl.
"""

from __future__ import annotations

import fcntl
import os
import struct

from .layers import IOCTL_MAGIC, QGROUP_LEVEL, LayersUnavailable, mount_path, qgroup_id

SUBVOL_FLOOR = 64 << 10  # what btrfs's metadata of a near-empty state dir takes (qgroup rfer)
WAL_ROOM = 8 << 20  # a state dir's SQLite WAL (~1,000 pages before a checkpoint), rewritten copy-on-write
QUOTA_SLACK = 8 << 20  # btrfs metadata, and extents freed only at the next transaction commit


def quota_room(state_dirs: list[str]) -> int:
    """What a vault's qgroup limit leaves over its quota for what the quota does not
    count: avfs's own files in those state dirs now, their WAL's growth, btrfs metadata."""
    own = sum(own_state_bytes(d) for d in state_dirs)
    return own + len(state_dirs) * (SUBVOL_FLOOR + WAL_ROOM) + QUOTA_SLACK


def state_room(forks: int) -> int:
    """The room a qgroup of ``forks`` state dirs keeps over what it holds, always: their
    databases' growth and btrfs's metadata (:func:`quota_room` without what they hold)."""
    return forks * (SUBVOL_FLOOR + WAL_ROOM) + QUOTA_SLACK


def own_state_bytes(state_dir: str) -> int:
    """Bytes of avfs's own files in a state dir (databases, their WAL and shared memory,
    indexes, small records): everything at its top but ``files/`` and ``upper/``."""
    total = 0
    try:
        with os.scandir(state_dir) as it:
            for e in it:
                if e.is_file(follow_symlinks=False):
                    total += e.stat(follow_symlinks=False).st_blocks * 512
    except FileNotFoundError:
        pass
    return total


def _btrfs(*args: str) -> str:
    import subprocess  # (not at the top: a cold status, cat or log never runs it)

    proc = subprocess.run(["btrfs", *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise LayersUnavailable(f"btrfs {' '.join(args[:3])}: {proc.stderr.strip() or proc.returncode}")
    return proc.stdout


def quota_enabled(home: str) -> bool:
    import subprocess

    proc = subprocess.run(["btrfs", "qgroup", "show", mount_path(home)], capture_output=True, check=False)
    return proc.returncode == 0


def qgroups(home: str) -> dict[str, tuple[int, int, int | None]]:
    """qgroup ("1/7") -> (referenced bytes, exclusive bytes, referenced limit or None)."""
    out: dict[str, tuple[int, int, int | None]] = {}
    for ln in _btrfs("qgroup", "show", "--raw", "-r", mount_path(home)).splitlines():
        parts = ln.split()
        if len(parts) >= 4 and "/" in parts[0] and parts[1].isdigit():
            out[parts[0]] = (int(parts[1]), int(parts[2]), int(parts[3]) if parts[3].isdigit() else None)
    return out


def subvolume_id(path: str) -> int:
    return int(_btrfs("inspect-internal", "rootid", path).strip())


def ensure_qgroup(home: str, n: int, members: list[str]) -> None:
    """Quotas on, qgroup ``1/n`` made, and every subvolume of ``members`` in it."""
    import subprocess

    mp = mount_path(home)
    if not quota_enabled(home):
        _btrfs("quota", "enable", mp)
        _btrfs("quota", "rescan", "-w", mp)
    if f"{QGROUP_LEVEL}/{n}" not in qgroups(home):
        _btrfs("qgroup", "create", f"{QGROUP_LEVEL}/{n}", mp)
    # each assign leaves the counts inconsistent; letting each one start its own rescan
    # fails the second ("quota rescan failed: Operation now in progress") while the first
    # runs, so assign them all without, then rescan once and wait for it
    assigned = False
    for sub in members:
        proc = subprocess.run(
            ["btrfs", "qgroup", "assign", "--no-rescan", f"0/{subvolume_id(sub)}", f"{QGROUP_LEVEL}/{n}", mp],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0 and "exist" not in proc.stderr:
            raise LayersUnavailable(f"btrfs qgroup assign: {proc.stderr.strip()}")
        assigned = assigned or proc.returncode == 0
    if assigned:
        _btrfs("quota", "rescan", "-w", mp)  # -w waits for one already running too


_FS_INFO = (2 << 30) | (1024 << 16) | (IOCTL_MAGIC << 8) | 31  # _IOR: struct btrfs_ioctl_fs_info_args


def _fsid(mp: str) -> str | None:
    """The uuid of the btrfs file system mounted at ``mp`` (BTRFS_IOC_FS_INFO). Not
    cached: three system calls, beside the six sysfs files :func:`qgroup_fill` reads."""
    try:
        fd = os.open(mp, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        buf = fcntl.ioctl(fd, _FS_INFO, b"\0" * 1024)
    except OSError:
        return None
    finally:
        os.close(fd)
    import uuid

    return str(uuid.UUID(bytes=bytes(buf[16:32])))


def qgroup_fill(home: str, n: int) -> tuple[int, int, int | None, int] | None:
    """(bytes qgroup ``1/n`` holds, bytes reserved for writes in progress, its referenced
    limit or None, the data among those reserved) as the kernel's sysfs shows them (a few
    small reads, no ``btrfs`` process); None when the layers file system is not mounted or
    the kernel shows no such qgroup. The kernel refuses a write when held + reserved + its
    bytes pass the limit."""
    mp = mount_path(home)
    fsid = _fsid(mp)
    if fsid is None:
        return None
    d = f"/sys/fs/btrfs/{fsid}/qgroups/{QGROUP_LEVEL}_{n}"
    vals: dict[str, int] = {}
    for key in (
        "referenced",
        "rsv_data",
        "rsv_meta_pertrans",
        "rsv_meta_prealloc",
        "max_referenced",
        "limit_flags",
    ):
        try:
            with open(os.path.join(d, key), "rb") as fh:
                vals[key] = int(fh.read().strip() or b"0")
        except (OSError, ValueError):
            if key in ("referenced", "max_referenced", "limit_flags"):
                return None
            vals[key] = 0
    rsv = vals["rsv_data"] + vals["rsv_meta_pertrans"] + vals["rsv_meta_prealloc"]
    limited = vals["limit_flags"] & 1  # BTRFS_QGROUP_LIMIT_MAX_RFER
    return vals["referenced"], rsv, vals["max_referenced"] if limited else None, vals["rsv_data"]


_QGROUP_LIMIT = (2 << 30) | (48 << 16) | (IOCTL_MAGIC << 8) | 43  # _IOR: btrfs_ioctl_qgroup_limit_args
_LIMIT_MAX_RFER = 1  # BTRFS_QGROUP_LIMIT_MAX_RFER


def set_limit(home: str, n: int, limit: int | None) -> None:
    """The referenced-bytes limit of qgroup ``1/n`` (None: none). A number is set with
    btrfs's ioctl (no ``btrfs`` process: avfs puts a limit back after each use of its
    room, see ``Vault.own_room``), falling back to the command."""
    if limit is not None:
        try:
            fd = os.open(mount_path(home), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            fd = -1
        if fd >= 0:
            try:
                # qgroupid, then struct btrfs_qgroup_limit: flags, max_rfer, max_excl,
                # rsv_rfer, rsv_excl
                args = struct.pack("=QQQQQQ", qgroup_id(n), _LIMIT_MAX_RFER, limit, 0, 0, 0)
                fcntl.ioctl(fd, _QGROUP_LIMIT, args)
                return
            except OSError:
                pass
            finally:
                os.close(fd)
    _btrfs(
        "qgroup", "limit", "none" if limit is None else str(limit), f"{QGROUP_LEVEL}/{n}", mount_path(home)
    )
