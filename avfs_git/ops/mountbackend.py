"""Which backend a mount gets, and why: what the host allows (kernel overlayfs, root), the
home's settings and what the vault needs (a quota, the fork's path rules); for
:func:`.mounts.start` (move only: out of mounts.py, which re-exports
:func:`overlay_available`).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ..core.errors import MountError
from ..core.settings import Settings

if TYPE_CHECKING:
    from ..core.vaults.home import Home
    from ..core.vaults.vault import Vault


def overlay_available(settings: Settings | None = None) -> str | None:
    """Why kernel overlayfs cannot serve a mount here (None when it can): it needs the
    overlay file system and, for the trusted.* xattrs of its upper layer, root; and
    ``settings`` (a home's: ``AVFS_NO_OVERLAY`` as its front end read it) must not switch
    it off (None: only what the host allows is asked)."""
    try:
        with open("/proc/filesystems", encoding="utf-8") as fh:
            if not any(line.split()[-1:] == ["overlay"] for line in fh):
                return "the kernel has no overlay file system (modprobe overlay)"
    except OSError:
        return "/proc/filesystems is unreadable"
    if os.geteuid() != 0:
        return "mounting overlayfs needs root here (unprivileged overlay mounts are not wired up yet)"
    if settings is not None and settings.no_overlay:
        return "AVFS_NO_OVERLAY is set"
    return None


def choose_backend(home: Home, vault: Vault, fork: str, backend: str, *, read_only: bool) -> tuple[str, str]:
    """(the backend a mount of ``fork`` gets, why): ``backend`` as asked (auto, overlay,
    fuse), what the host allows and what the vault's quota needs. Raises MountError when
    the overlay backend is asked for and cannot serve."""
    if read_only:
        return "fuse", "a revision is read-only: nothing to write"
    no_overlay = overlay_available(home.settings)
    cfg = vault.fresh_config()
    if no_overlay is None and cfg.get("quota_files") is not None:
        # the kernel serves an overlay mount's writes: no per-write check could refuse
        # one past the quota (the pure-FUSE mount checks each write)
        no_overlay = "the vault has a file-count quota, which the pure-FUSE mount enforces per write"
    elif no_overlay is None and cfg.get("quota_bytes", -1) not in (-1, None):
        # a bytes quota the kernel enforces (the vault's qgroup in the layers file
        # system, core/vaults/layers.py) holds through an overlay mount too
        kernel_why = _kernel_quota_why(vault, fork)
        if kernel_why is not None:
            no_overlay = (
                "the vault has a quota set, which the pure-FUSE mount enforces per write"
                f" (the kernel cannot here: {kernel_why})"
            )
    if no_overlay is None:
        # the overlay backend holds `read_only` rules in the kernel (read-only binds,
        # fuse/stacking.py); a create of a hidden name and a rewrite of an append-only file
        # it cannot refuse, which the pure-FUSE mount does per call (docs/policy.md)
        guard = vault.path_guard(fork)
        held = [k for k in ("hidden", "append_only") if guard.has(k)]
        if held:
            no_overlay = (
                f"the fork's path policy has {' and '.join(held)} rules, which the pure-FUSE mount"
                " enforces per call"
            )
    if backend == "fuse":
        return "fuse", "asked for (--backend fuse)"
    if no_overlay is None:
        return "overlay", "overlayfs is available"
    if backend == "overlay":
        raise MountError(f"cannot mount with the overlay backend: {no_overlay}", hint="use --backend fuse")
    return "fuse", no_overlay


def _kernel_quota_why(vault: Vault, fork: str) -> str | None:
    """None when the kernel enforces the vault's bytes quota on ``fork``'s state (its
    limit refreshed now, with room for overlayfs's work dir), else why not."""
    if not os.path.islink(vault.ws_link(fork)):
        return "the fork's state is a plain directory, not in the layers file system"
    why = vault.sync_kernel_quota(mounting=True)
    if why is not None:
        return why
    kq = vault.kernel_quota()
    if kq is None or fork not in kq[1]:
        return "the fork is not in the vault's qgroup"
    return None
