"""Validation of every name and path a user hands to avfs.

Names end up in git ref names and in directory names under the home, and paths address
files inside a workspace; both are checked here, once, before anything touches disk.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..errors import InvalidNameError, InvalidPathError, NameTooLongError, want_str

MAX_NAME = 100
MAX_COMPONENT_BYTES = 255
MAX_PATH_BYTES = 4096

_NAME = r"^[A-Za-z0-9_][A-Za-z0-9._+-]*$"  # compiled on first use (re costs ~2 ms to import)
_RESERVED = {"HEAD", "FETCH_HEAD", "ORIG_HEAD", "MERGE_HEAD", "CHERRY_PICK_HEAD", "@"}


def _check_segment(kind: str, name: str, seg: str) -> None:
    if not seg:
        raise InvalidNameError(f"invalid {kind} name {name!r}: empty component")
    import re

    if not re.fullmatch(_NAME, seg):  # (not `match`: its `$` took "one\n", a trailing newline)
        raise InvalidNameError(
            f"invalid {kind} name {name!r}: use letters, digits, '.', '_', '+', '-'"
            " and do not start with '.', '-' or '+'",
            details={"name": name},
        )
    if ".." in seg or seg.endswith(".lock") or seg.endswith("."):
        raise InvalidNameError(
            f"invalid {kind} name {name!r}: '..', a trailing '.' or '.lock' are not allowed",
            details={"name": name},
        )
    if seg in _RESERVED or seg.upper() == "HEAD":
        raise InvalidNameError(f"invalid {kind} name {name!r}: {seg!r} is reserved by git")


def check_vault_name(name: str) -> str:
    """Return ``name`` if it is a valid vault name, else raise :class:`InvalidNameError`."""
    if not isinstance(name, str) or not name:
        raise InvalidNameError("invalid vault name: empty", hint="name the vault, e.g. 'myproj'")
    if len(name) > MAX_NAME:
        raise InvalidNameError(f"invalid vault name: longer than {MAX_NAME} characters")
    if ":" in name:
        raise InvalidNameError(f"invalid vault name {name!r}: ':' separates vault and fork (VAULT:FORK)")
    if "/" in name:
        raise InvalidNameError(f"invalid vault name {name!r}: '/' is not allowed")
    if name.endswith(".git"):
        raise InvalidNameError(f"invalid vault name {name!r}: do not end it with '.git'")
    _check_segment("vault", name, name)
    return name


def check_fork_name(name: str, kind: str = "fork") -> str:
    """Return ``name`` if it is a valid fork (or checkpoint) name.

    Fork names become ``refs/heads/<name>``: '/' separates segments like git branch names.
    """
    if not isinstance(name, str) or not name:
        raise InvalidNameError(f"invalid {kind} name: empty")
    if len(name) > MAX_NAME:
        raise InvalidNameError(f"invalid {kind} name: longer than {MAX_NAME} characters")
    if ":" in name:
        raise InvalidNameError(f"invalid {kind} name {name!r}: ':' is not allowed")
    for seg in name.split("/"):
        _check_segment(kind, name, seg)
    return name


def parse_address(spec: str) -> tuple[str, str | None]:
    """Split ``VAULT[:FORK]`` into its parts, validating both."""
    vault, sep, fork = want_str(spec, "spec").partition(":")
    check_vault_name(vault)
    if sep:
        check_fork_name(fork)
        return vault, fork
    return vault, None


def norm_path(path: str, *, text: bool = True) -> str:
    """Normalise a workspace path to git's form ('a/b/c', root is '').

    Refuses absolute paths, '..', NUL and other control bytes in a way that can't be
    misread, and any '.git' component (git would refuse such a tree). With ``text``
    False, a name whose bytes are not UTF-8 (``surrogateescape``'s code points, as
    ``os.fsdecode`` gives them) passes: a read of what a tree from git holds (git and the
    disk take any bytes but '/' and NUL); what avfs writes stays text.
    """
    if not isinstance(path, str):
        raise InvalidPathError(f"invalid path {path!r}: not a string")
    if "\x00" in path:
        raise InvalidPathError(f"invalid path {path!r}: contains a NUL byte")
    try:
        path.encode("utf-8", "strict" if text else "surrogateescape")
    except UnicodeEncodeError:
        shown = path.encode("utf-8", "surrogateescape").decode("ascii", "backslashreplace")
        raise InvalidPathError(
            f"invalid path '{shown}': its name is not UTF-8 text, which avfs can read from git but not write",
            hint="give the file a UTF-8 name (a git commit may hold such a name, and an"
            " overlay mount writes one)",
            details={"path": shown},
        ) from None
    if path.startswith("/"):
        raise InvalidPathError(
            f"invalid path {path!r}: absolute paths are not allowed",
            hint="paths are relative to the workspace root, e.g. 'src/main.py'",
        )
    if len(path.encode("utf-8", "surrogateescape")) > MAX_PATH_BYTES:
        raise NameTooLongError(f"invalid path: longer than {MAX_PATH_BYTES} bytes")
    parts: list[str] = []
    for comp in path.split("/"):
        if comp in ("", "."):
            continue
        if comp == "..":
            raise InvalidPathError(
                f"invalid path {path!r}: '..' is not allowed",
                hint="paths may not leave the workspace",
            )
        if comp.lower() == ".git":
            raise InvalidPathError(f"invalid path {path!r}: '.git' is reserved by git")
        if len(comp.encode("utf-8", "surrogateescape")) > MAX_COMPONENT_BYTES:
            raise NameTooLongError(
                f"invalid path {path!r}: a name is longer than {MAX_COMPONENT_BYTES} bytes"
            )
        # (a control character is never printable: the test of C first, each character's
        # only where it fails; a read-only view normalises every directory it lists)
        if not comp.isprintable() and any(ord(c) < 32 or ord(c) == 127 for c in comp):
            raise InvalidPathError(f"invalid path {path!r}: contains a control character")
        parts.append(comp)
    return "/".join(parts)


def parent_of(path: str) -> str:
    """Return the parent of a normalised path ('' for top-level names and the root)."""
    i = path.rfind("/")
    return path[:i] if i >= 0 else ""


def basename(path: str) -> str:
    return path[path.rfind("/") + 1 :]


def join(parent: str, name: str) -> str:
    return f"{parent}/{name}" if parent else name


def ancestors(path: str) -> list[str]:
    """Return '' and every proper ancestor of ``path``, shallowest first."""
    out = [""]
    if not path:
        return []
    i = path.find("/")
    while i >= 0:
        out.append(path[:i])
        i = path.find("/", i + 1)
    return out


def ancestors_of_all(paths: Iterable[str]) -> set[str]:
    """Return '' and every proper ancestor of each of ``paths``, each made once: an ancestor
    already found ends the climb (its own are found too), so the paths of a tree N levels
    deep cost O(N) names, not the O(N^2) names of each path's :func:`ancestors` (found in
    the sixteenth round, NAME=suitetime: 1.4 million strings ~1,200 characters long for a
    confined command's directory 1,200 levels deep, in each status and checkpoint)."""
    out: set[str] = set()
    for p in paths:
        while p:
            i = p.rfind("/")
            p = p[:i] if i >= 0 else ""
            if p in out:
                break
            out.add(p)
    return out


