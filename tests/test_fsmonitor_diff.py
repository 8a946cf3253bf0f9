"""A git older than 2.42.1 misreads fsmonitor in ``git diff REV`` (diff-index): it skips the
``lstat`` of an entry fsmonitor marked valid and then reads the ``struct stat`` it never
filled, so where that stack garbage looks like a directory (about one run in five) every such
file shows as deleted, and a lazy mount fetches every blob of REV. The mount's hook then
gives the daemon's answer to ``git status`` only (mount/hookscripts.py ``FIXED_GIT``);
any other command is told everything may differ and ``lstat``s each file, as git without
fsmonitor does. Checked here with real git running the hook, against a stand-in daemon
that says nothing changed while a file did."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from avfs_git.mount.hookscripts import FIXED_GIT, git_trusts_fsmonitor_in_diff, socket_hook

from .test_fsmonitor import _crafted_server, _framed, _perl, _stop


def _git(repo: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    return subprocess.run(
        ["git", *args], cwd=repo, env=env, capture_output=True, text=True, check=True, timeout=60
    ).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A worktree with a.txt and b.txt committed, their mtimes in the past (none racy)."""
    r = tmp_path / "repo"
    r.mkdir()
    _git(r, "init", "-q")
    _git(r, "config", "user.email", "t@example.com")
    _git(r, "config", "user.name", "t")
    past = time.time() - 60
    for name in ("a.txt", "b.txt"):
        (r / name).write_text(f"{name} one\n")
        os.utime(r / name, (past, past))
    _git(r, "add", "-A")
    _git(r, "commit", "-q", "-m", "one")
    return r


@pytest.mark.parametrize("own_name", ["own", "own=dir"])  # ("=": git runs it with sh -c)
@pytest.mark.parametrize("kind", ["perl", "python"])
def test_only_status_gets_the_daemons_answer_where_git_misreads_it_in_diff(repo, tmp_path, kind, own_name):
    """Real git runs the hook (Perl and Python) against a daemon that hides a change: status
    trusts the answer; diff, diff-index and diff-files see the change (each was told "/")."""
    own = tmp_path / own_name
    own.mkdir()
    hook = own / "fsmonitor-hook"
    hook.write_text(socket_hook(str(own), _perl() if kind == "perl" else None, 5, only_status=True))
    hook.chmod(0o755)
    asked = [0]

    def nothing_changed(conn, line):  # a new token each time, and no path
        asked[0] += 1
        conn.sendall(_framed(b"avfs-test:%d\0" % asked[0]))

    srv, got, t = _crafted_server(str(own), nothing_changed)
    try:
        _git(repo, "config", "core.fsmonitor", str(hook))
        _git(repo, "config", "core.fsmonitorHookVersion", "2")
        _git(repo, "status", "--porcelain")  # the index takes the fsmonitor extension
        _git(repo, "status", "--porcelain")  # every entry marked valid by the daemon's answer
        (repo / "a.txt").write_text("a.txt two\n")  # a change the stand-in daemon does not tell
        # status: the daemon's answer (nothing changed) is trusted, as fsmonitor promises
        assert _git(repo, "status", "--porcelain") == ""
        assert _git(repo, "-c", "color.ui=never", "status", "--porcelain") == ""
        # any other command is told "/": git looks at every file and sees the change
        assert _git(repo, "diff", "HEAD", "--name-status") == "M\ta.txt\n"
        assert re.fullmatch(r":100644 100644 [0-9a-f]+ 0+ M\ta\.txt\n", _git(repo, "diff-index", "HEAD"))
        assert _git(repo, "diff", "--name-only") == "a.txt\n"
        # run by no git (by hand): the daemon's answer as it came
        out = subprocess.run([str(hook), "2", "t"], capture_output=True, check=True, timeout=30).stdout
        assert re.fullmatch(rb"avfs-test:\d+\0", out)
        assert len(got) >= 5  # the hook asked the daemon every time (its token stays current)
    finally:
        _stop(srv, t)


def test_the_hook_passes_everything_through_on_a_git_that_reads_fsmonitor_right(repo, tmp_path):
    """``only_status`` off (git 2.42.1 and later): every command gets the daemon's answer."""
    own = tmp_path / "own"
    own.mkdir()
    hook = own / "fsmonitor-hook"
    hook.write_text(socket_hook(str(own), None, 5))
    hook.chmod(0o755)
    srv, _, t = _crafted_server(str(own), lambda conn, line: conn.sendall(_framed(b"avfs-test:1\0x.txt\0")))
    try:
        out = subprocess.run(
            ["sh", "-c", f"exec '{hook}' 2 t"], capture_output=True, check=True, timeout=30
        ).stdout
        assert out == b"avfs-test:1\0x.txt\0"
    finally:
        _stop(srv, t)


def test_the_mount_hook_is_written_for_the_git_on_the_path():
    """The version check reads the git on PATH: 2.42.1 and later are trusted in diff."""
    out = subprocess.run(["git", "--version"], capture_output=True, text=True, check=True).stdout
    m = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", out)
    assert m is not None
    version = (int(m.group(1)), int(m.group(2)), int(m.group(3) or 0))
    assert git_trusts_fsmonitor_in_diff() == (version >= FIXED_GIT)
