"""What ``git checkout`` writes for the base's files: the working-tree form a mount shows
of a file it serves from git (docs/fuse.md, "Checkout conversions"). git's checkout applies
the smudge side of ``.gitattributes`` (``eol=crlf``, ``ident``, ``working-tree-encoding``,
``core.autocrlf=true``); a mount that showed the blob's bytes showed LF where a checkout
writes CRLF, ``$Id$`` unexpanded and UTF-8 where a checkout writes UTF-16 (and git's
``status`` then failed on such a file: "BOM is required").

The attributes are the base tree's (those ``git checkout`` of the base reads), the
vault's ``info/attributes`` and config, git's global and system attribute files
(:mod:`~..store.gitattrfiles`): a file changed since the base is the overlay's
bytes as they were written, never converted.

What it costs: nothing for a tree none of whose ``.gitattributes`` names ``crlf``,
``ident`` or ``working-tree-encoding`` (and ``text`` where ``core.eol=crlf``) and whose
vault has no ``core.autocrlf=true``: one tree lookup per directory, once per base, then a
dictionary lookup per file asked. Elsewhere libgit2's filters convert each file below such
an attribute file once (:class:`~.gitsmudge.Smudger`), the forms kept by path and blob
(:data:`CACHE_BYTES`).
"""

from __future__ import annotations

import os
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Protocol

from ..store import names
from ..store.gitattrfiles import outer_attributes
from ..store.gitclean import ATTRIBUTES
from ..store.gitsmudge import MAX_FORM, Smudger, may_smudge
from ..store.gitstore import GitStore
from ..types import MODE_BLOB, MODE_EXEC, MODE_TREE
from .wsattrs import autocrlf, eol_crlf

# converted forms kept (by path and blob), least recently used out; the last one asked is
# kept whatever its size: a mount's lower view reads a file in steps of 128 KiB and asks
# for its form at each (found in the eighth attack round: a form past a quarter of this
# was made again at every step, and a 32 MiB file under `* eol=crlf` took the daemon over
# 300 s to read once, where the blob alone took 0.03 s)
CACHE_BYTES = 32 << 20


