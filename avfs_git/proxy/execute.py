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
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time
from typing import IO, TYPE_CHECKING, Any

from ..core.errors import (
    EXIT_DENIED,
    ApprovalRequiredError,
    AvfsError,
    FuseUnavailableError,
    InternalError,
    IsolationError,
    IsolationFailed,
    MountDiedError,
    PolicyDeniedError,
    QuotaExceededError,
    SandboxFailed,
    SandboxUnavailableError,
    UsageError,
    WriteBackIncompleteError,
    unexpected,
)
from ..core.store import names
from ..core.types import Change
from ..core.vaults import audit
from . import approval, runner

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence

    from ..core.vaults.home import Home
    from ..core.vaults.vault import Vault
    from ..core.workspace.workspace import Workspace
    from ..policy import Decision, Policy
    from .standby import Standbys

# When the command did not run, the codes `timeout`, `env` and `chroot` use for "the command
# was not run" (docs/proxy.md, Exit codes): whenever it ran, its own code (124: timed out).
EXIT_AVFS_FAILED = 125  # avfs itself failed: missing vault or fork, bad usage, mount failure
EXIT_REFUSED = 126  # the policy refused it: denied, approval required, approval token refused
# what a command sees of the caller's environment unless --inherit-env (plus AVFS_* below)
PASSED_ENV = (
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TERM",
    "TZ",
    "TMPDIR",
    # who a `git commit` the command makes is by: the same people as the exec's own commit
    "GIT_AUTHOR_NAME",
    "GIT_AUTHOR_EMAIL",
    "GIT_AUTHOR_DATE",
    "GIT_COMMITTER_NAME",
    "GIT_COMMITTER_EMAIL",
    "GIT_COMMITTER_DATE",
)
MODES = ("auto", "fuse", "materialized")


@dataclasses.dataclass(frozen=True, slots=True)
class ExecRequest:
    argv: tuple[str, ...] | None = None  # exactly one of argv / shell
    shell: str | None = None
    cwd: str = ""  # relative to the workspace root
    timeout_ms: int | None = None  # None: the policy's default
    max_output_bytes: int | None = None  # per stream; None: the policy's default
    checkpoint: str = "auto"  # auto: when the policy says so | always
    commit: bool = True
    mode: str = "auto"  # auto | fuse | materialized
    keep_mount: bool = False  # leave a mount made for this call mounted
    env: tuple[tuple[str, str], ...] = ()
    inherit_env: bool = False
    approve: str | None = None
    kill_grace_ms: int = 2000
    stdin: int | IO[bytes] | None = subprocess.DEVNULL
    base_env: tuple[tuple[str, str], ...] | None = None  # the caller's environment (default: ours)
    # None, or a view at the project's path (isolate_at): confined (the sandbox, as by default),
    # or what the command sees of the host through a hand-made namespace: writable | readonly | hidden
    isolate: str | None = None
    isolate_at: str | None = None  # where the fork appears (None: the vault's origin_dir)
    # without an isolate view: run in the sandbox (True, the default) or on the host as it is
    # (False: `--host writable`)
    confine: bool = True
    # a token is accepted only when a person approved it (`avfs proxy approve`): the MCP
    # server's exec, whose client (the agent) gets the token itself
    require_person_approval: bool = False

    def command_text(self) -> str:
        return self.shell if self.shell is not None else shlex.join(self.argv or ())


