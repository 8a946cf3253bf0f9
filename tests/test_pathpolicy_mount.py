"""Path policies in the kernel's path: a mounted fork attacked with every call a program
can make (write, create, O_TRUNC, an O_APPEND-less write, truncate, chmod, utime, unlink,
rename into and out of a protected subtree, hard and symbolic links, mkdir), then the fork
and its next checkpoint checked: nothing protected changed, nothing protected recorded.
The errno each backend answers is the table of docs/policy.md ("What each backend
guarantees"); this test is its source."""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from avfs_git.core.errors import AvfsError
from avfs_git.core.operations import checkpoint
from avfs_git.ops import mounts

from .test_fuse import require_fuse
from .test_overlay import require_overlay
from .test_pathpolicy import FILES, protect, tree_of


@pytest.fixture(params=["fuse"])
def mounted(
    request: pytest.FixtureRequest, home: Any, vault: Any, tmp_path: Path
) -> Iterator[tuple[Any, Path]]:
    """Fork ``main`` holding FILES, protected by POLICY, mounted by each backend."""
    require_fuse()
    if request.param == "overlay":
        require_overlay()
    ws = vault.workspace("main")
    for p, data in FILES.items():
        ws.write(p, data)
    checkpoint.save(vault, "main", message="files")
    protect(vault)
    mp = tmp_path / "mnt"
    mp.mkdir()
    info = mounts.mount(home, vault, "main", str(mp), backend=request.param)
    assert info.backend == request.param
    try:
        yield vault, mp
    finally:
        try:
            mounts.unmount(home, vault, "main", lazy=True)
        finally:
            if mounts.mounted_at(str(mp)):
                subprocess.run(["umount", "-l", str(mp)], check=False)


def _errno(call: Callable[[], object]) -> int:
    try:
        got = call()
    except OSError as exc:
        return exc.errno or -1
    if isinstance(got, int) and got > 2:
        os.close(got)  # an open that succeeded
    return 0


def _write_at(path: Path, flags: int, data: bytes = b"x", offset: int | None = None) -> None:
    fd = os.open(path, flags)
    try:
        if offset is None:
            os.write(fd, data)
        else:
            os.pwrite(fd, data, offset)
    finally:
        os.close(fd)


def attacks(mp: Path) -> dict[str, Callable[[], object]]:
    ro, ro_dir, hid, app = mp / "migrations/0001.sql", mp / "migrations", mp / ".env", mp / "logs/app.log"
    src = mp / "src/app.py"
    return {
        # read_only
        "ro open O_WRONLY": lambda: os.open(ro, os.O_WRONLY),
        "ro open O_RDWR": lambda: os.open(ro, os.O_RDWR),
        "ro open O_TRUNC": lambda: os.open(ro, os.O_WRONLY | os.O_TRUNC),
        "ro open O_APPEND": lambda: os.open(ro, os.O_WRONLY | os.O_APPEND),
        "ro truncate": lambda: os.truncate(ro, 0),
        "ro chmod": lambda: os.chmod(ro, 0o755),
        "ro utime": lambda: os.utime(ro, (0, 0)),
        "ro unlink": lambda: os.unlink(ro),
        "ro create": lambda: os.open(ro_dir / "0002.sql", os.O_WRONLY | os.O_CREAT, 0o644),
        "ro mkdir": lambda: os.mkdir(ro_dir / "sub"),
        "ro symlink": lambda: os.symlink("0001.sql", ro_dir / "l"),
        "ro rename out": lambda: os.rename(ro, mp / "src/stolen.sql"),
        "ro rename in": lambda: os.rename(src, ro_dir / "app.py"),
        "ro rename over": lambda: os.rename(src, ro),
        "ro rename dir": lambda: os.rename(ro_dir, mp / "old-migrations"),
        "ro rmdir": lambda: os.rmdir(ro_dir),
        "ro link out": lambda: os.link(ro, mp / "src/hard.sql"),
        "ro link in": lambda: os.link(src, ro_dir / "hard.py"),
        # hidden
        "hidden stat": lambda: os.stat(hid),
        "hidden open": lambda: os.open(hid, os.O_RDONLY),
        "hidden nested open": lambda: os.open(mp / "src/.env", os.O_RDONLY),
        "hidden dir entry": lambda: os.open(mp / "secrets/key.pem", os.O_RDONLY),
        "hidden create": lambda: os.open(hid, os.O_WRONLY | os.O_CREAT, 0o644),
        "hidden create in dir": lambda: os.open(mp / "secrets/new", os.O_WRONLY | os.O_CREAT, 0o644),
        "hidden mkdir": lambda: os.mkdir(mp / "secrets/sub"),
        "hidden rename onto": lambda: os.rename(src, hid),
        "hidden unlink": lambda: os.unlink(hid),
        "hidden rmdir parent": lambda: os.rmdir(mp / "src"),
        # append_only
        "append open O_WRONLY": lambda: os.open(app, os.O_WRONLY),
        "append open O_TRUNC": lambda: os.open(app, os.O_WRONLY | os.O_APPEND | os.O_TRUNC),
        "append truncate": lambda: os.truncate(app, 0),
        "append chmod": lambda: os.chmod(app, 0o755),
        "append unlink": lambda: os.unlink(app),
        "append rename": lambda: os.rename(app, mp / "logs/old.txt"),
        "append rename over": lambda: os.rename(src, app),
    }


