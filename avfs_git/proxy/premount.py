"""The mount of a ``proxy exec`` call on a fork that is not mounted, started before its plan.

An agent that never mounts pays the mount's start-up on its first call (docs/fuse.md,
"Mounts kept warm"): a new daemon process that imports avfs, opens the fork and stacks the
overlay, ~0.25 s on a quiet machine. The call's own plan (the policy loaded and the command
classified, the sandbox probed; in the CLI, most of its imports too) needs no mount and
takes about as long. So :func:`begin` starts the daemon first (:func:`..ops.mounts.start`)
and the call plans while it comes up; :meth:`Premount.wait` waits for it after the plan,
before the fork is touched (the record, the command), so every stage after the plan meets
a live mount, as a call on a mounted fork does. Meanwhile the command's sandbox is set up
(:meth:`Premount.set_up_ahead`, :mod:`.ahead`): worked out once the daemon says the mount
is linked, started by bubblewrap with the command blocked in it once the overlay is
stacked, both a little before the daemon answers.

A call that does not run its command changes nothing of the fork. Refused (denied,
awaiting approval, no sandbox: a normal answer, and the agent's next call is coming, the
approved one say), it keeps the mount warm for that call (:meth:`Premount.keep`, once the
mount is ready). A request the plan finds bad, or an error before the command is placed:
:meth:`Premount.settle` (a cleanup of the call) waits for the daemon and unmounts it, so
the fork is left unmounted as the call found it.

The daemon is started under the fork's exec lock, taken without waiting and held until the
call ends (:func:`.placement.before` takes it again: the lock is reentrant in a thread), so
no second call mounts the fork at the same time and the daemon cannot release the mount
while the call runs. When the lock is taken, the fork is already mounted (or being mounted),
the request is not valid, FUSE is missing or the idle setting is bad, :func:`begin` starts
nothing and the call goes its usual way (which reports any error).
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING

from ..core.errors import AvfsError
from ..core.records import dataclass

if TYPE_CHECKING:
    from ..core.vaults.home import Home
    from ..core.vaults.vault import Vault
    from ..ops.mounts import MountInfo, Starting
    from .ahead import Blocked
    from .envelope import ExecRequest
    from .stages import Plan

log = logging.getLogger("avfs.proxy")


@dataclass(slots=True)
class Premount:
    """A mount daemon started for one call, under the fork's exec lock (``lock``)."""

    home: Home
    vault: Vault
    fork: str
    starting: Starting
    lock: contextlib.ExitStack
    info: MountInfo | None = None
    error: AvfsError | None = None
    used: bool = False  # the call placed its command in the mount (it keeps it then)
    ahead: Blocked | None = None  # the command's sandbox, set up ahead (:mod:`.ahead`)

    def set_up_ahead(self, plan: Plan) -> None:
        """The sandbox of the call's command worked out once the mount is linked (the
        daemon's ``L``: its own files made), and set up with the command blocked in it once
        the overlay is stacked (its ``S``, just before it announces the mount) or the mount
        is ready, while the call takes its record of the fork (:mod:`.ahead`)."""
        from ..ops.daemonstart import LINKED, STACKED

        st = self.starting
        if self.info is not None or self.error is not None or not (st.reached(LINKED) or st.answer == b"R"):
            return
        from .ahead import planned, set_up

        got = planned(self.home, self.vault, self.fork, plan, st.mountpoint)
        if got is not None and (st.reached(STACKED) or st.answer == b"R"):
            self.ahead = set_up(got)

    def wait(self) -> MountInfo:
        """The mount, once ready (raises the mount's error, as :func:`..ops.mounts.mount`
        would, when it did not come up)."""
        if self.error is not None:
            raise self.error
        if self.info is None:
            _preload()
            # the vault's object store listed for the quota's count before the command
            # (placement.before), while the daemon comes up rather than after its answer
            self.vault.quota.warm()
            try:
                self.info = self.starting.wait()
            except AvfsError as exc:
                self.error = exc
                raise
        return self.info

    def take(self) -> MountInfo:
        """The mount for the call's command (:func:`.placement.ensure_mount`): from now on
        the call keeps it (warm, or unmounted after it when the idle timeout is 0)."""
        info = self.wait()
        self.used = True
        return info

    def keep(self) -> None:
        """The call will not run its command, as a normal answer (denied, awaiting
        approval, no sandbox): the mount stays, kept warm for the fork's next call (its idle
        time counted from now), once it is ready (the exec lock is held until then, so the
        next call never meets a mount still starting)."""
        if self.used:
            return
        self.used = True
        try:
            info = self.wait()
        except AvfsError:
            return  # it never came up: Starting.wait cleaned up after it
        if info.kept_warm:
            from ..core.vaults.registry import touch_activity

            touch_activity(self.vault.state_dir, self.fork)
        else:  # (AVFS_MOUNT_IDLE=0, --keep-mount: as a call that ran would leave it)
            self.used = False
            self.settle()

    def settle(self) -> None:
        """A cleanup of the call: a mount it did not use is unmounted (after its daemon is
        ready: one that is still starting cannot be stopped cleanly)."""
        if self.used:
            return
        self.used = True
        if self.ahead is not None:
            self.ahead.discard()  # (its bind of the mount would keep it)
        try:
            self.wait()
        except AvfsError:
            return  # it never came up: Starting.wait cleaned up after it
        from ..ops import mounts

        try:
            mounts.unmount(self.home, self.vault, self.fork, lazy=True)
        except AvfsError:
            log.warning(
                "cannot unmount %s:%s, mounted for a call that did not run", self.vault.name, self.fork
            )

    def release(self) -> None:
        """The last cleanup of the call: a sandbox set up ahead and not used ended, the exec
        lock let go."""
        if self.ahead is not None:
            self.ahead.discard()
        self.lock.close()


