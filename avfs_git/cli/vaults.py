"""`avfs vault ...` and `avfs quota ...`."""

from __future__ import annotations

import click

from ..core import names
from ..core.errors import UsageError
from .main import App, pass_app
from .output import human_size


@click.group()
def vault() -> None:
    """Create, list, fork, delete vaults."""


@vault.command("create")
@click.argument("name")
@click.option(
    "--from",
    "from_dir",
    type=click.Path(file_okay=False),
    help="Import this directory (a git checkout brings its history).",
)
@click.option("--no-ignore", is_flag=True, help="Import files .gitignore would leave out too.")
@click.option("--use/--no-use", "make_default", default=False, help="Make it the default vault.")
@pass_app
def create(app: App, name: str, from_dir: str | None, no_ignore: bool, make_default: bool) -> None:
    """Create vault NAME (empty with fork `main`, or imported --from DIR)."""
    names.check_vault_name(name)
    with app.output.progress(f"importing {from_dir}" if from_dir else "creating") as progress:
        v = app.home.create_vault(name, from_dir=from_dir, progress=progress, use_gitignore=not no_ignore)
    if make_default:
        app.home.use(name)
    info = app.home.info(name)
    ws = v.workspace()
    data = {"vault": info, "dirty": ws.is_dirty()}
    app.output.result(
        "vault_create",
        data,
        lambda: app.output.out.print(
            f"created vault [bold]{name}[/] at {v.path} (fork {info.default_fork}, {(info.head or '')[:12]})"
        ),
    )


@vault.command("clone")
@click.argument("url")
@click.argument("name")
@click.option("--use/--no-use", "make_default", default=False, help="Make it the default vault.")
@pass_app
def clone(app: App, url: str, name: str, make_default: bool) -> None:
    """Create vault NAME from the git repository at URL: its branches become forks, its
    tags and named checkpoints come along, and `origin` is set (without credentials)."""
    with app.output.git_progress() as progress:
        v = app.home.clone_vault(url, name, progress=progress)
    if make_default:
        app.home.use(name)
    info = app.home.info(name)
    app.output.result(
        "vault_create",
        {"vault": info, "dirty": False},
        lambda: app.output.out.print(
            f"cloned vault [bold]{name}[/] at {v.path} (forks: {', '.join(v.fork_names())})"
        ),
    )


@vault.command("list")
@pass_app
def list_cmd(app: App) -> None:
    """List the vaults of the home."""
    vaults = app.home.list_vaults()

    def human() -> None:
        if not vaults:
            app.output.info("no vaults yet: `avfs vault create NAME`")
            return
        from rich.table import Table

        t = Table(box=None)
        for col in ("", "vault", "forks", "head"):
            t.add_column(col)
        for v in vaults:
            t.add_row("*" if v.is_default else "", v.name, ", ".join(v.forks), (v.head or "")[:12])
        app.output.out.print(t)

    app.output.result("vault_list", {"home": app.home.path, "vaults": vaults}, human)


@vault.command("info")
@click.argument("spec", required=False, metavar="[VAULT]")
@pass_app
def info_cmd(app: App, spec: str | None) -> None:
    """Show a vault: path, forks (with state), quota."""
    v, _ = app.home.resolve(spec or app.vault_spec)
    info = app.home.info(v.name)
    forks = v.forks()

    def human() -> None:
        o = app.output.out
        o.print(f"[bold]{v.name}[/]  {v.path}")
        o.print(f"quota: {human_size(info.quota_bytes)}")
        for f in forks:
            mark = "*" if f.is_default else " "
            state = "dirty" if f.dirty else "clean"
            o.print(f" {mark} {f.name:<20} {f.head[:12]}  {state}")

    app.output.result("vault_info", {"vault": info, "forks": forks}, human)


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
        lambda: app.output.info(f"using {vname}:{fork or v.default_fork}"),
    )


