"""git's own state of a mount outlives a mount daemon killed with -9 (the twenty-fourth
round, NAME=gitgc1; gitmodel14's mount/gitkeep.py kept it across an unmount, an idle
release and `avfs down`, not across a killed daemon, whose worktree the next mount removed).

A person leaves git mid-way in a mount (a merge stopped on a conflict, a new file staged,
another unstaged, an untracked one), the daemon is killed, the fork is mounted again: git
finds its state as a plain clone beside that did the same has it, and finishes the merge.
Real git, real mounts, both backends. And the debris of a keep or a bring_back killed
between its renames (``gitkept/<fork>.<pid>.new`` / ``.taking``) is taken care of, never
one of a live process.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from avfs_git.core.operations import checkpoint
from avfs_git.core.store.locks import pid_alive
from avfs_git.core.vaults import registry
from avfs_git.core.vaults.home import Home
from avfs_git.core.vaults.vault import Vault
from avfs_git.mount import gitkeep
from avfs_git.ops import mounts

from .conftest import git
from .test_fuse import require_fuse
from .test_overlay import require_overlay

# the same commits on both sides (the plain clone's and the mount's ids agree)
DATES = {"GIT_AUTHOR_DATE": "1700000000 +0000", "GIT_COMMITTER_DATE": "1700000000 +0000"}


def _require(backend: str) -> None:
    if backend == "overlay":
        require_overlay()
    else:
        require_fuse()


def _g(cwd: Path, *args: str, check: bool = True, stdin: str | None = None) -> str:
    proc = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, input=stdin, env={**os.environ, **DATES}
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} in {cwd}: {proc.stderr}")
    return proc.stdout


def _leave_git_mid_way(cwd: Path) -> None:
    """A branch `side` (made by plumbing: a mount does not switch branches) changing a.txt,
    a commit of the person's changing it too, `git merge side` stopped on the conflict, a
    new file staged, a tracked one changed unstaged, an untracked one."""
    blob = _g(cwd, "hash-object", "-w", "--stdin", stdin="side\n").strip()
    readme = _g(cwd, "rev-parse", "HEAD:README.md").strip()
    tree = _g(cwd, "mktree", stdin=f"100644 blob {readme}\tREADME.md\n100644 blob {blob}\ta.txt\n").strip()
    side = _g(cwd, "commit-tree", tree, "-p", "HEAD", "-m", "side").strip()
    _g(cwd, "update-ref", "refs/heads/side", side)
    (cwd / "a.txt").write_text("mine\n")
    _g(cwd, "commit", "-q", "-am", "mine")
    merge = _g(cwd, "merge", "side", check=False)
    assert "CONFLICT" in merge, merge
    (cwd / "NEW.txt").write_text("staged\n")
    _g(cwd, "add", "NEW.txt")
    (cwd / "README.md").write_text("changed, not staged\n")
    (cwd / "untracked.txt").write_text("untracked\n")


def _git_state(cwd: Path) -> dict[str, str]:
    return {
        "status": _g(cwd, "status", "--porcelain=v1"),
        "staged": _g(cwd, "ls-files", "-s"),
        "merge_head": _g(cwd, "rev-parse", "-q", "--verify", "MERGE_HEAD", check=False),
        "head": _g(cwd, "rev-parse", "HEAD"),
        "a.txt": (cwd / "a.txt").read_text(),
    }


def _kill_daemon(home: Home, vault: Vault, fork: str) -> None:
    record = registry.read_record(registry.record_path(vault.state_dir, fork))
    assert record is not None
    pid = int(record["pid"])
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not pid_alive(pid)


@pytest.mark.parametrize("found_by", ["list", "mount"])
@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_git_s_state_outlives_a_killed_daemon_as_a_plain_clone_keeps_it(
    home: Home, vault: Vault, tmp_path: Path, backend: str, found_by: str
) -> None:
    _require(backend)
    ws = vault.workspace("main")
    ws.write("README.md", b"hello\n")
    ws.write("a.txt", b"base\n")
    checkpoint.save(vault, "main")
    plain = tmp_path / "plain"
    git("clone", "-q", vault.path, str(plain))
    _leave_git_mid_way(plain)
    mp = tmp_path / "m"
    mp.mkdir()
    mounts.mount(home, vault, "main", str(mp), backend=backend)
    try:
        _leave_git_mid_way(mp)
        before = _git_state(mp)
        assert before == _git_state(plain)
        assert before["merge_head"] and "UU a.txt" in before["status"]
        _kill_daemon(home, vault, "main")
        if found_by == "list":  # the dead mount found and cleaned up first (`avfs mount --list`)
            mounts.list_mounts(home)
        mounts.mount(home, vault, "main", str(mp), backend=backend)
        assert _git_state(mp) == _git_state(plain)
        for cwd in (plain, mp):  # and git finishes what it left open
            (cwd / "a.txt").write_text("resolved\n")
            _g(cwd, "add", "a.txt")
            _g(cwd, "commit", "-q", "--no-edit")
        assert _git_state(mp) == _git_state(plain)
        assert len(_g(mp, "log", "-1", "--format=%P").split()) == 2
    finally:
        mounts.unmount(home, vault, "main")
    assert not os.listdir(os.path.join(vault.state_dir, registry.GIT_KEPT)) or not any(
        n.endswith((".new", ".taking")) for n in os.listdir(os.path.join(vault.state_dir, registry.GIT_KEPT))
    )


@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_a_killed_daemon_s_git_state_outlives_doctor_s_repair(
    home: Home, vault: Vault, tmp_path: Path, backend: str
) -> None:
    """`avfs doctor --repair` (and `avfs prune`) removes a dead daemon's worktree: git's
    state there is kept first, for the fork's next mount."""
    _require(backend)
    ws = vault.workspace("main")
    ws.write("README.md", b"hello\n")
    checkpoint.save(vault, "main")
    mp = tmp_path / "m"
    mp.mkdir()
    mounts.mount(home, vault, "main", str(mp), backend=backend)
    try:
        (mp / "NEW.txt").write_text("staged\n")
        git("add", "NEW.txt", cwd=mp)
        _kill_daemon(home, vault, "main")
        proc = subprocess.run(
            [sys.executable, "-m", "avfs_git", "--home", home.path, "--json", "doctor", "--repair"],
            capture_output=True,
            text=True,
            timeout=300,
        )
        doc = json.loads(proc.stdout)
        assert any(f.get("code") == "stale_worktree" for f in doc.get("findings", [])), doc
        assert not os.path.isdir(os.path.join(vault.path, "worktrees", "avfs-main"))
        assert os.path.isdir(registry.gitkept_dir(vault.state_dir, "main"))
        mounts.mount(home, vault, "main", str(mp), backend=backend)
        assert git("status", "--porcelain", cwd=mp) == "A  NEW.txt\n"
    finally:
        mounts.unmount(home, vault, "main")


