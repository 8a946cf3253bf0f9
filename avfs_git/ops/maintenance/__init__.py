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
what the commands share), :mod:`.vaultstats` (stats), :mod:`.collect` (gc),
:mod:`.pruning` (prune), :mod:`.checkup` (doctor: the run and the per-vault checks),
:mod:`.findings` (what doctor reports), :mod:`.leftovers` (what a crashed mount daemon
leaves, mounts the kernel still lists), :mod:`.layerscheck` (the layers file system). The
modules are not named after the functions this package re-exports (``maintenance.gc`` is
the function, and a module of that name would be hidden behind it).
"""

from __future__ import annotations

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
from .pruning import PruneItem, PruneResult, expired_approvals, prune, stale_locks
from .vaultstats import ForkStats, MountStats, ObjectCounts, StatsResult, count_objects, stats

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
