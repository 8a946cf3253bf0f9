"""Status: each change listed once, whichever backend made it, and what one backend wrote a
fresh process's API reads."""

from __future__ import annotations

from ..conftest import git
from .views import _status


def test_contract_status_lists_each_change_once(fs):
    assert _status(fs) == set()
    fs.write("new.txt", b"new\n")
    fs.write("README.md", b"# changed\n")
    fs.unlink("src/app.py")
    fs.set_exec("bin/run.sh", False)
    assert _status(fs) == {
        ("new.txt", "added"),
        ("README.md", "modified"),
        ("src/app.py", "deleted"),
        ("bin/run.sh", "modified"),
    }
    fs.write("README.md", b"# hello\n")  # back to what the base holds: no change
    fs.set_exec("bin/run.sh", True)
    assert _status(fs) == {("new.txt", "added"), ("src/app.py", "deleted")}


def test_contract_a_fresh_reader_sees_the_same_fork(fs, home):
    """What one backend wrote, a new process's API reads (nothing only in a cache)."""
    fs.write("shared.txt", b"from the backend\n")
    fs.set_exec("shared.txt", True)
    out = git("--git-dir", fs.ws.vault.path, "rev-parse", "main")
    other = type(home)(home.path, mounts=home.mounts).vault(fs.ws.vault.name).workspace("main")
    assert other.read("shared.txt") == b"from the backend\n"
    assert other.stat("shared.txt").mode == 0o100755
    assert {(c.path, c.status.value) for c in other.status()} == {("shared.txt", "added")}
    assert git("--git-dir", fs.ws.vault.path, "rev-parse", "main") == out  # reading moved nothing
