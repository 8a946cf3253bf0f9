"""git's *smudge* conversions (what ``git checkout`` writes for a blob's bytes), the other
half of :mod:`.gitclean`: ``ident`` (``$Id$`` expanded to ``$Id: <blob id> $``), the
end-of-line conversion to CRLF (``eol=crlf``, ``text`` with ``core.eol=crlf``, and
``core.autocrlf=true``), through libgit2's filters, then ``working-tree-encoding``
(libgit2 has no such filter: Python's codecs, as git's ``convert.c`` does with iconv),
in git's order (``convert_to_working_tree``: ident, end of line, encoding).

A :class:`Smudger` judges paths by the ``.gitattributes`` files it is given (those of
one commit's tree, each added before a path below it is asked), the vault's
``info/attributes`` and git's global and system attribute files, laid out in a scratch
directory that a handle of the vault takes as its work tree (as :class:`.gitclean.Cleaner`).

``tests/test_gitsmudge.py`` compares :meth:`Smudger.smudge` with ``git checkout`` on real
files.
"""

from __future__ import annotations

import codecs
import functools
import os
import weakref
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from .gitattrfiles import outer_attributes
from .gitlib import git_errors
from .gitstore import blob_id
from .lineconfig import handle_config

if TYPE_CHECKING:
    import pygit2

ENCODING = "working-tree-encoding"
LE_BOM = "UTF-16LE-BOM"  # git's own name, no codec's (see to_worktree)
_UTF8 = ("UTF-8", "UTF8")
# The largest form a smudge makes in memory: a larger one is shown as the blob's bytes.
# git's checkout writes any size, streaming; avfs converts in memory, and a blob's form
# can be many times the blob (found in the eighth attack round: `ident` makes each `$Id$`
# 46 bytes, `eol=crlf` doubles a file of line ends, UTF-32 quadruples, one after the
# other), so a small blob a confined command commits made a form of gigabytes in the
# mount's daemon. Each step's largest result is known before it runs.
MAX_FORM = 64 << 20
# Python's text codecs that are no charset (git's iconv knows none of them): punycode's
# encoder is quadratic (a 114 KB file of varied letters took 85 s of CPU), ``idna``
# runs it per label, the escapes turn every byte into several
_NOT_CHARSETS = frozenset({"idna", "punycode", "unicode-escape", "raw-unicode-escape", "undefined"})
# what an attribute file names where a checkout may convert (``eol=crlf`` and the old
# ``crlf`` included; ``text`` too where ``core.eol=crlf``)
SMUDGE_WORDS = (b"crlf", b"ident", ENCODING.encode())


def may_smudge(texts: Iterable[bytes], *, eol_crlf: bool = False) -> bool:
    """Whether attribute files of these bytes can make a checkout convert anything."""
    words = (*SMUDGE_WORDS, b"text") if eol_crlf else SMUDGE_WORDS
    return any(w in t for t in texts for w in words)


def encoding_of(value: object) -> str | None:
    """The encoding a ``working-tree-encoding`` value names (git's
    ``git_path_check_encoding``: unset, set without a value, unset with ``-`` or empty
    is none, and so is UTF-8); None when there is none, or it is no charset both git's
    iconv and Python's codecs know (git then writes and adds the bytes as they are:
    ``rot13``, ``base64``, ``zlib_codec``, ``punycode``, ``idna`` are Python's codecs, not
    iconv's charsets, and a value is the fork's to write: docs/security.md)."""
    if not isinstance(value, str) or not value or value.upper() in _UTF8:
        return None
    name = value.upper()
    if _le_bom(name):
        return LE_BOM
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError):  # (ValueError: a NUL in the name)
        return None
    if not getattr(info, "_is_text_encoding", True) or info.name in _NOT_CHARSETS:
        return None
    # (git's utf8.c fallback_encoding: "latin-1" tried as "ISO-8859-1", which some C
    # libraries' iconv alone knows; glibc's among them)
    return name if _iconv_knows(name) or (name == "LATIN-1" and _iconv_knows("ISO-8859-1")) else None


