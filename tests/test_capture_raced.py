"""A checkpoint under continuous writes ends with some version of each file, as `git add -A`
would, never "kept changing" (race1's finding in the twenty-third round: 1 run in 56 of two
threads rewriting one file ended with BusyError, the capture having re-read and re-hashed
every file after each file replaced under it, 16 times; the twenty-fourth round, flaky1).
A file replaced after the capture read the entries is read again alone: its entry now, and
that entry is the one the checkpoint retires (a write after it stays, on top).

The moment made exact (each read of the entries followed by a write of the file, from
another thread), then real threads rewriting a file through the API and through a mount
of each backend while checkpoints are saved."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from avfs_git.core.errors import PathNotFoundError
from avfs_git.core.operations import checkpoint
from avfs_git.core.vaults.home import Home
from avfs_git.core.vaults.vault import Vault
from avfs_git.core.workspace import wscapture
from avfs_git.core.workspace.overlayentry import FILE
from avfs_git.ops import mounts

from .conftest import git
from .gitmount import _require


def _base(vault: Vault, files: int = 40) -> None:
    ws = vault.workspace("main")
    for i in range(files):
        ws.write(f"d{i % 5}/f{i}.txt", b"%d\n" % i)
    ws.write("shared.txt", b"v0\n")
    checkpoint.save(vault, "main", message="base")


def test_a_file_replaced_after_the_entries_were_read_is_read_again_alone(
    home: Home, vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every read of the entries is followed by a write of ``shared.txt`` (another
    thread's, waited for): its old file is unlinked before the capture hashes it. The
    capture read everything again after each such miss, 16 times, and gave up; now it
    reads that file's entry again, and the checkpoint holds the version written."""
    _base(vault)
    ws = vault.workspace("main")
    for i in range(10):
        ws.write(f"d{i % 5}/f{i}.txt", b"changed %d\n" % i)
    ws.write("shared.txt", b"v1\n")
    real = wscapture._read
    reads: list[int] = []

    def read_then_replaced(w: Any) -> Any:
        got = real(w)
        if w.fork == "main" and any(e.path == "shared.txt" for e in got[0]):
            reads.append(1)
            t = threading.Thread(
                target=lambda n=len(reads): vault.workspace("main").write("shared.txt", b"v%d\n" % (n + 1))
            )
            t.start()
            t.join()
        return got

    monkeypatch.setattr(wscapture, "_read", read_then_replaced)
    checkpoint.save(vault, "main", message="during")
    monkeypatch.undo()
    assert reads, "the capture read no entry of shared.txt through the patch"
    last = b"v%d\n" % (len(reads) + 1)
    assert git("--git-dir", vault.path, "show", "main:shared.txt").encode() == last
    assert git("--git-dir", vault.path, "show", "main:d1/f1.txt") == "changed 1\n"
    assert vault.workspace("main").read("shared.txt") == last
    assert vault.workspace("main").status() == []  # all of it recorded


def _checkpoint_before_txn_of(
    ws: Any, caller: str, cli_proc: Any, monkeypatch: pytest.MonkeyPatch
) -> list[object]:
    """Make the first overlay transaction ``caller`` (a workspace method) begins wait
    for a checkpoint of fork ``main`` saved by another process (as a pure-FUSE mount's
    daemon changes the fork while `avfs checkpoint save` runs elsewhere); returns the
    list the checkpoint's result goes into once it ran."""
    real_txn = ws.overlay.txn
    ran: list[object] = []

    def checkpoint_first() -> Any:
        if not ran and sys._getframe(1).f_code.co_name == caller:
            r = cli_proc("--vault", "v:main", "--json", "checkpoint", "save", "-m", "between")
            ran.append(r)
            assert r.code == 0, r.err
        return real_txn()

    monkeypatch.setattr(ws.overlay, "txn", checkpoint_first)
    return ran


def _no_entry_names_a_missing_file(ws: Any) -> None:
    for e in ws.overlay.all():
        if e.kind == FILE:
            assert e.fileid is not None
            assert os.path.exists(ws.overlay.file_path(e.fileid)), e


