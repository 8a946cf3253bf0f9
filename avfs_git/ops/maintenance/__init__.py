"""Maintenance of vaults and homes: stats, gc, prune and doctor.

- :func:`stats` reads a vault: forks, checkpoints, objects, overlay sizes, mounts, recent
  operations. It changes nothing.
- :func:`gc` first expires what avfs keeps for undo past its retention (recovery refs, op
  log entries, reflog entries), then compacts the object store with the git CLI
  (libgit2 has no gc): ``git pack-refs``, ``git repack -d -A``, ``git prune --expire``.
  Objects an undo within the retention still needs are held by temporary refs
  (``refs/avfs/keep/<oid>``) while git runs.
- :func:`prune` removes forks that are merged or abandoned (through
  :meth:`.Vault.delete_fork`, so ``avfs undo`` brings them back), registry entries of dead
  mount daemons, lock files of forks that are gone, git lock files left by a killed
  process, and expired approval tokens.
- :func:`doctor` checks a home (``git fsck``, overlays against their journals, what a
  crashed mount daemon leaves: registry entries, exec files, worktrees, dead FUSE and
  orphan overlay mounts; orphan workspace state dirs, stale locks) and, asked to, repairs
  what is safe to repair. Each finding has a ``code`` (docs/maintenance.md lists them).
  It never discards an overlay: an orphan one with changes is moved to
  ``<vault>/avfs/lost+found/``.

The mount registry (its records, liveness, the kernel's mount table) is read through
:mod:`avfs_git.core.vaults.registry`; unmounting is :mod:`avfs_git.ops.mounts`'s (imported lazily:
only the commands that repair mounts need it).

One module per job (docs/architecture.md): :mod:`.common` (the thresholds, the retention,
what the commands share), :mod:`.vaultstats` (stats), :mod:`.objcounts` (``git count-objects``), :mod:`.collect` (gc),
:mod:`.pruning` (prune), :mod:`.checkup` (doctor: the run and the per-vault checks),
:mod:`.findings` (what doctor reports), :mod:`.leftovers` (what a crashed mount daemon
leaves, mounts the kernel still lists), :mod:`.layerscheck` (the layers file system). The
modules are not named after the functions this package re-exports (``maintenance.gc`` is
the function, and a module of that name would be hidden behind it). Each name is imported
from its module when first asked for (a cold `avfs gc` loads :mod:`.collect` alone).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .checkup import MAX_OBJECT_FINDINGS, DoctorResult, doctor, mount_findings, unreadable_objects
    from .collect import ExpiredVault, GcResult, expire_deleted_vaults, gc, trash_time
    from .common import (
        DAY_S,
        KEEP,
        MAINTENANCE_LOCK,
        ORPHAN_FILE_S,
        RECENT_FORK_S,
        REPACK_LOCK,
        STALE_GIT_LOCK_S,
        USED_APPROVAL_S,
        Retention,
        live_mounts,
        retention_for,
    )
    from .findings import CHECKS, Finding
    from .layerscheck import LAYERS_HOST_LOW, ORPHAN_SUBVOLUME_AGE_S
    from .leftovers import YOUNG_S
    from .objcounts import ObjectCounts, count_objects
    from .pruning import PruneItem, PruneResult, expired_approvals, prune, stale_locks
    from .vaultstats import ForkStats, MountStats, StatsResult, stats

# each name from the module that holds it, imported when first asked for: `avfs gc` in a
# new process needs .collect alone, not doctor's, prune's and stats' imports (stats reads
# a lazy vault's locality: ~35 ms; all of them ~120 ms under load)
_FROM = {
    **dict.fromkeys(
        ("MAX_OBJECT_FINDINGS", "DoctorResult", "doctor", "mount_findings", "unreadable_objects"), "checkup"
    ),
    **dict.fromkeys(("ExpiredVault", "GcResult", "expire_deleted_vaults", "gc", "trash_time"), "collect"),
    **dict.fromkeys(
        (
            "DAY_S",
            "KEEP",
            "MAINTENANCE_LOCK",
            "ORPHAN_FILE_S",
            "RECENT_FORK_S",
            "REPACK_LOCK",
            "STALE_GIT_LOCK_S",
            "USED_APPROVAL_S",
            "Retention",
            "live_mounts",
            "retention_for",
        ),
        "common",
    ),
    **dict.fromkeys(("CHECKS", "Finding"), "findings"),
    **dict.fromkeys(("LAYERS_HOST_LOW", "ORPHAN_SUBVOLUME_AGE_S"), "layerscheck"),
    "YOUNG_S": "leftovers",
    **dict.fromkeys(("ObjectCounts", "count_objects"), "objcounts"),
    **dict.fromkeys(("PruneItem", "PruneResult", "expired_approvals", "prune", "stale_locks"), "pruning"),
    **dict.fromkeys(("ForkStats", "MountStats", "StatsResult", "stats"), "vaultstats"),
}


def __getattr__(name: str) -> Any:
    module = _FROM.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # (asked once)
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_FROM))


__all__ = [
    "CHECKS",
    "DAY_S",
    "KEEP",
    "LAYERS_HOST_LOW",
    "MAINTENANCE_LOCK",
    "MAX_OBJECT_FINDINGS",
    "ORPHAN_FILE_S",
    "ORPHAN_SUBVOLUME_AGE_S",
    "RECENT_FORK_S",
    "REPACK_LOCK",
    "STALE_GIT_LOCK_S",
    "USED_APPROVAL_S",
    "YOUNG_S",
    "DoctorResult",
    "ExpiredVault",
    "Finding",
    "ForkStats",
    "GcResult",
    "MountStats",
    "ObjectCounts",
    "PruneItem",
    "PruneResult",
    "Retention",
    "StatsResult",
    "count_objects",
    "doctor",
    "expire_deleted_vaults",
    "expired_approvals",
    "gc",
    "live_mounts",
    "mount_findings",
    "prune",
    "retention_for",
    "stale_locks",
    "stats",
    "trash_time",
    "unreadable_objects",
]
