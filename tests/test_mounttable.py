"""The mount table kept open (core/vaults/mounttable.py): read again only when the kernel
marked it changed, never stale (a mount and an unmount made after a read are both seen),
and a forked child's own. A real tmpfs mounted in a directory of the test's (root only)."""

from __future__ import annotations

import os
import subprocess

import pytest

from avfs_git.core.vaults import mounttable, registry

from .conftest import skip_outside_ci


@pytest.fixture
def kept():
    if os.geteuid() != 0:
        skip_outside_ci("mounting a tmpfs needs root")
    old = registry.kept_table()
    table = mounttable.MountTable()
    registry.keep_table(table)
    try:
        yield table
    finally:
        registry.keep_table(old)
        table.close()


def _mount(path: str) -> None:
    subprocess.run(["mount", "-t", "tmpfs", "avfs-test", path], check=True)


def test_an_unchanged_table_is_not_read_again_and_every_change_is_seen(kept, tmp_path):
    mp = tmp_path / "m"
    mp.mkdir()
    assert not registry.mounted_at(str(mp))
    reads = kept.reads
    for _ in range(5):
        assert not registry.mounted_at(str(mp))
    assert kept.reads == reads  # nothing changed: answered from what was read
    _mount(str(mp))
    try:
        assert registry.mounted_at(str(mp))  # the mount made after the last read
        assert kept.reads == reads + 1
        assert registry.mounted_at(str(mp)) and kept.reads == reads + 1
    finally:
        subprocess.run(["umount", str(mp)], check=True)
    assert not registry.mounted_at(str(mp))  # and the unmount
    assert kept.reads == reads + 2


def test_a_forked_child_reads_a_table_of_its_own(kept, tmp_path):
    mp = tmp_path / "m"
    mp.mkdir()
    assert not registry.mounted_at(str(mp))
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: a change seen here must not take the parent's mark
        try:
            os.close(r)
            _mount(str(mp))
            seen = registry.mounted_at(str(mp))
            os.write(w, b"1" if seen else b"0")
        finally:
            os._exit(0)
    os.close(w)
    try:
        assert os.read(r, 1) == b"1"
        os.waitpid(pid, 0)
        assert registry.mounted_at(str(mp))  # the parent sees it too
    finally:
        os.close(r)
        subprocess.run(["umount", str(mp)], check=False)
    assert not registry.mounted_at(str(mp))
