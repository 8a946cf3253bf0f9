"""`avfs vault ...` and `avfs quota ...`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from ..core.errors import UsageError
from ..core.store import names
from ..core.vaults.usage import QuotaUsage
from .app import App, pass_app
from .forkcmds import fork
from .output import human_size
from .vaultcmds import create, info, list_vaults

if TYPE_CHECKING:
    from ..core.vaults.home import Home
    from ..core.vaults.vault import Vault


@click.group()
def vault() -> None:
    """Create, list, fork, delete vaults."""


@vault.command("create")
@click.argument("name")
@click.option(
    "--from",
    "from_dir",
    metavar="DIRECTORY",  # (any path: core says what to do with an archive, h-polish5's trial)
    help="Import this directory (a git checkout or a bare repository brings its history).",
)
@click.option("--no-ignore", is_flag=True, help="Import files .gitignore would leave out too.")
@click.option("--use/--no-use", "make_default", default=False, help="Make it the default vault.")
@pass_app
def create_cmd(app: App, name: str, from_dir: str | None, no_ignore: bool, make_default: bool) -> None:
    """Create vault NAME (empty with fork `main`, or imported --from DIR)."""
    create(app, name, from_dir, no_ignore, make_default)


@vault.command("clone")
@click.argument("url")
@click.argument("name")
@click.option("--use/--no-use", "make_default", default=False, help="Make it the default vault.")
@click.option(
    "--lazy",
    is_flag=True,
    help="A partial clone: commits and trees now, each file's contents from the server when"
    " first read (docs/lazy.md). A server that cannot filter gives a whole clone and a warning.",
)
@pass_app
def clone(app: App, url: str, name: str, make_default: bool, lazy: bool) -> None:
    """Create vault NAME from the git repository at URL: its branches become forks, its
    tags and named checkpoints come along, and `origin` is set (without credentials). An
    empty repository gives fork `main` from an empty commit, which a push makes its first.
    A shallow repository gives a shallow vault, as `git clone` does (history ends where its does)."""
    warnings: list[str] = []
    index = _index_at_clone(app) if lazy else ""  # (a bad setting refused before anything is made)
    with app.output.git_progress() as progress:
        v = app.home.clone_vault(url, name, progress=progress, lazy=lazy, warnings=warnings)
    for w in warnings:
        app.output.warn("{}", w)
    if make_default:
        app.home.use(name)
    info = app.home.info(name)
    data: dict[str, object] = {"vault": info, "dirty": False}
    if lazy or warnings:  # (a clone of an empty repository warns too)
        data["warnings"] = warnings
    if lazy:
        data["lazy"] = v.lazy
        held = _hold(v, str(info.head)) if v.lazy and info.head and index == "after" else None
        if held is not None:
            # (the lock taken now, the maker started once the caller has the answer: a served
            # call's child after it, a process of the caller's own as it exits)
            app.after.append(lambda: _index_after(app, v, str(info.head), held))
        elif v.lazy and info.head and not (index and _index_now(v, str(info.head))):
            # (not made now: turned off, the server did not say sizes, another process makes it)
            app.after.append(lambda: _read_tree(v, str(info.head)))
            app.ahead.append(lambda: _keep_index(app, v, str(info.head)))
    app.output.result(
        "vault_create",
        data,
        lambda: app.output.say(
            "cloned vault [bold]{}[/] at {} (forks: {})", name, v.path, ", ".join(info.forks)
        ),
    )


def _index_at_clone(app: App) -> str:
    """The home's ``index_at_clone`` (docs/lazy.md "Settings"): "before", "after" or ""."""
    from ..core.vaults.lazyconfig import index_at_clone

    return index_at_clone(app.home.path)


def _index_now(v: Vault[Home], commit: str) -> bool:
    """The index a mount of ``commit`` patches, made and kept before the clone answers
    (mount/keptmake.py ``at_clone``; docs/lazy.md "The index kept per base"): the first
    mount's first `git status` then finds it, also in a mount made the moment the clone
    answered. Whether it is kept (a failure leaves the clone as it was)."""
    from ..mount.keptmake import at_clone

    return at_clone(v, commit)


def _hold(v: Vault[Home], commit: str) -> int | None:
    """The lock of the index kept for ``commit``, taken before the clone answers
    (mount/keptmake.py ``hold``): a mount made the moment the clone answered finds it held."""
    from ..mount.keptmake import hold

    return hold(v, commit)