def test_a_file_renamed_over_after_a_checkpoint_retired_its_source(
    home: Home, vault: Vault, monkeypatch: pytest.MonkeyPatch, cli_proc: Any
) -> None:
    """The interleaving of the pure-FUSE finding, made exact: an editor's save renames
    ``.shared.1.tmp`` (written and closed) over ``shared.txt``; the rename looks its
    source up, then a checkpoint in another process captures ``.shared.1.tmp`` and
    retires its entry (its overlay file unlinked), then the rename's transaction begins.
    The rename gave ``shared.txt`` the entry it had looked up: a file already unlinked,
    so every later read and checkpoint of the fork failed ("overlay file of shared.txt
    is missing", the saved version lost). It must look the source up in its transaction:
    retired, its bytes are the new base's blob, and ``shared.txt`` shows them."""
    _base(vault, files=5)
    ws = vault.workspace("main")
    saved = b"the editor's save\n" * 100
    ws.write(".shared.1.tmp", saved)
    ran = _checkpoint_before_txn_of(ws, "_move_or_copy", cli_proc, monkeypatch)
    ws.rename(".shared.1.tmp", "shared.txt")
    monkeypatch.undo()
    assert ran, "no checkpoint ran between the rename's lookup and its transaction"
    # the checkpoint retired the source: it recorded the saved bytes at .shared.1.tmp
    assert git("--git-dir", vault.path, "show", "main:.shared.1.tmp").encode() == saved
    _no_entry_names_a_missing_file(ws)
    assert ws.read("shared.txt") == saved
    assert not ws.exists(".shared.1.tmp")
    checkpoint.save(vault, "main", message="after")
    assert git("--git-dir", vault.path, "show", "main:shared.txt").encode() == saved
    assert ".shared.1.tmp" not in git("--git-dir", vault.path, "ls-tree", "--name-only", "main")
    assert ws.status() == []


def test_a_chmod_after_a_checkpoint_retired_the_file(
    home: Home, vault: Vault, monkeypatch: pytest.MonkeyPatch, cli_proc: Any
) -> None:
    """The same moment for a chmod (``install -m 755``, an editor keeping the mode of
    what it saves): the chmod looks the file up, a checkpoint in another process retires
    its entry, then the chmod's transaction gave the path the entry it had looked up,
    its file unlinked. Looked up in the transaction, the file is the base's blob, made
    executable."""
    _base(vault, files=5)
    ws = vault.workspace("main")
    script = b"#!/bin/sh\necho built\n"
    ws.write("build.sh", script)
    ran = _checkpoint_before_txn_of(ws, "chmod", cli_proc, monkeypatch)
    ws.chmod("build.sh", True)
    monkeypatch.undo()
    assert ran, "no checkpoint ran between the chmod's lookup and its transaction"
    _no_entry_names_a_missing_file(ws)
    assert ws.read("build.sh") == script
    checkpoint.save(vault, "main", message="after")
    assert git("--git-dir", vault.path, "ls-tree", "main", "build.sh").startswith("100755 blob ")
    assert git("--git-dir", vault.path, "show", "main:build.sh").encode() == script
    assert ws.status() == []


def _run_at_call_of(
    obj: Any, name: str, caller: str, run: Any, monkeypatch: pytest.MonkeyPatch, *, after: bool = False
) -> list[object]:
    """Make the first call of ``obj.<name>`` whose caller is function ``caller`` run
    ``run()`` first (``after``: once it returned); returns the list ``run``'s result goes
    into once it ran."""
    real = getattr(obj, name)
    ran: list[object] = []

    def patched(*a: Any, **k: Any) -> Any:
        mine = not ran and sys._getframe(1).f_code.co_name == caller
        if mine and not after:
            ran.append(run())
        got = real(*a, **k)
        if mine and after:
            ran.append(run())
        return got

    monkeypatch.setattr(obj, name, patched)
    return ran


def _checkpoint_in_another_process(cli_proc: Any) -> Any:
    def run() -> object:
        r = cli_proc("--vault", "v:main", "--json", "checkpoint", "save", "-m", "between")
        assert r.code == 0, r.err
        return r

    return run


def test_a_file_created_in_a_mount_and_retired_before_it_was_opened(
    home: Home, vault: Vault, monkeypatch: pytest.MonkeyPatch, cli_proc: Any
) -> None:
    """The ``EINVAL`` of the pure-FUSE mount test below (twenty-sixth round, raced2): an
    editor's save creates ``.shared.1.tmp``; the mount's ``create`` writes the empty file
    into the overlay, then opens it for writing. A checkpoint in another process between
    the two captured the empty file and retired its entry: the open found a node of the
    new base, with no overlay entry, and an assertion failed (mfusepy answers an uncaught
    exception with ``EINVAL``), so the save failed. The open now copies the new base's
    (empty) blob out, and the save's bytes land at the path."""
    from avfs_git.fuse.ops import WorkspaceFS

    _base(vault, files=5)
    ws = vault.workspace("main")
    fs = WorkspaceFS(ws)  # what a pure-FUSE mount's daemon calls
    saved = b"the editor's save\n" * 100

    checkpoint_now = _checkpoint_in_another_process(cli_proc)
    ran = _run_at_call_of(ws, "write", "create", checkpoint_now, monkeypatch, after=True)
    fh = fs.create("/.shared.1.tmp", 0o644)
    monkeypatch.undo()
    assert ran, "no checkpoint ran between the create's write and its open"
    # the checkpoint recorded the empty file (and retired it)
    assert git("--git-dir", vault.path, "show", "main:.shared.1.tmp") == ""
    assert fs.write("/.shared.1.tmp", saved, 0, fh) == len(saved)
    fs.release("/.shared.1.tmp", fh)
    fs.rename("/.shared.1.tmp", "/shared.txt")
    _no_entry_names_a_missing_file(ws)
    assert ws.read("shared.txt") == saved
    checkpoint.save(vault, "main", message="after")
    assert git("--git-dir", vault.path, "show", "main:shared.txt").encode() == saved
    assert ".shared.1.tmp" not in git("--git-dir", vault.path, "ls-tree", "--name-only", "main")
    assert ws.status() == []


