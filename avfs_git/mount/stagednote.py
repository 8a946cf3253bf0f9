"""avfs's note of what git had staged as a move of the fork's branch recorded it, for the
undo of that very move (docs/fuse.md "gitmodel19"): a person who ran `git add a.txt` and
then `avfs checkpoint save` gets `M  a.txt` back from `avfs undo`, as from git's `reset
--soft HEAD~1`, not ` M a.txt`.

The note is one file in the mount's own directory (:data:`.ownfiles.STAGED_FILE`, which
no confined command writes), read as data: ``{"from": BASE, "to": COMMIT, "paths": [...]}``
for the one move from BASE to COMMIT. It is written by the index written ahead of a
checkpoint made while mounted (mount/indexahead.py), and (gitmodel21) by the first index
write of a mount whose kept index is patched for a move made while the fork was not
mounted (mount/index.py ``sync_index``'s ``note``, mount/indexpatch.py ``patched_for``): a checkpoint made unmounted notes it
too, and the undo of a noted move made unmounted keeps the noted paths staged there.
It outlives a remount with git's state (mount/gitkeep.py, gitmodel20)."""

from __future__ import annotations

import contextlib
import json
import os

from .ownfiles import STAGED_FILE, read_text, write_file


def note(own: str, base: str, commit: str, staged: set[str]) -> None:
    """After a move that keeps the view from ``base`` to ``commit`` (a checkpoint, an
    exec's record, or such a move made while unmounted): the paths it recorded that git
    had staged as it recorded them (``staged``: `git add` of the file, then the
    checkpoint), kept in the mount's own directory ``own`` for the undo of that very move
    (:func:`undone`). Before (gitmodel19), the undo put every path the checkpoint recorded
    back to the old commit's entry: a file `git add`ed and then checkpointed came back
    unstaged, where git's `reset --soft HEAD~1` keeps it staged."""
    if not staged:  # (the usual checkpoint: no file written, an old note dropped)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(own, STAGED_FILE))
        return
    doc = {"from": base, "to": commit, "paths": sorted(staged)}
    write_file(own, STAGED_FILE, json.dumps(doc).encode())


def undone(own: str, base: str, commit: str) -> frozenset[str]:
    """The paths :func:`note` noted for the move from ``commit`` to ``base`` that the move
    from ``base`` back to ``commit`` undoes (an `avfs undo` of that checkpoint, mounted or
    not): their entries stay as git's index has them, staged, as `git reset --soft` leaves
    them."""
    raw = read_text(os.path.join(own, STAGED_FILE))
    try:
        doc = json.loads(raw) if raw else None
    except ValueError:
        return frozenset()
    if not isinstance(doc, dict) or doc.get("from") != commit or doc.get("to") != base:
        return frozenset()
    paths = doc.get("paths")
    return frozenset(p for p in paths if isinstance(p, str)) if isinstance(paths, list) else frozenset()
