"""``avfs stats``: what a vault holds and uses (forks, checkpoints, objects, overlay sizes,
mounts, recent operations) and, of a lazy vault, what of each fork is local and what is
only promised (core/operations/hydrate.py). It changes nothing and fetches nothing."""

from __future__ import annotations

import dataclasses
import os
from collections import Counter
from typing import TYPE_CHECKING, Any

from ...core.errors import CorruptStateError, UsageError
from ...core.operations.hydrate import ForkLocality, forks_locality
from ...core.records import dataclass
from ...core.store import names, packedrefs, refs
from ...core.store.gitstore import rfc3339
from ...core.store.prefetch import read_status, status_file
from ...core.store.redact import redact
from ...core.types import Operation, to_json
from ...core.vaults import keptstate
from .common import git, last_change, overlay_usage, registered_mounts
from .objcounts import count_objects

if TYPE_CHECKING:
    from ...core.vaults.vault import Vault


@dataclass(frozen=True, slots=True)
class ForkStats:
    name: str
    head: str | None
    is_default: bool
    checkpoints: int  # named checkpoints of the fork
    overlay_entries: int
    overlay_bytes: int  # bytes of uncheckpointed file contents (what the quota counts)
    mounted: bool
    last_change: str | None
    # a fork whose branch file holds no commit id: its error (head None), listed with the
    # others (it failed the whole `stats`, exit 70)
    error: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class MountStats:
    fork: str
    key: str
    mountpoint: str
    pid: int
    state: str
    alive: bool


@dataclass(frozen=True, slots=True)
class LazyStats:
    """A lazy vault's promisor remote and, per fork, what of its tree is local."""

    remote: str
    url: str  # without credentials
    paths: list[str]  # what the counts are limited to ([]: each fork's whole tree)
    forks: list[ForkLocality]
    prefetch: list[PrefetchStats]  # of the live mounts that run one


@dataclass(frozen=True, slots=True)
class PrefetchStats:
    """The background prefetch of one live mount (core/store/prefetch.py), as its daemon
    last wrote it."""

    key: str  # the mount's
    state: str  # fetching, waiting, offline, disk_budget, done, stopped, error
    fetched_blobs: int
    fetched_bytes: int
    remaining_blobs: int
    bandwidth: float
    disk_bytes: int
    error: str | None


@dataclass(frozen=True, slots=True)
class KeptGitState:
    """git state a command left in a fork's worktree git dir, kept aside
    (core/vaults/keptstate.py): gc removes it ``recovery_days`` after ``kept`` (or, set
    aside with its deleted fork, after ``deleted``)."""

    fork: str
    name: str  # rebase-merge, rebase-apply, sequencer, modules
    path: str
    kept: str
    bytes: int
    deleted: str | None  # its fork deleted (by operation ``deleted_by``; undo brings it back)
    deleted_by: int | None


@dataclass(frozen=True, slots=True)
class StatsResult:
    vault: str
    path: str
    default_fork: str
    quota_bytes: int
    forks: list[ForkStats]
    checkpoints: int
    commits: int  # commits reachable from the forks
    recovery_refs: int
    objects: int
    loose_objects: int
    loose_bytes: int
    packed_objects: int
    packs: int
    packed_bytes: int
    overlay_bytes: int
    mounts: list[MountStats]
    operations: list[Operation]  # newest first
    lazy: LazyStats | None  # None: a whole vault
    kept_git_state: list[KeptGitState] = dataclasses.field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return dict(to_json(self))


def _prefetches(vault: Vault, mounts: list[Any]) -> list[PrefetchStats]:
    out = []
    for m in mounts:
        got = read_status(status_file(vault.path, m.key)) if m.alive else None
        if got is None or got.get("pid") != m.pid:
            continue  # no prefetch in this mount (or an earlier daemon's)
        try:
            out.append(
                PrefetchStats(
                    m.key,
                    str(got["state"]),
                    int(got["fetched_blobs"]),
                    int(got["fetched_bytes"]),
                    int(got["remaining_blobs"]),
                    float(got["bandwidth"]),
                    int(got["disk_bytes"]),
                    None if got.get("error") is None else redact(str(got["error"])),
                )
            )
        except (KeyError, TypeError, ValueError):
            continue
    return out


