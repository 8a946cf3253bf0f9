"""What a view reads of an overlay (:class:`Entries`): a live :class:`.overlay.Overlay`, or a
:class:`Snapshot`, one moment's entries read once (a search reports, and an index records,
what one moment showed) or none at all (a revision's tree: :meth:`.wsview.View.of_commit`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Protocol

from ..errors import CorruptStateError
from ..store import names
from .overlay import Overlay
from .overlayentry import Entry


class Entries(Protocol):
    """What a view reads of an overlay: :class:`.overlay.Overlay` (live) or :class:`Snapshot`."""

    def get_meta(self, key: str) -> str | None: ...
    def get(self, path: str) -> Entry | None: ...
    def get_many(self, paths: list[str]) -> dict[str, Entry]: ...
    def lookup(
        self, chain: list[str], children_of: str | None = None
    ) -> tuple[dict[str, Entry], list[Entry], str | None]: ...
    def children(self, parent: str) -> list[Entry]: ...
    def file_path(self, fileid: str) -> str: ...
    def open_file(self, fileid: str) -> int: ...
    def open_regular(self, fileid: str) -> int: ...
    def file_stat(self, fileid: str) -> os.stat_result: ...
    def upper_oid(self, fileid: str, hash_file: Callable[[str], str]) -> str: ...
    def keeping_oids(self, asking: Sequence[str] = ()) -> AbstractContextManager[None]: ...


class Snapshot:
    """An overlay's entries read once (``entries``, on base commit ``base``), or none (a
    revision): a view of it shows one state however the overlay changes meanwhile (a search
    reports, and an index records, what one moment showed). ``overlay``: where the entries'
    files are."""

    def __init__(self, base: str, entries: Sequence[Entry] = (), overlay: Overlay | None = None) -> None:
        self.base = base
        self.overlay = overlay
        self.by_path = {e.path: e for e in entries}
        self.by_parent: dict[str, list[Entry]] = {}
        # directories with an entry at or below them
        self.dirty: set[str] = names.ancestors_of_all(self.by_path) | {p for p in self.by_path if p}
        for e in entries:
            if e.path:
                self.by_parent.setdefault(names.parent_of(e.path), []).append(e)

    def get_meta(self, key: str) -> str | None:
        return self.base if key == "base" else None

    def get(self, path: str) -> Entry | None:
        return self.by_path.get(path)

    def get_many(self, paths: list[str]) -> dict[str, Entry]:
        got = self.by_path
        return {p: got[p] for p in paths if p in got}

    def lookup(
        self, chain: list[str], children_of: str | None = None
    ) -> tuple[dict[str, Entry], list[Entry], str | None]:
        kids = self.children(children_of) if children_of is not None else []
        return self.get_many(chain), kids, self.base

    def children(self, parent: str) -> list[Entry]:
        return self.by_parent.get(parent, [])

    def _files(self) -> Overlay:
        if self.overlay is None:  # pragma: no cover - a snapshot with entries names its overlay
            raise CorruptStateError("a snapshot without an overlay holds no files")
        return self.overlay

    def file_path(self, fileid: str) -> str:
        return self._files().file_path(fileid)

    def open_file(self, fileid: str) -> int:
        return self._files().open_file(fileid)

    def open_regular(self, fileid: str) -> int:
        return self._files().open_regular(fileid)

    def file_stat(self, fileid: str) -> os.stat_result:
        return self._files().file_stat(fileid)

    def upper_oid(self, fileid: str, hash_file: Callable[[str], str]) -> str:
        return self._files().upper_oid(fileid, hash_file)

    def keeping_oids(self, asking: Sequence[str] = ()) -> AbstractContextManager[None]:
        return nullcontext() if self.overlay is None else self.overlay.keeping_oids(asking)
