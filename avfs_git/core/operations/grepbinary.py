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
checkout reads the work tree's; a revision's own), with the vault's and git's own
(:class:`~..workspace.viewattrs.ViewAttributes`: nothing is loaded where none of them
names ``diff`` or ``binary``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..workspace.viewattrs import ViewAttributes

if TYPE_CHECKING:
    from ..workspace.wsview import View


class BinaryRule:
    """git grep's binary judgement by attributes over one view (see the module's text);
    :meth:`close` when done."""

    def __init__(self, store_path: str, view: View) -> None:
        self._attrs = ViewAttributes(store_path, view, (b"diff", b"binary"))
        self._named: dict[str, bool | None] = {}

    def binary(self, path: str) -> bool | None:
        """True: `git grep -I` skips ``path`` whatever its bytes; False: it searches it
        whatever they are; None: its bytes decide (a NUL among the first 8000)."""
        value = self._attrs.get(path, "diff")
        if value is True:
            return False
        if value is False:
            return True
        if not isinstance(value, str):
            return None
        if value not in self._named:
            self._named[value] = self._attrs.config_bool(f"diff.{value}.binary")
        return self._named[value]

    def close(self) -> None:
        self._attrs.close()
