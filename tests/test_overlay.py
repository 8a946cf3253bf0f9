"""The overlay backend's one format: the overlay's entries with the upper layer over them.

A workspace made before the upper layer existed (entries only) mounts on overlayfs with no
migration; what the kernel writes into the upper layer is read by every reader while it
is mounted and after; with nothing mounted, a change from the CLI folds the upper layer into
the entries, and the pure-FUSE backend then serves the same tree, byte for byte.
"""

from __future__ import annotations

import errno
import os
import re
import signal
import stat
import subprocess
import time
from typing import Any

import pytest

from avfs_git.core.operations import checkpoint
from avfs_git.ops import mounts

from . import kernellog
from .conftest import IN_CI, git
from .test_fuse import require_fuse


def require_overlay() -> None:
    require_fuse()
    why = mounts.overlay_available()
    if why is not None:
        if IN_CI:
            pytest.fail(f"overlayfs must be available in CI: {why}")
        pytest.skip(f"requires overlayfs: {why}")


def _rb(path: str) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()


def _rt(path: str) -> str:
    with open(path) as fh:
        return fh.read()


def _tree(root: str) -> dict[str, Any]:
    """path -> (kind, bytes or target, exec bit) of a directory, .git left out."""
    out: dict[str, Any] = {}
    for d, dirs, files in os.walk(root):
        dirs[:] = [x for x in dirs if x != ".git"]
        for name in files + [x for x in dirs if os.path.islink(os.path.join(d, x))]:
            p = os.path.join(d, name)
            rel = os.path.relpath(p, root)
            if rel == ".git":
                continue
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(p))
            elif stat.S_ISREG(st.st_mode):
                with open(p, "rb") as fh:
                    out[rel] = ("file", fh.read(), bool(st.st_mode & 0o100))
    return out


def test_entries_made_before_mount_upper_layer_after_and_fold(home, vault, tmp_path, cli):
    require_overlay()
    ws = vault.workspace("main")
    ws.write("keep.txt", b"base\n")
    ws.write("dir/a.txt", b"a\n")
    ws.write("dir/b.txt", b"b\n")
    ws.write("old/x.txt", b"x\n")
    checkpoint.save(vault)
    # uncheckpointed entries, as a workspace of the current format holds them
    ws.write("dir/a.txt", b"a, changed before the mount\n")
    ws.write("pending.txt", b"pending\n")
    ws.remove("old/x.txt")
    mp = str(tmp_path / "mnt")
    os.mkdir(mp)
    info = mounts.mount(home, vault, "main", mp, backend="overlay")
    assert info.backend == "overlay"
    try:
        assert _rb(os.path.join(mp, "dir/a.txt")) == b"a, changed before the mount\n"
        assert not os.path.exists(os.path.join(mp, "old/x.txt"))
        # the kernel writes the upper layer
        with open(os.path.join(mp, "dir/a.txt"), "ab") as fh:
            fh.write(b"and in the mount\n")
        os.unlink(os.path.join(mp, "dir/b.txt"))
        os.rename(os.path.join(mp, "dir"), os.path.join(mp, "moved"))  # a redirect
        os.symlink("keep.txt", os.path.join(mp, "link"))
        with open(os.path.join(mp, "tool.sh"), "w") as fh:
            fh.write("#!/bin/sh\n")
        os.chmod(os.path.join(mp, "tool.sh"), 0o700)
        os.mkfifo(os.path.join(mp, "fifo"))
        # every reader sees the upper layer over the entries
        got = {(c.path, c.status.value) for c in vault.workspace("main").status()}
        assert got == {
            ("moved/a.txt", "added"),
            ("dir/a.txt", "deleted"),
            ("dir/b.txt", "deleted"),
            ("old/x.txt", "deleted"),
            ("pending.txt", "added"),
            ("link", "added"),
            ("tool.sh", "added"),
        }
        assert (
            cli("--vault", "v", "cat", "moved/a.txt").out == "a, changed before the mount\nand in the mount\n"
        )
        live = _tree(mp)
        res = checkpoint.save(vault, message="through overlayfs")
        assert [(n.path, n.kind) for n in res.not_recorded] == [("fifo", "fifo")]
        assert git("--git-dir", vault.path, "show", "main:moved/a.txt") == (
            "a, changed before the mount\nand in the mount\n"
        )
        assert git("--git-dir", vault.path, "ls-tree", "main", "tool.sh").startswith("100755 ")
        assert vault.workspace("main").status() == []
        assert (
            subprocess.run(["git", "status", "--porcelain"], cwd=mp, capture_output=True, text=True).stdout
            == ""
        )
    finally:
        mounts.unmount(home, vault, "main")
    # nothing mounted: the upper layer is still read as it is...
    assert vault.workspace("main").status() == []
    upper = vault.workspace("main").overlay.upper_dir
    assert os.listdir(upper)
    # ...and a change from the CLI folds it into the entries first (the fifo stays)
    assert cli("--vault", "v", "write", "after.txt", "after\n").code == 0
    assert sorted(os.listdir(upper)) == ["fifo"]
    assert {(c.path, c.status.value) for c in vault.workspace("main").status()} == {("after.txt", "added")}
    # the pure-FUSE backend serves the same tree
    info = mounts.mount(home, vault, "main", mp, backend="fuse")
    try:
        assert info.backend == "fuse" and info.upper_on is None
        again = _tree(mp)
        live.pop("fifo", None)
        assert again.pop("after.txt") == ("file", b"after\n", False)
        assert again == live
    finally:
        mounts.unmount(home, vault, "main")


