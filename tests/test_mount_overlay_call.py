"""The overlay backend stacks kernel overlayfs by mount(2) from the mount's daemon
(fuse/stacking.py ``mount_overlay``), not by starting the `mount` program: as ``mount -t
overlay -o OPTIONS,nosuid`` would, and saying why when the kernel refuses. Real overlay
mounts; a real avfs mount with a `mount` on ``PATH`` that records its calls."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from avfs_git.core.vaults.home import Home
from avfs_git.fuse.stacking import mount_overlay
from avfs_git.ops import mounts

from .test_fuse import require_fuse


def _overlay_or_skip() -> None:
    require_fuse()
    if (why := mounts.overlay_available()) is not None:
        pytest.skip(f"requires overlayfs: {why}")


def _mountinfo(target: Path) -> list[list[str]]:
    with open("/proc/self/mountinfo", encoding="utf-8") as fh:
        return [ln.split() for ln in fh if ln.split()[4] == os.path.realpath(target)]


def test_an_overlay_mounted_by_the_call_is_nosuid_and_a_refusal_says_why(tmp_path: Path) -> None:
    _overlay_or_skip()
    d = {name: tmp_path / name for name in ("lower", "upper", "work", "merged")}
    for p in d.values():
        p.mkdir()
    (d["lower"] / "a.txt").write_text("from below\n")
    opts = f"lowerdir={d['lower']},upperdir={d['upper']},workdir={d['work']}"
    assert mount_overlay("avfs:test:main", str(d["merged"]), opts) is None
    try:
        (line,) = _mountinfo(d["merged"])
        sep = line.index("-")
        assert line[sep + 1 : sep + 3] == ["overlay", "avfs:test:main"]
        assert "nosuid" in line[5].split(",")
        assert (d["merged"] / "a.txt").read_text() == "from below\n"
        (d["merged"] / "b.txt").write_text("written\n")
        assert (d["upper"] / "b.txt").read_text() == "written\n"
    finally:
        subprocess.run(["umount", str(d["merged"])], check=True)
    # a lower directory that is not there: refused, with the kernel's reason, nothing mounted
    shutil.rmtree(d["work"])
    d["work"].mkdir()
    why = mount_overlay(
        "avfs:test:main", str(d["merged"]), opts.replace(str(d["lower"]), str(tmp_path / "gone"))
    )
    assert why is not None and "No such file or directory" in why and "avfs:test:main" in why
    assert _mountinfo(d["merged"]) == []


def test_a_mount_starts_no_mount_program(home: Home, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fork's overlay is stacked without a `mount` process (one was on the way to
    every overlay mount's answer), and is nosuid as before."""
    _overlay_or_skip()
    real = shutil.which("mount")
    assert real is not None
    bindir, log = tmp_path / "recbin", tmp_path / "mount-calls.log"
    bindir.mkdir()
    (bindir / "mount").write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> "{log}"\nexec {real} "$@"\n')
    (bindir / "mount").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    v = home.create_vault("v")
    ws = v.workspace("main")
    ws.write("f.txt", b"x\n")
    mp = tmp_path / "mnt"
    mp.mkdir()
    info = mounts.mount(home, v, "main", str(mp), backend="overlay")
    try:
        assert info.backend == "overlay"
        assert (mp / "f.txt").read_bytes() == b"x\n"
        (line,) = [ln for ln in _mountinfo(mp) if ln[ln.index("-") + 1] == "overlay"]
        assert "nosuid" in line[5].split(",")
    finally:
        mounts.unmount(home, v, "main")
    calls = log.read_text().splitlines() if log.exists() else []
    assert not [c for c in calls if "overlay" in c.split()], calls


def test_layers_whose_paths_need_escaping_or_are_not_utf8_are_mounted(tmp_path: Path) -> None:
    """The options reach the kernel as the file system's bytes (a path need not be UTF-8,
    as the `mount` program took it), with ``,``, ``:`` and ``\\`` escaped as overlayfs
    reads them (stacking._escape)."""
    from avfs_git.fuse.stacking import _escape

    _overlay_or_skip()
    for i, name in enumerate(["a,b:c\\d", os.fsdecode(b"caf\xe9")]):
        root = tmp_path / str(i) / name
        d = {k: root / k for k in ("lower", "upper", "work", "merged")}
        for p in d.values():
            p.mkdir(parents=True)
        (d["lower"] / "a.txt").write_text("from below\n")
        opts = ",".join(f"{k}dir={_escape(str(d[k]))}" for k in ("lower", "upper", "work"))
        assert mount_overlay("avfs:test:main", str(d["merged"]), opts) is None, name
        try:
            assert (d["merged"] / "a.txt").read_text() == "from below\n"
            (d["merged"] / "b.txt").write_text("written\n")
            assert (d["upper"] / "b.txt").read_text() == "written\n"
        finally:
            subprocess.run(["umount", os.fsencode(d["merged"])], check=True)
