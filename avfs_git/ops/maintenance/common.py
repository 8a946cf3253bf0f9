"""What the maintenance commands share: the thresholds they use, the retention (how long
undo's material is kept: defaults < home config < vault config), running git in a vault,
a vault's workspace state dirs and their overlay usage, its mount registry with each
daemon's liveness, and when a fork last changed."""

from __future__ import annotations

import dataclasses
import os
import sqlite3
import subprocess
from typing import TYPE_CHECKING, Any

from ...core.errors import AvfsError, UsageError
from ...core.records import dataclass
from ...core.store import refs
from ...core.store.names import from_fs_name
from ...core.types import to_json
from ...core.vaults import layers, registry
from ...core.workspace.sqlite import open_read_only

if TYPE_CHECKING:
    from ...core.vaults.home import Home
    from ...core.vaults.vault import Vault

DAY_S = 86400.0
MAINTENANCE_LOCK = ".maintenance"  # one gc at a time per vault (a name no fork can have)
REPACK_LOCK = ".repack"  # packwriter's consolidation lock (locks/.repack.lock; no fork name starts with '.')
KEEP = refs.KEEP  # one temporary root while gc runs (an interrupted gc leaves it: doctor)
STALE_GIT_LOCK_S = 600.0  # git holds a ref lock for milliseconds; one this old was left by a kill
RECENT_FORK_S = 3600.0  # prune never touches a fork changed this recently (it may be in use)
ORPHAN_FILE_S = 3600.0  # an overlay file is written before its entry: only old orphans are garbage
USED_APPROVAL_S = DAY_S  # used approval records are kept this long (for people reading them)


@dataclass(frozen=True, slots=True)
class Retention:
    """How long avfs keeps what undo needs, and the grace of unreachable objects.

    Defaults; the home's ``config.json`` key ``"maintenance"`` overrides them for every
    vault, and the vault's ``avfs/config.json`` key ``"maintenance"`` for one vault.
    """

    recovery_days: float = 30.0  # recovery refs (uncheckpointed changes kept by restore/undo/...)
    oplog_days: float = 90.0  # op log entries, and reflog entries of refs
    trash_days: float = 30.0  # deleted vaults in <home>/trash
    grace_days: float = 14.0  # unreachable objects younger than this survive gc (git's default)
    abandoned_days: float = 30.0  # prune: a fork with no change for this long is abandoned

    def to_json(self) -> dict[str, Any]:
        return dict(to_json(self))


_RETENTION_KEYS = {f.name for f in dataclasses.fields(Retention)}
# the longest a retention setting may be: 1,000 years (a larger one, or 1e308, made a
# cut-off time before the epoch, which the dates of the records cannot hold)
MAX_DAYS = 365_000


def retention_for(vault: Vault[Home] | None = None, home: Home | None = None) -> Retention:
    """The retention in force for ``vault`` (defaults < home config < vault config)."""
    values: dict[str, float] = {}
    home = home if home is not None else (vault.home if vault is not None else None)
    layers: list[tuple[str, object]] = []
    if home is not None:
        layers.append((home.config_path, home.config().get("maintenance")))
    if vault is not None:
        layers.append((os.path.join(vault.state_dir, "config.json"), vault.config.get("maintenance")))
    for where, layer in layers:
        if layer is None:
            continue
        if not isinstance(layer, dict):  # (a number or a list was exit 70: dict() of it)
            raise UsageError(
                f"the maintenance settings of {where} are a JSON {type(layer).__name__}, not an object",
                hint='write them as {"maintenance": {"oplog_days": 90, ...}}',
            )
        for key, value in layer.items():
            if key not in _RETENTION_KEYS:
                raise UsageError(
                    f"unknown maintenance setting {key!r}",
                    hint=f"known settings: {', '.join(sorted(_RETENTION_KEYS))}",
                )
            if (
                not isinstance(value, (int, float))
                or isinstance(value, bool)
                or not 0 <= value <= MAX_DAYS  # (NaN, which JSON's reader takes, is neither)
            ):
                raise UsageError(
                    f"maintenance setting {key!r} must be a number of days from 0 to {MAX_DAYS},"
                    f" not {value!r}"
                )
            values[key] = float(value)
    return Retention(**values)


