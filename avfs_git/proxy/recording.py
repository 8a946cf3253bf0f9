"""After a ``proxy exec`` command ran: what it changed, carried back and committed (the
record before it landed with the commit after it), the quota counted, the audit record.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from typing import TYPE_CHECKING, Any

from ..core.errors import (
    AvfsError,
    BusyError,
    MountDiedError,
    NoSpaceError,
    QuotaExceededError,
    WriteBackIncompleteError,
)
from ..core.records import dataclass
from ..core.store import names
from ..core.vaults import audit
from .envelope import (
    BranchMove,
    Changed,
    Checkpoint,
    Commit,
    ExecResult,
    Mount,
    NotRecorded,
    OpenMerge,
    PlantedGitDir,
    RefFetched,
    RefRefused,
    State,
    short,
)
from .materialize import write_back
from .placement import worktree
from .stages import Before, CarriedBack, Placed, Plan, Ran, Recorded

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ..core.store import gitnames
    from ..core.types import Change
    from ..core.vaults.vault import Vault
    from ..core.workspace.workspace import Workspace


def untracked_by(ws: Workspace, old: str | None, new: str | None) -> set[str]:
    """The paths the branch's move from ``old`` to ``new`` deleted while the workspace
    still shows them: what the command's git untracked (`git rm --cached`, then commit)."""
    from ..core.store.treediff import diff_trees

    if old is None or new is None:
        return set()
    out: list[Change] = []
    diff_trees(ws.store, ws.store.commit_tree(old), ws.store.commit_tree(new), "", out)
    return {c.path for c in out if c.status == "deleted" and ws.exists(c.path)}


def committed(ws: Workspace, record: str | None, commit: str | None) -> list[Change]:
    """The changes ``commit`` makes on its parent ``record`` (none without a commit):
    renames paired as a status pairs them. O(changes): a diff of two trees."""
    from ..core.store.treediff import diff_trees, pair_renames

    if record is None or commit is None:
        return []
    out: list[Change] = []
    diff_trees(ws.store, ws.store.commit_tree(record), ws.store.commit_tree(commit), "", out)
    return pair_renames(out)


def under_any(path: str, roots: set[str]) -> bool:
    """True when ``path`` is one of ``roots`` or lies below one (O(depth))."""
    if "" in roots or path in roots:
        return True
    return any(a in roots for a in names.ancestors(path))


def over_quota(
    vault: Vault, outside0: int | None, changes: list[Change], fork: str | None = None
) -> QuotaExceededError | None:
    """After a command ran: count what it could fill outside the fork's own checked writes
    (the vault's ``objects/``, its caches, its worktree git dirs: each walked now, when
    the vault has a bytes quota; the fork's upper layer as the kernel counts it) and refuse its commit when the vault is now past its bytes
    quota and the command added to it (see docs/maintenance.md "quota"). The numbers are
    published for every process's next check, and a kernel-enforced limit is set again
    from them, so the mount refuses further writes.

    ``fork`` (the command's): the other forks' overlays are first taken at their published
    totals plus the slack (:meth:`~..core.vaults.quota.QuotaTracker.recount`), an upper
    bound that costs no read per fork; only when that bound is past the quota are they all
    read exactly, and the exact use decides, as without it."""
    added = any(c.status in ("added", "modified", "renamed", "type_changed") for c in changes)
    if vault.quota.limits()[0] is None:
        return None  # no bytes quota: nothing to count
    # what the command could write counted exactly, every time a bytes quota is set: a
    # cheaper "did the host's file systems grow" test (statvfs) missed a command's writes when anything else on the same
    # file system freed as much meanwhile (another process, the btrfs cleaner)
    use = vault.quota.recount(bound_for=fork)
    qb = use.quota_bytes
    if fork is not None and (qb is None or use.used_bytes <= qb):
        return None  # within the quota at most: exactly too
    if fork is not None:
        use = vault.quota.usage(rescan=False)  # the outside as counted just now, every overlay read
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
        f" are {vault.state_dir}/caches, git's state taken out of the git dirs {vault.state_dir}/gitstate), checkpoint, or raise the quota with `avfs quota set --bytes SIZE`",
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


