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
:mod:`avfs_git.core.registry`; unmounting is :mod:`avfs_git.ops.mounts`'s (imported lazily:
only the commands that repair mounts need it).
"""

from __future__ import annotations

import calendar
import dataclasses
import json
import os
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Iterable, Sequence
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

from ..core import layers, packwriter, refs, registry
from ..core.errors import (
    AvfsError,
    BusyError,
    InvalidNameError,
    ObjectUnreadableError,
    UsageError,
    from_oserror,
)
from ..core.gitstore import TREE_ENTRY, git_errors, rfc3339
from ..core.locks import file_lock, flock_held, pid_alive
from ..core.names import check_fork_name, from_fs_name
from ..core.types import Operation, to_json
from ..core.worktree import OWNER_FILE

if TYPE_CHECKING:
    from ..core.home import Home
    from ..core.vault import Vault

DAY_S = 86400.0
MAINTENANCE_LOCK = ".maintenance"  # one gc at a time per vault (a name no fork can have)
REPACK_LOCK = ".repack"  # packwriter's consolidation lock (locks/.repack.lock; no fork name starts with '.')
KEEP = "refs/avfs/keep"  # one temporary root while gc runs (an interrupted gc leaves it: doctor)
STALE_GIT_LOCK_S = 600.0  # git holds a ref lock for milliseconds; one this old was left by a kill
RECENT_FORK_S = 3600.0  # prune never touches a fork changed this recently (it may be in use)
ORPHAN_FILE_S = 3600.0  # an overlay file is written before its entry: only old orphans are garbage
USED_APPROVAL_S = DAY_S  # used approval records are kept this long (for people reading them)


# -- retention --------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Retention:
    """How long avfs keeps what undo needs, and the grace of unreachable objects.

    Defaults; the home's ``config.json`` key ``"maintenance"`` overrides them for every
    vault, and the vault's ``avfs/config.json`` key ``"maintenance"`` for one vault.
    """

    recovery_days: float = 30.0  # recovery refs (uncheckpointed changes kept by restore/undo/...)
    oplog_days: float = 90.0  # op log entries, and reflog entries of refs
    trash_days: float = 30.0  # deleted vaults in <home>/trash
    grace_days: float = 14.0  # unreachable objects younger than this survive gc (git's default)
    abandoned_days: float = 30.0  # prune: a fork with no change for this long is abandoned

    def to_json(self) -> dict[str, Any]:
        return dict(to_json(self))


_RETENTION_KEYS = {f.name for f in dataclasses.fields(Retention)}


def retention_for(vault: Vault[Home] | None = None, home: Home | None = None) -> Retention:
    """The retention in force for ``vault`` (defaults < home config < vault config)."""
    values: dict[str, float] = {}
    home = home if home is not None else (vault.home if vault is not None else None)
    layers: list[dict[str, Any]] = []
    if home is not None:
        layers.append(dict(home.config().get("maintenance") or {}))
    if vault is not None:
        layers.append(dict(vault.config.get("maintenance") or {}))
    for layer in layers:
        for key, value in layer.items():
            if key not in _RETENTION_KEYS:
                raise UsageError(
                    f"unknown maintenance setting {key!r}",
                    hint=f"known settings: {', '.join(sorted(_RETENTION_KEYS))}",
                )
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise UsageError(f"maintenance setting {key!r} must be a number of days >= 0")
            values[key] = float(value)
    return Retention(**values)


# -- small helpers ----------------------------------------------------------------------------


def _git(vault_path: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    from ..core import gitrun

    return gitrun.run(args, git_dir=vault_path, check=check, details={"vault": vault_path}, text=True)


def _git_time(t: float) -> str:
    """A date git's --expire options read exactly (seconds since the epoch)."""
    return f"@{int(t)}"


def _tag_time(ref: str) -> float | None:
    """The time in a recovery ref's tag (``.../-/20240101T120000-abcdef``)."""
    tag = ref.rsplit("/", 1)[-1]
    try:
        return float(calendar.timegm(time.strptime(tag[:15], "%Y%m%dT%H%M%S")))
    except ValueError:
        return None


def _ws_dirs(vault: Vault) -> dict[str, str]:
    """fork name -> state dir, for every state dir on disk (orphans included); a link into
    the layers file system that cannot be followed now is left out (the ``layers`` check
    of doctor reports why)."""
    root = os.path.join(vault.state_dir, "ws")
    try:
        entries = sorted(os.listdir(root))
    except FileNotFoundError:
        return {}
    out = {}
    for n in entries:
        path = os.path.join(root, n)
        if os.path.islink(path):
            try:
                path = layers.resolve(vault.home_dir, path)
            except AvfsError:
                continue
        if os.path.isdir(path):
            out[from_fs_name(n)] = path
    return out


def _open_overlay_db(ws_dir: str) -> sqlite3.Connection | None:
    """A read connection on a state dir's overlay database (None when there is none)."""
    path = os.path.join(ws_dir, "overlay.db")
    if not os.path.isfile(path):
        return None
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0)
    return conn


def _overlay_usage(ws_dir: str) -> tuple[int, int, int | None]:
    """(entries, bytes of materialized files, newest journal time) of a state dir."""
    conn = _open_overlay_db(ws_dir)
    if conn is None:
        return 0, 0, None
    try:
        n = int(conn.execute("SELECT COUNT(*) FROM entries").fetchone()[0])
        row = conn.execute("SELECT file_bytes FROM totals WHERE id = 1").fetchone()
        size = int(row[0]) if row is not None else 0
        ts = conn.execute("SELECT MAX(ts) FROM journal").fetchone()[0]
        return n, size, None if ts is None else int(ts)
    except sqlite3.Error:
        return 0, 0, None
    finally:
        conn.close()


@dataclasses.dataclass(frozen=True, slots=True)
class _Mount:
    key: str
    fork: str
    mountpoint: str
    pid: int
    state: str
    alive: bool
    registry: str


def _mounts(vault: Vault) -> list[_Mount]:
    """The vault's mount registry with each daemon's liveness (changes nothing)."""
    out = []
    for rec in registry.records(vault.state_dir):
        alive = _daemon_alive(rec.pid, vault, registry.started_at(rec.data)) and (
            rec.state in ("mounting", "unmounting") or registry.mounted_at(rec.mountpoint)
        )
        out.append(
            _Mount(
                rec.key,
                str(rec.data.get("fork", rec.key)),
                rec.mountpoint,
                rec.pid,
                rec.state,
                alive,
                rec.path,
            )
        )
    return out


def live_mounts(vault: Vault) -> list[_Mount]:
    return [m for m in _mounts(vault) if m.alive]


def _last_change(vault: Vault, fork: str) -> float:
    """When fork ``fork`` last changed: its ref's newest reflog entry, its tip's commit
    time, its overlay journal, whichever is newest."""
    repo = vault.store.repo
    newest = 0.0
    name = refs.fork_ref(fork)
    try:
        ref = repo.references[name]
        tip = repo.get(ref.resolve().target)
        if tip is not None:
            newest = max(newest, float(tip.commit_time))  # type: ignore[attr-defined]
        for entry in ref.log():
            newest = max(newest, float(entry.committer.time))
            break  # newest first
    except git_errors():
        pass
    _n, _b, ts = _overlay_usage(vault.ws_dir(fork))
    if ts is not None:
        newest = max(newest, float(ts))
    return newest