def git(vault_path: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    from ...core.store import gitrun

    return gitrun.run(args, git_dir=vault_path, check=check, details={"vault": vault_path}, text=True)


def names_in(root: str) -> list[str]:
    """The names in directory ``root``, sorted; none when it does not exist (yet)."""
    try:
        return sorted(os.listdir(root))
    except FileNotFoundError:
        return []


def ws_dirs(vault: Vault) -> dict[str, str]:
    """fork name -> state dir, for every state dir on disk (orphans included); a link into
    the layers file system that cannot be followed now is left out (the ``layers`` check
    of doctor reports why)."""
    root = os.path.join(vault.state_dir, "ws")
    out = {}
    for n in names_in(root):
        path = os.path.join(root, n)
        if os.path.islink(path):
            try:
                path = layers.resolve(vault.home_dir, path)
            except AvfsError:
                continue
        if os.path.isdir(path):
            out[from_fs_name(n)] = path
    return out


def open_overlay_db(ws_dir: str) -> sqlite3.Connection | None:
    """A read connection on a state dir's overlay database (None when there is none)."""
    path = os.path.join(ws_dir, "overlay.db")
    if not os.path.isfile(path):
        return None
    # quoted (a fork named a/b has its state in a%2Fb, which a URI would read as a/b; '?'
    # and '#' would end its path): not by urllib, which a cold gc does not load
    if not os.access(ws_dir, os.W_OK):
        # (a home on a read-only mount: without its WAL index SQLite's `mode=ro` cannot
        # open it, "unable to open database file", an overlay doctor called unreadable)
        return open_read_only(path, 5.0)
    quoted = path.replace("%", "%25").replace("?", "%3F").replace("#", "%23")
    conn = sqlite3.connect(f"file:{quoted}?mode=ro", uri=True, timeout=5.0)
    return conn


def overlay_usage(ws_dir: str) -> tuple[int, int, int | None]:
    """(entries, bytes of materialized files, newest journal time) of a state dir."""
    conn = open_overlay_db(ws_dir)
    if conn is None:
        return 0, 0, None
    try:
        n = int(conn.execute("SELECT COUNT(*) FROM entries").fetchone()[0])
        row = conn.execute("SELECT file_bytes FROM totals WHERE id = 1").fetchone()
        size = int(row[0]) if row is not None else 0
        ts = conn.execute("SELECT MAX(ts) FROM journal").fetchone()[0]
        return n, size, None if ts is None else int(ts)
    except sqlite3.Error:
        return 0, 0, None
    finally:
        conn.close()


@dataclass(frozen=True, slots=True)
class RegisteredMount:
    key: str
    fork: str
    mountpoint: str
    pid: int
    state: str
    alive: bool
    registry: str


def registered_mounts(vault: Vault) -> list[RegisteredMount]:
    """The vault's mount registry with each daemon's liveness (changes nothing)."""
    out = []
    for rec in registry.records(vault.state_dir):
        alive = daemon_alive(rec.pid, vault, registry.started_at(rec.data)) and (
            rec.state in ("mounting", "unmounting") or registry.mounted_at(rec.mountpoint)
        )
        out.append(
            RegisteredMount(
                rec.key,
                str(rec.data.get("fork", rec.key)),
                rec.mountpoint,
                rec.pid,
                rec.state,
                alive,
                rec.path,
            )
        )
    return out


def live_mounts(vault: Vault) -> list[RegisteredMount]:
    return [m for m in registered_mounts(vault) if m.alive]


def last_change(vault: Vault, fork: str, since: float = 0.0) -> float:
    """When fork ``fork`` last changed: its ref's newest reflog entry, its tip's commit
    time, its overlay journal, ``since`` (the vault's clone, :meth:`.OpLog.created`: a
    cloned branch has no reflog entry of its arrival), whichever is newest."""
    newest = max(since, refs.last_moved(vault.store, refs.fork_ref(fork)))
    _n, _b, ts = overlay_usage(vault.ws_dir(fork))
    if ts is not None:
        newest = max(newest, float(ts))
    return newest


def daemon_alive(pid: int, vault: Vault, started: float | None) -> bool:
    home = vault.home.path if vault.home is not None else None
    return registry.daemon_alive(pid, vault.name, home, started)


def mtime(path: str) -> float | None:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return None


def unlink_quiet(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