def settle(ws: Workspace, seq0: int, timeout_s: float = 2.0) -> None:
    """Wait (bounded) until the mount has released the files the command wrote.

    The kernel sends FUSE's RELEASE after close() has returned, so right after the command
    exits the mount may still hold a file it wrote "in use"; a checkpoint then keeps its
    entry in the overlay (to lose nothing written later) and the fork would look changed
    after the commit."""
    from ..core.workspace.overlayentry import FILE

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


def fork_state(ws: Workspace[Any], uncheckpointed: int | None = None) -> State:
    """The fork's state for the envelope (``uncheckpointed``: the count of changes when
    it is known without a status)."""
    from ..core.workspace.mergestate import open_merge

    n = ws.since.count() if uncheckpointed is None else uncheckpointed
    st = open_merge(ws)
    merge = None
    if st is not None:
        merge = OpenMerge(source=st["source"], theirs=st["theirs"], unresolved=tuple(st["unresolved"]))
    return State(base=ws.base, uncheckpointed_changes=n, merge=merge)


def _not_recorded(items: Iterable[gitnames.NotRecorded]) -> tuple[NotRecorded, ...]:
    return tuple(NotRecorded(path=n.path, kind=n.kind, reason=n.reason) for n in items)


def _commit_of(cp: Any) -> Commit:
    return Commit(commit=cp.checkpoint.commit, parent=cp.checkpoint.parent, message=cp.checkpoint.message)


@dataclass(frozen=True, slots=True)
class _Landed:
    """What became of the record taken before the command: on the branch (with the commit
    of what the command changed on top, when it changed anything) or kept beside it."""

    checkpoint: Checkpoint
    commit: Commit | None = None
    not_recorded: tuple[NotRecorded, ...] = ()
    landed: bool = False
    op_id: int | None = None


def land(
    vault: Vault, fork: str, cp: Checkpoint, record: str, message: str, keep: bool, command: str
) -> _Landed:
    """Land the record of the fork before the command (a :func:`~..core.checkpoint.snapshot`)
    on the fork's branch, with the commit of what the command changed on top of it (none
    when it changed nothing). With ``keep`` (the command moved the branch itself, or
    ``--no-commit``), or when the fork moved meanwhile, it is kept beside the branch under
    a recovery ref instead (``checkpoint.ref``). The op log records it as the ``exec`` of
    ``command``."""
    from ..core.errors import RefMovedError
    from ..core.operations import checkpoint

    if not keep:
        try:
            saved = checkpoint.save(vault, fork, message=message, on=record, exec_of=command)
        except RefMovedError:
            pass
        else:
            return _Landed(
                checkpoint=dataclasses.replace(cp, on_branch=True),
                commit=_commit_of(saved) if saved.checkpoint.commit != record else None,
                not_recorded=_not_recorded(saved.not_recorded),
                landed=True,
                op_id=saved.op_id,
            )
    return _Landed(checkpoint=dataclasses.replace(cp, ref=checkpoint.keep_snapshot(vault, fork, record)))


def _caches_readable(vault: Vault, placed: Placed) -> None:
    """Give the owner's bits back to every directory of the caches the command could write
    (:func:`~..core.store.deeptree.writable_again`), before the quota counts them: a command
    owns what it writes there, and one ``chmod 000`` of a directory hid what it held from
    the count of a person who is not root (found in the twelfth round, NAME=attack3: 72 MiB
    in the pip cache under a 20 MiB quota, three runs, none refused). Only with a bytes
    quota (the count walks them then anyway)."""
    sb = placed.sandbox
    if sb is None or not sb.caches or vault.quota.limits()[0] is None:
        return
    from ..core.store.deeptree import writable_again

    for _name, d in sb.caches:
        writable_again(d)


