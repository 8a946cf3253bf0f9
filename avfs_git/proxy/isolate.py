"""Isolated views for ``proxy exec --isolate``: the command runs in a private mount
namespace where the fork is mounted at the project's own path.

A tool that uses absolute paths (``/home/me/proj/build``) then works on the fork, and two
agents running on two forks of the same project at the same path each see their own
fork. The view is set up in the child between ``fork`` and ``exec`` (a ``preexec_fn`` of
pure system calls through ctypes: nothing to install, no helper process, and the command
stays the leader of its own process group, so timeouts stop it as before)::

    unshare(CLONE_NEWNS)                  (+ CLONE_NEWUSER, mapping our own ids, when
                                           not root: unprivileged user namespaces)
    mount --make-rprivate /               nothing done here reaches the host
    mount --bind <fork's mount> PATH      through an O_PATH descriptor opened first

and by ``host`` (what the command sees of the rest of the machine):

- ``writable``: the host as it is; only PATH shows the fork.
- ``readonly``: every mount read-only (``mount_setattr(AT_RECURSIVE)``), except the fork
  at PATH, a private ``/tmp`` and ``/dev/shm`` (tmpfs, gone with the command) and the
  vault (so ``git`` works in the fork). Device nodes still work (``/dev/null``).
- ``hidden``: a new root (a tmpfs, ``pivot_root``) holding read-only binds of ``/usr``,
  ``/etc``, ``/bin``, ``/sbin``, ``/lib*`` (symlinks recreated as such), a minimal ``/dev``
  (null, zero, full, random, urandom, tty, ``pts``, a private ``shm``), the host's
  ``/proc``, a private ``/tmp``, a private empty ``$HOME``, the vault, and the fork at
  PATH; nothing else of the host.

With ``readonly`` and ``hidden``, a command running as root loses ``CAP_SYS_ADMIN`` (so it
cannot remount its way out); in a user namespace it has no capabilities at all. This is
a guard against accidents, not a sandbox: there is no PID or network namespace.

Where namespaces are unavailable (:func:`unavailable` says why, from a probe made once
per process), ``proxy exec`` runs the command on the plain mount and says so.
"""

from __future__ import annotations

import ctypes
import dataclasses
import errno
import functools
import os
import platform
import subprocess
import sys