def _refuse_paths(vault: Vault, paths: list[str]) -> None:
    """PATHs limit what a lazy vault's stats count; a whole vault has nothing to count under
    them, and ignoring them printed this vault's stats for ``avfs stats OTHER`` (another
    vault's name, where ``--vault OTHER`` was meant) as if they were asked for."""
    siblings = [p for p in paths if os.path.isdir(os.path.join(os.path.dirname(vault.path), p + ".git"))]
    hint = (
        f"to see vault {siblings[0]}'s stats: `avfs --vault {siblings[0]} stats`"
        if siblings
        else f"`avfs --vault {vault.name} stats` shows the whole vault"
    )
    raise UsageError(
        f"PATHs count what is local of a lazy vault; vault {vault.name} is not lazy (PATHs: {' '.join(paths)})",
        hint=hint,
        details={"vault": vault.name, "paths": list(paths)},
    )


def stats(vault: Vault, *, operations: int = 10, paths: list[str] | None = None) -> StatsResult:
    """What a vault holds and uses. Reads only; fetches nothing.

    ``paths`` (files or directories) limit a lazy vault's counts of local and promised
    blobs (every fork must have them).

    Raises:
        PathNotFoundError, InvalidPathError, PathProtectedError: one of ``paths``.
        UsageError: ``paths`` given for a whole vault (they would count nothing).
    """
    promisor = vault.store.promisor.remote()
    if paths and promisor is None:
        _refuse_paths(vault, paths)
    forks = vault.fork_names()
    cps = refs.list_refs_file(vault.path, refs.CHECKPOINTS)
    recovery = refs.list_refs_file(vault.path, refs.RECOVERY)
    mounts = registered_mounts(vault)
    mounted = {m.fork for m in mounts if m.alive and "@" not in m.key}
    fstats = []
    total_overlay = 0
    # the packed branches read once, the checkpoints counted once: a clone packs every
    # branch, and one search of packed-refs a fork was 20,000 of them (docs/benchmarks.md)
    packed = packedrefs.under(vault.path, refs.HEADS)
    cloned = vault.oplog.created()
    per_fork = Counter(c[len(refs.CHECKPOINTS) :].partition(refs.SEP)[0] for c in cps)
    for f in forks:
        n, size, _ts = overlay_usage(vault.ws_dir(f))
        total_overlay += size
        last = last_change(vault, f, cloned)
        error = None
        try:
            head = refs.read_ref_file(vault.path, refs.fork_ref(f), packed)
        except CorruptStateError as exc:
            head, error = None, exc.to_dict()
        fstats.append(
            ForkStats(
                name=f,
                head=head,
                error=error,
                is_default=f == vault.default_fork,
                checkpoints=per_fork[f],
                overlay_entries=n,
                overlay_bytes=size,
                mounted=f in mounted,
                last_change=rfc3339(int(last)) if last else None,
            )
        )
    commits = 0
    if forks:
        out = git(vault.path, "rev-list", "--count", "--branches", check=False).stdout.strip()
        commits = int(out) if out.isdigit() else 0
    counts = count_objects(vault.path)
    lazy = None
    if promisor is not None:
        asked = [names.norm_path(p) for p in paths or ()]
        lazy = LazyStats(
            promisor[0],
            redact(promisor[1]),
            asked,
            forks_locality(vault, forks, asked),
            _prefetches(vault, mounts),
        )
    return StatsResult(
        vault=vault.name,
        path=vault.path,
        default_fork=vault.default_fork,
        quota_bytes=vault.quota_bytes,
        forks=fstats,
        checkpoints=len(cps),
        commits=commits,
        recovery_refs=len(recovery),
        objects=counts.objects,
        loose_objects=counts.loose_objects,
        loose_bytes=counts.loose_bytes,
        packed_objects=counts.packed_objects,
        packs=counts.packs,
        packed_bytes=counts.packed_bytes,
        overlay_bytes=total_overlay,
        mounts=[MountStats(m.fork, m.key, m.mountpoint, m.pid, m.state, m.alive) for m in mounts],
        operations=vault.oplog.recent(operations) if operations > 0 else [],
        lazy=lazy,
        kept_git_state=[
            KeptGitState(
                k.fork,
                k.name,
                k.path,
                rfc3339(k.kept_ns // 10**9),
                k.bytes,
                None if k.deleted_ns is None else rfc3339(k.deleted_ns // 10**9),
                k.deleted_by,
            )
            for k in keptstate.entries(vault.state_dir)
        ],
    )
