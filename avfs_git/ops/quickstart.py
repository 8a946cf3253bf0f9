"""The quickstart: a project directory in, an agent's mounted fork out, and the work back.

``up(home, DIR)`` imports DIR into a vault (or finds the vault already made from it), makes
a fork for one agent and mounts it. ``down`` checkpoints and unmounts that fork, then keeps
its work (merge into the vault's default fork, normally ``main``) or discards it (an
undoable fork delete). ``export`` writes a fork into a plain directory; ``apply`` brings a
fork's changes back into the project directory, refusing where that directory changed
underneath.

The vault remembers where it came from: its config holds ``origin = {"dir": ...}`` and the
ref :data:`ORIGIN_REF` points at the commit DIR's files last matched (the import, a refresh
by ``up``, or an ``apply``). That commit is the base against which both "did DIR change?"
(``up``) and "did DIR change where the fork did?" (``apply``) are answered; it is a ref so
that gc keeps it and ``git`` can show it.

Mounting goes through :mod:`avfs_git.ops.mounts`, imported lazily (like
:mod:`.maintenance` does): that module spawns the mount daemon and holds no FUSE binding.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import shlex
import stat
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Literal

from ..core.errors import (
    AvfsError,
    BusyError,
    ConflictError,
    InternalError,
    InvalidPathError,
    PathNotFoundError,
    PermissionDeniedError,
    UsageError,
)
from ..core.operations import checkpoint
from ..core.operations.merge import MergeResult, merge
from ..core.store import names, refs
from ..core.store.gitstore import GitStore, blob_id, file_blob_id
from ..core.types import MODE_BLOB, MODE_COMMIT, MODE_EXEC, MODE_LINK, MODE_TREE, CommitId, NodeKind, to_json
from ..core.workspace.wsstatus import ignored_count

if TYPE_CHECKING:
    from ..core.vaults.home import Home
    from ..core.vaults.vault import Vault
    from .mounts import MountInfo

# the commit the origin directory's files last matched (avfs' own namespace: clones don't
# carry it, gc keeps what it points at)
ORIGIN_REF = refs.ORIGIN
AGENT_PREFIX = "agent-"

Action = Literal["keep", "discard", "leave"]
Entry = tuple[str, int]  # (blob id, git mode) of one file or symlink
Progress = Callable[[int, int | None, str], None]


# -- results ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
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

    def to_json(self) -> dict[str, Any]:
        return dict(to_json(self))


@dataclasses.dataclass(frozen=True, slots=True)
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


@dataclasses.dataclass(frozen=True, slots=True)
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


@dataclasses.dataclass(frozen=True, slots=True)
class ApplyChange:
    """One path the fork changed since ``base``. ``applied``: False when the directory
    already held the fork's version (or, in patch mode, nothing is written)."""

    path: str
    status: str  # added | modified | deleted | type_changed
    applied: bool


@dataclasses.dataclass(frozen=True, slots=True)
class ApplyConflict:
    path: str
    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
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


# -- the origin directory --------------------------------------------------------------------


def check_source_dir(directory: str) -> str:
    """``directory`` as an absolute real path, or a clear error when it cannot be imported."""
    path = os.path.realpath(os.path.abspath(directory))
    if not os.path.lexists(directory):
        raise PathNotFoundError(f"{directory}: no such directory", details={"path": path})
    if not os.path.isdir(path):
        raise UsageError(f"{directory} is not a directory", hint="give the project's directory")
    try:
        os.listdir(path)
        if not os.access(path, os.R_OK | os.X_OK):
            raise PermissionError(errno.EACCES, "not readable")
    except PermissionError as exc:
        raise PermissionDeniedError(
            f"cannot read {directory}: permission denied",
            hint="run as a user that may read it, or fix its permissions",
            details={"path": path},
        ) from exc
    except OSError as exc:
        raise UsageError(f"cannot read {directory}: {exc.strerror or exc}", details={"path": path}) from exc
    return path


def origin_dir(vault: Vault) -> str | None:
    """The directory the vault was made from by ``up`` (None for other vaults)."""
    origin = vault.config.get("origin")
    if isinstance(origin, dict) and origin.get("dir"):
        return str(origin["dir"])
    return None