def test_restore_and_cli_writes_show_in_the_overlay_mount_at_once(home, vault, tmp_path, cli):
    require_overlay()
    ws = vault.workspace("main")
    ws.write("a.txt", b"one\n")
    first = checkpoint.save(vault).checkpoint.commit
    ws.write("a.txt", b"two\n")
    ws.write("b.txt", b"b\n")
    checkpoint.save(vault)
    mp = str(tmp_path / "mnt")
    os.mkdir(mp)
    mounts.mount(home, vault, "main", mp, backend="overlay")
    try:
        shell = subprocess.Popen(["sleep", "30"], cwd=mp)  # a process whose cwd is inside
        try:
            assert cli("--vault", "v", "write", "c.txt", "c\n").code == 0
            assert _rt(os.path.join(mp, "c.txt")) == "c\n"
            assert cli("--vault", "v", "checkpoint", "restore", first).code == 0
            assert _rt(os.path.join(mp, "a.txt")) == "one\n"
            assert not os.path.exists(os.path.join(mp, "b.txt"))
            assert os.readlink(f"/proc/{shell.pid}/cwd") == mp
            assert subprocess.run(
                ["ls"], cwd=f"/proc/{shell.pid}/cwd", capture_output=True, text=True
            ).stdout.split() == ["a.txt"]
            assert cli("--vault", "v", "undo").code == 0
            assert _rt(os.path.join(mp, "a.txt")) == "two\n"
            assert _rt(os.path.join(mp, "c.txt")) == "c\n"
        finally:
            shell.kill()
            shell.wait()
    finally:
        mounts.unmount(home, vault, "main", lazy=True)


def test_overlay_unavailable_falls_back_with_a_note(home, vault, tmp_path, monkeypatch):
    require_fuse()
    monkeypatch.setattr(home.settings, "no_overlay", True)  # $AVFS_NO_OVERLAY, as read
    mp = str(tmp_path / "mnt")
    os.mkdir(mp)
    info = mounts.mount(home, vault, "main", mp)
    try:
        assert info.backend == "fuse" and "AVFS_NO_OVERLAY" in info.backend_why
        listed = [m for m in mounts.list_mounts(home) if m.mountpoint == mp]
        assert listed and listed[0].backend == "fuse" and listed[0].backend_why == info.backend_why
    finally:
        mounts.unmount(home, vault, "main")
    with pytest.raises(mounts.MountError):
        mounts.mount(home, vault, "main", mp, backend="overlay")


def test_kill_9_of_an_overlay_daemon_loses_nothing_written(home, vault, tmp_path):
    require_overlay()
    ws = vault.workspace("main")
    ws.write("a.txt", b"a\n")
    checkpoint.save(vault)
    mp = str(tmp_path / "mnt")
    os.mkdir(mp)
    info = mounts.mount(home, vault, "main", mp, backend="overlay")
    with open(os.path.join(mp, "written.txt"), "w") as fh:
        fh.write("acknowledged\n")
    with open(os.path.join(mp, "a.txt"), "a") as fh:
        fh.write("more\n")
    os.kill(info.pid, 9)
    deadline = __import__("time").monotonic() + 10
    while mounts.check(vault, "main") is not None and __import__("time").monotonic() < deadline:
        __import__("time").sleep(0.05)
    assert mounts.check(vault, "main") is None  # found dead, its overlay taken away
    assert not mounts.mounted_at(mp)
    got = {(c.path, c.status.value) for c in vault.workspace("main").status()}
    assert got == {("written.txt", "added"), ("a.txt", "modified")}
    again = mounts.mount(home, vault, "main", mp, backend="overlay")
    try:
        assert _rt(os.path.join(mp, "written.txt")) == "acknowledged\n"
        assert _rt(os.path.join(mp, "a.txt")) == "a\nmore\n"
        assert subprocess.run(
            ["git", "status", "--porcelain"], cwd=mp, capture_output=True, text=True
        ).stdout == (" M a.txt\n?? written.txt\n")
    finally:
        mounts.unmount(home, vault, "main")
    assert again.backend == "overlay"


