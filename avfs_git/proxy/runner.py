"""Run one command: its own process group, a timeout, bounded output capture.

- The child starts a new session (so a process group of its own): on timeout the whole
  group gets SIGTERM, then SIGKILL after a grace period; when the child exits, whatever it
  left running in its group (``cmd &``, a daemon that did not ``setsid``) is stopped the
  same way, so nothing a command starts outlives its exec.
- stdout and stderr are drained by two threads into buffers of at most ``max_output``
  bytes each; the rest is counted and dropped (the child never blocks on a full pipe, and
  a command that prints 1 GiB costs no memory).
- A program that cannot be started (not found, not executable) is a result, not an
  exception: exit code 127 / 126 like a shell, with the reason in ``spawn_error``.
- With a ``sandbox`` (the default: :mod:`.confine`), the command runs under ``bwrap``,
  which leads the group; the sandbox has a PID namespace of its own, so whatever the
  command left running there ends with it (the kernel kills a PID namespace's processes
  when its init exits). bwrap reports a command killed by signal N as exit 128+N; its
  status descriptor (``--json-status-fd``) tells a sandbox that could not be set up (no
  exit code: :class:`~avfs_git.core.errors.SandboxFailed`) from a command that ran.
- bwrap is started with an environment avfs builds (:data:`.confine.BWRAP_ENV`); the
  command's own (``env``) reaches only the command, through ``--clearenv``/``--setenv`` read
  from a descriptor (:func:`.confine.env_fd`) inside the sandbox, after the Landlock domain
  (:mod:`.landlock`).
- With a ``view`` (``proxy exec --isolate``), the child sets up its mount namespace
  (:mod:`.isolate`) after starting its session and before exec. With a PID namespace too
  (``readonly``, ``hidden``) the child stays outside it, leads the group and exits as the
  command did, while the namespace's init and the command are members of the same group:
  so all of the above holds inside the namespace too.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import threading
import time
from typing import IO, TYPE_CHECKING

from ..core.records import dataclass

if TYPE_CHECKING:
    from .confine import Sandbox
    from .isolate import View
    from .standby import Standby

EXIT_TIMEOUT = 124
_READ = 65536


@dataclass(frozen=True, slots=True)
class RunResult:
    exit_code: int  # the child's, 128+N when killed by signal N, 124 on timeout, 126/127 spawn
    signal: str | None  # "SIGKILL" when a signal ended it
    timed_out: bool
    duration_ms: float
    stdout: bytes
    stderr: bytes
    stdout_bytes: int  # how much the command wrote in all (captured or not)
    stderr_bytes: int
    stdout_truncated: bool
    stderr_truncated: bool
    spawn_error: str | None = None
    stray_processes_killed: bool = False  # processes left in the group after it exited
    # avfs (or, for the warm path, its client) was interrupted by this signal while the
    # command ran: it was passed on to the command's group ("SIGINT", "SIGTERM", "SIGHUP")
    interrupted: str | None = None


class Stop(threading.Event):
    """A ``cancel`` event that may say which signal interrupted the caller (Ctrl-C of
    ``avfs proxy exec``, or of a warm path's client): that signal is passed on to the
    command's group first (then SIGKILL after the grace period), and the result names it
    (``interrupted``, exit 128+N). Set without one (a client that went away): SIGTERM."""

    signum: int | None = None

    def interrupt(self, signum: int) -> None:
        if self.signum is None:
            self.signum = signum
        self.set()


def _interrupting(cancel: threading.Event | None) -> int | None:
    """The signal that interrupted the caller, once ``cancel`` is set by one."""
    return cancel.signum if isinstance(cancel, Stop) and cancel.is_set() else None


class _Drain(threading.Thread):
    """One output pipe, read into a bounded buffer: by :func:`_pump` in the caller's thread
    while the command runs (:meth:`read_once`), or as a thread of its own (:meth:`run`,
    from where the pump left it) when reading must go on while the caller waits for
    something else."""

    def __init__(self, pipe: IO[bytes], limit: int) -> None:
        super().__init__(daemon=True, name="avfs-drain")
        self.pipe = pipe
        self.fd = pipe.fileno()
        self.limit = limit
        self.chunks: list[bytes] = []
        self.kept = 0
        self.total = 0
        self.eof = False

    def read_once(self) -> None:
        """Read what is there (the pipe is readable); at its end, close it."""
        try:
            data = os.read(self.fd, _READ)
        except OSError:
            data = b""
        if not data:
            self.eof = True
            self.pipe.close()
            return
        self.total += len(data)
        room = self.limit - self.kept
        if room > 0:
            part = data[:room]
            self.chunks.append(part)
            self.kept += len(part)

    def run(self) -> None:
        while not self.eof:
            self.read_once()

    def go_on(self) -> None:
        """Keep reading in a thread of its own (once)."""
        if not self.eof and not self.is_alive() and self.ident is None:
            self.start()

    def finish(self, timeout: float) -> None:
        """Wait (at most ``timeout``) for the pipe's end."""
        if self.ident is not None:
            self.join(timeout)

    def output(self) -> bytes:
        return b"".join(self.chunks)


def _group_alive(pgid: int) -> bool:
    """Whether a process of group ``pgid`` still runs. Zombies do not count: they are dead,
    and orphans of the group wait for an init to reap them (which may be slow or, in some
    containers, never)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return True
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        # fields after the command name: state, ppid, pgrp, ...
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] != b"Z":
            return True
    return False


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _stop_group(pgid: int, grace_s: float, proc: subprocess.Popen[bytes], first: int | None = None) -> None:
    """SIGTERM (or ``first``) the group, SIGKILL what is left after ``grace_s``. The leader
    is reaped as it goes (a zombie still counts as a member of its group)."""
    proc.poll()
    if not _group_alive(pgid):
        return
    _signal_group(pgid, first or signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    delay = 0.001
    while time.monotonic() < deadline:
        proc.poll()
        if not _group_alive(pgid):
            return
        time.sleep(delay)
        delay = min(delay * 2, 0.02)
    _signal_group(pgid, signal.SIGKILL)


def _wait(
    proc: subprocess.Popen[bytes],
    pgid: int,
    deadline: float,
    cancel: threading.Event | None,
    kill_grace_ms: int,
) -> bool:
    """Wait for the command; on the deadline (True is returned) or ``cancel``, stop its
    group. Waits in slices, so that ``cancel`` is seen within 50 ms. Where the kernel has
    pidfds, the wait wakes the moment the command exits (``Popen.wait`` with a timeout
    polls, sleeping up to 50 ms between looks: ~10 ms lost on a 5 ms command)."""
    pidfd = _pidfd(proc.pid)
    try:
        while True:
            left = deadline - time.monotonic()
            slice_s = max(0.0, min(left, 0.05) if cancel is not None else left)
            try:
                if pidfd is not None:
                    import select

                    select.select([pidfd], [], [], slice_s)
                proc.wait(timeout=0 if pidfd is not None else slice_s)
                return False
            except subprocess.TimeoutExpired:
                timed_out = time.monotonic() >= deadline
                if not timed_out and (cancel is None or not cancel.is_set()):
                    continue
                _stop_group(pgid, kill_grace_ms / 1000, proc, None if timed_out else _interrupting(cancel))
                proc.wait()
                return timed_out
    finally:
        if pidfd is not None:
            os.close(pidfd)


def _pump(
    proc: subprocess.Popen[bytes],
    pidfd: int,
    pgid: int,
    drains: list[_Drain],
    deadline: float,
    cancel: threading.Event | None,
    kill_grace_ms: int,
) -> bool:
    """:func:`_wait` without threads: one ``poll`` over the command's pidfd and its two
    output pipes, in the caller's thread (two threads started and joined per command cost
    ~1 ms in a busy daemon). On the deadline (True is returned) or ``cancel``, the pipes are
    read on in threads while the group is stopped, as :func:`_wait` has them."""
    import select

    poller = select.poll()
    open_ = {d.fd: d for d in drains}
    for fd in open_:
        poller.register(fd, select.POLLIN)
    poller.register(pidfd, select.POLLIN)
    while True:
        left = deadline - time.monotonic()
        timed_out = left <= 0
        if timed_out or (cancel is not None and cancel.is_set()):
            for d in drains:
                d.go_on()
            _stop_group(pgid, kill_grace_ms / 1000, proc, None if timed_out else _interrupting(cancel))
            proc.wait()
            return timed_out
        slice_s = min(left, 0.05) if cancel is not None else left
        for fd, _ev in poller.poll(max(1, int(slice_s * 1000) + 1)):
            pipe = open_.get(fd)
            if pipe is None:
                if proc.poll() is not None:  # the pidfd: the command has ended
                    return False
                continue
            pipe.read_once()
            if pipe.eof:
                poller.unregister(fd)
                del open_[fd]


def _drain_rest(drains: list[_Drain], timeout: float) -> None:
    """Read the pipes to their end, for at most ``timeout`` (a process that left the group,
    ``setsid``, may hold one open): what is still open then is read on by a thread."""
    import select

    end = time.monotonic() + timeout
    open_ = {d.fd: d for d in drains if not d.eof and d.ident is None}
    poller = select.poll()
    for fd in open_:
        poller.register(fd, select.POLLIN)
    while open_:
        left = end - time.monotonic()
        if left <= 0:
            break
        for fd, _ev in poller.poll(max(1, int(left * 1000))):
            d = open_[fd]
            d.read_once()
            if d.eof:
                poller.unregister(fd)
                del open_[fd]
    for d in drains:
        d.go_on()
        d.finish(max(0.0, end - time.monotonic()))


def _pidfd(pid: int) -> int | None:
    """A pidfd of ``pid`` (readable once it exits), or None where there are none."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _spawn(
    argv: list[str],
    cwd: str,
    env: dict[str, str],
    stdin: int | IO[bytes] | None,
    view: View | None,
    pass_fds: tuple[int, ...] = (),
) -> subprocess.Popen[bytes]:
    if view is None:
        return subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            close_fds=True,
            pass_fds=pass_fds,
        )
    import functools

    from . import isolate

    # the child reports why the view failed here (the pipe closes on exec)
    report_r, report_w = os.pipe()
    try:
        try:
            return subprocess.Popen(
                argv,
                cwd=None,  # the child changes into view.cwd once the fork is mounted there
                env=env,
                stdin=stdin,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
                close_fds=True,
                preexec_fn=functools.partial(isolate.preexec, view, report_w),
            )
        except subprocess.SubprocessError:
            os.close(report_w)
            report_w = -1
            chunks = []
            while chunk := os.read(report_r, 4096):
                chunks.append(chunk)
            raise isolate.failure(b"".join(chunks)) from None
    finally:
        os.close(report_r)
        if report_w >= 0:
            os.close(report_w)


