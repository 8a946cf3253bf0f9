"""A mount point elsewhere on the host whose path is not UTF-8 (a USB stick's label,
an archive's directory) is in the kernel's mount table that avfs reads: a fork's mount
comes up all the same, on both backends. The foreign mount is made in a mount namespace
of the test's own (``unshare -m``), so that no other process on the machine sees it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .test_fuse import require_fuse
from .test_overlay import require_overlay

SCRIPT = """
import os, subprocess, sys
from avfs_git.core.vaults.home import Home
from avfs_git.mount.side import MOUNT_SIDE
from avfs_git.ops import mounts

foreign, home_dir, backend = os.fsencode(sys.argv[1]), sys.argv[2], sys.argv[3]
os.makedirs(foreign)
subprocess.run(["mount", "-t", "tmpfs", "tmpfs", foreign], check=True)
home = Home(home_dir, mounts=MOUNT_SIDE)
v = home.vault("v")
info = mounts.mount(home, v, "main", None, backend=backend)
try:
    with open(os.path.join(info.mountpoint, "f.txt"), "rb") as fh:
        sys.stdout.write(fh.read().decode() + info.backend)
finally:
    mounts.unmount(home, v, "main")
"""


@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_a_mount_comes_up_beside_a_mount_point_that_is_not_utf8(home, tmp_path: Path, backend: str) -> None:
    require_overlay() if backend == "overlay" else require_fuse()
    if shutil.which("unshare") is None:
        pytest.skip("requires unshare (util-linux)")
    v = home.create_vault("v")
    v.workspace("main").write("f.txt", b"x\n")
    foreign = os.fsdecode(os.path.join(os.fsencode(tmp_path), b"caf\xe9"))
    proc = subprocess.run(
        [
            "unshare",
            "-m",
            "--propagation",
            "private",
            sys.executable,
            "-c",
            SCRIPT,
            foreign,
            home.path,
            backend,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout == f"x\n{backend}"