# what each backend answers (docs/policy.md, "What each backend guarantees")
EXPECTED: dict[str, dict[str, int]] = {
    "fuse": {
        **{k: errno.EROFS for k in attacks(Path("/")) if k.startswith("ro ")},
        "ro rmdir": errno.ENOTEMPTY,  # not empty (and its files are read-only)
        "ro link out": errno.EPERM,  # the pure-FUSE mount makes no hard links at all
        "ro link in": errno.EPERM,
        **{k: errno.ENOENT for k in attacks(Path("/")) if k.startswith("hidden ")},
        "hidden create": errno.EACCES,
        "hidden create in dir": errno.EACCES,
        "hidden mkdir": errno.EACCES,
        "hidden rename onto": errno.EACCES,
        "hidden rmdir parent": errno.ENOTEMPTY,  # src/.env is there, unseen
        **{k: errno.EPERM for k in attacks(Path("/")) if k.startswith("append ")},
    },
}


def test_every_kernel_call_on_a_protected_path_fails_and_nothing_is_recorded(mounted: Any) -> None:
    vault, mp = mounted
    backend = "fuse"
    got = {name: _errno(call) for name, call in attacks(mp).items()}
    assert got == EXPECTED[backend]
    # what the rules allow still works: an append (also by pwrite on an O_APPEND descriptor,
    # which Linux puts at the end), a new append-only file, an ordinary write
    with open(mp / "logs/app.log", "ab") as fh:
        fh.write(b"line 2\n")
    _write_at(mp / "logs/app.log", os.O_WRONLY | os.O_APPEND, b"line 3\n", offset=0)
    (mp / "logs/new.log").write_bytes(b"first\n")
    (mp / "src/app.py").write_bytes(b"print('changed')\n")
    listed = set(os.listdir(mp))
    assert ".env" not in listed and {"src", "migrations", "secrets", "logs"} <= listed
    assert os.listdir(mp / "secrets") == [] and ".env" not in os.listdir(mp / "src")
    found = subprocess.run(["find", str(mp), "-name", "*.pem"], capture_output=True, text=True).stdout
    grep = subprocess.run(["grep", "-r", "s3cret", str(mp)], capture_output=True, text=True)
    assert found == "" and grep.returncode == 1 and grep.stdout == ""
    res = checkpoint.save(vault, "main", message="after the attacks")
    assert res.created and res.not_recorded == ()
    tree = tree_of(vault)
    for p in ("migrations/0001.sql", ".github/workflows/ci.yml", ".env", "src/.env", "secrets/key.pem"):
        assert tree[p] == FILES[p], p
    assert tree["logs/app.log"] == b"line 1\nline 2\nline 3\n"
    assert tree["logs/new.log"] == b"first\n" and tree["src/app.py"] == b"print('changed')\n"
    assert not {"src/stolen.sql", "migrations/app.py", "migrations/0002.sql", "src/hard.sql"} & set(tree)


def test_git_status_in_the_mount_does_not_show_hidden_files(mounted: Any) -> None:
    _, mp = mounted
    st = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"], cwd=mp, capture_output=True, text=True
    )
    assert st.returncode == 0 and st.stdout == "", st.stdout


def test_a_mount_refuses_to_start_with_a_pattern_that_does_not_parse(
    home: Any, vault: Any, tmp_path: Path
) -> None:
    require_fuse()
    vault.workspace("main").write("a", b"x")
    checkpoint.save(vault, "main", message="a")
    protect(vault, 'version = 1\n[paths]\nread_only = ["ok/**", "bad\\\\"]\n')
    mp = tmp_path / "mnt"
    mp.mkdir()
    with pytest.raises(AvfsError) as info:
        mounts.mount(home, vault, "main", str(mp), backend="fuse")
    assert info.value.code == "policy_invalid" and "bad" in info.value.message
    assert not mounts.mounted_at(str(mp)) and mounts.check(vault, "main") is None


def test_git_status_without_fsmonitor_does_not_show_hidden_files(mounted: Any) -> None:
    _, mp = mounted
    st = subprocess.run(
        ["git", "-c", "core.fsmonitor=false", "status", "--porcelain"], cwd=mp, capture_output=True, text=True
    )
    assert st.returncode == 0 and st.stdout == "", st.stdout
