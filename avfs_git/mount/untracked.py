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

**Where the fork shows the base's ``.gitignore`` files** (every fresh mount: nothing in its
upper layer or overlay), git's answer on that skeleton is known without running it on the
skeleton (:func:`_from_tree`): every directory of the tree holds no untracked file, so its
record is the directory's name, no untracked names, its subdirectories in ``strcmp`` order,
"valid", and the id of its ``.gitignore`` where git read it (a directory holding
subdirectories: git matches each against the rules); only the
extension's head (``info/exclude``'s and ``core.excludesFile``'s ids and stat data, the
flags of this kind of status) depends on more than the tree, and git still writes it, from
a status on an empty tree (no skeleton: ~7,500 directories made, listed by git and removed
for a 20,538-file tree, 0.4-0.8 s of wall time at load 5 on the way to a lazy mount's first
`git status`). The directories' stat data are left 0 (the skeleton's were of scratch
directories, which match the mount's no better): git looks at them only without an
fsmonitor, and then, finding them changed, lists those directories itself. The one case in
which git's own record differs: a tracked directory an ignore rule matches, which git does
not enter (it has no record), where this one holds it as valid and empty: git reads the
same answer from it (nothing untracked there), and, once a change there invalidates it,
lists it and excludes what it finds by the rule that matched the directory
(``tests/test_untracked_tree.py`` holds both to git's on real projects).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import subprocess
import tempfile
import threading
from typing import TYPE_CHECKING

from ..core.errors import InternalError, UsageError
from ..core.settings import DEFAULT_IGNORE_WAIT_S, ignore_wait_s
from ..core.store.gitrun import git_env, run, spawn
from ..core.store.refs import UNBORN
from ..core.vaults.registry import resolved_mountpoint  # (no stat of a mount point: a request to it)
from ..core.workspace.ignore import MAX_PATTERN_FILE
from .ewah import Ewah
from .hookscripts import shell_word
from .ownfiles import read_bytes, read_text

if TYPE_CHECKING:
    from collections.abc import Container

    from ..core.store.gitstore import GitStore
    from .ownfiles import MountedFork

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


_SMALL_VARINTS = [bytes((n,)) for n in range(128)]  # git's varint of a number below 128: that byte


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
    fetched: bool = False,
    head_ahead: HeadAhead | None = None,
) -> bytes | None:
    """The ``UNTR`` extension (signature, size and data) for ``index`` (an index with an
    ``FSMN`` extension last, as :func:`.index.index_bytes` writes it) used in
    ``worktree`` (the mount point); ``skeleton``: the index's tree's directories
    ``(path, None)`` and ``.gitignore`` files ``(path, blob id)``, parents first;
    ``gitignores``: the ``.gitignore`` files the worktree shows where they differ from
    those (None: none). None when git did not make one. Without ``gitignores``, made from
    the tree (:func:`_from_tree`), else by git on a skeleton of it (:func:`on_skeleton`).
    git's scratch tree is made in memory (:func:`scratch_parent`), else in ``scratch``
    (the mount's own directory: never ``git_dir``, where a confined command could swap
    what is written there for symlinks while it is written), else in the system's temp
    directory. ``fetched``: the caller fetches the tree's ``.gitignore`` files
    (:func:`fetch_gitignores`) before git may run in ``worktree``, which is all this would
    fetch them for without ``gitignores``. ``head_ahead``: the head of the extension git
    was set to make before (:class:`HeadAhead`; let go of where it is not needed)."""
    if gitignores or not fetched:
        fetch_gitignores(store, skeleton, gitignores)
    if not gitignores:
        return _from_tree(
            skeleton, worktree, git_dir, scratch=scratch, head_ahead=head_ahead, vault_path=store.path
        )
    if head_ahead is not None:
        head_ahead.drop()
    return on_skeleton(store, skeleton, index, worktree, git_dir, gitignores, scratch=scratch)


