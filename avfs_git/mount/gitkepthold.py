"""What git's state of a fork's mount names by id, held for git's gc while it is kept
(gitmodel22; docs/fuse.md "What a remount keeps of git's own state").

From a mount's unmount to the fork's next mount, git's state of its worktree (the index,
HEAD, ``ORIG_HEAD``, an open merge's, rebase's or bisect's files and refs, HEAD's reflog)
is kept under ``<vault>/avfs/gitkept/<fork>`` (mount/gitkeep.py), where git's gc does not
look: git's reachability walks the worktree git dirs under ``<vault>/worktrees/``. A blob
only the index named (a file `git add`ed, then changed again, or never committed), or a
commit only a detached HEAD or an open rebase named, was pruned by a `git gc --prune=now`
(`git maintenance run`, `git repack -a -d` and `git prune`, avfs's own gc past its grace)
run on the vault meanwhile: in another fork's mount, a worktree beside, the vault itself.
At the next mount git's index named a missing blob (`git diff --cached`: "unable to read",
`git fsck`: "missing blob", `git commit`: no tree).

:func:`hold` (at :func:`.gitkeep.keep`, once the state is kept) makes one ref,
:func:`.refs.held_git_ref`, name what the kept state names: the index's entries (each
stage's; a gitlink's commit is another repository's) where no valid node of its cache tree
names them already, those nodes' trees, and every full object id in its other files (HEAD,
``*_HEAD``, ``refs/``, ``logs/HEAD``, ``rebase-merge/``, ``sequencer/``, ``BISECT_*``);
objects the vault does not hold are left out. :func:`release` (at
:func:`.gitkeep.bring_back`, once what is brought back is in the worktree git dir again,
which git's gc reads) removes it; so does the fork's deletion
(:func:`.heldref.drop`). What a bring back sets aside (``<fork>.set-aside``: the
branch moved since the unmount; the last one, kept until the fork goes) is held by a ref
of its own, :func:`.refs.held_aside_ref` (:func:`hold_aside`; before gitmodel23 it was
not, and git's gc pruned what only its index or detached HEAD named). The kept files are read as untrusted data (regular files
only, bounded; an id is a token of 40 hex digits).
"""

from __future__ import annotations

import logging
import os
import re
from typing import TYPE_CHECKING

from ..core.errors import AvfsError
from .ownfiles import MAX_INDEX, read_bytes

if TYPE_CHECKING:
    from ..core.store.gitstore import GitStore
    from .ownfiles import MountedFork

__all__ = ["hold", "hold_aside", "index_ids", "kept_index_ids", "release", "state_ids", "uncovered"]

_ID = re.compile(rb"(?<![0-9a-f])[0-9a-f]{40}(?![0-9a-f])")
_GITLINK = 0o160000
_FILES_MAX = 10_000  # files of the kept state read for ids (a rebase of many commits: a few)
_FILE_MAX = 16 << 20  # bytes of each (HEAD's reflog: ~150 bytes a line)


def _log() -> logging.Logger:
    return logging.getLogger("avfs.fuse")


def index_ids(git_dir: str, index: bytes) -> dict[str, str]:
    """What git's ``index`` (of ``git_dir``: a split index's shared part is there) names, by
    path: the trees of its cache tree's valid nodes (a directory's path, ``""`` the top),
    and every entry's object (but a gitlink's) that no such node covers (none where the top
    is valid: it names every entry); an object at several paths is named by one. The
    entries a valid node covers are stepped over by its entry count, their names unread
    (:func:`uncovered`; gitmodel23)."""
    from .indexflags import cache_tree, extension, named_entries, whole_entries

    data = whole_entries(git_dir, index) or index
    ext = extension(data, b"TREE")
    counts: dict[bytes, int] = {}
    nodes = (cache_tree(ext, counts) if ext is not None else None) or {}
    valid = {path: oid.hex() for path, oid in nodes.items() if oid is not None}
    if b"" in valid:
        return {valid[b""]: ""}
    out = {oid: path.decode("utf-8", "surrogateescape") for path, oid in valid.items()}
    v2 = ext is not None and data[4:8] in (b"\0\0\0\2", b"\0\0\0\3")  # (whole: its extension found)
    entries = uncovered(data, counts) if v2 else None
    if entries is None:  # (version 4's names are compressed: every entry read, as before)
        entries = [
            (name, mode, oid)
            for name, mode, oid in named_entries(data) or ()
            if not any(name[:i] in valid for i in range(len(name)) if name[i : i + 1] == b"/")
        ]
    for name, mode, oid in entries:
        if mode != _GITLINK:
            out[oid] = name.decode("utf-8", "surrogateescape")
    return out


def uncovered(data: bytes, counts: dict[bytes, int]) -> list[tuple[bytes, int, str]] | None:
    """The entries of version 2 or 3 index ``data`` (whole: checked by the caller's
    extension walk) that no valid cache-tree node covers: (name, mode, object id in hex).
    ``counts``: each valid node's path -> its entry count. Where an entry's shallowest
    directory with a valid node starts, that many entries in a row are its (git keeps a
    directory's entries together, its unpack-trees skips them by that count): stepped
    over by their lengths alone, no name read; an unmount with one file staged in a
    100,000-entry index reads a few hundred names, where every name was read and split
    (423 ms: gitmodel22's measure). None where the walk leaves the entries (not whole)."""
    from .indexflags import EXTENDED

    count = int.from_bytes(data[8:12], "big")
    end = len(data) - 20
    find = data.find
    get = counts.get
    off = 12
    skip = 0
    out: list[tuple[bytes, int, str]] = []
    try:
        for _ in range(count):
            flags = data[off + 60] << 8 | data[off + 61]
            head = off + (64 if flags & EXTENDED else 62)
            nl = flags & 0xFFF
            if nl == 0xFFF:
                nl = find(b"\0", head, end) - head
            if skip:
                skip -= 1
            else:
                name = data[head : head + nl]
                slash = name.find(b"/")
                while slash >= 0:
                    n = get(name[:slash])
                    if n is not None and n > 0:
                        skip = n - 1  # (this entry is the first it covers)
                        break
                    slash = name.find(b"/", slash + 1)
                else:
                    mode = int.from_bytes(data[off + 24 : off + 28], "big")
                    out.append((name, mode, data[off + 40 : off + 60].hex()))
            off += (head - off + nl + 8) & ~7
    except IndexError:
        return None
    return out if off <= end else None


