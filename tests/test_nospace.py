"""A full disk under the avfs home: a clear `no_space` error (exit 1, ENOSPC in a mount),
nothing half-written, and everything works again once space is freed.

The home is a small tmpfs (root only: mount(2)); it is always unmounted in `finally`.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import IN_CI
from .test_fuse import require_fuse

# the home's warm CLI server, as a user's (tests/conftest.py, warm_cli): its calls are the CLI's, not its start
pytestmark = pytest.mark.warm_cli


@pytest.fixture
def small_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    if os.geteuid() != 0:
        if IN_CI:
            pytest.fail("CI runs as root: a tmpfs home must be mountable")
        pytest.skip("requires root to mount a small tmpfs as the avfs home")
    home = tmp_path / "small-home"
    home.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(home)], check=True)
    monkeypatch.setenv("AVFS_HOME", str(home))
    try:
        yield home
    finally:
        subprocess.run(
            [sys.executable, "-m", "avfs_git", "unmount", "--all"],
            capture_output=True,
            timeout=60,
            check=False,
        )
        for line in Path("/proc/mounts").read_text(errors="surrogateescape").splitlines():
            where = line.split()[1]
            if where.startswith(str(tmp_path)) and where != str(home):
                subprocess.run(["umount", "-l", where], check=False)
        subprocess.run(["umount", "-l", str(home)], check=True)


def avfs(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "avfs_git", *args],
        input=stdin.decode() if stdin else None,
        capture_output=True,
        text=True,
        timeout=120,
    )


def ok(*args: str) -> str:
    r = avfs(*args)
    assert r.returncode == 0, f"avfs {args}: {r.stdout}{r.stderr}"
    return r.stdout


def no_space(*args: str) -> None:
    r = avfs("--json", *args)
    docs = [line for line in r.stdout.splitlines() if line.strip()]
    assert len(docs) == 1, r.stdout + r.stderr
    doc = json.loads(docs[0])
    assert r.returncode == 1 and doc["kind"] == "error", r.stdout + r.stderr
    assert doc["error"]["code"] == "no_space", doc
    assert "free some space" in doc["error"]["hint"]


def fill(home: Path, keep: int) -> Path:
    """Take all but ``keep`` bytes of the home's file system; returns the ballast file."""
    ballast = home / "ballast"
    st = os.statvfs(home)
    free = st.f_bavail * st.f_frsize
    if free - keep > 0:
        subprocess.run(["fallocate", "-l", str(free - keep), str(ballast)], check=True)
    return ballast


