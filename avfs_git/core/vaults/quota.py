"""A vault's quota: what it uses, and cheap, correct checks of a write against its limits.

The quota is per vault: bytes = git objects on disk (packs + loose) + every fork's overlay
bytes; files = the materialized files of every fork's overlay. A write must not pay a
scan for that, so (see docs/maintenance.md "quota"):

- each fork *publishes* its overlay totals as ``<vault>/avfs/usage/f.<fork>`` whenever
  they moved by more than PUBLISH_BYTES / PUBLISH_FILES from what the file says (checked
  after every committed overlay transaction, any process). So a fork's true totals are at
  most its published ones + PUBLISH_*, and a fork with no file has an empty overlay;
- every publication counts one more in ``usage/gen``; a writer knows its own fork's totals
  exactly (read in its transaction), reads the others' published totals again only when
  that counter changed (mapped in memory: no system call per write), and knows the objects' size from a
  scan redone after a pack is written (PackWriter.finish's hook publishes
  ``usage/objects``: any process) or REFRESH_S passed, when a figure next needs it;
- a write passes at once when the estimate plus the slack (PUBLISH_* per other fork) is
  within the limits; otherwise every overlay's totals are read exactly (one SQLite row
  each) and the objects rescanned before deciding.

The tracker knows its vault as a :class:`QuotaVault` (what it asks of it), so that this
module does not import :mod:`.vault` (which holds one tracker per vault).
"""

from __future__ import annotations

import errno
import mmap
import os
import sqlite3
import threading
import time
from contextlib import AbstractContextManager
from typing import Protocol

from ..errors import QuotaExceededError
from ..store import names
from .objscan import ObjectStoreScan
from .usage import GEN, GEN_FMT, ForkUsage, QuotaUsage, bump, publish, read_small, signal, tree_bytes


class QuotaVault(Protocol):
    """What the tracker needs of its vault (:class:`.vault.Vault` is one)."""

    name: str
    path: str  # the bare repository (its ``objects/``)
    state_dir: str  # ``<vault>/avfs`` (its ``usage/`` and ``ws/``)

    @property
    def config_path(self) -> str: ...
    def forget_config(self) -> None: ...
    def quota_limits(self) -> tuple[int | None, int | None]: ...
    def kernel_quota(self) -> tuple[int, list[str]] | None: ...
    def ws_dir(self, fork: str) -> str: ...
    def open_overlay_totals(self, fork: str, state_dir: str) -> tuple[int, int] | None: ...
    def own_room(self) -> AbstractContextManager[None]: ...
    def kernel_quota_full(self) -> bool: ...


PUBLISH_BYTES = 4 << 20
PUBLISH_FILES = 256
REFRESH_S = 2.0  # objects' size and config.json are checked at least this often
_EXACT_LEFT = 64 << 20  # quota_left() is exact when less than this is left
_NO_LIMIT_LEFT = 1 << 62
_FORK_PREFIX = "f."
_EXTRA = "extra"  # "<caches bytes> <worktree git dirs bytes>", published by recount()
_MARKER = ".complete"  # every fork with a non-empty overlay has published (set up once)


