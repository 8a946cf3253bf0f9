"""A lazy fork's mount's git index made by git: ``git read-tree`` of the base tree into a
scratch index file (C; in a partial clone it reads trees only, never a blob), the stat data
the mount reports written into git's entries in one pass over the bytes while the sizes are
still asked (:func:`made_by_git`), and the sizes once they come (:func:`sizes_filled`).
mount/index.py's ``sync_index`` writes a fresh lazy mount's index so; git's process is
started once the mount is announced (:class:`Ahead`, fuse/settle.py), so the index does
not wait for all of it once git asks (docs/lazy.md, "Mounting a lazy fork: sizes before contents").

Why: the settling's index had been built entry by entry in Python (the listing parsed, each
entry packed, its sizes filled in by a second pass: 0.25-0.3 s of the daemon's interpreter
at 20,538 files, on the way to the first `git status`); git makes the same entries and its
cache tree in ~0.07 s of a process of its own, the pass that fills in the stat data holds
the interpreter ~0.05 s while the server answers, and the sizes' pass ~0.02 s after it
(docs/benchmarks.md, the ninth round).

What git writes is checked, not trusted blindly: index version 2 (whatever the user's
config says: :data:`CONFIG`), every entry at stage 0 without extended flags, its cache tree
for this tree and counting every entry, and last; anything else gives None, and the caller
builds the index as before (:func:`.index.index_bytes`). Nothing of git's bytes changes but
the stat data, which are the mount's (:func:`.index.index_stat`: the view time,
:func:`.heldstat.inode_of`, the daemon's uid and gid, the size): ``tests/test_readtree.py``
holds the result to :func:`.index.index_bytes`'s and to git's own reading of it on released
projects' trees and on a tree of awkward names and modes.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import subprocess
import tempfile
import threading
from collections.abc import Callable
from typing import NamedTuple

from ..core.errors import InternalError
from ..core.store.gitrun import git_env, spawn
from ..core.store.treelist import Droppable

# git's settings for the scratch index: version 2 (no path compression, no skipped hash:
# the pass below reads it as such), and nothing git would add beside the entries and the
# cache tree (an untracked cache or fsmonitor extension of its own, a split or sparse
# index, the offset tables of threaded reading)
CONFIG = (
    "index.version=2",
    "feature.manyFiles=false",
    "index.skipHash=false",
    "index.sparse=false",
    "core.sparseCheckout=false",
    "core.splitIndex=false",
    "core.untrackedCache=false",
    "core.fsmonitor=false",
    "index.recordEndOfIndexEntries=false",
    "index.recordOffsetTable=false",
)
_GITIGNORE = b".gitignore"
MADE_AHEAD_MAX = 2 << 30  # (an index made ahead larger than this is not read: a kept index's bound)
_GITLINK = struct.pack(">I", 0o160000)  # a submodule's mode
_FILE_MODES = (struct.pack(">I", 0o100644), struct.pack(">I", 0o100755))


_STAT = struct.Struct(">6I").pack_into  # ctime, mtime (s, ns), dev, ino
_OWNER = struct.Struct(">2I").pack_into  # uid, gid
_SIZE = struct.Struct(">I").pack_into


class GitIndex(NamedTuple):
    """An index git made of a tree, as :func:`made_by_git` returns it."""

    data: bytes  # git's entries with the mount's stat data (sizes: those known), its cache tree, FSMN
    # the tree's directories (path, None), parents first, then its .gitignore files (path, id)
    skeleton: list[tuple[str, str | None]]
    # (offset of an entry's size, its blob id): each file's whose size was not known (left 0)
    sized_at: list[tuple[int, str]]


def made_by_git(
    git_dir: str,
    tree: str,
    token: str,
    t_ns: int,
    owner: tuple[int, int],
    scratch: str | None = None,
    size_of: Callable[[str], int | None] | None = None,
) -> GitIndex | None:
    """The index of ``tree`` (in the vault ``git_dir``) as ``git read-tree`` writes it, with
    each entry's stat data what the mount reports for an unchanged file
    (:func:`.index.index_stat`: ctime and mtime ``t_ns``, dev 0, the path's inode number,
    :func:`.heldstat.inode_of`, ``owner``'s uid and gid, the size ``size_of(blob id)`` says),
    a size it does not know (None; every size without ``size_of``) left 0 for
    :func:`sizes_filled` (a submodule's, which names a commit, stays 0), git's ``FSMN``
    extension added (version 2, ``token``, nothing dirty), and the tree's skeleton
    (mount/untracked.py makes the untracked cache from it). Git's scratch file is made in a
    private directory under ``scratch`` (the system's temporary directory when None). None
    where git cannot make it or made one this does not read."""
    return Ahead(git_dir, tree, scratch).made(token, t_ns, owner, size_of)


class Ahead:
    """``git read-tree`` of a tree (:func:`made_by_git`) started now and read later: a lazy
    fork's mount starts it once it is announced (fuse/settle.py), while it waits on the
    server anyway, so its index does not wait for all of git's process once git asks.
    ``head``: what else was started for the same index (the untracked cache's head,
    mount/untracked.py ``HeadAhead``), taken by the index's maker or dropped with this."""

    def __init__(
        self, git_dir: str, tree: str, scratch: str | None = None, head: Droppable | None = None
    ) -> None:
        self.tree = tree
        self.head = head
        self._tmp = tempfile.mkdtemp(prefix="avfs-readtree-", dir=scratch)
        self._path = os.path.join(self._tmp, "index")
        env = git_env()
        env.update(GIT_INDEX_FILE=self._path, GIT_INDEX_VERSION="2")
        args = [x for c in CONFIG for x in ("-c", c)]
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()  # (the index read once, by whichever thread asks first)
        self._read: tuple[bytes | None] | None = None  # (git's index, once read: None if it failed)
        # git's read-tree of this tree made ahead by the clone (mount/keptmake.py
        # ``start_read_tree``), taken whole (a rename: one taker): no process of its own
        ahead = _made_ahead(git_dir, tree)
        if ahead is not None:
            self._read = (ahead,)
            return
        try:
            self._proc = spawn(
                [*args, "read-tree", tree],
                git_dir=git_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        except (OSError, InternalError):  # (InternalError: no git)
            self.drop()

    def made(
        self,
        token: str,
        t_ns: int,
        owner: tuple[int, int],
        size_of: Callable[[str], int | None] | None = None,
    ) -> GitIndex | None:
        """The index git made, read and filled in as :func:`made_by_git` says (waited for),
        or None; the scratch file removed."""
        try:
            data = self._index()
        finally:
            self._dropped()
        return None if data is None else _filled(data, self.tree, token, t_ns, owner, size_of)

    def blob_ids(self) -> list[str] | None:
        """The blob id of every file of the tree (an id may repeat), read from the index git
        made (waited for), or None where it made none this reads: a lazy mount's sizes
        ask these (core/store/gitstore.py ``tree_blobs``), so the tree is listed by git
        once, here, not by a ``git ls-tree`` of its own as well (fuse/settle.py)."""
        data = self._index()
        return None if data is None else _blob_ids(data)

    def _index(self) -> bytes | None:
        """git's index file as it wrote it (waited for, read once), or None."""
        with self._lock:
            if self._read is None:
                self._read = (self._git_s(),)
            return self._read[0]

    def _git_s(self) -> bytes | None:
        proc = self._proc
        try:
            if proc is None or proc.wait() != 0:
                return None
            with open(self._path, "rb") as fh:
                return fh.read()
        except OSError:
            return None

    def drop(self) -> None:
        """Let it go unread (git stopped if it still runs), its scratch file removed, and
        :attr:`head` with it."""
        head, self.head = self.head, None
        if head is not None:
            head.drop()
        self._dropped()

    def _dropped(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        shutil.rmtree(self._tmp, ignore_errors=True)


def _cache_tree_root(data: bytes) -> str | None:
    """The root tree id of git's cache tree in index ``data`` (its last extension, as git's
    ``read-tree`` writes it: :data:`CONFIG`), or None."""
    end = len(data) - 20
    at = data.rfind(b"TREE", 12, end)
    while at >= 0 and at + 8 + int.from_bytes(data[at + 4 : at + 8], "big") != end:
        at = data.rfind(b"TREE", 12, at)
    if at < 0 or data[at + 8 : at + 9] != b"\0":
        return None
    nl = data.find(b"\n", at + 8, end)
    return data[nl + 1 : nl + 21].hex() if nl >= 0 and nl + 21 <= end else None


def _made_ahead(git_dir: str, tree: str) -> bytes | None:
    """git's ``read-tree`` of ``tree`` made ahead in vault ``git_dir`` (by its lazy clone:
    :func:`.keptindexes.read_tree_path`), taken (renamed beside itself to a name of this
    taker's: one taker), read and removed; None where there is none, or where its cache
    tree's root is not ``tree`` (:func:`_cache_tree_root`; the rest is checked as git's own
    scratch file is, :func:`_filled`, and the index built entry by entry where it fails)."""
    from ..core.vaults.keptindexes import read_tree_path

    made = read_tree_path(os.path.join(git_dir, "avfs"), tree)
    taken = f"{made}.{os.getpid()}-{threading.get_ident()}"
    try:
        os.rename(made, taken)
    except OSError:
        return None
    try:
        fd = os.open(taken, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)  # (never through a link)
        with os.fdopen(fd, "rb") as fh:
            data = fh.read(MADE_AHEAD_MAX + 1)
    except OSError:
        return None
    finally:
        try:
            os.unlink(taken)
        except OSError:
            pass
    return data if len(data) <= MADE_AHEAD_MAX and _cache_tree_root(data) == tree else None


def _filled(
    data: bytes,
    tree: str,
    token: str,
    t_ns: int,
    owner: tuple[int, int],
    size_of: Callable[[str], int | None] | None = None,
) -> GitIndex | None:
    """``data`` (git's index file) read and filled in as :func:`made_by_git` says, or None:
    one pass over the entries (20,538: ~0.04 s), made while the sizes are still asked, so
    that what is left once they come is a write per file whose size was not known yet
    (none where the size cache knew the tree's: :func:`sizes_filled` is then not needed)."""
    if len(data) < 32 or data[:8] != b"DIRC\0\0\0\2":
        return None
    end = len(data) - 20
    # git's only extension here, its cache tree, last: the last "TREE" whose size ends it
    # (a directory named TREE puts the word inside it too)
    at = data.rfind(b"TREE", 12, end)
    while at >= 0 and at + 8 + int.from_bytes(data[at + 4 : at + 8], "big") != end:
        at = data.rfind(b"TREE", 12, at)
    if at < 0:
        return None
    dirs = _directories(data[at + 8 : end], tree)
    count = int.from_bytes(data[8:12], "big")
    # the cache tree's root counts the entries (a path holding "TREE" found above: no match)
    if dirs is None or data[at + 8 : at + 9] != b"\0" or not data.startswith(b"%d " % count, at + 9):
        return None
    out = bytearray(data[:at])
    sec, ns = divmod(t_ns, 10**9)
    uid, gid = owner
    blake2b, number, put_stat, put_owner, put_size = hashlib.blake2b, int.from_bytes, _STAT, _OWNER, _SIZE
    nothing: dict[str, int] = {}
    known: Callable[[str], int | None] = size_of if size_of is not None else nothing.get
    sized_at: list[tuple[int, str]] = []
    add = sized_at.append
    ignores: list[tuple[str, str | None]] = []
    off = 12
    try:
        for _ in range(count):
            flags = number(data[off + 60 : off + 62], "big")
            if flags & 0x7000:
                return None  # a stage, or extended flags: not a tree read by git
            nl = flags & 0xFFF
            if nl == 0xFFF:
                nl = data.index(b"\0", off + 62) - off - 62
            name = data[off + 62 : off + 62 + nl]
            # inode_of's number (blake2b of the path, 8 bytes little-endian, | 2): its low 32 bits
            put_stat(
                out, off, sec, ns, sec, ns, 0, number(blake2b(name, digest_size=8).digest()[:4], "little") | 2
            )
            put_owner(out, off + 28, uid, gid)
            mode = data[off + 24 : off + 28]
            if mode != _GITLINK:
                oid = data[off + 40 : off + 60].hex()
                n = known(oid)
                if n is None:
                    add((off + 36, oid))
                else:
                    put_size(out, off + 36, n & 0xFFFFFFFF)
                if name.endswith(_GITIGNORE) and (nl == 10 or name[-11] == 0x2F) and mode in _FILE_MODES:
                    ignores.append((name.decode("utf-8", "surrogateescape"), oid))
            off += (70 + nl) & ~7
    except (ValueError, IndexError):
        return None
    if off != at:
        return None
    ewah = struct.pack(">IIQI", 0, 1, 0, 0)  # git's EWAH bitmap with no bit set
    ext = struct.pack(">I", 2) + token.encode() + b"\0" + struct.pack(">I", len(ewah)) + ewah
    out += data[at:end] + b"FSMN" + struct.pack(">I", len(ext)) + ext
    return GitIndex(bytes(out) + hashlib.sha1(out).digest(), [*dirs, *ignores], sized_at)


def _blob_ids(data: bytes) -> list[str] | None:
    """The blob ids of the entries of git's version 2 index ``data`` (each file's and
    symbolic link's, a submodule's left out), in its order; None where it is not one."""
    if len(data) < 32 or data[:8] != b"DIRC\0\0\0\2":
        return None
    count = int.from_bytes(data[8:12], "big")
    ids: list[bytes] = []
    add = ids.append
    off = 12
    try:
        for _ in range(count):
            high = data[off + 60]
            if high & 0x40:
                return None  # (extended flags: not an index this reads)
            nl = (high & 0x0F) << 8 | data[off + 61]
            if nl == 0xFFF:
                nl = data.index(b"\0", off + 62) - off - 62
            if data[off + 24 : off + 28] != _GITLINK:
                add(data[off + 40 : off + 60])
            off += (70 + nl) & ~7
    except (ValueError, IndexError):
        return None
    if off > len(data) - 20:
        return None
    digits = b"".join(ids).hex()
    return [digits[i : i + 40] for i in range(0, len(digits), 40)]


def _directories(cache_tree: bytes, tree: str) -> list[tuple[str, str | None]] | None:
    """The directories below the root in git's cache tree ``cache_tree`` (``TREE``'s data:
    depth first, each ``name NUL count SP subtrees LF id``), parents first; None unless
    every node is valid and the root is ``tree``."""
    out: list[tuple[str, str | None]] = []
    add = out.append
    end = len(cache_tree)
    # the root: "NUL count SP subtrees LF id"
    nl = cache_tree.find(b"\n")
    if nl < 0 or cache_tree[:1] != b"\0" or cache_tree[nl + 1 : nl + 21].hex() != tree:
        return None
    at = nl + 21
    # the directories being read, innermost last, and how many subtrees each has left
    paths: list[str] = [""]
    left: list[int] = [_subtrees(cache_tree[1:nl])]
    try:
        while at < end:
            while left and not left[-1]:
                paths.pop()
                left.pop()
            if not left:
                return None  # (more nodes than the root holds)
            left[-1] -= 1
            nul = cache_tree.index(b"\0", at)
            nl = cache_tree.index(b"\n", nul)
            name = cache_tree[at:nul].decode("utf-8", "surrogateescape")
            parent = paths[-1]
            path = f"{parent}/{name}" if parent else name
            add((path, None))
            paths.append(path)
            left.append(_subtrees(cache_tree[nul + 1 : nl]))
            at = nl + 21
    except ValueError:
        return None
    return out if at == end and not any(left) else None


def _subtrees(counts: bytes) -> int:
    """The subtree count of a cache tree node's ``count SP subtrees``; ValueError where the
    node is not valid (count -1: git read this tree whole, so never) or not numbers."""
    count, _, subs = counts.partition(b" ")
    if not count.isdigit() or not subs.isdigit():
        raise ValueError(counts)
    return int(subs)


def sizes_filled(data: bytes, sized_at: list[tuple[int, str]], size_of: Callable[[str], int]) -> bytes:
    """Index ``data`` (:func:`made_by_git`'s, perhaps with git's untracked cache added
    after its extensions) with ``size_of(blob id)`` written at each of ``sized_at``, and
    its SHA-1 made again."""
    out = bytearray(data)
    for at, oid in sized_at:
        _SIZE(out, at, size_of(oid) & 0xFFFFFFFF)
    body = bytes(out[:-20])
    return body + hashlib.sha1(body).digest()