def _in_tree(store: GitStore, tree: str, named: dict[str, str]) -> set[str]:
    """The ids of ``named`` (id -> path) that tree ``tree`` holds at their path."""
    trees: dict[str, str | None] = {"": tree}

    def tree_at(path: str) -> str | None:
        if path not in trees:
            up, _, name = path.rpartition("/")
            parent = tree_at(up)
            got = store.tree_items(parent).get(name) if parent else None
            trees[path] = got[0] if got is not None and got[1] == 0o040000 else None
        return trees[path]

    out = set()
    for oid, path in named.items():
        if path == "":
            held = tree == oid
        else:
            up, _, name = path.rpartition("/")
            parent = tree_at(up)
            got = store.tree_items(parent).get(name) if parent else None
            held = got is not None and got[0] == oid
        if held:
            out.add(oid)
    return out


def state_ids(git_dir: str) -> set[str]:
    """Every full object id in the files of the kept git dir ``git_dir`` but its index."""
    out: set[str] = set()
    seen = 0
    for d, dirs, files in os.walk(git_dir):
        dirs.sort()
        for name in sorted(files):
            if d == git_dir and (name == "index" or name.startswith("sharedindex.")):
                continue
            seen += 1
            if seen > _FILES_MAX:
                return out
            data = read_bytes(os.path.join(d, name), _FILE_MAX)
            if data:
                out.update(m.decode("ascii") for m in _ID.findall(data))
    return out


def hold(ws: MountedFork, git_dir: str, named: dict[str, str]) -> None:
    """Hold what the kept git dir ``git_dir`` names, with ``named`` (its index's, read
    before the keep took its shared part: :func:`index_ids`), for git's gc (the module's
    docstring), but what the fork's branch holds plainly: its tip, the tip's tree, what
    that tree holds at the index's path, every commit the branch's reflog names that
    its tip reaches (an unmount with nothing staged and no commit of git's off the branch writes no ref). A
    failure is logged: the unmount goes on."""
    from ..core.store import heldref, refs  # (an unmount's, a mount's: not at the top)

    store = ws.vault.store
    try:
        ids = set(named) | state_ids(git_dir)
        ids.discard(refs.ZERO_ID)
        tip = ws.tip()
        if tip is not None:
            tree = store.commit_tree(tip)
            ids.difference_update((tip, tree))
            ids.difference_update(_in_tree(store, tree, {o: p for o, p in named.items() if o in ids}))
        if ids and tip is not None:
            # of the commits the branch's reflog names, those its tip reaches (the reflog
            # alone is no hold: avfs's gc expires it, and `git reflog expire --expire=now`
            # then `git gc --prune=now` empties it at once: a kept ORIG_HEAD or detached
            # HEAD that was once the tip went; the round's review)
            logged = read_bytes(refs.reflog_path(ws.vault.path, refs.fork_ref(ws.fork)), _FILE_MAX)
            named_there = {m.decode("ascii") for m in _ID.findall(logged or b"")} & ids
            there = sorted(i for i in named_there if store.has_object(i))
            if there:
                off = {str(c.id) for c in store.walk(there, (tip,))}
                ids.difference_update(i for i in there if i not in off)
        if ids:
            heldref.hold_git(store, ws.fork, ids)
        else:
            heldref.drop_git(store, ws.fork)
    except (AvfsError, OSError, ValueError):
        _log().exception("fork %s: what git's kept state names not held for git's gc", ws.fork)


def hold_aside(ws: MountedFork, where: str) -> None:
    """Hold what the set-aside git state at ``where`` (``<fork>.set-aside``: its index, a
    detached HEAD, an open operation's files, ``kept.json``) names, in full: it is rare,
    and nothing of git's reads it, so the branch holding some of it is no reason to leave
    it out (a later move of the branch would not hold it again). A failure is logged."""
    from ..core.store import heldref, refs

    try:
        ids = set(kept_index_ids(where)) | state_ids(where)
        ids.discard(refs.ZERO_ID)
        heldref.hold_git(ws.vault.store, ws.fork, ids, aside=True)
    except (AvfsError, OSError, ValueError):
        _log().exception("fork %s: what git's set-aside state names not held for git's gc", ws.fork)


def release(ws: MountedFork) -> None:
    """Drop the hold (git's state is in the worktree git dir again, or went)."""
    from ..core.store import heldref

    try:
        heldref.drop_git(ws.vault.store, ws.fork)
    except (AvfsError, OSError):
        _log().exception("fork %s: the hold of git's kept state not dropped", ws.fork)


def kept_index_ids(git_dir: str) -> dict[str, str]:
    """:func:`index_ids` of ``git_dir``'s index read as untrusted data (none: no ids)."""
    index = read_bytes(os.path.join(git_dir, "index"), MAX_INDEX)
    return {} if index is None else index_ids(git_dir, index)
