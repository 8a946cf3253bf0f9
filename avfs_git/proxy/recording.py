"""After a ``proxy exec`` command ran: what it changed, carried back and committed (the
record before it landed with the commit after it), the quota counted, the audit record.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from typing import TYPE_CHECKING, Any

from ..core.errors import QuotaExceededError
from ..core.store import names
from ..core.types import Change
from ..core.vaults import audit
from .envelope import ExecResult
from .placement import _worktree

if TYPE_CHECKING:
    from ..core.vaults.vault import Vault
    from ..core.workspace.workspace import Workspace


def _change_dict(c: Change) -> dict[str, Any]:
    d: dict[str, Any] = {"path": c.path, "status": str(c.status)}
    if c.old_path is not None:
        d["old_path"] = c.old_path
    return d


def _untracked_by(ws: Workspace, old: str | None, new: str | None) -> set[str]:
    """The paths the branch's move from ``old`` to ``new`` deleted while the workspace
    still shows them: what the command's git untracked (`git rm --cached`, then commit)."""
    from ..core.store.treediff import diff_trees

    if old is None or new is None:
        return set()
    out: list[Change] = []
    diff_trees(ws.store, ws.store.commit_tree(old), ws.store.commit_tree(new), "", out)
    return {c.path for c in out if c.status == "deleted" and ws.exists(c.path)}


def _under_any(path: str, roots: set[str]) -> bool:
    """True when ``path`` is one of ``roots`` or lies below one (O(depth))."""
    if "" in roots or path in roots:
        return True
    return any(a in roots for a in names.ancestors(path))


def _state(ws: Workspace, uncheckpointed: int | None = None) -> dict[str, Any]:
    """The fork's state for the envelope (``uncheckpointed``: the count of changes when
    it is known without a status)."""
    from ..core.workspace.mergestate import open_merge

    n = ws.since.count() if uncheckpointed is None else uncheckpointed
    out: dict[str, Any] = {"base": ws.base, "uncheckpointed_changes": n}
    st = open_merge(ws)
    if st is not None:
        out["merge"] = {k: st[k] for k in ("source", "theirs", "unresolved")}
    return out


def _land(vault: Vault, fork: str, res: ExecResult, record: str, message: str, keep: bool) -> bool:
    """Land the record of the fork before the command (a :func:`~..core.checkpoint.snapshot`)
    on the fork's branch, with the commit of what the command changed on top of it (none
    when it changed nothing); True when it landed. With ``keep`` (the command moved the
    branch itself, or ``--no-commit``), or when the fork moved meanwhile, it is kept
    beside the branch under a recovery ref instead (``checkpoint.ref``), and False."""
    from ..core.errors import RefMovedError
    from ..core.operations import checkpoint

    assert res.checkpoint is not None
    if not keep:
        try:
            cp = checkpoint.save(vault, fork, message=message, on=record)
        except RefMovedError:
            pass
        else:
            res.checkpoint["on_branch"] = True
            res.not_recorded = [dataclasses.asdict(n) for n in cp.not_recorded]
            if cp.checkpoint.commit != record:
                res.commit = {
                    "commit": cp.checkpoint.commit,
                    "parent": cp.checkpoint.parent,
                    "message": cp.checkpoint.message,
                }
            return True
    res.checkpoint["ref"] = checkpoint.keep_snapshot(vault, fork, record)
    return False


def _keep_unlanded(vault: Vault, fork: str, res: ExecResult, record: str) -> None:
    """Name ``record`` by a recovery ref when it neither landed nor was kept (the call
    failed between the record and its landing)."""
    cp = res.checkpoint
    if cp is not None and not cp["on_branch"] and cp["ref"] is None:
        from ..core.operations import checkpoint

        cp["ref"] = checkpoint.keep_snapshot(vault, fork, record)


def _carry_back(vault: Vault, fork: str, sealed: Any, res: ExecResult) -> list[dict[str, str]]:
    """Right after the command exits (before its changes are read): carry the fork's branch
    out of the sandbox's scratch refs (:func:`.seal.carry_back`; every other ref change is
    reported in ``refs_refused``), and drop from the mount's index the gitlinks the command
    added (returned, for ``not_recorded``)."""
    if sealed is None:
        return []
    from . import seal

    res.refs_refused = seal.carry_back(vault, sealed).refused
    return [dataclasses.asdict(n) for n in seal.drop_gitlinks(vault, sealed, _worktree(vault, fork))]


