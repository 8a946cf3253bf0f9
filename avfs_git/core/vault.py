"""A vault: a bare git repository plus avfs' own state under ``<vault>/avfs/``.

``<vault>/avfs/`` holds (git ignores it; clones don't carry it)::

    config.json         default fork, quota (``quota_bytes``, ``quota_files``)
    oplog.db            the operation log (:mod:`.oplog`)
    ws/<fork>/          one workspace state dir per fork (:mod:`.overlay`)
    locks/<fork>.lock   fork locks (:mod:`.locks`)
    usage/              each fork's published overlay totals, for the quota (:class:`QuotaTracker`)

Threads: a ``Vault`` may be shared by threads; git and SQLite handles are per thread
(:class:`.threads.ThreadSlots`), opened on a thread's first use and released by
:meth:`Vault.close` (all threads) or when their thread has ended.
"""

from __future__ import annotations

import dataclasses
import json
import mmap
import os
import sqlite3
import struct
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, Any

from . import layers, names, packwriter, refs, registry
from .errors import (
    AlreadyExistsError,
    ForkNotFoundError,
    InvalidNameError,
    MountedError,
    QuotaExceededError,
    UsageError,
    from_oserror,
)
from .gitstore import GitStore
from .identity import Identity, Signatures
from .identity import current as current_identity
from .locks import file_lock
from .oplog import OpLog
from .settings import DEFAULT_LOCK_WAIT_S
from .types import ForkCreated, ForkInfo, IgnoredCarry, IgnoredMode, Operation
from .upper import drop_gitfile
from .workspace import Workspace

if TYPE_CHECKING:
    from .home import Home

DEFAULT_QUOTA = 10 * 1024**3  # 10 GiB for the whole vault (objects + overlays), unless set
# ``Vault.quota_bytes`` (an int, for VaultInfo and stats) when the vault has no bytes limit
NO_LIMIT = sys.maxsize