def gitignores_shown(ws: MountedFork, dirs: Container[str]) -> dict[str, bytes | None]:
    """The ``.gitignore`` files the fork shows now where they may differ from the base's
    (in the upper layer or the overlay's entries), by path (None: none there); ``dirs``:
    the base tree's directories. git checks
    each directory's ``.gitignore`` against the one the untracked cache was made with: a
    wrong guess here costs a rescan, never a wrong answer; a missed one made the first
    status after mounting list every directory (a new top-level ``.gitignore``)."""
    found = upper_gitignores(ws.overlay.upper_dir, dirs)
    rows = ws.overlay.db.execute(
        "SELECT path FROM entries WHERE path = '.gitignore' OR path LIKE '%/.gitignore'"
    )
    found.update(str(r[0]) for r in rows)
    out: dict[str, bytes | None] = {}
    for path in found:
        try:
            # (one past newer git's bound is empty to it, and never read: a guess, as above)
            big = ws.stat(path).size >= MAX_PATTERN_FILE
            out[path] = b"" if big else ws.read(path)
        except Exception:  # removed, a directory, unreadable: git reads what is there
            out[path] = None
    return out


def upper_gitignores(upper: str, dirs: Container[str]) -> set[str]:
    """The ``.gitignore`` entries the upper layer ``upper`` holds in the root or one of the
    base tree's directories ``dirs``: a walk of the upper layer kept to those directories
    (a fresh mount's upper layer is nearly empty: a ``stat`` per base directory, 7,516 on
    the monorepo, cost the first `git status` in a lazy mount 0.025 s)."""
    found: set[str] = set()
    todo = [""]
    while todo:
        d = todo.pop()
        try:
            with os.scandir(os.path.join(upper, d)) as it:
                for e in it:
                    path = f"{d}/{e.name}" if d else e.name
                    if e.name == ".gitignore":
                        found.add(path)
                    elif path in dirs and e.is_dir(follow_symlinks=False):
                        todo.append(path)
        except (FileNotFoundError, NotADirectoryError):
            continue
    return found


def fetch_gitignores(
    store: GitStore, skeleton: list[tuple[str, str | None]], gitignores: dict[str, bytes | None] | None = None
) -> None:
    """A lazy vault's ``.gitignore`` files of ``skeleton`` (:func:`extension`'s; but those
    ``gitignores`` holds) that it lacks, in one fetch (nothing in a whole one): git reads
    each of them in its first status (its untracked cache names their ids, and git checks
    them). Their sizes are asked first where a mount asks its tree's meanwhile
    (fuse/settle.py), so that the fetch goes over the kept connection, not through `git
    fetch`."""
    ignores = [oid for path, oid in skeleton if oid is not None and path not in (gitignores or {})]
    if store.promisor.pending():
        store.promisor.learn_sizes(o for o in ignores if not store.is_local(o))
    store.prefetch(ignores)


def on_skeleton(
    store: GitStore,
    skeleton: list[tuple[str, str | None]],
    index: bytes,
    worktree: str,
    git_dir: str,
    gitignores: dict[str, bytes | None] | None = None,
    *,
    scratch: str | None = None,
) -> bytes | None:
    """:func:`extension` made by git's ``status`` on a skeleton of the tree (its
    directories and ``.gitignore`` files, ``gitignores`` in place of the tree's); the
    ``.gitignore`` files are read from the store (fetched already: :func:`extension`)."""
    tmp = tempfile.mkdtemp(prefix="avfs-untracked-", dir=scratch_parent(scratch))
    try:
        root = os.path.join(tmp, "tree")
        os.mkdir(root)
        shown = dict(gitignores or {})
        for path, oid in skeleton:
            real = os.path.join(root, path)
            if oid is None:
                os.mkdir(real)
            elif path not in shown:
                with open(real, "wb") as fh:
                    if store.blob_size(oid) < MAX_PATTERN_FILE:  # (else empty, as newer git reads it)
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
        try:  # (bounded: git's matcher can take hours over a `.gitignore` line, ignore.py)
            proc = run(args, cwd=root, env=env, check=False, timeout=_wait())
        except subprocess.TimeoutExpired:
            return None  # no extension: git lists every directory itself, as before
        new = {f"?? {p}".encode("utf-8", "surrogateescape") for p, c in shown.items() if c is not None}
        if proc.returncode != 0 or not set(proc.stdout.splitlines()) <= new:
            return None  # the skeleton showed something else: not the tree it should be
        with open(idx, "rb") as fh:
            made = fh.read()
        ext = _find(made, b"UNTR")
        if ext is None:
            return None
        return _relocated(ext, os.path.realpath(root), resolved_mountpoint(worktree))
    except (OSError, ValueError, IndexError, struct.error, InternalError):  # (InternalError: no git)
        return None
    finally:
        _remove_aside(tmp)


