"""A file written through a pure-FUSE mount after a checkpoint's capture read it, and
closed before the checkpoint retires its entry, keeps the bytes written (found in the
twentieth round, NAME=review10: the entry was retired and the file's bytes lost, ~1 file in
300 written every 5 ms over eight checkpoints; core/workspace/overlaydb.py ``note_read``).

The moment is made exact: the retire of the checkpoint, in this process, first writes and
closes the mount's open descriptor and waits for the daemon to let go of it."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

from avfs_git.core.operations import checkpoint
from avfs_git.core.vaults.home import Home
from avfs_git.core.workspace.overlay import Overlay
from avfs_git.core.workspace.overlayentry import Entry
from avfs_git.ops import mounts

from .conftest import git
from .gitmount import _require

LATE = b"written after the capture read the file\n"


@pytest.mark.parametrize("first", [b"", b"x" * len(LATE)], ids=["created", "same-size"])
def test_a_file_written_and_closed_between_capture_and_retire_keeps_its_bytes(
    home: Home, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, first: bytes
) -> None:
    _require("fuse")
    vault = home.create_vault("v")
    vault.workspace("main").write("base.txt", b"base\n")
    checkpoint.save(vault, "main", message="base")
    mp = tmp_path / "m"
    mp.mkdir()
    mounts.mount(home, vault, "main", str(mp), backend="fuse")
    try:
        fd = os.open(mp / "late.txt", os.O_WRONLY | os.O_CREAT, 0o644)
        if first:  # the capture reads these bytes; the same count of others follows
            os.write(fd, first)
        fired: list[str] = []
        real = Overlay.retire

        def retire(
            self: Overlay,
            db: object,
            captured: Iterable[Entry],
            oid_of: Callable[[str], str | None] | None = None,
        ) -> int:
            captured = list(captured)
            late = next((e for e in captured if e.path == "late.txt"), None)
            if late is not None and late.fileid and not fired:
                os.pwrite(fd, LATE, 0)
                os.close(fd)  # the daemon's release drops its flock a moment later
                deadline = time.monotonic() + 30
                while self.in_use(late.fileid) and time.monotonic() < deadline:
                    time.sleep(0.01)
                fired.append(late.fileid)
            return real(self, db, captured, oid_of)  # type: ignore[arg-type]

        monkeypatch.setattr(Overlay, "retire", retire)
        checkpoint.save(vault, "main", message="during")
        monkeypatch.undo()
        assert fired, "the checkpoint retired no entry of late.txt in this process"
        assert (mp / "late.txt").read_bytes() == LATE
        assert vault.workspace("main").read("late.txt") == LATE
        checkpoint.save(vault, "main", message="after")
        assert git("--git-dir", vault.path, "show", "main:late.txt").encode() == LATE
    finally:
        mounts.unmount(home, vault, "main")
