"""Where and in what a ``proxy exec`` command runs: the mount or the materialized copy, the
isolated view or the sandbox (its binds, the mount's own files it shows, the environment).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import threading
from typing import TYPE_CHECKING, Any

from ..core.errors import FuseUnavailableError, UsageError
from . import execspan
from .envelope import PASSED_ENV, Checkpoint, Confinement, ExecRequest, Isolation, Mount, short
from .materialize import materialize
from .stages import Before, Placed, Plan

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..core.vaults.home import Home
    from ..core.vaults.vault import Vault
    from ..core.workspace.workspace import Workspace
    from ..ops.mounts import MountInfo
    from ..policy import Policy


def command_env(req: ExecRequest, vault: str, fork: str, root: str, cwd: str | None = None) -> dict[str, str]:
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


def with_identity(env: dict[str, str], ws: Workspace) -> dict[str, str]:
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


def worktree(vault: Vault, fork: str) -> str:
    from ..core.vaults.registry import mount_key
    from ..mount.ownfiles import worktree_dir

    return worktree_dir(vault, mount_key(fork, None))


def isolation(vault: Vault, req: ExecRequest, fallback: str = "bwrap") -> Isolation | None:
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
    return Isolation(
        requested=True,
        active=False,
        path=os.path.normpath(str(at)),
        host=req.isolate,
        method=method if why is None else None,
        reason=why,
    )


def confinement(req: ExecRequest, iso: Isolation | None, fallback: str = "bwrap") -> Confinement:
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
    out = Confinement(kind="host", requested=requested, network="host", reason=None)
    if req.isolate is None and requested == "writable":
        return out
    if requested in ("writable", "readonly", "hidden"):  # a hand-made view, asked for
        if iso is not None and iso.reason is not None:
            return dataclasses.replace(out, reason=iso.reason)
        return dataclasses.replace(out, kind="namespace")
    from . import confine

    why = confine.unavailable()
    if why is None:
        return dataclasses.replace(out, kind="bwrap", network="none")
    if fallback != "namespace":
        return dataclasses.replace(out, kind="none", network="none", reason=why)
    from . import isolate

    also = isolate.unavailable()
    if also is None and isolate.unfiltered():  # (a view loads the sandbox's filter where it can)
        also = f"the hand-made view has no seccomp filter either: {confine.NO_SECCOMP}"
    if also is None:
        return dataclasses.replace(
            out,
            kind="namespace",
            reason=f'{why}: the policy\'s confine = "namespace" fallback, a hand-made hidden view'
            " (weaker: the host's network) instead",
        )
    return dataclasses.replace(out, kind="none", network="none", reason=f"{why}; and {also}")


def _fsmonitor_hook(hook: str) -> str:
    """The fork's fsmonitor hook (``hook``, in the mount's own directory) as the sandbox runs
    it: its interpreter (avfs's Python, maybe under a home the sandbox hides; a Perl on ``PATH``)
    replaced by the system's ``/usr/bin/python3`` or ``/usr/bin/perl`` with the same flags,
    written beside it (no confined command writes there), shown read-only at the hook's path."""
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


def sandbox_for(
    vault: Vault,
    fork: str,
    root: str,
    at: str,
    at_cwd: str,
    network: str,
    pol: Policy,
    home_dir: str | None,
    mode: str,
    avfs_home: str,
    caller_home: str | None = None,
) -> Any:
    """The :class:`~.confine.Sandbox` of one command: the fork (``root``) at ``at``, the
    vault as git needs it, avfs's state hidden, the caches the policy names (``caches``:
    (name, host path) pairs, as the envelope names them)."""
    from . import confine

    keep: tuple[str, ...] = (vault.path,)
    writable: tuple[str, ...] = ()
    pinned: list[tuple[str, str]] = []
    shown: list[tuple[str, str]] = []
    if mode == "fuse":
        writable, pins = git_writable(vault, fork)
        pinned.extend((p, p) for p in pins)
        shown = _mount_files_shown(vault, fork)
    caches = confine.cache_dirs(vault.state_dir, pol.caches)
    readable = pol.readable
    if network != "none":
        from .sealremotes import local_remotes

        readable = (*readable, *local_remotes(vault))  # (a local remote: reached as the network is)
    return confine.Sandbox(
        source=root,
        path=at,
        cwd=at_cwd,
        network=network,
        home=home_dir,
        keep=keep,
        writable=writable,
        pinned=tuple(pinned),
        masked=(vault.state_dir,),
        shown=tuple(shown),
        caches=caches,
        readable=confine.readable_paths(readable, caller_home, avfs_home, also_never=home_dir),
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
    from ..mount.personhooks import GATES_DIR

    own = files_dir(vault, mount_key(fork, None))
    hook, sock = os.path.join(own, HOOK_FILE), os.path.join(own, SOCKET_NAME)
    out = [(hook, _fsmonitor_hook(hook))] if os.path.isfile(hook) and not os.path.islink(hook) else []
    # git's hooks there (the branch-switch guard, the person's), the gates pre-commit leads to
    dirs = (os.path.join(own, HOOKS_DIR), os.path.join(own, GATES_DIR))
    out += [(d, d) for d in dirs if os.path.isdir(d) and not os.path.islink(d)]
    if os.path.exists(sock) and not os.path.islink(sock):
        out.append((sock, sock))
    return out


def git_writable(vault: Vault, fork: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """What of the vault a sandbox or a readonly or hidden view leaves writable in place, so
    that `git status` works in the mounted fork: the fork's worktree directory (its index,
    reflog, locks), with the files of :data:`_PINNED` in it read-only (pinned). The rest
    (``objects/``, ``refs/``, ``logs/``, ``hooks/``, ``config``, ``info/``, other worktrees)
    stays read-only, ``avfs/`` masked; scratch ``refs/``, ``logs/`` and an object quarantine
    on top (:mod:`.seal`) let `git commit` work there, and only the fork's branch comes back."""
    writable: list[str] = []
    wt = worktree(vault, fork)
    pinned = tuple(os.path.join(wt, name) for name in _PINNED)
    if all(os.path.isfile(p) and not os.path.islink(p) for p in pinned):
        writable.append(wt)  # else a file git trusts could be made there: leave it read-only
    else:
        pinned = ()
    return tuple(writable), pinned


# -- where the command runs ---------------------------------------------------------------
def choose_mode(vault: Vault, fork: str, wanted: str) -> tuple[str, Any]:
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


def planned_root(home: Home, vault: Vault, fork: str, mode: str) -> str:
    if mode == "fuse":
        from ..ops import mounts

        return mounts.default_mountpoint(home, vault.name, fork)
    return os.path.join(home.path, "tmp", "exec")


def ensure_mount(
    home: Home,
    vault: Vault,
    fork: str,
    live: Any,
    keep: bool,
    cleanup: list[Any],
    idle_s: float | None = None,
    made: Callable[[], MountInfo] | None = None,
) -> Mount:
    """The fork's mount for the command (the envelope's ``mount``), under the exec lock.

    A live mount is reused. One kept warm (made by an earlier call) is looked at again
    first, since its daemon may have released it after the plan found it (it takes the
    exec lock this call holds now, so it stays while the call runs), and its use is noted
    now and when the call ends. Without a live mount the fork is mounted: kept warm for
    ``idle_s`` seconds without use (fuse/idle.py), unmounted after the call when ``idle_s``
    is 0, or for good with ``keep`` (``--keep-mount``, which also makes a mount kept warm
    one that stays). ``made``: the mount this call started before its plan (premount.py's
    ``Premount.take``), kept as if it were made here."""
    from ..core.vaults.registry import touch_activity
    from ..ops import mounts
    from ..ops.mountidle import idle_timeout

    def note_use() -> None:
        touch_activity(vault.state_dir, fork)

    if idle_s is None and not keep:
        idle_s = idle_timeout(home, vault)
    per_call = not keep and not idle_s  # (kept warm, or adopted by `avfs mount`: stays)
    if made is not None:
        return _made_mount(home, vault, fork, made(), per_call, cleanup, note_use)

    if live is not None and live.kept_warm:
        live = mounts.check(vault, fork)
        if live is not None and live.state == "mounted" and keep:
            live = mounts.adopt(vault, fork)
        if live is None or live.state != "mounted":
            live = None
        elif live.kept_warm:
            note_use()
            cleanup.append(note_use)
    if live is not None:
        return Mount(
            mountpoint=str(live.mountpoint),
            mode="fuse",
            reused=True,
            backend=str(live.backend),
            kept_warm=bool(live.kept_warm),
            idle_timeout_s=live.idle_timeout_s,
        )
    warm = not keep and bool(idle_s)
    info = mounts.mount(home, vault, fork, None, idle_timeout_s=idle_s if warm else None)
    return _made_mount(home, vault, fork, info, per_call, cleanup, note_use)


def _made_mount(
    home: Home,
    vault: Vault,
    fork: str,
    info: Any,
    per_call: bool,
    cleanup: list[Any],
    note_use: Callable[[], None],
) -> Mount:
    """The envelope's ``mount`` of ``info``, mounted for this call (or found mounted by
    then): kept warm, its use noted at the call's end; made for the call alone
    (``per_call``: idle timeout 0), unmounted after it."""
    from ..ops import mounts

    if info.kept_warm:
        cleanup.append(note_use)  # the idle time counts from the call's end
    elif per_call and not info.reused:
        cleanup.append(lambda: mounts.unmount(home, vault, fork, lazy=True))
    return Mount(
        mountpoint=info.mountpoint,
        mode="fuse",
        reused=info.reused,
        backend=info.backend,
        kept_warm=info.kept_warm,
        idle_timeout_s=info.idle_timeout_s,
    )


def before(
    vault: Vault, fork: str, plan: Plan, cleanup: list[Any], unlanded: Callable[[str], None]
) -> Before:
    """The second stage, under the fork's exec lock (held until the call ends: a second
    command would commit the first one's files as its own, see docs/proxy.md): the record
    of the fork before the command when the policy or the request wants one, or when
    earlier changes are not checkpointed (so the commit afterwards holds exactly what the
    command changed), and the marks its changes are read from. ``unlanded``: called with
    the record when the call ends (a cleanup): it keeps the record beside the branch when
    the call failed before the record landed or was kept."""
    from ..core.operations import merge as merging

    ws, req = plan.ws, plan.req
    cleanup.append(exec_lock(vault, fork))
    reason = None
    # what the command changed is read from the workspace's journals (ws.since): the upper
    # layer's too when this runs in the overlay mount's daemon, not a walk of the upper layer
    dirty: bool | None = None  # uncheckpointed changes, as of `mark`
    mark = ws.since.mark()
    if plan.checkpoint_by_policy:
        reason = "policy"
    elif req.checkpoint == "always":
        reason = "requested"
    elif req.commit:
        dirty = ws.since.dirty()
        if dirty:
            reason = "uncheckpointed_changes"
    # a merge with written conflicts is open: the command runs in it, and nothing is
    # checkpointed or committed (its changes are part of the merge's resolution, which
    # `merge --continue` commits with two parents); a checkpoint the policy or the request
    # wants first cannot be taken, so then it does not run (see docs/proxy.md)
    in_merge = merging.merge_state(ws) is not None
    if in_merge:
        if reason in ("policy", "requested"):
            merging.refuse_if_merging(ws, f"the checkpoint this command needs first ({reason})")
        reason = None
    # git in the mount off the branch or mid-operation (a bisect between its steps): what is
    # "uncheckpointed" is git's checkout of another commit, which a record landing with the
    # command's commit would put on the branch: none is taken for it, and one the policy or
    # the request wants stays beside the branch (see docs/proxy.md, git in the sandbox)
    git_busy = reason is not None and ws.git_state() is not None
    if git_busy and reason == "uncheckpointed_changes":
        reason = None
    # the record of the fork before the command: a commit of the workspace on its base that
    # lands on the fork's branch with the commit after the command, unless the command
    # moved the branch itself (a `git commit` inside: git's commit takes precedence, and
    # the record is kept beside the branch; see docs/proxy.md, Git inside)
    record: str | None = None
    made: Checkpoint | None = None
    if reason is not None:
        from ..core.operations import checkpoint

        record = checkpoint.snapshot(vault, fork, f"avfs proxy exec: before `{short(req.command_text())}`")
        # on_branch: the base is on it; a record lands after the command
        made = Checkpoint(
            commit=record or ws.base, created=record is not None, reason=reason, on_branch=record is None
        )
        if record is not None:
            # the call failing before the record landed (the sandbox not set up...): it is
            # kept beside the branch all the same, as its id in the envelope says
            cleanup.append(functools.partial(unlanded, record))
        dirty = None
    tip0 = ws.tip()
    if dirty is None:
        from ..core.errors import IgnoreTooSlowError

        mark = ws.since.mark()
        try:
            dirty = ws.since.dirty()
        except IgnoreTooSlowError:
            # (a `.gitignore` line git's matcher takes hours over: a command that commits
            # nothing still runs, to mend it; what it changed is read since it started)
            dirty = True
    # what the quota counts outside the forks (cheap), when there is a bytes quota
    outside0 = vault.quota.outside_bytes() if vault.quota.limits()[0] is not None else None
    start = ws.since.mark()  # the command's changes are those made since
    # what is journaled from now on is the command's in `avfs watch` (closed when the call
    # has recorded them; here too, for a call that ends early)
    span = execspan.open_span(ws)
    cleanup.append(functools.partial(execspan.close_span, ws, span))
    return Before(
        checkpoint=made,
        record=record,
        in_merge=in_merge,
        tip0=tip0,
        mark=mark,
        start=start,
        dirty_before=dirty,
        outside0=outside0,
        span=span,
        git_busy=git_busy,
    )


def place(
    home: Home,
    vault: Vault,
    fork: str,
    plan: Plan,
    cleanup: list[Any],
    premount: Callable[[], MountInfo] | None = None,
) -> Placed:
    """The third stage: the fork mounted (a live mount reused, or one made for the call) or
    copied, and what the command runs in: the sandbox (the fork at the vault's one path,
    the mount's own files it needs, the git scratch of :mod:`.seal`), a hand-made view, or
    the host as it is; its environment."""
    req, conf, iso, cwd = plan.req, plan.confinement, plan.isolation, plan.cwd
    copy = None
    if plan.mode == "fuse":
        mount = ensure_mount(
            home, vault, fork, plan.live, req.keep_mount, cleanup, plan.idle_timeout_s, premount
        )
        root = mount.mountpoint
    else:
        copy = materialize(home, plan.ws, cleanup)
        root = copy.root
        mount = Mount(mountpoint=root, mode="materialized", reused=False)
    abs_cwd = os.path.join(root, cwd) if cwd else root
    argv = tuple(req.argv) if req.argv is not None else ("/bin/sh", "-c", req.shell or "")
    # where the command sees the fork: the project's path (an isolate view); in the
    # sandbox, the vault's one path for every fork (so the absolute paths pip, npm, cmake or
    # cargo write in one fork stay right in a fork of it); on the host, where it is
    if iso is not None and iso.reason is None:
        at = iso.path
    elif conf.kind == "bwrap":
        from . import confine

        at = confine.stable_path(vault.name)
    else:
        at = root
    at_cwd = os.path.join(at, cwd) if cwd else at
    placed = functools.partial(Placed, mount=mount, root=root, copy=copy, argv=argv, at=at)
    if conf.kind == "bwrap":
        return _in_sandbox(home, vault, fork, plan, placed, root, at, at_cwd)
    if conf.kind == "namespace":  # the hand-made view: asked for, or the sandbox's fallback
        from . import isolate

        host = iso.host if iso is not None and iso.host != "confined" else "hidden"
        env = command_env(req, vault.name, fork, at, at_cwd)
        if host != "writable":  # the host's home (and its ~/.gitconfig) may be hidden
            env = with_identity(env, plan.ws)
        keep = (vault.path,) if host != "writable" else ()  # so git works in the fork
        writable, pinned = git_writable(vault, fork) if keep and plan.mode == "fuse" else ((), ())
        binds: tuple[tuple[str, str, bool], ...] = ()
        sealed = None
        if keep and plan.mode == "fuse":
            from . import seal

            sealed = seal.prepare(vault, fork, worktree(vault, fork), conf.network != "none")
            binds = sealed.binds + tuple((src, dst, False) for src, dst in sealed.state_binds)
            if sealed.shown_packed is not None:  # (the vault's top is not the view's own here)
                binds += ((*sealed.shown_packed, False),)
            # avfs's state masked as in the sandbox but for what git runs (attack28: logs, locks)
            binds += tuple((src, path, False) for path, src in _mount_files_shown(vault, fork))
        view = isolate.plan(
            root, at, host, cwd, keep, env.get("HOME"), writable=writable, pinned=pinned, sealed=binds,
            masked=(vault.state_dir,),
        )  # fmt: skip
        return placed(cwd=view.cwd, env=tuple(env.items()), confinement=conf, view=view, sealed=sealed)
    env = command_env(req, vault.name, fork, root, abs_cwd)
    return placed(cwd=abs_cwd, env=tuple(env.items()), confinement=conf)


def _in_sandbox(
    home: Home,
    vault: Vault,
    fork: str,
    plan: Plan,
    placed: Callable[..., Placed],
    root: str,
    at: str,
    at_cwd: str,
    refresh: bool = True,
) -> Placed:
    """:func:`place` for the sandbox (bubblewrap); ``refresh`` False: the seal's layout
    alone (:func:`.seal.prepare`), for a sandbox set up ahead (:mod:`.ahead`)."""
    from . import confine

    req, conf, cwd = plan.req, plan.confinement, plan.cwd
    env = command_env(req, vault.name, fork, at, at_cwd)
    # the policy's `~/` is the caller's own home, never a HOME the request asks for (which
    # would move what is shown, and what is never shown, of the host)
    caller = dict(req.base_env) if req.base_env is not None else os.environ
    sandbox = sandbox_for(
        vault,
        fork,
        root,
        at,
        at_cwd,
        conf.network,
        plan.policy,
        env.get("HOME"),
        plan.mode,
        home.path,
        caller.get("HOME"),
    )
    conf = dataclasses.replace(conf, path=at, caches=tuple(name for name, _ in sandbox.caches))
    if plan.isolation is None and plan.mode == "fuse" and confine.can_alias(sandbox, root):
        # the mount point too, as a link to the vault's path, and the command's working
        # directory through it: its shell's `pwd` and $PWD say the path the agent knows
        # (and the fork is found by it), while the kernel's (`pwd -P`, getcwd(), what
        # pip, npm or cmake write) is the vault's one path
        shown_cwd = os.path.join(root, cwd) if cwd else root
        sandbox = dataclasses.replace(sandbox, cwd=shown_cwd, aliases=(root,))
        env = command_env(req, vault.name, fork, root, shown_cwd)
    sealed = None
    if plan.mode == "fuse":
        from . import seal

        # under the exec lock, right before the command: the scratch the sandbox binds
        sealed = seal.prepare(vault, fork, worktree(vault, fork), conf.network != "none", refresh=refresh)
        shown = sandbox.shown + tuple((target, source) for source, target in sealed.state_binds)
        top = (vault.path, sealed.top) if sealed.top is not None and vault.path in sandbox.keep else None
        sandbox = dataclasses.replace(sandbox, sealed=sealed.binds, shown=shown, top=top)
    env = confine.environment(with_identity(env, plan.ws), sandbox)
    return placed(cwd=sandbox.cwd, env=tuple(env.items()), confinement=conf, sandbox=sandbox, sealed=sealed)


def exec_lock(vault: Vault, fork: str, wait_s: float = 24 * 3600) -> Any:
    """Take the fork's exec lock (waiting for a running command up to ``wait_s``: BusyError
    after); returns its release."""

    from ..core.store.locks import exec_lock_path, file_lock

    path = exec_lock_path(vault.state_dir, fork)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    stack = contextlib.ExitStack()
    stack.enter_context(file_lock(path, what=f"proxy exec on {vault.name}:{fork}", wait_s=wait_s))
    return stack.close
