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
import subprocess
import tempfile
import threading
import time
from typing import TYPE_CHECKING, Any

from ..core.errors import (
    AvfsError,
    InternalError,
    IsolationError,
    IsolationFailed,
    SandboxFailed,
    UsageError,
    unexpected,
)
from ..core.records import dataclass
from ..core.store import packwriter
from ..core.vaults import audit

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence

    from ..core.vaults.home import Home
    from ..core.vaults.vault import Vault
    from ..core.workspace.workspace import Workspace
    from ..policy import Policy
    from .ahead import Blocked
    from .standby import Standbys

from . import admission, execspan, lazyblobs, placement, recording, runner
from .admission import run_of
from .envelope import (
    EXIT_AVFS_FAILED,
    Confinement,
    ExecRequest,
    ExecResult,
    Isolation,
    Request,
    State,
)
from .premount import Premount, begin
from .recording import write_audit
from .stages import Before, CarriedBack, Placed, Plan, Ran, Recorded, envelope


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
    premount: Premount | None = None,
) -> ExecResult:
    """Run one request through the whole lifecycle; never raises (errors are in the result).
    ``cancel``: stop the command when it is set (a client of the exec server went away).
    ``signals`` (the CLI, a process of its own): SIGINT, SIGTERM and SIGHUP while the
    command runs are passed on to it, and the result reports the run (see
    :func:`_interruptible`); else they reach the caller as they would. A CLI call that
    mounted its fork also offers its sandbox to the mount's daemon, which serves the CLI's
    next call (:mod:`.offer`).
    ``after``: where to leave work that may wait until the result is delivered (the audit
    record's fsync: the record itself is written before this returns). ``standbys``: the
    sandboxes a mount's daemon keeps ready (:mod:`.standby`): the command starts in one when
    it fits, and with ``after``, the next one is made ready once the result is delivered.
    ``premount``: the fork's mount, started by the caller for this call (:mod:`.premount`:
    the CLI starts it before its own imports); else, when the fork is not mounted, this
    starts it before the plan, which runs while the daemon comes up.

    The stages (:mod:`.stages`), each a function of the frozen values before it: plan ->
    before -> place -> run -> record; :func:`.stages.envelope` makes the result of those
    the call got through."""
    t0 = time.monotonic()
    done = _Done()
    cleanup: list[Any] = []
    try:
        from .sysview import keep_in

        keep_in(home.path + "/run")  # the sandbox's filter and view of /etc, made once for the home
        with _callers(req):
            if premount is None and (standbys is None or not standbys.daemon):  # (a daemon: its own mount)
                premount = begin(home, vault, fork, req)
            if premount is not None:
                cleanup.append(premount.release)  # the last cleanup
                cleanup.append(premount.settle)
            _stages(home, vault, fork, req, policy, cleanup, done, cancel, standbys, after, signals, premount)
    except AvfsError as exc:
        done.error = exc
    except Exception as exc:  # an avfs bug (or a full disk): still one envelope
        done.error = unexpected(exc)
    finally:
        for fn in reversed(cleanup):
            try:
                fn()
            except Exception as exc:
                if done.error is None:
                    done.error = InternalError(f"cleanup failed: {exc}")
    # the command ran, then recording what it changed failed (a full disk): name it all the same
    ran_then_failed = done.ran is not None and done.ran.error is None and done.recorded is None
    if ran_then_failed and done.error is not None and done.plan and done.before and done.placed:
        done.recorded, done.error = recording.after_failure(
            vault, done.plan, done.before, done.placed, done.carried, done.error
        )
    state = None
    if done.plan is not None and done.recorded is None and done.error is not None:
        state = _state_after_error(done.plan)
    res = envelope(
        Request.of(vault.name, fork, req, max(req.timeout_ms or 0, 0)),
        done.plan,
        done.before,
        done.placed,
        done.ran,
        done.recorded,
        error=done.error,
        state=state,
        kept_ref=done.kept_ref,
        carried=done.carried,
        duration_ms=round((time.monotonic() - t0) * 1000, 3),
    )
    at = write_audit(vault, res, sync=after is None)
    if at is not None and done.before is not None and done.plan is not None:
        execspan.name_span(done.plan.ws, done.before.span, f"audit:{at}")
    if at is not None and done.recorded is not None and done.recorded.op_id is not None:
        vault.oplog.name_exec(done.recorded.op_id, f"audit:{at}")  # (the call named, now audited)
    if at is not None and after is not None:
        after.append(functools.partial(audit.sync, vault.state_dir))
    # the packs the call's before-record and record wrote rolled up past their limit, once
    # the caller has its answer (h-packs1: never by a person's `git commit` in the mount)
    if after is not None:
        after.append(functools.partial(_roll_packs, vault.path))
    elif done.before is not None:
        _roll_packs(vault.path)
    return res


def _roll_packs(git_dir: str) -> None:
    packwriter.maybe_consolidate(git_dir)