class Vault:
    """One vault. Get it from :meth:`avfs_git.Home.vault`."""

    def __init__(
        self,
        name: str,
        path: str,
        *,
        author: tuple[str, str] | None = None,
        home: Home | None = None,
        identity: Identity | None = None,
        fallback_author: tuple[str, str] | None = None,
    ) -> None:
        self.name = name
        self.path = path
        self.home = home  # the home it was opened from (proxy exec needs its policy and mounts)
        self.store = GitStore(path)
        self.state_dir = os.path.join(path, "avfs")
        self.oplog = OpLog(self.state_dir)
        # who commits are by (see :mod:`.identity`): an explicit author, else the identity
        # (the environment), then git config, then the fallback (the home's identity)
        self._identity = Identity.of(*author) if author is not None else identity
        self._fallback_author = fallback_author
        self._ws: dict[str, Workspace] = {}
        self._ws_lock = threading.Lock()
        self._config_cache: dict[str, Any] | None = None
        self.quota = QuotaTracker(self)

    def __repr__(self) -> str:
        return f"Vault({self.name!r}, {self.path!r})"

    def close(self) -> None:
        """Release the git and SQLite handles (and their file descriptors) of every thread.

        The vault and its workspaces stay usable: each thread reopens what it needs on its
        next call. Call it when no other thread is in the middle of an operation on it.
        """
        with self._ws_lock:
            wss = list(self._ws.values())
        for ws in wss:
            ws.overlay.close()
        self.oplog.close()
        self.store.close()
        self.quota.close()

    # -- config ---------------------------------------------------------------------------
    @property
    def _config_path(self) -> str:
        return os.path.join(self.state_dir, "config.json")

    @property
    def config(self) -> dict[str, Any]:
        if self._config_cache is None:
            try:
                with open(self._config_path, encoding="utf-8") as fh:
                    self._config_cache = dict(json.load(fh))
            except FileNotFoundError:
                self._config_cache = {}
        return self._config_cache

    def fresh_config(self) -> dict[str, Any]:
        """The config as on disk now (another process may have changed it)."""
        self._config_cache = None
        return self.config

    def set_config(self, **values: Any) -> None:
        cfg = dict(self.config)
        cfg.update(values)
        tmp = self._config_path + ".tmp"
        try:
            with open(tmp, "w", encoding="utf-8") as fh:
                json.dump(cfg, fh, indent=2, sort_keys=True)
            os.replace(tmp, self._config_path)
        except OSError as exc:
            raise from_oserror(exc, self._config_path) from exc
        self._config_cache = cfg
        self.quota.config_changed()

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
        try:
            got = layers.qgroups(self.home_dir).get(f"{layers.QGROUP_LEVEL}/{n}")
        except layers.LayersUnavailable:
            return None
        if got is None:
            return None
        forks = self._layered_forks()
        own = sum(layers.own_state_bytes(d) for d in forks.values())
        return max(got[0] - own - layers.SUBVOL_FLOOR * len(forks), 0), sorted(forks)

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
                    layers.set_limit(self.home_dir, n, None)
                except layers.LayersUnavailable:
                    pass
            return "no explicit bytes quota"
        if not os.path.exists(layers.image_path(self.home_dir)):
            return "the home has no layers file system"
        forks = self._layered_forks()  # mounts the image when needed
        if not isinstance(n, int):
            n = int.from_bytes(os.urandom(4), "big") | 1
        try:
            layers.ensure_qgroup(self.home_dir, n, list(forks.values()))
            if self.config.get("layers_qgroup") != n:
                self.set_config(layers_qgroup=n)
            use = self.quota.usage()
            plain = sum(f.overlay_bytes for f in use.forks if f.fork not in forks)
            # avfs's own state (databases, indexes) is not the quota's: it is left room,
            # and so is what btrfs's metadata and a database's growth may take; the kernel
            # is the backstop for writes avfs does not see (an overlay mount's), avfs's own
            # checks refuse the writes it makes first
            limit = max(qb - use.objects_bytes - plain, 0) + layers.quota_room(list(forks.values()))
            if mounting:
                held = layers.qgroups(self.home_dir).get(f"{layers.QGROUP_LEVEL}/{n}")
                if held is not None:
                    limit = max(limit, held[0] + (1 << 20))
            layers.set_limit(self.home_dir, n, limit)
        except layers.LayersUnavailable as exc:
            return str(exc)
        return None

    def quota_usage(self) -> QuotaUsage:
        """What the vault uses of its quota, counted exactly now (objects on disk, every
        overlay's totals); O(forks + object files), not O(files)."""
        return self.quota.usage()

    @property
    def default_fork(self) -> str:
        return str(self.config.get("default_fork", "main"))

    def author(self) -> Signatures:
        """Author and committer of this vault's next commit (git's order, :mod:`.identity`;
        an identity set with :func:`.identity.using` comes first)."""
        ident = self._identity
        over = current_identity()
        if over is not None:
            ident = over.over(ident)
        return self.store.signature(ident, self._fallback_author)

    # -- locks ----------------------------------------------------------------------------
    @property
    def lock_wait_s(self) -> float:
        """How long a lock of this vault is waited for: the home's settings
        (``$AVFS_LOCK_WAIT``, read by the front end), else 10 s."""
        return self.home.settings.lock_wait_s() if self.home is not None else DEFAULT_LOCK_WAIT_S

    @contextmanager
    def lock(self, *forks: str, wait_s: float | None = None) -> Iterator[None]:
        """Hold the locks of ``forks`` (taken in sorted order: no deadlock between callers)."""
        lock_dir = os.path.join(self.state_dir, "locks")
        try:
            os.makedirs(lock_dir, exist_ok=True)
        except OSError as exc:
            raise from_oserror(exc, lock_dir) from exc
        with ExitStack() as stack:
            for f in sorted(set(forks)):
                path = os.path.join(lock_dir, names.fs_name(f) + ".lock")
                wait = self.lock_wait_s if wait_s is None else wait_s
                stack.enter_context(file_lock(path, what=f"fork {f} of vault {self.name}", wait_s=wait))
            yield

    # -- forks ----------------------------------------------------------------------------
    def fork_names(self) -> list[str]:
        return [r[len(refs.HEADS) :] for r in refs.list_refs_file(self.path, refs.HEADS)]

    def has_fork(self, fork: str) -> bool:
        return refs.read_ref_file(self.path, refs.fork_ref(fork)) is not None

    def discard_workspace(self, fork: str) -> None:
        """Close the fork's open workspace, if any, and remove its state directory (its
        overlay, journal and indexes): for a fork whose ref is gone."""
        ws = self._ws.pop(fork, None)
        if ws is not None:
            ws.overlay.close()
        # a killed overlay daemon leaves the worktree link pinned immutable in the upper
        # layer, which rmtree cannot remove
        drop_gitfile(os.path.join(self.ws_dir(fork), "upper"))
        layers.remove_state_dir(self.home_dir, self.ws_link(fork))

    def require_fork(self, fork: str) -> None:
        """Raise :class:`ForkNotFoundError` (or a bad-name error) unless ``fork`` exists."""
        names.check_fork_name(fork)
        if not self.has_fork(fork):
            raise ForkNotFoundError(
                f"vault {self.name} has no fork {fork!r}",
                hint=f"see `avfs --vault {self.name} vault info` for its forks",
                details={"vault": self.name, "fork": fork},
            )

    @property
    def home_dir(self) -> str:
        """The avfs home this vault is in (``<home>/vaults/NAME.git``, or its trash)."""
        if self.home is not None:
            return self.home.path
        return os.path.dirname(os.path.dirname(os.path.abspath(self.path)))

    def ws_link(self, fork: str) -> str:
        """Where the fork's state dir is named: a directory, or a link into the home's
        layers file system (:mod:`.layers`)."""
        return os.path.join(self.state_dir, "ws", names.fs_name(fork))

    def ws_dir(self, fork: str) -> str:
        """The fork's state dir (the layers file system mounted first when it is there)."""
        return layers.resolve(self.home_dir, self.ws_link(fork))

    def layers_why_not(self) -> str | None:
        """None when new state dirs of this vault go into the home's layers file system,
        else why they do not (the home's ``layers`` setting, or what the host lacks)."""
        mode = self.home.layers_mode if self.home is not None else "off"
        if mode == "off":
            return "the home's layers setting is off"
        if layers.mounted(self.home_dir):
            return None
        return layers.mount_failure(self.home_dir) or layers.probe()

    def _new_state_dir(self, fork: str) -> str:
        """A state dir for a workspace that has none: a subvolume of the layers file system
        where it can be, else a plain directory (made by the workspace on first use)."""
        link = self.ws_link(fork)
        if os.path.lexists(link) or self.layers_why_not() is not None:
            return self.ws_dir(fork)
        try:
            return layers.make_state_dir(self.home_dir, link, self._qgroup())
        except layers.LayersUnavailable:
            return link

    def _qgroup(self) -> int | None:
        """The vault's qgroup (new subvolumes join it), when it has one."""
        n = self.config.get("layers_qgroup")
        return n if isinstance(n, int) else None

    def workspace(self, fork: str | None = None) -> Workspace:
        """The workspace of ``fork`` (the vault's default fork when None)."""
        fork = fork or self.default_fork
        ws = self._ws.get(fork)
        # an open workspace: settling its base reads the fork's ref once, which also says
        # whether the fork still exists
        if ws is not None and ws.sync_base():
            return ws
        self.require_fork(fork)
        with self._ws_lock:
            ws = self._ws.get(fork)
            if ws is None:
                ws = Workspace(self, fork, self._new_state_dir(fork))
                self._ws[fork] = ws
                return ws
        ws.sync_base()
        return ws

    def revision_view(self, fork: str, commit: str, state_dir: str) -> Workspace:
        """A read-only workspace showing ``commit`` (for mounting history); costs nothing
        to set up: an empty overlay in ``state_dir``."""
        self.require_fork(fork)
        self.store.commit_tree(commit)  # exists?
        return Workspace(self, fork, state_dir, pinned=commit)

    def fork_info(self, fork: str) -> ForkInfo:
        ws = self.workspace(fork)
        head = ws.tip() or ws.base
        return ForkInfo(
            vault=self.name,
            name=fork,
            head=head,  # type: ignore[arg-type]
            base=ws.base,  # type: ignore[arg-type]
            dirty=ws.is_dirty(),
            is_default=fork == self.default_fork,
        )

    def forks(self) -> list[ForkInfo]:
        return [self.fork_info(f) for f in self.fork_names()]

    def create_fork(self, source: str | None, new: str, *, ignored: bool = True) -> ForkInfo:
        """:meth:`fork`, returning only the new fork's info."""
        return self.fork(source, new, ignored=ignored).fork

    def fork(self, source: str | None, new: str, *, ignored: bool = True) -> ForkCreated:
        """Fork ``source`` (default fork when None) as ``new``: O(1) in tree size.

        The new fork starts from the source's *current* state: its ref is the source's base
        commit and its workspace shows the source's uncheckpointed changes too; the source
        is not disturbed. What git ignores in the source (``node_modules``, a venv, build
        outputs) comes along too, unless ``ignored`` is False (a clean fork):

        - ``snapshot``: the source's state dir is a subvolume of the home's layers file
          system (:mod:`.layers`): the new state dir is a snapshot of it, O(1) and
          copy-on-write, nothing committed, the source's live mount left as it is;
        - ``copied``: otherwise the source's changes, ignored paths included, are captured
          as one tree (git objects no ref names) that the new workspace starts from.

        The result says which (``ignored.mode``) and, when not a snapshot, why.
        """
        source = source or self.default_fork
        names.check_fork_name(new)
        self.require_fork(source)
        if self.has_fork(new):
            raise AlreadyExistsError(f"vault {self.name} already has a fork {new!r}", details={"fork": new})
        # git cannot keep refs/heads/a and refs/heads/a/b at once: check the prefixes of the
        # new name and the names below it (O(depth), not O(forks))
        parts = new.split("/")
        prefixes = ["/".join(parts[:i]) for i in range(1, len(parts))]
        clash = next((p for p in prefixes if self.has_fork(p)), None)
        if clash is None and refs.has_refs_under(self.path, refs.fork_ref(new)):
            clash = next(f for f in self.fork_names() if f.startswith(new + "/"))
        if clash is not None:
            raise InvalidNameError(
                f"fork name {new!r} clashes with fork {clash!r}: git cannot keep a branch"
                " that is also a directory of branches",
                hint="pick a name that is not a path prefix of another fork's",
                details={"fork": new, "clashes_with": clash},
            )
        with self.lock(source, new):
            src = self.workspace(source)
            base = src.base
            link = self.ws_link(new)
            if os.path.lexists(link):  # left by a fork of that name deleted before
                layers.remove_state_dir(self.home_dir, link)
            self._ws.pop(new, None)
            tree: str | None = None
            why = self._snapshot_why_not(src) if ignored else "--no-ignored: a clean fork"
            if why is None:
                try:
                    # the whole state (entries, journal, the upper layer of a live mount,
                    # an open merge) as it is at this instant; the fork lock keeps a
                    # checkpoint of the source from being half-way
                    layers.snapshot_state_dir(self.home_dir, src.state_dir, link, self._qgroup())
                except layers.LayersUnavailable as exc:
                    why = str(exc)
            if why is None:
                carry = IgnoredCarry(IgnoredMode.SNAPSHOT)
                dirty = src.overlay.may_have_changes()
            else:
                carry = IgnoredCarry(IgnoredMode.COPIED if ignored else IgnoredMode.NONE, why)
                if src.overlay.has_changes():
                    # with ``ignored``, paths git ignores too (a venv, node_modules): the
                    # fork starts as the source shows, and its checkpoints leave them out
                    # as the source's do
                    tree, _ = src.capture(include_ignored=ignored)
                dirty = tree is not None
                # The new workspace's state is made on first use; all a fork writes now is
                # its ref, and the captured tree (a "seed") when the source had changes.
                if tree is not None:
                    write_seed(self._new_state_dir(new), base, tree)
                    from .merge import inherit_state

                    inherit_state(src, self.ws_dir(new))  # an open merge stays open in the fork too
            try:
                refs.cas_update(
                    self.store.repo, refs.fork_ref(new), base, None, f"avfs: fork {source} -> {new}"
                )
            except BaseException:
                # the name was taken meanwhile (or the ref could not be written): the state
                # made for it goes (the source's is untouched)
                self._ws.pop(new, None)
                if os.path.lexists(link):
                    layers.remove_state_dir(self.home_dir, link)
                raise
            self.oplog.record(
                "fork",
                f"fork {source} -> {new}",
                fork=new,
                refs=[{"ref": refs.fork_ref(new), "old": None, "new": base}],
                workspaces=[
                    {"fork": new, "before": None, "after": {"base": base, "tree": tree}, "view_changed": True}
                ],
                details={"source": source, "ignored": str(carry.mode)},
            )
        info = ForkInfo(
            vault=self.name,
            name=new,
            head=base,  # type: ignore[arg-type]
            base=base,  # type: ignore[arg-type]
            dirty=dirty,
            is_default=new == self.default_fork,
        )
        return ForkCreated(info, carry)

    def _snapshot_why_not(self, src: Workspace) -> str | None:
        """None when ``src``'s state dir can be snapshotted into a new fork, else why not."""
        why = self.layers_why_not()
        if why is not None:
            return why
        mp = layers.mount_path(self.home_dir)
        if not (src.state_dir.startswith(mp + os.sep) and layers.is_subvolume(src.state_dir)):
            return (
                f"the state of fork {src.fork} is a plain directory (made before the layers file"
                " system, or where it was not available): its ignored paths are copied"
            )
        return None

    def delete_fork(self, fork: str) -> Operation:
        """Delete a fork; its ref, checkpoints and uncheckpointed changes stay recoverable
        with ``avfs undo`` (kept under a recovery ref until ``gc``)."""
        self.require_fork(fork)
        if fork == self.default_fork:
            raise UsageError(
                f"fork {fork!r} is the vault's default fork",
                hint="make another fork the default first (`avfs vault use VAULT:FORK`)",
            )
        from .checkpoint import keep_recovery, ws_state

        self.refuse_if_mounted(fork)
        with self.lock(fork):
            ws = self.workspace(fork)
            tip = ws.tip()
            before = ws_state(ws)
            changed: list[dict[str, str | None]] = []
            rec = keep_recovery(ws, "delete fork")
            if rec is not None:
                changed.append({"ref": rec[0], "old": None, "new": rec[1]})
            repo = self.store.repo
            for r in [x for x in repo.references if x.startswith(refs.checkpoint_prefix(fork))]:
                old = refs.read_ref(repo, r)
                refs.cas_update(repo, r, None, old, f"avfs: delete fork {fork}")
                changed.append({"ref": r, "old": old, "new": None})
            refs.cas_update(repo, refs.fork_ref(fork), None, tip, f"avfs: delete fork {fork}")
            changed.append({"ref": refs.fork_ref(fork), "old": tip, "new": None})
            self.discard_workspace(fork)
            self.quota.forget(fork)
            op_id = self.oplog.record(
                "fork_delete",
                f"delete fork {fork}",
                fork=fork,
                refs=changed,
                workspaces=[{"fork": fork, "before": before, "after": None, "view_changed": True}],
            )
        op = self.oplog.get(op_id)
        assert op is not None
        return op

    def refuse_if_mounted(self, fork: str | None = None) -> None:
        """Raise :class:`MountedError` when ``fork`` (any fork, when None) has a live mount:
        deleting what a mount serves would pull its upper layer and state from under the
        processes working in it (as git refuses to delete a branch checked out somewhere)."""
        live = registry.live_mountpoints(self.state_dir, fork)
        if not live:
            return
        mps = sorted(live.values())
        what = f"fork {fork!r} of vault {self.name}" if fork is not None else f"vault {self.name}"
        raise MountedError(
            f"{what} is mounted at {', '.join(mps)}",
            hint=(
                f"unmount it first: `avfs unmount {self.name}:{fork}`"
                if fork is not None
                else "unmount its forks first: `avfs unmount MOUNTPOINT` (`avfs mount --list`)"
            ),
            details={"vault": self.name, "fork": fork, "mountpoints": mps},
        )

    def set_default_fork(self, fork: str) -> None:
        self.require_fork(fork)
        self.set_config(default_fork=fork)


