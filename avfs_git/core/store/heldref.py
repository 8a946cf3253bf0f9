"""What a fork's overlay names by id, kept reachable for git's own gc (a ref per fork,
:func:`.refs.held_ref`: ``refs/avfs/held/<fork>/-/objects``).

An overlay entry may name a git object by id (an ``OBJECT`` entry: the blob of an
untracked file a move of the branch or an undo keeps, a renamed directory's tree, a live
fork's seed tree). Nothing of git's names such an object once the commit it came from is
gone from every ref, reflog and index, so a ``git gc --prune=now`` (``git repack -a -d``,
``git prune``, ``git maintenance run``) in a mount, which is git on the vault itself,
pruned it and the file read ``EIO`` (race1, the twenty-third round). avfs's own ``gc``
keeps them by a temporary ref; git's gc keeps what a ref names, so each fork's held
objects are named by one commit (no parent, no time, always the same for the same set)
whose tree holds each object under its own id, fanned out by its first two hex digits
(``ab/abcd...``: adding an object rewrites one small tree and the root, not every name).

:func:`hold` adds ids (an overlay transaction that put such entries, after it
committed); :func:`refresh` makes the ref name exactly what the overlay names now (after
a checkpoint retired entries; none: the ref goes); both by compare-and-swap without a
reflog line (:func:`.refs.set_unlogged`), read again and retried when another process
moved it. Objects the vault does not hold (a lazy vault's blobs not fetched yet: git's
gc cannot prune them) and commits (a submodule's gitlink) are not named. Nothing here
imports pygit2: the objects are written loose (:func:`.packwriter.write_loose`).

While the fork is mounted, its workspace's base is held too, by a ref of its own
(:func:`.refs.held_base_ref`, ``refs/avfs/held/<fork>/-/base``): a mount's lower layer
shows that commit, and git in the mount can leave it named by nothing of git's (``git
reset --soft HEAD~1``, then ``git reflog expire --expire=now --all`` and ``git gc
--prune=now`` before any avfs command took the reset: the commit was pruned and the mount
read ``EIO``; gitgc1 found it, gitgc3). A mount's start makes it (:func:`hold_base` with
``create``), a move of the base while it is there moves it (without ``create``: a command
on an unmounted fork writes no ref), the mount's end removes it (:func:`drop_base`); a plain
ref write, no object, no reflog line. A daemon killed with -9 leaves it: the fork's next
mount makes it its own, doctor's repair, gc and prune remove it where the branch holds
what it names (ops/maintenance/leftovers.py; gitgc4).

While the fork is not mounted, what git's state of its last mount names (kept for the next
mount outside the worktree git dirs git's gc reads: the index's staged blobs, an open
rebase's commits) is held by a third ref (:func:`.refs.held_git_ref`,
``refs/avfs/held/<fork>/-/git``: :func:`hold_git` at the unmount, :func:`drop_git` when
the next mount brought it back; mount/gitkepthold.py says what it names; gitmodel22).
What a mount set aside of it (``<fork>.set-aside``: the branch had moved since the
unmount) is held the same way by a fourth (:func:`.refs.held_aside_ref`,
``refs/avfs/held/<fork>/-/aside``, ``aside`` of :func:`hold_git`), for as long as it is
kept: until the fork goes (gitmodel23).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from ..errors import BusyError
from . import refs
from .gitformat import tree_bytes
from .packwriter import write_loose

if TYPE_CHECKING:
    from .gitstore import GitStore

EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"  # (needs no holding)
_MODES = {"tree": 0o040000, "blob": 0o100644}
_WHO = "avfs <avfs@avfs.invalid> 0 +0000"
MESSAGE = "avfs: the objects the fork's overlay names by id, held for git's gc"
GIT_MESSAGE = "avfs: what git's state of the fork's last mount names, held for git's gc\n"
TRIES = 50  # compare-and-swap attempts against other writers of the same ref

# (vault path, commit) -> what the commit holds: its root tree's entries (fan-out -> tree id)
# and the ids (-> tree entry mode). A commit's content never changes, so this cache is right
# for every thread; a hold puts what it wrote, so the next one reads nothing (bounded)
_held: dict[tuple[str, str], tuple[dict[str, str], dict[str, int]]] = {}


def held(store: GitStore, fork: str) -> dict[str, int]:
    """The ids fork ``fork``'s held ref names (id -> tree entry mode), empty without one."""
    return _read(store, refs.read_ref_file(store.path, refs.held_ref(fork)))[1]


