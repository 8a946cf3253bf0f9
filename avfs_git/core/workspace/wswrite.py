"""The mutations of a workspace: writes, directories, removals, moves and copies, modes,
materializing a file, folding an unmounted overlay's upper layer.

A change goes to the overlay (one transaction each), or, while the fork has a live overlay
mount, through the mount point (:class:`.livedir.LiveDir`), so that the kernel's caches see
it. :class:`Mutations` is the part of :class:`.workspace.Workspace` that does this; what a
write checks first (``expect``, the quota) and the storing of new content are its base,
:class:`.wschecks.WriteChecks`, where what it needs of the rest is declared.
"""

from __future__ import annotations

import os
import stat as stat_
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any

from ..errors import (
    AlreadyExistsError,
    DirectoryNotEmptyError,
    InvalidPathError,
    IsDirectoryError,
    NotDirectoryError,
    PathNotFoundError,
    SymlinkLoopError,
    want_path,
    want_str,
)
from ..store import names
from ..store.gitstore import EMPTY_TREE
from ..types import MODE_BLOB, MODE_COMMIT, MODE_EXEC, MODE_LINK, MODE_TREE, Stat, kind_of_mode
from . import wsfold
from .overlayentry import DELETED, FILE, OBJECT, Entry
from .pathguard import GuardChecks, PathGuard
from .wsanswers import BlobAnswers
from .wschecks import WriteChecks, parse_expect, unlink_quiet, want_data
from .wsview import MAX_SYMLINK_HOPS, Node, norm