def carry_back(
    vault: Vault, fork: str, sealed: Any, network: str | None = None, ws: Any = None, span: int | None = None
) -> CarriedBack:
    """Right after the command exits (before its changes are read): carry the fork's branch
    and the remote-tracking refs a fetch moved out of the sandbox's scratch refs
    (:func:`.seal.carry_back`; every other ref change is returned, refused), and drop from
    the mount's index the gitlinks the command added (returned, for ``not_recorded``).
    ``network``: the sandbox's (none | host | filtered). ``span``: the call's span in
    ``ws``'s journals, which notes the branch's move before it is made (:class:`.execspan.Carrying`)."""
    if sealed is None:
        return (), (), ()
    from ..core.store import refs
    from ..core.store.deeptree import writable_again
    from . import seal
    from .execspan import Carrying
    from .gitlinks import drop_gitlinks

    # what the command could write, its directories writable by their owner again before
    # anything there is removed or replaced (a `chmod 555` kept a person who is not root
    # from it)
    for top in (sealed.git_dir, sealed.dir):
        if top is not None:
            writable_again(top)
    note = None
    if span is not None and ws is not None:
        note = Carrying(ws, span, refs.reflog_path(vault.path, refs.fork_ref(fork)))
    try:
        try:
            done = seal.carry_back(vault, sealed, network, note.moving if note is not None else None)
        finally:
            if note is not None:
                note.done()  # (where the move's line is: found even when the carry-back then failed)
        refused = tuple(RefRefused(**r) for r in done.refused)
        fetched = tuple(RefFetched(**r) for r in done.fetched)
    finally:
        # whatever became of the refs: a gitlink left in the index has the person's `git
        # status` run the nested repository's config (its core.fsmonitor) on the host
        dropped = drop_gitlinks(vault, sealed, worktree(vault, fork))
    return refused, _not_recorded(dropped), fetched


def record(
    vault: Vault,
    fork: str,
    plan: Plan,
    before: Before,
    placed: Placed,
    ran: Ran,
    carried: CarriedBack,
) -> Recorded:
    """:func:`_record`, each file the command wrote read once when it is committed: the
    blobs its status hashes written into the pack the commit takes (record3:
    core/workspace/recordblobs.py)."""
    from ..core.workspace.recordblobs import one_read

    with one_read(plan.ws.overlay, plan.ws.store, on=plan.req.commit):
        return _record(vault, fork, plan, before, placed, ran, carried)


