"""``avfs prune``: remove forks that are merged or abandoned (through
:meth:`.Vault.delete_fork`, so ``avfs undo`` brings them back), registry entries of dead
mount daemons, lock files of forks that are gone, git lock files left by a killed process,
and expired approval tokens. Never the default fork, never a mounted fork, never a fork
changed in the last hour."""

from __future__ import annotations

import json
import os
import time
from typing import TYPE_CHECKING, Any

from ...core.errors import BusyError, CorruptStateError, InvalidNameError, UsageError
from ...core.records import dataclass
from ...core.store import refs, transferlock
from ...core.store.locks import MOUNT_GATE, flock_held
from ...core.store.names import check_fork_name, from_fs_name
from ...core.types import to_json
from .common import (
    DAY_S,
    MAINTENANCE_LOCK,
    ORPHAN_FILE_S,
    RECENT_FORK_S,
    REPACK_LOCK,
    STALE_GIT_LOCK_S,
    USED_APPROVAL_S,
    last_change,
    names_in,
    overlay_usage,
    registered_mounts,
    retention_for,
    unlink_quiet,
)
from .leftovers import clean_dead_mount

if TYPE_CHECKING:
    from ...core.vaults.home import Home
    from ...core.vaults.vault import Vault


@dataclass(frozen=True, slots=True)
class PruneItem:
    kind: str  # fork | mount | lock | approval
    name: str
    reason: str
    action: str  # removed | would_remove | skipped
    op_id: int | None = None  # the fork_delete operation (`avfs undo` brings the fork back)


@dataclass(frozen=True, slots=True)
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
    mounts = registered_mounts(vault)
    mounted = {m.fork: m for m in mounts if m.alive}
    default = vault.default_fork
    default_tip = refs.read_ref_file(vault.path, refs.fork_ref(default))
    cloned = vault.oplog.created()
    for fork in vault.fork_names():
        if fork == default:
            continue
        last = last_change(vault, fork, cloned)
        merged = _is_merged(vault, fork, default_tip) and overlay_usage(vault.ws_dir(fork))[0] == 0
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
                clean_dead_mount(vault, m)
    for path, reason in stale_locks(vault, now=now):
        items.append(PruneItem("lock", os.path.relpath(path, vault.path), reason, act))
        if not dry_run:
            remove_lock(path)
    if vault.home is not None:
        for path, reason in expired_approvals(vault.home.path, now=now):
            items.append(PruneItem("approval", os.path.basename(path), reason, act))
            if not dry_run:
                unlink_quiet(path)
    return PruneResult(vault=vault.name, dry_run=dry_run, older_than_days=days, items=items)


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
    for fn in names_in(lock_dir):
        path = os.path.join(lock_dir, fn)
        if fn.endswith(".lock") and _lock_owner_gone(path) and not flock_held(path):
            out.append((path, "lock file of a fork that no longer exists"))
    return out


def _lock_forks(name: str) -> set[str]:
    """The fork whose lock file can be ``<name>.lock``: the fork lock (``Vault.lock``) or
    proxy exec's ``.exec-<fork>``, optimistic writes' ``.write-<fork>`` ('/' and '%'
    escaped in all; no fork name starts with '.', so they never meet)."""
    for prefix in (".exec-", ".write-", ".mount-"):
        if name.startswith(prefix):
            name = name[len(prefix) :]
    return {from_fs_name(name)}


def _lock_owner_gone(path: str) -> bool:
    """True when the avfs lock file ``path`` (``<vault>/avfs/locks/<name>.lock``) belongs to
    no existing fork and is no vault-wide lock (read from the ref files, not a cache)."""
    fn = os.path.basename(path)
    if not fn.endswith(".lock"):
        return False
    name = fn[: -len(".lock")]
    if name in (MAINTENANCE_LOCK, REPACK_LOCK, MOUNT_GATE, transferlock.LOCK_NAME):
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
        except (OSError, CorruptStateError):
            return False  # cannot tell (a damaged branch file is a fork's still): leave it alone
    return True


def is_avfs_lock(path: str) -> bool:
    return os.sep + os.path.join("avfs", "locks") + os.sep in path


def remove_lock(path: str) -> None:
    """Unlink a lock file; an avfs (flock) lock only when it is stale for certain.

    A flock file is unlinked only while we hold its flock ourselves (nobody else does),
    only when, re-checked under that flock, no fork it could belong to exists, and only when
    the path still names the file we locked. A waiter that opened it before the unlink
    notices (``locks.file_lock`` compares its fd with the path after locking) and retries.
    """
    if not is_avfs_lock(path):
        unlink_quiet(path)
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
            unlink_quiet(path)
    finally:
        os.close(fd)


def expired_approvals(home_path: str, *, now: float | None = None) -> list[tuple[str, str]]:
    """(path, reason) of approval records past use: expired tokens, used ones older than a
    day, temporary files left by a killed writer."""
    now = time.time() if now is None else now
    root = os.path.join(home_path, "approvals")
    out = []
    for fn in names_in(root):
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
