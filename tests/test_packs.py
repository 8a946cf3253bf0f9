"""Checkpoints write one pack each (git's format); packs are consolidated as they pile up."""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
import zlib
from pathlib import Path

import pytest

from avfs_git.core.operations import checkpoint
from avfs_git.core.store import objects, packwriter

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


@pytest.mark.parametrize("size", [0, 1, 468, 0xFFFF, 0x10000, 200_000])
def test_stored_trees_are_the_zlib_stream_git_inflates(size):
    """Trees are stored, their zlib stream written by hand (packwriter.stored): zlib
    inflates it, its blocks split where a stored block must end, and a small one is
    byte for byte what zlib itself writes at level 0."""
    data = os.urandom(size)
    out = packwriter.stored(data)
    assert zlib.decompress(out) == data
    if size <= 0xFFFF:
        assert len(out) == size + 11
    if size <= 4096:
        assert out == zlib.compress(data, 0)


def test_a_tree_past_one_stored_block_reads_back_in_git(tmp_path):
    """A tree of 4,000 entries (~150 KiB: three stored blocks) and a small one, written
    into a pack of their own: git verifies the pack and lists both trees."""
    repo = tmp_path / "r.git"
    git("init", "-q", "--bare", str(repo))
    pw = packwriter.PackWriter(str(repo))
    blob = pw.add(packwriter.OBJ_BLOB, b"x\n")
    raw = bytes.fromhex(blob)
    big = b"".join(b"100644 file-%05d.txt\0" % i + raw for i in range(4000))
    small = b"100644 one.txt\0" + raw
    big_id, small_id = pw.add(packwriter.OBJ_TREE, big), pw.add_tree(small).hex()  # (add_tree: the id raw)
    assert small_id == packwriter.object_id(packwriter.OBJ_TREE, small)
    assert pw.add_tree(small).hex() == small_id and len(pw) == 3  # written once
    assert len(big) > 2 * 0xFFFF
    name = pw.finish()
    assert name is not None
    git("--git-dir", str(repo), "verify-pack", str(repo / "objects" / "pack" / f"{name}.idx"))
    listing = git("--git-dir", str(repo), "ls-tree", big_id).splitlines()
    assert len(listing) == 4000 and listing[1234].endswith("\tfile-01234.txt")
    assert git("--git-dir", str(repo), "ls-tree", "--name-only", small_id) == "one.txt\n"
    assert git("--git-dir", str(repo), "fsck", "--strict", "--no-dangling") == ""


def test_trees_of_every_framing_read_back_in_git(tmp_path):
    """add_tree frames a tree of 16 bytes to 2 KiB in one call, others as add does: trees
    on both sides of each edge, written into one pack, read back byte for byte by git."""
    repo = tmp_path / "r.git"
    git("init", "-q", "--bare", str(repo))
    pw = packwriter.PackWriter(str(repo))
    raw = bytes.fromhex(pw.add(packwriter.OBJ_BLOB, b"x\n"))
    trees = {}
    # one entry is 28 bytes and its name: the smallest tree, the edges of 2 KiB, and past a
    # stored block (many entries)
    for entries in [
        b"",
        *(b"100644 " + b"n" * (size - 28) + b"\0" + raw for size in (29, 2047, 2048, 2049)),
        b"".join(b"100644 file-%05d\0" % i + raw for i in range(2000)),
    ]:
        trees[pw.add_tree(entries).hex()] = entries
    name = pw.finish()
    assert name is not None
    git("--git-dir", str(repo), "verify-pack", str(repo / "objects" / "pack" / f"{name}.idx"))
    for oid, entries in trees.items():
        got = subprocess.run(
            ["git", "--git-dir", str(repo), "cat-file", "tree", oid], capture_output=True, check=True
        ).stdout
        assert got == entries and oid == packwriter.object_id(packwriter.OBJ_TREE, entries)


def test_pack_index_large_offsets_go_to_the_64_bit_table(tmp_path):
    """Offsets past 2 GiB (a pack that big is not made in a test: the entries are set
    directly) are written to the index's 64-bit table in id order, and read back as they
    were by the pure-Python reader's index parser."""
    (tmp_path / "objects" / "pack").mkdir(parents=True)
    pw = packwriter.PackWriter(str(tmp_path))
    offsets = {
        packwriter.object_id(packwriter.OBJ_BLOB, b"%d" % i): off
        for i, off in enumerate([12, 0x7FFFFFFF, 0x80000000, 0x1_2345_6789, 345, 0x9_0000_0000])
    }
    pw._entries = {oid: (off, 0xABCD0000 + i) for i, (oid, off) in enumerate(offsets.items())}
    idx = tmp_path / "p.idx"
    idx.write_bytes(pw._index(b"\1" * 20))
    pw.abort()
    pack = objects._Pack(str(idx))
    assert pack.count == len(offsets) and pack._n_big == 3
    for oid, off in offsets.items():
        assert pack.find(bytes.fromhex(oid)) == off
    data = idx.read_bytes()
    assert data[-20:] == hashlib.sha1(data[:-20]).digest() and data[-40:-20] == b"\1" * 20


