"""What ``avfs doctor`` reports: its checks' names and one :class:`Finding` each (a stable
``code``: docs/maintenance.md lists them), made by :func:`finding`, which runs the fix
when asked to repair."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...core.records import dataclass

if TYPE_CHECKING:
    from ...core.vaults.vault import Vault

CHECKS = ("fsck", "objects", "overlays", "oplog", "remotes", "mounts", "state_dirs", "locks", "layers")


@dataclass(frozen=True, slots=True)
class Finding:
    vault: str | None
    check: str  # one of CHECKS
    code: str  # what was found, stable for scripts (docs/maintenance.md lists them)
    problem: str
    path: str | None
    repairable: bool
    repaired: bool
    hint: str | None = None
    # "problem": something to fix (doctor exits 1 while one is left); "warning": worth
    # knowing, nothing to fix (malformed objects git itself keeps in the upstream history)
    severity: str = "problem"


def finding(
    vault: Vault | None,
    check: str,
    code: str,
    problem: str,
    path: str | None,
    *,
    fix: Any = None,
    repair: bool = False,
    hint: str | None = None,
    severity: str = "problem",
) -> Finding:
    repaired = False
    if fix is not None and repair:
        fix()
        repaired = True
    return Finding(
        vault=None if vault is None else vault.name,
        check=check,
        code=code,
        problem=problem,
        path=path,
        repairable=fix is not None,
        repaired=repaired,
        hint=hint,
        severity=severity,
    )
