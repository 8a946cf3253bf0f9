"""The merged view of a workspace: what a fork shows, its base commit's tree with its overlay's
entries on top, read-only.

One implementation for everyone who reads a fork: :class:`.workspace.Workspace` (file
commands, the mount), status and commit building (:mod:`.wsstatus`, :mod:`.wscommit`), and
search and full-text search (:mod:`.search`, :mod:`.fts`). It reads the overlay through its
lookups (``lookup``, ``children``, ``get``, ``get_many``, ``open_file``, ``file_path``) and the
base commit from its ``base`` record, so it sees a live overlay (:class:`.overlay.Overlay`,
each call reads what is there now) or a fixed one (:class:`.wssnapshot.Snapshot`: the entries
a search read once, or none at all for a revision).

Path rules: symlinks inside the workspace are followed by :meth:`View.resolve` when their
target stays inside it; a symlink that points outside (absolute, or ``..`` past the root) is
never followed: reading or writing through it raises :class:`SymlinkEscapeError` (``stat``
and ``ls`` show the link itself).
"""

from __future__ import annotations

import os
import posixpath
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

from ..errors import (
    CorruptStateError,
    InvalidPathError,
    IsDirectoryError,
    NotDirectoryError,
    PathNotFoundError,
    SymlinkEscapeError,
    SymlinkLoopError,
)
from ..store import names
from ..store.gitstore import GitStore
from ..store.packwriter import file_blob_id
from ..types import MODE_COMMIT, MODE_LINK, MODE_TREE, DirEntry, Stat, kind_of_mode
from .overlayentry import DELETED, FILE, OBJECT, UPPER_FILE, Entry
from .wssnapshot import Entries, Snapshot

MAX_SYMLINK_HOPS = 40
CHUNK = 1 << 20
# reads of the overlay a capture makes before it gives up (busy) while writers keep replacing
# files under it; a retry only re-reads entries (objects already packed stay as duplicates).
# 5 was too few with 7 threads rewriting one file while the ignore rules are applied (CI)
RACE_TRIES = 16
# A path already in normal form whose names are plain ASCII not starting with '.' (so no
# '.', '..' or '.git'), too short for any name to be too long: what norm_path would return
# it as, without its checks of every character (a fifth of a stat's time).
_PLAIN_PATH = re.compile(r"[\w+,=@~-][\w+,=@~.-]*(?:/[\w+,=@~-][\w+,=@~.-]*)*", re.ASCII)


def norm(path: str) -> str:
    """:func:`.names.norm_path`, with a fast way for paths already plain and normal."""
    if type(path) is str and len(path) <= names.MAX_COMPONENT_BYTES and _PLAIN_PATH.fullmatch(path):
        return path
    return names.norm_path(path)


def norm_read(path: str) -> str:
    """:func:`norm` for a read: a name from git whose bytes are not UTF-8 (as
    ``surrogateescape`` holds them) is a path a tree can have and a read must find; what
    avfs writes stays text (:func:`norm`)."""
    if type(path) is str and len(path) <= names.MAX_COMPONENT_BYTES and _PLAIN_PATH.fullmatch(path):
        return path
    return names.norm_path(path, text=False)


class Raced(CorruptStateError):
    """An entry read a moment ago was replaced, and the file it named unlinked, by a write
    of another thread or process: read, stat and capture look again (a few times)."""


def settled_now() -> int:
    """Now, in whole seconds, one second back: a file time git's index can trust at once
    (an entry as new as the index file itself is "racily clean" and gets re-read)."""
    return int(time.time()) - 1


def dirty_dirs(entries: Iterable[Entry]) -> set[str]:
    """Every directory above an entry of ``entries`` (the root included)."""
    return names.ancestors_of_all(e.path for e in entries)


class Node:
    """One path as the workspace shows it."""

    __slots__ = ("entry", "mode", "oid", "path")

    def __init__(self, path: str, mode: int, oid: str | None, entry: Entry | None) -> None:
        self.path = path
        self.mode = mode
        self.oid = oid  # git object id: the blob, or the underlying tree of a directory
        self.entry = entry  # the overlay entry at this very path, if any

    @property
    def is_dir(self) -> bool:
        return self.mode == MODE_TREE

    @property
    def is_link(self) -> bool:
        return self.mode == MODE_LINK

    @property
    def materialized(self) -> bool:
        return self.entry is not None and self.entry.kind == FILE