def _index_after(app: App, v: Vault[Home], commit: str, fd: int) -> None:
    """Start the process that makes the index a mount of ``commit`` patches, at once, with
    the lock ``fd`` (mount/keptmake.py ``start_now``): a mount made the moment the clone
    answered patches what it kept, or takes over from it (mount/keptindex.py ``take_over``)."""
    import os

    from ..mount.keptmake import start_now

    start_now(app.home.path, v, commit, dict(os.environ), fd)


def _read_tree(v: Vault[Home], commit: str) -> None:
    """Start git's ``read-tree`` of ``commit``'s tree, detached, in the idle class, as the
    clone answers (mount/keptmake.py ``start_read_tree``): the first mount takes what it
    wrote instead of starting its own (docs/lazy.md "Mounting a lazy fork")."""
    from ..mount.keptmake import start_read_tree

    start_read_tree(v, commit)


def _keep_index(app: App, v: Vault[Home], commit: str) -> None:
    """Start the process that makes the index a later mount of ``commit`` patches
    (mount/keptmake.py, docs/lazy.md "The index kept per base"), detached: work ahead
    (:attr:`.App.ahead`), so only a clone the resident server ran starts it, once its
    caller has the answer; a process of the caller's own would start it on the caller's
    wait for its exit (~0.01 s)."""
    import os

    from ..mount.keptmake import spawn

    spawn(app.home.path, v, commit, dict(os.environ))


@vault.command("hydrate")
@click.argument("paths", nargs=-1, metavar="[PATH]...")
@pass_app
def hydrate_cmd(app: App, paths: tuple[str, ...]) -> None:
    """Fetch a lazy fork's files ahead of time, so later reads need no server: the files
    under PATHs (files or directories; none: the whole tree), in batches, through the
    promisor remote's credentials and timeout (docs/lazy.md). Progress goes to stderr."""
    import sys

    from ..core.operations.hydrate import hydrate

    vault, fork = app.target()
    out = app.output
    with out.progress(f"hydrating {vault.name}:{fork}") as bar:
        tty = sys.stderr.isatty()

        def progress(done: int, total: int, size: int) -> None:
            bar(done, total, "")
            if not tty:
                out.plain("hydrate: {}/{} blobs, {}", done, total, human_size(size), err=True)

        res = hydrate(vault, fork, list(paths), progress=progress)

    def human() -> None:
        if not res.lazy:
            out.say("vault {} is not lazy: every file is local", res.vault)
            return
        out.say(
            "fetched {} blobs ({}, {} on disk) in {} batches; {} of {} blobs were local already",
            res.fetched_blobs,
            human_size(res.fetched_bytes),
            human_size(res.disk_bytes),
            res.batches,
            res.already_local,
            res.blobs,
        )

    out.result("hydrate", res.to_json(), human)


@vault.command("list")
@pass_app
def list_cmd(app: App) -> None:
    """List the vaults of the home."""
    list_vaults(app)


@vault.command("info")
@click.argument("spec", required=False, metavar="[VAULT]")
@pass_app
def info_cmd(app: App, spec: str | None) -> None:
    """Show a vault: path, forks (with state), quota."""
    info(app, spec)


@vault.command("use")
@click.argument("spec", metavar="VAULT[:FORK]")
@pass_app
def use_cmd(app: App, spec: str) -> None:
    """Make VAULT (and FORK) the default for commands without --vault."""
    vname, fork = app.home.use(spec)
    v = app.home.vault(vname)
    app.output.result(
        "vault_use",
        {"vault": vname, "fork": fork or v.default_fork},
        lambda: app.output.info("using {}:{}", vname, fork or v.default_fork),
    )


@vault.command("path")
@click.argument("spec", required=False, metavar="[VAULT]")
@pass_app
def path_cmd(app: App, spec: str | None) -> None:
    """Print the vault's git directory (for `git --git-dir`, `git clone`)."""
    v, fork = app.resolve_given(spec)
    app.output.result(
        "vault_path", {"vault": v.name, "fork": fork, "path": v.path}, lambda: app.output.plain("{}", v.path)
    )