@vault.command("path")
@click.argument("spec", required=False, metavar="[VAULT]")
@pass_app
def path_cmd(app: App, spec: str | None) -> None:
    """Print the vault's git directory (for `git --git-dir`, `git clone`)."""
    v, fork = app.home.resolve(spec or app.vault_spec)
    app.output.result(
        "vault_path", {"vault": v.name, "fork": fork, "path": v.path}, lambda: click.echo(v.path)
    )


@vault.command("fork")
@click.argument("args", nargs=-1, required=True, metavar="[VAULT[:FORK]] NEW")
@pass_app
def fork_cmd(app: App, args: tuple[str, ...]) -> None:
    """Fork a fork: `vault fork VAULT[:FORK] NEW` (or `--vault V:F vault fork NEW`).

    O(1) in tree size; the new fork starts from the source's current state, uncheckpointed
    changes included; the source is not touched.
    """
    if len(args) == 1:
        source_spec, new = app.vault_spec, args[0]
    elif len(args) == 2:
        source_spec, new = args
    else:
        raise UsageError("usage: avfs vault fork [VAULT[:FORK]] NEW")
    v, src = app.home.resolve(source_spec)
    info = v.create_fork(src, new)
    app.output.result(
        "fork_create",
        {"fork": info, "source": src},
        lambda: app.output.out.print(f"forked {v.name}:{src} -> {v.name}:{new} at {info.base[:12]}"),
    )


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
                hint="it stays recoverable with `avfs undo`",
            )
        op = v.delete_fork(fork)
        app.output.result(
            "vault_delete",
            {"vault": vname, "fork": fork, "op_id": op.id, "trash": None},
            lambda: app.output.info(f"deleted fork {spec} (undo: `avfs --vault {vname} undo --op {op.id}`)"),
        )
        return
    dest = app.home.delete_vault(vname, force=force)
    app.output.result(
        "vault_delete",
        {"vault": vname, "fork": None, "op_id": None, "trash": dest},
        lambda: app.output.info(f"deleted vault {vname} (restore: `avfs vault restore {vname}`)"),
    )


@vault.command("restore")
@click.argument("name")
@pass_app
def restore_cmd(app: App, name: str) -> None:
    """Bring back a deleted vault from the trash."""
    v = app.home.restore_vault(name)
    app.output.result(
        "vault_restore", {"vault": app.home.info(v.name)}, lambda: app.output.info(f"restored vault {name}")
    )


@click.group()
def quota() -> None:
    """Show or set a vault's quota (bytes of uncheckpointed changes per fork)."""


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
        raise UsageError(f"invalid size {text!r}: use bytes or 10K, 5M, 2G") from None
    if value <= 0:
        raise UsageError(f"invalid size {text!r}: must be positive")
    return value


@quota.command("show")
@pass_app
def quota_show(app: App) -> None:
    """Show the quota and what the fork's uncheckpointed changes use of it."""
    v, fork = app.target()
    used = v.workspace(fork).overlay.file_bytes()
    data = {"vault": v.name, "fork": fork, "quota_bytes": v.quota_bytes, "used_bytes": used}
    app.output.result(
        "quota",
        data,
        lambda: app.output.out.print(
            f"{v.name}:{fork}: {human_size(used)} used of {human_size(v.quota_bytes)}"
        ),
    )


@quota.command("set")
@click.argument("size")
@pass_app
def quota_set(app: App, size: str) -> None:
    """Set the quota: bytes, or with a K/M/G/T suffix."""
    v, fork = app.target()
    v.set_config(quota_bytes=_parse_size(size))
    ws = v.workspace(fork)
    used = ws.overlay.file_bytes()
    data = {
        "vault": v.name,
        "fork": fork,
        "quota_bytes": v.quota_bytes,
        "used_bytes": used,
    }
    if used > v.quota_bytes:  # accepted: nothing is lost, new writes are refused
        app.output.warn(
            f"{v.name}:{fork} already uses {human_size(used)}, over the new quota:"
            " writes that add bytes are refused until a checkpoint or rm brings it under"
        )
    app.output.result(
        "quota", data, lambda: app.output.info(f"quota of {v.name} is now {human_size(v.quota_bytes)}")
    )