def _over_quota(vault: Vault, outside0: int | None, changes: list[Change]) -> QuotaExceededError | None:
    """After a command ran: count what it could fill outside the fork's own checked writes
    (the vault's ``objects/``, its caches, its worktree git dirs: each walked now, when
    the vault has a bytes quota; the fork's upper layer as the kernel counts it) and refuse its commit when the vault is now past its bytes
    quota and the command added to it (see docs/maintenance.md "quota"). The numbers are
    published for every process's next check, and a kernel-enforced limit is set again
    from them, so the mount refuses further writes."""
    added = any(c.status in ("added", "modified", "renamed", "type_changed") for c in changes)
    if vault.quota.limits()[0] is None:
        return None  # no bytes quota: nothing to count
    # counted exactly, every time a bytes quota is set: a cheaper "did the host's file
    # systems grow" test (statvfs) missed a command's writes when anything else on the same
    # file system freed as much meanwhile (another process, the btrfs cleaner)
    use = vault.quota.recount()
    outside = use.objects_bytes + use.caches_bytes + use.git_dirs_bytes
    grew = outside - outside0 if outside0 is not None else 0
    qb = use.quota_bytes
    if qb is None or use.used_bytes <= qb or (grew <= 0 and not added):
        return None
    if use.layers_bytes is not None or grew > 0:
        vault.sync_kernel_quota()
    return QuotaExceededError(
        f"the command took vault {vault.name} past its quota: it uses {use.used_bytes} of {qb} bytes"
        f" (git objects {use.objects_bytes}, caches {use.caches_bytes}, worktree git dirs"
        f" {use.git_dirs_bytes}, forks' files {use.used_bytes - outside}); its changes were not committed",
        hint="they are kept uncheckpointed in the fork (`avfs status`); rm what is not needed (the caches"
        f" are {vault.state_dir}/caches), checkpoint, or raise the quota with `avfs quota set --bytes SIZE`",
        details={
            "what": "bytes",
            "used": use.used_bytes,
            "adding": max(grew, 0),
            "quota": qb,
            "objects_bytes": use.objects_bytes,
            "caches_bytes": use.caches_bytes,
            "git_dirs_bytes": use.git_dirs_bytes,
        },
    )


def _settle(ws: Workspace, seq0: int, timeout_s: float = 2.0) -> None:
    """Wait (bounded) until the mount has released the files the command wrote.

    The kernel sends FUSE's RELEASE after close() has returned, so right after the command
    exits the mount may still hold a file it wrote "in use"; a checkpoint then keeps its
    entry in the overlay (to lose nothing written later) and the fork would look changed
    after the commit."""
    from ..core.workspace.overlay import FILE

    if ws.overlay.upper_active():
        return  # an overlay mount: the kernel wrote the files itself, nothing holds them
    fids = [e.fileid for e in ws.overlay.all() if e.kind == FILE and e.fileid and e.seq > seq0]
    deadline = time.monotonic() + timeout_s
    delay = 0.001
    while fids and time.monotonic() < deadline:
        fids = [f for f in fids if ws.overlay.in_use(f)]
        if fids:
            time.sleep(delay)
            delay = min(delay * 2, 0.05)


def _audit(vault: Vault, res: ExecResult, sync: bool = True) -> bool:
    """Append the audit record of ``res`` (fsynced unless not ``sync``); False when it
    could not be written (a warning on stderr: the envelope must still be printed)."""
    rec = {
        "kind": "proxy_exec",
        "request": res.request,
        "decision": res.decision,
        "approval_token": (res.approval or {}).get("token"),
        "checkpoint": (res.checkpoint or {}).get("commit"),
        "checkpoint_ref": (res.checkpoint or {}).get("ref"),
        "branch_moved": res.branch_moved,
        "commit": (res.commit or {}).get("commit"),
        "exit_code": res.exit_code,
        "timed_out": bool(res.result and res.result["timed_out"]),
        "duration_ms": res.duration_ms,
        "changed_paths": len(res.changes),
        "error": (res.error or {}).get("code"),
        "confinement": f"{res.confinement['kind']}/{res.confinement['network']}" if res.confinement else None,
    }
    try:
        audit.append(vault.state_dir, rec, sync=sync)
    except Exception as exc:  # the envelope must still be printed
        print(f"avfs: warning: cannot write the audit log: {exc}", file=sys.stderr)
        return False
    return True
