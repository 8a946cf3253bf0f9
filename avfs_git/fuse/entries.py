"""The kernel's names in a writable view, expired by path.

libfuse's high-level API can make the kernel forget an inode's attributes by path
(``fuse_invalidate_path``), not the name that leads to it: after a change the daemon did
not serve (a restore, an undo, the CLI) turned a file into a symlink or a directory, the
kernel's next ``stat`` asks for the attributes of the inode it still holds under that name,
gets another kind, and FUSE answers ``EIO`` and marks the inode bad (fs/fuse/dir.c,
``fuse_do_getattr``: ``inode_wrong_type``). An *expired* name is looked up again first,
and a lookup that finds another kind makes the kernel drop the name and take a fresh inode
(``fuse_dentry_revalidate``, ``fuse_iget``): no error. Expiring (``FUSE_EXPIRE_ONLY``,
Linux >= 6.2, libfuse >= 3.13) leaves a name that still holds the same kind as it was (a
shell's working directory stays where it is), where an invalidation would unhash it.

The low-level call needs the node id libfuse gave the parent directory, which the
high-level API keeps to itself: the session's low-level ``lookup`` is wrapped (as in
:mod:`.lowlevel`) to note the parent's id for the thread while libfuse looks the name up,
and :meth:`Entries.saw` (from ``getattr``, which libfuse's lookup calls with the path)
keeps it as that path's parent's. Every name the kernel holds was looked up (a create
looks the name up first), so every directory holding one is known; an id kept for a path
that is gone or renamed away only expires a name that is not there (``ENOENT``, harmless).
"""

from __future__ import annotations

import ctypes
import logging
import threading
from typing import Any

from .lowlevel import SessionHooks, fuse_fn, ll_slots

log = logging.getLogger("avfs.fuse")

FUSE_ROOT_ID = 1
FUSE_CAP_EXPIRE_ONLY = 1 << 26  # fuse_common.h (libfuse >= 3.13): the kernel can expire a name
FUSE_LL_EXPIRE_ONLY = 1 << 0  # enum fuse_expire_flags (libfuse 3.13-3.15; later: always)
_LL_LOOKUP = 2  # struct fuse_lowlevel_ops: init destroy lookup ...
_LOOKUP_T = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_void_p)
_DOTS = (b".", b"..")


class Entries:
    """Directory path -> libfuse node id, learnt from lookups; and the expiry of a name."""

    def __init__(self) -> None:
        self._ids: dict[bytes, int] = {b"/": FUSE_ROOT_ID}  # libfuse's paths: "/a/b"
        self._tls = threading.local()
        self._se = 0
        self._notify: Any = None
        self.on = False  # expiring works: the lookups are watched and the kernel can

    def install(self, hooks: SessionHooks) -> bool:
        """Wrap the session's low-level ``lookup``; False (nothing changed) when libfuse
        has no ``fuse_lowlevel_notify_expire_entry`` or its session's layout is unknown."""
        try:
            # 3.13-3.15 take a fifth argument (the flags), 3.16 on always expire: a fifth
            # argument in a register is ignored by the four-argument function
            notify = fuse_fn(
                "fuse_lowlevel_notify_expire_entry",
                ctypes.c_int,
                ctypes.c_void_p,
                ctypes.c_uint64,
                ctypes.c_char_p,
                ctypes.c_size_t,
                ctypes.c_int,
            )
        except AttributeError:
            return False
        ptrs = ll_slots(hooks)
        if ptrs is None or not ptrs[_LL_LOOKUP]:
            return False
        lib_lookup = _LOOKUP_T(ptrs[_LL_LOOKUP])
        tls = self._tls

        def lookup(req: int, parent: int, name: int) -> None:
            if ctypes.string_at(name) in _DOTS:  # (libfuse resolves these by id: no path of a child)
                lib_lookup(req, parent, name)
                return
            tls.parent = parent
            try:
                lib_lookup(req, parent, name)
            finally:
                tls.parent = 0

        hooks.install(_LL_LOOKUP, lib_lookup, _LOOKUP_T(lookup))
        self._se = hooks.se
        self._notify = notify
        return True

    def enable(self, capable: int) -> None:
        """At FUSE's ``init``, with the kernel's capabilities: expire only where the kernel
        can (an older one would take the notice as an invalidation, which unhashes)."""
        self.on = self._notify is not None and bool(capable & FUSE_CAP_EXPIRE_ONLY)

    def saw(self, path: bytes) -> None:
        """``getattr`` of ``path``: when libfuse is looking it up, the parent's id is noted."""
        parent = getattr(self._tls, "parent", 0)
        if parent:
            cut = path.rfind(b"/")
            self._ids[path[:cut] or b"/"] = parent

    def renamed(self, old: bytes, new: bytes) -> None:
        """A rename through the mount: the directories at and below ``old`` keep their ids."""
        ids = self._ids
        below = old + b"/"
        for key in list(ids):  # (a copy: other threads may add meanwhile)
            if key == old or key.startswith(below):
                ident = ids.pop(key, None)
                if ident is not None:
                    ids[new + key[len(old) :]] = ident

    def expire(self, path: str) -> None:
        """Make the kernel look the name ``path`` ("a/b", not the root) up again before
        it next uses it. Call only while the session lives (the watcher's lock)."""
        if not self.on or not path:
            return
        full = ("/" + path).encode("utf-8", "surrogateescape")
        cut = full.rfind(b"/")
        parent = self._ids.get(full[:cut] or b"/")
        if parent is None:
            return  # the kernel looked nothing up in that directory: it holds no name there
        name = full[cut + 1 :]
        self._notify(self._se, parent, name, len(name), FUSE_LL_EXPIRE_ONLY)