@dataclasses.dataclass(slots=True)
class ExecResult:
    """The envelope (``kind: proxy_exec_result``) as data; :meth:`to_dict` is its JSON."""

    request: dict[str, Any]
    decision: dict[str, Any] | None = None
    approval: dict[str, Any] | None = None
    checkpoint: dict[str, Any] | None = None
    mount: dict[str, Any] | None = None
    isolation: dict[str, Any] | None = None
    confinement: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    changes: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    # paths the command wrote that git ignores (a venv, caches): in the fork, never committed
    ignored: int = 0
    commit: dict[str, Any] | None = None
    # the command moved the fork's branch itself (a `git commit` inside): {from, to}
    branch_moved: dict[str, Any] | None = None
    # paths git refuses (GIT~1, '.git ', a .gitmodules link): left out of the commit
    not_recorded: list[dict[str, str]] = dataclasses.field(default_factory=list)
    # ref changes the command made in its sandbox that avfs did not apply (proxy/seal.py)
    refs_refused: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    state: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    exit_code: int = 0
    duration_ms: float = 0.0

    @property
    def success(self) -> bool:
        return self.error is None and self.result is not None and self.result["exit_code"] == 0

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"success": self.success}
        for f in dataclasses.fields(self):
            out[f.name] = getattr(self, f.name)
        return out


def _request_dict(vault: str, fork: str, req: ExecRequest, timeout_ms: int) -> dict[str, Any]:
    return {
        "vault": vault,
        "fork": fork,
        "argv": list(req.argv) if req.argv is not None else None,
        "shell": req.shell,
        "cwd": req.cwd,
        "timeout_ms": timeout_ms,
        "checkpoint": req.checkpoint,
        "commit": req.commit,
        "mode": req.mode,
    }


def _validate(req: ExecRequest) -> None:
    if (req.argv is None) == (req.shell is None):
        raise UsageError("give a command after `--`, or --shell 'STRING' (not both)")
    if req.argv is not None and (not req.argv or not req.argv[0]):
        raise UsageError("empty command", hint="usage: avfs proxy exec [OPTIONS] -- CMD [ARGS...]")
    if req.shell is not None and not req.shell.strip():
        raise UsageError("empty --shell command")
    if req.checkpoint not in ("auto", "always"):
        raise UsageError(f"--checkpoint must be auto or always, not {req.checkpoint!r}")
    if req.mode not in MODES:
        raise UsageError(f"--mode must be one of {', '.join(MODES)}")
    if req.timeout_ms is not None and req.timeout_ms <= 0:
        raise UsageError("--timeout-ms must be positive")
    if req.max_output_bytes is not None and req.max_output_bytes < 0:
        raise UsageError("--max-output-bytes must be 0 or more")
    for k, _ in req.env:
        if not k or "=" in k or "\0" in k:
            raise UsageError(f"invalid environment variable name {k!r}")


def _check_cwd(ws: Workspace, cwd: str) -> str:
    if cwd.startswith("/"):
        raise UsageError(
            f"--cwd {cwd!r} is absolute: give a directory relative to the workspace root",
            details={"cwd": cwd},
        )
    p = names.norm_path(cwd)  # refuses '..', NUL bytes and '.git'
    node = ws.node(p)
    if node is None or not node.is_dir:
        raise UsageError(f"--cwd {cwd!r} is not a directory of the workspace", details={"cwd": cwd})
    return p


def _env(req: ExecRequest, vault: str, fork: str, root: str, cwd: str | None = None) -> dict[str, str]:
    caller = dict(req.base_env) if req.base_env is not None else dict(os.environ)
    if req.inherit_env:
        env = caller
    else:
        env = {k: caller[k] for k in PASSED_ENV if k in caller}
        env.setdefault("PATH", os.defpath)
    for k in [k for k in env if k.startswith("AVFS_")]:
        del env[k]
    env.update({"AVFS_VAULT": f"{vault}:{fork}", "AVFS_WORKSPACE": root, "PWD": cwd or root})
    env.update(dict(req.env))
    return env


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


def _with_identity(env: dict[str, str], ws: Workspace) -> dict[str, str]:
    """``env`` with who a ``git commit`` the command makes is by: the fork's identity
    (:mod:`~..core.identity`: the caller's ``GIT_*`` variables, the vault's config, the
    user's global ``user.name``/``user.email``, the home's identity, avfs's default), for
    each of ``GIT_AUTHOR_*``/``GIT_COMMITTER_*`` name and email the caller's environment
    does not set. The sandbox's ``$HOME`` is empty: without these, git there knows no one
    (and the user's ``~/.gitconfig`` stays out: credential helpers and commands it runs)."""
    sig = ws.author()
    for role, person in (("AUTHOR", sig.author), ("COMMITTER", sig.committer)):
        env.setdefault(f"GIT_{role}_NAME", person.name)
        env.setdefault(f"GIT_{role}_EMAIL", person.email)
    return env