def _kept_with_index(home: Home, vault: Vault, tmp_path: Path) -> bytes:
    """An unmount's kept state of fork main holding an index with NEW.txt staged."""
    require_fuse()
    ws = vault.workspace("main")
    ws.write("README.md", b"hello\n")
    checkpoint.save(vault, "main")
    mp = tmp_path / "m"
    mp.mkdir()
    mounts.mount(home, vault, "main", str(mp), backend="fuse")
    try:
        (mp / "NEW.txt").write_text("staged\n")
        git("add", "NEW.txt", cwd=mp)
    finally:
        mounts.unmount(home, vault, "main")
    return (Path(registry.gitkept_dir(vault.state_dir, "main")) / "git" / "index").read_bytes()


_NEVER_ALIVE = itertools.count(1)


def _dead_pid() -> int:
    """A pid no process can hold: above the kernel's ``pid_max``. A pid of a process that
    ended is reused on a busy machine: a fresh-clone run once found ``pid + 1`` alive by the
    time the clean-up looked, and the claim under it was (rightly) left alone."""
    with open("/proc/sys/kernel/pid_max") as f:
        return int(f.read()) + next(_NEVER_ALIVE)


def test_a_killed_bring_back_s_claim_is_kept_again_and_a_live_one_left_alone(
    home: Home, vault: Vault, tmp_path: Path
) -> None:
    """A mount killed between bring_back's claim (``<fork>.<pid>.taking``) and its moves held
    git's state there alone: the next mount brings it back. One whose process runs is
    never touched."""
    index = _kept_with_index(home, vault, tmp_path)
    kept = registry.gitkept_dir(vault.state_dir, "main")
    dead = f"{kept}.{_dead_pid()}.taking"
    os.rename(kept, dead)
    live = f"{kept}.{os.getppid()}.new"  # (a process that runs: pytest's parent)
    os.makedirs(os.path.join(live, "git"))
    mp = tmp_path / "m2"
    mp.mkdir()
    mounts.mount(home, vault, "main", str(mp), backend="fuse")
    try:
        assert git("status", "--porcelain", cwd=mp) == "A  NEW.txt\n"
        assert (Path(vault.path) / "worktrees" / "avfs-main" / "index").exists()
        assert not os.path.lexists(dead)
        assert os.path.isdir(os.path.join(live, "git"))  # never a live one's
    finally:
        mounts.unmount(home, vault, "main")
    assert index  # (what the unmount kept held an index)


def test_a_killed_keep_s_new_dir_is_set_aside_where_a_kept_state_is_there(home: Home, vault: Vault) -> None:
    """A keep killed after it moved the worktree into ``<fork>.<pid>.new`` while git's state
    is kept already: set aside (``<fork>.set-aside``), never removed; one holding nothing of
    git's goes."""
    ws = vault.workspace("main")
    kept = registry.gitkept_dir(vault.state_dir, "main")
    os.makedirs(os.path.join(kept, "git"))
    Path(kept, "kept.json").write_text("{}")
    pid = _dead_pid()
    stale = f"{kept}.{pid}.new"
    os.makedirs(os.path.join(stale, "git"))
    Path(stale, "git", "MERGE_HEAD").write_text("x\n")
    empty = f"{kept}.{_dead_pid()}.taking"
    os.makedirs(empty)
    done = gitkeep.clean_stale(ws)
    assert sorted(done) == sorted([os.path.basename(stale), os.path.basename(empty)])
    assert Path(kept + gitkeep.SET_ASIDE, "git", "MERGE_HEAD").read_text() == "x\n"
    assert not os.path.lexists(stale) and not os.path.lexists(empty)
    assert os.path.isdir(os.path.join(kept, "git"))
