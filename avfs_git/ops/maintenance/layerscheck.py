"""Doctor's ``layers`` check: the home's layers file system (core/vaults/layers.py) mountable,
writable, with room on the host, and no subvolume that no state dir link names."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ...core.vaults import layers, layertuning
from ...core.vaults.forkspare import SPARES
from .common import mtime
from .findings import Finding, finding

if TYPE_CHECKING:
    from ...core.vaults.home import Home

ORPHAN_SUBVOLUME_AGE_S = 3600.0  # younger ones may be a fork in the middle of being made
LAYERS_HOST_LOW = 2 << 30  # host free space under which (or under 5 % of it) doctor warns


def _layer_links(home: Home) -> set[str]:
    """The subvolumes that state dir links of the home's vaults (and its trash) name, and
    their forks' spares (core/vaults/forkspare.py)."""
    out: set[str] = set()
    for top in (home.vaults_dir, home.trash_dir):
        try:
            vaults = os.listdir(top)
        except FileNotFoundError:
            continue
        for v in vaults:
            for root in ("ws", "lost+found", SPARES):
                d = os.path.join(top, v, "avfs", root)
                try:
                    names = os.listdir(d)
                except (FileNotFoundError, NotADirectoryError):
                    continue
                for n in names:
                    target = layers.link_target(home.path, os.path.join(d, n))
                    if target is not None:
                        out.add(target)
    return out


def check_layers(home: Home, repair: bool, now: float) -> Iterable[Finding]:
    """The home's layers file system (core/vaults/layers.py): mountable, writable, room on the
    host for what it may still take, and no subvolume that no state dir link names."""
    img = layers.image_path(home.path)
    if not os.path.exists(img):
        return
    mp = layers.mount_path(home.path)
    if not layers.mounted(home.path):
        try:
            layers.ensure(home.path, create=False)
        except layers.LayersUnavailable as exc:
            yield finding(
                None,
                "layers",
                "layers_unmountable",
                f"the layers file system {img} cannot be mounted: {exc}; the workspaces in it cannot be read",
                img,
                hint="run as root on a kernel with btrfs and loop devices; `btrfs check` the image",
            )
            return
    with open("/proc/self/mounts", encoding="utf-8", errors="surrogateescape") as fh:
        ro = any(ln.split()[1:2] == [mp] and "ro" in ln.split()[3].split(",") for ln in fh)
    if ro:
        yield finding(
            None,
            "layers",
            "layers_read_only",
            f"the layers file system at {mp} is read-only (btrfs turns read-only after a write"
            " error, e.g. when the host's disk filled under the sparse image)",
            mp,
            hint=f"free space on the host, then `umount {mp}` (avfs mounts it again on next use)",
        )
    if layertuning.direct_io(mp) is False:
        # an image mounted before avfs turned direct I/O on (a mount daemon also turns it on)
        yield Finding(
            vault=None,
            check="layers",
            code="layers_double_cached",
            problem=f"the loop device under {mp} reads and writes its image through the host's"
            " page cache: every block is cached twice and big files go slower",
            path=mp,
            repairable=True,
            repaired=repair and layertuning.set_direct_io(mp),
            hint=None if repair else "`avfs doctor --repair` turns the loop device's direct I/O on",
        )
    fs, host = os.statvfs(mp), os.statvfs(home.path)
    may_take = fs.f_bavail * fs.f_frsize
    host_free = host.f_bavail * host.f_frsize
    # the image was sized to the host's free space when made, so the host's own growth
    # soon makes may_take > host_free: that only matters once the host is nearly full
    low = max(LAYERS_HOST_LOW, host.f_blocks * host.f_frsize // 20)
    if host_free < may_take and host_free < low:
        yield finding(
            None,
            "layers",
            "layers_host_space",
            f"the layers image may still grow by {may_take >> 20} MiB but the host has {host_free >> 20} MiB"
            " free: if the host fills first, btrfs meets write errors and turns read-only",
            img,
            hint="free space on the host (or keep it from filling); freed space in the layers fs returns"
            " to the host (discard)",
        )
    named = _layer_links(home)
    for sub in layers.subvolumes(home.path):
        if sub in named or not layers.is_subvolume(sub):
            continue
        age = now - (mtime(sub) or now)
        if age < ORPHAN_SUBVOLUME_AGE_S:
            continue
        yield finding(
            None,
            "layers",
            "orphan_subvolume",
            f"workspace state {sub} is named by no fork of any vault (a fork or vault removed while"
            " the layers fs was not mounted, or a fork interrupted while made)",
            sub,
            fix=lambda p=sub: layers.delete_subvolume(p),  # type: ignore[misc]
            repair=repair,
        )
