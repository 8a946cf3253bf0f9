"""Checkpoints write one pack each (git's format); packs are consolidated as they pile up."""

from __future__ import annotations

import os

from avfs_git.core.operations import checkpoint
from avfs_git.core.store import packwriter

from .conftest import git


def _loose(vault):
    objects = os.path.join(vault.path, "objects")
    return sum(len(os.listdir(os.path.join(objects, d))) for d in os.listdir(objects) if len(d) == 2)


def test_checkpoint_objects_are_one_valid_pack(vault, ws):
    before = packwriter.pack_count(vault.path)
    loose_before = _loose(vault)
    for i in range(20):
        ws.write(f"d{i % 3}/f{i}.txt", f"content {i}\n".encode())
    ws.write("exec.sh", b"#!/bin/sh\n", mode=0o755)
    ws.symlink("exec.sh", "link")
    checkpoint.save(vault)
    assert packwriter.pack_count(vault.path) == before + 1
    assert _loose(vault) == loose_before
    for idx in os.listdir(os.path.join(vault.path, "objects", "pack")):
        if idx.endswith(".idx"):
            git("--git-dir", vault.path, "verify-pack", os.path.join(vault.path, "objects", "pack", idx))
    assert git("--git-dir", vault.path, "fsck", "--strict", "--no-dangling") == ""
    assert git("--git-dir", vault.path, "show", "main:d1/f1.txt") == "content 1\n"


def test_big_file_is_streamed_into_the_pack(vault, ws, tmp_path):
    big = tmp_path / "big.bin"
    chunk = os.urandom(1 << 16)
    with open(big, "wb") as fh:
        for _ in range(80):  # 5 MiB, incompressible
            fh.write(chunk)
    ws.write_from_file("big.bin", str(big))
    checkpoint.save(vault)
    assert ws.read("big.bin") == big.read_bytes()
    assert git("--git-dir", vault.path, "fsck", "--strict", "--no-dangling") == ""
    assert git("--git-dir", vault.path, "cat-file", "-s", "main:big.bin").strip() == str(80 << 16)


def test_small_packs_are_consolidated(vault, ws):
    for i in range(12):
        ws.write("counter.txt", str(i).encode())
        checkpoint.save(vault)
    assert packwriter.pack_count(vault.path) >= 12
    assert packwriter.maybe_consolidate(vault.path, 5, wait=True)
    assert packwriter.pack_count(vault.path) <= 6
    assert ws.read("counter.txt") == b"11"
    assert git("--git-dir", vault.path, "fsck", "--strict", "--no-dangling") == ""
    assert len(git("--git-dir", vault.path, "rev-list", "main").split()) == 13


def test_blob_ids_match_git(tmp_path):
    f = tmp_path / "x"
    f.write_bytes(b"hello\n")
    assert packwriter.file_blob_id(str(f)) == git("hash-object", str(f)).strip()
    assert packwriter.object_id(packwriter.OBJ_BLOB, b"hello\n") == git("hash-object", str(f)).strip()


def _pack_files(vault):
    d = os.path.join(vault.path, "objects", "pack")
    return {n: os.stat(os.path.join(d, n)).st_ino for n in os.listdir(d)}


def test_the_same_pack_written_again_keeps_the_one_in_place(vault, ws):
    """A fork of a changed workspace captures its changes into a pack each time; the same
    changes make the same pack (its name is the hash of its bytes), which stays as it was:
    not renamed over (ext4 writes a file out when a rename replaces another with it)."""
    ws.write("a/one.txt", b"one\n")
    ws.write("b/two.txt", b"two\n")
    first, _ = ws.capture()
    before = _pack_files(vault)
    again, _ = ws.capture()
    assert again == first
    after = _pack_files(vault)
    assert after == before  # the same files, the same inodes, no temporary file left
    assert not [n for n in after if n.startswith(packwriter.TMP_PREFIX)]
    assert git("--git-dir", vault.path, "cat-file", "-p", f"{first}:a/one.txt") == "one\n"
    assert git("--git-dir", vault.path, "fsck", "--strict", "--no-dangling") == ""
