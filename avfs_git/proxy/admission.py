"""Before a ``proxy exec`` command runs: the request checked, the approval bound to it, the
fork's exec lock, and the small conversions the envelope uses.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import stat
import subprocess
import tempfile
from typing import IO, TYPE_CHECKING, Any

from ..core.errors import ApprovalRequiredError, AvfsError, PolicyDeniedError, QuotaExceededError, UsageError
from ..core.store import names
from ..policy.paths import variable_hint
from . import approval, runner
from .envelope import MODES, Approval, Confinement, Decision, ExecRequest, Request, Run
from .stages import Plan

# the most a request may ask to keep of each stream where the policy keeps less: the
# output is held in memory by whoever serves the call (a mount's daemon for the CLI's warm
# path, the MCP server) and then sent as JSON, where a NUL byte takes six (found in the
# seventeenth round, NAME=attack8: MCP `exec` with `max_output_bytes` 4e9 and 100 MB of
# output took the server to 1.27 GB, a 600 MB result; a GiB, several times that)
MAX_REQUESTED_OUTPUT = 16 << 20

if TYPE_CHECKING:
    from ..core.vaults.home import Home
    from ..core.vaults.vault import Vault
    from ..core.workspace.workspace import Workspace
    from ..policy import Decision as PolicyDecision
    from ..policy import Policy


def validate(req: ExecRequest) -> None:
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


def check_cwd(ws: Workspace, cwd: str) -> str:
    if cwd.startswith("/"):
        raise UsageError(
            f"cwd {cwd!r} (--cwd) is absolute: give a directory relative to the workspace root",
            details={"cwd": cwd},
        )
    p = names.norm_path(cwd)  # refuses '..', NUL bytes and '.git'
    node = ws.node(p)
    if node is None or not node.is_dir:
        raise UsageError(f"cwd {cwd!r} (--cwd) is not a directory of the workspace", details={"cwd": cwd})
    return p


def bound_request(request: dict[str, Any], req: ExecRequest, stdin_sha256: str | None) -> dict[str, Any]:
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


def stdin_digest(
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


def decision_of(d: PolicyDecision) -> Decision:
    return Decision(
        action=str(d.action), categories=tuple(str(c) for c in d.categories), reason=d.reason, rule=d.rule
    )


def run_of(r: runner.RunResult) -> Run:
    return Run(
        exit_code=r.exit_code,
        signal=r.signal,
        timed_out=r.timed_out,
        duration_ms=r.duration_ms,
        stdout=r.stdout.decode("utf-8", "replace"),
        stderr=r.stderr.decode("utf-8", "replace"),
        stdout_bytes=r.stdout_bytes,
        stderr_bytes=r.stderr_bytes,
        stdout_truncated=r.stdout_truncated,
        stderr_truncated=r.stderr_truncated,
        spawn_error=r.spawn_error,
        stray_processes_killed=r.stray_processes_killed,
        interrupted=r.interrupted,
    )


def plan(
    home: Home, vault: Vault, fork: str, req: ExecRequest, policy: Policy | None, cleanup: list[Any]
) -> Plan:
    """The first stage: the request checked, the policy's decision, what the command will
    run in and where (nothing is touched yet). A request that is not valid raises; a
    command that will not run (denied, approval required, no sandbox, a refused token)
    comes back as the plan's ``refusal``."""
    from ..policy import Outcome
    from ..policy import Policy as PolicyCls
    from .confine import no_sandbox
    from .lazyblobs import writes_tree
    from .placement import choose_mode, confinement, isolation, planned_root

    validate(req)
    ws = vault.workspace(fork)
    cwd = check_cwd(ws, req.cwd)
    pol = (
        policy
        if policy is not None
        else PolicyCls.load(home.path, vault.path, cache_dir=home.settings.cache_dir)
    )
    # the policy's is a ceiling: a request (MCP `exec`'s `timeout_ms`, the CLI's `--timeout-ms`
    # the agent hook fills from the agent's own call) may only lower it (found in the
    # nineteenth round, NAME=attack10: an agent asking for an hour ran an hour)
    timeout_ms = min(req.timeout_ms, pol.timeout_ms) if req.timeout_ms else pol.timeout_ms
    max_output = pol.max_output_bytes
    if req.max_output_bytes is not None:
        max_output = min(req.max_output_bytes, max(pol.max_output_bytes, MAX_REQUESTED_OUTPUT))
    request = Request.of(vault.name, fork, req, timeout_ms, cwd)
    mode, live = choose_mode(vault, fork, req.mode)
    root = live.mountpoint if live is not None else planned_root(home, vault, fork, mode)
    idle_s = None
    if mode == "fuse" and not req.keep_mount and (live is None or live.kept_warm):
        from ..ops.mountidle import idle_timeout

        idle_s = idle_timeout(home, vault)  # a bad setting: an error before anything is touched
    iso = isolation(vault, req, pol.confine)
    conf = confinement(req, iso, pol.confine)
    if iso is not None and iso.reason is None:
        root = iso.path  # the command will see the fork at the project's path: judge from there
    abs_cwd = os.path.join(root, cwd) if cwd else root
    verdict = pol.classify(req.shell if req.shell is not None else list(req.argv or ()), root, abs_cwd)
    decision = decision_of(verdict)
    action = Outcome(verdict.action)
    if conf.kind == "bwrap":
        conf = _network(conf, decision, verdict, pol)
    made = functools.partial(
        Plan,
        ws=ws,
        policy=pol,
        request=request,
        cwd=cwd,
        timeout_ms=timeout_ms,
        max_output=max_output,
        mode=mode,
        live=live,
        root=root,
        isolation=iso,
        confinement=conf,
        decision=decision,
        checkpoint_by_policy=action is Outcome.ALLOW_WITH_CHECKPOINT,
        idle_timeout_s=idle_s,
        git_writes_tree=writes_tree(verdict.commands),
    )
    if action is Outcome.DENY:
        denied = PolicyDeniedError(
            f"denied by policy: {verdict.reason.removeprefix('denied: ')}",
            hint=variable_hint(verdict.commands) or "see `avfs policy check -- CMD` for why",
            details={"rule": verdict.rule},
        )
        return made(req=req, refusal=denied)
    if conf.kind == "none":  # no sandbox here, and the policy allows no weaker view
        return made(req=req, refusal=no_sandbox(conf.reason or ""))
    full = over_quota_before(vault, fork, decision)
    if full is not None:
        return made(req=req, refusal=full)
    if action is not Outcome.REQUIRE_APPROVAL:
        if req.approve is not None:
            return made(req=req, refusal=UsageError("--approve given for a command that needs no approval"))
        return made(req=req)
    # bound to the bytes on stdin: read first (into a file) when it is a stream
    stdin, stdin_sha = stdin_digest(req.stdin, cleanup)
    req = dataclasses.replace(req, stdin=stdin)
    bound = bound_request(request.to_dict(), req, stdin_sha)
    if req.approve is None:
        issued = approval.issue(home.path, bound, pol.hash)
        token = Approval(
            token=issued["token"],
            expires_at=issued["expires_at"],
            request_hash=issued["request_hash"],
            stdin_sha256=stdin_sha,
        )
        required = ApprovalRequiredError(
            f"this command needs approval: {verdict.reason.removeprefix('needs approval: ')}",
            hint=(
                f"a person approves it with `avfs proxy approve {token.token}` in a terminal;"
                " then call exec again with the same arguments plus approve: TOKEN"
                if req.require_person_approval
                else "rerun it with --approve TOKEN once a person approves"
            ),
            details={"rule": verdict.rule, "token": token.token},
        )
        return made(req=req, approval=token, refusal=required)
    try:
        approval.consume(home.path, req.approve, bound, pol.hash, require_person=req.require_person_approval)
    except AvfsError as exc:
        return made(req=req, refusal=exc)
    return made(req=req, approval=Approval(token=req.approve, used=True))


