"""The index a lazy clone keeps for its default fork's tip made after the clone answers
(``"index_at_clone": "after"``: mount/keptmake.py ``hold`` and ``start_now``, docs/lazy.md
"The index kept per base"): the clone takes the kept index's lock before it answers and a
process of its own, started as it answers, makes the index; a mount made the moment the
clone answered waits for that process at its first `git status` (moving it out of the idle
scheduling class then) instead of making the index beside it. Over each transport the index
used is the one git makes in a full clone; a maker killed midway leaves no index and no held
lock, and the first status is right; a base moved while the maker works gets its own index."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from avfs_git.core.operations import checkpoint
from avfs_git.core.vaults.home import Home
from avfs_git.mount import keptindex, keptmake
from avfs_git.ops import mounts

from .conftest import git
from .test_lazy_cloneindex import _a_new_file_as_git_sees_it, _clone, _entries, _status
from .test_lazy_transports import Served, _require_backend
from .test_lazy_transports import served as served
from .test_remotes import http_git as http_git
from .test_remotes import sshd as sshd


def _after(home: Home) -> None:
    os.makedirs(home.path, exist_ok=True)
    with open(os.path.join(home.path, "config.json"), "w", encoding="utf-8") as fh:
        json.dump({"index_at_clone": "after"}, fh)


def _lock(v: object, tree: str) -> str:
    return os.path.join(v.state_dir, "kept-index", tree + keptindex.LOCK)  # type: ignore[attr-defined]


def _started(monkeypatch: pytest.MonkeyPatch, before: object = None) -> list[int]:
    """Wrap keptmake.start_now (looked up there by cli/vaults.py at the call): the pids of
    the makers it started; ``before()`` runs first (the lock is held by then)."""
    real = keptmake.start_now
    pids: list[int] = []

    def start_now(home: str, vault: object, commit: str, env: dict[str, str], fd: int) -> bool:
        if before is not None:
            before()  # type: ignore[operator]
        ok = real(home, vault, commit, env, fd)  # type: ignore[arg-type]
        tree = vault.store.commit_tree(commit)  # type: ignore[attr-defined]
        with open(_lock(vault, tree), "rb") as fh:
            pids.append(int(fh.read().strip() or b"0"))
        return ok

    monkeypatch.setattr(keptmake, "start_now", start_now)
    return pids


def _silence(s: Served, seen: list[int]) -> object:
    """What makes the server silent to the maker about to start (its connections accepted,
    never answered); ``seen`` gets the relay's connections until then."""

    def silence() -> None:
        seen.append(len(s.relay._conns))
        s.relay.mode = "silent"

    return silence


def _on_the_server(s: Served, before: int) -> None:
    """Wait until the maker has connected to the silent server (it is asking the sizes)."""
    deadline = time.monotonic() + 60
    while len(s.relay._conns) <= before:
        assert time.monotonic() < deadline, "the maker never asked the server"
        time.sleep(0.02)


def _reap(pid: int, timeout: float = 120.0) -> int | None:
    """Wait until the maker ``pid`` (this process's child: started in process) has ended;
    its exit code (None: not this process's child)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return None
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.02)
    raise AssertionError(f"maker {pid} still running")


@pytest.mark.parametrize("served", ["git", "http", "ssh"], indirect=True)
def test_the_index_made_after_the_clone_answers_is_git_s_and_the_first_mount_waits_for_it(
    cli: object, home: Home, served: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``"index_at_clone": "after"``: when the clone answers, the kept index's lock is held
    by a maker process of its own (not this one), no index kept yet; a mount made then
    waits for it at its first `git status` (clean), and the index kept is, entry for entry
    (path, mode, id, size), what `git read-tree` + `git update-index --refresh` write in a
    full clone's checkout; with an untracked file the mount's status is the full clone's,
    with git's fsmonitor off too. (Before, "after" was refused: ``usage``.)"""
    s = served
    _require_backend("fuse")
    _after(home)
    pids = _started(monkeypatch)
    v = _clone(cli, home, s)
    assert len(pids) == 1 and pids[0] not in (0, os.getpid())
    tree = git("--git-dir", v.path, "rev-parse", "main^{tree}").strip()  # type: ignore[attr-defined]
    mp = tmp_path / "mnt"
    mp.mkdir()
    mounts.mount(home, v, "main", str(mp), backend="fuse")  # type: ignore[arg-type]
    try:
        first = _status(mp)
        assert first.returncode == 0 and first.stdout == "", first
        assert _reap(pids[0]) == 0  # (the maker made and kept it: main's exit code)
        kept = keptindex.load(v.state_dir, tree)  # type: ignore[attr-defined]
        assert kept is not None
        assert not os.path.exists(_lock(v, tree))

        full = tmp_path / "full"
        git("clone", "-q", str(s.repo), str(full))
        index = full / ".git" / "index-theirs"
        env = {**os.environ, "GIT_INDEX_FILE": str(index)}
        subprocess.run(["git", "read-tree", "HEAD"], cwd=full, env=env, check=True)
        subprocess.run(
            ["git", "update-index", "--refresh"], cwd=full, env=env, check=True, capture_output=True
        )
        theirs = _entries(index.read_bytes())
        assert [e[:4] for e in _entries(kept)] == [e[:4] for e in theirs]
        assert len(theirs) > 20
        in_mount = subprocess.run(["git", "ls-files", "-s"], cwd=mp, capture_output=True, text=True).stdout
        assert (
            in_mount
            == subprocess.run(
                ["git", "ls-files", "-s"], cwd=full, env=env, capture_output=True, text=True
            ).stdout
        )

        _a_new_file_as_git_sees_it(mp, full)
    finally:
        mounts.unmount(home, v, "main", lazy=True)  # type: ignore[arg-type]


