"""Removing a fork from a vault: :meth:`VaultForkRemoval.delete_fork` (its ref, checkpoints and
uncheckpointed changes kept recoverable for ``avfs undo``), the unlinking of a gone fork's lock
files, and the refusal while a fork (or any fork) has a live mount, which deleting a vault and
an undo that deletes a fork make too.

:class:`VaultForkRemoval` is a part of :class:`.vault.Vault` (its base class): this module
holds its methods, the vault the state they use.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from ..errors import MountedError, UsageError
from ..store import names, refs
from ..store.gitstore import GitStore
from ..store.locks import FileLocks, exec_lock_path, mount_lock_path, remove_unused, write_lock_path
from ..types import Operation
from . import forkspare, keptstate, registry
from .oplog import OpLog
from .quota import QuotaTracker
from .warmrelease import release_kept_warm

if TYPE_CHECKING:
    from ..workspace.workspace import Workspace


class VaultForkRemoval:
    """Fork removal of a :class:`.vault.Vault` (its base class: what it needs of the vault is
    declared below, for the type checker: what :func:`.forkspare.drop` needs of it too)."""

    if TYPE_CHECKING:
        name: str
        path: str
        state_dir: str
        store: GitStore
        oplog: OpLog
        quota: QuotaTracker

        @property
        def default_fork(self) -> str: ...
        @property
        def home_dir(self) -> str: ...
        @property
        def config(self) -> dict[str, Any]: ...
        def has_fork(self, fork: str) -> bool: ...
        def require_fork(self, fork: str) -> None: ...
        @property
        def lock_wait_s(self) -> float: ...
        def lock(self, *forks: str, wait_s: float | None = None) -> FileLocks: ...
        def workspace(self, fork: str | None = None) -> Workspace[Any]: ...
        def discard_workspace(self, fork: str) -> None: ...
        def snapshot_why_not(self, src: Workspace[Any]) -> str | None: ...
        def qgroup(self) -> int | None: ...

    def delete_fork(self, fork: str) -> Operation:
        """Delete a fork; its ref, checkpoints and uncheckpointed changes stay recoverable
        with ``avfs undo`` (kept under a recovery ref until ``gc``)."""
        self.require_fork(fork)
        if fork == self.default_fork:
            raise UsageError(
                f"fork {fork!r} is the vault's default fork",
                hint="make another fork the default first (`avfs vault use VAULT:FORK`)",
            )
        self.refuse_if_mounted(fork)  # (a mount kept warm asked to go: before any lock, see below)
        from ..workspace.wscommit import state_and_kept

        # the fork's mount lock, which a mount's start holds until its record is written, then
        # the fork's (the order a mount daemon releasing takes them), and the check again under
        # them: a mount started since the first is refused here, one starting later waits and
        # finds no fork (ops/mounts.py). Found in the thirty-third round (tidy2, from the
        # review): the check ran before any lock, and a mount made while the delete waited
        # for the fork's lock stayed mounted on a fork deleted under it
        mount_lock = (mount_lock_path(self.state_dir, fork), f"the mount of {self.name}:{fork}")
        with FileLocks((mount_lock,), self.lock_wait_s), self.lock(fork):
            self.refuse_if_mounted(fork, release=False)
            ws = self.workspace(fork)
            tip = ws.tip()
            before, rec = state_and_kept(ws, "delete fork")  # (one status, one capture)
            changed: list[dict[str, str | None]] = []
            if rec is not None:
                changed.append({"ref": rec[0], "old": None, "new": rec[1]})
            try:  # the branch first: one moved meanwhile (a push) changes nothing, no ref made
                refs.cas_update(self.store, refs.fork_ref(fork), None, tip, f"avfs: delete fork {fork}")
            except BaseException:
                if rec is not None:  # (both or neither: the recovery ref and its operation)
                    refs.cas_update(self.store, rec[0], None, rec[1], f"avfs: delete fork {fork}")
                raise
            for r in refs.ref_names(self.store, refs.checkpoint_prefix(fork)):
                old = refs.read_ref(self.store, r)
                refs.cas_update(self.store, r, None, old, f"avfs: delete fork {fork}")
                changed.append({"ref": r, "old": old, "new": None})
            changed.append({"ref": refs.fork_ref(fork), "old": tip, "new": None})
            self.discard_workspace(fork)
            from ..store import heldref

            heldref.drop(self.store, fork)  # (the recovery ref holds what its overlay named)
            forkspare.drop(self, fork)
            self.quota.forget(fork)
            op_id = self.oplog.record(
                "fork_delete",
                f"delete fork {fork}",
                fork=fork,
                refs=changed,
                workspaces=[{"fork": fork, "before": before, "after": None, "view_changed": True}],
            )
            keptstate.set_aside(self.state_dir, fork, op_id)  # (git state commands left: undo brings it back)

        self.drop_fork_locks(fork)
        op = self.oplog.get(op_id)
        assert op is not None
        return op

    def drop_fork_locks(self, fork: str) -> None:
        """Unlink the lock files of ``fork``, gone (deleted, its creation undone), and the git
        dir its settings were read through while unmounted (``<vault>/avfs/forkconfig/``,
        gitmodel28): no orphans."""
        fork_lock = os.path.join(self.state_dir, "locks", names.fs_name(fork) + ".lock")
        for lock in (
            fork_lock,
            exec_lock_path(self.state_dir, fork),
            write_lock_path(self.state_dir, fork),
            mount_lock_path(self.state_dir, fork),
        ):
            remove_unused(lock, lambda: refs.read_ref_file(self.path, refs.fork_ref(fork)) is None)
        if refs.read_ref_file(self.path, refs.fork_ref(fork)) is None:
            from ..store.lineconfig import drop_own_git_dir

            drop_own_git_dir(self.store.path, fork)

    def refuse_if_mounted(self, fork: str | None = None, *, release: bool = True) -> None:
        """Raise :class:`MountedError` when ``fork`` (any fork, when None) has a live mount:
        deleting what a mount serves would pull its upper layer and state from under the
        processes working in it (as git refuses to delete a branch checked out somewhere).
        A mount kept warm for ``proxy exec`` (nobody asked for it) is asked to go first
        (:mod:`.warmrelease`); it stays, and so refuses, while a command runs in it.
        ``release`` False: none is asked (a caller holding the fork's locks, which the
        daemon's release waits for, asked before it took them)."""
        live = registry.live_mountpoints(self.state_dir, fork)
        if live and release:
            release_kept_warm(self.state_dir, fork)
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
