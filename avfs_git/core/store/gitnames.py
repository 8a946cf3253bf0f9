"""Names git refuses in a tree: they live in the workspace, never in a checkpoint.

git's rules (``fsck.c`` ``fsck_tree``, ``read-cache.c`` ``verify_path``, ``path.c``
``is_ntfs_dot*``, ``utf8.c`` ``is_hfs_dot*``), applied whatever the platform, as ``git fsck
--strict`` and a clone with ``core.protectNTFS``/``core.protectHFS`` apply them:

- ``hasDotgit``: a name that is ``.git`` to some file system: any case; NTFS trailing
  dots and spaces (``.git.``, ``.git ``), its alternate data streams (``.git::$INDEX_ALLOCATION``)
  and 8.3 short name (``GIT~1``); HFS+ code points it ignores (``.g\\u200cit``); and the
  same after a backslash (a directory separator on Windows: ``a\\.git``);
- ``gitmodulesSymlink``: ``.gitmodules`` (or an NTFS/HFS+ synonym, ``GITMOD~1``,
  ``gi7eba~1``...) as a symbolic link;
- ``gitmodulesBlob``: ``.gitmodules`` (or a synonym) that is not a file: a directory at
  any depth (fsck then fails on the whole vault);
- ``gitattributesBlob``: the same for ``.gitattributes`` (or an NTFS/HFS+ synonym,
  ``GITATT~1``, ``gi7d29~1``...; fsck does not look after a backslash for this one);
- ``.gitattributes``, ``.gitignore`` and ``.mailmap`` as symbolic links: git stores them
  but never follows them (``fsck`` warns, ``gitattributesSymlink`` and the like are only
  infos, even with ``--strict``; git ignores their contents), so a checkpoint leaves them
  out too rather than record a rule file git would not read.

A differential test builds a tree for each of many names (generated ones included) and
compares :func:`refusal` with what ``git fsck --strict`` and ``git read-tree`` say.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..records import dataclass

MODE_LINK = 0o120000
MODE_TREE = 0o040000

DOTGIT = "dotgit"
GITMODULES_SYMLINK = "gitmodules_symlink"
GIT_FILE_SYMLINK = "git_file_symlink"
GITMODULES_DIRECTORY = "gitmodules_directory"
GITATTRIBUTES_DIRECTORY = "gitattributes_directory"

_IGNORED_BY_HFS = frozenset(
    {
        0x200C, 0x200D, 0x200E, 0x200F,  # zero-width (non-)joiner, direction marks
        0x202A, 0x202B, 0x202C, 0x202D, 0x202E,  # direction embeddings and overrides
        0x206A, 0x206B, 0x206C, 0x206D, 0x206E, 0x206F,  # deprecated format characters
        0xFEFF,  # zero width no-break space
    }
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class NotRecorded:
    """A path of the workspace a checkpoint leaves out, and why (``kind``: one of
    :data:`DOTGIT`, :data:`GITMODULES_SYMLINK`, :data:`GITMODULES_DIRECTORY`,
    :data:`GITATTRIBUTES_DIRECTORY`, :data:`GIT_FILE_SYMLINK`, or a content kind:
    ``gitmodules_content``, ``gitattributes_content``)."""

    path: str
    kind: str
    reason: str


def _utf8_char(b: bytes, i: int) -> tuple[int, int]:
    """(code point, next index) of the UTF-8 character at ``b[i]`` as git's
    ``pick_one_utf8_char`` reads it; (-1, -1) for malformed UTF-8 (git: "not .git")."""
    c = b[i]
    if c < 0x80:
        return c, i + 1
    if c & 0xE0 == 0xC0:
        n, cp = 2, c & 0x1F
    elif c & 0xF0 == 0xE0:
        n, cp = 3, c & 0x0F
    elif c & 0xF8 == 0xF0:
        n, cp = 4, c & 0x07
    else:
        return -1, -1
    if i + n > len(b):
        return -1, -1
    for k in range(1, n):
        if b[i + k] & 0xC0 != 0x80:
            return -1, -1
        cp = (cp << 6) | (b[i + k] & 0x3F)
    if n == 2 and cp < 0x80:
        return -1, -1
    if n == 3 and (cp < 0x800 or 0xD800 <= cp <= 0xDFFF or cp in (0xFFFE, 0xFFFF)):
        return -1, -1
    if n == 4 and not 0x10000 <= cp <= 0x10FFFF:
        return -1, -1
    return cp, i + n


def _next_hfs(b: bytes, i: int) -> tuple[int, int]:
    """git's ``next_hfs_char``: the next code point from ``b[i]`` that HFS+ does not
    ignore; 0 at the end and for malformed UTF-8 (as git: "cannot be .git" there)."""
    while True:
        if i >= len(b):
            return 0, i
        cp, j = _utf8_char(b, i)
        if cp < 0:
            return 0, len(b)
        if cp not in _IGNORED_BY_HFS:
            return cp, j
        i = j


def _is_hfs_dot(name: bytes, needle: bytes) -> bool:
    """git's ``is_hfs_dot_generic``: ``.<needle>`` once the code points HFS+ ignores are
    dropped, ASCII case folded, then the end (or a '/')."""
    c, i = _next_hfs(name, 0)
    if c != 0x2E:
        return False
    for n in needle:
        c, i = _next_hfs(name, i)
        if c > 127 or ord(chr(c).lower()) != n:
            return False
    c, i = _next_hfs(name, i)
    return c in (0, 0x2F)


def _is_ntfs_dotgit(name: bytes) -> bool:
    """git's ``is_ntfs_dotgit``: ``.git`` or ``git~1`` (any case), then only dots and
    spaces up to the end, a backslash, a slash or a colon."""
    low = name.lower()
    if low.startswith(b".git"):
        rest = name[4:]
    elif low.startswith(b"git~1"):
        rest = name[5:]
    else:
        return False
    for c in rest:
        if c in b"\\/:":
            return True
        if c not in b". ":
            return False
    return True


def _is_ntfs_dot(name: bytes, dotname: bytes, shortname_prefix: bytes) -> bool:
    """git's ``is_ntfs_dot_generic`` (``.gitmodules`` and friends on NTFS)."""

    def only_spaces_and_periods(i: int) -> bool:
        for c in name[i:]:
            if c == 0x3A:  # ':' an alternate data stream
                return True
            if c not in b". ":
                return False
        return True

    if name[:1] == b"." and name[1 : 1 + len(dotname)].lower() == dotname:
        return only_spaces_and_periods(1 + len(dotname))
    # the regular short name: the first 6 characters, then ~1 to ~4
    if len(name) >= 8 and name[:6].lower() == dotname[:6] and name[6:7] == b"~" and 0x31 <= name[7] <= 0x34:
        return only_spaces_and_periods(8)
    # the fall-back short name: a hash-like prefix, then ~ and digits, 8 characters
    saw_tilde = False
    i = 0
    while i < 8:
        if i >= len(name):
            return False
        c = name[i]
        if saw_tilde:
            if not 0x30 <= c <= 0x39:
                return False
        elif c == 0x7E:  # '~'
            i += 1
            if i >= len(name) or not 0x31 <= name[i] <= 0x39:
                return False
            saw_tilde = True
        elif i >= 6 or c & 0x80 or chr(c).lower() != chr(shortname_prefix[i]):
            return False
        i += 1
    return only_spaces_and_periods(8)


