"""git's per-entry bits of a mounted fork's index that avfs's whole rewrites keep: a
person's ``git update-index --skip-worktree`` and ``--assume-unchanged``.

avfs writes a mount's index whole where the view changed (a restore, an undo, a merge, a
move by another hand: mount/index.py :func:`.index.sync_index`), from the base tree: an
entry of it carries no bit git's own ``update-index`` set. git keeps them across its own
rewrites of the index (``unpack-trees``' ``merged_entry`` and ``reset``'s
``update_index_from_diff`` copy ``skip-worktree`` to the path's new entry; an entry that
stays as it was keeps every bit, ``assume-unchanged`` too), so a ``git reset --hard``
keeps them, and avfs's rewrite must as well: the same rule here. A ``skip-worktree``
entry of the index being replaced makes that path's entry in the new one
``skip-worktree`` (index version 3, as git writes it); an ``assume-unchanged`` one stays
where the new entry is the same mode and object. Unmerged entries (an open merge's
stages) take neither.

Cost: one walk of the old index's flags (a read of each entry's two flag bytes, names
read only for a flagged entry), and where anything is flagged, one walk of the new
index's entries; an index patched in place (a checkpoint) keeps its bytes and is not
walked.
"""

from __future__ import annotations

import os
import re
import struct
from collections.abc import Collection
from typing import Any

from .ownfiles import MAX_INDEX, read_bytes, worktree_dir

ASSUME_VALID = 0x8000  # the entry's flags
EXTENDED = 0x4000  # the entry's flags: a second flags word follows
SKIP_WORKTREE = 0x4000  # the second flags word
_STAGE = 0x3000
_FLAGS = struct.Struct(">H")
_GITLINK = struct.pack(">I", 0o160000)  # a submodule's mode
_GITLINK_AT = re.compile(re.escape(_GITLINK))

# name -> (mode, object id, the bits to keep: ASSUME_VALID and/or SKIP_WORKTREE << 16)
Flagged = dict[bytes, tuple[int, bytes, int]]


def _walk(data: bytes) -> list[tuple[int, int, int, int]] | None:
    """Each entry of index ``data`` (version 2 or 3): (offset, size, flags, extended flags);
    None when it is not one this reads (version 4's compressed names, cut short)."""
    if len(data) < 32 or data[:4] != b"DIRC" or data[4:8] not in (b"\0\0\0\2", b"\0\0\0\3"):
        return None
    unpack = _FLAGS.unpack_from
    count = int.from_bytes(data[8:12], "big")
    out: list[tuple[int, int, int, int]] = []
    off = 12
    try:
        for _ in range(count):
            (flags,) = unpack(data, off + 60)
            ext = 0
            head = 62
            if flags & EXTENDED:
                (ext,) = unpack(data, off + 62)
                head = 64
            nl = flags & 0xFFF
            if nl == 0xFFF:
                nl = data.index(b"\0", off + head) - off - head
            size = (head + nl + 8) & ~7  # the name and 1-8 NULs, to a multiple of 8
            out.append((off, size, flags, ext))
            off += size
    except (ValueError, struct.error):
        return None
    return out if off <= len(data) - 20 else None


def _named(data: bytes) -> list[tuple[int, int, int, bytes]] | None:
    """Each entry of index ``data`` (version 2, 3 or 4, :func:`whole`): (offset, flags,
    extended flags, name); None when it is not whole. Version 4's names are compressed
    (each drops a varint's count of bytes of the previous name's end, then adds its own):
    read as git reads them (read-cache.c ``create_from_disk``), so that its gitlinks and
    flagged entries are seen (before the twenty-fifth round, NAME=attack16, a version 4
    index's were not: a person's `feature.manyFiles` index had its submodules recorded
    as directories of files)."""
    if whole(data) is None:
        return None
    if data[4:8] != b"\0\0\0\4":
        walked = _walk(data)
        return None if walked is None else [(o, f, e, _name(data, o, f)) for o, _s, f, e in walked]
    out: list[tuple[int, int, int, bytes]] = []
    off = 12
    prev = b""
    for i in range(int.from_bytes(data[8:12], "big")):
        (flags,) = _FLAGS.unpack_from(data, off + 60)
        ext = 0
        head = off + 62
        if flags & EXTENDED:
            (ext,) = _FLAGS.unpack_from(data, head)
            head += 2
        c = data[head]  # git's decode_varint
        head += 1
        strip = c & 127
        while c & 128:
            c = data[head]
            head += 1
            strip = ((strip + 1) << 7) | (c & 127)
        nul = data.index(b"\0", head)
        name = (prev[: len(prev) - strip] if i else b"") + data[head:nul]
        out.append((off, flags, ext, name))
        prev = name
        off = nul + 1
    return out


