"""avfs's own side files are never a change in the stream (flaky4, the thirty-eighth round).

A write of avfs's through a live overlay mount that must not take a file from under a
writer of the person's (a restore, an undo, a merge, an adoption of another hand's commit:
core/workspace/liveswap.py) goes by a side file beside the path, ``.avfs-adopt-`` and 12
hex digits: the new content exchanged in, or the old file linked aside, unlinked, looked
at. The mount daemon's inotify journal saw each side file made and removed, and `avfs
watch`, MCP's and the API's ``changes_since`` listed it as a file of the fork, created and
deleted, every time; an exchange came as a rename from the side file. Found by
`test_watch_labels`' batch test, which read the stream once right after its restore and
then again in batches: where its first read came before the daemon had journaled the
restore (the daemon reads the kernel's queue 20 ms after it wakes), only the later reads
held the restore's changes, side files and all.

Here the daemon is asked to journal what the kernel has queued (as ``proxy exec`` asks it
at a span's edges) before each read, so what is read is everything the restore and the
adoption did; on main the stream named the side files."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from typing import Any

import pytest

from avfs_git.core.operations import checkpoint
from avfs_git.core.types import is_swap_side
from avfs_git.core.vaults.changes import changes_since
from avfs_git.core.workspace import upperask
from avfs_git.core.workspace.changelog import FILE

from .test_fuse import _mounted


def journaled(vault: Any, fork: str) -> None:
    """Have the fork's overlay mount daemon journal every event the kernel has queued (its
    change log then holds every change made through the mount until now): a read of the
    change stream after this sees them. Nothing to ask of a pure-FUSE mount (its daemon
    journals each write before it answers it)."""
    ws = vault.workspace(fork)
    if not ws.overlay.upper_active():
        return
    git_dir = ws.mount_git_dir()
    assert git_dir is not None
    assert upperask.journal(ws.overlay.upper_dir, git_dir, None) is not None  # (the daemon answered)


@pytest.fixture
def overlay_mount(home: Any, vault: Any, tmp_path: Any) -> Any:
    with _mounted(home, vault, tmp_path, "overlay") as m:
        yield m


def _files(vault: Any, cursor: str) -> list[tuple[str, str, str | None]]:
    journaled(vault, "main")
    return [
        (e.kind, str(e.path), e.old_path)
        for e in changes_since(vault, "main", cursor).events
        if e.path is not None
    ]


def _git(vault: Any, index: str, *args: str, stdin: str | None = None) -> str:
    env = {**os.environ, "GIT_INDEX_FILE": index}
    return subprocess.run(
        ["git", "--git-dir", vault.path, *args],
        env=env,
        input=stdin,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def test_a_restore_and_an_adoption_through_an_overlay_mount_list_no_side_file(
    overlay_mount: tuple[Any, str], tmp_path: Any
) -> None:
    """A restore through the mount (a.txt rewritten, b.txt made again, c.txt removed) and
    another hand's commit adopted through it (a.txt rewritten, b.txt removed, new.txt
    shown by the base's move), each file of the upper layer linked aside to a side file,
    unlinked, then written (:func:`.liveswap.unlinked_unheld`): the stream names the paths
    a person would, and no ``.avfs-adopt-*`` file. On main it named one side file for
    each path the restore and the adoption rewrote."""
    vault, mp = overlay_mount
    ws = vault.workspace("main")
    ws.write("a.txt", b"a1\n")
    ws.write("b.txt", b"b\n")
    first = checkpoint.save(vault, "main", name="one").checkpoint.commit
    ws.write("a.txt", b"a2\n")
    ws.write("c.txt", b"c\n")
    ws.remove("b.txt")
    checkpoint.save(vault, "main", name="two")
    c0 = changes_since(vault, "main", None).cursor
    checkpoint.restore(vault, "main", first)
    with open(os.path.join(mp, "a.txt"), "rb") as fh:
        assert fh.read() == b"a1\n"
    restored = _files(vault, c0)
    assert not [e for e in restored if is_swap_side(e[1].rsplit("/", 1)[-1]) or e[2]], restored
    assert {p for _, p, _ in restored} == {"a.txt", "b.txt", "c.txt"}, restored
    assert ("deleted", "c.txt", None) in restored, restored

    # another hand's commit onto the fork, adopted through the mount by the next command
    c1 = changes_since(vault, "main", None).cursor
    index = str(tmp_path / "other-index")
    tip = _git(vault, index, "rev-parse", "refs/heads/main")
    _git(vault, index, "read-tree", tip)
    for path, text in (("a.txt", "a3\n"), ("new.txt", "new\n")):
        blob = _git(vault, index, "hash-object", "-w", "--stdin", stdin=text)
        _git(vault, index, "update-index", "--add", "--cacheinfo", f"100644,{blob},{path}")
    _git(vault, index, "update-index", "--index-info", stdin=f"0 {'0' * 40}\tb.txt\n")
    new = _git(vault, index, "commit-tree", _git(vault, index, "write-tree"), "-p", tip, "-m", "another hand")
    _git(vault, index, "update-ref", "refs/heads/main", new, tip)
    vault.workspace("main").status()  # (opening the workspace adopts the commit)
    with open(os.path.join(mp, "a.txt"), "rb") as fh:
        assert fh.read() == b"a3\n"
    assert os.path.exists(os.path.join(mp, "new.txt")) and not os.path.lexists(os.path.join(mp, "b.txt"))
    adopted = _files(vault, c1)
    assert not [n for n in os.listdir(mp) if is_swap_side(n)]
    assert not [e for e in adopted if is_swap_side(e[1].rsplit("/", 1)[-1]) or e[2]], adopted
    assert {p for _, p, _ in adopted} == {"a.txt", "b.txt", "new.txt"}, adopted
    # (a.txt's old file unlinked, then a new one written: the kernel reports overlayfs's
    # whiteout then the new file, one event or two as the daemon's reads fall)
    assert ("deleted", "b.txt", None) in adopted and [k for k, p, _ in adopted if p == "a.txt"][
        -1
    ] != "deleted"


def _swap_events(tmp_path: Any, store: Any, steps: Any) -> list[tuple[str, str, str | None]]:
    """What the overlay mount's classifier (its daemon's :class:`.UpperWatch`, on a
    directory of the test's: inotify works on any) makes of ``steps(live)``, run on a
    :class:`.LiveDir` of that directory: the kernel's whole queue read at once after
    them (no watcher thread: a read never falls between one call's events)."""
    from avfs_git.core.workspace.livedir import LiveDir
    from avfs_git.core.workspace.upperwatch import UpperWatch

    d = tmp_path / "upper"
    d.mkdir()
    for name, text in (("a.txt", "old a\n"), ("r.txt", "r\n"), ("u.txt", "u\n")):
        (d / name).write_text(text)
    got: list[tuple[float, str, str, str | None]] = []
    w = UpperWatch(str(d), lambda _p: None, lambda: [], lambda: "b:0")
    w.on_events = got.extend
    w._rewatch()  # (the watch of the directory, as start() makes it, without its thread)
    try:
        # (the directory is the mount and its upper layer both: the side files' key beside it)
        steps(LiveDir(str(d), store, upper=str(d)), str(d))
        w.changed_since(None)  # (reads the kernel's queue, hands the batch over)
    finally:
        w.close()
    return [(k, p, o) for _, k, p, o in got]


def test_a_swap_s_side_file_is_no_event_and_the_swapped_path_says_what_it_became(
    vault: Any, tmp_path: Any
) -> None:
    """Each way avfs swaps through a mount (:mod:`.liveswap`), on a real directory watched
    by the mount daemon's classifier: a file exchanged with a side file holding the new
    content is ``modified`` (the kernel reports two renames: on main, ``renamed`` from the
    side file, and the side file created and deleted); a file moved in from a side file
    where nothing was is ``created``; one moved out to a side file, then unlinked, is
    ``deleted``; one linked aside, unlinked, then the side name unlinked is ``deleted``.
    No side file is named."""
    from avfs_git.core.types import MODE_BLOB
    from avfs_git.core.workspace.liveswap import swap, unlinked_unheld

    def steps(live: Any, d: str) -> None:
        assert (
            swap(live, "a.txt", (MODE_BLOB, b"new a\n"), lambda f: f == (MODE_BLOB, b"old a\n"), False)
            is None
        )
        assert swap(live, "n.txt", (MODE_BLOB, b"n\n"), lambda f: f is None, True) is None
        assert swap(live, "r.txt", None, lambda f: f == (MODE_BLOB, b"r\n"), False) is None
        assert unlinked_unheld(os.path.join(d, "u.txt"), aside=True, key=live.side_key()) is True

    events = _swap_events(tmp_path, vault.store, steps)
    assert sorted(events) == [
        ("created", "n.txt", None),
        ("deleted", "r.txt", None),
        ("deleted", "u.txt", None),
        ("modified", "a.txt", None),
    ], events
    assert (tmp_path / "upper" / "a.txt").read_text() == "new a\n"
    assert sorted(os.listdir(tmp_path / "upper")) == ["a.txt", "n.txt"]


def test_a_read_between_a_restore_and_the_daemon_s_journal_misses_nothing(
    overlay_mount: tuple[Any, str],
) -> None:
    """ci53's order, made on purpose: the change log's write lock held (as a reader's or a
    full disk's would hold up the daemon's append) across a restore through the mount and
    a first read. That read holds none of the restore's file changes (the daemon has not
    journaled them: `test_watch_labels`' batch test read its whole stream there); the next
    read from its cursor holds them all, once, and no side file. On main the later read
    named the restore's side files (the batch test saw them only in its later reads)."""
    vault, _mp = overlay_mount
    ws = vault.workspace("main")
    ws.write("a.txt", b"a1\n")
    first = checkpoint.save(vault, "main", name="one").checkpoint.commit
    ws.write("a.txt", b"a2\n")
    ws.write("c.txt", b"c\n")
    checkpoint.save(vault, "main", name="two")
    journaled(vault, "main")
    c0 = changes_since(vault, "main", None).cursor
    held = sqlite3.connect(os.path.join(ws.state_dir, FILE), timeout=30.0, isolation_level=None)
    try:
        held.execute("BEGIN IMMEDIATE")  # (the daemon's append waits: up to 30 s)
        checkpoint.restore(vault, "main", first)
        early = changes_since(vault, "main", c0)
    finally:
        held.rollback()
        held.close()
    assert [e.path for e in early.events if e.path is not None] == [], early.events
    assert [e.kind for e in early.events if e.path is None] == ["restore", "ref_moved"], early.events
    late = _files(vault, early.cursor)
    assert {p for _, p, _ in late} == {"a.txt", "c.txt"}, late
    assert not [e for e in late if is_swap_side(e[1].rsplit("/", 1)[-1]) or e[2]], late
    assert _files(vault, changes_since(vault, "main", early.cursor).cursor) == []


@pytest.mark.parametrize(
    ("name", "side"),
    [
        (".avfs-adopt-0123456789ab", True),
        (".avfs-adopt-0123456789a", False),  # (11 digits)
        (".avfs-adopt-0123456789abc", False),
        (".avfs-adopt-0123456789AB", False),  # (never made upper case)
        (".avfs-adopt-notes.txt", False),
        ("x.avfs-adopt-0123456789ab", False),
    ],
)
def test_only_the_names_avfs_makes_are_side_files(name: str, side: bool) -> None:
    """A person's file of a name near a side file's is theirs: only ``.avfs-adopt-`` and
    exactly 12 lowercase hex digits (``liveswap.side_name``) is passed over."""
    from avfs_git.core.workspace.liveswap import side_name

    assert is_swap_side(name) is side
    assert is_swap_side(side_name())
