"""Whether a mounted fork's git index holds exactly a commit's tree, nothing git staged
over it: what lets a merge's move into an overlay mount keep the index written ahead of
it as its final one (mount/indexahead.py ``merged``), where the move wrote the index
whole after it to drop what git had staged (as `git reset --keep` does, and as avfs's
capture before a merge records the work tree, not git's index).

git's cache tree (the index's ``TREE`` extension) vouches for each directory it holds
valid: its entries are exactly that tree's (git invalidates a directory, and each one
above it, whenever it changes an entry below: `git add`, `git rm --cached`,
`update-index`; avfs's patch does so on the paths it changes, mount/indexpatch.py). So
the index is compared with the tree only where the cache tree is invalid or silent: a
valid directory by its tree id and entry count, the others entry by entry, each
directory below them found by a binary search on the entries' offsets. Cost: the
directories changed since git or avfs last wrote the index whole, not the tree (a merge
into a mounted 10k-file fork wrote it whole after every move: ~100 ms of its ~130)."""

from __future__ import annotations

import bisect
from typing import TYPE_CHECKING

from ..core.types import MODE_TREE
from .indexpatch import entry_offsets, extension_at

if TYPE_CHECKING:
    from ..core.store.gitstore import GitStore


def holds_exactly(store: GitStore, data: bytes, tree: str) -> bool:
    """Whether index ``data`` (version 2 or 3) holds ``tree``'s entries and no other:
    every path, mode and blob id, no unmerged or intent-to-add entry. False where it
    cannot tell (no cache tree, an index it cannot read)."""
    if data[:4] != b"DIRC" or data[4:8] not in (b"\0\0\0\2", b"\0\0\0\3"):
        return False  # (version 4's names are compressed: not read here)
    walked = entry_offsets(data)
    if walked is None:
        return False
    offs, end = walked
    raw = extension_at(data, end, b"TREE")
    nodes = None if raw is None else _cache_tree(raw)
    if nodes is None:
        return False
    try:
        return _same(store, data, offs, nodes, b"", tree, 0, len(offs))
    except (RecursionError, ValueError, IndexError):
        return False


def staged_paths(store: GitStore, data: bytes, tree: str) -> list[str] | None:
    """Where index ``data`` (version 2 or 3) differs from ``tree``: each path whose entry
    git staged (added, changed, an intent-to-add or unmerged one), each one it removed, a
    directory the tree does not have as one by its name; None where it cannot tell (an
    index it cannot read, a split one). Cost as :func:`holds_exactly`'s where git's cache
    tree vouches for a directory (no cache tree: every entry)."""
    walked = entry_offsets(data) if data[:4] == b"DIRC" and data[4:8] in (b"\0\0\0\2", b"\0\0\0\3") else None
    if walked is None or extension_at(data, walked[1], b"link") is not None:
        return None
    raw = extension_at(data, walked[1], b"TREE")
    if raw is not None and _root_holds(raw, tree, len(walked[0])):
        return []  # (git's cache tree vouches for the whole index: the rest of it not parsed)
    out: list[str] = []
    try:
        _same(
            store,
            data,
            walked[0],
            (None if raw is None else _cache_tree(raw)) or {},
            b"",
            tree,
            0,
            len(walked[0]),
            out,
        )
    except (RecursionError, ValueError, IndexError):
        return None
    return out


def _root_holds(raw: bytes, tree: str, count: int) -> bool:
    """Whether the cache tree ``raw``'s root (its first node) is valid for ``tree`` with
    ``count`` entries: parsing every node was ~5 ms at 10,000 files."""
    nl = raw.find(b"\n")
    try:
        held = int(raw[1:nl].split()[0]) if raw[:1] == b"\0" and nl > 0 else -1
    except (ValueError, IndexError):
        return False
    return held == count and raw[nl + 1 : nl + 21].hex() == tree


