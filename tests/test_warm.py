"""The background walk of an overlay mount's lower layer (fuse/warm.py): it lists every
directory once, stands aside while git's fsmonitor hook is being asked (a ``git status``
has begun), and ends with the daemon. Counted, never timed: the walk prints how many
directories it listed."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from avfs_git.core.workspace.hookwire import ask
from avfs_git.fuse import warm
from avfs_git.mount.hooksocket import HookServer


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
        os.write(wfd, b"p")
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
