"""`make test`'s base temporary directory (tests/basetemp.py, the Makefile's ``TEST_TMP``):
pytest is given one of the checkout's own, and the last run's is removed before pytest
starts, so the run's time is not pytest's removal of earlier sessions' trees (suitetime20)."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import skip_outside_ci

ROOT = Path(__file__).resolve().parent.parent
# what a `make test` around this test hands its sub-makes (its TEST_TMP among them)
_MAKES = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "TEST_TMP", "TEST_JOBS", "PYTEST_ARGS")


def _make_n(*args: str) -> list[list[str]]:
    """The commands `make test` would run (``make -n``: none of them run), split."""
    out = subprocess.run(
        ["make", "-n", "--no-print-directory", "test", "TEST_JOBS=2", *args],
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if k not in _MAKES},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [shlex.split(ln.split(";")[0]) for ln in out.splitlines() if " -m " in ln]


def _mounted(path: Path) -> bool:
    """(a bind mount of a directory of the same file system: ``os.path.ismount`` says no)"""
    with open("/proc/self/mounts", encoding="utf-8") as fh:
        return any(ln.split()[1] == str(path) for ln in fh)


def test_make_test_gives_pytest_a_base_temp_dir_of_its_own_removed_before_the_run(tmp_path: Path) -> None:
    """The recipe removes ``TEST_TMP`` (tests/basetemp.py), then runs pytest with it as
    ``--basetemp`` (before PYTEST_ARGS, so one given there still wins); by default a
    directory named by the checkout under the temp root, never pytest's shared one."""
    want = str(tmp_path / "bt")
    cmds = [c for c in _make_n(f"TEST_TMP={want}") if c[2] in ("tests.basetemp", "pytest")]
    assert [c[2] for c in cmds] == ["tests.basetemp", "pytest"], cmds
    assert cmds[0][3:] == [want], cmds
    pytest_cmd = cmds[1]
    assert pytest_cmd[pytest_cmd.index("--basetemp") + 1] == want, pytest_cmd
    default = next(c for c in _make_n() if c[2] == "pytest")
    base = default[default.index("--basetemp") + 1]
    assert base.startswith(os.environ.get("TMPDIR", "/tmp") + "/avfs-test-"), base
    assert "pytest-of-" not in base, base
    # (no longer than pytest's own, /tmp/pytest-of-root/pytest-N: socket paths in it have a limit)
    assert len(base) <= len(
        os.path.join(os.environ.get("TMPDIR", "/tmp"), "pytest-of-root", "pytest-1000")
    ), base


def test_the_last_run_s_tree_is_removed_with_what_a_plain_removal_fails_on(tmp_path: Path) -> None:
    """A killed run's tree: a mount daemon's pinned ``upper/.git`` (``chattr +i``: a plain
    removal fails EPERM on it, shown first), something still mounted below it (a bind mount
    of a directory outside: a removal through it would delete that directory's files) and
    a directory 1,200 levels deep. ``python -m tests.basetemp`` (as `make test` runs it)
    removes it all, the bind mount's source untouched."""
    if os.geteuid() != 0:
        skip_outside_ci("a bind mount and chattr +i need root")
    top = tmp_path / "bt"
    upper = top / "popen-gw0" / "test_a0" / "home" / "forks" / "f" / "upper"
    upper.mkdir(parents=True)
    (upper / ".git").write_text("gitdir: /nowhere\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("kept\n")
    mnt = top / "popen-gw1" / "test_b0" / "mnt"
    mnt.mkdir(parents=True)
    deep = top / "popen-gw1" / "test_c0"
    deep.mkdir()
    fd = os.open(deep, os.O_RDONLY)
    try:
        for _ in range(1200):
            os.mkdir("d", dir_fd=fd)
            nfd = os.open("d", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = nfd
    finally:
        os.close(fd)
    subprocess.run(["chattr", "+i", str(upper / ".git")], check=True)
    try:
        with pytest.raises(PermissionError):
            shutil.rmtree(upper)  # (what pytest's own removal meets: it keeps it as garbage-*)
        subprocess.run(["mount", "--bind", str(outside), str(mnt)], check=True)
        assert _mounted(mnt)
        out = subprocess.run(
            [sys.executable, "-m", "tests.basetemp", str(top)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        assert not top.exists(), list(top.rglob("*"))[:5]
        assert "removed the last run's temporary files" in out.stdout, out
        assert (outside / "keep.txt").read_text() == "kept\n"
        # nothing there: nothing said, nothing done
        again = subprocess.run(
            [sys.executable, "-m", "tests.basetemp", str(top)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        assert again.stdout == "", again
    finally:
        if _mounted(mnt):
            subprocess.run(["umount", "-l", str(mnt)], check=False)
        if (upper / ".git").exists():
            subprocess.run(["chattr", "-i", str(upper / ".git")], check=False)
        if top.exists():  # (pytest's own removal of a 1,200-level tree: RecursionError)
            subprocess.run([sys.executable, "-m", "tests.basetemp", str(top)], cwd=ROOT, check=False)


_LEAVES_A_MOUNT = """
import subprocess

def test_leaves_a_mount(tmp_path):
    (tmp_path / "m").mkdir()
    subprocess.run(["mount", "--bind", OUTSIDE, str(tmp_path / "m")], check=True)
"""


def test_a_mount_a_failed_test_left_is_detached_at_the_session_s_end(tmp_path: Path) -> None:
    """A test whose unmount was refused (busy) leaves its mount: the session's end
    (conftest.pytest_sessionfinish) detaches what is mounted below its temp dir and names it
    on stderr. CI's clean clone has a temp dir no later run clears: a mount left there
    stayed past the run (ci27's, found at the next session's start)."""
    if os.geteuid() != 0:
        skip_outside_ci("a bind mount needs root")
    suite = tmp_path / "inner"
    suite.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("kept\n")
    (suite / "conftest.py").write_text("from tests.conftest import pytest_sessionfinish  # noqa: F401\n")
    (suite / "test_left.py").write_text(f"OUTSIDE = {str(outside)!r}\n" + _LEAVES_A_MOUNT)
    bt = tmp_path / "bt"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "AVFS_"))}
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=",
         "--rootdir", str(suite), "--basetemp", str(bt), str(suite)],
        capture_output=True, text=True, timeout=120, env=env, cwd=str(suite),
    )  # fmt: skip
    try:
        assert proc.returncode == 0, proc.stdout + proc.stderr
        left = bt / "test_leaves_a_mount0" / "m"
        assert not _mounted(left)
        assert f"left mounted by a test, detached at the session's end: {left}" in proc.stderr, proc.stderr
        assert (outside / "keep.txt").read_text() == "kept\n"
    finally:
        for ln in Path("/proc/self/mounts").read_text().splitlines():
            if str(bt) in ln.split()[1]:
                subprocess.run(["umount", "-l", ln.split()[1]], check=False)