@functools.cache
def _iconv_knows(name: str) -> bool:
    """Whether the C library's ``iconv`` (git's converter) converts UTF-8 to ``name``;
    True where the library has no ``iconv_open`` (Python's charsets then decide)."""
    import ctypes  # (here: ~2 ms of import a command whose tree names no encoding never pays)

    try:
        libc = ctypes.CDLL(None)
        iconv_open, iconv_close = libc.iconv_open, libc.iconv_close
    except (OSError, AttributeError):
        return True
    iconv_open.restype = ctypes.c_void_p
    iconv_open.argtypes = (ctypes.c_char_p, ctypes.c_char_p)
    iconv_close.argtypes = (ctypes.c_void_p,)
    try:
        cd = iconv_open(name.encode("ascii"), b"UTF-8")
    except UnicodeError:
        return False
    if cd is None or cd == ctypes.c_void_p(-1).value:
        return False
    iconv_close(cd)
    return True


def _le_bom(name: str) -> bool:
    """Whether ``name`` is git's own ``UTF-16LE-BOM`` (utf8.c ``same_utf_encoding``:
    ``UTF`` and a dash optional, any case)."""
    up = name.upper()
    return up.startswith("UTF") and up[3:].lstrip("-") == "16LE-BOM"


def to_worktree(data: bytes, encoding: str) -> bytes | None:
    """``data`` (UTF-8, as git stores it) in ``encoding``; None where it cannot be (git
    then writes the bytes as they are: ``encode_to_worktree``). UTF-16 and UTF-32 named
    without an order get a byte order mark, as iconv writes them; git's ``UTF-16LE-BOM``
    is little-endian after a mark (git's utf8.c, ``reencode_string_len``)."""
    if not data:
        return None
    try:
        if encoding == LE_BOM:
            return codecs.BOM_UTF16_LE + data.decode("utf-8").encode("utf-16-le")
        return data.decode("utf-8").encode(encoding)
    except (UnicodeError, LookupError):
        return None


def to_git(data: bytes, encoding: str) -> bytes | None:
    """``data`` (in ``encoding``) as git stores it (UTF-8); None where git's ``add``
    refuses it (``encode_to_git``: bytes that do not decode; UTF-16 or UTF-32 without a
    byte order mark where the name gives no order; a mark where it does)."""
    if not data:
        return None
    if encoding == LE_BOM:  # (git reads it as UTF-16, no mark required: the mark, if any,
        # gives the order, else iconv's UTF-16 reads little-endian here, as Python's does)
        marked = data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
        try:
            return data.decode("utf-16" if marked else "utf-16-le").encode("utf-8")
        except UnicodeError:
            return None
    name = encoding.replace("_", "-")
    boms = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)
    if name in ("UTF-16", "UTF16", "UTF-32", "UTF32") and not data.startswith(boms):
        return None
    ordered = name.endswith(("BE", "LE")) and name.startswith(("UTF-16", "UTF16", "UTF-32", "UTF32"))
    if ordered and data.startswith(boms):
        return None
    try:
        return data.decode(encoding).encode("utf-8")
    except (UnicodeError, LookupError):
        return None


def ident_to_worktree(data: bytes, oid: str) -> bytes | None:
    """``data`` with each ``$Id$`` (and each git-style ``$Id: ... $``, no line break nor
    inner space in it) made ``$Id: OID $``, as git's ``ident_to_worktree`` does; None when
    there is none."""
    if b"$Id" not in data:
        return None
    out = bytearray()
    i, n, changed = 0, len(data), False
    while True:
        d = data.find(b"$", i)
        if d < 0:
            break
        out += data[i : d + 1]
        i = d + 1
        if n - i < 3 or data[i : i + 2] != b"Id":
            continue
        c = data[i + 2 : i + 3]
        if c == b"$":
            i += 3
        elif c == b":":
            end = data.find(b"$", i + 3)
            if end < 0:
                break
            if b"\n" in data[i + 3 : end]:
                continue
            spc = data.find(b" ", i + 4, end)
            if 0 <= spc < end - 1:
                continue  # (another versioning system's id: kept)
            i = end + 1
        else:
            continue
        out += b"Id: " + oid.encode() + b" $"
        changed = True
    out += data[i:]
    return bytes(out) if changed else None


