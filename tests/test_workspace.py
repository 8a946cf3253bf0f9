"""The workspace: base + overlay, file operations, status."""

from __future__ import annotations

import io

import pytest

from avfs_git.core.errors import (
    AlreadyExistsError,
    DirectoryNotEmptyError,
    InvalidPathError,
    IsDirectoryError,
    NotDirectoryError,
    PathNotFoundError,
    SymlinkEscapeError,
)
from avfs_git.core.operations import checkpoint
from avfs_git.core.types import MODE_EXEC, MODE_LINK, MODE_TREE, ChangeStatus, NodeKind
from avfs_git.core.workspace.overlayentry import FILE, OBJECT


def statuses(ws):
    return {(c.path, c.status.value, c.old_path) for c in ws.status()}


def test_write_read_roundtrip_binary(ws):
    data = bytes(range(256)) * 10
    ws.write("bin/data.bin", data)
    assert ws.read("bin/data.bin") == data
    ws.write("empty", b"")
    assert ws.read("empty") == b""
    ws.write("stream.txt", io.BytesIO(b"streamed"))
    assert ws.read("stream.txt") == b"streamed"


def test_unicode_names(ws, vault):
    ws.write("dé/ünï cødé ✓.txt", b"ok")
    checkpoint.save(vault)
    assert [e.name for e in ws.listdir("dé")] == ["ünï cødé ✓.txt"]
    assert ws.read("dé/ünï cødé ✓.txt") == b"ok"


def test_reads_come_from_git_until_written(vault, ws):
    ws.write("a/b.txt", b"base")
    checkpoint.save(vault)
    st = ws.stat("a/b.txt")
    assert st.oid is not None and not st.materialized
    ws.write("a/b.txt", b"changed")
    st = ws.stat("a/b.txt")
    assert st.materialized and st.oid is None
    assert statuses(ws) == {("a/b.txt", "modified", None)}


def test_same_content_write_is_not_a_change(vault, ws):
    ws.write("f", b"x")
    checkpoint.save(vault)
    ws.write("f", b"x")
    assert ws.status() == []


def test_mkdir_rmdir_and_errors(ws):
    ws.mkdir("d")
    assert ws.stat("d").kind is NodeKind.DIR
    with pytest.raises(AlreadyExistsError):
        ws.mkdir("d")
    ws.mkdir("d", exist_ok=True)
    ws.mkdir("x/y/z", parents=True)
    ws.write("d/f", b"1")
    with pytest.raises(DirectoryNotEmptyError):
        ws.remove("d")
    ws.remove("d", recursive=True)
    assert not ws.exists("d")
    with pytest.raises(PathNotFoundError):
        ws.mkdir("nope/child")


def test_file_over_directory_and_back(ws):
    ws.write("d/f", b"1")
    with pytest.raises(IsDirectoryError):
        ws.write("d", b"x")
    with pytest.raises(NotDirectoryError):
        ws.write("d/f/g", b"x")
    with pytest.raises(IsDirectoryError):
        ws.read("d")


def test_empty_directory_is_not_a_change(vault, ws):
    ws.mkdir("empty")
    assert ws.status() == []
    res = checkpoint.save(vault)
    assert not res.created
    assert ws.stat("empty").kind is NodeKind.DIR  # still there in the workspace


def test_rename_unchanged_directory_copies_nothing(vault, ws):
    for i in range(50):
        ws.write(f"big/sub/f{i}.txt", f"{i}".encode())
    checkpoint.save(vault)
    ws.rename("big", "moved")
    entries = ws.overlay.all()
    kinds = sorted((e.path, e.kind) for e in entries)
    assert kinds == [("big", 0), ("moved", OBJECT)]
    assert ws.read("moved/sub/f7.txt") == b"7"
    st = ws.status()
    assert len(st) == 50 and all(c.status is ChangeStatus.RENAMED for c in st)
    assert {c.old_path for c in st} == {f"big/sub/f{i}.txt" for i in range(50)}
    checkpoint.save(vault)
    assert ws.read("moved/sub/f49.txt") == b"49" and not ws.exists("big")


def test_rename_directory_with_changes_inside(vault, ws):
    ws.write("a/x", b"x")
    ws.write("a/y", b"y")
    checkpoint.save(vault)
    ws.write("a/x", b"x2")
    ws.write("a/new", b"n")
    ws.rename("a", "b")
    assert ws.read("b/x") == b"x2" and ws.read("b/new") == b"n" and ws.read("b/y") == b"y"
    assert not ws.exists("a")
    checkpoint.save(vault)
    assert sorted(e.name for e in ws.listdir("b")) == ["new", "x", "y"]
    assert ws.read("b/x") == b"x2"


def test_rename_over_file_and_into_itself(ws):
    ws.write("a", b"a")
    ws.write("b", b"b")
    ws.rename("a", "b")
    assert ws.read("b") == b"a" and not ws.exists("a")
    ws.mkdir("d")
    with pytest.raises(InvalidPathError):
        ws.rename("d", "d/e")
    ws.write("d2/f", b"f")
    ws.mkdir("d3")
    ws.write("d3/x", b"x")
    with pytest.raises(DirectoryNotEmptyError):
        ws.rename("d2", "d3")