def origin_commit(vault: Vault) -> CommitId | None:
    value = refs.read_ref_file(vault.path, ORIGIN_REF)
    return CommitId(value) if value else None


def find_vault_for(home: Home, directory: str) -> str | None:
    """The name of the vault ``up`` made from ``directory`` (a real path), if any."""
    from ..core.vaults.registry import origin_vault

    return origin_vault(home.path, directory)


def _vault_name_for(home: Home, directory: str) -> str:
    base = "".join(c if c.isalnum() or c in "._+-" else "-" for c in os.path.basename(directory))
    base = base.lstrip(".-+").removesuffix(".git")[:80] or "project"
    name, n = base, 1
    while home.exists(name):
        n += 1
        name = f"{base}-{n}"
    return names.check_vault_name(name)


def _list_dir(src: str, git_dir: str) -> list[str]:
    """The files an import of ``src`` takes (.gitignore honoured, as the import does)."""
    from ..core.vaults.importer import git_toplevel
    from ..core.workspace import ignore

    top = git_toplevel(src)
    if top is not None and os.path.realpath(top) == src:
        # a checkout: its tracked files (even ignored ones) and untracked, not ignored ones
        return ignore.list_checkout_files(src)
    return ignore.list_files(src, git_dir)


def _host_entry(full: str) -> Entry | Literal["dir", "blocked"] | None:
    """What the host holds at ``full``: a (blob id, mode), None (nothing), "dir", or
    "blocked" (a parent is not a directory)."""
    try:
        st = os.lstat(full)
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        return "blocked"
    if stat.S_ISLNK(st.st_mode):
        return blob_id(os.fsencode(os.readlink(full))), MODE_LINK
    if stat.S_ISDIR(st.st_mode):
        return "dir"
    if stat.S_ISREG(st.st_mode):
        return file_blob_id(full), MODE_EXEC if st.st_mode & 0o111 else MODE_BLOB
    return "blocked"


def scan_dir(src: str, git_dir: str) -> dict[str, Entry]:
    """Path -> (blob id, mode) of every file an import of ``src`` would take (O(tree))."""
    out: dict[str, Entry] = {}
    for rel in _list_dir(src, git_dir):
        try:
            names.norm_path(rel)
            e = _host_entry(os.path.join(src, rel))
        except (AvfsError, OSError):
            continue  # what the import skips (bad names, unreadable files)
        if isinstance(e, tuple):
            out[rel] = e
    return out


def _commit_tree(vault: Vault, commit: str) -> str:
    return vault.store.commit_tree(commit)


def _set_origin(vault: Vault, new: str, old: str | None, reason: str) -> None:
    refs.cas_update(vault.store, ORIGIN_REF, new, old, f"avfs: {reason}")


def _current_tree(vault: Vault, fork: str) -> tuple[str, bool]:
    """(tree of the fork's current state, dirty)."""
    ws = vault.workspace(fork)
    if ws.is_dirty():
        return ws.capture()[0], True
    return ws.base_tree, False


def _make_origin(vault: Vault) -> str:
    """The commit of what was just imported: the default fork's tip, or (a checkout with
    uncommitted changes) a commit of its tip plus those changes, on no branch."""
    fork = vault.default_fork
    ws = vault.workspace(fork)
    base = ws.base
    if not ws.is_dirty():
        return base
    tree, _ = ws.capture()
    msg = "avfs up: the origin directory's uncommitted changes\n"
    return vault.store.create_commit(tree, [base], msg, vault.author())


