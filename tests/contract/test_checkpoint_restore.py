"""Checkpoints record content, modes and links as the backend shows them; a restore brings a
checkpoint back and keeps what it replaced."""

from __future__ import annotations

from avfs_git.core.operations import checkpoint

from ..conftest import git
from .views import _committed, _status, _tree


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


def test_contract_a_restore_that_changes_kinds_shows_the_new_kind_at_the_first_stat(fs):
    # (pure FUSE answered EIO to the first lstat of each: the kernel held an inode of the
    # old kind under a name still valid, and a getattr of another kind makes FUSE mark
    # the inode bad: model seed 36; docs/fuse.md)
    fs.mkdir("k")
    fs.write("k/file-to-link", b"file\n")
    fs.symlink("../README.md", "k/link-to-file")
    fs.write("k/file-to-dir", b"file\n")
    fs.mkdir("k/dir-to-file")
    fs.write("k/dir-to-file/x", b"x\n")
    fs.symlink("k", "link-to-dir")
    checkpoint.save(fs.ws.vault, "main", name="kinds")
    one = {"k/file-to-link": "file", "k/link-to-file": "symlink", "k/file-to-dir": "file"}
    one |= {"k/dir-to-file": "dir", "link-to-dir": "symlink"}
    two = {"k/file-to-link": "symlink", "k/link-to-file": "file", "k/file-to-dir": "dir"}
    two |= {"k/dir-to-file": "file", "link-to-dir": "dir"}
    assert {p: fs.kind(p) for p in one} == one
    fs.unlink("k/file-to-link")
    fs.symlink("missing.txt", "k/file-to-link")
    fs.unlink("k/link-to-file")
    fs.write("k/link-to-file", b"now a file\n")
    fs.unlink("k/file-to-dir")
    fs.mkdir("k/file-to-dir")
    fs.write("k/file-to-dir/y", b"y\n")
    fs.unlink("k/dir-to-file/x")
    fs.rmdir("k/dir-to-file")
    fs.write("k/dir-to-file", b"now a file\n")
    fs.unlink("link-to-dir")
    fs.mkdir("link-to-dir")
    fs.write("link-to-dir/z", b"z\n")
    assert {p: fs.kind(p) for p in two} == two  # what the kernel holds now (uncheckpointed)
    checkpoint.restore(fs.ws.vault, "main", "kinds")
    assert {p: fs.kind(p) for p in one} == one
    assert fs.read("k/file-to-link") == b"file\n" and fs.read("k/dir-to-file/x") == b"x\n"
    checkpoint.undo(fs.ws.vault, fork="main")
    assert {p: fs.kind(p) for p in two} == two
    assert fs.read("k/link-to-file") == b"now a file\n" and fs.read("k/file-to-dir/y") == b"y\n"
