"""A checkpoint asked for while a `proxy exec` runs on the same fork waits for it (then
refuses with busy, exit 75): the exec's commit holds exactly its command's changes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

from .conftest import git
from .test_fuse import require_fuse


def _avfs(*args: str, wait: str = "1", **kw: Any) -> subprocess.Popen[bytes]:
    env = {**os.environ, "AVFS_LOCK_WAIT": wait}
    return subprocess.Popen([sys.executable, "-m", "avfs_git", *args], env=env, **kw)


def _lines(vault: Any) -> list[str]:
    ws = vault.workspace("main")
    return ws.read("out.txt").decode().splitlines() if ws.exists("out.txt") else []


def test_a_checkpoint_waits_for_a_running_exec_and_never_splits_its_commit(home, vault):
    require_fuse()
    vault.workspace("main").write("README.md", b"r\n")
    subprocess.run([sys.executable, "-m", "avfs_git", "--vault", "v", "checkpoint", "save"], check=True)
    before = vault.workspace("main").tip()
    # the command writes 20 lines, waits for its stdin, then writes 20 more
    script = "for i in $(seq 1 20); do echo a$i >> out.txt; done; read go; " \
             "for i in $(seq 1 20); do echo b$i >> out.txt; done"  # fmt: skip
    exe = _avfs("--json", "--vault", "v:main", "proxy", "exec", "--stdin", "--", "sh", "-c", script,
                wait="60", stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while len(_lines(vault)) < 20:
            assert exe.poll() is None, exe.communicate()
            assert time.monotonic() < deadline, "the command never wrote its first lines"
            time.sleep(0.05)
        # asked while the command runs: waits (1 s here), then busy, and nothing changes
        cp = _avfs("--json", "--vault", "v:main", "checkpoint", "save", stdout=subprocess.PIPE)
        out, _ = cp.communicate(timeout=60)
        doc = json.loads(out)
        assert cp.returncode == 75 and doc["error"]["code"] == "busy", doc
        assert "proxy exec" in doc["error"]["message"]
        assert vault.workspace("main").tip() == before
        # asked again with time to wait: it waits for the exec's commit
        waiting = _avfs(
            "--json", "--vault", "v:main", "checkpoint", "save", wait="120", stdout=subprocess.PIPE
        )
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and waiting.poll() is None:
            time.sleep(0.05)
        assert waiting.poll() is None, "the checkpoint did not wait for the running command"
        res, _ = exe.communicate(input=b"go\n", timeout=120)
        envelope = json.loads(res)
        assert envelope["exit_code"] == 0 and envelope["commit"], envelope
        out, _ = waiting.communicate(timeout=120)
        assert waiting.returncode == 0, out
        assert json.loads(out)["created"] is False  # the exec's commit took every line
    finally:
        if exe.poll() is None:
            exe.kill()
            exe.wait()
    commit = envelope["commit"]["commit"]
    assert vault.workspace("main").tip() == commit
    assert git("--git-dir", vault.path, "rev-parse", f"{commit}^").strip() == before
    lines = git("--git-dir", vault.path, "show", f"{commit}:out.txt").splitlines()
    assert lines == [f"a{i}" for i in range(1, 21)] + [f"b{i}" for i in range(1, 21)]
    assert git("--git-dir", vault.path, "ls-tree", "--name-only", before).split() == ["README.md"]