def is_within(path: str, root: str) -> bool:
    """True when ``path`` is ``root`` or below it."""
    return not root or path == root or path.startswith(root + "/")


# -- names as file names -------------------------------------------------------------------
# A fork (or a mount key, ``FORK@REV``) names files and directories under a vault's state
# dir: its workspace, lock, quota file, mount registry entry, exec file, log, default mount
# point, worktree. '/' is legal in a fork name, so it is escaped, and '%' with it so the
# encoding can be undone; a worktree's name escapes '@' too (``at=True``).

_FS_ESCAPES = {"25": "%", "2F": "/", "40": "@"}
# the same encoding in sh (the vault's git pre-receive hook, hooks/prereceive.py): a filter
# from stdin to stdout, without ``at``
SHELL_FS_NAME = "sed -e 's/%/%25/g' -e 's|/|%2F|g'"


def fs_name(name: str, *, at: bool = False) -> str:
    """``name`` (a fork or a mount key) as one file name: '%' -> %25, '/' -> %2F (and, with
    ``at``, '@' -> %40). :func:`from_fs_name` undoes it."""
    out = name.replace("%", "%25").replace("/", "%2F")
    return out.replace("@", "%40") if at else out


def from_fs_name(fs: str) -> str:
    """The name :func:`fs_name` made ``fs`` from (either form)."""
    if "%" not in fs:
        return fs
    import re

    return re.sub(r"%(25|2F|40)", lambda m: _FS_ESCAPES[m.group(1)], fs)  # compiled on first use


