"""Mount lifecycle: spawn a daemon per mounted fork, wait for readiness, list, unmount.

A mount is a daemon process (``python -m avfs_git.fuse.daemon``) that outlives the
command. ``mount()`` returns only when the daemon's ``init`` callback ran, i.e. after the
kernel handshake: the daemon writes one byte to a pipe the parent reads (a readiness gate,
not a sleep or a log line). The daemon records the mount in the mount registry
(:mod:`avfs_git.core.vaults.registry`: where the records live, reading and writing them,
liveness).

A daemon killed with -9 leaves nothing mounted, as a rule (``auto_unmount``: fusermount3
unmounts once the daemon is gone, unless it looked before the kernel aborted the
connection: docs/fuse.md, "Crashes"); a mountpoint left dead (ENOTCONN) is detected and
lazily unmounted by the next ``mount``, ``unmount`` or ``mount --list``.

This module sits in ops, below fuse and proxy: it starts the daemon as a process and loads
no FUSE code, so up/down (quickstart), stats/prune/doctor (maintenance) and ``proxy exec``
reach the mounts without importing upward (docs/architecture.md).
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, Any

from ..core.errors import (
    AlreadyExistsError,
    AvfsError,
    BusyError,
    FuseUnavailableError,
    InternalError,
    MountError,
    UsageError,
    VaultNotFoundError,
)
from ..core.records import dataclass
from ..core.store import names
from ..core.store.locks import (
    FileLocks,
    file_lock,
    judged_here,
    mount_gate_path,
    mount_lock_path,
    pid_alive,
    signal_process,
    start_ticks,
)
from ..core.vaults import registry
from ..core.vaults.registry import mount_key, mounted_at
from .daemonstart import (
    DAEMON_MODULE,
    PROGRESS,
    READY_TIMEOUT_S,
    _await_ready,
    _daemon_env,
    _launch,
    _placeholder,
    _reap,
    _tail,
    next_byte,
    reap_exited,
    wait_gone,
)
from .detaching import abort_dead as abort_dead
from .detaching import detach as detach  # re-exported: the daemon's callers ask mounts
from .detaching import force_unmount as force_unmount
from .holders import held
from .holders import mount_holders as mount_holders  # re-exported: its callers ask mounts
from .mountbackend import choose_backend
from .mountbackend import overlay_available as overlay_available  # re-exported: its callers ask mounts

if TYPE_CHECKING:
    from ..core.vaults.home import Home
    from ..core.vaults.vault import Vault

STOP_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class MountInfo:
    vault: str
    fork: str
    mountpoint: str
    pid: int
    state: str  # mounting | mounted | unmounting | dead
    read_only: bool
    revision: str | None
    started: str
    reused: bool = False
    backend: str = "fuse"  # overlay: kernel overlayfs over avfs's read-only FUSE view
    backend_why: str = ""  # why this backend (the reason overlay was not used, say)
    # where an overlay mount's upper layer (what the mount writes) lives: "layers" (the home's
    # btrfs image: forks share it, big files go at btrfs's speed) or "host" (a directory on
    # the host's file system); None for the pure-FUSE backend and read-only mounts
    upper_on: str | None = None
    # a mount proxy exec made and keeps warm: released by its daemon after idle_timeout_s
    # without use (at idle_expires_at, as things stand now); False for a mount someone asked
    # for (`avfs mount`, --keep-mount), which stays until unmounted
    kept_warm: bool = False
    idle_timeout_s: float | None = None
    idle_expires_at: str | None = None


def fuse_available() -> str | None:
    """Why FUSE cannot be used here (None when it can)."""
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse is missing (FUSE is not available in this kernel or container)"
    if not any(
        os.path.exists(os.path.join(d, "fusermount3")) for d in os.environ.get("PATH", "").split(":") if d
    ):
        return "fusermount3 is not installed (apt-get install fuse3)"
    return None


BACKENDS = ("auto", "overlay", "fuse")


def _info(
    data: dict[str, Any], state: str | None = None, reused: bool = False, last_used: float | None = None
) -> MountInfo:
    warm = bool(data.get("kept_warm"))
    idle = data.get("idle_timeout_s") if warm else None
    expires = None
    if warm and isinstance(idle, (int, float)):
        since = last_used if last_used is not None else time.time()
        expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(since + float(idle)))
    return MountInfo(
        vault=str(data["vault"]),
        fork=str(data["fork"]),
        mountpoint=str(data["mountpoint"]),
        pid=int(data["pid"]),
        state=state or str(data.get("state", "mounted")),
        read_only=bool(data.get("read_only", False)),
        revision=data.get("revision"),
        started=str(data.get("started", "")),
        reused=reused,
        backend=str(data.get("backend", "fuse")),
        backend_why=str(data.get("backend_why", "")),
        upper_on=data.get("upper_on"),
        kept_warm=warm,
        idle_timeout_s=float(idle) if isinstance(idle, (int, float)) else None,
        idle_expires_at=expires,
    )


def registry_path(vault: Vault, key: str) -> str:
    """The registry record of mount ``key`` of ``vault``."""
    return registry.record_path(vault.state_dir, key)


def check(vault: Vault, key: str) -> MountInfo | None:
    """The live mount registered under ``key``, after cleaning up a dead one."""
    path = registry_path(vault, key)
    data = registry.read_record(path)
    if data is None:
        return None
    rec = registry.Record(key, path, data)
    if registry.registered(rec) or not judged_here(data):
        # (a daemon of another PID namespace: its pid means nothing here, never judged dead)
        used = registry.last_activity(vault.state_dir, key) if data.get("kept_warm") else None
        return _info(data, last_used=used)
    if (
        data.get("state") == "unmounting"
        and rec.pid > 0
        and pid_alive(rec.pid)
        and registry.is_mount_daemon(rec.pid)
    ):
        # unmounted, its daemon still tearing down (it removes the record last): not dead
        return _info(data)
    # the daemon died (kill -9) or the mount vanished: clean up both (an overlay's lower
    # layer too: its FUSE connection may still be held by libfuse's helper). Its FUSE
    # connection is aborted first, before anything touches the mount: a daemon killed
    # while a thread of its own waited in its mount never ends, nor does any request there
    # (detaching.abort_dead; docs/fuse.md "A killed daemon")
    mp = rec.mountpoint
    for fuse_at in (mp, data.get("lower")) if rec.pid > 0 and not pid_alive(rec.pid) else ():
        if isinstance(fuse_at, str) and fuse_at:  # (a live daemon's goes as it ends itself)
            abort_dead(fuse_at, f"avfs:{vault.name}:{key}")
    if mp and mounted_at(mp):
        force_unmount(mp)
    _detach_layers(data, None, dead=True)
    if data.get("lower") and data.get("fork") and not (mp and mounted_at(mp)):
        registry.unpin_dead(vault.state_dir, str(data["fork"]), path, data)
    for p in (path, registry.exec_path(path)):
        try:
            os.unlink(p)
        except FileNotFoundError:
            pass
    return None


def list_mounts(home: Home) -> list[MountInfo]:
    out: list[MountInfo] = []
    for v in home.list_vaults():
        vault = home.vault(v.name)
        for rec in registry.records(vault.state_dir):
            info = check(vault, rec.key)
            if info is not None:
                out.append(info)
    return out


def default_mountpoint(home: Home, vault: str, key: str) -> str:
    return os.path.join(home.path, "mnt", vault, names.fs_name(key))


def _check_mountpoint(mp: str, *, created: bool) -> None:
    if mounted_at(mp):
        try:
            os.stat(mp)
        except OSError as exc:
            if exc.errno in registry.DEAD_ERRNOS:
                force_unmount(mp)
                return
        raise AlreadyExistsError(
            f"{mp} is already a mount point", hint="unmount it or choose another directory"
        )
    if not os.path.exists(mp):
        raise UsageError(f"mount point {mp} does not exist", hint="create the directory first, or omit it")
    if not os.path.isdir(mp):
        raise UsageError(f"mount point {mp} is not a directory")
    if not created and os.listdir(mp):
        raise UsageError(f"mount point {mp} is not empty", hint="mount on an empty directory")
    if not os.access(mp, os.W_OK | os.X_OK):
        raise UsageError(f"mount point {mp} is not writable by you")


def mount(
    home: Home,
    vault: Vault,
    fork: str,
    mountpoint: str | None = None,
    *,
    revision: str | None = None,
    foreground: bool = False,
    backend: str = "auto",
    idle_timeout_s: float | None = None,
) -> MountInfo:
    """Mount ``fork`` (or, read-only, a ``revision`` of it) and return once it is ready.

    ``backend``: ``overlay`` (kernel overlayfs over avfs's read-only FUSE view: the kernel
    serves every write), ``fuse`` (avfs serves everything), or ``auto``: overlay where it
    can be mounted, else fuse; the mount's record says which and why.

    ``idle_timeout_s`` (``proxy exec`` mounting a fork for its call): the mount is *kept
    warm*, released by its daemon once it has gone that long without use (fuse/idle.py).
    None (``avfs mount``): it stays until unmounted, and a fork already mounted and kept
    warm is adopted: it stays too (:func:`adopt`)."""
    got = start(
        home,
        vault,
        fork,
        mountpoint,
        revision=revision,
        foreground=foreground,
        backend=backend,
        idle_timeout_s=idle_timeout_s,
    )
    return got if isinstance(got, MountInfo) else got.wait()


def start(
    home: Home,
    vault: Vault,
    fork: str,
    mountpoint: str | None = None,
    *,
    revision: str | None = None,
    foreground: bool = False,
    backend: str = "auto",
    idle_timeout_s: float | None = None,
) -> MountInfo | Starting:
    """:func:`mount`'s first half: everything checked and the daemon started, not waited
    for (a :class:`Starting`, whose :meth:`~Starting.wait` is the second half), so that a
    caller can do other work while the daemon comes up (``proxy exec``'s plan); or the
    :class:`MountInfo` of a mount there already (reused, or adopted)."""
    if backend not in BACKENDS:
        raise UsageError(f"unknown mount backend {backend!r}", hint="one of: auto, overlay, fuse")
    why = fuse_available()
    if why is not None:
        raise FuseUnavailableError(f"cannot mount: {why}")
    vault.require_fork(fork)
    # the fork's path rules, read now: a policy file that does not parse is one clear error
    # here (PolicyError), never a mount that serves without them (the daemon reads them again)
    vault.path_guard(fork)
    # a lazy vault's prefetch settings, read now for the same reason (docs/lazy.md, "Settings")
    from ..core.vaults.lazyconfig import prefetch_budget

    prefetch_budget(vault.path, home.path)
    commit: str | None = None
    if revision is not None:
        from ..core.operations.history import resolve

        commit = resolve(vault, revision, fork)
    key = mount_key(fork, commit)
    # one starter of a fork's mounts at a time, until its daemon is in the registry: two
    # `avfs mount`s (or one and a first `proxy exec`) at once would otherwise both start a
    # daemon, the second over the first's mount point
    with _mount_lock(vault, fork, gate=True):
        return _start_locked(home, vault, fork, key, commit, mountpoint, foreground, backend, idle_timeout_s)


@contextmanager
def _mount_lock(vault: Vault, fork: str, *, gate: bool = False) -> Iterator[None]:
    """The fork's mount lock (also taken by :func:`adopt` and by a daemon releasing an idle
    mount), waited for as long as a mount being started or stopped may take; ``gate``: the
    vault's mount gate first, shared (a start's: a vault's delete takes it alone). A vault
    deleted meanwhile (the locks go to the trash with it: core/vaults/home.py) is said as
    such, not as an unusable lock path, and its directories are not made again."""
    wait_s = READY_TIMEOUT_S + STOP_TIMEOUT_S
    items = [(mount_lock_path(vault.state_dir, fork), f"the mount of {vault.name}:{fork}", False)]
    if gate:
        items.insert(0, (mount_gate_path(vault.state_dir), f"the mounts of vault {vault.name}", True))
    with ExitStack() as stack:
        try:
            try:
                os.mkdir(os.path.dirname(items[0][0]))  # (not makedirs: see above)
            except FileExistsError:
                pass
            except FileNotFoundError:
                if not os.path.isdir(vault.path):
                    raise
                os.makedirs(os.path.dirname(items[0][0]), exist_ok=True)  # (no state dir yet)
            for path, what, shared in items:
                stack.enter_context(FileLocks(((path, what),), wait_s, shared=shared))
        except (OSError, AvfsError):
            if os.path.isdir(vault.path):
                raise
            msg = f"vault {vault.name!r} was deleted while its fork {fork!r} was being mounted"
            raise VaultNotFoundError(msg, hint=f"`avfs vault restore {vault.name}` brings it back") from None
        yield


def _start_locked(
    home: Home,
    vault: Vault,
    fork: str,
    key: str,
    commit: str | None,
    mountpoint: str | None,
    foreground: bool,
    backend: str,
    idle_timeout_s: float | None,
) -> MountInfo | Starting:
    """:func:`start` under the fork's mount lock."""
    # again under the lock: a fork's deletion holds it from its check of the fork's mounts
    # to its end (core/vaults/forkremoval.py), so a fork deleted meanwhile is not mounted
    vault.require_fork(fork)
    existing = _settled(vault, key)
    if existing is not None:
        if mountpoint is None or os.path.realpath(mountpoint) == os.path.realpath(existing.mountpoint):
            if existing.kept_warm and idle_timeout_s is None:
                adopted = adopt(vault, key)
                if adopted is None:  # released meanwhile: mount it anew
                    return mount(home, vault, fork, mountpoint, revision=commit, backend=backend)
                existing = adopted
            return dataclasses.replace(existing, reused=True)
        raise AlreadyExistsError(
            f"{vault.name}:{key} is already mounted at {existing.mountpoint}",
            hint="one mount per fork: use that one, or unmount it first",
            details={"mountpoint": existing.mountpoint},
        )
    mountpoint = _prepare_mountpoint(home, vault, key, mountpoint)
    log_path = registry.log_path(vault.state_dir, key)
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    cmd = [sys.executable, *DAEMON_MODULE, "--home", home.path, "--vault", vault.name]
    cmd += ["--fork", fork, "--mountpoint", mountpoint]
    if commit is not None:
        cmd += ["--revision", commit]
    elif idle_timeout_s is not None:
        cmd += ["--idle-timeout", repr(float(idle_timeout_s))]
    chosen, because = choose_backend(home, vault, fork, backend, read_only=commit is not None)
    cmd += ["--backend", chosen]
    env = _daemon_env(home)
    if foreground:
        os.execvpe(cmd[0], [*cmd, "--foreground"], env)
    pid, ready_fd = _launch(cmd, env, log_path, home.settings.zygote, home)  # forked warm, else spawned
    _placeholder(registry_path(vault, key), vault.name, fork, commit, mountpoint, pid, idle_timeout_s)
    return Starting(
        home, vault, fork, key, mountpoint, backend, because, idle_timeout_s, log_path, pid, ready_fd
    )


