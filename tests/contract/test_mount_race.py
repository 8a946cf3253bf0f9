"""Two starters of one fork's mount at the same moment (two `avfs mount`s; `avfs mount` and
a first `proxy exec`) get one mount between them: one daemon, one kernel mount, the later
caller told `reused` once the mount serves. Before the fork's mount lock (ops/mounts.start)
both could start a daemon, the second over the first's mount point, or the second's failed
with `mount_failed` after force-unmounting the first's. Real processes, both backends."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from avfs_git.core.operations import checkpoint
from avfs_git.core.vaults import registry
from avfs_git.core.vaults.home import Home
from avfs_git.core.vaults.vault import Vault
from avfs_git.ops import mounts

from .. import daemons
from .backends import MOUNTS
from .test_mount_kept_warm import LONG, _env

pytestmark = pytest.mark.backends(*MOUNTS)  # what a mount's daemon does

ROUNDS = 3


def _start(home: Home, backend: str, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "avfs_git", "--home", home.path, "--json", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env(backend, LONG),
    )


def _doc(p: subprocess.Popen[bytes]) -> dict[str, Any]:
    out, err = p.communicate(timeout=120)
    doc = json.loads(out)
    assert p.returncode == 0, (doc, err)
    return dict(doc)


def _daemons(home: Home) -> list[int]:
    """The mount daemons of this home that are running."""
    return daemons.of_home(home.path)


def _kernel_mounts(mp: str) -> int:
    with open("/proc/self/mounts", "rb") as fh:
        return sum(1 for line in fh if line.split()[1] == mp.encode())


@pytest.fixture
def forked(home: Home, vault: Vault) -> Any:
    vault.workspace("main").write("README.md", b"# hello\n")
    checkpoint.save(vault, name="base")
    yield vault
    if mounts.check(vault, "main") is not None:
        mounts.unmount(home, vault, "main", lazy=True)


@pytest.mark.parametrize("second", ["mount", "proxy exec"])
def test_two_starters_at_once_get_one_mount(backend: str, home: Home, forked: Vault, second: str) -> None:
    for _ in range(ROUNDS):
        a = _start(home, backend, "mount", "v:main")
        if second == "mount":
            b = _start(home, backend, "mount", "v:main")
        else:
            b = _start(home, backend, "--vault", "v:main", "proxy", "exec", "--", "cat", "README.md")
        da, db = _doc(a), _doc(b)
        ma = da["mount"]
        mb = db["mount"]
        assert ma["state"] == "mounted" and mb["mountpoint"] == ma["mountpoint"], (ma, mb)
        if second == "mount":
            assert mb["state"] == "mounted" and ma["pid"] == mb["pid"], (ma, mb)  # one daemon
            assert sorted([ma["reused"], mb["reused"]]) == [False, True], (ma, mb)
        else:  # the call ran in the one mount (made by either)
            assert db["success"] and db["result"]["stdout"] == "# hello\n", db
        assert _kernel_mounts(ma["mountpoint"]) == 1
        assert registry.live_mountpoints(forked.state_dir) == {"main": ma["mountpoint"]}
        assert _daemons(home) == [ma["pid"]]
        # it serves: the file is there, and a second look finds the same mount
        with open(os.path.join(ma["mountpoint"], "README.md"), "rb") as fh:
            assert fh.read() == b"# hello\n"
        info = mounts.check(forked, "main")
        assert info is not None and info.pid == ma["pid"]
        mounts.unmount(home, forked, "main")
        assert not registry.mounted_at(ma["mountpoint"])
