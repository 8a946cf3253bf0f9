"""The bodies of `avfs vault create|list|info`.

Their click commands (:mod:`.vaults`) call them, and so does the path without click
(:mod:`.fastcli`), which imports neither click nor the command modules. This module imports
no click.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..core.store import names
from .output import human_size

if TYPE_CHECKING:
    from ..core.vaults.home import Home
    from ..core.vaults.vault import Vault
    from .app import App


def create(app: App, name: str, from_dir: str | None, no_ignore: bool, make_default: bool) -> None:
    """`avfs vault create`'s body: its click command calls it, and so does the path without click (:mod:`.fastcli`)."""
    names.check_vault_name(name)
    from ..core.errors import AlreadyExistsError

    try:
        with app.output.progress(f"importing {from_dir}" if from_dir else "creating") as progress:
            v = app.home.create_vault(name, from_dir=from_dir, progress=progress, use_gitignore=not no_ignore)
    except AlreadyExistsError as exc:
        if exc.details.get("vault") == name:  # (the CLI's hint in place of the API's: core/vaults/home.py)
            raise AlreadyExistsError(
                exc.message, hint=_exists_hint(app, name, from_dir), details=exc.details
            ) from None
        raise
    if from_dir is not None:
        import os

        from ..ops.origin import nested_warning

        nested = nested_warning(v, os.path.abspath(from_dir), f"avfs vault create {name}-2 --from")
        if nested is not None:
            app.output.warn("{}", nested)
    if make_default:
        app.home.use(name)
    info = app.home.info(name)
    ws = v.workspace()
    data = {"vault": info, "dirty": ws.is_dirty()}
    app.output.result(
        "vault_create",
        data,
        lambda: app.output.say(
            "created vault [bold]{}[/] at {} (fork {}, {})",
            name,
            v.path,
            info.default_fork,
            (info.head or "")[:12],
        ),
    )


def _exists_hint(app: App, name: str, from_dir: str | None) -> str:
    """What to do about vault ``name`` being there: the README's `avfs up ./proj`, then
    its `avfs vault create proj --from ./proj`, met "already exists" and nothing more."""
    import os

    from ..core.errors import AvfsError
    from ..ops.origin import imported_from, origin_dir

    try:
        vault = app.home.vault(name)
        made_from = origin_dir(vault) or imported_from(vault)
    except AvfsError:  # (a vault that cannot be read: the general hint)
        made_from = None
    if from_dir is not None and made_from == os.path.realpath(from_dir):
        return f"it was made from this directory: use it (`avfs vault fork {name} NEW`), or give another name"
    return (
        f"use it as it is (`avfs vault info {name}`), give another name, or `avfs vault delete {name} --force`"
        f" first (`avfs vault restore {name}` brings it back)"
    )


def list_vaults(app: App) -> None:
    """`avfs vault list`'s body: its click command calls it, and so does the path without click (:mod:`.fastcli`)."""
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
            head = (v.head or "")[:12] if v.error is None else "damaged"
            row = ("*" if v.is_default else "", v.name, ", ".join(v.forks), head)
            t.add_row(*(app.output.markup("{}", cell) for cell in row))
        app.output.out.print(t)
        _warn_damaged(app, [(v.name, v.error) for v in vaults])

    app.output.result("vault_list", {"home": app.home.path, "vaults": vaults}, human)


def info(app: App, spec: str | None) -> None:
    """`avfs vault info`'s body: its click command calls it, and so does the path without click (:mod:`.fastcli`)."""
    v = _vault_of(app, spec)
    got = app.home.info(v.name)
    forks = v.forks()

    def human() -> None:
        o = app.output
        o.say("[bold]{}[/]  {}", v.name, v.path)
        o.say("quota: {}", human_size(got.quota_bytes))
        for f in forks:
            mark = "*" if f.is_default else " "
            state = "dirty" if f.dirty else "clean" if f.error is None else "damaged"
            o.say(" {} {:<20} {}  {}", mark, f.name, (f.head or "?" * 12)[:12], state)
        _warn_damaged(app, [(f"{v.name}:{f.name}", f.error) for f in forks])

    app.output.result("vault_info", {"vault": got, "forks": forks}, human)


def _vault_of(app: App, spec: str | None) -> Vault[Home]:
    """The vault ``spec`` names (None: the selected one). One whose fork's branch is damaged
    (the default fork's, when ``spec`` names none) is still the vault `vault info` lists,
    the damaged fork with its error: resolving the fork failed the whole call (corrupt_state)."""
    from ..core.errors import CorruptStateError

    try:
        return app.resolve_given(spec)[0]
    except CorruptStateError:
        given = spec if spec is not None else app.spec
        name = names.parse_address(given)[0] if given else app.home.default_vault
        if not name:
            raise
        return app.home.vault(name)


def _warn_damaged(app: App, entries: list[tuple[str, dict[str, object] | None]]) -> None:
    """A listing's entries that could not be read, each with its error and hint (stderr):
    listed as damaged, the others around them."""
    for name, error in entries:
        if error is not None:
            app.output.warn("{} is damaged: {}", name, error["message"])
            if error.get("hint"):
                app.output.say("  hint: {}", error["hint"], err=True)
