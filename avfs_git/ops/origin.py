"""The directory a vault was made from by ``avfs up`` (its origin), as the vault knows it:
where it is (the vault's config, ``origin = {"dir": ...}``), the commit its files last
matched (the ref :data:`ORIGIN_REF`: the import, a refresh by ``up``, or an ``apply``), a
scan of its files as an import would take them, and the refresh of the default fork when
the directory changed since.
"""

from __future__ import annotations

import errno
import os
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from ..core.errors import AvfsError, PathNotFoundError, PermissionDeniedError, UsageError
from ..core.operations import checkpoint
from ..core.store import names, refs
from ..core.types import MODE_LINK, CommitId, NodeKind
from .hostwrite import Entry, host_entry

if TYPE_CHECKING:
    from ..core.vaults.home import Home
    from ..core.vaults.vault import Vault


# the commit the origin directory's files last matched (avfs' own namespace: clones don't
# carry it, gc keeps what it points at)
ORIGIN_REF = refs.ORIGIN


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
    from ..core.vaults.importer import bare_repository

    if bare_repository(path):
        # `vault create --from` takes its history; `up` would record its git directory's
        # files as the origin and `apply` write the project over them
        raise UsageError(
            f"{directory} is a bare git repository: it has no files to work on or bring work back into",
            hint=f"`avfs vault create NAME --from {directory}` takes its history (then `avfs vault fork` "
            "and `avfs mount`); or `up` a checkout of it (`git clone`)",
            details={"path": path},
        )
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


def imported_from(vault: Vault) -> str | None:
    """The directory ``vault create --from`` imported the vault from (None for other vaults)."""
    imported = vault.config.get("imported")
    if isinstance(imported, dict) and isinstance(imported.get("dir"), str):
        return str(imported["dir"])
    return None


def imported_vault(home: Home, directory: str) -> str | None:
    """The vault ``vault create --from`` made of ``directory`` (a real path) that ``up`` has
    not made its own yet: ``up`` adopts it (:func:`adopt`) rather than make ``proj-2``."""
    for info in home.list_vaults():
        vault = home.vault(info.name)
        if origin_dir(vault) is None and imported_from(vault) == directory:
            return info.name
    return None


def adopt(vault: Vault, directory: str) -> str:
    """Make ``directory``, which the vault was imported from, its origin as ``up`` records
    one: the config's ``origin.dir``, and :data:`ORIGIN_REF` at the imported commit (the
    directory's files then; a checkout's uncommitted changes were not in it: ``up`` then
    reports the directory changed rather than refresh over them). Returns what to tell."""
    imported = vault.config.get("imported")
    commit = imported.get("commit") if isinstance(imported, dict) else None
    vault.set_config(origin={"dir": directory})
    if isinstance(commit, str) and origin_commit(vault) is None and vault.store.has_object(commit):
        set_origin(vault, commit, None, f"up: adopt the import of {directory}")
    return (
        f"vault {vault.name} was imported from this directory (`vault create --from`): "
        f"`up` uses it from now on, and `avfs apply` brings work back here"
    )


UP_WAIT_S = 600.0  # another `up`'s import of a large directory: waited for, not refused


def up_lock(home: Home, what: str) -> AbstractContextManager[None]:
    """The lock (``<home>/run/up.lock``) under which ``up`` finds, adopts or makes the
    vault of a directory or URL and records its origin, so that a concurrent ``up`` sees
    the vault whole or not at all."""
    from ..core.store.locks import file_lock

    run = os.path.join(home.path, "run")
    os.makedirs(run, exist_ok=True)
    return file_lock(os.path.join(run, "up.lock"), what=what, wait_s=UP_WAIT_S)


def base_name(directory: str) -> str:
    """The vault name a directory (or a URL's last part) is given when it is free."""
    base = "".join(c if c.isalnum() or c in "._+-" else "-" for c in os.path.basename(directory))
    return base.lstrip(".-+").removesuffix(".git")[:80] or "project"


def taken_note(base: str, name: str, what: str) -> str:
    """Why `up` made vault ``name`` where ``base`` was asked for: a newcomer's `vault
    create proj --from ./proj` then `up ./proj` got proj-2, unexplained."""
    return f"vault {base} is taken (not made from this {what} by `avfs up`): this {what}'s vault is {name}"


def vault_name_for(home: Home, directory: str) -> str:
    base = base_name(directory)
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


def scan_dir(src: str, git_dir: str) -> dict[str, Entry]:
    """Path -> (blob id, mode) of every file an import of ``src`` would take (O(tree))."""
    out: dict[str, Entry] = {}
    for rel in _list_dir(src, git_dir):
        try:
            names.norm_path(rel)
            e = host_entry(os.path.join(src, rel))
        except (AvfsError, OSError):
            continue  # what the import skips (bad names, unreadable files)
        if isinstance(e, tuple):
            out[rel] = e
    return out


def commit_tree(vault: Vault, commit: str) -> str:
    return vault.store.commit_tree(commit)


def set_origin(vault: Vault, new: str, old: str | None, reason: str) -> None:
    refs.cas_update(vault.store, ORIGIN_REF, new, old, f"avfs: {reason}")


def _current_tree(vault: Vault, fork: str) -> tuple[str, bool]:
    """(tree of the fork's current state, dirty)."""
    ws = vault.workspace(fork)
    if ws.is_dirty():
        return ws.capture()[0], True
    return ws.base_tree, False


def make_origin(vault: Vault) -> str:
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
            elif "/" in path:  # (its directory may be new too: an npm install's node_modules/.bin,
                # which `avfs up DIR` refused with "node_modules/.bin: no such directory", h-polish3)
                ws.mkdir(path.rpartition("/")[0], parents=True, exist_ok=True)
            ws.symlink(os.readlink(full), path)
        else:
            ws.write_from_file(path, full, mode=mode)
    res = checkpoint.save(vault, fork, message=f"avfs up: refresh from {src}")
    return res.checkpoint.commit


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


def check_origin(vault: Vault, src: str, refresh: bool, warnings: list[str]) -> tuple[bool, bool, str | None]:
    """(changed, refreshed, refresh commit): compare ``src`` with the origin commit."""
    origin = origin_commit(vault)
    if origin is None:
        warnings.append(f"vault {vault.name} has no origin commit ({ORIGIN_REF}): {src} not compared")
        return False, False, None
    dir_map = scan_dir(src, vault.path)
    origin_tree = commit_tree(vault, origin)
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
    set_origin(vault, commit, origin, f"up: refresh from {src}")
    return True, True, commit
