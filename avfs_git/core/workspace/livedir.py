"""Changes to a fork mounted on kernel overlayfs, made through its mount point.

While the overlay backend mounts a fork, the kernel owns its upper layer and the lower one
must not change under it (overlayfs.rst: changes to the underlying filesystems of a mounted
overlay are undefined). So a change from the CLI or the API (write, rm, mv, restore, undo,
merge) is made the way any program would make it: with system calls on the mount point.
It shows in the mount at once, to a shell whose cwd is inside too, and a file open for
writing keeps its descriptor (a restore replaces paths; it never re-stacks the layers).

The workspace decides what to do (its checks and errors are the same for every backend);
this module only does it on the directory.
"""

from __future__ import annotations

import errno
import functools
import os
import stat as st_
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Protocol

from ..errors import from_oserror
from ..store import deeptree
from ..store.gitstore import GitStore
from ..types import MODE_EXEC, MODE_LINK, MODE_TREE
from .wssmudge import CheckoutForms


class Readable(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...


_CHUNK = 1 << 20


@contextmanager
def _held_dir(path: str) -> Iterator[str]:
    """The directory at ``path`` (not a link to one) as ``/proc/PID/fd/N``, held open."""
    fd = os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        yield f"/proc/{os.getpid()}/fd/{fd}"
    finally:
        os.close(fd)


class LiveDir:
    """The mount point ``root`` of a fork, as a directory to change."""

    def __init__(
        self,
        root: str,
        store: GitStore,
        room: Callable[[], AbstractContextManager[None]] | None = None,
        kept: list[str] | None = None,
        upper: str | None = None,
        branch: str | None = None,
    ) -> None:
        self.root = root
        self.store = store
        # room for a change that frees or keeps bytes (rm, mv, chmod, restore) while the
        # kernel's quota of the upper layer is full: a whiteout, a copy-up of metadata
        # (Vault.own_room); a write that adds bytes was checked against the quota first
        self._room = room or nullcontext
        # (libgit2 loaded only where attributes convert; its scratch removed when collected)
        self._forms = CheckoutForms(store, branch)  # (branch: the fork's config)
        # the paths a write left as they were, a process holding the file open for writing
        # (:meth:`_held_open`): the workspace's ``kept_open``, which the operation's result
        # names (core/vaults/oplog.py ``kept_paths``; livewrite2)
        self.kept: list[str] = [] if kept is None else kept
        self.upper = upper  # the mount's upper layer: is a file there (:meth:`_held_open`)
        self._side_key: bytes | None = None

    def side_key(self) -> bytes | None:
        """The key of the side files swaps make through this mount (:mod:`.sidekey`: the
        change stream passes over those only): the mount daemon's, made at the mount (made
        here where there is none); None without an upper layer (a name like any other
        file's)."""
        if self._side_key is None and self.upper is not None:
            from .sidekey import load

            try:
                self._side_key = load(self.upper, make=True)
            except OSError:  # (a full or read-only state dir: unsigned names, listed, nothing lost)
                return None
        return self._side_key

    @contextmanager
    def pinned(self, path: str) -> Iterator[str]:
        """``path`` as ``/proc/PID/fd/N/NAME``: its parent directory reached from the mount
        point one directory at a time, no link followed (``O_PATH|O_NOFOLLOW|O_DIRECTORY``),
        and held open while the caller changes ``NAME`` in it.

        A confined command still running in the mount can rename a link over any directory
        of the fork at any moment: found in the twenty-second round (attack13), an
        ``avfs write d/f`` (the agent's MCP ``write_file`` beside its MCP ``exec``) while
        the command swapped ``d`` for a link to a host directory wrote the agent's bytes
        into that host directory; ``rm``, ``chmod``, ``mv`` went the same way. A link on the
        way is ``ENOTDIR``; the last step is the caller's to take without following one."""
        if not path:
            yield self.root
            return
        parent, _, name = path.rpartition("/")
        fd = os.open(self.root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for comp in parent.split("/") if parent else ():
                nfd = os.open(comp, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
                os.close(fd)
                fd = nfd
            yield f"/proc/{os.getpid()}/fd/{fd}/{name}"  # (a child of this process, rm -rf, reads it too)
        finally:
            os.close(fd)

    def write(self, path: str, data: bytes | Readable | str, mode: int) -> int:
        """Create or replace regular file ``path``; returns its size."""
        import shutil  # (not at the top: a cold status, cat or log never runs it)

        try:
            with self.pinned(path) as dest:
                if os.path.islink(dest) or os.path.isdir(dest):
                    self.remove(path)
                size = 0
                flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
                with os.fdopen(os.open(dest, flags, 0o644), "wb") as fh:
                    if isinstance(data, str):
                        with open(data, "rb") as src:
                            shutil.copyfileobj(src, fh, _CHUNK)
                        size = fh.tell()
                    elif isinstance(data, bytes):
                        fh.write(data)
                        size = len(data)
                    else:
                        while chunk := data.read(_CHUNK):
                            fh.write(chunk)
                            size += len(chunk)
                    os.fchmod(fh.fileno(), 0o755 if mode == MODE_EXEC else 0o644)
            return size
        except OSError as exc:
            raise from_oserror(exc, path) from exc

    def symlink(self, target: str, path: str) -> None:
        try:
            with self.pinned(path) as dest:
                os.symlink(target, dest)
        except OSError as exc:
            raise from_oserror(exc, path) from exc

    def mkdir(self, path: str) -> None:
        """``path`` and its missing parents, made from the mount point one directory at a
        time, none reached through a link (``not a directory``)."""
        try:
            os.close(self._made_dir(os.open(self.root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC), path))
        except OSError as exc:
            raise from_oserror(exc, path) from exc

    @staticmethod
    def _made_dir(fd: int, path: str) -> int:
        """``path`` below the directory ``fd`` (closed here), each missing directory made,
        none reached through a link: an ``O_PATH`` descriptor of it, the caller's to close."""
        flags = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            for comp in path.split("/") if path else ():
                try:
                    nfd = os.open(comp, flags, dir_fd=fd)
                except FileNotFoundError:
                    try:
                        os.mkdir(comp, dir_fd=fd)
                    except FileExistsError:
                        pass  # (made meanwhile: opened as any other below)
                    nfd = os.open(comp, flags, dir_fd=fd)
                os.close(fd)
                fd = nfd
        except BaseException:
            os.close(fd)
            raise
        return fd

    def remove(self, path: str) -> None:
        """Remove ``path`` whatever it is (a directory with everything below it)."""
        with self._room():
            try:
                with self.pinned(path) as dest:
                    try:
                        s = os.lstat(dest)
                    except (FileNotFoundError, NotADirectoryError):
                        return  # NotADirectoryError: below a file (a restore put back the file first)
                    if st_.S_ISDIR(s.st_mode):
                        deeptree.rmtree(dest)
                    else:
                        os.unlink(dest)
            except (FileNotFoundError, NotADirectoryError):
                return  # (a parent missing, or not a directory: nothing there to remove)
            except OSError as exc:
                raise from_oserror(exc, path) from exc

    def chmod(self, path: str, executable: bool) -> None:
        with self._room():
            try:
                with self.pinned(path) as dest:
                    fd = os.open(dest, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
                    try:
                        os.fchmod(fd, 0o755 if executable else 0o644)
                    finally:
                        os.close(fd)
            except OSError as exc:
                raise from_oserror(exc, path) from exc

    def rename(self, src: str, dst: str) -> None:
        """POSIX rename; a directory the lower layer holds cannot be renamed by overlayfs
        without redirects (EXDEV): it is copied, then removed, as ``mv`` does."""
        with self._room():
            try:
                with self.pinned(src) as s, self.pinned(dst) as d:
                    self._rename(s, d)
            except OSError as exc:
                raise from_oserror(exc, src) from exc

    @staticmethod
    def _rename(s: str, d: str) -> None:
        import shutil

        try:
            os.rename(s, d)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            if os.path.isdir(d) and not os.path.islink(d):
                os.rmdir(d)
            with _held_dir(s) as held:  # (the directory itself: a link renamed over it is not followed)
                shutil.copytree(held, d, symlinks=True)
            deeptree.rmtree(s)

    def copy(self, src: str, dst: str) -> None:
        with self.pinned(src) as s, self.pinned(dst) as d:
            self._copy(s, d, src)

    @staticmethod
    def _copy(s: str, d: str, src: str) -> None:
        import shutil

        try:
            if os.path.isdir(s) and not os.path.islink(s):
                if os.path.isdir(d) and not os.path.islink(d):
                    os.rmdir(d)
                with _held_dir(s) as held:
                    shutil.copytree(held, d, symlinks=True)
            elif os.path.islink(s):
                shutil.copy2(s, d, follow_symlinks=False)  # (a link: made anew, nothing followed)
            else:
                # neither name followed if a link is renamed over it meanwhile
                with os.fdopen(
                    os.open(s, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC), "rb"
                ) as fi:
                    st = os.fstat(fi.fileno())
                    if not st_.S_ISREG(st.st_mode):
                        raise OSError(errno.EINVAL, "not a regular file", s)
                    flags = (
                        os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
                    )
                    with os.fdopen(os.open(d, flags, 0o644), "wb") as fo:
                        shutil.copyfileobj(fi, fo, _CHUNK)
                        os.fchmod(fo.fileno(), st_.S_IMODE(st.st_mode))
                        os.utime(fo.fileno(), ns=(st.st_atime_ns, st.st_mtime_ns))
        except OSError as exc:
            raise from_oserror(exc, src) from exc

    def put(self, path: str, hit: tuple[str, int] | None, tree: str | None = None) -> None:
        """Make ``path`` hold git object ``hit`` (oid, mode) — a subtree written out whole —
        or nothing (None); its files as ``git checkout`` of ``tree`` writes them (its
        ``.gitattributes`` conversions: core/workspace/wssmudge.py; None: as the blobs are)."""
        with self._room():
            if self._held_open(path):
                return
            self.remove(path)
            if hit is None:
                return
            # a subtree by a loop, in the same order (a tree deeper than Python's recursion
            # limit, which a confined command makes in a second, is restored too); each
            # directory made below the one made last (held open: O(1) a level, not a walk
            # from the mount point, which made a chain D deep O(D^2) lookups: ~80 % of a
            # 1,200-level restore); nothing below ``path`` is there to remove but a link a
            # writer made meanwhile (a file or directory there is replaced or opened)
            todo = [(path, hit)]
            made: tuple[str, int] | None = None  # the directory made last, an O_PATH fd of it
            try:
                while todo:
                    p, (oid, mode) = todo.pop()
                    parent = os.path.dirname(p)
                    if mode == MODE_TREE:
                        try:
                            if made is not None and p != path and parent == made[0]:
                                fd = self._made_dir(os.dup(made[1]), os.path.basename(p))
                            else:
                                fd = self._made_dir(
                                    os.open(self.root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC), p
                                )
                        except OSError as exc:
                            raise from_oserror(exc, p) from exc
                        if made is not None:
                            os.close(made[1])
                        made = (p, fd)
                        items = sorted(self.store.tree_items(oid).items(), reverse=True)
                        todo.extend((f"{p}/{name}" if p else name, sub) for name, sub in items)
                        continue
                    if parent and (made is None or parent != made[0]):
                        self.mkdir(parent)
                    if mode == MODE_LINK:
                        if p != path:
                            self.remove(p)
                        self.symlink(self.store.blob_data(oid).decode("utf-8", "surrogateescape"), p)
                        continue
                    read = functools.partial(self.store.blob_data, oid)
                    form = None if tree is None else self._forms.form(tree, p, oid, mode, read)
                    self.write(p, read() if form is None else form, mode)
            finally:
                if made is not None:
                    os.close(made[1])

    def _held_open(self, path: str) -> bool:
        """Whether ``path`` is a regular file a process holds open for writing: then left
        as it is, named in :attr:`kept` and in a warning; else, a regular file, unlinked
        under a read lease (:func:`.liveswap.unlinked_unheld`: no opening for writing can
        start meanwhile), the caller then writing what the path is to hold.

        Found in the thirty-fourth round (livewrite1): a restore, an undo, a merge's or a
        checkpoint's rebase's move, a revert and ``avfs checkout REV -- PATH`` removed the
        file, then wrote a new one: an editor's or a long-running program's descriptor
        went on writing into a file no name showed, every byte after lost."""
        from .liveswap import unlinked_unheld

        try:
            with self.pinned(path) as dest:
                # (a file of the upper layer linked aside, unlinked, looked at again:
                # livewrite2; the layer read, never written, while the kernel owns it)
                aside = self.upper is not None and os.path.lexists(os.path.join(self.upper, path))
                if unlinked_unheld(dest, aside, self.side_key() if aside else None) is not False:
                    return False
        except (FileNotFoundError, NotADirectoryError):
            return False  # (nothing there, or below a file: as before)
        except OSError as exc:
            raise from_oserror(exc, path) from exc
        self.kept.append(path)
        import logging  # (only when a file is kept: logging is not on the cold commands' path)

        logging.getLogger("avfs.livedir").warning(
            "%s is open for writing: kept as it is, not replaced (close it, then check it out again)", path
        )
        return True

    def reset(self, paths: Iterable[str], tree: str, wrote: list[str] | None = None) -> None:
        """Make each of ``paths`` what it is in ``tree`` (removed where ``tree`` has
        nothing); shallow paths first, so a directory replaced by a file goes whole.
        ``wrote``: each path is added to it once it is written (what a reset that failed
        part way changed)."""
        with self._room():
            done: list[str] = []
            for p in sorted(set(paths), key=lambda q: (q.count("/"), q)):
                if any(p.startswith(d + "/") for d in done):
                    continue  # written out with a directory above it
                hit = self.store.tree_lookup(tree, p)
                self.put(p, hit, tree)
                if wrote is not None:
                    wrote.append(p)
                if hit is not None and hit[1] == MODE_TREE:
                    done.append(p)
            self.prune_empty(paths, tree)

    def room(self) -> AbstractContextManager[None]:
        """Room for a change while the kernel's quota of the upper layer is full (see
        ``__init__``)."""
        return self._room()

    def form(self, tree: str, path: str, oid: str, mode: int) -> bytes:
        """The bytes ``git checkout`` of ``tree`` writes at ``path`` for blob ``oid`` of
        ``mode`` (its ``.gitattributes`` conversions applied), as :meth:`put` writes them."""
        read = functools.partial(self.store.blob_data, oid)
        out = self._forms.form(tree, path, oid, mode, read)
        return read() if out is None else out

    def prune_empty(self, paths: Iterable[str], tree: str) -> None:
        """Remove directories left empty by removals that ``tree`` does not hold."""
        for p in sorted({os.path.dirname(q) for q in paths if "/" in q}, key=lambda q: -q.count("/")):
            while p:
                if self.store.tree_lookup(tree, p) is not None:
                    break
                try:
                    with self.pinned(p) as dest:
                        os.rmdir(dest)
                except OSError:
                    break
                p = os.path.dirname(p)
