"""Files, modes and links: write, read, append, rename, unlink, mkdir, rmdir, symlinks, the
exec bit, names with spaces, unicode and depth, and the errno each refusal names; the same
on every backend."""

from __future__ import annotations

import errno

from avfs_git.core.operations import checkpoint

from .views import _status, _tree


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
