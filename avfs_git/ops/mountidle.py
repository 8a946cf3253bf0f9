"""How long a mount `proxy exec` made stays warm without use (docs/fuse.md "Mounts kept
warm"): the idle timeout from `$AVFS_MOUNT_IDLE`, the vault's or the home's `config.json`
(`mount_idle_s`), and the check of a value.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..core.errors import (
    UsageError,
)

if TYPE_CHECKING:
    from ..core.vaults.home import Home
    from ..core.vaults.vault import Vault


# a mount proxy exec makes for a fork that was not mounted is kept warm this long without use
# (docs/fuse.md, "Mounts kept warm"): the setting's key in the vault's and the home's
# config.json, its environment variable, its default and its bounds
IDLE_KEY = "mount_idle_s"


IDLE_ENV = "AVFS_MOUNT_IDLE"


DEFAULT_IDLE_S = 600.0


MAX_IDLE_S = 7 * 86400.0


def idle_value(value: object, where: str) -> float:
    """``value`` (from ``where``) as an idle timeout in seconds: a number from 0 to
    :data:`MAX_IDLE_S` (0: a mount made for one call is unmounted after it)."""
    hint = (
        f"a number of seconds from 0 to {int(MAX_IDLE_S)}, e.g. {IDLE_ENV}=600"
        " (0: unmount after each call; `avfs mount` keeps a mount for good)"
    )
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise UsageError(f"{where}: {value!r} is not a number of seconds", hint=hint)
    try:
        out = float(value)
    except ValueError:
        raise UsageError(f"{where}: {value!r} is not a number of seconds", hint=hint) from None
    if not 0 <= out <= MAX_IDLE_S:  # (NaN fails too)
        raise UsageError(f"{where}: {value!r} is out of range", hint=hint)
    return out


def idle_timeout(home: Home, vault: Vault) -> float:
    """How long a mount ``proxy exec`` makes for ``vault`` stays mounted without use
    (seconds): ``$AVFS_MOUNT_IDLE`` (as the front end read it into the home's settings), else
    the vault's ``config.json`` key ``mount_idle_s``, else the home's, else
    :data:`DEFAULT_IDLE_S`.

    Raises:
        UsageError: the value found is not a number of seconds from 0 to :data:`MAX_IDLE_S`.
    """
    if home.settings.mount_idle:
        return idle_value(home.settings.mount_idle, IDLE_ENV)
    cfg = vault.fresh_config()
    if IDLE_KEY in cfg:
        return idle_value(cfg[IDLE_KEY], f"{vault.config_path}: {IDLE_KEY}")
    hcfg = home.config()
    if IDLE_KEY in hcfg:
        return idle_value(hcfg[IDLE_KEY], f"{home.config_path}: {IDLE_KEY}")
    return DEFAULT_IDLE_S
