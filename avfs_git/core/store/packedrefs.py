"""git's ``packed-refs`` file, read as git reads it: one ref by a binary search of the
mapped file, the refs under a prefix as one range of it.

A clone writes every ref there (`git clone` does; avfs's since the thirtieth round:
docs/benchmarks.md, "Clone, fetch and push with 20,000 branches"), so a vault cloned from
a remote with 20,000 branches and 20,000 tags has a 3.6 MB file of 60,000 lines. Each read
of one ref split the whole file into lines and scanned them (56 ms at load ~10); a listing
that read each fork's ref so (`vault info`, a fetch's remote-tracking refs before and after)
was O(refs^2). git keeps the file sorted by name (the header's ``sorted`` trait) and
searches it; so does this module, and scans it whole (as before) only when the header does
not say so.

The file is read without waiting on a FIFO (one there held every command that lists refs
for ever, git's own too) and only when it is a regular file.
"""

from __future__ import annotations

import errno
import mmap
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager

from ..errors import CorruptStateError

_PEELED = ord("^")


def _open(git_dir: str) -> int:
    """A descriptor of ``git_dir``'s ``packed-refs`` (-1: there is none).

    Raises:
        CorruptStateError: something other than a regular file is there.
    """
    path = os.path.join(git_dir, "packed-refs")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return -1
    except OSError as exc:
        if exc.errno != errno.ENXIO:  # (a socket)
            raise
        fd = -2
    if fd < 0 or not stat.S_ISREG(os.fstat(fd).st_mode):
        if fd >= 0:
            os.close(fd)
        raise CorruptStateError(
            f"the vault's packed-refs {path} is not a file (a directory, a FIFO or a socket),"
            " so its refs cannot be listed; nothing was changed",
            hint="move it aside (`git for-each-ref` in the vault cannot read it either): the"
            " vault's loose refs are read then",
            details={"path": path},
        )
    return fd


def read(git_dir: str) -> bytes:
    """The whole of ``git_dir``'s ``packed-refs`` (b"" when there is none)."""
    fd = _open(git_dir)
    if fd < 0:
        return b""
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks)


@contextmanager
def mapped(git_dir: str) -> Iterator[bytes | mmap.mmap]:
    """``git_dir``'s ``packed-refs`` mapped (b"" when there is none or it is empty): a
    search touches a few pages of it, never the whole. git replaces the file by a rename,
    so the mapping keeps the version it opened."""
    fd = _open(git_dir)
    if fd < 0:
        yield b""
        return
    try:
        size = os.fstat(fd).st_size
        data: bytes | mmap.mmap = mmap.mmap(fd, 0, access=mmap.ACCESS_READ) if size else b""
    finally:
        os.close(fd)
    try:
        yield data
    finally:
        if isinstance(data, mmap.mmap):
            data.close()


def _body(data: bytes | mmap.mmap) -> tuple[int, bool]:
    """(where the records start, whether git wrote them sorted): the header line
    ``# pack-refs with: <traits> `` names ``sorted`` when they are."""
    if data[:1] != b"#":
        return 0, False
    end = data.find(b"\n")
    end = len(data) if end < 0 else end + 1
    return end, b" sorted " in bytes(data[:end]).rstrip(b"\n") + b" "


def _record_start(data: bytes | mmap.mmap, lo: int, pos: int) -> int:
    """The start of the record (a ref's line) that holds ``pos``, never before ``lo`` (a
    record's start): back to its line's start, and back over peeled (``^``) lines."""
    start = max(lo, data.rfind(b"\n", lo, pos) + 1)
    while start > lo and data[start] == _PEELED:
        start = max(lo, data.rfind(b"\n", lo, start - 1) + 1)
    return start


def _line_end(data: bytes | mmap.mmap, start: int) -> int:
    end = data.find(b"\n", start)
    return len(data) if end < 0 else end


def _record_end(data: bytes | mmap.mmap, start: int) -> int:
    """Where the record after the one at ``start`` begins (past its peeled lines)."""
    end = _line_end(data, start) + 1
    while end < len(data) and data[end] == _PEELED:
        end = _line_end(data, end) + 1
    return min(end, len(data))


def _name(line: bytes) -> bytes:
    return line.partition(b" ")[2]


def _seek(data: bytes | mmap.mmap, lo: int, name: bytes) -> int:
    """The start of the first record of the sorted body (from ``lo``) whose name is not
    below ``name`` (git's ``find_reference_location``, by bytes as git compares them)."""
    hi = len(data)
    while lo < hi:
        mid = lo + (hi - lo) // 2
        rec = _record_start(data, lo, mid)
        here = _name(bytes(data[rec : _line_end(data, rec)]))
        if here < name:
            lo = _record_end(data, rec)
        else:
            hi = rec
    return lo


def lookup(git_dir: str, name: str) -> str | None:
    """The id packed ref ``name`` names (its line's first 40 characters, as git reads a
    SHA-1 vault's), or None when the file does not hold it."""
    target = name.encode()
    with mapped(git_dir) as data:
        start, is_sorted = _body(data)
        if is_sorted:
            rec = _seek(data, start, target)
            line = bytes(data[rec : _line_end(data, rec)])
            return line[:40].decode("ascii") if rec < len(data) and _name(line) == target else None
        suffix = b" " + target
        for line in bytes(data[start:]).split(b"\n"):
            if line.endswith(suffix) and not line.startswith((b"#", b"^")):
                return line[:40].decode("ascii")
    return None


def under(git_dir: str, prefix: str) -> dict[str, str]:
    """Every packed ref whose name starts with ``prefix`` -> the id its line names, read
    from one range of the file when it is sorted (two searches: where the prefix's names
    begin, and where they end; no UTF-8 name holds the byte 0xff)."""
    want = prefix.encode()
    with mapped(git_dir) as data:
        start, is_sorted = _body(data)
        if is_sorted:
            lo = _seek(data, start, want)
            chunk = bytes(data[lo : _seek(data, lo, want + b"\xff")])
        else:
            chunk = bytes(data[start:])
    out: dict[str, str] = {}
    for line in chunk.split(b"\n"):
        oid, space, ref = line.partition(b" ")
        if space and ref.startswith(want) and not oid.startswith((b"#", b"^")):
            out[ref.decode("utf-8", "replace")] = oid.decode("ascii", "replace")
    return out