def _wait() -> float:
    """How long git's ``status`` may take here: as a ``check-ignore`` (ignore.py)."""
    try:
        return ignore_wait_s()
    except UsageError:  # (said by every status and checkpoint: not the mount's to refuse)
        return DEFAULT_IGNORE_WAIT_S


def _from_tree(
    skeleton: list[tuple[str, str | None]],
    worktree: str,
    git_dir: str,
    *,
    scratch: str | None = None,
    head_ahead: HeadAhead | None = None,
    vault_path: str | None = None,
) -> bytes | None:
    """:func:`extension` for a worktree that shows the tree's ``.gitignore`` files, made from
    the tree (the module's docstring): its head (up to the directories' count) is git's,
    from a ``status`` on an empty tree with the same settings as :func:`on_skeleton`'s
    (``head_ahead``'s, started before, when given); each directory's record follows it as
    git writes them (dir.c ``write_one_dir``, ``write_untracked_extension``)."""
    head = head_ahead.made() if head_ahead is not None else _head(git_dir, scratch, vault_path)
    if head is None:
        return None
    data, made_in = head
    # each directory's subdirectories: (name as git compares it, path)
    subdirs: dict[str, list[tuple[bytes, str]]] = {"": []}
    ignore: dict[str, bytes] = {}
    for path, ignore_oid in skeleton:
        parent, _, name = path.rpartition("/")
        if ignore_oid is None:
            kids = subdirs.get(parent)
            if kids is None:
                return None  # (not parents first: not a skeleton this reads)
            kids.append((name.encode("utf-8", "surrogateescape"), path))
            subdirs[path] = []
        else:
            ignore[parent] = bytes.fromhex(ignore_oid)
    out: list[bytes] = []
    add = out.append
    sha1_valid = Ewah()
    oids: list[bytes] = []
    count = 0
    small = _SMALL_VARINTS
    todo: list[tuple[bytes, str]] = [(b"", "")]  # depth first, each directory's in strcmp order
    while todo:
        raw, path = todo.pop()
        kids = subdirs[path]
        kids.sort()  # (by name: a directory's names differ)
        n = len(kids)
        add(
            b"\0" + (small[n] if n < 128 else _varint(n)) + raw + b"\0"
        )  # no untracked name; its subdirectories
        # git records a directory's .gitignore as it reads it, and reads it on its way to a
        # path in it that it must match against ignore rules: in a tree with nothing
        # untracked, a subdirectory (dir.c ``prep_exclude``); so not a leaf's
        if n:
            oid = ignore.get(path)
            if oid is not None:
                sha1_valid.set(count)
                oids.append(oid)
            todo.extend(reversed(kids))
        count += 1
    valid, check_only = Ewah.ones(count), Ewah()
    body = (
        data
        + _varint(count)
        + b"".join(out)
        + valid.serialized()
        + check_only.serialized()
        + sha1_valid.serialized()
        + bytes(_STAT_DATA * count)  # (left 0: the module's docstring)
        + b"".join(oids)
        + b"\0"
    )
    return _relocated(body, made_in, resolved_mountpoint(worktree))


_STAT_DATA = 36  # git's on-disk stat data: ctime and mtime (seconds, nanoseconds), dev, ino, uid, gid, size


def _head(git_dir: str, scratch: str | None, vault_path: str | None = None) -> tuple[bytes, str] | None:
    """(the head of the ``UNTR`` extension git writes for a ``status`` of ``git_dir``'s
    repository on an empty tree, up to the directories' count; the tree's path, which its
    ``Location`` names), or None when git wrote none this can read.

    git runs with an empty index and a ``HEAD`` of its own on a branch that cannot exist
    (``.`` may not start a ref's name), so it compares nothing with a commit; everything
    else it reads is ``git_dir``'s: its common directory (``info/exclude``, the config)
    and its own config (``config.worktree``)."""
    return HeadAhead(git_dir, scratch, vault_path).made()


