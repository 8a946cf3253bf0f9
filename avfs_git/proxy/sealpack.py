"""The other forks' branches as the sandbox's git sees them: one ``packed-refs`` of its own.

A confined command's git needs every branch of the vault (``git log other``, ``git merge
other``), but may move only its own fork's (:mod:`.seal`). Copied as loose files into the
sandbox's writable scratch ``refs/heads``, each branch was a file the command could rewrite
in place, so after every run every one of them had to be looked at again, and before the
next, the scratch walked once more to put them back: three walks of every branch per call,
O(forks). Here the scratch holds only the fork's own branch (and any loose head git cannot
pack: a symbolic ref, junk), and the other branches, with the vault's own ``packed-refs``
entries, are written by avfs into one file, which the sandbox shows as the vault's
``packed-refs``: a regular file of the sandbox's private top directory of the vault
(``<seal dir>/top``, :func:`.confine._kept`), never the vault's own. git and libgit2 read a
loose ref before a packed one, so what the command writes to a branch in its scratch still
shows (and is reported, never applied).

git's files backend rewrites ``packed-refs`` (a rename over it) for every ref it deletes in
bulk: ``git bisect start``/``reset``, ``git branch -D``, ``git tag -d``, ``git stash
clear``. Shown read-only (a bind), the file made each of them fail (``EBUSY``), the run's
own refs included. Being the sandbox's own file, it can be rewritten there: what the
command did to it is read back after the run (:func:`parse`, untrusted) and compared with
what avfs wrote, and a change to any ref but the fork's branch is reported, never applied;
:func:`fresh` writes it again before every run, so the next run sees the vault's branches
as they are. After the run only the scratch's own few files are read, and this file only
when its ``lstat`` moved: O(what the command wrote).
"""

from __future__ import annotations

import os
import re
import stat
import time
from typing import TYPE_CHECKING

from ..core.store import deeptree, refs
from ..core.workspace.untrusted import read_file

if TYPE_CHECKING:
    from collections.abc import Mapping

NAME = "packed-refs"
HEADER = b"# pack-refs with: sorted \n"
MAX_PACKED = 256 << 20  # a vault's packed-refs larger than this is not one avfs shows
# what the command's packed-refs may hold beyond twice the one avfs showed it before it is
# not read back (its lines all taken as deleted): git's own rewrites stay well within
# (found in the thirteenth round, NAME=attack4: 64 MiB of lines took the daemon to 1.2 GB
# and 17 s, and their 10^6 refs_refused entries broke the served call's answer)
MAX_GROWTH = 16 << 20
_HEX = re.compile(rb"[0-9a-f]{40}|[0-9a-f]{64}")
# what may stand in a packed-refs line's name: git's ref names have no space, control
# character, ``~^:?*[\`` or DEL (git check-ref-format); anything else stays a loose file
_NAME = re.compile(re.escape(refs.REFS) + r"[^\x00-\x20\x7f~^:?*\[\\]+")


def packable(name: str, data: bytes) -> bytes | None:
    """The object id of a loose ref file's bytes ``data`` when git would read it the same
    from a packed-refs line (one id, a newline at most after it), else None."""
    ident = data[:-1] if data.endswith(b"\n") else data
    if _HEX.fullmatch(ident) and _NAME.fullmatch(name):
        return ident
    return None


def parse(data: bytes) -> dict[str, tuple[bytes, bytes | None]]:
    """A ``packed-refs`` file's entries: name -> (id, the peeled id or None). Lines that
    are not entries (its header, junk) are left out."""
    out: dict[str, tuple[bytes, bytes | None]] = {}
    last: str | None = None
    for line in data.split(b"\n"):
        if line.startswith(b"^") and last is not None and _HEX.fullmatch(line[1:]):
            out[last] = (out[last][0], line[1:])
            continue
        last = None
        ident, sep, raw = line.partition(b" ")
        if not sep or not _HEX.fullmatch(ident):
            continue
        name = raw.decode("utf-8", "surrogateescape")
        if _NAME.fullmatch(name):
            out[name] = (ident, None)
            last = name
    return out


def read_vault(vault_path: str) -> dict[str, tuple[bytes, bytes | None]]:
    """The vault's own ``packed-refs`` entries (none when it has none)."""
    data = read_file(os.path.join(vault_path, NAME), MAX_PACKED)
    return parse(data) if data else {}


def render(entries: Mapping[str, tuple[bytes, bytes | None]]) -> bytes:
    """A ``packed-refs`` file of ``entries``, sorted by name as git's ``sorted`` trait says
    (git then looks names up by bisection)."""
    out = [HEADER]
    for name in sorted(entries, key=lambda n: n.encode("utf-8", "surrogateescape")):
        ident, peeled = entries[name]
        out.append(ident + b" " + name.encode("utf-8", "surrogateescape") + b"\n")
        if peeled is not None:
            out.append(b"^" + peeled + b"\n")
    return b"".join(out)


# what :func:`split` gives: the scratch's files but the fork's own (ref name -> bytes), the
# packed lines (ref name -> id and newline), the packed-refs file, the fork's own packed line
Shown = tuple[dict[str, bytes], dict[str, bytes], bytes, "bytes | None"]


def split(vault_path: str, fork_ref: str, loose: Mapping[str, bytes]) -> Shown:
    """The vault's branches as the sandbox gets them: ``loose`` (the vault's loose branch
    files, the fork's own left out) with the vault's own packed refs into one packed-refs,
    but a loose file no packed line can hold, which stays a file of the scratch."""
    entries = read_vault(vault_path)
    files: dict[str, bytes] = {}
    for name, data in loose.items():
        ident = packable(name, data)
        if ident is not None:
            entries[name] = (ident, None)
        else:
            entries.pop(name, None)  # a loose ref hides a packed one of its name
            files[name] = data
    own = entries.pop(fork_ref, None)
    packed = {name: ident + b"\n" for name, (ident, _peeled) in entries.items()}
    return files, packed, render(entries), own[0] + b"\n" if own is not None else None


