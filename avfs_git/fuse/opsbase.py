"""What every part of :class:`.ops.WorkspaceFS` stands on: the state of one mounted view
(made once, in :meth:`OpsBase.__init__`), ``AvfsError`` turned into the errno FUSE expects
(:func:`translated`), a FUSE path turned into a workspace path (the mount's own ``.git``
refused), the node at a path (a read-only view keeps its directories' children), and
what an open file is (:class:`Handle`; the table of them is :mod:`.handles`).

Like the rest of fuse/, it asks the workspace and never reads git itself.
"""

from __future__ import annotations

import errno
import functools
import itertools
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import mfusepy as fuse

from ..core.errors import AvfsError, BlobNotLocalError, ObjectUnreadableError, is_no_space
from ..core.store import names
from ..core.workspace.workspace import Node, Workspace
from ..core.workspace.wssmudge import checkout_forms

if TYPE_CHECKING:
    from ..core.store.objects import BlobStream
    from ..core.vaults.vault import Vault

F = TypeVar("F", bound=Callable[..., Any])
GITFILE = "/.git"
CHILDREN_CACHE = 1024  # read-only view: directories whose children are kept (lookups)


# a file the daemon appends the name of each FUSE call it serves in Python to (for tests
# and diagnosis: which calls reach Python once the kernel caches are warm)
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
            if isinstance(exc, BlobNotLocalError) and args:
                _say_why(args[0], exc)
            # (a size the server said that was not its blob's, corrected: promisor.check_size)
            wrong = isinstance(exc, ObjectUnreadableError) or "size_said" in exc.details
            if wrong and len(args) > 1 and isinstance(args[1], str):
                forget = getattr(args[0], "forget_unread", None)
                if forget is not None:  # (at OPEN the kernel holds no page of it: at once)
                    said = "size_said" in exc.details
                    forget(args[1], exc.details.get("oid"), now=func.__name__ == "open", said=said)
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


def _say_why(ops: Any, exc: BlobNotLocalError) -> None:
    """A file the server did not give is ``EIO`` to its reader, who learns nothing else:
    the mount's log says why (the server gone, its credentials refused, the blob no longer
    there: the error's message and hint, credentials redacted), once per blob and reason."""
    told: dict[str, str] | None = getattr(ops, "unserved", None)
    oid = str(exc.details.get("oid"))
    if told is None or told.get(oid) == exc.message:
        return
    if len(told) >= 1024:  # (a bound: a walk of an offline tree)
        told.clear()
    told[oid] = exc.message
    logging.getLogger("avfs.fuse").warning("%s (%s)", exc.message, exc.hint)


