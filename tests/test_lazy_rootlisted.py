"""A lazy fork's overlay mount lists its root before it answers, when that waits for nothing
(fuse/stacking.py ``list_root``): the first ``ls`` after ``avfs mount`` is then answered by
the kernel (overlayfs's listing of the merged root, the lower layer's entries), not by the
mount's daemon while its settling holds the interpreter (row 1 of issue 30:
docs/benchmarks.md). Against a real `git daemon` and a real overlay mount.

The daemon is stopped (SIGSTOP) the moment the mount answers: a listing that still needed
it would hang until it is let go. A root holding a file whose size is still being asked is
not listed ahead: that mount still answers before its sizes (tests/test_lazy_settle.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from pathlib import Path

from avfs_git.core.vaults.home import Home
from avfs_git.ops import mounts

from .conftest import git
from .test_lazy import Server
from .test_lazy_settle import HOLD_S, Relay, _backend_or_skip


def _served_dirs_only(base: Path) -> None:
    """``dirs.git``: a history whose root holds directories only, filters allowed."""
    work = base.parent / "dirs-work"
    for rel, text in (
        ("src/app/main.py", "print(1)\n"),
        ("src/app/util.py", "x = 2\n"),
        ("docs/a.md", "# a\n"),
    ):
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        (work / rel).write_text(text)
    git("init", "-q", "-b", "main", str(work))
    git("-C", str(work), "add", "-A")
    git("-C", str(work), "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "dirs")
    git("clone", "-q", "--bare", str(work), str(base / "dirs.git"))
    for key in ("uploadpack.allowFilter", "uploadpack.allowAnySHA1InWant", "transfer.advertiseObjectInfo"):
        git("--git-dir", str(base / "dirs.git"), "config", key, "true")


def test_the_root_is_listed_before_the_mount_answers(home: Home, tmp_path: Path) -> None:
    _backend_or_skip("overlay")
    base = tmp_path / "daemon"
    base.mkdir()
    _served_dirs_only(base)
    server = Server(base)
    server.start()
    relay = Relay(server.port)
    try:
        home.clone_vault(f"git://127.0.0.1:{relay.port}/dirs.git", "d", lazy=True)
        v = home.vault("d")
        mp = tmp_path / "mnt"
        mp.mkdir()
        relay.arm()  # the mount's request for sizes held: its settling cannot end meanwhile
        info = mounts.mount(home, v, "main", str(mp), backend="overlay")
        try:
            assert info.backend == "overlay"
            os.kill(info.pid, signal.SIGSTOP)
            try:
                got: list[list[str]] = []
                ls = threading.Thread(target=lambda: got.append(sorted(os.listdir(mp))), daemon=True)
                ls.start()
                ls.join(HOLD_S / 2)  # (answered at once by the kernel; a hang is the failure)
                assert not ls.is_alive(), "the root's listing waited for the stopped daemon"
                assert got == [[".git", "docs", "src"]]
            finally:
                os.kill(info.pid, signal.SIGCONT)
                relay.release()
            # the mount is whole: a deeper listing, and git once the settling is done
            assert sorted(os.listdir(mp / "src" / "app")) == ["main.py", "util.py"]
            status = subprocess.run(["git", "status", "--porcelain"], cwd=mp, capture_output=True, text=True)
            assert status.returncode == 0 and status.stdout == "", status
        finally:
            mounts.unmount(home, v, "main", lazy=True)
    finally:
        relay.close()
        server.stop()
