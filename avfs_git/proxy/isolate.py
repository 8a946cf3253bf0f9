"""Isolated views for ``proxy exec --isolate``: the command runs in a private mount
namespace where the fork is mounted at the project's own path.

A tool that uses absolute paths (``/home/me/proj/build``) then works on the fork, and two
agents running on two forks of the same project at the same path each see their own
fork. The view is set up in the child between ``fork`` and ``exec`` (a ``preexec_fn`` of
pure system calls through ctypes: nothing to install)::

    unshare(CLONE_NEWNS)                  (+ CLONE_NEWUSER, mapping our own ids, when
                                           not root: unprivileged user namespaces)
    mount --make-rprivate /               nothing done here reaches the host
    mount --bind <fork's mount> PATH      through an O_PATH descriptor opened first

and by ``host`` (what the command sees of the rest of the machine):

- ``writable``: the host as it is; only PATH shows the fork. The command is the child
  itself, the leader of its own process group.
- ``readonly``: every mount read-only (``mount_setattr(AT_RECURSIVE)``), except the fork
  at PATH and a private ``/tmp`` (tmpfs, gone with the command); a minimal ``/dev``; a
  fresh ``/proc`` (read-only) of a PID namespace of its own; the vault read-only but for
  what ``git`` needs to commit in the fork (``objects/``, ``refs/``, ``logs/``, the fork's
  worktree directory, with that directory's ``HEAD``, ``commondir``, ``gitdir``,
  ``config.worktree`` and fsmonitor hook pinned read-only).
- ``hidden``: a new root (a tmpfs, ``pivot_root``) holding read-only binds of ``/usr``,
  ``/etc``, ``/bin``, ``/sbin``, ``/lib*`` (symlinks recreated as such), the minimal ``/dev``
  (null, zero, full, random, urandom, tty, ``pts``, a private ``shm``), the fresh
  ``/proc``, a private ``/tmp``, a private empty ``/root``, the vault (as above), and the
  fork at PATH; nothing else of the host.

With ``readonly`` and ``hidden`` the command runs in a PID namespace (``CLONE_NEWPID``):
the host's processes, and their ``/proc/PID/root``, ``cwd`` and ``fd`` (ways back to the
host's files), are not there. The child that made the namespaces stays outside it and
waits (it is the process group's leader, so timeouts and stray-process cleanup signal the
whole group as before); its child is the namespace's init (PID 1), which sets up the view,
starts the command, forwards signals to it, reaps orphans, and reports the command's exit
status; when init ends, the kernel kills whatever is left in the namespace. A command
running as root keeps only a few capabilities (:data:`KEPT_CAPS`: no ``CAP_SYS_ADMIN``,
so it cannot remount its way out, nor ``CAP_MKNOD``, ``CAP_SYS_PTRACE``,
``CAP_DAC_READ_SEARCH``, ``CAP_SYS_RAWIO``, ``CAP_SYS_MODULE``, ...); in a user namespace it
has no capabilities at all. The sandbox's seccomp filter (:mod:`.seccomp`: the person's
keyrings, set-id bits, the audit socket, io_uring) is loaded as the view is made, by init
too, with ``no_new_privs`` (until the thirty-sixth round, attack28, a view ran unfiltered).
This is a guard against accidents, not a sandbox against a hostile command: there is no
network or IPC namespace (see docs/proxy.md).

Where namespaces are unavailable (:func:`unavailable` says why, from a probe made once
per process), ``proxy exec`` runs the command on the plain mount and says so.
"""

from __future__ import annotations

import errno
import os
import resource
import signal
import stat
from collections.abc import Sequence

from ..core.errors import IsolationFailed
from ..core.records import dataclass
from .linuxns import (
    MS_BIND,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_RDONLY,
    MS_REC,
    _enter_ns,
    _probe,
    _Sys,
    _sys,
    _use_userns,
    _why,
)

HOSTS = ("writable", "readonly", "hidden")

