"""The first ``proxy exec`` on a fork that is not mounted: its sandbox set up ahead.

The call starts the fork's mount daemon before its plan (:mod:`.premount`) and waits for
the mount to be announced (the daemon's ``R``); what it did after that was its own work:
the record of the fork (``before``), the placement, then bubblewrap's set-up of the
sandbox (namespaces, ~40 mounts, ``pivot_root``: ~7 ms of a confined ``true``'s ~9 here)
and the command, the record. ``avfs mount`` of the same fork only answers after that
``R``, so that work was what the first call cost over the mount.

A sandbox binds the fork's mount, so it cannot be made before the mount exists (the host's
mounts are private: a mount made after the sandbox would not reach into it). But the daemon
says how far it got on its readiness pipe before its ``R`` (ops/daemonstart.py): ``L``
once the mount is a linked worktree of the vault with its own files (git's fsmonitor hook
and socket, which the sandbox shows), ``S`` once the overlay is stacked on the mount point
and the path policy's read-only binds are made (then it writes its records and answers).
At ``L``, while the daemon writes the index and mounts, :func:`sandbox_ahead` works out the
sandbox the command will get (:func:`.placement.place`'s own function, for the mount point
the daemon was started on); at ``S``, :func:`set_up` has it made ready with a waiter, as a
mount's daemon keeps the next call's sandbox ready (:mod:`.standby`), while the call takes
its record of the fork. The command then starts in it when its own sandbox, worked out
again after ``before``, is the same: :meth:`.standby.Standbys.take` compares bubblewrap's
whole command line, so the command runs in exactly the sandbox it would have had; any
difference, and the ready one is ended and the command's own is set up as before.

Not for a command with its own stdin, a filtered network (its proxy's socket is bound),
an isolated view or no sandbox: those set theirs up after the ``R`` as before. The pure
FUSE backend says no ``S``: there the sandbox is made ready from ``R`` on (overlapped with
``before``).
"""

from __future__ import annotations

import logging
import os
import subprocess
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from ..core.vaults.home import Home
    from ..core.vaults.vault import Vault
    from .confine import Sandbox
    from .stages import Plan
    from .standby import Standbys

log = logging.getLogger("avfs.proxy")


def sandbox_for_plan(home: Home, vault: Vault, fork: str, plan: Plan, root: str) -> Sandbox | None:
    """The sandbox :func:`.placement.place` will give ``plan``'s command once the fork is
    mounted at ``root``; None when it runs in none that can be made ahead."""
    req, conf = plan.req, plan.confinement
    if (
        plan.mode != "fuse"
        or plan.isolation is not None
        or conf.kind != "bwrap"
        or conf.network == "filtered"
    ):
        return None
    if req.stdin != subprocess.DEVNULL:
        return None
    from . import confine
    from .placement import _in_sandbox

    at = confine.stable_path(vault.name)
    at_cwd = os.path.join(at, plan.cwd) if plan.cwd else at

    def sandbox_of(**kw: Any) -> Any:
        return kw["sandbox"]

    # (what ``place`` would hand to its Placed as the sandbox)
    return cast("Sandbox", _in_sandbox(home, vault, fork, plan, sandbox_of, root, at, at_cwd))


def sandbox_ahead(home: Home, vault: Vault, fork: str, plan: Plan, root: str) -> Sandbox | None:
    """:func:`sandbox_for_plan`, or None when it cannot be worked out (the call's own
    placement meets the same error, and says so)."""
    try:
        return sandbox_for_plan(home, vault, fork, plan, root)
    except Exception:
        log.debug("the sandbox of a first call, ahead", exc_info=True)
        return None


def set_up(sb: Sandbox, standbys: Standbys | None) -> Standbys | None:
    """Have ``sb`` made ready by ``standbys`` (the API's, :func:`.standby.for_api`) or by a
    set of its own, returned (the caller ends it when the call ends; None when it used
    ``standbys``, or no sandbox can be kept ready here)."""
    own = None
    if standbys is None:
        from .standby import Standbys, available

        if not available():
            return None
        standbys = own = Standbys(daemon=False)
    standbys.prepare(sb)
    return own