def _read(store: GitStore, commit: str | None) -> tuple[dict[str, str], dict[str, int]]:
    if commit is None:
        return {}, {}
    hit = _held.get((store.path, commit))
    if hit is not None:
        return hit
    root: dict[str, str] = {}
    out: dict[str, int] = {}
    for fan, (sub, _mode) in store.tree_items(store.commit_tree(commit)).items():
        root[fan] = sub
        for name, (_oid, mode) in store.tree_items(sub).items():
            out[name] = mode
    return _remember(store, commit, root, out)


def _remember(
    store: GitStore, commit: str, root: dict[str, str], objects: dict[str, int]
) -> tuple[dict[str, str], dict[str, int]]:
    if len(_held) > 64:
        _held.clear()
    _held[(store.path, commit)] = (root, objects)
    return root, objects


def _wanted(oids: Iterable[str]) -> set[str]:
    return {o for o in oids if o and len(o) == 40 and o != EMPTY_TREE}


def hold(store: GitStore, fork: str, oids: Iterable[str]) -> bool:
    """Make fork ``fork``'s held ref name each of ``oids`` the vault holds (as well as
    what it named); True when the ref moved. Raises :class:`BusyError` when other writers
    kept moving it (:data:`TRIES` times)."""
    want = _wanted(oids)
    if not want:
        return False
    name = refs.held_ref(fork)
    for attempt in range(TRIES):
        cur = refs.read_ref_file(store.path, name)
        root, have = _read(store, cur)
        new = want.difference(have)
        if not new:
            return False
        add = {o: _MODES[k] for o, k in store.object_kinds(new).items() if k in _MODES}
        if not add:
            return False
        commit = _write(store, {**have, **add}, root, add)
        if refs.set_unlogged(store.path, name, commit, cur):
            return True
        _pause(attempt)
    raise BusyError(f"{name} kept moving: could not hold what the overlay of fork {fork} names")


def refresh(
    store: GitStore, fork: str, oids_now: Callable[[], Iterable[str]], *, create: bool = False
) -> bool:
    """Make fork ``fork``'s held ref name exactly the objects ``oids_now()`` gives that the
    vault holds (none: the ref goes). Without ``create`` nothing is done when there is no
    such ref (nothing named since the last refresh emptied it). True when it moved.
    ``oids_now`` is asked after the ref is read, each try: an id another process's
    transaction added meanwhile is in its answer or in the ref it compares against."""
    name = refs.held_ref(fork)
    for attempt in range(TRIES):
        cur = refs.read_ref_file(store.path, name)
        if cur is None and not create:
            return False
        have = _read(store, cur)[1]
        want = _wanted(oids_now())
        if want == have.keys():
            return False
        keep = {o: m for o, m in have.items() if o in want}
        keep.update(
            {o: _MODES[k] for o, k in store.object_kinds(want.difference(keep)).items() if k in _MODES}
        )
        commit = _write(store, keep, {}, keep) if keep else None
        if commit == cur:
            return False
        if refs.set_unlogged(store.path, name, commit, cur):
            return True
        _pause(attempt)
    raise BusyError(f"{name} kept moving: could not refresh it")


def copy(store: GitStore, source: str, fork: str) -> None:
    """Give the new fork ``fork`` what ``source``'s held ref names (a fork made as a
    snapshot of the source's state holds its entries), unless it has its own already."""
    commit = refs.read_ref_file(store.path, refs.held_ref(source))
    if commit is not None:
        refs.set_unlogged(store.path, refs.held_ref(fork), commit, None)


def drop(store: GitStore, fork: str) -> None:
    """Remove fork ``fork``'s held refs (the fork and its workspace went)."""
    _drop(store, refs.held_ref(fork))
    drop_base(store, fork)
    drop_git(store, fork)
    drop_git(store, fork, aside=True)


