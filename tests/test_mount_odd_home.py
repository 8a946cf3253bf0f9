"""A home whose path holds a space, a quote and a `#` (`/home/J Doe's #1/...`): the mount's
git config names the fsmonitor hook and the hooks directory so that git reads them back
whole (a `#` starts a config comment) and the shell git runs the hook with takes it as one
word; git status in the mount asks the hook and it answers. Before, the value was cut at
the `#` and split at the space: git ran `/tmp/... home` and fell back to looking at every
file. Real mounts, real git, both backends."""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from avfs_git.core.operations import checkpoint
from avfs_git.core.vaults.home import Home
from avfs_git.mount.hookscripts import HOOKS_DIR
from avfs_git.mount.ownfiles import HOOK_FILE, files_dir
from avfs_git.mount.side import MOUNT_SIDE
from avfs_git.ops import mounts

from .conftest import AUTHOR, POLICY_PATHS
from .test_fuse import require_fuse
from .test_overlay import require_overlay


@pytest.fixture
def odd_home(tmp_path: Path) -> Iterator[Home]:
    h = Home(str(tmp_path / "J Doe's #1 home"), author=AUTHOR, mounts=MOUNT_SIDE, paths=POLICY_PATHS)
    yield h
    h.close()


def _git(mp: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", *args],
        cwd=mp,
        capture_output=True,
        text=True,
        env={**os.environ, "GIT_CEILING_DIRECTORIES": os.path.dirname(mp), **(env or {})},
    )


@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_git_in_a_mount_under_an_odd_home_path_asks_the_hook(
    odd_home: Home, tmp_path: Path, backend: str
) -> None:
    require_overlay() if backend == "overlay" else require_fuse()
    vault = odd_home.create_vault("v")
    vault.workspace("main").write("README.md", b"# hello\n")
    checkpoint.save(vault, name="base")
    info = mounts.mount(odd_home, vault, "main", None, backend=backend)
    try:
        mp = info.mountpoint
        own = files_dir(vault, "main")
        assert " " in own and "#" in own and "'" in own
        # git reads both values back whole
        hooks = _git(mp, "config", "--get", "core.hooksPath")
        assert hooks.returncode == 0 and hooks.stdout == os.path.join(own, HOOKS_DIR) + "\n", hooks
        fsm = _git(mp, "config", "--get", "core.fsmonitor")
        # (a command line, run by the shell: one word, the hook)
        assert fsm.returncode == 0 and shlex.split(fsm.stdout) == [os.path.join(own, HOOK_FILE)], fsm
        with open(os.path.join(mp, "new.txt"), "wb") as fh:
            fh.write(b"new\n")
        trace = tmp_path / "fsmonitor.trace"
        st = _git(mp, "status", "--porcelain", env={"GIT_TRACE_FSMONITOR": str(trace)})
        assert st.returncode == 0 and st.stdout == "?? new.txt\n", st
        said = trace.read_text()
        assert "returned success" in said and "returned failure" not in said, said
    finally:
        mounts.unmount(odd_home, vault, "main", lazy=True)