class Mutations(BlobAnswers, GuardChecks, WriteChecks):
    """Every change a workspace makes to what it shows (mixed into :class:`.workspace.Workspace`)."""

    def _parent_dir(self, p: str, parents: bool) -> Node:
        """The directory ``p`` goes in (symlinks on the way followed), made first with
        ``parents``; a missing one or a file there is refused."""
        parent = names.parent_of(p)
        node = self.view.resolve_path(parent, True)
        if node is None:
            if not parents:
                raise PathNotFoundError(f"{parent}: no such directory", details={"path": parent})
            # the missing directories from the top, each into one there by then: not one
            # call deeper a level (a write 1,200 levels deep was exit 70, RecursionError,
            # through `avfs write`, MCP `write_file` and the API: the thirty-second round)
            missing = [parent]
            while (up := names.parent_of(missing[-1])) and self.view.resolve_path(up, True) is None:
                missing.append(up)
            for d in reversed(missing):
                self.mkdir(d, parents=True, exist_ok=True)
            node = self.view.dir_node(parent)
        if not node.is_dir:
            raise NotDirectoryError.at(node.path, submodule=node.mode == MODE_COMMIT)
        return node

    def _parent_for_write(self, p: str, parents: bool) -> str:
        """Resolve the directory that will hold ``p``; returns the real path of the target.

        Follows in-workspace symlinks in the parent chain and at the last component, creates
        missing parents when ``parents``.
        """
        if not p:
            raise IsDirectoryError("the workspace root is a directory")
        node = self._parent_dir(p, parents)
        real = names.join(node.path, names.basename(p))
        last = self.view.lookup(real)
        hops = 0
        while last is not None and last.is_link:
            hops += 1
            if hops > MAX_SYMLINK_HOPS:
                raise SymlinkLoopError(f"{p}: too many levels of symbolic links")
            real = self.view.follow(real, self.view.link_target(last))
            if not real:
                raise IsDirectoryError(f"{p}: is a directory")
            pnode = self.view.resolve_path(names.parent_of(real), True)
            if pnode is None or not pnode.is_dir:
                raise PathNotFoundError(f"{p}: symlink target's directory is missing")
            real = names.join(pnode.path, names.basename(real))
            last = self.view.lookup(real)
        return real

    def write(
        self,
        path: str,
        data: bytes | IO[bytes],
        *,
        mode: int | None = None,
        parents: bool = True,
        expect: str | None = None,
    ) -> Stat:
        """Create or replace a file with ``data`` (bytes or a binary stream).

        Args:
            mode: 0o100644 or 0o100755 (or 0o644/0o755); by default a replaced file keeps
                its executable bit.
            parents: create missing parent directories.
            expect: write only if ``path`` holds this blob id now (:meth:`blob_of`), or
                nothing (:data:`EXPECT_ABSENT`); else ExpectMismatchError, nothing written.
        """
        want_data(data)
        if expect is not None:
            parse_expect(expect)  # a malformed id is refused before anything is read
            with self.write_lock():
                self._check_expect(path, expect)
                return self.write(path, data, mode=mode, parents=parents)
        p = norm(path)
        if names.git_dir_of(p) is not None:  # (a name of git's own state: HEAD, config, hooks/...)
            data = _planted(self.view, p, "file", data) or b""
        guard = self.guard
        if not guard.empty:
            data = self._guard_write(p, data, mode, guard)
        live = self.live_dir()
        if live is not None:
            real = self._parent_for_write(p, parents)
            old = self.view.lookup(real)
            if old is not None and old.is_dir:
                raise IsDirectoryError(f"{real}: is a directory", details={"path": real})
            fmode = _file_mode(mode, old.mode if old is not None else None)
            adding = _known_size(data)
            if adding is not None:
                # the kernel limits the mount's upper layer; what else the quota counts
                # (objects, caches, other forks) is checked here first (a stream's size
                # is known only once written: the kernel's limit alone bounds it)
                try:
                    # (its size from the mount point, no link followed on the way: a host
                    # file's, through a directory a running command swapped for a link,
                    # counted as freed room)
                    replacing = 0
                    if old is not None:
                        with live.pinned(real) as at:
                            replacing = os.lstat(at).st_size
                except OSError:
                    replacing = 0
                self._check_quota(adding, replacing, 0)
            size = live.write(real, data, fmode)
            return Stat(real, kind_of_mode(fmode), fmode, size, None, True)
        target = self._plain_write_target(p)
        if target is not None:
            real, old = p, target[0]
        else:
            real = self._parent_for_write(p, parents)
            old = self.view.lookup(real)
        if old is not None and old.is_dir:
            raise IsDirectoryError(f"{real}: is a directory", details={"path": real})
        fmode = _file_mode(mode, old.mode if old is not None else None)
        replacing = (
            old.entry.size if old is not None and old.entry is not None and old.entry.kind == FILE else 0
        )
        # the quota (vault-wide totals) is checked with the entry's write, in its transaction
        fid, size = self._store_bytes(data, replacing, used_later=True)
        try:
            with self.overlay.txn() as db:
                chain = names.ancestors(real)
                chain.append(real)
                entries = self.overlay.get_many(chain)
                prior = entries.get(real)
                if prior is not None and prior.kind == FILE:
                    totals = self._check_quota(size, prior.size, 0)
                else:
                    totals = self._check_quota(size, 0, 1)
                origin = self.view.origin_in(real, chain, entries) if old is not None else None
                e = Entry(real, FILE, fmode, None, fid, origin, size)
                # "create" where nothing was: the change stream's created/modified (changes.py)
                self.overlay.put(db, e, "write" if old is not None else "create", old=prior)
                self.overlay.expect_totals(*totals)
        except BaseException:
            unlink_quiet(self.overlay.file_path(fid))
            raise
        # what stat() would find, without looking it up again (this is a mount's create path)
        return Stat(real, kind_of_mode(fmode), fmode, size, None, True)

    def _guard_write(
        self, p: str, data: bytes | IO[bytes], mode: int | None, guard: PathGuard
    ) -> bytes | IO[bytes]:
        """Refuse a write the path policy forbids (of ``p`` and, through symlinks, of the
        file it lands in); an ``append_only`` file takes new bytes that keep its old ones
        as their start, its mode unchanged. Returns the data (a stream read whole where
        an append had to be checked)."""
        self.guard_change(p, "write", append=True, guard=guard)
        real = p
        node = self.view.lookup(p)
        if node is None or node.is_link:  # a new file, or through symlinks: where it lands
            parent = self.view.lookup(names.parent_of(p))
            through = node is not None or parent is None or not parent.is_dir
            if through and self.view.resolve_path(names.parent_of(p), True) is not None:
                real = self._parent_for_write(p, False)
                self.guard_change(real, "write", append=True, guard=guard)
        held = guard.match(real)
        if held is None:
            return data
        old = self.view.lookup(real)
        if old is None:
            return data  # a new file: its first bytes are an append
        if not isinstance(data, bytes | bytearray | memoryview):
            data = data.read()
        before = self.view.read_node(old) if not old.is_dir else b""
        if not bytes(data).startswith(before) or (
            mode is not None and _file_mode(mode, old.mode) != old.mode
        ):
            self.guard_change(real, "write (not an append)", guard=guard)
        return bytes(data)

    def _plain_write_target(self, p: str) -> tuple[Node | None] | None:
        """``(node at p,)`` when ``p``'s parent is a directory at that very path and ``p``
        is not a symlink, from one read of the overlay (the common case of a write); None
        when :meth:`_parent_for_write` must resolve symlinks or create parents."""
        if not p:
            return None
        chain = names.ancestors(p)
        chain.append(p)
        entries, _, base = self.overlay.lookup(chain)
        pnode = self.view.lookup_in(chain[-2], chain[:-1], entries, base=base)
        if pnode is None or not pnode.is_dir:
            return None
        node = self.view.lookup_in(p, chain, entries, base=base)
        if node is not None and node.is_link:
            return None
        return (node,)

    def write_from_file(self, path: str, src: str | os.PathLike[str], *, mode: int | None = None) -> Stat:
        """Like :meth:`write`, copying the bytes of local file ``src``.

        Raises:
            PathNotFoundError: ``src`` does not exist; InvalidPathError: it cannot be
                opened as a file (a NUL, a directory, a name too long, no permission).
        """
        src = want_path(src, "src")
        try:
            fh = open(src, "rb")  # noqa: SIM115 (closed below; the errors are the caller's)
        except FileNotFoundError:
            raise PathNotFoundError(f"{src}: no such local file", details={"path": src}) from None
        except (ValueError, OSError) as exc:  # a NUL, a directory, a name too long
            raise InvalidPathError(f"invalid local file {src!r}: {exc}", details={"path": src}) from None
        with fh:
            return self.write(path, fh, mode=mode)

    def symlink(self, target: str, path: str) -> Stat:
        """Create symlink ``path`` pointing at ``target`` (``ln -s TARGET PATH``)."""
        if not want_str(target, "target") or "\x00" in target:
            raise InvalidPathError(f"invalid symlink target {target!r}")
        p = norm(path)
        parent = self.view.dir_node(names.parent_of(p)) if p else None
        if parent is None:
            raise IsDirectoryError("the workspace root is a directory")
        real = names.join(parent.path, names.basename(p))
        self.guard_change(real, "symlink")
        if names.git_dir_of(real) is not None:
            _planted(self.view, real, "link")
        if self.view.lookup(real) is not None:
            raise AlreadyExistsError(f"{real}: already exists", details={"path": real})
        live = self.live_dir()
        if live is not None:
            live.symlink(target, real)
            return self.view.stat(real)
        fid, size = self._store_bytes(target.encode("utf-8", "surrogateescape"))
        try:
            with self.overlay.txn() as db:
                if self.view.lookup(real) is not None:  # (made since the look above)
                    raise AlreadyExistsError(f"{real}: already exists", details={"path": real})
                self.overlay.put(db, Entry(real, FILE, MODE_LINK, None, fid, None, size), "symlink")
        except BaseException:
            unlink_quiet(self.overlay.file_path(fid))  # (a full disk's: nospace1, as write's)
            raise
        return self.view.stat(real)

    def mkdir(self, path: str, *, parents: bool = False, exist_ok: bool = False) -> None:
        p = norm(path)
        if not p:
            if exist_ok or parents:
                return
            raise AlreadyExistsError("the workspace root exists")
        existing = self.view.resolve_path(p, True) if parents or exist_ok else self.view.lookup(p)
        if existing is not None:
            if existing.is_dir and (exist_ok or parents):
                return
            raise AlreadyExistsError(f"{p}: already exists", details={"path": p})
        self.guard_change(p, "mkdir", is_dir=True, append=True)
        if names.git_dir_of(p) is not None:
            _planted(self.view, p, "dir")
        pnode = self._parent_dir(p, parents)
        real = names.join(pnode.path, names.basename(p))
        self.guard_change(real, "mkdir", is_dir=True, append=True)
        live = self.live_dir()
        if live is not None:
            live.mkdir(real)
            return
        with self.overlay.txn() as db:
            now = self.view.lookup(real)
            if now is not None and now.is_dir and (exist_ok or parents):
                # made since the look above (another writer's checkpoint moved it into the
                # base): an empty tree put here would hide what it holds
                return
            below = self.view.lookup(real, skip_self=True)
            if below is not None and below.mode == MODE_COMMIT:
                # a submodule removed, then a directory made at its path: to git that is the
                # submodule not checked out (the gitlink stays), which the mount shows so
                self.overlay.remove(db, real, "mkdir")
                return
            self.overlay.put(db, Entry(real, OBJECT, MODE_TREE, EMPTY_TREE), "mkdir")

    def _discard(self, db: Any, p: str, op: str) -> None:
        """Make ``p`` absent: drop entries at and under it, whiteout what lies beneath."""
        self.overlay.remove_under(db, p, op)
        self.overlay.remove(db, p, op)
        if self.view.lookup(p, skip_self=True) is not None:
            self.overlay.put(db, Entry(p, DELETED, 0), op)

    def remove(self, path: str, *, recursive: bool = False, expect: str | None = None) -> None:
        """Delete a file, symlink or (with ``recursive`` or when empty) a directory;
        ``expect``: only if it holds that blob id now (see :meth:`write`)."""
        if expect is not None:
            parse_expect(expect)
            with self.write_lock():
                self._check_expect(path, expect)
                return self.remove(path, recursive=recursive)
        p = norm(path)
        if not p:
            raise InvalidPathError("refusing to remove the workspace root")
        node = self.view.resolve(p, follow=False)
        p = node.path
        if node.is_dir and not recursive and self.view.children(node):
            raise DirectoryNotEmptyError(f"{p}: directory not empty", details={"path": p})
        self.guard_tree(p, "remove", is_dir=node.is_dir)
        live = self.live_dir()
        if live is not None:
            live.remove(p)
            return
        with self.overlay.txn() as db:
            self._discard(db, p, "remove")

    def rmdir(self, path: str) -> None:
        node = self.view.resolve(path, follow=False)
        if not node.is_dir and node.mode != MODE_COMMIT:  # (a submodule: an empty directory in a mount)
            raise NotDirectoryError(f"{node.path}: not a directory")
        self.remove(node.path)

    def chmod(self, path: str, executable: bool) -> Stat:
        """Set or clear the executable bit (the only mode bit git keeps)."""
        node = self.view.resolve(path)
        self.guard_change(norm(path), "chmod")
        self.guard_change(node.path, "chmod", is_dir=node.is_dir)
        if node.is_dir or node.is_link:
            raise InvalidPathError(f"{node.path}: only files have an executable bit")
        mode = MODE_EXEC if executable else MODE_BLOB
        if mode == node.mode:
            return self.view.stat(node.path)
        live = self.live_dir()
        if live is not None:
            live.chmod(node.path, executable)
            return self.view.stat(node.path)
        with self.overlay.txn() as db:
            # looked up again in the transaction (as a move is: :meth:`_move_or_copy`): an
            # entry a checkpoint retired or a write replaced since names a file unlinked
            node = self.view.resolve(node.path, follow=False)
            if node.is_dir or node.is_link:
                raise InvalidPathError(f"{node.path}: only files have an executable bit")
            e = node.entry
            if e is not None and mode != node.mode:
                self.overlay.put(db, Entry(e.path, e.kind, mode, e.oid, e.fileid, e.origin, e.size), "chmod")
            elif mode != node.mode:
                origin = self.view.origin(node.path)
                self.overlay.put(db, Entry(node.path, OBJECT, mode, node.oid, None, origin), "chmod")
        return self.view.stat(node.path)

    def _move_or_copy(self, src: str, dst: str, *, copy: bool) -> str:
        s = norm(src)
        d = norm(dst)
        if not s:
            raise InvalidPathError("cannot move or copy the workspace root")
        node = self.view.resolve(s, follow=False)
        s = node.path
        if not d:
            raise InvalidPathError("the destination is the workspace root")
        dparent = self.view.dir_node(names.parent_of(d))
        d = names.join(dparent.path, names.basename(d))
        if d == s:
            return d
        op = "copy" if copy else "rename"
        self._move_checks(node, d, op)
        if names.git_dir_of(d) is not None:
            _planted(self.view, d, "file", src=node)
        live = self.live_dir()
        if live is not None:
            if copy:
                live.copy(s, d)
            else:
                live.rename(s, d)
            return d
        new_files: list[str] = []
        try:
            with self.overlay.txn() as db:
                # the source and the target looked up again in the transaction: what was
                # looked up before it may have changed since, in another process (a
                # checkpoint that retired the source's entry unlinked the file it named,
                # and the rename gave that entry to ``d``, the saved version lost and
                # every later read of ``d`` and checkpoint of the fork failed, "overlay
                # file of d is missing": a pure-FUSE mount's editor save, twenty-fifth
                # round, NAME=raced1)
                fresh = self.view.resolve(s, follow=False)
                if fresh.is_dir != node.is_dir:
                    self._move_checks(fresh, d, op)  # (a file now a directory, or the reverse)
                else:
                    self._check_move_target(fresh, d)
                node = fresh
                origin = None if copy else self.view.origin(s)
                under = self.overlay.under(s) if node.is_dir else []
                e = node.entry
                if e is not None and e.kind == FILE:
                    fid = e.fileid
                    if copy:
                        assert e.fileid is not None
                        fid, _ = self._store_bytes(self.overlay.file_path(e.fileid))
                        new_files.append(fid)
                    # (its size now, not as last recorded: a pure-FUSE mount records a
                    # closed file's size a moment later, by its old path, which is gone by
                    # then: an editor's saved file counted 0 bytes against the quota)
                    top = Entry(d, FILE, e.mode, None, fid, origin, self._size_now(fid, e.size))
                else:
                    top = Entry(d, OBJECT, node.mode, node.oid, None, origin)
                self.overlay.remove_under(db, d, op)
                self.overlay.remove(db, d, op)
                # the entry the move made names where it came from: the change stream's rename
                self.overlay.put(db, top, f"{op}\t{s}")
                for sub in under:
                    rel = sub.path[len(s) + 1 :]
                    fid = sub.fileid
                    if copy and sub.kind == FILE:
                        assert sub.fileid is not None
                        fid, _ = self._store_bytes(self.overlay.file_path(sub.fileid))
                        new_files.append(fid)
                    sub_origin = None if copy else sub.origin
                    size = self._size_now(fid, sub.size) if sub.kind == FILE else sub.size
                    moved = Entry(names.join(d, rel), sub.kind, sub.mode, sub.oid, fid, sub_origin, size)
                    if not copy:
                        # keep the file: the old entry goes without unlinking it
                        self.overlay.forget(db, sub.path, op)
                    self.overlay.put(db, moved, op)
                if not copy:
                    if e is not None:
                        self.overlay.forget(db, s, op)
                    if self.view.lookup(s, skip_self=True) is not None:
                        self.overlay.put(db, Entry(s, DELETED, 0), op)
        except BaseException:
            for fid in new_files:
                unlink_quiet(self.overlay.file_path(fid))
            raise
        return d

    def _size_now(self, fileid: str | None, recorded: int) -> int:
        """The size of overlay file ``fileid`` now (``recorded`` when it cannot be read)."""
        if not fileid:
            return recorded
        try:
            return self.overlay.file_stat(fileid).st_size
        except OSError:
            return recorded

    def _move_checks(self, node: Node, d: str, op: str) -> None:
        """Refuse the move or copy (``op``) of ``node`` to ``d`` where it cannot be made:
        into itself, out of or into a place the path policy protects, onto a target
        POSIX ``rename`` refuses (:meth:`_check_move_target`)."""
        s = node.path
        if node.is_dir and names.is_within(d, s):
            raise InvalidPathError(f"cannot move {s} into itself ({d})")
        # out of a protected place (a rename; a copy only of what is hidden), into one
        self.guard_tree(s, op, is_dir=node.is_dir, kinds=("hidden",) if op == "copy" else None)
        self.guard_moved(s, d, op, node.is_dir)
        self._check_move_target(node, d)

    def _check_move_target(self, node: Node, d: str) -> None:
        """Refuse to move ``node`` onto what ``d`` holds (POSIX ``rename``'s rules): a
        file onto a directory, a directory onto a file or a directory not empty."""
        target = self.view.lookup(d)
        if target is None:
            return
        if target.is_dir:
            if not node.is_dir:
                raise IsDirectoryError(f"{d}: is a directory", details={"path": d})
            if self.view.children(target):
                raise DirectoryNotEmptyError(f"{d}: directory not empty", details={"path": d})
        elif node.is_dir:
            raise NotDirectoryError(f"{d}: not a directory", details={"path": d})

    def rename(self, src: str, dst: str, *, expect: str | None = None) -> str:
        """POSIX ``rename``: replaces a file or an empty directory at ``dst``; ``expect``:
        only if ``dst`` (what the move replaces) holds that blob id now, or nothing."""
        if expect is not None:
            parse_expect(expect)
            with self.write_lock():
                self._check_expect(dst, expect)
                return self._move_or_copy(src, dst, copy=False)
        return self._move_or_copy(src, dst, copy=False)

    def copy(self, src: str, dst: str, *, recursive: bool = False, expect: str | None = None) -> str:
        """Copy ``src`` to ``dst``; ``expect``: only if ``dst`` holds that blob id now, or
        nothing (see :meth:`rename`)."""
        if expect is not None:
            parse_expect(expect)
            with self.write_lock():
                self._check_expect(dst, expect)
                return self.copy(src, dst, recursive=recursive)
        node = self.view.resolve(src, follow=False)
        if node.is_dir and not recursive:
            raise IsDirectoryError(f"{node.path}: is a directory (use recursive copy)")
        return self._move_or_copy(src, dst, copy=True)

    def materialize(self, path: str, form: Callable[[Node], bytes | None] | None = None) -> Node:
        """Make a file's bytes a real overlay file (copying them out of git once), so
        writes can go straight to disk; returns the (now materialized) node. ``form``:
        the bytes a mount shows for a file of the base where they are not its blob's
        (git's checkout conversions: core/workspace/wssmudge.py)."""
        from . import wscopyout  # (here: a command that copies no file out of git never loads it)

        return wscopyout.materialize(self, self._store_bytes, path, form)

    def _written_sizes(self, paths: Iterable[str]) -> Iterator[tuple[Entry, int]]:
        """(entry, current size) of each path that is a materialized file of the overlay."""
        for path in paths:
            e = self.overlay.get(norm(path))
            if e is None or e.kind != FILE or not e.fileid:
                continue
            try:
                yield e, self.overlay.file_stat(e.fileid).st_size
            except FileNotFoundError:
                continue

    def note_written(self, *paths: str) -> None:
        """Record that materialized files changed through open descriptors: their sizes in
        the overlay and journal entries (what status, quota and `changes since` read), all
        in one transaction."""
        with self.overlay.txn() as db:
            for e, size in self._written_sizes(paths):
                self.overlay.put(db, Entry(e.path, e.kind, e.mode, e.oid, e.fileid, e.origin, size), "write")

    def record_sizes(self, paths: Iterable[str]) -> None:
        """Record the sizes of materialized files written through descriptors whose paths
        are journaled already (what quota reads), in one transaction, without journaling
        them again (a mount batches these after close())."""
        with self.overlay.txn() as db:
            for e, size in self._written_sizes(paths):
                assert e.fileid is not None
                self.overlay.set_size(db, e.path, e.fileid, size)

    def fold_upper(self, keep: frozenset[str] = frozenset()) -> int:
        """Move what an unmounted overlay's upper layer holds into the overlay's entries
        (:func:`.wsfold.fold_upper`; the top directories ``keep`` names stay); returns the
        number of paths folded."""
        return wsfold.fold_upper(
            self.overlay, self._store_bytes, self._discard, keep, wsfold.shown_by_mark(self, keep)
        )

    def checkout_check(self, path: str, tree: str) -> tuple[str, int] | None:
        """Refuse a checkout of ``path`` from ``tree`` before anything is written (a
        guarded path, a path in neither side); what ``tree`` holds at ``path``."""
        p = norm(path)
        node = self.view.lookup(p)
        self.guard_tree(p, "checkout", is_dir=node is not None and node.is_dir)
        hit: tuple[str, int] | None = self.store.tree_lookup(tree, p)
        if hit is None and node is None:
            raise PathNotFoundError(f"{p}: not in that revision nor in the workspace")
        return hit

    def checkout_path(self, path: str, tree: str) -> None:
        """Make ``path`` show what it is in ``tree`` (absent there: removed here)."""
        p = norm(path)
        hit = self.checkout_check(p, tree)
        if p and self.view.resolve_path(names.parent_of(p), True) is None and hit is not None:
            self.mkdir(names.parent_of(p), parents=True)
        live = self.live_dir()
        if live is not None:
            live.put(p, hit, tree)
            return
        with self.overlay.txn() as db:
            if hit is None:
                self._discard(db, p, "checkout")
                return
            self.overlay.remove_under(db, p, "checkout")
            origin = self.view.origin(p) if self.view.lookup(p, skip_self=True) is not None else None
            self.overlay.put(db, Entry(p, OBJECT, hit[1], hit[0], None, origin), "checkout")


def _file_mode(mode: int | None, old: int | None) -> int:
    if mode is None:
        return old if old in (MODE_BLOB, MODE_EXEC) else MODE_BLOB
    if mode in (0o644, MODE_BLOB):
        return MODE_BLOB
    if mode in (0o755, MODE_EXEC):
        return MODE_EXEC
    raise InvalidPathError(f"invalid file mode {oct(mode)}: use 644 or 755")


def _known_size(data: bytes | IO[bytes]) -> int | None:
    """How many bytes ``data`` holds: bytes, or what is left of a regular file; None for
    a pipe or another stream."""
    if isinstance(data, bytes):
        return len(data)
    try:
        st = os.fstat(data.fileno())
        if not stat_.S_ISREG(st.st_mode):
            return None
        return max(st.st_size - data.tell(), 0)
    except (OSError, AttributeError, ValueError):
        return None


def _planted(view: Any, p: str, kind: str, data: Any = None, src: Node | None = None) -> Any:
    """:func:`.plantedrule.refuse` (loaded only for a name of git's own state)."""
    from . import plantedrule

    return plantedrule.refuse(view, p, kind, data, src)