def hold_git(store: GitStore, fork: str, oids: Iterable[str], *, aside: bool = False) -> str | None:
    """Make fork ``fork``'s held git ref (:func:`.refs.held_git_ref`; ``aside``: the one of
    what a mount set aside, :func:`.refs.held_aside_ref`) name exactly those of
    ``oids`` the vault holds: the commits as its commit's parents, the trees and blobs in
    its tree (:meth:`.GitStore.keep_commit`); none: the ref goes. Returns the commit.
    The last writer wins (one unmount of the fork keeps git's state at a time). Raises
    :class:`BusyError` when other writers kept moving it."""
    got = store.keep_commit(sorted(_wanted(oids)), GIT_MESSAGE, ("avfs", "avfs@avfs.invalid"))
    new = None if got is None else got[0]
    name = refs.held_aside_ref(fork) if aside else refs.held_git_ref(fork)
    for attempt in range(TRIES):
        cur = refs.read_ref_file(store.path, name)
        if cur == new or refs.set_unlogged(store.path, name, new, cur):
            return new
        _pause(attempt)
    raise BusyError(f"{name} kept moving: could not hold what git's state of fork {fork} names")


def drop_git(store: GitStore, fork: str, *, aside: bool = False) -> None:
    """Remove fork ``fork``'s held git ref (git's state is back in a worktree git dir,
    whose index, HEAD, refs and reflog git's gc reads itself, or it went; ``aside``: the
    one of what a mount set aside)."""
    _drop(store, refs.held_aside_ref(fork) if aside else refs.held_git_ref(fork))


def hold_base(store: GitStore, fork: str, base: str, *, create: bool = False) -> bool:
    """Make fork ``fork``'s held base ref name ``base`` (its workspace's base); without
    ``create`` only where there is one (the fork is mounted). True when it moved. The last
    writer wins: each writes the base its own transaction committed (a base moves under
    the fork lock). Raises :class:`BusyError` when other writers kept moving it."""
    name = refs.held_base_ref(fork)
    for attempt in range(TRIES):
        cur = refs.read_ref_file(store.path, name)
        if cur == base or (cur is None and not create):
            return False
        if refs.set_unlogged(store.path, name, base, cur):
            return True
        _pause(attempt)
    raise BusyError(f"{name} kept moving: could not hold the base of fork {fork}")


def drop_base(store: GitStore, fork: str) -> None:
    """Remove fork ``fork``'s held base ref (its mount ended)."""
    _drop(store, refs.held_base_ref(fork))


def _drop(store: GitStore, name: str) -> None:
    for attempt in range(TRIES):
        cur = refs.read_ref_file(store.path, name)
        if cur is None or refs.set_unlogged(store.path, name, None, cur):
            return
        _pause(attempt)


def _write(store: GitStore, full: dict[str, int], root: dict[str, str], add: dict[str, int]) -> str:
    """The commit whose tree names ``full`` (id -> mode): the fan-out trees of the ids in
    ``add`` written anew, the others of ``root`` (the old root tree's) kept. What it holds
    is remembered (:data:`_held`)."""
    fans: dict[str, list[tuple[str, str, int]]] = {}
    touched = {o[:2] for o in add}
    for oid, mode in full.items():
        if oid[:2] in touched:
            fans.setdefault(oid[:2], []).append((oid, oid, mode))
    top = {fan: oid for fan, oid in root.items() if fan not in touched}
    for fan, entries in fans.items():
        top[fan] = write_loose(store.path, "tree", tree_bytes(entries))
    tree = write_loose(store.path, "tree", tree_bytes([(f, o, 0o040000) for f, o in top.items()]))
    text = f"tree {tree}\nauthor {_WHO}\ncommitter {_WHO}\n\n{MESSAGE}\n"
    commit = write_loose(store.path, "commit", text.encode("ascii"))
    _remember(store, commit, top, full)
    return commit


def _pause(attempt: int) -> None:
    time.sleep(min(0.001 * (attempt + 1), 0.02))
