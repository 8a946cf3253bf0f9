"""A mounted fork's git index patched where two bases differ (a checkpoint, an exec's
commit, ``merge --continue``: the base moved under an unchanged view): the changed paths'
entries replaced, dropped or inserted, the rest of the index copied as bytes, git's cache
tree invalidated on the changed directories, a new fsmonitor token. mount/index.py's
:func:`.index.sync_index` writes it; an index this cannot patch is written whole there.

Cost: one walk of the entries' flags (not their names) and the bytes copied: at 75,000
files the walk was most of a checkpoint in an overlay mount (72 ms slicing every name,
19 ms reading the flags), so it reads a name only where its length is a changed path's.
"""

from __future__ import annotations

import bisect
import os
import struct
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..core.store.treediff import diff_trees
from ..core.types import Change
from ..core.workspace.wssmudge import reformed
from .ownfiles import MAX_INDEX, MountedFork, files_dir, read_bytes

_U32 = 0xFFFFFFFF  # (git keeps 32 bits of a time's seconds: `mount/index.py`)

if TYPE_CHECKING:
    from .ewah import Ewah

StatFn = Callable[[str, int, str], tuple[int, int, int, int, int, int]]
# the third field of a mount's index stamp (base, view time, open merge's theirs or "-")
# while a merge's conflicts are set in its view and their state is not written yet: the
# index is still the one written for the base at that view time, which the state's own
# write patches (:func:`patched_for` ``merging``); no other stamp ends so
SHOWN = "~"


def _whole(data: bytes, off: int, git_dir: str) -> bytes | None:
    """Index ``data`` whole: itself, or where it is a split index (a ``link`` extension
    among those from ``off``) its few entries and the shared index it names, merged
    (mount/indexsplit.py, loaded only then: not every status's path); None where they
    cannot be."""
    if b"link" not in data[off:]:
        return data
    from .indexsplit import link_at, merged

    link = link_at(data, off)
    return data if link is None else merged(data, off, link, git_dir)