class HeadAhead:
    """:func:`_head`'s ``git status`` started now and read later (:meth:`made`): a lazy
    fork's mount starts it once it is announced, beside git's ``read-tree`` of its tree
    (mount/readtree.py ``Ahead``), so the first `git status`, waiting for the index at the
    gate, does not wait for this process too (fuse/settle.py). What it reads is the
    worktree's config and its common directory's ``info/exclude`` as they are when it
    starts; one changed before the index is written is git's to notice: it checks their
    ids and stat data against the head and, where they differ, lists the directories again
    (a cost, never a wrong answer)."""

    def __init__(self, git_dir: str, scratch: str | None, vault_path: str | None = None) -> None:
        """``vault_path``: the vault's (the caller's own, never read from ``git_dir``): the
        head git wrote for the same files is taken from there (mount/untrackedkept.py)."""
        from . import untrackedkept

        self._proc: subprocess.Popen[bytes] | None = None
        self._tmp = ""
        self._vault = vault_path
        self._key = None if vault_path is None else untrackedkept.key(git_dir, vault_path)
        self._kept = (
            None if vault_path is None or self._key is None else untrackedkept.kept(vault_path, self._key)
        )
        if self._kept is not None:
            return
        self._tmp = tempfile.mkdtemp(prefix="avfs-untracked-", dir=scratch_parent(scratch))
        try:
            self._start(git_dir)
        except (OSError, InternalError):  # (InternalError: no git)
            self.drop()

    def _start(self, git_dir: str) -> None:
        tmp = self._tmp
        root, own = os.path.join(tmp, "tree"), os.path.join(tmp, "git")
        os.mkdir(root)
        os.mkdir(own)
        with open(os.path.join(own, "HEAD"), "w", encoding="utf-8") as fh:
            fh.write(f"ref: {UNBORN}\n")
        # git_dir's own files, which git read itself when it ran there: read as untrusted
        # (a confined command may write a mount's git dir), never through a link
        config = read_bytes(os.path.join(git_dir, "config.worktree"))
        if config is not None:
            with open(os.path.join(own, "config.worktree"), "wb") as fh:
                fh.write(config)
        common_file = read_text(os.path.join(git_dir, "commondir"))
        common = (
            git_dir if common_file is None else os.path.normpath(os.path.join(git_dir, common_file.strip()))
        )
        idx = os.path.join(tmp, "index")
        with open(idx, "wb") as fh:
            empty = b"DIRC" + struct.pack(">II", 2, 0)
            fh.write(empty + hashlib.sha1(empty).digest())
        env = git_env()
        env.update(GIT_DIR=own, GIT_COMMON_DIR=common, GIT_WORK_TREE=root, GIT_INDEX_FILE=idx)
        args = [
            "-c", "core.fsmonitor=false", "-c", "core.untrackedCache=true",
            "-c", "status.showUntrackedFiles=normal", "status", "--porcelain",
        ]  # fmt: skip
        self._proc = spawn(
            args,
            cwd=root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )

    def made(self) -> tuple[bytes, str] | None:
        """:func:`_head`'s answer (git waited for, or kept), or None; the scratch tree removed."""
        if self._kept is not None:
            return self._kept
        proc, self._proc = self._proc, None
        tmp = self._tmp
        try:
            if proc is None:
                return None
            try:
                out, _ = proc.communicate(timeout=_wait())
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
                return None
            if proc.returncode != 0 or out:
                return None
            with open(os.path.join(tmp, "index"), "rb") as fh:
                ext = _find(fh.read(), b"UNTR")
            if ext is None:
                return None
            size, at = _read_varint(ext, 0)
            at += size + 2 * _STAT_DATA + 4 + 2 * 20  # the ident, two stat data, the flags, two ids
            at = ext.index(b"\0", at) + 1  # the per-directory file's name (".gitignore")
            if _read_varint(ext, at)[0] != 1:  # (the root alone)
                return None
            made = ext[:at], os.path.realpath(os.path.join(tmp, "tree"))
            if self._vault is not None and self._key is not None:
                from . import untrackedkept

                untrackedkept.keep(self._vault, self._key, *made)
            return made
        except (OSError, ValueError, IndexError):
            return None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def drop(self) -> None:
        """Let it go unread (git stopped if it still runs), its scratch tree removed."""
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)


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


def scratch_parent(scratch: str | None) -> str | None:
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