def _refresh(vault: Vault, src: str, dir_map: dict[str, Entry]) -> str:
    """Make the default fork show ``src`` (O(changes) writes) and checkpoint it."""
    fork = vault.default_fork
    ws = vault.workspace(fork)
    cur_tree, _ = _current_tree(vault, fork)
    cur = vault.store.files_of(cur_tree)
    for path in sorted((p for p in cur if p not in dir_map), reverse=True):
        if ws.exists(path):
            ws.remove(path)
    for path, (oid, mode) in sorted(dir_map.items()):
        if cur.get(path) == (oid, mode):
            continue
        full = os.path.join(src, path)
        if ws.exists(path) and ws.stat(path).kind is NodeKind.DIR:
            ws.remove(path, recursive=True)
        if mode == MODE_LINK:
            if ws.exists(path):
                ws.remove(path)
            ws.symlink(os.readlink(full), path)
        else:
            ws.write_from_file(path, full, mode=mode)
    res = checkpoint.save(vault, fork, message=f"avfs up: refresh from {src}")
    return res.checkpoint.commit


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
    warnings: list[str] = []
    name = vault_name or find_vault_for(home, src)
    created = False
    changed = refreshed = False
    refresh_commit: str | None = None
    if name is not None and home.exists(name):
        vault = home.vault(name)
        known = origin_dir(vault)
        if known != src:
            raise UsageError(
                f"vault {name} was not made from {src}"
                + (f" (its origin is {known})" if known else " by `avfs up`"),
                hint="omit --vault to use or make the vault of this directory, or pick another name",
                details={"vault": name, "origin": known, "dir": src},
            )
        changed, refreshed, refresh_commit = _check_origin(vault, src, refresh, warnings)
    else:
        name = name or _vault_name_for(home, src)
        vault = home.create_vault(name, from_dir=src, progress=progress)
        vault.set_config(origin={"dir": src})
        _set_origin(vault, _make_origin(vault), None, f"up: import {src}")
        created = True
        nested = nested_warning(vault, src)
        if nested is not None:
            warnings.append(nested)
    fork = agent or _next_agent(vault)
    fork_created = not vault.has_fork(fork)
    if fork_created:
        vault.create_fork(vault.default_fork, fork)
    mp: str | None = None
    reused = False
    if mount:
        from . import mounts

        if mountpoint is not None:
            mountpoint = os.path.abspath(mountpoint)
            try:
                os.makedirs(mountpoint, exist_ok=True)
            except OSError as exc:
                raise UsageError(f"cannot create mount point {mountpoint}: {exc.strerror or exc}") from exc
        info = mounts.mount(home, vault, fork, mountpoint)
        mp, reused = info.mountpoint, info.reused
    return UpResult(
        vault=vault.name,
        fork=fork,
        origin=src,
        mountpoint=mp,
        hint=f"cd {shlex.quote(mp)} && claude" if mp else None,
        vault_created=created,
        fork_created=fork_created,
        mount_reused=reused,
        origin_changed=changed,
        refreshed=refreshed,
        refresh_commit=CommitId(refresh_commit) if refresh_commit else None,
        warnings=tuple(warnings),
    )


def nested_warning(vault: Vault, src: str, instead: str = "avfs up") -> str | None:
    """What to tell a person about the nested repositories an import of ``src`` left out
    (git keeps them out of a tree: they are repositories of their own), and when that left
    the vault empty, what to run instead (``instead`` then the repository's path); None when
    there are none."""
    from ..core.vaults.importer import nested_repositories

    nested = nested_repositories(src, vault.path)
    if not nested:
        return None
    shown = ", ".join(nested[:5]) + (f" and {len(nested) - 5} more" if len(nested) > 5 else "")
    if not vault.store.tree_items(vault.workspace(vault.default_fork).base_tree):
        return (
            f"vault {vault.name} is empty: {src} holds only git repositories of their own ({shown}),"
            f" which are not imported; import the repository itself: {instead} {os.path.join(src, nested[0])}"
        )
    return f"files not imported: git repositories of their own inside {src} ({shown})"


def _check_origin(
    vault: Vault, src: str, refresh: bool, warnings: list[str]
) -> tuple[bool, bool, str | None]:
    """(changed, refreshed, refresh commit): compare ``src`` with the origin commit."""
    origin = origin_commit(vault)
    if origin is None:
        warnings.append(f"vault {vault.name} has no origin commit ({ORIGIN_REF}): {src} not compared")
        return False, False, None
    dir_map = scan_dir(src, vault.path)
    origin_tree = _commit_tree(vault, origin)
    if vault.store.files_of(origin_tree) == dir_map:
        return False, False, None
    fork = vault.default_fork
    cur_tree, dirty = _current_tree(vault, fork)
    tip = vault.workspace(fork).base
    in_sync = cur_tree == origin_tree or (
        not dirty and (tip == origin or vault.store.descendant_of(origin, tip))
    )
    if not in_sync:
        warnings.append(
            f"{src} changed since the vault last saw it, but fork {fork} has changes of its own:"
            f" not refreshed (`avfs apply {vault.name}:{fork}` brings them to {src} first)"
        )
        return True, False, None
    if not refresh:
        warnings.append(f"{src} changed since the vault last saw it: not refreshed (asked not to)")
        return True, False, None
    commit = _refresh(vault, src, dir_map)
    _set_origin(vault, commit, origin, f"up: refresh from {src}")
    return True, True, commit


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