def ident_to_git(data: bytes) -> bytes | None:
    """``data`` with each ``$Id: ... $`` (no line break in it) made ``$Id$``, as git's
    ``ident_to_git`` does (libgit2's filter collapses the first one only); None when
    there is none."""
    if b"$Id:" not in data:
        return None
    out = bytearray()
    i, n, changed = 0, len(data), False
    while True:
        d = data.find(b"$", i)
        if d < 0:
            break
        out += data[i : d + 1]
        i = d + 1
        if n - i > 3 and data[i : i + 3] == b"Id:":
            end = data.find(b"$", i + 3)
            if end < 0:
                break
            if b"\n" in data[i + 3 : end]:
                continue
            out += b"Id$"
            i = end + 1
            changed = True
    out += data[i:]
    return bytes(out) if changed else None


def git_rules(data: bytes) -> bytes:
    """An attribute file's bytes as git reads them, for libgit2: a line whose pattern is
    negative (``!pat attr``, ``"!pat" attr``) left out, as git ignores it ("Negative
    patterns are ignored in git attributes", ``attr.c`` ``parse_attr_line``), where
    libgit2 reads it as a match of every path but ``pat``. Found in the thirty-fourth round
    (realdata9, libgit2's own ``attr1``: ``!pat1 attr1`` set ``attr1`` on every other path;
    a ``!*.txt binary`` kept `avfs grep` from every other file, and converted them)."""
    if b"!" not in data:
        return data
    lines = data.split(b"\n")
    for i, line in enumerate(lines):
        head = line.lstrip(b" \t\r")
        if head[:1] == b"!" or head[:2] == b'"!':
            lines[i] = b""
    return b"\n".join(lines)


def attributes_handle(
    store_path: str, files: Mapping[str, bytes], branch: str | None = None
) -> tuple[pygit2.Repository, str]:
    """A libgit2 handle of the vault whose work tree is a new scratch directory (mode
    0700) holding ``files`` (the bytes of each ``.gitattributes`` by its directory, ""
    the root), its index empty (in memory only), and that directory: the caller frees the
    handle and removes the directory. git's system and global attribute files
    (:mod:`.gitattrfiles`) are the first lines of the root's, and libgit2 reads no global
    file of its own (:func:`no_own_global`). ``branch``: the fork's, whose config git in
    its worktree reads (``includeIf "onbranch:"``: :func:`.lineconfig.fork_settings`)."""
    import shutil  # (not at the top: a cold status, cat or log never runs it)
    import tempfile

    import pygit2

    outer = outer_attributes(store_path, branch)  # (git's global and system ones: its root's first lines)
    if outer:
        files = {**files, "": outer + files.get("", b"")}
    scratch = tempfile.mkdtemp(prefix="avfs-attrs-")
    try:
        repo = pygit2.Repository(store_path)
        try:
            cfg = repo.config  # (a key without "=": there, None)
            try:
                eol = str(cfg["core.eol"] or "") if "core.eol" in cfg else None
            except UnicodeDecodeError:  # (not UTF-8: no value git knows, read as unset)
                eol = ""
            # (libgit2's idea of the global file is not git's, nor of every core.eol)
            no_own_global(repo, scratch, handle_config(store_path, eol, branch))
            for d, data in files.items():
                at = os.path.join(scratch, *d.split("/")) if d else scratch
                os.makedirs(at, exist_ok=True)
                with open(os.path.join(at, ".gitattributes"), "xb") as fh:
                    fh.write(git_rules(data))
            repo.workdir = scratch
            repo.index.clear()  # (in memory: a vault has no index file; a test's repo has)
        except BaseException:
            repo.free()
            raise
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return repo, scratch


