"""The values ``proxy exec``'s stages hand each other, each frozen once made:

plan (:func:`.admission.plan`: the decision, the confinement, where) -> :class:`Plan`;
before (:func:`.placement.before`: the exec lock, the checkpoint first) -> :class:`Before`;
place (:func:`.placement.place`: the mount or the copy, the sandbox or the view) -> :class:`Placed`;
run (:func:`.execute.run`) -> :class:`Ran`;
record (:func:`.recording.carry_back`, then :func:`.recording.record`: changes, commit) -> :class:`Recorded`;
and :func:`envelope`, the one place an :class:`~.envelope.ExecResult` is made of them.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from ..core.errors import EXIT_APPROVAL, EXIT_DENIED
from ..core.records import dataclass
from .envelope import (
    EXIT_AVFS_FAILED,
    EXIT_REFUSED,
    Approval,
    BranchMove,
    Changed,
    Checkpoint,
    Commit,
    Confinement,
    Decision,
    ExecRequest,
    ExecResult,
    ExecWarning,
    Isolation,
    Mount,
    NotRecorded,
    PlantedGitDir,
    RefFetched,
    RefRefused,
    Request,
    Run,
    State,
)

# what the carry-back refused, dropped from the index, and kept of a fetch
# (refs_refused, not_recorded, refs_fetched: .recording.carry_back)
CarriedBack = tuple[tuple[RefRefused, ...], tuple[NotRecorded, ...], tuple[RefFetched, ...]]

if TYPE_CHECKING:
    from ..core.errors import AvfsError
    from ..core.workspace.since import Mark
    from ..core.workspace.workspace import Workspace
    from ..policy import Policy
    from .materialize import Copy


@dataclass(frozen=True, slots=True)
class Plan:
    """What the call will do, decided before anything is touched: the request as checked
    (``req``: its stdin spooled when an approval binds it), the policy's decision, what the
    command will run in and where. ``refusal``: why it will not run (denied, approval
    required, no sandbox, a bad token); nothing after the plan happens then."""

    req: ExecRequest
    ws: Workspace[Any]
    policy: Policy
    request: Request
    cwd: str
    timeout_ms: int
    max_output: int
    mode: str  # fuse | materialized
    live: Any  # the live mount to reuse, or None
    root: str  # where the command's paths are judged from
    isolation: Isolation | None
    confinement: Confinement
    decision: Decision
    checkpoint_by_policy: bool
    approval: Approval | None = None
    refusal: AvfsError | None = None
    # a mount made for this call is kept warm this long without use (seconds; 0: unmounted
    # after the call); None when no mount will be made (a live one, --keep-mount, a copy)
    idle_timeout_s: float | None = None
    # the command runs git writing a tree from its index: on a lazy fork its blobs are
    # fetched first (:mod:`.lazyblobs`)
    git_writes_tree: bool = False


@dataclass(frozen=True, slots=True)
class Before:
    """The fork under the exec lock, before the command: the record of it (a commit that
    lands on the branch with the command's commit), and the marks its changes are read
    from."""

    checkpoint: Checkpoint | None
    record: str | None  # the record's commit, when one was made
    in_merge: bool
    tip0: str | None  # the branch before the command
    mark: Mark  # the fork as found (clean: nothing since)
    start: Mark  # when the command's changes begin
    dirty_before: bool  # uncheckpointed changes before the command
    outside0: int | None  # what the quota counts outside the forks, when it counts bytes
    span: int | None = None  # the command's span in the fork's change log (:mod:`.execspan`)
    # git in the mount was off the fork's branch or mid-operation (a bisect): the record,
    # when one was taken, stays beside the branch (its tree is git's checkout, not the fork's)
    git_busy: bool = False


@dataclass(frozen=True, slots=True)
class Placed:
    """Where the command runs: the mount or the copy, and what it runs in."""

    mount: Mount
    root: str
    copy: Copy | None
    argv: tuple[str, ...]
    cwd: str  # absolute, as the command sees it
    env: tuple[tuple[str, str], ...]
    at: str  # where the fork appears to the command
    confinement: Confinement
    view: Any = None  # an isolate.View
    sandbox: Any = None  # a confine.Sandbox
    sealed: Any = None  # a seal.Sealed


@dataclass(frozen=True, slots=True)
class Ran:
    """The command's run, or why it could not start (``error``: the sandbox or the view
    could not be set up; then ``run`` is None)."""

    run: Run | None
    exit_code: int
    confinement: Confinement
    isolation: Isolation | None
    error: AvfsError | None = None
    # the mount table did not change from before the command until after it (the ready
    # sandbox's mark, :meth:`.standby.Standby.unmoved`): the mount is still there
    mount_unmoved: bool = False


@dataclass(frozen=True, slots=True)
class Recorded:
    """What the command changed and what became of it."""

    changes: tuple[Changed, ...]
    ignored: int
    checkpoint: Checkpoint | None
    commit: Commit | None
    branch_moved: BranchMove | None
    not_recorded: tuple[NotRecorded, ...]
    refs_refused: tuple[RefRefused, ...]
    refs_fetched: tuple[RefFetched, ...]
    mount: Mount
    state: State
    error: AvfsError | None = None
    # what of a repository the command planted below the root was set aside (.plantedgit)
    planted_git_dirs: tuple[PlantedGitDir, ...] = ()
    op_id: int | None = None  # the op log's ``exec`` of the commit, named by exec_id once audited


def envelope(
    request: Request,
    plan: Plan | None,
    before: Before | None,
    placed: Placed | None,
    ran: Ran | None,
    recorded: Recorded | None,
    *,
    error: AvfsError | None,
    state: State | None,
    kept_ref: str | None,
    duration_ms: float,
    carried: CarriedBack = ((), (), ()),
) -> ExecResult:
    """The envelope of a call, from the stages it went through (``error``: the one that
    ended it; ``state``: the fork's, when no stage reached it; ``kept_ref``: the recovery
    ref of a record that never landed; ``carried``: what the carry-back refused and
    dropped, said when the record stage then failed)."""
    checkpoint = recorded.checkpoint if recorded is not None else before.checkpoint if before else None
    if kept_ref is not None and checkpoint is not None:
        checkpoint = dataclasses.replace(checkpoint, ref=kept_ref)
    run = ran.run if ran is not None else None
    if error is None and plan is not None:
        error = plan.refusal
    if error is None and ran is not None:
        error = ran.error
    if error is None and recorded is not None:
        error = recorded.error
    if run is not None:
        exit_code = run.exit_code
    elif error is not None:
        # the command did not run: the policy refusing it (denied, approval required, a
        # refused approval token) is 126; anything else is avfs failing (125)
        exit_code = EXIT_REFUSED if error.exit_code in (EXIT_DENIED, EXIT_APPROVAL) else EXIT_AVFS_FAILED
    else:
        exit_code = 0
    confinement = (
        ran.confinement
        if ran is not None
        else placed.confinement
        if placed
        else plan.confinement
        if plan
        else None
    )
    isolation = ran.isolation if ran is not None else plan.isolation if plan else None
    return ExecResult(
        request=plan.request if plan is not None else request,
        decision=plan.decision if plan is not None else None,
        approval=plan.approval if plan is not None else None,
        checkpoint=checkpoint,
        mount=recorded.mount if recorded is not None else placed.mount if placed else None,
        isolation=isolation,
        confinement=confinement,
        result=run,
        changes=recorded.changes if recorded is not None else (),
        ignored=recorded.ignored if recorded is not None else 0,
        commit=recorded.commit if recorded is not None else None,
        branch_moved=recorded.branch_moved if recorded is not None else None,
        not_recorded=recorded.not_recorded if recorded is not None else carried[1],
        refs_refused=recorded.refs_refused if recorded is not None else carried[0],
        refs_fetched=recorded.refs_fetched if recorded is not None else carried[2],
        planted_git_dirs=recorded.planted_git_dirs if recorded is not None else (),
        warnings=_warnings(recorded, plan.request if plan is not None else request, run),
        state=recorded.state if recorded is not None else state,
        error=error,
        exit_code=exit_code,
        duration_ms=duration_ms,
    )


def _warnings(recorded: Recorded | None, request: Request, run: Run | None) -> tuple[ExecWarning, ...]:
    """What of the call the caller may not have meant (.callwarnings)."""
    if run is None:
        return ()
    from .callwarnings import committed, one_argument

    ours = committed(recorded.changes) if recorded is not None and recorded.commit is not None else ()
    return ours + one_argument(request.argv, run.exit_code)