def test_copy_shares_unchanged_content(vault, ws):
    ws.write("src/a.txt", b"A")
    checkpoint.save(vault)
    ws.copy("src", "dst", recursive=True)
    assert ws.read("dst/a.txt") == b"A"
    assert [e.kind for e in ws.overlay.all()] == [OBJECT]
    ws.write("n.txt", b"N")
    ws.copy("n.txt", "m.txt")
    ws.write("n.txt", b"changed")
    assert ws.read("m.txt") == b"N"


def test_remove_then_recreate(vault, ws):
    ws.write("d/f", b"1")
    checkpoint.save(vault)
    ws.remove("d", recursive=True)
    assert statuses(ws) == {("d/f", "deleted", None)}
    ws.write("d/g", b"2")
    assert not ws.exists("d/f")
    assert statuses(ws) == {("d/f", "deleted", None), ("d/g", "added", None)}


def test_symlinks_inside_followed_outside_refused(vault, ws):
    ws.write("real/file.txt", b"content")
    ws.symlink("real/file.txt", "inside")
    ws.symlink("real", "dirlink")
    ws.symlink("/etc/passwd", "abs")
    ws.symlink("../../x", "up")
    assert ws.read("inside") == b"content"
    assert ws.read("dirlink/file.txt") == b"content"
    assert ws.stat("abs").kind is NodeKind.SYMLINK and ws.stat("abs").target == "/etc/passwd"
    with pytest.raises(SymlinkEscapeError):
        ws.read("abs")
    with pytest.raises(SymlinkEscapeError):
        ws.read("up")
    with pytest.raises(SymlinkEscapeError):
        ws.write("abs", b"pwned")
    with pytest.raises(SymlinkEscapeError):
        ws.write("up", b"pwned")
    ws.write("inside", b"through")  # in-workspace link: writes the target
    assert ws.read("real/file.txt") == b"through"
    assert ws.stat("inside").kind is NodeKind.SYMLINK
    checkpoint.save(vault)
    assert ws.stat("abs").mode == MODE_LINK


def test_chmod_keeps_exec_bit(vault, ws):
    ws.write("run.sh", b"#!/bin/sh\n")
    ws.chmod("run.sh", True)
    assert ws.stat("run.sh").mode == MODE_EXEC
    checkpoint.save(vault)
    ws.write("run.sh", b"#!/bin/sh\necho\n")
    assert ws.stat("run.sh").mode == MODE_EXEC
    ws.chmod("run.sh", False)
    ws.chmod("run.sh", True)
    assert ws.stat("run.sh").mode == MODE_EXEC


def test_type_change_in_status(vault, ws):
    ws.write("t", b"file")
    checkpoint.save(vault)
    ws.remove("t")
    ws.symlink("elsewhere", "t")
    assert statuses(ws) == {("t", "type_changed", None)}


def test_listdir_merges_base_and_overlay(vault, ws):
    ws.write("d/a", b"a")
    ws.write("d/b", b"b")
    checkpoint.save(vault)
    ws.remove("d/a")
    ws.write("d/c", b"c")
    ws.mkdir("d/e")
    assert [(e.name, e.kind.value) for e in ws.listdir("d")] == [("b", "file"), ("c", "file"), ("e", "dir")]
    assert [e.path for e in ws.walk("")] == ["d", "d/b", "d/c", "d/e"]


def test_corrupt_overlay_file_is_a_clear_error(ws):
    import os

    from avfs_git.core.errors import CorruptStateError

    ws.write("f", b"data")
    e = ws.overlay.get("f")
    assert e is not None and e.kind == FILE and e.fileid
    os.unlink(ws.overlay.file_path(e.fileid))
    with pytest.raises(CorruptStateError):
        ws.read("f")


def test_journal_records_changes_since(ws):
    start = ws.overlay.last_seq()
    ws.write("a", b"1")
    ws.write("b", b"2")
    ws.rename("a", "c")
    last, paths = ws.overlay.changes_since(start)
    assert last > start
    assert set(paths) == {"a", "b", "c"}
    assert ws.overlay.changes_since(last) == (last, [])


def test_root_and_dir_nodes(ws):
    assert ws.stat("").kind is NodeKind.DIR
    assert ws.stat("").mode == MODE_TREE
    with pytest.raises(InvalidPathError):
        ws.remove("")


def test_overlay_byte_total_follows_every_change(vault, ws):
    def summed():
        r = ws.overlay.db.execute("SELECT COALESCE(SUM(size), 0) FROM entries WHERE kind=1").fetchone()
        return int(r[0])

    ws.write("a", b"12345")
    ws.write("b/c", b"123")
    ws.write("a", b"1")  # replace
    ws.copy("a", "a2")
    ws.rename("b", "b2")
    ws.remove("a2")
    assert ws.overlay.file_bytes() == summed() == 4
    checkpoint.save(vault)
    assert ws.overlay.file_bytes() == summed() == 0
    ws.write("x", b"xx")
    checkpoint.restore(vault, None, "HEAD")
    assert ws.overlay.file_bytes() == summed() == 0