@vault.command("fork")
@click.argument("args", nargs=-1, required=True, metavar="[VAULT[:FORK]] NEW")
@click.option(
    "--no-ignored",
    is_flag=True,
    help="Leave out what git ignores in the source (node_modules, .venv, build outputs): a clean fork.",
)
@pass_app
def fork_cmd(app: App, args: tuple[str, ...], no_ignored: bool) -> None:
    """Fork a fork: `vault fork VAULT[:FORK] NEW` (or `--vault V:F vault fork NEW`).

    O(1) in tree size; the new fork starts from the source's current state, uncheckpointed
    changes included; the source is not touched. What git ignores comes along
    copy-on-write where the home's layers file system holds the source's state
    (`ignored.mode: snapshot`), else copied (`copied`, with the reason); never committed.
    One name that is a vault's (`vault fork proj`: the new name forgotten) is refused;
    `vault fork proj:main proj` makes a fork named after the vault.
    """
    fork(app, args, no_ignored)


@vault.command("delete")
@click.argument("spec", metavar="VAULT[:FORK]")
@click.option(
    "--force", is_flag=True, help="Really delete (a vault goes to the home's trash, a fork stays undoable)."
)
@pass_app
def delete_cmd(app: App, spec: str, force: bool) -> None:
    """Delete a vault (or one fork with VAULT:FORK); `vault restore` / `undo` bring it back."""
    vname, fork = names.parse_address(spec)
    if fork is not None:
        v = app.home.vault(vname)
        if not force:
            raise UsageError(
                f"refusing to delete fork {spec} without --force",
                hint=f"`avfs vault delete {spec} --force` (it stays recoverable with `avfs --vault {vname} undo`)",
            )
        op = v.delete_fork(fork)
        app.output.result(
            "vault_delete",
            {"vault": vname, "fork": fork, "op_id": op.id, "trash": None},
            lambda: app.output.info(
                "deleted fork {} (undo: `avfs --vault {} undo --op {}`)", spec, vname, op.id
            ),
        )
        return
    dest = app.home.delete_vault(vname, force=force)
    app.output.result(
        "vault_delete",
        {"vault": vname, "fork": None, "op_id": None, "trash": dest},
        lambda: app.output.info("deleted vault {v} (restore: `avfs vault restore {v}`)", v=vname),
    )


@vault.command("restore")
@click.argument("name")
@pass_app
def restore_cmd(app: App, name: str) -> None:
    """Bring back a deleted vault from the trash."""
    v = app.home.restore_vault(name)
    app.output.result(
        "vault_restore", {"vault": app.home.info(v.name)}, lambda: app.output.info("restored vault {}", name)
    )


@click.group()
def quota() -> None:
    """Show or set a vault's quota: bytes (git objects + caches + worktree git dirs + every
    fork's uncheckpointed files) and the number of uncheckpointed files."""


def _parse_size(text: str) -> int:
    t = text.strip().upper()
    mult = 1
    for suffix, m in (("K", 1024), ("M", 1024**2), ("G", 1024**3), ("T", 1024**4)):
        if t.endswith(suffix + "IB") or t.endswith(suffix + "B") or t.endswith(suffix):
            t = t[: t.index(suffix)]
            mult = m
            break
    try:
        value = int(float(t) * mult)
    except ValueError:
        raise UsageError(f"invalid size {text!r}: use bytes or 10K, 5M, 2G (or none)") from None
    if value <= 0:
        raise UsageError(f"invalid size {text!r}: must be positive")
    return value


def _parse_limit(text: str, *, files: bool) -> int | None:
    """A limit, or None for `none` (no limit)."""
    if text.strip().lower() in ("none", "unlimited"):
        return None
    if not files:
        return _parse_size(text)
    try:
        value = int(text.strip())
    except ValueError:
        raise UsageError(f"invalid file count {text!r}: use a whole number (or none)") from None
    if value < 0:
        raise UsageError(f"invalid file count {text!r}: must not be negative")
    return value


def _usage_doc(u: QuotaUsage, fork: str) -> dict[str, object]:
    return {
        "vault": u.vault,
        "fork": fork,
        "quota_bytes": u.quota_bytes,
        "quota_files": u.quota_files,
        "used_bytes": u.used_bytes,
        "used_files": u.used_files,
        "objects_bytes": u.objects_bytes,
        "overlay_bytes": u.overlay_bytes,
        "layers_bytes": u.layers_bytes,
        "caches_bytes": u.caches_bytes,
        "git_dirs_bytes": u.git_dirs_bytes,
        "forks": [
            {"fork": f.fork, "overlay_bytes": f.overlay_bytes, "overlay_files": f.overlay_files}
            for f in u.forks
        ],
        "over": u.over,
    }