# what a root command keeps in a readonly or hidden view, from the bounding and inheritable
# sets (Docker's default set without CAP_MKNOD and CAP_SETFCAP): CHOWN, DAC_OVERRIDE, FOWNER,
# FSETID, KILL, SETGID, SETUID, SETPCAP, SYS_CHROOT.
# Gone among others: SYS_ADMIN (mount), MKNOD, SYS_PTRACE, DAC_READ_SEARCH (open_by_handle_at
# reaches any file of a file system the view shows a part of), SYS_RAWIO, SYS_MODULE, SYS_BOOT,
# SYS_TIME, NET_ADMIN, BPF, PERFMON, SYSLOG, LINUX_IMMUTABLE, MAC_ADMIN, SYS_RESOURCE; and
# NET_RAW, which bwrap's sandbox keeps in a network namespace of its own: a view shares the
# host's network, where raw and packet sockets read the host's traffic; and AUDIT_WRITE,
# with which a command wrote records into the host's audit log (NAME=attack24); and
# NET_BIND_SERVICE: a port below 1024 of the host's network is the host's (NAME=plant2).
KEPT_CAPS = frozenset((0, 1, 3, 4, 5, 6, 7, 8, 18))
# what the view's init forwards to the command (and the process outside ignores)
FORWARDED = frozenset(
    (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)
)
# what --hide-host keeps of the host, read-only (those that exist; symlinks stay symlinks)
SYSTEM_DIRS = ("/usr", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
DEV_NODES = ("null", "zero", "full", "random", "urandom", "tty")


@dataclass(frozen=True, slots=True)
class View:
    """What the command sees: ``source`` (the fork's mount, or its materialized copy)
    appears at ``path``; ``host`` is one of :data:`HOSTS`."""

    source: str
    path: str
    host: str
    cwd: str  # absolute, at or under path
    keep: tuple[str, ...] = ()  # host directories kept visible, read-only (the vault)
    writable: tuple[str, ...] = ()  # in them: what stays writable (what git needs)
    pinned: tuple[str, ...] = ()  # in those: files kept read-only (code and config git runs)
    # the vault's refs/, logs/, objects/ as git gets them (.seal): (source, target, writable);
    # and, read-only, what of the mount's own directory git runs (the fsmonitor hook, its socket)
    sealed: tuple[tuple[str, str, bool], ...] = ()
    # in keep: directories shown empty but for what ``sealed`` binds into them (avfs's state
    # of the vault: other forks' scratch, the audit and operation logs, the locks; as bwrap's)
    masked: tuple[str, ...] = ()
    home: str | None = None  # hidden: a private, empty $HOME here
    userns: bool = False  # not root: a user namespace first
    # the sandbox's seccomp program (:mod:`.seccomp`), loaded as the view is made: None
    # where libseccomp is missing (and none is kept)
    seccomp: bytes | None = None

    @property
    def pid_ns(self) -> bool:
        """Whether the command gets a PID namespace (and a fresh ``/proc``) of its own."""
        return self.host != "writable"


def unavailable() -> str | None:
    """Why an isolated view cannot be made here (None: it can). Probed once per process."""
    return _probe()


def method() -> str:
    """How the namespace is made here: ``mount_namespace`` (root) or ``user_namespace``."""
    return "user_namespace" if _use_userns() else "mount_namespace"


def plan(
    source: str,
    path: str,
    host: str,
    cwd_rel: str,
    keep: tuple[str, ...],
    home: str | None,
    *,
    writable: tuple[str, ...] = (),
    pinned: tuple[str, ...] = (),
    sealed: tuple[tuple[str, str, bool], ...] = (),
    masked: tuple[str, ...] = (),
) -> View:
    """The view for one command (``cwd_rel``: its working directory in the fork). ``keep``:
    host directories shown read-only (the vault); ``writable``: paths in them left writable;
    ``pinned``: files in those kept read-only."""
    return View(
        source=source,
        path=path,
        host=host,
        cwd=os.path.join(path, cwd_rel) if cwd_rel else path,
        keep=tuple(k for k in keep if k),
        writable=tuple(w for w in writable if w),
        pinned=tuple(p for p in pinned if p),
        sealed=sealed,
        masked=masked if keep else (),
        home=home if host == "hidden" else None,
        userns=_use_userns(),
        seccomp=_program(),
    )


def _program() -> bytes | None:
    from .seccomp import program

    return program()


def unfiltered() -> bool:
    """Whether a view here runs without the sandbox's seccomp filter (no libseccomp, and no
    program kept): a confined command's fallback to the view is refused then, as bwrap's
    sandbox is (an explicit ``--readonly-host``/``--hide-host`` still runs)."""
    return _program() is None


def check_path(path: str, host: str) -> str | None:
    """Why ``path`` cannot be where the fork appears (None: it can be)."""
    if not os.path.isabs(path):
        return f"--at {path!r} must be an absolute path"
    p = os.path.normpath(path)
    if p == "/":
        return "--at / would hide the whole system: give the project's directory"
    if host == "hidden":
        if any(p == d or p.startswith(d + "/") for d in ("/proc", "/dev", *SYSTEM_DIRS)):
            return f"--at {path!r} is inside a system directory the hidden view keeps read-only"
        return None
    if host == "readonly" and (p == "/tmp" or p.startswith("/tmp/")):
        return None  # made in the view's private /tmp
    if not os.path.isdir(p):
        return f"--at {path!r} is not an existing directory (a mount point needs one)"
    return None


# -- in the child, between fork and exec ------------------------------------------------------
def preexec(view: View, report_fd: int) -> None:
    """Set up ``view`` in this (forked) child; on failure write ``errno<TAB>reason`` to
    ``report_fd`` and raise, so the command does not start.

    With a PID namespace (``readonly``, ``hidden``) this child stays outside it: it forks
    the namespace's init, which sets up the view and forks the command; only the command
    returns from here (and is exec'd by ``subprocess``); this child waits and exits as the
    command did (:func:`_outside`)."""
    s = _sys()
    try:
        _enter_ns(s, view.userns, pid=view.pid_ns)
        if not view.pid_ns:
            _enter(s, view)
            return
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED)
        ready_r, ready_w = os.pipe()
        status_r, status_w = os.pipe()
        pid = s.fork()
    except OSError as exc:
        _report(report_fd, exc)
        raise
    if pid == 0:
        os.close(ready_r)
        os.close(status_r)
        _init(s, view, ready_w, status_w, mask)  # returns in the command only
        return
    os.close(ready_w)
    os.close(status_w)
    try:
        ready = os.read(ready_r, 4096)
    finally:
        os.close(ready_r)
    if ready != b"+":  # the init failed to set up the view (its report), or died
        os.waitpid(pid, 0)
        os.close(status_r)
        text = ready.decode(errors="replace") or f"0\tthe isolated view's init process died (pid {pid})"
        num, _, reason = text.partition("\t")
        failed = OSError(int(num) if num.isdigit() else 0, reason)
        _report(report_fd, failed)
        raise failed
    _outside(s, pid, status_r)


