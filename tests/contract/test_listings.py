"""Directory listings stay true while the kernel keeps them (a writable pure-FUSE mount now
keeps a directory's listing across opens: fuse/libfuse.py, fuse/invalidate.py): every
change, made through the backend, by another process's write or removal, by a checkpoint,
a restore or an undo, shows in the next listing, read warm before each change (a stale
listing is a bug)."""

from __future__ import annotations

import os
import subprocess

import pytest

from avfs_git.core.operations import checkpoint

from .backends import MOUNTS


def _warm(fs, p: str) -> list[str]:
    """``p``'s listing, read twice: the second from whatever the kernel keeps."""
    fs.listdir(p)
    return fs.listdir(p)


def test_contract_listings_follow_every_change(fs):
    ws, vault = fs.ws, fs.ws.vault
    assert _warm(fs, "src") == ["app.py"]
    ws.write("src/by_api.py", b"x = 1\n")  # another process's write (the CLI's, the API's)
    assert _warm(fs, "src") == ["app.py", "by_api.py"]
    ws.remove("src/by_api.py")
    assert _warm(fs, "src") == ["app.py"]
    fs.write("src/here.py", b"y = 2\n")  # through the backend itself
    fs.mkdir("src/pkg")
    assert _warm(fs, "src") == ["app.py", "here.py", "pkg"]
    fs.rename("src/here.py", "src/pkg/moved.py")
    assert _warm(fs, "src") == ["app.py", "pkg"] and _warm(fs, "src/pkg") == ["moved.py"]
    checkpoint.save(vault, "main", name="two")
    assert _warm(fs, "src") == ["app.py", "pkg"] and _warm(fs, "") == [
        "README.md",
        "bin",
        "readme-link",
        "src",
    ]
    ws.write("src/late.py", b"uncheckpointed\n")
    assert _warm(fs, "src") == ["app.py", "late.py", "pkg"]
    checkpoint.restore(vault, "main", "base")  # listings held before the restore go
    assert _warm(fs, "src") == ["app.py"] and not fs.exists("src/pkg")
    checkpoint.undo(vault, fork="main")  # and come back with the undo
    assert _warm(fs, "src") == ["app.py", "late.py", "pkg"] and _warm(fs, "src/pkg") == ["moved.py"]
    checkpoint.restore(vault, "main", "two")
    assert _warm(fs, "src") == ["app.py", "pkg"]
    assert fs.read("src/pkg/moved.py") == b"y = 2\n"


def test_contract_a_listing_right_after_another_process_writes_shows_it(fs):
    # (the mount's watcher reads the journal every 20 ms: a listing kept until then would
    # miss most of these; the kernel is told to read it again at once)
    ws = fs.ws
    names = ["app.py"]
    for i in range(25):
        assert _warm(fs, "src") == names
        ws.write(f"src/n{i:02d}.py", b"")
        names = sorted([*names, f"n{i:02d}.py"])
        assert fs.listdir("src") == names
        if i % 5 == 4:
            ws.remove(f"src/n{i - 2:02d}.py")
            names.remove(f"n{i - 2:02d}.py")
            assert fs.listdir("src") == names


@pytest.mark.backends(*MOUNTS)
def test_contract_a_listing_holds_dot_and_dot_dot_with_their_inodes(fs, backend):
    """`ls -a` shows `.` and `..` as on any file system (a writable pure-FUSE mount gave them
    no inode number, and glibc drops an entry whose inode is 0: neither was listed), and
    their inode numbers are the directories' own."""
    for d, parent in (("src", ""), ("", None)):
        top = os.path.join(fs.root, d) if d else fs.root
        out = subprocess.run(["ls", "-a1i", top], capture_output=True, text=True, check=True).stdout
        listed = {line.split()[1]: int(line.split()[0]) for line in out.splitlines()}
        assert listed["."] == os.stat(top).st_ino, (backend, d, out)
        assert ".." in listed, (backend, d, out)
        if parent is not None:
            assert listed[".."] == os.stat(os.path.join(fs.root, parent) if parent else fs.root).st_ino
