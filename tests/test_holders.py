"""Who is inside a mount (ops/holders.py): ``avfs unmount`` refuses while anyone is, but
waits a moment for the mount's own daemon, whose holds right after the mount answered (the
merged directories it lists, the ``.git`` it pins through the overlay) end by themselves:
an unmount typed right after the first ``git`` in a lazy mount found the daemon pinning
``.git`` and failed ``busy``. Real processes holding real files; never timed."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from avfs_git.ops import holders

# holds the file until its standard input ends (the test lets go: a hold of a fixed time
# ended before a loaded machine had looked at /proc)
HOLD = "import sys; f = open(sys.argv[1]); print('held', flush=True); sys.stdin.read()"


def _holder(path: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline() == "held\n"
    return proc


def _let_go(proc: subprocess.Popen[str], after_s: float) -> threading.Timer:
    assert proc.stdin is not None
    t = threading.Timer(after_s, proc.stdin.close)
    t.start()
    return t


def _end(proc: subprocess.Popen[str]) -> None:
    proc.kill()
    proc.wait()
    for f in (proc.stdin, proc.stdout):
        if f is not None and not f.closed:
            f.close()


def test_the_daemon_s_own_hold_is_waited_for_anyone_else_s_is_not(tmp_path: Path):
    d = tmp_path / "mnt"
    d.mkdir()
    (d / ".git").write_text("gitdir: /x\n")
    assert holders.mount_holders(str(d)) == []
    assert not holders.held(str(d), 0)

    daemon = _holder(d / ".git")  # a moment's hold of the mount's own daemon
    try:
        assert [h["pid"] for h in holders.mount_holders(str(d))] == [daemon.pid]
        _let_go(daemon, 0.5)
        assert not holders.held(str(d), daemon.pid, wait_s=60.0)  # waited until it let go
        assert daemon.poll() is not None or holders.mount_holders(str(d)) == []
    finally:
        _end(daemon)

    someone = _holder(d / ".git")
    try:
        assert holders.held(str(d), daemon.pid, wait_s=60.0)  # not the daemon: busy at once
        assert holders.held(str(d), someone.pid, wait_s=0.1)  # the daemon, holding on: busy after the wait
    finally:
        _end(someone)