_REQUIRED = (b"link", b"sdir")  # the extensions git writes that a reader must understand


def names_whole(data: bytes) -> bool:
    """Whether :func:`whole` holds for index ``data``."""
    return whole(data) is not None


def whole(data: bytes) -> list[bytes] | None:
    """The signatures of the extensions of index ``data`` (version 2, 3 or 4) when every
    entry names its path as git writes it: the name as long as its flags say (or up to
    its NUL where they say 0xFFF, then at least that long), with a NUL right after it,
    the entries as many as the header says and ending before the checksum, a version 4
    name taking no more of the previous name than there is, then extensions to the checksum exactly, none that git would refuse (an
    unknown signature not in upper case: "index uses ... extension, which we do not
    understand"). None for anything else.

    git itself reads such a name two ways (git 2.39, read-cache.c ``create_from_disk``:
    ``ce_namelen`` from the flags, the name's C string up to the first NUL, one byte past
    that length when no NUL ends it): `git ls-files` prints the C string, `git checkout`
    writes the path of the length. An entry ``..`` whose padding is not NUL is ``..B`` to
    ``ls-files`` and the mount's parent directory to ``checkout -- .``, which removes it
    (the twenty-fourth round, NAME=attack15): an index that is not whole so is one no git
    wrote, and the checks that read names through ``ls-files`` (proxy/gitlinks.py,
    proxy/heldlock.py) take it for what it is not. (A NUL inside a name is let be: both
    readings then stop there, as the kernel does.) One pass over the entries' flags: ~1 us
    an entry at a load of 13."""
    got = _extensions(data)
    return None if got is None else [sig for sig, _start, _end in got]


# a '..' or '.git' component (any case) somewhere in a version 4 index's bytes, whose names
# are compressed (proxy/gitlinks.py reads the same through git after a run)
_SUSPECT = re.compile(rb"\.\.[/\x00]|(?i:\.git)[/\x00]")


def keepable(data: bytes) -> bool:
    """Whether index ``data``, left by a mount whose daemon was killed (no check of a run's
    index ran after the command that may have written it: proxy/gitlinks.py), may come back
    at the fork's next mount: :func:`whole`, not split, and no path with a ``..`` or
    ``.git`` component (git never writes one: ``verify_path``; its checkout writes it out
    of the work tree or into a repository's files). A version 4 index with such bytes
    anywhere is not kept."""
    sigs = whole(data)
    if sigs is None or b"link" in sigs:
        return False
    entries = _walk(data)
    if entries is None:  # (version 4)
        return _SUSPECT.search(data) is None
    for off, _size, flags, _ext in entries:
        if any(c == b".." or c.lower() == b".git" for c in _name(data, off, flags).split(b"/")):
            return False
    return True


def without(data: bytes, sigs: Collection[bytes]) -> bytes | None:
    """Index ``data`` (:func:`whole`) without its extensions of signatures ``sigs``; None when
    it has none of them or is not whole."""
    import hashlib

    got = _extensions(data)
    if not got or not any(sig in sigs for sig, _s, _e in got):
        return None
    body = data[: got[0][1]] + b"".join(data[s:e] for sig, s, e in got if sig not in sigs)
    return body + hashlib.sha1(body).digest()


def extension(data: bytes, sig: bytes) -> bytes | None:
    """The body of index ``data``'s (:func:`whole`) first extension of signature ``sig``;
    None when it has none or is not whole."""
    for got, start, end in _extensions(data) or ():
        if got == sig:
            return data[start + 8 : end]
    return None


