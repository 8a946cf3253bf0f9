"""Real projects' tools, fourth round (bench/realproj4.py; docs/testing.md, "Real projects'
own tools"): what the trials found, each on a real release in a real mount of each backend.

A file open for reading when a restore (or an undo, a merge into the fork: the view
moving) gives its path other bytes: on the local disk ``git reset --hard`` writes a new
file, the reader keeps the old one and every later open reads the new bytes. On the
pure-FUSE mount the path keeps its inode, and the reader's reads after the restore filled
the kernel's page cache of it with the old bytes, which every later open and process was
served from until something else made the daemon drop them.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from . import realdata
from .test_realprojects import Project, Spec, make_env
from .test_realtools import _require, _unmount

pytestmark = pytest.mark.slow

BACKENDS = ["overlay", "fuse"]
NATIVE = "src/markupsafe/_native.py"


def _project(tmp_path: Path, name: str) -> Project:
    spec = Spec(name, lambda: realdata.pypi_sdist("MarkupSafe", "2.1.5"), "a released project")
    env = make_env(tmp_path)
    src = realdata.extract(spec.fetch(), tmp_path / "src")
    proj = Project(spec, tmp_path, src, env, {}, "", {}, tmp_path)
    proj.avfs("vault", "create", name, "--from", str(src))
    return proj


def _settle(path: Path, want: bytes) -> None:
    """Wait until the mount shows ``want`` at ``path``, or 30 s (a restore returns once the
    mount's watcher took the new view, or after 5 s: at load 20-30 a CPU may come later)."""
    deadline = time.monotonic() + 30
    while path.read_bytes() != want and time.monotonic() < deadline:
        time.sleep(0.2)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_reader_open_across_a_restore_leaves_later_opens_the_restored_bytes(
    backend: str, tmp_path: Path
) -> None:
    """MarkupSafe 2.1.5 in a mount: ``_native.py`` edited and checkpointed, the fork restored
    to the release, a reader opened, the fork restored to the edit, and the reader read
    again; then a new open, ``cat`` in another process and the reader's close. Then the
    same for a file the fork has changed but not checkpointed (its overlay copy) across a
    restore that drops the change, and for a reader of a checkpointed file that another
    process writes (``avfs write``). Every later open shows what ``avfs cat`` shows (on the
    pure-FUSE mount they showed the bytes from before the restore, the reader's, until the
    mount ended or the file was written)."""
    _require(backend)
    proj = _project(tmp_path, "msread")
    vf = "msread:main"
    mp = tmp_path / "mnt"
    mp.mkdir()
    proj.avfs("mount", "--backend", backend, vf, str(mp))
    native = mp / NATIVE
    notes = mp / "notes.txt"
    try:
        release = native.read_bytes()
        edited = b"#" + release[1:]
        with native.open("r+b") as fh:
            fh.write(b"#")
        proj.avfs("--vault", vf, "checkpoint", "save", "edited")
        proj.avfs("--vault", vf, "checkpoint", "restore", "HEAD~1")
        _settle(native, release)
        with native.open("rb") as reader:
            assert reader.read() == release
            proj.avfs("--vault", vf, "checkpoint", "restore", "edited")
            reader.seek(0)
            reader.read()  # the old bytes (on disk) or the restored ones (pure FUSE)
            opened = native.read_bytes()
            cat = subprocess.run(["cat", str(native)], capture_output=True, check=True).stdout
        closed = native.read_bytes()
        shown = proj.avfs("--vault", vf, "cat", NATIVE).stdout

        notes.write_bytes(b"one\n")
        proj.avfs("--vault", vf, "checkpoint", "save", "one")
        notes.write_bytes(b"two, not checkpointed\n")
        with notes.open("rb") as reader:
            assert reader.read() == b"two, not checkpointed\n"
            proj.avfs("--vault", vf, "checkpoint", "restore", "one")
            reader.seek(0)
            reader.read()
            notes_opened = notes.read_bytes()
        notes_closed = notes.read_bytes()

        with notes.open("rb") as reader:  # on the blob; another process writes the path
            assert reader.read() == b"one\n"
            proj.avfs("--vault", vf, "write", "notes.txt", "three\n")
            _settle(notes, b"three\n")
            reader.seek(0)
            reader.read()
            written = notes.read_bytes()
    finally:
        _unmount(proj, "main")
    assert shown == edited
    assert (opened, cat, closed) == (edited, edited, edited), (opened[:8], cat[:8], closed[:8])
    assert (notes_opened, notes_closed) == (b"one\n", b"one\n"), (notes_opened, notes_closed)
    assert written == b"three\n", written


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_restore_drops_what_git_staged_as_git_reset_hard_does(backend: str, tmp_path: Path) -> None:
    """zlib's trial reduced, on MarkupSafe 2.1.5: a file removed and checkpointed, then
    brought back by ``git checkout HEAD~1 -- FILE`` (git stages its addition), and the fork
    restored to the checkpoint: the file is gone and ``git status`` is clean, as after
    ``git reset --hard`` in a checkout (on the overlay backend a restore onto the same base
    kept the view time, the index's stamp said it was current, and git said ``AD tox.ini``)."""
    _require(backend)
    proj = _project(tmp_path, "msstaged")
    vf = "msstaged:main"
    mp = tmp_path / "mnt"
    mp.mkdir()
    proj.avfs("mount", "--backend", backend, vf, str(mp))

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=mp, env=proj.env, capture_output=True, text=True, check=True
        ).stdout

    try:
        (mp / "tox.ini").unlink()
        proj.avfs("--vault", vf, "checkpoint", "save", "removed")
        git("checkout", "-q", "HEAD~1", "--", "tox.ini")
        staged = git("status", "--porcelain")
        proj.avfs("--vault", vf, "checkpoint", "restore", "removed")
        after = git("status", "--porcelain")
        there = (mp / "tox.ini").exists()
    finally:
        _unmount(proj, "main")
    assert staged == "A  tox.ini\n", staged
    assert (after, there) == ("", False), (after, there)