def test_a_file_written_elsewhere_while_a_mount_copies_it_out_of_git(
    home: Home, vault: Vault, monkeypatch: pytest.MonkeyPatch, cli_proc: Any
) -> None:
    """A pure-FUSE mount's first write to a file of the base copies its blob into the
    overlay (``materialize``): it looked the file up, copied the bytes, then gave the
    path an entry of that copy in its transaction. ``avfs write`` of the same file in
    another process between the lookup and the transaction: the copy of the base's
    bytes replaced the file just written (its bytes lost, as if never written). Looked up
    again in the transaction, the file written is the one the mount opens, as an
    ``open`` after another process's write finds the new bytes on any disk."""
    from avfs_git.fuse.ops import WorkspaceFS

    _base(vault, files=5)
    ws = vault.workspace("main")
    fs = WorkspaceFS(ws)

    def written_elsewhere() -> object:
        r = cli_proc("--vault", "v:main", "--json", "write", "shared.txt", "from avfs write\n")
        assert r.code == 0, r.err
        return r

    ran = _run_at_call_of(ws.overlay, "txn", "materialize", written_elsewhere, monkeypatch)
    fh = fs.open("/shared.txt", os.O_WRONLY | os.O_APPEND)
    monkeypatch.undo()
    assert ran, "no write ran between the copy out of git and its transaction"
    fs.write("/shared.txt", b"appended\n", len(b"from avfs write\n"), fh)
    fs.release("/shared.txt", fh)
    _no_entry_names_a_missing_file(ws)
    assert ws.read("shared.txt") == b"from avfs write\nappended\n"
    checkpoint.save(vault, "main", message="after")
    assert git("--git-dir", vault.path, "show", "main:shared.txt") == "from avfs write\nappended\n"


@pytest.mark.parametrize("call", ["utimens", "truncate"])
def test_a_file_changed_by_path_in_a_mount_as_a_checkpoint_retires_it(
    home: Home, vault: Vault, monkeypatch: pytest.MonkeyPatch, cli_proc: Any, call: str
) -> None:
    """``touch`` (``utimens``) and ``truncate`` by path in a pure-FUSE mount: the file's
    overlay copy is made (or found), then changed by its path. A checkpoint in another
    process between the two retired the copy: the change went to a file unlinked, and
    the caller got ``ENOENT`` for a file that is there. Held as a writer holds it, the
    change reaches the file the path shows (the new base's copy)."""
    from avfs_git.fuse.ops import WorkspaceFS

    _base(vault, files=5)
    ws = vault.workspace("main")
    ws.write("build.log", b"0123456789\n")
    fs = WorkspaceFS(ws)
    checkpoint_now = _checkpoint_in_another_process(cli_proc)
    ran = _run_at_call_of(ws, "materialize", "_materialize", checkpoint_now, monkeypatch, after=True)
    when = 1_234_567_890 * 10**9
    if call == "utimens":
        fs.utimens("/build.log", (when, when))
    else:
        fs.truncate("/build.log", 4)
    monkeypatch.undo()
    assert ran, "no checkpoint ran between the copy and the change"
    _no_entry_names_a_missing_file(ws)
    assert git("--git-dir", vault.path, "show", "main:build.log") == "0123456789\n"  # (the checkpoint's)
    if call == "utimens":
        assert fs.getattr("/build.log")["st_mtime"] == when  # (ns: mfusepy's use_ns)
        assert ws.read("build.log") == b"0123456789\n"
    else:
        assert ws.read("build.log") == b"0123"
        checkpoint.save(vault, "main", message="after")
        assert git("--git-dir", vault.path, "show", "main:build.log") == "0123"


