"""A fork of an unchanged source takes the capture kept by the last fork (core/workspace/forkcapture.py):
what it shows is what a fresh capture shows, whatever wrote to the source in between."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from avfs_git.core.errors import CorruptStateError
from avfs_git.core.operations import checkpoint
from avfs_git.core.vaults.vault import Vault
from avfs_git.core.workspace import forkcapture, wscapture
from avfs_git.core.workspace.overlayentry import FILE


@pytest.fixture
def captures(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The forks' real captures with their ignored paths (forkcapture's: a clean fork's
    capture leaves them out), counted; the function itself runs unchanged (forkcapture
    takes it from its module when it runs)."""
    calls: list[str] = []
    real = wscapture.capture

    def counted(ws, *args, **kwargs):  # type: ignore[no-untyped-def]
        if kwargs.get("include_ignored"):
            calls.append(ws.fork)
        return real(ws, *args, **kwargs)

    monkeypatch.setattr(wscapture, "capture", counted)
    return calls


@pytest.fixture
def settled() -> Callable[[], None]:
    """Let the file system's clock move on past what was just written (a capture is kept
    only when its files are older than the clock tick it starts in)."""
    return lambda: time.sleep(0.05)


def _kept(vault: Vault, fork: str = "main") -> Path:
    return Path(vault.workspace(fork).state_dir, forkcapture.CACHE_FILE)


def _seed_tree(vault: Vault, fork: str) -> str:
    return Path(vault.ws_dir(fork), "seed").read_text().split()[1]


def test_a_fork_of_an_unchanged_source_reuses_the_kept_capture(vault: Vault, captures, settled) -> None:
    ws = vault.workspace("main")
    ws.write("a.txt", b"one\n")
    ws.write("d/e/b.txt", b"two\n", parents=True)
    settled()
    vault.create_fork("main", "f1")
    vault.create_fork("main", "f2")
    vault.create_fork("main", "f3")
    assert captures == ["main"]
    assert _kept(vault).is_file()
    assert _seed_tree(vault, "f1") == _seed_tree(vault, "f2") == _seed_tree(vault, "f3")
    for f in ("f2", "f3"):
        w = vault.workspace(f)
        assert w.read("a.txt") == b"one\n" and w.read("d/e/b.txt") == b"two\n"
        assert {c.path for c in w.status()} == {"a.txt", "d/e/b.txt"}


def test_a_file_not_older_than_the_capture_is_not_trusted(vault: Vault, captures) -> None:
    """A file whose timestamp is not before the capture began (written in the same clock
    tick, here dated ahead) may change again without its stat data showing it."""
    ws = vault.workspace("main")
    ws.write("a.txt", b"one\n")
    e = ws.overlay.get("a.txt")
    assert e is not None and e.fileid is not None
    ahead = time.time_ns() + 3_600_000_000_000
    os.utime(ws.overlay.file_path(e.fileid), ns=(ahead, ahead))
    vault.create_fork("main", "f1")
    vault.create_fork("main", "f2")
    assert captures == ["main", "main"] and not _kept(vault).exists()
    assert vault.workspace("f2").read("a.txt") == b"one\n"


def test_every_write_to_the_source_moves_the_key(vault: Vault, captures, settled) -> None:
    ws = vault.workspace("main")
    ws.write(".gitignore", b"node_modules/\n")
    checkpoint.save(vault)
    ws.write("a.txt", b"one\n")
    ws.write("node_modules/x.js", b"x = 1\n", parents=True)
    settled()
    vault.create_fork("main", "f1")
    # an ignored path written again
    ws.write("node_modules/x.js", b"x = 2\n")
    settled()
    vault.create_fork("main", "f2")
    assert vault.workspace("f2").read("node_modules/x.js") == b"x = 2\n"
    # a removal
    ws.remove("a.txt")
    settled()
    vault.create_fork("main", "f3")
    assert not vault.workspace("f3").exists("a.txt")
    # a checkpoint (the base moves, what it held is retired), then a change on it
    ws.write("c.txt", b"three\n")
    checkpoint.save(vault)
    ws.write("d.txt", b"four\n")
    settled()
    vault.create_fork("main", "f4")
    f4 = vault.workspace("f4")
    assert f4.base == ws.base and {c.path for c in f4.status()} == {"d.txt"}
    assert f4.read("c.txt") == b"three\n" and f4.read("node_modules/x.js") == b"x = 2\n"
    assert captures == ["main"] * 4
    vault.create_fork("main", "f5")
    assert captures == ["main"] * 4


def test_a_write_in_place_to_a_materialized_file_moves_the_key(vault: Vault, captures, settled) -> None:
    """A mount writes a materialized file through its descriptor, journaling nothing: the
    file's stat data is in the key."""
    ws = vault.workspace("main")
    ws.write("a.txt", b"one\n")
    settled()
    vault.create_fork("main", "f1")
    e = ws.overlay.get("a.txt")
    assert e is not None and e.kind == FILE and e.fileid is not None
    path = ws.overlay.file_path(e.fileid)
    before = os.stat(path)
    with open(path, "r+b") as fh:  # same size, other bytes
        fh.write(b"uno\n")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))
    vault.create_fork("main", "f2")
    assert vault.workspace("f2").read("a.txt") == b"uno\n"
    assert captures == ["main", "main"]


@pytest.mark.parametrize("text", ["", "garbage\n", f"{'0' * 64} {'0' * 40}\n"])
def test_a_kept_capture_that_is_unreadable_or_names_a_missing_tree_is_not_used(
    vault: Vault, captures, settled, text: str
) -> None:
    ws = vault.workspace("main")
    ws.write("a.txt", b"one\n")
    settled()
    vault.create_fork("main", "f1")
    kept = _kept(vault)
    key, tree = kept.read_text().split()
    kept.write_text(text)
    vault.create_fork("main", "f2")
    kept.write_text(f"{key} {'1' * 40}\n")  # the right key, a tree the store lacks
    vault.create_fork("main", "f3")
    assert captures == ["main"] * 3
    assert _seed_tree(vault, "f2") == _seed_tree(vault, "f3") == tree
    assert vault.workspace("f3").read("a.txt") == b"one\n"


def test_a_clean_fork_is_captured_without_the_kept_capture(vault: Vault, captures, settled) -> None:
    ws = vault.workspace("main")
    ws.write(".gitignore", b"*.log\n")
    ws.write("run.log", b"log\n")
    ws.write("a.txt", b"one\n")
    settled()
    vault.create_fork("main", "f1")
    vault.fork("main", "clean", ignored=False)
    c = vault.workspace("clean")
    assert c.read("a.txt") == b"one\n" and not c.exists("run.log")
    assert captures == ["main"]


def test_a_capture_that_fails_leaves_nothing_behind(vault: Vault, captures, settled) -> None:
    """A materialized file gone from the overlay (a damaged state): the fork fails as a
    capture does, makes no fork and leaves no file of its own in the source's state."""
    ws = vault.workspace("main")
    ws.write("a.txt", b"one\n")
    e = ws.overlay.get("a.txt")
    assert e is not None and e.fileid is not None
    os.unlink(ws.overlay.file_path(e.fileid))
    with pytest.raises(CorruptStateError):
        vault.create_fork("main", "f1")
    assert not vault.has_fork("f1")
    assert [n for n in os.listdir(ws.state_dir) if n.startswith(forkcapture.CACHE_FILE)] == []