def _fd_blob_id(path: str) -> str:
    """The blob id of the file a ``/proc/PID/fd/N`` path names (an open descriptor's)."""
    return file_blob_id(path, follow=True)


def once_a_file() -> Callable[[str], str]:
    """:func:`_fd_blob_id` for one pass over many paths: a file of several names (hard
    links) is hashed once while its size and times stay (the thirty-fourth round,
    NAME=attack25: a confined command's 4,000 links to one 16 MiB file, 16 MiB of its
    quota, had the exec's status hash 62 GiB; ext4 allows 65,000 links a file). Within one
    pass only: each name then shows the file as it was at one moment of that pass."""
    seen: dict[tuple[int, int, int, int, int], str] = {}

    def hashed(path: str) -> str:
        st = os.stat(path)
        if st.st_nlink < 2:
            return _fd_blob_id(path)
        key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        if (oid := seen.get(key)) is None:
            oid = seen[key] = _fd_blob_id(path)
        return oid

    return hashed


class View:
    """What a workspace shows: the tree of its base commit (the ``base`` record of its
    entries) with the overlay's entries on top, read-only. Over a live :class:`.overlay.Overlay`
    each call reads the overlay as it is then; over a :class:`.wssnapshot.Snapshot`, one moment's state
    (or a revision's tree: :meth:`of_commit`)."""

    def __init__(self, store: GitStore, source: Entries, *, scan: bool = False) -> None:
        """``scan``: the view is read whole, once, in one thread (a search): blobs are read
        with :meth:`.gitstore.GitStore.blob_reader`."""
        self.store = store
        self.source = source
        self.scan = scan
        # the fork's branch, whose config git in its worktree reads (``includeIf
        # "onbranch:"``: core/store/lineconfig.py, fork_settings); None: the vault's reading
        self.branch: str | None = None
        self._blob_reader: Callable[[str], bytes] | None = None
        self._base_tree_cache: tuple[str, str] | None = None
        self._sizes_asked: str | None = None  # the base tree whose sizes were asked (learn_sizes)

    def learn_sizes(self) -> None:
        """A lazy vault: ask the server the sizes of the base tree's files, once per tree
        and handle, before a size or a read that must go to the server (one request; the
        clone asks none, a mount asks them as it starts: fuse/settle.py). A read's
        neighbours are picked by size, and a size is not fetched with its blob."""
        promisor = self.store.promisor
        if promisor.remote() is None or promisor.pending():  # (pending: a mount is asking)
            return
        tree = self.base_tree
        if self._sizes_asked != tree:
            self._sizes_asked = tree
            self.store.ensure_sizes(tree, fetch=False)

    @classmethod
    def of_commit(cls, store: GitStore, commit: str, *, scan: bool = False) -> View:
        """The tree of ``commit``, nothing on top."""
        return cls(store, Snapshot(commit), scan=scan)

    @classmethod
    def of_tree(cls, store: GitStore, tree: str) -> View:
        """Tree ``tree`` itself, nothing on top, no commit made for it (its ``base`` is the
        tree's id: a merge's result looked at before it is one, mergeplanted.refuse_shown)."""
        view = cls(store, Snapshot(tree))
        view._base_tree_cache = (tree, tree)
        return view

    @property
    def commit(self) -> str | None:
        """The revision a view of one shows (:meth:`of_commit`), else None."""
        src = self.source
        return src.base if isinstance(src, Snapshot) and src.overlay is None else None

    @property
    def base(self) -> str:
        base = self.source.get_meta("base")
        if base is None:  # pragma: no cover - set by sync_base
            raise CorruptStateError("the workspace has no base commit")
        return base

    @property
    def base_tree(self) -> str:
        return self._tree_of_base(self.base)

    def _node_from_entry(self, e: Entry) -> Node | None:
        if e.kind == DELETED:
            return None
        if e.kind == FILE:
            return Node(e.path, e.mode, None, e)
        return Node(e.path, e.mode, e.oid, e)

    def lookup(self, path: str, *, skip_self: bool = False) -> Node | None:
        """The node at normalised ``path`` without following symlinks (None if absent).

        With ``skip_self`` the entry at ``path`` itself is ignored: the result is what the
        path would be without it (its *underlying* state).
        """
        chain = names.ancestors(path)
        if path or not skip_self:
            chain.append(path)
        if not chain:
            return self.lookup_in(path, chain, {}, skip_self=skip_self)
        entries, _, base = self.source.lookup(chain)
        return self.lookup_in(path, chain, entries, skip_self=skip_self, base=base)

    def lookup_in(
        self,
        path: str,
        chain: list[str],
        entries: Mapping[str, Entry],
        *,
        skip_self: bool = False,
        base: str | None = None,
    ) -> Node | None:
        """:meth:`lookup` from the overlay entries of ``chain`` (``path``'s ancestors and,
        unless skipped, ``path``) read by the caller (``entries`` may hold more), and the
        base commit read with them (None: read it when needed)."""
        deepest: Entry | None = None
        for p in reversed(chain):
            e = entries.get(p)
            if e is not None and not (skip_self and p == path):
                deepest = e
                break
        if deepest is not None and deepest.path == path:
            return self._node_from_entry(deepest)
        if deepest is not None:
            if deepest.kind != OBJECT or deepest.mode != MODE_TREE or deepest.oid is None:
                return None
            rest = path[len(deepest.path) + 1 :] if deepest.path else path
            hit = self.store.tree_lookup(deepest.oid, rest)
        else:
            base_tree = self._tree_of_base(base)
            if not path:
                return Node("", MODE_TREE, base_tree, None)
            hit = self.store.tree_lookup(base_tree, path)
        if hit is None:
            return None
        return Node(path, hit[1], hit[0], None)

    def _tree_of_base(self, base: str | None) -> str:
        """The tree of base commit ``base`` (read with the caller's entries), or of the
        current base when None."""
        if base is None:
            return self.base_tree
        cached = self._base_tree_cache
        if cached is not None and cached[0] == base:
            return cached[1]
        tree = self.store.commit_tree(base)
        self._base_tree_cache = (base, tree)
        return tree

    def link_target(self, node: Node) -> str:
        return self.read_node(node).decode("utf-8", "surrogateescape")

    def follow(self, link_path: str, target: str) -> str:
        """Resolve a symlink target relative to its directory, refusing escapes."""
        if target.startswith("/"):
            raise SymlinkEscapeError(
                f"{link_path} is a symlink to an absolute path ({target}); avfs does not follow"
                " links out of the workspace",
                hint="use `avfs ls -l` or `stat` to see the link itself",
                details={"path": link_path, "target": target},
            )
        joined = posixpath.normpath(posixpath.join(names.parent_of(link_path), target))
        if joined == ".":
            return ""
        if joined == ".." or joined.startswith("../"):
            raise SymlinkEscapeError(
                f"{link_path} is a symlink that points outside the workspace ({target})",
                hint="use `avfs ls -l` or `stat` to see the link itself",
                details={"path": link_path, "target": target},
            )
        return names.norm_path(joined)

    def resolve(self, path: str, *, follow: bool = True) -> Node:
        """The node at ``path``, following in-workspace symlinks (the last one if ``follow``).

        Raises:
            PathNotFoundError, NotDirectoryError, SymlinkEscapeError, SymlinkLoopError.
        """
        p = norm_read(path)
        node = self.resolve_path(p, follow)
        if node is None:
            raise PathNotFoundError(f"{p or '/'}: no such file or directory", details={"path": p})
        return node

    def resolve_path(self, p: str, follow: bool, hops: int = 0) -> Node | None:
        if hops > MAX_SYMLINK_HOPS:
            raise SymlinkLoopError(f"{p}: too many levels of symbolic links")
        node = self.lookup(p)
        if node is None and p:
            # the direct lookup failed: an ancestor may be a symlink or a file. Find the
            # deepest ancestor that exists by bisection (a path exists only below existing
            # ones; paths can be 2,000 levels deep, and a missing level is no symlink hop)
            comps = p.split("/")
            lo, hi = 0, len(comps)  # comps[:lo] exists (the root), comps[:hi] does not
            anode: Node | None = None
            while hi - lo > 1:
                mid = (lo + hi) // 2
                hit = self.lookup("/".join(comps[:mid]))
                if hit is None:
                    hi = mid
                else:
                    lo, anode = mid, hit
            if anode is None:
                return None  # nothing of p exists below the root
            anc = "/".join(comps[:lo])
            if anode.is_link:
                real = self.resolve_path(anc, True, hops + 1)
                if real is None:
                    return None
                if not real.is_dir:
                    raise NotDirectoryError(f"{anc}: not a directory", details={"path": anc})
                return self.resolve_path(names.join(real.path, "/".join(comps[lo:])), follow, hops + 1)
            if not anode.is_dir:
                raise NotDirectoryError.at(anc, submodule=anode.mode == MODE_COMMIT)
            return None
        if node is not None and follow and node.is_link:
            target = self.follow(p, self.link_target(node))
            return self.resolve_path(target, True, hops + 1)
        return node

    def dir_node(self, p: str) -> Node:
        node = self.resolve_path(p, True)
        if node is None:
            raise PathNotFoundError(f"{p or '/'}: no such directory", details={"path": p})
        if not node.is_dir:
            raise NotDirectoryError.at(p, submodule=node.mode == MODE_COMMIT)
        return node

    def exists(self, path: str) -> bool:
        try:
            return self.resolve_path(norm_read(path), False) is not None
        except (NotDirectoryError, SymlinkEscapeError, SymlinkLoopError):
            return False

    def _raise_if_replaced(self, node: Node) -> None:
        """Raise :class:`Raced` when the entry ``node`` was looked up from has been
        replaced since (a write unlinks the file it replaced): the caller looks again."""
        assert node.entry is not None
        now = self.source.get(node.path)
        if now is None or now.seq != node.entry.seq or now.fileid != node.entry.fileid:
            raise Raced(f"{node.path} was replaced while being read", details={"path": node.path})

    def read_node(self, node: Node, limit: int | None = None) -> bytes:
        """``node``'s bytes; with ``limit``, at most that many of a file of the overlay (one a
        mount's writer may be growing: a check that looked at its size first reads no more
        than it allows, the review of the thirty-fifth round)."""
        if node.entry is not None and node.entry.kind == FILE:
            assert node.entry.fileid is not None
            try:
                fd = self.source.open_file(node.entry.fileid)
            except CorruptStateError:
                self._raise_if_replaced(node)
                raise
            try:
                # sized by the entry (a mount's writes may have changed the file since: read
                # on to the end), without a file object's fstat and seek calls
                chunks = []
                want = max(node.entry.size, 4096) + 1
                left = -1 if limit is None else limit
                if left >= 0:
                    want = min(want, left)
                while want and (chunk := os.read(fd, want)):
                    chunks.append(chunk)
                    want = CHUNK
                    if left >= 0:
                        left -= len(chunk)
                        want = min(want, left)
            finally:
                os.close(fd)
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)
        assert node.oid is not None
        if self.scan:
            reader = self._blob_reader
            if reader is None:
                reader = self._blob_reader = self.store.blob_reader()
            return reader(node.oid)
        return self.store.blob_data(node.oid, path=node.path, near=self.near)

    def near(self, path: str) -> str | None:
        """The tree of directory ``path``, for a read that must fetch (what it brings along:
        core/store/neighbours.py), the sizes of the base tree known first (:meth:`learn_sizes`:
        neighbours are picked by size)."""
        self.learn_sizes()
        return self.tree_of_dir(path)

    def dir_tree(self, path: str) -> str | None:
        """The git tree of the directory holding ``path`` (a lazy vault's read of ``path``
        fetches its other promised blobs with it: core/store/neighbours.py), or None."""
        return self.tree_of_dir(path.rpartition("/")[0])

    def tree_of_dir(self, path: str) -> str | None:
        """The git tree of directory ``path`` as this view sees it (None: not a directory,
        or one git does not hold): where a lazy vault's read looks for neighbours."""
        d = self.lookup(path)
        return d.oid if d is not None and d.is_dir else None

    def read(self, path: str) -> bytes:
        """Return the bytes of a file (following in-workspace symlinks)."""
        for tries_left in range(RACE_TRIES - 1, -1, -1):
            node = self.resolve(path)
            if node.is_dir or node.mode == MODE_COMMIT:  # (a submodule: a directory in a mount)
                what = "a submodule" if node.mode == MODE_COMMIT else "a directory"
                raise IsDirectoryError(f"{node.path or '/'}: is {what}", details={"path": node.path})
            try:
                return self.read_node(node)
            except Raced:
                if not tries_left:
                    raise
        raise AssertionError("unreachable")

    def read_link(self, path: str) -> str:
        node = self.resolve(path, follow=False)
        if not node.is_link:
            raise InvalidPathError(f"{node.path}: not a symlink", details={"path": node.path})
        return self.link_target(node)

    def size(self, node: Node) -> int:
        if node.is_dir or node.mode == MODE_COMMIT:  # (a submodule names a commit: no bytes here)
            return 0
        if node.entry is not None and node.entry.kind == FILE:
            assert node.entry.fileid is not None
            try:
                return self.source.file_stat(node.entry.fileid).st_size
            except FileNotFoundError as exc:
                self._raise_if_replaced(node)
                raise CorruptStateError(f"overlay file of {node.path} is missing") from exc
        assert node.oid is not None
        promisor = self.store.promisor
        if promisor.remote() is not None and promisor.size(node.oid) is None:
            if promisor.pending():  # a mount asks the whole tree's: its directory's come first
                from ..store.treesizes import ask_dir

                ask_dir(self.store, self.tree_of_dir(node.path.rpartition("/")[0]))
            self.learn_sizes()  # (a lazy vault: once per handle)
        return self.store.blob_size(node.oid, path=node.path)

    def stat(self, path: str, *, follow: bool = False) -> Stat:
        for tries_left in range(RACE_TRIES - 1, -1, -1):
            node = self.resolve(path, follow=follow)
            try:
                target = self.link_target(node) if node.is_link else None
                size = self.size(node)
            except Raced:
                if not tries_left:
                    raise
                continue
            return Stat(
                path=node.path,
                kind=kind_of_mode(node.mode),
                mode=node.mode,
                size=size,
                oid=None if node.materialized else node.oid,
                materialized=node.materialized,
                target=target,
            )
        raise AssertionError("unreachable")

    def children(self, d: Node) -> dict[str, Node]:
        """name -> node of a directory (underlying tree overlaid with overlay entries)."""
        return self.children_of(d, self.source.children(d.path))

    def child_names(self, d: Node) -> list[str]:
        """The names of :meth:`children`, no node made for each (the planted rule's look)."""
        out = dict.fromkeys(self.store.tree_items(d.oid))
        for e in self.source.children(d.path):
            if e.kind == DELETED:
                out.pop(names.basename(e.path), None)
            else:
                out[names.basename(e.path)] = None
        return list(out)

    def children_of(self, d: Node, entries: Iterable[Entry]) -> dict[str, Node]:
        """:meth:`children` from the overlay entries whose parent is ``d`` (read already)."""
        out: dict[str, Node] = {}
        prefix = d.path + "/" if d.path else ""
        for name, (oid, mode) in self.store.tree_items(d.oid).items():
            out[name] = Node(prefix + name, mode, oid, None)
        for e in entries:
            name = names.basename(e.path)
            n = self._node_from_entry(e)
            if n is None:
                out.pop(name, None)
            else:
                out[name] = n
        return out

    def listdir(self, path: str = "", *, sizes: bool = False) -> list[DirEntry]:
        """The entries of a directory, sorted by name."""
        p = norm_read(path)
        # one query for the directory's chain and its children; a directory reached
        # through a symlink (or not there) takes the general way
        chain = names.ancestors(p)
        chain.append(p)
        entries, kids, base = self.source.lookup(chain, p)
        d = self.lookup_in(p, chain, entries, base=base)
        if d is not None and d.is_dir:
            children = self.children_of(d, kids)
        else:
            d = self.dir_node(p)
            children = self.children(d)
        out = []
        for name, n in sorted(children.items()):
            out.append(
                DirEntry(
                    name=name,
                    path=n.path,
                    kind=kind_of_mode(n.mode),
                    mode=n.mode,
                    size=(self.size(n) if sizes and not n.is_dir else None),
                )
            )
        return out

    def walk(
        self, path: str = "", *, max_depth: int | None = None, prune: Callable[[str], bool] | None = None
    ) -> Iterator[DirEntry]:
        """Every entry below ``path``, depth first, directories before their contents;
        ``prune(dir path)`` True: that directory listed, not what is below it."""
        d = self.dir_node(norm_read(path))

        def rec(node: Node, depth: int) -> Iterator[DirEntry]:
            for name, n in sorted(self.children(node).items()):
                yield DirEntry(name, n.path, kind_of_mode(n.mode), n.mode, None)
                if n.is_dir and (max_depth is None or depth < max_depth) and not (prune and prune(n.path)):
                    yield from rec(n, depth + 1)

        yield from rec(d, 1)

    def nodes_below(self, start: Node, *, prune: Callable[[Node], bool] | None = None) -> Iterator[Node]:
        """Every node below directory ``start`` (not itself), sorted by name, each
        directory's entries before those of its subdirectories, depth first (what ``find``
        lists). ``prune(dir)`` True: not below that directory."""
        stack = [start]
        while stack:
            d = stack.pop()
            kids = self.children(d)
            subdirs: list[Node] = []
            for name in sorted(kids):
                n = kids[name]
                yield n
                if n.mode == MODE_TREE and not (prune is not None and prune(n)):
                    subdirs.append(n)
            stack.extend(reversed(subdirs))

    def files(self, starts: Sequence[Node]) -> Iterator[Node]:
        """Regular files (no symlinks, submodules) at or below the start points."""
        for st in starts:
            if st.mode == MODE_TREE:
                for n in self.nodes_below(st):
                    if n.mode != MODE_TREE and n.mode != MODE_LINK and n.mode != MODE_COMMIT:
                        yield n
            elif st.mode != MODE_LINK and st.mode != MODE_COMMIT:
                yield st

    def file_path(self, node: Node) -> str | None:
        """Where a materialized file's bytes are (None for content still in git)."""
        if node.entry is not None and node.entry.kind == FILE and node.entry.fileid:
            return self.source.file_path(node.entry.fileid)
        return None

    def open_regular(self, node: Node) -> int | None:
        """A descriptor of a materialized file's bytes (None for content still in git),
        opened from its root with no link followed on the way or at the end
        (:func:`.safeopen.open_regular`: an upper layer's file is the running command's
        to rename); OSError as that raises."""
        if node.entry is not None and node.entry.kind == FILE and node.entry.fileid:
            return self.source.open_regular(node.entry.fileid)
        return None

    def entry_oid(self, n: Node, hash_file: Callable[[str], str] = _fd_blob_id) -> str:
        """The git id of what a node shows (materialized files are hashed, not stored; an
        upper layer's by ``hash_file``: :func:`once_a_file` for a pass over many)."""
        if n.entry is not None and n.entry.kind == FILE:
            assert n.entry.fileid is not None
            try:
                if n.entry.fileid.startswith(UPPER_FILE):
                    return self.source.upper_oid(n.entry.fileid, hash_file)
                return file_blob_id(self.source.file_path(n.entry.fileid))
            except OSError as exc:  # (gone: replaced or retired since it was read, race1)
                gone = isinstance(exc, FileNotFoundError)
                if gone and n.entry.fileid.startswith(UPPER_FILE):  # the kernel's: replaced at any time
                    raise Raced(f"{n.path} was replaced while being read", details={"path": n.path}) from None
                if gone:
                    self._raise_if_replaced(n)  # its file unlinked: looked at again, as a read is
                raise CorruptStateError(f"overlay file of {n.path} is unreadable: {exc}") from exc
        assert n.oid is not None
        return n.oid

    def origin(self, p: str) -> str | None:
        """The base path whose content ``p`` shows (None for new content)."""
        chain = [*names.ancestors(p), p]
        return self.origin_in(p, chain, self.source.get_many(chain))

    def origin_in(self, p: str, chain: list[str], entries: Mapping[str, Entry]) -> str | None:
        """:meth:`origin` from the overlay entries of ``chain`` (``p`` and its ancestors)."""
        for q in reversed(chain):
            e = entries.get(q)
            if e is None:
                continue
            if e.origin is None:
                return None
            rest = p[len(q) :].lstrip("/")
            return names.join(e.origin, rest) if rest else e.origin
        return p
