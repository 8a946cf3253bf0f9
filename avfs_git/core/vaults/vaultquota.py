"""A vault's quota limits (``quota_bytes``, ``quota_files`` in its config) and the kernel's
enforcement of the bytes limit where its forks' state is in the home's layers file system
(a btrfs qgroup of their subvolumes, :mod:`.qgroups`), with room for avfs's own writes at
the limit (:meth:`VaultQuota.own_room`). What the vault uses of them, and the check of
each write, is the tracker's (:mod:`.quota`).

:class:`VaultQuota` is a part of :class:`.vault.Vault` (its base class): this module holds
its methods, the vault the state they use.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ..errors import AvfsError, UsageError
from . import layers, qgroups
from .quota import QuotaTracker
from .usage import QuotaUsage, read_small

DEFAULT_QUOTA = 10 * 1024**3  # 10 GiB for the whole vault (objects + overlays), unless set
# avfs's own writes into a layered state dir (its databases) while the kernel's limit of
# the vault's qgroup is within OWN_ROOM_LOW: the limit is raised to OWN_ROOM over what it
# holds, for as long as they last, within one room past the quota's limit (Vault.own_room,
# room_bounded)
OWN_ROOM = 16 << 20
OWN_ROOM_LOW = 4 << 20
ROOM_PLENTY = 64 << 20  # left under the limit: not checked again for ROOM_RECHECK_S
ROOM_RECHECK_S = 0.1
ROOM_LOCK = ".room.lock"  # in usage/ (a dot: not a published total)
# in usage/: what the quota counted outside the qgroup when its limit was last worked out
# (objects, caches, git dirs, plain state dirs' overlays), for when the forks' databases
# cannot be read (the qgroup full: their mapped WAL index would take a SIGBUS)
ROOM_OUTSIDE = ".room-outside"
# ``Vault.quota_bytes`` (an int, for VaultInfo and stats) when the vault has no bytes limit
NO_LIMIT = sys.maxsize


class VaultQuota:
    """The quota of a :class:`.vault.Vault` (its base class: what it needs of the vault is
    declared below, for the type checker)."""

    if TYPE_CHECKING:
        state_dir: str
        quota: QuotaTracker
        _room_plenty_until: float

        @property
        def config(self) -> dict[str, Any]: ...
        def fresh_config(self) -> dict[str, Any]: ...
        def set_config(self, **values: Any) -> None: ...
        @property
        def home_dir(self) -> str: ...
        def fork_names(self) -> list[str]: ...
        def ws_link(self, fork: str) -> str: ...
        def ws_dir(self, fork: str) -> str: ...

    # -- quota ----------------------------------------------------------------------------
    def quota_limits(self) -> tuple[int | None, int | None]:
        """(bytes, files) limits of the vault; None: no limit.

        ``quota_bytes`` absent from the config means :data:`DEFAULT_QUOTA` (a config written
        before the quota became vault-wide keeps its number, now the vault's bytes limit);
        ``null`` lifts it. ``quota_files`` absent or ``null``: no file limit.
        """
        cfg = self.config
        b = cfg.get("quota_bytes", DEFAULT_QUOTA)
        f = cfg.get("quota_files")
        return (None if b is None else int(b), None if f is None else int(f))

    @property
    def quota_bytes(self) -> int:
        """The bytes limit (:data:`NO_LIMIT` when there is none); see :meth:`quota_limits`."""
        b = self.quota_limits()[0]
        return NO_LIMIT if b is None else b

    def set_quota(self, **limits: int | None) -> str | None:
        """Set ``max_bytes`` and/or ``max_files`` (None lifts that limit). Lowering a limit
        below what the vault uses is allowed: growth is refused until it is back under.
        Returns why the kernel cannot enforce a new bytes limit on the forks in the home's
        layers file system (see :meth:`sync_kernel_quota`), None when it does or when
        the home has no such file system."""
        keys = {"max_bytes": "quota_bytes", "max_files": "quota_files"}
        bad = set(limits) - set(keys)
        if bad:
            raise UsageError(f"unknown quota limit {sorted(bad)[0]!r}")
        for k, v in limits.items():
            if v is not None and (not isinstance(v, int) or v < 0):
                raise UsageError(f"{k} must be a non-negative integer or None, not {v!r}")
        self.set_config(**{keys[k]: v for k, v in limits.items()})
        if "max_bytes" not in limits:
            return None
        why = self.sync_kernel_quota()
        if limits["max_bytes"] is None or not os.path.exists(layers.image_path(self.home_dir)):
            return None
        return why

    # -- quota the kernel enforces (the layers file system's qgroups) ---------------------
    def _explicit_bytes_quota(self) -> int | None:
        cfg = self.fresh_config()
        qb = cfg.get("quota_bytes", -1)
        return None if qb in (-1, None) else int(qb)

    def _layered_forks(self) -> dict[str, str]:
        """fork -> state dir, of the forks whose state is a subvolume of the layers fs."""
        out = {}
        for f in self.fork_names():
            link = self.ws_link(f)
            if os.path.islink(link):
                out[f] = self.ws_dir(f)
        return out

    def kernel_quota(self) -> tuple[int, list[str]] | None:
        """(bytes of the vault's forks' files in the layers file system, the forks there)
        when the kernel enforces the vault's bytes quota, else None. The bytes are what the
        vault's qgroup counts (overlay files and mounts' upper layers, extents forks share
        once) less avfs's own state (its databases and indexes, which the quota does not
        count) and btrfs's metadata floor of each subvolume: exact to a few KiB a fork."""
        n = self.config.get("layers_qgroup")
        if not isinstance(n, int) or self._explicit_bytes_quota() is None:
            return None
        if not layers.mounted(self.home_dir):
            return None
        fill = qgroups.qgroup_fill(self.home_dir, n)  # the kernel's sysfs: no btrfs process
        if fill is not None:
            # referenced counts at btrfs's transaction commits: data written since is in the
            # reservations (with metadata's, which pass; those are left out)
            held = fill[0] + fill[3]
        else:
            try:
                got = qgroups.qgroups(self.home_dir).get(f"{layers.QGROUP_LEVEL}/{n}")
            except layers.LayersUnavailable:
                return None
            if got is None:
                return None
            held = got[0]
        forks = self._layered_forks()
        own = sum(qgroups.own_state_bytes(d) for d in forks.values())
        return max(held - own - qgroups.SUBVOL_FLOOR * len(forks), 0), sorted(forks)

    def sync_kernel_quota(self, *, mounting: bool = False) -> str | None:
        """Make the kernel enforce the vault's explicit bytes quota on its workspaces in the
        layers file system (a qgroup of them, limited to the quota less the git objects
        and the plain state dirs' files); lift it when the quota is gone. Returns None when
        the kernel enforces it now, else why not.

        ``mounting``: a vault already at or past its limit still gets 1 MiB over what it
        holds, so that overlayfs can make its work directory (else it mounts read-only
        and nothing could be deleted through the mount to get back under)."""
        qb = self._explicit_bytes_quota()
        n = self.config.get("layers_qgroup")
        if qb is None:
            if isinstance(n, int) and layers.mounted(self.home_dir):
                try:
                    qgroups.set_limit(self.home_dir, n, None)
                except layers.LayersUnavailable:
                    pass
            return "no explicit bytes quota"
        if not os.path.exists(layers.image_path(self.home_dir)):
            return "the home has no layers file system"
        forks = self._layered_forks()  # mounts the image when needed
        if not isinstance(n, int):
            n = int.from_bytes(os.urandom(4), "big") | 1
        try:
            qgroups.ensure_qgroup(self.home_dir, n, list(forks.values()))
            if self.config.get("layers_qgroup") != n:
                self.set_config(layers_qgroup=n)
            limit = self._kernel_limit(qb, n, forks)
            if mounting:
                held = qgroups.qgroups(self.home_dir).get(f"{layers.QGROUP_LEVEL}/{n}")
                if held is not None:
                    limit = max(limit, held[0] + (1 << 20))
            qgroups.set_limit(self.home_dir, n, limit)
        except layers.LayersUnavailable as exc:
            return str(exc)
        return None

    def _kernel_limit(self, qb: int, n: int, forks: dict[str, str]) -> int:
        """The limit of the vault's qgroup ``1/n`` for a bytes quota ``qb``: the quota's
        limit (:meth:`_quota_limit`), and never less than what the qgroup holds plus room
        for avfs's own databases, within one room past the quota's limit
        (:func:`room_bounded`)."""
        fill = qgroups.qgroup_fill(self.home_dir, n)
        outside = None
        if fill is not None and fill[2] is not None and fill[2] - fill[0] - fill[1] < OWN_ROOM_LOW:
            # full (a writer in a mount took the room avfs had): reading the forks'
            # databases would map their WAL index with no room for it, a SIGBUS; what
            # the quota counted outside the qgroup is taken as it was last counted
            outside = self._outside_noted()
        if outside is None:
            outside = self._outside_now(forks)
        limit = self._quota_limit(qb, forks, outside)
        if fill is not None:
            # never less than what the qgroup holds plus room for avfs's own databases:
            # SQLite maps its WAL index, and a page of it the kernel cannot reserve is a
            # SIGBUS, not an error; but not past one room over the quota's limit, however
            # often it is set again (avfs refuses its own writes that add bytes, and the
            # commit, past the quota)
            held = fill[0] + fill[3]
            room = qgroups.state_room(len(forks))
            limit = max(limit, room_bounded(held + room, held, limit + room))
        return limit

    def _quota_limit(self, qb: int, forks: dict[str, str], outside: int) -> int:
        """What the vault's qgroup may hold by its bytes quota ``qb`` alone, whatever it
        holds now: the quota less what it counts outside the qgroup (``outside``: objects,
        caches, worktree git dirs, the plain state dirs' overlays), plus room for what it
        does not count (avfs's own state in the layered state dirs, their WAL's growth,
        btrfs's metadata). The kernel is the backstop for writes avfs does not see (an
        overlay mount's); avfs's own checks refuse the writes it makes first."""
        return max(qb - outside, 0) + qgroups.quota_room(list(forks.values()))

    def _outside_now(self, forks: dict[str, str]) -> int:
        """What the quota counts outside the vault's qgroup, counted now (every fork's
        overlay database read), and noted for :meth:`_outside_noted`."""
        use = self.quota.usage()
        plain = sum(f.overlay_bytes for f in use.forks if f.fork not in forks)
        outside = use.objects_bytes + use.caches_bytes + use.git_dirs_bytes + plain
        path = os.path.join(self.state_dir, "usage", ROOM_OUTSIDE)
        tmp = f"{path}.{os.getpid()}.{threading.get_ident()}"  # a dot: not a published total
        try:
            with open(tmp, "w") as fh:
                fh.write(f"{outside}\n")
            os.replace(tmp, path)
        except OSError:
            pass
        return outside

    def _outside_noted(self) -> int | None:
        """What the quota counted outside the vault's qgroup when its limit was last
        worked out (a small file read: no database); None when never."""
        data = read_small(os.path.join(self.state_dir, "usage", ROOM_OUTSIDE))
        return int(data) if data is not None and data.strip().isdigit() else None

    def _room_ceiling(self, limit: int) -> int:
        """The quota's limit plus the databases' room (the ``ceiling`` of
        :func:`room_bounded`) by the count noted last (no database read); ``limit`` (the
        qgroup's limit now) when there is none."""
        qb = self._explicit_bytes_quota()
        outside = self._outside_noted()
        if qb is None or outside is None:
            return limit
        forks = self._layered_forks()
        return self._quota_limit(qb, forks, outside) + qgroups.state_room(len(forks))

    def _room_qgroup(self) -> int | None:
        """The vault's qgroup when the kernel limits it (cheap: the cached config)."""
        cfg = self.config
        n = cfg.get("layers_qgroup")
        if not isinstance(n, int) or cfg.get("quota_bytes", -1) in (-1, None):
            return None
        return n

    def kernel_quota_full(self) -> bool:
        """Whether the kernel's limit of this vault's qgroup leaves less than
        :data:`OWN_ROOM_LOW` (a write into a layered state dir then fails with EDQUOT, or
        SQLite's "disk I/O error")."""
        n = self._room_qgroup()
        if n is None:
            return False
        now = time.monotonic()
        if now < self._room_plenty_until:
            return False
        fill = qgroups.qgroup_fill(self.home_dir, n)
        if fill is None or fill[2] is None:
            return False
        left = fill[2] - fill[0] - fill[1]
        if left >= ROOM_PLENTY:
            # a transaction a moment from now will not find it full: not read again
            # for ROOM_RECHECK_S (a few sysfs reads cost ~0.1-0.5 ms, as much as a write)
            self._room_plenty_until = now + ROOM_RECHECK_S
        return left < OWN_ROOM_LOW

    @contextmanager
    def own_room(self) -> Iterator[None]:
        """Room for avfs's own writes into its workspaces' state (their databases) while
        the kernel's limit of the vault's qgroup is (nearly) reached: the limit is raised to
        :data:`OWN_ROOM` over what the qgroup holds for as long as this lasts, then put
        back (by the last process using it). So ``status``, ``checkpoint``, ``restore`` and
        ``rm`` work on a vault at its quota. A writer in an overlay mount meanwhile takes
        what it can of that room, so the raise is bounded by the quota's limit, not by
        what the qgroup holds (:func:`room_bounded`): however many times avfs writes at the
        limit, such a writer gets at most one room (:data:`OWN_ROOM` and the databases'
        room) past the quota's limit; one that took it all, writing during avfs's own
        writes, leaves them refused with ``quota_exceeded`` until something is removed (an
        unlink needs no room). See docs/maintenance.md "quota". Costs a few sysfs reads
        when the qgroup is not near its limit, nothing without a kernel quota."""
        n = self._room_qgroup()
        if n is None or not self.kernel_quota_full():
            yield
            return
        import fcntl

        path = os.path.join(self.state_dir, "usage", ROOM_LOCK)
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        except OSError:
            yield
            return
        raised = False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            fill = qgroups.qgroup_fill(self.home_dir, n)
            if fill is not None and fill[2] is not None and fill[2] - fill[0] - fill[1] < OWN_ROOM_LOW:
                held = fill[0] + fill[1]
                # no database read here (the qgroup is full): the ceiling as last counted
                want = room_bounded(held + OWN_ROOM, held, self._room_ceiling(fill[2]))
                if want > fill[2]:
                    try:
                        qgroups.set_limit(self.home_dir, n, want)
                        raised = True
                    except layers.LayersUnavailable:
                        pass
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            try:
                if raised:
                    # put the limit back unless another process is still inside its room
                    # (it puts it back when it leaves)
                    self._put_limit_back(fd)
            finally:
                os.close(fd)

    def _put_limit_back(self, fd: int) -> None:
        import fcntl

        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return
        try:
            # worked out again: what avfs did in the room may have freed enough (rm,
            # restore) for the vault to be back under its quota
            qb = self._explicit_bytes_quota()
            n = self._room_qgroup()
            if qb is not None and n is not None:
                qgroups.set_limit(self.home_dir, n, self._kernel_limit(qb, n, self._layered_forks()))
        except (AvfsError, OSError, layers.LayersUnavailable):
            pass
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def quota_usage(self) -> QuotaUsage:
        """What the vault uses of its quota, counted exactly now (objects on disk, every
        overlay's totals, the caches and worktree git dirs walked); O(forks + object files
        + files of the caches and git dirs), not O(files of the forks)."""
        return self.quota.recount()


def room_bounded(want: int, held: int, ceiling: int) -> int:
    """The limit ``want`` for a vault's qgroup that holds ``held``, bounded: never past
    ``ceiling`` (the quota's limit plus the databases' room), except to leave
    :data:`OWN_ROOM_LOW` over what it holds for avfs's own writes, and never past
    ``ceiling`` + :data:`OWN_ROOM`. So each time the limit is set again or raised for
    avfs's own writes, a writer in an overlay mount writing meanwhile gets what is left
    of one room past the quota's limit, not a room more each time."""
    return max(min(want, ceiling), min(held + OWN_ROOM_LOW, ceiling + OWN_ROOM))
