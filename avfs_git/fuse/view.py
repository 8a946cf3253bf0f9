"""The reading side of the operations: attributes, listings, links, ``statfs``, extended
attributes (none), opening and reading files, and the caches a read-only view keeps.

A read-only view (a revision; the lower layer of an overlay) never changes: the kernel
caches it for good (see :func:`.ops.fuse_options`): it opens files itself (no handles here:
reads come by path), keeps listings (``cache_readdir``) and gets each entry's attributes with
its listing (readdirplus), so a warm walk reaches no Python. docs/fuse.md, "Kernel caching".
In a writable view, a file still in git is served from its blob (read-only opens) until
something opens it for writing; then the open file descriptor of its overlay file takes
reads and writes.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import stat
import zlib
from typing import Any

import mfusepy as fuse

from ..core.store import keptsizes, names
from ..core.types import MODE_COMMIT, MODE_EXEC
from ..core.workspace.workspace import Node
from ..mount.heldstat import inode_of
from .handles import HandleTable
from .nested import NestedRepos
from .opsbase import GITFILE, Handle, translated

log = logging.getLogger("avfs.fuse")

BLOB_CACHE_BYTES = 32 << 20  # read-only view: blobs just read, served to the next 128 KiB reads
STREAM_CACHE = 4  # read-only view: big blobs being streamed (BlobStream) kept open
LISTING_CACHE = 64  # read-only view: directory listings being handed out in chunks
SIZE_CACHE = 1 << 20  # read-only view: blob sizes kept (then forgotten all at once)


_DOTS = frozenset(("", ".", ".."))


def _listable(kids: dict[str, Node]) -> dict[str, Node]:
    """``kids`` less the names a tree from git may hold (a remote's, made by hand) that no
    directory on Linux can: empty, ``.``, ``..``, holding ``/``, longer than 255 bytes; or
    one git refuses to check out and avfs to look up (``.git`` in any case: ``EINVAL``; the
    mount's own ``.git`` and a nested repository's are listed apart). One such entry in a
    listing made the kernel fail the whole directory's (``EIO``: FUSE refuses a name with
    ``/``, overlayfs the lookup of each entry); a listing leaves them out, as git's checkout
    does (docs/security.md, "A hostile remote")."""
    if not kids:
        return kids
    joined = "\0" + "\0".join(kids) + "\0"  # (a test of C each: a name at a time cost 1 us)
    if (
        "/" not in joined
        and "\0.git\0" not in joined.lower()
        and not _DOTS & kids.keys()
        and max(map(len, kids)) < 64  # (at most 4 bytes a character: 255 bytes at most)
    ):
        return kids
    return {
        name: child
        for name, child in kids.items()
        if name not in ("", ".", "..")
        and "/" not in name
        and "\0" not in name
        and name.lower() != ".git"
        and len(name.encode("utf-8", "surrogateescape")) <= 255
    }


def _dots(p: str) -> list[Any]:
    """``.`` and ``..`` of directory ``p``, with inode numbers: with use_ino, an entry
    without one reaches the kernel as inode 0 and glibc drops it (``ls -a`` showed neither)."""
    return [
        (".", {"st_ino": inode_of(p), "st_mode": stat.S_IFDIR}, 0),
        ("..", {"st_ino": inode_of(names.parent_of(p)), "st_mode": stat.S_IFDIR}, 0),
    ]


def _type_of(node: Node) -> int:
    """The file type a listing gives ``node``: a submodule (a gitlink) is a directory, empty,
    as git leaves one it has not checked out."""
    if node.is_dir or node.mode == MODE_COMMIT:
        return stat.S_IFDIR
    return stat.S_IFLNK if node.is_link else stat.S_IFREG


class ViewOps(NestedRepos, HandleTable):
    """What a read-only view serves, and the reads of a writable one."""

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

    def _size(self, node: Node) -> int:
        """A file's size; a read-only view's blob sizes are kept (``oid -> size``): the
        kernel asks for them twice in a cold ``git status`` (its lstat, then readdirplus)."""
        if node.oid is not None:  # (content in git: a materialized file has no oid)
            form = self._form(node)  # (git's checkout conversions: not the blob's size)
            if form is not None:
                return len(form)
        if not self.read_only or node.oid is None or node.entry is not None:
            return self.ws.node_size(node)
        size = self._sizes.get(node.oid)
        if size is None and self._sizes_kept is None:
            # the sizes the vault's last view learned, at the first miss (core/store/keptsizes.py)
            self._sizes_kept = 0
            if not self.ws.vault.lazy:  # (a lazy vault's are its promisor's)
                kept = keptsizes.load(self.ws.vault.path)
                self._sizes.update(kept)
                self._sizes_kept = len(kept)
            size = self._sizes.get(node.oid)
        if size is None:
            size = self.ws.node_size(node)
            if len(self._sizes) >= SIZE_CACHE:
                self._sizes.clear()
            self._sizes[node.oid] = size
            self._sizes_new = True
        return size

    def keep_sizes(self) -> None:
        """At a read-only view's end: the sizes it learned kept for the vault's next view
        (core/store/keptsizes.py), where it learned any."""
        if self.read_only and self._sizes_new and not self.ws.vault.lazy:
            self._sizes_new = False
            try:
                keptsizes.save(self.ws.vault.path, dict(self._sizes))
            except Exception:  # (a cache: the next view reads the headers again)
                log.exception("keeping the view's blob sizes")

    def _view_ns(self) -> int:
        # read once, then kept current by the watcher (a SQL query per getattr otherwise)
        if self._view_time_ns is None:
            self._view_time_ns = int(self.ws.view_time * 1e9)
        return self._view_time_ns

    def _kept_times(self, p: str, oid: str) -> tuple[int, int] | None:
        """The (mtime_ns, ctime_ns) a file a checkpoint retired keeps while the base holds
        the blob it was committed as (asked by path and remembered: the watcher drops them
        when the view moves or a checkpoint keeps more)."""
        kept, read = self._kept, self._kept_read
        if kept is None or read is None:
            # the count first: a change between the two reads makes the watcher read again
            self._kept_token = self.ws.overlay.get_meta("kept_times")
            read = self._kept_read = self.ws.overlay.kept_reader()
            kept = self._kept = {}
        if p in kept:
            hit = kept[p]
        else:
            hit = kept[p] = read(p)
        return None if hit is None or hit[0] != oid else (hit[1], hit[2])

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
        if node.is_dir or node.mode == MODE_COMMIT:  # a submodule: an empty directory, as git checks one out
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
            kept = self._kept_times(p, node.oid) if node.oid is not None else None
            if kept is not None:
                st.update(st_mtime=kept[0], st_ctime=kept[1])
        return st

    def index_stat(self, path: str, mode: int, oid: str) -> tuple[int, int, int, int, int, int]:
        """(ctime_ns, mtime_ns, ino, uid, gid, size) the mount reports for an unchanged
        file: what the worktree's index must hold for git to trust it without reading it
        (a fork's mount: :func:`..core.index.index_stat` computes the same)."""
        t = self._view_ns()
        size = 0 if mode == MODE_COMMIT else self.ws.blob_size(oid)  # (git reads no stat of a submodule's)
        kept = self._kept_times(path, oid)
        if kept is not None:
            return kept[1], kept[0], inode_of(path), self.uid, self.gid, size
        return t, t, inode_of(path), self.uid, self.gid, size

    # -- metadata ----------------------------------------------------------------------------
    @translated
    def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
        if path == GITFILE and self.gitfile is not None:
            return self._gitfile_attrs()  # (a lookup does not wait: overlayfs's listing makes one)
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
            out_n: list[Any] = _dots(path[1:])  # (a path in a nested .git: no fork path to check)
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
        if not node.is_dir and node.mode != MODE_COMMIT:
            raise fuse.FuseOSError(errno.ENOTDIR)
        out: list[Any] = _dots(p)
        if not p and self.gitfile is not None:
            out.append((".git", {"st_ino": inode_of(".git"), "st_mode": stat.S_IFREG}, 0))
        hides = not self.guard.empty
        # (a submodule's directory is empty, as git leaves one it has not checked out, but
        # for a nested repository's .git made there)
        kids = _listable(self.ws.node_children(node)) if node.is_dir else {}
        for name, child in sorted(kids.items()):
            cp = names.join(p, name)
            if hides and self._hidden(cp, child.is_dir):
                continue  # the path policy's: not there
            mode = _type_of(child)
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
        if not node.is_dir and node.mode != MODE_COMMIT:
            raise fuse.FuseOSError(errno.ENOTDIR)
        out: list[tuple[str, str, Node | None]] = [(".", p, None), ("..", names.parent_of(p), None)]
        if not p and self.gitfile is not None:
            out.append((".git", ".git", None))
        kids = _listable(self._ro_children(p) or {}) if node.is_dir else {}  # (a submodule's: empty)
        out += [
            (name, names.join(p, name), child)
            for name, child in sorted(kids.items())
            if self.guard.empty or not self._hidden(names.join(p, name), child.is_dir)
        ]
        with self._lock:
            self._listings[path] = out
            while len(self._listings) > LISTING_CACHE:
                self._listings.popitem(last=False)
        return out

    def listing_done(self, path: str) -> None:
        with self._lock:
            self._listings.pop(path, None)

    def plus_ok(self, p: str, node: Node | None) -> bool:
        """Whether a listing may give the kernel this entry's attributes now (readdirplus)
        without waiting: not a file whose size a lazy fork's mount is still asking
        (fuse/settle.py); the kernel asks for those later, one by one, when something
        looks at them."""
        if self._sizes_asked is None:  # (only a lazy vault's mount asks them: fuse/settle.py)
            self._sizes_asked = self.ws.vault.lazy
        return (
            not self._sizes_asked
            or node is None
            or node.is_dir
            or node.oid is None
            or node.mode == MODE_COMMIT
            or self.ws.size_answers_now(node.oid)
        )

    def root_answers_now(self) -> bool:
        """Whether the root's entries, each looked up (as overlayfs lists a merged
        directory), wait for nothing: no file there whose size is still being asked."""
        return all(self.plus_ok(name, node) for name, node in (self._ro_children("") or {}).items())

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
        return {"st_ino": inode_of(p), "st_mode": _type_of(node)}

    @translated
    def readlink(self, path: str) -> str:
        real = self._nested(path)
        if real is not None:
            return os.readlink(real)
        p = self._p(path)
        self._node(p)  # a hidden one is not there
        return self.ws.read_link(p)

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

    # ENOSYS, not ENOTSUP: the kernel then stops asking (callers get EOPNOTSUPP); with
    # ENOTSUP every write() cost an extra getxattr("security.capability") request
    def getxattr(self, path: str, name: str, position: int = 0) -> bytes:
        # a revision's view answers as a file system whose files have no attributes. An
        # overlay's lower layer answers ENOSYS too: overlayfs asks it for its own marks of
        # every entry it looks up (metacopy, origin, whiteout) and takes EOPNOTSUPP as "none",
        # so a cold walk asks nothing; a reader's getxattr of a file it has not changed then
        # gets EOPNOTSUPP where the disk says ENODATA (docs/fuse.md, known differences)
        lower = bool(getattr(self, "lower", False))
        raise fuse.FuseOSError(errno.ENODATA if self.read_only and not lower else errno.ENOSYS)

    def listxattr(self, path: str) -> list[str]:
        if self.read_only:
            return []
        raise fuse.FuseOSError(errno.ENOSYS)

    # -- files -------------------------------------------------------------------------------
    @translated
    def open(self, path: str, flags: int) -> int:
        if self.read_only:
            # ENOSYS to an OPEN tells the kernel to open files itself from now on: no OPEN,
            # FLUSH or RELEASE requests any more, the page cache kept across opens (the
            # kernel's default then); reads come with fh 0 and are served by path
            # (read_into). A write was refused by the kernel already (the mount is ro).
            if path != GITFILE or self.gitfile is None:
                self._node(self._p(path))
            else:
                self._git_wait()
            raise fuse.FuseOSError(errno.ENOSYS)
        if path == GITFILE and self.gitfile is not None:
            if (flags & os.O_ACCMODE) != os.O_RDONLY:
                raise fuse.FuseOSError(errno.EPERM)
            self._git_wait()
            return self._new_handle(Handle(".git", None, self.gitfile, False))
        real = self._nested(path)
        if real is not None:
            if (flags & os.O_ACCMODE) != os.O_RDONLY or flags & os.O_TRUNC:
                self._writable()
            keep = os.O_ACCMODE | os.O_APPEND | os.O_TRUNC | os.O_NOFOLLOW
            fd = os.open(real, (flags & keep) | os.O_CLOEXEC)
            return self._new_handle(Handle(path, fd, None, True, nested=True))
        p = self._p(path)
        copies = self._copies  # (before the lookup: a write's copy of the blob after it)
        try:
            node = self._node(p)
        except fuse.FuseOSError as exc:
            if exc.errno != errno.ENOENT:
                raise
            # the kernel holds the name as it was (another process removed it: a restore,
            # `avfs rm`), and its `libfuse` invalidation forgets attributes, not names: an
            # O_CREAT open then came here, not to create, and failed. ESTALE makes the
            # kernel look the name up again and retry the open (creating it for O_CREAT)
            raise fuse.FuseOSError(errno.ESTALE) from None
        if node.is_dir:
            raise fuse.FuseOSError(errno.EISDIR)
        wants_write = (flags & os.O_ACCMODE) != os.O_RDONLY or flags & os.O_TRUNC
        if wants_write:
            self._writable()
            appending = bool(flags & os.O_APPEND) and not flags & os.O_TRUNC
            self.ws.guard_change(
                p, "open for writing" if appending else "open for writing without O_APPEND", append=appending
            )
            node = self._materialize(p, node)
            fh = self._open_rw(p, node, flags)
            held = None if self.guard.empty else self.ws.guard.match(p)
            self._handles[fh].append_only = held is not None and held.kind == "append_only"
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
        form = self._form(node)
        stream = self.ws.blob_stream(node.oid) if form is None else None
        if form is None and stream is None:
            form = self.ws.blob_data(node.oid, p)
        h = Handle(p, None, form, False)
        h.stream = stream
        h.oid = node.oid  # a write's copy of this blob takes it over (HandleTable._materialize)
        return self._new_reader(h, copies)

    @translated
    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        h = self._handle(fh)
        fd, stream, data = h.fd, h.stream, h.data  # (once: a view move re-points a reader)
        if fd is not None:
            return os.pread(fd, size, offset)
        if stream is None and data is None:  # pointed at another blob by a view move
            stream, data = self._blob_source(h)
            if stream is None and data is None:
                return self.read(path, size, offset, fh)  # (moved again: a descriptor now)
        if stream is not None:
            try:
                return stream.pread(size, offset)
            except (OSError, ValueError, zlib.error) as exc:
                log.error("reading %s from git: %s", path, exc)
                raise fuse.FuseOSError(errno.EIO) from exc
        assert data is not None
        return data[offset : offset + size]

    def read_into(self, fh: int, addr: int, size: int, offset: int, path: str = "") -> int:
        """``read`` straight into libfuse's buffer at ``addr`` (see :class:`.libfuse.FastFUSE`)."""
        if fh == 0 and self.read_only:
            data = self._read_path(path, size, offset)
        else:
            fd = self._handle(fh).fd
            if fd is not None:
                return os.preadv(fd, [(ctypes.c_char * size).from_address(addr)], offset)
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
            self._git_wait()
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
        if oid in self.unsettled:  # (the kernel may still hold a size that was not the blob's)
            raise fuse.FuseOSError(errno.EIO)
        form = self._form(node)  # (kept by path and blob there)
        if form is not None:
            return form[offset : offset + size]
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
                data = self.ws.blob_data(oid, p)
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
