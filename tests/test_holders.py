"""Who is inside a mount (ops/holders.py): ``avfs unmount`` refuses while anyone is, but
waits a moment for the mount's own daemon, whose holds right after the mount answered (the
merged directories it lists, the ``.git`` it pins through the overlay) end by themselves:
an unmount typed right after the first ``git`` in a lazy mount found the daemon pinning
``.git`` and failed ``busy``. Real processes holding real files; never timed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from avfs_git.ops import holders

HOLD = "import sys, time; f = open(sys.argv[1]); print('held', flush=True); time.sleep(float(sys.argv[2]))"


def _holder(path: Path, seconds: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline() == "held\n"
    return proc


def test_the_daemon_s_own_hold_is_waited_for_anyone_else_s_is_not(tmp_path: Path):
    d = tmp_path / "mnt"
    d.mkdir()
    (d / ".git").write_text("gitdir: /x\n")
    assert holders.mount_holders(str(d)) == []
    assert not holders.held(str(d), 0)

    daemon = _holder(d / ".git", 0.5)  # a moment's hold of the mount's own daemon
    try:
        assert [h["pid"] for h in holders.mount_holders(str(d))] == [daemon.pid]
        assert not holders.held(str(d), daemon.pid, wait_s=60.0)  # waited until it let go
        assert daemon.poll() is not None or holders.mount_holders(str(d)) == []
    finally:
        daemon.kill()
        daemon.communicate()

    someone = _holder(d / ".git", 60.0)
    try:
        assert holders.held(str(d), daemon.pid, wait_s=60.0)  # not the daemon: busy at once
        assert holders.held(str(d), someone.pid, wait_s=0.1)  # the daemon, holding on: busy after the wait
    finally:
        someone.kill()
        someone.communicate()
