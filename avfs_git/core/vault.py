"""A vault: a bare git repository plus avfs' own state under ``<vault>/avfs/``.

``<vault>/avfs/`` holds (git ignores it; clones don't carry it)::

    config.json         default fork, quota
    oplog.db            the operation log (:mod:`.oplog`)
    ws/<fork>/          one workspace state dir per fork (:mod:`.overlay`)
    locks/<fork>.lock   fork locks (:mod:`.locks`)

Threads: a ``Vault`` may be shared by threads; git and SQLite handles are per thread
(:class:`.threads.ThreadSlots`), opened on a thread's first use and released by
:meth:`Vault.close` (all threads) or when their thread has ended.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, Any

from . import names, refs
from .errors import (
    AlreadyExistsError,
    ForkNotFoundError,
    InvalidNameError,
    UsageError,
    from_oserror,
)
from .gitstore import GitStore
from .locks import file_lock
from .oplog import OpLog
from .types import ForkInfo, Operation
from .workspace import Workspace

if TYPE_CHECKING:
    from .home import Home

DEFAULT_QUOTA = 10 * 1024**3  # 10 GiB of uncheckpointed changes per fork


class Vault:
    """One vault. Get it from :meth:`avfs_git.Home.vault`."""

    def __init__(
        self, name: str, path: str, *, author: tuple[str, str] | None = None, home: Home | None = None
    ) -> None:
        self.name = name
        self.path = path
        self.home = home  # the home it was opened from (proxy exec needs its policy and mounts)
        self.store = GitStore(path)
        self.state_dir = os.path.join(path, "avfs")
        self.oplog = OpLog(self.state_dir)
        self._author = author
        self._ws: dict[str, Workspace] = {}
        self._ws_lock = threading.Lock()
        self._config_cache: dict[str, Any] | None = None

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

    @property
    def quota_bytes(self) -> int:
        return int(self.config.get("quota_bytes", DEFAULT_QUOTA))

    @property
    def default_fork(self) -> str:
        return str(self.config.get("default_fork", "main"))

    def author(self) -> Any:
        if self._author is not None:
            return self.store.signature(*self._author)
        return self.store.signature()

    # -- locks ----------------------------------------------------------------------------
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
                path = os.path.join(lock_dir, _fs_name(f) + ".lock")
                stack.enter_context(file_lock(path, what=f"fork {f} of vault {self.name}", wait_s=wait_s))
            yield

    # -- forks ----------------------------------------------------------------------------
    def fork_names(self) -> list[str]:
        return [r[len(refs.HEADS) :] for r in refs.list_refs_file(self.path, refs.HEADS)]

    def has_fork(self, fork: str) -> bool:
        return refs.read_ref_file(self.path, refs.fork_ref(fork)) is not None

    def _require_fork(self, fork: str) -> None:
        names.check_fork_name(fork)
        if not self.has_fork(fork):
            raise ForkNotFoundError(
                f"vault {self.name} has no fork {fork!r}",
                hint=f"see `avfs --vault {self.name} vault info` for its forks",
                details={"vault": self.name, "fork": fork},
            )

    def ws_dir(self, fork: str) -> str:
        return os.path.join(self.state_dir, "ws", _fs_name(fork))

    def workspace(self, fork: str | None = None) -> Workspace:
        """The workspace of ``fork`` (the vault's default fork when None)."""
        fork = fork or self.default_fork
        ws = self._ws.get(fork)
        # an open workspace: settling its base reads the fork's ref once, which also says
        # whether the fork still exists
        if ws is not None and ws._sync_base():
            return ws
        self._require_fork(fork)
        with self._ws_lock:
            ws = self._ws.get(fork)
            if ws is None:
                ws = Workspace(self, fork, self.ws_dir(fork))
                self._ws[fork] = ws
                return ws
        ws._sync_base()
        return ws

    def revision_view(self, fork: str, commit: str, state_dir: str) -> Workspace:
        """A read-only workspace showing ``commit`` (for mounting history); costs nothing
        to set up: an empty overlay in ``state_dir``."""
        self._require_fork(fork)
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

    def create_fork(self, source: str | None, new: str) -> ForkInfo:
        """Fork ``source`` (default fork when None) as ``new``: O(1) in tree size.

        The new fork starts from the source's *current* state: its ref is the source's base
        commit and its workspace shows the source's uncheckpointed changes too (captured as
        one tree; the source is not disturbed).
        """
        source = source or self.default_fork
        names.check_fork_name(new)
        self._require_fork(source)
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
            tree: str | None = None
            if src.is_dirty():
                tree, _ = src.capture()
            refs.cas_update(self.store.repo, refs.fork_ref(new), base, None, f"avfs: fork {source} -> {new}")
            # The new workspace's state is made on first use; all a fork writes now is its
            # ref, and the captured tree (a "seed") when the source had changes.
            ws_dir = self.ws_dir(new)
            if os.path.lexists(ws_dir):  # left by a fork of that name deleted before
                shutil.rmtree(ws_dir, ignore_errors=True)
            self._ws.pop(new, None)
            if tree is not None:
                write_seed(ws_dir, base, tree)
            self.oplog.record(
                "fork",
                f"fork {source} -> {new}",
                fork=new,
                refs=[{"ref": refs.fork_ref(new), "old": None, "new": base}],
                workspaces=[
                    {"fork": new, "before": None, "after": {"base": base, "tree": tree}, "view_changed": True}
                ],
                details={"source": source},
            )
        return ForkInfo(
            vault=self.name,
            name=new,
            head=base,  # type: ignore[arg-type]
            base=base,  # type: ignore[arg-type]
            dirty=tree is not None,
            is_default=new == self.default_fork,
        )

    def delete_fork(self, fork: str) -> Operation:
        """Delete a fork; its ref, checkpoints and uncheckpointed changes stay recoverable
        with ``avfs undo`` (kept under a recovery ref until ``gc``)."""
        self._require_fork(fork)
        if fork == self.default_fork:
            raise UsageError(
                f"fork {fork!r} is the vault's default fork",
                hint="make another fork the default first (`avfs vault use VAULT:FORK`)",
            )
        from .checkpoint import keep_recovery, ws_state

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
            ws.overlay.close()
            self._ws.pop(fork, None)
            shutil.rmtree(self.ws_dir(fork), ignore_errors=True)
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

    def set_default_fork(self, fork: str) -> None:
        self._require_fork(fork)
        self.set_config(default_fork=fork)


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


def _fs_name(fork: str) -> str:
    """A fork name as one directory name ('/' is legal in forks)."""
    # fork names are [A-Za-z0-9._+-] and '/', so escaping '/' (and '%') is enough
    return fork.replace("%", "%25").replace("/", "%2F")