def patched_index(
    ws: MountedFork,
    git_dir: str,
    old_base: str,
    new_base: str,
    stat_of: StatFn,
    token: str,
    *,
    keep: frozenset[str] = frozenset(),
    staged: set[str] | None = None,
    keep_staged: bool = False,
    hidden: Callable[[str], bool] | None = None,
    untracked: bool = False,
    conflicts: tuple[str, Sequence[Sequence[Any]]] | None = None,
) -> bytes | None:
    """The index of ``git_dir`` (written for ``old_base``, perhaps changed by git since)
    with the paths where ``new_base`` differs set to its entries, and a new fsmonitor
    token; None when it is not an index this can patch (another version, unmerged
    entries, unreadable): then it is written whole. ``keep``: paths left as the index has
    them (what git staged that an undo keeps staged, mount/indexahead.py); ``staged``:
    filled with the paths whose entry the index already held as ``new_base`` has it (or
    lacked, where ``new_base`` has none), and ``keep``: what the move's undo keeps staged.
    ``keep_staged`` (another hand's commit adopted, gitmodel21): a path whose entry git
    staged (neither ``old_base``'s nor ``new_base``'s) stays as git has it, as a plain
    worktree keeps its whole index when another hand moves its branch (`MM`: staged,
    changed again, then committed by another hand as the file shows it). ``hidden``: paths
    the policy hides, each entry skip-worktree (:func:`_new_entries`, :func:`_hidden_marked`).
    ``untracked``: git's untracked cache kept (a merge into an overlay mount), else left out.
    ``conflicts``: (the tree a merge's written conflicts show, their unmerged entries):
    patched to that tree, each conflicted path's entries its stages (mount/indexstages.py)."""
    import hashlib

    data, v4 = _read_index(git_dir)
    if data is None:
        return None
    moved = _moved(ws, old_base, new_base, keep, None if conflicts is None else conflicts[0])
    if moved is None:  # the old base is gone (gc): write it whole
        return None
    changed = {m[0].encode("utf-8", "surrogateescape") for m in moved if not m[3]}
    repl = _new_entries(moved, stat_of, hidden)
    repl.update(stages := {} if conflicts is None else _stages(conflicts[1]))
    walked = _entry_offsets(data, {len(n) for n in repl}, repl)
    if walked is None:
        return None
    offs, hits, off = walked
    whole = _whole(data, off, git_dir)
    if whole is not data:
        # a split index: patched whole (:func:`_whole`), written back unsplit
        walked = None if whole is None else _entry_offsets(whole, {len(n) for n in repl}, repl)
        if whole is None or walked is None:
            return None
        data = whole
        offs, hits, off = walked
    kept = _drop_staged(ws, data, old_base, hits, repl) if keep_staged else []
    if staged is not None:
        staged.update(_already(data, hits, repl, changed), keep)  # (keep: a redo keeps them, review40 F1)
        # (kept staged over the move: an undo of it keeps them as git's index has them too)
        staged.update(name.decode("utf-8", "surrogateescape") for name, _at in kept)
    # the edits, in the index's order: each changed entry replaced (or dropped), each new
    # path inserted before the first entry whose name sorts after it (git's order: bytes)
    edits: list[tuple[int, int, int, bytes]] = []  # (start, 0 insert / 1 replace, end, bytes)
    count = len(offs) + sum(_entries_in(b) - 1 for b in stages.values())  # (a path's stages: 1-3)
    for name, (at, size) in hits.items():
        new = repl.pop(name)
        if (
            new is not None
            and name not in stages  # (unmerged: its stages replace the entry, no flag of it kept)
            and data[at + 60] & 0x80
            and data[at + 24 : at + 28] + data[at + 40 : at + 60] == (new[24:28] + new[40:60])
        ):
            # assume-unchanged on an entry the move leaves as it was: kept, as by git's `reset`
            new = new[:60] + (int.from_bytes(new[60:62], "big") | 0x8000).to_bytes(2, "big") + new[62:]
        if new is not None and name not in stages and data[at + 60] & 0x40 and data[at + 62] & 0x40:
            # skip-worktree: kept on the path's new entry, as git's `reset -- PATH` keeps it
            n = len(name)
            new = new[:60] + (int.from_bytes(new[60:62], "big") | 0x4000).to_bytes(2, "big")
            new += b"\x40\x00" + name + b"\0" * (8 - (64 + n) % 8)
        edits.append((at, 1, at + size, new or b""))
        count -= new is None
    i = 0  # (each sorted name goes at or after the last one's place: searched only past it)
    for name, new in sorted(repl.items()):  # paths the index did not hold
        if new is not None:
            if i < len(offs) and name > _name_at(data, offs[i]):
                i = bisect.bisect_left(range(len(offs)), name, lo=i, key=lambda j: _name_at(data, offs[j]))
            at = offs[i] if i < len(offs) else off
            edits.append((at, 0, at, new))
            count += 1
    _hidden_marked(data, offs, edits, hidden)  # (sorted: an edit a start, inserts before replacing)
    dirty = _dirty_after(data, off, offs, edits, [at for _n, at in kept if at is not None])
    out: list[bytes] = []
    pos = 12
    for start, _, stop, new in edits:
        out += (data[pos:start], new)
        pos = stop
    out.append(data[pos:off])
    body = b"DIRC" + _version(data, edits) + struct.pack(">I", count) + b"".join(out)
    paths = [m[0] for m in moved] + [n.decode("utf-8", "surrogateescape") for n in stages]
    body += _kept_extensions(data, off, paths, untracked)
    ewah = dirty.serialized() if dirty is not None and dirty.bits else struct.pack(">IIQI", 0, 1, 0, 0)
    ext = struct.pack(">I", 2) + token.encode() + b"\0" + struct.pack(">I", len(ewah)) + ewah
    body += b"FSMN" + struct.pack(">I", len(ext)) + ext
    if v4:
        from .indexv4 import compressed

        body = compressed(body)
    from .stagedplant import over_move  # a staged half an earlier run left, this commit's half (review39)

    made, own = body + hashlib.sha1(body).digest(), files_dir(ws.vault, ws.fork)
    return over_move(ws.store, git_dir, made, new_base, (m[0] for m in moved), own)


