"""A restore, a checkout of a path or a merge written through a live mount beside a
program of the person's holding a file open for writing: nothing it writes is lost
(livewrite1, the thirty-fourth round; core/workspace/livedir.py ``_held_open``,
core/workspace/liveswap.py ``unlinked_unheld``, core/operations/openwriters.py).

On the overlay backend such an operation wrote its new view through the mount by removing
each file it changes, then writing a new one. A program holding one of them open for
writing (an editor, a log, a database) whose bytes were what the operation discards (the
checkpointed ones: nothing git calls dirty) went on writing into a file no name showed:
every byte it wrote after was lost, and the path showed the operation's bytes. git does
the same in a plain worktree (``git checkout -- a.txt`` and ``git merge`` unlink and
rename; their refusal of dirty files does not see an open writer: tests/test_livewrite1.py
``test_git_in_a_plain_worktree_replaces_the_file_a_writer_holds``). Now the file is
unlinked only under a read lease, which the kernel refuses while a process holds it open
for writing: then it is the person's, left at the path (the writer's bytes land where the
path shows them), named in a warning; everything else is done. On pure FUSE (the move
dropped the entry the daemon's write handle held) a restore, an undo and a checkout are
refused busy before anything moves, as a merge was.

The writer is tests/test_adopt3.py's, a real process in a loop; the order is made by real
waits on its pipes, not by sleeps."""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .gitmount import _require, mount_fork
from .test_adopt3 import _writer

MINE = "the writer's own bytes\n"


def _two(mp: Path, avfs: Any) -> None:
    """The fork's HEAD: a.txt "two", a new b.txt (HEAD~1: a.txt "one", no b.txt)."""
    (mp / "a.txt").write_text("two\n")
    (mp / "b.txt").write_text("b\n")
    assert avfs("checkpoint", "save", "-m", "two").code == 0


def _restore(mp: Path, avfs: Any) -> Any:
    _two(mp, avfs)
    return lambda: avfs("checkpoint", "restore", "HEAD~1")


def _checkout(mp: Path, avfs: Any) -> Any:
    _two(mp, avfs)
    return lambda: avfs("checkout", "HEAD~1", "--", "a.txt")


def _merge(mp: Path, avfs: Any) -> Any:
    # fork g of f changes a.txt back to "one" and removes b.txt; merged into f, a fast-forward
    _two(mp, avfs)
    assert avfs("vault", "fork", "v:f", "g").code == 0
    assert avfs("--vault", "v:g", "write", "a.txt", "one\n").code == 0
    assert avfs("--vault", "v:g", "rm", "b.txt").code == 0
    assert avfs("--vault", "v:g", "checkpoint", "save", "-m", "back").code == 0
    return lambda: avfs("merge", "g")


def _revert(mp: Path, avfs: Any) -> Any:
    _two(mp, avfs)
    return lambda: avfs("revert", "HEAD")


def _undo(mp: Path, avfs: Any) -> Any:
    # the restore to HEAD~1 undone: a.txt "one" again "two", b.txt back
    _two(mp, avfs)
    assert avfs("checkpoint", "restore", "HEAD~1").code == 0
    return lambda: avfs("undo")


OPS: dict[str, Callable[[Path, Any], Any]] = {
    "restore": _restore,
    "checkout": _checkout,
    "merge": _merge,
    "revert": _revert,
    "undo": _undo,
}


@pytest.mark.parametrize("op", sorted(OPS))
@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_a_file_a_writer_holds_open_is_not_taken_from_it(
    backend: str, op: str, cli_proc: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """a.txt ("two", checkpointed: not dirty) is open in a writer writing "two" in a loop
    while the operation changes it back to "one" (and a restore, a merge or a revert
    removes b.txt; an undo of a restore to "one" the other way, b.txt back).
    The writer's own bytes, written after through the same descriptor, are what a.txt
    shows, and `avfs status` names it changed; the operation either did everything else
    and warned naming a.txt, or refused (busy, naming a.txt) and changed nothing. Before,
    on the overlay backend, a.txt showed "one" and the writer's bytes went to a file no
    name showed."""
    _require(backend)
    with mount_fork(cli_proc, tmp_path, backend, in_process=True) as (mp, avfs):
        run = OPS[op](mp, avfs)
        same = "one\n" if op == "undo" else "two\n"  # (what a.txt holds: the checkpoint's)
        with caplog.at_level(logging.WARNING), _writer(mp / "a.txt", same, MINE) as stop:
            res = run()
            stop()
        assert (mp / "a.txt").read_text() == MINE
        if res.code == 0:
            assert any("a.txt is open for writing" in r.getMessage() for r in caplog.records), caplog.text
            assert (mp / "b.txt").exists() == (op in ("checkout", "undo"))
        elif res.code == 1:  # (pure FUSE: the open file an entry of the overlay, dirty)
            assert op == "revert" and "uncheckpointed changes" in res.err, res.err
            assert (mp / "b.txt").exists()
        else:
            assert res.code == 75 and "a.txt" in res.out + res.err, (res.code, res.out, res.err)
            assert (mp / "b.txt").exists() == (op != "undo")  # (nothing changed)
        assert not [n for n in os.listdir(mp) if n.startswith(".avfs-")]  # (no side file left)
        changes = avfs("--json", "status").json()["changes"]
        assert {"path": "a.txt", "status": "modified"} in changes, changes


def test_git_in_a_plain_worktree_replaces_the_file_a_writer_holds(tmp_path: Path) -> None:
    """What git does in the same place (the comparison the docs give): `git checkout
    HEAD~1 -- a.txt` in a plain worktree while a writer holds a.txt (the index's bytes:
    not dirty) unlinks it and writes a new file; the writer's later bytes are in no file
    the worktree shows."""
    wt = tmp_path / "wt"

    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(wt), *args], check=True, capture_output=True)

    wt.mkdir()
    git("init", "-q")
    for text in ("one\n", "two\n"):
        (wt / "a.txt").write_text(text)
        git("add", "a.txt")
        git("commit", "-qm", text)
    with _writer(wt / "a.txt", "two\n", MINE) as stop:
        git("checkout", "HEAD~1", "--", "a.txt")
        stop()
    assert (wt / "a.txt").read_text() == "one\n"  # (git's: the writer's bytes are gone)
