"""The side files of an adoption's swaps that a process killed between a swap's steps left
in a live overlay mount, put right by the next process (livewrite2, the thirty-fifth
round): the next command that adopts (every command opening the workspace), a checkpoint,
the fork's next mount, `avfs doctor`.

An adoption (:mod:`.wsadopt`) swaps each file through the mount by a side file beside it
(:func:`.liveswap.swap`): the new content written as ``.avfs-adopt-<hex>``, exchanged with
the path, what came out looked at and unlinked, or swapped back. A process killed between
those steps (a SIGKILL, an OOM kill, a machine's shutdown of the session) left the side
file in the mount: the person's agent saw a new file, the next checkpoint recorded it, and
where what came out was the person's (a file open for writing, one written since the plan)
their bytes were at a name nobody knew, the commit's at their path.

Now the swaps under way are noted first (:func:`note`: the two commits and each path's side
file's name, in the workspace's state directory, which the confined command cannot write),
and the note is removed when the adoption's swaps are all settled. A note found by a later
process is put right (:func:`recover`) before anything else reads the workspace's changes.

Which side is the truth: the adoption never finished (the base moves only after every swap
is settled, in the overlay's transaction), so the path is to hold what it held before the
adoption touched it, and the next adoption (the same command, just after) does its work
again. A side file whose bytes and mode are a version git has of that path (the old base's
or the commit's, as avfs's checkout writes it or as the blob is), no process holding it
open for writing, is one of the adoption's own: unlinked, under a read lease (nothing of
anyone's is lost: git has the bytes). Anything else is the person's and goes back to its
path: renamed there where nothing is, or swapped with what is there when that is a version
git has (which is then unlinked as above). Where both hold what git does not (the person
wrote the path since the kill), both are theirs: the side file stays, named in a warning
and by ``avfs doctor``.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

from ..types import MODE_BLOB, MODE_EXEC, MODE_LINK

if TYPE_CHECKING:
    from .livedir import LiveDir
    from .liveswap import Found
    from .wstip import Based

MARK = "adopt-swaps.json"  # in the workspace's state directory, while swaps are under way


def _mark(state_dir: str) -> str:
    return os.path.join(state_dir, MARK)


def note(state_dir: str, base: str, tip: str, sides: list[tuple[str, str]]) -> None:
    """The swaps about to run between commits ``base`` and ``tip``: each (path, side file's
    name in the path's directory). Written whole, then renamed into place (a process killed
    while writing it leaves the note before, never half of one)."""
    path = _mark(state_dir)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump({"base": base, "tip": tip, "sides": sides}, fh)
    os.replace(tmp, path)


def done(state_dir: str) -> None:
    """The swaps noted are settled (each done, swapped back or reported)."""
    try:
        os.unlink(_mark(state_dir))
    except FileNotFoundError:
        pass


def pending(state_dir: str) -> dict[str, Any] | None:
    """The note a process left (None: there is none). One avfs cannot read (cut short by
    a full disk) is taken as noting nothing: the side files it named, if any, stay (shown
    as the person's new files, nothing lost)."""
    try:
        with open(_mark(state_dir), encoding="utf-8") as fh:
            got = json.load(fh)
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {"base": None, "tip": None, "sides": []}
    return got if isinstance(got, dict) else {"base": None, "tip": None, "sides": []}


def _versions(ws: Based, live: LiveDir, commits: list[str], path: str) -> list[Found]:
    """What git has of ``path`` in ``commits``: each file as avfs's checkout writes it and
    as its blob is, each link's target."""
    out: list[Found] = []
    for c in commits:
        tree = ws.store.commit_tree(c)
        held = ws.store.tree_lookup(tree, path)
        if held is None:
            continue
        oid, mode = held
        if mode == MODE_LINK:
            out.append((MODE_LINK, ws.store.blob_data(oid)))
        elif mode in (MODE_BLOB, MODE_EXEC):
            out.extend([(mode, ws.store.blob_data(oid)), (mode, live.form(tree, path, oid, mode))])
    return out


def _git_has(found: Found, versions: list[Found]) -> bool:
    from .liveswap import IN_HANDS

    return found is not None and found != IN_HANDS and found in versions


def _one(side: str, dest: str, versions: list[Found]) -> bool:
    """The side file ``side`` (a full path) of ``dest`` put right; False when it stays
    (both the person's)."""
    from ..store.exchange import exchange
    from .liveswap import _breaking, _held, _renamed

    if not os.path.lexists(side):
        return True  # (settled before the kill, or never made)
    with _held(side) as (found, _, lease):
        if _git_has(found, versions) and not _breaking(lease):
            os.unlink(side)  # (under the lease: no writer has it, none can start)
            return True
    if not os.path.lexists(dest):
        return _renamed(side, dest)
    with _held(dest) as (there, _, _lease):
        if not _git_has(there, versions):
            return False  # (the person wrote the path since: both theirs)
    if not exchange(side, dest):
        return False
    with _held(side) as (found, _, lease):
        if _git_has(found, versions) and not _breaking(lease):
            os.unlink(side)
            return True
    return False


def recover(ws: Based) -> tuple[str, ...]:
    """Put right what a process killed during an adoption's swaps left in the fork's live
    overlay mount (see the module's docstring; the fork lock held by the caller). The side
    files left, both them and their path the person's (relative to the mount). Nothing is
    done (the note kept) while the fork has no live overlay mount: the next mount does it."""
    mark = pending(ws.state_dir)
    if mark is None:
        return ()
    live = ws.live_mount()
    if live is None:
        return ()
    commits = [c for c in (mark.get("base"), mark.get("tip")) if isinstance(c, str)]
    left: list[str] = []
    for pair in mark.get("sides", []):
        try:
            path, name = str(pair[0]), str(pair[1])
            rel = f"{path.rsplit('/', 1)[0]}/{name}" if "/" in path else name
            with live.pinned(rel) as side:
                dest = os.path.join(os.path.dirname(side), path.rsplit("/", 1)[-1])
                if not _one(side, dest, _versions(ws, live, commits, path)):
                    left.append(rel)
        except (FileNotFoundError, NotADirectoryError, IndexError, TypeError):
            continue  # (its directory gone, or an entry avfs did not write: nothing to do)
    done(ws.state_dir)
    if left:
        import logging

        logging.getLogger("avfs.swapleft").warning(
            "an adoption killed part way left %s: kept (your file and its path both hold what git does not)",
            ", ".join(left),
        )
    return tuple(left)