def _record(
    vault: Vault,
    fork: str,
    plan: Plan,
    before: Before,
    placed: Placed,
    ran: Ran,
    carried: CarriedBack,
) -> Recorded:
    """The fifth stage, after the command ran and :func:`carry_back` (``carried``: what it
    refused and the gitlinks it dropped): the mount settled (or the copy written back),
    what the command changed (read from the workspace's journals since ``before.start``),
    the quota counted, and one commit of those changes, with the record taken before the
    command landing under it."""
    ws, req, index_ran = plan.ws, plan.req, _index_of(placed.sealed)  # (index_ran: before the record)
    refused, gitlinks, fetched = carried
    from . import plantedgit

    planted: list[PlantedGitDir] = []
    if placed.copy is not None:  # (before the copy is written back into the fork)
        planted = plantedgit.set_aside(placed.root, [""], placed.at)
    mount, error = _after_run(vault, fork, ws, before, placed, ran.mount_unmoved)
    # the command moved the fork's branch itself (a `git commit` inside): the workspace
    # adopts git's commit, and the record taken before the command stays beside the branch
    moved = (tip1 := ws.tip()) != before.tip0
    if moved:
        ws.sync_base()
    # nothing written in the workspace since it was found clean (or, when it was not, since
    # the command started): no changes, and no status to take (a walk of the upper layer
    # with its files' ids: the largest cost of a command that writes nothing)
    untouched = ws.since.untouched(before.start if before.dirty_before else before.mark)
    written = ws.since.paths(before.start) if placed.copy is None and not untouched else set()  # (record6)
    if placed.sealed is not None and not untouched:
        from ..core.workspace import since
        from .gitlinks import nested_repos

        # a repository the command made at a submodule's path: git would run its config
        since_ns = before.start.t_ns - since.CTIME_SLACK_NS
        gitlinks += _not_recorded(nested_repos(placed.sealed, placed.root, since_ns))
    if placed.copy is None and placed.mount.backend != "fuse" and not untouched:
        from ..core.workspace import since
        from . import gitfifos

        # a FIFO the command left at a name git opens (`.gitignore`): the person's git waits on it
        made_ns = before.start.t_ns - since.CTIME_SLACK_NS
        gitlinks += _not_recorded(gitfifos.remove(placed.root, written, made_ns))
    if placed.copy is None and not untouched:
        # a repository the command planted below the root: what of it could run a program in
        # the person's later plain git (its config, hooks, a gitdir out of the fork) set aside
        planted = plantedgit.set_aside(placed.root, written, placed.at)
    if planted:
        plantedgit.remember(ws.state_dir, planted)
    changes, roots, untracked, ignored = _what_changed(ws, before, untouched, moved, tip1)
    _caches_readable(vault, placed)
    over = over_quota(vault, before.outside0, changes, fork)
    if over is not None:
        # what the command wrote stays (uncheckpointed in the fork; in the caches and the
        # vault as it left them): the person reads, checks out and removes what they choose
        error = over
    message = f"avfs proxy exec: {(command := short(req.command_text()))}"
    # the record stays beside the branch
    keep_record = moved or not req.commit or over is not None or before.git_busy
    checkpoint_, commit = before.checkpoint, None
    not_recorded: tuple[NotRecorded, ...] = ()
    landed, op_id = None, None  # (op_id: the op log's record of the commit, an ``exec``)
    if before.record is not None and before.checkpoint is not None:
        landed = land(vault, fork, before.checkpoint, before.record, message, keep_record, command)
        checkpoint_ = landed.checkpoint
    if landed is not None and landed.landed:
        untouched = False  # the record landed with the commit of what the command changed
        commit, not_recorded = landed.commit, _merged(landed.not_recorded, gitlinks)
        op_id = landed.op_id
        # what the command changed is that commit, on the record: not the workspace against
        # the base before the record (a file left uncheckpointed and deleted by the command
        # is no change from there, but the commit deletes it)
        changes = committed(ws, before.record, commit.commit if commit is not None else None)
    elif req.commit and changes and not before.in_merge and over is None:
        from ..core.operations import checkpoint

        def only(path: str) -> bool:
            if under_any(path, untracked):
                return False
            return under_any(path, roots) or any(under_any(r, {path}) for r in roots)

        cp = checkpoint.save(vault, fork, message=message, only=only if moved else None, exec_of=command)
        op_id = cp.op_id
        not_recorded = _merged(_not_recorded(cp.not_recorded), gitlinks)
        commit = _commit_of(cp) if cp.created else None
    elif changes:  # nothing committed (--no-commit, over the quota, in a merge): what a
        # checkpoint would leave out, as `avfs status` names it (it came only from a checkpoint
        # taken: a tree past PATH_MAX the command made, which `changes` cannot read, was in no
        # part of the envelope)
        not_recorded = _merged(_not_recorded(ws.not_recorded()), gitlinks)
    not_recorded = not_recorded or gitlinks
    refused = (*refused, *_staged_over(vault, ws, placed.sealed, before, untouched, index_ran, changes))
    return Recorded(
        changes=tuple(Changed(path=c.path, status=str(c.status), old_path=c.old_path) for c in changes),
        ignored=ignored,
        checkpoint=checkpoint_,
        commit=commit,
        branch_moved=BranchMove(old=before.tip0, new=tip1) if moved else None,
        not_recorded=not_recorded,
        refs_refused=refused,
        refs_fetched=fetched,
        planted_git_dirs=tuple(planted),
        mount=mount,
        state=fork_state(ws, 0 if untouched and not before.dirty_before else None),
        error=error,
        op_id=op_id,
    )


def _index_of(sealed: Any) -> tuple[int, int, int, int] | None:
    """The stat data of the mount's index now (None without a mount's git dir); what an
    index's patch put back before is forgotten (the record's own is reported)."""
    from ..mount.stagedplant import PUT_BACK
    from .seal import _index_stat

    if sealed is None or sealed.git_dir is None:
        return None
    PUT_BACK.pop(sealed.git_dir, None)
    return _index_stat(os.path.join(sealed.git_dir, "index"))