def _writers(
    write: Any, stop: threading.Event, versions: set[bytes], errors: list[BaseException]
) -> list[threading.Thread]:
    """Two threads rewriting ``shared.txt`` in a loop (``write(name, data)``), each version
    whole and its own, noted in ``versions`` before it is written."""

    def loop(w: int) -> None:
        n = 0
        try:
            while not stop.is_set():
                data = b"writer %d version %d\n" % (w, n) * (1 + n % 50)
                versions.add(data)
                write(w, data)
                n += 1
        except BaseException as exc:  # (the test fails on it)
            errors.append(exc)

    threads = [threading.Thread(target=loop, args=(w,), daemon=True) for w in (1, 2)]
    for t in threads:
        t.start()
    return threads


def _checkpoints_under_writers(vault: Vault, write: Any, read: Any, saves: int = 20) -> None:
    """``saves`` checkpoints while two threads rewrite ``shared.txt``: each one made (none
    "kept changing"), each holding a whole version of it; once the writers stop, the
    next holds what the fork shows."""
    versions: set[bytes] = {b"v0\n"}
    stop = threading.Event()
    errors: list[BaseException] = []
    threads = _writers(write, stop, versions, errors)
    made = []
    try:
        for i in range(saves):
            made.append(checkpoint.save(vault, "main", message=f"under writes {i}"))
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    assert not errors, errors
    for c in made:
        if c.created:
            got = git("--git-dir", vault.path, "show", f"{c.checkpoint.commit}:shared.txt").encode(
                "utf-8", "surrogateescape"
            )
            assert got in versions, got[:80]
    checkpoint.save(vault, "main", message="after")
    assert git("--git-dir", vault.path, "show", "main:shared.txt").encode() == read()


def test_checkpoints_under_two_writers_of_one_file(home: Home, vault: Vault) -> None:
    """The scenario of race1's finding, through the API: two threads rewrite one file."""
    _base(vault)

    def write(_w: int, data: bytes) -> None:
        vault.workspace("main").write("shared.txt", data)

    _checkpoints_under_writers(vault, write, lambda: vault.workspace("main").read("shared.txt"))


@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_checkpoints_under_two_writers_of_one_file_in_a_mount(
    home: Home, vault: Vault, tmp_path: Path, backend: str
) -> None:
    """The same through a mount of each backend, each version written to a file of its
    own and renamed over ``shared.txt`` (as an editor saves): the old file goes as the
    capture may be about to read it. On pure FUSE 3 runs of 8 (twenty-fourth round), 2
    of 20 (twenty-fifth) ended with "overlay file of shared.txt is missing": a rename
    gave ``shared.txt`` the entry of a temporary file a checkpoint had retired since the
    rename looked it up (made exact by
    :func:`test_a_file_renamed_over_after_a_checkpoint_retired_its_source`)."""
    _require(backend)
    _base(vault)
    mp = tmp_path / "m"
    mp.mkdir()
    mounts.mount(home, vault, "main", str(mp), backend=backend)
    try:

        def write(w: int, data: bytes) -> None:
            tmp = mp / f".shared.{w}.tmp"
            tmp.write_bytes(data)
            os.replace(tmp, mp / "shared.txt")

        _checkpoints_under_writers(vault, write, lambda: (mp / "shared.txt").read_bytes())
    finally:
        mounts.unmount(home, vault, "main")


def test_a_path_removed_while_it_is_copied_out_of_git_stays_removed(vault: Vault, monkeypatch: Any) -> None:
    """``materialize`` (a pure-FUSE mount's first open for writing of a file of the base)
    copies the blob into a new overlay file, then puts the entry that names it. A removal
    of the path between the two (the mount's unlink in another thread, another process's
    `avfs rm`) stays: no entry is put back over it, and the copy goes. It put the file
    back with the base's bytes, its copy named again (twenty-sixth round, nospace1)."""
    _base(vault, files=1)
    ws = vault.workspace("main")
    store = ws._store_bytes
    ran: list[str] = []

    def stored_then_removed(*args: Any, **kwargs: Any) -> tuple[str, int]:
        got = store(*args, **kwargs)
        if not ran:
            ran.append(got[0])
            vault.workspace("main").remove("shared.txt")  # (not in a transaction: as another writer)
        return got

    monkeypatch.setattr(ws, "_store_bytes", stored_then_removed)  # (what materialize calls)
    with pytest.raises(PathNotFoundError):
        ws.materialize("shared.txt")
    assert ran  # the removal came between the copy and the entry
    assert ws.view.lookup("shared.txt") is None
    assert os.listdir(ws.overlay.files_dir) == []
