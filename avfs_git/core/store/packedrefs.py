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
for ever, git's own too) and only when it is a regular file. Its lines are read as git reads
them (the thirty-first round, attack22, differential against `git for-each-ref` and `git
rev-parse`: tests/test_adv_packedrefs.py): a ref whose line names no object id (cut short,
another character) is a damaged ref, an error naming the line (git: "unexpected line"),
never its bytes taken for an id (it was: the first 40 characters, or exit 70 on a non-ASCII
one); a name holding a control character (a file rewritten with CRLF ends) names no ref
(git ignores it: "broken name"); and a prefix's range ends past every name that starts with
it, bytes above 0x7f included (a branch name git takes need not be UTF-8: one beginning
with 0xff was left out of the range).
"""

from __future__ import annotations

import errno
import mmap
import os
import re
import stat
from collections.abc import Iterator
from contextlib import contextmanager

from ..errors import CorruptStateError

_PEELED = ord("^")
_ID = re.compile(rb"[0-9a-f]{40}(?:[0-9a-f]{24})?")
# every byte but a control character or a newline (a name holding one: git ignores the ref);
# deleted from a range, what is left is its newlines alone when none is there (one pass in
# C: a regular expression's search took 44 ms over a 3.9 MB file, the listing's own 50)
_NOT_CONTROL = bytes(b for b in range(256) if (b >= 0x20 and b != 0x7F) or b == 0x0A)


def _control(text: bytes) -> bool:
    """Whether ``text`` holds a control character other than a newline."""
    return text.translate(None, _NOT_CONTROL).strip(b"\n") != b""


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


def _check_end(git_dir: str, data: bytes | mmap.mmap, start: int) -> None:
    """Raise unless the records (from ``start``) end as git requires before it reads any
    (packed-backend.c ``verify_buffer_safe``): with a newline, the last record (a ref's
    line and its peeled lines) at least an id, a space and a name long. libgit2's
    ``bad_tag.git`` ends without its newline: git refuses every ref read there ("fatal:
    unexpected line"); avfs read it."""
    size = len(data)
    if start >= size:
        return
    last = _record_start(data, start, size - 1)
    if data[size - 1 : size] == b"\n" and size - last >= 42:
        return
    path = os.path.join(git_dir, "packed-refs")
    line = bytes(data[last : min(_line_end(data, last), last + 80)])
    why = "is too short to name a ref" if data[size - 1 : size] == b"\n" else "has no newline at its end"
    raise CorruptStateError(
        f"the vault's packed-refs {path} is damaged: its last ref's record (line {line!r})"
        f" {why} (a write cut short?); nothing was changed",
        hint=f"git cannot read it either (`git --git-dir {git_dir} for-each-ref`: unexpected"
        " line): end the file with a newline if that line is whole, else remove the line",
        details={"path": path, "line": line.decode("utf-8", "replace")},
    )


_checked: dict[str, tuple[int, int, int]] = {}  # git dir -> the packed-refs found sound, by its stat


def check_end(git_dir: str) -> None:
    """:func:`_check_end` of ``git_dir``'s ``packed-refs`` where libgit2 reads it (libgit2
    reads a file git refuses); once a version of the file (a stat a call after)."""
    try:
        st = os.stat(os.path.join(git_dir, "packed-refs"))
    except OSError:
        return
    key = (st.st_ino, st.st_size, st.st_mtime_ns)
    if not stat.S_ISREG(st.st_mode) or _checked.get(git_dir) == key:
        return
    with mapped(git_dir) as data:
        _check_end(git_dir, data, _body(data)[0])
    _checked[git_dir] = key


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


def _damaged(git_dir: str, line: bytes) -> CorruptStateError:
    """The error for a line of ``git_dir``'s ``packed-refs`` that names a ref but no id."""
    path = os.path.join(git_dir, "packed-refs")
    name = _name(line).decode("utf-8", "replace")
    return CorruptStateError(
        f"the vault's packed-refs {path} is damaged: the line of {name} holds {line[:80]!r}"
        " where a commit id and the ref's name belong; nothing was changed",
        hint=f"git cannot read it either (`git --git-dir {git_dir} for-each-ref`: unexpected"
        f" line): put the ref's id back on that line (`git --git-dir {git_dir} reflog {name}`"
        " names its last ones) or remove the line",
        details={"path": path, "ref": name},
    )


def _id(git_dir: str, line: bytes) -> str:
    """The id a ref's line names (raises :func:`_damaged`'s error when it names none)."""
    oid = line.partition(b" ")[0]
    if _ID.fullmatch(oid) is None:
        raise _damaged(git_dir, line)
    return oid.decode("ascii")


def lookup(git_dir: str, name: str) -> str | None:
    """The id packed ref ``name`` names, or None when the file does not hold it.

    Raises:
        CorruptStateError: its line names no id.
    """
    target = name.encode()
    with mapped(git_dir) as data:
        start, is_sorted = _body(data)
        _check_end(git_dir, data, start)
        if is_sorted:
            rec = _seek(data, start, target)
            line = bytes(data[rec : _line_end(data, rec)])
            return _id(git_dir, line) if rec < len(data) and _name(line) == target else None
        suffix = b" " + target
        for line in bytes(data[start:]).split(b"\n"):
            if line.endswith(suffix) and not line.startswith((b"#", b"^")) and _name(line) == target:
                return _id(git_dir, line)
    return None


def _after(prefix: bytes) -> bytes | None:
    """The least name above every name that starts with ``prefix`` (None: none is)."""
    stem = prefix.rstrip(b"\xff")
    return stem[:-1] + bytes([stem[-1] + 1]) if stem else None


def under(git_dir: str, prefix: str) -> dict[str, str]:
    """Every packed ref whose name starts with ``prefix`` -> the id its line names, read
    from one range of the file when it is sorted (two searches: where the prefix's names
    begin, and where they end).

    Raises:
        CorruptStateError: the line of such a ref names no id.
    """
    want = prefix.encode()
    with mapped(git_dir) as data:
        start, is_sorted = _body(data)
        _check_end(git_dir, data, start)
        if is_sorted:
            lo = _seek(data, start, want)
            after = _after(want)
            chunk = bytes(data[lo : _seek(data, lo, after) if after is not None else len(data)])
        else:
            chunk = bytes(data[start:])
    control = _control(chunk)
    out: dict[str, str] = {}
    for line in chunk.split(b"\n"):
        oid, space, ref = line.partition(b" ")
        if space and ref.startswith(want) and not oid.startswith((b"#", b"^")):
            if control and _control(ref):
                continue
            if len(oid) != 40 and len(oid) != 64:
                raise _damaged(git_dir, line)
            out[ref.decode("utf-8", "replace")] = oid.decode("ascii", "replace")
    try:  # every id hex, in one call (a line at a time cost the listing a third more)
        bytes.fromhex("".join(out.values()))
    except ValueError:
        for line in chunk.split(b"\n"):
            if line.partition(b" ")[2].startswith(want) and not line.startswith((b"#", b"^")):
                _id(git_dir, line)
    return out
