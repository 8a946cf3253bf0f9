"""The vault's loose branch files as a mount's daemon last read them, kept current by
``inotify``: what :func:`.seal.prepare` writes into the sandbox's read-only packed-refs
(:mod:`.sealpack`) without looking at every branch on every warm ``proxy exec``.

Without it, each call ``lstat``s every file under the vault's ``refs/heads`` (through the
manifest of :mod:`.sealcache`): O(forks), ~1.8 ms of the daemon's CPU a call at 200 forks,
and as many system calls, each of which gives up the GIL (under load, each can wait for
it). The daemon of a mount serving ``proxy exec`` (:mod:`.server`) keeps instead a watch on
every directory of ``refs/heads``: the kernel queues an event before the system call that
changed a file there returns (a ref written by a rename, as git and libgit2 write them, or
in place, truncated, its times set, removed, a directory made), so a call reads the queued
events first and reads again only the files they name. A directory made or removed, an
overflow of the kernel's queue or a watch refused makes the next call walk everything
again, as without a watch.

What a watch does not see, and why that is safe here: a write through a shared ``mmap``
or through a hard link outside ``refs/heads`` queues no event on it. Only the host's
processes can do either (the sandbox shows no file of the vault's ``refs/heads``: its
``refs`` is the scratch); such a branch would be shown to the next commands at its
previous value until it changes again or ``MAX_TRUST_S`` has passed (every call after that
walks everything once more). The fork's own branch is never taken from here: it is read
from its file on every call (its value before the run is what the carry-back compares
and moves by compare-and-swap).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import TypeVar, cast

from ..core.store import refs
from ..core.workspace.untrusted import read_file

T = TypeVar("T")
MAX_TRUST_S = 30.0  # a full walk at least this often (see the module's docstring)

# the watches this process keeps, by the vault's real path and the kind of ref (the
# daemon's exec server starts and closes them; :func:`.seal.prepare` finds them by path)
_live: dict[tuple[str, str], HeadsWatch] = {}


def live(vault_path: str, kind: str = "heads") -> HeadsWatch | None:
    """The watch this process keeps on the vault's branches (``kind`` ``"tags"``: its
    tags) in a mount daemon serving ``proxy exec``, None elsewhere."""
    return _live.get((os.path.realpath(vault_path), kind))


def start(vault_path: str, kind: str = "heads") -> HeadsWatch | None:
    """Watch the vault's branches (``kind`` ``"tags"``: its loose tags, which the scratch
    holds copies of: a vault with thousands paid an ``lstat`` of each on every call) in
    this process (None when inotify is not available: the calls walk them instead)."""
    try:
        watch = HeadsWatch(vault_path, kind)
    except (OSError, ImportError):
        return None
    _live[(watch.key, kind)] = watch
    return watch


class HeadsWatch:
    """The files under ``<vault>/refs/heads`` (or ``refs/<kind>``; ref name -> bytes),
    kept from events."""

    def __init__(self, vault_path: str, kind: str = "heads") -> None:
        from inotify_simple import INotify, flags

        self.kind = kind
        self.prefix = f"{refs.REFS}{kind}/"
        self.root = os.path.join(vault_path, "refs", kind)
        self.key = os.path.realpath(vault_path)
        self._flags = flags
        self._mask = (
            flags.CREATE
            | flags.DELETE
            | flags.MODIFY
            | flags.ATTRIB
            | flags.CLOSE_WRITE
            | flags.MOVED_FROM
            | flags.MOVED_TO
            | flags.DELETE_SELF
            | flags.MOVE_SELF
            | flags.DONT_FOLLOW
            | flags.ONLYDIR
        )
        self._ino = INotify(nonblocking=True)
        self._wds: dict[int, str] = {}  # watch -> its directory below refs/heads ('' for it)
        self._files: dict[str, bytes] = {}
        self._full = True  # the next read walks everything
        self._walked = 0.0  # when the last full walk began (monotonic)
        self._lock = threading.Lock()
        self.walks = 0  # full walks made (tests, figures)
        self.reads = 0  # files read
        self.generation = 0  # moved whenever a branch file's bytes did
        self._memo: dict[str, tuple[tuple[int, int, tuple[int, ...] | None, object], object]] = {}
        self._snap: tuple[tuple[int, int], dict[str, bytes]] | None = None

    def heads(self) -> dict[str, bytes]:
        """Every loose branch file of the vault and its bytes (links, FIFOs and files that
        are not regular left out, as the walk leaves them), as of now."""
        with self._lock:
            self._update()
            return {self.prefix + rel: data for rel, data in self._files.items()}

    def snapshot(self) -> tuple[tuple[int, int], dict[str, bytes]]:
        """What :meth:`heads` gives, with a token that moves whenever it may differ; the
        same dictionary (the caller's to read, never to change) while nothing moved."""
        with self._lock:
            self._update()
            token = (self.generation, self.walks)
            if self._snap is None or self._snap[0] != token:
                self._snap = (token, {self.prefix + rel: data for rel, data in self._files.items()})
            return self._snap

    def shown(
        self,
        fork_ref: str,
        vault_path: str,
        split: Callable[[str, str, dict[str, bytes]], T],
        extra: Mapping[str, bytes] | None = None,
        extra_key: object = None,
    ) -> T:
        """``split(vault_path, fork_ref, branches)`` (the branches but ``fork_ref``, and
        ``extra``'s refs: the vault's loose tags), made again only when a branch, the vault's
        ``packed-refs``, the last full walk or ``extra_key`` (what ``extra`` holds) moved
        since it was last made for ``fork_ref``: a call that changed nothing costs O(1)."""
        with self._lock:
            self._update()
            key = (self.generation, self.walks, _stat(os.path.join(vault_path, "packed-refs")), extra_key)
            got = self._memo.get(fork_ref)
            if got is not None and got[0] == key:
                return cast("T", got[1])
            loose = {refs.HEADS + rel: data for rel, data in self._files.items()}
            loose.pop(fork_ref, None)
            loose.update(extra or {})
            value = split(vault_path, fork_ref, loose)
            self._memo[fork_ref] = (key, value)
            return value

    def _update(self) -> None:
        dirty = self._drain()
        if self._full or time.monotonic() - self._walked > MAX_TRUST_S:
            self._walk()
        else:
            for rel in dirty:
                self._read(rel)

    def _drain(self) -> set[str]:
        """The files the queued events name (below refs/heads); a directory's change, an
        overflow or a watch gone sets the next read to walk everything."""
        f = self._flags
        dirty: set[str] = set()
        for ev in self._ino.read(timeout=0):
            if ev.mask & (f.Q_OVERFLOW | f.IGNORED | f.DELETE_SELF | f.MOVE_SELF | f.ISDIR):
                self._full = True
                if ev.mask & f.IGNORED:
                    self._wds.pop(ev.wd, None)
                continue
            under = self._wds.get(ev.wd)
            if under is None or not ev.name:
                continue
            dirty.add(f"{under}/{ev.name}" if under else ev.name)
        return dirty

    def _read(self, rel: str) -> None:
        if rel.endswith(".lock"):
            return
        self.reads += 1
        data = read_file(os.path.join(self.root, rel))
        if data != self._files.get(rel):
            self.generation += 1
        if data is None:
            self._files.pop(rel, None)
        else:
            self._files[rel] = data

    def _walk(self) -> None:
        """Watch every directory (each before it is listed: a file made in it meanwhile is
        an event), then read every file."""
        self.walks += 1
        self._full = False
        self._walked = time.monotonic()
        files: dict[str, bytes] = {}
        seen: set[int] = set()
        stack = [""]
        while stack:
            rel = stack.pop()
            path = os.path.join(self.root, rel) if rel else self.root
            try:
                wd = self._ino.add_watch(path, self._mask)
            except OSError:
                self._full = True  # a watch refused (no refs/heads yet): walk again next time
                continue
            self._wds[wd] = rel
            seen.add(wd)
            try:
                entries = list(os.scandir(path))
            except OSError:
                self._full = True
                continue
            for e in entries:
                name = f"{rel}/{e.name}" if rel else e.name
                if e.is_dir(follow_symlinks=False):
                    stack.append(name)
                elif not e.name.endswith(".lock"):
                    self.reads += 1
                    data = read_file(e.path)
                    if data is not None:
                        files[name] = data
        for wd in [w for w in self._wds if w not in seen]:
            del self._wds[wd]  # (a directory gone: the kernel dropped its watch)
        if files != self._files:
            self.generation += 1
        self._files = files

    def close(self) -> None:
        if _live.get((self.key, self.kind)) is self:
            del _live[(self.key, self.kind)]
        with self._lock:
            self._ino.close()


def _stat(path: str) -> tuple[int, ...] | None:
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns
