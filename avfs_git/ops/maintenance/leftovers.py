"""Doctor's ``mounts`` check, and prune's cleanup of a dead mount: what a crashed mount
daemon leaves in a vault (registry entries, exec files, temporary registry files,
worktrees, the mounts' own directories) and the mounts the kernel still lists for it (dead FUSE mount points, orphan
overlay mounts). Unmounting is :mod:`avfs_git.ops.mounts`'s (imported lazily: only the
commands that repair mounts need it)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ...core.records import dataclass
from ...core.store import refs
from ...core.store.locks import pid_alive
from ...core.store.names import from_fs_name
from ...core.vaults import registry
from ...core.vaults.mountinfo import kernel_mounts
from .common import RegisteredMount, daemon_alive, mtime, names_in, registered_mounts, unlink_quiet
from .findings import Finding, finding

if TYPE_CHECKING:
    from ...core.vaults.home import Home
    from ...core.vaults.vault import Vault

# -- what a crashed mount daemon leaves -------------------------------------------------------
#
# A daemon that ends normally removes its exec file, its worktree (git's state there kept
# for the fork's next mount, <vault>/avfs/gitkept/: mount/gitkeep.py) and its registry entry
# (fuse/daemon.py), and libfuse's auto_unmount takes the mount with it. One killed (-9, a
# segfault) leaves the files; the kernel may leave the mount point (ENOTCONN), or an
# overlay mount whose lower layer was the daemon's. Each is one finding, code and path:
#
#   dead_mount_registry   <vault>/avfs/mounts/<key>.json    its daemon is gone
#   stale_exec_socket     <vault>/avfs/mounts/<key>.exec    the daemon's exec server is gone
#   stale_registry_tmp    <vault>/avfs/mounts/*.tmp         a writer died between write and rename
#   stale_worktree        <vault>/worktrees/avfs-<key>      git calls it prunable (with the
#                         <vault>/avfs/mounts/<key>.d       mount's own directory)
#   stale_mount_dir       <vault>/avfs/mounts/<key>.d       a mount's own directory, no worktree
#   dead_mountpoint       a FUSE mount of avfs answering "Transport endpoint is not connected"
#   orphan_overlay_mount  an overlay mount over this home's directories with no live daemon
#   stale_held_base       refs/avfs/held/<fork>/-/base      the base a mount held for git's gc
#                                                           (core/store/heldref.py), no daemon
#
# "Gone" is checked against pid reuse: the pid must run the mount daemon for this home and
# vault (its command line) and must have started before the file was written (its start
# time); a pid the kernel has given to another process since is not the daemon.
# (core/vaults/registry.py: daemon_alive, and why)

YOUNG_S = 60.0  # a worktree without a registry record younger than this may be being written


@dataclass(frozen=True, slots=True)
class _Worktree:
    path: str  # <vault>/worktrees/avfs-<key>
    key: str
    mountpoint: str | None  # where its gitdir file says the mount was
    pid: int  # the daemon that registered it (0: unknown)
    alive: bool


def _worktrees(vault: Vault, now: float) -> list[_Worktree]:
    """The vault's mount worktrees (``worktrees/avfs-*``) and whether their daemon runs."""
    root = os.path.join(vault.path, "worktrees")
    out = []
    for name in (n for n in names_in(root) if n.startswith("avfs-")):
        path = os.path.join(root, name)
        if not os.path.isdir(path):
            continue
        key = from_fs_name(name[len("avfs-") :])
        mp = None
        try:
            with open(os.path.join(path, "gitdir"), encoding="utf-8") as fh:
                mp = os.path.dirname(fh.read().strip()) or None
        except OSError:
            pass
        pid = _owner_pid(vault, key)
        if pid:
            alive = _owner_alive(vault, key)
        else:
            # no record: one being written (young), or what git calls prunable
            young = now - (mtime(path) or 0.0) < YOUNG_S
            alive = young or (mp is not None and os.path.lexists(os.path.join(mp, ".git")))
        out.append(_Worktree(path, key, mp, pid, alive))
    return out


def _remove_worktree(vault: Vault, wt: _Worktree) -> None:
    """Remove a dead daemon's worktree and the mount's own directory: each moved aside
    first, and put back if its mount's registry record now names a live daemon (a new
    mount of the same fork registers the same directories). git's own state there (the
    index, an open merge...) is kept first for the fork's next mount, as an unmount keeps
    it (mount/gitkeep.py ``keep_leftover``)."""
    if not _owner_alive(vault, wt.key) and vault.has_fork(wt.key):
        from ...core.errors import AvfsError
        from ...mount.gitkeep import keep_leftover

        try:
            keep_leftover(vault.workspace(wt.key), wt.path, registry.mount_dir(vault.state_dir, wt.key))
        except AvfsError:
            pass  # (the fork's workspace cannot be opened: its worktree goes, as before)
    _remove_aside(vault, wt.key, wt.path)
    _remove_aside(vault, wt.key, registry.mount_dir(vault.state_dir, wt.key))