def fresh(path: str, data: bytes) -> tuple[int, int, int, int]:
    """Make ``path`` (the sandbox's ``packed-refs``, which the last command could replace by
    anything: a directory, a hard link to another of its files) a regular file of avfs's
    own holding ``data``, and return its ``lstat`` (ino, size, mtime, ctime) as written. The
    file is kept when it already is one holding ``data``, with no other link to it."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    same = st is not None and stat.S_ISREG(st.st_mode) and st.st_nlink == 1 and st.st_size == len(data)
    if st is not None and same and read_file(path, len(data)) == data:
        return _key(st)
    if st is not None:
        if stat.S_ISDIR(st.st_mode):
            deeptree.rmtree(path, ignore_errors=True)
        else:
            os.unlink(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        return _key(os.fstat(fd))
    finally:
        os.close(fd)


def stat_key(path: str) -> tuple[int, int, int, int] | None:
    """``path``'s ``lstat`` as :func:`fresh` returns it (None: nothing there). A command
    can set a file's mtime but not its ctime, which any write moves."""
    try:
        return _key(os.lstat(path))
    except OSError:
        return None


def _key(st: os.stat_result) -> tuple[int, int, int, int]:
    return st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def read_back(
    vault_path: str,
    top: str,
    shown: bytes,
    shown_stat: tuple[int, int, int, int] | None,
    packed: Mapping[str, bytes],
) -> tuple[set[str], dict[str, bytes]] | None:
    """The sandbox's packed-refs in ``top`` as the command left it: None when its ``lstat``
    or its bytes are as avfs wrote them (``shown_stat``, ``shown``: nothing changed, and
    nothing but an ``lstat`` was spent), else the names of the refs whose line changed
    (``packed``: name -> id and newline, before) and its lines (untrusted: parsed, only ever
    reported). A line for a ref the vault holds as a loose file of a directory shown
    read-only (``refs/avfs``: git reads the file first, and ``git pack-refs`` copies it
    into a line it cannot then delete the file of) changed nothing git sees; the branches'
    and tags' lines are the sandbox's only copy of them (its scratch holds no file of
    theirs), and their changes count."""
    path = os.path.join(top, NAME)
    if stat_key(path) == shown_stat:
        return None
    data = read_file(path, min(MAX_PACKED, 2 * len(shown) + MAX_GROWTH))
    if data == shown:
        return None
    after = {name: ident + b"\n" for name, (ident, _peeled) in parse(data or b"").items()}
    moved = {n for n in set(packed) | set(after) if packed.get(n) != after.get(n)}
    return {n for n in moved if n.startswith((refs.HEADS, refs.TAGS)) or not _loose_in(vault_path, n)}, after


def _loose_in(vault_path: str, name: str) -> bool:
    return ".." not in name.split("/") and os.path.lexists(os.path.join(vault_path, name))


# top directory -> the (mtime, ctime) of it and of the vault's top when last tidied: a run
# that made or removed nothing there (the common one) moved neither, and is not listed
_tidied: dict[str, tuple[int, ...]] = {}
RACY_NS = 50_000_000  # a directory changed this recently may change again within its tick


def _dir_key(*paths: str) -> tuple[int, ...] | None:
    out: list[int] = []
    for p in paths:
        try:
            st = os.lstat(p)
        except OSError:
            return None
        if time.time_ns() - st.st_ctime_ns < RACY_NS:
            return None  # within a timestamp tick of now: a change may not show (sealcache's rule)
        out += (st.st_ino, st.st_mtime_ns, st.st_ctime_ns)
    return tuple(out)


def tidy_top(top: str, vault_path: str) -> None:
    """Leave in ``top`` (the vault's top directory as the sandbox shows it) only avfs's
    packed-refs and the points the sandbox's binds of the vault's entries are made on (each
    of its entry's kind): what the last command made there (a lock, a file, a directory
    where the vault now has a file, on which the next bind could not be made) goes. Not
    listed again while neither directory's ``lstat`` moved (a ctime no process can set)."""
    key = _dir_key(top, vault_path)
    if key is not None and _tidied.get(top) == key:
        return
    _tidied.pop(top, None)
    try:
        with os.scandir(vault_path) as it:
            kinds = {e.name: _kind(e) for e in it}
        with os.scandir(top) as it:
            for e in it:
                if e.name != NAME and kinds.get(e.name) != _kind(e):
                    if e.is_dir(follow_symlinks=False):
                        deeptree.rmtree(e.path, ignore_errors=True)
                    else:
                        os.unlink(e.path)
    except OSError:
        return
    key = _dir_key(top, vault_path)
    if key is not None:
        _tidied[top] = key


def _kind(e: os.DirEntry[str]) -> str:
    """A directory entry's kind as a bind point: a directory, a file, a link (with its
    target: bwrap makes the vault's own links again)."""
    if e.is_symlink():
        try:
            return "link:" + os.readlink(e.path)
        except OSError:
            return "link"
    return (
        "dir" if e.is_dir(follow_symlinks=False) else "file" if e.is_file(follow_symlinks=False) else "other"
    )


def ensure_vault_file(vault_path: str) -> None:
    """A ``packed-refs`` in the vault for the sandbox's bind to cover (an empty one, which git
    and libgit2 read as no packed refs, where the vault has none yet); never replaces one."""
    path = os.path.join(vault_path, NAME)
    if os.path.lexists(path):
        return
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except FileExistsError:
        return
    os.close(fd)
