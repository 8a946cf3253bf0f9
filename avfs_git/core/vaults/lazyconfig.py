"""A lazy vault's settings (docs/lazy.md, "Settings"): how long one fetch from the promisor
remote may take, and the background prefetch of a mounted lazy fork (whether, and within
which bandwidth and disk budgets).

Each is a key of the vault's ``avfs/config.json``, else of the home's ``config.json``, else
its default; read when it is used (a fetch, a mount), so an edit applies to the next one
without reopening anything. A value that is not one is a :class:`~.errors.UsageError` naming
the file and the key, raised where it is used: nothing is fetched with a guessed value.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

from ..errors import UsageError
from ..store.prefetch import Budget
from ..store.promisor import FETCH_TIMEOUT_S, NEIGHBOURS, NEIGHBOURS_BYTES, PACKAGE_BYTES
from ..store.safeopen import read_settings

FETCH_TIMEOUT_KEY = "fetch_timeout_s"
MAX_FETCH_TIMEOUT_S = 24 * 3600.0

# the background prefetch of a mounted lazy fork (docs/lazy.md): off unless asked for (the
# point of a lazy vault is to fetch what is read; a fleet of mounts prefetching by default
# would multiply what every server sends), modest when on
PREFETCH_KEY = "prefetch"
BANDWIDTH_KEY = "prefetch_bandwidth"  # bytes of blob contents per second
DISK_KEY = "prefetch_disk_bytes"  # the vault's object store: the filler stops at this size
DEFAULT_BANDWIDTH = float(1 << 20)  # 1 MiB/s per mount
DEFAULT_DISK_BYTES = 1 << 30  # 1 GiB
MIN_BANDWIDTH = 1024.0  # below this a batch of one small file takes minutes
# what a demand read fetches besides its own blob (core/store/neighbours.py); 0: only it
NEIGHBOURS_KEY = "read_neighbours"  # how many other promised blobs, at most
NEIGHBOURS_BYTES_KEY = "read_neighbours_bytes"  # their total size, at most
MAX_NEIGHBOURS = 10_000
# whether fetches from a git:// server go over one kept connection (core/store/blobwire.py)
# what the first read of a Python package's module that must fetch brings of the package's
# other sources (core/store/neighbours.py): their total size at most; 0: nothing more
PACKAGE_BYTES_KEY = "read_package_bytes"
KEEP_CONNECTION_KEY = "keep_connection"
# whether `vault clone --lazy` makes the index kept for its default fork's tip before it
# answers (true: mount/keptmake.py ``at_clone``), by a process of its own started as it
# answers ("after": ``start_now``) or not at all (false): the first mount's first `git
# status` then patches it, for O(files) more work in the clone (docs/lazy.md)
INDEX_AT_CLONE_KEY = "index_at_clone"
# the default: not at the clone (docs/benchmarks.md, the thirty-first round, h-lazyrow8: made
# before the answer, row 1 of issue 30 went 0.08x -> 0.21-0.26x `git clone --bare` while
# the clone through its first mount's first `git status` took 1.2x the wall and CPU)
INDEX_AT_CLONE_DEFAULT = ""


def _load(path: str) -> dict[str, Any]:
    raw = read_settings(path)  # (a FIFO is not waited on)
    if raw is None:
        return {}
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise UsageError(f"cannot read {path}: {exc}") from exc
    return data if isinstance(data, dict) else {}


def lookup(vault_config: str, home_config: str | None, key: str) -> tuple[Any, str] | None:
    """(value, where) of ``key`` in the vault's config file, else the home's; None: unset."""
    for path in (vault_config, home_config):
        if path is None:
            continue
        cfg = _load(path)
        if key in cfg:
            return cfg[key], f"{path}: {key}"
    return None


def number(value: object, where: str, low: float, high: float, unit: str, *, low_open: bool = False) -> float:
    """``value`` as a number from ``low`` to ``high`` (``low`` itself excluded when
    ``low_open``), or a UsageError naming ``where``."""
    hint = f"a number of {unit} {'above' if low_open else 'from'} {low:g}{f' to {high:g}' if high < math.inf else ''}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UsageError(f"{where}: {value!r} is not a number of {unit}", hint=hint)
    out = float(value)
    if not (low < out if low_open else low <= out) or not out <= high:  # NaN fails too
        raise UsageError(f"{where}: {value!r} is out of range", hint=hint)
    return out


class FetchTimeout:
    """How long one fetch from a vault's promisor remote may take (seconds): the vault's
    ``fetch_timeout_s``, else the home's, else :data:`.promisor.FETCH_TIMEOUT_S`. Called at
    each fetch (:attr:`.promisor.Promisor.timeout_of`); holds file names only, so the
    promisor keeps no reference to the vault."""

    def __init__(self, vault_config: str, home_path: str | None) -> None:
        self.vault_config = vault_config
        self.home_config = os.path.join(home_path, "config.json") if home_path is not None else None

    def __call__(self) -> float:
        found = lookup(self.vault_config, self.home_config, FETCH_TIMEOUT_KEY)
        if found is None:
            return FETCH_TIMEOUT_S
        return number(found[0], found[1], 0.0, MAX_FETCH_TIMEOUT_S, "seconds", low_open=True)


class Neighbours:
    """What a demand read in a lazy vault fetches besides its own blob: (how many other
    promised blobs of its directory, their total bytes) from the vault's
    ``read_neighbours`` and ``read_neighbours_bytes``, else the home's, else
    :data:`.promisor.NEIGHBOURS` and :data:`.promisor.NEIGHBOURS_BYTES`. Called at each
    miss (:attr:`.promisor.Promisor.neighbours_of`).

    Raises:
        UsageError: a value that is not one (the file and the key named): the read fails
            before anything is fetched.
    """

    def __init__(self, vault_config: str, home_path: str | None) -> None:
        self.vault_config = vault_config
        self.home_config = os.path.join(home_path, "config.json") if home_path is not None else None

    def __call__(self) -> tuple[int, int]:
        count, size = NEIGHBOURS, NEIGHBOURS_BYTES
        found = lookup(self.vault_config, self.home_config, NEIGHBOURS_KEY)
        if found is not None:
            count = _whole(found, MAX_NEIGHBOURS, "blobs")
        found = lookup(self.vault_config, self.home_config, NEIGHBOURS_BYTES_KEY)
        if found is not None:
            size = _whole(found, float(1 << 40), "bytes")
        return count, size


class PackageBytes:
    """How many bytes of a Python package's other sources the first read of one of its
    modules that must fetch brings along (:func:`.neighbours.package_sources`): the vault's
    ``read_package_bytes``, else the home's, else :data:`.promisor.PACKAGE_BYTES`; 0:
    none. Called at each miss (:attr:`.promisor.Promisor.package_bytes_of`).

    Raises:
        UsageError: a value that is not a whole number of bytes (the file and the key
            named): the read fails before anything is fetched.
    """

    def __init__(self, vault_config: str, home_path: str | None) -> None:
        self.vault_config = vault_config
        self.home_config = os.path.join(home_path, "config.json") if home_path is not None else None

    def __call__(self) -> int:
        found = lookup(self.vault_config, self.home_config, PACKAGE_BYTES_KEY)
        if found is None:
            return PACKAGE_BYTES
        return _whole(found, float(1 << 40), "bytes")


class KeepConnection:
    """Whether a lazy vault's fetches from a ``git://`` server go over one kept protocol-v2
    connection (:mod:`.blobwire`) rather than one ``git fetch`` each: the vault's
    ``keep_connection`` (true/false), else the home's, else true. Called at each fetch
    (:attr:`.promisor.Promisor.keep_connection_of`).

    Raises:
        UsageError: a value that is not true or false (the file and the key named).
    """

    def __init__(self, vault_config: str, home_path: str | None) -> None:
        self.vault_config = vault_config
        self.home_config = os.path.join(home_path, "config.json") if home_path is not None else None

    def __call__(self) -> bool:
        found = lookup(self.vault_config, self.home_config, KEEP_CONNECTION_KEY)
        if found is None:
            return True
        if not isinstance(found[0], bool):
            raise UsageError(
                f"{found[1]}: {found[0]!r} is not true or false", hint='e.g. "keep_connection": false'
            )
        return found[0]


def index_at_clone(home_path: str) -> str:
    """When `vault clone --lazy` makes the index kept for the new vault's default fork, from
    the home's ``index_at_clone`` (a vault being cloned has no config of its own yet):
    ``"before"`` (true: before the clone answers), ``"after"`` (``"after"``: by a process
    of its own started as it answers) or ``""`` (false: not at the clone); else
    :data:`INDEX_AT_CLONE_DEFAULT`.

    Raises:
        UsageError: a value that is not true, false or "after" (the file and the key named).
    """
    found = lookup(os.path.join(home_path, "config.json"), None, INDEX_AT_CLONE_KEY)
    if found is None:
        return INDEX_AT_CLONE_DEFAULT
    if found[0] == "after":
        return "after"
    if not isinstance(found[0], bool):
        raise UsageError(
            f'{found[1]}: {found[0]!r} is not true, false or "after"', hint='e.g. "index_at_clone": false'
        )
    return "before" if found[0] else ""


def _whole(found: tuple[Any, str], high: float, unit: str) -> int:
    value, where = found
    out = number(value, where, 0, high, unit)
    if out != int(out):
        raise UsageError(f"{where}: {value!r} is not a whole number of {unit}", hint=f"e.g. {int(out)}")
    return int(out)


def _config_files(vault_path: str, home_path: str | None) -> tuple[str, str | None]:
    return (
        os.path.join(vault_path, "avfs", "config.json"),
        os.path.join(home_path, "config.json") if home_path is not None else None,
    )


def prefetch_budget(vault_path: str, home_path: str | None) -> Budget | None:
    """The budget of a mounted lazy fork's background prefetch (core/store/prefetch.py), or
    None when it is off: ``prefetch`` (true/false, default false), ``prefetch_bandwidth``
    (bytes per second, default 1 MiB), ``prefetch_disk_bytes`` (default 1 GiB), each the
    vault's, else the home's.

    Raises:
        UsageError: a value that is not one (the file and the key named).
    """
    vault_cfg, home_cfg = _config_files(vault_path, home_path)
    found = lookup(vault_cfg, home_cfg, PREFETCH_KEY)
    on = False
    if found is not None:
        if not isinstance(found[0], bool):
            raise UsageError(f"{found[1]}: {found[0]!r} is not true or false", hint='e.g. "prefetch": true')
        on = found[0]
    found = lookup(vault_cfg, home_cfg, BANDWIDTH_KEY)
    bandwidth = DEFAULT_BANDWIDTH
    if found is not None:
        bandwidth = number(found[0], found[1], MIN_BANDWIDTH, math.inf, "bytes per second")
    found = lookup(vault_cfg, home_cfg, DISK_KEY)
    disk = DEFAULT_DISK_BYTES
    if found is not None:
        disk = int(number(found[0], found[1], 0, float(1 << 62), "bytes"))
    return Budget(bandwidth, disk) if on else None
