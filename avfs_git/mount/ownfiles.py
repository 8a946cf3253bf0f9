"""A mount's own files and where a mounted fork's worktree lives: the paths (the worktree
git dir ``<vault>/worktrees/<id>``, the mount's own directory :func:`files_dir`, out of the
sandbox's view), the names of avfs's files there, how they are written (a temp file created
``O_EXCL|O_NOFOLLOW`` and renamed in) and read (bounded, never through a link), and which
daemon owns a mount (its registry record, checked against the kernel's mount table). What a
workspace and the mount side need of each other is typed here (:class:`MountedFork`,
:class:`MountedVault`). mount/worktree.py's docstring gives the whole picture.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import TYPE_CHECKING, Any, Protocol

from ..core.store.names import fs_name
from ..core.vaults.daemonproc import serving_memo
from ..core.vaults.registry import is_mount_daemon, mount_dir, mounted_as, read_record, record_path
from ..core.workspace.mergestate import HasState

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..core.store.gitstore import GitStore
    from ..core.types import NodeKind, Stat
    from ..core.workspace.overlay import Overlay


class MountedVault(Protocol):
    """What this module needs of a vault (:class:`.vault.Vault` is one)."""

    name: str
    path: str  # the bare repository: the worktrees' git dirs are under ``worktrees/``
    state_dir: str
    store: GitStore

    @property
    def lock_wait_s(self) -> float: ...


class MountedFork(HasState, Protocol):
    """What this module needs of a workspace (:class:`.workspace.Workspace` is one): the
    workspace calls in here, so this module knows it by these names only."""

    fork: str
    store: GitStore
    overlay: Overlay
    pinned: str | None

    @property
    def vault(self) -> MountedVault: ...
    @property
    def view_time(self) -> float: ...
    def read(self, path: str) -> bytes: ...
    def stat(self, path: str, *, follow: bool = False) -> Stat: ...
    def tip(self) -> str | None: ...
    def visible_filter(self) -> Callable[[str, NodeKind], bool] | None: ...


# the mount's own files, in files_dir() (never the worktree's git dir: docs/security.md)
WAKE_FIFO = "avfs-wake"  # a byte written here wakes the daemon's watcher at once
ACK_FILE = "avfs-view"  # "BASE VIEW_TIME": the view the mount serves, its old caches dropped
ACK_WAIT_S = 5.0  # how long a mover waits for a live mount to show its move
MERGE_MARKER = "avfs-merge-head"  # the MERGE_HEAD avfs wrote for an open merge
STAMP_FILE = "avfs-index"  # "BASE VIEW_TIME MERGE": what the index was last written for
# "INO MTIME_NS SIZE" of an index avfs wrote holding exactly its commit's tree, nothing
# staged (a merge's, mount/indexahead.py): the next merge's staged check reads no more
CLEAN_FILE = "avfs-index-clean"
STAGED_FILE = "avfs-staged"  # what git had staged as a checkpoint recorded it (mount/indexahead.py)
LOCK_FILE = "avfs-index.lock"  # avfs's writers of the index serialize on its flock
HOOK_FILE = "fsmonitor-hook"  # git's fsmonitor hook (config.worktree names it by its path)
# "OLD NEW": the last move of the fork's branch git in the mount's own worktree made (written
# by the mount's reference-transaction hook, mount/hookscripts.py)
MOVED_FILE = "git-moved"
INDEX_ERROR = "avfs-index-error"  # what `git read-tree` said when it could not make the index
INDEX_LOCK_WAIT_S = 10.0  # how long a writer waits for git to let go of index.lock
MAX_READ = 1 << 16  # the most read of a small file (stamp, ack, marker, MERGE_HEAD)
MAX_INDEX = 1 << 31  # an index larger than this is not patched but written whole


def worktree_name(key: str) -> str:
    """The git worktree name of a mount of ``key`` (a fork, or ``FORK@REV``)."""
    return "avfs-" + fs_name(key, at=True)


def worktree_dir(vault: MountedVault, key: str) -> str:
    return os.path.join(vault.path, "worktrees", worktree_name(key))


def files_dir(vault: MountedVault, key: str) -> str:
    """The directory of the mount ``key``'s own files (:func:`.registry.mount_dir`)."""
    return mount_dir(vault.state_dir, key)


def write_file(directory: str, name: str, data: bytes, *, via: str | None = None, mode: int = 0o644) -> None:
    """Replace ``directory/name`` whole: a temp file created ``O_CREAT|O_EXCL|O_NOFOLLOW``
    under a fresh name in ``via`` (the mount's own directory, which no confined command
    can write; default ``directory``), written, and renamed over ``name``. A rename
    replaces what is there (a symlink planted in a worktree's git dir too), never follows
    it; across file systems (EXDEV) the temp file is made in ``directory`` itself, where
    ``O_EXCL`` still makes it a new file of this process's."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    where = via or directory
    while True:
        tmp = os.path.join(where, f".{name}.{os.getpid()}.{os.urandom(6).hex()}.tmp")
        try:
            fd = os.open(tmp, flags, mode)
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            os.fchmod(fh.fileno(), mode)
        try:
            os.replace(tmp, os.path.join(directory, name))
        except OSError as exc:
            if exc.errno != errno.EXDEV or where == directory:
                raise
            os.unlink(tmp)
            write_file(directory, name, data, mode=mode)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def read_bytes(path: str, limit: int = MAX_READ, *, dir_fd: int | None = None) -> bytes | None:
    """The content of the regular file ``path``, read as untrusted (:mod:`.untrusted`):
    None when it is larger than ``limit`` bytes, not a regular file, or unreadable."""
    from ..core.workspace.untrusted import read_file

    return read_file(path, limit, dir_fd=dir_fd)


def read_text(path: str) -> str | None:
    data = read_bytes(path)
    try:
        return None if data is None else data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def daemon_serves(vault: MountedVault, key: str, pid: int, rec: dict[str, Any]) -> bool:
    """Whether the daemon ``pid`` of record ``rec`` (mount ``key`` of ``vault``) serves its
    mount now: this process (the daemon itself, which asks before its mount is up), or a
    running mount daemon whose mount point the kernel lists as that mount (its source is
    ``avfs:VAULT:KEY``): defence in depth beside the record's own safety."""
    from ..core.store.locks import pid_alive

    if pid == os.getpid():
        return True
    if pid <= 0 or not pid_alive(pid):
        return False
    mp = rec.get("mountpoint")
    if not isinstance(mp, str) or not os.path.isabs(mp):
        return False
    memo = serving_memo()  # (a merge's: read once, the pid looked at above every time)
    got = None if memo is None else memo.get((vault.state_dir, key, pid, mp))
    if got is None:
        # the parent resolved, not the mount point itself (a lookup there is a FUSE request)
        target = os.path.join(os.path.realpath(os.path.dirname(mp)), os.path.basename(mp))
        got = is_mount_daemon(pid) and mounted_as(target, f"avfs:{vault.name}:{key}")
        if memo is not None:
            memo[(vault.state_dir, key, pid, mp)] = got
    return got


