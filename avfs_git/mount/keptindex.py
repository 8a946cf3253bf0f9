"""A lazy vault's settled git index kept per base tree, so that a mount of that base
patches it instead of making it (docs/lazy.md, "The index kept per base").

A mount's index (mount/index.py ``sync_index``) is the base tree's entries with the stat
data the mount reports, git's cache tree, the fsmonitor token and git's untracked cache.
Making it in a lazy vault is the tree's listing (``git ls-tree``), every blob's size (a
request to the server), the entries, and git's ``status`` on a skeleton of the tree for the
untracked cache: 0.3-0.5 s at 20,538 files, which the first ``git status`` in the mount
waited for. Of all that, only this depends on the mount rather than on the tree:

- every entry's ctime and mtime (the fork's view time) and uid/gid (the daemon's): 16 and
  8 bytes at fixed offsets of each entry (the inode number is :func:`.heldstat.inode_of` of
  the path, the same in every mount; dev is 0; the size is the blob's);
- the ``FSMN`` extension's token (the fork's journal);
- the ``UNTR`` extension's ``Location`` (the mount point); the rest of it (the directories'
  stat data, 0, which git does not look at under an fsmonitor, the ``.gitignore``
  files' ids, ``info/exclude``'s and ``core.excludesFile``'s stat data, which git checks
  itself and, changed, rescans for) is the tree's.

So the index is kept, in ``<vault>/avfs/kept-index/<tree id>`` (:func:`kept_path`), made
once: by ``vault clone --lazy`` for its default fork's tip (mount/keptmake.py: before it
answers, or by a process started after a served one answers), or by
the first mount of that base that made its index whole (:func:`keep`). A mount patches it
(:func:`patched`): those fields written in place, the two extensions replaced, the SHA-1
recomputed: no listing, no sizes' request, no git, no blob read.

The file is read as untrusted input (bounded, never through a link) and used only when it
checks: git's index version 2, its SHA-1, no unmerged or extended entries, its cache
tree's root the base tree with as many entries as the index holds, its extensions exactly
``TREE``, ``FSMN``, ``UNTR``. Anything else (cut short, corrupt, another tree's) is
ignored and the index is made as before, then kept again. It lives under the vault's
``avfs/`` directory, which no confined command can write (proxy/confine.py masks it), beside
the size cache (``blob-sizes``) that it agrees with; a kept file is never changed, only
replaced whole (a temp file renamed in).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import struct
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..core.vaults.keptindexes import kept_dir, kept_path
from .ownfiles import MAX_INDEX, read_bytes, write_file

if TYPE_CHECKING:
    from ..core.store.gitstore import GitStore

MAKER_WAIT_S = 20.0  # how long :func:`await_maker` waits by default (no mount waits: take_over)
LOCK = ".lock"  # <tree>.lock: held (flock) by the process making that tree's kept index


def load(state_dir: str, tree: str) -> bytes | None:
    """The index kept for ``tree``, when there is one that checks (:func:`check`)."""
    found = _load(state_dir, tree)
    return None if found is None else found[0]


def _load(state_dir: str, tree: str) -> tuple[bytes, list[int], int] | None:
    """(:func:`load`'s index, :func:`check`'s offsets)."""
    if len(tree) != 40 or any(c not in "0123456789abcdef" for c in tree):
        return None
    data = read_bytes(kept_path(state_dir, tree), MAX_INDEX)
    found = None if data is None else check(data, tree)
    return None if data is None or found is None else (data, *found)


def check(data: bytes, tree: str) -> tuple[list[int], int] | None:
    """(every entry's offset, where the extensions start) of index ``data`` when it is one
    a mount of base tree ``tree`` may patch (the module's docstring), else None."""
    if len(data) < 32 or data[:8] != b"DIRC\0\0\0\2":
        return None
    if hashlib.sha1(memoryview(data)[:-20]).digest() != data[-20:]:
        return None
    count = int.from_bytes(data[8:12], "big")
    end = len(data) - 20
    flags_at = struct.Struct(">H").unpack_from
    offs: list[int] = []
    mark = offs.append
    off = 12
    try:
        for _ in range(count):
            (flags,) = flags_at(data, off + 60)
            if flags & 0x7000:  # unmerged (stage bits) or extended (skip-worktree) entries
                return None
            nl = flags & 0xFFF
            if nl == 0xFFF:
                nl = data.index(b"\0", off + 62) - off - 62
            mark(off)
            off += (70 + nl) & ~7
    except (ValueError, struct.error):
        return None
    if off > end:
        return None
    sigs = []
    at = off
    while at + 8 <= end:
        size = int.from_bytes(data[at + 4 : at + 8], "big")
        sigs.append((data[at : at + 4], at))
        at += 8 + size
    if at != end or [s for s, _ in sigs] != [b"TREE", b"FSMN", b"UNTR"]:
        return None
    # the cache tree's root: "\0<entries> <subtrees>\n<tree id>"
    root = data[off + 8 : off + 8 + 64]
    nl = root.find(b"\n")
    if not root.startswith(b"\0") or nl < 0:
        return None
    try:
        entries = int(root[1:nl].split(b" ")[0])
    except ValueError:
        return None
    if entries != count or root[nl + 1 : nl + 21].hex() != tree:
        return None
    return offs, off


def patched(data: bytes, tree: str, t_ns: int, uid: int, gid: int, token: str, worktree: str) -> bytes | None:
    """Kept index ``data`` (of base tree ``tree``) for a mount: every entry's ctime and
    mtime ``t_ns``, uid and gid ``uid``/``gid``, the fsmonitor ``token``, the untracked
    cache's location ``worktree``; None when ``data`` does not check (:func:`check`)."""
    found = check(data, tree)
    if found is None:
        return None
    return _patch(data, *found, t_ns, uid, gid, token, worktree)


def _patch(
    data: bytes, offs: list[int], ext_at: int, t_ns: int, uid: int, gid: int, token: str, worktree: str
) -> bytes | None:
    """:func:`patched` of ``data`` already checked (``offs``, ``ext_at``: :func:`check`'s)."""
    from .untracked import relocated

    out = bytearray(data[:ext_at])
    stamp = struct.pack(">IIII", t_ns // 10**9, t_ns % 10**9, t_ns // 10**9, t_ns % 10**9)
    ids = struct.pack(">II", uid & 0xFFFFFFFF, gid & 0xFFFFFFFF)
    same_ids = not offs or out[offs[0] + 28 : offs[0] + 36] == ids
    for off in offs:
        out[off : off + 16] = stamp
    if not same_ids:
        for off in offs:
            out[off + 28 : off + 36] = ids
    tree_size = int.from_bytes(data[ext_at + 4 : ext_at + 8], "big")
    fsmn_at = ext_at + 8 + tree_size
    untr_at = fsmn_at + 8 + int.from_bytes(data[fsmn_at + 4 : fsmn_at + 8], "big")
    try:
        untr = relocated(data[untr_at:-20], worktree)
    except (UnicodeError, ValueError, IndexError):
        untr = None
    if untr is None:
        return None
    ewah = struct.pack(">II", 0, 1) + struct.pack(">Q", 0) + struct.pack(">I", 0)
    ext = struct.pack(">I", 2) + token.encode() + b"\0" + struct.pack(">I", len(ewah)) + ewah
    out += data[ext_at:fsmn_at]
    out += b"FSMN" + struct.pack(">I", len(ext)) + ext
    out += untr
    out += hashlib.sha1(out).digest()
    return bytes(out)


def keep(state_dir: str, tree: str, data: bytes) -> bool:
    """Keep index ``data`` (a mount's, made whole for base tree ``tree``, with its
    untracked cache) for later mounts of that base, unless one is kept already: written
    to a temp file created ``O_EXCL|O_NOFOLLOW`` and renamed in (over one that does not
    check: cut short, corrupt, another tree's). False when it is not one to keep
    (:func:`check`) or could not be written."""
    if check(data, tree) is None:
        return False
    path = kept_path(state_dir, tree)
    if os.path.lexists(path) and load(state_dir, tree) is not None:
        return True
    try:
        _own_dir(state_dir)
        write_file(os.path.dirname(path), os.path.basename(path), data)
    except OSError:
        return False
    return True


def keep_later(
    state_dir: str, store: GitStore, commit: str, data: bytes, after: Callable[[], object] | None = None
) -> None:
    """:func:`keep` ``data``, the index a mount has just written, made whole for
    ``commit`` with its untracked cache, on a thread of its own (the mount's git goes
    first: a write of ~160 bytes a file, its check ~0.03 s of the interpreter), once
    ``after()`` returned (a mount's: the git commands that waited for the index have
    ended), when the size cache knows every size of its tree (a size the server did not
    say is 0 in it)."""
    import threading

    def later() -> None:
        if after is not None:
            after()
        keep(state_dir, tree, data)

    tree = store.commit_tree(commit)
    if store.promisor.sized(tree):
        threading.Thread(target=later, name="avfs-keep-index", daemon=True).start()


def _own_dir(state_dir: str) -> None:
    """The kept indexes' directory, made when missing, never its parents: a vault deleted
    (moved to the trash) while its maker worked must not come back as debris that a new
    vault of that name would find in its way (FileNotFoundError)."""
    try:
        os.mkdir(kept_dir(state_dir), 0o755)
    except FileExistsError:
        pass


def making(state_dir: str, tree: str) -> int | None:
    """Take the lock that says the kept index of ``tree`` is being made (its descriptor,
    to :func:`made`), or None when another process holds it (or it cannot be made)."""
    try:
        _own_dir(state_dir)
        fd = os.open(
            kept_path(state_dir, tree) + LOCK,
            os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
            0o644,
        )
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        # a maker killed before it let go left its pid here: gone before a mount's
        # take_over could read it (a reused pid stopped), until this maker writes its own
        os.ftruncate(fd, 0)
    except OSError:
        os.close(fd)
        return None
    return fd


def made(state_dir: str, tree: str, fd: int) -> None:
    """Let go of :func:`making`'s lock (the lock file removed first: nobody waits on a
    file no maker holds)."""
    try:
        os.unlink(kept_path(state_dir, tree) + LOCK)
    except OSError:
        pass
    os.close(fd)


def await_maker(state_dir: str, tree: str, wait_s: float = MAKER_WAIT_S) -> bool:
    """Wait (at most ``wait_s``) while a process makes the kept index of ``tree`` (its lock
    held); whether one was. A mount no longer waits here (:func:`take_over`: before, a
    mount made as the clone answered waited for the maker, moving it out of the idle class
    once git asked, and on busy cores the maker had done nothing by then)."""
    path = kept_path(state_dir, tree) + LOCK
    deadline = time.monotonic() + wait_s
    waited = False
    while time.monotonic() < deadline:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return waited  # nobody is making it
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                return waited  # free: its maker is done (or died)
            except OSError:
                waited = True
        finally:
            os.close(fd)
        time.sleep(0.005)
    return waited


def take_over(state_dir: str, tree: str) -> bool:
    """A mount makes its own index of ``tree`` now (a git command waits for it, or the
    mount is quiet) where none is kept: a process still making the kept one (its lock held:
    mount/keptmake.py, in the idle class, which on busy cores has not run) is stopped
    (:func:`stop`) rather than waited for; the mount's own (its sizes asked and git's index
    started as it came up, as where no maker runs) is further on than a maker raised then
    would be in a fresh interpreter, and the mount keeps its index for later mounts.
    Whether one was stopped."""
    path = kept_path(state_dir, tree) + LOCK
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return False  # (nobody holds it)
        except OSError:
            pass
        if not stop(os.pread(fd, 32, 0)):
            return False
        _unlink_same(path, fd)
        return True
    finally:
        os.close(fd)


def _unlink_same(path: str, fd: int) -> None:
    """Remove the lock file ``path`` if it is still the one open as ``fd`` (a stopped maker's:
    the mount's own index and its keeping then find no maker at work)."""
    try:
        if os.stat(path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino:
            os.unlink(path)
    except OSError:
        pass


def boost(pid_text: bytes) -> bool:
    """Move the maker (its pid as written in its lock file: mount/keptmake.py ``spawn``,
    ``start_now``; :func:`stop` does so before it ends it)
    from Linux's idle scheduling class to the normal one, every thread of it and of the
    processes it started (git). Nothing else is touched: only a thread found in the idle
    class. False when one could not be moved: an unprivileged process cannot move its own
    processes out of the idle class (the kernel's ``user_check_sched_setscheduler``: only
    with ``CAP_SYS_NICE`` or an ``RLIMIT_NICE`` of 20 or more, measured: ``EPERM`` for a
    user with the default limit of 0)."""
    try:
        pid = int(pid_text.strip() or b"0")
    except ValueError:
        return True
    todo = [pid] if pid > 1 else []
    seen = 0
    moved = True
    while todo and seen < 64:
        p = todo.pop()
        seen += 1
        try:
            tids = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                if os.sched_getscheduler(int(tid)) == os.SCHED_IDLE:
                    os.sched_setscheduler(int(tid), os.SCHED_OTHER, os.sched_param(0))
            except PermissionError:
                moved = False
            except (OSError, ValueError):
                pass
            try:
                with open(f"/proc/{p}/task/{tid}/children", "rb") as fh:
                    todo.extend(int(c) for c in fh.read().split())
            except (OSError, ValueError):
                continue
    return moved


MAKER_MARK = b"avfs_git.mount.keptmake"  # in a maker's command line (mount/keptmake.py BOOT)


def stop(pid_text: bytes) -> bool:
    """Stop the maker whose pid its lock file holds (``SIGTERM`` to its process group: it is
    a session's leader, its git processes with it), only when that process is a maker
    (its command line names mount/keptmake.py) leading its own group. Whether it was
    signalled. A maker stopped keeps nothing (its index is renamed in whole or not at all:
    :func:`keep`) and lets go of the lock with its last descriptor."""
    import signal

    try:
        pid = int(pid_text.strip() or b"0")
        if pid <= 1 or os.getpgid(pid) != pid:
            return False
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            if MAKER_MARK not in fh.read():
                return False
        boost(pid_text)  # (where it may be: an idle process's exit waits for a free CPU too)
        os.killpg(pid, signal.SIGTERM)
    except (OSError, ValueError):
        return False
    return True


class BaseDirs:
    """The base tree's directories, as a container of paths looked up in the tree as
    asked (a kept index's mount lists no tree: it asks this only of the few directories
    its upper layer holds, mount/untracked.py ``upper_gitignores``)."""

    def __init__(self, items: Callable[[str], dict[str, tuple[str, int]]], tree: str) -> None:
        self.items = items
        self.tree = tree

    def __contains__(self, path: object) -> bool:
        if not isinstance(path, str) or not path:
            return False
        oid = self.tree
        for name in path.split("/"):
            found = self.items(oid).get(name)
            if found is None or found[1] != 0o040000:
                return False
            oid = found[0]
        return True


def from_kept(
    state_dir: str,
    tree: str,
    t_ns: int,
    uid: int,
    gid: int,
    token: str,
    worktree: str | None,
    ignores_now: Callable[[], dict[str, bytes | None]],
) -> bytes | None:
    """A mount's index from the one kept for its base tree ``tree`` (a process still making
    it stopped, not waited for: :func:`take_over`), patched for the mount (:func:`patched`),
    or None: none kept, it does not check, no mount point to locate the untracked cache in,
    or the fork shows a ``.gitignore`` the base does not (``ignores_now()`` not empty)."""
    if not worktree:
        return None
    found = _load(state_dir, tree)
    if found is None and take_over(state_dir, tree):
        found = _load(state_dir, tree)  # (the maker may have put its index in place by then)
    if found is None or ignores_now():
        return None
    from ..core.vaults.registry import resolved_mountpoint  # (no stat of the mount point: a request to it)

    return _patch(*found, t_ns, uid, gid, token, resolved_mountpoint(worktree))