def _remove_aside(vault: Vault, key: str, path: str) -> None:
    aside = os.path.join(os.path.dirname(path), f".doctor-{os.getpid()}-{time.monotonic_ns()}")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return
    if _owner_alive(vault, key):
        try:
            os.rename(aside, path)
            return
        except OSError:
            pass  # the new daemon made its own meanwhile: this one is nobody's
    shutil.rmtree(aside, ignore_errors=True)


def _owner_alive(vault: Vault, key: str) -> bool:
    """Whether the registry record of mount ``key`` names a live daemon of ``vault`` (the
    record alone: a worktree's git dir is writable by a confined command)."""
    path = registry.record_path(vault.state_dir, key)
    pid = _owner_pid(vault, key)
    return pid > 0 and daemon_alive(pid, vault, mtime(path))


def _owner_pid(vault: Vault, key: str) -> int:
    """The daemon pid the registry record of mount ``key`` names; 0 when there is none."""
    data = registry.read_record(registry.record_path(vault.state_dir, key))
    try:
        return int((data or {}).get("pid", 0) or 0)
    except (TypeError, ValueError):
        return 0


def _mount_dirs(vault: Vault, now: float) -> list[tuple[str, str]]:
    """(path, key) of the mounts' own directories (``<vault>/avfs/mounts/<key>.d``) with
    no worktree (that one's cleanup takes it along) and no live daemon, older than a
    minute (one being made)."""
    from ...mount.ownfiles import worktree_dir

    root = os.path.join(vault.state_dir, registry.RECORDS)
    out = []
    for fn in (n for n in names_in(root) if n.endswith(".d")):
        path = os.path.join(root, fn)
        key = from_fs_name(fn[: -len(".d")])
        if not os.path.isdir(path) or os.path.islink(path) or os.path.isdir(worktree_dir(vault, key)):
            continue
        if _owner_alive(vault, key) or now - (mtime(path) or now) < YOUNG_S:
            continue
        out.append((path, key))
    return out


def _exec_files(vault: Vault) -> list[tuple[str, int, bool]]:
    """(path, pid, alive) of the exec files (``<key>.exec``, ``<key>.exec.tmp``) in the
    mount registry: the name of a daemon's exec socket and the daemon's pid."""
    root = os.path.join(vault.state_dir, "mounts")
    out = []
    for fn in (n for n in names_in(root) if n.endswith((".exec", ".exec.tmp"))):
        path = os.path.join(root, fn)
        try:
            with open(path, encoding="utf-8") as fh:
                lines = fh.read().split("\n")
            pid = int(lines[1]) if len(lines) > 1 and lines[1].strip() else 0
        except (OSError, ValueError):
            pid = 0
        out.append((path, pid, daemon_alive(pid, vault, mtime(path))))
    return out


def _registry_temps(vault: Vault, now: float) -> list[tuple[str, int]]:
    """Temporary registry files (``<key>.json.<pid>.tmp``) whose writer is gone."""
    root = os.path.join(vault.state_dir, "mounts")
    out = []
    for fn in (n for n in names_in(root) if n.endswith(".tmp") and ".json." in n):
        path = os.path.join(root, fn)
        try:
            pid = int(fn[: -len(".tmp")].rsplit(".", 1)[1])
        except (ValueError, IndexError):
            pid = 0
        if (pid and pid_alive(pid)) or now - (mtime(path) or now) < YOUNG_S:
            continue
        out.append((path, pid))
    return out


def _unlink_if_dead(vault: Vault, path: str) -> None:
    """Unlink an exec file, re-checked: only while its daemon is still not running."""
    for p, _pid, alive in _exec_files(vault):
        if p == path and not alive:
            unlink_quiet(path)


def _remove_dead_registry(vault: Vault, m: RegisteredMount) -> None:
    """Unlink a registry entry, re-checked: only while it names the same dead daemon."""
    for again in registered_mounts(vault):
        if again.registry == m.registry and again.pid == m.pid and not again.alive:
            unlink_quiet(m.registry)