def _hidden_marked(
    data: bytes,
    offs: Sequence[int],
    edits: list[tuple[int, int, int, bytes]],
    hidden: Callable[[str], bool] | None,
) -> None:
    """``edits`` (:func:`patched_index`'s) sorted, with one more giving git's skip-worktree
    bit to each entry of index ``data`` (at ``offs``; but those ``edits`` replace) that
    ``hidden`` holds and that lacks it (extended: a version-3 entry): git's `update-index
    --no-skip-worktree` of a hidden path, or a rule added since the entry was written,
    would otherwise stay, and git outside the fsmonitor sees the file the mount hides as
    deleted (`commit -a` records that: review41). Only an entry without the bit has its
    name read."""
    replaced = {e[0] for e in edits if e[1]}
    for at in offs if hidden is not None else ():
        flags = int.from_bytes(data[at + 60 : at + 62], "big")
        head = 64 if flags & 0x4000 else 62
        if (head == 64 and data[at + 62] & 0x40) or at in replaced:
            continue
        nl = flags & 0xFFF
        if nl == 0xFFF:
            nl = data.index(b"\0", at + head) - at - head
        name = data[at + head : at + head + nl]
        if hidden is not None and hidden(name.decode("utf-8", "surrogateescape")):
            ext = bytes(((data[at + 62] if head == 64 else 0) | 0x40, data[at + 63] if head == 64 else 0))
            new = data[at : at + 60] + (flags | 0x4000).to_bytes(2, "big") + ext + name
            edits.append((at, 1, at + ((head + 8 + nl) & ~7), new + b"\0" * (8 - (64 + nl) % 8)))
    edits.sort(key=lambda e: (e[0], e[1]))


def with_hidden_marked(entries: bytes, offs: Sequence[int], hidden: Callable[[str], bool]) -> bytes:
    """An index's header and ``entries`` (at ``offs``) with :func:`_hidden_marked`'s bits
    (at version 3 where it was 2 and an entry gained them): the entries a remount brings
    back (mount/indexrestate.py), a rule added since they were written included."""
    edits: list[tuple[int, int, int, bytes]] = []
    _hidden_marked(entries, offs, edits, hidden)
    if not edits:
        return entries
    out, pos = [entries[:4], _version(entries, edits), entries[8:12]], 12
    for start, _, stop, new in edits:
        out += (entries[pos:start], new)
        pos = stop
    out.append(entries[pos:])
    return b"".join(out)


def _version(data: bytes, edits: list[tuple[int, int, int, bytes]]) -> bytes:
    """The patched index's version: ``data``'s, but 3 where it was 2 and an edit's entry is
    extended (a hidden path's, skip-worktree: mount/index.py writes such an index at 3 too)."""
    if data[4:8] == b"\0\0\0\2" and any(new and new[60] & 0x40 for _s, _k, _e, new in edits):
        return b"\0\0\0\3"
    return data[4:8]


def _read_index(git_dir: str) -> tuple[bytes | None, bool]:
    """(the index of ``git_dir`` in the layout of version 2 or 3, None when it is not one
    this can patch; whether it was version 4, expanded)."""
    data = read_bytes(os.path.join(git_dir, "index"), MAX_INDEX)  # git's, or a confined command's
    # (version 3: git's own `update-index --skip-worktree` or `add -N` made an entry extended;
    # version 4: patched in the layout of 2 and 3 and written at 4 again, mount/indexv4.py)
    v4 = False
    if data is not None and len(data) >= 32 and data[:8] == b"DIRC\0\0\0\4":  # (indexv4.V4)
        from .indexv4 import expanded  # (a version 4 index only: not every status's path)

        v4, data = True, expanded(data)
    if data is None or len(data) < 32 or data[:4] != b"DIRC" or data[4:8] not in (b"\0\0\0\2", b"\0\0\0\3"):
        return None, v4
    return data, v4


def _stages(unmerged: Sequence[Sequence[Any]]) -> dict[bytes, bytes]:
    """mount/indexstages.py's ``merge_stages``."""
    from .indexstages import merge_stages  # (a merge's written conflicts only)

    return merge_stages(unmerged)


