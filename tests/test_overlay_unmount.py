"""An overlay mount's daemon follows its own mount, not the machine's mount table.

Every mount and unmount anywhere on the machine wakes the daemon's watch for a `umount` of
its overlay by hand (the kernel marks ``/proc/self/mounts``); it asks the kernel about its
own mount by id (``statmount``) instead of reading the whole table each time.
"""

from __future__ import annotations

import os
import subprocess
import time

from avfs_git.core.operations import checkpoint
from avfs_git.core.vaults import mounttable
from avfs_git.ops import mounts

from .test_overlay import _ended, require_overlay


def test_a_mount_s_id_is_gone_once_it_is_unmounted(tmp_path):
    """``mount_id`` names the mount at a path, ``mount_gone`` says when it went (a kernel
    without ``statmount`` answers None, and the daemon reads the table instead)."""
    require_overlay()  # (root, and the mounts the backend needs)
    mp = tmp_path / "t"
    mp.mkdir()
    below = mounttable.mount_id(str(tmp_path))
    subprocess.run(["mount", "-t", "tmpfs", "none", str(mp)], check=True)
    try:
        mid = mounttable.mount_id(str(mp))
        assert mid is not None and mid != below
        assert mounttable.mount_gone(mid) is False
    finally:
        subprocess.run(["umount", str(mp)], check=True)
    assert mounttable.mount_gone(mid) is True
    assert mounttable.mount_id(str(mp)) == below


def test_an_overlay_unmounted_by_hand_after_unrelated_mounts_ends_its_daemon(home, vault, tmp_path):
    """Fifty mounts and unmounts elsewhere leave the overlay mount and its daemon alone; a
    ``umount`` of the overlay by hand then takes its lower layer and daemon away, as it did
    when every change of the table was read."""
    require_overlay()
    ws = vault.workspace("main")
    ws.write("a.txt", b"a\n")
    checkpoint.save(vault)
    mp = tmp_path / "mnt"
    mp.mkdir()
    other = tmp_path / "other"
    other.mkdir()
    info = mounts.mount(home, vault, "main", str(mp), backend="overlay")
    try:
        for _ in range(50):
            subprocess.run(["mount", "-t", "tmpfs", "none", str(other)], check=True)
            subprocess.run(["umount", str(other)], check=True)
        assert mounts.mounted_at(str(mp)) and not _ended(info.pid)
        assert (mp / "a.txt").read_bytes() == b"a\n"
        subprocess.run(["umount", str(mp)], check=True)
        deadline = time.monotonic() + 30
        while not _ended(info.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _ended(info.pid)
        assert not mounts.mounted_at(str(mp))
        with open("/proc/self/mounts", encoding="utf-8", errors="surrogateescape") as fh:
            left = [ln for ln in fh if str(mp) in ln]
        assert left == []  # (the lower layer's FUSE mount went too)
    finally:
        if mounts.check(vault, "main") is not None:
            mounts.unmount(home, vault, "main")
    assert os.listdir(mp) == []
