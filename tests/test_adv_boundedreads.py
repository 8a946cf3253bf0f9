"""Two reads the review of the thirty-fourth round (review35) found unbounded or done twice,
closed in the thirty-fifth round (attack27; docs/security.md, "Other system call tables").

- ``core/workspace/plantedrule.py``'s ``refuse`` (every workspace write of a name of git's
  own state in a directory that is a repository) read a stream whole into memory to look at
  it: a write of ``src/config`` from a pipe, a stdin, took every byte the writer sent. Now
  at most 1 MiB + 1 is read (a config past 1 MiB is refused there, as before), and the
  bytes read are handed on before the rest of the stream: a file written there (a
  ``HEAD``, a plain config) keeps every byte.
- ``mount/gitkeptconfig.py`` checked the mount's ``config.worktree`` (a regular file, no
  link) and then had git read it again by its path: a confined command's rename between
  had git read a file the check never saw. Now git reads the checked bytes on its stdin:
  the file is opened once."""

from __future__ import annotations

import ctypes
import fcntl
import io
import os
import struct
import threading
from pathlib import Path
from typing import Any

import pytest

from avfs_git.core.errors import InvalidPathError
from avfs_git.core.workspace import plantedrule
from avfs_git.mount import gitkeptconfig

_F_GETPIPE_SZ = 1032


def _repository(ws: Any) -> None:
    """``src/`` a plain repository to git's discovery (``HEAD``, ``objects/``, ``refs/``)."""
    ws.write("src/objects/info/packs", b"")
    ws.write("src/refs/heads/main", b"")
    ws.write("src/HEAD", b"ref: refs/heads/main\n")


