"""The FUSE operations of one mounted view: FUSE calls in, workspace calls out,
``AvfsError.errno`` back. :class:`WorkspaceFS` is made of one part per job:

- :mod:`.opsbase`: the view's state, errno translation, paths, the node at a path;
- :mod:`.view`: the reading side (attributes, listings, opens and reads, the read-only
  view's caches);
- :mod:`.writes`: the writing side (the namespace, modes, writes, truncates, releases);
- :mod:`.handles`: open files and the journaling of what they wrote;
- :mod:`.nested`: nested repositories, passed through to the workspace's ``nested/``;
- :mod:`.invalidate`: the watcher that keeps the kernel's caches true.

It holds no git logic: an unchanged file's bytes come through the workspace
(``Workspace.blob_data``/``blob_stream``/``blob_size``), never its store. Paths arrive as
"/a/b" with every symlink already resolved by the kernel, so lookups never follow links.
File contents: a file still in git is served from its blob until something opens it for
writing (:mod:`.view`); then :meth:`Workspace.materialize` copies it into the overlay once
and the open file descriptor of that overlay file takes reads and writes at disk speed,
journaled as :mod:`.writes` and :mod:`.handles` say.

Not supported, with a clear errno: hard links (EPERM), extended attributes (ENOSYS: callers see EOPNOTSUPP),
owners (chown is accepted and ignored: git keeps no owners), device files (EPERM).
"""

from __future__ import annotations

import os
from typing import Any

from .invalidate import Invalidation
from .view import ViewOps
from .writes import WriteOps

# Kernel caching (see fuse_options). A writable view: attributes and entries for 60 s, the
# watcher invalidates what other processes change. A read-only view never changes under the
# kernel: everything is kept for as long as the kernel keeps it, failed lookups too.
ATTR_TIMEOUT = 60.0
ENTRY_TIMEOUT = 60.0
READ_ONLY_TIMEOUT = 1e9  # ~31 years: the kernel caps it (MAX_JIFFY_OFFSET); "forever"


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


class WorkspaceFS(Invalidation, WriteOps, ViewOps):
    """Operations for one mounted workspace (``read_only`` for a mounted revision); made as
    :meth:`.opsbase.OpsBase.__init__` says."""

    use_ns = True

    def trace(self, call: str) -> None:
        """Append ``call`` (the operation's name and its path) to the trace file
        (``AVFS_FUSE_TRACE``), when there is one."""
        if self.trace_fd is not None:
            os.write(self.trace_fd, call.encode("utf-8", "surrogateescape") + b"\n")

    # -- lifecycle ---------------------------------------------------------------------------
    def init(self, path: str) -> None:
        self._setup_invalidation()
        if self.on_ready is not None:
            self.on_ready()

    def destroy(self, path: str) -> None:
        self._stop.set()
        self._kick_watcher()
        for fh in list(self._handles):
            self.release("", fh)
        self._record_sizes()
        self.keep_sizes()
        self.forms.close()
