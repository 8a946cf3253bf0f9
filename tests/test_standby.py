"""A ready sandbox knows its mount is still there without reading the mount table
(proxy/standby.py, ``Standby.unmoved``): the kernel marks an open ``/proc/self/mounts``
when the table changes. A real mount (a tmpfs) changes it here."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from avfs_git.proxy.standby import Standby

from .conftest import IN_CI


def _standby(table: int) -> Standby:
    proc: Any = None  # (never started: only the table is asked)
    return Standby((), proc, -1, -1, -1, table)


def test_the_table_unmoved_until_a_mount_comes_or_goes(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        if IN_CI:
            pytest.fail("the tests run as root in CI (they mount)")
        pytest.skip("mounting a tmpfs needs root")
    sb = _standby(os.open("/proc/self/mounts", os.O_RDONLY | os.O_CLOEXEC))
    assert sb.unmoved() and sb.unmoved()  # asking does not change the answer
    mp = tmp_path / "m"
    mp.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "none", str(mp)], check=True)
    try:
        assert not sb.unmoved() and not sb.unmoved()  # once moved, always
        later = _standby(os.open("/proc/self/mounts", os.O_RDONLY | os.O_CLOEXEC))
        assert later.unmoved()  # opened after: the table is as it saw it
    finally:
        subprocess.run(["umount", str(mp)], check=True)
    assert not later.unmoved()
    for s in (sb, later):
        s.close_table()
        assert s.table == -1 and not s.unmoved()  # no table: the caller reads it instead
