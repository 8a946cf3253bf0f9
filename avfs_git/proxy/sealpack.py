"""The other forks' branches as the sandbox's git sees them: one read-only ``packed-refs``.

A confined command's git needs every branch of the vault (``git log other``, ``git merge
other``), but may move only its own fork's (:mod:`.seal`). Copied as loose files into the
sandbox's writable scratch ``refs/heads``, each branch was a file the command could rewrite
in place, so after every run every one of them had to be looked at again, and before the
next, the scratch walked once more to put them back: three walks of every branch per call,
O(forks). Here the scratch holds only the fork's own branch (and any loose head git cannot
pack: a symbolic ref, junk), and the other branches, with the vault's own ``packed-refs``
entries, are written by avfs into one file, ``<seal dir>/packed-refs``, which the sandbox
shows read-only in place of the vault's ``packed-refs`` (a bind: the command, without
``CAP_SYS_ADMIN``, can neither write nor unmount it). git and libgit2 read a loose ref
before a packed one, so what the command writes to a branch in its scratch still shows
(and is reported, never applied); deleting another fork's branch, which would rewrite
``packed-refs``, fails in there as it did when the vault's own was read-only. After the
run only the scratch's own few files are read: O(what the command wrote).

The snapshot is rewritten only when it would differ, and in place (same inode): a sandbox
made ready before its command (:mod:`.standby`) holds a bind of this very file.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING

from ..core.store import refs
from ..core.workspace.untrusted import read_file

if TYPE_CHECKING:
    from collections.abc import Mapping

NAME = "packed-refs"
HEADER = b"# pack-refs with: sorted \n"
MAX_PACKED = 256 << 20  # a vault's packed-refs larger than this is not one avfs shows
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


def write(path: str, data: bytes) -> None:
    """Make the regular file ``path`` (avfs's, never a link) hold ``data``, in place (its
    inode kept: a ready sandbox binds it), writing only when it differs."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        size = os.fstat(fd).st_size
        if size == len(data) and os.pread(fd, size + 1, 0) == data:
            return
        os.pwrite(fd, data, 0)
        os.ftruncate(fd, len(data))
    finally:
        os.close(fd)