def _staged_over(
    vault: Vault,
    ws: Workspace,
    sealed: Any,
    before: Before,
    untouched: bool,
    index_ran: Any,
    changes: Iterable[Change],
) -> list[RefRefused]:
    """:func:`..mount.stagedplant.keep_staged_over` once the record is made (``sealed``: the run's
    mount git dir, if any), where the index changed in the run or the run wrote a name of
    git's own state (a half of a repository the index's other half completes: either may
    come from an earlier run). ``index_ran``: the index's stat data as the run (and the
    carry-back) left it, before the record: a record that moves the branch rewrites the
    index itself (the mount's index follows the fork's new commit, keeping what is
    staged), which stages nothing and is no reason to look (h-gitspawn1: a ``git
    diff-index`` of every recorded run before): that patch looks itself where a commit
    changes a name of git's own state (mount/stagedplant.py ``over_move``: a directory
    renamed into place, an ``avfs write`` before the run, review39), reported here.

    The run's names: its journal's and its ``changes``' (a directory renamed, replaced or
    swapped for a link is one name in the journal, ``mv foo src``: ``foo``, ``src``; its
    files are in ``changes``: ``src/HEAD``...). The journal's alone (review40 F4) let a
    ``--no-commit`` run's rename bring a half under a staged ``src/config`` unlooked at."""
    from ..core.workspace.plantedrule import dirs_of
    from ..mount.stagedplant import PUT_BACK, keep_staged_over, planted_reason

    if sealed is None or sealed.git_dir is None:
        return []
    # (the index's patch as it followed the record's commits: what it put back where they
    # brought git's own names, the half a staged path waited for, review39)
    early = PUT_BACK.pop(sealed.git_dir, None)
    out = [] if early is None else [RefRefused(**planted_reason(*early))]
    named = [*ws.since.paths(before.start), *(p for c in changes for p in (c.path, c.old_path) if p)]
    if index_ran == sealed.index and (untouched or not dirs_of(named)):
        return out
    return [*out, *(RefRefused(**r) for r in keep_staged_over(vault.store, sealed.git_dir, ws.view))]


def after_failure(
    vault: Vault,
    plan: Plan,
    before: Before,
    placed: Placed,
    carried: CarriedBack,
    error: AvfsError,
) -> tuple[Recorded | None, AvfsError]:
    """The record stage failed after the command ran (most often a full disk: the capture's
    blobs or commit, the op log, the journal): what the command left is named all the same
    (``changes``), as the commit that was made when only its record failed (the op log's
    ``details.done``: the branch's tip, its parent the record or the tip before), else as
    what stays uncheckpointed in the fork; an error whose hint said "nothing was changed"
    says what stays instead. (None, ``error``) when even that cannot be read."""
    try:
        ws = plan.ws
        tip1 = ws.tip()
        commit = None
        if error.details.get("done") and tip1 is not None and tip1 != before.tip0:
            fields = vault.store.commit_fields(tip1)
            parent = fields.parents[0] if fields.parents else None
            commit = Commit(commit=tip1, parent=parent, message=fields.message)
            changes, ignored = committed(ws, parent, tip1), 0
        else:
            changes, _roots, _untracked, ignored = _what_changed(ws, before, False, tip1 != before.tip0, tip1)
        state = fork_state(ws)
    except Exception:  # (the error that ended the call is the one to report)
        return None, error
    if commit is None and changes and "nothing was changed" in f"{error.message} {error.hint or ''}":
        # (the op log held or damaged as the commit took it, `OpLog.held`, says "nothing was
        # changed" in its message: the command's changes are there all the same)
        first = (
            "retry once that process is done (the lock's holder above)"
            if isinstance(error, BusyError)
            else "free some space under the avfs home"
            if isinstance(error, NoSpaceError)
            else "mend what the error names"
        )
        error = type(error)(
            f"{error.message.replace('nothing was changed', 'nothing was committed')}; the command ran:"
            f" the {len(changes)} path(s) it changed stay in the fork, uncheckpointed (`changes`)",
            hint=f"{first}, then `avfs checkpoint save` records them (`avfs status` lists them)",
            details={**error.details, "uncheckpointed": len(changes)},
        )
    return Recorded(
        changes=tuple(Changed(path=c.path, status=str(c.status), old_path=c.old_path) for c in changes),
        ignored=ignored,
        checkpoint=before.checkpoint,
        commit=commit,
        branch_moved=None,
        not_recorded=carried[1],
        refs_refused=carried[0],
        refs_fetched=carried[2],
        mount=placed.mount,
        state=state,
    ), error


def _merged(first: tuple[NotRecorded, ...], more: tuple[NotRecorded, ...]) -> tuple[NotRecorded, ...]:
    return first + tuple(g for g in more if g not in first)


def scrub_after(vault: Vault, fork: str, placed: Placed) -> None:
    """The worktree's git dir scrubbed of the links and FIFOs the person's git would follow,
    when the command could write it (a sandbox or a view over the live mount)."""
    if placed.copy is None and (placed.sandbox is not None or placed.view is not None):
        from ..core.vaults.registry import mount_key
        from ..mount.worktree import scrub

        scrub(vault, mount_key(fork, None))


