"""Status: each change listed once, whichever backend made it, and what one backend wrote a
fresh process's API reads."""

from __future__ import annotations

from avfs_git.core.operations import checkpoint

from ..conftest import git
from .views import _committed, _status, _tree


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


def test_contract_after_many_checkpoints_status_lists_only_the_new_changes(fs):
    """A long session: after dozens of checkpoints (no status between them), status and the
    next checkpoint see exactly what changed since the last one: an edit, an edit undone
    back to the checkpointed bytes, a delete, a rename, a mode change, a new file; what
    earlier checkpoints recorded is neither reported nor recorded again (issue 31)."""
    for k in range(30):
        fs.mkdir(f"b{k}")
        for f in range(3):
            fs.write(f"b{k}/x{f}.txt", f"{k} {f}\n".encode())
        fs.write("README.md", f"# round {k}\n".encode())
        res = checkpoint.save(fs.ws.vault, "main", message=f"batch {k}")
        assert res.created
    assert _status(fs) == set()
    assert fs.ws.overlay.count() < 10  # what the checkpoints recorded left the write layer
    fs.write("b3/x0.txt", b"edited\n")
    fs.write("b4/x1.txt", b"edited, then back\n")
    fs.write("b4/x1.txt", b"4 1\n")  # the checkpointed bytes again: no change
    fs.unlink("b5/x2.txt")
    fs.rename("b6/x0.txt", "b6/moved.txt")
    fs.set_exec("b7/x1.txt", True)
    fs.write("b29/new.txt", b"new\n")
    want = {
        ("b3/x0.txt", "modified"),
        ("b5/x2.txt", "deleted"),
        ("b6/moved.txt", "renamed"),
        ("b7/x1.txt", "modified"),
        ("b29/new.txt", "added"),
    }
    assert _status(fs) == want
    res = checkpoint.save(fs.ws.vault, "main", message="the last changes")
    assert res.created
    assert _status(fs) == set()
    tree = _tree(fs, "main")
    assert _committed(fs, "main", "b3/x0.txt") == b"edited\n"
    assert _committed(fs, "main", "b4/x1.txt") == b"4 1\n"
    assert "b5/x2.txt" not in tree and "b6/x0.txt" not in tree
    assert _committed(fs, "main", "b6/moved.txt") == b"6 0\n"
    assert tree["b7/x1.txt"] == "100755" and tree["b0/x0.txt"] == "100644"
    assert len([p for p in tree if p[1].isdigit()]) == 90  # (b0/ to b29/, one gone, one new)
    fs.set_exec("b7/x1.txt", False)  # a mode put back as it was two checkpoints ago
    assert _status(fs) == {("b7/x1.txt", "modified")}
    git("--git-dir", fs.ws.vault.path, "fsck", "--strict")
