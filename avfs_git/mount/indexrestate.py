"""The index a remount brings back (mount/gitkeep.py), restated for the new mount's
fsmonitor: what git staged kept, every entry the new mount's hook cannot vouch for marked
for git to look at, and a token the new mount answers exactly.

Why: git's index carries the fsmonitor token of its last ``git status``. An overlay
mount's daemon hands out ``avfs-ovl:INSTANCE:...`` tokens (core/workspace/upperwatch.py),
which only that daemon can answer; the index the unmount kept came back with one, and the
next mount's hook, overlay or pure FUSE, answered ``/`` ("everything may have changed"):
git lstat-ed every file (``preload/sum_lstat:10000``), 4.6-5.1 s of CPU and 15-17 s of
wall on pure FUSE at 10,000 files (the twenty-fourth round), ~5 s on overlay again. The
stat data were right (``refresh/sum_scan:0``: no file read); only the token was not. And a
pure-FUSE mount's ``avfs:BASE:VIEW_TIME:SEQ`` token, brought to an overlay mount, is
answered with what the fork holds over its base now, not with what changed since SEQ: an
untracked file git had listed and that was removed before the unmount stayed in git's
untracked cache, and ``git status`` listed a file that was not there.

:func:`restated` (the fork where it was: the index's stamp is the mount's) writes:

- every stage-0 entry that is the base tree's (mode and blob) and not intent-to-add, with
  the times and owner the new mount shows for an unchanged file (the view time, or a
  retired file's kept times; the daemon's uid and gid), trusted (git's fsmonitor-valid):
  where the fork holds the path over its base, the hook names it, so git looks. Its inode
  number and size stay git's: both backends show the same (``xino`` keeps the lower
  view's inode numbers in their low 32 bits, which git keeps); computing them costs a
  blob header and a hash a file (the restate took 0.6 s of CPU at 10,000 files with
  them, 0.1 s without: bench/backendswitchab.py's home, in process), and one that were not the mount's would only make git hash that file again once the
  hook names it;
- every other entry (what ``git add`` staged, an intent-to-add, a conflict's stages, a
  path the base does not hold) as git wrote it, marked dirty in the ``FSMN`` bitmap: git
  looks at each, as it would after a ``touch``; git's own dirty bits stay set; the
  skip-worktree and assume-unchanged bits stay;
- the token avfs writes into an index it builds (:func:`.index.fsmonitor_token`: the
  journal from the oldest overlay entry on), which both backends answer with every path the
  fork holds over its base, and nothing else;
- git's cache tree and resolve-undo as git wrote them (the entries' ids are unchanged);
  the untracked cache made anew from the base tree (mount/untracked.py), valid since the
  hook names every directory where the fork holds a file over the base, but only where the
  index holds every file of the base (a ``git rm --cached`` path is untracked there) and
  the fork shows the base's ``.gitignore`` files; else none (git lists every directory
  once).

An index this cannot read (version 4, a split or sparse index, an extension git requires
that is not known here, cut short) is left as it is: slower, never wrong.
"""

from __future__ import annotations

import hashlib
import os
import struct
from typing import TYPE_CHECKING

from ..core.store.treelist import walk_tree
from ..core.types import MODE_TREE, NodeKind
from .ewah import Ewah
from .index import read_view, write_locked
from .indexguard import create_lock, dropped_on_error
from .indexpatch import fsmonitor_dirty, with_hidden_marked
from .ownfiles import MAX_INDEX, owner_record, read_bytes

_U32 = 0xFFFFFFFF  # (git keeps 32 bits of a time's seconds: `mount/index.py`)

if TYPE_CHECKING:
    from .ownfiles import MountedFork

__all__ = ["answerable", "restate", "restated", "unhidden"]

_KEPT_EXTENSIONS = (b"TREE", b"REUC")  # valid as git wrote them: the entries' ids do not change
_DROPPED = (b"UNTR", b"FSMN", b"EOIE", b"IEOT")  # made anew, or optional and about offsets
_STAGE = 0x3000
_EXTENDED = 0x4000
_INTENT_TO_ADD = 0x2000  # of the extended flags
_SKIP_WORKTREE = 0x4000  # of the extended flags