def _worktree(vault: Vault, fork: str) -> str:
    from ..core.vaults.registry import mount_key
    from ..mount.ownfiles import worktree_dir

    return worktree_dir(vault, mount_key(fork, None))


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


def _isolation(vault: Vault, req: ExecRequest, fallback: str = "bwrap") -> dict[str, Any] | None:
    """The envelope's ``isolation`` before the run: where the fork will appear and what of
    the host the command sees, ``reason`` saying why it will run without a view (namespaces
    unavailable here: the plain mount is used). None when not asked for."""
    if req.isolate is None:
        return None
    from . import isolate

    if req.isolate not in (*isolate.HOSTS, "confined"):
        raise UsageError(f"isolate must be one of confined, {', '.join(isolate.HOSTS)}, not {req.isolate!r}")
    from ..ops.origin import origin_dir

    at = req.isolate_at if req.isolate_at is not None else origin_dir(vault)  # where `avfs up` came from
    if not at:
        raise UsageError(
            f"vault {vault.name} has no recorded origin directory: say where the fork appears",
            hint="avfs proxy exec --isolate --at /path/to/project -- CMD",
        )
    if req.isolate == "confined":
        from . import confine

        bad = confine.check_path(str(at))
        why = confine.unavailable()
        method = "bwrap"
        if why is not None and fallback == "namespace":  # the policy's fallback: the hidden view
            bad = bad or isolate.check_path(str(at), "hidden")
            why = isolate.unavailable()
            method = isolate.method()
    else:
        bad = isolate.check_path(str(at), req.isolate)
        why = isolate.unavailable()
        method = isolate.method()
    if bad is not None:
        raise UsageError(bad, details={"at": at})
    return {
        "requested": True,
        "active": False,
        "path": os.path.normpath(str(at)),
        "host": req.isolate,
        "method": method if why is None else None,
        "reason": why,
    }


def _confinement(req: ExecRequest, iso: dict[str, Any] | None, fallback: str = "bwrap") -> dict[str, Any]:
    """The envelope's ``confinement`` before the run: what the command will run in.

    ``kind``: ``bwrap`` (the sandbox, :mod:`.confine`), ``namespace`` (:mod:`.isolate`'s
    hand-made view: asked for with ``--readonly-host``/``--hide-host``, or, where bwrap
    cannot run, the fallback a policy's ``confine = "namespace"`` allows), ``host`` (nothing
    between the command and the host: ``--host writable``, or namespaces unavailable for
    an explicit ``--readonly-host``/``--hide-host``) or ``none`` (a confined command where no
    sandbox can be made and the policy allows no weaker one: it is refused, fail closed).
    ``requested``: what was asked for; ``reason``: why what runs is weaker than that, or why
    nothing runs (null when neither)."""
    requested = req.isolate if req.isolate is not None else "confined" if req.confine else "writable"
    out: dict[str, Any] = {"kind": "host", "requested": requested, "network": "host", "reason": None}
    if req.isolate is None and requested == "writable":
        return out
    if requested in ("writable", "readonly", "hidden"):  # a hand-made view, asked for
        if iso is not None and iso["reason"] is not None:
            out["reason"] = iso["reason"]
        else:
            out["kind"] = "namespace"
        return out
    from . import confine

    why = confine.unavailable()
    if why is None:
        out.update(kind="bwrap", network="none")
        return out
    if fallback != "namespace":
        out.update(kind="none", network="none", reason=why)
        return out
    from . import isolate

    also = isolate.unavailable()
    if also is None:
        out.update(
            kind="namespace",
            reason=f'{why}: the policy\'s confine = "namespace" fallback, a hand-made hidden view'
            " (weaker: the host's network) instead",
        )
    else:
        out.update(kind="none", network="none", reason=f"{why}; and {also}")
    return out


