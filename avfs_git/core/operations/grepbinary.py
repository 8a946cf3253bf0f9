"""Which files `git grep -I` skips as binary: by the ``diff`` attribute first, by their bytes
where it says nothing (git's ``grep_source_is_binary``, ``userdiff_find_by_path``).

- ``-diff`` (and the ``binary`` macro, ``-diff -merge -text``): binary, whatever the bytes
  (git 2.39.5's own ``t/t0110/url-*``, text files its ``t/.gitattributes`` marks ``binary``);
- ``diff`` set: text, whatever the bytes (a NUL among the first 8000 included);
- ``diff=NAME``: the driver's ``diff.NAME.binary`` where the config sets it;
- else (unspecified, or a driver that says nothing): a NUL among the first 8000 bytes.

Found in the thirty-third round (realdata8): `avfs grep` searched the files git's
attributes mark ``binary``, where it says it skips binary files as `git grep -I` does.

The attribute files are those of the view searched (the workspace's, as `git grep` in a
checkout reads the work tree's; a revision's own), with the vault's ``info/attributes``
and git's global and system ones (:class:`~..store.gitsmudge.Smudger`'s handle). What it
costs: without the words ``diff`` or ``binary`` in an attribute file above a path (nor in
the vault's or git's own), nothing but one tree lookup per directory; libgit2 is loaded
only where one names them.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ..store import names
from ..store.gitattrfiles import outer_attributes
from ..types import MODE_BLOB, MODE_EXEC

if TYPE_CHECKING:
    from ..store.gitsmudge import Smudger
    from ..workspace.wsview import View

ATTRIBUTES = ".gitattributes"
_WORDS = (b"diff", b"binary")  # (a macro naming them is defined in a file that names them)


def _names_them(data: bytes | None) -> bool:
    return data is not None and any(w in data for w in _WORDS)


class BinaryRule:
    """git grep's binary judgement by attributes over one view (see the module's text);
    :meth:`close` when done."""

    def __init__(self, store_path: str, view: View) -> None:
        self._store_path = store_path
        self._view = view
        self._texts: dict[str, bytes | None] = {}  # directory -> its .gitattributes' bytes
        self._under: dict[str, bool] = {}  # directory -> whether a file above names them
        self._given: set[str] = set()
        self._smudger: Smudger | None = None
        self._named: dict[str, bool | None] = {}
        try:
            with open(os.path.join(store_path, "info", "attributes"), "rb") as fh:
                info: bytes | None = fh.read()
        except OSError:
            info = None
        self._everywhere = _names_them(info) or _names_them(outer_attributes(store_path))

    def _text(self, d: str) -> bytes | None:
        if d not in self._texts:
            node = self._view.lookup(f"{d}/{ATTRIBUTES}" if d else ATTRIBUTES)
            data = None
            if node is not None and node.mode in (MODE_BLOB, MODE_EXEC):  # (never through a link)
                data = bytes(self._view.read_node(node))
            self._texts[d] = data
        return self._texts[d]

    def _may(self, d: str) -> bool:
        """Whether an attribute file at or above directory ``d`` names ``diff`` or ``binary``
        (each directory's answer kept: a path costs one lookup once its parent is known)."""
        chain: list[str] = []
        while d not in self._under:
            chain.append(d)
            if not d:
                break
            d = d.rpartition("/")[0]
        hit = self._under.get(d, False)
        for x in reversed(chain):
            hit = hit or _names_them(self._text(x))
            self._under[x] = hit
        return hit

    def binary(self, path: str) -> bool | None:
        """True: `git grep -I` skips ``path`` whatever its bytes; False: it searches it
        whatever they are; None: its bytes decide (a NUL among the first 8000)."""
        if not (self._everywhere or self._may(path.rpartition("/")[0])):
            return None
        if self._smudger is None:
            from ..store.gitsmudge import Smudger

            self._smudger = Smudger(self._store_path)
        parent = path.rpartition("/")[0]
        for d in [] if parent in self._given else [*names.ancestors(path)]:
            if d not in self._given:
                data = self._text(d)
                if data is not None or not d:
                    self._smudger.add_attributes(d, data or b"")
                self._given.add(d)
        value = self._smudger.attribute(path, "diff")
        if value is True:
            return False
        if value is False:
            return True
        if not isinstance(value, str):
            return None
        if value not in self._named:
            self._named[value] = self._smudger.config_bool(f"diff.{value}.binary")
        return self._named[value]

    def close(self) -> None:
        if self._smudger is not None:
            self._smudger.close()
            self._smudger = None