# -- quota ---------------------------------------------------------------------------------
#
# The quota is per vault: bytes = git objects on disk (packs + loose) + every fork's overlay
# bytes; files = the materialized files of every fork's overlay. A write must not pay a
# scan for that, so (see docs/maintenance.md "quota"):
#
# - each fork *publishes* its overlay totals as ``<vault>/avfs/usage/f.<fork>`` whenever
#   they moved by more than PUBLISH_BYTES / PUBLISH_FILES from what the file says (checked
#   after every committed overlay transaction, any process). So a fork's true totals are at
#   most its published ones + PUBLISH_*, and a fork with no file has an empty overlay;
# - every publication adds a byte to ``usage/gen``; a writer knows its own fork's totals
#   exactly (read in its transaction), reads the others' published totals again only when
#   the size of ``gen`` changed (one ``stat`` per write), and knows the objects' size from a
#   scan refreshed when a pack is written (PackWriter.finish's hook publishes
#   ``usage/objects``: any process) and at least every REFRESH_S;
# - a write passes at once when the estimate plus the slack (PUBLISH_* per other fork) is
#   within the limits; otherwise every overlay's totals are read exactly (one SQLite row
#   each) and the objects rescanned before deciding.

PUBLISH_BYTES = 4 << 20
PUBLISH_FILES = 256
REFRESH_S = 2.0  # objects' size and config.json are checked at least this often
# A loose-object directory changed this recently may change again within the same
# timestamp tick (mtimes come from the kernel's coarse clock): it is listed again next time.
RACY_S = 0.02
_GEN = "gen"  # a counter, one more per publication (see _publish)
_GEN_FMT = struct.Struct("<Q")
_EXACT_LEFT = 64 << 20  # quota_left() is exact when less than this is left
_NO_LIMIT_LEFT = 1 << 62
_FORK_PREFIX = "f."
_MARKER = ".complete"  # every fork with a non-empty overlay has published (set up once)