class QuotaTracker(ObjectStoreScan):
    """Cheap, correct checks of a vault's quota (one per :class:`.vault.Vault`; see the module's docstring)."""

    def __init__(self, vault: QuotaVault) -> None:
        self.vault = vault
        self.dir = os.path.join(vault.state_dir, "usage")
        self.gen_path = os.path.join(self.dir, GEN)
        self.ws_root = os.path.join(vault.state_dir, "ws")
        self.objects_dir = os.path.join(vault.path, "objects")
        self.caches_dir = os.path.join(vault.state_dir, "caches")
        self.worktrees_dir = os.path.join(vault.path, "worktrees")
        # git's state a confined command left in a worktree git dir, moved out of it after
        # the run (proxy/gitstate.py): still the command's bytes, counted with the git dirs
        self.gitstate_dir = os.path.join(vault.state_dir, "gitstate")
        self.gitkept_dir = os.path.join(vault.state_dir, "gitkept")  # registry.gitkept_dir's
        self._extra = (0, 0)  # (caches, worktree git dirs) bytes as published in usage/extra
        self._lock = threading.RLock()
        self._gen_map: mmap.mmap | None = None
        self._gen_ino = 0
        self._sig: int | None = None  # the counter in usage/gen when the files were read
        self._published: dict[str, tuple[int, int]] = {}  # fork -> (bytes, files) of its file
        self._signals: dict[str, bytes] = {}
        self._objects = 0
        self._objects_at = -1e18
        self._objects_stale = True
        self._loose: dict[str, tuple[int, int, bool]] = {}  # "ab" -> (mtime_ns, bytes, racy)
        self._sealed: dict[str, tuple[int, int]] = {}  # "pack-….idx" -> (inode, bytes)
        self._config_stat: tuple[int, int, int] | None = None

    def close(self) -> None:
        """Unmap the shared counter (a mapping holds a file descriptor); mapped again on
        next use."""
        with self._lock:
            if self._gen_map is not None:
                self._gen_map.close()
                self._gen_map = None
                self._gen_ino = 0

    # -- reading ---------------------------------------------------------------------------
    def _refresh(self) -> None:
        """Bring the cache up to date (under the lock). Nothing changed: one read of the
        shared counter ``usage/gen`` (mapped in memory: no system call)."""
        now = time.time()
        if self._gen_map is None or now - self._objects_at > REFRESH_S:
            self._map_gen()
        assert self._gen_map is not None
        sig = GEN_FMT.unpack_from(self._gen_map)[0]
        if sig != self._sig:
            if not self._read_dir():
                self._setup()
                self._read_dir()
            self._sig = sig
        if now - self._objects_at > REFRESH_S:
            self._objects_stale = True
            self._objects_at = now  # (scanned by the next figure that needs them)
            self._check_config_file()

    def _objects_now(self) -> int:
        """The object store's bytes, scanned again when a signal (a pack written) or the
        period said they changed, and only when a figure needs them: a note of a fork's
        totals, or a check with no limit to hold, does not (a merge's or checkpoint's own
        pack made each of them rescan the pack directory: ~100 stats at 40 packs)."""
        if self._objects_stale:
            self._objects = self._scan_objects()
            self._objects_at = time.time()
            self._objects_stale = False
        return self._objects

    def _map_gen(self) -> None:
        """Map ``usage/gen`` (again when it is another file now: a usage dir made anew)."""
        try:
            st = os.stat(self.gen_path)
        except FileNotFoundError:
            self._setup()
            st = os.stat(self.gen_path)
        if self._gen_map is not None and st.st_ino == self._gen_ino:
            return
        if st.st_size < GEN_FMT.size:  # made by a writer that died before its first count
            bump(self.gen_path)
        fd = os.open(self.gen_path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            self._gen_map = mmap.mmap(fd, GEN_FMT.size, access=mmap.ACCESS_READ)
        finally:
            os.close(fd)
        self._gen_ino = st.st_ino
        self._sig = None

    def _read_dir(self) -> bool:
        """Read the published totals and signals; False when the marker is missing."""
        published: dict[str, tuple[int, int]] = {}
        marker = False
        for e in os.scandir(self.dir):
            name = e.name
            if name == _MARKER:
                marker = True
                continue
            if name.startswith(".") or name == GEN:  # a file being written; the counter
                continue
            data = read_small(e.path)
            if data is None:
                continue
            if name.startswith(_FORK_PREFIX):
                parts = data.split()
                if len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit():
                    published[names.from_fs_name(name[len(_FORK_PREFIX) :])] = (int(parts[0]), int(parts[1]))
            elif name == _EXTRA:
                parts = data.split()
                if len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit():
                    self._extra = (int(parts[0]), int(parts[1]))
            elif self._signals.get(name) != data:
                self._signals[name] = data
                if name == "objects":
                    self._objects_stale = True
                elif name == "config":
                    self.vault.forget_config()
        self._published = published
        return marker

    def _check_config_file(self) -> None:
        """config.json changed without a signal (an older avfs, an editor): reload it."""
        try:
            st = os.stat(self.vault.config_path)
            key = (st.st_mtime_ns, st.st_size, st.st_ino)
        except FileNotFoundError:
            key = (0, 0, 0)
        if self._config_stat is not None and key != self._config_stat:
            self.vault.forget_config()
        self._config_stat = key

    def _scan_extra(self) -> tuple[int, int]:
        """(bytes of the vault's caches, of its worktree git dirs), walked now."""
        return tree_bytes(self.caches_dir), self._git_dirs()

    def _git_dirs(self) -> int:
        """Bytes of the worktree git dirs and of git's state taken out of them."""
        return tree_bytes(self.worktrees_dir) + tree_bytes(self.gitstate_dir) + tree_bytes(self.gitkept_dir)

    def warm(self) -> None:
        """List the object store now as :meth:`outside_bytes` would, keeping what each
        pack file and fan-out directory holds, so that the next figure lists only what
        changed since (a first ``proxy exec`` in a fresh process, while its mount comes
        up: its count before the command is then that of a process that counted before).
        Nothing is published or kept as a figure; nothing at all without a bytes quota."""
        with self._lock:
            try:
                self._refresh()
            except OSError:
                pass
            if self.vault.quota_limits()[0] is not None:
                self._scan_objects()

    def outside_bytes(self) -> int:
        """What the quota counts outside the forks' overlays (objects, caches, git dirs),
        as this process knows it now (cheap: see the module's docstring)."""
        with self._lock:
            try:
                self._refresh()
            except OSError:
                pass
            self._objects = self._scan_objects()  # the fan-out dirs that changed, listed
            self._objects_at = time.time()
            self._objects_stale = False
            # the caches as published (only confined commands write them); the git dirs
            # walked (small; avfs itself writes their index and logs between commands)
            return self._objects + self._extra[0] + self._git_dirs()

    def recount(self, *, bound_for: str | None = None) -> QuotaUsage:
        """Count everything exactly now, publish what changed (so every process's next
        check sees it) and return the vault's use: after a confined command ran, which
        may have written into the caches, the worktree git dir and ``objects/``.

        ``bound_for`` (the fork a command ran in): the objects, caches, git dirs and that
        fork's overlay are counted exactly all the same, but every other fork's overlay is
        taken at its published totals plus the slack (``PUBLISH_BYTES``, ``PUBLISH_FILES``)
        rather than read: an upper bound of the exact use (see the module's docstring), in
        O(1) reads however many forks the vault has. Within the limits, the exact use is
        too; past them, the caller counts exactly (:meth:`usage` with ``rescan=False``)."""
        with self._lock:
            try:
                self._refresh()
            except OSError:
                pass
            extra = self._scan_extra()
            if extra != self._extra:
                self._extra = extra
                try:
                    if not os.path.isdir(self.dir):
                        self._setup()
                    self._write(_EXTRA, f"{extra[0]} {extra[1]}\n")
                except OSError:
                    pass
            self._objects = self._scan_objects(exact=True)
            self._objects_at = time.time()
            self._objects_stale = False
        return self.usage(rescan=False, bound_for=bound_for)

    def _overlay_totals(self, fork: str, ws_dir: str) -> tuple[int, int]:
        """A fork's exact overlay totals (0, 0 when it has no overlay)."""
        held = self.vault.open_overlay_totals(fork, ws_dir)
        if held is not None:
            return held
        db_path = os.path.join(ws_dir, "overlay.db")
        if not os.path.exists(db_path):
            return 0, 0
        conn = sqlite3.connect(db_path, timeout=30.0, isolation_level=None)
        try:
            try:
                r = conn.execute("SELECT file_bytes, files FROM totals WHERE id = 1").fetchone()
            except sqlite3.OperationalError:  # an overlay not migrated yet
                r = conn.execute(
                    "SELECT COALESCE(SUM(size), 0), COUNT(*) FROM entries WHERE kind = 1"
                ).fetchone()
            return (int(r[0]), int(r[1])) if r is not None else (0, 0)
        except sqlite3.DatabaseError:
            return 0, 0
        finally:
            conn.close()

    def _all_overlays(self, exclude: str | None = None) -> dict[str, tuple[int, int]]:
        """Exact totals of every overlay of the vault (of forks that exist or not: an
        overlay left by a fork deleted with plain git still takes space)."""
        out: dict[str, tuple[int, int]] = {}
        try:
            it = os.scandir(self.ws_root)
        except FileNotFoundError:
            return out
        with it:
            for e in it:
                fork = names.from_fs_name(e.name)
                if fork != exclude and e.is_dir():
                    out[fork] = self._overlay_totals(fork, e.path)
        return out

    def _bounded_overlays(self, fork: str) -> dict[str, tuple[int, int]]:
        """Every overlay's totals, at most: ``fork``'s exact, every other one's published
        totals plus the slack (a fork with no published totals has an empty overlay)."""
        out = {
            f: (b + PUBLISH_BYTES, n + PUBLISH_FILES) for f, (b, n) in self._published.items() if f != fork
        }
        own = os.path.join(self.ws_root, names.fs_name(fork))
        if os.path.isdir(own):
            out[fork] = self._overlay_totals(fork, own)
        return out

    def _setup(self) -> None:
        """Make the usage dir and publish every overlay's exact totals (once per vault: an
        overlay written before the quota became vault-wide has no published totals)."""
        os.makedirs(self.dir, exist_ok=True)
        for fork, (b, n) in self._all_overlays().items():
            if b or n:
                self._write(_FORK_PREFIX + names.fs_name(fork), f"{b} {n}\n")
        self._write(_MARKER, "1\n")

    # -- writing ---------------------------------------------------------------------------
    def _write(self, name: str, text: str) -> None:
        publish(self.dir, name, text)

    def note(self, fork: str, nbytes: int, nfiles: int) -> None:
        """A fork's overlay now has these totals (after a committed transaction):
        publish them when they moved far enough from what its file says."""
        try:
            with self._lock:
                pub = self._own_published(fork)
                if pub is None:
                    if not (nbytes or nfiles):
                        return
                elif abs(nbytes - pub[0]) <= PUBLISH_BYTES and abs(nfiles - pub[1]) <= PUBLISH_FILES:
                    return
                self._write(_FORK_PREFIX + names.fs_name(fork), f"{nbytes} {nfiles}\n")
                self._published[fork] = (nbytes, nfiles)
        except OSError:
            # the write itself is committed; a read-only or full disk must not fail it
            # (the slack then rests on the last published totals)
            pass

    def _own_published(self, fork: str) -> tuple[int, int] | None:
        """What ``fork``'s file says now (under the lock): from what was read while the
        shared counter has not moved, else that one file read again. The other forks'
        files are read when a figure needs them (:meth:`_refresh`): a note read every
        fork's file whenever any process had published since, O(forks) after each
        committed transaction of a vault whose forks are written by other processes (a
        merge in the kept process, after an agent's checkpoint in another: 1-3 reads of
        the whole directory a merge; docs/benchmarks.md, h-merge4's section)."""
        if self._gen_map is None or time.time() - self._objects_at > REFRESH_S:
            self._map_gen()
        assert self._gen_map is not None
        if GEN_FMT.unpack_from(self._gen_map)[0] == self._sig:
            return self._published.get(fork)
        data = read_small(os.path.join(self.dir, _FORK_PREFIX + names.fs_name(fork)))
        parts = data.split() if data is not None else []
        if len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit():
            self._published[fork] = (int(parts[0]), int(parts[1]))
        else:
            self._published.pop(fork, None)
        return self._published.get(fork)

    def forget(self, fork: str) -> None:
        """The fork and its overlay are gone."""
        with self._lock:
            try:
                os.unlink(os.path.join(self.dir, _FORK_PREFIX + names.fs_name(fork)))
            except FileNotFoundError:
                pass
            except OSError:
                return
            self._published.pop(fork, None)

    def config_changed(self) -> None:
        """Tell every process (their next check) that the limits changed."""
        with self._lock:
            try:
                if not os.path.isdir(self.dir):
                    self._setup()
                signal(self.dir, "config")
            except OSError:
                pass

    # -- the kernel's limit (a vault whose forks' state is in the layers file system) --------
    def room(self) -> AbstractContextManager[None]:
        """Room for avfs's own write into a state dir at the kernel's limit (see
        :meth:`.vault.Vault.own_room`)."""
        return self.vault.own_room()

    def full_error(self, exc: BaseException) -> QuotaExceededError | None:
        """The quota's error when ``exc`` is a write that found the kernel's limit of the
        vault's state dirs reached (EDQUOT; SQLite's "disk I/O error" or "database or disk
        is full" while the qgroup is full), else None."""
        edquot = False
        text = ""
        seen: set[int] = set()
        cur: BaseException | None = exc
        while cur is not None and id(cur) not in seen:
            seen.add(id(cur))
            if isinstance(cur, OSError) and cur.errno == errno.EDQUOT:
                edquot = True
            text += " " + str(cur).lower()
            cur = cur.__cause__ or cur.__context__
        if not edquot and (not any(m in text for m in _FULL_TEXT) or not self.vault.kernel_quota_full()):
            return None
        return quota_full_error(self.vault.name)

    # -- checks ----------------------------------------------------------------------------
    def _estimate(self, fork: str) -> tuple[int, int, int]:
        """(objects + caches + git dirs + other forks' published bytes, their files, how
        many others)."""
        ob = on = k = 0
        for f, (b, n) in self._published.items():
            if f != fork:
                ob += b
                on += n
                k += 1
        return self._objects_now() + sum(self._extra) + ob, on, k

    def _exact(self, fork: str | None) -> tuple[int, int]:
        """(objects + caches + git dirs + other forks' bytes, their files), read exactly
        now (the caches and git dirs as last published: see :meth:`recount`)."""
        self._objects = self._scan_objects()
        self._objects_at = time.time()
        self._objects_stale = False
        others = self._all_overlays(exclude=fork)
        return (
            self._objects + sum(self._extra) + sum(b for b, _ in others.values()),
            sum(n for _, n in others.values()),
        )

    def limits(self) -> tuple[int | None, int | None]:
        with self._lock:
            try:
                self._refresh()
            except OSError:
                pass
            return self.vault.quota_limits()

    def check(self, fork: str, own_bytes: int, own_files: int, grow_bytes: int, grow_files: int) -> None:
        """Refuse a change of ``fork`` that grows the vault past a limit.

        ``own_*``: the fork's exact overlay totals *after* the change; ``grow_*``: what the
        change adds to them (a change that adds nothing always passes: it frees or keeps).
        """
        if grow_bytes <= 0 and grow_files <= 0:
            return
        with self._lock:
            try:
                self._refresh()
            except OSError:
                pass
            qb, qf = self.vault.quota_limits()
            need_b = qb is not None and grow_bytes > 0
            need_f = qf is not None and grow_files > 0
            if not (need_b or need_f):
                return
            if need_b and qb is not None and grow_bytes > qb:
                raise QuotaExceededError(
                    f"{grow_bytes} bytes are over the vault's quota of {qb} bytes on their own",
                    hint="raise it with `avfs quota set --bytes SIZE`",
                    details={"what": "bytes", "used": None, "adding": grow_bytes, "quota": qb},
                )
            other_b, other_n, k = self._estimate(fork)
            fast_b = not need_b or (qb is not None and other_b + own_bytes + k * PUBLISH_BYTES <= qb)
            fast_f = not need_f or (qf is not None and other_n + own_files + k * PUBLISH_FILES <= qf)
            if fast_b and fast_f:
                return
            other_b, other_n = self._exact(fork)
        if need_b and qb is not None and other_b + own_bytes > qb:
            used = other_b + own_bytes - grow_bytes
            raise QuotaExceededError(
                f"vault {self.vault.name} uses {used} of its {qb} bytes quota (git objects, caches, worktree"
                f" git dirs and every fork's uncheckpointed files); adding {grow_bytes} bytes would pass it",
                hint="checkpoint, rm or delete forks (a checkpoint moves files into git objects,"
                " compressed), or raise it with `avfs quota set --bytes SIZE`",
                details={"what": "bytes", "used": used, "adding": grow_bytes, "quota": qb},
            )
        if need_f and qf is not None and other_n + own_files > qf:
            used = other_n + own_files - grow_files
            raise QuotaExceededError(
                f"vault {self.vault.name} has {used} uncheckpointed files of its quota of {qf};"
                f" adding {grow_files} would pass it",
                hint="checkpoint (checkpointed files do not count) or rm files, or raise it with"
                " `avfs quota set --files N`",
                details={"what": "files", "used": used, "adding": grow_files, "quota": qf},
            )

    def bytes_left(self, fork: str, own_bytes: int) -> int:
        """Bytes the vault can still grow by (exact when little is left; a lower bound
        otherwise); for a mount's open files."""
        with self._lock:
            try:
                self._refresh()
            except OSError:
                pass
            qb = self.vault.quota_limits()[0]
            if qb is None:
                return _NO_LIMIT_LEFT
            other_b, _, k = self._estimate(fork)
            left = qb - other_b - own_bytes - k * PUBLISH_BYTES
            if left >= _EXACT_LEFT:
                return left
            other_b, _ = self._exact(fork)
            return qb - other_b - own_bytes

    def usage(self, *, rescan: bool = True, bound_for: str | None = None) -> QuotaUsage:
        """The vault's use: exact, or an upper bound of it with ``bound_for`` (see
        :meth:`recount`)."""
        with self._lock:
            try:
                self._refresh()
                if not rescan:
                    self._objects_now()  # (scanned if a pack was written since: the figure below)
            except OSError:
                pass
            qb, qf = self.vault.quota_limits()
            if rescan:
                self._objects = self._scan_objects()
                self._objects_at = time.time()
                self._objects_stale = False
            forks = self._all_overlays() if bound_for is None else self._bounded_overlays(bound_for)
            objects = self._objects
            extra = self._extra
        kq = self.vault.kernel_quota()
        layered = set() if kq is None else set(kq[1])
        if not any(_has_upper(self.vault, f) for f in layered):
            # nothing written past avfs (no upper layer holds anything): its own exact
            # totals are the use (the qgroup's count adds btrfs's metadata of small files)
            layered = set()
        return QuotaUsage(
            vault=self.vault.name,
            quota_bytes=qb,
            quota_files=qf,
            objects_bytes=objects,
            forks=tuple(ForkUsage(f, b, n, f in layered) for f, (b, n) in sorted(forks.items())),
            layers_bytes=None if kq is None else kq[0],
            caches_bytes=extra[0],
            git_dirs_bytes=extra[1],
        )


_FULL_TEXT = ("disk i/o error", "database or disk is full", "disk quota exceeded")


def quota_full_error(vault: str) -> QuotaExceededError:
    """A write refused because the vault is at its quota as the kernel counts it."""
    return QuotaExceededError(
        f"vault {vault} is at its bytes quota (the kernel's limit of its forks' state): the write was refused",
        hint="reading, status, checkpoint, restore and rm still work: rm files or delete forks to get"
        " back under it, or raise it with `avfs quota set --bytes SIZE`",
        details={"what": "bytes", "used": None, "adding": None, "quota": None},
    )


def _has_upper(vault: QuotaVault, fork: str) -> bool:
    """Whether the fork's upper layer (an overlay mount's writes) holds anything."""
    try:
        with os.scandir(os.path.join(vault.ws_dir(fork), "upper")) as it:
            return any(e.name != ".git" for e in it)
    except (FileNotFoundError, NotADirectoryError):
        return False
