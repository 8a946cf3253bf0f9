"""The home's layers file system: where workspaces' state lives so that forks share it.

A workspace's state dir (``overlay.db``, ``files/``, and for an overlay mount ``upper/``,
``work/``, ``lower/``) holds what git does not: uncheckpointed changes, and the paths git
ignores (``node_modules``, ``.venv``, ``target/``). A fork of a fork must carry the latter
without copying them and without committing them anywhere. Where root can loop-mount btrfs,
avfs keeps every new workspace's state dir as a btrfs *subvolume* of one file system per
home, so that a fork of a fork is a subvolume snapshot: O(1), copy-on-write, atomic even
while the parent is mounted and written (the kernel's overlay writes its upper layer in
place; a snapshot sees every write that returned before it, SQLite's WAL included, which
SQLite opens as after a crash).

Layout::

    <home>/layers.img        a sparse btrfs image (its nominal size: the host's free space
                             when made, less a margin; mounted with ``discard`` so freed
                             blocks go back to the host)
    <home>/layers/           its mount point (loop device, ``mount -o loop``)
    <home>/layers/ws/<id>    one subvolume per workspace state dir
    <vault>/avfs/ws/<fork>   a relative symlink to ``<home>/layers/ws/<id>`` (a plain
                             directory for a workspace made before, or where btrfs is not
                             available: both keep working)
    <vault>/avfs/spares/<fork>  the same, to a snapshot of the fork made ahead for its next
                             fork (:mod:`.forkspare`)

Why the whole state dir and not only the upper layer: folding an unmounted overlay's upper
layer into the entries hard-links its files into ``files/`` (EXDEV across file systems),
and an unmounted fork's ignored outputs live in ``files/``: both are shared only if they
are on the same file system as the upper layer.

After a reboot the image is not mounted: :func:`ensure` mounts it again, and
:meth:`Vault.ws_dir` calls it before it resolves a link (never creating a state dir on the
host through a dangling link).

The subvolume calls are btrfs's own ioctls (``BTRFS_IOC_SUBVOL_CREATE``,
``BTRFS_IOC_SNAP_CREATE_V2``, ``BTRFS_IOC_SNAP_DESTROY``): a snapshot costs 3-6 ms here,
the ``btrfs`` command 6 ms plus its start-up. Making and mounting the image uses
``mkfs.btrfs`` and ``mount`` (btrfs-progs, util-linux).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import struct

from ..errors import CorruptStateError, from_oserror
from ..store import deeptree
from ..workspace.upper import drop_gitfile

IMAGE = "layers.img"
MOUNT = "layers"
WS = "ws"
LOCK = ".layers.lock"
MOUNT_OPTIONS = "loop,discard,noatime,nosuid,nodev"  # it holds forks' state only: no setuid bit or device a sandbox made acts there
OWNER = ".avfs-owner"  # in a state dir: the link that names it (see _owned)
MODES = ("auto", "off")  # the home's ``layers`` setting (and $AVFS_LAYERS)
DEFAULT_MODE = "auto"
MIN_SIZE = 2 << 30  # smaller hosts keep plain directories
MARGIN = 1 << 30  # left to the host when the image's nominal size is chosen

# linux/btrfs.h: _IOW(BTRFS_IOCTL_MAGIC, nr, struct); both argument structs are 4096 bytes
IOCTL_MAGIC = 0x94
_ARGS = 4096


def _iow(nr: int) -> int:
    return (1 << 30) | (_ARGS << 16) | (IOCTL_MAGIC << 8) | nr


_SNAP_CREATE_V2 = _iow(23)  # struct btrfs_ioctl_vol_args_v2: fd, transid, flags, 4 x u64, name
_SUBVOL_CREATE = _iow(14)  # struct btrfs_ioctl_vol_args: fd, name
_SUBVOL_CREATE_V2 = _iow(24)
_SNAP_DESTROY = _iow(15)
_V2_NAME = 56  # offset of name in btrfs_ioctl_vol_args_v2
_V1_NAME = 8
_V2_FLAGS = 16  # flags, then (size, qgroup_inherit pointer) of the union
_QGROUP_INHERIT = 1 << 2  # BTRFS_SUBVOL_QGROUP_INHERIT
QGROUP_LEVEL = 1  # a vault's qgroup: 1/<n>, its workspaces' subvolumes (0/<id>) its members
SUBVOL_INO = 256  # every btrfs subvolume's root directory has this inode number
# linux/fs.h: FS_IOC_GETFLAGS/SETFLAGS (_IOR/_IOW('f', 1/2, long)) and FS_NOCOW_FL (chattr +C)
_GETFLAGS = 0x80086601
_SETFLAGS = 0x40086602
NOCOW_FL = 0x00800000
_LOOP_SET_DIRECT_IO = 0x4C08  # linux/loop.h


class LayersUnavailable(Exception):
    """Why the layers file system cannot be used here (the caller keeps plain dirs)."""


class Attempts:
    """What one owner (a home: ``Home.layers_attempts``) learnt trying to mount its layers
    file system: why it could not (``failed``; None: it has not tried, or it succeeded).
    :func:`ensure` given it fails fast the next time instead of running ``mount`` again:
    a host whose loop devices cannot be set up passes :func:`probe` and fails there, and
    would otherwise try again at every new workspace of a long-lived process."""

    __slots__ = ("failed",)

    def __init__(self) -> None:
        self.failed: str | None = None


def image_path(home: str) -> str:
    return os.path.join(home, IMAGE)


def mount_path(home: str) -> str:
    return os.path.join(home, MOUNT)


def probe() -> str | None:
    """None when this process can make and mount a btrfs image, else why not. Not cached
    (~0.2 ms): it is asked only before a state dir is made or the image mounted."""
    import shutil  # (not at the top: a cold status, cat or log never runs it)

    if os.geteuid() != 0:
        return "loop-mounting a btrfs image needs root"
    if not os.path.exists("/dev/loop-control"):
        return "no loop devices (/dev/loop-control)"
    try:
        with open("/proc/filesystems", encoding="ascii") as fh:
            if not any(ln.split()[-1:] == ["btrfs"] for ln in fh):
                return "the kernel has no btrfs"
    except OSError:
        return "cannot read /proc/filesystems"
    if shutil.which("mkfs.btrfs") is None:
        return "mkfs.btrfs is not installed (btrfs-progs)"
    return None


def mounted(home: str) -> bool:
    """Whether ``<home>/layers`` is a mount point now (two stats)."""
    return os.path.ismount(mount_path(home))


def ensure(home: str, *, create: bool, attempts: Attempts | None = None) -> str:
    """The mounted layers file system of ``home`` (its mount path).

    Mounts the image when it exists but is not mounted (after a reboot); with ``create``,
    makes it first when there is none. Raises :class:`LayersUnavailable` with the reason
    when it cannot (not root, no btrfs or loop devices, no image and not ``create``, a
    small host). ``attempts``: the owner's record of a failed mount (see
    :class:`Attempts`); None: try whatever happened before."""
    import subprocess

    mp = mount_path(home)
    if os.path.ismount(mp):
        return mp
    img = image_path(home)
    if not create and not os.path.exists(img):
        raise LayersUnavailable(f"no layers image at {img}")
    why = probe()
    if why is not None:
        raise LayersUnavailable(why)
    from ..store.locks import file_lock

    os.makedirs(home, exist_ok=True)
    if attempts is not None and attempts.failed is not None:
        raise LayersUnavailable(attempts.failed)  # tried already: fail fast
    if not create and _read_only(home):
        # a home on a read-only mount (no lock file can be made there: every command,
        # reads included, failed `read_only` on it): its layers mounted read-only serve
        # reads, and a write fails `read_only` as it does in the rest of the home
        return _mount_read_only(img, mp)
    with file_lock(os.path.join(home, LOCK), what=f"the layers file system of {home}"):
        if os.path.ismount(mp):
            return mp
        made = not os.path.exists(img)
        if made:
            _make_image(home, img)
        os.makedirs(mp, exist_ok=True)
        proc = subprocess.run(
            ["mount", "-t", "btrfs", "-o", MOUNT_OPTIONS, img, mp],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0 and not os.path.ismount(mp):
            why = f"mounting {img} failed: {proc.stderr.strip() or proc.returncode}"
            if made:  # nothing is in it: a later process should not take it for a layers fs
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(img)
            if attempts is not None:
                attempts.failed = why
            raise LayersUnavailable(why)
        os.makedirs(os.path.join(mp, WS), exist_ok=True)
        set_direct_io(mp)
    return mp


def _read_only(home: str) -> bool:
    """Whether ``home`` is on a read-only mount."""
    try:
        return bool(os.statvfs(home).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _mount_read_only(img: str, mp: str) -> str:
    """Mount the layers image ``img`` read-only at ``mp`` (a home on a read-only mount: no
    lock, nothing in it can change); ``mp`` once mounted by this or another process."""
    import subprocess

    proc = subprocess.run(
        ["mount", "-t", "btrfs", "-o", f"ro,{MOUNT_OPTIONS}", img, mp],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0 and not os.path.ismount(mp):
        raise LayersUnavailable(f"mounting {img} read-only failed: {proc.stderr.strip() or proc.returncode}")
    return mp


def _make_image(home: str, img: str) -> None:
    """A sparse btrfs image as large as the host's free space less a margin: the host is
    never promised more than it has when the image is made (a loop device whose backing
    file cannot grow makes btrfs fail writes and turn read-only); ``doctor`` reports when
    the host's free space has since fallen below what the image may still take."""
    import subprocess

    sv = os.statvfs(home)
    size = (sv.f_bavail * sv.f_frsize - MARGIN) // (1 << 20) << 20
    if size < MIN_SIZE:
        raise LayersUnavailable(f"the host has less than {(MIN_SIZE + MARGIN) >> 30} GiB free")
    tmp = f"{img}.new-{os.getpid()}"
    try:
        with open(tmp, "wb") as fh:
            fh.truncate(size)
        proc = subprocess.run(
            ["mkfs.btrfs", "-q", "-f", "-m", "single", "-L", "avfs-layers", tmp],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise LayersUnavailable(f"mkfs.btrfs failed: {proc.stderr.strip()}")
        os.replace(tmp, img)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


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


def on_layers(home: str, path: str) -> bool:
    """Whether ``path`` lies inside ``home``'s layers file system (mounted)."""
    mp = os.path.realpath(mount_path(home))
    return os.path.realpath(path).startswith(mp + os.sep) and mounted(home)


def unmount(home: str) -> bool:
    """Unmount the layers file system (lazily: a mount still using it keeps it until it
    goes); True when it was mounted. For tests and for removing a home."""
    import subprocess

    mp = mount_path(home)
    if not os.path.ismount(mp):
        return False
    subprocess.run(["umount", "-l", mp], capture_output=True, check=False)
    return True


# -- subvolumes ---------------------------------------------------------------------------------


def _name_args(size_offset: int, name: str, fd: int = 0) -> bytearray:
    raw = os.fsencode(name)
    if not raw or b"/" in raw or len(raw) > 255:
        raise ValueError(f"bad subvolume name {name!r}")
    buf = bytearray(_ARGS)
    struct.pack_into("=q", buf, 0, fd)
    buf[size_offset : size_offset + len(raw)] = raw
    return buf


def qgroup_id(n: int) -> int:
    """The 64-bit id of qgroup ``1/n``."""
    return (QGROUP_LEVEL << 48) | n


def _v2_args(name: str, fd: int, qgroup: int | None) -> tuple[bytearray, object]:
    """btrfs_ioctl_vol_args_v2 for ``name``; with ``qgroup``, a btrfs_qgroup_inherit that
    makes the new subvolume a member of qgroup ``1/qgroup`` (returned too: it must stay
    alive during the call, the kernel reads it through its address)."""
    buf = _name_args(_V2_NAME, name, fd)
    if qgroup is None:
        return buf, None
    import ctypes  # only here: 3-5 ms to import, and every CLI start imports this module

    # struct btrfs_qgroup_inherit: flags, num_qgroups, num_ref_copies, num_excl_copies,
    # struct btrfs_qgroup_limit (5 x u64), then the qgroup ids
    inherit = ctypes.create_string_buffer(80)
    struct.pack_into("=QQQQ", inherit, 0, 0, 1, 0, 0)
    struct.pack_into("=Q", inherit, 72, qgroup_id(qgroup))
    struct.pack_into(
        "=QQQ", buf, _V2_FLAGS, _QGROUP_INHERIT, ctypes.sizeof(inherit), ctypes.addressof(inherit)
    )
    return buf, inherit


def create_subvolume(path: str, qgroup: int | None = None) -> None:
    """Make ``path`` (which must not exist) a new empty subvolume (in qgroup ``1/qgroup``)."""
    parent, name = os.path.split(path)
    dfd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if qgroup is None:
            fcntl.ioctl(dfd, _SUBVOL_CREATE, _name_args(_V1_NAME, name))
        else:
            buf, keep = _v2_args(name, 0, qgroup)
            fcntl.ioctl(dfd, _SUBVOL_CREATE_V2, buf)
            del keep
    finally:
        os.close(dfd)


def snapshot(src: str, dst: str, qgroup: int | None = None) -> None:
    """Make ``dst`` (which must not exist) a writable snapshot of subvolume ``src`` (in
    qgroup ``1/qgroup``)."""
    parent, name = os.path.split(dst)
    sfd = os.open(src, os.O_RDONLY | os.O_DIRECTORY)
    try:
        dfd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            buf, keep = _v2_args(name, sfd, qgroup)
            fcntl.ioctl(dfd, _SNAP_CREATE_V2, buf)
            del keep
        finally:
            os.close(dfd)
    finally:
        os.close(sfd)


def delete_subvolume(path: str) -> None:
    """Delete subvolume ``path`` and everything in it (one ioctl; space is freed by the
    kernel in the background)."""
    parent, name = os.path.split(path)
    dfd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.ioctl(dfd, _SNAP_DESTROY, _name_args(_V1_NAME, name))
    finally:
        os.close(dfd)


def is_subvolume(path: str) -> bool:
    """Whether ``path`` is the root of a btrfs subvolume (its own device number, inode
    256); never true of a plain directory."""
    try:
        st = os.stat(path)
        pst = os.stat(os.path.dirname(path))
    except OSError:
        return False
    return st.st_ino == SUBVOL_INO and st.st_dev != pst.st_dev


# -- workspace state dirs -------------------------------------------------------------------------


def link_target(home: str, link: str) -> str | None:
    """Where the state dir link ``link`` points, absolute (None when ``link`` is not a link)."""
    try:
        raw = os.readlink(link)
    except (FileNotFoundError, OSError) as exc:
        if isinstance(exc, FileNotFoundError) or exc.errno == errno.EINVAL:
            return None
        raise
    return os.path.normpath(os.path.join(os.path.dirname(link), raw))


def resolve(home: str, link: str, attempts: Attempts | None = None) -> str:
    """The state dir a workspace's link names, with the layers file system mounted (a link
    only exists where it was once); a plain directory is returned as it is. ``attempts``:
    see :func:`ensure`."""
    target = link_target(home, link)
    if target is None:
        return link
    if not target.startswith(mount_path(home) + os.sep):
        raise CorruptStateError(f"workspace state {link} points outside the layers file system: {target}")
    if not mounted(home):
        try:
            ensure(home, create=False, attempts=attempts)
        except LayersUnavailable as exc:
            raise CorruptStateError(
                f"workspace state {link} is in the layers file system, which cannot be mounted: {exc}",
                hint=f"`avfs doctor` checks it; the image is {image_path(home)}",
            ) from None
    return _owned(home, link, target)


def _owned(home: str, link: str, target: str) -> str:
    """``target``, once it is sure to be ``link``'s alone. A vault directory copied with
    its links (``cp -a``) names the same subvolume twice: the copy gets a snapshot of its
    own (O(1)), so that two workspaces never write one state dir. A moved vault (the link
    its owner file names is gone or elsewhere) takes the subvolume over."""
    me = _canon(link)
    owner_file = os.path.join(target, OWNER)
    try:
        with open(owner_file, encoding="utf-8") as fh:
            owner = fh.read()
    except FileNotFoundError:
        owner = ""
    except OSError as exc:
        raise from_oserror(exc, owner_file) from exc
    if owner == me:
        return target
    if owner and link_target(home, owner) == target and not _same_file(owner, link):
        sub = new_subvol_path(home)
        snapshot(target, sub)
        _write_owner(sub, me)
        tmp = f"{link}.{os.getpid()}.tmp"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        os.symlink(os.path.relpath(sub, os.path.dirname(link)), tmp)
        os.replace(tmp, link)
        return sub
    try:
        _write_owner(target, me)
    except OSError as exc:
        if exc.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise from_oserror(exc, target) from exc
        # a home that cannot be written (a read-only mount of it, reached by another path
        # than its last user's; another user's files): nothing here can write the state
        # dir either, so it is read as it is (was exit 70 on every read, EROFS)
    return target


def _canon(link: str) -> str:
    """``link``'s path with its directories' symlinks resolved (not the link itself)."""
    return os.path.join(os.path.realpath(os.path.dirname(os.path.abspath(link))), os.path.basename(link))


def _same_file(a: str, b: str) -> bool:
    try:
        sa, sb = os.lstat(a), os.lstat(b)
    except OSError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def _write_owner(sub: str, link: str) -> None:
    path = os.path.join(sub, OWNER)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(_canon(link))
    os.replace(tmp, path)


def _publish(home: str, link: str, subvol: str) -> None:
    """Point ``link`` at ``subvol`` (relative: a home that moves keeps working)."""
    rel = os.path.relpath(subvol, os.path.dirname(link))
    os.makedirs(os.path.dirname(link), exist_ok=True)
    os.symlink(rel, link)


def new_subvol_path(home: str) -> str:
    """A new subvolume's path in this home's layers file system (not made)."""
    return os.path.join(mount_path(home), WS, os.urandom(16).hex())


def make_state_dir(home: str, link: str, qgroup: int | None = None, attempts: Attempts | None = None) -> str:
    """A new empty state dir for a workspace whose link ``link`` does not exist: a new
    subvolume (in qgroup ``1/qgroup``), linked. Raises :class:`LayersUnavailable` (the
    caller makes a plain dir). ``attempts``: see :func:`ensure`."""
    ensure(home, create=True, attempts=attempts)
    sub = new_subvol_path(home)
    try:
        create_subvolume(sub, qgroup)
    except OSError as exc:
        raise LayersUnavailable(f"cannot create a subvolume: {exc}") from None
    try:
        set_nocow(sub)  # before anything is made in it: all of it inherits the flag
        _write_owner(sub, link)
        _publish(home, link, sub)
    except FileExistsError:
        # another process made this workspace first: use its state dir
        delete_subvolume(sub)
        return resolve(home, link, attempts)
    except OSError as exc:
        delete_subvolume(sub)
        raise from_oserror(exc, link) from exc
    return sub


def snapshot_state_dir(
    home: str, src: str, link: str, qgroup: int | None = None, sub: str | None = None
) -> str:
    """Make ``link`` a new workspace's state dir holding a snapshot of state dir ``src``
    (a subvolume of this home's layers file system). Returns the new state dir.

    Nothing else is written on this path (each write into the new subvolume costs a copy of
    its root's metadata): what belongs to the source's mount is left for the next mount,
    which clears it anyway (overlayfs empties its work dir when it mounts; the daemon drops
    the upper layer's copy-up origins and replaces its pinned ``.git``; the lower layer's
    mount point is an empty directory in a snapshot), and the owner file still naming the
    source's link is taken over on first use (:func:`_owned`). ``sub``: where (from
    :func:`new_subvol_path`), when the caller named it first."""
    sub = sub or new_subvol_path(home)
    try:
        snapshot(src, sub, qgroup)
    except OSError as exc:
        raise LayersUnavailable(f"cannot snapshot {src}: {exc}") from None
    try:
        _publish(home, link, sub)
    except BaseException:
        delete_subvolume(sub)
        raise
    return sub


def remove_state_dir(home: str, path: str) -> None:
    """Remove a workspace's state dir: its subvolume and link, or a plain directory. A
    subvolume whose image cannot be mounted now is left to ``gc`` (an orphan there)."""
    target = link_target(home, path)
    if target is None:
        # a killed overlay daemon leaves the worktree link pinned immutable in the upper
        # layer, which rmtree cannot remove (a subvolume's delete takes it regardless)
        drop_gitfile(os.path.join(path, "upper"))
        deeptree.rmtree(path, ignore_errors=True)  # (a command's tree may be ~any depth)
        return
    if not mounted(home):
        _mount_quietly(home)
    if is_subvolume(target):
        try:
            delete_subvolume(target)
        except OSError as exc:
            raise from_oserror(exc, target) from exc
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _mount_quietly(home: str) -> bool:
    try:
        ensure(home, create=False)
    except LayersUnavailable:
        return False
    return True


def subvolumes(home: str) -> list[str]:
    """The state dirs in the layers file system (mounted), by path."""
    root = os.path.join(mount_path(home), WS)
    try:
        with os.scandir(root) as it:
            return sorted(e.path for e in it if e.is_dir(follow_symlinks=False))
    except FileNotFoundError:
        return []