# Process-wide on purpose: a cache of registry records' contents keyed by their path and
# checked against the file's (inode, mtime, size) at every use, so it cannot answer stale
# for any home, vault or thread that shares it; the objects that could own it are core's
# (a vault, a workspace), which do not know mount/, and the mount side is one stateless
# instance. It holds a record per mount key this process has asked about (dropped when the
# record is gone) and saves a JSON read (~16 us) on each change the CLI or a pure-FUSE
# daemon makes to a mounted fork. Callers must not mutate the dict it returns.
_owner_cache: dict[str, tuple[tuple[int, int, int], dict[str, Any] | None]] = {}


def owner_record(vault: MountedVault, key: str) -> dict[str, Any] | None:
    """The registry record of mount ``key`` of ``vault`` (core/vaults/registry.py: its owner data,
    in ``<vault>/avfs``, never in the worktree's git dir), cached by its inode and time:
    read on every change the CLI makes to a fork, to know whether it goes through an
    overlay mount."""
    path = record_path(vault.state_dir, key)
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        _owner_cache.pop(path, None)
        return None
    stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
    hit = _owner_cache.get(path)
    if hit is not None and hit[0] == stamp:
        return hit[1]
    data = read_record(path)
    _owner_cache[path] = (stamp, data)
    return data


def read_git_file(path: str, *, tail: bool = False, limit: int = 4096) -> bytes | None:
    """At most ``limit`` bytes of a file git writes in the worktree's git dir (its first
    ones, or with ``tail`` its last ones); None when it is not a regular file. Whatever runs
    in the mount (a confined command too) can write there: never through a symlink (a host
    file's bytes would reach avfs's output), never blocking on a FIFO."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None
        return os.pread(fd, limit, max(0, st.st_size - limit) if tail else 0)
    except OSError:
        return None
    finally:
        os.close(fd)


def scrub_dir(git_dir: str, *, whole: list[bool] | None = None) -> list[str]:
    """:func:`scrub` of the directory ``git_dir`` (a worktree git dir, or what mount/gitkeep.py
    keeps of one). ``whole``: appended whether the walk saw every entry (at most
    ``SCRUB_MAX``)."""
    from ..core.store import deeptree  # (only a scrub walks: not at the top)
    from ..core.store.deeptree import SCRUB_MAX

    removed: list[str] = []
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        top = os.open(git_dir, flags)
    except OSError:
        return removed
    seen = 0

    def visit(fd: int, rel: str, entries: list[os.DirEntry[str]]) -> list[str]:
        nonlocal seen
        into = []
        for e in entries:
            seen += 1
            if seen > SCRUB_MAX:
                break
            try:
                mode = os.lstat(e.name, dir_fd=fd).st_mode
            except OSError:
                continue
            if stat.S_ISDIR(mode):
                into.append(e.name)
            elif not stat.S_ISREG(mode):
                try:
                    os.unlink(e.name, dir_fd=fd)
                    removed.append(f"{rel}{e.name}")
                except OSError:
                    pass
        return into

    deeptree.by_descriptors(top, visit)
    if whole is not None:
        whole.append(seen <= SCRUB_MAX)
    return removed


def merge_head(git_dir: str, own: str, merging: dict[str, Any] | None) -> None:
    """An open avfs merge is git's merge in the mount: ``MERGE_HEAD`` (so ``git commit``
    there makes the two-parent commit, once ``git add`` resolved the unmerged paths) and
    ``MERGE_MSG``; removed when it ends (only those avfs wrote: the marker file in the
    mount's own directory ``own`` says)."""
    marker = os.path.join(own, MERGE_MARKER)
    head = os.path.join(git_dir, "MERGE_HEAD")
    if merging is not None:
        write_file(git_dir, "MERGE_MSG", str(merging.get("message") or "").encode(), via=own)
        write_file(git_dir, "MERGE_HEAD", f"{merging['theirs']}\n".encode(), via=own)
        write_file(own, MERGE_MARKER, str(merging["theirs"]).encode())
        return
    ours = read_text(marker)
    if ours is None:
        return
    if read_text(head) == f"{ours}\n":
        for name in ("MERGE_HEAD", "MERGE_MSG", "MERGE_MODE"):
            try:
                os.unlink(os.path.join(git_dir, name))
            except FileNotFoundError:
                pass
    os.unlink(marker)