def _entries_in(made: bytes) -> int:
    """mount/indexstages.py's ``entries_in``."""
    from .indexstages import entries_in as count  # (a merge's written conflicts only)

    return count(made)


def _drop_staged(
    ws: MountedFork,
    data: bytes,
    old_base: str,
    hits: dict[bytes, tuple[int, int]],
    repl: dict[bytes, bytes | None],
) -> list[tuple[bytes, int | None]]:
    """:func:`patched_index`'s ``keep_staged``: out of ``repl`` (and ``hits``) each path
    whose entry in index ``data`` is neither ``old_base``'s nor its replacement (what git
    staged there, an added file or a removal `git rm --cached` made included). Returns
    the names and offsets (None: a removal) of the entries so kept: git looks at their
    files again (their stat data is the person's `git add`'s, and avfs's token answers
    only what the files differ from the new base in: the file now the new commit's could
    read as the staged one, `M ` where a plain worktree shows `MM`; h-staged1)."""
    old_tree = ws.store.commit_tree(old_base)
    kept: list[tuple[bytes, int | None]] = []
    for name in list(repl):
        new, hit = repl[name], hits.get(name)
        have = None if hit is None else data[hit[0] + 24 : hit[0] + 28] + data[hit[0] + 40 : hit[0] + 60]
        was = ws.store.tree_lookup(old_tree, name.decode("utf-8", "surrogateescape"))
        old = None if was is None else struct.pack(">I", was[1]) + bytes.fromhex(was[0])
        if have != old and have != (None if new is None else new[24:28] + new[40:60]):
            del repl[name]
            kept.append((name, None if hit is None else hit[0]))
            hits.pop(name, None)
    return kept


def _moved(
    ws: MountedFork, old_base: str, new_base: str, keep: frozenset[str], tree: str | None = None
) -> list[tuple[str, int | None, str | None, bool]] | None:
    """(path, mode, object, reformed) of each path where ``new_base`` (or ``tree``) differs
    from ``old_base`` but ``keep``'s (mode and object None: gone), and each file whose
    checkout form alone changed (``reformed``); None when the old base is gone (gc)."""
    store = ws.store
    changes: list[Change] = []
    try:
        old_tree, new_tree = store.commit_tree(old_base), tree or store.commit_tree(new_base)
        diff_trees(store, old_tree, new_tree, "", changes)
    except Exception:
        return None
    moved: list[tuple[str, int | None, str | None, bool]] = [
        (c.path, c.new_mode, c.new_oid, False) for c in changes if c.path not in keep
    ]
    # a file whose blob stayed but whose checkout form a changed .gitattributes made other
    # bytes: the mount shows the new form, and git trusts an index size that is not the
    # file's for a change without reading it (core/workspace/wssmudge.py)
    for p in reformed(store, old_tree, new_tree, (c.path for c in changes)):
        hit = store.tree_lookup(new_tree, p)
        if hit is not None and p not in keep:
            moved.append((p, hit[1], hit[0], True))
    return moved


def _new_entries(
    moved: list[tuple[str, int | None, str | None, bool]],
    stat_of: StatFn,
    hidden: Callable[[str], bool] | None = None,
) -> dict[bytes, bytes | None]:
    """The index entry of each of ``moved`` (:func:`_moved`), by name: None for a path gone.
    ``hidden``: the paths the fork's policy hides, each given git's skip-worktree bit and no
    stat data, as mount/index.py writes them whole (extended: a version-3 entry)."""
    entry = struct.Struct(">IIIIIIIIII20sH").pack
    repl: dict[bytes, bytes | None] = {}
    for path, new_mode, new_oid, _ in moved:
        raw = path.encode("utf-8", "surrogateescape")
        if new_oid is None or new_mode is None:
            repl.setdefault(raw, None)
            continue
        n = len(raw)
        if hidden is not None and hidden(path):
            repl[raw] = (
                entry(0, 0, 0, 0, 0, 0, new_mode, 0, 0, 0, bytes.fromhex(new_oid), 0x4000 | min(n, 0xFFF))
                + b"\x40\x00" + raw + b"\0" * (8 - (64 + n) % 8)
            )  # fmt: skip
            continue
        ctime, mtime, ino, uid, gid, size = stat_of(path, new_mode, new_oid)
        repl[raw] = (
            entry(ctime // 10**9 & _U32, ctime % 10**9, mtime // 10**9 & _U32, mtime % 10**9, 0, ino & _U32,
                  new_mode, uid, gid, size & 0xFFFFFFFF, bytes.fromhex(new_oid), min(n, 0xFFF))
            + raw + b"\0" * (8 - (62 + n) % 8)
        )  # fmt: skip
    return repl