@pytest.mark.parametrize("served", ["git", "http", "ssh"], indirect=True)
def test_a_maker_killed_midway_leaves_nothing_half_made_and_the_first_status_right(
    cli: object, home: Home, served: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The maker started as the clone answers meets a server that accepts and never
    answers (its sizes' request hangs), and is killed (SIGKILL) while it holds the lock:
    no kept index, no temp file, the lock free; the server back, the first mount makes its
    own index and its `git status` is clean, an untracked file listed, no blob fetched
    but what the mount's own index needs."""
    s = served
    _require_backend("fuse")
    _after(home)

    pids = _started(monkeypatch, _silence(s, seen := []))
    v = _clone(cli, home, s)
    assert len(pids) == 1
    tree = git("--git-dir", v.path, "rev-parse", "main^{tree}").strip()  # type: ignore[attr-defined]
    # the maker holds the lock (a mount would wait for it), then asks the silent server
    assert keptindex.await_maker(v.state_dir, tree, 0.3)  # type: ignore[attr-defined]
    _on_the_server(s, seen[0])
    os.kill(pids[0], signal.SIGKILL)
    _reap(pids[0])
    assert not keptindex.await_maker(v.state_dir, tree, 0.3)  # type: ignore[attr-defined]
    assert keptindex.load(v.state_dir, tree) is None  # type: ignore[attr-defined]
    kept_dir = os.path.join(v.state_dir, "kept-index")  # type: ignore[attr-defined]
    assert [n for n in os.listdir(kept_dir) if not n.endswith(keptindex.LOCK)] == []
    s.relay.mode = "pass"
    s.relay.cut()
    mp = tmp_path / "mnt"
    mp.mkdir()
    mounts.mount(home, v, "main", str(mp), backend="fuse")  # type: ignore[arg-type]
    try:
        first = _status(mp)
        assert first.returncode == 0 and first.stdout == "", first
        (mp / "new.txt").write_text("new\n")
        assert _status(mp).stdout == "?? new.txt\n"
        plain = _status(mp, "core.fsmonitor=false")
        assert plain.returncode == 0 and plain.stdout == "?? new.txt\n", plain
    finally:
        mounts.unmount(home, v, "main", lazy=True)  # type: ignore[arg-type]


@pytest.mark.parametrize("served", ["git"], indirect=True)
def test_a_base_moved_while_the_maker_works_gets_its_own_tree_s_index(
    cli: object, home: Home, served: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fork's base moves (a checkpoint changing, adding and removing a file) while the
    maker of the clone's tree's index waits on a silent server: the mount's index is the new
    tree's (git status clean, its entries the new tree's), and once the server answers the
    maker keeps the old tree's index, for a mount of the old base."""
    s = served
    _require_backend("fuse")
    _after(home)

    pids = _started(monkeypatch, _silence(s, seen := []))
    v = _clone(cli, home, s)
    old = git("--git-dir", v.path, "rev-parse", "main^{tree}").strip()  # type: ignore[attr-defined]
    assert keptindex.await_maker(v.state_dir, old, 0.3)  # type: ignore[attr-defined]
    _on_the_server(s, seen[0])
    ws = v.workspace("main")  # type: ignore[attr-defined]
    ws.write("NOTES.md", b"changed after the clone\n")
    ws.write("added.txt", b"added\n")
    ws.remove("avfs_git/__main__.py")
    checkpoint.save(v, "main", name="moved")  # type: ignore[arg-type]
    new = git("--git-dir", v.path, "rev-parse", "main^{tree}").strip()  # type: ignore[attr-defined]
    assert new != old
    s.relay.mode = "pass"  # (new connections answered: the maker's stays hung)
    mp = tmp_path / "mnt"
    mp.mkdir()
    mounts.mount(home, v, "main", str(mp), backend="fuse")  # type: ignore[arg-type]
    try:
        assert _status(mp).stdout == ""  # (the old tree's maker, still waiting, not waited for)
        assert keptindex.await_maker(v.state_dir, old, 0.1)  # type: ignore[attr-defined]
        plain = _status(mp, "core.fsmonitor=false")
        assert plain.returncode == 0 and plain.stdout == "", plain
        index = subprocess.run(["git", "ls-files", "-s"], cwd=mp, capture_output=True, text=True).stdout
        listing = git("--git-dir", v.path, "ls-tree", "-r", "main")  # type: ignore[attr-defined]
        assert sorted(line.split()[1] + " " + line.split("\t")[1] for line in index.splitlines()) == sorted(
            line.split()[2] + " " + line.split("\t")[1] for line in listing.splitlines()
        )
        assert "added.txt" in index and "avfs_git/__main__.py\n" not in index
    finally:
        mounts.unmount(home, v, "main", lazy=True)  # type: ignore[arg-type]
    s.relay.cut()  # (the maker's request fails: it keeps nothing, and lets go of its lock)
    _reap(pids[0])
    assert not os.path.exists(_lock(v, old))
    assert keptindex.load(v.state_dir, old) is None  # type: ignore[attr-defined]


def test_a_maker_waited_for_leaves_the_idle_class_only_once_git_wants_the_index(tmp_path: Path) -> None:
    """keptindex.await_maker with ``wanted``: the maker holding the lock (a process in
    Linux's idle scheduling class) stays there while ``wanted()`` says false, and is moved
    to the normal class once it says true (a git command at the mount's gate); the wait
    ends when the lock is let go."""
    state = str(tmp_path / "state")
    os.makedirs(state)
    tree = "ab" * 20
    fd = keptindex.making(state, tree)
    assert fd is not None
    os.set_inheritable(fd, True)
    code = (
        "import os, sys, time\nos.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))\nsys.stdin.read()\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, pass_fds=(fd,))
    try:
        os.pwrite(fd, b"%d\n" % child.pid, 0)
        deadline = time.monotonic() + 30
        while os.sched_getscheduler(child.pid) != os.SCHED_IDLE:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        os.close(fd)  # (the child holds the lock now)
        asked = [0]

        def wanted() -> bool:
            asked[0] += 1
            return asked[0] > 5

        assert keptindex.await_maker(state, tree, 0.05, wanted=lambda: False)
        assert os.sched_getscheduler(child.pid) == os.SCHED_IDLE
        assert keptindex.await_maker(state, tree, 0.3, wanted=wanted)
        assert asked[0] > 5
        assert os.sched_getscheduler(child.pid) == os.SCHED_OTHER
    finally:
        child.stdin.close()  # type: ignore[union-attr]
        child.wait(30)
    assert not keptindex.await_maker(state, tree, 0.3)


def test_index_at_clone_after_is_read_and_anything_else_refused(home: Home) -> None:
    """The setting's three values: true ("before"), "after", false ("", the default since
    the thirty-first round); "yes" a usage error."""
    from avfs_git.core.errors import UsageError
    from avfs_git.core.vaults.lazyconfig import index_at_clone

    os.makedirs(home.path, exist_ok=True)
    path = os.path.join(home.path, "config.json")
    assert index_at_clone(home.path) == ""  # (the default: none at the clone)
    for value, want in ((True, "before"), ("after", "after"), (False, "")):
        with open(path, "w", encoding="utf-8") as fh:
            json.dump({"index_at_clone": value}, fh)
        assert index_at_clone(home.path) == want
    with open(path, "w", encoding="utf-8") as fh:
        json.dump({"index_at_clone": "yes"}, fh)
    with pytest.raises(UsageError):
        index_at_clone(home.path)
