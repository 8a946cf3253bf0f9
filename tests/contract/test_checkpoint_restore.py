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