def run(
    argv: list[str],
    *,
    cwd: str,
    env: dict[str, str],
    timeout_ms: int,
    max_output: int,
    stdin: int | IO[bytes] | None = subprocess.DEVNULL,
    kill_grace_ms: int = 2000,
    cancel: threading.Event | None = None,
    view: View | None = None,
    sandbox: Sandbox | None = None,
    standby: Standby | None = None,
) -> RunResult:
    """Run ``argv`` in ``cwd``; never raises for the command's own failures. ``cancel``:
    stop the command's group when it is set (its caller went away). ``view``: run it in
    that isolated view (``cwd`` is then the view's); raises
    :class:`~avfs_git.core.errors.IsolationFailed` when the view could not be set up (the command
    did not start). ``sandbox``: run it under bwrap in that sandbox (``cwd`` is then the
    sandbox's); raises :class:`~avfs_git.core.errors.SandboxFailed` when bwrap could not set it up.
    ``standby``: that sandbox, already set up (:mod:`.standby`): the command starts in it
    (``stdin`` is then its own, empty)."""
    start = time.monotonic()
    started = _start(argv, cwd, env, stdin, view, sandbox, standby, start)
    if isinstance(started, RunResult):
        return started
    proc, status_r, standby = started
    assert proc.stdout is not None and proc.stderr is not None
    drains = [_Drain(proc.stdout, max_output), _Drain(proc.stderr, max_output)]
    timed_out, strays, ended = _supervise(
        proc, drains, start + max(timeout_ms, 1) / 1000, cancel, kill_grace_ms
    )
    duration_ms = round((ended - start) * 1000, 3)
    rc = proc.returncode
    if standby is not None:
        failed = standby.failure()
        if failed is not None:
            os.close(status_r)
            what, num, msg = failed
            if what == "chdir":  # as bwrap says it when its --chdir fails
                from ..core.errors import SandboxFailed

                raise SandboxFailed(f"Can't chdir to {sandbox.cwd if sandbox else '?'}: {msg}")
            return _spawn_failed(start, argv[0], num, msg + _unshown(argv[0], num, env))
    if status_r >= 0:
        spawn_error = _sandbox_status(status_r, rc, drains[1])
        if spawn_error is not None:
            code, msg = spawn_error
            msg += _unshown(argv[0], errno.ENOENT if code == 127 else None, env)
            return RunResult(
                code, None, False, duration_ms, b"", msg.encode() + b"\n",
                0, len(msg) + 1, False, False, spawn_error=msg,
            )  # fmt: skip
    return _finished(rc, timed_out, strays, duration_ms, drains, cancel)


