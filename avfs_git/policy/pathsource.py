"""Where a home's vaults get their forks' path rules (``Home(paths=POLICY_PATHS)``): the
policy files of the home and the vault, read through :class:`.engine.Policy` and kept
while neither file changes.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from .pathrules import PathRules


class PathRulesSource:
    """Where a home's vaults get their forks' path rules (``Home(paths=...)``): the policy
    files of the home and the vault, re-read when one changes (a ``stat`` of each per ask,
    so a long-lived mount follows an edited policy). Thread-safe.

    Raises (from :meth:`rules`) :class:`~avfs_git.core.errors.PolicyError` when a file is
    not a valid policy: every write then fails closed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, str | None, str | None], tuple[tuple[Any, ...], PathRules]] = {}

    def rules(self, home_dir: str, vault_dir: str | None, fork: str | None) -> PathRules:
        # (the policy's model and rules on the first ask: a home is opened by commands that
        # never ask, a cold `avfs gc` among them)
        from .model import POLICY_FILE
        from .pathrules import NO_RULES

        files = [os.path.join(home_dir, POLICY_FILE)]
        if vault_dir is not None:
            files.append(os.path.join(vault_dir, "avfs", POLICY_FILE))
        sig = tuple(_stat_sig(f) for f in files)
        key = (home_dir, vault_dir, fork)
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None and hit[0] == sig:
            return hit[1]
        if any(sig):
            from .engine import Policy  # (its import, the policy model's: only for a policy file)

            got = Policy.load(home_dir, vault_dir).path_rules(fork)
        else:
            got = NO_RULES
        with self._lock:
            if len(self._cache) > 256:
                self._cache.clear()
            self._cache[key] = (sig, got)
        return got


def _stat_sig(path: str) -> tuple[int, int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


POLICY_PATHS: Final = PathRulesSource()
"""avfs's source of path rules: what the front ends give their homes."""