class _Pipe:
    """A real pipe whose writer (a thread) sends ``total`` bytes of ``unit`` and counts
    what the pipe took; the read end as a stream for the write."""

    def __init__(self, unit: bytes, total: int) -> None:
        r, self.w = os.pipe()
        self.capacity = fcntl.fcntl(self.w, _F_GETPIPE_SZ)
        self.stream = os.fdopen(r, "rb")
        self.sent = 0
        self.chunk = unit * (65536 // len(unit))
        self.total = total
        self.thread = threading.Thread(target=self._send, daemon=True)
        self.thread.start()

    def _send(self) -> None:
        try:
            while self.sent < self.total:
                self.sent += os.write(self.w, self.chunk[: self.total - self.sent])
        except BrokenPipeError:
            pass
        finally:
            os.close(self.w)

    def done(self) -> int:
        self.stream.close()  # (the writer's next write: EPIPE)
        self.thread.join(timeout=60)
        assert not self.thread.is_alive()
        return self.sent


def test_a_config_streamed_past_the_bound_is_refused_having_read_no_more_than_it(
    home: Any, vault: Any
) -> None:
    ws = vault.workspace("main")
    _repository(ws)
    pipe = _Pipe(b"[core]\n\tbare = false\n", 64 << 20)
    try:
        with pytest.raises(InvalidPathError, match="past 1 MiB"):
            ws.write("src/config", pipe.stream)
    finally:
        sent = pipe.done()
    # what the pipe took: what was read, what its buffer holds, one write cut short
    most = plantedrule.MAX_CONFIG + 1 + pipe.capacity + len(pipe.chunk)
    assert sent <= most, f"the write read {sent} bytes of the stream (main: all 64 MiB)"


def test_the_bytes_read_to_look_are_handed_on_with_the_rest(home: Any, vault: Any, tmp_path: Path) -> None:
    """A ``HEAD`` past the bound (its bytes are not what is judged) and a plain config
    within it, from a pipe and from a local file: every byte written."""
    ws = vault.workspace("main")
    _repository(ws)
    big = 3 * plantedrule.MAX_CONFIG + 7
    pipe = _Pipe(b"0123456789abcdef", big)
    ws.write("src/HEAD", pipe.stream)
    pipe.done()
    want = (b"0123456789abcdef" * (big // 16 + 1))[:big]
    assert ws.read("src/HEAD") == want
    plain = b"[core]\n\trepositoryformatversion = 0\n\tbare = false\n"
    pipe = _Pipe(plain, len(plain))
    ws.write("src/config", pipe.stream)
    pipe.done()
    assert ws.read("src/config") == plain
    local = tmp_path / "HEAD"
    local.write_bytes(want[::-1])
    ws.write_from_file("src/HEAD", str(local))
    assert ws.read("src/HEAD") == want[::-1]


def _opens(path: Path) -> tuple[int, Any]:
    """An inotify descriptor watching the opens of ``path``, and a counter of them."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
    assert fd >= 0
    # IN_OPEN and IN_CLOSE_NOWRITE: two opens in a row would be one event (inotify merges
    # an event equal to the last one queued)
    assert libc.inotify_add_watch(fd, str(path).encode(), 0x20 | 0x10) >= 0

    def count() -> int:
        n = 0
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return 0
        while data:
            _wd, mask, _cookie, length = struct.unpack_from("=iIII", data)
            n += bool(mask & 0x20)
            data = data[16 + length :]
        return n

    return fd, count


def _read_by(tmp_path: Path, text: str, read: Any) -> tuple[Any, int]:
    """What ``read(git_dir)`` answers of a worktree git dir whose ``config.worktree`` holds
    ``text``, and how often that file was opened meanwhile."""
    git_dir = tmp_path / "wt"
    git_dir.mkdir()
    conf = git_dir / "config.worktree"
    conf.write_text(text)
    fd, count = _opens(conf)
    try:
        got = read(str(git_dir))
        return got, count()
    finally:
        os.close(fd)


def test_the_kept_settings_are_the_bytes_checked(tmp_path: Path) -> None:
    """``config.worktree`` is opened once (the check's read), and git reads those bytes:
    a rename after the check reaches nothing."""
    text = "[core]\n\tbare = false\n[user]\n\temail = person@example.invalid\n"
    kept, opened = _read_by(tmp_path, text, gitkeptconfig.kept)
    assert kept == [["user.email", "person@example.invalid"]]
    assert opened == 1, f"config.worktree opened {opened} times (main: 2, the check's and git's)"


def test_the_kept_booleans_are_the_bytes_checked(tmp_path: Path) -> None:
    """The same for the booleans an unmount keeps (``gitkeep._kept_setting``: sparse
    checkout's, ``core.fsmonitor``, ``core.fileMode``): asked of git once a key, by the
    path each time before (a FIFO swapped in would have held the unmount)."""
    from avfs_git.mount import gitkeep

    text = "[core]\n\tsparseCheckout = true\n\tfileMode = false\n\tfsmonitor = false\n"
    kept, opened = _read_by(tmp_path, text, gitkeep._kept_setting)
    assert kept == {"core.sparseCheckout": True, "core.fsmonitor": False, "core.fileMode": False}
    assert opened == 1, f"config.worktree opened {opened} times (main: 5, the check's and git's four)"


GOOD = b"[core]\n\tbare = false\n" + b"#" * 64 + b"\n"
BAD = b"[core]\n\tfsmonitor = touch /tmp/avfs-review37-planted\n"
BAD = BAD + b"#" * (len(GOOD) - len(BAD) - 1) + b"\n"


class _Rewritten(io.FileIO):
    """A real file another writer rewrites in place once it has been read (here, as the
    check seeks back): a file of a mount a running command writes, given to ``avfs write
    --from``."""

    def seek(self, pos: int, whence: int = 0) -> int:
        fd = os.open(self.name, os.O_WRONLY)
        try:
            os.pwrite(fd, BAD, 0)
        finally:
            os.close(fd)
        return super().seek(pos, whence)


def test_a_config_written_from_a_file_is_the_bytes_checked_not_the_file_read_again(
    home: Any, vault: Any, tmp_path: Path
) -> None:
    """The review of the thirty-fifth round (review37): a stream that can seek was put back
    and read again by the write, after the check of its first bytes: a file rewritten
    between them planted the fsmonitor config the check never saw."""
    ws = vault.workspace("main")
    _repository(ws)
    with pytest.raises(InvalidPathError):
        ws.write("src/config", BAD)  # (the config is one the check refuses)
    src = tmp_path / "cfg"
    src.write_bytes(GOOD)
    with _Rewritten(str(src), "r") as fh:
        ws.write("src/config", fh)
    assert ws.read("src/config") == GOOD


def test_a_file_grown_after_its_size_was_read_is_read_no_further_than_the_bound(
    home: Any, vault: Any
) -> None:
    """The review of the thirty-fifth round (review37): the check read its size, then the
    whole file: one a mount's writer grows in between was read into memory whole. The
    overlay's file grown under the entry (as a writer through a mount does), then read
    with the bound: no more than the bound comes back, and the check refuses it."""
    ws = vault.workspace("main")
    ws.write("big", b"x" * 10)
    view = ws.view
    node = view.lookup("big")
    assert node is not None and node.entry is not None
    fd = view.source.open_file(node.entry.fileid)
    path = os.readlink(f"/proc/self/fd/{fd}")
    os.close(fd)
    with open(path, "ab") as fh:
        fh.write(b"y" * (4 * plantedrule.MAX_CONFIG))
    assert len(view.read_node(node, plantedrule.MAX_CONFIG + 1)) == plantedrule.MAX_CONFIG + 1
    assert plantedrule.of_view(view).read("big", plantedrule.MAX_CONFIG) is None
    assert len(view.read_node(node)) == 10 + 4 * plantedrule.MAX_CONFIG  # (unbounded: all of it)
