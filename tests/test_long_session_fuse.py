"""A long session in a pure-FUSE mount costs what changed since the last checkpoint, not what the
session checkpointed before it (issue 31): counts, after many checkpoints, of what a
checkpoint makes the pure-FUSE daemon and the mount's index read again.

The daemon's operations run in process (:class:`WorkspaceFS`, its watcher thread as in a
mount), so the tests count what it does; ``bench/longsess.py`` times the same in real
mounts against git.
"""

from __future__ import annotations

import threading
import time

from avfs_git.core.operations import checkpoint
from avfs_git.core.workspace.overlaykept import FEW_KEPT
from avfs_git.fuse.ops import WorkspaceFS

BATCHES = 30
PER_BATCH = 10


def _session(vault) -> list[str]:
    """BATCHES checkpoints of PER_BATCH new files each, in ten directories; their paths."""
    ws = vault.workspace("main")
    assert ws.view_time > 0  # (a view time for checkpoints to keep files' times with, as a mount reads it)
    paths: list[str] = []
    for k in range(BATCHES):
        for f in range(PER_BATCH):
            p = f"d{f}/s{k:03d}.txt"
            ws.write(p, f"batch {k} file {f}\n".encode())
            paths.append(p)
        checkpoint.save(vault, message=f"batch {k}")
    return paths


def _watching(fs: WorkspaceFS) -> tuple[list[str], list[tuple[object, bool]]]:
    """Start ``fs``'s watcher; (the paths it tells the kernel to forget, the views it
    announces with whether each moved)."""
    told: list[str] = []
    views: list[tuple[object, bool]] = []
    fs.invalidate = lambda path, *, name=False: told.append(path)  # type: ignore[method-assign]
    fs.on_view = lambda view, moved, seq: views.append((view, moved))
    fs._start_watcher()
    return told, views


def _wait(cond, what: str) -> None:
    deadline = time.monotonic() + 30  # the watcher polls every 20 ms
    while not cond():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def test_a_checkpoint_after_many_makes_the_daemon_forget_only_what_it_changed(vault):
    """Each checkpoint moves the base: the pure-FUSE daemon's watcher told the kernel to
    forget every path it had ever served (``fuse_invalidate_path`` for each: 4,458 at the
    100th checkpoint of ``bench/longsess.py``, growing with the session), and the next
    `git status` asked for all their attributes again. A base moved under the same view
    changed only where the two trees differ: those paths and the directories above them."""
    session = _session(vault)
    ws = vault.workspace("main")
    fs = WorkspaceFS(vault.workspace("main"))
    for p in session:  # the kernel has seen every file of the session
        assert fs.getattr("/" + p)["st_size"] > 0
    told, views = _watching(fs)
    try:
        _wait(lambda: views, "the watcher's first look")
        ws.write("d3/s005.txt", b"edited\n")
        ws.write("new/dir/f.txt", b"new\n")
        checkpoint.save(vault, message="two changes")
        _wait(lambda: any(moved for _, moved in views), "the base move seen")
        time.sleep(0.2)  # (a later look would add nothing: nothing else changed)
        assert set(told) <= {"d3/s005.txt", "d3", "new/dir/f.txt", "new/dir", "new", ""}, sorted(told)[:20]
        assert len(told) <= 10, len(told)  # was every path served: 300 files and their directories
        assert fs.getattr("/d3/s005.txt")["st_size"] == len(b"edited\n")
        assert fs.getattr("/new/dir/f.txt")["st_size"] == len(b"new\n")
    finally:
        fs._stop.set()
        fs._watcher.join(5)


def test_a_restore_still_makes_the_daemon_forget_everything_it_served(vault):
    """A view that moved (a restore: a new view time) may differ anywhere: every path
    served is forgotten, as before."""
    session = _session(vault)[:40]
    first = vault.workspace("main").base
    fs = WorkspaceFS(vault.workspace("main"))
    for p in session:
        fs.getattr("/" + p)
    told, views = _watching(fs)
    try:
        _wait(lambda: views, "the watcher's first look")
        time.sleep(1.1)  # (a view time of another second)
        checkpoint.restore(vault, "main", vault.store.commit_fields(first).parents[0])
        _wait(lambda: any(moved for _, moved in views), "the view move seen")
        _wait(lambda: set(session) <= set(told), "every served path forgotten")
    finally:
        fs._stop.set()
        fs._watcher.join(5)


def test_the_daemon_reads_only_the_kept_times_a_checkpoint_wrote(vault):
    """Kept times (the times of files a checkpoint retired) are every file the session
    checkpointed: the daemon read the whole table at each checkpoint and the mount's index
    patch read it again at each status and checkpoint. Now a file's kept times are asked
    by path, and the watcher reads only the rows a checkpoint wrote since it last looked."""
    session = _session(vault)
    ws = vault.workspace("main")
    assert len(ws.overlay.kept_times()) == len(session)  # the table holds the session
    fs = WorkspaceFS(vault.workspace("main"))
    asked = session[:5]
    for p in asked:
        fs.getattr("/" + p)
    assert fs._kept is not None and set(fs._kept) == set(asked)  # not the whole table
    token = ws.overlay.get_meta("kept_times")
    ws.write("d1/s001.txt", b"one\n")
    ws.write("d1/s001.txt", b"batch 1 file 1\n")  # back to the base's bytes: a checkpoint commits nothing
    assert not checkpoint.save(vault).created
    assert fs._kept_changed(ws.overlay.get_meta("view_time"), token) == {"d1/s001.txt"}


def test_kept_times_are_read_by_path_until_many_are_asked(vault):
    """``Overlay.kept_reader``: one query per path for a few (an index patch's), the whole
    table once past FEW_KEPT (a walk of the tree)."""
    session = _session(vault)
    ov = vault.workspace("main").overlay
    statements: list[str] = []
    ov.db.set_trace_callback(statements.append)
    try:
        read = ov.kept_reader()
        statements.clear()
        for p in session[:3]:
            assert read(p) is not None
        assert len(statements) == 3 and all("WHERE path = " in s for s in statements), statements
        for p in session[: FEW_KEPT + 10]:
            read(p)
        whole = [s for s in statements if "WHERE path = " not in s and "kept_times" in s]
        assert len(whole) == 1, whole  # once, then answered from memory
        assert read("no/such/path") is None
    finally:
        ov.db.set_trace_callback(None)


def test_a_new_view_drops_the_old_view_s_kept_times(vault):
    """The kept times are a view's: a restore (a new view time) makes the next checkpoint
    drop every row of the old one, through the view's index."""
    session = _session(vault)[:20]
    ws = vault.workspace("main")
    first = ws.base
    time.sleep(1.1)
    checkpoint.restore(vault, "main", first)
    ws = vault.workspace("main")
    ws.write("z.txt", b"z\n")
    checkpoint.save(vault)
    assert set(ws.overlay.kept_times()) == {"z.txt"}
    assert not set(session) & set(ws.overlay.db.execute("SELECT path FROM kept_times").fetchall())


_ = threading  # (the watcher is a thread of WorkspaceFS's own)