# the names in a git dir that make it one, or name what it runs (core/workspace/plantedrule.py)
GIT_STATE_NAMES = frozenset({"HEAD", "config", "config.worktree", "commondir", "objects", "refs", "hooks"})
_STATE_KEYS = {n.lower(): n for n in GIT_STATE_NAMES}
_STATE_KEYS_B = {k.encode(): n for k, n in _STATE_KEYS.items()}
_FIRST = frozenset("hHcCoOrR")  # (an ASCII name starting otherwise is none of them)
_FIRST_B = frozenset(c.encode() for c in _FIRST)
# code points HFS+ ignores in a name (git's utf8.c ``next_hfs_char``; gitnames.py has the same)
_HFS_IGNORED = dict.fromkeys(
    (0x200C, 0x200D, 0x200E, 0x200F, 0x202A, 0x202B, 0x202C, 0x202D, 0x202E,
     0x206A, 0x206B, 0x206C, 0x206D, 0x206E, 0x206F, 0xFEFF)
)  # fmt: skip


def git_state_name(name: str) -> str | None:
    """The name of git's own state (one of :data:`GIT_STATE_NAMES`) that file name ``name``
    is to some file system a clone of the vault may be checked out on, or None (most
    names). The one place the planted-repository rule (core/workspace/plantedrule.py,
    proxy/plantedgit.py and every check built on them) matches these names: ``src/head``,
    ``src/Config`` are ``HEAD`` and ``config`` to git on a case-insensitive file system
    (macOS's APFS, Windows' NTFS by default; the review of the thirty-sixth round,
    review40 F5), so they are folded as git folds ``.git`` (path.c ``is_ntfs_dotgit``,
    utf8.c ``is_hfs_dotgit``, and :mod:`.gitnames`), whatever the platform:

    - case, by Unicode's full case folding (APFS, NTFS's upcase table: ``ref`` and a long
      s, U+017F; ``hoo``, a Kelvin sign U+212A, ``s``), after NFC (APFS and HFS+ take
      either normal form);
    - the code points HFS+ ignores (``HE``, U+200C, ``AD``);
    - NTFS: trailing dots and spaces (``config.``, ``HEAD ``, gone from the name Windows
      makes) and an alternate data stream (``HEAD::$DATA``, ``config:x``: a stream of that
      file). An 8.3 short name (``OBJECT~1``) is not one: git looks ``objects`` up, which
      reaches a file whose long name is ``objects``, never one named ``OBJECT~1``."""
    if name.isascii():
        if name[:1] not in _FIRST:
            return None  # (most names: no more work)
        if ":" not in name and not name.endswith((".", " ")):
            return _STATE_KEYS.get(name.lower())
        key = name
    else:
        import unicodedata

        key = unicodedata.normalize("NFC", name.translate(_HFS_IGNORED)).casefold()
    key = key.partition(":")[0].rstrip(". ")
    return _STATE_KEYS.get(key.lower()) if key.isascii() else None


def git_state_names(names: Iterable[str]) -> dict[str, list[str]]:
    """The names of git's own state among ``names`` (a directory's entries), by the name
    each is to git (:func:`git_state_name`: ``head`` and ``HEAD`` are both ``HEAD``), in
    the order of ``names``."""
    first = _FIRST
    out: dict[str, list[str]] = {}
    for name in names:
        if name[:1] in first or not name.isascii():  # (inline: a directory of 100,000 names)
            got = git_state_name(name)
            if got is not None:
                out.setdefault(got, []).append(name)
    return out


def git_state_name_b(name: bytes) -> str | None:
    """:func:`git_state_name` of a raw tree entry's name (a merge's walk of raw trees,
    core/store/trivialmerge.py)."""
    if name.isascii():
        if name[:1] not in _FIRST_B:
            return None
        if b":" not in name and not name.endswith((b".", b" ")):
            return _STATE_KEYS_B.get(name.lower())
    return git_state_name(name.decode("utf-8", "surrogateescape"))


def git_dir_of(path: str) -> str | None:
    """The directory a write (or a directory made) at ``path`` could complete a repository
    in, or make one run a program: its parent for ``HEAD``, ``config``, ``objects``...,
    its grandparent for ``hooks/NAME``; None for every other path (most), and at the top
    (the fork's root: its own ``.git``, the mount's or a clone's, is found first). The
    names as :func:`git_state_name` folds them (``src/head``, ``src/Hooks/x``)."""
    parent, _, name = path.rpartition("/")
    # (the first letter looked at inline: a call each costs every write 1 µs more)
    if (name[:1] in _FIRST or not name.isascii()) and git_state_name(name) is not None:
        return parent or None
    up, _, dirname = parent.rpartition("/")
    if parent and (dirname[:1] in "hH" or not dirname.isascii()) and git_state_name(dirname) == "hooks":
        return up or None
    return None
