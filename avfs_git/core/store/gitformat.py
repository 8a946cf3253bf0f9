"""git's tree and commit objects in pure Python: the one place their raw bodies are read
and a tree's is written.

A tree's raw entries (``<octal mode> <name>\\0<20-byte id>``) are parsed by one regex
(``TREE_ENTRY``: :func:`tree_entries` raw, :func:`parse_tree` decoded), a tree is serialised in git's entry order (:func:`tree_bytes`), a commit's
fields are read as libgit2 reads them (:func:`parse_commit`), and an object's id is the
SHA-1 git gives it. Nothing here imports pygit2: a command that only reads trees and
commits does not load it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import NamedTuple

from .digests import sha1

# a raw tree entry: "<octal mode> <name>\0<20-byte id>"; findall parses a tree in C
# (3x faster than slicing entry by entry, the hottest line of checkpoints, status and merges)
TREE_ENTRY = re.compile(rb"(\d+) ([^\0]*)\0(.{20})", re.DOTALL)
# the same entry unparsed, one bytes object each (no tuple, nothing the collector tracks)
RAW_ENTRY = re.compile(rb"\d+ [^\0]*\0.{20}", re.DOTALL)


_MODES = {
    b"40000": 0o040000,
    b"100644": 0o100644,
    b"100755": 0o100755,
    b"120000": 0o120000,
    b"160000": 0o160000,
}


def tree_entries(data: bytes) -> list[tuple[bytes, bytes, bytes]]:
    """A raw tree's entries in order, as (octal mode, name, 20-byte id), all bytes: the one
    tree parser (for a caller that works on raw entries, as the trivial merge does)."""
    entries: list[tuple[bytes, bytes, bytes]] = TREE_ENTRY.findall(data)
    return entries


def raw_entries(data: bytes) -> list[bytes]:
    """A raw tree's entries in order, each unparsed (``<octal mode> <name>\\0<20-byte
    id>``): for a caller that compares whole entries and splits only the few it needs
    (:func:`split_entry`), as the trivial merge does."""
    entries: list[bytes] = RAW_ENTRY.findall(data)
    return entries


def split_entry(entry: bytes) -> tuple[bytes, bytes, bytes]:
    """One raw entry of :func:`raw_entries` as (octal mode, name, 20-byte id)."""
    sp = entry.index(b" ")
    nul = entry.index(b"\0", sp)
    return entry[:sp], entry[sp + 1 : nul], entry[nul + 1 :]


def canon_mode(mode: int) -> int:
    """A tree entry's mode as git and libgit2 read it (git's ``canon_mode``, libgit2's
    ``normalize_filemode``): a file is 100644 or, with its owner's exec bit, 100755, whatever
    other bits the tree holds. Old trees hold others: git before 2005's mode cleanup wrote a
    file's whole permissions (``100664``, ``100600``: libgit2's ``deprecated-mode.git``
    fixture), and ``git fsck`` takes them (``100664`` a warning only under ``--strict``)."""
    kind = mode & 0o170000
    if kind == 0o100000:
        return 0o100755 if mode & 0o100 else 0o100644
    if kind in (0o040000, 0o120000):
        return kind
    return 0o160000


def parse_tree(data: bytes) -> dict[str, tuple[str, int]]:
    """name -> (hex id, mode) of a raw tree's entries (names decoded as UTF-8, undecodable
    bytes kept as surrogates; modes as git reads them, :func:`canon_mode`): :func:`tree_entries`,
    decoded (``GitStore.tree_items``)."""
    modes = _MODES
    return {
        name.decode("utf-8", "surrogateescape"): (oid.hex(), modes.get(mode) or canon_mode(int(mode, 8)))
        for mode, name, oid in tree_entries(data)
    }


class CommitFields(NamedTuple):
    """What :func:`parse_commit` reads of a commit."""

    tree: str
    parents: tuple[str, ...]
    commit_time: int  # the committer's, seconds since the epoch (0: unreadable)
    message: str


_SIG_TIME = re.compile(rb"\s*(\d+)")


def parse_commit(data: bytes) -> CommitFields:
    """The fields of a raw commit object, as libgit2 reads them (``git_commit_*``, and
    pygit2's ``Commit.message``): the parents are the ``parent`` lines after ``tree``; the
    time is the number after the last ``>`` of the first ``committer`` line (0 when there
    is none); the message is what follows the headers' blank line, leading newlines
    dropped, up to a NUL, decoded with the ``encoding`` header's codec (UTF-8 by default,
    undecodable bytes replaced; pygit2 raises for a message its named codec cannot decode,
    or a codec Python does not know: that is read as UTF-8 with replacements here)."""
    end = data.find(b"\n\n")
    head, body = (data, b"") if end < 0 else (data[: end + 1], data[end + 2 :])
    tree = ""
    parents: list[str] = []
    when = 0
    encoding = None
    seen_committer = False
    for line in head.split(b"\n"):
        if line.startswith(b"tree ") and not tree:
            tree = line[5:45].decode("ascii", "replace")
        elif line.startswith(b"parent ") and not seen_committer:
            parents.append(line[7:47].decode("ascii", "replace"))
        elif line.startswith(b"committer ") and not seen_committer:
            seen_committer = True
            gt = line.rfind(b">")
            m = _SIG_TIME.match(line, gt + 1) if gt >= 0 else None
            when = int(m.group(1)) if m else 0
        elif line.startswith(b"encoding ") and seen_committer and encoding is None:
            encoding = line[9:].decode("ascii", "replace")
    msg = body.lstrip(b"\n")
    nul = msg.find(b"\0")
    if nul >= 0:
        msg = msg[:nul]
    text = None
    if encoding is not None:
        try:
            text = msg.decode(encoding)
        except (LookupError, UnicodeDecodeError):
            text = None
    if text is None:
        text = msg.decode("utf-8", "replace")
    return CommitFields(tree, tuple(parents), when, text)


# an author line git, libgit2 and plain_author read alike: a name and an email without
# angle brackets, a time and a zone
_PLAIN_AUTHOR = re.compile(rb"author ([^<>\n]*)<([^<>\n]*)> (\d+) [+-]\d{4}")


# what libgit2 trims from both ends of a signature's name and email (signature.c
# ``is_crud``: every byte up to the space, and ``"',:;<>\``), where Python's strip() takes
# whitespace only: libgit2's ``revert`` fixture has an author named by control bytes
_CRUD = bytes(range(33)) + b"\"',:;<>\\"


def plain_author(data: bytes) -> tuple[str, str] | None:
    """The author's name and email of a raw commit, as libgit2 reads them (pygit2's
    ``Commit.author``: the first ``author`` header, each part trimmed of :data:`_CRUD`), where
    that reading is plain: a well-formed line, UTF-8, no ``encoding`` header. None
    otherwise (the caller asks libgit2)."""
    signed = plain_author_when(data)
    return None if signed is None else signed[:2]


def plain_author_when(data: bytes) -> tuple[str, str, int] | None:
    """:func:`plain_author`'s name and email, and the author's time (seconds since the
    epoch: pygit2's ``Commit.author.time``, what ``git log`` prints as ``Date:``)."""
    end = data.find(b"\n\n")
    head = data if end < 0 else data[: end + 1]
    if b"\nencoding " in head:
        return None
    at = head.find(b"\nauthor ")
    if at < 0:
        return None
    line = head[at + 1 : head.index(b"\n", at + 1)]
    m = _PLAIN_AUTHOR.fullmatch(line)
    if m is None:
        return None
    try:
        name, email = m.group(1).strip(_CRUD).decode("utf-8"), m.group(2).strip(_CRUD).decode("utf-8")
    except UnicodeDecodeError:
        return None
    when = int(m.group(3)) if len(m.group(3)) < 30 else 1 << 63
    # (past what a 64-bit time holds: libgit2's own reading answers)
    return (name, email, when) if when < 1 << 63 else None


_KIND_NAMES = {1: "commit", 2: "tree", 3: "blob", 4: "tag"}


def _object_id(kind: str, data: bytes) -> str:
    h = sha1(b"%s %d\0" % (kind.encode(), len(data)), size=len(data))
    h.update(data)
    return h.hexdigest()


def tree_parsed(items: dict[str, tuple[str, int]]) -> tuple[bytes, dict[str, tuple[str, int]]]:
    """The tree of ``items`` (name -> (hex id, mode)) as :func:`tree_bytes` writes it, and
    as :func:`parse_tree` reads it back (its entries in git's order, modes canonical):
    a capture's trees kept parsed, not read back from the vault (record6)."""
    rows = []
    for name, (oid, mode) in items.items():
        raw = name.encode("utf-8", "surrogateescape")
        rows.append(
            (raw + b"/" if mode == 0o040000 else raw, b"%o %s\0" % (mode, raw) + bytes.fromhex(oid), name)
        )
    rows.sort()
    return b"".join(r[1] for r in rows), {r[2]: (items[r[2]][0], canon_mode(items[r[2]][1])) for r in rows}


def tree_bytes(entries: Iterable[tuple[str, str, int]]) -> bytes:
    """Serialise a tree from (name, hex id, mode) in git's entry order (a directory sorts
    as if its name ended in '/')."""
    items = []
    for name, oid, mode in entries:
        raw = name.encode("utf-8", "surrogateescape")
        items.append((raw + b"/" if mode == 0o040000 else raw, b"%o %s\0" % (mode, raw) + bytes.fromhex(oid)))
    items.sort()
    return b"".join(e for _, e in items)