def _already(
    data: bytes,
    hits: Mapping[bytes, tuple[int, int]],
    repl: Mapping[bytes, bytes | None],
    changed: set[bytes],
) -> list[str]:
    """The paths of ``changed`` whose entry in index ``data`` (``hits``: by name) already
    has the mode and object of its replacement in ``repl`` (None: the index holds none)."""
    out: list[str] = []
    for name in changed:
        new, hit = repl.get(name), hits.get(name)
        if new is None:
            same = hit is None
        else:
            same = hit is not None and data[hit[0] + 24 : hit[0] + 28] + data[hit[0] + 40 : hit[0] + 60] == (
                new[24:28] + new[40:60]
            )
        if same:
            out.append(name.decode("utf-8", "surrogateescape"))
    return out


def _dirty_after(
    data: bytes, off: int, offs: list[int], edits: list[tuple[int, int, int, bytes]], kept: Sequence[int] = ()
) -> Ewah | None:
    """git's fsmonitor dirty bits of index ``data`` (its ``FSMN`` extension: the entries git
    last found differing from their file, or changed since it looked: an exec bit
    `update-index --chmod` staged alone), at the positions those entries take in the
    patched index (``edits``: :func:`patched_index`'s, in the index's order; an entry
    replaced takes the new commit's stat data and is clean under avfs's token). Kept, git
    looks at those files again; dropped (an empty bitmap, as before gitmodel14), avfs's
    token, whose answer names only what the files differ from the base in, had git trust
    such an entry without looking: `MM` read `M ` after a checkpoint. ``kept``: offsets of
    entries git staged that the patch kept (:func:`_drop_staged`), made dirty too."""
    old = fsmonitor_dirty(data, off, len(offs))
    if kept:
        index_of = {at: j for j, at in enumerate(offs)}
        old = sorted({*old, *(index_of[at] for at in kept if at in index_of)})
    if not old:
        return None
    from .ewah import Ewah  # (only where git left dirty bits: a checkpoint's import count)

    out = Ewah()
    gone: list[int] = []  # offsets of the entries replaced or removed
    inserted: list[int] = []  # offsets before which an entry is inserted
    for start, kind, _stop, _new in edits:
        (gone if kind else inserted).append(start)
    gone_set = set(gone)
    removed = sorted(start for start, kind, _stop, new in edits if kind and not new)
    for j in old:
        if j >= len(offs) or offs[j] in gone_set:
            continue
        at = offs[j]
        out.set(j - bisect.bisect_left(removed, at) + bisect.bisect_right(inserted, at))
    return out


def fsmonitor_dirty(index: bytes, off: int, entries: int) -> list[int]:
    """The positions set in the dirty bitmap of ``index``'s ``FSMN`` extension (version 2;
    its extensions start at ``off``), in increasing order, below ``entries`` (the index's
    count) and the bitmap's own bit count; none when it has none or it cannot be read (git
    then finds none dirty, as in the index avfs writes). A marker word says how many words
    of ones follow, up to 2^32 - 1 of them: read as far as the entries go, never further
    (the twenty-fourth round, NAME=attack15: one such word a confined command wrote into
    the mount's index had the next checkpoint ask for a list of 2^38 positions)."""
    end = len(index) - 20
    while off + 8 <= end:
        size = int.from_bytes(index[off + 4 : off + 8], "big")
        if index[off : off + 4] != b"FSMN":
            off += 8 + size
            continue
        ext = index[off + 8 : off + 8 + size]
        try:
            if int.from_bytes(ext[:4], "big") != 2:
                return []
            nul = ext.index(b"\0", 4)
            at = nul + 1 + 4  # (the bitmap's size)
            nbits, nwords = struct.unpack_from(">II", ext, at)
            words = struct.unpack_from(f">{nwords}Q", ext, at + 8)
        except (ValueError, struct.error):
            return []
        limit = min(nbits, entries)
        bits: list[int] = []
        pos = i = 0
        while i < len(words) and pos < limit:
            rlw = words[i]
            run, lits = (rlw >> 1) & 0xFFFFFFFF, rlw >> 33
            if rlw & 1:
                bits.extend(range(pos, min(pos + 64 * run, limit)))
            pos += 64 * run
            for w in words[i + 1 : i + 1 + lits]:
                if pos >= limit:
                    break
                bits.extend(pos + b for b in range(64) if w >> b & 1)
                pos += 64
            i += 1 + lits
        return [b for b in bits if b < limit]
    return []


