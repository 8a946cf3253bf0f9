"""Set-id bits from inside a confined `proxy exec` (the thirty-fourth round, NAME=attack25;
docs/security.md, "Set-id bits in the directories the sandbox writes").

The fork is mounted ``nosuid`` and its layers are behind 0700 directories, but a confined
command also writes host directories directly: the mount's worktree git dir
(``<vault>/worktrees/avfs-<fork>``, which git needs), the caches a policy shares. Found:
``cp /bin/sh $(git rev-parse --git-dir)/rootsh; chmod 4755`` there left a setuid copy of the
shell on the host's own file system, behind directories every user may search; another
local user ran it as the person (here, as root: ``euid=0``). Now the sandbox's seccomp filter
refuses every call that would set a set-id bit (the chmod family, and ``open``, ``creat``,
``mknod`` with such a mode), and ``openat2`` and io_uring, whose modes it cannot read.

Each from inside a real confined `proxy exec`: in a real mount (the mount's daemon serves
it, both backends), and on a fork with no mount (the CLI runs bubblewrap itself)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from typing import Any

from .test_adv_gitseal import _exec, _script
from .test_adv_gitseal import live as live  # the fixture: both backends
from .test_confine import _need_bwrap

# every way the command has to make a set-id file: in the worktree's git dir (a host
# directory bound writable) and in the fork (the mount), each spelled several ways
_ATTACK = """import ctypes, os, shutil, stat, subprocess, sys
libc = ctypes.CDLL(None, use_errno=True)
os.umask(0)
G = subprocess.run(["git", "rev-parse", "--absolute-git-dir"], capture_output=True, text=True).stdout.strip()
def tried(name, f):
    try:
        f()
        print(name, "made")
    except OSError as e:
        print(name, e.strerror)
for d in (G, os.getcwd()):
    shutil.copy("/bin/sh", d + "/rootsh")
    tried("chmod", lambda: os.chmod(d + "/rootsh", 0o4755))
    tried("chmod-g", lambda: os.chmod(d + "/rootsh", 0o2755))
    fd = os.open(d + "/rootsh", os.O_RDONLY)
    tried("fchmod", lambda: os.fchmod(fd, 0o6755))
    os.close(fd)
    tried("open", lambda: os.close(os.open(d + "/opened", os.O_CREAT | os.O_WRONLY, 0o4755)))
    tried("mknod", lambda: os.mknod(d + "/made", stat.S_IFREG | 0o2755))
    r = libc.syscall(452, -100, (d + "/rootsh").encode(), 0o4755, 0)  # fchmodat2
    print("fchmodat2", r, os.strerror(ctypes.get_errno()))
    os.chmod(d + "/rootsh", 0o755)  # (a plain chmod still works)
for argv in (["chmod", "u+s", "rootsh"], ["install", "-m", "6755", "/bin/sh", G + "/installed"]):
    print("ran", argv[0], subprocess.run(argv).returncode)
r = libc.syscall(437, -100, b"x", (ctypes.c_char * 24)(), 24)  # openat2
print("openat2", r, os.strerror(ctypes.get_errno()))
r = libc.syscall(425, 4, (ctypes.c_char * 120)())  # io_uring_setup
print("io_uring", r, os.strerror(ctypes.get_errno()))
print("mode", oct(os.stat("rootsh").st_mode))
"""


def _set_id_files(*tops: str) -> list[str]:
    """The regular files under ``tops`` with a set-id bit (no link followed)."""
    found = []
    for top in tops:
        for root, _dirs, files in os.walk(top):
            for name in files:
                p = os.path.join(root, name)
                st = os.lstat(p)
                if stat.S_ISREG(st.st_mode) and st.st_mode & (stat.S_ISUID | stat.S_ISGID):
                    found.append(p)
    return found


def _holds(stdout: str) -> None:
    """What the command printed: every set-id call refused, a plain chmod allowed."""
    lines = stdout.splitlines()
    for call in ("chmod", "chmod-g", "fchmod", "open", "mknod"):
        said = [line for line in lines if line.startswith(call + " ")]
        assert said == [f"{call} Operation not permitted"] * 2, stdout
    assert lines.count("fchmodat2 -1 Operation not permitted") == 2 or (
        lines.count("fchmodat2 -1 Function not implemented") == 2  # (a kernel before 6.6)
    ), stdout
    assert "ran chmod 1" in lines and "ran install 1" in lines, stdout
    assert "openat2 -1 Function not implemented" in lines, stdout
    assert "io_uring -1 Function not implemented" in lines, stdout
    assert "mode 0o100755" in lines, stdout


def test_a_mounted_fork_s_command_makes_no_set_id_file(live: Any, home: Any, vault: Any) -> None:
    """The mount's daemon runs the command (warm): neither in the worktree's git dir nor in
    the fork is any file left with a set-id bit, under the avfs home or in the mount."""
    _script(live, "setid.py", _ATTACK)
    doc = _exec("python3", "setid.py")
    assert doc["exit_code"] == 0, doc["result"]
    found = _set_id_files(home.path, live.mountpoint)
    assert found == [], f"set-id files the command made: {found}"
    _holds(doc["result"]["stdout"])


def test_an_unmounted_fork_s_command_makes_no_set_id_file(home: Any, vault: Any, tmp_path: Any) -> None:
    """No mount: the CLI's own process starts bubblewrap (a mount for the call, or a
    materialized copy); the same filter holds."""
    _need_bwrap()
    vault.workspace("main").write("setid.py", _ATTACK.encode())
    r = subprocess.run(
        [sys.executable, "-m", "avfs_git", "--vault", "v:main", "--json", "proxy", "exec", "--",
         "python3", "setid.py"],
        capture_output=True, timeout=300, check=False,
    )  # fmt: skip
    doc = json.loads(r.stdout)
    assert doc["confinement"]["kind"] == "bwrap", doc["confinement"]
    assert doc["exit_code"] == 0, doc
    found = _set_id_files(home.path, str(tmp_path))
    assert found == [], f"set-id files the command made: {found}"
    _holds(doc["result"]["stdout"])
