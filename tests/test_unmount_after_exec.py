"""A person unmounts right after a `proxy exec` in a pure-FUSE mount whose confined command
left a process behind (a new session, a file of the fork open, its working directory in the
fork): the unmount goes at once, busy never (the sandbox's processes hold their own copy of
the mount, in a mount namespace of their own, which does not make the host's busy here: no
mount of this machine propagates), and nothing of the command is left running (its PID
namespace ends with it). The attacker's side of CI's unnamed busy unmount (flaky1; the
cause found was the daemon's own stat of its mount point: tests/test_registry.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from .test_confine import _need_bwrap
from .test_fuse import require_fuse

MARK = "61.25"  # the left process's `sleep` argument: found by it in /proc


def _left(mark: str) -> list[int]:
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                argv = fh.read().split(b"\0")
        except OSError:
            continue
        if argv[:2] == [b"sleep", mark.encode()]:
            out.append(int(pid))
    return out


def test_a_process_a_confined_command_left_does_not_keep_the_mount(tmp_path: Path) -> None:
    require_fuse()
    _need_bwrap()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(AVFS_HOME=str(tmp_path / "home"), AVFS_SERVER="off", AVFS_LAYERS="off")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "avfs_git", *args], capture_output=True, text=True, timeout=120, env=env
        )

    mp = tmp_path / "m"
    mp.mkdir()
    assert run("vault", "create", "v").returncode == 0
    assert run("--vault", "v", "write", "notes.txt", "n\n").returncode == 0
    assert run("--vault", "v", "mount", "--backend", "fuse", str(mp)).returncode == 0
    try:
        script = f'setsid sh -c "exec 3<notes.txt; sleep {MARK}" </dev/null >/dev/null 2>&1 & echo left'
        r = run("--json", "--vault", "v", "proxy", "exec", "--", "sh", "-c", script)
        env_doc = json.loads(r.stdout)
        assert env_doc["result"]["stdout"] == "left\n" and env_doc["mount"]["mode"] == "fuse", env_doc
        done = run("--json", "--vault", "v", "unmount")
        assert done.returncode == 0, done.stdout + done.stderr
        assert str(mp) not in Path("/proc/self/mounts").read_text()
        assert _left(MARK) == []
    finally:
        if str(mp) in Path("/proc/self/mounts").read_text():
            run("--vault", "v", "unmount", "--lazy")
        for pid in _left(MARK):
            os.kill(pid, 9)