def _entry_offsets(
    data: bytes, lengths: set[int], wanted: Mapping[bytes, object]
) -> tuple[list[int], dict[bytes, tuple[int, int]], int] | None:
    """Walk the entries of index ``data`` (version 2 or 3): (every entry's offset, the entries
    named in ``wanted`` as name -> (offset, size), the offset where the entries end); None
    when it cannot be patched (unmerged entries: git is merging; cut short). Only a name
    whose length is in ``lengths`` is read: the walk is a read of each entry's flags
    (~4x faster than slicing every name, which was most of a checkpoint in a 75k-file
    mount)."""
    flags_at = struct.Struct(">H").unpack_from
    count = int.from_bytes(data[8:12], "big")
    end = len(data) - 20
    offs: list[int] = []
    mark = offs.append
    hits: dict[bytes, tuple[int, int]] = {}
    off = 12
    try:
        for _ in range(count):
            (flags,) = flags_at(data, off + 60)
            if flags & 0x3000:
                return None  # unmerged entries: git is merging
            head = 64 if flags & 0x4000 else 62  # (an extended entry: 2 more flag bytes)
            nl = flags & 0xFFF
            if nl == 0xFFF:
                nl = data.index(b"\0", off + head) - off - head
            size = (head + 8 + nl) & ~7  # 62 or 64 bytes, the name, 1-8 NULs to a multiple of 8
            if nl in lengths and (name := data[off + head : off + head + nl]) in wanted:
                hits[name] = (off, size)
            mark(off)
            off += size
    except (ValueError, struct.error):
        return None
    if off > end:
        return None
    return offs, hits, off


def _kept_extensions(data: bytes, off: int, paths: list[str], untracked: bool) -> bytes:
    """The extensions of index ``data`` (from ``off``) a patch keeps: git's cache tree,
    which git status never rebuilds, but for the directories on the changed ``paths``;
    the untracked cache only where ``untracked`` (:func:`patched_index`; else left out:
    git lists every directory once)."""
    out = b""
    cache_tree = _cache_tree_without(data, off, paths)
    if cache_tree is not None:
        out += b"TREE" + struct.pack(">I", len(cache_tree)) + cache_tree
    kept = extension_at(data, off, b"UNTR") if untracked else None
    if kept is not None:
        out += b"UNTR" + struct.pack(">I", len(kept)) + kept
    return out


def entry_offsets(data: bytes) -> tuple[list[int], int] | None:
    """(every entry's offset, where the entries end) of index ``data`` (version 2 or 3);
    None where it cannot be read or holds unmerged entries (:func:`_entry_offsets`)."""
    walked = _entry_offsets(data, set(), {})
    return None if walked is None else (walked[0], walked[2])


def extension_at(index: bytes, off: int, sig: bytes) -> bytes | None:
    """The data of extension ``sig`` of ``index``, whose extensions start at ``off``."""
    end = len(index) - 20
    while off + 8 <= end:
        size = int.from_bytes(index[off + 4 : off + 8], "big")
        if index[off : off + 4] == sig:
            return index[off + 8 : off + 8 + size]
        off += 8 + size
    return None


