"""Folding an unmounted overlay's upper layer into the overlay's entries (what a write
through the API, the CLI or a merge does first when a mount left its upper layer behind,
so that the change lands on one layer: :meth:`.workspace.Workspace.live_dir`)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from ..types import MODE_BLOB, MODE_EXEC, MODE_LINK
from . import upper
from .overlay import Overlay
from .overlayentry import FILE, Entry
from .wschecks import unlink_quiet


def fold_upper(
    overlay: Overlay,
    store_bytes: Callable[[bytes], tuple[str, int]],
    discard: Callable[[Any, str, str], None],
) -> int:
    """Move what an unmounted overlay's upper layer holds into the overlay's entries
    (files are hard-linked into ``files/`` before the entries commit, and leave the
    upper layer after: a crash in between folds them again, nothing is lost). What git
    cannot hold (fifos, sockets, device nodes) stays in the upper layer. Returns the
    number of paths folded."""
    import shutil  # (not at the top: a cold status, cat or log never runs it)

    up_dir = overlay.upper_dir
    upper.drop_gitfile(up_dir)
    done: list[tuple[str, bool]] = []  # (upper path, is a directory)
    folded = 0
    # the directories this fold made entries of its own, with nothing of the database's
    # left below them: what is below one has no entry to look up or remove (an installed
    # node_modules: 13,963 entries, each asked for its old entry and for entries below it)
    fresh: set[str] = set()
    with overlay.without_upper(), overlay.remembering():
        todo = list(upper.entries(up_dir))
        todo.sort(key=lambda t: t[0])
        linked: list[str] = []
        try:
            with overlay.txn() as db:
                for child, real, st in todo:
                    kind = upper.classify(real, st)
                    if kind == upper.SPECIAL:
                        continue
                    new = child.rpartition("/")[0] in fresh
                    old: bool | None = None if new else True  # (None: no entry there)
                    if kind in (upper.DIR, upper.OPAQUE):
                        got = overlay.upper_dir_entry(child, real, st)
                        if got is not None:  # not merging with the lower directory
                            if not new:
                                overlay.remove_under(db, child, "fold")
                                overlay.remove(db, child, "fold")
                            overlay.put(db, got, "fold", old=None)
                            fresh.add(child)
                        done.append((real, True))
                    elif kind == upper.GONE:
                        discard(db, child, "fold")
                        done.append((real, False))
                    elif kind == upper.LINK:
                        fid, size = store_bytes(os.fsencode(os.readlink(real)))
                        linked.append(fid)
                        if not new:
                            overlay.remove_under(db, child, "fold")
                        overlay.put(db, Entry(child, FILE, MODE_LINK, None, fid, None, size), "fold", old=old)
                        done.append((real, False))
                    else:
                        fid = overlay.new_fileid()
                        dest = overlay.file_path(fid)
                        if st.st_nlink > 1:
                            shutil.copyfile(real, dest)
                        else:
                            os.link(real, dest)
                        linked.append(fid)
                        mode = MODE_EXEC if st.st_mode & 0o100 else MODE_BLOB
                        if not new:
                            overlay.remove_under(db, child, "fold")
                        e = Entry(child, FILE, mode, None, fid, None, st.st_size)
                        overlay.put(db, e, "fold", old=old)
                        done.append((real, False))
                    folded += 1
        except BaseException:
            for fid in linked:
                unlink_quiet(overlay.file_path(fid))
            raise
    for real, is_dir in sorted(done, key=lambda t: -t[0].count("/")):
        try:
            if is_dir:
                os.rmdir(real)
            else:
                os.unlink(real)
        except OSError:
            pass  # a directory still holding what git cannot (a fifo): it stays
    return folded