def _no_sandbox(why: str) -> SandboxUnavailableError:
    """The error of a confined command refused because no sandbox can be made (fail closed):
    what is missing and how to install it, or the weaker view a policy may accept instead."""
    from . import confine

    missing = why.startswith(confine.NOT_INSTALLED)
    how = (
        confine.INSTALL_HINT
        if missing
        else "let bubblewrap make user namespaces here (see docs/proxy.md, Confinement)"
    )
    return SandboxUnavailableError(
        f"{why}: a confined command cannot run here; the command did not run",
        hint=(
            f'{how}; or accept a weaker hand-made view with confine = "namespace" under [defaults]'
            " in the policy (docs/policy.md), or run it unconfined with --host writable"
        ),
        details={"missing": "bwrap" if missing else None, "package": "bubblewrap", "reason": why},
    )


def _fsmonitor_hook(hook: str) -> str:
    """The fork's fsmonitor hook (``hook``, in the mount's own directory) as the sandbox
    runs it: its interpreter (the Python avfs runs on, maybe under a home directory the
    sandbox hides; or a Perl found on ``PATH``) replaced by the system's ``/usr/bin/python3``
    or ``/usr/bin/perl``, which the sandbox shows, with the same flags. Written beside it,
    in the mount's own directory (which no confined command can write), and shown
    read-only at the hook's path inside the sandbox."""
    try:
        with open(hook, encoding="utf-8") as fh:
            text = fh.read()
    except OSError:
        return hook
    first, _, rest = text.partition("\n")
    if not first.startswith("#!"):
        return hook
    interpreter, _, flags = first[2:].strip().partition(" ")
    system = "/usr/bin/perl" if os.path.basename(interpreter).startswith("perl") else "/usr/bin/python3"
    if interpreter == system or not os.path.exists(system):
        return hook
    out = hook + ".sandbox"
    new = f"#!{system} {flags}".rstrip() + "\n" + rest
    try:
        with open(out, encoding="utf-8") as fh:
            if fh.read() == new:
                return out
    except OSError:
        pass
    flags_ = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    tmp = f"{out}.{os.getpid()}.{threading.get_ident()}.{os.urandom(4).hex()}.tmp"
    try:
        with os.fdopen(os.open(tmp, flags_, 0o755), "w", encoding="utf-8") as fh:
            fh.write(new)
            os.fchmod(fh.fileno(), 0o755)
        os.replace(tmp, out)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        return hook  # git then says it cannot run the hook, and looks at every path itself
    return out


def _sandbox(
    vault: Vault,
    fork: str,
    root: str,
    at: str,
    at_cwd: str,
    conf: dict[str, Any],
    pol: Policy,
    home_dir: str | None,
    mode: str,
    avfs_home: str,
    caller_home: str | None = None,
) -> Any:
    """The :class:`~.confine.Sandbox` of one command: the fork (``root``) at ``at``, the
    vault as git needs it, avfs's state hidden, the caches the policy names."""
    from . import confine

    keep: tuple[str, ...] = (vault.path,)
    writable: tuple[str, ...] = ()
    pinned: list[tuple[str, str]] = []
    shown: list[tuple[str, str]] = []
    if mode == "fuse":
        writable, pins = _git_writable(vault, fork)
        pinned.extend((p, p) for p in pins)
        shown = _mount_files_shown(vault, fork)
    caches = confine.cache_dirs(vault.state_dir, pol.caches)
    conf["path"] = at
    conf["caches"] = [name for name, _ in caches]
    return confine.Sandbox(
        source=root,
        path=at,
        cwd=at_cwd,
        network=conf["network"],
        home=home_dir,
        keep=keep,
        writable=writable,
        pinned=tuple(pinned),
        masked=(vault.state_dir,),
        shown=tuple(shown),
        caches=caches,
        readable=confine.readable_paths(pol.readable, caller_home, avfs_home, also_never=home_dir),
        root=os.geteuid() == 0,
    )


