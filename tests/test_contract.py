"""The contract: what a user relies on in a fork, written once and run against every backend
(as fsspec runs one suite against each of its file systems): the in-process workspace API,
the overlay mount (kernel overlayfs over avfs's lower view) and the pure-FUSE mount.

Each test drives the fork through its backend's own door (``Workspace`` methods, or plain
``os`` calls in a real mount) and checks what every reader sees: the backend itself, the
workspace's status, the checkpoint's commit in git. A backend-specific file keeps only what
is specific to it (tests/test_fuse.py: mount-only behaviour; tests/test_posix.py: POSIX
beyond git). Mounting tests may skip only where FUSE or overlayfs is truly absent, and
under CI=true that is a failure.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from typing import Any

import pytest

from avfs_git.core.errors import AvfsError
from avfs_git.core.operations import checkpoint

from .conftest import git
from .test_fuse import _mounted

# -- the backends -------------------------------------------------------------------------------


class ApiFS:
    def __init__(self, ws: Any) -> None:
        self.ws = ws

    def write(self, p: str, data: bytes) -> None:
        self.ws.write(p, data, parents=False)

    def read(self, p: str) -> bytes:
        return bytes(self.ws.read(p))

    def append(self, p: str, data: bytes) -> None:
        self.ws.write(p, self.ws.read(p) + data, parents=False)

    def rename(self, a: str, b: str) -> None:
        self.ws.rename(a, b)

    def unlink(self, p: str) -> None:
        self.ws.remove(p)

    def mkdir(self, p: str) -> None:
        self.ws.mkdir(p)

    def rmdir(self, p: str) -> None:
        self.ws.rmdir(p)

    def symlink(self, target: str, p: str) -> None:
        self.ws.symlink(target, p)

    def readlink(self, p: str) -> str:
        return str(self.ws.read_link(p))

    def set_exec(self, p: str, on: bool) -> None:
        self.ws.chmod(p, on)

    def is_exec(self, p: str) -> bool:
        return bool(self.ws.stat(p).mode == 0o100755)

    def exists(self, p: str) -> bool:
        return bool(self.ws.exists(p))

    def listdir(self, p: str) -> list[str]:
        return sorted(e.name for e in self.ws.listdir(p))

    def errno_of(self, fn: Any, *args: Any) -> int:
        try:
            fn(*args)
        except AvfsError as exc:
            return int(exc.errno)
        return 0


class MountFS:
    def __init__(self, root: str, ws: Any) -> None:
        self.root = root
        self.ws = ws  # the workspace behind the mount: status and checkpoints go through it

    def _p(self, p: str) -> str:
        return os.path.join(self.root, p)

    def write(self, p: str, data: bytes) -> None:
        with open(self._p(p), "wb") as fh:
            fh.write(data)

    def read(self, p: str) -> bytes:
        with open(self._p(p), "rb") as fh:
            return fh.read()

    def append(self, p: str, data: bytes) -> None:
        with open(self._p(p), "ab") as fh:
            fh.write(data)

    def rename(self, a: str, b: str) -> None:
        os.rename(self._p(a), self._p(b))

    def unlink(self, p: str) -> None:
        os.unlink(self._p(p))

    def mkdir(self, p: str) -> None:
        os.mkdir(self._p(p))

    def rmdir(self, p: str) -> None:
        os.rmdir(self._p(p))

    def symlink(self, target: str, p: str) -> None:
        os.symlink(target, self._p(p))

    def readlink(self, p: str) -> str:
        return os.readlink(self._p(p))

    def set_exec(self, p: str, on: bool) -> None:
        os.chmod(self._p(p), 0o755 if on else 0o644)

    def is_exec(self, p: str) -> bool:
        return bool(os.stat(self._p(p)).st_mode & 0o100)

    def exists(self, p: str) -> bool:
        return os.path.lexists(self._p(p))

    def listdir(self, p: str) -> list[str]:
        return sorted(n for n in os.listdir(self._p(p)) if not (p in ("", ".") and n == ".git"))

    def errno_of(self, fn: Any, *args: Any) -> int:
        try:
            fn(*args)
        except OSError as exc:
            return int(exc.errno or 0)
        return 0


@pytest.fixture(params=["api", "overlay", "fuse"])
def fs(request, home, vault, tmp_path) -> Iterator[Any]:
    """The fork ``main`` of ``vault`` holding README.md, src/app.py, bin/run.sh (0755) and
    readme-link -> README.md, checkpointed; through each backend."""
    if request.param == "api":
        ws = vault.workspace("main")
        ws.write("README.md", b"# hello\n")
        ws.write("src/app.py", b"print('hi')\n")
        ws.write("bin/run.sh", b"#!/bin/sh\necho run\n", mode=0o755)
        ws.symlink("README.md", "readme-link")
        checkpoint.save(vault, name="base")
        yield ApiFS(ws)
        return
    with _mounted(home, vault, tmp_path, request.param) as m:
        yield MountFS(m[1], vault.workspace("main"))


def test_contract_write_read_append(fs):
    fs.write("a.txt", b"one\n")
    assert fs.read("a.txt") == b"one\n"
    fs.append("a.txt", b"two\n")
    assert fs.read("a.txt") == b"one\ntwo\n"
    fs.write("a.txt", b"x")
    assert fs.read("a.txt") == b"x"
    fs.write("empty", b"")
    assert fs.read("empty") == b""
    data = bytes(range(256)) * 64
    fs.write("bin.dat", data)
    assert fs.read("bin.dat") == data


def test_contract_rename_files_and_directories(fs):
    fs.write("f1", b"1")
    fs.write("f2", b"2")
    fs.rename("f1", "f2")  # over an existing file
    assert fs.read("f2") == b"1" and not fs.exists("f1")
    fs.mkdir("d")
    fs.write("d/x", b"x")
    fs.rename("src", "d/src")  # an unchanged directory, across directories
    assert fs.read("d/src/app.py") == b"print('hi')\n" and not fs.exists("src")
    fs.rename("d", "e")
    assert fs.listdir("e") == ["src", "x"]


def test_contract_unlink_mkdir_rmdir(fs):
    fs.mkdir("d")
    fs.write("d/f", b"f")
    assert fs.errno_of(fs.rmdir, "d") == errno.ENOTEMPTY
    assert fs.errno_of(fs.mkdir, "d") == errno.EEXIST
    fs.unlink("d/f")
    fs.rmdir("d")
    assert not fs.exists("d")
    assert fs.errno_of(fs.unlink, "nope") == errno.ENOENT
    assert fs.errno_of(fs.read, "nope") == errno.ENOENT


def test_contract_symlinks_and_exec_bit(fs):
    fs.symlink("README.md", "link")
    assert fs.readlink("link") == "README.md"
    assert fs.read("link") == b"# hello\n"
    fs.write("tool.sh", b"#!/bin/sh\n")
    fs.set_exec("tool.sh", True)
    assert fs.is_exec("tool.sh")
    fs.set_exec("tool.sh", False)
    assert not fs.is_exec("tool.sh")


# -- what every reader sees: status, checkpoints, restore, ignore rules ------------------------


def _status(fs: Any) -> set[tuple[str, str]]:
    return {(c.path, c.status.value) for c in fs.ws.status()}


def _committed(fs: Any, rev: str, path: str) -> bytes:
    out = git("--git-dir", fs.ws.vault.path, "cat-file", "-p", f"{rev}:{path}")
    return out.encode()


def _tree(fs: Any, rev: str) -> dict[str, str]:
    """path -> git mode of every entry of ``rev``'s tree."""
    out = git("--git-dir", fs.ws.vault.path, "ls-tree", "-r", "-z", rev)
    entries = {}
    for rec in out.split("\0"):
        if rec:
            meta, path = rec.split("\t", 1)
            entries[path] = meta.split()[0]
    return entries


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