def token_of(index: bytes) -> str | None:
    """The fsmonitor token of ``index`` (its ``FSMN`` extension, version 2), if any."""
    walked = _walk(index)
    if walked is None:
        return None
    for sig, data in walked[1]:
        if sig == b"FSMN" and data[:4] == b"\0\0\0\2":
            end = data.find(b"\0", 4)
            return data[4:end].decode("utf-8", "replace") if end > 0 else None
    return None


def answerable(token: str | None, view_token: str, journal: bool) -> bool:
    """Whether a mount answers git's ``token`` exactly: a pure-FUSE mount's hook
    (``journal``) answers its own kind over the same base and view time from the fork's
    journal, which outlives the mount (``view_token``: the token avfs would write now);
    an overlay mount's hook answers no token of another daemon, and avfs's own only with
    what the fork holds over its base now (the module's docstring)."""
    if not journal or token is None:
        return False
    old, now = token.split(":"), view_token.split(":")
    return len(old) == 4 and old[0] == "avfs" and old[1:3] == now[1:3]


def unhidden(ws: MountedFork, index: bytes) -> bool:
    """Whether ``index`` holds an entry without git's skip-worktree bit at a path the fork's
    rules hide (a rule added since it was written): :func:`restated` gives it the bit."""
    shown = ws.visible_filter()
    walked = None if shown is None else _walk(index)
    if shown is None or walked is None:
        return False
    return any(
        not extended & _SKIP_WORKTREE and not shown(name.decode("utf-8", "surrogateescape"), NodeKind.FILE)
        for _off, name, _flags, extended in walked[0]
    )


def restate(ws: MountedFork, git_dir: str, uid: int, gid: int) -> bool:
    """Write :func:`restated` of ``git_dir``'s index under git's ``index.lock``: True when
    it was (False: left as it is; git holds the lock, or the index is not one to restate)."""
    data = read_bytes(os.path.join(git_dir, "index"), MAX_INDEX)
    if data is None:
        return False
    new = restated(ws, git_dir, data, uid, gid)
    if new is None:
        return False
    try:
        fd = create_lock(git_dir)
    except FileExistsError:
        return False
    with dropped_on_error(git_dir, fd):
        write_locked(git_dir, fd, new)
    return True


