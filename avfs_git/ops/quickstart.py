"""The quickstart: a project directory in, an agent's mounted fork out, and the work back.

``up(home, DIR)`` imports DIR into a vault (or finds the vault already made from it), makes
a fork for one agent and mounts it. ``down`` checkpoints and unmounts that fork, then keeps
its work (merge into the vault's default fork, normally ``main``) or discards it (an
undoable fork delete). ``export`` writes a fork into a plain directory; ``apply`` brings a
fork's changes back into the project directory, refusing where that directory changed
underneath.

The vault remembers where it came from (:mod:`.origin`): its config holds ``origin = {"dir":
...}`` and the ref ``ORIGIN_REF`` points at the commit DIR's files last matched (the import, a refresh
by ``up``, or an ``apply``). That commit is the base against which both "did DIR change?"
(``up``) and "did DIR change where the fork did?" (``apply``) are answered; it is a ref so
that gc keeps it and ``git`` can show it.

Writing into a directory of the host (``export``, ``apply``) is :mod:`.hostwrite`'s.
Mounting goes through :mod:`avfs_git.ops.mounts`, imported lazily (like
:mod:`.maintenance` does): that module spawns the mount daemon and holds no FUSE binding.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import shutil
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Literal

from ..core.errors import (
    BusyError,
    ConflictError,
    InternalError,
    PathNotFoundError,
    UsageError,
)
from ..core.operations import checkpoint
from ..core.operations.merge import MergeResult, merge
from ..core.records import dataclass
from ..core.store import names
from ..core.types import CommitId, NodeKind, to_json
from ..core.workspace.overlayentry import ignored_count
from .hostwrite import (
    ApplyChange,
    ApplyConflict,
    change_status,
    compare_with_directory,
    copy_changes,
    fork_changes,
    is_empty_dir,
    refuse_planted,
    refuse_planted_over,
    refuse_unsafe_paths,
    write_node,
)
from .origin import (
    adopt,
    base_name,
    check_origin,
    check_source_dir,
    commit_tree,
    find_vault_for,
    imported_from,
    imported_vault,
    make_origin,
    nested_warning,
    origin_commit,
    origin_dir,
    set_origin,
    taken_note,
    up_lock,
    vault_name_for,
)

if TYPE_CHECKING:
    from ..core.vaults.home import Home
    from ..core.vaults.vault import Vault
    from .mounts import MountInfo

AGENT_PREFIX = "agent-"

Action = Literal["keep", "discard", "leave"]
Progress = Callable[[int, int | None, str], None]


# -- results ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UpResult:
    """What ``up`` did. ``origin_changed``: DIR differs from what the vault last saw of it;
    ``refreshed``: those changes were checkpointed into the default fork (``refresh_commit``)."""

    vault: str
    fork: str
    origin: str
    mountpoint: str | None
    hint: str | None
    vault_created: bool
    fork_created: bool
    mount_reused: bool
    origin_changed: bool
    refreshed: bool
    refresh_commit: CommitId | None
    warnings: tuple[str, ...]
    lazy: bool = False  # a lazy vault (up --from-url --lazy): files come from the server as read

    def to_json(self) -> dict[str, Any]:
        return dict(to_json(self))


@dataclass(frozen=True, slots=True)
class DownResult:
    """What ``down`` did. ``action``: keep (merged into ``target``, then the fork deleted
    unless the merge conflicted), discard (the fork deleted, ``op_id`` undoes it), leave
    (the fork kept as it is). ``checkpoint``: the commit made of uncheckpointed changes."""

    vault: str
    fork: str
    target: str
    mountpoint: str | None
    unmounted: bool
    checkpoint: CommitId | None
    head: CommitId
    action: str
    merge: MergeResult | None
    conflicted: bool
    fork_deleted: bool
    op_id: int | None

    def to_json(self) -> dict[str, Any]:
        return dict(to_json(self))


@dataclass(frozen=True, slots=True)
class ExportResult:
    vault: str
    fork: str
    dir: str
    commit: CommitId  # the fork's base commit (the export also holds its uncheckpointed changes)
    dirty: bool
    files: int
    symlinks: int
    dirs: int
    ignored: int = 0  # paths git ignores, left out (as a checkpoint leaves them out)

    def to_json(self) -> dict[str, Any]:
        return dict(to_json(self))


@dataclass(frozen=True, slots=True)
class ApplyResult:
    vault: str
    fork: str
    dir: str
    mode: str  # copy | patch
    base: CommitId
    commit: CommitId
    patch: str | None
    changes: tuple[ApplyChange, ...]
    conflicts: tuple[ApplyConflict, ...]  # overridden with ``force`` (refused otherwise)
    forced: bool

    def to_json(self) -> dict[str, Any]:
        return dict(to_json(self))


# -- up --------------------------------------------------------------------------------------


def _next_agent(vault: Vault) -> str:
    taken = set(vault.fork_names())
    n = 1
    while f"{AGENT_PREFIX}{n}" in taken:
        n += 1
    return f"{AGENT_PREFIX}{n}"


def up(
    home: Home,
    directory: str,
    *,
    agent: str | None = None,
    vault_name: str | None = None,
    mountpoint: str | None = None,
    mount: bool = True,
    refresh: bool = True,
    progress: Progress | None = None,
) -> UpResult:
    """Import ``directory`` (or reuse the vault made from it), fork it for an agent, mount it.

    Args:
        home: the avfs home.
        directory: the project directory.
        agent: the fork's name (reused when it exists); default the next free ``agent-<n>``.
        vault_name: the vault's name (default: the one made from ``directory`` before, else
            the directory's name, made unique).
        mountpoint: where to mount (default under the home, like ``avfs mount``).
        mount: False to only import and fork (where FUSE is not available).
        refresh: when ``directory`` changed since the vault last saw it, checkpoint those
            changes into the default fork (only when that fork has no changes of its own).
        progress: ``progress(done, total, path)`` during an import.

    Raises:
        PathNotFoundError, UsageError, PermissionDeniedError: ``directory`` is unusable.
        UsageError: ``vault_name`` names a vault made from another directory (or not by up).
    """
    src = check_source_dir(directory)
    if agent is not None:
        names.check_fork_name(agent)
    from ..core.vaults.importer import check_not_holding_home

    check_not_holding_home(home.path, src)  # (before the lock below: a refusal leaves nothing)
    warnings: list[str] = []
    # one `up` of a home at a time finds or makes its vault: two agents started at once
    # made it twice (one failed "vault 'proj' already exists"), or one met it before its
    # origin was recorded ("no origin commit: not compared")
    with up_lock(home, f"the vault of {src}"):
        # (a vault `vault create --from DIR` made is DIR's too: `up` made `proj-2` beside it)
        name = vault_name or find_vault_for(home, src) or imported_vault(home, src)
        created = False
        changed = refreshed = False
        refresh_commit: str | None = None
        if name is not None and home.exists(name):
            vault = home.vault(name)
            known = origin_dir(vault)
            if known is None and imported_from(vault) == src:
                warnings.append(adopt(vault, src))
                known = src
            if known != src:
                raise UsageError(
                    f"vault {name} was not made from {src}"
                    + (f" (its origin is {known})" if known else " by `avfs up`"),
                    hint="omit --vault to use or make the vault of this directory, or pick another name",
                    details={"vault": name, "origin": known, "dir": src},
                )
            changed, refreshed, refresh_commit = check_origin(vault, src, refresh, warnings)
        else:
            name = name or vault_name_for(home, src)
            if vault_name is None and name != base_name(src):
                warnings.append(taken_note(base_name(src), name, "directory"))
            vault = home.create_vault(name, from_dir=src, progress=progress)
            vault.set_config(origin={"dir": src})
            set_origin(vault, make_origin(vault), None, f"up: import {src}")
            created = True
            nested = nested_warning(vault, src)
            if nested is not None:
                warnings.append(nested)
    fork, fork_created, mp, reused = fork_and_mount(home, vault, agent, mountpoint, mount)
    return UpResult(
        vault=vault.name,
        fork=fork,
        origin=src,
        mountpoint=mp,
        hint=next_hint(vault.name, fork, mp),
        vault_created=created,
        fork_created=fork_created,
        mount_reused=reused,
        origin_changed=changed,
        refreshed=refreshed,
        refresh_commit=CommitId(refresh_commit) if refresh_commit else None,
        warnings=tuple(warnings),
    )


def next_hint(vault: str, fork: str, mountpoint: str | None) -> str:
    """What a person does after ``up``: start an agent in the mount, or (``--no-mount``)
    mount the fork first."""
    if mountpoint is not None:
        return f"cd {shlex.quote(mountpoint)} && claude"
    return f"avfs mount {shlex.quote(vault + ':' + fork)}"


def fork_and_mount(
    home: Home, vault: Vault, agent: str | None, mountpoint: str | None, mount: bool
) -> tuple[str, bool, str | None, bool]:
    """The agent's fork of the default fork (made unless it exists), mounted: (fork,
    whether it was made, mount point, whether that mount was there already)."""
    fork = agent or _next_agent(vault)
    fork_created = not vault.has_fork(fork)
    if fork_created:
        vault.create_fork(vault.default_fork, fork)
    if not mount:
        return fork, fork_created, None, False
    from . import mounts

    if mountpoint is not None:
        mountpoint = os.path.abspath(mountpoint)
        try:
            os.makedirs(mountpoint, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"cannot create mount point {mountpoint}: {exc.strerror or exc}") from exc
    info = mounts.mount(home, vault, fork, mountpoint)
    return fork, fork_created, info.mountpoint, info.reused


# -- down ------------------------------------------------------------------------------------


def find_mount(home: Home, path: str) -> MountInfo:
    """The live mount whose mount point is ``path``."""
    from . import mounts

    want = os.path.realpath(path)
    for m in mounts.list_mounts(home):
        if os.path.realpath(m.mountpoint) == want and m.revision is None:
            return m
    raise UsageError(
        f"{path} is not an avfs mount point",
        hint="`avfs mount --list` shows the mounts; or name the fork with --fork",
        details={"path": want},
    )


def down(home: Home, vault: Vault, fork: str, *, action: Action = "leave") -> DownResult:
    """Unmount ``fork``, checkpoint it, then keep, discard or leave it.

    A busy mount (a process has its working directory or a file open there) stops
    everything before anything changes: ``BusyError`` naming the processes.

    Args:
        action: ``keep`` merges the fork into the vault's default fork, then deletes the fork
            (undoable) unless the merge conflicted (the conflicts come back as data and the
            fork stays); ``discard`` deletes the fork (undoable with ``avfs undo``);
            ``leave`` keeps the fork as it is.
    """
    from . import mounts

    if action not in ("keep", "discard", "leave"):
        raise UsageError(f"action must be keep, discard or leave, not {action!r}")
    vault.require_fork(fork)
    from ..core.workspace.mergestate import refuse_if_merging

    # before the unmount: down checkpoints the fork, which an open merge refuses
    refuse_if_merging(vault.workspace(fork), "avfs down (it checkpoints the fork)")
    target = vault.default_fork
    if action == "discard" and fork == target:
        raise UsageError(
            f"fork {fork} is the vault's default fork: it cannot be discarded",
            hint="down --keep or leave it as it is",
        )
    info = mounts.check(vault, fork)  # a fork's mount key is the fork
    mountpoint = info.mountpoint if info is not None else None
    unmounted = False
    if info is not None:
        try:
            unmounted = mounts.unmount(home, vault, fork) is not None
        except BusyError as err:
            holders = mounts.mount_holders(info.mountpoint)
            who = ", ".join(f"{h['command']} (pid {h['pid']}: {', '.join(h['holds'])})" for h in holders)
            raise BusyError(
                f"{info.mountpoint} is busy" + (f": {who}" if who else "") + "; nothing was changed",
                hint="leave the directory and close its files (exit the agent), then run down again",
                details={
                    "mountpoint": info.mountpoint,
                    "vault": vault.name,
                    "fork": fork,
                    "holders": holders,
                },
            ) from err
    made: str | None = None
    if vault.workspace(fork).is_dirty():
        made = checkpoint.save(vault, fork, message=f"avfs down: {fork}").checkpoint.commit
    head = vault.workspace(fork).base
    result: MergeResult | None = None
    deleted = False
    op_id: int | None = None
    conflicted = False
    if action == "keep" and fork != target:
        result = merge(vault, fork, target, message=f"avfs down: keep {fork}")
        conflicted = bool(result.conflicts)
        if not conflicted:
            op_id = vault.delete_fork(fork).id
            deleted = True
    elif action == "discard":
        op_id = vault.delete_fork(fork).id
        deleted = True
    return DownResult(
        vault=vault.name,
        fork=fork,
        target=target,
        mountpoint=mountpoint,
        unmounted=unmounted,
        checkpoint=CommitId(made) if made else None,
        head=CommitId(head),
        action=action,
        merge=result,
        conflicted=conflicted,
        fork_deleted=deleted,
        op_id=op_id,
    )


# -- export ----------------------------------------------------------------------------------


def export(vault: Vault, fork: str | None, dest: str, *, force: bool = False) -> ExportResult:
    """Write the fork's current state (base + uncheckpointed changes) into ``dest``.

    Modes (the executable bit) and symlinks are kept. ``dest`` must be missing or empty
    unless ``force``: then what the fork holds replaces what ``dest`` holds at the same
    paths, and everything else in ``dest`` stays. Paths git ignores (a venv, caches) are
    left out, as a checkpoint leaves them out: the export is what a checkpoint would hold.
    A file served from git is written as `git checkout` (and the mount) writes it: its
    ``.gitattributes`` conversions (``eol=crlf``, ``ident``, ``working-tree-encoding``).
    """
    fork = fork or vault.default_fork
    ws = vault.workspace(fork)
    dest = os.path.abspath(dest)
    if os.path.lexists(dest):
        if not os.path.isdir(dest):
            raise UsageError(f"{dest} exists and is not a directory")
        if not force and not is_empty_dir(dest):
            raise UsageError(f"{dest} is not empty", hint="export into a new or empty directory, or --force")
    files = links = dirs = 0
    dirty = ws.is_dirty()
    ignored = ws.ignored()
    made = not os.path.lexists(dest)
    from ..core.workspace.wssmudge import CheckoutForms

    view, tree = ws.view, ws.base_tree
    nodes: Iterable[Any] = view.nodes_below(view.dir_node(""), prune=lambda d: ignored.covers(d.path))
    nodes = (n for n in nodes if not ignored.covers(n.path))  # (not into a node_modules: realproj9)
    pinned: dict[str, bytes] | None = None  # the overlay files' bytes looked at
    if force and not made and not is_empty_dir(dest):  # (what the fork holds was checked at its writes)
        # walked once: what is written is what was looked at (a running command's writes
        # between a look and a second walk went out unlooked at: plant5)
        nodes = list(nodes)
        pinned = refuse_planted_over(view, dest, fork, nodes)
    forms = CheckoutForms(ws.store, ws.fork)
    try:
        os.makedirs(dest, exist_ok=True)
        # one walk for both cases (Workspace.materialize_to assumes an empty directory:
        # it would write through a symlink already there)
        for n in nodes:
            kind = write_node(ws, view, forms, tree, n, os.path.join(dest, n.path), pinned)
            files += kind is NodeKind.FILE
            links += kind is NodeKind.SYMLINK
            dirs += kind is NodeKind.DIR
    except BaseException as exc:
        forms.close()
        if not force:  # it was missing or empty, and is again: not half written (an unreadable object)
            for name in [] if made else os.listdir(dest):
                full = os.path.join(dest, name)
                shutil.rmtree(full) if os.path.isdir(full) and not os.path.islink(full) else os.unlink(full)
            if made:
                shutil.rmtree(dest, ignore_errors=True)
        if isinstance(exc, OSError):
            raise UsageError(
                f"cannot export into {dest}: {exc.strerror or exc}", details={"dir": dest}
            ) from exc
        raise
    forms.close()
    return ExportResult(
        vault=vault.name,
        fork=fork,
        dir=dest,
        commit=CommitId(ws.base),
        dirty=dirty,
        files=files,
        symlinks=links,
        dirs=dirs,
        ignored=ignored_count(ignored),
    )


# -- apply -----------------------------------------------------------------------------------


def apply(
    vault: Vault,
    fork: str | None,
    *,
    to: str | None = None,
    patch: str | None = None,
    force: bool = False,
) -> ApplyResult:
    """Bring the fork's changes into the origin directory (or ``to``).

    The fork is checkpointed first. Its changes are counted from ``base``: the merge base
    of the fork and the commit the origin directory last matched (:data:`ORIGIN_REF`).
    Every path the fork changed must still hold ``base``'s version in the target directory
    (or already the fork's); a path changed there too is a conflict and nothing is written
    (``ConflictError``, the paths in ``details["conflicts"]``), unless ``force``. Changes the
    directory made to other paths are left alone.

    Copy mode (default) writes changed and added files and symlinks (modes kept) and deletes
    removed ones; when the target is the origin directory, :data:`ORIGIN_REF` then moves to
    the applied commit. ``patch``: write a git-format patch (binary files included; ``git
    apply`` it in the directory) to that file instead, and change no directory.
    """
    fork = fork or vault.default_fork
    vault.require_fork(fork)
    origin, known, target = _apply_target(vault, to, patch)
    if vault.workspace(fork).is_dirty():
        checkpoint.save(vault, fork, message=f"avfs apply: {fork}")
    store = vault.store
    commit = vault.workspace(fork).base
    base = store.merge_base(commit, origin) or origin
    changes = fork_changes(store, commit_tree(vault, base), commit_tree(vault, commit))
    refuse_unsafe_paths(vault, fork, base, changes)
    refuse_planted(store, target, fork, changes)
    todo, done, conflicts = compare_with_directory(target, changes)
    if conflicts and not force:
        _refuse_conflicts(target, fork, base, conflicts)
    if patch is not None:
        _write_patch(store.tree_patch(commit_tree(vault, base), commit_tree(vault, commit)), patch)
        done += [ApplyChange(p, change_status(o, n), False) for p, o, n in todo]
    else:
        try:
            done += copy_changes(store, target, todo)
        except OSError as exc:
            raise InternalError(
                f"applying to {target} failed part-way: {exc}",
                hint="rerun apply: paths already written count as applied",
                details={"dir": target},
            ) from exc
        if target == known:
            set_origin(vault, commit, origin, f"apply {fork} to {target}")
    done.sort(key=lambda c: c.path)
    return ApplyResult(
        vault=vault.name,
        fork=fork,
        dir=target,
        mode="patch" if patch is not None else "copy",
        base=CommitId(base),
        commit=CommitId(commit),
        patch=os.path.abspath(patch) if patch is not None else None,
        changes=tuple(done),
        conflicts=tuple(conflicts),
        forced=force and bool(conflicts),
    )


def _apply_target(vault: Vault, to: str | None, patch: str | None) -> tuple[CommitId, str | None, str]:
    """(the origin commit, the origin directory, the directory apply writes to): refuses a
    vault ``up`` did not make, and a target that is not a directory (unless a patch is
    written instead)."""
    origin = origin_commit(vault)
    known = origin_dir(vault)
    if origin is None:
        raise UsageError(
            f"vault {vault.name} does not know the directory it came from",
            hint="only vaults made by `avfs up DIR` can be applied; `avfs export` writes any fork",
        )
    target = os.path.realpath(os.path.abspath(to)) if to else known
    if target is None:
        raise UsageError(f"vault {vault.name} has no origin directory", hint="name one with --to DIR")
    if patch is None and not os.path.isdir(target):
        raise PathNotFoundError(f"{target}: not a directory", details={"path": target})
    return origin, known, target


def _refuse_conflicts(target: str, fork: str, base: str, conflicts: list[ApplyConflict]) -> None:
    """Stop apply before anything is written: ``target`` changed where the fork did."""
    listing = "; ".join(f"{c.path} ({c.reason})" for c in conflicts[:10])
    more = f" and {len(conflicts) - 10} more" if len(conflicts) > 10 else ""
    raise ConflictError(
        f"{target} changed where fork {fork} did: {listing}{more}; nothing was applied",
        hint="bring those changes into the fork first, or --force to overwrite them",
        details={
            "dir": target,
            "fork": fork,
            "base": base,
            "conflicts": [dataclasses.asdict(c) for c in conflicts],
        },
    )


def _write_patch(text: str, patch: str) -> None:
    try:
        with open(patch, "w", encoding="utf-8", errors="surrogateescape") as fh:
            fh.write(text)
    except OSError as exc:
        raise UsageError(f"cannot write {patch}: {exc.strerror or exc}") from exc


__all__ = [
    "ApplyResult",
    "DownResult",
    "ExportResult",
    "UpResult",
    "apply",
    "down",
    "export",
    "find_mount",
    "up",
]
