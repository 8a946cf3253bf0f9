"""What a mount's start and an unmount cost that nothing needs (docs/benchmarks.md, the
twenty-fourth round's "The mount daemon's start and an unmount"): counted, never timed."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from avfs_git.core.errors import BusyError
from avfs_git.core.operations import checkpoint
from avfs_git.core.vaults.home import Home
from avfs_git.ops import holders, mounts


def _scans(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Count the scans of /proc an unmount makes, where it makes them: holders.held calls
    the module's own ``mount_holders``, mounts.unmount its import of it."""
    seen: list[str] = []
    real = holders.mount_holders

    def counted(mountpoint: str) -> list[dict[str, Any]]:
        seen.append(mountpoint)
        return real(mountpoint)

    monkeypatch.setattr(holders, "mount_holders", counted)
    monkeypatch.setattr(mounts, "mount_holders", counted)
    return seen


def test_an_overlay_unmount_scans_no_process_unless_the_kernel_says_busy(
    home: Home, vault: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An overlay unmount looked for holders in every process's files in /proc before it
    # asked the kernel (twice or more while its daemon was young: ~10-20 ms of CPU a scan);
    # the kernel's answer now comes first, and a scan only after a busy one.
    vault.workspace("main").write("a.txt", b"a\n")
    vault.fork("main", "f1")
    info = mounts.mount(home, vault, "f1", backend="overlay")
    assert info.backend == "overlay"
    seen = _scans(monkeypatch)
    holder = subprocess.Popen(["sleep", "60"], cwd=info.mountpoint)
    try:
        with pytest.raises(BusyError) as err:
            mounts.unmount(home, vault, "f1")
        assert f"sleep (pid {holder.pid}: cwd)" in str(err.value)  # named, as before
        assert seen  # (the patch is what a busy unmount calls)
        assert mounts.mounted_at(info.mountpoint)
        assert Path(info.mountpoint, "a.txt").read_bytes() == b"a\n"  # nothing lost
    finally:
        holder.kill()
        holder.wait()
    seen.clear()
    mounts.unmount(home, vault, "f1")
    assert seen == []
    assert not mounts.mounted_at(info.mountpoint)
    assert vault.workspace("f1").read("a.txt") == b"a\n"


@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_a_young_daemons_own_hold_is_waited_out_and_the_unmount_tried_again(
    home: Home, vault: Any, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    # The kernel says busy while the only holder is the daemon itself (right after the mount
    # answered, it lists merged directories through it) or a process that ended before the
    # scan (a confined command's, exiting): held() waits that out and the unmount is tried
    # again; here the first try is made to fail as such a hold makes it. (A pure-FUSE mount
    # was not tried again: CI's one failure, busy with no holder named, after a proxy exec.)
    vault.fork("main", "f2")
    info = mounts.mount(home, vault, "f2", backend=backend)
    seen = _scans(monkeypatch)
    real_run = subprocess.run
    tries: list[list[str]] = []
    tool = "umount" if backend == "overlay" else "fusermount3"

    def run(cmd: Any, *a: Any, **kw: Any) -> Any:
        if isinstance(cmd, list) and cmd[:1] == [tool] and info.mountpoint in cmd:
            tries.append(cmd)
            if len(tries) == 1:
                return subprocess.CompletedProcess(
                    cmd, 32, "", f"umount: {info.mountpoint}: target is busy.\n"
                )
        return real_run(cmd, *a, **kw)

    monkeypatch.setattr(mounts.subprocess, "run", run)
    try:
        mounts.unmount(home, vault, "f2")
    finally:
        monkeypatch.undo()
        if mounts.mounted_at(info.mountpoint):  # (a failure here leaves no mount behind)
            mounts.unmount(home, vault, "f2")
    assert len(tries) == 2 and seen  # asked again once no other process was seen inside
    assert not mounts.mounted_at(info.mountpoint)
    assert os.path.isdir(info.mountpoint)


def _imported(stderr: str) -> set[str]:
    """The modules ``python -X importtime`` says a process imported."""
    return {
        line.rsplit("|", 1)[1].strip()
        for line in stderr.splitlines()
        if line.startswith("import time:") and "imported package" not in line
    }


def test_the_lower_layers_walk_imports_only_what_it_runs(tmp_path: Path) -> None:
    # Every overlay mount starts the walk of its lower layer (fuse/warm.py) as a process
    # running that file: its top imported subprocess and threading, the daemon's side's,
    # ~20-25 ms of the walk's ~35 ms of CPU before it listed anything.
    import sys

    from avfs_git.fuse import warm

    (tmp_path / "d").mkdir()
    rfd, wfd = os.pipe()
    proc = subprocess.Popen(
        [sys.executable, "-I", "-S", "-X", "importtime", warm.__file__, str(tmp_path), str(rfd), "0.1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        pass_fds=(rfd,),
    )
    os.close(rfd)
    os.close(wfd)  # (the daemon gone: the walk ends before its first listing)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and out.strip() == "0", err
    mods = _imported(err)
    assert "select" in mods  # (what it runs: the parse of importtime's lines works)
    assert not mods & {"subprocess", "threading", "selectors", "signal", "typing"}
    assert warm.DEVNULL == subprocess.DEVNULL


def _argparse_daemon(argv: list[str]) -> Any:
    """The daemon's options as argparse read them (fuse/daemon.py until the twenty-fourth
    round), for the hand-read ones to agree with."""
    import argparse

    ap = argparse.ArgumentParser(prog="avfs-mount-daemon")
    ap.add_argument("--home", required=True)
    ap.add_argument("--vault", required=True)
    ap.add_argument("--fork", required=True)
    ap.add_argument("--mountpoint", required=True)
    ap.add_argument("--revision")
    ap.add_argument("--backend", choices=("fuse", "overlay"), default="fuse")
    ap.add_argument("--idle-timeout", type=float)
    ap.add_argument("--ready-fd", type=int)
    ap.add_argument("--foreground", action="store_true")
    return vars(ap.parse_args(argv))


BASE = ["--home", "/h o/me", "--vault", "v", "--fork", "f.1", "--mountpoint", "/m/p"]


@pytest.mark.parametrize(
    "argv",
    [
        BASE,
        [*BASE, "--backend", "overlay", "--ready-fd", "12", "--idle-timeout", "300.0"],
        [*BASE, "--revision", "0" * 40, "--backend", "fuse", "--foreground"],
        ["--foreground", "--ready-fd=3", "--home=/h", "--vault=v", "--fork=f", "--mountpoint=/m=x"],
        [*BASE, "--fork", "g", "--idle-timeout", "1e3"],  # (the last one wins)
        # refused by both (exit 2)
        BASE[:-2],
        [*BASE, "--backend", "nfs"],
        [*BASE, "--ready-fd", "x"],
        [*BASE, "--idle-timeout"],
        [*BASE, "--bogus", "1"],
        [*BASE, "stray"],
        ["--home", "--vault", "v", "--fork", "f", "--mountpoint", "/m"],
    ],
)
def test_the_daemons_arguments_read_by_hand_are_argparses(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    from avfs_git.fuse import daemonargs

    def read(parse: Any) -> Any:
        try:
            return parse(argv)
        except SystemExit as exc:
            return ("exit", exc.code)

    ours = read(lambda a: vars(daemonargs.arguments(a)))
    theirs = read(_argparse_daemon)
    assert ours == theirs
    if isinstance(ours, tuple):
        assert "avfs-mount-daemon: error:" in capsys.readouterr().err


def test_the_daemon_loads_no_argparse_nor_tempfile_before_it_mounts() -> None:
    # argparse (with gettext and locale at its first parse) and tempfile (with random) were
    # ~10 and ~3 ms of every daemon's start; a revision's mount alone needs tempfile
    import sys

    code = (
        "import sys\n"
        "from avfs_git.fuse import daemon, daemonargs\n"
        "daemonargs.arguments(['--home', '/h', '--vault', 'v', '--fork', 'f', '--mountpoint', '/m'])\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = set(out.split())
    assert "avfs_git.fuse.daemon" in loaded
    assert not loaded & {"argparse", "tempfile", "random", "gettext", "locale"}


@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_a_mount_runs_no_git_read_tree_and_git_finds_its_index_written(
    home: Home, vault: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    # Every mount ran `git read-tree` of its base (a git process, ~10 ms of CPU at 10,000
    # files) for an index its daemon replaced before the mount answered. Each git process
    # the daemon starts is logged by a `git` first on its PATH.
    shim = tmp_path / "bin"
    shim.mkdir()
    log = tmp_path / "git.log"
    real = subprocess.run(["sh", "-c", "command -v git"], capture_output=True, text=True).stdout.strip()
    (shim / "git").write_text(f'#!/bin/sh\necho "$@" >> {log}\nexec {real} "$@"\n')
    (shim / "git").chmod(0o755)
    monkeypatch.setenv("PATH", f"{shim}:{os.environ['PATH']}")
    ws = vault.workspace("main")
    ws.write("a.txt", b"a\n")
    ws.write("d/b.txt", b"b\n")
    checkpoint.save(vault, "main", message="two files")
    vault.fork("main", "f3")
    info = mounts.mount(home, vault, "f3", backend=backend)
    try:
        root = Path(info.mountpoint)
        (root / "n.txt").write_text("n\n")
        st = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True)
        assert st.returncode == 0 and st.stdout == "?? n.txt\n", st.stderr
        listed = subprocess.run(["git", "ls-files"], cwd=root, capture_output=True, text=True).stdout
        assert listed.split() == ["a.txt", "d/b.txt"]
    finally:
        mounts.unmount(home, vault, "f3")
    calls = log.read_text().splitlines()
    assert any(c.startswith("status") for c in calls)  # (the shim is the git that runs)
    assert not [c for c in calls if "read-tree" in c]


def test_where_the_first_index_write_fails_git_gets_the_bases_tree(
    home: Home, vault: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The fallback of the read-tree no longer made ahead: the index of the base's tree,
    # with zeroed stat data, where the daemon's own write failed (and none is there).
    from types import SimpleNamespace

    from avfs_git.fuse.mountindex import MountIndex
    from avfs_git.mount.worktree import register, unregister

    ws = vault.workspace("main")
    ws.write("a.txt", b"a\n")
    checkpoint.save(vault, "main", message="one file")
    vault.fork("main", "f4")
    fork = vault.workspace("f4")
    made = register(vault, "f4", str(home.path) + "/nowhere", "refs/heads/f4", None)
    try:
        assert not os.path.lexists(os.path.join(made.git_dir, "index"))

        def fails(sizes: Any = None) -> bool:
            raise OSError("the index could not be written")

        mount = SimpleNamespace(wt=made.git_dir, own=made.files, ws=fork, write_index=fails)
        MountIndex.first_index(mount)  # type: ignore[arg-type]
        listed = subprocess.run(
            ["git", "--git-dir", made.git_dir, "ls-files", "--stage"], capture_output=True, text=True
        )
        assert (
            listed.stdout.split()[-1] == "a.txt"
            and fork.base
            in subprocess.run(
                ["git", "--git-dir", made.git_dir, "rev-parse", "HEAD"], capture_output=True, text=True
            ).stdout
        )
    finally:
        unregister(made)