def _start(
    argv: list[str],
    cwd: str,
    env: dict[str, str],
    stdin: int | IO[bytes] | None,
    view: View | None,
    sandbox: Sandbox | None,
    standby: Standby | None,
    start: float,
) -> tuple[subprocess.Popen[bytes], int, Standby | None] | RunResult:
    """The command started (in the standby sandbox, under bwrap, in a view, or as it is):
    (its process, the read end of bwrap's status pipe or -1, the standby it started in),
    or the result of a command that could not be started."""
    status_r = status_w = env_r = outer = sc = life = -1
    if sandbox is not None and standby is not None:
        try:
            standby.start(argv, sandbox.cwd, env)
        except OSError:
            standby.discard()  # its waiter is gone: set one up as usual
            standby = None
    if standby is not None:
        return standby.proc, standby.status_r, standby
    if sandbox is not None:
        from . import confine, keeper
        from .reaping import reaper_if_wanted

        reaper_if_wanted()  # (a CLI call's own process: proxy/reaping.py)
        # bwrap runs on the host before anything is confined: it gets an environment of
        # avfs's, and applies the command's (read from env_r) only as it starts the command
        env_r, sc = confine.env_fd(env), confine.seccomp_fd()
        status_r, status_w = confine.status_pipe()
        outer, life = confine.outer_fd(status_r), confine.life_fd()
        argv = confine.argv(sandbox, argv, env_from=env_r, outer_fd=outer, seccomp_from=sc, life_fd=life)
        argv[1:1] = ["--json-status-fd", str(status_w)]
        env = keeper.bwrap_env(dict(confine.BWRAP_ENV))  # (marked: proxy/keeper.py)
        cwd = "/"
    try:
        try:
            fds = tuple(fd for fd in (status_w, env_r, outer, sc, life) if fd >= 0)
            proc = _spawn(argv, cwd, env, stdin, view, fds)
        finally:
            for fd in (status_w, env_r, sc, life):
                if fd >= 0:
                    os.close(fd)
    except OSError as exc:
        if status_r >= 0:
            os.close(status_r)
        return _spawn_failed(start, argv[0], exc.errno, exc.strerror or str(exc))
    return proc, status_r, None


