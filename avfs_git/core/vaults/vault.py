"""A vault: a bare git repository plus avfs' own state under ``<vault>/avfs/``.

``<vault>/avfs/`` holds (git ignores it; clones don't carry it)::

    config.json         default fork, quota (``quota_bytes``, ``quota_files``)
    oplog.db            the operation log (:mod:`.oplog`)
    ws/<fork>/          one workspace state dir per fork (:mod:`.overlay`)
    spares/<fork>       a snapshot of the fork's state made ahead for its next fork (:mod:`.forkspare`)
    kept-index/<tree>   a lazy vault's mount index kept per base tree (:mod:`.keptindexes`)
    locks/<fork>.lock   fork locks (:mod:`.locks`)
    usage/              each fork's published overlay totals, for the quota (:class:`.quota.QuotaTracker`)

Threads: a ``Vault`` may be shared by threads; git and SQLite handles are per thread
(:class:`.threads.ThreadSlots`), opened on a thread's first use and released by
:meth:`Vault.close` (all threads) or when their thread has ended.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, Protocol, Self, TypeVar

from ..errors import (
    AlreadyExistsError,
    BusyError,
    InvalidNameError,
    NoSpaceError,
    UsageError,
    from_oserror,
    is_no_space,
    no_space,
    want_str,
)
from ..settings import DEFAULT_LOCK_WAIT_S, Settings
from ..store import names, refs
from ..store.gitstore import GitStore
from ..store.identity import Identity, Signatures, resolve
from ..store.identity import current as current_identity
from ..store.locks import FileLocks, exec_lock_path, file_lock
from ..store.safeopen import read_settings
from ..types import CommitId, ForkCreated, ForkInfo, IgnoredCarry, IgnoredMode
from ..workspace.changelog import claim_new_fork
from ..workspace.sqlite import busy_error
from ..workspace.upper import drop_gitfile
from . import forkspare, layers, lostfork
from .forkremoval import VaultForkRemoval
from .lazyconfig import FetchTimeout, KeepConnection, Neighbours, PackageBytes
from .oplog import OpLog
from .quota import QuotaTracker
from .vaultquota import VaultQuota


class VaultHome(Protocol):
    """What a vault needs of the home it was opened from (:class:`.home.Home` is one): the
    home makes its vaults, so this module knows it by these names only."""

    path: str
    settings: Settings  # what the front end read from the environment
    layers_attempts: layers.Attempts  # a failed mount of its layers file system, not tried again
    writer: str | None  # who writes through it when not the API (``mcp``), for `avfs watch`

    @property
    def layers_mode(self) -> str: ...
    @property
    def paths(self) -> GuardSource | None: ...


# The home a vault names back is a type parameter, as a workspace's vault is (see
# :mod:`.workspace`): ``Home.vault()`` returns a ``Vault[Home]``, so ``vault.home`` and
# ``ws.vault.home`` are a ``Home`` to a caller's type checker while this module never
# imports it. A bare ``Vault`` is one of some ``VaultHome``.
if TYPE_CHECKING:
    import typing_extensions  # its TypeVar takes a default (PEP 696; typing's own from 3.13)

    from ..workspace.pathguard import GuardSource, PathGuard
    from ..workspace.workspace import MountSide, Workspace

    H_co = typing_extensions.TypeVar("H_co", bound=VaultHome, covariant=True, default=VaultHome)
else:
    H_co = TypeVar("H_co", covariant=True)  # typing's TypeVar takes no default before 3.13


class Vault(VaultQuota, VaultForkRemoval, Generic[H_co]):
    """One vault. Get it from :meth:`avfs_git.Home.vault`."""

    def __init__(
        self,
        name: str,
        path: str,
        *,
        mounts: MountSide,
        author: tuple[str, str] | None = None,
        home: H_co | None = None,
        identity: Identity | None = None,
        fallback_author: tuple[str, str] | None = None,
    ) -> None:
        """``mounts``: what reaches a live mount of a fork (its workspaces are given it; the
        home passes its own)."""
        self.name = name
        self.path = path
        self.home: H_co | None = home  # the home it was opened from (proxy exec needs its policy and mounts)
        self.mounts = mounts
        self.store = GitStore(path)
        if home is not None:  # a lazy vault's fetches reach the server as push and fetch do
            self.store.promisor.token = home.settings.git_token
        # ... within the vault's (or the home's) fetch_timeout_s, read at each fetch; a demand
        # read fetches its directory's other promised blobs with its own, the first miss in a
        # Python package its other small sources, over one kept connection to a git:// server
        cfg, home_path = os.path.join(path, "avfs", "config.json"), home.path if home is not None else None
        self.store.promisor.timeout_of = FetchTimeout(cfg, home_path)
        self.store.promisor.neighbours_of = Neighbours(cfg, home_path)
        self.store.promisor.package_bytes_of = PackageBytes(cfg, home_path)
        self.store.promisor.keep_connection_of = KeepConnection(cfg, home_path)
        self.state_dir = os.path.join(path, "avfs")
        # a new vault's op log: a copy of a template beside the home's vaults (none for a lone vault)
        # (its records wait for another process's lock as the vault's locks do)
        self.oplog = OpLog(
            self.state_dir, os.path.dirname(path) if home is not None else None, lambda: self.lock_wait_s
        )
        # who commits are by (:mod:`.identity`): author, else identity (env), git config, fallback
        self._identity = Identity.of(*author) if author is not None else identity
        self._fallback_author = fallback_author
        self._ws: dict[str, Workspace[Self]] = {}
        self._ws_lock = threading.Lock()
        self._lock_dir_made = False
        self._config_cache: dict[str, Any] | None = None
        self.quota = QuotaTracker(self)
        self._room_plenty_until = 0.0  # see kernel_quota_full
        # the home's record of a failed mount of its layers file system (a lone vault: its own)
        self._layers_attempts = home.layers_attempts if home is not None else layers.Attempts()
        self.checkpoints_saved = 0  # through this handle: at 2, a long-lived process (checkpoint.save)

    def __repr__(self) -> str:
        return f"Vault({self.name!r}, {self.path!r})"

    @property
    def lazy(self) -> bool:
        """Whether this is a lazy vault (a partial clone: blobs come from its promisor
        remote as they are read; docs/lazy.md)."""
        return self.store.promisor.remote() is not None

    def path_guard(self, fork: str | None) -> PathGuard:
        """The path rules of ``fork`` (docs/policy.md "Path policies"): from the home's
        source of them (``Home(paths=...)``; a home without one, or a vault opened without a
        home, has none).

        Raises:
            PolicyError: a policy file is not valid (every write then fails closed).
        """
        source = self.home.paths if self.home is not None else None
        if source is None:
            from ..workspace.pathguard import NO_GUARD

            return NO_GUARD
        return source.rules(self.home.path if self.home is not None else "", self.path, fork)

    def close(self) -> None:
        """Release the git and SQLite handles (and their file descriptors) of every thread.

        The vault and its workspaces stay usable: each thread reopens what it needs on its
        next call. Call it when no other thread is in the middle of an operation on it.
        """
        self.close_workspaces(forget=False)
        self.oplog.close()
        self.store.close()
        self.quota.close()

    def close_workspaces(self, *, forget: bool = True, keep: int = 0, check: bool = True) -> None:
        """Close the workspaces opened through this handle and (``forget``) forget them: the
        next :meth:`workspace` opens its own. ``keep``: not the ``keep`` used last while the
        fork's state dir holds the overlay database each opened (not a fork deleted, or made
        again, by another process); a handle kept from call to call (cli/homekeep.py).
        ``check=False``: those ``keep`` kept without that look (a caller that looks before
        their next use)."""
        with self._ws_lock:
            wss = list(self._ws.items())
            last = [(f, w) for f, w in wss[max(0, len(wss) - keep) :] if keep and forget]
            if last and check:  # (a process that opened no workspace, a gc's, loads no workspace module)
                from ..workspace.overlaydb import file_id  # (through the link: its state dir now)
            kept = {
                f: w
                for f, w in last
                if not check or w.overlay.opened_on() == file_id(self.ws_link(f) + "/overlay.db")
            }
            self._ws = kept if forget else self._ws
        for f, ws in wss:
            if f not in kept:
                ws.overlay.close()

    # -- config ---------------------------------------------------------------------------
    @property
    def config_path(self) -> str:
        return os.path.join(self.state_dir, "config.json")

    @property
    def config(self) -> dict[str, Any]:
        if self._config_cache is None:
            # (a FIFO there held every command for ever, a directory was exit 70)
            data = read_settings(self.config_path)
            try:
                got = {} if data is None else json.loads(data)
            except (
                ValueError,
                RecursionError,
            ) as exc:  # (was exit 70, as a list or a deep nesting in it was)
                raise UsageError(
                    f"cannot read {self.config_path}: {exc}",
                    hint="fix the file: it holds the vault's own settings (its default fork, its maintenance)",
                ) from exc
            if not isinstance(got, dict):
                raise UsageError(
                    f"cannot read {self.config_path}: it holds a JSON {type(got).__name__},"
                    " not an object of settings",
                    hint="fix the file: it holds the vault's own settings (its default fork, its maintenance)",
                )
            self._config_cache = got
        return self._config_cache

    def fresh_config(self) -> dict[str, Any]:
        """The config as on disk now (another process may have changed it)."""
        self.forget_config()
        return self.config

    def forget_config(self) -> None:
        """Read the config from disk again on next use (another process changed it)."""
        self._config_cache = None

    def set_config(self, **values: Any) -> None:
        cfg = dict(self.config)
        cfg.update(values)
        tmp = self.config_path + ".tmp"
        try:
            with open(tmp, "w", encoding="utf-8") as fh:
                json.dump(cfg, fh, indent=2, sort_keys=True)
            os.replace(tmp, self.config_path)
        except OSError as exc:
            raise from_oserror(exc, self.config_path) from exc
        self._config_cache = cfg
        self.quota.config_changed()

    @property
    def default_fork(self) -> str:
        return str(self.config.get("default_fork", "main"))

    def author(self, branch: str | None = None) -> Signatures:
        """Author and committer of this vault's next commit (git's order, :mod:`.identity`;
        an identity set with :func:`.identity.using` comes first); ``branch``: a commit on
        that fork, whose config git in its worktree reads (:func:`.lineconfig.fork_settings`, since
        gitmodel26: before, the vault's reading named another person)."""
        ident = self._identity
        over = current_identity()
        if over is not None:
            ident = over.over(ident)
        from ..store.lineconfig import fork_settings  # (only where a commit is made)

        fork = fork_settings(self.store.path, branch)  # (an includeIf: the fork's own reading)
        if fork is not None:
            return resolve(ident, fork.get, self._fallback_author)
        return self.store.signature(ident, self._fallback_author)

    # -- locks ----------------------------------------------------------------------------
    @property
    def lock_wait_s(self) -> float:
        """How long a lock of this vault is waited for: the home's settings
        (``$AVFS_LOCK_WAIT``, read by the front end), else 10 s."""
        return self.home.settings.lock_wait_s() if self.home is not None else DEFAULT_LOCK_WAIT_S

    def lock(self, *forks: str, wait_s: float | None = None) -> FileLocks:
        """The locks of ``forks``, held in a ``with`` block (taken in sorted order: no
        deadlock between callers)."""
        lock_dir = os.path.join(self.state_dir, "locks")
        if not self._lock_dir_made:  # once a handle: a vault's locks dir is never removed
            try:
                os.makedirs(lock_dir, exist_ok=True)
            except OSError as exc:
                raise from_oserror(exc, lock_dir) from exc
            self._lock_dir_made = True
        items = [
            (os.path.join(lock_dir, names.fs_name(f) + ".lock"), f"fork {f} of vault {self.name}")
            for f in sorted(set(forks))
        ]
        return FileLocks(items, self.lock_wait_s if wait_s is None else wait_s)

    # -- forks ----------------------------------------------------------------------------
    def fork_names(self) -> list[str]:
        return [r[len(refs.HEADS) :] for r in refs.list_refs_file(self.path, refs.HEADS)]

    def has_fork(self, fork: str) -> bool:
        return refs.read_ref_file(self.path, refs.fork_ref(fork)) is not None

    def open_overlay_totals(self, fork: str, state_dir: str) -> tuple[int, int] | None:
        """The overlay totals of ``fork``'s workspace when this vault has it open on
        ``state_dir``, else None (the quota then reads them from the overlay's database)."""
        ws = self._ws.get(fork)
        if ws is not None and ws.state_dir == state_dir:
            return ws.overlay.totals()
        return None

    def discard_workspace(self, fork: str) -> None:
        """Close the fork's open workspace, if any, and remove its state directory (its
        overlay, journal and indexes): for a fork whose ref is gone."""
        ws = self._ws.pop(fork, None)
        if ws is not None:
            ws.overlay.close()
        # a killed overlay daemon leaves the worktree link pinned immutable in the upper layer (rmtree fails)
        drop_gitfile(os.path.join(self.ws_dir(fork), "upper"))
        layers.remove_state_dir(self.home_dir, self.ws_link(fork))
        from ..store.deeptree import rmtree
        from .registry import gitkept_dir

        kept = gitkept_dir(self.state_dir, fork)  # git's state its last mount kept
        for path in (kept, kept + ".set-aside"):
            rmtree(path, ignore_errors=True)

    def require_fork(self, fork: str) -> None:
        """Raise :class:`ForkNotFoundError` (or a bad-name error) unless ``fork`` exists."""
        names.check_fork_name(fork)
        if not self.has_fork(fork):
            raise lostfork.missing(self, fork)  # (a branch git deleted: its workspace stays)

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
        return layers.resolve(self.home_dir, self.ws_link(fork), self._layers_attempts)

    def layers_why_not(self) -> str | None:
        """None when new state dirs of this vault go into the home's layers file system,
        else why they do not (the home's ``layers`` setting, or what the host lacks)."""
        mode = self.home.layers_mode if self.home is not None else "off"
        if mode == "off":
            return "the home's layers setting is off"
        if layers.mounted(self.home_dir):
            return None
        return self._layers_attempts.failed or layers.probe()

    def _new_state_dir(self, fork: str) -> str:
        """A state dir for a workspace that has none: a subvolume of the layers file system
        where it can be, else a plain directory (made by the workspace on first use)."""
        link = self.ws_link(fork)
        if os.path.lexists(link) or self.layers_why_not() is not None:
            return self.ws_dir(fork)
        try:
            return layers.make_state_dir(self.home_dir, link, self.qgroup(), self._layers_attempts)
        except layers.LayersUnavailable:
            return link

    def qgroup(self) -> int | None:
        """The vault's qgroup (new subvolumes join it), when it has one."""
        n = self.config.get("layers_qgroup")
        return n if isinstance(n, int) else None

    def workspace(self, fork: str | None = None) -> Workspace[Self]:
        """The workspace of ``fork`` (the vault's default fork when None)."""
        fork = want_str(fork or self.default_fork, "fork")
        ws = self._ws.get(fork)
        # an open workspace: settling its base reads the fork's ref once (is it still there?)
        if ws is not None and ws.sync_base():
            with self._ws_lock:  # (the last used last: close_workspaces' keep)
                if self._ws.get(fork) is ws and next(reversed(self._ws)) != fork:
                    self._ws[fork] = self._ws.pop(fork)
            return ws
        self.require_fork(fork)
        from ..workspace.workspace import Workspace

        with self._ws_lock:
            ws = self._ws.get(fork)
            if ws is None:
                ws = Workspace(self, fork, self._new_state_dir(fork))
                ws.overlay.writer = self.home.writer if self.home is not None else None
                self._ws[fork] = ws
                return ws
        ws.sync_base()
        return ws

    def revision_view(self, fork: str, commit: str, state_dir: str) -> Workspace[Self]:
        """A read-only workspace showing ``commit`` (for mounting history); costs nothing
        to set up: an empty overlay in ``state_dir``."""
        from ..workspace.workspace import Workspace

        self.require_fork(fork)
        self.store.commit_tree(commit)  # exists?
        return Workspace(self, fork, state_dir, pinned=commit)

    def fork_info(self, fork: str) -> ForkInfo:
        ws = self.workspace(want_str(fork, "fork"))  # (None is not the default fork here)
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
        """Every branch of the vault, each fork's state (:func:`.forklist.forks`)."""
        from .forklist import forks

        return forks(self)

    def open_forks(self) -> list[str]:
        """The forks whose workspaces this handle holds open."""
        with self._ws_lock:
            return list(self._ws)

    def close_workspace(self, fork: str) -> None:
        """Close and forget ``fork``'s workspace, if this handle holds one open."""
        with self._ws_lock:
            ws = self._ws.pop(fork, None)
        if ws is not None:
            ws.overlay.close()

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
        held = self.lock(source, new)  # (made first: it makes the locks directory)
        # a `proxy exec` running on the source first, as a checkpoint waits for one: its
        # command's writes are looked at as it ends (a repository it planted set aside,
        # proxy/plantedgit.py), and a fork meanwhile took them in unlooked at (plant3)
        ran = f"fork {source} of vault {self.name} (a `proxy exec` runs there)"
        with file_lock(exec_lock_path(self.state_dir, source), what=ran, wait_s=self.lock_wait_s), held:
            # looked for under the lock: a fork of this name made while this call waited
            # for it would otherwise lose its state below, before this one's ref failed
            if self.has_fork(new):
                raise AlreadyExistsError(
                    f"vault {self.name} already has a fork {new!r}", details={"fork": new}
                )
            src, base, db_changed = self._settled_source(source)
            link = self.ws_link(new)
            if os.path.lexists(link):  # left by a fork of that name deleted before
                layers.remove_state_dir(self.home_dir, link)
            self._ws.pop(new, None)
            tree: str | None = None
            kept: dict[str, bytes] = {}  # (the source's bytes of files the capture converted)
            snap: tuple[str, int | None, bool | None] | None = None
            why = self.snapshot_why_not(src) if ignored else "--no-ignored: a clean fork"
            if why is None:
                try:
                    snap = forkspare.snapshot_for_fork(self, src, link, new)
                except layers.LayersUnavailable as exc:
                    why = str(exc)
            if why is None:
                carry = IgnoredCarry(IgnoredMode.SNAPSHOT)
                dirty = src.overlay.may_have_changes()
            else:
                carry = IgnoredCarry(IgnoredMode.COPIED if ignored else IgnoredMode.NONE, why)
                if (
                    src.overlay.has_changes()
                    if db_changed is None or src.overlay.upper_active()
                    else db_changed
                ):
                    # with ``ignored``, paths git ignores too (a venv, node_modules): the fork
                    # starts as the source shows, its checkpoints leave them out as the source's
                    # do (an unchanged source's kept capture: see forkcapture)
                    from ..workspace.forkcapture import capture_for_fork, keep_source_bytes

                    tree, kept = capture_for_fork(src) if ignored else (src.capture()[0], {})
                dirty = tree is not None
                # The new workspace's state is made on first use; all a fork writes now is
                # its ref, and the captured tree (a "seed") when the source had changes.
                if tree is not None:
                    forkspare.write_seed(self._new_state_dir(new), base, tree)
                    from ..workspace.mergestate import inherit_state

                    inherit_state(src, self.ws_dir(new))  # an open merge stays open in the fork too
            if snap is not None and snap[2] is not None:  # the snapshot's journals are its
                claim_new_fork(snap[0], new, snap[1], carried=snap[2])  # source's history
            try:
                refs.cas_update(self.store, refs.fork_ref(new), base, None, f"avfs: fork {source} -> {new}")
            except BaseException:
                # the name was taken meanwhile (or the ref could not be written): the state
                # made for it goes (the source's is untouched)
                self._ws.pop(new, None)
                if os.path.lexists(link):
                    layers.remove_state_dir(self.home_dir, link)
                raise

            def hold() -> None:  # (taken back with the fork when it or the record fails)
                from ..workspace import wsheld

                wsheld.hold_new_fork(self.store, source, new, snap is not None, tree)
                if kept:
                    keep_source_bytes(self.workspace(new), kept)

            self._record_fork(source, new, base, tree, carry, hold)
        at = CommitId(base)
        info = ForkInfo(
            vault=self.name, name=new, head=at, base=at, dirty=dirty, is_default=new == self.default_fork
        )
        return ForkCreated(info, carry)

    def _record_fork(
        self,
        source: str,
        new: str,
        base: str,
        tree: str | None,
        carry: IgnoredCarry,
        hold: Callable[[], None],
    ) -> None:
        """Hold what the fork just made names by id (``hold``) and record it (under its lock);
        when either fails (a full disk), the fork goes again, its held ref too: no fork without
        its operation, and nothing of it left, as its error says ("nothing was changed"; the
        held ref stayed, naming a fork that was not there, flaky1). What it wrote before stays
        as objects no ref names, as a refused merge's (gc expires them)."""
        try:
            hold()
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
        except BaseException as exc:
            refs.cas_update(self.store, refs.fork_ref(new), None, base, f"avfs: fork {new} not recorded")
            from ..store import heldref  # (a failed fork's only: off every command's imports)

            heldref.drop(self.store, new)
            self.discard_workspace(new)
            if isinstance(exc, NoSpaceError) or is_no_space(exc):  # (its error said the fork was made)
                raise no_space(self.oplog.path) from exc
            if isinstance(exc, BusyError) and exc.details.get("done"):
                # (the log held by another process: its error said the fork was made and
                # "do not repeat it", the fork just taken back)
                raise busy_error("the operation log", self.oplog.path, exc.details["waited_s"]) from exc
            raise

    def _settled_source(self, source: str) -> tuple[Workspace[Self], str, bool | None]:
        """Fork ``source``'s workspace with its base settled (called under its lock), its
        base, and whether its overlay's database holds changes (None: not read). Where the
        workspace is open and :meth:`.Workspace.sync_base` would find nothing to settle
        (no pending move, the base at the ref), that is one read of its overlay, the same
        read and comparison sync_base makes, with the changes read along."""
        ws = self._ws.get(source)
        if ws is not None and ws.pinned is None:
            base, pending, changed = ws.overlay.settled_state()
            if pending is None and base is not None and base == ws.tip():  # the ref after the base
                return ws, base, changed
        ws = self.workspace(source)
        return ws, ws.base, None

    def snapshot_why_not(self, src: Workspace) -> str | None:
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
        return forkspare.making_why(self, src)  # a spare of it being snapshotted: copied

    def set_default_fork(self, fork: str) -> None:
        self.require_fork(fork)
        self.set_config(default_fork=fork)