class Handle:
    __slots__ = (
        "append_only",
        "created",
        "data",
        "dirty",
        "fd",
        "fileid",
        "limit",
        "nested",
        "oid",
        "path",
        "spent",
        "stream",
        "verified",
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
        self.append_only = False  # the path policy's: writes only at the end (see writes.write)
        self.oid: str | None = None  # the blob a read handle reads from git (no overlay file yet)
        # what a reader read before the view moved under it (HandleTable._readers_follow),
        # closed at release: a read still running on one finishes there
        self.spent: list[int | BlobStream] = []
        self.verified: str | None = None  # the blob this reader's file was found to hold


class OpsBase(fuse.Operations):  # type: ignore[misc]
    """The state of one mounted view and the steps every operation takes; the operations
    themselves are in the mixins :class:`.ops.WorkspaceFS` is made of."""

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
        # a lazy fork's mount writes its git index once it answers: .git waits for it
        # (fuse/settle.py: its wait())
        self.git_gate: Any = None
        self.on_view = on_view
        self.wake_fd = wake_fd
        self.read_only = read_only
        self.on_ready = on_ready
        self.uid = os.getuid()
        self.gid = os.getgid()
        self._handles: dict[int, Handle] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._copies = 0  # blobs copied into the overlay by a write (HandleTable._materialize)
        self._known: set[str] = set()  # paths the kernel may hold attributes for
        self._stop = threading.Event()
        self._fuse_ptr: Any = None
        self._inval: Any = None
        self.unsettled: set[str] = set()  # blobs whose size the kernel is being told to forget
        # makes the kernel look a name up again (fuse/entries.py), set at FUSE's init when
        # the kernel can expire names: the watcher's answer to a path that changed kind
        self.expire_entry: Callable[[str], None] | None = None
        # held around each fuse_invalidate_path call: stop_invalidating() takes it to know no
        # call is inside libfuse when the `struct fuse` is freed
        self._inval_lock = threading.Lock()
        self._watcher: threading.Thread | None = None
        # the watcher's wake-ups (fuse/invalidate.py): an inotify of the state directory, an
        # eventfd a close kicks (both None where it polls), the time of its last look
        self._notify: Any = None
        self._kick_fd: int | None = None
        self._looked_at = 0.0
        self._view_time_ns: int | None = None
        # the times files a checkpoint retired keep (Overlay.kept_times), as this view asked
        # them by path (Overlay.kept_reader: the table holds every file the session retired)
        self._kept: dict[str, tuple[str, int, int] | None] | None = None
        self._kept_read: Callable[[str], tuple[str, int, int] | None] | None = None
        self._kept_token: str | None = None  # the meta's ``kept_times`` count read before them
        self._watch_from: tuple[int, dict[str, str]] | None = None  # (invalidate.py)
        self._unsized: set[str] = set()  # written and closed: sizes not recorded yet
        self.unserved: dict[str, str] = {}  # blobs a read could not fetch, and why (_say_why)
        self._nested_root = os.path.join(ws.state_dir, "nested")
        self._has_nested = os.path.isdir(self._nested_root)
        # a read-only view keeps no file handles (the kernel opens files itself: see open)
        self._listings: OrderedDict[str, list[tuple[str, str, Node | None]]] = OrderedDict()
        self._blobs: OrderedDict[str, bytes] = OrderedDict()
        self._blob_bytes = 0
        self._streams: OrderedDict[str, BlobStream] = OrderedDict()
        self._kids: OrderedDict[str, dict[str, Node]] = OrderedDict()  # see _ro_node
        self._kids_base: str | None = None  # the base commit the kept children are of
        self._kids_mark: tuple[str | None, int] | None = None  # (that base, the journal's newest row)
        self._sizes: dict[str, int] = {}  # see _size
        self._sizes_kept: int | None = None  # how many the vault kept (None: not read yet)
        self._sizes_asked: bool | None = None  # a lazy vault's: sizes may be being asked (plus_ok)
        self._sizes_new = False  # learned one, or forgot one, since: kept at the end (keep_sizes)
        # what git's checkout writes of a file served from git (core/workspace/wssmudge.py)
        self.forms = checkout_forms(ws)
        # the fork's path rules, as the mount started (docs/policy.md "Path policies"): what
        # it hides is cached by the kernel, so they hold for the mount's life; the writes
        # the workspace makes check the files' current rules themselves
        self.guard = ws.guard
        owner = ws.vault.home
        self.trace_fd = _open_trace(owner.settings.fuse_trace if owner is not None else None)

    def _form(self, node: Node) -> bytes | None:
        """What ``git checkout`` writes for ``node``, a file served from git, where that is
        not its blob's bytes (``.gitattributes`` conversions: core/workspace/wssmudge.py)."""
        oid = node.oid
        if oid is None or node.is_dir:
            return None
        # (a read-only view read the base as it looked the node up: not asked again)
        base = self._kids_base if self.read_only else None
        tree = self.forms.tree_of(base) if base is not None else self.ws.base_tree
        return self.forms.form(tree, node.path, oid, node.mode, lambda: self.ws.blob_data(oid, node.path))

    def _git_wait(self) -> None:
        """git opens ``.git`` first: that waits until the index it must trust is written
        (its attributes do not: overlayfs's listing of the root looks it up); ``EIO`` while
        none can be made (fuse/settle.py: git would take every file for deleted)."""
        if self.git_gate is None:
            return
        try:
            pid = fuse.fuse_get_context()[2]  # (the gate notes who waited: settle.py after_git)
        except ValueError:  # (no request's context: NULL)
            pid = 0
        if not self.git_gate.wait(pid):
            raise fuse.FuseOSError(errno.EIO)

    @staticmethod
    def _p(path: str) -> str:
        if path == GITFILE:
            raise fuse.FuseOSError(errno.EPERM)  # the worktree link avfs shows; not a file of the fork
        # a name git holds whose bytes are not UTF-8 is looked up and read like any other
        # (mfusepy gives it as ``surrogateescape`` text); the workspace refuses to write one
        return names.norm_path(path.lstrip("/"), text=False)

    def _writable(self) -> None:
        if self.read_only:
            raise fuse.FuseOSError(errno.EROFS)

    def _node(self, p: str) -> Node:
        node = self._ro_node(p) if self.read_only else self.ws.node(p)
        if node is None or (not self.guard.empty and self._hidden(p, node.is_dir)):
            raise fuse.FuseOSError(errno.ENOENT)
        return node

    def _hidden(self, p: str, is_dir: bool = False) -> bool:
        """Whether the path policy hides ``p``: it does not exist in this mount."""
        held = self.guard.match(p, is_dir=is_dir) if p else None
        return held is not None and held.kind == "hidden"

    def _refuse_hidden_create(self, p: str) -> None:
        """A create of a hidden name: EACCES (the name does not exist, and cannot be made)."""
        if not self.guard.empty and self._hidden(p):
            raise fuse.FuseOSError(errno.EACCES)

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
        # layer made adds names below (which overlayfs asks about before a removal); kept
        # children are of one base and its entries (the journal's newest row: an undo of a
        # checkpoint comes back to the base before it with a root entry holding the
        # checkpoint's tree, and children kept at that base before the checkpoint lacked
        # what it recorded: overlayfs, told a file the upper layer made is not below,
        # removed it without a whiteout at the restore that followed, and the base's copy
        # came back; gitmodel17), and children worked out while either moved are answered
        # from again, never kept: a lookup that started before a checkpoint and ended after
        # it would otherwise keep the old children for good, with the same removal
        for _ in range(8):
            mark = self.ws.overlay.base_and_seq()
            with self._lock:
                if mark != self._kids_mark:
                    self._kids.clear()
                    self._kids_mark = mark
                    self._kids_base = mark[0]
                kids = self._kids.get(p)
                if kids is not None:
                    self._kids.move_to_end(p)
                    return kids
            # the directory's node is looked up here, after the base was read: one a caller
            # found before a move would give the old base's children (a listing that began
            # before a checkpoint kept them under the new base)
            here = self._ro_node(p)
            kids = None if here is None or not here.is_dir else self.ws.node_children(here)
            if self.ws.overlay.base_and_seq() != mark:
                continue
            if kids is None:
                return None
            with self._lock:
                if self._kids_mark == mark:
                    self._kids[p] = kids
                    while len(self._kids) > CHILDREN_CACHE:
                        self._kids.popitem(last=False)
            return kids
        raise fuse.FuseOSError(errno.EAGAIN)  # the base kept moving: ask again