# what of a mounted fork's worktree directory git trusts (config, the way to the common
# directory): kept read-only in a view, or the directory is not writable at all
_PINNED = ("config.worktree", "commondir", "gitdir")


def _mount_files_shown(vault: Vault, fork: str) -> list[tuple[str, str]]:
    """(path, host source) of what of the fork's mount's own directory (in ``<vault>/avfs``,
    masked) the sandbox shows read-only at its own path, so that ``git status`` there gets
    fsmonitor answers: the hook ``config.worktree`` names (its sandbox variant) and the
    daemon's socket (a read-only bind of a socket still takes connections)."""
    from ..core.vaults.registry import mount_key
    from ..core.workspace.hookwire import SOCKET_NAME
    from ..mount.hookscripts import HOOKS_DIR
    from ..mount.ownfiles import HOOK_FILE, files_dir

    own = files_dir(vault, mount_key(fork, None))
    hook, sock = os.path.join(own, HOOK_FILE), os.path.join(own, SOCKET_NAME)
    hooks = os.path.join(own, HOOKS_DIR)
    out = []
    if os.path.isfile(hook) and not os.path.islink(hook):
        out.append((hook, _fsmonitor_hook(hook)))
    if os.path.isdir(hooks) and not os.path.islink(hooks):
        out.append((hooks, hooks))  # git's hooks there: the branch-switch guard, the person's
    if os.path.exists(sock) and not os.path.islink(sock):
        out.append((sock, sock))
    return out


