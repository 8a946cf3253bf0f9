"""The held base ref a killed mount daemon leaves (the twenty-seventh round, gitgc4).

A mount holds its fork's base for git's gc while it lives (``refs/avfs/held/<fork>/-/base``,
core/store/heldref.py; gitgc3): made at its start, removed at its unmount. A daemon killed
with -9 removes nothing. What then, each on a real mount of both backends:

- `avfs doctor` names it (``stale_held_base``) and `--repair` removes it, where the fork's
  branch holds what it names; a live mount of another fork keeps its own, and git's gc
  beside it keeps that mount's base;
- `avfs gc` and `avfs prune` remove it too; the fork's next mount makes it its own again
  and its unmount removes it;
- where git in the killed mount moved the branch off the base with nothing left to say so
  (its hooks off, the reflogs expired), the workspace stands on a commit only that ref
  keeps: it stays (doctor warns, ``held_base_needed``), git's gc keeps the commit and the
  file the view shows, until the base moves;
- a mount starting while doctor removes the ref keeps its base held.

Before, nothing but the fork's next mount and unmount removed it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from avfs_git.core.operations import checkpoint
from avfs_git.core.store import refs
from avfs_git.core.store.locks import pid_alive
from avfs_git.core.vaults import registry
from avfs_git.core.vaults.home import Home
from avfs_git.core.vaults.vault import Vault
from avfs_git.ops import maintenance, mounts
from avfs_git.ops.maintenance import leftovers

from .conftest import git
from .test_fuse import require_fuse
from .test_overlay import require_overlay

NEW = b"the undone commit's file\n"


def _require(backend: str) -> None:
    if backend == "overlay":
        require_overlay()
    else:
        require_fuse()


def _base_ref(vault: Vault, fork: str) -> str | None:
    return refs.read_ref_file(vault.path, refs.held_base_ref(fork))


def _kill(vault: Vault, fork: str) -> None:
    """The fork's mount daemon killed with -9 (nothing of its teardown runs)."""
    record = registry.read_record(registry.record_path(vault.state_dir, fork))
    assert record is not None
    pid = int(record["pid"])
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not pid_alive(pid)


@contextmanager
def _mount(home: Home, vault: Vault, fork: str, mp: Path, backend: str) -> Iterator[None]:
    mp.mkdir(exist_ok=True)
    mounts.mount(home, vault, fork, str(mp), backend=backend)
    try:
        yield
    finally:
        try:
            mounts.unmount(home, vault, fork, lazy=True)
        finally:
            # (a killed overlay mount's lower layer too, once prune removed its record)
            for line in Path("/proc/mounts").read_text(errors="surrogateescape").splitlines()[::-1]:
                where = line.split()[1]
                if where == str(mp) or where.startswith(home.path + "/"):
                    subprocess.run(["umount", "-l", where], check=False)


def _git_gc(vault: Vault) -> None:
    git("--git-dir", vault.path, "reflog", "expire", "--expire=now", "--expire-unreachable=now", "--all")
    git("--git-dir", vault.path, "gc", "-q", "--prune=now")


def _has(vault: Vault, oid: str) -> bool:
    proc = subprocess.run(["git", "--git-dir", vault.path, "cat-file", "-e", oid], capture_output=True)
    return proc.returncode == 0


def _codes(found: list[Any]) -> dict[str, list[str | None]]:
    out: dict[str, list[str | None]] = {}
    for f in found:
        if f.code in ("stale_held_base", "held_base_needed"):
            out.setdefault(f.code, []).append(f.path)
    return out