@dataclasses.dataclass(frozen=True, slots=True)
class ForkUsage:
    fork: str
    overlay_bytes: int  # bytes of the fork's uncheckpointed (materialized) files
    overlay_files: int  # number of those files
    layered: bool = False  # its state is in the vault's qgroup (counted in layers_bytes)


@dataclasses.dataclass(frozen=True, slots=True)
class QuotaUsage:
    """A vault's use of its quota (:meth:`Vault.quota_usage`)."""

    vault: str
    quota_bytes: int | None  # None: no limit
    quota_files: int | None
    objects_bytes: int  # git objects on disk: packs (.pack, .idx, ...) and loose objects
    forks: tuple[ForkUsage, ...]
    # with a kernel-enforced quota: what the vault's qgroup counts in the layers file system
    # (every layered fork's whole state: overlay files, a mount's upper layer, shared once)
    layers_bytes: int | None = None

    @property
    def overlay_bytes(self) -> int:
        return sum(f.overlay_bytes for f in self.forks)

    @property
    def used_bytes(self) -> int:
        if self.layers_bytes is None or not any(f.layered for f in self.forks):
            return self.objects_bytes + self.overlay_bytes
        plain = sum(f.overlay_bytes for f in self.forks if not f.layered)
        layered = sum(f.overlay_bytes for f in self.forks if f.layered)
        return self.objects_bytes + plain + max(layered, self.layers_bytes)

    @property
    def used_files(self) -> int:
        return sum(f.overlay_files for f in self.forks)

    @property
    def over(self) -> list[str]:
        """The limits the vault is past ("bytes", "files")."""
        out = []
        if self.quota_bytes is not None and self.used_bytes > self.quota_bytes:
            out.append("bytes")
        if self.quota_files is not None and self.used_files > self.quota_files:
            out.append("files")
        return out


