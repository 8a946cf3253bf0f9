"""The overlay's entries as the mount shows them, for the ``.gitignore`` lookups of a
status's pruning of ignored directories (moved from core/workspace/wsstatus.py as it was,
gitmodel18: that module had reached the size limit)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from .overlay import Overlay
from .overlayentry import Entry

__all__ = ["Shown"]


class Shown(Mapping[str, Entry]):
    """The overlay's entries as the mount shows them, for :meth:`.wsstatus.Changes.prune_ignored`'s
    ``.gitignore`` lookups: those of the upper layer read so far (``found``), else the
    overlay's own answer at the path (the upper layer first: a database entry that an
    opaque directory or a whiteout of the upper layer hides is not shown). Before, every
    database entry counted where ``found`` held nothing: the old ``sub/.gitignore`` that
    the adoption of a ``git rm sub/.gitignore`` commit keeps in the database under the
    mount's opaque ``sub`` still ignored ``sub/build``, and a status, once its rule was
    gone, never read below it (gitmodel14)."""

    def __init__(self, overlay: Overlay, found: list[Entry]) -> None:
        self._overlay = overlay
        self._found = {e.path: e for e in found}

    def __getitem__(self, path: str) -> Entry:
        got = self._found.get(path)
        if got is None:
            got = self._overlay.get(path)
        if got is None:
            raise KeyError(path)
        return got

    def __iter__(self) -> Iterator[str]:
        return iter(self._found)

    def __len__(self) -> int:
        return len(self._found)
