"""Which trees hold an attribute file that may change a merge: for a tree id, whether a
``.gitattributes`` (a regular file) at or below it names ``merge`` or ``binary``
(:data:`.mergeattrs.WORDS`), found once per tree and kept.

A merge asks it of the target's tree before it looks for the paths both sides changed
(:func:`.mergeattrs.merge_attributes`): where the answer is no (most repositories: none
of their attribute files says how to merge), the merge is libgit2's on the vault, as
before the thirty-third round, without the walk of the directories both sides changed.

Trees are immutable, so an answer never changes. A tree's is its own attribute file's
or any subtree's, so the answers of subtrees are kept too and shared: a tree a
checkpoint or merge made is answered by reading only its new directories (those it does
not share with a tree answered before), the rest known. The answers live in memory for
the store's life and in the vault's ``avfs/attrtrees`` (a record a tree: its 20-byte id,
then ``1`` or ``0``), read at the first ask of a process (~1 ms at its most, read as text
lines it was ~25 ms) and appended to (one ``write`` of the new records, ``O_APPEND``:
other processes' records never interleave within one; a torn record at the end is
skipped, records out of step start the file over). Past :data:`MAX_BYTES` the file
starts over with the new records.
Not a security boundary: the file is the vault's, which only avfs writes; a wrong "no"
would merge a path as text where git would not, as every merge did before mergeattr1.
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .gitstore import GitStore

FILE = "attrtrees"  # under the vault's avfs/
_RECORD = 21  # a tree's 20-byte id, then its answer: ``1`` or ``0``
MAX_BYTES = _RECORD * 8192  # 8,192 trees' answers: read in ~1 ms
MEMORY_MAX = 8 * 8192  # answers held in memory (~100 bytes each) before they are let go
_TREE = b"40000 "  # how a directory's raw entry starts
_KEY = b" .gitattributes\0"  # (in a raw tree: an entry of that name)
ATTRIBUTES = ".gitattributes"


class AttrTrees:
    """The answers of one vault (``path``), for its store's life (:func:`of_store`)."""

    def __init__(self, path: str) -> None:
        self._file = os.path.join(path, "avfs", FILE)
        self._known: dict[bytes, bool] | None = None
        self._full = False  # the file was past MAX_BYTES when read: start it over
        self._lock = threading.Lock()  # (the file's reading and writing; answers are facts)

    def names_merging(self, store: GitStore, tree: str, words: tuple[bytes, ...]) -> bool:
        """Whether a ``.gitattributes`` (regular file) at or below tree ``tree`` holds one of
        ``words``."""
        known = self._load()
        root = bytes.fromhex(tree)
        hit = known.get(root)
        if hit is not None:
            return hit
        new: dict[bytes, bool] = {}
        answer = _answer(store, root, known, new, words)
        self._save(new)
        if len(known) > MEMORY_MAX:  # (a long-lived process, the kept server's: read again at the next ask)
            self._known = None
        return answer

    def _load(self) -> dict[bytes, bool]:
        known = self._known
        if known is not None:
            return known
        with self._lock:
            if self._known is not None:
                return self._known
            try:
                with open(self._file, "rb") as fh:
                    data = fh.read(MAX_BYTES + 1)
            except OSError:
                data = b""
            n = len(data) - len(data) % _RECORD  # (a torn record at the end: skipped)
            flags = data[_RECORD - 1 : n : _RECORD]
            if len(data) > MAX_BYTES or flags.strip(b"01"):
                known, self._full = {}, True  # (too long, or records out of step: start over)
            else:
                ids = [data[i : i + 20] for i in range(0, n, _RECORD)]
                known = dict(zip(ids, [f == 49 for f in flags], strict=True))
            self._known = known
            return known

    def _save(self, new: dict[bytes, bool]) -> None:
        if not new:
            return
        data = b"".join(oid + (b"1" if v else b"0") for oid, v in new.items())
        with self._lock:
            flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
            flags |= os.O_TRUNC if self._full else os.O_APPEND
            try:
                fd = os.open(self._file, flags, 0o644)
            except OSError:
                return  # (a vault avfs cannot write here: the answers stay in memory)
            try:
                os.write(fd, data)
                self._full = False
            except OSError:
                pass
            finally:
                os.close(fd)


# each store's answers, as long as the store lives (one object a vault handle: not global state
# that outlives it; the lock makes the one per store)
_OF_STORE: weakref.WeakKeyDictionary[GitStore, AttrTrees] = weakref.WeakKeyDictionary()
_OF_STORE_LOCK = threading.Lock()


def of_store(store: GitStore) -> AttrTrees:
    """``store``'s answers (made at its first ask)."""
    got = _OF_STORE.get(store)
    if got is None:
        with _OF_STORE_LOCK:
            got = _OF_STORE.get(store)
            if got is None:
                got = _OF_STORE[store] = AttrTrees(store.path)
    return got


def _answer(
    store: GitStore, root: bytes, known: dict[bytes, bool], new: dict[bytes, bool], words: tuple[bytes, ...]
) -> bool:
    """Tree ``root``'s answer, found by reading the trees below it not in ``known`` (each
    answer found goes into both ``known`` and ``new``). The trees first (iterative: a tree
    as deep as a vault holds, thousands of levels, is no recursion), then their attribute
    files' blobs (in a lazy vault those it does not hold fetched in one batch, not one by
    one), then each tree's answer after its subtrees'. Every tree not known is read, a
    "yes" below stopping nothing: where the answer is no (the case that must be cheap)
    all are read anyway."""
    from .gitformat import RAW_ENTRY
    from .gitstore import EMPTY_TREE
    from .odbdirect import raw_reader

    read_raw = raw_reader(store, "tree", 0)
    empty = bytes.fromhex(EMPTY_TREE)
    findall = RAW_ENTRY.findall
    # each tree not known: (its attribute file's blob id or None, its subtrees), in the
    # order read (a tree before the trees below it)
    read: dict[bytes, tuple[bytes | None, list[bytes]]] = {}
    todo = [root]
    while todo:
        oid = todo.pop()
        if oid in known or oid in read:
            continue
        raw = b"" if oid == empty else read_raw(oid.hex())
        entries = findall(raw)
        subs = [e[-20:] for e in entries if e.startswith(_TREE)]
        read[oid] = (_own_file(entries) if _KEY in raw else None, subs)
        todo += subs
    blobs = {b.hex(): ATTRIBUTES for b, _ in read.values() if b is not None}
    if blobs:
        store.prefetch(blobs)  # (a whole vault: nothing, at no cost)
    stack = [root]  # (each tree answered after those below it; a directory twice in a tree is one id)
    while stack:
        oid = stack[-1]
        if oid in known:
            stack.pop()
            continue
        blob, subs = read[oid]
        pending = [t for t in subs if t not in known]
        if pending:
            stack += pending
            continue
        known[oid] = new[oid] = any(known[t] for t in subs) or (
            blob is not None and any(w in store.blob_data(blob.hex(), path=ATTRIBUTES) for w in words)
        )
        stack.pop()
    return known[root]


def _own_file(entries: list[bytes]) -> bytes | None:
    """The blob id of the ``.gitattributes`` among a directory's raw ``entries`` (a file,
    never a link: git reads none through one), or None."""
    for e in entries:
        if e.startswith((b"100644 ", b"100755 ")) and e[e.index(b" ") + 1 : -21] == b".gitattributes":
            return e[-20:]
    return None