@dataclass(slots=True)
class _Done:
    """The stages a call got through (each value frozen), and the error that ended it."""

    plan: Plan | None = None
    before: Before | None = None
    placed: Placed | None = None
    ran: Ran | None = None
    recorded: Recorded | None = None
    error: AvfsError | None = None
    kept_ref: str | None = None  # the recovery ref of a record that never landed
    # what the carry-back refused and dropped (refs_refused, not_recorded), once it ran
    carried: CarriedBack = ((), (), ())

    def keep_unlanded(self, vault: Vault, fork: str, record: str) -> None:
        """Name ``record`` (the fork before the command) by a recovery ref when the call
        ended before the record stage landed or kept it."""
        if self.recorded is None:
            from ..core.operations import checkpoint

            self.kept_ref = checkpoint.keep_snapshot(vault, fork, record)


@contextlib.contextmanager
def _callers(req: ExecRequest) -> Iterator[None]:
    """An exec run for a caller whose environment came with the request (a mount's daemon
    serving a client): its commits take the caller's ``GIT_AUTHOR_*``/``GIT_COMMITTER_*``,
    its lock waits (git's ``index.lock`` as a move of the base waits for it, the vault's
    locks) the caller's ``AVFS_LOCK_WAIT``: as run by the caller's own process."""
    if req.base_env is None:
        yield  # this process' own environment: the home has it
        return
    from ..core.settings import served_for
    from ..core.store import identity

    env = dict(req.base_env)
    with identity.using(identity.from_environ(env)), served_for(env):
        yield


def _stages(
    home: Home,
    vault: Vault,
    fork: str,
    req: ExecRequest,
    policy: Policy | None,
    cleanup: list[Any],
    done: _Done,
    cancel: threading.Event | None,
    standbys: Standbys | None,
    after: list[Callable[[], None]] | None,
    signals: bool,
    premount: Premount | None,
) -> None:
    done.plan = plan = admission.plan(home, vault, fork, req, policy, cleanup)
    if plan.refusal is not None:
        if premount is not None:
            premount.keep()  # kept warm for the next call (the approved one, say)
        return
    if premount is not None and plan.mode == "fuse":
        premount.set_up_ahead(plan)  # its sandbox, once the mount is linked and stacked
        premount.wait()  # the fork is touched only once it is mounted, as on a live mount
    unlanded = functools.partial(done.keep_unlanded, vault, fork)
    done.before = before = placement.before(vault, fork, plan, cleanup, unlanded)
    placed = placement.place(home, vault, fork, plan, cleanup, premount.take if premount else None)
    done.placed = placed
    if plan.git_writes_tree:  # on a lazy fork, the blobs git's commit will want (no network there)
        lazyblobs.fetch_for_git(vault, fork)
    ahead = premount.ahead if premount is not None else None
    done.ran = ran = run(plan, placed, cleanup, cancel, standbys, after, signals, ahead)
    if ran.error is not None:
        return
    # before anything reads what changed: the fork's branch as the command's git moved it;
    # what it refused and removed is in the envelope even when the record stage then fails
    try:
        network = ran.confinement.network  # (a remote-tracking ref moves only by a fetch)
        done.carried = carried = recording.carry_back(
            vault, fork, placed.sealed, network, plan.ws, before.span
        )
        done.recorded = recording.record(vault, fork, plan, before, placed, ran, carried)
    except BaseException:
        # (the record's own scrub may not have come: what the command planted for the
        # person's git must not stay because the carry-back or the record failed)
        with contextlib.suppress(Exception):
            recording.scrub_after(vault, fork, placed)
        raise
    # the command's changes are all journaled now (before the mount is let go: its daemon
    # journals what the kernel still holds)
    execspan.close_span(plan.ws, before.span)


def _state_after_error(plan: Plan) -> State | None:
    """The fork's state for the envelope of a call that ended early (None when even that
    cannot be read: the error says why)."""
    try:
        return recording.fork_state(plan.ws)
    except Exception:
        return None


