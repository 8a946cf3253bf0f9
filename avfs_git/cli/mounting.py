"""`avfs mount` and `avfs unmount`."""

from __future__ import annotations

import click

from .app import App, pass_app
from .mountcmds import mount, unmount


@click.command("mount", context_settings={"ignore_unknown_options": False})
@click.argument("args", nargs=-1, metavar="[VAULT[:FORK][@REV]] [DIR]")
@click.option("--list", "list_", is_flag=True, help="List live mounts (and clean up dead ones).")
@click.option("--foreground", is_flag=True, help="Run the mount daemon in this process (debugging).")
@click.option(
    "--backend",
    type=click.Choice(["auto", "overlay", "fuse"]),
    default="auto",
    show_default=True,
    help="overlay: the kernel serves writes (overlayfs over avfs's read-only view); fuse: avfs serves all.",
)
@pass_app
def mount_cmd(app: App, args: tuple[str, ...], list_: bool, foreground: bool, backend: str) -> None:
    """Show a fork as a live directory (default mount point under the home).

    Returns once the mount is ready and prints the mount point. `@REV` mounts a checkpoint
    or any revision read-only. A fork already mounted is reused.
    """
    mount(app, args, list_, foreground, backend)


@click.command("unmount")
@click.argument("target", required=False, metavar="[VAULT[:FORK][@REV] | MOUNTPOINT]")
@click.option("--lazy", is_flag=True, help="Detach now even if busy (the kernel finishes later).")
@pass_app
def unmount_cmd(app: App, target: str | None, lazy: bool) -> None:
    """Unmount a fork, by VAULT[:FORK][@REV] or by its mount point (as `umount` takes).

    A fork that is not mounted is left alone (exit 0); a mount point where avfs mounted
    nothing, or a vault or fork that does not exist, is an error. Without an argument (and
    no --vault): the one live mount; with several live, it refuses and lists them.
    """
    unmount(app, target, lazy)
