"""git's untracked cache (the index's ``UNTR`` extension) for the index avfs writes for a
mount, so the first ``git status`` there lists no directory.

With ``core.untrackedCache`` and an fsmonitor, git trusts a directory of the untracked cache
that the hook did not name and never opens it; without the extension, the first status
after mounting (or after avfs rewrote the index) opens every directory of the tree, and in
an overlay mount each is a cold listing of the lower layer in Python (100k files: ~3 s).

The extension is git's own work, never written by hand: git runs ``status`` once on a
*skeleton* of the base tree (its directories and ``.gitignore`` files, no other file) with
the index avfs wrote and an fsmonitor that reports nothing, so it trusts every entry and
lists only those empty directories; the ``UNTR`` extension of the index it writes then
says, for each directory of the tree, "no untracked file here" -- true of the mount for
every directory the hook does not name, and the hook names every path the mount holds
over the base (core/workspace/upperwatch.py, mount/journalhook.py), which invalidates those
directories. The extension names the worktree it was made for (``Location <path>,
system <sysname>``): that string is rewritten to the mount's. Anything unexpected: no
extension (git then lists every directory, as before).
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import tempfile
import threading
from typing import TYPE_CHECKING

from ..core.errors import InternalError
from ..core.store.gitrun import git_env, run
from .hookscripts import shell_word

if TYPE_CHECKING:
    from ..core.store.gitstore import GitStore

_SKELETON_TOKEN = "avfs-skeleton"
# the index extensions git writes (gitformat-index): what may follow UNTR
_GIT_EXTENSIONS = {b"TREE", b"REUC", b"link", b"UNTR", b"FSMN", b"EOIE", b"IEOT", b"sdir"}


def _varint(value: int) -> bytes:
    """git's varint (varint.c: big-endian base-128, each continuation adding one)."""
    out = [value & 127]
    value >>= 7
    while value:
        value -= 1
        out.append(128 | (value & 127))
        value >>= 7
    return bytes(reversed(out))


def _read_varint(data: bytes, at: int) -> tuple[int, int]:
    c = data[at]
    at += 1
    value = c & 127
    while c & 128:
        value += 1
        c = data[at]
        at += 1
        value = (value << 7) + (c & 127)
    return value, at


def extension(
    store: GitStore,
    skeleton: list[tuple[str, str | None]],
    index: bytes,
    worktree: str,
    git_dir: str,
    gitignores: dict[str, bytes | None] | None = None,
    *,
    scratch: str | None = None,
) -> bytes | None:
    """The ``UNTR`` extension (signature, size and data) for ``index`` (an index with an
    ``FSMN`` extension last, as :func:`.index.index_bytes` writes it) used in
    ``worktree`` (the mount point); ``skeleton``: the index's tree's directories
    ``(path, None)`` and ``.gitignore`` files ``(path, blob id)``, parents first;
    ``gitignores``: the ``.gitignore`` files the worktree shows where they differ from
    those (None: none). None when git did not make one. git's scratch tree is made in
    memory (:func:`_scratch_parent`), else in ``scratch`` (the mount's own directory:
    never ``git_dir``, where a confined command could swap what is written there for
    symlinks while it is written), else in the system's temp directory."""
    tmp = tempfile.mkdtemp(prefix="avfs-untracked-", dir=_scratch_parent(scratch))
    try:
        root = os.path.join(tmp, "tree")
        os.mkdir(root)
        shown = dict(gitignores or {})
        # a lazy vault: the .gitignore files it lacks, in one fetch (nothing in a whole one);
        # their sizes asked first where a mount asks its tree's meanwhile (fuse/settle.py),
        # so that the fetch goes over the kept connection, not through `git fetch`
        ignores = [oid for path, oid in skeleton if oid is not None and path not in shown]
        if store.promisor.pending():
            store.promisor.learn_sizes(o for o in ignores if not store.is_local(o))
        store.prefetch(ignores)
        for path, oid in skeleton:
            real = os.path.join(root, path)
            if oid is None:
                os.mkdir(real)
            elif path not in shown:
                with open(real, "wb") as fh:
                    fh.write(store.blob_data(oid))
        for path, content in shown.items():
            if content is not None and os.path.isdir(os.path.join(root, os.path.dirname(path))):
                with open(os.path.join(root, path), "wb") as fh:
                    fh.write(content)
        hook = os.path.join(tmp, "hook")
        with open(hook, "w", encoding="utf-8") as fh:
            fh.write(f"#!/bin/sh\nprintf '{_SKELETON_TOKEN}\\0'\n")
        os.chmod(hook, 0o755)
        idx = os.path.join(tmp, "index")
        with open(idx, "wb") as fh:
            fh.write(_with_token(index, _SKELETON_TOKEN))
        env = git_env()
        env.update(GIT_DIR=git_dir, GIT_WORK_TREE=root, GIT_INDEX_FILE=idx)
        args = [
            "-c", f"core.fsmonitor={shell_word(hook)}", "-c", "core.fsmonitorHookVersion=2",
            "-c", "core.untrackedCache=true", "-c", "status.showUntrackedFiles=normal",
            "status", "--porcelain",
        ]  # fmt: skip
        proc = run(args, cwd=root, env=env, check=False)
        new = {f"?? {p}".encode("utf-8", "surrogateescape") for p, c in shown.items() if c is not None}
        if proc.returncode != 0 or not set(proc.stdout.splitlines()) <= new:
            return None  # the skeleton showed something else: not the tree it should be
        with open(idx, "rb") as fh:
            made = fh.read()
        ext = _find(made, b"UNTR")
        if ext is None:
            return None
        return _relocated(ext, os.path.realpath(root), os.path.realpath(worktree))
    except (OSError, ValueError, IndexError, struct.error, InternalError):  # (InternalError: no git)
        return None
    finally:
        _remove_aside(tmp)


