"""The FUSE adapter: FUSE calls in, workspace calls out, ``AvfsError.errno`` back.

It holds no git logic. Paths arrive as "/a/b" with every symlink already resolved by the
kernel, so lookups never follow links. File contents:

- a file still in git is served from its blob (read-only opens) until something opens it
  for writing; then :meth:`Workspace.materialize` copies it into the overlay once and the
  open file descriptor of that overlay file takes reads and writes at disk speed;
- a descriptor open for writing holds a shared ``flock`` on its overlay file, which tells a
  concurrent checkpoint (any process) to keep the entry: nothing written before or after a
  checkpoint is lost;
- writes are journaled when a handle first becomes dirty and when it is flushed, fsynced or
  released, so status, quota and "what changed since" stay true.

Nested repositories: a ``.git`` below the root (``git init sub``, ``git clone URL sub``) is
not part of the fork (git trees cannot hold one). Its files live as plain files in the
workspace's ``nested/`` directory and every call under it passes straight through to that
directory: git's own object and index I/O there runs at disk speed, nothing of it is
journaled, checkpointed or restored, and it goes when the fork is deleted.

A read-only view (a revision; the lower layer of an overlay) never changes: the kernel
caches it for good (see :func:`fuse_options`): it opens files itself (no handles here: reads
come by path), keeps listings (``cache_readdir``) and gets each entry's attributes with its
listing (readdirplus), so a warm walk reaches no Python. docs/fuse.md, "Kernel caching".

Not supported, with a clear errno: hard links (EPERM), extended attributes (ENOSYS: callers see EOPNOTSUPP),
owners (chown is accepted and ignored: git keeps no owners), device files (EPERM).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import functools
import itertools
import logging
import os
import select
import shutil
import stat
import threading
import zlib
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import mfusepy as fuse

from ..core.errors import AvfsError, is_no_space
from ..core.store import names
from ..core.types import MODE_EXEC
from ..core.workspace.workspace import Node, Workspace
from ..mount.index import inode_of

if TYPE_CHECKING:
    from ..core.store.objects import BlobStream
    from ..core.vaults.vault import Vault

F = TypeVar("F", bound=Callable[..., Any])
GITFILE = "/.git"
log = logging.getLogger("avfs.fuse")

# Kernel caching (see fuse_options). A writable view: attributes and entries for 60 s, the
# watcher invalidates what other processes change. A read-only view never changes under the
# kernel: everything is kept for as long as the kernel keeps it, failed lookups too.
ATTR_TIMEOUT = 60.0
ENTRY_TIMEOUT = 60.0
READ_ONLY_TIMEOUT = 1e9  # ~31 years: the kernel caps it (MAX_JIFFY_OFFSET); "forever"
BLOB_CACHE_BYTES = 32 << 20  # read-only view: blobs just read, served to the next 128 KiB reads
STREAM_CACHE = 4  # read-only view: big blobs being streamed (BlobStream) kept open
LISTING_CACHE = 64  # read-only view: directory listings being handed out in chunks
CHILDREN_CACHE = 1024  # read-only view: directories whose children are kept (lookups)
SIZE_CACHE = 1 << 20  # read-only view: blob sizes kept (then forgotten all at once)
# a file the daemon appends the name of each FUSE call it serves in Python to (for tests
# and diagnosis: which calls reach Python once the kernel caches are warm)


def fuse_options(read_only: bool, *, lower: bool = False) -> dict[str, Any]:
    """libfuse's mount options for a view (the keyword arguments of :class:`.libfuse.FastFUSE`).

    Both: inode numbers are ours (``use_ino``: stable per path, what the worktree index
    records) and file data stays in the page cache across opens (``kernel_cache``; the
    watcher of a writable view invalidates what others change). A read-only view (a
    revision; the lower layer of an overlay) never changes, so attributes, entries and
    negative entries are cached for good; its directory listings are cached by the kernel
    too (``cache_readdir``, see :class:`.libfuse.FastFUSE`) and come with their entries' attributes
    (readdirplus), so a warm walk makes no call into Python."""
    opts: dict[str, Any] = {"use_ino": True, "kernel_cache": True}
    if read_only:
        opts.update(
            ro=True,
            attr_timeout=READ_ONLY_TIMEOUT,
            entry_timeout=READ_ONLY_TIMEOUT,
            # an overlay's lower layer (``lower``) gains paths when the base moves to a
            # commit holding what the upper layer made (a checkpoint, a restore written
            # through the mount): overlayfs asks the lower layer whether a name exists before
            # it removes one (a whiteout, or none), and a cached "no" there would let the
            # base's copy come back in every view but the kernel's. Not cached: overlayfs
            # caches its own lookups; only removals ask again
            negative_timeout=0 if lower else READ_ONLY_TIMEOUT,
        )
    else:
        opts.update(attr_timeout=ATTR_TIMEOUT, entry_timeout=ENTRY_TIMEOUT, negative_timeout=0)
    return opts


def _open_trace(path: str | None) -> int | None:
    if not path:
        return None
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)


def translated(func: F) -> F:
    """Turn AvfsError (and bad paths) into the errno FUSE expects."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except AvfsError as exc:
            raise fuse.FuseOSError(exc.errno) from exc
        except fuse.FuseOSError:
            raise  # an errno chosen on purpose (EDQUOT past the quota...)
        except Exception as exc:
            # a full disk met anywhere below (the overlay's files, its database, a pack):
            # ENOSPC, as a local disk says, never EINVAL or EIO
            if is_no_space(exc):
                raise fuse.FuseOSError(errno.ENOSPC) from exc
            raise

    return wrapper  # type: ignore[return-value]


