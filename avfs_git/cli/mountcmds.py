"""The bodies of `avfs mount` and `avfs unmount`, and how their arguments name a fork or a
directory.

Their click commands (:mod:`.mounting`) call them, and so does the path without click
(:mod:`.fastcli`), which imports neither click nor the command modules. This module
imports no click.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ..core.errors import UsageError
from ..core.store import names

if TYPE_CHECKING:
    from ..ops.mounts import MountInfo
    from .app import App


def _looks_like_path(arg: str) -> bool:
    """A mount point rather than a ``VAULT[:FORK]``, whatever vaults exist: it has a '/' or
    starts with '.' or '~' (``./NAME`` is how to say the directory when NAME is a vault too)."""
    return "/" in arg or arg.startswith((".", "~"))


def _split_spec(app: App, args: tuple[str, ...]) -> tuple[str | None, str | None, str | None]:
    """(VAULT[:FORK] spec, @REV, DIR) from `mount [VAULT[:FORK][@REV]] [DIR]`.

    One argument is a mount point when it looks like a path (see :func:`_looks_like_path`),
    else a spec: a ``VAULT:FORK`` or ``VAULT@REV`` whose vault does not exist is never taken
    for a directory, and a bare word that is neither a vault nor a directory is an error
    that names both readings (with the vaults whose names are close)."""
    spec: str | None = None
    mdir: str | None = None
    if len(args) == 2:
        spec, mdir = args
    elif len(args) == 1:
        a = args[0]
        if _looks_like_path(a):
            mdir = a
        elif ":" in a or "@" in a:
            spec = a
        elif _is_vault(app, a) and os.path.isdir(a):
            raise UsageError(
                f"{a!r} is both a vault and a directory here: nothing mounted",
                hint=f"say which: `avfs mount {a}:FORK` or `avfs mount {a} DIR` for the vault,"
                f" `avfs mount ./{a}` to mount the selected fork on the directory",
                details={"vault": a, "directory": os.path.abspath(a)},
            )
        elif _is_vault(app, a):
            spec = a
        elif os.path.isdir(a):
            mdir = a
        else:
            from ..core.errors import VaultNotFoundError
            from .suggest import with_suggestions

            err = with_suggestions(
                app.home,
                VaultNotFoundError(
                    f"no vault named {a!r}, and no directory {a!r} to mount on",
                    hint=f"`avfs vault list` shows the vaults; to mount the selected fork on a new"
                    f" directory, create it first (`mkdir {a}`) or give it as ./{a}",
                    details={"vault": a, "home": app.home.path},
                ),
            )
            raise err
    elif len(args) > 2:
        raise UsageError("usage: avfs mount [VAULT[:FORK][@REV]] [DIR]")
    rev: str | None = None
    if spec is not None and "@" in spec:
        spec, rev = spec.split("@", 1)
        if not rev:
            raise UsageError("empty revision after '@'")
    return spec, rev, mdir


def _is_vault(app: App, name: str) -> bool:
    try:
        names.check_vault_name(name)
    except Exception:
        return False
    return app.home.exists(name)


def _label(m: MountInfo) -> str:
    return f"{m.vault}:{m.fork}" + (f"@{m.revision[:12]}" if m.revision else "")


def _mount_at(app: App, path: str) -> MountInfo:
    """The live avfs mount whose mount point is ``path``; an error when there is none."""
    from ..core.errors import NotFoundError
    from ..ops import mounts

    real = os.path.realpath(os.path.expanduser(path))
    for m in mounts.list_mounts(app.home):
        if os.path.realpath(m.mountpoint) == real:
            return m
    raise NotFoundError(
        f"{path}: nothing avfs mounted is there",
        hint="`avfs mount --list` lists the live mounts",
        details={"path": path},
    )


def mount(app: App, args: tuple[str, ...], list_: bool, foreground: bool, backend: str) -> None:
    """`avfs mount`'s body: its click command calls it, and so does the path without click (:mod:`.fastcli`)."""
    from ..ops import mounts

    if list_:
        if args:
            raise UsageError("--list takes no arguments")
        found = mounts.list_mounts(app.home)

        def human_list() -> None:
            if not found:
                app.output.info("nothing is mounted")
            for m in found:
                ro = " (read-only)" if m.read_only else ""
                # an overlay mount's upper layer: on the layers image or the host's disk
                upper = f" (upper on {m.upper_on})" if m.upper_on else ""
                # a mount proxy exec made: released after its idle timeout without use
                warm = (
                    f" (kept warm: released after {m.idle_timeout_s:g} s idle, at {m.idle_expires_at})"
                    if m.kept_warm and m.idle_timeout_s is not None
                    else ""
                )
                app.output.plain("{}\t{}\t{}" + upper + ro + warm, _label(m), m.mountpoint, m.backend)

        app.output.result("mount_list", {"mounts": found}, human_list)
        return
    spec, rev, mdir = _split_spec(app, args)
    vault, fork = app.resolve_given(spec)
    info = mounts.mount(app.home, vault, fork, mdir, revision=rev, foreground=foreground, backend=backend)

    def human() -> None:
        app.output.plain("{}", info.mountpoint)
        if info.reused:
            app.output.info("{}:{} was already mounted there", vault.name, fork)

    app.output.result("mount", {"mount": info}, human)


def unmount(app: App, target: str | None, lazy: bool) -> None:
    """`avfs unmount`'s body: its click command calls it, and so does the path without click (:mod:`.fastcli`)."""
    from ..ops import mounts

    live = None
    # in a directory a vault was made from (no fork selected): that vault's one live mount
    here = app.spec if app.vault_spec is None and app.spec is not None and ":" not in app.spec else None
    if target is not None and (
        _looks_like_path(target) or (os.path.isdir(target) and not _is_vault(app, target))
    ):
        live = _mount_at(app, target)
    elif target is None and (app.spec is None or here is not None):
        found = [m for m in mounts.list_mounts(app.home) if here is None or m.vault == here]
        if len(found) > 1:
            listing = ", ".join(f"{_label(m)} at {m.mountpoint}" for m in found)
            raise UsageError(
                f"{len(found)} mounts are live: {listing}; say which to unmount",
                hint="avfs unmount VAULT:FORK, or avfs unmount MOUNTPOINT (`avfs mount --list` lists them)",
                details={
                    "mounts": [{"vault": m.vault, "fork": m.fork, "mountpoint": m.mountpoint} for m in found]
                },
            )
        live = found[0] if found else None
    if live is not None:
        vault, fork, commit = app.home.vault(live.vault), live.fork, live.revision
    else:
        spec, rev = target, None
        if spec is not None and "@" in spec:
            spec, rev = spec.split("@", 1)
        vault, fork = app.resolve_given(spec)
        commit = None
        if rev:
            from ..core.operations.history import resolve

            commit = resolve(vault, rev, fork)
    info = mounts.unmount(app.home, vault, fork, revision=commit, lazy=lazy)

    def human() -> None:
        if info:
            app.output.info("unmounted {}", info.mountpoint)
        else:
            app.output.info("{}:{} was not mounted", vault.name, fork)

    app.output.result("unmount", {"vault": vault.name, "fork": fork, "mount": info}, human)