def _report(report_fd: int, exc: OSError) -> None:
    try:
        os.write(report_fd, f"{exc.errno or 0}\t{_why(exc)}".encode(errors="replace"))
    except OSError:
        pass


def _close_fds(*keep: int) -> None:
    """Close every descriptor from 3 on but ``keep`` (subprocess' error pipe among them:
    only the command, which execs, may hold it)."""
    lo = 3
    for fd in sorted(k for k in keep if k >= 3):
        os.closerange(lo, fd)
        lo = fd + 1
    os.closerange(lo, 1 << 20)


def _quiet_std() -> None:
    """Point 0, 1 and 2 at /dev/null: the command's pipes close when the command's own
    processes are done with them, not when init and the waiter are."""
    try:
        null = os.open("/dev/null", os.O_RDWR)
    except OSError:
        for fd in (0, 1, 2):
            os.close(fd)
        return
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    if null > 2:
        os.close(null)


def _outside(s: _Sys, init: int, status_r: int) -> None:
    """The child outside the PID namespace (the process group's leader, whose exit status
    ``subprocess`` reports): wait for init's report of the command's exit, then exit the
    same way. Never returns. Group signals (a timeout's SIGTERM) stay blocked here: the
    command gets them itself (init forwards them to it if it left the group)."""
    code = 1
    try:
        _close_fds(status_r)
        _quiet_std()
        data = os.read(status_r, 64)
        os.close(status_r)
        fields = data.split()
        if len(fields) == 2:
            status, linger = int(fields[0]), fields[1] == b"1"
            if not linger:
                os.waitpid(init, 0)  # init exits right after its report: no stray is left
            # else: processes of the command's outlive it; init stays (in the process group)
            # until they are gone, and the runner stops them as any stray processes
        else:  # init died without a report (killed)
            _, status = os.waitpid(init, 0)
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            code = 128 + sig
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            s.default_signal(sig)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {sig})
            os.kill(os.getpid(), sig)
        else:
            code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1
    finally:
        os._exit(code)