def test_contract_checkpoint_records_content_modes_and_links(fs):
    fs.mkdir("d")
    fs.write("d/data.bin", bytes(range(256)) * 300)
    fs.write("d/tool", b"#!/bin/sh\n")
    fs.set_exec("d/tool", True)
    fs.symlink("../README.md", "d/up-link")
    fs.symlink("nowhere/at/all", "dangling")
    fs.rename("src", "lib")  # an unchanged directory, renamed
    res = checkpoint.save(fs.ws.vault, "main", name="c1")
    assert res.created and _status(fs) == set()
    tree = _tree(fs, "main")
    assert tree["d/data.bin"] == "100644" and tree["d/tool"] == "100755"
    assert tree["d/up-link"] == "120000" and tree["dangling"] == "120000"
    assert tree["lib/app.py"] == "100644" and "src/app.py" not in tree
    assert _committed(fs, "main", "d/up-link") == b"../README.md"
    assert git("--git-dir", fs.ws.vault.path, "cat-file", "-s", "main:d/data.bin").strip() == str(256 * 300)
    # what the backend shows after the checkpoint is what it showed before
    assert fs.read("d/data.bin") == bytes(range(256)) * 300 and fs.is_exec("d/tool")
    assert fs.readlink("dangling") == "nowhere/at/all" and fs.read("d/up-link") == b"# hello\n"
    git("--git-dir", fs.ws.vault.path, "fsck", "--strict")