HOSTS = ("writable", "readonly", "hidden")

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
MNT_DETACH = 0x2
AT_FDCWD = -100
AT_RECURSIVE = 0x8000
MOUNT_ATTR_RDONLY = 0x1
PR_CAPBSET_DROP = 24
PR_SET_DUMPABLE = 4
CAP_SYS_ADMIN = 21
# syscalls glibc has no wrapper for (mount_setattr has one number on every arch since 5.12)
_SYSCALLS = {
    "x86_64": {"pivot_root": 155, "mount_setattr": 442},
    "aarch64": {"pivot_root": 41, "mount_setattr": 442},
}
# what --hide-host keeps of the host, read-only (those that exist; symlinks stay symlinks)
SYSTEM_DIRS = ("/usr", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
DEV_NODES = ("null", "zero", "full", "random", "urandom", "tty")


class IsolationFailed(Exception):
    """Setting up the view failed in the child, before the command was started."""

    def __init__(self, reason: str, err: int = 0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.errno = err


@dataclasses.dataclass(frozen=True, slots=True)
class View:
    """What the command sees: ``source`` (the fork's mount, or its materialized copy)
    appears at ``path``; ``host`` is one of :data:`HOSTS`."""

    source: str
    path: str
    host: str
    cwd: str  # absolute, at or under path
    keep: tuple[str, ...] = ()  # host directories kept visible and writable (the vault)
    home: str | None = None  # hidden: a private, empty $HOME here
    userns: bool = False  # not root: a user namespace first


class _Sys:
    """The system calls the view needs, resolved in the parent (the child only calls)."""

    def __init__(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        self._unshare = libc.unshare
        self._unshare.argtypes = [ctypes.c_int]
        self._mount = libc.mount
        self._mount.argtypes = [
            ctypes.c_char_p,
            ctypes.c_char_p,
            ctypes.c_char_p,
            ctypes.c_ulong,
            ctypes.c_char_p,
        ]
        self._umount2 = libc.umount2
        self._umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
        self._prctl = libc.prctl
        self._prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
        self._syscall = libc.syscall
        self._syscall.restype = ctypes.c_long
        self.nums = _SYSCALLS.get(platform.machine(), {})

    @staticmethod
    def _check(rc: int, what: str) -> None:
        if rc != 0:
            e = ctypes.get_errno()
            raise OSError(e, f"{what}: {os.strerror(e)}")

    def unshare(self, flags: int) -> None:
        self._check(self._unshare(flags), "unshare")

    def mount(
        self, source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None
    ) -> None:
        self._check(
            self._mount(
                None if source is None else source.encode(),
                target.encode(),
                None if fstype is None else fstype.encode(),
                flags,
                None if data is None else data.encode(),
            ),
            f"mount {fstype or ('--bind' if flags & MS_BIND else '')} {source or ''} {target}".replace(
                "  ", " "
            ),
        )

    def umount(self, target: str) -> None:
        self._check(self._umount2(target.encode(), MNT_DETACH), f"umount {target}")

    def prctl(self, option: int, arg: int) -> None:
        self._check(self._prctl(option, arg, 0, 0, 0), f"prctl({option}, {arg})")

    def readonly(self, path: str, *, recursive: bool, clear: bool = False) -> None:
        """Set (or with ``clear``, remove) the read-only flag of the mount(s) at ``path``
        alone: the other flags (nosuid, nodev, ...) are left as they are."""
        attr = (ctypes.c_uint64 * 4)(
            0 if clear else MOUNT_ATTR_RDONLY, MOUNT_ATTR_RDONLY if clear else 0, 0, 0
        )
        rc = self._syscall(
            ctypes.c_long(self.nums["mount_setattr"]),
            ctypes.c_int(AT_FDCWD),
            ctypes.c_char_p(path.encode()),
            ctypes.c_uint(AT_RECURSIVE if recursive else 0),
            ctypes.byref(attr),
            ctypes.c_size_t(ctypes.sizeof(attr)),
        )
        self._check(int(rc), f"mount_setattr {path}")

    def pivot_root(self, new: str, old: str) -> None:
        rc = self._syscall(
            ctypes.c_long(self.nums["pivot_root"]),
            ctypes.c_char_p(new.encode()),
            ctypes.c_char_p(old.encode()),
        )
        self._check(int(rc), "pivot_root")


@functools.cache
def _sys() -> _Sys:
    return _Sys()


def _use_userns() -> bool:
    """Whether a user namespace is needed: we lack CAP_SYS_ADMIN (not root, or a root
    whose container dropped it)."""
    try:
        with open("/proc/self/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"CapEff:"):
                    return not (int(line.split()[1], 16) >> CAP_SYS_ADMIN) & 1
    except (OSError, ValueError):
        pass
    return os.geteuid() != 0


def _enter_ns(s: _Sys, userns: bool) -> None:
    if userns:
        uid, gid = os.getuid(), os.getgid()
        s.unshare(CLONE_NEWUSER | CLONE_NEWNS)
        # a process that changed its ids is not "dumpable": its /proc/self files are then
        # root's and the maps below cannot be written (exec sets this flag anew)
        s.prctl(PR_SET_DUMPABLE, 1)
        # map our own ids only: files keep their owners, and the command gets no
        # capabilities once it execs (it is not uid 0 in the namespace)
        for name, text in (
            ("setgroups", "deny"),
            ("uid_map", f"{uid} {uid} 1"),
            ("gid_map", f"{gid} {gid} 1"),
        ):
            fd = os.open(f"/proc/self/{name}", os.O_WRONLY)
            try:
                os.write(fd, text.encode())
            finally:
                os.close(fd)
    else:
        s.unshare(CLONE_NEWNS)
    s.mount(None, "/", None, MS_REC | MS_PRIVATE)


def _probe_child(userns: bool) -> None:
    s = _sys()
    try:
        _enter_ns(s, userns)
    except OSError as exc:
        os.write(2, f"{_why(exc)}\n".encode(errors="replace"))
        os._exit(97)


def _why(exc: OSError) -> str:
    what = exc.strerror or str(exc)
    return f"{exc.filename}: {what}" if exc.filename else what


@functools.cache
def _probe() -> str | None:
    """Try a private mount namespace once (in a throwaway child): None when it works,
    else why not."""
    if sys.platform != "linux":
        return f"mount namespaces are Linux-only (this is {sys.platform})"
    if platform.machine() not in _SYSCALLS:
        return f"isolation is not supported on {platform.machine()} yet"
    userns = _use_userns()
    true = "/bin/true" if os.path.exists("/bin/true") else "/usr/bin/true"
    try:
        proc = subprocess.run(
            [true], preexec_fn=lambda: _probe_child(userns), capture_output=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"cannot probe for mount namespaces: {exc}"
    if proc.returncode == 0:
        return None
    why = proc.stderr.decode(errors="replace").strip() or f"exit {proc.returncode}"
    if userns:
        return f"not root, and user namespaces are not available here ({why})"
    return f"cannot make a private mount namespace ({why})"


def unavailable() -> str | None:
    """Why an isolated view cannot be made here (None: it can). Probed once per process."""
    return _probe()


def method() -> str:
    """How the namespace is made here: ``mount_namespace`` (root) or ``user_namespace``."""
    return "user_namespace" if _use_userns() else "mount_namespace"


def plan(source: str, path: str, host: str, cwd_rel: str, keep: tuple[str, ...], home: str | None) -> View:
    """The view for one command (``cwd_rel``: its working directory in the fork)."""
    return View(
        source=source,
        path=path,
        host=host,
        cwd=os.path.join(path, cwd_rel) if cwd_rel else path,
        keep=tuple(k for k in keep if k),
        home=home if host == "hidden" else None,
        userns=_use_userns(),
    )


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
    ``report_fd`` and raise, so the command does not start."""
    s = _sys()
    try:
        _enter(s, view)
    except OSError as exc:
        try:
            os.write(report_fd, f"{exc.errno or 0}\t{_why(exc)}".encode(errors="replace"))
        except OSError:
            pass
        raise


def _enter(s: _Sys, v: View) -> None:
    _enter_ns(s, v.userns)
    # opened before anything is mounted over the way to it (it may be under /tmp)
    fd = os.open(v.source, os.O_PATH | os.O_DIRECTORY)
    src = f"/proc/self/fd/{fd}"
    if v.host == "writable":
        s.mount(src, v.path, None, MS_BIND)
    elif v.host == "readonly":
        s.readonly("/", recursive=True)
        keep = _open_all(v.keep)  # before /tmp is replaced: the vault may be under it
        s.mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777")
        if os.path.isdir("/dev/shm") and not os.path.islink("/dev/shm"):
            s.mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777")
        for path, kfd in keep:
            os.makedirs(path, exist_ok=True)  # under /tmp: in the private one
            s.mount(f"/proc/self/fd/{kfd}", path, None, MS_BIND | MS_REC)
            s.readonly(path, recursive=False, clear=True)
            os.close(kfd)
        os.makedirs(v.path, exist_ok=True)
        # the bind copies the (now read-only) flags of the fork's mount: clear them on it
        s.mount(src, v.path, None, MS_BIND)
        s.readonly(v.path, recursive=False, clear=True)
    else:
        _hide(s, v, src)
    os.close(fd)
    if v.host != "writable" and not v.userns:
        s.prctl(PR_CAPBSET_DROP, CAP_SYS_ADMIN)  # a root command cannot remount its way out
    os.chdir(v.cwd)


def _open_all(paths: tuple[str, ...]) -> list[tuple[str, int]]:
    return [(p, os.open(p, os.O_PATH | os.O_DIRECTORY)) for p in paths if os.path.isdir(p)]


def _hide(s: _Sys, v: View, src: str) -> None:
    keep = _open_all(v.keep)
    new = "/tmp"  # the new root is built on a tmpfs over /tmp (private: the host keeps its own)
    s.mount("tmpfs", new, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755")
    for d in SYSTEM_DIRS:
        if os.path.islink(d):
            os.symlink(os.readlink(d), new + d)
        elif os.path.isdir(d):
            os.mkdir(new + d)
            s.mount(d, new + d, None, MS_BIND | MS_REC)
            s.readonly(new + d, recursive=True)
    # a minimal /dev: the usual nodes (bound from the host's), its pseudo-terminals, a private shm
    dev = new + "/dev"
    os.mkdir(dev)
    s.mount("tmpfs", dev, "tmpfs", MS_NOSUID, "mode=0755")
    for name in DEV_NODES:
        if os.path.exists("/dev/" + name):
            open(f"{dev}/{name}", "wb").close()
            s.mount("/dev/" + name, f"{dev}/{name}", None, MS_BIND)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                         ("stderr", "/proc/self/fd/2"), ("ptmx", "pts/ptmx")):  # fmt: skip
        os.symlink(target, f"{dev}/{name}")
    os.mkdir(dev + "/shm")
    s.mount("tmpfs", dev + "/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777")
    os.mkdir(dev + "/pts")
    if os.path.isdir("/dev/pts"):
        s.mount("/dev/pts", dev + "/pts", None, MS_BIND)
    os.mkdir(new + "/proc")
    s.mount("/proc", new + "/proc", None, MS_BIND | MS_REC)
    os.mkdir(new + "/tmp")
    s.mount("tmpfs", new + "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777")
    if v.home and os.path.isabs(v.home) and not os.path.lexists(new + v.home):
        try:
            os.makedirs(new + v.home)
            s.mount("tmpfs", new + v.home, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0700")
        except OSError:
            pass  # under a read-only system directory: no private $HOME then
    for path, kfd in keep:
        os.makedirs(new + path, exist_ok=True)
        s.mount(f"/proc/self/fd/{kfd}", new + path, None, MS_BIND | MS_REC)
        os.close(kfd)
    os.makedirs(new + v.path, exist_ok=True)
    s.mount(src, new + v.path, None, MS_BIND)
    # pivot_root(".", "."), then detach the old root (pivot_root(2)): no put_old directory
    os.chdir(new)
    s.pivot_root(".", ".")
    s.umount(".")
    os.chdir("/")
    s.readonly("/", recursive=False)
    s.readonly("/dev", recursive=False)


def failure(report: bytes) -> IsolationFailed:
    """The child's report (``errno<TAB>reason``) as an exception."""
    text = report.decode(errors="replace")
    num, _, reason = text.partition("\t")
    return IsolationFailed(reason or "setting up the isolated view failed", int(num) if num.isdigit() else 0)


def errno_unavailable(err: int) -> bool:
    """Whether a failure errno means "not allowed here" rather than a bad request."""
    return err in (errno.EPERM, errno.EACCES, errno.ENOSYS)