def _is_empty_dir(path: str) -> bool:
    with os.scandir(path) as it:
        return next(it, None) is None


def _replace_with_file(full: str, data: bytes, mode: int, keep_perms: bool = False) -> None:
    """Put ``data`` at ``full`` (a file, or a symlink when ``mode`` is MODE_LINK) by rename."""
    parent = os.path.dirname(full)
    tmp = os.path.join(parent, f".avfs-tmp-{os.getpid()}-{time.monotonic_ns()}")  # short: NAME_MAX
    if os.path.isdir(full) and not os.path.islink(full):
        import shutil

        shutil.rmtree(full)
    if mode == MODE_LINK:
        os.symlink(os.fsdecode(data), tmp)
        os.replace(tmp, full)
        return
    umask = os.umask(0)
    os.umask(umask)
    perms = 0o666 & ~umask
    if keep_perms:
        try:
            st = os.lstat(full)
            if stat.S_ISREG(st.st_mode):
                perms = st.st_mode & 0o666
        except FileNotFoundError:
            pass
    if mode == MODE_EXEC:
        perms |= (perms & 0o444) >> 2  # x wherever r
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, perms)
        os.replace(tmp, full)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def export(vault: Vault, fork: str | None, dest: str, *, force: bool = False) -> ExportResult:
    """Write the fork's current state (base + uncheckpointed changes) into ``dest``.

    Modes (the executable bit) and symlinks are kept. ``dest`` must be missing or empty
    unless ``force``: then what the fork holds replaces what ``dest`` holds at the same
    paths, and everything else in ``dest`` stays. Paths git ignores (a venv, caches) are
    left out, as a checkpoint leaves them out: the export is what a checkpoint would hold.
    """
    fork = fork or vault.default_fork
    ws = vault.workspace(fork)
    dest = os.path.abspath(dest)
    if os.path.lexists(dest):
        if not os.path.isdir(dest):
            raise UsageError(f"{dest} exists and is not a directory")
        if not force and not _is_empty_dir(dest):
            raise UsageError(f"{dest} is not empty", hint="export into a new or empty directory, or --force")
    files = links = dirs = 0
    dirty = ws.is_dirty()
    ignored = ws.ignored()
    try:
        os.makedirs(dest, exist_ok=True)
        # one walk for both cases (Workspace.materialize_to assumes an empty directory:
        # it would write through a symlink already there)
        for de in ws.walk(""):
            if ignored.covers(de.path):
                continue
            full = os.path.join(dest, de.path)
            if de.kind is NodeKind.DIR:
                if os.path.lexists(full) and (os.path.islink(full) or not os.path.isdir(full)):
                    os.unlink(full)
                os.makedirs(full, exist_ok=True)
                dirs += 1
            elif de.kind is NodeKind.SYMLINK:
                _replace_with_file(full, os.fsencode(ws.read_link(de.path)), MODE_LINK)
                links += 1
            elif de.kind is NodeKind.FILE:
                _replace_with_file(full, ws.read(de.path), ws.stat(de.path).mode)
                files += 1
    except OSError as exc:
        raise UsageError(f"cannot export into {dest}: {exc.strerror or exc}", details={"dir": dest}) from exc
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


def _fork_changes(
    store: GitStore, old_tree: str, new_tree: str
) -> dict[str, tuple[Entry | None, Entry | None]]:
    """Path -> (old, new) of every file or symlink that differs (no rename pairing)."""
    out: dict[str, tuple[Entry | None, Entry | None]] = {}
    for a, b in store.tree_deltas(old_tree, new_tree):
        old: Entry | None = None
        new: Entry | None = None
        if a.mode not in (0, MODE_COMMIT, MODE_TREE) and a.oid is not None:
            old = (a.oid, a.mode)
        if b.mode not in (0, MODE_COMMIT, MODE_TREE) and b.oid is not None:
            new = (b.oid, b.mode)
        for path, o, n in ((a.path, old, None), (b.path, None, new)):
            if o is None and n is None:
                continue
            prev = out.get(path, (None, None))
            out[path] = (o or prev[0], n or prev[1])
    return out