class Handle:
    __slots__ = (
        "created",
        "data",
        "dirty",
        "fd",
        "fileid",
        "limit",
        "nested",
        "path",
        "stream",
        "writable",
    )

    def __init__(
        self, path: str, fd: int | None, data: bytes | None, writable: bool, nested: bool = False
    ) -> None:
        self.nested = nested  # a file of a nested repository: no journal, no quota
        self.path = path
        self.fd = fd
        self.data = data
        self.writable = writable
        self.dirty = False
        self.created = False
        self.fileid: str | None = None
        self.limit = 0
        self.stream: BlobStream | None = None  # a big unchanged file, read from git as it goes


class WorkspaceFS(fuse.Operations):  # type: ignore[misc]
    """Operations for one mounted workspace (``read_only`` for a mounted revision)."""

    use_ns = True

    poll_s = 0.02  # how often the journal is checked for changes made by other processes

    def __init__(
        self,
        ws: Workspace[Vault],
        *,
        read_only: bool = False,
        on_ready: Callable[[], None] | None = None,
        gitfile: bytes | None = None,
        on_view: Callable[[tuple[str | None, str | None], bool, int], None] | None = None,
        wake_fd: int | None = None,
    ) -> None:
        """``gitfile``: the contents of the ``.git`` file the mount shows at its root (it
        makes the mount a linked worktree of the vault); None shows no ``.git``.
        ``on_view((base, view_time), moved, seq)``: called by the watcher with the view it
        serves and the journal position it has handled, at its start, after each move of
        the base once the kernel's caches of the old view are dropped, and after each batch
        of changes by others once the kernel forgot those paths. ``wake_fd``: readable when a process that moved the base
        wants the watcher to look now rather than at its next poll."""
        self.ws = ws
        self.gitfile = gitfile
        self.on_view = on_view
        self.wake_fd = wake_fd
        self.read_only = read_only
        self.on_ready = on_ready
        self.uid = os.getuid()
        self.gid = os.getgid()
        self._handles: dict[int, Handle] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._known: set[str] = set()  # paths the kernel may hold attributes for
        self._stop = threading.Event()
        self._fuse_ptr: Any = None
        self._inval: Any = None
        # held around each fuse_invalidate_path call: stop_invalidating() takes it to know no
        # call is inside libfuse when the `struct fuse` is freed
        self._inval_lock = threading.Lock()
        self._watcher: threading.Thread | None = None
        self._view_time_ns: int | None = None
        self._unsized: set[str] = set()  # written and closed: sizes not recorded yet
        self._nested_root = os.path.join(ws.state_dir, "nested")
        self._has_nested = os.path.isdir(self._nested_root)
        # a read-only view keeps no file handles (the kernel opens files itself: see open)
        self._listings: OrderedDict[str, list[tuple[str, str, Node | None]]] = OrderedDict()
        self._blobs: OrderedDict[str, bytes] = OrderedDict()
        self._blob_bytes = 0
        self._streams: OrderedDict[str, BlobStream] = OrderedDict()
        self._kids: OrderedDict[str, dict[str, Node]] = OrderedDict()  # see _ro_node
        self._kids_base: str | None = None  # the base commit the kept children are of
        self._sizes: dict[str, int] = {}  # see _size
        owner = ws.vault.home
        self.trace_fd = _open_trace(owner.settings.fuse_trace if owner is not None else None)

    def trace(self, call: str) -> None:
        """Append ``call`` (the operation's name and its path) to the trace file
        (``AVFS_FUSE_TRACE``), when there is one."""
        if self.trace_fd is not None:
            os.write(self.trace_fd, call.encode("utf-8", "surrogateescape") + b"\n")

    # -- helpers -----------------------------------------------------------------------------
    @staticmethod
    def _p(path: str) -> str:
        if path == GITFILE:
            raise fuse.FuseOSError(errno.EPERM)  # the worktree link avfs shows; not a file of the fork
        return names.norm_path(path.lstrip("/"))

    def _gitfile_attrs(self) -> dict[str, Any]:
        assert self.gitfile is not None
        t = self._view_ns()
        return {
            "st_ino": inode_of(".git"),
            "st_mode": stat.S_IFREG | 0o444,
            "st_nlink": 1,
            "st_size": len(self.gitfile),
            "st_uid": self.uid,
            "st_gid": self.gid,
            "st_atime": t,
            "st_mtime": t,
            "st_ctime": t,
        }

    def _node(self, p: str) -> Node:
        node = self._ro_node(p) if self.read_only else self.ws.node(p)
        if node is None:
            raise fuse.FuseOSError(errno.ENOENT)
        return node

    def _ro_node(self, p: str) -> Node | None:
        """A read-only view's node, from its parent's children (kept for the last
        ``CHILDREN_CACHE`` directories): a cold walk, or git's lstat of every file in
        index order, looks up many names of one directory in a row, and each lookup from
        the root costs an overlay query and a tree walk."""
        if not p:
            return self.ws.node(p)
        parent = names.parent_of(p)
        kids = self._ro_children(parent)
        return None if kids is None else kids.get(p[len(parent) + 1 :] if parent else p)

    def _ro_children(self, p: str) -> dict[str, Node] | None:
        # an overlay's lower layer follows the fork's base: a checkpoint of what the upper
        # layer made adds names below (which overlayfs asks about before a removal)
        # layer); kept children are of one base, and children worked out while the base
        # moved are answered from again, never kept: a lookup that started before a
        # checkpoint and ended after it would otherwise keep the old children for good, and
        # overlayfs, told the name is not there, removes it without a whiteout
        for _ in range(8):
            base = self.ws.overlay.get_meta("base")
            with self._lock:
                if base != self._kids_base:
                    self._kids.clear()
                    self._kids_base = base
                kids = self._kids.get(p)
                if kids is not None:
                    self._kids.move_to_end(p)
                    return kids
            # the directory's node is looked up here, after the base was read: one a caller
            # found before a move would give the old base's children (a listing that began
            # before a checkpoint kept them under the new base)
            here = self._ro_node(p)
            kids = None if here is None or not here.is_dir else self.ws.node_children(here)
            if self.ws.overlay.get_meta("base") != base:
                continue
            if kids is None:
                return None
            with self._lock:
                if self._kids_base == base:
                    self._kids[p] = kids
                    while len(self._kids) > CHILDREN_CACHE:
                        self._kids.popitem(last=False)
            return kids
        raise fuse.FuseOSError(errno.EAGAIN)  # the base kept moving: ask again

    def _size(self, node: Node) -> int:
        """A file's size; a read-only view's blob sizes are kept (``oid -> size``): the
        kernel asks for them twice in a cold ``git status`` (its lstat, then readdirplus)."""
        if not self.read_only or node.oid is None or node.entry is not None:
            return self.ws.node_size(node)
        size = self._sizes.get(node.oid)
        if size is None:
            size = self.ws.node_size(node)
            if len(self._sizes) >= SIZE_CACHE:
                self._sizes.clear()
            self._sizes[node.oid] = size
        return size

    def _writable(self) -> None:
        if self.read_only:
            raise fuse.FuseOSError(errno.EROFS)

    def _view_ns(self) -> int:
        # read once, then kept current by the watcher (a SQL query per getattr otherwise)
        if self._view_time_ns is None:
            self._view_time_ns = int(self.ws.view_time * 1e9)
        return self._view_time_ns

    def _attrs(self, p: str, node: Node) -> dict[str, Any]:
        for _ in range(8):
            try:
                return self._attrs_of(p, node)
            except FileNotFoundError:
                # a checkpoint retired the entry between the lookup and the stat of its
                # file: the same bytes are the base's now
                node = self._node(p)
        raise fuse.FuseOSError(errno.EAGAIN)

    def _attrs_of(self, p: str, node: Node) -> dict[str, Any]:
        t = self._view_ns()
        st: dict[str, Any] = {
            "st_ino": inode_of(p),
            "st_uid": self.uid,
            "st_gid": self.gid,
            "st_atime": t,
            "st_mtime": t,
            "st_ctime": t,
        }
        if node.is_dir:
            # 1: "not counted" (as btrfs and overlayfs); 2 misled find's leaf optimisation
            st.update(st_mode=stat.S_IFDIR | 0o755, st_nlink=1, st_size=4096, st_blocks=8)
            return st
        real = self.ws.file_path(node)
        if node.is_link:
            st["st_mode"] = stat.S_IFLNK | 0o777
        else:
            st["st_mode"] = stat.S_IFREG | (0o755 if node.mode == MODE_EXEC else 0o644)
        st["st_nlink"] = 1
        if real is not None:
            s = os.stat(real)  # FileNotFoundError: retired meanwhile (see _attrs)
            st.update(
                st_size=s.st_size,
                st_blocks=s.st_blocks,
                st_atime=s.st_atime_ns,
                st_mtime=s.st_mtime_ns,
                st_ctime=s.st_ctime_ns,
            )
        else:
            size = self._size(node)
            st.update(st_size=size, st_blocks=(size + 511) // 512)
        return st

    def index_stat(self, path: str, mode: int, oid: str) -> tuple[int, int, int, int, int, int]:
        """(ctime_ns, mtime_ns, ino, uid, gid, size) the mount reports for an unchanged
        file: what the worktree's index must hold for git to trust it without reading it
        (a fork's mount: :func:`..core.index.index_stat` computes the same)."""
        t = self._view_ns()
        return t, t, inode_of(path), self.uid, self.gid, self.ws.blob_size(oid)

    def _new_handle(self, h: Handle) -> int:
        with self._lock:
            fh = next(self._ids)
            self._handles[fh] = h
        return fh

    def _handle(self, fh: int) -> Handle:
        h = self._handles.get(fh)
        if h is None:
            raise fuse.FuseOSError(errno.EBADF)
        return h

    def _open_rw(self, p: str, node: Node, flags: int) -> int:
        """A writable handle on ``p``'s overlay file (``node``: materialized). The shared
        flock says "in use" to a checkpoint, which then keeps the entry; one retiring the
        entry holds the file exclusively until it is gone (core/workspace/overlay.py, ``retire``), so
        a file found retired once the lock is ours is opened again from the new base:
        writes never go to a file the workspace no longer shows."""
        for _ in range(8):
            assert node.entry is not None
            fileid = node.entry.fileid
            real = self.ws.file_path(node)
            assert real is not None
            try:
                fd = os.open(real, os.O_RDWR | os.O_CLOEXEC | (flags & os.O_APPEND))
            except FileNotFoundError:
                node = self.ws.materialize(p)  # retired meanwhile: the base's copy
                continue
            fcntl.flock(fd, fcntl.LOCK_SH)
            st = os.fstat(fd)
            now = self.ws.node(p) if st.st_nlink else None
            if now is None or now.entry is None or now.entry.fileid != fileid:
                os.close(fd)
                node = self.ws.materialize(p)
                continue
            h = Handle(p, fd, None, True)
            h.fileid = fileid
            h.limit = st.st_size + max(0, self.ws.quota_left())
            return self._new_handle(h)
        raise fuse.FuseOSError(errno.EAGAIN)  # retired again and again: let the caller retry

    def _note(self, h: Handle, *, defer: bool = False) -> None:
        """Record what a handle wrote. ``defer``: at flush and release, the path is already
        in the journal (its first write or its creation put it there); only its size is
        left to record, so those are batched into one transaction by the watcher thread
        (within ``poll_s``) instead of one per close(), and recorded in place (no new
        journal entry or ``seq``: a checkpoint that captured the entry meanwhile still
        retires it)."""
        if not h.dirty:
            return
        h.dirty = False
        if defer and self._inval is not None:
            with self._lock:
                self._unsized.add(h.path)
            return
        self.ws.note_written(h.path)

    def _record_sizes(self) -> None:
        with self._lock:
            paths, self._unsized = self._unsized, set()
        if paths:
            self.ws.record_sizes(sorted(paths))

    # -- nested repositories (see the module docstring) ---------------------------------------
    def _nested(self, path: str) -> str | None:
        """The real path of ``path`` when it lies in a nested repository's ``.git``."""
        if "/.git" not in path:
            return None
        comps = path.split("/")
        try:
            i = comps.index(".git", 2)
        except ValueError:
            return None
        if self.read_only:
            raise fuse.FuseOSError(errno.ENOENT)  # a revision holds no nested repository
        if i == len(comps) - 1:
            # the .git itself: only inside a directory of the workspace
            parent = names.norm_path("/".join(comps[1:i]))
            node = self.ws.node(parent)
            if node is None or not node.is_dir:
                raise fuse.FuseOSError(errno.ENOENT)
        return os.path.join(self._nested_root, path[1:])

    def _nested_attrs(self, path: str, real: str) -> dict[str, Any]:
        s = os.lstat(real)
        return {
            "st_ino": inode_of(path[1:]),
            "st_mode": s.st_mode,
            "st_nlink": s.st_nlink,
            "st_size": s.st_size,
            "st_blocks": s.st_blocks,
            "st_uid": s.st_uid,
            "st_gid": s.st_gid,
            "st_atime": s.st_atime_ns,
            "st_mtime": s.st_mtime_ns,
            "st_ctime": s.st_ctime_ns,
        }

    def _nested_parent(self, real: str) -> None:
        os.makedirs(os.path.dirname(real), exist_ok=True)
        self._has_nested = True

    def _nested_prune(self, real: str) -> None:
        """After a nested ``.git`` itself went, remove the directories of ``nested/`` that
        only led to it (never anything inside a repository)."""
        if os.path.basename(real) != ".git":
            return
        d = os.path.dirname(real)
        while d != self._nested_root and d.startswith(self._nested_root):
            try:
                os.rmdir(d)
            except OSError:
                return
            d = os.path.dirname(d)

    def _nested_under(self, p: str) -> str | None:
        """``nested/<p>`` when something of a nested repository is kept at or below ``p``."""
        if not self._has_nested:
            return None
        real = os.path.join(self._nested_root, p) if p else self._nested_root
        return real if os.path.isdir(real) else None

    # -- lifecycle ---------------------------------------------------------------------------
    def init(self, path: str) -> None:
        self._setup_invalidation()
        if self.on_ready is not None:
            self.on_ready()

    def destroy(self, path: str) -> None:
        self._stop.set()
        for fh in list(self._handles):
            self.release("", fh)
        self._record_sizes()

    # -- keeping the kernel's caches true ----------------------------------------------------
    def _setup_invalidation(self) -> None:
        """The kernel caches attributes and entries for a long time (the daemon sets 60 s);
        when another process (the CLI, a checkpoint, a restore) changes the workspace, a
        watcher thread reads the journal and tells the kernel to forget those paths
        (libfuse 3's ``fuse_invalidate_path``). A read-only revision never changes."""
        if self.read_only:
            return
        try:
            lib = fuse._libfuse
            self._fuse_ptr = ctypes.c_void_p(lib.fuse_get_context().contents.fuse)
            inval = lib.fuse_invalidate_path
            inval.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
            inval.restype = ctypes.c_int
            self._inval = inval
        except (AttributeError, ValueError):
            # the watcher still runs: sizes, the git index, and the movers' acknowledgement
            log.warning("fuse_invalidate_path is unavailable: changes made outside the mount show late")
        self._watcher = threading.Thread(target=self._watch, name="avfs-invalidate", daemon=True)
        self._watcher.start()

    def invalidate(self, path: str) -> None:
        with self._inval_lock:
            if self._inval is not None:
                self._inval(self._fuse_ptr, ("/" + path).encode("utf-8", "surrogateescape"))

    def stop_invalidating(self, timeout: float) -> bool:
        """Stop the watcher for good; called when FUSE's request loop has ended, before
        libfuse frees the ``struct fuse`` that ``fuse_invalidate_path`` reads (see
        :class:`.libfuse.FastFUSE`). Returns once no call is inside libfuse and none can start; False
        when a call is still in there after ``timeout`` (then the ``struct fuse`` must be
        left alone). The watcher thread itself is joined, bounded: once it can no longer
        reach libfuse, a slow journal read there is harmless."""
        self._stop.set()
        if not self._inval_lock.acquire(timeout=timeout):
            return False
        try:
            self._inval = None
        finally:
            self._inval_lock.release()
        if self._watcher is not None and self._watcher is not threading.current_thread():
            self._watcher.join(timeout)
        return True

    def _sleep(self) -> bool:
        """Wait one poll interval, or less when a process that moved the base wakes the
        watcher through ``wake_fd``; True once the mount is stopping."""
        if self.wake_fd is None:
            return self._stop.wait(self.poll_s)
        ready, _, _ = select.select([self.wake_fd], [], [], self.poll_s)
        if ready:
            try:
                os.read(self.wake_fd, 4096)
            except BlockingIOError:
                pass
        return self._stop.is_set()

    def _watch(self) -> None:
        ov = self.ws.overlay
        seq = ov.last_seq()
        view = (ov.get_meta("base"), ov.get_meta("view_time"))
        if self.on_view is not None:
            self.on_view(view, False, seq)
        while not self._sleep():
            try:
                self._record_sizes()
                before = seq
                seq, paths = ov.changes_by_others(seq)
                now = (ov.get_meta("base"), ov.get_meta("view_time"))
                moved = now != view
                if moved or "" in paths:
                    # the base moved (checkpoint, restore, undo, a push), or the root's entry
                    # changed (a restore and its undo within one second onto one base: the
                    # view time, in whole seconds, cannot tell them apart): anything may differ
                    if moved:
                        view = now
                        self._view_time_ns = None
                    paths = sorted(self._known)
                for p in paths:
                    if self._stop.is_set():
                        break  # unmounting: thousands of paths may be left, none matter now
                    self.invalidate(p)
                    if p:
                        self.invalidate(names.parent_of(p))
                if (moved or seq != before) and self.on_view is not None and not self._stop.is_set():
                    # the kernel forgot the old view's caches, and those of these paths
                    self.on_view(view, moved, seq)
            except Exception:
                log.exception("invalidation watcher")

    # -- metadata ----------------------------------------------------------------------------
    @translated
    def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
        if path == GITFILE and self.gitfile is not None:
            return self._gitfile_attrs()
        real = self._nested(path)
        if real is not None:
            return self._nested_attrs(path, real)
        p = self._p(path)
        attrs = self._attrs(p, self._node(p))
        if not self.read_only:
            self._known.add(p)  # for the watcher, which a read-only view has not
        return attrs

    @translated
    def readdir(self, path: str, fh: int) -> list[Any]:
        real = self._nested(path)
        if real is not None:
            out_n: list[Any] = [".", ".."]
            with os.scandir(real) as it:
                for de in it:
                    st = {
                        "st_ino": inode_of(path[1:] + "/" + de.name),
                        "st_mode": de.stat(follow_symlinks=False).st_mode,
                    }
                    out_n.append((de.name, st, 0))
            return out_n
        p = self._p(path)
        node = self._node(p)
        if not node.is_dir:
            raise fuse.FuseOSError(errno.ENOTDIR)
        out: list[Any] = [".", ".."]
        if not p and self.gitfile is not None:
            out.append((".git", {"st_ino": inode_of(".git"), "st_mode": stat.S_IFREG}, 0))
        for name, child in sorted(self.ws.node_children(node).items()):
            cp = names.join(p, name)
            if child.is_dir:
                mode = stat.S_IFDIR
            elif child.is_link:
                mode = stat.S_IFLNK
            else:
                mode = stat.S_IFREG
            # with use_ino, an entry without st_ino reaches the kernel as inode 0 and glibc
            # drops it: directories would look empty
            out.append((name, {"st_ino": inode_of(cp), "st_mode": mode}, 0))
        nested = self._nested_under(p)
        if nested is not None and os.path.lexists(os.path.join(nested, ".git")):
            mode = os.lstat(os.path.join(nested, ".git")).st_mode
            out.append((".git", {"st_ino": inode_of(names.join(p, ".git")), "st_mode": mode}, 0))
        return out

    @translated
    def listing(self, path: str, offset: int) -> list[tuple[str, str, Node | None]]:
        """A read-only view's directory as ``(name, path, node)``, ``.`` and ``..`` first
        (node None, as for the mount's ``.git``), for :meth:`.libfuse.FastFUSE.readdir_fuse_3`,
        which hands it to the kernel in chunks by offset (with attributes: readdirplus).
        Read at offset 0 and kept until :meth:`listing_done` (a bounded number of them)."""
        with self._lock:
            got = self._listings.get(path) if offset else None
        if got is not None:
            return got
        p = self._p(path)
        node = self._node(p)
        if not node.is_dir:
            raise fuse.FuseOSError(errno.ENOTDIR)
        out: list[tuple[str, str, Node | None]] = [(".", p, None), ("..", names.parent_of(p), None)]
        if not p and self.gitfile is not None:
            out.append((".git", ".git", None))
        kids = self._ro_children(p) or {}
        out += [(name, names.join(p, name), child) for name, child in sorted(kids.items())]
        with self._lock:
            self._listings[path] = out
            while len(self._listings) > LISTING_CACHE:
                self._listings.popitem(last=False)
        return out

    def listing_done(self, path: str) -> None:
        with self._lock:
            self._listings.pop(path, None)

    @translated
    def entry_attrs(self, p: str, node: Node | None, full: bool) -> dict[str, Any]:
        """The attributes of a :meth:`listing` entry: all of them (what getattr answers)
        when ``full``, else its inode number and type."""
        if node is None:
            if p == ".git" and self.gitfile is not None:
                return (
                    self._gitfile_attrs() if full else {"st_ino": inode_of(".git"), "st_mode": stat.S_IFREG}
                )
            return {"st_ino": inode_of(p), "st_mode": stat.S_IFDIR}  # . and ..
        if full:
            return self._attrs(p, node)
        if node.is_dir:
            mode = stat.S_IFDIR
        elif node.is_link:
            mode = stat.S_IFLNK
        else:
            mode = stat.S_IFREG
        return {"st_ino": inode_of(p), "st_mode": mode}

    @translated
    def readlink(self, path: str) -> str:
        real = self._nested(path)
        if real is not None:
            return os.readlink(real)
        return self.ws.read_link(self._p(path))

    @translated
    def statfs(self, path: str) -> dict[str, int]:
        sv = os.statvfs(self.ws.state_dir)
        return {
            "f_bsize": sv.f_bsize,
            "f_frsize": sv.f_frsize,
            "f_blocks": sv.f_blocks,
            "f_bfree": sv.f_bfree,
            "f_bavail": sv.f_bavail,
            "f_files": sv.f_files,
            "f_ffree": sv.f_ffree,
            "f_favail": sv.f_favail,
            "f_namemax": 255,
        }

    @translated
    def chmod(self, path: str, mode: int) -> int:
        self._writable()
        real = self._nested(path)
        if real is not None:
            os.chmod(real, mode & 0o7777, follow_symlinks=False)
            return 0
        p = self._p(path)
        node = self._node(p)
        if node.is_dir or node.is_link:
            return 0  # git keeps no directory or symlink modes
        self.ws.chmod(p, bool(mode & 0o111))
        return 0

    def chown(self, path: str, uid: int, gid: int) -> int:
        return 0  # git keeps no owners: accepted and ignored

    @translated
    def utimens(self, path: str, times: tuple[int, int] | None = None) -> int:
        self._writable()
        real = self._nested(path)
        if real is not None:
            if times is None:
                os.utime(real, follow_symlinks=False)
            else:
                os.utime(real, ns=(int(times[0]), int(times[1])), follow_symlinks=False)
            return 0
        p = self._p(path)
        node = self._node(p)
        if node.is_dir:
            return 0  # directory times are not kept (git has none); see docs/fuse.md
        # files and symlinks keep their times on their overlay file (materialized once)
        real = self.ws.file_path(self.ws.materialize(p))
        assert real is not None
        if times is None:
            os.utime(real)
        else:
            os.utime(real, ns=(int(times[0]), int(times[1])))
        return 0

    # -- namespace ---------------------------------------------------------------------------
    @translated
    def mkdir(self, path: str, mode: int) -> int:
        self._writable()
        real = self._nested(path)
        if real is not None:
            self._nested_parent(real)
            os.mkdir(real, mode & 0o7777)
            return 0
        self.ws.mkdir(self._p(path))
        return 0

    @translated
    def rmdir(self, path: str) -> int:
        self._writable()
        real = self._nested(path)
        if real is not None:
            os.rmdir(real)
            self._nested_prune(real)
            return 0
        p = self._p(path)
        nested = self._nested_under(p)
        if nested is not None and os.listdir(nested):
            raise fuse.FuseOSError(errno.ENOTEMPTY)  # it holds a nested repository
        self.ws.rmdir(p)
        return 0

    @translated
    def unlink(self, path: str) -> int:
        self._writable()
        real = self._nested(path)
        if real is not None:
            os.unlink(real)
            self._nested_prune(real)
            return 0
        p = self._p(path)
        if self._node(p).is_dir:
            raise fuse.FuseOSError(errno.EISDIR)
        self.ws.remove(p)
        return 0

    @translated
    def rename(self, old: str, new: str) -> int:
        self._writable()
        real_old, real_new = self._nested(old), self._nested(new)
        if real_old is not None and real_new is not None:
            self._nested_parent(real_new)
            os.rename(real_old, real_new)
            self._nested_prune(real_old)
            return 0
        if real_old is not None or real_new is not None:
            raise fuse.FuseOSError(errno.EXDEV)  # in or out of a nested repository: copy
        po, pn = self._p(old), self._p(new)
        moving = self._nested_under(po)
        if moving is not None:
            target = self.ws.node(pn)
            if target is not None and self._nested_under(pn) is not None:
                raise fuse.FuseOSError(errno.ENOTEMPTY)
        self.ws.rename(po, pn)
        if moving is not None:
            # a directory holding nested repositories: they move with it
            dest = os.path.join(self._nested_root, pn)
            if os.path.isdir(dest):
                shutil.rmtree(dest)  # left over from a directory removed outside the mount
            self._nested_parent(dest)
            os.rename(moving, dest)
            self._nested_prune(moving)
        return 0

    @translated
    def symlink(self, target: str, source: str) -> int:
        # fusepy's names: `target` is the new link's path, `source` what it points to
        self._writable()
        real = self._nested(target)
        if real is not None:
            self._nested_parent(real)
            os.symlink(source, real)
            return 0
        self.ws.symlink(source, self._p(target))
        return 0

    def link(self, target: str, source: str) -> int:
        raise fuse.FuseOSError(errno.EPERM)  # git has no hard links

    def mknod(self, path: str, mode: int, dev: int) -> int:
        raise fuse.FuseOSError(errno.EPERM)  # git keeps regular files, dirs and symlinks only

    # ENOSYS, not ENOTSUP: the kernel then stops asking (callers get EOPNOTSUPP); with
    # ENOTSUP every write() cost an extra getxattr("security.capability") request
    def getxattr(self, path: str, name: str, position: int = 0) -> bytes:
        # a read-only view (an overlay's lower layer) has no writes to slow down: it answers
        # as a file system whose files have no attributes, which the overlay then passes on
        raise fuse.FuseOSError(errno.ENODATA if self.read_only else errno.ENOSYS)

    def listxattr(self, path: str) -> list[str]:
        if self.read_only:
            return []
        raise fuse.FuseOSError(errno.ENOSYS)

    def setxattr(self, path: str, name: str, value: bytes, options: int, position: int = 0) -> int:
        raise fuse.FuseOSError(errno.ENOSYS)

    def removexattr(self, path: str, name: str) -> int:
        raise fuse.FuseOSError(errno.ENOSYS)

    # -- files -------------------------------------------------------------------------------
    @translated
    def create(self, path: str, mode: int, fi: Any = None) -> int:
        self._writable()
        real = self._nested(path)
        if real is not None:
            self._nested_parent(real)
            fd = os.open(real, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, mode & 0o7777)
            return self._new_handle(Handle(path, fd, None, True, nested=True))
        p = self._p(path)
        self.ws.write(p, b"", mode=MODE_EXEC if mode & 0o111 else None, parents=False)
        node = self._node(p)
        fh = self._open_rw(p, node, 0)
        self._handles[fh].created = True
        return fh

    @translated
    def open(self, path: str, flags: int) -> int:
        if self.read_only:
            # ENOSYS to an OPEN tells the kernel to open files itself from now on: no OPEN,
            # FLUSH or RELEASE requests any more, the page cache kept across opens (the
            # kernel's default then); reads come with fh 0 and are served by path
            # (read_into). A write was refused by the kernel already (the mount is ro).
            if path != GITFILE or self.gitfile is None:
                self._node(self._p(path))
            raise fuse.FuseOSError(errno.ENOSYS)
        if path == GITFILE and self.gitfile is not None:
            if (flags & os.O_ACCMODE) != os.O_RDONLY:
                raise fuse.FuseOSError(errno.EPERM)
            return self._new_handle(Handle(".git", None, self.gitfile, False))
        real = self._nested(path)
        if real is not None:
            if (flags & os.O_ACCMODE) != os.O_RDONLY or flags & os.O_TRUNC:
                self._writable()
            keep = os.O_ACCMODE | os.O_APPEND | os.O_TRUNC | os.O_NOFOLLOW
            fd = os.open(real, (flags & keep) | os.O_CLOEXEC)
            return self._new_handle(Handle(path, fd, None, True, nested=True))
        p = self._p(path)
        node = self._node(p)
        if node.is_dir:
            raise fuse.FuseOSError(errno.EISDIR)
        wants_write = (flags & os.O_ACCMODE) != os.O_RDONLY or flags & os.O_TRUNC
        if wants_write:
            self._writable()
            node = self.ws.materialize(p)
            fh = self._open_rw(p, node, flags)
            if flags & os.O_TRUNC:
                h = self._handles[fh]
                assert h.fd is not None
                os.ftruncate(h.fd, 0)
                h.dirty = True
                self._note(h)
            return fh
        real = self.ws.file_path(node)
        for _ in range(8):
            if real is None:
                break
            try:
                return self._new_handle(Handle(p, os.open(real, os.O_RDONLY | os.O_CLOEXEC), None, False))
            except FileNotFoundError:
                # a checkpoint retired the entry between the lookup and the open: the same
                # bytes are the base's now
                node = self._node(p)
                real = self.ws.file_path(node)
        if real is not None:
            raise fuse.FuseOSError(errno.EAGAIN)
        assert node.oid is not None
        stream = self.ws.blob_stream(node.oid)
        if stream is not None:
            h = Handle(p, None, None, False)
            h.stream = stream
            return self._new_handle(h)
        return self._new_handle(Handle(p, None, self.ws.blob_data(node.oid), False))

    @translated
    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        h = self._handle(fh)
        if h.fd is not None:
            return os.pread(h.fd, size, offset)
        if h.stream is not None:
            try:
                return h.stream.pread(size, offset)
            except (OSError, ValueError, zlib.error) as exc:
                log.error("reading %s from git: %s", path, exc)
                raise fuse.FuseOSError(errno.EIO) from exc
        assert h.data is not None
        return h.data[offset : offset + size]

    @translated
    def write(self, path: str | None, data: bytes | memoryview, offset: int, fh: int) -> int:
        h = self._handle(fh)
        if not h.writable or h.fd is None:
            raise fuse.FuseOSError(errno.EBADF)
        if h.nested:
            return os.pwrite(h.fd, data, offset)
        end = offset + len(data)
        if end > h.limit:
            # cheap bound per handle; recheck against the overlay before refusing. The
            # overlay counts this file at the size last recorded (flush, release): record
            # what the handle wrote so far first, or one long write (`dd count=500`) is
            # measured against a stale total and passes the limit bound by bound
            self.ws.record_sizes([h.path])
            h.limit = os.fstat(h.fd).st_size + max(0, self.ws.quota_left())
            if end > h.limit:
                raise fuse.FuseOSError(errno.EDQUOT)
        n = os.pwrite(h.fd, data, offset)
        if not h.dirty:
            # journal the first write now (git's fsmonitor and other processes must see the
            # path change), the rest at flush/release; a file this handle created is in the
            # journal already
            if not h.created:
                self.ws.note_written(h.path)
            h.dirty = True
        return n

    @translated
    def truncate(self, path: str, length: int, fh: int | None = None) -> int:
        self._writable()
        h = self._handles.get(fh) if fh is not None else None
        if h is not None and h.nested and h.fd is not None:
            os.ftruncate(h.fd, length)
            return 0
        real = self._nested(path) if h is None else None
        if real is not None:
            os.truncate(real, length)
            return 0
        if h is not None and h.fd is not None and h.writable:
            os.ftruncate(h.fd, length)
            h.dirty = True
            self._note(h)
            return 0
        p = self._p(path)
        real = self.ws.file_path(self.ws.materialize(p))
        assert real is not None
        os.truncate(real, length)
        self.ws.note_written(p)
        return 0

    @translated
    def flush(self, path: str, fh: int) -> int:
        if self.read_only:
            raise fuse.FuseOSError(errno.ENOSYS)  # nothing to flush: the kernel stops asking
        h = self._handles.get(fh)
        if h is not None:
            self._note(h, defer=True)
        return 0

    @translated
    def fsync(self, path: str, datasync: int, fh: int) -> int:
        if self.read_only:
            raise fuse.FuseOSError(
                errno.ENOSYS
            )  # nothing to sync (no handle either): the kernel stops asking
        h = self._handle(fh)
        if h.fd is not None:
            if datasync:
                os.fdatasync(h.fd)
            else:
                os.fsync(h.fd)
        self._note(h)
        self._record_sizes()
        return 0

    @translated
    def release(self, path: str, fh: int) -> int:
        with self._lock:
            h = self._handles.pop(fh, None)
        if h is None:
            return 0
        try:
            self._note(h, defer=True)
        finally:
            if h.fd is not None:
                os.close(h.fd)  # also drops the "in use" flock
            if h.stream is not None:
                h.stream.close()
        return 0

    def read_into(self, fh: int, addr: int, size: int, offset: int, path: str = "") -> int:
        """``read`` straight into libfuse's buffer at ``addr`` (see :class:`.libfuse.FastFUSE`)."""
        if fh == 0 and self.read_only:
            data = self._read_path(path, size, offset)
        else:
            h = self._handle(fh)
            if h.fd is not None:
                return os.preadv(h.fd, [(ctypes.c_char * size).from_address(addr)], offset)
            data = self.read("", size, offset, fh)
        ctypes.memmove(addr, data, len(data))
        return len(data)

    @translated
    def _read_path(self, path: str, size: int, offset: int) -> bytes:
        """A read in a read-only view, which keeps no handles (see :meth:`open`): by path.
        The kernel reads a file in steps of up to 128 KiB and caches what it read, so each
        blob is read from git once: the last ones read stay here (``BLOB_CACHE_BYTES``),
        big ones as open streams (``STREAM_CACHE``)."""
        if path == GITFILE and self.gitfile is not None:
            return self.gitfile[offset : offset + size]
        p = self._p(path)
        node = self._node(p)
        real = self.ws.file_path(node)
        for _ in range(8):
            if real is None:
                break
            try:
                fd = os.open(real, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                node = self._node(p)  # retired by a checkpoint meanwhile: the base's now
                real = self.ws.file_path(node)
                continue
            try:
                return os.pread(fd, size, offset)
            finally:
                os.close(fd)
        if real is not None:
            raise fuse.FuseOSError(errno.EAGAIN)
        oid = node.oid
        if oid is None or node.is_dir:
            raise fuse.FuseOSError(errno.EISDIR)
        with self._lock:
            data = self._blobs.get(oid)
            stream = self._streams.get(oid)
            if data is not None:
                self._blobs.move_to_end(oid)
        if data is not None:
            return data[offset : offset + size]
        if stream is None:
            stream = self.ws.blob_stream(oid)
            if stream is None:
                data = self.ws.blob_data(oid)
                with self._lock:
                    if oid not in self._blobs:
                        self._blobs[oid] = data
                        self._blob_bytes += len(data)
                    while self._blob_bytes > BLOB_CACHE_BYTES and len(self._blobs) > 1:
                        self._blob_bytes -= len(self._blobs.popitem(last=False)[1])
                return data[offset : offset + size]
            with self._lock:
                stream = self._streams.setdefault(oid, stream)
                while len(self._streams) > STREAM_CACHE:
                    self._streams.popitem(last=False)  # closed when its last reader is done
        try:
            return stream.pread(size, offset)
        except (OSError, ValueError, zlib.error) as exc:
            log.error("reading %s from git: %s", path, exc)
            raise fuse.FuseOSError(errno.EIO) from exc