def _ended(pid: int) -> bool:
    """Gone, or a zombie (every thread has exited; only its parent's wait is left)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (FileNotFoundError, ProcessLookupError):  # reaped between the lookup and the read
        return True


def test_a_crashed_daemon_ends_at_once_without_a_core_dump_and_loses_nothing(home, vault, tmp_path):
    """A daemon that crashes must end: a core dump of one whose thread waits on a request to
    its own mount never finishes (it waits on that request), and its clients hang. So the
    daemon is not dumpable; it leaves Python's traceback in its log instead. Run with core
    dumps allowed (RLIMIT_CORE unlimited, inherited by the daemon)."""
    import resource

    from avfs_git.core.vaults import registry

    require_overlay()
    ws = vault.workspace("main")
    ws.write("a.txt", b"a\n")
    checkpoint.save(vault)
    mp = str(tmp_path / "mnt")
    os.mkdir(mp)
    old = resource.getrlimit(resource.RLIMIT_CORE)
    resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    try:
        info = mounts.mount(home, vault, "main", mp, backend="overlay")
    finally:
        resource.setrlimit(resource.RLIMIT_CORE, old)
    with open(f"/proc/{info.pid}/limits", encoding="ascii") as fh:
        assert re.search(r"Max core file size\s+unlimited", fh.read())
    record = registry.read_record(mounts.registry_path(vault, "main")) or {}
    assert record.get("core_dumps") is False
    daemon_cwd = os.readlink(f"/proc/{info.pid}/cwd")
    before = set(os.listdir(daemon_cwd))
    with open(os.path.join(mp, "written.txt"), "w") as fh:
        fh.write("acknowledged\n")
    klog_before, why = kernellog.read()
    # the daemon busy when it crashes: walks of the mount keep its threads serving requests
    # (dumping the traceback of every running thread faulted inside the dump, 1 crash in 10)
    walkers = [
        subprocess.Popen(
            [
                "sh",
                "-c",
                f"while :; do find '{mp}' -printf '' 2>/dev/null; ls -lR '{mp}' >/dev/null 2>&1; done",
            ]
        )
        for _ in range(2)
    ]
    try:
        time.sleep(0.3)
        os.kill(info.pid, signal.SIGSEGV)
        deadline = time.monotonic() + 10
        while mounts.check(vault, "main") is not None and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        for w in walkers:
            w.kill()
            w.wait()
    assert mounts.check(vault, "main") is None
    assert _ended(info.pid)
    with open(registry.log_path(vault.state_dir, "main"), encoding="utf-8", errors="replace") as fh:
        log = fh.read()
    # the crashing thread's traceback, whole: it ends with the list of extension modules
    # outside the standard library when any is loaded, else with the main module's frame
    # (the daemon no longer loads libgit2 at start, twentieth round: no list then)
    assert "Fatal Python error: Segmentation fault" in log, log[-2000:]
    whole = "Extension modules:" in log or log.rstrip().endswith("in _run_module_as_main")
    assert whole, log[-2000:]
    klog_after, why_after = kernellog.read()
    if klog_before is None or klog_after is None:
        if IN_CI:
            pytest.fail(f"the kernel log must be readable in CI: {why or why_after}")
    else:  # a signal sent is no fault: a line of the daemon means it faulted while dying
        assert kernellog.of(kernellog.new_faults(klog_before, klog_after), [info.pid]) == []
    with open("/proc/sys/kernel/core_pattern", encoding="utf-8") as fh:
        pattern = fh.read().strip()
    if not pattern.startswith("|") and not pattern.startswith("/"):
        assert [n for n in set(os.listdir(daemon_cwd)) - before if n.startswith("core")] == []
    assert {(c.path, c.status.value) for c in vault.workspace("main").status()} == {("written.txt", "added")}


def test_copied_up_files_read_after_a_remount(home, vault, tmp_path):
    """A file copied up in one mount is read in the next (overlayfs followed its copy-up
    origin into the gone FUSE connection and answered ESTALE)."""
    require_overlay()
    ws = vault.workspace("main")
    for i in range(20):
        ws.write(f"d{i % 3}/f{i}.txt", b"%d\n" % i)
    checkpoint.save(vault)
    mp = str(tmp_path / "mnt")
    os.mkdir(mp)
    for rnd in range(3):
        mounts.mount(home, vault, "main", mp, backend="overlay")
        try:
            # another order of first lookups each round: the FUSE node ids differ
            order = list(range(20)) if rnd % 2 == 0 else list(reversed(range(20)))
            for i in order[: 5 + rnd]:
                os.stat(os.path.join(mp, f"d{i % 3}"))
                os.stat(os.path.join(mp, f"d{i % 3}/f{i}.txt"))
            for i in order:
                p = os.path.join(mp, f"d{i % 3}/f{i}.txt")
                assert _rt(p).startswith(f"{i}\n"), (rnd, p)
                with open(p, "a") as fh:
                    fh.write(f"round {rnd}\n")
            listed = subprocess.run(["git", "status", "--porcelain"], cwd=mp, capture_output=True, text=True)
            assert listed.returncode == 0 and "stale" not in listed.stderr.lower(), listed.stderr
        finally:
            mounts.unmount(home, vault, "main")
        checkpoint.save(vault)
    assert git("--git-dir", vault.path, "show", "main:d0/f0.txt") == "0\nround 0\nround 1\nround 2\n"


def test_a_file_made_checkpointed_then_removed_in_the_mount_stays_removed(home, vault, tmp_path):
    """The checkpoint moves the base (the lower layer) to hold a file the upper layer made;
    removing it then must leave a whiteout, or the base's copy comes back: in status, in
    the next checkpoint and in the next mount."""
    require_overlay()
    vault.workspace("main").write("a.txt", b"a\n")
    checkpoint.save(vault)
    mp = str(tmp_path / "mnt")
    os.mkdir(mp)
    mounts.mount(home, vault, "main", mp, backend="overlay")
    try:
        assert not os.path.exists(os.path.join(mp, "x.txt"))  # a lookup that finds nothing
        with open(os.path.join(mp, "x.txt"), "w") as fh:
            fh.write("x\n")
        checkpoint.save(vault, message="with x")
        os.unlink(os.path.join(mp, "x.txt"))
        assert not os.path.exists(os.path.join(mp, "x.txt"))
        got = [(c.path, c.status.value) for c in vault.workspace("main").status()]
        assert got == [("x.txt", "deleted")]
        checkpoint.save(vault, message="without x")
        assert "x.txt" not in git("--git-dir", vault.path, "ls-tree", "--name-only", "main")
    finally:
        mounts.unmount(home, vault, "main")
    mounts.mount(home, vault, "main", mp, backend="overlay")
    try:
        assert not os.path.exists(os.path.join(mp, "x.txt"))
        assert vault.workspace("main").status() == []
    finally:
        mounts.unmount(home, vault, "main")


def test_a_file_made_checkpointed_undone_then_removed_in_the_mount_stays_removed(home, vault, tmp_path, cli):
    """As above, with an undo of the checkpoint between: the base comes back to the one
    before it, the lower layer now holding the checkpoint's tree (a root entry). The lower
    layer's daemon kept the children it had listed at that base, before the checkpoint,
    by the base alone: it told overlayfs the file was not below, overlayfs removed it
    without a whiteout, and the lower layer's copy came back to a lookup and to `avfs
    status` (gitmodel17: the model's `git add`, checkpoint, `avfs undo`, restore)."""
    require_overlay()
    vault.workspace("main").write("d/a.txt", b"a\n")
    checkpoint.save(vault)
    mp = str(tmp_path / "mnt")
    os.mkdir(mp)
    mounts.mount(home, vault, "main", mp, backend="overlay")
    try:
        x = os.path.join(mp, "d", "x.txt")
        assert os.listdir(os.path.dirname(x)) == ["a.txt"]  # (the lower layer's children of d, kept)
        with open(x, "w") as fh:
            fh.write("x\n")
        checkpoint.save(vault, message="with x")
        assert cli("--vault", "v", "undo").code == 0  # (the base before, x kept in the view)
        got = [(c.path, c.status.value) for c in vault.workspace("main").status()]
        assert got == [("d/x.txt", "added")]
        os.unlink(x)
        assert not os.path.lexists(x)
        assert sorted(os.listdir(os.path.dirname(x))) == ["a.txt"]
        assert vault.workspace("main").status() == []
    finally:
        mounts.unmount(home, vault, "main")


def _move_ref_from_outside(vault: Any, tmp_path: Any, files: dict[str, str | None]) -> str:
    """Commit ``files`` (text, or None: removed) on main in a clone and move the vault's main
    to it from outside avfs; returns the new tip. git refuses a push to a branch checked out
    in a worktree (a mount is one): the ref is moved by plumbing, as a script would."""
    clone = str(tmp_path / "clone")
    git("clone", "-q", vault.path, clone)
    for rel, text in files.items():
        if text is None:
            os.unlink(os.path.join(clone, rel))
        else:
            with open(os.path.join(clone, rel), "w") as fh:
                fh.write(text)
    git("-C", clone, "add", "-A")
    git("-C", clone, "commit", "-q", "-m", "from outside")
    git("-C", clone, "push", "-q", "origin", "HEAD:refs/heads/side")
    tip = git("-C", clone, "rev-parse", "HEAD").strip()
    git("--git-dir", vault.path, "update-ref", "refs/heads/main", tip)
    return tip


def test_a_ref_moved_from_outside_shows_in_a_live_overlay_mount(home, vault, tmp_path):
    """The fork's ref moved by someone else (plumbing in the vault) while an overlay mount
    is live and the fork has nothing uncheckpointed: the base follows the ref at the next
    avfs call, and the mount shows the new commit at once. The lower layer is cached by the
    kernel for good, so the move must be written through the mount (as a restore is), or
    the mount keeps the old bytes, or the new bytes cut to the old size."""
    require_overlay()
    ws = vault.workspace("main")
    ws.write("a.txt", b"old\n")
    ws.write("b.txt", b"b\n")
    ws.write("d/e.txt", b"e\n")
    checkpoint.save(vault)
    mp = str(tmp_path / "mnt")
    os.mkdir(mp)
    mounts.mount(home, vault, "main", mp, backend="overlay")
    try:
        # the kernel caches all of it (attributes, entries, pages)
        assert _rt(os.path.join(mp, "a.txt")) == "old\n"
        assert _rt(os.path.join(mp, "b.txt")) == "b\n"
        assert _rt(os.path.join(mp, "d", "e.txt")) == "e\n"
        held = open(os.path.join(mp, "a.txt"), "rb")  # noqa: SIM115 - open across the move
        tip = _move_ref_from_outside(
            vault, tmp_path, {"a.txt": "new and longer\n", "b.txt": None, "c.txt": "c\n", "d/e.txt": "E!\n"}
        )
        ws = vault.workspace("main")  # any avfs call settles the base against the ref
        assert ws.base == tip
        assert _rt(os.path.join(mp, "a.txt")) == "new and longer\n"
        assert not os.path.exists(os.path.join(mp, "b.txt"))
        assert _rt(os.path.join(mp, "c.txt")) == "c\n"
        assert _rt(os.path.join(mp, "d", "e.txt")) == "E!\n"
        assert held.read() == b"old\n"  # an open file keeps what it had
        held.close()
        assert vault.workspace("main").status() == []
        assert git("-C", mp, "status", "--porcelain") == ""
    finally:
        mounts.unmount(home, vault, "main")
    mounts.mount(home, vault, "main", mp, backend="overlay")
    try:
        assert _tree(mp) == {
            "a.txt": ("file", b"new and longer\n", False),
            "c.txt": ("file", b"c\n", False),
            "d/e.txt": ("file", b"E!\n", False),
        }
        assert vault.workspace("main").status() == []
    finally:
        mounts.unmount(home, vault, "main")


def test_a_checkpoint_rebased_on_a_ref_moved_from_outside_shows_it_in_the_mount(home, vault, tmp_path):
    """Uncheckpointed changes in a live overlay mount and the fork's ref moved by someone
    else: the checkpoint rebases them onto the new tip (a three-way merge), and the mount
    then shows the merged commit, the other side's changes included (the kernel caches the
    lower layer for good: they are written through the mount)."""
    require_overlay()
    ws = vault.workspace("main")
    ws.write("a.txt", b"old\n")
    ws.write("b.txt", b"b\n")
    checkpoint.save(vault)
    mp = str(tmp_path / "mnt")
    os.mkdir(mp)
    mounts.mount(home, vault, "main", mp, backend="overlay")
    try:
        assert _rt(os.path.join(mp, "a.txt")) == "old\n"
        assert _rt(os.path.join(mp, "b.txt")) == "b\n"
        with open(os.path.join(mp, "mine.txt"), "w") as fh:
            fh.write("mine\n")
        tip = _move_ref_from_outside(vault, tmp_path, {"a.txt": "theirs, longer\n", "b.txt": None})
        res = checkpoint.save(vault, message="mine")
        assert git("--git-dir", vault.path, "rev-parse", "main^").strip() == tip
        assert res.checkpoint.commit == git("--git-dir", vault.path, "rev-parse", "main").strip()
        assert _rt(os.path.join(mp, "a.txt")) == "theirs, longer\n"
        assert not os.path.exists(os.path.join(mp, "b.txt"))
        assert _rt(os.path.join(mp, "mine.txt")) == "mine\n"
        assert vault.workspace("main").status() == []
        assert git("-C", mp, "status", "--porcelain") == ""
    finally:
        mounts.unmount(home, vault, "main")


def test_a_fork_whose_overlay_daemon_was_killed_deletes_whole(home, vault, tmp_path):
    """A killed overlay daemon leaves its worktree link pinned immutable in the upper layer;
    deleting the fork then must still remove all of its state (rmtree alone cannot)."""
    import time

    require_overlay()
    vault.workspace("main").write("a.txt", b"a\n")
    checkpoint.save(vault)
    vault.create_fork("main", "agent")
    mp = str(tmp_path / "mnt")
    os.mkdir(mp)
    info = mounts.mount(home, vault, "agent", mp, backend="overlay")
    with open(os.path.join(mp, "new.txt"), "w") as fh:
        fh.write("n\n")
    os.kill(info.pid, 9)
    deadline = time.monotonic() + 10
    while mounts.check(vault, "agent") is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    ws_dir = vault.ws_dir("agent")
    # the look at the dead mount took it away (tests/test_pinned_gitfile.py); pinned again
    # as a daemon killed with no look after it leaves it
    assert not os.path.lexists(os.path.join(ws_dir, "upper", ".git"))
    from avfs_git.fuse.stacking import _pin_gitfile

    _pin_gitfile(os.path.join(ws_dir, "upper"), b"gitdir: /nowhere\n")
    vault.delete_fork("agent")
    assert not os.path.exists(ws_dir)
    assert vault.workspace("main").read("a.txt") == b"a\n"


@pytest.mark.parametrize("before_mount", [False, True], ids=["checkpointed", "changed-before-mount"])
def test_a_directory_renamed_in_the_mount_survives_checkpoints_and_remounts(
    home, vault, tmp_path, before_mount
):
    """``mv d e`` in an overlay mount makes ``upper/e`` redirect to the lower layer's ``d``
    (and a whiteout at ``d``). A checkpoint records ``e`` and moves the base, where ``d`` is
    gone: the redirect must still show ``d``'s old content (it showed an empty ``e``, status
    then listed every file as deleted, and the next checkpoint deleted them). Entries made
    before the mount under ``d`` (uncheckpointed changes) move with it."""
    require_overlay()
    ws = vault.workspace("main")
    ws.write("d/a.txt", b"a\n")
    ws.write("d/sub/b.txt", b"b\n")
    ws.write("keep.txt", b"k\n")
    checkpoint.save(vault)
    want = {"e/a.txt": b"a\n", "e/sub/b.txt": b"b\n", "keep.txt": b"k\n"}
    if before_mount:
        ws.write("d/a.txt", b"a, changed before the mount\n")
        ws.write("d/new.txt", b"new before the mount\n")
        want.update({"e/a.txt": b"a, changed before the mount\n", "e/new.txt": b"new before the mount\n"})
    mp = str(tmp_path / "mnt")
    os.mkdir(mp)

    def shown() -> dict[str, bytes]:
        return {k: v[1] for k, v in _tree(mp).items()}

    def in_git() -> dict[str, bytes]:
        out = git("--git-dir", vault.path, "ls-tree", "-r", "--name-only", "main").split()
        return {p: git("--git-dir", vault.path, "show", f"main:{p}").encode() for p in out}

    mounts.mount(home, vault, "main", mp, backend="overlay")
    try:
        os.rename(os.path.join(mp, "d"), os.path.join(mp, "e"))
        assert shown() == want
        assert {p: bytes(vault.workspace("main").read(p)) for p in want} == want
        checkpoint.save(vault, message="renamed")
        assert in_git() == want
        assert vault.workspace("main").status() == []
        assert shown() == want
        with open(os.path.join(mp, "e", "more.txt"), "w") as fh:
            fh.write("more\n")
        want["e/more.txt"] = b"more\n"
        checkpoint.save(vault, message="a second one")
        assert in_git() == want
        assert vault.workspace("main").status() == []
        assert git("-C", mp, "status", "--porcelain") == ""
    finally:
        mounts.unmount(home, vault, "main")
    assert vault.workspace("main").status() == []
    mounts.mount(home, vault, "main", mp, backend="overlay")
    try:
        assert shown() == want
        assert vault.workspace("main").status() == []
    finally:
        mounts.unmount(home, vault, "main")
    assert {p: bytes(vault.workspace("main").read(p)) for p in want} == want
    checkpoint.save(vault, message="after")
    assert in_git() == want


def test_a_directory_renamed_and_committed_by_git_in_the_mount_keeps_its_content(home, vault, tmp_path):
    """The same rename recorded by ``git commit`` inside the mount (the base then follows
    the ref: the commit holds what the view shows): the renamed directory keeps showing its
    content in the mount, in status, and after a remount."""
    require_overlay()
    ws = vault.workspace("main")
    ws.write("d/a.txt", b"a\n")
    ws.write("d/sub/b.txt", b"b\n")
    checkpoint.save(vault)
    want = {"e/a.txt": ("file", b"a\n", False), "e/sub/b.txt": ("file", b"b\n", False)}
    mp = str(tmp_path / "mnt")
    os.mkdir(mp)
    mounts.mount(home, vault, "main", mp, backend="overlay")
    try:
        os.rename(os.path.join(mp, "d"), os.path.join(mp, "e"))
        git("-C", mp, "add", "-A")
        git("-C", mp, "commit", "-q", "-m", "renamed by git")
        ws = vault.workspace("main")  # the base follows the ref git moved
        assert ws.base == git("--git-dir", vault.path, "rev-parse", "main").strip()
        assert ws.status() == []
        assert _tree(mp) == want
        assert git("-C", mp, "status", "--porcelain") == ""
    finally:
        mounts.unmount(home, vault, "main")
    assert vault.workspace("main").status() == []
    mounts.mount(home, vault, "main", mp, backend="overlay")
    try:
        assert _tree(mp) == want
    finally:
        mounts.unmount(home, vault, "main")


def _mounted_with(home: Any, vault: Any, tmp_path: Any, paths: tuple[str, ...]) -> str:
    """Fork main holding ``paths`` (each file its own path and a newline), checkpointed and
    mounted on overlay at a mount point of its own, returned."""
    require_overlay()
    ws = vault.workspace("main")
    for p in paths:
        ws.write(p, p.encode() + b"\n")
    checkpoint.save(vault)
    mp = str(tmp_path / "mnt")
    os.mkdir(mp)
    mounts.mount(home, vault, "main", mp, backend="overlay")
    return mp


def test_a_rename_onto_a_copied_up_file_after_its_origin_left_the_base(home, vault, tmp_path, cli_proc):
    """overlay, git model seed 31: ``mv t/__init__.py moved.txt`` in the mount, a ``proxy
    exec`` (its record of that rename moves the base: ``t/__init__.py`` leaves the lower
    layer), then a rename onto ``moved.txt`` failed with ``ESTALE``. The kernel's inode of
    ``moved.txt`` keeps the lower dentry of its copy-up origin, ``t/__init__.py``, and a
    rename's target is looked up again in the lower layer (FUSE revalidates a rename
    target always): a name the lower layer had lost made overlayfs answer ``ESTALE``. The
    lower layer keeps such a name (pinned, hidden by the upper layer's whiteout)."""
    mp = _mounted_with(
        home, vault, tmp_path, ("t/__init__.py", "t/other.py", "docs/a.md", "docs/b.md", "README.md")
    )
    try:
        os.replace(os.path.join(mp, "t", "__init__.py"), os.path.join(mp, "moved.txt"))
        res = cli_proc(
            "--home",
            home.path,
            "--json",
            "proxy",
            "exec",
            "--",
            "sh",
            "-c",
            "git mv -k docs documentation",
            cwd=mp,
        )
        assert res.code == 0, res.out
        os.replace(os.path.join(mp, "documentation", "b.md"), os.path.join(mp, "moved.txt"))
        os.replace(os.path.join(mp, "README.md"), os.path.join(mp, "moved.txt"))
        assert _tree(mp) == {
            "documentation/a.md": ("file", b"docs/a.md\n", False),
            "moved.txt": ("file", b"README.md\n", False),
            "t/other.py": ("file", b"t/other.py\n", False),
        }
        assert git("-C", mp, "status", "--porcelain") == (
            " D README.md\n D documentation/b.md\n M moved.txt\n"
        )
        # the pinned name stays hidden: no reader sees it
        assert sorted(c.path for c in vault.workspace("main").status()) == [
            "README.md",
            "documentation/b.md",
            "moved.txt",
        ]
        want = _tree(mp)
    finally:
        mounts.unmount(home, vault, "main")
    mounts.mount(home, vault, "main", mp, backend="overlay")
    try:
        assert _tree(mp) == want
        assert sorted(c.path for c in vault.workspace("main").status()) == [
            "README.md",
            "documentation/b.md",
            "moved.txt",
        ]
    finally:
        mounts.unmount(home, vault, "main")


def test_only_a_rename_s_whiteout_keeps_its_lower_file_once_the_base_drops_it(home, vault, tmp_path):
    """The lower file a rename's whiteout hides is the renamed copy-up's origin, which the
    kernel keeps (the test above): it stays in the lower layer, pinned, once a checkpoint
    drops it from the base. A plain removal's whiteout hides a file no upper file came
    from: nothing is pinned for it (an entry every later read of all entries would pay
    for until the fold), and the mount, status and a remount show the same either way."""
    mp = _mounted_with(
        home, vault, tmp_path, ("d/renamed.txt", "d/removed.txt", "d/edited.txt", "README.md", "other.md")
    )
    try:
        os.replace(os.path.join(mp, "d", "renamed.txt"), os.path.join(mp, "moved.txt"))
        os.unlink(os.path.join(mp, "d", "removed.txt"))
        with open(os.path.join(mp, "d", "edited.txt"), "a") as fh:  # a copy-up in place
            fh.write("more\n")
        os.unlink(os.path.join(mp, "other.md"))
        checkpoint.save(vault)
        ws = vault.workspace("main")
        with ws.overlay.without_upper():  # the lower layer's own entries: the pins
            kept = sorted(e.path for e in ws.overlay.all())
        assert kept == ["d/renamed.txt"]
        os.replace(os.path.join(mp, "README.md"), os.path.join(mp, "moved.txt"))  # (ESTALE unpinned)
        want = {
            "d/edited.txt": ("file", b"d/edited.txt\nmore\n", False),
            "moved.txt": ("file", b"README.md\n", False),
        }
        assert _tree(mp) == want
        assert git("-C", mp, "status", "--porcelain") == " D README.md\n M moved.txt\n"
        assert sorted(c.path for c in ws.status()) == ["README.md", "moved.txt"]
    finally:
        mounts.unmount(home, vault, "main")
    mounts.mount(home, vault, "main", mp, backend="overlay")
    try:
        assert _tree(mp) == want
        assert sorted(c.path for c in vault.workspace("main").status()) == ["README.md", "moved.txt"]
    finally:
        mounts.unmount(home, vault, "main")


def test_a_cold_walk_asks_the_lower_layer_no_attributes(home, vault, tmp_path, monkeypatch):
    """overlayfs asks its lower layer for its own marks of every entry it looks up (metacopy
    of a file, origin of a directory, whiteout of an empty file). The lower layer answers
    the first GETXATTR ENOSYS, after which the kernel answers EOPNOTSUPP itself: a cold
    walk of N entries sends the daemon at most that one (on main: one or two per entry).
    The files read as ever; a reader's getxattr of an unchanged file is EOPNOTSUPP, of a
    changed one the disk's."""
    require_overlay()
    ws = vault.workspace("main")
    files = {f"d{i % 7}/s{i % 3}/f{i}.py": b"" if i % 5 == 0 else b"x = %d\n" % i for i in range(120)}
    for p, data in files.items():
        ws.write(p, data)
    checkpoint.save(vault)
    trace = tmp_path / "trace"
    trace.write_text("")
    monkeypatch.setattr(home.settings, "fuse_trace", str(trace))  # $AVFS_FUSE_TRACE, as read
    mp = str(tmp_path / "mnt")
    os.mkdir(mp)
    mounts.mount(home, vault, "main", mp, backend="overlay")
    try:
        walked = 0
        for d, dirs, names in os.walk(mp):
            dirs[:] = [x for x in dirs if x != ".git"]
            for name in dirs + names:
                os.lstat(os.path.join(d, name))
                walked += 1
        assert {p: _rb(os.path.join(mp, p)) for p in files} == files
        with pytest.raises(OSError) as exc:
            os.getxattr(os.path.join(mp, "d1/s1/f1.py"), "user.missing")
        assert exc.value.errno == errno.EOPNOTSUPP
        os.setxattr(os.path.join(mp, "d1/s1/f1.py"), "user.colour", b"blue")  # copied up
        assert os.getxattr(os.path.join(mp, "d1/s1/f1.py"), "user.colour") == b"blue"
    finally:
        mounts.unmount(home, vault, "main")
    asked = [line for line in trace.read_text().splitlines() if line.startswith("getxattr")]
    assert walked > len(files) and len(asked) <= 1, asked