def _limit(n: int | None, size: bool) -> str:
    """A limit as a sentence takes it: `500.0M`, `50000 files`, or which one is not set
    (it read `500.0M and no limit files`, `0 uncheckpointed files of no limit`)."""
    if n is None:
        return "no byte limit" if size else "no file limit"
    return human_size(n) if size else f"{n} files"


def _print_usage(app: App, u: QuotaUsage) -> None:
    o = app.output
    used = human_size(u.used_bytes)
    files = f"{u.used_files} uncheckpointed files"
    o.say(
        "{}: {} (git objects {}, uncheckpointed {}, caches {}, worktree git dirs {}); {}",
        u.vault,
        f"{used} of {human_size(u.quota_bytes)}" if u.quota_bytes is not None else f"{used}, no byte limit",
        human_size(u.objects_bytes),
        human_size(u.overlay_bytes),
        human_size(u.caches_bytes),
        human_size(u.git_dirs_bytes),
        f"{files} of {u.quota_files}" if u.quota_files is not None else f"{files}, no file limit",
    )
    if u.layers_bytes is not None:
        o.say(
            "  enforced by the kernel: the forks' state in the layers file system holds {} (upper layers"
            " of mounts included, shared extents once)",
            human_size(u.layers_bytes),
        )
    for f in u.forks:
        if f.overlay_bytes or f.overlay_files:
            o.say("  {:<20} {:>8}  {} files", f.fork, human_size(f.overlay_bytes), f.overlay_files)
    for what in u.over:
        o.warn("{v} is over its {w} quota: changes that add {w} are refused", v=u.vault, w=what)


@quota.command("show")
@pass_app
def quota_show(app: App) -> None:
    """Show the vault's limits and what it uses: bytes of git objects (everything under
    objects/), of its caches and worktree git dirs (which confined commands write) and of
    every fork's uncheckpointed files; the number of uncheckpointed files."""
    v, fork = app.target()
    u = v.quota_usage()
    app.output.result("quota", _usage_doc(u, fork), lambda: _print_usage(app, u))


@quota.command("set")
@click.argument("size", required=False)
@click.option("--bytes", "max_bytes", metavar="SIZE", help="Bytes limit: 10G, 500M, 4096; none lifts it.")
@click.option("--files", "max_files", metavar="N", help="Limit of uncheckpointed files; none lifts it.")
@pass_app
def quota_set(app: App, size: str | None, max_bytes: str | None, max_files: str | None) -> None:
    """Set the vault's limits (SIZE alone is the same as --bytes SIZE). A limit below what
    the vault uses is accepted with a warning: changes that add to it are refused until
    a checkpoint, rm or fork delete brings the vault back under it."""
    if size is not None and max_bytes is not None:
        raise UsageError("give the bytes limit once: SIZE or --bytes SIZE")
    max_bytes = size if size is not None else max_bytes
    if max_bytes is None and max_files is None:
        raise UsageError("nothing to set: give --bytes SIZE and/or --files N (none lifts a limit)")
    limits: dict[str, int | None] = {}
    if max_bytes is not None:
        limits["max_bytes"] = _parse_limit(max_bytes, files=False)
    if max_files is not None:
        limits["max_files"] = _parse_limit(max_files, files=True)
    v, fork = app.target()
    why = v.set_quota(**limits)
    if why is not None:
        app.output.warn(
            "the kernel does not enforce this limit ({}): mounts of this vault's forks use the"
            " pure-FUSE backend, which checks each write",
            why,
        )
    u = v.quota_usage()
    for what in u.over:  # accepted: nothing is lost, growth is refused
        used, limit = (
            (human_size(u.used_bytes), human_size(u.quota_bytes))
            if what == "bytes"
            else (f"{u.used_files} files", f"{u.quota_files} files")
        )
        app.output.warn(
            "{} already uses {}, over the new quota of {}: changes that add {} are refused until a"
            " checkpoint, rm or fork delete brings it under",
            v.name,
            used,
            limit,
            what,
        )
    app.output.result(
        "quota",
        _usage_doc(u, fork),
        lambda: app.output.info(
            "quota of {} is now {} and {} ({} and {} files used)",
            v.name,
            _limit(u.quota_bytes, True),
            _limit(u.quota_files, False),
            human_size(u.used_bytes),
            u.used_files,
        ),
    )