def state(home: Path) -> dict[str, object]:
    """What must not change: refs, the overlay (status), its files, the packs, the op log."""
    vault = home / "vaults" / "v.git"
    refs = subprocess.run(
        ["git", "--git-dir", str(vault), "for-each-ref", "--format=%(refname) %(objectname)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    files = sorted(p.name for p in (vault / "avfs" / "ws" / "main" / "files").iterdir())
    packs = sorted(p.name for p in (vault / "objects" / "pack").iterdir())
    loose = sorted(str(p.relative_to(vault)) for p in (vault / "objects").glob("??/*"))
    status = json.loads(ok("--json", "--vault", "v", "status"))
    ops = json.loads(ok("--json", "--vault", "v", "op", "log"))
    return {"refs": refs, "files": files, "packs": packs, "loose": loose, "status": status, "ops": ops}


def test_a_full_home_fails_clearly_changes_nothing_and_recovers(small_home, tmp_path):
    require_fuse()
    home = small_home
    ok("vault", "create", "v")
    ok("--vault", "v", "write", "a.txt", "a\n")
    ok("--vault", "v", "write", "b.txt", "b\n")
    ok("--vault", "v", "checkpoint", "save", "-m", "one")
    mid = tmp_path / "mid.bin"
    mid.write_bytes(os.urandom(400_000))
    ok("--vault", "v", "write", "mid.bin", "--file", str(mid))  # uncheckpointed: the pack will not fit
    mp = tmp_path / "mnt"
    mp.mkdir()
    # avfs's own write path (through an overlay mount the kernel answers ENOSPC itself, and
    # an rm, a whiteout, still succeeds on a full disk as it does on any local one)
    ok("mount", "--backend", "fuse", "v:main", str(mp))
    before = state(home)
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(600_000))

    # room for the databases, not for the data: the write and the checkpoint's pack fail
    ballast = fill(home, 200_000)
    no_space("--vault", "v", "write", "big.bin", "--file", str(big))
    no_space("--vault", "v", "checkpoint", "save")
    with pytest.raises(OSError) as exc:
        (mp / "big.bin").write_bytes(big.read_bytes())
    assert exc.value.errno == errno.ENOSPC
    ballast.unlink()
    os.unlink(mp / "big.bin")  # what the kernel let through, as on a local disk
    assert state(home) == before

    # no room at all: every write fails the same way, also in the mount
    ballast = fill(home, 0)
    no_space("--vault", "v", "write", "d.txt", "d\n")
    no_space("--vault", "v", "rm", "a.txt")
    no_space("--vault", "v", "checkpoint", "save")
    no_space("--vault", "v", "mkdir", "newdir")
    for action in (
        lambda: (mp / "e.txt").write_text("e\n"),
        lambda: os.unlink(mp / "a.txt"),
        lambda: os.mkdir(mp / "dir"),
        lambda: os.rename(mp / "a.txt", mp / "renamed.txt"),
    ):
        with pytest.raises(OSError) as exc:
            action()
        assert exc.value.errno == errno.ENOSPC, exc.value
    ballast.unlink()
    assert state(home) == before

    # space is back: everything works, through the CLI and the same mount
    ok("--vault", "v", "write", "big.bin", "--file", str(big))
    ok("--vault", "v", "rm", "a.txt")
    (mp / "e.txt").write_text("e\n")
    os.mkdir(mp / "dir")
    (mp / "dir" / "f.txt").write_text("f\n")
    doc = json.loads(ok("--json", "--vault", "v", "checkpoint", "save", "-m", "after"))
    assert doc["created"]
    ok("unmount", "v:main")
    vault = str(home / "vaults" / "v.git")
    tree = subprocess.run(
        ["git", "--git-dir", vault, "ls-tree", "-r", "--name-only", "main"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert sorted(tree) == ["b.txt", "big.bin", "dir/f.txt", "e.txt", "mid.bin"]
    fsck = subprocess.run(["git", "--git-dir", vault, "fsck", "--strict"], capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    assert not list((home / "vaults" / "v.git" / "objects" / "pack").glob("tmp_*"))


def _open_for_writing(mp: Path) -> None:
    with open(mp / "a.txt", "r+b"):
        pass


# each makes a new overlay file first (a copy of a.txt's blob, a link's target, a copy's
# bytes, a write's bytes), then the entry that names it, in a transaction
ROOM_FOR_THE_FILE_NOT_THE_ENTRY = {
    "open_for_writing": lambda mp: _open_for_writing(mp),
    "symlink": lambda mp: os.symlink("a.txt", mp / "link"),
    "cli_cp": lambda mp: no_space("--vault", "v", "cp", "a.txt", "c.txt"),
    "cli_write": lambda mp: no_space("--vault", "v", "write", "w.txt", "w\n"),
}


@pytest.mark.parametrize("action", sorted(ROOM_FOR_THE_FILE_NOT_THE_ENTRY))
def test_room_for_a_new_overlay_file_but_not_its_entry_leaves_no_file_behind(small_home, tmp_path, action):
    """A home with room for one page: the overlay file a change makes first (the copy of
    a file opened for writing through a pure-FUSE mount, a symlink's target) takes it, and
    the transaction of the entry that would name it finds the disk full. The change fails
    with ENOSPC (``no_space``) and leaves nothing: the file went with the failed
    transaction (it was left in ``files/``, named by no entry, by the mount's opens and
    symlinks: twenty-sixth round, nospace1)."""
    require_fuse()
    home = small_home
    ok("vault", "create", "v")
    ok("--vault", "v", "write", "a.txt", "a\n")
    ok("--vault", "v", "checkpoint", "save", "-m", "one")
    mp = tmp_path / "mnt"
    mp.mkdir()
    ok("mount", "--backend", "fuse", "v:main", str(mp))
    before = state(home)
    ballast = fill(home, 4096)  # one page: a small file's, not the database's frames
    if action.startswith("cli_"):
        ROOM_FOR_THE_FILE_NOT_THE_ENTRY[action](mp)
    else:
        with pytest.raises(OSError) as exc:
            ROOM_FOR_THE_FILE_NOT_THE_ENTRY[action](mp)
        assert exc.value.errno == errno.ENOSPC, exc.value
    ballast.unlink()
    assert state(home) == before
    # space is back: the same change works
    if action == "open_for_writing":
        with open(mp / "a.txt", "r+b") as fh:
            fh.write(b"A")
        assert (mp / "a.txt").read_bytes() == b"A\n"
    elif action == "symlink":
        os.symlink("a.txt", mp / "link")
        assert os.readlink(mp / "link") == "a.txt"
    ok("unmount", "v:main")


def _full(home: Path) -> Path:
    """The home's file system full to its last page (:func:`fill` may race a writer: the
    daemon's own files grow meanwhile); returns the ballast file."""
    ballast = home / "ballast"
    fd = os.open(ballast, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        st = os.statvfs(home)
        if st.f_bavail * st.f_frsize > 1 << 20:
            os.posix_fallocate(fd, 0, st.f_bavail * st.f_frsize - (1 << 20))
        with pytest.raises(OSError) as exc:
            while True:
                os.write(fd, bytes(4096))
        assert exc.value.errno == errno.ENOSPC, exc.value
    finally:
        os.close(fd)
    return ballast


def test_a_file_fsynced_on_a_full_disk_has_its_size_recorded_once_there_is_room(small_home, tmp_path):
    """A pure-FUSE mount records the size of a file written through a descriptor at its
    `fsync` (and at its close, batched by the watcher's poll). With the home full, that
    record fails (`fsync` answers ENOSPC, as a local disk's may); the handle then counted as
    recorded and the close after it recorded nothing: the file counted 0 bytes for the
    quota until its next write or a checkpoint, past the unmount (nospace1 noticed it for
    the close, gitgc4). Now its close records it once there is room again."""
    require_fuse()
    home = small_home
    ok("vault", "create", "v")
    ok("--vault", "v", "write", "a.txt", "a\n")
    ok("--vault", "v", "checkpoint", "save", "-m", "one")
    mp = tmp_path / "mnt"
    mp.mkdir()
    ok("mount", "--backend", "fuse", "v:main", str(mp))
    data = os.urandom(100_000)
    try:
        fd = os.open(mp / "new.bin", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            assert os.write(fd, data) == len(data)  # (the overlay file has its bytes)
            ballast = _full(home)
            with pytest.raises(OSError) as exc:
                os.fsync(fd)
            assert exc.value.errno == errno.ENOSPC, exc.value
            ballast.unlink()
        finally:
            os.close(fd)
        assert (mp / "new.bin").read_bytes() == data
    finally:
        ok("unmount", "v:main")
    doc = json.loads(ok("--json", "--vault", "v", "quota", "show"))
    assert doc["overlay_bytes"] == len(data), doc


def test_a_size_the_watcher_could_not_record_is_recorded_at_its_next_poll(vault, monkeypatch):
    """A pure-FUSE mount's closes leave their files' sizes to the watcher's next poll
    (``_record_sizes``: one transaction for them all). A poll whose transaction failed (the
    home's disk full: "database or disk is full", which a real full disk gives only when the
    database's write-ahead log must grow, so it is raised here where the poll calls it)
    dropped its paths: their sizes stayed unrecorded for good (nospace1 noticed it, gitgc4).
    Now the next poll records them."""
    from avfs_git.core.errors import NoSpaceError
    from avfs_git.fuse.ops import WorkspaceFS

    ws = vault.workspace("main")
    fs = WorkspaceFS(ws)  # what a pure-FUSE mount's daemon calls
    fs._inval = lambda *a: 0  # (set up by init() in a mount: closes defer their sizes to the poll)
    data = b"x" * 100_000
    fh = fs.create("/new.bin", 0o644)
    assert fs.write("/new.bin", data, 0, fh) == len(data)
    fs.flush("/new.bin", fh)
    fs.release("/new.bin", fh)
    record = ws.record_sizes
    tried: list[list[str]] = []

    def full(paths: list[str]) -> None:
        tried.append(list(paths))
        raise NoSpaceError("database or disk is full")

    monkeypatch.setattr(ws, "record_sizes", full)
    with pytest.raises(NoSpaceError):
        fs._record_sizes()  # the watcher's poll
    assert tried == [["new.bin"]]
    monkeypatch.setattr(ws, "record_sizes", record)
    fs._record_sizes()  # the next poll, room again
    entry = ws.overlay.get("new.bin")
    assert entry is not None and entry.size == len(data)
