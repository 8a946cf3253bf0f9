"""``avfs gc``: expire what avfs keeps for undo past its retention (recovery refs, op log
entries, reflog entries), then compact the object store with the git CLI (libgit2 has no
gc): ``git pack-refs``, ``git repack -d -A``, ``git prune --expire``. Objects an undo within
the retention still needs are held by a temporary ref (``refs/avfs/keep``) while git runs.
Also the expiry of deleted vaults in the trash (:func:`expire_deleted_vaults`)."""

from __future__ import annotations

import calendar
import dataclasses
import os
import re
import sqlite3
import time
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

from ...core.errors import AvfsError, BusyError, UsageError, from_oserror
from ...core.records import dataclass
from ...core.store import deeptree, packwriter, refs
from ...core.store.gitstore import rfc3339
from ...core.store.locks import file_lock
from ...core.types import to_json
from ...core.vaults import forkspare, keptindexes, keptstate, layers
from ...core.vaults.forkspare import SPARES
from ...core.vaults.warmrelease import release_kept_warm
from .common import (
    DAY_S,
    KEEP,
    MAINTENANCE_LOCK,
    REPACK_LOCK,
    Retention,
    git,
    live_mounts,
    open_overlay_db,
    retention_for,
    ws_dirs,
)
from .objcounts import object_totals

if TYPE_CHECKING:
    from ...core.vaults.home import Home
    from ...core.vaults.vault import Vault


@dataclass(frozen=True, slots=True)
class ExpiredVault:
    name: str
    path: str
    deleted: str  # when it went to the trash


@dataclass(frozen=True, slots=True)
class GcResult:
    vault: str
    dry_run: bool
    retention: Retention
    expired_recovery_refs: list[str]
    expired_operations: list[int]
    kept_roots: int  # objects held for undo within the retention (besides refs and reflog entries)
    # gc's own commit (and its tree) that held kept_roots while git ran: packed with what
    # they hold, so counted in objects_after (a new vault's gc of 5 objects reported 7)
    keep_commit: str | None
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
    # git state commands left, kept past the recovery retention (core/vaults/keptstate.py)
    expired_git_state: list[str] = dataclasses.field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return dict(to_json(self))


def _oplog_expired(vault: Vault, cutoff: float) -> list[int]:
    rows = vault.oplog.db.execute("SELECT id FROM ops WHERE ts < ? ORDER BY id", (int(cutoff),)).fetchall()
    return [int(r[0]) for r in rows]


# an id an op log record names for undo: a ref's old and new value, a workspace's base and
# tree before and after (JSON as json.dumps writes it; a quote inside a string is escaped,
# so this never matches inside one)
_OPLOG_ID = re.compile(r'"(?:old|new|base|tree)"\s*:\s*"([0-9a-f]{40})"')


def _oplog_roots(vault: Vault, cutoff: float) -> set[str]:
    """The ids the op log's records since ``cutoff`` name for undo.

    Found in the records' JSON text by :data:`_OPLOG_ID`, not by decoding each record
    (1,000 checkpoints: ~5.6 ms of json.loads against ~1 ms): the same ids, and where a
    record held those keys deeper than a ref's or a workspace's state, more of them held,
    never fewer (``tests/test_gc_fast.py`` compares both)."""
    oids: set[str] = set()
    for refs_json, wss_json in vault.oplog.db.execute(
        "SELECT refs, workspaces FROM ops WHERE ts >= ?", (int(cutoff),)
    ):
        oids.update(_OPLOG_ID.findall(refs_json))
        oids.update(_OPLOG_ID.findall(wss_json))
    return oids


def _keep_roots(vault: Vault, cutoff: float) -> set[str]:
    """Objects that undo (op log entries kept) and workspaces (overlays, seeds) still name."""
    oids = _oplog_roots(vault, cutoff)
    for ws_dir in ws_dirs(vault).values():
        try:
            with open(os.path.join(ws_dir, "seed"), encoding="ascii") as fh:
                oids.update(fh.read().split())
        except OSError:
            pass
        conn = open_overlay_db(ws_dir)
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
    if live:  # mounts kept warm for proxy exec go when asked (core/vaults/warmrelease.py)
        release_kept_warm(vault.state_dir)
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