class CheckoutForms:
    """The working-tree form of files of one store's trees (see the module's text),
    thread-safe; :meth:`close` when done."""

    def __init__(self, store: GitStore, branch: str | None = None) -> None:
        self.store = store
        self.branch = branch  # the fork's: its config as git in its worktree reads it
        self._lock = threading.Lock()
        self._tree: str | None = None
        self._commit: tuple[str, str] | None = None  # (commit, its tree): see tree_of
        self._everywhere = False  # core.autocrlf=true: every text file may be converted
        self._eol_crlf = False  # core.eol=crlf: `text` converts too
        self._files: dict[str, bytes | None] = {}  # directory -> its .gitattributes' bytes
        self._trees: dict[str, str | None] = {}  # directory -> its tree in the base
        self._under: dict[str, bool] = {}  # directory -> whether a file in it may be converted
        self._smudger: Smudger | None = None
        self._given: set[str] = set()  # directories whose attribute file the smudger has
        self._forms: OrderedDict[tuple[str, str], bytes | None] = OrderedDict()
        self._bytes = 0

    def tree_of(self, commit: str) -> str:
        """The tree of ``commit`` (the last one asked is kept)."""
        known = self._commit
        if known is not None and known[0] == commit:
            return known[1]
        tree = self.store.commit_tree(commit)
        self._commit = (commit, tree)
        return tree

    def form(self, tree: str, path: str, oid: str, mode: int, read: Callable[[], bytes]) -> bytes | None:
        """What ``git checkout`` of ``tree`` writes at ``path`` (blob ``oid`` of
        ``mode``, whose bytes ``read()`` gives); None when that is the blob's bytes."""
        if mode not in (MODE_BLOB, MODE_EXEC):
            return None
        with self._lock:
            if tree != self._tree:
                self._reset(tree)
            if not self._may(path):
                return None
            key = (path, oid)
            if key in self._forms:
                self._forms.move_to_end(key)
                return self._forms[key]
        if self.store.blob_size(oid) > MAX_FORM:
            return None  # (shown as it is, never read whole: gitsmudge.MAX_FORM)
        data = read()
        with self._lock:
            if tree != self._tree:
                return None  # (moved meanwhile: the caller asks again with the new tree)
            smudger = self._smudger_for(path)
            out = smudger.smudge(path, data)
            self._keep((path, oid), out)
        return out

    def may(self, tree: str, path: str) -> bool:
        """Whether a file at ``path`` of ``tree`` may be converted at all (an attribute
        file above it, or the config, names a checkout conversion)."""
        with self._lock:
            if tree != self._tree:
                self._reset(tree)
            return self._may(path)

    def _reset(self, tree: str) -> None:
        if self._smudger is not None:
            self._smudger.close()
        self._tree, self._smudger = tree, None
        self._files, self._trees, self._under, self._given = {}, {}, {}, set()
        self._forms, self._bytes = OrderedDict(), 0
        self._everywhere = autocrlf(self.store, self.branch) == "true"
        self._eol_crlf = not self._everywhere and eol_crlf(self.store, self.branch)
        info = self._info()
        outer = outer_attributes(self.store.path, self.branch)  # (git's global and system attribute files)
        if may_smudge([info or b"", outer], eol_crlf=self._eol_crlf):
            self._everywhere = True

    def _info(self) -> bytes | None:
        try:
            with open(os.path.join(self.store.path, "info", "attributes"), "rb") as fh:
                return fh.read()
        except OSError:
            return None

    def _dir_tree(self, d: str) -> str | None:
        """The tree of directory ``d`` in the base (one tree read per directory: its
        parent's is kept)."""
        if d in self._trees:
            return self._trees[d]
        assert self._tree is not None
        if not d:
            got: str | None = self._tree
        else:
            parent, _, name = d.rpartition("/")
            up = self._dir_tree(parent)
            held = self.store.tree_lookup(up, name) if up is not None else None
            got = held[0] if held is not None and held[1] == MODE_TREE else None
        self._trees[d] = got
        return got

    def _attributes(self, d: str) -> bytes | None:
        if d not in self._files:
            tree = self._dir_tree(d)
            held = self.store.tree_lookup(tree, ATTRIBUTES) if tree is not None else None
            data = None
            if held is not None and held[1] in (MODE_BLOB, MODE_EXEC):  # (never through a link)
                data = self.store.blob_data(held[0])
            self._files[d] = data
        return self._files[d]

    def _may(self, path: str) -> bool:
        if self._everywhere:
            return True
        parent = path.rpartition("/")[0]
        hit = self._under.get(parent)
        if hit is None:
            hit = False
            for d in names.ancestors(path):
                data = self._attributes(d)
                if data is not None and may_smudge([data], eol_crlf=self._eol_crlf):
                    hit = True
                    break
            self._under[parent] = hit
        return hit

    def _smudger_for(self, path: str) -> Smudger:
        if self._smudger is None:
            self._smudger = Smudger(self.store.path, self.branch)
        for d in names.ancestors(path):
            if d in self._given:
                continue
            data = self._attributes(d)
            if data is not None:
                self._smudger.add_attributes(d, data)
            self._given.add(d)
        return self._smudger

    def _keep(self, key: tuple[str, str], out: bytes | None) -> None:
        old = self._forms.pop(key, None)  # (two readers of one file converted it at once)
        self._bytes += (len(out) if out is not None else 0) - (len(old) if old is not None else 0)
        self._forms[key] = out
        while self._bytes > CACHE_BYTES and len(self._forms) > 1:
            old = self._forms.popitem(last=False)[1]
            self._bytes -= len(old) if old is not None else 0

    def close(self) -> None:
        with self._lock:
            if self._smudger is not None:
                self._smudger.close()
                self._smudger = None


class _HasStore(Protocol):
    @property
    def store(self) -> GitStore: ...

    @property
    def fork(self) -> str: ...


def checkout_forms(ws: _HasStore) -> CheckoutForms:
    """The checkout forms of workspace ``ws``'s files (a mount's views: fuse/ asks the
    workspace, never its store)."""
    return CheckoutForms(ws.store, ws.fork)