def _cache_tree(raw: bytes) -> dict[bytes, tuple[int, bytes | None]] | None:
    """The cache tree's directories: path -> (entry count, tree id; None where invalid)."""
    nodes: dict[bytes, tuple[int, bytes | None]] = {}
    at = 0
    todo: list[tuple[bytes, int]] = []  # (parent's path, its subdirectories still to read)
    try:
        while True:
            nul = raw.index(b"\0", at)
            name = raw[at:nul]
            nl = raw.index(b"\n", nul)
            count, subs = (int(x) for x in raw[nul + 1 : nl].split())
            at = nl + 1
            oid = None
            if count >= 0:
                oid, at = raw[at : at + 20], at + 20
            parent = todo[-1][0] if todo else None
            path = name if not parent else parent + b"/" + name
            if parent is None:
                path = b""
            nodes[path] = (count, oid)
            if todo:
                todo[-1] = (todo[-1][0], todo[-1][1] - 1)
            todo.append((path, subs))
            while todo and todo[-1][1] == 0:
                todo.pop()
            if not todo:
                break
    except (ValueError, IndexError):
        return None
    return nodes if at == len(raw) else None


def _same(
    store: GitStore,
    data: bytes,
    offs: list[int],
    nodes: dict[bytes, tuple[int, bytes | None]],
    prefix: bytes,
    tree: str,
    lo: int,
    hi: int,
    out: list[str] | None = None,
) -> bool:
    """Whether entries ``offs[lo:hi]`` (those below directory ``prefix``) are ``tree``'s;
    ``out``: each path where they are not is added to it, and every entry is looked at."""
    node = nodes.get(prefix)
    if (
        node is not None
        and node[1] is not None
        and (out is None or (node[1].hex() == tree and node[0] == hi - lo))
    ):
        return node[1].hex() == tree and node[0] == hi - lo
    items = store.tree_items(tree)
    lead = prefix + b"/" if prefix else b""
    seen: set[str] = set()
    same, i = True, lo
    while i < hi:
        at = offs[i]
        flags = int.from_bytes(data[at + 60 : at + 62], "big")
        name = _name(data, at)
        rest = name[len(lead) :]
        slash = rest.find(b"/")
        if slash < 0:
            key = rest.decode("utf-8", "surrogateescape")
            hit = items.get(key)
            mode = int.from_bytes(data[at + 24 : at + 28], "big")
            # (intent-to-add, `git add -N`, or unmerged: staged, not the tree's)
            odd = flags & 0x3000 or (flags & 0x4000 and data[at + 62] & 0x20)
            if odd or hit is None or hit[1] != mode or hit[0] != data[at + 40 : at + 60].hex():
                if out is None:
                    return False
                same = False
                if not out or out[-1] != name.decode("utf-8", "surrogateescape"):
                    out.append(name.decode("utf-8", "surrogateescape"))
            seen.add(key)
            i += 1
            continue
        sub = rest[:slash]
        below = lead + sub
        stop = bisect.bisect_left(offs, below + b"0", lo=i, hi=hi, key=lambda o: _name(data, o))
        key = sub.decode("utf-8", "surrogateescape")
        hit = items.get(key)
        if hit is None or hit[1] != MODE_TREE:
            if out is None:
                return False
            same = False
            out.append(below.decode("utf-8", "surrogateescape"))
        elif not _same(store, data, offs, nodes, below, hit[0], i, stop, out):
            if out is None:
                return False
            same = False
        seen.add(key)
        i = stop
    gone = [k for k in items if k not in seen]
    if out is not None:  # (the tree's, removed from the index: `git rm --cached`)
        out += [
            (lead + k.encode("utf-8", "surrogateescape")).decode("utf-8", "surrogateescape") for k in gone
        ]
    return same and not gone


def _name(data: bytes, at: int) -> bytes:
    flags = int.from_bytes(data[at + 60 : at + 62], "big")
    head = 64 if flags & 0x4000 else 62
    n = flags & 0xFFF
    return data[at + head : at + head + n] if n < 0xFFF else data[at + head : data.index(b"\0", at + head)]