def _init(s: _Sys, v: View, ready_w: int, status_w: int, mask: set[int | signal.Signals]) -> None:
    """PID 1 of the namespace: set up the view, fork the command (the one process that
    returns from here), then forward signals and reap until the namespace is empty."""
    try:
        s.default_signal(signal.SIGCHLD)  # children must be waitable, whatever the parent did
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
        _enter(s, v)
        child = s.fork()
    except BaseException as exc:
        err = exc if isinstance(exc, OSError) else OSError(0, f"{type(exc).__name__}: {exc}")
        try:
            os.write(ready_w, f"{err.errno or 0}\t{_why(err)}".encode(errors="replace"))
        finally:
            os._exit(1)
    if child == 0:  # the command: the caller's signal mask, and on to exec
        os.close(ready_w)
        os.close(status_w)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        return
    try:
        _close_fds(ready_w, status_w)
        os.write(ready_w, b"+")
        os.close(ready_w)
        _quiet_std()
        _reap(child, status_w)
    finally:
        os._exit(0)


def _reap(child: int, status_w: int) -> None:
    """init's loop: reap every child (orphans are ours); report the command's exit status
    with whether other processes are left; forward signals; return once none is left."""
    waited = {signal.SIGCHLD, *FORWARDED}
    status: int | None = None
    reported = False
    while True:
        left = True
        while True:
            try:
                pid, st = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                left = False
                break
            if pid == 0:
                break
            if pid == child:
                status = st
        if status is not None and not reported:
            os.write(status_w, f"{status} {int(left)}".encode())
            os.close(status_w)
            reported = True
        if not left:
            return
        info = signal.sigtimedwait(waited, 0.5)
        if info is None or info.si_signo == signal.SIGCHLD:
            continue
        try:
            if status is None:
                # the command got a group signal itself, unless it left our process group
                if os.getpgid(child) != os.getpgrp():
                    os.kill(child, info.si_signo)
            else:
                os.kill(-1, info.si_signo)  # what is left: every process here but init
        except OSError:
            pass


def _enter(s: _Sys, v: View) -> None:
    """Build the view (the namespaces are made): run by the child itself (``writable``),
    or by the PID namespace's init."""
    # opened before anything is mounted over the way to it (it may be under /tmp)
    fd = os.open(v.source, os.O_PATH | os.O_DIRECTORY)
    src = f"/proc/self/fd/{fd}"
    if v.host == "writable":
        s.mount(src, v.path, None, MS_BIND)
    elif v.host == "readonly":
        s.readonly("/", recursive=True)
        keep = _open_all(v.keep)  # before /tmp is replaced: the vault may be under it
        sealed = _open_sealed(v)
        devs = _dev_sources()
        s.mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777")
        _make_dev(s, "/dev", devs)
        _bind_kept(s, "", keep, v, sealed)
        os.makedirs(v.path, exist_ok=True)
        # the bind copies the (now read-only) flags of the fork's mount: clear them on it
        s.mount(src, v.path, None, MS_BIND)
        s.readonly(v.path, recursive=False, clear=True)
        _mount_proc(s, "/proc", "/dev/null")
    else:
        _hide(s, v, src)
    os.close(fd)
    if v.host != "writable" and not v.userns:
        s.drop_caps(KEPT_CAPS)  # a root command cannot remount, mknod, ptrace its way out
    if v.seccomp:  # the sandbox's filter: the person's keyrings, set-id bits, the audit socket
        s.load_filter(v.seccomp)  # (by init too, where there is one: nothing of the view runs without it)
    os.chdir(v.cwd)