def _after_run(
    vault: Vault, fork: str, ws: Workspace[Any], before: Before, placed: Placed, unmoved: bool = False
) -> tuple[Mount, AvfsError | None]:
    """The mount as the command left it (the files it wrote released, the worktree's git
    dir scrubbed of what the person's git would follow; whether the daemon is alive), or
    the copy written back: (the envelope's ``mount``, the error to report). ``unmoved``:
    the mount table did not change while the command ran (a mount's daemon serving the
    call in a ready sandbox: the daemon is this process), so the mount is there without
    reading the table and the registry again."""
    if placed.copy is None:
        from ..ops import mounts

        settle(ws, before.start.seq)
        scrub_after(vault, fork, placed)
        alive = unmoved or mounts.check(vault, fork) is not None
        mount = dataclasses.replace(placed.mount, alive_after=alive)
        if alive:
            return mount, None
        return mount, MountDiedError(
            "the mount daemon died while the command ran",
            hint="what was written before is in the overlay; see `avfs status`",
            details={"mountpoint": placed.root},
        )
    failed = write_back(ws, placed.copy)
    if not failed:
        return placed.mount, None
    placed.copy.keep = True  # the exit code stays the command's: it ran (see docs/proxy.md)
    return placed.mount, WriteBackIncompleteError(
        f"{len(failed)} path(s) the command wrote could not be written back to the fork",
        hint=f"they are still in {placed.root}; the rest was written back",
        details={"paths": failed[:50], "copy": placed.root},
    )


def _what_changed(
    ws: Workspace[Any], before: Before, untouched: bool, moved: bool, tip1: str | None
) -> tuple[list[Change], set[str], set[str], int]:
    """(the changes the command made, the paths it wrote, the paths its own commits
    untracked, how many paths it wrote that git ignores)."""
    if untouched:
        return [], set(), set(), 0
    from ..core.workspace.overlayentry import ignored_count  # the one count status and checkpoint give
    from ..core.workspace.wsbase import BASE_MOVE_OPS

    changes, ignored = ws.status_ignored()
    roots = ws.since.paths(before.start, but=BASE_MOVE_OPS if moved else frozenset())
    # what the command changed: not what was uncheckpointed before it, nor, after its
    # own `git commit`, what the view keeps of paths that commit left out (a file the
    # person untracked with `git rm --cached` stays a file, uncommitted, as in git),
    # nor what the command's commits took out of the branch (it untracked them)
    untracked = untracked_by(ws, before.tip0, tip1) if moved else set()
    if before.dirty_before or moved:
        changes = [
            c
            for c in changes
            if (under_any(c.path, roots) or (c.old_path and under_any(c.old_path, roots)))
            and not under_any(c.path, untracked)
        ]
    return changes, roots, untracked, ignored_count(ignored, roots)


def audit_record(res: ExecResult) -> dict[str, Any]:
    """The audit log's record of one call."""
    conf = res.confinement
    return {
        "kind": "proxy_exec",
        "request": res.request.to_dict() if res.request is not None else None,
        "decision": res.decision.to_dict() if res.decision is not None else None,
        "approval_token": res.approval.token if res.approval is not None else None,
        "checkpoint": res.checkpoint.commit if res.checkpoint is not None else None,
        "checkpoint_ref": res.checkpoint.ref if res.checkpoint is not None else None,
        "branch_moved": res.branch_moved.to_dict() if res.branch_moved is not None else None,
        "commit": res.commit.commit if res.commit is not None else None,
        "exit_code": res.exit_code,
        "timed_out": bool(res.result and res.result.timed_out),
        "duration_ms": res.duration_ms,
        "changed_paths": len(res.changes),
        "error": res.error.code if res.error is not None else None,
        "confinement": f"{conf.kind}/{conf.network}" if conf is not None else None,
    }


def write_audit(vault: Vault, res: ExecResult, sync: bool = True) -> int | None:
    """Append the audit record of ``res`` (fsynced unless not ``sync``); its offset in the
    log (the ``exec_id`` ``audit:OFFSET`` names it by), None when it could not be written
    (a warning on stderr: the envelope must still be printed)."""
    try:
        return audit.append(vault.state_dir, audit_record(res), sync=sync)
    except Exception as exc:  # the envelope must still be printed
        print(f"avfs: warning: cannot write the audit log: {exc}", file=sys.stderr)
        return None