def test_contract_restore_brings_back_a_checkpoint_and_keeps_what_it_replaced(fs):
    # (found by this suite: on the pure-FUSE mount the undo, within the second of the
    # restore and onto the same base, left the kernel serving the restored bytes)
    fs.write("a.txt", b"one\n")
    checkpoint.save(fs.ws.vault, "main", name="one")
    fs.write("a.txt", b"two\n")
    fs.unlink("README.md")
    fs.write("b.txt", b"uncheckpointed\n")
    checkpoint.restore(fs.ws.vault, "main", "one")
    assert fs.read("a.txt") == b"one\n" and fs.read("README.md") == b"# hello\n"
    assert not fs.exists("b.txt") and _status(fs) == set()
    checkpoint.undo(fs.ws.vault, fork="main")  # nothing is lost: the undo brings it back
    assert fs.read("a.txt") == b"two\n" and fs.read("b.txt") == b"uncheckpointed\n"
    assert not fs.exists("README.md")


def test_contract_ignored_paths_live_in_the_tree_but_are_never_recorded(fs):
    fs.write(".gitignore", b"*.log\nbuild/\n")
    fs.write("run.log", b"log\n")
    fs.mkdir("build")
    fs.write("build/out.o", b"\x7fELF")
    fs.write("kept.txt", b"kept\n")
    assert _status(fs) == {(".gitignore", "added"), ("kept.txt", "added")}
    checkpoint.save(fs.ws.vault, "main")
    tree = _tree(fs, "main")
    assert "kept.txt" in tree and ".gitignore" in tree
    assert "run.log" not in tree and not any(p.startswith("build/") for p in tree)
    assert fs.read("run.log") == b"log\n" and fs.read("build/out.o") == b"\x7fELF"
    assert _status(fs) == set()


def test_contract_names_with_spaces_unicode_and_depth(fs):
    deep = "/".join(f"lvl{i}" for i in range(12))
    parts = deep.split("/")
    for i in range(1, len(parts) + 1):
        fs.mkdir("/".join(parts[:i]))
    # (a control character in a name: a mount takes it, as git does; the API refuses it)
    names = ["with space.txt", "naïve-ü.txt", "日本語.md", "-dash", "#hash", "semi;colon"]
    for n in names:
        fs.write(f"{deep}/{n}", n.encode())
    assert fs.listdir(deep) == sorted(names)
    checkpoint.save(fs.ws.vault, "main")
    tree = _tree(fs, "main")
    for n in names:
        assert tree[f"{deep}/{n}"] == "100644"
        assert fs.read(f"{deep}/{n}") == n.encode()
    fs.rename("lvl0", "top")
    assert fs.read(f"top/{'/'.join(parts[1:])}/日本語.md") == "日本語.md".encode()
    moved = {(c.path, c.status.value, c.old_path) for c in fs.ws.status()}
    assert moved == {(f"top/{'/'.join(parts[1:])}/{n}", "renamed", f"{deep}/{n}") for n in names}


def test_contract_errors_name_the_same_errno(fs):
    fs.write("f", b"f")
    assert fs.errno_of(fs.mkdir, "f") == errno.EEXIST
    assert fs.errno_of(fs.write, "f/below", b"x") == errno.ENOTDIR
    assert fs.errno_of(fs.write, "missing/dir/x", b"x") == errno.ENOENT
    assert fs.errno_of(fs.rmdir, "f") == errno.ENOTDIR
    assert fs.errno_of(fs.rename, "nope", "other") == errno.ENOENT
    assert fs.errno_of(fs.readlink, "f") == errno.EINVAL
    # nothing the errors touched changed
    assert fs.read("f") == b"f" and not fs.exists("other") and not fs.exists("missing")
    assert _status(fs) == {("f", "added")}


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