def _supervise(
    proc: subprocess.Popen[bytes],
    drains: list[_Drain],
    deadline: float,
    cancel: threading.Event | None,
    kill_grace_ms: int,
) -> tuple[bool, bool, float]:
    """Wait for the command with its output read, until the deadline or ``cancel``, then
    for what it left in its group: (timed out, stray processes killed, when it ended)."""
    pgid = proc.pid  # a new session: the child leads its own group
    pidfd = _pidfd(proc.pid)
    try:
        if pidfd is not None:
            timed_out = _pump(proc, pidfd, pgid, drains, deadline, cancel, kill_grace_ms)
        else:  # no pidfds here: the pipes are read by threads while this one waits
            for d in drains:
                d.go_on()
            timed_out = _wait(proc, pgid, deadline, cancel, kill_grace_ms)
    except BaseException:
        # interrupted (Ctrl-C, a signal turned into an exception): the command goes too
        for d in drains:
            d.go_on()
        _stop_group(pgid, min(kill_grace_ms, 500) / 1000, proc)
        _signal_group(pgid, signal.SIGKILL)
        raise
    finally:
        if pidfd is not None:
            os.close(pidfd)
    ended = time.monotonic()
    strays = not timed_out and _group_alive(pgid)
    if strays:
        for d in drains:
            d.go_on()  # what is left in the group may write while it is stopped
        _stop_group(pgid, min(kill_grace_ms, 500) / 1000, proc)
    # a process that left the group (setsid) may hold a pipe open: do not wait for it
    _drain_rest(drains, 1.0)
    return timed_out, strays, ended


def _finished(
    rc: int,
    timed_out: bool,
    strays: bool,
    duration_ms: float,
    drains: list[_Drain],
    cancel: threading.Event | None,
) -> RunResult:
    """The result of a command that ran: its exit code as a shell reports it (128+N when
    signal N ended it or interrupted its caller, 124 when it timed out) and its output."""
    sig_name: str | None = None
    if rc < 0:
        try:
            sig_name = signal.Signals(-rc).name
        except ValueError:
            sig_name = f"SIG{-rc}"
        rc = 128 - rc
    interrupted = None if timed_out else _interrupting(cancel)
    if interrupted is not None:
        # as a shell reports a command Ctrl-C stopped (whatever the group's leader made of
        # the signal: bwrap dies of it, a shell may exit with its own code)
        rc = 128 + interrupted
        sig_name = signal.Signals(interrupted).name
    if timed_out:
        rc = EXIT_TIMEOUT
    out, err = drains
    return RunResult(
        exit_code=rc,
        signal=sig_name,
        timed_out=timed_out,
        duration_ms=duration_ms,
        stdout=out.output(),
        stderr=err.output(),
        stdout_bytes=out.total,
        stderr_bytes=err.total,
        stdout_truncated=out.total > out.kept,
        stderr_truncated=err.total > err.kept,
        stray_processes_killed=strays,
        interrupted=None if interrupted is None else sig_name,
    )


