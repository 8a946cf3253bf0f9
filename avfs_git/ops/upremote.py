"""`avfs up --from-url URL [--lazy]`: a vault cloned from a git server (lazily: commits and
trees only, docs/lazy.md), forked for an agent and mounted, as `avfs up DIR` does for a
project directory (:mod:`.quickstart`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..core.errors import UsageError
from ..core.store import names
from .origin import base_name, taken_note, up_lock, vault_name_for
from .quickstart import UpResult, fork_and_mount, next_hint

if TYPE_CHECKING:
    from ..core.store.transport import ProgressFn
    from ..core.vaults.home import Home


def _url_vault(home: Home, url: str, warnings: list[str]) -> str | None:
    """The vault an earlier ``up --from-url`` made from ``url`` (its config's ``origin.url``),
    else one ``vault clone`` made of it (its git remote ``origin`` is ``url``, and no ``up``
    has made it its own): that one is adopted (``origin.url`` recorded; said in
    ``warnings``) where ``up`` made ``big-2`` beside it."""
    from ..core.store.vaultconfig import remotes

    cloned = None
    for info in home.list_vaults():
        vault = home.vault(info.name)
        origin = vault.config.get("origin")
        if isinstance(origin, dict) and origin.get("url") == url:
            return info.name
        if cloned is None and origin is None and ("origin", url) in remotes(vault.store):
            cloned = vault
    if cloned is not None:
        cloned.set_config(origin={"url": url})
        warnings.append(
            f"vault {cloned.name} was cloned from this URL (`vault clone`): `up` uses it from now on"
        )
        return cloned.name
    return None


def up_from_url(
    home: Home,
    url: str,
    *,
    lazy: bool = False,
    agent: str | None = None,
    vault_name: str | None = None,
    mountpoint: str | None = None,
    mount: bool = True,
    progress: ProgressFn | None = None,
) -> UpResult:
    """Clone the repository at ``url`` into a vault (``lazy``: a partial clone, docs/lazy.md;
    or reuse the vault an earlier ``up --from-url`` of that URL made), fork it for an agent,
    mount it. The vault records the URL without credentials (``origin.url`` in its config);
    a reused vault is not fetched (``avfs pull`` brings the server's new work).

    Raises:
        UsageError: ``vault_name`` names a vault made otherwise; ``agent`` is not a fork name.
        RemoteError: the clone failed (nothing is kept).
    """
    from ..core.store.redact import redact, split_credentials
    from ..core.store.transport import anchored

    if agent is not None:
        names.check_fork_name(agent)
    clean = anchored(split_credentials(url)[0])  # (a relative path: as the clone stores it)
    warnings: list[str] = []
    with up_lock(home, f"the vault of {redact(clean)}"):  # (as `up DIR`: two at once cloned it twice)
        name = vault_name or _url_vault(home, clean, warnings)
        created = False
        if name is not None and home.exists(name):
            vault = home.vault(name)
            origin = vault.config.get("origin")
            known = origin.get("url") if isinstance(origin, dict) else None
            if known is None and _url_vault(home, clean, warnings) == name:
                known = clean  # (a `vault clone` of it, adopted)
            if known != clean:
                raise UsageError(
                    f"vault {name} was not made from {redact(clean)}"
                    + (f" (its origin is {redact(str(known))})" if known else " by `avfs up --from-url`"),
                    hint="omit --vault to use or make the vault of this URL, or pick another name",
                    details={"vault": name, "origin": known, "url": redact(clean)},
                )
        else:
            last = clean.rstrip("/").rsplit(":", 1)[-1]
            name = name or vault_name_for(home, last)
            if vault_name is None and name != base_name(last):
                warnings.append(taken_note(base_name(last), name, "URL"))
            vault = home.clone_vault(url, name, progress=progress, lazy=lazy, warnings=warnings)
            vault.set_config(origin={"url": clean})
            created = True
    fork, fork_created, mp, reused = fork_and_mount(home, vault, agent, mountpoint, mount)
    return UpResult(
        vault=vault.name,
        fork=fork,
        origin=redact(clean),
        mountpoint=mp,
        hint=next_hint(vault.name, fork, mp),
        vault_created=created,
        fork_created=fork_created,
        mount_reused=reused,
        origin_changed=False,
        refreshed=False,
        refresh_commit=None,
        warnings=tuple(warnings),
        lazy=vault.lazy,
    )