def converts_anywhere(store: GitStore, attributes: bool, branch: str | None = None) -> bool:
    """Whether a checkout of a tree may convert any file: it holds a ``.gitattributes``
    (``attributes``), or the vault has ``info/attributes`` or ``core.autocrlf=true``, or
    git has a global or system attribute file."""
    return (
        attributes
        or os.path.exists(os.path.join(store.path, "info", "attributes"))
        or autocrlf(store, branch) == "true"
        or bool(outer_attributes(store.path, branch))
    )


def checkout_sizes(
    store: GitStore, base: str | None, branch: str | None = None
) -> Callable[[str, int, str], int | None] | None:
    """``size(path, mode, oid)``: the size of what ``git checkout`` of commit ``base``
    writes at ``path`` where a conversion changes the blob, else None (what a mount's git
    index must hold: git takes a size other than the file's for a change). In a lazy vault
    a blob not fetched yet is not fetched for it: a file a conversion may change gets 0,
    which git takes for "not known", reading the file to compare it (as after its own
    ``read-tree``) where it would take the blob's size for a change."""
    if base is None:
        return None
    forms = CheckoutForms(store, branch)
    tree = store.commit_tree(base)
    lazy = store.promisor.remote() is not None

    quiet: set[str] = set()  # directories no file of which a checkout converts

    def size(path: str, mode: int, oid: str) -> int | None:
        parent = path.rpartition("/")[0]
        if parent in quiet:
            return None  # (a whole index's files: one set lookup each, not a call)
        if lazy and not store.is_local(oid):
            if forms.may(tree, path):
                return 0 if mode in (MODE_BLOB, MODE_EXEC) else None
            quiet.add(parent)
            return None
        form = forms.form(tree, path, oid, mode, lambda: store.blob_data(oid))
        if form is None and not forms.may(tree, path):
            quiet.add(parent)
        return None if form is None else len(form)

    weakref.finalize(size, forms.close)
    return size


def attribute_dirs(moved: Iterable[str]) -> list[str]:
    """The directories (shallowest, none below another) whose ``.gitattributes`` is among
    ``moved`` (the paths where two trees differ): below them a file's checkout form may
    differ with its blob the same."""
    tops: list[str] = []
    for d in sorted({names.parent_of(p) for p in moved if names.basename(p) == ATTRIBUTES}):
        if not any(not t or d == t or d.startswith(t + "/") for t in tops):
            tops.append(d)
    return tops


def reformed(
    store: GitStore, old: str, new: str, moved: Iterable[str], branch: str | None = None
) -> list[str]:
    """The files of tree ``new`` holding the same blob as in tree ``old`` that ``git
    checkout`` writes as other bytes under one tree's attributes than under the other's
    (a ``.gitattributes`` among ``moved``, the paths where the trees differ, changed):
    what a view moved from ``old`` to ``new`` shows anew though neither tree changed it.
    O(files below such a directory); nothing read where no attributes changed."""
    tops = attribute_dirs(moved)
    if not tops:
        return []
    before, after = CheckoutForms(store, branch), CheckoutForms(store, branch)
    out: list[str] = []
    try:
        for top in tops:
            hit = (new, MODE_TREE) if not top else store.tree_lookup(new, top)
            if hit is None or hit[1] != MODE_TREE:
                continue
            stack = [(top, hit[0])]
            while stack:
                d, tree = stack.pop()
                for name, (oid, mode) in store.tree_items(tree).items():
                    p = f"{d}/{name}" if d else name
                    if mode == MODE_TREE:
                        stack.append((p, oid))
                        continue
                    if mode not in (MODE_BLOB, MODE_EXEC) or name == ATTRIBUTES:
                        continue
                    if not before.may(old, p) and not after.may(new, p):
                        continue
                    if store.tree_lookup(old, p) != (oid, mode):
                        continue  # (changed by the move itself: among ``moved``)
                    data: list[bytes] = []

                    def read(oid: str = oid, data: list[bytes] = data) -> bytes:
                        if not data:
                            data.append(store.blob_data(oid))
                        return data[0]

                    if before.form(old, p, oid, mode, read) != after.form(new, p, oid, mode, read):
                        out.append(p)
    finally:
        before.close()
        after.close()
    return out
