"""Cloning a vault from a git server: the new vault's ``origin``, the fetch that fills it,
and which fork becomes its default (:meth:`.home.Home.clone_vault` makes the vault around
them: :mod:`.importer`'s ``init_vault``, the rename into place)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..errors import UsageError
from ..store import names, refs
from ..store.gitstore import GitStore

if TYPE_CHECKING:
    from ..store.transport import ProgressFn


def _filtered(git_dir: str, commit: str | None) -> bool:
    """Whether a lazy clone's server honoured the filter: some blob of the tree of
    ``commit`` (a branch's) is missing (a server that ignores ``--filter`` sends every
    blob: git only warns). True when there is no branch or it holds no blob at all
    (nothing to tell apart)."""
    if commit is None:
        return True
    store = GitStore(git_dir)
    try:  # the first blob found, looking at trees only (depth first, a directory at a time)
        stack = [store.commit_tree(commit)]
        while stack:
            items = store.tree_items(stack.pop())
            for oid, mode in items.values():
                if mode & 0o170000 == 0o100000:
                    return not store.is_local(oid)
            stack += [oid for oid, mode in items.values() if mode == 0o040000]
        return True
    finally:
        store.close()


def origin_config(url: str, *, lazy: bool) -> str:
    """The new vault's ``origin`` section for a clone of ``url`` (its userinfo left out),
    the promisor remote of a lazy vault (git's lazy fetches name it: see :mod:`.promisor`),
    as `git remote add` and `git clone --filter` write it."""
    from ..store import configtext, promisor
    from ..store.redact import split_credentials

    clean, _creds = split_credentials(url)
    # what `git remote add origin` records
    fetch = f"+{refs.HEADS}*:{refs.remote_prefix('origin')}*"
    return configtext.origin_section(clean, fetch, promisor_filter=promisor.FILTER if lazy else None)


def clone_into(
    git_dir: str,
    url: str,
    progress: ProgressFn | None = None,
    *,
    token: str | None = None,
    lazy: bool = False,
    warnings: list[str] | None = None,
    on_empty: Callable[[], object] | None = None,
) -> tuple[str | None, bool]:
    """Fill the new vault ``git_dir`` (made by :func:`init_vault` with
    :func:`origin_config`) from the remote at ``url``: its branches become forks, its tags
    and named checkpoints (``refs/avfs/checkpoints/``) come along, and ``origin`` is set
    (without credentials). Returns the default fork when it is not ``main`` (else None),
    and whether the vault is lazy (asked for, and the server filtered). The server is
    reached as for every remote (:func:`.transport.transport`: ssh settings, credential
    helpers, ``token``: the settings' ``AVFS_GIT_TOKEN``); ``progress`` gets git's progress.

    ``lazy``: a partial clone (``--filter=blob:none``, ``origin`` the promisor remote: see
    :mod:`.promisor`), commits and trees only. A server that does not filter
    (``uploadpack.allowFilter`` unset) sends everything: the vault is then a whole one,
    and a sentence saying so is appended to ``warnings``.

    A repository with no branch yet (a project just made on a hosting service): with
    ``on_empty``, which makes fork ``main``'s first commit (an empty one, as `avfs vault
    create`'s: :func:`initial_commit`), a vault whose push of ``main`` makes the remote's
    first commit, and ``warnings`` says so; without, a UsageError."""
    from ..store import promisor
    from ..store.redact import redact, split_credentials
    from ..store.transport import transport

    # a URL's userinfo never goes on git's command line (world-readable in /proc/*/cmdline):
    # git gets the URL without it and the pair through the environment
    clean, creds = split_credentials(url)
    extra = (f"--filter={promisor.FILTER}",) if lazy else ()
    from .importer import SIDE, take_clone

    side = os.path.join(git_dir, SIDE)
    # `git clone`, not a fetch: a clone writes every ref into packed-refs, one file, where a
    # fetch writes each as a loose file with its reflog (a remote of 20,000 branches and
    # 20,000 tags: 120,000 files, 34 s here against git clone's 2 s; every later fetch and
    # push of the vault then read them all: 7-9 s against 1.1-1.4 s). Made beside the
    # vault, its objects and refs then moved in (the vault's own files, config and overlay
    # template are made meanwhile, as for any new vault). --no-local: a local path is read
    # through upload-pack as a fetch read it (no hard links into another repository; a lazy
    # clone's filter applies, which a local clone ignores).
    transport(
        git_dir, "clone", "--bare", "--no-local", "--template=", "--origin", "origin",
        "--progress" if progress else "-q", *extra, clean, side,
        # what else comes along: origin's tracking refs (a later lease checks them) and
        # the named checkpoints (branches and tags come with every clone)
        config=(f"remote.origin.fetch=+{refs.HEADS}*:{refs.remote_prefix('origin')}*",
                f"remote.origin.fetch=+{refs.CHECKPOINTS}*:{refs.CHECKPOINTS}*"),
        progress=progress, credentials=creds, token=token,
    )  # fmt: skip
    remote_head = take_clone(side, git_dir)
    # the branches as the clone wrote them, in `git for-each-ref`'s order (by name), read
    # from git's files: neither libgit2 (its import: init_vault) nor a git process
    listed = refs.list_refs_file(git_dir, refs.HEADS)
    heads = [name[len(refs.HEADS) :] for name in listed]
    held = lazy and _filtered(git_dir, refs.read_ref_file(git_dir, listed[0]) if listed else None)
    if lazy and not held:
        promisor.unconfigure(git_dir, "origin")
        if warnings is not None:
            warnings.append(
                f"{redact(url)} does not filter objects (its git server has no"
                " uploadpack.allowFilter): the vault was cloned whole, not lazily"
            )
    if not heads:
        if on_empty is None:
            raise UsageError(f"{redact(url)} has no branches to clone")
        on_empty()
        if warnings is not None:
            warnings.append(
                f"{redact(url)} is an empty repository: fork main starts from an empty commit"
                " (`avfs push` makes it the remote's first)"
            )
        return None, held
    if "main" in heads:
        return None, held
    # the remote's HEAD branch (as the clone set its HEAD), or its first branch, becomes
    # the default fork
    head = remote_head[len(refs.HEADS) :] if remote_head and remote_head.startswith(refs.HEADS) else None
    default = head if head in heads else sorted(heads)[0]
    names.check_fork_name(default)
    return default, held


def fill_vault(
    tmp: str,
    final: str,
    url: str,
    name: str,
    *,
    progress: ProgressFn | None,
    lazy: bool,
    warnings: list[str] | None,
    token: str | None,
    home_path: str,
    template_ahead: bool,
    first_commit: Callable[[], object],
) -> bool:
    """Make the new vault ``name`` at ``tmp`` (:meth:`.home.Home._new_vault_dir`) from a
    clone of ``url`` and move it into place at ``final``: :meth:`.home.Home.clone_vault`'s
    work up to the vault's first open. Returns whether the vault is lazy. Nothing is kept
    on failure (``tmp`` removed). ``token``: the settings' ``AVFS_GIT_TOKEN``;
    ``template_ahead``: make the overlay's template while the clone waits (layers off);
    ``first_commit``: fork main's first commit in an empty repository's vault."""
    from ..errors import AvfsError, RemoteError, is_no_space, no_space
    from ..store.redact import redact
    from . import importer

    try:
        os.makedirs(tmp)
        # ``origin`` and the worktree config a mount needs, in the new config's one write
        importer.init_vault(tmp, config=origin_config(url, lazy=lazy), worktree_config=True)

        # what the first mount would make, made while the fetch waits on the server
        ahead = importer.overlay_template_ahead(os.path.join(tmp, "avfs")) if template_ahead else None
        try:
            default, lazily = clone_into(
                tmp,
                url,
                progress,
                token=token,
                lazy=lazy,
                warnings=warnings,
                on_empty=first_commit,
            )
        except AvfsError as exc:
            if isinstance(exc, UsageError):
                raise
            if is_no_space(exc):  # git could not write here (the home's disk), not the remote's fault
                raise no_space(home_path) from None
            raise RemoteError(f"cannot clone {redact(url)}: {redact(exc.message)}") from None
        finally:
            if ahead is not None:
                ahead.join()
        if default is not None:
            importer.set_default_fork(tmp, default)
        importer.move_into_place(tmp, final, name)
    except BaseException:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return lazily


def not_text(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