@dataclass(slots=True)
class Starting:
    """A mount daemon started by :func:`start` and not yet ready: :meth:`wait` for it."""

    home: Home
    vault: Vault
    fork: str
    key: str
    mountpoint: str
    backend: str  # as asked: auto, overlay, fuse
    because: str  # why the daemon got the backend it got
    idle_timeout_s: float | None
    log_path: str
    pid: int
    ready_fd: int  # the read end of its readiness pipe (-1 once waited for)
    progress: bytes = b""  # what it said there before its answer, read by :meth:`reached`
    answer: bytes | None = None  # its answer (R, O; b"": none), when :meth:`reached` read it

    def reached(self, mark: bytes) -> bool:
        """Wait until the daemon says ``mark`` (``LINKED``, ``STACKED``: ops/daemonstart.py)
        on its readiness pipe, before its answer: True then; False once it answered without
        (:meth:`wait` tells what)."""
        while mark not in self.progress and self.answer is None and self.ready_fd >= 0:
            got = next_byte(self.pid, self.ready_fd)
            if got in PROGRESS:
                self.progress += got
            else:
                self.answer = got
        return mark in self.progress

    def wait(self) -> MountInfo:
        """The mount once its daemon is ready (an ``auto`` mount that overlayfs refused,
        mounted anew with the pure-FUSE backend); raises MountError when it did not come up."""
        vault, key, log_path, pid = self.vault, self.key, self.log_path, self.pid
        fd, self.ready_fd = self.ready_fd, -1
        if fd < 0:
            raise InternalError(f"the mount of {vault.name}:{key} was waited for already")
        ready = _await_ready(pid, fd, self.answer)
        if ready == "O":  # the daemon could not stack overlayfs
            _reap(pid, block=True)
            tail = _tail(log_path)
            if self.backend == "auto":
                fell = mount(
                    self.home,
                    vault,
                    self.fork,
                    self.mountpoint,
                    backend="fuse",
                    idle_timeout_s=self.idle_timeout_s,
                )
                last = tail.strip().splitlines()[-1] if tail.strip() else "?"
                return _note_backend(vault, key, fell, f"overlayfs refused the mount: {last}")
            raise MountError(
                f"overlayfs refused to mount {vault.name}:{key}",
                hint="see the log: " + log_path + " (or use --backend fuse)",
                details={"log": log_path, "log_tail": tail},
            )
        if not ready:
            tail = _tail(log_path)
            if signal_process(pid, signal.SIGKILL, is_it=registry.is_mount_daemon):  # (forked: not our child)
                _reap(pid, block=True)
            force_unmount(self.mountpoint)
            raise MountError(
                f"the mount daemon for {vault.name}:{key} did not come up",
                hint="see the log: " + log_path,
                details={"log": log_path, "log_tail": tail},
            )
        info = check(vault, key)
        if info is None:
            raise InternalError(f"mount of {vault.name}:{key} is ready but not registered")
        _swaps_left(vault, self.fork)
        return _note_backend(vault, key, info, self.because)