def _remove_aside(tmp: str) -> None:
    """Remove the scratch tree ``tmp`` off the caller's path (a mount waits on this before
    it is ready; 500 directories took 0.5-1 s to remove here) and off this process's
    interpreter: a child ``rm -rf`` (its own process: a Python ``rmtree`` of a 7,500
    directories' skeleton on a thread held the daemon's interpreter while the first
    ``git status`` in a lazy mount ran), reaped by a thread the process waits for at exit
    (``wait`` holds no lock). Without ``rm``, the thread removes it itself."""

    def remove() -> None:
        try:
            subprocess.run(["rm", "-rf", "--", tmp], check=False, capture_output=True)
        except OSError:
            pass
        if os.path.lexists(tmp):
            shutil.rmtree(tmp, ignore_errors=True)

    threading.Thread(target=remove, name="avfs-untracked-rm").start()


SHM = "/dev/shm"  # a memory file system on Linux: a mkdir there costs ~20 us, on disk here 130-500 us
SHM_FREE_MIN = 64 << 20  # the skeleton is directories and .gitignore files: far less than this


def _scratch_parent(scratch: str | None) -> str | None:
    """Where git's scratch tree is made: a private directory (``mkdtemp``: mode 0700, this
    user's) in :data:`SHM` (Linux's memory file system) when it is there with room, else in
    ``scratch``.
    The skeleton is a directory per directory of the tree, made and removed for every index
    written whole: 7,500 of them for a 20,000-file tree took 1.6 s on this machine's disk
    against 0.15 s in memory, and the first `git status` in a lazy mount waits for them
    (fuse/settle.py). Neither place is one a confined command can write: the sandbox has a
    private ``/dev`` (proxy/confine.py, proxy/isolate.py) and never the mount's own
    directory."""
    try:
        st = os.statvfs(SHM)
    except OSError:
        return scratch
    if st.f_bavail * st.f_frsize < SHM_FREE_MIN or not os.access(SHM, os.W_OK | os.X_OK):
        return scratch
    return SHM