def _status(old: Entry | None, new: Entry | None) -> str:
    if old is None:
        return "added"
    if new is None:
        return "deleted"
    if (old[1] == MODE_LINK) != (new[1] == MODE_LINK):
        return "type_changed"
    return "modified"


def _refuse_unsafe_paths(vault: Vault, fork: str, base: str, paths: Iterable[str]) -> None:
    """Refuse (before anything is written) a change whose path could leave the target or
    reach into its ``.git``: '..', '.git' in any case, control characters, an absolute or
    not normalised path. A fork's tree can hold such entries when they were made with git
    plumbing (a push into the vault, a clone or pull of an untrusted remote)."""
    bad: list[dict[str, str]] = []
    for path in sorted(paths):
        try:
            why = None if names.norm_path(path) == path else "not a normalised path"
        except AvfsError as exc:
            why = exc.message
        if why is not None:
            bad.append({"path": path, "reason": why})
    if bad:
        listing = "; ".join(repr(b["path"]) for b in bad[:10])
        more = f" and {len(bad) - 10} more" if len(bad) > 10 else ""
        raise InvalidPathError(
            f"fork {fork} of vault {vault.name} changes paths that cannot be written into a"
            f" directory: {listing}{more}; nothing was applied",
            hint="such entries ('..', '.git', control characters) come from git plumbing (a push,"
            " a clone of an untrusted remote): rewrite the fork's commits without them",
            details={"fork": fork, "base": base, "paths": bad},
        )


def _parent_problem(target: str, path: str, deleted: set[str]) -> tuple[str | None, bool]:
    """Check the directories above ``path`` in ``target`` without following a symlink.

    Returns (why writing ``path`` would go through something that is not a plain directory
    of the target, or None; whether ``path`` is absent because a parent is missing or is a
    file or symlink the fork deletes anyway). A symlink is never followed: like git ("beyond
    a symbolic link"), a parent that is a symlink (``cache -> /elsewhere``) is a conflict.
    """
    full = target
    rel = ""
    for comp in path.split("/")[:-1]:
        rel = f"{rel}/{comp}" if rel else comp
        full = os.path.join(full, comp)
        try:
            st = os.lstat(full)
        except (FileNotFoundError, NotADirectoryError):
            return None, True
        if stat.S_ISDIR(st.st_mode):
            continue
        if rel in deleted:
            return None, True  # the fork removes it (its own check covers a change there)
        if stat.S_ISLNK(st.st_mode):
            return f"beyond the symbolic link {rel} in the target", False
        return f"{rel} is not a directory in the target", False
    return None, False


def _conflict_reason(
    target: str, path: str, cur: Entry | str | None, old: Entry | None, deleted: set[str]
) -> str | None:
    """Why writing the fork's version of ``path`` would lose a change made in ``target``."""
    if cur == old:
        return None
    if cur == "blocked":
        return "a parent is not a directory in the target"
    if cur == "dir":
        # a directory the fork replaced by a file: fine when it holds only files being deleted
        full = os.path.join(target, path)
        for root, dirnames, files in os.walk(full):
            for fn in files + [d for d in dirnames if os.path.islink(os.path.join(root, d))]:
                rel = os.path.relpath(os.path.join(root, fn), target).replace(os.sep, "/")
                if rel not in deleted:
                    return "is a directory in the target holding other files"
        return None
    if cur is None:
        return "deleted in the target"
    if old is None:
        return "added in the target"
    return "changed in the target"


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
    if vault.workspace(fork).is_dirty():
        checkpoint.save(vault, fork, message=f"avfs apply: {fork}")
    store = vault.store
    commit = vault.workspace(fork).base
    base = store.merge_base(commit, origin) or origin
    changes = _fork_changes(store, _commit_tree(vault, base), _commit_tree(vault, commit))
    _refuse_unsafe_paths(vault, fork, base, changes)
    deleted = {p for p, (_o, n) in changes.items() if n is None}
    conflicts: list[ApplyConflict] = []
    todo: list[tuple[str, Entry | None, Entry | None]] = []
    done: list[ApplyChange] = []
    has_dir = os.path.isdir(target)
    for path in sorted(changes):
        old, new = changes[path]
        why, absent = _parent_problem(target, path, deleted) if has_dir else (None, False)
        if why is not None:
            conflicts.append(ApplyConflict(path, why))
            todo.append((path, old, new))
            continue
        cur = None if absent else _host_entry(os.path.join(target, path)) if has_dir else old
        if cur == new:
            done.append(ApplyChange(path, _status(old, new), False))
            continue
        why = _conflict_reason(target, path, cur, old, deleted)
        if why is not None:
            conflicts.append(ApplyConflict(path, why))
        todo.append((path, old, new))
    if conflicts and not force:
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
    if patch is not None:
        text = store.tree_patch(_commit_tree(vault, base), _commit_tree(vault, commit))
        try:
            with open(patch, "w", encoding="utf-8", errors="surrogateescape") as fh:
                fh.write(text)
        except OSError as exc:
            raise UsageError(f"cannot write {patch}: {exc.strerror or exc}") from exc
        done += [ApplyChange(p, _status(o, n), False) for p, o, n in todo]
    else:
        try:
            done += _copy_changes(store, target, todo)
        except OSError as exc:
            raise InternalError(
                f"applying to {target} failed part-way: {exc}",
                hint="rerun apply: paths already written count as applied",
                details={"dir": target},
            ) from exc
        if target == known:
            _set_origin(vault, commit, origin, f"apply {fork} to {target}")
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