# -- stats ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class ObjectCounts:
    """``git count-objects -v``, in bytes."""

    loose_objects: int
    loose_bytes: int
    packed_objects: int
    packs: int
    packed_bytes: int
    garbage_files: int

    @property
    def objects(self) -> int:
        return self.loose_objects + self.packed_objects


def count_objects(vault_path: str) -> ObjectCounts:
    out = _git(vault_path, "count-objects", "-v").stdout
    kv: dict[str, int] = {}
    for line in out.splitlines():
        key, _, value = line.partition(":")
        try:
            kv[key.strip()] = int(value.strip())
        except ValueError:
            continue
    return ObjectCounts(
        loose_objects=kv.get("count", 0),
        loose_bytes=kv.get("size", 0) * 1024,
        packed_objects=kv.get("in-pack", 0),
        packs=kv.get("packs", 0),
        packed_bytes=kv.get("size-pack", 0) * 1024,
        garbage_files=kv.get("garbage", 0),
    )


@dataclasses.dataclass(frozen=True, slots=True)
class ForkStats:
    name: str
    head: str | None
    is_default: bool
    checkpoints: int  # named checkpoints of the fork
    overlay_entries: int
    overlay_bytes: int  # bytes of uncheckpointed file contents (what the quota counts)
    mounted: bool
    last_change: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class MountStats:
    fork: str
    key: str
    mountpoint: str
    pid: int
    state: str
    alive: bool


@dataclasses.dataclass(frozen=True, slots=True)
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

    def to_json(self) -> dict[str, Any]:
        return dict(to_json(self))


def stats(vault: Vault, *, operations: int = 10) -> StatsResult:
    """What a vault holds and uses. Reads only."""
    forks = vault.fork_names()
    cps = refs.list_refs_file(vault.path, refs.CHECKPOINTS)
    recovery = refs.list_refs_file(vault.path, refs.RECOVERY)
    mounts = _mounts(vault)
    mounted = {m.fork for m in mounts if m.alive and "@" not in m.key}
    fstats = []
    total_overlay = 0
    for f in forks:
        n, size, _ts = _overlay_usage(vault.ws_dir(f))
        total_overlay += size
        last = _last_change(vault, f)
        fstats.append(
            ForkStats(
                name=f,
                head=refs.read_ref_file(vault.path, refs.fork_ref(f)),
                is_default=f == vault.default_fork,
                checkpoints=sum(1 for c in cps if c.startswith(refs.checkpoint_prefix(f))),
                overlay_entries=n,
                overlay_bytes=size,
                mounted=f in mounted,
                last_change=rfc3339(int(last)) if last else None,
            )
        )
    commits = 0
    if forks:
        out = _git(vault.path, "rev-list", "--count", "--branches", check=False).stdout.strip()
        commits = int(out) if out.isdigit() else 0
    counts = count_objects(vault.path)
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
    )


# -- gc ---------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class ExpiredVault:
    name: str
    path: str
    deleted: str  # when it went to the trash


@dataclasses.dataclass(frozen=True, slots=True)
class GcResult:
    vault: str
    dry_run: bool
    retention: Retention
    expired_recovery_refs: list[str]
    expired_operations: list[int]
    kept_roots: int  # objects held for undo within the retention (besides the refs)
    unreachable_loose: int  # loose unreachable objects older than the grace (dropped, or would be)
    objects_before: int
    objects_after: int | None
    bytes_before: int
    bytes_after: int | None
    commands: list[str]  # the git commands run (or that would run)
    duration_ms: int
    # temporary pack files a killed writer left in objects/pack (removed, or would be)
    stale_temp_files: list[str] = dataclasses.field(default_factory=list)
    stale_temp_bytes: int = 0

    def to_json(self) -> dict[str, Any]:
        return dict(to_json(self))


def _oplog_expired(vault: Vault, cutoff: float) -> list[int]:
    rows = vault.oplog.db.execute("SELECT id FROM ops WHERE ts < ? ORDER BY id", (int(cutoff),)).fetchall()
    return [int(r[0]) for r in rows]


def _keep_roots(vault: Vault, cutoff: float) -> set[str]:
    """Objects that undo (op log entries kept) and workspaces (overlays, seeds) still name."""
    oids: set[str] = set()
    db = vault.oplog.db
    for refs_json, wss_json in db.execute("SELECT refs, workspaces FROM ops WHERE ts >= ?", (int(cutoff),)):
        for r in json.loads(refs_json):
            oids.update(v for v in (r.get("old"), r.get("new")) if v)
        for w in json.loads(wss_json):
            for state in (w.get("before"), w.get("after")):
                if isinstance(state, dict):
                    oids.update(v for v in (state.get("base"), state.get("tree")) if v)
    for ws_dir in _ws_dirs(vault).values():
        try:
            with open(os.path.join(ws_dir, "seed"), encoding="ascii") as fh:
                oids.update(fh.read().split())
        except OSError:
            pass
        conn = _open_overlay_db(ws_dir)
        if conn is None:
            continue
        try:
            oids.update(str(r[0]) for r in conn.execute("SELECT oid FROM entries WHERE oid IS NOT NULL"))
            oids.update(
                str(v)
                for (v,) in conn.execute("SELECT value FROM meta")
                if isinstance(v, str) and len(v) == 40 and all(c in "0123456789abcdef" for c in v)
            )
        except sqlite3.Error:
            pass
        finally:
            conn.close()
    return {o for o in oids if isinstance(o, str) and len(o) == 40}


def _refuse_if_mounted(vault: Vault, what: str) -> None:
    live = live_mounts(vault)
    if live:
        where = ", ".join(f"{m.key} at {m.mountpoint}" for m in live)
        raise BusyError(
            f"cannot {what} vault {vault.name} while it is mounted ({where})",
            hint="unmount it first (`avfs unmount`), then run this again",
            details={
                "vault": vault.name,
                "mounts": [{"fork": m.fork, "mountpoint": m.mountpoint} for m in live],
            },
        )


def gc(
    vault: Vault[Home],
    *,
    retention: Retention | None = None,
    grace_days: float | None = None,
    dry_run: bool = False,
    now: float | None = None,
) -> GcResult:
    """Expire what the retention no longer keeps, then compact the vault with git.

    Refuses (:class:`BusyError`, nothing changed) while another operation holds a fork of
    the vault or while a fork is mounted by a live daemon.

    Args:
        retention: defaults to :func:`retention_for` the vault.
        grace_days: overrides ``retention.grace_days``: unreachable objects younger than this
            are kept (a concurrent writer's new objects are unreachable for a moment).
        dry_run: report what would go; change nothing.
        now: the current time (tests).
    """
    started = time.monotonic()
    ret = retention or retention_for(vault)
    if grace_days is not None:
        if grace_days < 0:
            raise UsageError("--grace must be >= 0 days")
        ret = dataclasses.replace(ret, grace_days=float(grace_days))
    now = time.time() if now is None else now
    _refuse_if_mounted(vault, "gc")
    with ExitStack() as stack:
        # a pack consolidation started by a checkpoint (packwriter) is short: wait for it
        os.makedirs(os.path.join(vault.state_dir, "locks"), exist_ok=True)
        stack.enter_context(
            file_lock(
                os.path.join(vault.state_dir, "locks", REPACK_LOCK + ".lock"),
                what=f"pack consolidation of vault {vault.name}",
                wait_s=60,
            )
        )
        try:
            # every fork lock, without waiting: an operation in flight keeps its vault
            stack.enter_context(vault.lock(*vault.fork_names(), MAINTENANCE_LOCK, wait_s=0))
        except BusyError as exc:
            raise BusyError(
                f"vault {vault.name} is busy: another avfs operation holds it; gc changed nothing",
                hint="retry when the other command has finished",
                details={"vault": vault.name, **exc.details},
            ) from None
        return _gc_locked(vault, ret, dry_run, now, started)