def no_own_global(repo: pygit2.Repository, scratch: str, lines: str = "") -> None:
    """Have libgit2 read no global attributes file of its own for ``repo`` (a handle just
    opened, no attribute asked yet): ``core.attributesFile = /dev/null`` in a config of
    the highest level, this handle's alone (nothing written to the vault): git's global
    file is read by :mod:`.gitattrfiles`, and libgit2's idea of it (its search path: not
    ``$GIT_CONFIG_GLOBAL``, ``git -c``, nor always what an ``[include]`` names) added rules
    git did not. The config is written in ``scratch`` (empty yet) and unlinked once
    libgit2 has read it: the handle keeps what it read (a file kept instead was one more
    for every process to leave behind, a forked call's ``os._exit`` runs no clean-up).
    Its system file stays: git reads the same one (``/etc/gitattributes``), below these
    rules. ``lines``: more of the ``[core]`` section (git's end-of-line settings where
    libgit2 would read others: :func:`.lineconfig.handle_config`)."""
    import pygit2
    from pygit2.ffi import C, ffi

    path = os.path.join(scratch, "config")
    with open(path, "x") as fh:
        fh.write("[core]\n\tattributesFile = /dev/null\n" + lines)
    cfg = ffi.new("git_config **")
    try:
        if C.git_repository_config(cfg, repo._repo) != 0:
            raise pygit2.GitError("cannot read the vault's config")
        try:
            level = int(pygit2.enums.ConfigLevel.APP)
            if C.git_config_add_file_ondisk(cfg[0], os.fsencode(path), level, repo._repo, 1) != 0:
                raise pygit2.GitError("cannot add a config file to the attributes handle")
        finally:
            C.git_config_free(cfg[0])
    finally:
        os.unlink(path)  # (before any directory of the tree is made there: no name taken)


class Smudger:
    """The smudge conversions of one tree's files (see the module's text); :meth:`close`
    when done. Not thread-safe: its caller holds a lock."""

    def __init__(self, store_path: str, branch: str | None = None) -> None:
        self._outer = outer_attributes(store_path, branch)
        self._repo, self._dir = attributes_handle(store_path, {}, branch)
        # (one left unclosed frees its handle and removes its scratch when collected)
        self._done = weakref.finalize(self, _dispose, self._repo, self._dir)

    def add_attributes(self, directory: str, data: bytes) -> None:
        """The ``.gitattributes`` of ``directory`` ("" the root), before any path below
        it is asked."""
        at = os.path.join(self._dir, *directory.split("/")) if directory else self._dir
        os.makedirs(at, exist_ok=True)
        with open(os.path.join(at, ".gitattributes"), "wb") as fh:
            fh.write(git_rules(data if directory else self._outer + data))

    def smudge(self, path: str, data: bytes) -> bytes | None:
        """What ``git checkout`` writes for ``data`` (a blob's bytes) at ``path``; None
        when that is ``data`` itself, or would be larger than :data:`MAX_FORM`."""
        import pygit2
        from pygit2.ffi import C, ffi

        try:
            fl = self._repo.load_filter_list(path, pygit2.enums.FilterMode.TO_WORKTREE)
            enc = encoding_of(self._repo.get_attr(path, ENCODING))
            ident = self._repo.get_attr(path, "ident") is True
        except git_errors():
            return None
        # libgit2's ident filter expands nothing in a buffer (it needs the blob's id): git's
        # own rule here, first, as git's convert_to_working_tree runs it
        if len(data) > MAX_FORM or (ident and len(data) + 44 * data.count(b"$Id") > MAX_FORM):
            return None
        out = ident_to_worktree(data, blob_id(data)) if ident else None
        if out is None:
            out = data
        if fl is not None and len(out) + out.count(b"\n") > MAX_FORM:
            return None
        if enc is not None and (2 if "16" in enc else 4) * len(out) + 4 > MAX_FORM:
            return None
        if fl is not None:
            buf = ffi.new("git_buf *")
            # (pygit2's FilterList.apply_to_buffer ends the result at its first NUL byte)
            if C.git_filter_list_apply_to_buffer(buf, fl._pointer, out, len(out)) == 0:
                try:
                    out = bytes(ffi.buffer(buf.ptr, buf.size))
                finally:
                    C.git_buf_dispose(buf)
        if enc is not None:
            out = to_worktree(out, enc) or out
        return None if out == data else out

    def attribute(self, path: str, name: str) -> object:
        """The value of attribute ``name`` at ``path`` by the attribute files given (True
        set, False unset, a string, None unspecified; None where libgit2 cannot tell)."""
        try:
            return self._repo.get_attr(path, name)
        except git_errors():
            return None

    def config_bool(self, key: str) -> bool | None:
        """The vault's (and git's global and system) boolean ``key``; None where unset or
        not a boolean."""
        try:
            return bool(self._repo.config.get_bool(key))
        except git_errors():
            return None

    def close(self) -> None:
        self._done()


def _dispose(repo: Any, scratch: str) -> None:
    import shutil

    repo.free()
    shutil.rmtree(scratch, ignore_errors=True)