_DOT_FILES = {
    # name: NTFS short-name prefix (path.c)
    b"gitmodules": b"gi7eba",
    b"gitignore": b"gi250a",
    b"gitattributes": b"gi7d29",
    b"mailmap": b"maba30",
}


def _is_dot(name: bytes, which: bytes) -> bool:
    return _is_hfs_dot(name, which) or _is_ntfs_dot(name, which, _DOT_FILES[which])


def _plain(raw: bytes) -> bool:
    """``raw`` is none of the names below: every rule needs a leading '.', a '~' (an NTFS
    short name), a backslash or a non-ASCII character (HFS+ ignores some code points)."""
    return raw.isascii() and raw[:1] != b"." and b"~" not in raw and b"\\" not in raw


def is_gitmodules(name: str | bytes) -> bool:
    """``name`` is ``.gitmodules`` to git (or an NTFS/HFS+ synonym, also after a
    backslash): ``git fsck`` reads a blob of that name as git config, wherever it is
    (see :mod:`.gitmodules`)."""
    raw = name if isinstance(name, bytes) else name.encode("utf-8", "surrogateescape")
    if _plain(raw):
        return False
    rests = [raw[i + 1 :] for i, c in enumerate(raw) if c == 0x5C]
    return _is_dot(raw, b"gitmodules") or any(_is_ntfs_dot(p, b"gitmodules", b"gi7eba") for p in rests)


