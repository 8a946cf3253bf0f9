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

import functools
import os
import stat as st_
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from typing import Protocol

from ..errors import from_oserror
from ..store import deeptree
from ..store.gitstore import GitStore
from ..types import MODE_EXEC, MODE_LINK, MODE_TREE
from .wssmudge import CheckoutForms, reformed


class Readable(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...


_CHUNK = 1 << 20


class LiveDir:
    """The mount point ``root`` of a fork, as a directory to change."""

    def __init__(
        self, root: str, store: GitStore, room: Callable[[], AbstractContextManager[None]] | None = None
    ) -> None:
        self.root = root
        self.store = store
        # room for a change that frees or keeps bytes (rm, mv, chmod, restore) while the
        # kernel's quota of the upper layer is full: a whiteout, a copy-up of metadata
        # (Vault.own_room); a write that adds bytes was checked against the quota first
        self._room = room or nullcontext
        # (libgit2 loaded only where attributes convert; its scratch removed when collected)
        self._forms = CheckoutForms(store)

    def real(self, path: str) -> str:
        return os.path.join(self.root, path) if path else self.root

    def write(self, path: str, data: bytes | Readable | str, mode: int) -> int:
        """Create or replace regular file ``path``; returns its size."""
        import shutil  # (not at the top: a cold status, cat or log never runs it)

        dest = self.real(path)
        try:
            if os.path.islink(dest) or os.path.isdir(dest):
                self.remove(path)
            size = 0
            if isinstance(data, str):
                shutil.copyfile(data, dest)
                size = os.stat(dest).st_size
            else:
                with open(dest, "wb") as fh:
                    if isinstance(data, bytes):
                        fh.write(data)
                        size = len(data)
                    else:
                        while chunk := data.read(_CHUNK):
                            fh.write(chunk)
                            size += len(chunk)
            os.chmod(dest, 0o755 if mode == MODE_EXEC else 0o644)
            return size
        except OSError as exc:
            raise from_oserror(exc, path) from exc

    def symlink(self, target: str, path: str) -> None:
        try:
            os.symlink(target, self.real(path))
        except OSError as exc:
            raise from_oserror(exc, path) from exc

    def mkdir(self, path: str) -> None:
        try:
            deeptree.makedirs(self.real(path))  # (os.makedirs recurses per missing level)
        except OSError as exc:
            raise from_oserror(exc, path) from exc

    def remove(self, path: str) -> None:
        """Remove ``path`` whatever it is (a directory with everything below it)."""
        with self._room():
            dest = self.real(path)
            try:
                s = os.lstat(dest)
            except (FileNotFoundError, NotADirectoryError):
                return  # NotADirectoryError: below a file (a restore put back the file first)
            try:
                if st_.S_ISDIR(s.st_mode):
                    deeptree.rmtree(dest)
                else:
                    os.unlink(dest)
            except OSError as exc:
                raise from_oserror(exc, path) from exc

    def chmod(self, path: str, executable: bool) -> None:
        with self._room():
            try:
                os.chmod(self.real(path), 0o755 if executable else 0o644)
            except OSError as exc:
                raise from_oserror(exc, path) from exc

    def rename(self, src: str, dst: str) -> None:
        """POSIX rename; a directory the lower layer holds cannot be renamed by overlayfs
        without redirects (EXDEV): it is copied, then removed, as ``mv`` does."""
        import shutil

        with self._room():
            s, d = self.real(src), self.real(dst)
            try:
                try:
                    os.rename(s, d)
                except OSError as exc:
                    import errno

                    if exc.errno != errno.EXDEV:
                        raise
                    if os.path.isdir(d) and not os.path.islink(d):
                        os.rmdir(d)
                    shutil.copytree(s, d, symlinks=True)
                    deeptree.rmtree(s)
            except OSError as exc:
                raise from_oserror(exc, src) from exc

    def copy(self, src: str, dst: str) -> None:
        import shutil

        s, d = self.real(src), self.real(dst)
        try:
            if os.path.isdir(s) and not os.path.islink(s):
                if os.path.isdir(d) and not os.path.islink(d):
                    os.rmdir(d)
                shutil.copytree(s, d, symlinks=True)
            else:
                shutil.copy2(s, d, follow_symlinks=False)
        except OSError as exc:
            raise from_oserror(exc, src) from exc

    def put(self, path: str, hit: tuple[str, int] | None, tree: str | None = None) -> None:
        """Make ``path`` hold git object ``hit`` (oid, mode) — a subtree written out whole —
        or nothing (None); its files as ``git checkout`` of ``tree`` writes them (its
        ``.gitattributes`` conversions: core/workspace/wssmudge.py; None: as the blobs are)."""
        with self._room():
            self.remove(path)
            if hit is None:
                return
            # a subtree by a loop, in the same order (a tree deeper than Python's recursion
            # limit, which a confined command makes in a second, is restored too)
            todo = [(path, hit)]
            while todo:
                p, (oid, mode) = todo.pop()
                if p != path:
                    self.remove(p)
                if mode == MODE_TREE:
                    self.mkdir(p)
                    items = sorted(self.store.tree_items(oid).items(), reverse=True)
                    todo.extend((f"{p}/{name}" if p else name, sub) for name, sub in items)
                    continue
                parent = os.path.dirname(p)
                if parent:
                    self.mkdir(parent)
                if mode == MODE_LINK:
                    self.symlink(self.store.blob_data(oid).decode("utf-8", "surrogateescape"), p)
                    continue
                read = functools.partial(self.store.blob_data, oid)
                form = None if tree is None else self._forms.form(tree, p, oid, mode, read)
                self.write(p, read() if form is None else form, mode)

    def show_forms(
        self, old: str, new: str, moved: Iterable[str], *, keep: Callable[[str], bool] | None = None
    ) -> list[str]:
        """Before the base's tree goes from ``old`` to ``new`` (``moved``: the paths where
        they differ, which the caller writes itself): the files whose blob is the same but
        whose checkout form a changed ``.gitattributes`` makes other bytes are written in
        ``new``'s form, those ``keep`` names left (a change of the workspace's own). The
        lower layer keeps what the kernel has of it (its sizes, its pages for good): were
        such a file left to it, the mount showed the old form, or the new one cut to the
        old size once its pages were dropped. Returns the paths written."""
        paths = [p for p in reformed(self.store, old, new, moved) if keep is None or not keep(p)]
        if paths:
            self.reset(paths, new)
        return paths

    def reset(self, paths: Iterable[str], tree: str) -> None:
        """Make each of ``paths`` what it is in ``tree`` (removed where ``tree`` has
        nothing); shallow paths first, so a directory replaced by a file goes whole."""
        with self._room():
            done: list[str] = []
            for p in sorted(set(paths), key=lambda q: (q.count("/"), q)):
                if any(p.startswith(d + "/") for d in done):
                    continue  # written out with a directory above it
                hit = self.store.tree_lookup(tree, p)
                if hit is not None and hit[1] == MODE_TREE:
                    self.put(p, hit, tree)
                    done.append(p)
                    continue
                self.put(p, hit, tree)
            self._prune_empty(paths, tree)

    def _prune_empty(self, paths: Iterable[str], tree: str) -> None:
        """Remove directories left empty by removals that ``tree`` does not hold."""
        for p in sorted({os.path.dirname(q) for q in paths if "/" in q}, key=lambda q: -q.count("/")):
            while p:
                dest = self.real(p)
                if self.store.tree_lookup(tree, p) is not None:
                    break
                try:
                    os.rmdir(dest)
                except OSError:
                    break
                p = os.path.dirname(p)