def _tip(vault: Vault, fork: str) -> str | None:
    return refs.read_ref(vault.store, refs.fork_ref(fork))


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
    rec_cutoff = now - ret.recovery_days * DAY_S
    expired_refs = []
    for name in refs.list_refs_file(vault.path, refs.RECOVERY):
        t = _tag_time(name)
        if t is None:
            target = refs.read_ref(vault.store, name)
            t = _commit_time(vault, target, now)
        if t < rec_cutoff:
            expired_refs.append(name)
    op_cutoff = now - ret.oplog_days * DAY_S
    expired_ops = _oplog_expired(vault, op_cutoff)
    expired_kept = keptstate.expire(vault.state_dir, rec_cutoff, dry_run=True)
    grace = _git_time(now - ret.grace_days * DAY_S)
    reflog_cut = _git_time(op_cutoff)
    commands = [
        f"git reflog expire --all --expire={reflog_cut} --expire-unreachable={reflog_cut}",
        "git pack-refs --all --prune",
        f"git repack -d -A -q --unpack-unreachable={grace}",
        f"git prune --expire={grace}",
    ]
    before = object_totals(vault.path)  # (objects, bytes)

    def result(
        kept: int,
        unreachable: int,
        after: tuple[int, int] | None,
        debris: list[tuple[str, int, str]],
        keep: str | None = None,
    ) -> GcResult:
        return GcResult(
            vault=vault.name,
            dry_run=dry_run,
            retention=ret,
            expired_recovery_refs=expired_refs,
            expired_operations=expired_ops,
            kept_roots=kept,
            keep_commit=keep,
            unreachable_loose=unreachable,
            objects_before=before[0],
            objects_after=None if after is None else after[0],
            bytes_before=before[1],
            bytes_after=None if after is None else after[1],
            commands=commands,
            duration_ms=int((time.monotonic() - started) * 1000),
            stale_temp_files=[p for p, _, _ in debris],
            stale_temp_bytes=sum(n for _, n, _ in debris),
            expired_git_state=[k.path for k in expired_kept],
        )

    if dry_run:
        debris = packwriter.stale_temp_files(vault.path, now=now)
        dry_roots = _keep_roots(vault, op_cutoff)
        pending = git(vault.path, "prune", "--dry-run", f"--expire={grace}").stdout.split()
        return result(len(dry_roots), len(pending) // 2, None, debris)
    # a killed checkpoint's temporary pack (git's prune only drops those past the grace)
    debris = packwriter.remove_stale_temp_files(vault.path, now=now)
    # the forks' spare snapshots (core/vaults/forkspare.py): a cache, whose blocks a source
    # rewritten since are held by it alone; the next fork of each snapshots as before
    for fork in forkspare.spares(vault):
        forkspare.drop(vault, fork)
    # the kept indexes (mount/keptindex.py, a cache) of trees no fork's tip has now
    tip_trees = {vault.store.commit_tree(c) for f in vault.fork_names() if (c := _tip(vault, f))}
    keptindexes.drop_unused(vault.state_dir, tip_trees)
    expired_kept = keptstate.expire(vault.state_dir, rec_cutoff)
    # the held base refs killed mount daemons left (no mount lives: refused above), where
    # the fork's branch holds what they name (else the workspace stands on a commit only
    # that ref keeps: it stays, leftovers.py)
    if any(n.endswith(refs.SEP + "base") for n in refs.list_refs_file(vault.path, refs.HELD)):
        from .leftovers import drop_held_base, stale_held_bases  # (not on gc's path otherwise)

        for fork, commit, _needed in stale_held_bases(vault):
            drop_held_base(vault, fork, commit)
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
    git(
        vault.path,
        "reflog",
        "expire",
        "--all",
        f"--expire={reflog_cut}",
        f"--expire-unreachable={reflog_cut}",
    )
    git(vault.path, "pack-refs", "--all", "--prune")
    # roots for undo: created after pack-refs so they stay loose and go cheaply; what a
    # ref names, or a reflog entry the expiry above kept, git's repack and prune keep anyway
    tips = {refs.read_ref_file(vault.path, r) for r in refs.list_refs_file(vault.path, refs.REFS)}
    held = tips | _reflogged(vault.path)
    roots: list[str] = sorted(o for o in _keep_roots(vault, op_cutoff) if o not in held)
    clear_keep_refs(vault)
    try:
        keep, roots = _hold_roots(vault, roots)
        git(vault.path, "repack", "-d", "-A", "-q", f"--unpack-unreachable={grace}")
        pruned = git(vault.path, "prune", "-v", f"--expire={grace}").stdout.split()
    finally:
        clear_keep_refs(vault)
    vault.store.close()  # packs were replaced: this thread's libgit2 handle reopens them
    return result(len(roots), len(pruned) // 2, object_totals(vault.path), debris, keep)


def _reflogged(git_dir: str) -> set[str]:
    """Every id a reflog entry of the vault names (``<git_dir>/logs/``, read after the
    expiry): git's repack (``--reflog``) and prune take them as roots, so gc's keep commit
    need not name them. A checkpoint's old and new commits are there (every ref move is
    logged: ``core.logAllRefUpdates=always``); a deleted fork's are not (its reflog goes
    with it), nor a workspace's trees: those stay held. A line that does not read as an
    entry names nothing (its ids are then held)."""
    out: set[str] = set()
    for dirpath, _dirs, files in os.walk(os.path.join(git_dir, "logs")):
        for fn in files:
            try:
                with open(os.path.join(dirpath, fn), "rb") as fh:
                    for line in fh:
                        old, _, rest = line.partition(b" ")
                        new = rest[:40]
                        if len(old) == 40 and len(new) == 40 and rest[40:41] == b" ":
                            out.add(old.decode("ascii", "replace"))
                            out.add(new.decode("ascii", "replace"))
            except OSError:
                continue  # unreadable: its ids stay held
    out.discard("0" * 40)
    return out


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


def _commit_time(vault: Vault, target: str | None, default: float) -> float:
    """The commit time of ``target`` (a recovery ref's commit), or ``default`` when there
    is none, it is not a commit or it cannot be read (the ref is then kept)."""
    if not target:
        return default
    try:
        return float(vault.store.commit_time(target))
    except AvfsError:
        return default


def _git_stdin(vault_path: str, args: list[str], data: str) -> None:
    from ...core.store import gitrun

    gitrun.run(args, git_dir=vault_path, input=data, text=True)


def _hold_roots(vault: Vault, roots: list[str]) -> tuple[str | None, list[str]]:
    """Make ``roots`` reachable from one ref, :data:`KEEP`, for the length of a gc: a commit
    whose parents are the commits and whose tree names the trees and blobs (one ref, where a
    ref per object cost ~1 ms each). Returns (that commit, the roots that exist)."""
    got = vault.store.keep_commit(
        roots, "avfs gc: objects undo still needs\n", ("avfs gc", "gc@avfs.invalid")
    )
    if got is None:
        return None, []
    commit, held = got
    _write_keep_ref(vault.path, commit)
    return commit, held


def _write_keep_ref(git_dir: str, commit: str) -> None:
    """Create :data:`KEEP` at ``commit`` as a loose ref file, the way git writes one (its
    ``.lock`` created exclusively, written, renamed over the name), without a git process
    (~6-9 ms; a cold gc does not load libgit2). Only gc writes this ref, and only while it
    holds every lock of the vault and :data:`MAINTENANCE_LOCK` (:func:`clear_keep_refs`
    removed it just before): a ``.lock`` file in the way was left by a gc that was killed,
    and goes."""
    path = os.path.join(git_dir, *KEEP.split("/"))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    try:
        fd = os.open(path + ".lock", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        os.unlink(path + ".lock")
        fd = os.open(path + ".lock", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.write(fd, f"{commit}\n".encode("ascii"))
    finally:
        os.close(fd)
    os.rename(path + ".lock", path)


def clear_keep_refs(vault: Vault) -> int:
    """Remove :data:`KEEP` (and the per-object refs an older avfs used); how many went.

    The usual case, gc's own loose :data:`KEEP` alone, is a file removed with its reflog
    (an older avfs wrote one); anything packed (``pack-refs`` ran after a gc was killed) or
    under ``keep/`` goes through ``git update-ref``, which rewrites packed-refs."""
    names = refs.list_refs_file(vault.path, KEEP + "/")
    if refs.read_ref_file(vault.path, KEEP) is not None:
        names.append(KEEP)
    if names == [KEEP] and _remove_loose_keep(vault.path):
        return 1
    if names:
        _git_stdin(vault.path, ["update-ref", "--stdin"], "".join(f"delete {n}\n" for n in names))
    return len(names)


def _remove_loose_keep(git_dir: str) -> bool:
    """Remove :data:`KEEP`'s loose file and its reflog when packed-refs does not hold it
    too (else False, nothing removed: git must rewrite packed-refs)."""
    if any(line.endswith(b" " + KEEP.encode()) for line in refs.packed_lines(git_dir)):
        return False
    try:
        os.unlink(os.path.join(git_dir, *KEEP.split("/")))
    except FileNotFoundError:
        return False  # gone meanwhile: git decides
    try:
        os.unlink(refs.reflog_path(git_dir, KEEP))
    except FileNotFoundError:
        pass
    return True


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
                deeptree.rmtree(path)
            except OSError as exc:
                raise from_oserror(exc, path) from exc
    return out


def _remove_state_links(home_path: str, vault_path: str) -> None:
    """Delete the layers subvolumes a vault's state dir links name (``rmtree`` removes
    only the links), and the immutable worktree link a killed overlay daemon left in a
    plain state dir's upper layer (``rmtree`` would fail on it)."""
    for root in ("ws", "lost+found", SPARES):
        d = os.path.join(vault_path, "avfs", root)
        try:
            names = os.listdir(d)
        except FileNotFoundError:
            continue
        for n in names:
            layers.remove_state_dir(home_path, os.path.join(d, n))