def _extensions(index: bytes) -> list[tuple[int, bytes, bytes]]:
    """(offset, signature, data) of each extension of a version 2 index."""
    count = struct.unpack(">I", index[8:12])[0]
    off = 12
    for _ in range(count):
        flags = struct.unpack(">H", index[off + 60 : off + 62])[0]
        n = flags & 0xFFF
        if n == 0xFFF:
            n = index.index(b"\0", off + 62) - off - 62
        off += (62 + n + 8) & ~7
    out = []
    end = len(index) - 20
    while off + 8 <= end:
        sig = index[off : off + 4]
        size = struct.unpack(">I", index[off + 4 : off + 8])[0]
        out.append((off, sig, index[off + 8 : off + 8 + size]))
        off += 8 + size
    return out


def _chain(index: bytes, off: int) -> list[tuple[bytes, bytes]] | None:
    """The extensions (signature, data) from ``off`` on, when they end exactly where the
    index's SHA-1 starts."""
    out = []
    end = len(index) - 20
    while off < end:
        if off + 8 > end:
            return None
        size = struct.unpack(">I", index[off + 4 : off + 8])[0]
        out.append((index[off : off + 4], index[off + 8 : off + 8 + size]))
        off += 8 + size
    return out if off == end else None


def _find(index: bytes, sig: bytes) -> bytes | None:
    """The data of extension ``sig`` of ``index``. git writes the extensions after the
    entries, so a search from the end finds it (checked: from there on the extensions end
    where the index does); should a path hold those bytes, the entries are read."""
    at = index.rfind(sig)
    if at >= 0:
        chain = _chain(index, at)
        if chain is not None and all(s in _GIT_EXTENSIONS for s, _ in chain):
            return chain[0][1]
    for _off, s, data in _extensions(index):
        if s == sig:
            return data
    return None


def _with_token(index: bytes, token: str) -> bytes:
    """``index`` (its ``FSMN`` extension last, as index_bytes writes it) with that
    extension's token replaced."""
    import hashlib

    at = index.rfind(b"FSMN")
    chain = _chain(index, at) if at >= 0 else None
    if chain is None or len(chain) != 1:
        raise ValueError("no FSMN extension at the end of the index")
    data = chain[0][1]
    rest = data[4:]
    rest = rest[rest.index(b"\0") + 1 :]
    data = data[:4] + token.encode() + b"\0" + rest
    body = index[:at] + b"FSMN" + struct.pack(">I", len(data)) + data
    return body + hashlib.sha1(body).digest()


def _relocated(data: bytes, made_in: str, worktree: str) -> bytes | None:
    """The ``UNTR`` extension ``data`` made in worktree ``made_in``, for ``worktree``."""
    size, at = _read_varint(data, 0)
    idents = data[at : at + size].split(b"\0")[:-1]
    old = f"Location {made_in}, ".encode()
    new = []
    for ident in idents:
        if not ident.startswith(old):
            return None
        new.append(f"Location {worktree}, ".encode() + ident[len(old) :] + b"\0")
    ident = b"".join(new)
    out = _varint(len(ident)) + ident + data[at + size :]
    return b"UNTR" + struct.pack(">I", len(out)) + out


def relocated(ext: bytes, worktree: str) -> bytes | None:
    """``ext`` (an ``UNTR`` extension: signature, size, data, made for any worktree) for
    ``worktree``: each ``Location <path>, system <sysname>`` says ``worktree``; None when
    it is not one this can read (mount/keptindex.py: an extension kept for a base)."""
    if ext[:4] != b"UNTR" or len(ext) < 8 or int.from_bytes(ext[4:8], "big") != len(ext) - 8:
        return None
    data = ext[8:]
    try:
        size, at = _read_varint(data, 0)
    except IndexError:
        return None
    if at + size > len(data):
        return None
    idents = data[at : at + size].split(b"\0")[:-1]
    if not idents or any(not i.startswith(b"Location ") or b", system " not in i for i in idents):
        return None
    made_in = idents[0][len(b"Location ") : idents[0].rindex(b", system ")]
    return _relocated(data, made_in.decode("utf-8", "surrogateescape"), worktree)


def with_extension(index: bytes, ext: bytes) -> bytes:
    """``index`` (ending in its SHA-1) with ``ext`` (signature, size, data) added."""
    import hashlib

    body = index[:-20] + ext
    return body + hashlib.sha1(body).digest()
