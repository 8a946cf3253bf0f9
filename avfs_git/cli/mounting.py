"""`avfs mount` and `avfs unmount`."""

from __future__ import annotations

import os

import click

from ..core import names
from ..core.errors import UsageError
from .main import App, pass_app


def _split_spec(app: App, args: tuple[str, ...]) -> tuple[str | None, str | None, str | None]:
    """(VAULT[:FORK] spec, @REV, DIR) from `mount [VAULT[:FORK][@REV]] [DIR]`."""
    spec: str | None = None
    mdir: str | None = None
    if len(args) == 2:
        spec, mdir = args
    elif len(args) == 1:
        a = args[0]
        looks_like_dir = "/" in a or a.startswith(".") or os.path.isdir(a)
        vault_part = a.split("@", 1)[0].split(":", 1)[0]
        try:
            names.check_vault_name(vault_part)
            is_vault = app.home.exists(vault_part)
        except Exception:
            is_vault = False
        if is_vault and not looks_like_dir:
            spec = a
        else:
            mdir = a
    elif len(args) > 2:
        raise UsageError("usage: avfs mount [VAULT[:FORK][@REV]] [DIR]")
    rev: str | None = None
    if spec is not None and "@" in spec:
        spec, rev = spec.split("@", 1)
        if not rev:
            raise UsageError("empty revision after '@'")
    return spec, rev, mdir


@click.command("mount", context_settings={"ignore_unknown_options": False})
@click.argument("args", nargs=-1, metavar="[VAULT[:FORK][@REV]] [DIR]")
@click.option("--list", "list_", is_flag=True, help="List live mounts (and clean up dead ones).")
@click.option("--foreground", is_flag=True, help="Run the mount daemon in this process (debugging).")
@pass_app
def mount_cmd(app: App, args: tuple[str, ...], list_: bool, foreground: bool) -> None:
    """Show a fork as a live directory (default mount point under the home).

    Returns once the mount is ready and prints the mount point. `@REV` mounts a checkpoint
    or any revision read-only. A fork already mounted is reused.
    """
    from ..fuse import mounts

    if list_:
        if args:
            raise UsageError("--list takes no arguments")
        found = mounts.list_mounts(app.home)

        def human_list() -> None:
            if not found:
                app.output.info("nothing is mounted")
            for m in found:
                ro = " (read-only)" if m.read_only else ""
                click.echo(
                    f"{m.vault}:{m.fork}{'@' + m.revision[:12] if m.revision else ''}\t{m.mountpoint}{ro}"
                )

        app.output.result("mount_list", {"mounts": found}, human_list)
        return
    spec, rev, mdir = _split_spec(app, args)
    vault, fork = app.home.resolve(spec or app.vault_spec)
    info = mounts.mount(app.home, vault, fork, mdir, revision=rev, foreground=foreground)

    def human() -> None:
        click.echo(info.mountpoint)
        if info.reused:
            app.output.info(f"{vault.name}:{fork} was already mounted there")

    app.output.result("mount", {"mount": info}, human)


@click.command("unmount")
@click.argument("spec", required=False, metavar="[VAULT[:FORK][@REV]]")
@click.option("--lazy", is_flag=True, help="Detach now even if busy (the kernel finishes later).")
@pass_app
def unmount_cmd(app: App, spec: str | None, lazy: bool) -> None:
    """Unmount a fork (harmless when it is not mounted)."""
    from ..fuse import mounts

    rev: str | None = None
    if spec is not None and "@" in spec:
        spec, rev = spec.split("@", 1)
    vault, fork = app.home.resolve(spec or app.vault_spec)
    commit = None
    if rev:
        from ..core.history import resolve

        commit = resolve(vault, rev, fork)
    info = mounts.unmount(app.home, vault, fork, revision=commit, lazy=lazy)
    app.output.result(
        "unmount",
        {"vault": vault.name, "fork": fork, "mount": info},
        lambda: app.output.info(
            f"unmounted {info.mountpoint}" if info else f"{vault.name}:{fork} was not mounted"
        ),
    )
