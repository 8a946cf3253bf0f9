"""The background walk of an overlay mount's lower layer (fuse/warm.py), made unless
``$AVFS_MOUNT_WALK=off`` says no: it lists every directory once, stands aside while git's fsmonitor hook is being asked (a ``git status``
has begun) and while any other process uses the mount, and ends with the daemon. Counted,
never timed: the walk prints how many directories it listed, and a real mount's trace
(``AVFS_FUSE_TRACE``) says which calls the daemon served in which order."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

from avfs_git.core.workspace.hookwire import ask
from avfs_git.fuse import warm
from avfs_git.mount.hooksocket import HookServer

from .contract.test_daemon_start import _walks


def _tree(root: Path) -> int:
    """A tree of directories (and files, and a symbolic link to a directory, not followed);
    how many directories, the root included."""
    root.mkdir()
    dirs = 1
    for a in range(3):
        for b in range(4):
            d = root / f"a{a}" / f"b{b}"
            d.mkdir(parents=True)
            (d / "f.txt").write_text("x\n")
        dirs += 1 + 4
    (root / "link").symlink_to(root / "a0")
    return dirs


def _walker(root: Path, pause_s: float) -> tuple[subprocess.Popen[str], int]:
    rfd, wfd = os.pipe()
    proc = subprocess.Popen(
        [sys.executable, "-I", "-S", warm.__file__, str(root), str(rfd), repr(pause_s)],
        stdout=subprocess.PIPE,
        text=True,
        pass_fds=(rfd,),
    )
    os.close(rfd)
    return proc, wfd


def test_the_walk_lists_every_directory_once(tmp_path):
    dirs = _tree(tmp_path / "tree")
    proc, wfd = _walker(tmp_path / "tree", 60.0)
    try:
        out, _ = proc.communicate(timeout=30)
    finally:
        os.close(wfd)
    assert int(out) == dirs


def test_the_walk_stands_aside_while_asked_to_and_ends_with_the_daemon(tmp_path):
    _tree(tmp_path / "tree")
    proc, wfd = _walker(tmp_path / "tree", 60.0)
    os.write(wfd, b"p")  # asked before it listed anything: it waits 60 s of quiet
    time.sleep(0.5)
    assert proc.poll() is None
    os.close(wfd)  # the daemon is gone: the walk ends at once, having listed nothing
    out, _ = proc.communicate(timeout=30)
    assert int(out) == 0


def test_the_walk_goes_on_after_a_quiet_pause(tmp_path):
    dirs = _tree(tmp_path / "tree")
    proc, wfd = _walker(tmp_path / "tree", 0.2)
    try:
        try:
            os.write(wfd, b"p")
        except BrokenPipeError:
            pass  # (the walk ended before it was asked: the parent slow on a loaded machine, ci46)
        out, _ = proc.communicate(timeout=30)
    finally:
        os.close(wfd)
    assert int(out) == dirs


class _Answerer:
    def __init__(self, asked: list[str]) -> None:
        self.asked = asked

    def answer(self, token: str) -> list[str]:
        self.asked.append("answer")
        return ["t1", "a.txt"]


def test_a_hook_query_pauses_the_walk_before_it_is_answered(tmp_path):
    """The daemon's wiring: each query of the hook's socket asks the walk to stand aside
    (also when it comes before the walk started) before it is answered."""
    git_dir = tmp_path / "git"
    git_dir.mkdir()
    root = tmp_path / "lower"
    _tree(root)
    r, w = os.pipe()
    walk = warm.Warm(str(root), pause_s=60.0, stdout=w)
    asked: list[str] = []

    def on_ask() -> None:
        asked.append("pause")
        walk.pause()

    server = HookServer(str(git_dir), _Answerer(asked), on_ask)
    server.start()
    try:
        assert ask(str(git_dir), "t0") == ["t1", "a.txt"]
        assert asked == ["pause", "answer"]
        walk.start()  # git status came between the mount's readiness and the walk's start
        assert walk.proc is not None
        time.sleep(0.5)
        assert walk.proc.poll() is None  # standing aside
    finally:
        walk.close()
        server.close()
        os.close(w)
    assert walk.proc.wait(timeout=30) == 0
    with os.fdopen(r) as fh:
        assert int(fh.read()) == 0


def test_another_process_s_request_pauses_the_walk_the_walk_s_own_do_not(tmp_path):
    """:meth:`.Warm.asked_by`, as FastFUSE calls it with each request's process: the walk's
    own requests, the daemon's and the kernel's (pid 0) leave it going; anyone else's make
    it stand aside; once it is over nothing is written to it any more."""
    root = tmp_path / "lower"
    dirs = _tree(root)
    r, w = os.pipe()
    walk = warm.Warm(str(root), pause_s=60.0, stdout=w)
    try:
        walk.start()
        assert walk.proc is not None
        walk.asked_by(walk.proc.pid)
        walk.asked_by(0)
        walk.asked_by(os.getpid())  # the daemon's own (it made the walk)
        assert walk.proc.wait(timeout=30) == 0
        deadline = time.monotonic() + 30
        while not walk.over and time.monotonic() < deadline:
            time.sleep(0.01)
        assert walk.over
        walk.asked_by(os.getppid())  # over: nothing written, nothing raised
    finally:
        walk.close()
        os.close(w)
    with os.fdopen(r) as fh:
        assert int(fh.read()) == dirs

    r, w = os.pipe()
    walk = warm.Warm(str(root), pause_s=60.0, stdout=w)
    try:
        walk.asked_by(os.getppid())  # before it starts, as a mount's first reader can be
        walk.start()
        assert walk.proc is not None
        time.sleep(0.5)
        assert walk.proc.poll() is None  # standing aside, 60 s of quiet to wait for
    finally:
        walk.close()
        os.close(w)
    assert walk.proc.wait(timeout=30) == 0
    with os.fdopen(r) as fh:
        assert int(fh.read()) == 0


def test_a_mount_s_walk_waits_while_another_process_uses_the_mount(home, vault, tmp_path, monkeypatch):
    """A real overlay mount: a process that uses the mount from the moment it is ready (its
    lookups reach the daemon: names not there) has every request served with no listing
    of the walk's between them; once it stops, the walk goes on and lists every directory.
    Without the rule the walk lists beside it (a lazy fork's cold test run: 4.4 s against
    2.7 s, docs/benchmarks.md)."""
    from avfs_git.core.operations import checkpoint
    from avfs_git.core.vaults import registry
    from avfs_git.ops import mounts

    from .test_fuse_teardown import require_fuse

    require_fuse()
    ws = vault.workspace("main")
    ndirs = 300
    for i in range(ndirs):
        ws.write(f"d{i % 10}/e{i}/f.txt", b"x\n")
    checkpoint.save(vault, name="base")
    trace = tmp_path / "trace"
    trace.write_text("")
    monkeypatch.setattr(home.settings, "fuse_trace", str(trace))  # $AVFS_FUSE_TRACE, as read
    monkeypatch.setattr(home.settings, "mount_walk", True)  # (the default; $AVFS_MOUNT_WALK=off: False)
    mp = tmp_path / "mnt"
    mp.mkdir()
    info = mounts.mount(home, vault, "main", str(mp), backend="overlay")
    try:
        # from the moment it answers until a second after its walk started
        record = registry.read_record(registry.record_path(vault.state_dir, "main"))
        assert record is not None
        daemon = int(record["pid"])
        started = None
        i = 0
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(FileNotFoundError):
                os.stat(mp / f"nothing-{i}")
            i += 1
            if started is None and _walks(daemon):
                started = time.monotonic()
            if started is not None and time.monotonic() - started > 1.0:
                break
        assert started is not None, "the walk never started"
        lines = trace.read_text(encoding="utf-8", errors="replace").splitlines()
        mine = [n for n, line in enumerate(lines) if line.startswith("getattr /nothing-")]
        assert len(mine) > 10
        between = [line for line in lines[mine[0] + 1 : mine[-1]] if line.startswith("readdir ")]
        assert len(between) <= 4, between[:20]  # (a listing in flight as it was first asked)
        # the walk goes on once the mount is quiet, and lists everything
        walks = _walks(daemon)
        deadline = time.monotonic() + 120
        while walks and any(os.path.exists(f"/proc/{p}") for p in walks) and time.monotonic() < deadline:
            time.sleep(0.1)
        listed = {
            line.split(" ", 1)[1] for line in trace.read_text().splitlines() if line.startswith("readdir ")
        }
        assert {f"/d{i % 10}/e{i}" for i in range(ndirs)} <= listed
    finally:
        mounts.unmount(home, vault, info.fork, lazy=True)


def test_an_overlay_mount_told_not_to_walks_nothing(home, vault, tmp_path):
    """With ``$AVFS_MOUNT_WALK=off`` an overlay mount's daemon starts no walk of its
    lower layer: once its exec server has warmed up (the step the walk followed) no walk
    process comes, and no directory of the lower layer is listed but the root, which
    nothing but the walk lists here (the walk is O(tree) of the daemon's CPU on every
    mount, docs/benchmarks.md, h-mountcost1's section); a ``find`` in the mount then finds
    every file, listed as it asks."""
    from avfs_git.core.operations import checkpoint
    from avfs_git.core.vaults import registry
    from avfs_git.ops import mounts

    from .test_fuse_teardown import require_fuse
    from .test_lazy_settle import _heads_watched

    require_fuse()
    assert home.settings.mount_walk  # the default
    home.settings.mount_walk = False  # $AVFS_MOUNT_WALK=off, as read (this test's home)
    ws = vault.workspace("main")
    ndirs = 300
    for i in range(ndirs):
        ws.write(f"d{i % 10}/e{i}/f.txt", b"x\n")
    checkpoint.save(vault, name="base")
    trace = tmp_path / "trace"
    trace.write_text("")
    home.settings.fuse_trace = str(trace)  # $AVFS_FUSE_TRACE, as read (this test's home)
    mp = tmp_path / "mnt"
    mp.mkdir()
    info = mounts.mount(home, vault, "main", str(mp), backend="overlay")
    try:
        record = registry.read_record(registry.record_path(vault.state_dir, "main"))
        assert record is not None
        daemon = int(record["pid"])
        # the walk came right after the exec server's warm-up (the bound is a hang's)
        deadline = time.monotonic() + 240
        while not _heads_watched(daemon, vault.path) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _heads_watched(daemon, vault.path), "the exec server never warmed up"
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            assert _walks(daemon) == [], "an overlay mount walked its lower layer unasked"
            time.sleep(0.02)
        listed = [line for line in trace.read_text().splitlines() if line.startswith("readdir /d")]
        assert listed == [], listed[:10]
        found = subprocess.run(
            ["find", str(mp), "-name", "f.txt"], capture_output=True, text=True, check=True
        )
        assert len(found.stdout.split()) == ndirs
    finally:
        mounts.unmount(home, vault, info.fork, lazy=True)