@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_doctor_repairs_a_killed_mount_s_held_base_and_a_live_mount_keeps_its_own(
    home: Home, vault: Vault, tmp_path: Path, backend: str
) -> None:
    _require(backend)
    ws = vault.workspace("main")
    ws.write("README.md", b"hello\n")
    checkpoint.save(vault, "main")
    vault.create_fork("main", "other")
    vault.workspace("other").write("other.txt", b"the other fork's\n")
    checkpoint.save(vault, "other")
    with _mount(home, vault, "other", tmp_path / "b", backend):
        other = _base_ref(vault, "other")
        # the live mount's base: git there moves the branch off it, nothing but its held ref keeps it
        git("reset", "-q", "--soft", "HEAD~1", cwd=tmp_path / "b")
        git("reflog", "expire", "--expire=now", "--expire-unreachable=now", "--all", cwd=tmp_path / "b")
        assert other is not None and other != git("--git-dir", vault.path, "rev-parse", "other").strip()
        with _mount(home, vault, "main", tmp_path / "a", backend):
            main = _base_ref(vault, "main")
            assert main == git("--git-dir", vault.path, "rev-parse", "main").strip()
            _kill(vault, "main")
            assert _base_ref(vault, "main") == main  # (what the killed daemon left)
            path = os.path.join(vault.path, refs.held_base_ref("main"))
            assert _codes(maintenance.doctor(home).findings) == {"stale_held_base": [path]}
            assert _codes(maintenance.mount_findings(home)) == {"stale_held_base": [path]}
            assert _base_ref(vault, "main") == main  # (doctor without --repair changes nothing)
            repaired = maintenance.doctor(home, repair=True).findings
            assert [f.repaired for f in repaired if f.code == "stale_held_base"] == [True]
            assert _base_ref(vault, "main") is None
            assert _base_ref(vault, "other") == other  # the live mount's: kept
            _git_gc(vault)
            assert _has(vault, other)
            assert (tmp_path / "b" / "other.txt").read_text() == "the other fork's\n"
            assert git("status", "--porcelain", cwd=tmp_path / "b") == "A  other.txt\n"
            assert _codes(maintenance.doctor(home).findings) == {}
    assert _base_ref(vault, "main") is None and _base_ref(vault, "other") is None


@pytest.mark.parametrize("how", ["gc", "prune", "next_mount"])
@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_gc_prune_and_the_next_mount_end_a_killed_mount_s_held_base(
    home: Home, vault: Vault, tmp_path: Path, backend: str, how: str
) -> None:
    """`avfs gc` (no mount lives) and `avfs prune` (its cleanup of the dead mount) remove
    it; the fork's next mount makes it name the base it shows, its unmount removes it."""
    _require(backend)
    ws = vault.workspace("main")
    ws.write("README.md", b"hello\n")
    checkpoint.save(vault, "main")
    mp = tmp_path / "a"
    with _mount(home, vault, "main", mp, backend):
        (mp / "more.txt").write_text("more\n")
        _kill(vault, "main")
        assert _base_ref(vault, "main") is not None
        if how == "gc":
            maintenance.gc(vault, grace_days=0)
        elif how == "prune":
            done = maintenance.prune(vault)
            assert [i.kind for i in done.items if i.kind == "mount"] == ["mount"]
        else:
            checkpoint.save(vault, "main")  # (a move of the base moves it, as a live mount's)
            base = git("--git-dir", vault.path, "rev-parse", "main").strip()
            assert _base_ref(vault, "main") == base
            mounts.mount(home, vault, "main", str(mp), backend=backend)
            assert _base_ref(vault, "main") == base
            assert (mp / "more.txt").read_text() == "more\n"
            mounts.unmount(home, vault, "main")
        assert _base_ref(vault, "main") is None
    assert vault.workspace("main").read("more.txt") == b"more\n"
    assert git("--git-dir", vault.path, "for-each-ref", refs.HELD) == ""


