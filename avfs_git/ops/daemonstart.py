"""Starting a mount daemon (`python -m avfs_git.fuse.daemon`): its environment, the process
started in a session of its own with its log, the wait for its readiness pipe, and reaping
it, and the record that stands for it until it writes its own; for :func:`.mounts.mount`
and :func:`.mounts.unmount`.

A process that has a warm starter to ask gets its daemon forked from it, which has the
daemon's modules imported, instead of a new interpreter (fuse/forked.py): a command served
by the warm CLI server (cli/warmdaemon.py sets :data:`STARTER` there) asks that server;
any other process asks its own zygote (ops/warmstart.py), which its first mount starts
once that mount's spawned daemon is ready (``AVFS_ZYGOTE=off``: none). Whenever the starter
declines, fails or is not ready yet, the daemon is spawned as before (:func:`_launch`).
"""

from __future__ import annotations

import os
import select
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..core.settings import TOKEN_ENV
from ..core.store.locks import pid_alive
from ..core.vaults import registry

if TYPE_CHECKING:
    from ..core.vaults.home import Home

READY_TIMEOUT_S = 30.0  # how long a new daemon may take to say it is ready
# what a daemon says on its readiness pipe before its answer (``R``: the mount announced;
# ``O``: no overlay), for a first `proxy exec` to set its sandbox up meanwhile
# (proxy/ahead.py): ``L`` once the mount is a linked worktree of the vault with its own
# files (git's fsmonitor hook and socket), ``S`` once an overlay mount's overlay is stacked
# on the mount point and the path policy's binds are made
LINKED, STACKED = b"L", b"S"
PROGRESS = (LINKED, STACKED)
REAP_WAIT_S = 10.0  # how long a blocking reap waits for a daemon that is not our child
# how a daemon is started after the interpreter's path: -P, so that the caller's working
# directory (a mount a confined command wrote into) is not put first on sys.path, where
# -m puts it: a package `avfs_git` there would be what the daemon imports and runs
DAEMON_MODULE = ["-P", "-m", "avfs_git.fuse.daemon"]

# (daemon arguments after ``-m avfs_git.fuse.daemon``, environment, log path) -> (pid, the
# read end of its readiness pipe), or None (not started: spawn it); set in a process that
# has a warm starter to ask (cli/warmdaemon.py), None elsewhere
Starter = Callable[[list[str], dict[str, str], str], "tuple[int, int] | None"]
STARTER: Starter | None = None


def _daemon_env(home: Home) -> dict[str, str]:
    """The environment the mount daemon is started with: this process's (a child process
    inherits it), with the settings of ``home`` it reads there."""
    env = dict(os.environ)
    env.setdefault("FUSE_LIBRARY_NAME", "fuse3")  # mfusepy picks libfuse 2 when both exist
    # the daemon reads its settings from its environment (a front end): the home's, which
    # a Python caller may have made otherwise than this process's environment says
    # (``Home(path, layers="off")`` included: the daemon may make the state dir)
    # (``AVFS_GIT_TOKEN`` too: the token a lazy vault's reads in the mount fetch with, as
    # the home's own fetches do; through the environment, never on the command line)
    settings = home.settings
    for var, value in (
        ("AVFS_FUSE_TRACE", settings.fuse_trace),
        ("AVFS_LAYERS", home.layers_mode),
        (TOKEN_ENV, settings.git_token),
        ("AVFS_MOUNT_WALK", None if settings.mount_walk else "off"),
    ):
        if value:
            env[var] = value
        else:
            env.pop(var, None)
    return env


def _start_daemon(cmd: list[str], env: dict[str, str], log_path: str) -> tuple[int, bool | str]:
    """Start the daemon ``cmd`` detached, its output appended to ``log_path``, and wait
    for its readiness byte: (its pid, what :func:`_wait_ready` says)."""
    pid, r = _spawn_daemon(cmd, env, log_path)
    return pid, _await_ready(pid, r)


def _await_ready(pid: int, r: int, first: bytes | None = None) -> bool | str:
    """What :func:`_wait_ready` says of daemon ``pid`` on its readiness pipe ``r`` (closed
    after); ``first``: its answer, when :func:`next_byte` read it already. A daemon ready
    starts this process's zygote when one is wanted (:func:`_launch`): after the mount it
    came for, whose daemon's start it would otherwise have taken CPU from."""
    try:
        ready = _wait_ready(r, pid, first)
    finally:
        os.close(r)
    if ready is True:
        from . import warmstart  # (a mount's path only: not every command that imports this)

        started = warmstart.start_wanted()
        if started is not None:
            _SPAWNED.add(started)  # (our child: collected once it has ended, as a daemon is)
    return ready