def _spawn_failed(start: float, program: str, num: int | None, why: str) -> RunResult:
    """The result of a command that could not be started: 127 (not found) or 126, as a
    shell says it."""
    code = 127 if num in (errno.ENOENT, errno.ENOTDIR) else 126
    msg = f"{program}: {why}"
    return RunResult(
        code, None, False, (time.monotonic() - start) * 1000, b"", msg.encode() + b"\n",
        0, len(msg) + 1, False, False, spawn_error=msg,
    )  # fmt: skip


# what the sandbox shows of the host (confine.py: read-only), where a program may be found
_SHOWN = ("/usr/", "/bin/", "/sbin/", "/lib", "/opt/", "/etc/")


def _unshown(program: str, num: int | None, env: dict[str, str]) -> str:
    """Why a confined command was not found, when the caller's PATH finds it on the host
    outside what the sandbox shows (a newcomer's `exec_in(ws, ["pytest"])` with pytest in
    the venv of avfs's checkout said only "pytest: No such file or directory"), or when it
    is named by a host path the sandbox does not show (`exec_in(ws, [sys.executable, ...])`
    from a venv, h-polish4's trial, whose link leads under ~/.pyenv too); else ""."""
    if num != errno.ENOENT:
        return ""
    if "/" in program:
        found = program if program.startswith("/") and os.path.lexists(program) else None
    else:
        import shutil

        found = shutil.which(program, path=env.get("PATH"))
    if found is None or found.startswith(_SHOWN):  # (a project's own: h-polish5's trial's `tape`)
        own = f" (on no PATH: a project's own is named by its path, ./node_modules/.bin/{program}"
        return "" if found or "/" in program else f"{own} or .venv/bin/{program}, or run by npx {program})"
    tops: list[str] = []  # its tree, and where its links lead, each named by the top of its bin
    for path in (found, os.path.realpath(found)):
        parent = os.path.dirname(path)
        top = os.path.dirname(parent) if os.path.basename(parent) in ("bin", "shims") else parent
        if not (top + "/").startswith(_SHOWN) and top not in tops:
            tops.append(top)
    return (
        f" (on the host it is {found}, which the sandbox does not show: only /usr, /bin, /sbin,"
        " /lib*, /opt, /etc, the fork and the policy's [defaults] readable are there; add"
        f" readable = [{', '.join(repr(t) for t in tops)}] to it (docs/policy.md), use one there,"
        " a venv in the fork, or --host writable, the API's confine=False)"
    )


def _sandbox_status(status_r: int, rc: int, err: _Drain) -> tuple[int, str] | None:
    """Read bwrap's status descriptor once it has exited: None when the command ran (an
    ``exit-code`` was reported, or bwrap was killed); (126 or 127, why) when bwrap could
    not exec it; raises :class:`~avfs_git.core.errors.SandboxFailed` when the sandbox was not set up."""
    from ..core.errors import SandboxFailed

    os.set_blocking(status_r, False)
    chunks = []
    try:
        while True:
            try:
                data = os.read(status_r, 65536)
            except BlockingIOError:
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(status_r)
    from .reaping import collect_sandbox

    collect_sandbox(b"".join(chunks))
    ran = b'"exit-code"' in b"".join(chunks)
    if rc < 0 or (ran and rc not in (126, 127)):
        return None
    text = err.output().decode("utf-8", "replace").strip()
    last = text.splitlines()[-1] if text else ""
    if ran and not last.startswith("bwrap: execvp "):  # (what applies Landlock inside says it so: .landlock)
        return None
    if last.startswith("bwrap: execvp "):
        what = last[len("bwrap: execvp ") :]
        return (127 if "No such file" in what or "Not a directory" in what else 126), what
    raise SandboxFailed(last.removeprefix("bwrap: ") or f"bwrap exited with {rc} before the command ran")