@pytest.mark.parametrize("then", ["doctor", "gc", "next_mount"])
@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_a_killed_mount_s_undone_commit_is_kept_as_a_plain_clone_keeps_it(
    home: Home, vault: Vault, tmp_path: Path, backend: str, then: str
) -> None:
    """git in the mount undid the last commit with its hooks off (`reset --soft HEAD~1`,
    `reset`: its file untracked) and expired the reflogs
    (nothing says git moved the branch), then the daemon was killed. Until an avfs command
    opens the fork, only the held base ref keeps the commit the view stands on: doctor
    warns and leaves it (``held_base_needed``), `avfs gc` leaves it, git's gc keeps it.
    Opening the fork (doctor's repair of the leftover worktree, the next mount) takes the
    move as git's, keeping the view, as a plain clone keeps its files: before, it was
    followed as another hand's, the undone commit's file left the view and git's gc then
    pruned it. The ref, then naming what the branch holds, goes with doctor's repair."""
    _require(backend)
    ws = vault.workspace("main")
    ws.write("README.md", b"hello\n")
    checkpoint.save(vault, "main")
    ws.write("NEW.txt", NEW)
    checkpoint.save(vault, "main")
    tip = git("--git-dir", vault.path, "rev-parse", "main").strip()
    plain = tmp_path / "plain"
    git("clone", "-q", vault.path, str(plain))
    off = ["-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false"]
    mp = tmp_path / "a"
    with _mount(home, vault, "main", mp, backend):
        for cwd in (plain, mp):
            git(*off, "reset", "-q", "--soft", "HEAD~1", cwd=cwd)
            git(*off, "reset", "-q", cwd=cwd)  # (unstaged: the file is untracked)
            git(*off, "reflog", "expire", "--expire=now", "--expire-unreachable=now", "--all", cwd=cwd)
        _kill(vault, "main")
        path = os.path.join(vault.path, refs.held_base_ref("main"))
        found = maintenance.doctor(home).findings
        assert _codes(found) == {"held_base_needed": [path]}
        assert [f.severity for f in found if f.code == "held_base_needed"] == ["warning"]
        if then == "doctor":
            found = maintenance.doctor(home, repair=True).findings
            assert [(f.code, f.repaired) for f in found if "held_base" in f.code] == [
                ("stale_held_base", True)
            ]
            assert _base_ref(vault, "main") is None
        elif then == "gc":
            maintenance.gc(vault, grace_days=0)
            assert _base_ref(vault, "main") == tip
        _git_gc(vault)
        git("gc", "-q", "--prune=now", cwd=plain)
        mounts.mount(home, vault, "main", str(mp), backend=backend)
        assert (mp / "NEW.txt").read_bytes() == (plain / "NEW.txt").read_bytes() == NEW
        assert (
            git("status", "--porcelain", cwd=mp) == git("status", "--porcelain", cwd=plain) == "?? NEW.txt\n"
        )
        checkpoint.save(vault, "main")
        assert git("--git-dir", vault.path, "show", "main:NEW.txt").encode() == NEW
    assert _base_ref(vault, "main") is None


def test_a_mount_starting_while_doctor_drops_its_base_ref_keeps_it_held(
    home: Home, vault: Vault, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """doctor looked (no daemon of the fork ran), a mount started (its registry record
    first, then the ref, which already named its base: written by nobody), doctor's
    compare-and-swap removed it: the look after the removal sees the daemon and makes the
    ref again, as the daemon's start does."""
    require_fuse()
    ws = vault.workspace("main")
    ws.write("README.md", b"hello\n")
    checkpoint.save(vault, "main")
    mp = tmp_path / "a"
    with _mount(home, vault, "main", mp, "fuse"):
        base = _base_ref(vault, "main")
        assert base is not None
        real = leftovers._owner_alive
        looks: list[bool] = []

        def owner_alive(v: Vault, key: str) -> bool:
            alive = real(v, key) if looks else False  # (the first look: before the daemon registered)
            looks.append(alive)
            return alive

        monkeypatch.setattr(leftovers, "_owner_alive", owner_alive)
        assert not leftovers.drop_held_base(vault, "main", base)
        assert looks == [False, True]
        assert _base_ref(vault, "main") == base
        (mp / "live.txt").write_text("still mounted\n")
        checkpoint.save(vault, "main")
        assert _base_ref(vault, "main") == git("--git-dir", vault.path, "rev-parse", "main").strip()
    assert _base_ref(vault, "main") is None