def test_git_gc_between_a_pack_and_its_index_taking_their_place_loses_nothing(vault, ws, monkeypatch):
    """git runs ``gc`` by itself (``gc --auto`` after a commit in a mount, once 50 packs
    pile up), and ``gc`` deletes an index whose pack is not beside it as pack garbage: a
    temporary index named ``.idx`` was deleted between the pack's rename and its own, and
    the checkpoint failed (No such file or directory). A real ``git gc`` run right there."""
    ws.write("a.txt", b"before\n")
    checkpoint.save(vault)
    real_put = packwriter._put
    ran: list[str] = []

    def put_then_gc(tmp: str, dest: str) -> None:
        real_put(tmp, dest)
        if dest.endswith(".pack") and not ran:
            ran.append(git("--git-dir", vault.path, "gc", "--quiet"))

    monkeypatch.setattr(packwriter, "_put", put_then_gc)
    ws.write("b.txt", b"after\n")
    cp = checkpoint.save(vault).checkpoint.commit
    assert ran
    assert git("--git-dir", vault.path, "show", f"{cp}:b.txt") == "after\n"
    subprocess.run(["git", "--git-dir", vault.path, "fsck", "--strict"], check=True, capture_output=True)


def _children() -> list[str]:
    """The pids of this process's children (of every thread) that are the consolidation's
    shell or process: an xdist worker has others, which earlier tests' servers and threads
    started (CI saw two there)."""
    kids: list[str] = []
    for task in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{task}/children") as fh:
            kids += fh.read().split()
    ours = []
    for pid in kids:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                argv = fh.read().split(b"\0")
            with open(f"/proc/{pid}/comm", "rb") as fh:
                comm = fh.read().strip()
        except OSError:
            continue  # gone meanwhile
        if b"avfs-keeper" in argv:
            continue  # (the worker's sandboxes' keeper, proxy/keeper.py: a shell for its life)
        # (a zombie shows no command line: its name tells the shell)
        if b"avfs_git.core.store.packwriter" in argv or argv[:1] == [b"/bin/sh"] or comm == b"sh":
            ours.append(pid)
    return ours


def test_one_consolidation_at_a_time_and_nobody_s_child(vault, ws):
    """Past the limit, a checkpoint starts a repack only when none runs: while one holds the
    vault's repack lock, the next checkpoints start nothing (each used to start a Python
    process that found the lock taken and exited: 9-25 in 120 checkpoints past the limit).
    The repack it starts holds that lock until it ends, and is not the caller's child (a
    dropped ``Popen`` was a ResourceWarning and a zombie until the next ``Popen``)."""
    import fcntl

    for i in range(6):
        ws.write("counter.txt", str(i).encode())
        checkpoint.save(vault)
    assert packwriter.pack_count(vault.path) > 3
    running = packwriter.repack_lock(vault.path)  # a repack of another process runs
    assert running is not None
    try:
        assert not packwriter.maybe_consolidate(vault.path, 3)
    finally:
        running.close()
    assert packwriter.maybe_consolidate(vault.path, 3)
    assert _children() == []  # the shell that started it is reaped; the repack is not ours
    with open(os.path.join(vault.path, "avfs", "locks", ".repack.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # waits for the repack it started to let go
    assert packwriter.pack_count(vault.path) <= 4
    assert ws.read("counter.txt") == b"5"
    assert git("--git-dir", vault.path, "fsck", "--strict", "--no-dangling") == ""


def test_a_writer_that_is_a_zombie_is_gone(tmp_path):
    """A temporary pack or a pack's keep whose writer has ended but was not collected yet (a
    zombie: its parent, or a PID 1 that collects no one's, has not waited for it) is stale
    at once, as a writer that is gone: not an hour later, by age."""
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    try:
        deadline = time.monotonic() + 30
        while Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
            assert time.monotonic() < deadline
            time.sleep(0.01)
        pack = tmp_path / f"{packwriter.TMP_PREFIX}{pid}_x.pack"
        pack.write_bytes(b"PACK")
        keep = tmp_path / "pack-x.keep"
        keep.write_bytes(packwriter.KEEP_MARK + b"%d\n" % pid)
        assert "gone" in (packwriter.temp_file_stale(str(pack)) or "")
        assert "gone" in (packwriter.keep_stale(str(keep)) or "")
    finally:
        os.waitpid(pid, 0)
