"""``proxy exec``: the one execution boundary for agents.

resolve the workspace -> classify the command (policy) -> decide -> checkpoint first when
the policy says so (or when earlier changes are not checkpointed, so the commit holds the
command's changes only) -> ensure a mount (reuse a live one, or mount for this call) ->
run it there with a timeout -> read what changed -> commit it as one commit -> one result.

:func:`exec_in` is the in-process API (``avfs_git.exec_in(ws, argv)``).

Every path ends in one :class:`ExecResult` (denied, awaiting approval, timed out, failed,
not found, avfs itself failing): :func:`execute` does not raise for any of them. Where FUSE
is missing (or ``mode="materialized"``), the tree is copied into a temporary directory, the
command runs there, and what differs afterwards is written back (``mode: materialized``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import subprocess
import tempfile
import threading
import time
from typing import TYPE_CHECKING, Any

from ..core.errors import (
    EXIT_DENIED,
    ApprovalRequiredError,
    AvfsError,
    InternalError,
    IsolationError,
    IsolationFailed,
    MountDiedError,
    PolicyDeniedError,
    SandboxFailed,
    UsageError,
    WriteBackIncompleteError,
    unexpected,
)
from ..core.types import Change
from ..core.vaults import audit
from . import approval, runner

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence

    from ..core.vaults.home import Home
    from ..core.vaults.vault import Vault
    from ..core.workspace.workspace import Workspace
    from ..policy import Policy
    from .standby import Standbys

from .admission import (
    _approved,
    _check_cwd,
    _decision_dict,
    _exec_lock,
    _result_dict,
    _short,
    _stdin_digest,
    _validate,
)
from .envelope import EXIT_AVFS_FAILED, EXIT_REFUSED, ExecRequest, ExecResult, _request_dict
from .materialize import _materialize, _write_back
from .placement import (
    _choose_mode,
    _confinement,
    _ensure_mount,
    _env,
    _git_writable,
    _isolation,
    _no_sandbox,
    _planned_root,
    _sandbox,
    _with_identity,
    _worktree,
)
from .recording import (
    _audit,
    _carry_back,
    _change_dict,
    _keep_unlanded,
    _land,
    _over_quota,
    _settle,
    _state,
    _under_any,
    _untracked_by,
)


def execute(
    home: Home,
    vault: Vault,
    fork: str,
    req: ExecRequest,
    *,
    policy: Policy | None = None,
    cancel: threading.Event | None = None,
    after: list[Callable[[], None]] | None = None,
    standbys: Standbys | None = None,
    signals: bool = False,
) -> ExecResult:
    """Run one request through the whole lifecycle; never raises (errors are in the result).
    ``cancel``: stop the command when it is set (a client of the exec server went away).
    ``signals`` (the CLI, a process of its own): SIGINT, SIGTERM and SIGHUP while the
    command runs are passed on to it, and the result reports the run (see
    :func:`_interruptible`); else they reach the caller as they would.
    ``after``: where to leave work that may wait until the result is delivered (the audit
    record's fsync: the record itself is written before this returns). ``standbys``: the
    sandboxes a mount's daemon keeps ready (:mod:`.standby`): the command starts in one when
    it fits, and with ``after``, the next one is made ready once the result is delivered."""
    t0 = time.monotonic()
    res = ExecResult(request=_request_dict(vault.name, fork, req, max(req.timeout_ms or 0, 0)))
    cleanup: list[Any] = []
    try:
        with _identity(req):
            _execute(home, vault, fork, req, res, policy, cleanup, cancel, standbys, after, signals)
    except AvfsError as exc:
        res.error = exc.to_dict()
        if res.result is None:
            # the command did not run: a refused approval token is the policy refusing it
            # (126); anything else is avfs failing (125)
            res.exit_code = EXIT_REFUSED if exc.exit_code == EXIT_DENIED else EXIT_AVFS_FAILED
    except Exception as exc:  # an avfs bug (or a full disk): still one envelope
        res.error = unexpected(exc).to_dict()
        if res.result is None:
            res.exit_code = EXIT_AVFS_FAILED
    finally:
        for fn in reversed(cleanup):
            try:
                fn()
            except Exception as exc:
                if res.error is None:
                    res.error = InternalError(f"cleanup failed: {exc}").to_dict()
        res.duration_ms = round((time.monotonic() - t0) * 1000, 3)
        if _audit(vault, res, sync=after is None) and after is not None:
            after.append(functools.partial(audit.sync, vault.state_dir))
    return res


def _identity(req: ExecRequest) -> Any:
    """The commits of an exec run for a caller whose environment came with the request (a
    mount's daemon serving a client) take the caller's ``GIT_AUTHOR_*``/``GIT_COMMITTER_*``."""
    if req.base_env is None:
        return contextlib.nullcontext()  # this process' own environment: the home has it
    from ..core.store import identity

    return identity.using(identity.from_environ(dict(req.base_env)))


def _execute(
    home: Home,
    vault: Vault,
    fork: str,
    req: ExecRequest,
    res: ExecResult,
    policy: Policy | None,
    cleanup: list[Any],
    cancel: threading.Event | None = None,
    standbys: Standbys | None = None,
    after: list[Callable[[], None]] | None = None,
    signals: bool = False,
) -> None:
    from ..policy import Outcome
    from ..policy import Policy as PolicyCls

    _validate(req)
    ws = vault.workspace(fork)
    cwd = _check_cwd(ws, req.cwd)
    pol = (
        policy
        if policy is not None
        else PolicyCls.load(home.path, vault.path, cache_dir=home.settings.cache_dir)
    )
    timeout_ms = req.timeout_ms or pol.timeout_ms
    max_output = req.max_output_bytes if req.max_output_bytes is not None else pol.max_output_bytes
    res.request = _request_dict(vault.name, fork, req, timeout_ms)
    res.request["cwd"] = cwd

    mode, live = _choose_mode(vault, fork, req.mode)
    root = live.mountpoint if live is not None else _planned_root(home, vault, fork, mode)
    abs_cwd = os.path.join(root, cwd) if cwd else root
    res.isolation = _isolation(vault, req, pol.confine)
    res.confinement = _confinement(req, res.isolation, pol.confine)
    if res.isolation is not None and res.isolation["reason"] is None:
        # the command will see the fork at the project's path: judge its paths from there
        root = res.isolation["path"]
        abs_cwd = os.path.join(root, cwd) if cwd else root

    decision = pol.classify(req.shell if req.shell is not None else list(req.argv or ()), root, abs_cwd)
    res.decision = _decision_dict(decision)
    action = Outcome(decision.action)
    if res.confinement["kind"] == "bwrap":
        from . import confine

        res.confinement["network"] = confine.network_for(
            res.decision["categories"],
            res.decision["action"],
            pol.network,
            pol.network_allow,
            tuple(c.rule for c in decision.commands),
        )
        if res.confinement["network"] == "filtered":
            from . import netproxy

            why_not = netproxy.available()
            if why_not is not None:  # no way to filter: no network at all, and why
                res.confinement.update(
                    network="none", network_reason=f"{why_not}: no network instead of filtered"
                )
            else:
                res.confinement["network_allow"] = list(pol.network_allow)
                res.confinement["network_refused"] = []
    if action is Outcome.DENY:
        res.exit_code = EXIT_REFUSED
        res.error = PolicyDeniedError(
            f"denied by policy: {decision.reason}",
            hint="see `avfs policy check -- CMD` for why",
            details={"rule": decision.rule},
        ).to_dict()
        res.state = _state(ws)
        return
    if res.confinement["kind"] == "none":  # no sandbox here, and the policy allows no weaker view
        res.state = _state(ws)
        raise _no_sandbox(res.confinement["reason"])
    if action is Outcome.REQUIRE_APPROVAL:
        # bound to the bytes on stdin: read first (into a file) when it is a stream
        stdin, stdin_sha = _stdin_digest(req.stdin, cleanup)
        req = dataclasses.replace(req, stdin=stdin)
        bound = _approved(res.request, req, stdin_sha)
        if req.approve is None:
            res.approval = approval.issue(home.path, bound, pol.hash)
            res.approval["stdin_sha256"] = stdin_sha
            res.exit_code = EXIT_REFUSED
            res.error = ApprovalRequiredError(
                f"this command needs approval: {decision.reason}",
                hint=(
                    f"a person approves it with `avfs proxy approve {res.approval['token']}` in a terminal;"
                    " then call exec again with the same arguments plus approve: TOKEN"
                    if req.require_person_approval
                    else "rerun it with --approve TOKEN once a person approves"
                ),
                details={"rule": decision.rule, "token": res.approval["token"]},
            ).to_dict()
            res.state = _state(ws)
            return
        approval.consume(home.path, req.approve, bound, pol.hash, require_person=req.require_person_approval)
        res.approval = {"token": req.approve, "used": True}
    elif req.approve is not None:
        raise UsageError("--approve given for a command that needs no approval")

    # one command at a time per fork, from its checkpoint to its commit: a second one would
    # commit the first one's files as its own (see docs/proxy.md)
    cleanup.append(_exec_lock(vault, fork))
    # checkpoint first: policy, request, or earlier uncheckpointed changes (so the commit
    # made afterwards holds exactly what the command changed)
    reason = None
    # what the command changed is read from the workspace's journals (ws.since): the upper
    # layer's too when this runs in the overlay mount's daemon, not a walk of the upper layer
    dirty: bool | None = None  # uncheckpointed changes, as of `mark`
    mark = ws.since.mark()
    if action is Outcome.ALLOW_WITH_CHECKPOINT:
        reason = "policy"
    elif req.checkpoint == "always":
        reason = "requested"
    elif req.commit:
        dirty = ws.since.dirty()
        if dirty:
            reason = "uncheckpointed_changes"
    from ..core.operations import merge as merging

    # a merge with written conflicts is open: the command runs in it, and nothing is
    # checkpointed or committed (its changes are part of the merge's resolution, which
    # `merge --continue` commits with two parents); a checkpoint the policy or the request
    # wants first cannot be taken, so then it does not run (see docs/proxy.md)
    in_merge = merging.merge_state(ws) is not None
    if in_merge:
        if reason in ("policy", "requested"):
            res.state = _state(ws)
            merging.refuse_if_merging(ws, f"the checkpoint this command needs first ({reason})")
        reason = None
    # the record of the fork before the command: a commit of the workspace on its base that
    # lands on the fork's branch with the commit after the command, unless the command
    # moved the branch itself (a `git commit` inside: git's commit takes precedence, and
    # the record is kept beside the branch; see docs/proxy.md, Git inside)
    record: str | None = None
    if reason is not None:
        from ..core.operations import checkpoint  # (loaded only when committing)

        record = checkpoint.snapshot(vault, fork, f"avfs proxy exec: before `{_short(req.command_text())}`")
        res.checkpoint = {
            "commit": record or ws.base,
            "created": record is not None,
            "reason": reason,
            "on_branch": record is None,  # the base is on it; a record lands after the command
            "ref": None,
        }
        if record is not None:
            # the call failing before the record landed (the sandbox not set up...): it is
            # kept beside the branch all the same, as its id in the envelope says
            cleanup.append(functools.partial(_keep_unlanded, vault, fork, res, record))
        dirty = None
    tip0 = ws.tip()
    if dirty is None:
        mark = ws.since.mark()
        dirty = ws.since.dirty()
    dirty_before = dirty
    # what the quota counts outside the forks (cheap), when there is a bytes quota
    outside0 = vault.quota.outside_bytes() if vault.quota.limits()[0] is not None else None
    start = ws.since.mark()  # the command's changes are those made since

    if mode == "fuse":
        root, reused, backend = _ensure_mount(home, vault, fork, live, req.keep_mount, cleanup)
        res.mount = {"mountpoint": root, "mode": "fuse", "reused": reused, "backend": backend}
    else:
        copy = _materialize(home, ws, cleanup)
        root = copy.root
        res.mount = {"mountpoint": root, "mode": "materialized", "reused": False}
    abs_cwd = os.path.join(root, cwd) if cwd else root

    argv = list(req.argv) if req.argv is not None else ["/bin/sh", "-c", req.shell or ""]
    view = None
    sandbox = None
    iso = res.isolation
    conf = res.confinement
    # where the command sees the fork: the project's path (an isolate view); in the
    # sandbox, the vault's one path for every fork (so the absolute paths pip, npm, cmake or
    # cargo write in one fork stay right in a fork of it); on the host, where it is
    if iso is not None and iso["reason"] is None:
        at = iso["path"]
    elif conf["kind"] == "bwrap":
        from . import confine

        at = confine.stable_path(vault.name)
    else:
        at = root
    at_cwd = os.path.join(at, cwd) if cwd else at
    sealed: Any = None
    if conf["kind"] == "bwrap":
        from . import confine

        env = _env(req, vault.name, fork, at, at_cwd)
        # the policy's `~/` is the caller's own home, never a HOME the request asks for (which
        # would move what is shown, and what is never shown, of the host)
        caller = dict(req.base_env) if req.base_env is not None else os.environ
        sandbox = _sandbox(
            vault, fork, root, at, at_cwd, conf, pol, env.get("HOME"), mode, home.path, caller.get("HOME")
        )
        if iso is None and mode == "fuse" and confine.can_alias(sandbox, root):
            # the mount point too, as a link to the vault's path, and the command's working
            # directory through it: its shell's `pwd` and $PWD say the path the agent knows
            # (and the fork is found by it), while the kernel's (`pwd -P`, getcwd(), what
            # pip, npm or cmake write) is the vault's one path
            shown_cwd = os.path.join(root, cwd) if cwd else root
            sandbox = dataclasses.replace(sandbox, cwd=shown_cwd, aliases=(root,))
            env = _env(req, vault.name, fork, root, shown_cwd)
        if mode == "fuse":
            from . import seal

            # under the exec lock, right before the command: the scratch the sandbox binds
            sealed = seal.prepare(vault, fork, _worktree(vault, fork))
            shown = sandbox.shown + tuple((target, source) for source, target in sealed.state_binds)
            sandbox = dataclasses.replace(sandbox, sealed=sealed.binds, shown=shown)
        env = confine.environment(_with_identity(env, ws), sandbox)
        abs_cwd = sandbox.cwd
    elif conf["kind"] == "namespace":  # the hand-made view: asked for, or the sandbox's fallback
        from . import isolate

        host = iso["host"] if iso is not None and iso["host"] != "confined" else "hidden"
        env = _env(req, vault.name, fork, at, at_cwd)
        if host != "writable":  # the host's home (and its ~/.gitconfig) may be hidden
            env = _with_identity(env, ws)
        keep = (vault.path,) if host != "writable" else ()  # so git works in the fork
        writable, pinned = _git_writable(vault, fork) if keep and mode == "fuse" else ((), ())
        binds: tuple[tuple[str, str, bool], ...] = ()
        if keep and mode == "fuse":
            from . import seal

            sealed = seal.prepare(vault, fork, _worktree(vault, fork))
            binds = sealed.binds + tuple((src, dst, False) for src, dst in sealed.state_binds)
        view = isolate.plan(
            root, at, host, cwd, keep, env.get("HOME"), writable=writable, pinned=pinned, sealed=binds
        )
        abs_cwd = view.cwd
    else:
        env = _env(req, vault.name, fork, root, abs_cwd)
    proxy = None
    try:
        if sandbox is not None and sandbox.network == "filtered":
            from .netproxy import FilterProxy

            proxy = FilterProxy(pol.network_allow)
            cleanup.append(proxy.stop)  # stopped at once below; this only if the run raises
            try:
                proxy.start()
            except OSError as exc:
                raise IsolationError(
                    f"the filtering network proxy could not start: {exc}; the command did not run",
                    hint="see docs/proxy.md (Network by policy)",
                    details={"network": "filtered"},
                ) from None
            sandbox = dataclasses.replace(sandbox, proxy_socket=proxy.path)
        ready = None
        if standbys is not None and sandbox is not None and proxy is None and req.stdin == subprocess.DEVNULL:
            ready = standbys.take(sandbox)
            if after is not None:
                after.append(functools.partial(standbys.prepare, sandbox))
        with _interruptible(cancel, signals) as stop:
            run = runner.run(
                argv,
                cwd=abs_cwd,
                env=env,
                timeout_ms=timeout_ms,
                max_output=max_output,
                stdin=req.stdin,
                kill_grace_ms=req.kill_grace_ms,
                cancel=stop,
                view=view,
                sandbox=sandbox,
                standby=ready,
            )
    except Exception as exc:
        if isinstance(exc, SandboxFailed):
            # not a fallback: bwrap runs here (probed), so this request itself is at fault
            conf["reason"] = f"setting up the sandbox failed: {exc.reason}"
            raise IsolationError(
                f"the sandbox could not be set up: {exc.reason}; the command did not run",
                hint="see docs/proxy.md (Confinement); `--host writable` runs it unconfined",
                details={"path": at},
            ) from None
        if not isinstance(exc, IsolationFailed) or view is None:
            raise
        # not a fallback: the policy judged the command's paths as seen from the view
        if iso is not None:
            iso["reason"] = f"setting up the view failed: {exc.reason}"
        conf["reason"] = f"setting up the view failed: {exc.reason}"
        raise IsolationError(
            f"the isolated view could not be set up: {exc.reason}; the command did not run",
            hint="run without --isolate, or see docs/proxy.md (Isolated views)",
            details={"path": at, "host": view.host},
        ) from None
    if proxy is not None:
        proxy.stop()  # the command has ended, and its sandbox with it
        conf["network_refused"] = list(proxy.refused)
    if iso is not None and (view is not None or sandbox is not None):
        iso["active"] = True
    res.result = _result_dict(run)
    res.exit_code = run.exit_code
    # before anything reads what changed: the fork's branch as the command's git moved it
    gitlinks = _carry_back(vault, fork, sealed, res)

    if mode == "fuse":
        from ..ops import mounts

        _settle(ws, start.seq)
        if sandbox is not None or view is not None:  # it could write the worktree's git dir
            from ..core.vaults.registry import mount_key
            from ..mount.worktree import scrub

            scrub(vault, mount_key(fork, None))  # links and FIFOs the person's git would follow
        alive = mounts.check(vault, fork) is not None
        res.mount["alive_after"] = alive
        if not alive:
            res.error = MountDiedError(
                "the mount daemon died while the command ran",
                hint="what was written before is in the overlay; see `avfs status`",
                details={"mountpoint": root},
            ).to_dict()
    else:
        failed = _write_back(ws, copy)
        if failed:
            copy.keep = True  # the exit code stays the command's: it ran (see docs/proxy.md)
            res.error = WriteBackIncompleteError(
                f"{len(failed)} path(s) the command wrote could not be written back to the fork",
                hint=f"they are still in {root}; the rest was written back",
                details={"paths": failed[:50], "copy": root},
            ).to_dict()

    # the command moved the fork's branch itself (a `git commit` inside): the workspace
    # adopts git's commit, and the record taken before the command stays beside the branch
    tip1 = ws.tip()
    moved = tip1 != tip0
    if moved:
        res.branch_moved = {"from": tip0, "to": tip1}
        ws.sync_base()
    # nothing written in the workspace since it was found clean (or, when it was not, since
    # the command started): no changes, and no status to take (a walk of the upper layer
    # with its files' ids: the largest cost of a command that writes nothing)
    untouched = ws.since.untouched(start if dirty_before else mark)
    if sealed is not None and not untouched:
        from ..core.workspace import since
        from . import seal

        # a repository the command made at a submodule's path: git would run its config
        gitlinks += [
            dataclasses.asdict(n) for n in seal.nested_repos(sealed, root, start.t_ns - since.CTIME_SLACK_NS)
        ]
    changes: list[Change] = []
    roots: set[str] = set()
    untracked: set[str] = set()
    if not untouched:
        changes, ignored = ws.status_ignored()
        roots = ws.since.paths(start)
        # what the command changed: not what was uncheckpointed before it, nor, after its
        # own `git commit`, what the view keeps of paths that commit left out (a file the
        # person untracked with `git rm --cached` stays a file, uncommitted, as in git),
        # nor what the command's commits took out of the branch (it untracked them)
        if moved:
            untracked = _untracked_by(ws, tip0, tip1)
        if dirty_before or moved:
            changes = [
                c
                for c in changes
                if (_under_any(c.path, roots) or (c.old_path and _under_any(c.old_path, roots)))
                and not _under_any(c.path, untracked)
            ]
        from ..core.workspace.wsstatus import ignored_count  # the one count status and checkpoint give

        res.ignored = ignored_count(ignored, roots)
    res.changes = [_change_dict(c) for c in changes]
    over = _over_quota(vault, outside0, changes)
    if over is not None:
        # what the command wrote stays (uncheckpointed in the fork; in the caches and the
        # vault as it left them): the person reads, checks out and removes what they choose
        res.error = over.to_dict()
    message = f"avfs proxy exec: {_short(req.command_text())}"
    keep_record = moved or not req.commit or over is not None  # the record stays beside the branch
    if record is not None and _land(vault, fork, res, record, message, keep_record):
        untouched = False  # the record landed with the commit of what the command changed
        res.not_recorded += [g for g in gitlinks if g not in res.not_recorded]
    elif req.commit and changes and not in_merge and over is None:
        from ..core.operations import checkpoint

        def only(path: str) -> bool:
            if _under_any(path, untracked):
                return False
            return _under_any(path, roots) or any(_under_any(r, {path}) for r in roots)

        cp = checkpoint.save(vault, fork, message=message, only=only if moved else None)
        res.not_recorded = [dataclasses.asdict(n) for n in cp.not_recorded]
        res.not_recorded += [g for g in gitlinks if g not in res.not_recorded]
        if cp.created:
            res.commit = {
                "commit": cp.checkpoint.commit,
                "parent": cp.checkpoint.parent,
                "message": cp.checkpoint.message,
            }
    if not res.not_recorded:
        res.not_recorded = gitlinks
    res.state = _state(ws, 0 if untouched and not dirty_before else None)


# what ends `avfs proxy exec` while its command runs: passed on to the command instead
_INTERRUPTS = ("SIGINT", "SIGTERM", "SIGHUP")


@contextlib.contextmanager
def _interruptible(cancel: threading.Event | None, signals: bool) -> Iterator[threading.Event | None]:
    """While the command runs: Ctrl-C (SIGINT), SIGTERM or SIGHUP of this process is
    passed on to the command's group (:class:`.runner.Stop`) rather than ending avfs,
    so that what the command changed is still read and committed and the envelope
    reports the run as it was (``result.interrupted``, exit 128+N). Only in the main
    thread of a process of its own (the CLI); a mount's daemon is given ``cancel``
    (its client's Ctrl-C comes over the socket)."""
    if not signals or cancel is not None or threading.current_thread() is not threading.main_thread():
        yield cancel
        return
    import signal

    stop = runner.Stop()
    saved: dict[int, Any] = {}
    try:
        for name in _INTERRUPTS:
            num = getattr(signal, name)
            saved[num] = signal.signal(num, lambda n, _f: stop.interrupt(n))
        yield stop
    finally:
        for num, old in saved.items():
            signal.signal(num, old)


def exec_in(
    ws: Workspace[Vault[Home]],
    argv: Sequence[str] | None = None,
    *,
    shell: str | None = None,
    cwd: str = "",
    timeout_ms: int | None = None,
    checkpoint: str = "auto",
    commit: bool = True,
    mode: str = "auto",
    keep_mount: bool = False,
    env: Mapping[str, str] | None = None,
    inherit_env: bool = False,
    approve: str | None = None,
    max_output_bytes: int | None = None,
    stdin: bytes | None = None,
    confine: bool = True,
) -> ExecResult:
    """Run a command in the fork of ``ws`` through ``proxy exec`` (policy, checkpoint,
    mount, timeout, one commit of what it changed); returns the envelope as an object,
    never raising for the command's own failures. ``confine=False`` runs it on the host as
    it is (``--host writable``) instead of in the sandbox. The vault must come from a
    :class:`~avfs_git.Home` (its policy applies). Re-exported as ``avfs_git.exec_in``: the
    in-process API's one way in (core's ``Workspace`` does not reach up to the proxy)."""
    home = ws.vault.home
    if home is None:
        raise UsageError("exec needs a vault opened through a Home (its policy and mounts)")
    with contextlib.ExitStack() as stack:
        feed: Any = subprocess.DEVNULL
        if stdin is not None:
            feed = stack.enter_context(tempfile.TemporaryFile())
            feed.write(stdin)
            feed.seek(0)
        req = ExecRequest(
            argv=tuple(argv) if argv is not None else None,
            shell=shell,
            cwd=cwd,
            timeout_ms=timeout_ms,
            max_output_bytes=max_output_bytes,
            checkpoint=checkpoint,
            commit=commit,
            mode=mode,
            keep_mount=keep_mount,
            env=tuple((env or {}).items()),
            inherit_env=inherit_env,
            approve=approve,
            stdin=feed,
            confine=confine,
        )
        return execute(home, ws.vault, ws.fork, req)
