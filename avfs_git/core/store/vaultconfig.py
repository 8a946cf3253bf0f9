"""The vault's git config through libgit2, for what avfs reads and sets there besides a
single value (:meth:`.gitstore.GitStore.config_value`): the remotes it names, a multivar's
values (:func:`config_values`: through ``git config`` where pygit2 is not loaded), and git's
``extensions.worktreeConfig`` (a mounted fork's worktree has a config of its own).

What libgit2 raises becomes an :class:`~.errors.AvfsError` here.
"""

from __future__ import annotations

import sys
from typing import NamedTuple

from ..errors import CorruptStateError
from . import configtext
from .gitlib import git_error, git_errors
from .gitrun import WORKTREE_CONFIG_FILE, config_stamps, keep_config, kept_config, run
from .gitstore import GitStore


class Remote(NamedTuple):
    """A remote the vault's config names: its name and URL (as stored; empty when none)."""

    name: str
    url: str


def remotes(store: GitStore) -> list[Remote]:
    """The vault's remotes, in the order libgit2 lists them."""
    try:
        return [Remote(str(r.name), r.url or "") for r in store._repo.remotes]
    except git_errors() as exc:
        raise git_error(exc, f"cannot read the remotes of {store.path}") from exc


def config_values(store: GitStore, key: str) -> list[str]:
    """Every value of ``key`` (a multivar: a remote's URLs) in the vault's config and the
    global ones, in git's order; empty when unset. Through libgit2 where this process has
    it loaded already (the warm CLI server), else one ``git config``: a push or fetch run
    cold pays no pygit2 import (~85 ms) for one value."""
    if "pygit2" in sys.modules:
        try:
            return [str(v) for v in store._repo.config.get_multivar(key)]
        except git_errors() as exc:
            raise git_error(exc, f"cannot read {key} in {store.path}") from exc
    proc = run(["config", "--get-all", key], git_dir=store.path, check=False, text=True)
    if proc.returncode not in (0, 1):  # 1: unset
        raise CorruptStateError(f"cannot read {key} in {store.path}: {proc.stderr.strip()}")
    return proc.stdout.splitlines() if proc.returncode == 0 else []


def config_bool(store: GitStore, key: str, default: bool) -> bool:
    """Boolean ``key`` of the vault's config and the global ones as git reads it (its
    last value, :func:`.configtext.git_bool`; ``default`` where it is unset or git refuses
    it), through libgit2 or git as :func:`config_values`. A key written without ``=`` is
    true: :func:`config_values` gives it as ``""`` through git and ``"None"`` through
    libgit2, both false to a reader of its strings (found in the thirty-fourth round,
    realdata9: ``[log] showroot`` alone, a line of libgit2's own config files' kind)."""
    if "pygit2" in sys.modules:
        try:
            values = list(store._repo.config.get_multivar(key))
        except git_errors() as exc:
            raise git_error(exc, f"cannot read {key} in {store.path}") from exc
        got = configtext.git_bool(None if values[-1] is None else str(values[-1])) if values else None
    else:
        proc = run(["config", "--type=bool", "--get", key], git_dir=store.path, check=False, text=True)
        got = proc.stdout.strip() == "true" if proc.returncode == 0 else None  # (1: unset; 128: refused)
    return default if got is None else got


def add_remote(store: GitStore, name: str, url: str) -> None:
    """Add remote ``name`` at ``url`` with git's default fetch refspec, as ``git remote
    add`` writes it, in process (a new vault's ``origin``: no git process for one entry)."""
    try:
        store._repo.remotes.create(name, url)
    except git_errors() as exc:
        raise git_error(exc, f"cannot add remote {name} to {store.path}") from exc


def worktree_config_enabled(store: GitStore) -> bool:
    """Whether the vault's config turns on ``extensions.worktreeConfig`` (with the
    repository format version above 0 that git requires of an extension). Through
    libgit2 where this process has it loaded, else ``git config`` (:func:`config_values`:
    a lazy fork's mount daemon loads libgit2 only after it answers, fuse/settle.py)."""
    if "pygit2" not in sys.modules:  # both keys in one git process (a mount's start waits)
        key = config_stamps(store.path)  # (git's answer kept for the next daemon: h-gitspawn1)
        last = kept_config(store.path, WORKTREE_CONFIG_FILE, key) if key is not None else None
        if last is None:
            last = _worktree_keys(store)
            if key is not None:
                keep_config(store.path, WORKTREE_CONFIG_FILE, key, last)
        version = last.get("core.repositoryformatversion", "0")
        if version is None or version.strip() == "0":
            return False
        return "extensions.worktreeconfig" in last and configtext.is_true(last["extensions.worktreeconfig"])
    try:
        cfg = store._repo.config
        try:
            return str(cfg["core.repositoryformatversion"]) != "0" and cfg.get_bool(
                "extensions.worktreeConfig"
            )
        except KeyError:
            return False
    except git_errors() as exc:
        raise git_error(exc, f"cannot read the config of {store.path}") from exc


def _worktree_keys(store: GitStore) -> dict[str, str | None]:
    """``core.repositoryformatversion`` and ``extensions.worktreeconfig`` as ``git config``
    lists them (the last value of each)."""
    proc = run(
        ["config", "-z", "--get-regexp", r"^(core\.repositoryformatversion|extensions\.worktreeconfig)$"],
        git_dir=store.path,
        check=False,
        text=True,
    )
    if proc.returncode not in (0, 1):  # 1: neither is set
        raise CorruptStateError(f"cannot read the config of {store.path}: {proc.stderr.strip()}")
    return dict(configtext.parse_listing(proc.stdout))  # git's order: the last value wins


def enable_worktree_config(store: GitStore) -> None:
    """Turn on ``extensions.worktreeConfig`` in the vault's config (and the repository
    format version 1 it needs, when it is 0). The caller serializes writers. By ``git
    config`` where libgit2 is not loaded (:func:`worktree_config_enabled`)."""
    if "pygit2" not in sys.modules:
        if config_values(store, "core.repositoryformatversion")[-1:] in ([], ["0"]):
            run(["config", "core.repositoryformatversion", "1"], git_dir=store.path)
        run(["config", "extensions.worktreeConfig", "true"], git_dir=store.path)
        return
    try:
        cfg = store._repo.config
        if str(cfg["core.repositoryformatversion"]) == "0":
            cfg["core.repositoryformatversion"] = "1"
        cfg["extensions.worktreeConfig"] = "true"
    except git_errors(OSError) as exc:
        raise git_error(exc, f"cannot turn on extensions.worktreeConfig in {store.path}") from exc