def next_byte(pid: int, r: int) -> bytes:
    """The next byte daemon ``pid`` says on its readiness pipe ``r`` (left open), once it
    says one: one of :data:`PROGRESS`, or its answer for :func:`_await_ready` to tell
    (``R``, ``O``, or ``b""``: it died or timed out)."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        ready, _, _ = select.select([r], [], [], 0.2)
        if ready:
            return os.read(r, 1)
        if _reap(pid):
            return b""
    return b""


def _launch(
    cmd: list[str], env: dict[str, str], log_path: str, zygote: bool = True, home: Home | None = None
) -> tuple[int, int]:
    """Start the daemon ``cmd`` (``python -m avfs_git.fuse.daemon ARGS``) as
    :func:`_spawn_daemon` does: forked by the warm :data:`STARTER` where there is one and
    it starts it, else (``zygote``: the home's ``Settings.zygote``) by this process's
    zygote when it is ready and starts it, else spawned; a spawn wants the zygote started
    once this daemon is ready (in the background: no mount waits for it) when there is none.
    The zygote is then kept for ``home`` until it closes (:func:`_home_closed`)."""
    from . import warmstart  # (a mount's path only: not every command that imports this)

    reap_exited()  # (a forked start too: a daemon spawned before and ended since is collected)
    starter: Starter | None = STARTER
    at = len(DAEMON_MODULE) + 1
    ours = zygote and starter is None and cmd[1:at] == DAEMON_MODULE
    if ours and home is not None and warmstart.use(home):
        home.on_close(_home_closed)
    if ours:
        z = warmstart.starter(cmd[0], env)
        starter = z.ask if z is not None else None
    if starter is not None and cmd[1:at] == DAEMON_MODULE:
        try:
            got = starter(cmd[at:], env, log_path)
        except Exception:
            got = None  # (its failure costs nothing but the warm start)
        if got is not None:
            return got
    if ours:
        warmstart.want(cmd[0], env)  # (started once this daemon is ready: _await_ready)
    return _spawn_daemon(cmd, env, log_path)


ZYGOTE_END_S = 5.0  # how long :func:`end_zygote` waits for it to end on its end of file


def _home_closed(home: Home) -> None:
    """``home``, for which this process's zygote was kept, has closed: the zygote ended
    and collected when it was the last home (or holder) it was kept for."""
    from . import warmstart

    if warmstart.release(home):
        end_zygote()


def end_zygote() -> int | None:
    """End this process's zygote and collect it (its daemons still serving are then
    PID 1's, as when this process ends): our end of its socket closed, it ends on that;
    one that has not ended after :data:`ZYGOTE_END_S` (stopped) is killed. Its pid, or None
    (none here). The next mount spawns its daemon and starts another."""
    import signal

    from . import warmstart

    z = warmstart.current()
    loading = z is not None and not z.ready() and z.state == "starting"  # (it forked nothing)
    pid = warmstart.stop()
    if pid is None:
        return None
    if loading or not wait_gone(pid, ZYGOTE_END_S):
        try:
            os.kill(pid, signal.SIGKILL)  # (our child, not collected: its pid is not given again)
        except ProcessLookupError:
            pass
        _reap(pid, block=True)
    return pid


# the daemons this process spawned (and its zygote) and has not collected: one that ends by
# itself (a mount kept warm, released when idle) stayed a zombie of a long-lived caller (an
# agent runtime using the API) until that process ended; collected at the next spawn and unmount
_SPAWNED: set[int] = set()


def reap_exited() -> None:
    """Collect the daemons this process spawned that have exited since."""
    for pid in list(_SPAWNED):
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:  # not ours (a forked process's copy of the set) or gone
            done = pid
        if done == pid:
            _SPAWNED.discard(pid)


def _spawn_daemon(cmd: list[str], env: dict[str, str], log_path: str) -> tuple[int, int]:
    """Start the daemon ``cmd`` detached, its output appended to ``log_path``: (its pid,
    the read end of its readiness pipe, for :func:`_await_ready`), without waiting."""
    from .warmstart import as_new  # (a mount's path only)

    reap_exited()
    r, w = os.pipe()
    os.set_inheritable(r, False)
    os.set_inheritable(w, True)
    cmd = [*cmd, "--ready-fd", str(w)]
    logfd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
    try:
        # a detached daemon in its own session: posix_spawn leaves no Popen object behind
        # (its finaliser would warn about a child still running) and does not fork a
        # possibly multi-threaded caller
        pid = os.posix_spawn(
            cmd[0],
            cmd,
            env,
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_DUP2, logfd, 1),
                (os.POSIX_SPAWN_DUP2, logfd, 2),
            ],
            setsid=True,
            **as_new(),  # (its working directory and descriptors: fuse/daemon.py ``_detach``)
        )
    except BaseException:
        os.close(r)
        raise
    finally:
        os.close(logfd)
        os.close(w)
    _SPAWNED.add(pid)
    return pid, r


def _reap(pid: int, *, block: bool = False) -> bool:
    """Collect a daemon we spawned once it exited; True when it has. One that is not our
    child (another process mounted it, or a warm starter forked it) is waited for, when
    ``block``, up to :data:`REAP_WAIT_S`."""
    try:
        done, _ = os.waitpid(pid, 0 if block else os.WNOHANG)
    except ChildProcessError:
        _SPAWNED.discard(pid)
        if block:
            _wait_exit(pid, REAP_WAIT_S)
        return not pid_alive(pid)
    if done == pid:
        _SPAWNED.discard(pid)
    return done == pid


def wait_gone(pid: int, timeout: float) -> bool:
    """Wait, at most ``timeout`` s, until daemon ``pid`` has exited, collected where it is
    our child (:func:`_reap`); True once it has."""
    deadline = time.monotonic() + timeout
    while not _reap(pid) and pid_alive(pid):
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        _wait_exit(pid, left)
    return True


def _wait_exit(pid: int, timeout: float) -> None:
    """Return once process ``pid`` has exited (a zombie has) or after ``timeout`` s: on its
    pidfd, which the kernel makes readable as it exits (Linux 5.3), so the wait costs no
    CPU; where there is none, polled every 5 ms (each look is a ``kill`` and a read of its
    ``/proc`` stat: ~10-20 ms of CPU for an unmount's wait for its daemon, at load)."""
    deadline = time.monotonic() + timeout
    try:
        fd = os.pidfd_open(pid)
    except OSError:  # gone already (ESRCH), or no pidfd here
        fd = -1
    if fd >= 0:
        try:
            select.select([fd], [], [], max(timeout, 0.0))
        finally:
            os.close(fd)
        return
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.005)


def _wait_ready(fd: int, pid: int, first: bytes | None = None) -> bool | str:
    """True once the daemon is ready; False when it died or timed out; "O" when it could
    not stack the overlay (it exits). What it says before (:data:`PROGRESS`) is passed over."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    data = first
    while data is None and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            data = os.read(fd, 1)
            data = None if data in PROGRESS else data
        elif _reap(pid):
            return False
    if data == b"O":
        return "O"
    return data == b"R"  # EOF: the daemon exited before it was ready


def _tail(path: str, n: int = 2000) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - n))
            return fh.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _placeholder(
    path: str,
    vault: str,
    fork: str,
    commit: str | None,
    mountpoint: str,
    pid: int,
    idle_timeout_s: float | None,
) -> None:
    """The record (at ``path``) of a daemon just started, ``mounting``, until the daemon writes its own
    (it replaces this one whole; ~0.15-0.3 s in, after its imports): the next starter of the
    fork finds the mount on its way and waits for it (:func:`.mounts._settled`) instead of starting
    a second one. Made only where no record is (a fast daemon's own is never replaced)."""
    data: dict[str, Any] = {
        "vault": vault,
        "fork": fork,
        "mountpoint": mountpoint,
        "pid": pid,
        "state": "mounting",
        "read_only": commit is not None,
        "revision": commit,
        # no backend, uid or gid: the daemon, which asks the registry about its own mount
        # while it sets up (mount/live.py), must not take this for its own record of a
        # mount that serves (it would write a moved base through a mount point not mounted)
        "starting": True,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if idle_timeout_s is not None and commit is None:
        data.update(kept_warm=True, idle_timeout_s=idle_timeout_s, mounted_by="proxy exec")
    tmp = f"{path}.{os.getpid()}.start"
    registry.write_record(tmp, data)
    try:
        os.link(tmp, path)  # (a rename would replace the daemon's own, were it there already)
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)