def _open_all(paths: tuple[str, ...]) -> list[tuple[str, int]]:
    return [(p, os.open(p, os.O_PATH | os.O_DIRECTORY)) for p in paths if os.path.isdir(p)]


def _open_sealed(v: View) -> list[tuple[int, str, bool]]:
    """O_PATH descriptors of ``v.sealed``'s sources, directories and files (the read-only
    packed-refs), never through a link (opened before /tmp is replaced)."""
    out = []
    for src, dst, rw in v.sealed:
        if os.path.isdir(src):
            out.append((os.open(src, os.O_PATH | os.O_DIRECTORY), dst, rw))
        elif (os.path.isfile(src) or _is_socket(src)) and not os.path.islink(src):
            out.append((os.open(src, os.O_PATH | os.O_NOFOLLOW), dst, rw))
    return out


def _is_socket(path: str) -> bool:
    try:
        return stat.S_ISSOCK(os.lstat(path).st_mode)
    except OSError:
        return False


def _mask(s: _Sys, root: str, v: View, sealed: Sequence[tuple[int, str, bool]]) -> None:
    """An empty read-only tmpfs over each of ``v.masked`` (under ``root``), holding the
    mount points of what ``sealed`` binds into it."""
    for m in v.masked:
        t = root + m
        if not os.path.isdir(t) or os.path.islink(t):
            continue
        s.mount("tmpfs", t, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755")
        for fd, target, _rw in sealed:
            if not target.startswith(m + "/"):
                continue
            point = root + target
            if stat.S_ISDIR(os.fstat(fd).st_mode):
                os.makedirs(point, exist_ok=True)
            else:
                os.makedirs(os.path.dirname(point), exist_ok=True)
                os.close(os.open(point, os.O_CREAT | os.O_WRONLY | os.O_NOFOLLOW, 0o600))
        s.readonly(t, recursive=False)


def _bind_kept(
    s: _Sys,
    root: str,
    keep: list[tuple[str, int]],
    v: View,
    sealed: Sequence[tuple[int, str, bool]] = (),
) -> None:
    """The vault at its own path under ``root``: read-only, but for ``v.writable`` (and
    in those, ``v.pinned`` read-only again: a mounted file cannot be replaced either), with
    ``v.sealed``'s scratch directories bound over its own ``refs/``, ``logs/``, ``objects/``."""
    for path, kfd in keep:
        os.makedirs(root + path, exist_ok=True)  # under /tmp: in the private one
        s.mount(f"/proc/self/fd/{kfd}", root + path, None, MS_BIND | MS_REC)
        s.readonly(root + path, recursive=True)
        os.close(kfd)
    for path in v.writable:
        if os.path.isdir(root + path) and not os.path.islink(root + path):
            s.mount(root + path, root + path, None, MS_BIND)
            s.readonly(root + path, recursive=False, clear=True)
    _mask(s, root, v, sealed)
    for fd, target, rw in sealed:
        t = root + target
        if (os.path.isdir(t) or os.path.isfile(t) or _is_socket(t)) and not os.path.islink(t):
            s.mount(f"/proc/self/fd/{fd}", root + target, None, MS_BIND)
            s.readonly(root + target, recursive=False, clear=rw)
        os.close(fd)
    for path in v.pinned:
        if os.path.isfile(root + path) and not os.path.islink(root + path):
            s.mount(root + path, root + path, None, MS_BIND)
            s.readonly(root + path, recursive=False)


def _mount_proc(s: _Sys, target: str, null: str) -> None:
    """A procfs of the PID namespace we are in (init's): read-only (no /proc/sys writes);
    ``keys`` and ``key-users`` shown empty (``null``: the view's /dev/null), as in the
    sandbox: the kernel lists there every key the user may view, by its description (a
    Kerberos principal, a token's name), whatever the namespace (attack28)."""
    s.mount("proc", target, "proc", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
    for name in ("keys", "key-users"):
        if os.path.exists(f"{target}/{name}") and os.path.exists(null):
            s.mount(null, f"{target}/{name}", None, MS_BIND)


def _dev_sources() -> dict[str, int]:
    """O_PATH descriptors of the host's device nodes a minimal /dev shows (opened before
    anything is mounted over /dev; opening one this way does not open the device)."""
    out = {}
    for name in DEV_NODES:
        if os.path.exists("/dev/" + name):
            out[name] = os.open("/dev/" + name, os.O_PATH)
    if os.path.isdir("/dev/pts"):
        out["pts"] = os.open("/dev/pts", os.O_PATH | os.O_DIRECTORY)
    return out


def _make_dev(s: _Sys, dev: str, sources: dict[str, int]) -> None:
    """A minimal /dev at ``dev``: the usual nodes (bound from the host's), its
    pseudo-terminals, a private shm; no disks, no /dev/mem (read-only afterwards)."""
    s.mount("tmpfs", dev, "tmpfs", MS_NOSUID, "mode=0755")
    for name in DEV_NODES:
        if name in sources:
            open(f"{dev}/{name}", "wb").close()
            s.mount(f"/proc/self/fd/{sources[name]}", f"{dev}/{name}", None, MS_BIND)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                         ("stderr", "/proc/self/fd/2"), ("ptmx", "pts/ptmx")):  # fmt: skip
        os.symlink(target, f"{dev}/{name}")
    os.mkdir(dev + "/shm")
    s.mount("tmpfs", dev + "/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777")
    os.mkdir(dev + "/pts")
    if "pts" in sources:
        s.mount(f"/proc/self/fd/{sources['pts']}", dev + "/pts", None, MS_BIND)
    for fd in sources.values():
        os.close(fd)
    s.readonly(dev, recursive=False)


def _hide(s: _Sys, v: View, src: str) -> None:
    keep = _open_all(v.keep)
    sealed = _open_sealed(v)
    devs = _dev_sources()
    new = "/tmp"  # the new root is built on a tmpfs over /tmp (private: the host keeps its own)
    s.mount("tmpfs", new, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755")
    for d in SYSTEM_DIRS:
        if os.path.islink(d):
            os.symlink(os.readlink(d), new + d)
        elif os.path.isdir(d):
            os.mkdir(new + d)
            s.mount(d, new + d, None, MS_BIND | MS_REC)
            s.readonly(new + d, recursive=True)
    os.mkdir(new + "/dev")
    _make_dev(s, new + "/dev", devs)
    os.mkdir(new + "/proc")
    _mount_proc(s, new + "/proc", new + "/dev/null")
    os.mkdir(new + "/tmp")
    s.mount("tmpfs", new + "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777")
    if v.home and os.path.isabs(v.home) and not os.path.lexists(new + v.home):
        try:
            os.makedirs(new + v.home)
            s.mount("tmpfs", new + v.home, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0700")
        except OSError:
            pass  # under a read-only system directory: no private $HOME then
    _bind_kept(s, new, keep, v, sealed)
    os.makedirs(new + v.path, exist_ok=True)
    s.mount(src, new + v.path, None, MS_BIND)
    # pivot_root(".", "."), then detach the old root (pivot_root(2)): no put_old directory
    os.chdir(new)
    s.pivot_root(".", ".")
    s.umount(".")
    os.chdir("/")
    s.readonly("/", recursive=False)


def failure(report: bytes) -> IsolationFailed:
    """The child's report (``errno<TAB>reason``) as an exception."""
    text = report.decode(errors="replace")
    num, _, reason = text.partition("\t")
    return IsolationFailed(reason or "setting up the isolated view failed", int(num) if num.isdigit() else 0)


def errno_unavailable(err: int) -> bool:
    """Whether a failure errno means "not allowed here" rather than a bad request."""
    return err in (errno.EPERM, errno.EACCES, errno.ENOSYS)
