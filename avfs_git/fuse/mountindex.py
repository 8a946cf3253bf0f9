"""A mount's git index, kept by its daemon (:class:`.daemon.Mount`): the index git starts
from, written before the mount is announced (:meth:`MountIndex.first_index`), and written
again in the background when the base moves under the mount or its view time is set
(:meth:`MountIndex.on_view`, :meth:`MountIndex.refresh_index`); the writes in flight are the
daemon's ``index_threads``, waited for at its teardown.

:class:`MountIndex` is a part of :class:`.daemon.Mount` (its base class): this module holds
its methods, the mount the state they use.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import TYPE_CHECKING, Any


class MountIndex:
    """The git index of a :class:`.daemon.Mount` (its base class: what it needs of the mount
    is declared below, for the type checker)."""

    if TYPE_CHECKING:
        read_only: bool
        vault: Any
        ws: Any
        wt: str
        own: str
        ops: Any
        settle: Any
        closing: threading.Event
        index_threads: list[threading.Thread]
        patch_first: bool

    def first_index(self) -> None:
        """:meth:`write_index` before the mount is announced. Where it fails (logged) and git
        has no index, the base's by `git read-tree` (zeroed stat data: git then reads the
        files it cannot trust the stat data of), which every mount made ahead before it
        wrote its own (mount/worktree.py :func:`.worktree.read_tree`)."""
        try:
            self.write_index()
            return
        except Exception:
            logging.getLogger("avfs.fuse").exception("writing the worktree index")
        if not os.path.lexists(os.path.join(self.wt, "index")):
            from ..mount.worktree import read_tree

            try:
                read_tree(self.wt, self.own, self.ws.base)
            except Exception:
                logging.getLogger("avfs.fuse").exception("reading the base's tree into the index")

    def write_index(self, sizes: Any = None) -> bool:
        """The index git starts from: the base tree with the stat data the mount reports, so a
        first `git status` reads no file. A fork's: mount/index.py's sync_index (``sizes``:
        see there), under avfs's index lock, left alone when whoever moved the base wrote it."""
        from ..mount.index import sync_index, write_index

        if self.read_only:
            return write_index(self.vault, self.wt, self.ws.base, self.ops.index_stat, None)
        settle = self.settle
        after = None if settle is None else settle.after_gits
        # (the index the last unmount kept, for the commit a checkpoint made while it was
        # unmounted moved from: patched where they differ, as after a checkpoint while
        # mounted, mount/gitkeep.py; once)
        patch, self.patch_first = getattr(self, "patch_first", False), False
        return sync_index(
            self.ws,
            self.wt,
            os.getuid(),
            os.getgid(),
            sizes=sizes,
            kept_after=after,
            view_changed=not patch,
            note=patch,  # (what git staged as that move recorded it noted for its undo: gitmodel21)
        )

    def on_view(self, view: tuple[str | None, str | None], moved: bool, seq: int) -> None:
        """Tell a process that moved the base, or changed paths, that the mount shows it now
        (it waits for this before it returns: mount/py), then see to the index."""
        from ..mount.live import acknowledge

        acknowledge(self.own, view, seq)
        if moved:
            self.refresh_index()

    def refresh_index(self) -> None:
        """The base moved under the mount (another process wrote the index, unless a push or a
        commit made elsewhere moved it), or its view time was set: the index, in the background."""

        def run() -> None:
            try:
                if self.settle is not None:  # a lazy fork's: not before its settling's (settle.py)
                    self.settle.settled()
                if self.closing.is_set():
                    return  # unmounting: the worktree goes away
                if not self.write_index():
                    logging.getLogger("avfs.fuse").warning("index.lock stayed taken: index not refreshed")
            except Exception:
                logging.getLogger("avfs.fuse").exception("writing the worktree index")

        self.index_threads[:] = [t for t in self.index_threads if t.is_alive()]
        t = threading.Thread(target=run, name="avfs-index", daemon=True)
        self.index_threads.append(t)
        t.start()