def is_gitattributes(name: str | bytes) -> bool:
    """``name`` is ``.gitattributes`` to git (or an NTFS/HFS+ synonym): ``git fsck``
    checks the lines of a blob of that name, wherever it is (see :mod:`.gitattributes`).
    Unlike ``.gitmodules``, fsck does not look again after a backslash."""
    raw = name if isinstance(name, bytes) else name.encode("utf-8", "surrogateescape")
    return not _plain(raw) and _is_dot(raw, b"gitattributes")


def refusal(name: str | bytes, mode: int) -> tuple[str, str] | None:
    """(kind, reason) when git refuses (or would not read) ``name`` as an entry of ``mode``
    in a tree; None when it takes it."""
    raw = name if isinstance(name, bytes) else name.encode("utf-8", "surrogateescape")
    if _plain(raw):
        return None  # most names
    # fsck and verify_path look again after each backslash (a separator on Windows)
    rests = [raw[i + 1 :] for i, c in enumerate(raw) if c == 0x5C]
    if _is_hfs_dot(raw, b"git") or any(_is_ntfs_dotgit(p) for p in [raw, *rests]):
        return DOTGIT, "git reserves this name for its own directory ('.git' to some file system)"
    if mode == MODE_LINK:
        if _is_dot(raw, b"gitmodules") or any(_is_ntfs_dot(p, b"gitmodules", b"gi7eba") for p in rests):
            return GITMODULES_SYMLINK, "git refuses a symbolic link named .gitmodules"
        for which in (b"gitattributes", b"gitignore", b"mailmap"):
            if _is_dot(raw, which):
                return GIT_FILE_SYMLINK, f"git never follows a symbolic link named .{which.decode()}"
    elif mode == MODE_TREE and (
        _is_dot(raw, b"gitmodules") or any(_is_ntfs_dot(p, b"gitmodules", b"gi7eba") for p in rests)
    ):
        return GITMODULES_DIRECTORY, "git refuses a .gitmodules that is not a file (fsck: gitmodulesBlob)"
    elif mode == MODE_TREE and _is_dot(raw, b"gitattributes"):
        return (
            GITATTRIBUTES_DIRECTORY,
            "git refuses a .gitattributes that is not a file (fsck: gitattributesBlob)",
        )
    return None


def path_refusal(path: str, mode: int) -> NotRecorded | None:
    """The first component of ``path`` git refuses (directories above it as trees, the
    last one as ``mode``), or None."""
    comps = path.split("/")
    for i, comp in enumerate(comps):
        got = refusal(comp, mode if i == len(comps) - 1 else MODE_TREE)
        if got is not None:
            return NotRecorded("/".join(comps[: i + 1]), got[0], got[1])
    return None


def not_recorded(entries: Iterable[tuple[str, int]]) -> list[NotRecorded]:
    """The paths among ``entries`` (path, mode) a checkpoint leaves out, one per refused
    name (a refused directory once, not each file below it), sorted."""
    found: dict[str, NotRecorded] = {}
    for path, mode in entries:
        got = path_refusal(path, mode)
        if got is not None:
            found.setdefault(got.path, got)
    return [found[p] for p in sorted(found)]