def _name_at(data: bytes, off: int) -> bytes:
    """The name of the index entry at ``off``."""
    flags = int.from_bytes(data[off + 60 : off + 62], "big")
    head = 64 if flags & 0x4000 else 62
    nl = flags & 0xFFF
    if nl == 0xFFF:
        nl = data.index(b"\0", off + head) - off - head
    return data[off + head : off + head + nl]


def _cache_tree_without(index: bytes, off: int, paths: Sequence[str]) -> bytes | None:
    """The ``TREE`` extension of ``index`` (its extensions start at ``off``) with the
    directories holding any of ``paths`` (and the root) invalidated (entry count -1, no
    tree id: git's own way); None when the index has none or it cannot be read."""
    end = len(index) - 20
    data = None
    while off + 8 <= end:
        size = int.from_bytes(index[off + 4 : off + 8], "big")
        if index[off : off + 4] == b"TREE":
            data = index[off + 8 : off + 8 + size]
            break
        off += 8 + size
    if data is None:
        return None
    dirs = {""}
    for p in paths:
        while "/" in p:
            p = p.rsplit("/", 1)[0]
            dirs.add(p)
    out: list[bytes] = []
    at = 0

    def one(prefix: str) -> None:
        nonlocal at
        nul = data.index(b"\0", at)
        name = data[at:nul]
        nl = data.index(b"\n", nul)
        count, subs = (int(x) for x in data[nul + 1 : nl].split())
        at = nl + 1
        text = name.decode("utf-8", "surrogateescape")
        path = f"{prefix}/{text}" if prefix and text else (text or prefix)
        oid = b""
        if count >= 0:
            oid = data[at : at + 20]
            at += 20
        if count < 0 or path in dirs:
            out.append(name + b"\0" + b"-1 %d\n" % subs)
        else:
            out.append(name + b"\0" + b"%d %d\n" % (count, subs) + oid)
        for _ in range(subs):
            one(path)

    try:
        one("")
    except (ValueError, IndexError, struct.error, RecursionError):
        return None  # (nested past Python's limit, ~1,000 deep: the patch writes no cache tree)
    return b"".join(out) if at == len(data) else None


def patched_for(
    ws: MountedFork,
    git_dir: str,
    own: str,
    old: str,
    base: str,
    stat_of: StatFn,
    token: str,
    note: bool,
    keep_staged: bool,
    hidden: Callable[[str], bool] | None = None,
    merging: Mapping[str, Any] | None = None,
) -> tuple[bytes | None, tuple[str, str, set[str]] | None]:
    """:func:`.index.sync_index`'s patch of the index written for ``old`` (mount/indexpatch.py),
    and what to note once it is written. ``note`` (the first write of a mount whose kept
    index a move made unmounted patches, mount/gitkeep.py): the patch keeps what avfs's
    note says an undo keeps staged, and what git had staged as the move recorded it is
    noted, as for one made mounted (gitmodel21: mount/stagednote.py). ``keep_staged``:
    another hand's commit adopted (mount/indexpatch.py); ``hidden``: :func:`patched_index`'s.
    ``merging``: a merge's written conflicts over the same base, the index before them
    stamped :data:`SHOWN` (mount/live.py ``sync_mounted``): patched to the tree they show,
    with their stages (a fork with hidden paths: written whole, as before)."""
    if merging is not None:
        if hidden is not None or old != base or not merging.get("view_tree"):
            return None, None
        shown = (str(merging["view_tree"]), merging.get("stages") or ())
        return patched_index(ws, git_dir, old, base, stat_of, token, conflicts=shown), None
    keep, staged = frozenset[str](), set[str]()
    if note:
        from .stagednote import undone  # (only at a mount's first write after a move unmounted)

        keep = undone(own, old, base)
    data = patched_index(
        ws,
        git_dir,
        old,
        base,
        stat_of,
        token,
        keep=keep,
        staged=staged,
        keep_staged=keep_staged,
        hidden=hidden,
    )
    return data, ((old, base, staged) if note and data is not None else None)


def noted_after(own: str, what: tuple[str, str, set[str]] | None) -> None:
    """:func:`.stagednote.note` of what :func:`patched_for` gave, once the index is written (None: nothing)."""
    if what is not None:
        from .stagednote import note

        note(own, *what)