# what a command may be while its vault is past its bytes quota: one that adds no bytes (the
# way out: reading, and removing what is not needed)
FITS_OVER_QUOTA = frozenset({"read_only", "destructive"})


def over_quota_before(vault: Vault, fork: str, decision: Decision) -> QuotaExceededError | None:
    """The refusal of a command that may add bytes to a vault already past its bytes quota
    (None: it may run). Without it each such command got the room the kernel's limit keeps
    over what the vault's qgroup holds (for avfs's own databases), and the limit set again
    after it, over what it had written, gave the next command as much again: a loop of
    commands took a 20 MiB quota past 120 MiB in six runs (tests/test_adv_quota.py). Costs
    the quota's count (~0.5 ms) when the vault has a bytes quota, nothing otherwise."""
    if set(decision.categories) <= FITS_OVER_QUOTA or vault.quota.limits()[0] is None:
        return None
    use = vault.quota.recount(bound_for=fork)
    if use.quota_bytes is None or use.used_bytes <= use.quota_bytes:
        return None
    use = vault.quota.usage(rescan=False)  # every overlay read: the exact use decides
    qb = use.quota_bytes
    if qb is None or use.used_bytes <= qb:
        return None
    return QuotaExceededError(
        f"vault {vault.name} is past its quota ({use.used_bytes} of {qb} bytes): a command that may"
        " add bytes does not run until it is back under it",
        hint="read-only commands, removals and `git checkout -- .` or `git reset --hard` still run; free space (`avfs rm`, `avfs checkpoint"
        " restore`, the caches), or raise the quota with `avfs quota set --bytes SIZE`",
        details={
            "what": "bytes",
            "used": use.used_bytes,
            "quota": qb,
            "categories": list(decision.categories),
        },
    )


def _network(conf: Confinement, decision: Decision, verdict: PolicyDecision, pol: Policy) -> Confinement:
    """The sandbox's network by policy: none, the host's, or filtered (through the proxy to
    the policy's hosts; none, and why, where it cannot be filtered)."""
    from . import confine

    network = confine.network_for(
        list(decision.categories),
        decision.action,
        pol.network,
        pol.network_allow,
        tuple(c.rule for c in verdict.commands),
    )
    if network != "filtered":
        return dataclasses.replace(conf, network=network)
    from . import netproxy

    why_not = netproxy.available()
    if why_not is not None:  # no way to filter: no network at all, and why
        return dataclasses.replace(
            conf, network="none", network_reason=f"{why_not}: no network instead of filtered"
        )
    return dataclasses.replace(
        conf, network="filtered", network_allow=tuple(pol.network_allow), network_refused=()
    )