def _swaps_left(vault: Vault, fork: str) -> None:
    """What an adoption killed during its swaps left in the fork's upper layer
    (core/workspace/swapleft.py, livewrite2), put right through the mount now up (one
    file looked for at every mount)."""
    from ..core.workspace import swapleft

    if swapleft.pending(vault.ws_dir(fork)) is None:
        return
    with vault.lock(fork):
        ws = vault.workspace(fork)  # (opening it adopts, which does it)
        if swapleft.pending(ws.state_dir) is not None:
            swapleft.recover(ws)


def _settled(vault: Vault, key: str) -> MountInfo | None:
    """The live mount of ``key`` (:func:`check`), after waiting for one being mounted (a
    daemon another process started) to be ready, or one being unmounted (its daemon
    releasing it when idle, or an ``avfs unmount`` in progress) to be gone."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        info = check(vault, key)
        if info is None or info.state not in ("mounting", "unmounting") or time.monotonic() >= deadline:
            return info
        time.sleep(0.02)


def adopt(vault: Vault, key: str) -> MountInfo | None:
    """Make mount ``key``, kept warm by ``proxy exec``, a mount that stays until unmounted
    (``avfs mount`` or ``--keep-mount`` asked for it). Under the fork's mount lock, which
    its daemon holds while it releases an idle mount: None when it was released meanwhile."""
    fork = key.split("@", 1)[0]
    path = mount_lock_path(vault.state_dir, fork)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with file_lock(path, what=f"the mount of {vault.name}:{fork}"):
        info = check(vault, key)
        if info is None or not info.kept_warm:
            return info
        path = registry_path(vault, key)
        data = registry.read_record(path)
        if data is None:
            return None
        data["kept_warm"] = False
        data["idle_timeout_s"] = None
        registry.write_record(path, data)
        return dataclasses.replace(info, kept_warm=False, idle_timeout_s=None, idle_expires_at=None)


def _prepare_mountpoint(home: Home, vault: Vault, key: str, mountpoint: str | None) -> str:
    """The mount point, absolute and checked: the one given, or the home's default for
    ``key`` (made, and a dead mount there detached)."""
    created = False
    if mountpoint is None:
        mountpoint = default_mountpoint(home, vault.name, key)
        if mounted_at(mountpoint):
            force_unmount(mountpoint)
        os.makedirs(mountpoint, exist_ok=True)
        created = True
    mountpoint = os.path.abspath(mountpoint)
    _check_mountpoint(mountpoint, created=created)
    return mountpoint


def _note_backend(vault: Vault, key: str, info: MountInfo, why: str) -> MountInfo:
    """Record why the mount has its backend (the daemon records which)."""
    path = registry_path(vault, key)
    data = registry.read_record(path)
    if data is not None and not data.get("backend_why"):
        data["backend_why"] = why
        registry.write_record(path, data)
    return dataclasses.replace(info, backend_why=info.backend_why or why)


def _detach_layers(data: dict[str, Any], lower: str | None, *, dead: bool) -> None:
    """An overlay mount's parts once the overlay is off its mount point: the private bind
    of it that read-only path rules made (``writes_at``: it holds the overlay, and so the
    lower layer's FUSE connection, and the daemon's FUSE loop never ends), then the lower
    layer (the daemon's loop ends with it)."""
    while data.get("writes_at") and mounted_at(str(data["writes_at"])):
        if subprocess.run(["umount", "-l", str(data["writes_at"])], capture_output=True).returncode:
            break
    lower = data.get("lower") or lower
    if lower and dead:
        detach(str(lower))  # its FUSE connection may still be held by libfuse's helper
    elif lower:
        subprocess.run(["fusermount3", "-u", "-z", str(lower)], capture_output=True, check=False)


def unmount(
    home: Home, vault: Vault, fork: str, *, revision: str | None = None, lazy: bool = False
) -> MountInfo | None:
    """Unmount a fork's mount; harmless when it is not mounted (returns None)."""
    del home
    reap_exited()  # (daemons this process spawned that ended by themselves since)
    names.check_fork_name(fork)
    key = mount_key(fork, None if revision is None else revision)
    info = check(vault, key)
    if info is None:
        return None
    ticks = start_ticks(info.pid)  # (the daemon check found alive: its kill below is to it alone)
    path = registry_path(vault, key)
    data = registry.read_record(path) or {}
    data["state"] = "unmounting"
    registry.write_record(path, data)
    if info.backend == "overlay":
        # the kernel's overlay first (busy while a process is inside), then its lower layer:
        # the daemon's FUSE loop ends with it. Read-only path rules are bind mounts on it:
        # those go first (-R), once no process is seen inside, so that a busy mount keeps them
        cmd = ["umount"] + (["-l"] if lazy else ["-R"]) + [info.mountpoint]
    else:
        cmd = ["fusermount3", "-u"] + (["-z"] if lazy else []) + [info.mountpoint]
    # who is inside (a scan of every process's files in /proc, ~10-20 ms of CPU each, twice
    # or more while the daemon is young: holders.held) is asked first only where a busy
    # overlay's unmount would take its read-only binds (-R) before failing; elsewhere the
    # kernel's own answer comes first, the scan only after a busy one (its daemon's own
    # holds of a moment, waited out, and the unmount tried again; or the holders named)
    binds = bool(data.get("read_only_binds") or data.get("writes_at"))
    if info.backend == "overlay" and not lazy and binds and held(info.mountpoint, info.pid):
        proc = subprocess.CompletedProcess(cmd, 32, "", "target is busy")  # nothing unmounted
    else:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        # busy with no process seen inside: a hold of a moment that ended before the scan (a
        # process of a confined command still exiting, CI's one failure) is waited out briefly
        for pause in (0.0, 0.05, 0.2) if not lazy and not binds else ():
            if proc.returncode == 0 or "busy" not in proc.stderr.lower():
                break
            if held(info.mountpoint, info.pid):
                break
            time.sleep(pause)
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if info.backend == "overlay" and (proc.returncode == 0 or not mounted_at(info.mountpoint)):
        _detach_layers(data, os.path.join(vault.ws_dir(fork), "lower"), dead=False)
    if proc.returncode != 0 and mounted_at(info.mountpoint):
        data["state"] = "mounted"
        registry.write_record(path, data)
        msg = proc.stderr.strip()
        if "busy" in msg.lower():
            holders = mount_holders(info.mountpoint)
            who = ", ".join(f"{h['command']} (pid {h['pid']}: {', '.join(h['holds'])})" for h in holders)
            raise BusyError(
                f"{info.mountpoint} is busy: "
                + (who or "a process has a file open or its working directory there"),
                hint="leave the directory / close the files, or use --lazy",
                details={"mountpoint": info.mountpoint, "holders": holders},
            )
        raise MountError(f"cannot unmount {info.mountpoint}: {msg}")
    wait_gone(info.pid, STOP_TIMEOUT_S)  # on its pidfd (ops/daemonstart.py), not a poll
    if signal_process(info.pid, signal.SIGKILL, ticks=ticks):  # (its pid may be another's by now)
        _reap(info.pid)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    return dataclasses.replace(info, state="gone")
