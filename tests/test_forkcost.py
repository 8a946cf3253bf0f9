"""What a fork costs, counted (issue 31: a fork in process ≤ 0.5 ms): the op log's row in
one statement, the source's overlay read once (its base settled, its changes), loose refs read
through a descriptor, the fork's two locks taken without a generator or an ``ExitStack``.
Each count is what the change made; the behaviour around it is checked beside it."""

from __future__ import annotations

import builtins
import io
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from avfs_git.core.errors import AlreadyExistsError, BusyError
from avfs_git.core.store import refs
from avfs_git.core.store.locks import FileLocks, file_lock
from avfs_git.core.vaults.vault import Vault

from .conftest import git


@contextmanager
def _statements(conn: sqlite3.Connection) -> Iterator[list[str]]:
    seen: list[str] = []
    conn.set_trace_callback(seen.append)
    try:
        yield seen
    finally:
        conn.set_trace_callback(None)


def _probe(path: str) -> str:
    """Whether another process gets the lock ``path`` at once ("got") or not ("BusyError")."""
    probe = (
        "import sys; from avfs_git.core.store.locks import file_lock\n"
        "try:\n  with file_lock(sys.argv[1], what='probe', wait_s=0): print('got')\n"
        "except Exception as e: print(type(e).__name__)"
    )
    done = subprocess.run([sys.executable, "-c", probe, path], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_a_fork_s_op_log_row_is_one_statement_and_an_undo_still_one_transaction(vault: Vault) -> None:
    vault.create_fork("main", "warm")  # the op log's connection opened
    with _statements(vault.oplog.db) as seen:
        vault.create_fork("main", "a")
    assert [s.split()[0] for s in seen] == ["INSERT"], seen  # was BEGIN IMMEDIATE, INSERT, COMMIT
    op = vault.oplog.recent(1)[0]
    assert (op.kind, op.fork, op.refs[0]["ref"]) == ("fork", "a", "refs/heads/a")
    # a record that marks another undone keeps its three statements in one transaction
    undo = vault.oplog.record("undo", "undo the fork", undoes=op.id)
    assert vault.oplog.get(op.id) is not None and vault.oplog.get(op.id).undone_by == undo  # type: ignore[union-attr]


def test_a_fork_reads_its_source_s_overlay_once(vault: Vault) -> None:
    """The source's settled base, its pending move and whether it has changes in one
    query (the base sync's read, then the base and the changes apart: three)."""
    src = vault.workspace("main")
    vault.create_fork("main", "warm")
    with _statements(src.overlay.db) as seen:
        vault.create_fork("main", "clean")
    assert len(seen) == 1, seen
    assert not vault.workspace("clean").overlay.has_changes()
    src.write("dirty.txt", b"uncheckpointed")
    src.mkdir("empty-dir")
    info = vault.create_fork("main", "dirty")
    assert info.dirty and vault.workspace("dirty").read("dirty.txt") == b"uncheckpointed"
    # the one query agrees with the reads it replaced, with and without changes
    assert (
        src.overlay.settled_state() == (src.base, None, src.overlay.has_changes()) == (src.base, None, True)
    )
    empty = vault.workspace("clean")
    empty.mkdir("only-an-empty-dir")  # git cannot see it: not a change
    assert empty.overlay.settled_state() == (empty.base, None, False)


def test_a_fork_of_a_source_whose_ref_moved_elsewhere_starts_at_the_new_tip(vault: Vault) -> None:
    """Where the source's base is not at its ref (git moved it), the fork settles it as
    before (sync_base follows the ref of an empty overlay) and starts from the new tip."""
    src = vault.workspace("main")
    vault.create_fork("main", "warm")
    base = src.base
    tip = git("-C", vault.path, "commit-tree", f"{base}^{{tree}}", "-p", base, "-m", "by git").strip()
    git("-C", vault.path, "update-ref", "refs/heads/main", tip, base)
    assert src.overlay.get_meta("base") == base != tip
    info = vault.create_fork("main", "after")
    assert info.base == tip and not info.dirty
    assert src.overlay.get_meta("base") == tip
    assert vault.workspace("after").base == tip


def test_loose_refs_are_read_through_a_descriptor(vault: Vault, monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[str] = []
    real_open = builtins.open

    def spy(file: Any, *args: Any, **kwargs: Any) -> Any:
        opened.append(str(file))
        return real_open(file, *args, **kwargs)

    vault.create_fork("main", "warm")
    monkeypatch.setattr(builtins, "open", spy)
    monkeypatch.setattr(io, "open", spy)
    vault.create_fork("main", "a")
    monkeypatch.undo()
    refs_dir = os.path.join(vault.path, "refs") + os.sep
    assert not [p for p in opened if p.startswith(refs_dir)], opened
    # what the buffered read did, the descriptor's does: a symbolic ref longer than one
    # read, a name that is a directory of refs, a missing one
    tip = refs.read_ref_file(vault.path, "refs/heads/main")
    long_name = "refs/heads/" + "/".join(["x" * 60] * 5)
    Path(vault.path, long_name).parent.mkdir(parents=True)
    Path(vault.path, long_name).write_text(f"{tip}\n")
    Path(vault.path, "refs/heads/sym").write_text(f"ref: {long_name}\n")
    assert os.path.getsize(os.path.join(vault.path, "refs/heads/sym")) > 256
    assert refs.read_ref_file(vault.path, "refs/heads/sym") == tip
    assert refs.read_ref_file(vault.path, "refs/heads/" + "x" * 60) is None  # a directory
    assert refs.read_ref_file(vault.path, "refs/heads/none") is None


def test_a_fork_s_locks_are_taken_without_contextlib(vault: Vault, tmp_path: Path) -> None:
    called: list[str] = []

    def profile(frame: Any, event: str, _arg: object) -> None:
        if event == "call" and frame.f_code.co_filename.endswith("contextlib.py"):
            called.append(frame.f_code.co_name)

    vault.create_fork("main", "warm")
    sys.setprofile(profile)
    try:
        with vault.lock("main", "a"):
            pass
    finally:
        sys.setprofile(None)
    assert called == [], called
    # held as before: by this thread re-entrantly, and not by another lock of the file
    a, b = str(tmp_path / "a.lock"), str(tmp_path / "b.lock")
    with FileLocks([(a, "a"), (b, "b")], 1), file_lock(a, what="a again"):
        assert _probe(a) == _probe(b) == "BusyError"
    assert _probe(a) == _probe(b) == "got"


def test_a_lock_not_got_lets_go_of_those_taken_before_it(vault: Vault, tmp_path: Path) -> None:
    a, b = str(tmp_path / "a.lock"), str(tmp_path / "b.lock")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from avfs_git.core.store.locks import file_lock\n"
            "with file_lock(sys.argv[1], what='b'):\n  print('held', flush=True); time.sleep(30)",
            b,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(BusyError), FileLocks([(a, "a"), (b, "b")], 0):
            pass
        assert _probe(a) == "got"  # a was let go
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()
    with pytest.raises(AlreadyExistsError):
        vault.create_fork("main", "main")
