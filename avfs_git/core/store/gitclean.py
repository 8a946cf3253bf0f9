"""git's *clean* conversions (what ``git add`` makes of a file's bytes), through libgit2's
filters: end-of-line conversion (the ``text``, ``eol`` and ``crlf`` attributes, and
``core.autocrlf``/``core.eol`` where an attribute asks for them) and ``ident``; before
them ``working-tree-encoding`` (libgit2 has no such filter: :func:`.gitsmudge.to_git`).

A :class:`Cleaner` judges paths by the ``.gitattributes`` files of one view (the
workspace being captured, not a commit: an uncheckpointed ``.gitattributes`` counts, as it
does for ``git add``), given as bytes by the caller, plus the vault's ``info/attributes``
and git's global and system attribute files, as git reads them. libgit2 reads attribute
files from a work tree only, so the view's are laid out in a scratch directory of their
own (mode 0700, removed by :meth:`Cleaner.close`) and a handle of the vault is pointed at
it as its work tree (``git_repository_set_workdir``, nothing written to the vault).

git's rule that an *automatic* conversion (``text=auto``, ``crlf=auto``, ``core.autocrlf``)
leaves a file alone whose index entry already holds CRLF line ends (``convert.c``
``has_crlf_in_index``) is judged against ``index``: what each path held before (the base).
libgit2 has the rule in a form of its own (``crlf.c`` ``has_cr_in_index``: any CR, and for
``eol`` without ``text`` too, where git converts), so the entry is put in the handle's
index (in memory only, never written) exactly where git's rule holds, and libgit2 then
leaves the file alone; elsewhere the index has no entry for it.

A ``filter=DRIVER`` attribute names a program of the person's config (``filter.DRIVER.clean``);
avfs never runs it on the host side (the file may come from a confined command, and so may
the ``.gitattributes``): libgit2 knows no such driver and records the bytes as they are, as
git does for a driver that is not configured. :attr:`Cleaner.drivers` names the paths where
git would have run one.

``tests/test_gitclean.py`` compares :meth:`Cleaner.clean` with ``git add`` on real files.
"""

from __future__ import annotations

from collections.abc import Mapping

from .configtext import git_bool
from .gitlib import git_errors
from .gitsmudge import ENCODING, attributes_handle, encoding_of, ident_to_git, to_git

ATTRIBUTES = ".gitattributes"