def run(
    plan: Plan,
    placed: Placed,
    cleanup: list[Any],
    cancel: threading.Event | None = None,
    standbys: Standbys | None = None,
    after: list[Callable[[], None]] | None = None,
    signals: bool = False,
    ahead: Blocked | None = None,
) -> Ran:
    """The fourth stage: the command run where it was placed, with its timeout and output
    bound, through the filtering network proxy when the policy filters its network. A
    sandbox or view that cannot be set up is the ``error`` of the result (the command did
    not run: not a fallback, as bwrap or namespaces were probed here). ``ahead``: the
    sandbox a first call set up with its command blocked while its mount came up
    (:mod:`.ahead`): the command goes on there when it is this command's."""
    req, conf, iso, sandbox = plan.req, placed.confinement, plan.isolation, placed.sandbox
    proxy = None
    offered = None  # the socket of an offer of this sandbox to the mount's daemon
    ready: Any = None  # a ready sandbox (proxy/standby.py), or the one set up ahead (proxy/ahead.py)
    unmoved = False
    try:
        if sandbox is not None and sandbox.network == "filtered":
            from .netproxy import FilterProxy

            proxy = FilterProxy(plan.policy.network_allow)
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
        mounted_here = placed.mount.kept_warm and not placed.mount.reused
        if signals and standbys is None and sandbox is not None and proxy is None and mounted_here:
            # this CLI call mounted the fork and keeps it warm: the CLI sends the next call
            # to the mount's daemon, which makes a sandbox like this one ready for it. Once
            # the answer is out when the caller delivers it first (the resident server's
            # child: the daemon's work then takes no CPU from this call); else while this
            # command runs (its answer is read once the command has ended). Not for
            # exec_in or MCP: their next calls run in their own process
            from .offer import offer_now, send_offer

            state_dir = plan.ws.vault.state_dir
            if after is not None:
                after.append(functools.partial(offer_now, state_dir, plan.ws.fork, sandbox))
            else:
                offered = send_offer(state_dir, plan.ws.fork, sandbox)
        if standbys is not None and sandbox is not None and proxy is None and req.stdin == subprocess.DEVNULL:
            ready = standbys.take(sandbox)
            if after is not None:
                after.append(functools.partial(standbys.prepare, sandbox))
        if (
            ready is None
            and ahead is not None
            and sandbox is not None
            and proxy is None
            and ahead.fits(sandbox)
        ):
            ready = ahead
        with _interruptible(cancel, signals) as stop:
            run = functools.partial(
                runner.run,
                list(placed.argv),
                cwd=placed.cwd,
                env=dict(placed.env),
                timeout_ms=plan.timeout_ms,
                max_output=plan.max_output,
                stdin=req.stdin,
                kill_grace_ms=req.kill_grace_ms,
                cancel=stop,
                view=placed.view,
                sandbox=sandbox,
            )
            try:
                result = run(standby=ready)
            except SandboxFailed:
                from .sysview import token

                # a file or directory of /etc shown empty went between the view's check and
                # bubblewrap's mount over it (no mount point can be made in the read-only
                # /etc); nothing ran: once more in a sandbox of the view made again
                if sandbox is None or token() == token(fresh=True):
                    raise
                result = run(standby=None)
        unmoved = ready is not None and ready.unmoved()  # asked once the command has ended
    except (SandboxFailed, IsolationFailed) as exc:
        return _not_started(exc, placed, conf, iso)
    finally:
        if ready is not None:
            ready.close_table()
        if offered is not None:
            from .offer import answered

            answered(offered)
    if proxy is not None:
        proxy.stop()  # the command has ended, and its sandbox with it
        conf = dataclasses.replace(conf, network_refused=tuple(proxy.refused))
    if iso is not None and (placed.view is not None or sandbox is not None):
        iso = dataclasses.replace(iso, active=True)
    return Ran(
        run=run_of(result), exit_code=result.exit_code, confinement=conf, isolation=iso, mount_unmoved=unmoved
    )


def _not_started(
    exc: SandboxFailed | IsolationFailed, placed: Placed, conf: Confinement, iso: Isolation | None
) -> Ran:
    """The :class:`Ran` of a command whose sandbox or view could not be set up."""
    if isinstance(exc, SandboxFailed):
        # not a fallback: bwrap runs here (probed), so this request itself is at fault
        why = f"setting up the sandbox failed: {exc.reason}"
        error: AvfsError = IsolationError(
            f"the sandbox could not be set up: {exc.reason}; the command did not run",
            hint="see docs/proxy.md (Confinement); `--host writable` runs it unconfined",
            details={"path": placed.at},
        )
        return Ran(
            run=None,
            exit_code=EXIT_AVFS_FAILED,
            confinement=dataclasses.replace(conf, reason=why),
            isolation=iso,
            error=error,
        )
    if placed.view is None:
        raise exc
    # not a fallback: the policy judged the command's paths as seen from the view
    why = f"setting up the view failed: {exc.reason}"
    error = IsolationError(
        f"the isolated view could not be set up: {exc.reason}; the command did not run",
        hint="run without --isolate, or see docs/proxy.md (Isolated views)",
        details={"path": placed.at, "host": placed.view.host},
    )
    return Ran(
        run=None,
        exit_code=EXIT_AVFS_FAILED,
        confinement=dataclasses.replace(conf, reason=why),
        isolation=dataclasses.replace(iso, reason=why) if iso is not None else None,
        error=error,
    )


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
    if isinstance(argv, str):  # (it ran a program named "npm test": exit 127; h-polish3)
        raise TypeError(
            f"argv must be a list of words ({argv.split()!r}), not str; a shell line: shell={argv!r}"
        )
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
        from .standby import for_api

        # the next call's sandbox made ready (once this one has answered), as a daemon does
        standbys = for_api(ws.vault.state_dir, ws.fork) if stdin is None else None
        after: list[Callable[[], None]] = []
        res = execute(home, ws.vault, ws.fork, req, after=after, standbys=standbys)
        for fn in after:  # the audit record's fsync, the next sandbox asked for
            with contextlib.suppress(Exception):
                fn()
        return res
