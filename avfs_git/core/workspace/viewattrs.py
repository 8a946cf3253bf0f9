"""An attribute of a path by the ``.gitattributes`` of one view (a workspace's, or a
revision's tree), the vault's ``info/attributes`` and git's global and system attribute
files, as git's ``git_check_attr`` answers it in a checkout of that view; for readers that
ask one attribute of many paths (grep's ``diff``, a merge's ``conflict-marker-size``).

What it costs: where no attribute file above a path (nor the vault's or git's own) holds
one of the words the caller names, nothing but one lookup per directory, each kept;
libgit2's handle (:class:`~..store.gitsmudge.Smudger`'s) is made only where one does.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..store import names
from ..store.gitattrfiles import outer_attributes
from ..types import MODE_BLOB, MODE_EXEC

if TYPE_CHECKING:
    from ..store.gitsmudge import Smudger
    from .wsview import View

ATTRIBUTES = ".gitattributes"


class ViewAttributes:
    """Attributes of paths of ``view`` (see the module's text); ``words``: the bytes one of
    which an attribute file must hold to matter (the attribute's name, and the macros that
    set it: a macro is defined in a file that names it). :meth:`close` when done."""

    def __init__(self, store_path: str, view: View, words: Sequence[bytes]) -> None:
        self._store_path = store_path
        self._view = view
        self._words = tuple(words)
        self._texts: dict[str, bytes | None] = {}  # directory -> its .gitattributes' bytes
        self._under: dict[str, bool] = {}  # directory -> whether a file at or above names them
        self._given: set[str] = set()  # directories whose file the handle has
        self._smudger: Smudger | None = None
        try:
            with open(os.path.join(store_path, "info", "attributes"), "rb") as fh:
                info: bytes | None = fh.read()
        except OSError:
            info = None
        self._everywhere = self._names(info) or self._names(outer_attributes(store_path))

    def _names(self, data: bytes | None) -> bool:
        return data is not None and any(w in data for w in self._words)

    def _text(self, d: str) -> bytes | None:
        if d not in self._texts:
            node = self._view.lookup(f"{d}/{ATTRIBUTES}" if d else ATTRIBUTES)
            data = None
            if node is not None and node.mode in (MODE_BLOB, MODE_EXEC):  # (never through a link)
                data = bytes(self._view.read_node(node))
            self._texts[d] = data
        return self._texts[d]

    def _may(self, d: str) -> bool:
        """Whether an attribute file at or above directory ``d`` names one of the words
        (each directory's answer kept: a path costs one lookup once its parent is known)."""
        chain: list[str] = []
        while d not in self._under:
            chain.append(d)
            if not d:
                break
            d = d.rpartition("/")[0]
        hit = self._under.get(d, False)
        for x in reversed(chain):
            hit = hit or self._names(self._text(x))
            self._under[x] = hit
        return hit

    def get(self, path: str, name: str) -> object:
        """Attribute ``name`` of ``path`` (True set, False unset, a string, None
        unspecified), or None at once where no attribute file names the words."""
        parent = path.rpartition("/")[0]
        if not (self._everywhere or self._may(parent)):
            return None
        if self._smudger is None:
            from ..store.gitsmudge import Smudger

            self._smudger = Smudger(self._store_path)
        for d in [] if parent in self._given else names.ancestors(path):
            if d not in self._given:
                data = self._text(d)
                if data is not None or not d:
                    self._smudger.add_attributes(d, data or b"")
                self._given.add(d)
        return self._smudger.attribute(path, name)

    def config_bool(self, key: str) -> bool | None:
        """The vault's boolean ``key`` as libgit2 reads it (None: unset, or no handle yet)."""
        return None if self._smudger is None else self._smudger.config_bool(key)

    def close(self) -> None:
        if self._smudger is not None:
            self._smudger.close()
            self._smudger = None
