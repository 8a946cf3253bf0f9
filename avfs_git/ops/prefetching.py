"""A mounted lazy fork's background prefetch (docs/lazy.md, "Prefetch in the background"),
started by the mount's daemon (fuse/daemon.py) once the mount serves and ended with it: the
settings read (core/vaults/lazyconfig.py), the vault's own fetches made to go first, and the
filler (core/store/prefetch.py) run on the tree the mount shows."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..core.errors import AvfsError
from ..core.store.prefetch import Demand, Filler, status_file
from ..core.vaults.lazyconfig import prefetch_budget

if TYPE_CHECKING:
    from ..core.vaults.vault import Vault


def start(vault: Vault, base_of: Callable[[], str], key: str) -> Filler | None:
    """Start the prefetch of what mount ``key`` serves (``base_of()``: the commit it shows
    now); None for a whole vault, with the prefetch off, or a setting that is not one
    (logged: ``avfs mount`` refuses such a setting before it starts a daemon, so only an
    edit made since gets here)."""
    if not vault.lazy:
        return None
    try:
        budget = prefetch_budget(vault.path, vault.home.path if vault.home is not None else None)
    except AvfsError as exc:
        logging.getLogger("avfs.prefetch").error("no prefetch: %s", exc.message)
        return None
    if budget is None:
        return None
    store = vault.store
    demand = Demand()
    store.promisor.demand = demand  # the mount's reads (and every fetch of this vault handle) go first

    def tree_of() -> str | None:
        return store.commit_tree(base_of())

    filler = Filler(store, tree_of, budget, demand, status_path=status_file(vault.path, key))
    filler.start()
    return filler