def mount_leftovers(vault: Vault, repair: bool, now: float) -> Iterable[Finding]:
    # the worktrees' owners are read from the registry: judged before its entries go
    worktrees, mount_dirs = _worktrees(vault, now), _mount_dirs(vault, now)
    for m in registered_mounts(vault):
        if not m.alive:
            yield finding(
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
            yield finding(
                vault,
                "mounts",
                "stale_exec_socket",
                f"exec socket file of a mount daemon (pid {pid}) that is gone",
                path,
                fix=lambda p=path: _unlink_if_dead(vault, p),  # type: ignore[misc]
                repair=repair,
            )
    for path, pid in _registry_temps(vault, now):
        yield finding(
            vault,
            "mounts",
            "stale_registry_tmp",
            f"temporary mount registry file of a process (pid {pid}) that is gone",
            path,
            fix=lambda p=path: unlink_quiet(p),  # type: ignore[misc]
            repair=repair,
        )
    for wt in worktrees:
        if not wt.alive:
            who = f"its mount daemon (pid {wt.pid}) is gone" if wt.pid else "no mount daemon owns it"
            yield finding(
                vault,
                "mounts",
                "stale_worktree",
                f"git worktree of mount {wt.key} (at {wt.mountpoint}): {who}; git lists it as prunable",
                wt.path,
                fix=lambda wt=wt: _remove_worktree(vault, wt),  # type: ignore[misc]
                repair=repair,
                hint="--repair removes this worktree only (not `git worktree prune`, which takes every prunable one)",
            )
    for path, key in mount_dirs:
        yield finding(
            vault,
            "mounts",
            "stale_mount_dir",
            f"the own directory of mount {key}: no worktree and no mount daemon owns it",
            path,
            fix=lambda p=path, k=key: _remove_aside(vault, k, p),  # type: ignore[misc]
            repair=repair,
        )
    yield from _held_base_findings(vault, repair)


def stale_held_bases(vault: Vault) -> list[tuple[str, str, bool]]:
    """(fork, commit, needed) of each held base ref (``refs/avfs/held/<fork>/-/base``: the
    commit a mount of the fork shows, held for git's gc while it lives, core/store/heldref.py)
    whose mount daemon is gone: one killed (-9, a crash) never removed it. It keeps moving
    with the workspace's base, so it names what the workspace stands on. ``needed``: the
    fork's branch does not hold that commit (git in the killed mount moved the branch off
    it, and nothing of avfs's took the move since: the leftover worktree's cleanup takes it
    where git's HEAD log or hook says so), so the ref is all that keeps the workspace's
    base from git's gc: it stays until the base moves. A fork that no longer exists is
    left out (its state dir is doctor's ``orphan_state_dir``)."""
    out = []
    suffix = refs.SEP + "base"
    for name in refs.list_refs_file(vault.path, refs.HELD):
        fork = name[len(refs.HELD) : -len(suffix)] if name.endswith(suffix) else ""
        if not fork or not vault.has_fork(fork) or _owner_alive(vault, registry.mount_key(fork, None)):
            continue
        commit = refs.read_ref_file(vault.path, name)
        if commit is not None:
            out.append((fork, commit, not _holds(vault, fork, commit)))
    return out


def _holds(vault: Vault, fork: str, commit: str) -> bool:
    """Whether fork ``fork``'s branch holds ``commit`` (its tip, or an ancestor of it)."""
    from ...core.errors import AvfsError

    try:
        tip = refs.read_ref_file(vault.path, refs.fork_ref(fork))
        return tip is not None and (tip == commit or vault.store.descendant_of(tip, commit))
    except AvfsError:
        return False  # (a damaged branch, or libgit2 cannot tell: kept)


def drop_held_base(vault: Vault, fork: str, commit: str) -> bool:
    """Remove fork ``fork``'s held base ref a dead daemon left, by compare-and-swap (while
    it names ``commit``), only while no daemon of the fork's mount runs and the fork's
    branch holds ``commit``; True when it went. A daemon writes its registry record before
    it makes the ref (fuse/daemon.py), so one that started meanwhile is seen by the look
    after the removal, which makes the ref again as the daemon's start does (asked until
    the base stays); one that starts after that look finds no ref and makes it itself. A
    live mount's base stays held."""
    key = registry.mount_key(fork, None)
    if _owner_alive(vault, key) or not _holds(vault, fork, commit):
        return False
    if not refs.set_unlogged(vault.path, refs.held_base_ref(fork), None, commit):
        return False
    if _owner_alive(vault, key):
        vault.workspace(fork).hold_base(mounted=True)
        return False
    return True


def _held_base_findings(vault: Vault, repair: bool) -> Iterable[Finding]:
    for fork, commit, needed in stale_held_bases(vault):
        path = os.path.join(vault.path, refs.held_base_ref(fork))
        if needed:
            yield finding(
                vault,
                "mounts",
                "held_base_needed",
                f"the base of fork {fork!r} ({commit[:12]}) is held for git's gc as a killed mount's;"
                " the fork's branch does not hold it (git in that mount moved the branch off it),"
                " so the workspace stands on a commit only this ref keeps: kept until the base moves",
                path,
                hint="`avfs checkpoint save`, or the fork's next mount and unmount, moves the base",
                severity="warning",
            )
            continue
        yield finding(
            vault,
            "mounts",
            "stale_held_base",
            f"the base of fork {fork!r} ({commit[:12]}) is held for git's gc as a mount's, but no"
            " mount daemon of the fork runs (one killed left it)",
            path,
            fix=lambda f=fork, c=commit: drop_held_base(vault, f, c),  # type: ignore[misc]
            repair=repair,
        )


def clean_dead_mount(vault: Vault, m: RegisteredMount) -> None:
    """What a dead daemon left: its registry entry, exec file and worktree, and its mount
    point when that answers ENOTCONN (each re-checked: never a live daemon's)."""
    from .. import mounts

    now = time.time()
    # the worktrees' owners are read from the registry: judged before its entry goes
    worktrees, mount_dirs = _worktrees(vault, now), _mount_dirs(vault, now + YOUNG_S)
    _remove_dead_registry(vault, m)
    _unlink_if_dead(vault, m.registry[: -len(".json")] + ".exec")
    for wt in worktrees:
        if wt.key == m.key and not wt.alive:
            _remove_worktree(vault, wt)
    for path, key in mount_dirs:
        if key == m.key:
            _remove_aside(vault, key, path)
    for fork, commit, _needed in stale_held_bases(vault):
        if registry.mount_key(fork, None) == m.key:
            drop_held_base(vault, fork, commit)
    if m.mountpoint and registry.mounted_at(m.mountpoint) and registry.dead_mountpoint(m.mountpoint):
        mounts.force_unmount(m.mountpoint)


# -- mounts the kernel still lists ------------------------------------------------------------


def _within(path: str, roots: Iterable[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


def mount_owners(vaults: Sequence[Vault], now: float) -> tuple[dict[str, Vault], set[str]]:
    """(path -> vault, live paths): every path a registry entry or a mount worktree of
    ``vaults`` names (mount points, and what else a backend records), and those named by
    the registry entry of a live daemon."""
    owner: dict[str, Vault] = {}
    live: set[str] = set()
    for vault in vaults:
        for m in registered_mounts(vault):
            for p in _record_paths(m.registry) | {registry.resolved_mountpoint(m.mountpoint)}:
                owner.setdefault(p, vault)
            if m.alive:
                live.update(_record_paths(m.registry))
        for wt in _worktrees(vault, now):
            if wt.mountpoint:
                owner.setdefault(registry.resolved_mountpoint(wt.mountpoint), vault)
    return owner, live


def stale_kernel_mounts(
    home: Home, vaults: Sequence[Vault], owners: tuple[dict[str, Vault], set[str]], repair: bool
) -> Iterable[Finding]:
    """avfs FUSE mounts and overlay mounts that belong to this home and have no live
    daemon. A mount belongs to the home when a registry entry or a mount worktree of one
    of its vaults names its mount point, or when it (an overlay: one of its directories)
    lies inside the home; mounts of other homes (vault names repeat across homes) are
    not this doctor's to judge."""
    from .. import mounts as mounts_mod

    owner, live = owners
    roots = [os.path.realpath(home.path)]
    by_name = {v.name: v for v in vaults}
    table = kernel_mounts()
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
            yield finding(
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
            if belongs is not None and mp not in live:
                _abort_if_dead(belongs, mp, km.source)  # (else the statvfs below could wait for ever)
            if registry.dead_mountpoint(mp):
                yield finding(
                    belongs,
                    "mounts",
                    "dead_mountpoint",
                    f"{mp} is a dead mount point ({km.source}): Transport endpoint is not connected",
                    mp,
                    fix=lambda mp=mp: mounts_mod.force_unmount(mp),  # type: ignore[misc]
                    repair=repair,
                )


def _abort_if_dead(vault: Vault, mountpoint: str, source: str) -> None:
    """Abort the FUSE connection at ``mountpoint`` when a registry record of ``vault``
    names it and that record's daemon is gone (ops/detaching.py ``abort_dead``: a daemon
    killed while a thread of its own waited in its mount leaves a connection that answers
    nothing, and a ``statvfs`` of it would wait for ever)."""
    from ..detaching import abort_dead

    for rec in registry.records(vault.state_dir):
        if rec.pid > 0 and not pid_alive(rec.pid) and mountpoint in _record_paths(rec.path):
            abort_dead(mountpoint, source)
            return


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
            out.add(registry.resolved_mountpoint(x))  # (no stat of a mount point: a request to it)
    return out


def _detach(mountpoint: str) -> None:
    """Lazily detach an overlay mount (still listed: it may have been detached meanwhile)."""
    if any(km.mountpoint == mountpoint for km in kernel_mounts()):
        subprocess.run(["umount", "-l", mountpoint], capture_output=True, check=False)