class QuotaTracker:
    """Cheap, correct checks of a vault's quota (one per :class:`Vault`; see above)."""

    def __init__(self, vault: Vault) -> None:
        self.vault = vault
        self.dir = os.path.join(vault.state_dir, "usage")
        self.gen_path = os.path.join(self.dir, _GEN)
        self.ws_root = os.path.join(vault.state_dir, "ws")
        self.objects_dir = os.path.join(vault.path, "objects")
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
        sig = _GEN_FMT.unpack_from(self._gen_map)[0]
        if sig != self._sig:
            if not self._read_dir():
                self._setup()
                self._read_dir()
            self._sig = sig
        if now - self._objects_at > REFRESH_S:
            self._objects_stale = True
            self._check_config_file()
        if self._objects_stale:
            self._objects = self._scan_objects()
            self._objects_at = now
            self._objects_stale = False

    def _map_gen(self) -> None:
        """Map ``usage/gen`` (again when it is another file now: a usage dir made anew)."""
        try:
            st = os.stat(self.gen_path)
        except FileNotFoundError:
            self._setup()
            st = os.stat(self.gen_path)
        if self._gen_map is not None and st.st_ino == self._gen_ino:
            return
        if st.st_size < _GEN_FMT.size:  # made by a writer that died before its first count
            _bump(self.gen_path)
        fd = os.open(self.gen_path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            self._gen_map = mmap.mmap(fd, _GEN_FMT.size, access=mmap.ACCESS_READ)
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
            if name.startswith(".") or name == _GEN:  # a file being written; the counter
                continue
            data = _read_small(e.path)
            if data is None:
                continue
            if name.startswith(_FORK_PREFIX):
                parts = data.split()
                if len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit():
                    published[names.from_fs_name(name[len(_FORK_PREFIX) :])] = (int(parts[0]), int(parts[1]))
            elif self._signals.get(name) != data:
                self._signals[name] = data
                if name == "objects":
                    self._objects_stale = True
                elif name == "config":
                    self.vault._config_cache = None
        self._published = published
        return marker

    def _check_config_file(self) -> None:
        """config.json changed without a signal (an older avfs, an editor): reload it."""
        try:
            st = os.stat(self.vault._config_path)
            key = (st.st_mtime_ns, st.st_size, st.st_ino)
        except FileNotFoundError:
            key = (0, 0, 0)
        if self._config_stat is not None and key != self._config_stat:
            self.vault._config_cache = None
        self._config_stat = key

    def _scan_objects(self) -> int:
        """Bytes of the object store: the files of objects/pack and the loose objects. A
        fan-out directory whose mtime did not change is not listed again (so a rescan costs
        ~257 stats, ~0.4 ms, however many objects there are)."""
        total = 0
        pack_dir = os.path.join(self.objects_dir, "pack")
        try:
            with os.scandir(pack_dir) as it:
                for e in it:
                    # a pack being written is not counted yet; one a killed writer left is
                    if not e.name.startswith("tmp") or (
                        e.name.startswith(packwriter.TMP_PREFIX) and packwriter.temp_file_stale(e.path)
                    ):
                        total += _size_of(e)
        except FileNotFoundError:
            pass
        now_ns = time.time_ns()
        racy_ns = int(RACY_S * 1e9)
        for i in range(256):
            name = f"{i:02x}"
            path = os.path.join(self.objects_dir, name)
            try:
                mtime = os.stat(path).st_mtime_ns
            except FileNotFoundError:
                self._loose.pop(name, None)
                continue
            cached = self._loose.get(name)
            if cached is not None and cached[0] == mtime and not cached[2]:
                total += cached[1]
                continue
            size = 0
            try:
                with os.scandir(path) as it:
                    for e in it:
                        size += _size_of(e)
            except FileNotFoundError:
                continue
            self._loose[name] = (mtime, size, now_ns - mtime < racy_ns)
            total += size
        return total

    def _overlay_totals(self, fork: str, ws_dir: str) -> tuple[int, int]:
        """A fork's exact overlay totals (0, 0 when it has no overlay)."""
        ws = self.vault._ws.get(fork)
        if ws is not None and ws.state_dir == ws_dir:
            return ws.overlay.totals()
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
        _publish(self.dir, name, text)

    def note(self, fork: str, nbytes: int, nfiles: int) -> None:
        """A fork's overlay now has these totals (after a committed transaction):
        publish them when they moved far enough from what its file says."""
        try:
            with self._lock:
                self._refresh()
                pub = self._published.get(fork)
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
                self._write("config", f"{time.time_ns()} {os.getpid()}\n")
            except OSError:
                pass

    # -- checks ----------------------------------------------------------------------------
    def _estimate(self, fork: str) -> tuple[int, int, int]:
        """(objects + other forks' published bytes, their files, how many others)."""
        ob = on = k = 0
        for f, (b, n) in self._published.items():
            if f != fork:
                ob += b
                on += n
                k += 1
        return self._objects + ob, on, k

    def _exact(self, fork: str | None) -> tuple[int, int]:
        """(objects + other forks' bytes, their files), read exactly now."""
        self._objects = self._scan_objects()
        self._objects_at = time.time()
        self._objects_stale = False
        others = self._all_overlays(exclude=fork)
        return self._objects + sum(b for b, _ in others.values()), sum(n for _, n in others.values())

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
                f"vault {self.vault.name} uses {used} of its {qb} bytes quota (git objects and every"
                f" fork's uncheckpointed files); adding {grow_bytes} bytes would pass it",
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

    def usage(self) -> QuotaUsage:
        with self._lock:
            try:
                self._refresh()
            except OSError:
                pass
            qb, qf = self.vault.quota_limits()
            self._objects = self._scan_objects()
            self._objects_at = time.time()
            self._objects_stale = False
            forks = self._all_overlays()
            objects = self._objects
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
        )