def cache_tree(ext: bytes, counts: dict[bytes, int] | None = None) -> dict[bytes, bytes | None] | None:
    """git's cache tree (the body of an index's ``TREE`` extension): each directory's path
    (``b""`` the top) -> the tree id it says (20 bytes), None where it says it is not valid
    (an entry count of -1); None when it is not one git writes. Read without recursion (a
    command can nest it past Python's limit: the twenty-fourth round). ``counts``: filled
    with each valid node's entry count (how many index entries in a row it covers, which
    git's unpack-trees steps over by it)."""
    out: dict[bytes, bytes | None] = {}
    stack: list[list[Any]] = []  # [the directory's path, its subtrees still to read]
    pos = 0
    try:
        while pos < len(ext):
            while stack and stack[-1][1] == 0:
                stack.pop()
            if out and not stack:
                return None  # bytes past the top's last subtree
            nul = ext.index(b"\0", pos)
            lf = ext.index(b"\n", nul)
            count, subtrees = (int(x) for x in ext[nul + 1 : lf].split(b" "))
            name = ext[pos:nul]
            pos = lf + 1
            oid = None
            if count >= 0:
                oid = ext[pos : pos + 20]
                pos += 20
                if len(oid) != 20:
                    return None
                if counts is not None:
                    counts[stack[-1][0] + b"/" + name if stack and stack[-1][0] else name] = count
            if stack:
                stack[-1][1] -= 1
                path = stack[-1][0] + b"/" + name if stack[-1][0] else name
            elif name:
                return None  # the top has no name
            else:
                path = b""
            if path in out or subtrees < 0:
                return None
            out[path] = oid
            stack.append([path, subtrees])
    except ValueError:
        return None
    return out if not any(n for _p, n in stack) else None


def cache_tree_ids(data: bytes) -> list[int] | None:
    """Where in index ``data`` (:func:`whole`) each tree id of its cache tree's valid nodes
    starts (none without a cache tree); None when its ``TREE`` extension is not one git
    writes."""
    for sig, start, end in _extensions(data) or ():
        if sig != b"TREE":
            continue
        if cache_tree(data[start + 8 : end]) is None:
            return None
        out = []
        pos = start + 8
        while pos < end:
            lf = data.index(b"\n", data.index(b"\0", pos, end), end)
            if not data[data.index(b"\0", pos, end) + 1 : lf].startswith(b"-"):
                out.append(lf + 1)
                pos = lf + 21
            else:
                pos = lf + 1
        return out
    return []


def _extensions(data: bytes) -> list[tuple[bytes, int, int]] | None:
    """:func:`whole`'s walk: each extension's (signature, start, end), None where not whole."""
    if len(data) < 32 or data[:4] != b"DIRC":
        return None
    version = int.from_bytes(data[4:8], "big")
    if version not in (2, 3, 4):
        return None
    count = int.from_bytes(data[8:12], "big")
    end = len(data) - 20
    find = data.find
    off = 12
    try:
        if version == 4:
            off = _names_v4(data, count, end)
        else:  # (the hot loop: one read of the flags and one byte an entry)
            for _ in range(count):
                flags = data[off + 60] << 8 | data[off + 61]
                head = off + (64 if flags & EXTENDED else 62)
                nl = flags & 0xFFF
                if nl == 0xFFF:
                    nl = find(b"\0", head, end) - head
                    if nl < 0xFFF:
                        return None
                elif data[head + nl]:
                    return None
                off += (head - off + nl + 8) & ~7  # the name and 1-8 NULs, to a multiple of 8
    except IndexError:
        return None
    if off < 0 or off > end:
        return None
    # the extensions: each a signature and a size, to the checksum exactly; a signature
    # git must understand (not upper case) only one git writes (it refuses the index else)
    exts: list[tuple[bytes, int, int]] = []
    while off + 8 <= end:
        sig = data[off : off + 4]
        if not 65 <= sig[0] <= 90 and sig not in _REQUIRED:
            return None
        start, off = off, off + 8 + int.from_bytes(data[off + 4 : off + 8], "big")
        exts.append((sig, start, off))
    return exts if off == end else None


def _names_v4(data: bytes, count: int, end: int) -> int:
    """:func:`whole`'s walk of a version 4 index's entries (each name the varint of how many
    bytes of the previous name it drops, then the rest, NUL-terminated): where they end,
    -1 where a name is not whole. Raises IndexError past the end."""
    find = data.find
    off = 12
    prev = 0  # the previous name's length
    for i in range(count):
        if off + 62 > end:
            return -1
        flags = data[off + 60] << 8 | data[off + 61]
        head = off + (64 if flags & EXTENDED else 62)
        nl = flags & 0xFFF
        c = data[head]  # git's decode_varint
        head += 1
        strip = c & 127
        while c & 128:
            c = data[head]
            head += 1
            strip = ((strip + 1) << 7) | (c & 127)
        copy = prev - strip if i else 0  # (git ignores the first entry's)
        nul = find(b"\0", head, end)
        if copy < 0 or nul < 0:
            return -1
        if nl == 0xFFF:
            nl = nul - head + copy
        if nl < copy or nul != head + nl - copy:
            return -1
        prev = nl
        off = nul + 1
    return off