class Cleaner:
    """The clean conversions of one view (see the module's text)."""

    def __init__(
        self,
        store_path: str,
        files: Mapping[str, bytes],
        index: Mapping[str, tuple[str, int]],
        branch: str | None = None,
    ) -> None:
        """``files``: each ``.gitattributes`` of the view by its directory ("" for the
        root) and its bytes; ``index``: (blob id, mode) of what paths held before;
        ``branch``: the fork's, whose config git in its worktree reads (:func:`.lineconfig.fork_settings`)."""
        self.drivers: set[str] = set()
        repo, self._dir = attributes_handle(store_path, files, branch)
        self._repo = repo
        self._base = dict(index)
        self._drivers_set: dict[str, bool] = {}
        present, auto = self._config("core.autocrlf")
        # (a bare `autocrlf` line, no `=`: pygit2 gives None, which git reads as true)
        self._autocrlf = present and ((auto or "").lower() == "input" or bool(git_bool(auto)))

    def clean(self, path: str, data: bytes) -> bytes | None:
        """What ``git add`` stores for ``data`` at ``path``; None when no conversion
        applies (the bytes are stored as they are)."""
        from pygit2.ffi import C, ffi

        try:
            self._index_for(path)
            fl = self._repo.load_filter_list(path)
            enc = encoding_of(self._repo.get_attr(path, ENCODING))
            ident = self._repo.get_attr(path, "ident") is True
        except git_errors():
            return None
        self._note_driver(path)
        # git's order (convert_to_git): the encoding first, then end of line and ident;
        # ident here first (git's rule: libgit2's filter collapses the first `$Id: ...$`
        # only, and nothing is left for it), which end-of-line conversion cannot change
        decoded = to_git(data, enc) if enc is not None else None
        collapsed = ident_to_git(data if decoded is None else decoded) if ident else None
        if collapsed is not None:
            decoded = collapsed
        if decoded is not None:
            data = decoded
        if fl is None:
            return decoded
        buf = ffi.new("git_buf *")
        # (pygit2's FilterList.apply_to_buffer reads the result as a C string: it would
        # end a file at its first NUL byte)
        if C.git_filter_list_apply_to_buffer(buf, fl._pointer, data, len(data)) != 0:
            return decoded  # (core.safecrlf=true refusing it: recorded as it is)
        try:
            return bytes(ffi.buffer(buf.ptr, buf.size))
        finally:
            C.git_buf_dispose(buf)

    def _config(self, key: str) -> tuple[bool, str | None]:
        """(whether ``key`` is set, its value: None for a key with no ``=``)."""
        try:
            cfg = self._repo.config
            if key not in cfg:
                return False, None
            val = cfg[key]
        except git_errors():
            return False, None
        return True, None if val is None else str(val)

    def _auto(self, path: str) -> bool:
        """Whether git's conversion of ``path`` is an automatic one (``convert.c``
        ``convert_attrs``: ``text=auto``, else ``crlf=auto``, else, with neither ``text``,
        ``crlf`` nor ``eol`` set, ``core.autocrlf``)."""
        get = self._repo.get_attr
        text = get(path, "text")
        if text is not None:
            return text == "auto"
        crlf = get(path, "crlf")
        if crlf is not None:
            return crlf == "auto"
        return self._autocrlf and get(path, "eol") is None

    def _index_for(self, path: str) -> None:
        """The handle's index holds ``path``'s base entry exactly where git's rule leaves
        the file as it is (see the module's text)."""
        import pygit2

        idx = self._repo.index
        held = self._base.get(path)
        keep = held is not None and self._auto(path) and has_crlf(self._repo[held[0]].read_raw())
        if keep and held is not None:
            idx.add(pygit2.IndexEntry(path, pygit2.Oid(hex=held[0]), pygit2.enums.FileMode(held[1])))
        elif path in idx:
            idx.remove(path)

    def _note_driver(self, path: str) -> None:
        try:
            name = self._repo.get_attr(path, "filter")
        except git_errors():
            return
        if not isinstance(name, str):
            return
        known = self._drivers_set.get(name)
        if known is None:
            cfg = self._repo.config
            known = self._drivers_set[name] = any(f"filter.{name}.{k}" in cfg for k in ("clean", "process"))
        if known:
            self.drivers.add(path)

    def close(self) -> None:
        import shutil  # (not at the top: a cold status, cat or log never runs it)

        self._repo.free()
        shutil.rmtree(self._dir, ignore_errors=True)


# git's convert.c gather_stats: the control characters it counts as printable (BS, HT, ESC, FF)
_NONPRINTABLE = bytes(c for c in range(32) if c not in (8, 9, 27, 12, 10, 13)) + b"\x7f"


def has_crlf(data: bytes) -> bool:
    """git's ``has_crlf_in_index`` of a blob's bytes: a CRLF in a blob git does not call
    binary (``convert_is_binary``: a lone CR, a NUL, or more than one non-printable byte in
    128 printable ones; a final ``^Z`` not counted)."""
    if b"\r" not in data:
        return False
    crlf = data.count(b"\r\n")
    if not crlf or data.count(b"\r") > crlf or b"\0" in data:
        return False
    nonprintable = len(data) - len(data.translate(None, _NONPRINTABLE))
    if data.endswith(b"\x1a"):
        nonprintable -= 1
    printable = len(data) - nonprintable - data.count(b"\r") - data.count(b"\n")
    return not (printable >> 7) < nonprintable