def _gc_locked(vault: Vault, ret: Retention, dry_run: bool, now: float, started: float) -> GcResult:
    _refuse_if_mounted(vault, "gc")  # again, under the locks
    repo = vault.store.repo
    rec_cutoff = now - ret.recovery_days * DAY_S
    expired_refs = []
    for name in refs.list_refs_file(vault.path, refs.RECOVERY):
        t = _tag_time(name)
        if t is None:
            target = refs.read_ref(vault.store, name)
            obj = repo.get(target) if target else None
            t = float(getattr(obj, "commit_time", now))
        if t < rec_cutoff:
            expired_refs.append(name)
    op_cutoff = now - ret.oplog_days * DAY_S
    expired_ops = _oplog_expired(vault, op_cutoff)
    grace = _git_time(now - ret.grace_days * DAY_S)
    reflog_cut = _git_time(op_cutoff)
    commands = [
        f"git reflog expire --all --expire={reflog_cut} --expire-unreachable={reflog_cut}",
        "git pack-refs --all --prune",
        f"git repack -d -A -q --unpack-unreachable={grace}",
        f"git prune --expire={grace}",
    ]
    before = count_objects(vault.path)

    def result(
        kept: int, unreachable: int, after: ObjectCounts | None, debris: list[tuple[str, int, str]]
    ) -> GcResult:
        return GcResult(
            vault=vault.name,
            dry_run=dry_run,
            retention=ret,
            expired_recovery_refs=expired_refs,
            expired_operations=expired_ops,
            kept_roots=kept,
            unreachable_loose=unreachable,
            objects_before=before.objects,
            objects_after=None if after is None else after.objects,
            bytes_before=before.loose_bytes + before.packed_bytes,
            bytes_after=None if after is None else after.loose_bytes + after.packed_bytes,
            commands=commands,
            duration_ms=int((time.monotonic() - started) * 1000),
            stale_temp_files=[p for p, _, _ in debris],
            stale_temp_bytes=sum(n for _, n, _ in debris),
        )

    if dry_run:
        debris = packwriter.stale_temp_files(vault.path, now=now)
        dry_roots = _keep_roots(vault, op_cutoff)
        pending = _git(vault.path, "prune", "--dry-run", f"--expire={grace}").stdout.split()
        return result(len(dry_roots), len(pending) // 2, None, debris)
    # a killed checkpoint's temporary pack (git's prune only drops those past the grace)
    debris = packwriter.remove_stale_temp_files(vault.path, now=now)
    for name in expired_refs:
        refs.cas_update(
            vault.store, name, None, refs.read_ref(vault.store, name), "avfs: gc (recovery ref expired)"
        )
    if expired_ops:
        db = vault.oplog.db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("DELETE FROM ops WHERE ts < ?", (int(op_cutoff),))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
    _git(
        vault.path,
        "reflog",
        "expire",
        "--all",
        f"--expire={reflog_cut}",
        f"--expire-unreachable={reflog_cut}",
    )
    _git(vault.path, "pack-refs", "--all", "--prune")
    # roots for undo: created after pack-refs so they stay loose and go cheaply
    tips = {refs.read_ref_file(vault.path, r) for r in refs.list_refs_file(vault.path, "refs/")}
    roots: list[str] = sorted(o for o in _keep_roots(vault, op_cutoff) if o not in tips)
    _clear_keep_refs(vault)
    try:
        roots = _hold_roots(vault, roots)
        _git(vault.path, "repack", "-d", "-A", "-q", f"--unpack-unreachable={grace}")
        pruned = _git(vault.path, "prune", "-v", f"--expire={grace}").stdout.split()
    finally:
        _clear_keep_refs(vault)
    vault.store.close()  # packs were replaced: this thread's libgit2 handle reopens them
    return result(len(roots), len(pruned) // 2, count_objects(vault.path), debris)


def _git_stdin(vault_path: str, args: list[str], data: str) -> None:
    from ..core import gitrun

    gitrun.run(args, git_dir=vault_path, input=data, text=True)


def _hold_roots(vault: Vault, roots: list[str]) -> list[str]:
    """Make ``roots`` reachable from one ref, :data:`KEEP`, for the length of a gc: a commit
    whose parents are the commits and whose tree names the trees and blobs (one ref, where a
    ref per object cost ~1 ms each). Returns the roots that exist."""
    got = vault.store.keep_commit(
        roots, "avfs gc: objects undo still needs\n", ("avfs gc", "gc@avfs.invalid")
    )
    if got is None:
        return []
    commit, held = got
    refs.cas_update(vault.store, KEEP, commit, None, "avfs: gc keeps what undo needs")
    return held


def _clear_keep_refs(vault: Vault) -> int:
    """Remove :data:`KEEP` (and the per-object refs an older avfs used); how many went."""
    names = refs.list_refs_file(vault.path, KEEP + "/")
    if refs.read_ref_file(vault.path, KEEP) is not None:
        names.append(KEEP)
    if names:
        _git_stdin(vault.path, ["update-ref", "--stdin"], "".join(f"delete {n}\n" for n in names))
    return len(names)


def trash_time(path: str) -> float | None:
    """When a vault went to the trash (its name: ``<name>.<YYYYmmddTHHMMSS>.<n>.git``)."""
    parts = os.path.basename(path).split(".")
    if len(parts) < 4:
        return None
    try:
        return float(calendar.timegm(time.strptime(parts[-3], "%Y%m%dT%H%M%S")))
    except ValueError:
        return None


def expire_deleted_vaults(
    home: Home, *, retention: Retention | None = None, dry_run: bool = False, now: float | None = None
) -> list[ExpiredVault]:
    """Remove deleted vaults that have been in the trash longer than ``trash_days``."""
    ret = retention or retention_for(home=home)
    now = time.time() if now is None else now
    cutoff = now - ret.trash_days * DAY_S
    out = []
    for name, path in home.deleted_vaults():
        t = trash_time(path)
        if t is None or t >= cutoff:
            continue
        out.append(ExpiredVault(name=name, path=path, deleted=rfc3339(int(t))))
        if not dry_run:
            try:
                _remove_state_links(home.path, path)
                shutil.rmtree(path)
            except OSError as exc:
                raise from_oserror(exc, path) from exc
    return out


def _remove_state_links(home_path: str, vault_path: str) -> None:
    """Delete the layers subvolumes a vault's state dir links name (``rmtree`` removes
    only the links)."""
    for root in ("ws", "lost+found"):
        d = os.path.join(vault_path, "avfs", root)
        try:
            names = os.listdir(d)
        except FileNotFoundError:
            continue
        for n in names:
            if os.path.islink(os.path.join(d, n)):
                layers.remove_state_dir(home_path, os.path.join(d, n))


# -- prune ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class PruneItem:
    kind: str  # fork | mount | lock | approval
    name: str
    reason: str
    action: str  # removed | would_remove | skipped
    op_id: int | None = None  # the fork_delete operation (`avfs undo` brings the fork back)


@dataclasses.dataclass(frozen=True, slots=True)
class PruneResult:
    vault: str
    dry_run: bool
    older_than_days: float
    items: list[PruneItem]

    def to_json(self) -> dict[str, Any]:
        return dict(to_json(self))


def _is_merged(vault: Vault, fork: str, default_tip: str | None) -> bool:
    tip = refs.read_ref_file(vault.path, refs.fork_ref(fork))
    if tip is None or default_tip is None:
        return False
    if tip == default_tip:
        return True
    return vault.store.descendant_of(default_tip, tip)


def prune(
    vault: Vault[Home],
    *,
    older_than_days: float | None = None,
    dry_run: bool = False,
    now: float | None = None,
) -> PruneResult:
    """Remove what nothing needs any more; see the module docstring. Never the default
    fork, never a mounted fork, never a fork changed in the last hour."""
    ret = retention_for(vault)
    days = ret.abandoned_days if older_than_days is None else float(older_than_days)
    if days < 0:
        raise UsageError("--older-than must be >= 0 days")
    now = time.time() if now is None else now
    items: list[PruneItem] = []
    act = "would_remove" if dry_run else "removed"
    mounts = _mounts(vault)
    mounted = {m.fork: m for m in mounts if m.alive}
    default = vault.default_fork
    default_tip = refs.read_ref_file(vault.path, refs.fork_ref(default))
    for fork in vault.fork_names():
        if fork == default:
            continue
        last = _last_change(vault, fork)
        merged = _is_merged(vault, fork, default_tip) and _overlay_usage(vault.ws_dir(fork))[0] == 0
        abandoned = last < now - days * DAY_S
        if not (merged or abandoned):
            continue
        reason = f"merged into {default}" if merged else f"no change for {days:g} days"
        if fork in mounted:
            m = mounted[fork]
            items.append(PruneItem("fork", fork, f"{reason}, but mounted at {m.mountpoint}", "skipped"))
            continue
        if last > now - RECENT_FORK_S:
            items.append(PruneItem("fork", fork, f"{reason}, but changed in the last hour", "skipped"))
            continue
        op_id: int | None = None
        if not dry_run:
            try:
                op_id = vault.delete_fork(fork).id
            except BusyError:
                items.append(PruneItem("fork", fork, f"{reason}, but an operation holds it", "skipped"))
                continue
        items.append(PruneItem("fork", fork, reason, act, op_id))
    for m in mounts:
        if not m.alive:
            items.append(PruneItem("mount", m.key, f"daemon {m.pid} is dead ({m.mountpoint})", act))
            if not dry_run:
                _clean_dead_mount(vault, m)
    for path, reason in stale_locks(vault, now=now):
        items.append(PruneItem("lock", os.path.relpath(path, vault.path), reason, act))
        if not dry_run:
            _remove_lock(path)
    if vault.home is not None:
        for path, reason in expired_approvals(vault.home.path, now=now):
            items.append(PruneItem("approval", os.path.basename(path), reason, act))
            if not dry_run:
                _unlink_quiet(path)
    return PruneResult(vault=vault.name, dry_run=dry_run, older_than_days=days, items=items)


def _clean_dead_mount(vault: Vault, m: _Mount) -> None:
    """What a dead daemon left: its registry entry, exec file and worktree, and its mount
    point when that answers ENOTCONN (each re-checked: never a live daemon's)."""
    from . import mounts

    _remove_dead_registry(vault, m)
    _unlink_if_dead(vault, m.registry[: -len(".json")] + ".exec")
    now = time.time()
    for wt in _worktrees(vault, now):
        if wt.key == m.key and not wt.alive:
            _remove_worktree(vault, wt)
    if m.mountpoint and registry.mounted_at(m.mountpoint) and registry.dead_mountpoint(m.mountpoint):
        mounts.force_unmount(m.mountpoint)


def stale_locks(vault: Vault, *, now: float | None = None) -> list[tuple[str, str]]:
    """(path, reason) of lock files nothing will release: git's ``*.lock`` files older than
    ten minutes (a killed process left them; git and libgit2 refuse to move that ref while
    one exists), and avfs lock files of forks that no longer exist (a fork's lock or proxy
    exec's ``.exec-<fork>``) that nobody holds."""
    now = time.time() if now is None else now
    out: list[tuple[str, str]] = []
    candidates = [os.path.join(vault.path, n) for n in ("packed-refs.lock", "config.lock", "HEAD.lock")]
    for dirpath, _dirs, files in os.walk(os.path.join(vault.path, "refs")):
        candidates.extend(os.path.join(dirpath, f) for f in files if f.endswith(".lock"))
    for path in candidates:
        try:
            age = now - os.stat(path).st_mtime
        except FileNotFoundError:
            continue
        if age > STALE_GIT_LOCK_S:
            out.append((path, f"git lock file left for {int(age)} s"))
    lock_dir = os.path.join(vault.state_dir, "locks")
    try:
        entries = sorted(os.listdir(lock_dir))
    except FileNotFoundError:
        entries = []
    for fn in entries:
        path = os.path.join(lock_dir, fn)
        if fn.endswith(".lock") and _lock_owner_gone(path) and not flock_held(path):
            out.append((path, "lock file of a fork that no longer exists"))
    return out


def _lock_forks(name: str) -> set[str]:
    """The fork whose lock file can be ``<name>.lock``: the fork lock (``Vault.lock``) or
    proxy exec's ``.exec-<fork>`` ('/' and '%' escaped in both; no fork name starts with
    '.', so the two never meet)."""
    if name.startswith(".exec-"):
        name = name[len(".exec-") :]
    return {from_fs_name(name)}


def _lock_owner_gone(path: str) -> bool:
    """True when the avfs lock file ``path`` (``<vault>/avfs/locks/<name>.lock``) belongs to
    no existing fork and is no vault-wide lock (read from the ref files, not a cache)."""
    fn = os.path.basename(path)
    if not fn.endswith(".lock"):
        return False
    name = fn[: -len(".lock")]
    if name in (MAINTENANCE_LOCK, REPACK_LOCK):
        return False
    git_dir = os.path.dirname(os.path.dirname(os.path.dirname(path)))
    for fork in _lock_forks(name):
        try:
            check_fork_name(fork)
        except InvalidNameError:
            continue  # no fork can have this name
        try:
            if refs.read_ref_file(git_dir, refs.fork_ref(fork)) is not None:
                return False
        except OSError:
            return False  # cannot tell: leave it alone
    return True


def _is_avfs_lock(path: str) -> bool:
    return os.sep + os.path.join("avfs", "locks") + os.sep in path


def _remove_lock(path: str) -> None:
    """Unlink a lock file; an avfs (flock) lock only when it is stale for certain.

    A flock file is unlinked only while we hold its flock ourselves (nobody else does),
    only when, re-checked under that flock, no fork it could belong to exists, and only when
    the path still names the file we locked. A waiter that opened it before the unlink
    notices (``locks.file_lock`` compares its fd with the path after locking) and retries.
    """
    if not _is_avfs_lock(path):
        _unlink_quiet(path)
        return
    import fcntl

    if not _lock_owner_gone(path):
        return
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return  # held: not stale after all
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            return
        if same and _lock_owner_gone(path):  # the fork may have been made (again) meanwhile
            _unlink_quiet(path)
    finally:
        os.close(fd)


def expired_approvals(home_path: str, *, now: float | None = None) -> list[tuple[str, str]]:
    """(path, reason) of approval records past use: expired tokens, used ones older than a
    day, temporary files left by a killed writer."""
    now = time.time() if now is None else now
    root = os.path.join(home_path, "approvals")
    try:
        names = sorted(os.listdir(root))
    except FileNotFoundError:
        return []
    out = []
    for fn in names:
        path = os.path.join(root, fn)
        try:
            mtime = os.stat(path).st_mtime
        except FileNotFoundError:
            continue
        if fn.endswith(".json"):
            try:
                with open(path, encoding="utf-8") as fh:
                    expires = float(json.load(fh).get("expires", 0))
            except (OSError, ValueError, AttributeError):
                expires = 0.0
            if expires < now:
                out.append((path, "approval token expired"))
        elif fn.endswith(".used") and now - mtime > USED_APPROVAL_S:
            out.append((path, "approval token used more than a day ago"))
        elif fn.endswith(".tmp") and now - mtime > ORPHAN_FILE_S:
            out.append((path, "temporary file left by an interrupted writer"))
    return out


def _unlink_quiet(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


# -- doctor -----------------------------------------------------------------------------------

CHECKS = ("fsck", "objects", "overlays", "mounts", "state_dirs", "locks", "layers")
MAX_OBJECT_FINDINGS = 50  # unreadable objects named one by one; the rest as a count


@dataclasses.dataclass(frozen=True, slots=True)
class Finding:
    vault: str | None
    check: str  # one of CHECKS
    code: str  # what was found, stable for scripts (docs/maintenance.md lists them)
    problem: str
    path: str | None
    repairable: bool
    repaired: bool
    hint: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class DoctorResult:
    home: str
    repair: bool
    vaults: list[str]
    checks: list[str]
    findings: list[Finding]

    @property
    def ok(self) -> bool:
        """True when nothing is left to fix."""
        return all(f.repaired for f in self.findings)

    def to_json(self) -> dict[str, Any]:
        data = dict(to_json(self))
        data["ok"] = self.ok
        return data


def doctor(home: Home, *, repair: bool = False, now: float | None = None) -> DoctorResult:
    """Check every vault of ``home``; with ``repair``, fix what is safe to fix."""
    now = time.time() if now is None else now
    findings: list[Finding] = []
    names = []
    vaults: list[Vault] = []
    for info in home.list_vaults():
        vaults.append(home.vault(info.name))
    # read before anything is repaired: a dead mount point is known as this home's by the
    # registry entry and worktree that the repair of its vault removes
    owners = _mount_owners(vaults, now)
    for vault in vaults:
        names.append(vault.name)
        findings.extend(_doctor_vault(vault, repair, now))
    findings.extend(_kernel_mounts(home, vaults, owners, repair))
    findings.extend(_check_layers(home, repair, now))
    return DoctorResult(home=home.path, repair=repair, vaults=names, checks=list(CHECKS), findings=findings)


def mount_findings(home: Home, *, repair: bool = False, now: float | None = None) -> list[Finding]:
    """Only the ``mounts`` check of :func:`doctor`: what dead mount daemons left in the
    home's vaults and in the kernel's mount table (cheap: no git, no object reads)."""
    now = time.time() if now is None else now
    vaults = [home.vault(info.name) for info in home.list_vaults()]
    owners = _mount_owners(vaults, now)
    findings = [f for v in vaults for f in _mount_leftovers(v, repair, now)]
    findings.extend(_kernel_mounts(home, vaults, owners, repair))
    return findings


def _finding(
    vault: Vault | None,
    check: str,
    code: str,
    problem: str,
    path: str | None,
    *,
    fix: Any = None,
    repair: bool = False,
    hint: str | None = None,
) -> Finding:
    repaired = False
    if fix is not None and repair:
        fix()
        repaired = True
    return Finding(
        vault=None if vault is None else vault.name,
        check=check,
        code=code,
        problem=problem,
        path=path,
        repairable=fix is not None,
        repaired=repaired,
        hint=hint,
    )


def _doctor_vault(vault: Vault, repair: bool, now: float) -> Iterable[Finding]:
    proc = _git(vault.path, "fsck", "--strict", "--no-dangling", "--no-progress", check=False)
    if proc.returncode != 0 or proc.stdout.strip():
        text = (proc.stdout + proc.stderr).strip()
        yield _finding(
            vault,
            "fsck",
            "fsck_error",
            f"git fsck --strict: {text[:2000]}",
            vault.path,
            hint="restore the named objects from a clone or remote (`avfs pull`), or ask for help",
        )
    yield from _check_objects(vault, repair, now)
    forks = set(vault.fork_names())
    for fork, ws_dir in _ws_dirs(vault).items():
        if fork not in forks:
            yield _orphan_state_dir(vault, fork, ws_dir, repair, now)
            continue
        yield from _check_overlay(vault, fork, ws_dir, repair, now)
    yield from _mount_leftovers(vault, repair, now)
    for path, reason in stale_locks(vault, now=now):
        code = "orphan_fork_lock" if _is_avfs_lock(path) else "stale_git_lock"
        yield _finding(vault, "locks", code, reason, path, fix=lambda p=path: _remove_lock(p), repair=repair)  # type: ignore[misc]
    keep = refs.list_refs_file(vault.path, KEEP + "/")
    if refs.read_ref_file(vault.path, KEEP) is not None:
        keep.append(KEEP)
    if keep:
        yield _finding(
            vault,
            "locks",
            "gc_keep_ref",
            f"the temporary ref {KEEP} left by an interrupted gc",
            os.path.join(vault.path, KEEP),
            fix=lambda: _clear_keep_refs(vault),
            repair=repair,
        )


def unreadable_objects(vault: Vault) -> tuple[int, list[tuple[str, str]]]:
    """Read every object reachable from the vault's refs through avfs' own read path
    (:meth:`.GitStore.check_object`: the pure reader, then libgit2; contents checked
    against the id). Returns (objects read, [(oid, why)] of those that cannot be read)."""
    store = vault.store
    todo: list[str] = []
    for name in refs.list_refs_file(vault.path, "refs/"):
        oid = refs.read_ref_file(vault.path, name)
        if oid and len(oid) == 40:
            todo.append(oid)
    seen: set[str] = set()
    bad: list[tuple[str, str]] = []
    while todo:
        oid = todo.pop()
        if oid in seen:
            continue
        seen.add(oid)
        try:
            kind, data = store.check_object(oid)
        except ObjectUnreadableError as exc:
            bad.append((oid, exc.message))
            continue
        if data is None or kind == "blob":
            continue
        if kind == "tree":
            todo.extend(raw.hex() for mode, _name, raw in TREE_ENTRY.findall(data) if mode != b"160000")
            continue
        for line in data.split(b"\n"):  # a commit's or tag's header lines
            if not line:
                break
            key, _, value = line.partition(b" ")
            if key in (b"tree", b"parent", b"object") and len(value) == 40:
                todo.append(value.decode("ascii", "replace"))
    return len(seen), bad


def _check_objects(vault: Vault, repair: bool, now: float) -> Iterable[Finding]:
    _count, bad = unreadable_objects(vault)
    for _oid, why in bad[:MAX_OBJECT_FINDINGS]:  # why names the object
        yield _finding(
            vault,
            "objects",
            "object_unreadable",
            why,
            vault.path,
            hint="restore the object from a clone or remote of the vault (`git fetch` into it), or ask for help",
        )
    if len(bad) > MAX_OBJECT_FINDINGS:
        yield _finding(
            vault,
            "objects",
            "object_unreadable",
            f"{len(bad) - MAX_OBJECT_FINDINGS} more objects cannot be read",
            vault.path,
            hint="`avfs --json doctor` names the first ones; a truncated or corrupt pack is the usual cause",
        )
    for path, size, why in packwriter.stale_temp_files(vault.path, now=now):
        yield _finding(
            vault,
            "objects",
            "stale_temp_pack",
            f"{why}: {size} bytes",
            path,
            fix=lambda p=path: _remove_temp_file(vault.path, p, now),  # type: ignore[misc]
            repair=repair,
        )


def _remove_temp_file(git_dir: str, path: str, now: float) -> None:
    if packwriter.temp_file_stale(path, now=now) is not None:  # re-checked: still nobody's
        _unlink_quiet(path)
        for hook in packwriter.FINISH_HOOKS:
            hook(os.path.dirname(path))


def _orphan_state_dir(vault: Vault, fork: str, ws_dir: str, repair: bool, now: float) -> Finding:
    n, _size, _ts = _overlay_usage(ws_dir)
    link = vault.ws_link(fork)  # the state dir's name (a link into the layers fs, or itself)
    if n == 0:
        return _finding(
            vault,
            "state_dirs",
            "orphan_state_dir",
            f"workspace state dir of fork {fork!r}, which does not exist (no changes in it)",
            ws_dir,
            fix=lambda: layers.remove_state_dir(vault.home_dir, link),
            repair=repair,
        )
    dest = os.path.join(
        vault.state_dir,
        "lost+found",
        f"{os.path.basename(link)}.{time.strftime('%Y%m%dT%H%M%S', time.gmtime(now))}",
    )

    def keep() -> None:
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        os.rename(link, dest)  # a link keeps naming its subvolume (same depth)

    return _finding(
        vault,
        "state_dirs",
        "orphan_state_dir_with_changes",
        f"workspace state dir of fork {fork!r}, which does not exist, holds {n} uncheckpointed changes",
        ws_dir,
        fix=keep,
        repair=repair,
        hint=f"--repair moves it to {os.path.dirname(dest)}/ (nothing is deleted)",
    )


def _check_overlay(vault: Vault, fork: str, ws_dir: str, repair: bool, now: float) -> Iterable[Finding]:
    conn = _open_overlay_db(ws_dir)
    if conn is None:
        return
    try:
        try:
            rows = conn.execute("SELECT path, fileid, size FROM entries WHERE kind = 1").fetchall()
            max_seq = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM journal").fetchone()[0]
            ahead = conn.execute("SELECT COUNT(*) FROM entries WHERE seq > ?", (max_seq,)).fetchone()[0]
            total = conn.execute("SELECT file_bytes FROM totals WHERE id = 1").fetchone()
        except sqlite3.Error as exc:
            yield _finding(
                vault,
                "overlays",
                "overlay_unreadable",
                f"overlay of fork {fork!r} is unreadable: {exc}",
                ws_dir,
            )
            return
    finally:
        conn.close()
    files_dir = os.path.join(ws_dir, "files")
    used = set()
    total_size = 0
    for path, fileid, size in rows:
        used.add(str(fileid))
        total_size += int(size)
        if not os.path.exists(os.path.join(files_dir, str(fileid))):
            yield _finding(
                vault,
                "overlays",
                "overlay_file_missing",
                f"{fork}: {path}: its overlay file {fileid} is missing",
                os.path.join(files_dir, str(fileid)),
                hint=f"`avfs --vault {vault.name}:{fork} checkout {path} --from HEAD` (or rm it)",
            )
    if ahead:
        yield _finding(
            vault,
            "overlays",
            "overlay_journal_ahead",
            f"{fork}: {ahead} overlay entries have a journal position past the journal's end",
            os.path.join(ws_dir, "overlay.db"),
            hint="checkpoint the fork: a new checkpoint retires those entries",
        )
    if total is not None and int(total[0]) != total_size:

        def fix_totals() -> None:
            db = sqlite3.connect(os.path.join(ws_dir, "overlay.db"), timeout=5.0)
            try:
                with db:
                    db.execute(
                        "UPDATE totals SET file_bytes = (SELECT COALESCE(SUM(size), 0) FROM entries"
                        " WHERE kind = 1) WHERE id = 1"
                    )
            finally:
                db.close()

        yield _finding(
            vault,
            "overlays",
            "overlay_total_wrong",
            f"{fork}: the overlay's byte total ({total[0]}) differs from its files ({total_size})",
            os.path.join(ws_dir, "overlay.db"),
            fix=fix_totals,
            repair=repair,
        )
    try:
        present = os.listdir(files_dir)
    except FileNotFoundError:
        present = []
    orphans = []
    for fn in present:
        p = os.path.join(files_dir, fn)
        if fn not in used:
            try:
                if now - os.stat(p).st_mtime > ORPHAN_FILE_S:
                    orphans.append(p)
            except FileNotFoundError:
                continue
    if orphans:

        def drop_orphans() -> None:
            for p in orphans:
                _unlink_quiet(p)

        yield _finding(
            vault,
            "overlays",
            "overlay_orphan_files",
            f"{fork}: {len(orphans)} overlay files no entry names (left by a killed writer)",
            files_dir,
            fix=drop_orphans,
            repair=repair,
        )


# -- what a crashed mount daemon leaves -------------------------------------------------------
#
# A daemon that ends normally removes its exec file, its worktree and its registry entry
# (fuse/daemon.py), and libfuse's auto_unmount takes the mount with it. One killed (-9, a
# segfault) leaves the files; the kernel may leave the mount point (ENOTCONN), or an
# overlay mount whose lower layer was the daemon's. Each is one finding, code and path:
#
#   dead_mount_registry   <vault>/avfs/mounts/<key>.json    its daemon is gone
#   stale_exec_socket     <vault>/avfs/mounts/<key>.exec    the daemon's exec server is gone
#   stale_registry_tmp    <vault>/avfs/mounts/*.tmp         a writer died between write and rename
#   stale_worktree        <vault>/worktrees/avfs-<key>      git calls it prunable
#   dead_mountpoint       a FUSE mount of avfs answering "Transport endpoint is not connected"
#   orphan_overlay_mount  an overlay mount over this home's directories with no live daemon
#
# "Gone" is checked against pid reuse: the pid must run the mount daemon for this home and
# vault (its command line) and must have started before the file was written (its start
# time); a pid the kernel has given to another process since is not the daemon.
# (core/registry.py: daemon_alive, and why)

YOUNG_S = 60.0  # a worktree without an owner file younger than this may be being written


def _daemon_alive(pid: int, vault: Vault, started: float | None) -> bool:
    home = vault.home.path if vault.home is not None else None
    return registry.daemon_alive(pid, vault.name, home, started)


def _mtime(path: str) -> float | None:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return None


@dataclasses.dataclass(frozen=True, slots=True)
class _Worktree:
    path: str  # <vault>/worktrees/avfs-<key>
    key: str
    mountpoint: str | None  # where its gitdir file says the mount was
    pid: int  # the daemon that registered it (0: unknown)
    alive: bool


def _worktrees(vault: Vault, now: float) -> list[_Worktree]:
    """The vault's mount worktrees (``worktrees/avfs-*``) and whether their daemon runs."""
    root = os.path.join(vault.path, "worktrees")
    try:
        entries = sorted(n for n in os.listdir(root) if n.startswith("avfs-"))
    except FileNotFoundError:
        return []
    out = []
    for name in entries:
        path = os.path.join(root, name)
        if not os.path.isdir(path):
            continue
        mp = None
        try:
            with open(os.path.join(path, "gitdir"), encoding="utf-8") as fh:
                mp = os.path.dirname(fh.read().strip()) or None
        except OSError:
            pass
        owner = os.path.join(path, OWNER_FILE)
        pid = _owner_pid(owner)
        if pid:
            alive = _daemon_alive(pid, vault, _mtime(owner))
        else:
            # no owner file: one being written (young), or what git calls prunable
            young = now - (_mtime(path) or 0.0) < YOUNG_S
            alive = young or (mp is not None and os.path.lexists(os.path.join(mp, ".git")))
        out.append(_Worktree(path, from_fs_name(name[len("avfs-") :]), mp, pid, alive))
    return out


def _remove_worktree(vault: Vault, wt: _Worktree) -> None:
    """Remove a dead daemon's worktree: moved aside first, and put back if, read again
    there, it belongs to a live daemon (a new mount of the same fork registers the same
    directory)."""
    aside = os.path.join(os.path.dirname(wt.path), f".doctor-{os.getpid()}-{time.monotonic_ns()}")
    try:
        os.rename(wt.path, aside)
    except FileNotFoundError:
        return
    if _owner_alive(vault, aside):
        try:
            os.rename(aside, wt.path)
            return
        except OSError:
            pass  # the new daemon made its own meanwhile: this one is nobody's
    shutil.rmtree(aside, ignore_errors=True)


def _owner_alive(vault: Vault, path: str) -> bool:
    """Whether the owner file in worktree dir ``path`` names a live daemon of ``vault``."""
    owner = os.path.join(path, OWNER_FILE)
    pid = _owner_pid(owner)
    return pid > 0 and _daemon_alive(pid, vault, _mtime(owner))


def _owner_pid(owner: str) -> int:
    """The daemon pid a worktree's owner file names; 0 when it has none (unreadable)."""
    try:
        with open(owner, encoding="utf-8") as fh:
            return int(json.load(fh).get("pid", 0))
    except (OSError, ValueError, AttributeError, TypeError):
        return 0


def _exec_files(vault: Vault) -> list[tuple[str, int, bool]]:
    """(path, pid, alive) of the exec files (``<key>.exec``, ``<key>.exec.tmp``) in the
    mount registry: the name of a daemon's exec socket and the daemon's pid."""
    root = os.path.join(vault.state_dir, "mounts")
    try:
        names = sorted(n for n in os.listdir(root) if n.endswith((".exec", ".exec.tmp")))
    except FileNotFoundError:
        return []
    out = []
    for fn in names:
        path = os.path.join(root, fn)
        try:
            with open(path, encoding="utf-8") as fh:
                lines = fh.read().split("\n")
            pid = int(lines[1]) if len(lines) > 1 and lines[1].strip() else 0
        except (OSError, ValueError):
            pid = 0
        out.append((path, pid, _daemon_alive(pid, vault, _mtime(path))))
    return out


def _registry_temps(vault: Vault, now: float) -> list[tuple[str, int]]:
    """Temporary registry files (``<key>.json.<pid>.tmp``) whose writer is gone."""
    root = os.path.join(vault.state_dir, "mounts")
    try:
        names = sorted(n for n in os.listdir(root) if n.endswith(".tmp") and ".json." in n)
    except FileNotFoundError:
        return []
    out = []
    for fn in names:
        path = os.path.join(root, fn)
        try:
            pid = int(fn[: -len(".tmp")].rsplit(".", 1)[1])
        except (ValueError, IndexError):
            pid = 0
        if (pid and pid_alive(pid)) or now - (_mtime(path) or now) < YOUNG_S:
            continue
        out.append((path, pid))
    return out


def _unlink_if_dead(vault: Vault, path: str) -> None:
    """Unlink an exec file, re-checked: only while its daemon is still not running."""
    for p, _pid, alive in _exec_files(vault):
        if p == path and not alive:
            _unlink_quiet(path)


def _remove_dead_registry(vault: Vault, m: _Mount) -> None:
    """Unlink a registry entry, re-checked: only while it names the same dead daemon."""
    for again in _mounts(vault):
        if again.registry == m.registry and again.pid == m.pid and not again.alive:
            _unlink_quiet(m.registry)


def _mount_leftovers(vault: Vault, repair: bool, now: float) -> Iterable[Finding]:
    for m in _mounts(vault):
        if not m.alive:
            yield _finding(
                vault,
                "mounts",
                "dead_mount_registry",
                f"mount {m.key} at {m.mountpoint} is registered, but its daemon (pid {m.pid}) is gone",
                m.registry,
                fix=lambda m=m: _remove_dead_registry(vault, m),  # type: ignore[misc]
                repair=repair,
            )
    for path, pid, alive in _exec_files(vault):
        if not alive:
            yield _finding(
                vault,
                "mounts",
                "stale_exec_socket",
                f"exec socket file of a mount daemon (pid {pid}) that is gone",
                path,
                fix=lambda p=path: _unlink_if_dead(vault, p),  # type: ignore[misc]
                repair=repair,
            )
    for path, pid in _registry_temps(vault, now):
        yield _finding(
            vault,
            "mounts",
            "stale_registry_tmp",
            f"temporary mount registry file of a process (pid {pid}) that is gone",
            path,
            fix=lambda p=path: _unlink_quiet(p),  # type: ignore[misc]
            repair=repair,
        )
    for wt in _worktrees(vault, now):
        if not wt.alive:
            who = f"its mount daemon (pid {wt.pid}) is gone" if wt.pid else "no mount daemon owns it"
            yield _finding(
                vault,
                "mounts",
                "stale_worktree",
                f"git worktree of mount {wt.key} (at {wt.mountpoint}): {who}; git lists it as prunable",
                wt.path,
                fix=lambda wt=wt: _remove_worktree(vault, wt),  # type: ignore[misc]
                repair=repair,
                hint="--repair removes this worktree only (not `git worktree prune`, which takes every prunable one)",
            )


# -- mounts the kernel still lists ------------------------------------------------------------


def _within(path: str, roots: Iterable[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


def _mount_owners(vaults: Sequence[Vault], now: float) -> tuple[dict[str, Vault], set[str]]:
    """(path -> vault, live paths): every path a registry entry or a mount worktree of
    ``vaults`` names (mount points, and what else a backend records), and those named by
    the registry entry of a live daemon."""
    owner: dict[str, Vault] = {}
    live: set[str] = set()
    for vault in vaults:
        for m in _mounts(vault):
            for p in _record_paths(m.registry) | {os.path.realpath(m.mountpoint)}:
                owner.setdefault(p, vault)
            if m.alive:
                live.update(_record_paths(m.registry))
        for wt in _worktrees(vault, now):
            if wt.mountpoint:
                owner.setdefault(os.path.realpath(wt.mountpoint), vault)
    return owner, live


def _kernel_mounts(
    home: Home, vaults: Sequence[Vault], owners: tuple[dict[str, Vault], set[str]], repair: bool
) -> Iterable[Finding]:
    """avfs FUSE mounts and overlay mounts that belong to this home and have no live
    daemon. A mount belongs to the home when a registry entry or a mount worktree of one
    of its vaults names its mount point, or when it (an overlay: one of its directories)
    lies inside the home; mounts of other homes (vault names repeat across homes) are
    not this doctor's to judge."""
    from . import mounts as mounts_mod

    owner, live = owners
    roots = [os.path.realpath(home.path)]
    by_name = {v.name: v for v in vaults}
    table = registry.kernel_mounts()
    # overlays first: an overlay over a dead FUSE lower is detached before that lower
    for km in sorted(table, key=lambda k: k.fstype != "overlay"):
        if km.fstype == "overlay":
            paths = (km.mountpoint, *km.dirs)
            belongs: Vault | None = next((owner[p] for p in paths if p in owner), None)
            if belongs is None:
                belongs = next((v for v in vaults for p in km.dirs if _within(p, [v.path])), None)
            if belongs is None and not any(_within(p, roots) for p in paths):
                continue
            if any(p in live for p in paths):
                continue
            yield _finding(
                belongs,
                "mounts",
                "orphan_overlay_mount",
                f"{km.mountpoint} is an overlay mount over avfs directories ({', '.join(km.dirs)}) "
                "with no live mount daemon",
                km.mountpoint,
                fix=lambda mp=km.mountpoint: _detach(mp),  # type: ignore[misc]
                repair=repair,
                hint="--repair detaches it (umount -l); the upper directory's files stay on disk",
            )
        elif km.avfs_fuse:
            mp = km.mountpoint
            belongs = owner.get(mp)
            if belongs is None and not _within(mp, roots):
                continue
            if belongs is None and km.vault_name in by_name:
                belongs = by_name[km.vault_name or ""]
            if registry.dead_mountpoint(mp):
                yield _finding(
                    belongs,
                    "mounts",
                    "dead_mountpoint",
                    f"{mp} is a dead mount point ({km.source}): Transport endpoint is not connected",
                    mp,
                    fix=lambda mp=mp: mounts_mod.force_unmount(mp),  # type: ignore[misc]
                    repair=repair,
                )


def _record_paths(record: str) -> set[str]:
    """Every absolute path a registry record names (its mount point, and whatever layers
    a backend records), resolved."""
    data = registry.read_record(record)
    if data is None:
        return set()
    out: set[str] = set()
    todo: list[Any] = [data]
    while todo:
        x = todo.pop()
        if isinstance(x, dict):
            todo.extend(x.values())
        elif isinstance(x, list):
            todo.extend(x)
        elif isinstance(x, str) and x.startswith("/"):
            out.add(os.path.realpath(x))
    return out


def _detach(mountpoint: str) -> None:
    """Lazily detach an overlay mount (still listed: it may have been detached meanwhile)."""
    if any(km.mountpoint == mountpoint for km in registry.kernel_mounts()):
        subprocess.run(["umount", "-l", mountpoint], capture_output=True, check=False)


# -- the layers file system -------------------------------------------------------------------

ORPHAN_SUBVOLUME_AGE_S = 3600.0  # younger ones may be a fork in the middle of being made
LAYERS_HOST_LOW = 2 << 30  # host free space under which (or under 5 % of it) doctor warns


def _layer_links(home: Home) -> set[str]:
    """The subvolumes that state dir links of the home's vaults (and its trash) name."""
    out: set[str] = set()
    for top in (home.vaults_dir, home.trash_dir):
        try:
            vaults = os.listdir(top)
        except FileNotFoundError:
            continue
        for v in vaults:
            for root in ("ws", "lost+found"):
                d = os.path.join(top, v, "avfs", root)
                try:
                    names = os.listdir(d)
                except (FileNotFoundError, NotADirectoryError):
                    continue
                for n in names:
                    target = layers.link_target(home.path, os.path.join(d, n))
                    if target is not None:
                        out.add(target)
    return out


def _check_layers(home: Home, repair: bool, now: float) -> Iterable[Finding]:
    """The home's layers file system (core/layers.py): mountable, writable, room on the
    host for what it may still take, and no subvolume that no state dir link names."""
    img = layers.image_path(home.path)
    if not os.path.exists(img):
        return
    mp = layers.mount_path(home.path)
    if not layers.mounted(home.path):
        try:
            layers.ensure(home.path, create=False)
        except layers.LayersUnavailable as exc:
            yield _finding(
                None,
                "layers",
                "layers_unmountable",
                f"the layers file system {img} cannot be mounted: {exc}; the workspaces in it cannot be read",
                img,
                hint="run as root on a kernel with btrfs and loop devices; `btrfs check` the image",
            )
            return
    with open("/proc/self/mounts", encoding="utf-8") as fh:
        ro = any(ln.split()[1:2] == [mp] and "ro" in ln.split()[3].split(",") for ln in fh)
    if ro:
        yield _finding(
            None,
            "layers",
            "layers_read_only",
            f"the layers file system at {mp} is read-only (btrfs turns read-only after a write"
            " error, e.g. when the host's disk filled under the sparse image)",
            mp,
            hint=f"free space on the host, then `umount {mp}` (avfs mounts it again on next use)",
        )
    if layers.direct_io(mp) is False:
        # an image mounted before avfs turned direct I/O on (a mount daemon also turns it on)
        yield Finding(
            vault=None,
            check="layers",
            code="layers_double_cached",
            problem=f"the loop device under {mp} reads and writes its image through the host's"
            " page cache: every block is cached twice and big files go slower",
            path=mp,
            repairable=True,
            repaired=repair and layers.set_direct_io(mp),
            hint=None if repair else "`avfs doctor --repair` turns the loop device's direct I/O on",
        )
    fs, host = os.statvfs(mp), os.statvfs(home.path)
    may_take = fs.f_bavail * fs.f_frsize
    host_free = host.f_bavail * host.f_frsize
    # the image was sized to the host's free space when made, so the host's own growth
    # soon makes may_take > host_free: that only matters once the host is nearly full
    low = max(LAYERS_HOST_LOW, host.f_blocks * host.f_frsize // 20)
    if host_free < may_take and host_free < low:
        yield _finding(
            None,
            "layers",
            "layers_host_space",
            f"the layers image may still grow by {may_take >> 20} MiB but the host has {host_free >> 20} MiB"
            " free: if the host fills first, btrfs meets write errors and turns read-only",
            img,
            hint="free space on the host (or keep it from filling); freed space in the layers fs returns"
            " to the host (discard)",
        )
    named = _layer_links(home)
    for sub in layers.subvolumes(home.path):
        if sub in named or not layers.is_subvolume(sub):
            continue
        age = now - (_mtime(sub) or now)
        if age < ORPHAN_SUBVOLUME_AGE_S:
            continue
        yield _finding(
            None,
            "layers",
            "orphan_subvolume",
            f"workspace state {sub} is named by no fork of any vault (a fork or vault removed while"
            " the layers fs was not mounted, or a fork interrupted while made)",
            sub,
            fix=lambda p=sub: layers.delete_subvolume(p),  # type: ignore[misc]
            repair=repair,
        )
