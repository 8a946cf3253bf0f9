"""A vault's forks as `vault info` (and MCP's) lists them (:meth:`.vault.Vault.forks`).

A fork's state (its head, whether it is dirty) is its workspace's. A fork nobody worked on
through this home has no workspace yet (no state dir): its branch is its state, clean, and
the listing opens none for it. It opened and kept one for every fork, making each one's
state dir and overlay database: a vault cloned from a remote with 20,000 branches (each a
fork, as `git clone --bare` keeps them) took 240 s over `vault info` and then failed,
exit 70, "Too many open files" (docs/security.md, "A hostile remote"). A workspace the
listing had to open is closed after it, unless it was open before.
"""

from __future__ import annotations

import os
from typing import Protocol

from ..errors import (
    AvfsError,
    CorruptStateError,
    ForkNotFoundError,
    InvalidNameError,
    NotFoundError,
    ObjectUnreadableError,
    RevisionNotFoundError,
)
from ..store import names, packedrefs, refs
from ..types import CommitId, ForkInfo


class _Store(Protocol):
    def is_local(self, oid: str) -> bool: ...


class Vault(Protocol):
    """What of a :class:`.vault.Vault` the listing reads (it imports no vault: the vault
    calls it)."""

    @property
    def name(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def default_fork(self) -> str: ...
    @property
    def store(self) -> _Store: ...
    def fork_names(self) -> list[str]: ...
    def ws_link(self, fork: str) -> str: ...
    def fork_info(self, fork: str) -> ForkInfo: ...
    def open_forks(self) -> list[str]: ...
    def close_workspace(self, fork: str) -> None: ...


def forks(vault: Vault) -> list[ForkInfo]:
    """Every branch of ``vault``. One whose name git takes and a fork's may not have
    (``-dash``, ``fix#1``, ``é``: made by git in the vault, or pushed) is listed as its
    ref says, with no workspace (none can be addressed): it failed the whole listing
    (``vault info``: ``invalid_name``)."""
    out = []
    opened = set(vault.open_forks())
    # the packed branches read once (a clone packs every one: refs.py's read of one ref
    # searches the file, 20,000 of them 2 s), and whether a commit is here asked once
    packed = packedrefs.under(vault.path, refs.HEADS)
    local: dict[str, bool] = {}
    for f in vault.fork_names():
        try:
            names.check_fork_name(f)
        except InvalidNameError:
            head = refs.read_ref_file(vault.path, refs.HEADS + f, packed)
            if head is not None:
                oid = CommitId(head)
                out.append(ForkInfo(vault.name, f, oid, oid, dirty=False, is_default=False))
            continue
        try:
            if f not in opened and not os.path.lexists(vault.ws_link(f)):
                info = _at_branch(vault, f, packed)  # (no workspace: the branch is all there is)
            else:
                info = vault.fork_info(f)
            if info is None:
                continue  # (deleted since it was listed)
            if (here := local.get(info.head)) is None:
                here = local[info.head] = vault.store.is_local(info.head)
            if not here:  # (a workspace open on its old base reads none)
                raise RevisionNotFoundError(f"commit {info.head} not found in the vault")
            out.append(info)
        except ForkNotFoundError:
            continue  # (deleted since it was listed)
        except (CorruptStateError, NotFoundError) as exc:
            # one fork that cannot be read failed the whole listing: now it is listed
            # with its error, the others around it (git: "ignoring broken ref")
            out.append(unreadable_fork(vault, f, exc))
        finally:
            if f not in opened:
                vault.close_workspace(f)
    return out


def _at_branch(vault: Vault, fork: str, packed: dict[str, str]) -> ForkInfo | None:
    head = refs.read_ref_file(vault.path, refs.fork_ref(fork), packed)
    if head is None:
        return None
    oid = CommitId(head)
    return ForkInfo(vault.name, fork, oid, oid, dirty=False, is_default=fork == vault.default_fork)


def unreadable_fork(vault: Vault, fork: str, exc: AvfsError) -> ForkInfo:
    """A listing's entry for ``fork``, which :meth:`.Vault.fork_info` could not read: its head as
    its branch file says (None when that holds no commit id) and the error, one whose
    commit is missing named as such (it was "commit ... not found in the vault")."""
    ref = refs.fork_ref(fork)
    try:
        head = refs.read_ref_file(vault.path, ref)
    except CorruptStateError:
        head = None
    if isinstance(exc, NotFoundError) and head is not None:
        exc = ObjectUnreadableError(
            f"fork {fork!r} cannot be read: its branch {ref} names commit {head}, which the vault"
            f" cannot read ({exc.message})",
            hint="`avfs doctor --full` names every unreadable object: restore it from a clone or remote,"
            f" or move the branch back (`git --git-dir {vault.path} reflog {ref}`)",
            details={"fork": fork, "oid": head},
        )
    oid = CommitId(head or "")
    return ForkInfo(
        vault.name,
        fork,
        None if head is None else oid,  # type: ignore[arg-type]
        None if head is None else oid,  # type: ignore[arg-type]
        dirty=False,
        is_default=fork == vault.default_fork,
        error=exc.to_dict(),
    )