def _has_upper(vault: Vault, fork: str) -> bool:
    """Whether the fork's upper layer (an overlay mount's writes) holds anything."""
    try:
        with os.scandir(os.path.join(vault.ws_dir(fork), "upper")) as it:
            return any(e.name != ".git" for e in it)
    except (FileNotFoundError, NotADirectoryError):
        return False


def _read_small(path: str) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return os.read(fd, 256)
    except OSError:
        return None
    finally:
        os.close(fd)


def _size_of(e: os.DirEntry[str]) -> int:
    try:
        return e.stat(follow_symlinks=False).st_size
    except FileNotFoundError:
        return 0


def _publish(usage_dir: str, name: str, text: str) -> None:
    """Replace ``usage/<name>`` with ``text``, then count one more in ``usage/gen``.

    Readers map ``gen`` in memory and read the directory again only when its counter
    changed (a counter, unlike a directory's mtime from the kernel's coarse clock, cannot
    miss a change made within the same tick; and reading it costs no system call).
    """
    tmp = os.path.join(usage_dir, f".{name}.{os.getpid()}.{threading.get_ident()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, text.encode("ascii"))
    finally:
        os.close(fd)
    os.replace(tmp, os.path.join(usage_dir, name))
    _bump(os.path.join(usage_dir, _GEN))


def _bump(gen_path: str) -> None:
    import fcntl

    fd = os.open(gen_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        raw = os.pread(fd, _GEN_FMT.size, 0)
        n = _GEN_FMT.unpack(raw)[0] if len(raw) == _GEN_FMT.size else 0
        os.pwrite(fd, _GEN_FMT.pack(n + 1), 0)
    finally:
        os.close(fd)  # drops the lock


def _pack_written(pack_dir: str) -> None:
    """PackWriter.finish's hook: tell every process' QuotaTracker of this vault that the
    objects grew (they rescan on their next check)."""
    usage = os.path.join(os.path.dirname(os.path.dirname(pack_dir)), "avfs", "usage")
    if not os.path.isdir(usage):
        return  # not set up yet: the first check scans the objects anyway
    try:
        _publish(usage, "objects", f"{time.time_ns()} {os.getpid()}\n")
    except OSError:
        pass


packwriter.FINISH_HOOKS.append(_pack_written)


def write_seed(ws_dir: str, base: str, tree: str) -> None:
    """Record the state a new workspace starts from (applied by Workspace on first use)."""
    try:
        os.makedirs(ws_dir, exist_ok=True)
        tmp = os.path.join(ws_dir, "seed.tmp")
        with open(tmp, "w", encoding="ascii") as fh:
            fh.write(f"{base} {tree}\n")
        os.replace(tmp, os.path.join(ws_dir, "seed"))
    except OSError as exc:
        raise from_oserror(exc, ws_dir) from exc
