"""A writable pure-FUSE mount keeps directory listings in the kernel (directories opened by
the kernel itself, else FOPEN_CACHE_DIR with ``keep_cache`` at each OPENDIR:
fuse/libfuse.py), so a warm walk asks the daemon for no listing; the kernel drops a listing when the directory changes through the mount, the
watcher when another process changes it (fuse/invalidate.py). That the listings stay true
is tests/contract/test_listings.py's.

Counted with the daemon's trace (``AVFS_FUSE_TRACE``), never timed."""

from __future__ import annotations

import os
import time
from pathlib import Path

from avfs_git.ops import mounts

from .test_fuse import _mounted
from .test_fuse_cache import Traced


def _walk(root: Path) -> int:
    n = 0
    for _d, _dirs, files in os.walk(root):
        n += len(files)
    return n


def test_a_writable_mount_lists_each_directory_once(home, vault, tmp_path, monkeypatch):
    trace = tmp_path / "trace"
    trace.write_text("")
    monkeypatch.setattr(home.settings, "fuse_trace", str(trace))  # $AVFS_FUSE_TRACE, as read
    ws = vault.workspace("main")
    for d in range(6):
        for f in range(5):
            ws.write(f"tree/d{d}/f{f}.txt", b"x\n")
    with _mounted(home, vault, tmp_path, "fuse") as (_v, mp):
        root = Path(mp)
        assert mounts.mounted_at(mp)
        traced = Traced(trace)
        assert _walk(root / "tree") == 30
        assert traced.take()["readdir"] > 0  # cold: each listing read once
        _until_kept(root / "tree", 30, traced)
        for _ in range(3):
            assert _walk(root / "tree") == 30
        assert traced.take()["readdir"] == 0
        # a change made through the mount: the kernel reads that one listing again
        (root / "tree" / "d0" / "new.txt").write_bytes(b"n\n")
        assert _walk(root / "tree") == 31
        assert set(traced.paths("readdir")) == {"/tree/d0"}
        # one made by another process: the watcher has the kernel read that one again
        ws.write("tree/d3/api.txt", b"a\n")
        traced.take()
        assert _walk(root / "tree") == 32
        assert set(traced.paths("readdir")) == {"/tree/d3"}


def _until_kept(top: Path, files: int, traced: Traced) -> None:
    """Walk ``top`` (finding ``files`` files each time) until a walk reads no listing (the
    first walk after mounting may race the watcher's first look at the journal)."""
    deadline = time.monotonic() + 10
    while True:
        assert _walk(top) == files
        if traced.take()["readdir"] == 0:
            return
        assert time.monotonic() < deadline, "every walk read the listings again"
        time.sleep(0.05)