def _name(data: bytes, off: int, flags: int) -> bytes:
    head = 64 if flags & EXTENDED else 62
    nl = flags & 0xFFF
    if nl == 0xFFF:
        nl = data.index(b"\0", off + head) - off - head
    return data[off + head : off + head + nl]


def flagged(index: bytes) -> Flagged:
    """The stage-0 entries of ``index`` git marked ``assume-unchanged`` or
    ``skip-worktree`` (none when it is not an index this reads)."""
    out: Flagged = {}
    for off, flags, ext, name in (_walk_named(index) if index[4:8] != b"\0\0\0\4" else _named(index)) or ():
        bits = (flags & ASSUME_VALID) | ((ext & SKIP_WORKTREE) << 16)
        if bits and name and not flags & _STAGE:  # (no name: a split index's replaced entry)
            mode = int.from_bytes(index[off + 24 : off + 28], "big")
            out[name] = (mode, index[off + 40 : off + 60], bits)
    return out


def staged(index: bytes, wanted: Collection[bytes]) -> dict[bytes, tuple[int, str]] | None:
    """The stage-0 entries of ``index`` named in ``wanted``: name -> (mode, object id);
    None when the index is not :func:`whole`."""
    named = _named(index)
    if named is None:
        return None
    out: dict[bytes, tuple[int, str]] = {}
    for off, flags, _ext, name in named:
        if not flags & _STAGE and name in wanted:
            out[name] = (int.from_bytes(index[off + 24 : off + 28], "big"), index[off + 40 : off + 60].hex())
    return out


def named_entries(index: bytes) -> list[tuple[bytes, int, str]] | None:
    """Every entry of ``index`` (:func:`whole`, each stage's): (name, mode, object id in
    hex); None when the index is not whole (mount/gitkepthold.py holds what they name)."""
    named = _named(index)
    if named is None:
        return None
    return [
        (name, int.from_bytes(index[off + 24 : off + 28], "big"), index[off + 40 : off + 60].hex())
        for off, _flags, _ext, name in named
    ]


def _walk_named(index: bytes) -> list[tuple[int, int, int, bytes]]:
    """:func:`_walk`'s entries of a version 2 or 3 index, each with its name read only where
    it is flagged (the common case reads none)."""
    out = []
    for off, _size, flags, ext in _walk(index) or ():
        if (flags & ASSUME_VALID) or (ext & SKIP_WORKTREE):
            out.append((off, flags, ext, _name(index, off, flags)))
    return out


def gitlinks(index: bytes, wanted: Collection[bytes]) -> dict[bytes, bytes]:
    """The stage-0 gitlinks (mode 160000) of ``index`` named in ``wanted``: name -> the
    commit's 20-byte id (none when it is not an index this reads). The bytes are searched
    first for the mode where an entry of one of those names would hold it (a C-speed
    search; a chance match elsewhere is checked, not walked): an index without such an
    entry, the common case, is not walked (in Python, 15 us an entry: 0.3 s at 20,000
    entries, where the search alone found the mode's bytes in the stat data of one).
    Found, the entries are walked to be sure. A version 4 index's names are compressed,
    so there the mode's bytes anywhere have its entries walked (:func:`_named`)."""
    if index[4:8] == b"\0\0\0\4":
        if _GITLINK not in index:
            return {}
        return {
            name: index[off + 40 : off + 60]
            for off, flags, _ext, name in _named(index) or ()
            if not flags & _STAGE and index[off + 24 : off + 28] == _GITLINK and name in wanted
        }
    hits: set[bytes] = set()
    for m in _GITLINK_AT.finditer(index):
        start = m.start() - 24  # (the mode is an entry's bytes 24-28)
        if start < 12 or start + 62 > len(index):
            continue
        (flags,) = _FLAGS.unpack_from(index, start + 60)
        head = start + (64 if flags & EXTENDED else 62)
        name = index[head : head + (flags & 0xFFF)]
        if name in wanted and index[head + len(name) : head + len(name) + 1] == b"\0":
            hits.add(name)
    if not hits:
        return {}
    out: dict[bytes, bytes] = {}
    for off, _size, flags, _ext in _walk(index) or ():
        if not flags & _STAGE and index[off + 24 : off + 28] == _GITLINK:
            name = _name(index, off, flags)
            if name in hits:
                out[name] = index[off + 40 : off + 60]
    return out