def _git_writable(vault: Vault, fork: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """What of the vault a sandbox or a readonly or hidden view leaves writable in place, so
    that `git status` works in the mounted fork: the fork's worktree directory (its index,
    reflog, locks), with the files of :data:`_PINNED` in it read-only (pinned). Everything
    else (``objects/``, ``refs/``, ``logs/``, ``hooks/``, ``config``, ``info/``, ``avfs/``,
    other forks' worktrees) stays read-only: nothing the command writes there runs or is
    trusted on the host later. The sandbox and a hand-made view get scratch ``refs/``,
    ``logs/`` and an object quarantine on top (:mod:`.seal`), so `git commit` works there
    too, and only the fork's branch is carried back."""
    writable: list[str] = []
    wt = _worktree(vault, fork)
    pinned = tuple(os.path.join(wt, name) for name in _PINNED)
    if all(os.path.isfile(p) and not os.path.islink(p) for p in pinned):
        writable.append(wt)  # else a file git trusts could be made there: leave it read-only
    else:
        pinned = ()
    return tuple(writable), pinned


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


def _exec_lock(vault: Vault, fork: str) -> Any:
    """Take the fork's exec lock (waiting for a running command); returns its release."""
    import contextlib

    from ..core.store.locks import exec_lock_path, file_lock

    path = exec_lock_path(vault.state_dir, fork)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    stack = contextlib.ExitStack()
    stack.enter_context(file_lock(path, what=f"proxy exec on {vault.name}:{fork}", wait_s=24 * 3600))
    return stack.close


def _approved(request: dict[str, Any], req: ExecRequest, stdin_sha256: str | None) -> dict[str, Any]:
    """What an approval token is bound to (every key is hashed): the request, plus what
    changes what it runs (the environment asked for, the sha256 of the bytes on stdin or
    None without stdin, the isolated view)."""
    bound = {
        **request,
        "env": sorted(req.env),
        "inherit_env": req.inherit_env,
        "stdin": stdin_sha256,
    }
    if req.isolate is not None:  # what the command sees changes what it does
        bound["isolate"] = [req.isolate, req.isolate_at]
    if req.isolate is None and not req.confine:  # approved confined, not approved unconfined
        bound["host"] = "writable"
    return bound


def _stdin_digest(
    stdin: int | IO[bytes] | None, cleanup: list[Any]
) -> tuple[int | IO[bytes] | None, str | None]:
    """(what the command then reads as stdin, the sha256 of those bytes; None: no stdin,
    ``DEVNULL``).

    A regular file is hashed from its current offset without moving it (pread). A stream (a
    pipe, a terminal: ``--stdin``) is read to its end first, into an unnamed temporary file
    that the command then reads: so the bytes approved are the bytes it gets."""
    import hashlib

    if stdin == subprocess.DEVNULL:
        return stdin, None
    # None: the command would inherit ours
    fd = 0 if stdin is None else stdin if isinstance(stdin, int) else stdin.fileno()
    h = hashlib.sha256()
    try:
        st = os.fstat(fd)
        pos = os.lseek(fd, 0, os.SEEK_CUR) if stat.S_ISREG(st.st_mode) else -1
    except OSError:
        pos = -1
    if pos >= 0:
        while chunk := os.pread(fd, 1 << 20, pos):
            h.update(chunk)
            pos += len(chunk)
        return stdin, h.hexdigest()
    spool = tempfile.TemporaryFile()  # noqa: SIM115 - the command reads it; closed in cleanup
    cleanup.append(spool.close)
    while chunk := os.read(fd, 1 << 20):
        h.update(chunk)
        spool.write(chunk)
    spool.flush()
    spool.seek(0)
    return spool, h.hexdigest()


def _short(text: str, n: int = 200) -> str:
    from ..core.store.redact import redact

    # arguments that are not UTF-8 (surrogate escapes) cannot go into a commit message as is;
    # a URL's credentials (`git push https://TOKEN@host/...`) never go into one
    text = redact(" ".join(text.encode("utf-8", "replace").decode("utf-8").split()))
    return text if len(text) <= n else text[: n - 1] + "…"


def _decision_dict(d: Decision) -> dict[str, Any]:
    return {
        "action": str(d.action),
        "categories": [str(c) for c in d.categories],
        "reason": d.reason,
        "rule": d.rule,
    }


def _result_dict(r: runner.RunResult) -> dict[str, Any]:
    return {
        "exit_code": r.exit_code,
        "signal": r.signal,
        "timed_out": r.timed_out,
        "duration_ms": r.duration_ms,
        "stdout": r.stdout.decode("utf-8", "replace"),
        "stderr": r.stderr.decode("utf-8", "replace"),
        "stdout_bytes": r.stdout_bytes,
        "stderr_bytes": r.stderr_bytes,
        "stdout_truncated": r.stdout_truncated,
        "stderr_truncated": r.stderr_truncated,
        "spawn_error": r.spawn_error,
        "stray_processes_killed": r.stray_processes_killed,
        "interrupted": r.interrupted,
    }


# -- where the command runs ---------------------------------------------------------------
def _choose_mode(vault: Vault, fork: str, wanted: str) -> tuple[str, Any]:
    """("fuse" | "materialized", the live mount to reuse or None)."""
    from ..ops import mounts

    if wanted == "materialized":
        return "materialized", None
    live = mounts.check(vault, fork)
    if live is not None and live.state == "mounted" and not live.read_only:
        return "fuse", live
    why = mounts.fuse_available()
    if why is None:
        return "fuse", None
    if wanted == "fuse":
        raise FuseUnavailableError(f"cannot mount: {why}", hint="use --mode materialized")
    return "materialized", None


def _planned_root(home: Home, vault: Vault, fork: str, mode: str) -> str:
    if mode == "fuse":
        from ..ops import mounts

        return mounts.default_mountpoint(home, vault.name, fork)
    return os.path.join(home.path, "tmp", "exec")


def _ensure_mount(
    home: Home, vault: Vault, fork: str, live: Any, keep: bool, cleanup: list[Any]
) -> tuple[str, bool, str]:
    """(mount point, whether a live mount was reused, its backend)."""
    from ..ops import mounts

    if live is not None:
        return str(live.mountpoint), True, str(getattr(live, "backend", "fuse"))
    info = mounts.mount(home, vault, fork, None)
    if not keep and not info.reused:
        cleanup.append(lambda: mounts.unmount(home, vault, fork, lazy=True))
    return info.mountpoint, info.reused, info.backend


Manifest = dict[str, tuple[int, int, int, int, str | None]]


def _scan(root: str) -> Manifest:
    """rel path -> (mode, size, mtime_ns, inode, link target) of everything under root,
    nested repositories' ``.git`` (directories or files) left out."""
    out: Manifest = {}
    for dirpath, dirs, files in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        rel_dir = "" if rel_dir == "." else rel_dir
        dirs[:] = [d for d in dirs if d != ".git"]
        for name in dirs + [f for f in files if f != ".git"]:
            full = os.path.join(dirpath, name)
            rel = f"{rel_dir}/{name}" if rel_dir else name
            st = os.lstat(full)
            target = os.readlink(full) if stat.S_ISLNK(st.st_mode) else None
            out[rel] = (st.st_mode, st.st_size, st.st_mtime_ns, st.st_ino, target)
    return out


class _Copy:
    """A materialized copy of the workspace: where it is, and what it held before the
    command ran (so that only what the command changed is written back)."""

    def __init__(self, root: str, before: Manifest) -> None:
        self.root = root
        self.before = before
        self.keep = False  # kept for the user when writing back failed


def _materialize(home: Home, ws: Workspace, cleanup: list[Any]) -> _Copy:
    base = os.path.join(home.path, "tmp")
    os.makedirs(base, exist_ok=True)
    copy = _Copy(tempfile.mkdtemp(prefix="exec-", dir=base), {})
    cleanup.append(lambda: None if copy.keep else shutil.rmtree(copy.root, ignore_errors=True))
    ws.materialize_to(copy.root)
    copy.before = _scan(copy.root)
    return copy


def _write_back(ws: Workspace, copy: _Copy) -> list[dict[str, str]]:
    """Apply to the workspace what the command changed in the copy (compared with the copy
    before it ran): other changes made to the workspace meanwhile are left alone. Returns
    the paths that could not be written back (with why)."""
    after = _scan(copy.root)
    failed: list[dict[str, str]] = []
    changed = sorted(p for p in after if after[p] != copy.before.get(p))
    gone = sorted((p for p in copy.before if p not in after), key=lambda p: -p.count("/"))

    def attempt(path: str, fn: Any) -> None:
        try:
            fn()
        except (AvfsError, OSError, UnicodeError) as exc:
            failed.append({"path": path, "why": str(getattr(exc, "message", exc))})

    for rel in changed:  # parents sort before their children
        mode, _, _, _, target = after[rel]
        full = os.path.join(copy.root, rel)

        def apply(rel: str = rel, mode: int = mode, target: str | None = target, full: str = full) -> None:
            node = ws.node(names.norm_path(rel))
            if stat.S_ISDIR(mode):
                if node is not None and not node.is_dir:
                    ws.remove(rel, recursive=True)
                if node is None or not node.is_dir:
                    ws.mkdir(rel, parents=True)
                return
            if node is not None and (node.is_dir or node.is_link != (target is not None)):
                ws.remove(rel, recursive=True)
            if target is not None:
                if node is not None and node.is_link:
                    ws.remove(rel)
                ws.symlink(target, rel)
            elif stat.S_ISREG(mode):
                with open(full, "rb") as fh:
                    ws.write(rel, fh, mode=0o755 if mode & 0o100 else 0o644)

        attempt(rel, apply)
    for rel in gone:

        def drop(rel: str = rel) -> None:
            if ws.node(names.norm_path(rel)) is not None:
                ws.remove(rel, recursive=True)

        attempt(rel, drop)
    return failed


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