# what the stages after the plan import as they go (the record, the sandbox's scratch, the
# journal of an overlay mount, the offer): loaded while the daemon comes up, not after
_AFTER_PLAN = (
    "avfs_git.core.operations.merge",
    "avfs_git.core.operations.checkpoint",
    "avfs_git.core.workspace.upperwatch",
    "avfs_git.core.workspace.upperask",
    "avfs_git.mount.worktree",
    "avfs_git.mount.hookscripts",
    "avfs_git.proxy.seal",
    "avfs_git.proxy.gitlinks",
    "avfs_git.proxy.offer",
    "avfs_git.proxy.recording",
)


def _preload() -> None:
    import importlib

    for name in _AFTER_PLAN:
        try:
            importlib.import_module(name)
        except Exception:  # (it fails again where it is needed, and says so there)
            log.warning("cannot load %s", name, exc_info=True)


def begin(home: Home, vault: Vault, fork: str, req: ExecRequest) -> Premount | None:
    """Start the mount of ``fork`` for the call ``req`` when the call will mount it (the
    fork not mounted, FUSE here, the request valid): a :class:`Premount`, whose
    :meth:`~Premount.release` and :meth:`~Premount.settle` the caller must make cleanups of
    the call; else None (nothing started, nothing held)."""
    from ..ops import mounts

    if req.mode == "materialized":
        return None
    try:
        from .admission import validate

        validate(req)  # a bad request is an error before anything is touched
        if mounts.check(vault, fork) is not None or mounts.fuse_available() is not None:
            return None
        idle_s = None
        if not req.keep_mount:
            from ..ops.mountidle import idle_timeout

            idle_s = idle_timeout(home, vault)
    except AvfsError:
        return None  # the plan says so (with nothing touched)
    lock = contextlib.ExitStack()
    try:
        from .placement import exec_lock

        lock.callback(exec_lock(vault, fork, wait_s=0))
        got = mounts.start(home, vault, fork, None, idle_timeout_s=idle_s if idle_s else None)
    except AvfsError:
        lock.close()  # another call holds the fork (and mounts it), or the call fails later
        return None
    except BaseException:
        lock.close()
        raise
    if isinstance(got, mounts.MountInfo):  # mounted meanwhile by someone else
        lock.close()
        return None
    return Premount(home, vault, fork, got, lock)