def _is_plain_dir(target: str, rel: str) -> bool:
    """True when ``rel`` and every directory above it in ``target`` is a plain directory
    (lstat: no symlink is followed); False when one is missing, a file or a symlink."""
    full = target
    for comp in rel.split("/") if rel else ():
        full = os.path.join(full, comp)
        try:
            if not stat.S_ISDIR(os.lstat(full).st_mode):
                return False
        except (FileNotFoundError, NotADirectoryError):
            return False
    return True


def _make_parents(target: str, path: str) -> None:
    """Make the directories above ``path`` in ``target``, never through a symlink: a file
    or symlink in the way (checked as a conflict before, or overridden by ``force``) is
    replaced by a directory."""
    full = target
    for comp in path.split("/")[:-1]:
        full = os.path.join(full, comp)
        try:
            st = os.lstat(full)
        except FileNotFoundError:
            os.mkdir(full)
            continue
        if stat.S_ISDIR(st.st_mode):
            continue
        os.unlink(full)  # the symlink itself, never what it points at
        os.mkdir(full)


def _copy_changes(
    store: GitStore, target: str, todo: list[tuple[str, Entry | None, Entry | None]]
) -> list[ApplyChange]:
    """Write ``todo`` into ``target``. Paths were checked by :func:`_refuse_unsafe_paths`;
    no symlink in the target is followed (a deletion beneath one deletes nothing, a write
    beneath one replaces it by a directory: only reached with ``force``)."""
    import shutil

    out: list[ApplyChange] = []
    # deletions first (deepest first), then empty parent directories, then writes
    for path, old, new in sorted(todo, key=lambda t: t[0], reverse=True):
        if new is not None:
            continue
        full = os.path.join(target, path)
        if _is_plain_dir(target, os.path.dirname(path)):
            if os.path.isdir(full) and not os.path.islink(full):
                shutil.rmtree(full)
            elif os.path.lexists(full):
                os.unlink(full)
        out.append(ApplyChange(path, _status(old, new), True))
        parent = os.path.dirname(path)
        while parent and _is_plain_dir(target, parent) and _is_empty_dir(os.path.join(target, parent)):
            os.rmdir(os.path.join(target, parent))
            parent = os.path.dirname(parent)
    for path, old, new in sorted(todo, key=lambda t: t[0]):
        if new is None:
            continue
        _make_parents(target, path)
        _replace_with_file(os.path.join(target, path), store.blob_data(new[0]), new[1], keep_perms=True)
        out.append(ApplyChange(path, _status(old, new), True))
    return out


__all__ = [
    "ORIGIN_REF",
    "ApplyChange",
    "ApplyConflict",
    "ApplyResult",
    "DownResult",
    "ExportResult",
    "UpResult",
    "apply",
    "check_source_dir",
    "down",
    "export",
    "find_mount",
    "find_vault_for",
    "origin_commit",
    "origin_dir",
    "up",
]
