"""A read-only view (``avfs mount VAULT@REV``; the lower layer of an overlay) served from the
kernel's caches: right contents, readdir entries carrying getattr's attributes, and nothing
asked of the daemon twice.

The daemon writes each call that reaches Python to the file named by ``AVFS_FUSE_TRACE``
(``getattr /a/b``, ``readdir /a``, ``read /a/b``; ``opendir`` for the low-level wrapper
that marks listings cacheable), so the tests count calls, never time them.
"""

from __future__ import annotations

import collections
import errno
import fcntl
import hashlib
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from avfs_git.core.operations import checkpoint
from avfs_git.core.operations.history import resolve
from avfs_git.fuse.ops import WorkspaceFS
from avfs_git.ops import mounts

from . import kernellog
from .conftest import git, skip_outside_ci
from .test_fuse_teardown import require_fuse

DIRS = 12
FILES_PER_DIR = 25  # more than one readdir chunk for some directories: see BIG_DIR
BIG_DIR = 600  # entries with long names: a listing the kernel reads in several chunks
FS_IOC_GETFLAGS = 0x80086601  # linux/fs.h, 64-bit


class Traced:
    """The daemon's trace: the calls made since the last :meth:`take`."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def take(self) -> collections.Counter[str]:
        lines = self.path.read_text(encoding="utf-8", errors="replace").splitlines()
        self.path.write_text("")
        return collections.Counter(line.split(" ", 1)[0] for line in lines)

    def paths(self, op: str) -> list[str]:
        lines = self.path.read_text(encoding="utf-8", errors="replace").splitlines()
        return [line.split(" ", 1)[1] for line in lines if line.startswith(op + " ")]


def _fill(ws: Any) -> dict[str, bytes]:
    """A tree of every kind of entry; returns path -> contents of its regular files."""
    files: dict[str, bytes] = {}
    for d in range(DIRS):
        for f in range(FILES_PER_DIR):
            p = f"top{d % 3}/sub{d}/file{f:03d}.txt"
            files[p] = f"{p}\n".encode() * (f + 1)
    for i in range(BIG_DIR):
        p = f"big/{'entry-with-a-rather-long-name-' * 3}{i:04d}.py"
        files[p] = f"x = {i}\n".encode()
    files["blob/large.bin"] = os.urandom(300_000) + b"end\n"  # several 128 KiB reads
    files["tool.sh"] = b"#!/bin/sh\necho tool\n"
    for p, data in files.items():
        ws.write(p, data, mode=0o755 if p.endswith(".sh") else None)
    ws.symlink("top0/sub0/file000.txt", "link")
    return files


@pytest.fixture
def revision_mount(
    home, vault, tmp_path, monkeypatch
) -> Iterator[tuple[Any, Path, Traced, dict[str, bytes], str]]:
    require_fuse()
    ws = vault.workspace("main")
    files = _fill(ws)
    checkpoint.save(vault, name="rev")
    ws.write("top0/sub0/file000.txt", b"changed after the revision\n")
    ws.write("after.txt", b"not in the revision\n")
    checkpoint.save(vault, name="later")
    trace = tmp_path / "trace"
    trace.write_text("")
    monkeypatch.setattr(home.settings, "fuse_trace", str(trace))  # $AVFS_FUSE_TRACE, as read
    mp = tmp_path / "rev"
    mp.mkdir()
    faults, _ = kernellog.read()
    info = mounts.mount(home, vault, "main", str(mp), revision="rev")
    try:
        assert info.read_only
        yield vault, mp, Traced(trace), files, resolve(vault, "rev", "main")
    finally:
        mounts.unmount(home, vault, "main", revision=info.revision, lazy=True)
        assert not mounts.mounted_at(str(mp))
    after, _ = kernellog.read()
    if faults is not None and after is not None:
        assert kernellog.new_faults(faults, after) == []


def _walk(root: Path) -> dict[str, os.stat_result]:
    """os.walk + lstat of every entry (the mount's .git left out)."""
    out = {}
    for d, dirs, names in os.walk(root):
        if Path(d) == root:
            dirs[:] = [x for x in dirs if x != ".git"]
            names = [x for x in names if x != ".git"]
        for name in dirs + names:
            p = os.path.join(d, name)
            out[os.path.relpath(p, root)] = os.lstat(p)
    return out


def _read_all(root: Path, files: dict[str, bytes]) -> dict[str, bytes]:
    out = {}
    for p in files:
        with open(root / p, "rb") as fh:
            out[p] = fh.read()
    return out


def test_read_only_view_serves_the_revision(revision_mount):
    vault, mp, _traced, files, _rev = revision_mount
    # the first listings, from four processes at once (each request its own handle)
    out = subprocess.run(
        f"for i in 1 2 3 4; do (cd {mp} && ls -RUa | sort | md5sum) & done; wait",
        shell=True,
        capture_output=True,
        text=True,
        check=True,
    )
    sums = out.stdout.split()[::2]
    assert len(sums) == 4 and len(set(sums)) == 1
    for _ in range(2):  # cold, then from the kernel's caches
        assert _read_all(mp, files) == files
        seen = _walk(mp)
        assert {p for p, st in seen.items() if stat.S_ISREG(st.st_mode)} == set(files)
        assert os.readlink(mp / "link") == "top0/sub0/file000.txt"
        assert stat.S_IMODE(os.lstat(mp / "tool.sh").st_mode) == 0o755
        assert stat.S_IMODE(os.lstat(mp / "top1/sub1/file000.txt").st_mode) == 0o644
        assert not (mp / "after.txt").exists()  # a negative entry, cached as well
        assert sorted(os.listdir(mp / "big")) == sorted(
            p.split("/")[1] for p in files if p.startswith("big/")
        )
    # many readers at once (the kernel reads big files in steps, from several threads)
    out = subprocess.run(
        f"for i in 1 2 3 4; do cat {mp}/blob/large.bin | md5sum & done; wait",
        shell=True,
        capture_output=True,
        text=True,
        check=True,
    )

    want = hashlib.md5(files["blob/large.bin"]).hexdigest()
    assert [line.split()[0] for line in out.stdout.splitlines()] == [want] * 4
    # still read-only: the kernel refuses writes
    with pytest.raises(OSError):
        (mp / "top1/sub1/file000.txt").write_bytes(b"x")
    # the fork itself moved on
    assert vault.workspace("main").read("top0/sub0/file000.txt") == b"changed after the revision\n"


def test_readdir_entries_carry_what_getattr_answers(revision_mount, tmp_path):
    vault, mp, traced, _files, rev = revision_mount
    traced.take()
    # a listing alone (getdents; no stat): readdirplus hands the attributes over with it
    listed = {}
    for d, dirs, names in os.walk(mp):
        for name in dirs + names:
            listed[os.path.relpath(os.path.join(d, name), mp)] = None
    del listed[".git"]  # the mount's link to its worktree: not a file of the revision
    calls = traced.take()
    assert calls["readdir"] > 0
    stats = {p: os.lstat(mp / p) for p in listed}
    assert traced.take()["getattr"] == 0  # every lstat answered from what readdir brought
    # ... and those are the attributes the daemon's getattr gives
    ops = WorkspaceFS(vault.revision_view("main", rev, str(tmp_path / "view")), read_only=True)
    # unchanged files show the view's time, which a view made within a second of the commit
    # takes from the clock: this one's is the daemon's
    ops._view_time_ns = os.stat(mp).st_mtime_ns
    for p, st in stats.items():
        want = ops.getattr("/" + p)
        got = {
            "st_ino": st.st_ino,
            "st_mode": st.st_mode,
            "st_size": st.st_size,
            "st_mtime": st.st_mtime_ns,
            "st_ctime": st.st_ctime_ns,
            "st_nlink": st.st_nlink,
        }
        assert got == {k: want[k] for k in got}, p
    # the worktree index holds the same stat data: git reads no file to trust them
    env = dict(os.environ, GIT_CEILING_DIRECTORIES=str(mp.parent))
    status = subprocess.run(["git", "status", "--porcelain"], cwd=mp, env=env, capture_output=True, text=True)
    assert status.returncode == 0, status.stderr
    assert status.stdout == ""
    assert [p for p in traced.paths("read") if p != "/.git"] == []


def test_warm_walks_reach_no_python(revision_mount):
    _vault, mp, traced, files, _rev = revision_mount
    env = dict(os.environ, GIT_CEILING_DIRECTORIES=str(mp.parent))

    def workloads() -> None:
        _walk(mp)
        subprocess.run(["find", str(mp), "-printf", ""], check=True)
        assert _read_all(mp, files) == files
        subprocess.run(["grep", "-r", "-q", "--exclude-dir=.git", "not-in-any-file", str(mp)], check=False)
        st = subprocess.run(["git", "status", "--porcelain"], cwd=mp, env=env, capture_output=True, text=True)
        assert st.returncode == 0 and st.stdout == "", st.stderr
        assert not (mp / "no-such-file").exists()

    workloads()  # cold: fills the kernel's caches
    first = traced.take()
    assert first["readdir"] > 0 and first["read"] > 0
    # warm: nothing is fetched again: no listing, attribute, lookup, open or read reaches
    # Python (only statfs, which find asks once and the kernel never caches; and OPENDIR
    # where the kernel cannot open directories itself: see fuse/lowlevel.py
    # install_kernel_opendir). Cached listings and pages are the kernel's to reclaim: under
    # the full suite's memory pressure one warm pass met 10 listings and a page reclaimed
    # (twice in CI); a pass that did is run again, at most twice. Were nothing kept by the
    # kernel, every pass would reach Python.
    passes = []
    for _ in range(3):
        workloads()
        passes.append({op: n for op, n in traced.take().items() if op not in ("opendir", "statfs")})
        if not passes[-1]:
            break
    assert passes[-1] == {}, passes


def test_read_only_view_starts_no_watcher(vault, tmp_path):
    ws = vault.workspace("main")
    ws.write("a.txt", b"a\n")
    checkpoint.save(vault, name="rev")
    ops = WorkspaceFS(
        vault.revision_view("main", resolve(vault, "rev", "main"), str(tmp_path / "v")), read_only=True
    )
    ops.init("/")
    assert ops._watcher is None
    assert ops.stop_invalidating(1.0)


def test_directory_calls_without_a_directory_handle(revision_mount):
    """The kernel opens a read-only view's directories itself: the calls libfuse answers
    from the handle its opendir would have made (an ioctl on a directory: lsattr, or
    overlayfs copying a lower directory up; fsync of a directory) are answered, and the
    daemon lives on."""
    _vault, mp, _traced, files, _rev = revision_mount
    fd = os.open(mp / "top0", os.O_RDONLY | os.O_DIRECTORY)
    try:
        with pytest.raises(OSError) as exc:
            fcntl.ioctl(fd, FS_IOC_GETFLAGS, bytearray(4))
        assert exc.value.errno in (errno.ENOTTY, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL)
        try:
            os.fsync(fd)
        except OSError as e:
            assert e.errno in (errno.EROFS, errno.EINVAL, errno.ENOSYS)
        assert os.listdir(fd)  # the listing, through this very descriptor
    finally:
        os.close(fd)
    with open(mp / "tool.sh", "rb") as fh:  # a file the kernel opened itself: fsync is fine
        os.fsync(fh.fileno())
        assert fh.read() == files["tool.sh"]
    assert _read_all(mp, files) == files  # the daemon is still there


def test_overlay_over_the_read_only_view(revision_mount, tmp_path):
    """Kernel overlayfs with the read-only view as its lower layer (the overlay backend):
    the tree reads the same, a write copies the file up, the lower stays as it was."""
    if os.geteuid() != 0:
        skip_outside_ci("mounting overlayfs needs root here", "CI runs as root: overlayfs must be mountable")
    _vault, mp, _traced, files, _rev = revision_mount
    up, work, ovl = tmp_path / "up", tmp_path / "work", tmp_path / "ovl"
    for d in (up, work, ovl):
        d.mkdir()
    subprocess.run(
        ["mount", "-t", "overlay", "overlay", "-o", f"lowerdir={mp},upperdir={up},workdir={work}", str(ovl)],
        check=True,
    )
    try:
        assert _read_all(ovl, files) == files
        with open(ovl / "top1/sub1/file003.txt", "ab") as fh:  # copy-up of the file and its dirs
            fh.write(b"appended\n")
        assert (ovl / "top1/sub1/file003.txt").read_bytes() == files["top1/sub1/file003.txt"] + b"appended\n"
        assert (up / "top1/sub1/file003.txt").exists()
        (ovl / "top2/sub2/file000.txt").unlink()
        (ovl / "newdir").mkdir()
        assert not (ovl / "top2/sub2/file000.txt").exists()
    finally:
        subprocess.run(["umount", str(ovl)], check=False)
    assert _read_all(mp, files) == files  # the lower is untouched, its daemon alive


def test_lower_children_worked_out_across_a_base_move_are_not_kept(vault):
    """An overlay's lower layer keeps each directory's children for lookups, of one base.
    A lookup that read the old base, then worked the children out while a checkpoint moved
    the base and another lookup had already started keeping the new base's, must not keep
    the old children under the new base: the lower layer would then deny a name the base
    holds for good, and overlayfs, asked before a removal whether the lower layer has the
    name, would remove a checkpointed file without a whiteout (the base's copy comes back).
    The race is made here by hand, in the order the FUSE threads can take."""
    from avfs_git.core.workspace.workspace import Workspace

    vault.workspace("main").write("a.txt", b"a\n")
    checkpoint.save(vault)
    lower = Workspace(vault, "main", vault.ws_dir("main"))
    lower.overlay.with_upper = False
    fs = WorkspaceFS(lower, read_only=True)
    real = lower.node_children
    moved = []

    def children_while_the_base_moves(node: Any) -> Any:
        kids = real(node)  # the old base's
        if not moved:
            moved.append(True)
            vault.workspace("main").write("x.txt", b"x\n")
            checkpoint.save(vault, message="with x")  # the base moves meanwhile
            assert fs._ro_node("x.txt") is not None  # another lookup: the new base's children
        return kids

    lower.node_children = children_while_the_base_moves  # type: ignore[method-assign]
    assert fs._ro_node("a.txt") is not None
    assert moved
    assert fs._ro_node("x.txt") is not None, "the old base's children were kept"
    assert fs._ro_node("a.txt") is not None


def test_a_listing_begun_before_a_base_move_keeps_no_old_children(vault):
    """The same for a directory listing (the warm-up walk's readdir) that looked its
    directory up before a checkpoint moved the base and worked the children out after: the
    old base's children were kept under the new base, and a removal in the mount right
    after the checkpoint made no whiteout (1 run in ~25 under load)."""
    from avfs_git.core.workspace.workspace import Workspace

    vault.workspace("main").write("a.txt", b"a\n")
    checkpoint.save(vault)
    lower = Workspace(vault, "main", vault.ws_dir("main"))
    lower.overlay.with_upper = False
    fs = WorkspaceFS(lower, read_only=True)
    real = lower.node
    moved = []

    def node_then_the_base_moves(p: str) -> Any:
        got = real(p)  # the old base's
        if p == "" and not moved:
            moved.append(True)
            vault.workspace("main").write("x.txt", b"x\n")
            checkpoint.save(vault, message="with x")
        return got

    lower.node = node_then_the_base_moves  # type: ignore[method-assign]
    names = [n for n, _p, _node in fs.listing("/", 0)]
    assert moved
    assert "x.txt" in names
    assert fs._ro_node("x.txt") is not None, "the old base's children were kept"


@pytest.mark.parametrize("late", [False, True], ids=["watcher-first", "watcher-late"])
def test_a_checkpoint_that_commits_nothing_keeps_its_files_times_without_a_new_view(vault, late):
    """A file edited back to the base's bytes (its copy's time the edit's) and a
    checkpoint that commits nothing: the copy is retired and its time kept
    (``Overlay.kept_times``), but a pure-FUSE daemon read the kept times only when its view
    moved, so once the kernel's attributes lapsed (60 s) the file showed the view time,
    older than what make built from it. The daemon's watcher reads them again when a
    checkpoint keeps some, with no new view (the base and the view time stay). The
    daemon's operations in process, its watcher running as in a mount. ``late``: the
    watcher's thread first looks after the checkpoint (under CI's load it did: it took the
    new count for its start and never read again the times a getattr had loaded before)."""
    import threading
    import time

    ws = vault.workspace("main")
    ws.write("a.txt", b"one\n")
    ws.write("b.txt", b"b\n")
    checkpoint.save(vault)
    fs = WorkspaceFS(vault.workspace("main"))  # a writable view: a pure-FUSE mount's daemon
    views: list[tuple[str | None, str | None]] = []
    fs.on_view = lambda view, moved, seq: views.append(view)
    view_time = fs.getattr("/b.txt")["st_mtime"]  # the daemon has read its view's kept times
    fs._watcher = threading.Thread(target=fs._watch, daemon=True)
    if not late:
        fs._watcher.start()
    try:
        ws.write("a.txt", b"two\n")
        ws.write("a.txt", b"one\n")  # back to the base's bytes
        edited = view_time + 7_000_000_000  # the edit's time, after the view's
        entry = ws.overlay.get("a.txt")
        assert entry is not None and entry.fileid is not None
        os.utime(ws.overlay.file_path(entry.fileid), ns=(edited, edited))
        assert fs.getattr("/a.txt")["st_mtime"] == edited
        base = ws.base
        assert not checkpoint.save(vault).created  # nothing to commit: the copy is retired
        assert ws.overlay.get("a.txt") is None and vault.workspace("main").base == base
        if late:
            fs._watcher.start()
        deadline = time.monotonic() + 10  # the watcher polls every 20 ms
        while fs.getattr("/a.txt")["st_mtime"] != edited and time.monotonic() < deadline:
            time.sleep(0.02)
        assert fs.getattr("/a.txt")["st_mtime"] == edited, "the file shows the view time"
        assert fs.getattr("/b.txt")["st_mtime"] == view_time
        # (a file's kept times are asked by path: the getattr above may answer before a late
        # watcher's first look, which announces the view)
        while not views and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(set(views)) == 1, views  # no new view
    finally:
        fs._stop.set()
        fs._watcher.join(5)


def test_kept_times_hold_no_path_a_checkpoint_removed(vault):
    """The times checkpoints keep (``Overlay.kept_times``) lasted until the view moved (a
    restore): every path ever checkpointed in a long session stayed, removed files and
    directories too, and a daemon read them all at each view. A checkpoint drops those of
    the paths it removes (a file, a directory and what was under it); a file it made a
    link keeps the link's."""
    ws = vault.workspace("main")
    assert ws.view_time > 0  # (a view time to keep them with, as any mount or status reads it)
    for i in range(6):
        ws.write(f"d/f{i}.txt", f"{i}\n".encode())
    ws.write("top.txt", b"t\n")
    ws.write("link.txt", b"l\n")
    checkpoint.save(vault)
    assert set(ws.overlay.kept_times()) == {*(f"d/f{i}.txt" for i in range(6)), "top.txt", "link.txt"}
    ws.remove("top.txt")
    ws.remove("d", recursive=True)
    ws.remove("link.txt")
    ws.symlink("top.txt", "link.txt")
    checkpoint.save(vault)
    link = git("--git-dir", vault.path, "rev-parse", "main:link.txt").strip()
    assert {p: kept[0] for p, kept in ws.overlay.kept_times().items()} == {"link.txt": link}  # the link's own
    ws.write("e/g.txt", b"g\n")
    checkpoint.save(vault)
    assert set(ws.overlay.kept_times()) == {"link.txt", "e/g.txt"}


def test_a_restore_before_the_watcher_s_first_look_still_moves_the_view(vault):
    """The pattern of c3d3453, for the view itself: the watcher's thread took what it
    watches from (the journal's end, the base and the view time) at its first look, and a
    getattr can run before that (FUSE's init starts the thread and returns; the thread runs
    when the scheduler lets it). A restore between the two became the watcher's start: it
    never saw the view move, so unchanged files kept showing the old view's time (the
    daemon's own cache, not only the kernel's) and the kernel kept the old view's names.
    The start is read at init now, before any request. The thread held at its start, as
    CI's load held it."""
    import threading
    import time

    ws = vault.workspace("main")
    ws.write("a.txt", b"one\n")
    ws.write("b.txt", b"b\n")
    first = checkpoint.save(vault).checkpoint.commit
    ws.write("a.txt", b"two\n")
    checkpoint.save(vault)
    fs = WorkspaceFS(vault.workspace("main"))  # a writable view: a pure-FUSE mount's daemon
    gate = threading.Event()
    real = fs._watch

    def held() -> None:
        gate.wait(30)
        real()

    fs._watch = held  # type: ignore[method-assign]
    fs._start_watcher()  # what FUSE's init does past its kernel set-up
    try:
        old = fs.getattr("/b.txt")["st_mtime"]  # the view's time, as the daemon holds it
        time.sleep(1.1)  # (a view time of another second)
        checkpoint.restore(vault, "main", first)
        new = int(vault.workspace("main").view_time * 1e9)
        assert new != old
        gate.set()
        deadline = time.monotonic() + 10  # the watcher polls every 20 ms
        while fs.getattr("/b.txt")["st_mtime"] != new and time.monotonic() < deadline:
            time.sleep(0.02)
        assert fs.getattr("/b.txt")["st_mtime"] == new, "b.txt shows the old view's time"
    finally:
        gate.set()
        fs._stop.set()
        fs._watcher.join(5)


def test_attributes_asked_of_a_read_only_view_are_answered_below_the_operations(revision_mount, tmp_path):
    """overlayfs asks its lower layer for its own marks of every entry it looks up
    (``trusted.overlay.metacopy`` of a file, ``.origin`` of a directory, ``.whiteout`` of an
    empty file) and keeps none of the answers: a read-only view answers every GETXATTR
    "none" (ENODATA, as a disk's file without attributes) in libfuse's low-level layer,
    without a path worked out or an operation called (fuse/lowlevel.py answer_getxattr).
    The trace names such a call without a path; one that reached the operations has one."""
    if os.geteuid() != 0:
        skip_outside_ci("mounting overlayfs needs root here", "CI runs as root: overlayfs must be mountable")
    _vault, mp, traced, files, _rev = revision_mount
    for p in ("tool.sh", "top1/sub1/file003.txt"):  # a reader of the view itself
        with pytest.raises(OSError) as exc:
            os.getxattr(mp / p, "user.missing")
        assert exc.value.errno == errno.ENODATA
    up, work, ovl = tmp_path / "up", tmp_path / "work", tmp_path / "ovl"
    for d in (up, work, ovl):
        d.mkdir()
    subprocess.run(
        ["mount", "-t", "overlay", "overlay", "-o", f"lowerdir={mp},upperdir={up},workdir={work}", str(ovl)],
        check=True,
    )
    try:
        traced.take()
        walked = _walk(ovl)  # overlayfs looks every entry up in its lower layer once
        asked = traced.take()
        with pytest.raises(OSError) as exc:  # a reader of the overlay: the lower's answer
            os.getxattr(ovl / "top2/sub2/file001.txt", "user.missing")
        assert exc.value.errno == errno.ENODATA
    finally:
        subprocess.run(["umount", str(ovl)], check=False)
    files_walked = sum(1 for st in walked.values() if stat.S_ISREG(st.st_mode))
    assert asked["getxattr"] >= files_walked >= len(files)  # each file's metacopy mark, at least
    assert traced.paths("getxattr") == []  # none reached the operations