def staged_gitlinks(ws: Any, paths: list[str]) -> dict[str, str]:
    """Of ``paths`` (directories the fork's commit holds nothing at, where the view shows
    new files below), those git's index in the live mount of ``ws``'s fork holds as a
    gitlink (stage 0): path -> commit id (the index's: whether a mount is live there is
    mount/side.py's question). What git would record
    there (`git submodule add` staged one: its commit, not the submodule's files), which a
    status and a checkpoint take (core/workspace/wsgitrules.py ``staged_submodules``). A
    confined command's gitlinks never stay in this index (proxy/gitlinks.py
    ``drop_gitlinks``); a path git never writes there (``..``, ``.git``) is not asked."""
    wanted: set[bytes] = set()
    for p in paths:
        parts = p.split("/")
        if not any(x in ("", ".", "..") or x.lower() == ".git" for x in parts):
            wanted.add(p.encode("utf-8", "surrogateescape"))
    if not wanted:
        return {}
    git_dir = worktree_dir(ws.vault, ws.fork)
    data = read_bytes(os.path.join(git_dir, "index"), MAX_INDEX)
    found = gitlinks(whole_entries(git_dir, data or b"") or b"", wanted)
    return {n.decode("utf-8", "surrogateescape"): o.hex() for n, o in found.items()}


def with_flags(data: bytes, kept: Flagged) -> bytes:
    """Index ``data`` with the bits of ``kept`` (:func:`flagged` of the index it replaces)
    set on its entries of those names (the module's docstring gives the rule); ``data``
    itself when nothing changes."""
    import hashlib

    walked = _walk(data) if kept else None
    if not walked:
        return data
    parts: list[bytes] = []  # (after the header, written last: its version may change)
    pos = 12
    version = int.from_bytes(data[4:8], "big")
    changed = False
    for off, size, flags, ext in walked:
        if flags & _STAGE:
            continue
        got = kept.get(_name(data, off, flags))
        if got is None:
            continue
        mode, oid, bits = got
        new_flags, new_ext = flags, ext
        if bits & (SKIP_WORKTREE << 16):
            new_ext |= SKIP_WORKTREE
        same = mode == int.from_bytes(data[off + 24 : off + 28], "big") and oid == data[off + 40 : off + 60]
        if bits & ASSUME_VALID and same:
            new_flags |= ASSUME_VALID
        if new_ext:
            new_flags |= EXTENDED
        if (new_flags, new_ext) == (flags, ext):
            continue
        changed = True
        name = _name(data, off, flags)
        head = data[off : off + 60] + _FLAGS.pack(new_flags) + (_FLAGS.pack(new_ext) if new_ext else b"")
        parts += (data[pos:off], head + name + b"\0" * (8 - (len(head) + len(name)) % 8))
        pos = off + size
        if new_ext:
            version = max(version, 3)
    if not changed:
        return data
    parts.append(data[pos:-20])
    body = b"DIRC" + struct.pack(">I", version) + data[8:12] + b"".join(parts)
    return body + hashlib.sha1(body).digest()


def whole_entries(git_dir: str, index: bytes) -> bytes | None:
    """``index`` (the worktree ``git_dir``'s) with every entry it stands for: a split
    index (`core.splitIndex`, `update-index --split-index`) merged with the shared index
    its ``link`` names (mount/indexsplit.py :func:`.indexsplit.merged`; version 4
    expanded first), in the layout of version 2 or 3 with a checksum of zeros, else itself;
    None where a split index cannot be merged. Before gitmodel18 the readers here took a
    split index's own entries alone: a skip-worktree or assume-unchanged bit on an entry
    of the shared index (set before `git update-index --split-index`, or an entry git
    wrote there since) was dropped by avfs's whole rewrite at a restore or an undo, and a
    gitlink there was not seen. The search for the signature's bytes is C speed; only an
    index holding them is walked."""
    if b"link" not in index:
        return index
    exts = _extensions(index)
    if not exts or not any(sig == b"link" for sig, _s, _e in exts):
        return index
    from .indexsplit import merged  # (a split index only: not every status's path)

    if index[4:8] == b"\0\0\0\4":
        from .indexv4 import expanded

        got = expanded(index)
        exts = None if got is None else _extensions(got)
        if got is None or not exts:
            return None
        index = got
    link = next(start for sig, start, _e in exts if sig == b"link")
    return merged(index, exts[0][1], link, git_dir)


def carried(git_dir: str, data: bytes) -> bytes:
    """``data``, the index about to replace ``git_dir``'s, with the bits git's own
    ``update-index`` set in that one kept (:func:`with_flags`)."""
    old = read_bytes(os.path.join(git_dir, "index"), MAX_INDEX)  # git's, or a confined command's
    if old is None:
        return data
    kept = flagged(whole_entries(git_dir, old) or old)
    return with_flags(data, kept) if kept else data
