"""Files a pure-FUSE mount holds open for writing refuse a move of its fork's view before
anything moves (:func:`refuse_open_files`): a merge's (core/operations/mergeguard.py), a
restore's, an undo's and a checkout's (livewrite1, the thirty-fourth round: their moves
dropped the entry a writer's handle held, its later bytes lost). An overlay mount's kernel
writes its upper layer, which avfs never opens: a file open there is left at its path by
the write through the mount (core/workspace/livedir.py ``_held_open``)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from ..errors import BusyError
from ..store import names
from ..workspace.overlayentry import FILE

if TYPE_CHECKING:
    from ..workspace.workspace import Workspace


def refuse_open_files(
    ws: Workspace, target: str, paths: frozenset[str] | None = None, then: str = "merge"
) -> None:
    """A merge points the target's workspace at a new commit; a file a mount holds open for
    writing would then keep writing into a file the workspace no longer shows.

    Only a pure-FUSE mount holds the overlay's files open (its write handles' shared
    flocks, fuse/handles.py; the overlay backend's kernel writes its upper layer, which
    avfs never opens): without one, nothing is asked. The mount's daemon is asked which
    files its write handles hold, in one request (:func:`_held_by_mount`), and those are
    probed; a daemon that does not answer (gone, or of an older avfs) has every overlay
    file probed: a fork whose ignored ``node_modules`` made 15,000 overlay files had each
    probed twice a merge (~370 ms on minimist). ``paths``: only files at or below these
    (what a restore or a checkout replaces; livewrite1); ``then``: the hint's command."""
    if not ws.mounted_without_upper():
        return
    listed = _held_by_mount(ws)
    entries = ws.overlay.all() if listed is None else ws.overlay.with_fileids(listed)
    if paths is not None:
        entries = [e for e in entries if e.path in paths or any(a in paths for a in names.ancestors(e.path))]
    open_ = [e for e in entries if e.kind == FILE and e.fileid and ws.overlay.in_use(e.fileid)]
    # a file closed a moment ago: the kernel tells the mount after close() returned
    deadline = time.monotonic() + 1.0
    while open_ and time.monotonic() < deadline:
        time.sleep(0.01)
        open_ = [e for e in open_ if e.fileid and ws.overlay.in_use(e.fileid)]
    busy = [e.path for e in open_]
    if busy:
        raise BusyError(
            f"{len(busy)} file(s) of {target} are open for writing in its mount: "
            + ", ".join(sorted(busy)[:5])
            + (", ..." if len(busy) > 5 else ""),
            hint=f"close them (or let the command writing them finish), then {then}",
            details={"fork": target, "paths": sorted(busy)[:20]},
        )


def _held_by_mount(ws: Workspace) -> list[str] | None:
    """The file ids of the overlay files the fork's pure-FUSE mount holds open for writing,
    as its daemon says (:data:`.hookwire.WRITERS`, over its socket in the mount's own
    directory); None when it does not say."""
    from ..workspace.hookwire import WRITERS, ask, own_answer

    return own_answer(ask(ws.vault.mounts.files_dir(ws), WRITERS, timeout_s=ASK_WAIT_S), WRITERS)


ASK_WAIT_S = 2.0  # how long a merge waits for a pure-FUSE mount's daemon to say what it holds open
