"""A fork's mount daemon killed (SIGKILL) while `checkpoint save`, `merge` and `proxy exec`
wait on it: the daemon is stopped (SIGSTOP), the call started, and once the call waits
(in poll(2): its request to the daemon) the daemon is killed. Each call then completes
(no error, no hang): what was written in the mount before is recorded (the checkpoint,
the merge's capture, the exec's record before its command), the exec mounts the fork
again for its command, `git fsck` is clean, and nothing is left uncheckpointed.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from .conftest import git, run_in_process
from .test_fuse import require_fuse

OPS = {
    "checkpoint save": ("checkpoint", "save", "-m", "during"),
    "merge": ("merge", "side"),
    "proxy exec": ("proxy", "exec", "--", "sh", "-c", "echo x > x.txt"),
}


def _waiting(proc: subprocess.Popen[str]) -> bool:
    """Whether ``proc`` has exited or sleeps in poll(2) (its request to the stopped daemon)."""
    if proc.poll() is not None:
        return True
    try:
        return "poll" in Path(f"/proc/{proc.pid}/wchan").read_text()
    except OSError:
        return True


def _held_locks(pid: int, locks: Path) -> list[str]:
    """The lock files under ``locks`` that process ``pid`` holds (/proc/locks)."""
    inodes = {}
    for p in locks.glob("*") if locks.is_dir() else ():
        with contextlib.suppress(OSError):
            inodes[p.stat().st_ino] = p.name
    held = []
    for line in Path("/proc/locks").read_text().splitlines():
        f = line.split()
        if "->" in f:  # a waiter, not a holder
            continue
        with contextlib.suppress(IndexError, ValueError):
            if int(f[4]) == pid and int(f[5].split(":")[2]) in inodes:
                held.append(inodes[int(f[5].split(":")[2])])
    return held


def _stop_holding_no_lock(pid: int, locks: Path) -> None:
    """SIGSTOP the daemon at a moment it holds none of the vault's locks: after the exec
    that mounted the fork, its exec server's warm-up holds the fork's exec lock for the
    fork's first status (proxy/server.py), and a daemon stopped there would hold every
    checkpoint off (a fresh-clone run under load: `busy` after 10 s), which is not what
    this test is about (a daemon killed while a call waits on it)."""
    deadline = time.monotonic() + 60
    while True:
        os.kill(pid, signal.SIGSTOP)
        held = _held_locks(pid, locks)
        if not held:
            return
        assert time.monotonic() < deadline, f"the daemon kept holding {held}"
        os.kill(pid, signal.SIGCONT)
        time.sleep(0.05)


def test_a_daemon_killed_during_a_call_loses_nothing_and_the_call_completes(tmp_path: Path) -> None:
    require_fuse()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(AVFS_HOME=str(tmp_path / "home"), AVFS_SERVER="off")

    def cmd(*args: str) -> list[str]:
        return [sys.executable, "-m", "avfs_git", "--json", "--vault", "v", *args]

    def run(*args: str) -> dict:  # type: ignore[type-arg]
        """A real `avfs` process: the calls the daemon's kill is about, and the `proxy exec`
        that mounts the fork as a person's first exec does (kept warm)."""
        done = subprocess.run(cmd(*args), capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        return json.loads(done.stdout)  # type: ignore[no-any-return]

    own = {"AVFS_HOME": env["AVFS_HOME"], "AVFS_SERVER": "off"}

    def call(*args: str) -> dict:  # type: ignore[type-arg]
        """The same command in this process (tests/conftest.py ``run_in_process``): the
        set-up and the reads around the kill, which test no process of their own."""
        done = run_in_process(["--json", "--vault", "v", *args], env=own)
        assert done.code == 0, done.out + done.err
        return done.json()

    assert run_in_process(["vault", "create", "v"], env=own).code == 0
    call("write", "a.txt", "a\n")
    call("checkpoint", "save")
    call("vault", "fork", "v:main", "side")
    vault = str(tmp_path / "home" / "vaults" / "v.git")
    pid = 0
    try:
        for what, args in OPS.items():
            if what == "merge":
                call("--vault", "v:side", "write", f"side-{what}.txt", "side\n")
                call("--vault", "v:side", "checkpoint", "save")
            mount = run("proxy", "exec", "--", "true")["mount"]  # mounted (kept warm)
            mp = Path(mount["mountpoint"])
            pid = call("mount")["mount"]["pid"]
            (mp / f"u-{what}.txt").write_text(f"written before {what}\n")
            _stop_holding_no_lock(pid, Path(vault, "avfs", "locks"))
            proc = subprocess.Popen(
                cmd(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
            )
            deadline = time.monotonic() + 60
            while not _waiting(proc) and time.monotonic() < deadline:
                time.sleep(0.02)
            os.kill(pid, signal.SIGKILL)
            out, err = proc.communicate(timeout=120)
            doc = json.loads(out)
            if what == "proxy exec" and (doc.get("error") or {}).get("code") == "mount_died":
                # the daemon died while the command ran (it saw ENOTCONN): the documented
                # error, the command's own exit code; the next call mounts again and runs it
                assert proc.returncode == doc["result"]["exit_code"] and doc["mount"]["alive_after"] is False
                proc = subprocess.Popen(
                    cmd(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
                )
                out, err = proc.communicate(timeout=120)
                doc = json.loads(out)
            assert proc.returncode == 0, (what, doc.get("error"), doc.get("result"), err)
            assert doc["kind"] != "error" and doc.get("success", True), (what, doc)
            name = f"u-{what}.txt"
            assert git("--git-dir", vault, "show", f"main:{name}") == f"written before {what}\n", what
            if what == "merge":
                assert git("--git-dir", vault, "show", f"main:side-{what}.txt") == "side\n"
            if what == "proxy exec":
                assert git("--git-dir", vault, "show", "main:x.txt") == "x\n"
            assert call("status")["changes"] == [], what
            git("--git-dir", vault, "fsck", "--full", "--strict")
    finally:
        if pid:
            for sig in (signal.SIGCONT, signal.SIGKILL):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    break
        with contextlib.suppress(Exception):  # (the umount below whatever this says)
            run_in_process(["--vault", "v", "unmount", "v:main"], env=own)
        for line in Path("/proc/self/mounts").read_text().splitlines():
            if str(tmp_path) in line.split()[1]:
                subprocess.run(["umount", "-l", line.split()[1]], check=False)