def restated(ws: MountedFork, git_dir: str, index: bytes, uid: int, gid: int) -> bytes | None:
    """``index`` (git's, of the mount of ``ws``'s fork at its base and view time) restated
    for a new mount whose daemon runs as ``uid``/``gid`` (the module's docstring); None when
    it cannot be read."""
    walked = _walk(index)
    if walked is None:
        return None
    entries, extensions, ext_at = walked
    view = read_view(ws)
    if view.base is None:
        return None
    store = ws.store
    root = store.commit_tree(view.base)
    base: dict[bytes, tuple[int, bytes]] = {}
    skeleton: list[tuple[str, str | None]] = []
    for path, mode, oid in walk_tree(root, store.tree_items):
        if mode == MODE_TREE:
            skeleton.append((path, None))
            continue
        if path == ".gitignore" or path.endswith("/.gitignore"):
            skeleton.append((path, oid))
        base[path.encode("utf-8", "surrogateescape")] = (mode, bytes.fromhex(oid))
    # (the times an unchanged file shows: the view time, or a retired file's kept times)
    kept, t = ws.overlay.kept_reader(view.view_time), view.view_ns()
    out = bytearray(index[:ext_at])
    dirty = set(fsmonitor_dirty(index, ext_at, len(entries)))
    held: set[bytes] = set()  # (the paths the index holds, at any stage)
    pack, pack_ids = struct.Struct(">IIIII").pack_into, struct.Struct(">II").pack_into
    for i, (off, name, flags, extended) in enumerate(entries):
        held.add(name)
        if extended & _SKIP_WORKTREE:
            continue  # (git does not look at its file)
        mode = int.from_bytes(index[off + 24 : off + 28], "big")
        hit = base.get(name)
        if flags & _STAGE or extended & _INTENT_TO_ADD or hit != (mode, index[off + 40 : off + 60]):
            dirty.add(i)
            continue
        assert hit is not None
        got = kept(name.decode("utf-8", "surrogateescape"))
        c, m = (got[2], got[1]) if got is not None and got[0] == hit[1].hex() else (t, t)
        pack(out, off, c // 10**9 & _U32, c % 10**9, m // 10**9 & _U32, m % 10**9, 0)
        pack_ids(out, off + 28, uid & 0xFFFFFFFF, gid & 0xFFFFFFFF)
    shown = ws.visible_filter()
    if shown is not None:  # (a rule added since: its paths' entries skip-worktree, review41)
        out = bytearray(
            with_hidden_marked(bytes(out), [e[0] for e in entries], lambda p: not shown(p, NodeKind.FILE))
        )
    for sig, data in extensions:
        if sig in _KEPT_EXTENSIONS:
            out += sig + struct.pack(">I", len(data)) + data
    bits = Ewah()
    for i in sorted(dirty):
        bits.set(i)
    ewah = bits.serialized()
    ext = struct.pack(">I", 2) + view.token.encode() + b"\0" + struct.pack(">I", len(ewah)) + ewah
    out += b"FSMN" + struct.pack(">I", len(ext)) + ext
    if held.issuperset(base):
        untr = _untracked_cache(ws, git_dir, skeleton, bytes(out))
        if untr is not None:
            out += untr
    return bytes(out) + hashlib.sha1(out).digest()


def _untracked_cache(
    ws: MountedFork, git_dir: str, skeleton: list[tuple[str, str | None]], index: bytes
) -> bytes | None:
    """git's untracked cache of the base tree (every directory holds no untracked file) for
    the mount point of ``ws``'s mount, where the fork shows the base's ``.gitignore`` files;
    else None."""
    from . import untracked
    from .ownfiles import files_dir

    mountpoint = (owner_record(ws.vault, ws.fork) or {}).get("mountpoint")
    if not isinstance(mountpoint, str) or not mountpoint:
        return None
    if untracked.gitignores_shown(ws, {p for p, oid in skeleton if oid is None}):
        return None
    return untracked.extension(
        ws.store, skeleton, index, mountpoint, git_dir, None, scratch=files_dir(ws.vault, ws.fork)
    )


def _walk(index: bytes) -> tuple[list[tuple[int, bytes, int, int]], list[tuple[bytes, bytes]], int] | None:
    """(each entry's (offset, name, flags, extended flags), the extensions (signature,
    data), where they start) of a version 2 or 3 index whose SHA-1 checks and whose
    extensions are all ones this may keep or drop; None otherwise."""
    if len(index) < 32 or index[:4] != b"DIRC" or index[4:8] not in (b"\0\0\0\2", b"\0\0\0\3"):
        return None
    if hashlib.sha1(memoryview(index)[:-20]).digest() != index[-20:]:
        return None
    count = int.from_bytes(index[8:12], "big")
    end = len(index) - 20
    entries: list[tuple[int, bytes, int, int]] = []
    off = 12
    try:
        for _ in range(count):
            flags = int.from_bytes(index[off + 60 : off + 62], "big")
            extended = int.from_bytes(index[off + 62 : off + 64], "big") if flags & _EXTENDED else 0
            head = 64 if flags & _EXTENDED else 62
            nl = flags & 0xFFF
            if nl == 0xFFF:
                nl = index.index(b"\0", off + head) - off - head
            entries.append((off, index[off + head : off + head + nl], flags, extended))
            off += (head + 8 + nl) & ~7
    except ValueError:
        return None
    if off > end:
        return None
    ext_at = off
    extensions: list[tuple[bytes, bytes]] = []
    while off + 8 <= end:
        sig = index[off : off + 4]
        size = int.from_bytes(index[off + 4 : off + 8], "big")
        if sig not in _KEPT_EXTENSIONS and sig not in _DROPPED:
            return None  # (a split index's link, a sparse index's sdir, one git requires)
        extensions.append((sig, index[off + 8 : off + 8 + size]))
        off += 8 + size
    if off != end:
        return None
    return entries, extensions, ext_at
