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
) -> bool:
    """Whether entries ``offs[lo:hi]`` (those below directory ``prefix``) are ``tree``'s."""
    node = nodes.get(prefix)
    if node is not None and node[1] is not None:
        return node[1].hex() == tree and node[0] == hi - lo
    items = store.tree_items(tree)
    lead = prefix + b"/" if prefix else b""
    seen = 0
    i = lo
    while i < hi:
        at = offs[i]
        flags = int.from_bytes(data[at + 60 : at + 62], "big")
        head = 64 if flags & 0x4000 else 62
        if head == 64 and data[at + 62] & 0x20:
            return False  # intent-to-add (`git add -N`): staged, not the tree's
        name = _name(data, at)
        rest = name[len(lead) :]
        slash = rest.find(b"/")
        if slash < 0:
            hit = items.get(rest.decode("utf-8", "surrogateescape"))
            mode = int.from_bytes(data[at + 24 : at + 28], "big")
            if hit is None or hit[1] != mode or hit[0] != data[at + 40 : at + 60].hex():
                return False
            seen += 1
            i += 1
            continue
        sub = rest[:slash]
        below = lead + sub
        stop = bisect.bisect_left(offs, below + b"0", lo=i, hi=hi, key=lambda o: _name(data, o))
        hit = items.get(sub.decode("utf-8", "surrogateescape"))
        if hit is None or hit[1] != MODE_TREE or not _same(store, data, offs, nodes, below, hit[0], i, stop):
            return False
        seen += 1
        i = stop
    return seen == len(items)


def _name(data: bytes, at: int) -> bytes:
    flags = int.from_bytes(data[at + 60 : at + 62], "big")
    head = 64 if flags & 0x4000 else 62
    n = flags & 0xFFF
    return data[at + head : at + head + n] if n < 0xFFF else data[at + head : data.index(b"\0", at + head)]
