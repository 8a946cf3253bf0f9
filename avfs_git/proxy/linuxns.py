"""The Linux calls a hand-made view makes (unshare, mount, mount_setattr, pivot_root, prctl,
capset, through ctypes: :class:`_Sys`) and the probe of whether they work here, for
:mod:`.isolate`.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import platform
import subprocess
import sys

CLONE_NEWNS = 0x00020000


CLONE_NEWUSER = 0x10000000


CLONE_NEWPID = 0x20000000


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


PR_SET_NO_NEW_PRIVS = 38


PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 22, 2


PR_CAP_AMBIENT = 47


PR_CAP_AMBIENT_CLEAR_ALL = 4


CAP_SYS_ADMIN = 21


_LINUX_CAPABILITY_VERSION_3 = 0x20080522


# syscalls glibc has no wrapper for (mount_setattr has one number on every arch since 5.12)
_SYSCALLS = {
    "x86_64": {"pivot_root": 155, "mount_setattr": 442},
    "aarch64": {"pivot_root": 41, "mount_setattr": 442},
}


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
        # libc's fork, not os.fork: the child of a multi-threaded parent must not run
        # Python's fork hooks (which take locks another thread may have held)
        self._fork = libc.fork
        self._fork.argtypes = []
        self._fork.restype = ctypes.c_int
        self._signal = libc.signal
        self._signal.argtypes = [ctypes.c_int, ctypes.c_void_p]
        self._signal.restype = ctypes.c_void_p
        self._capget = libc.capget
        self._capset = libc.capset
        for fn in (self._capget, self._capset):
            fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        try:
            with open("/proc/sys/kernel/cap_last_cap", "rb") as fh:
                self.cap_last = int(fh.read())
        except (OSError, ValueError):
            self.cap_last = 40

    def fork(self) -> int:
        pid = int(self._fork())
        if pid < 0:
            e = ctypes.get_errno()
            raise OSError(e, f"fork: {os.strerror(e)}")
        return pid

    def default_signal(self, sig: int) -> None:
        """SIG_DFL for ``sig`` (libc's signal(): Python's refuses outside the main thread)."""
        self._signal(sig, None)

    def drop_caps(self, kept: frozenset[int]) -> None:
        """Drop every capability but ``kept`` from the bounding set, the inheritable set and
        the ambient set: what a program exec'd from here (as root) can ever have."""
        for cap in range(self.cap_last + 1):
            if cap not in kept:
                self.prctl(PR_CAPBSET_DROP, cap)
        rc = self._prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
        if rc != 0 and ctypes.get_errno() != errno.EINVAL:  # EINVAL: no ambient sets (< 4.3)
            self._check(rc, "prctl(PR_CAP_AMBIENT_CLEAR_ALL)")
        header = (ctypes.c_uint32 * 2)(_LINUX_CAPABILITY_VERSION_3, 0)
        data = (ctypes.c_uint32 * 6)()  # 2 x (effective, permitted, inheritable)
        self._check(self._capget(ctypes.byref(header), ctypes.byref(data)), "capget")
        mask = sum(1 << c for c in kept)
        data[2] &= mask & 0xFFFFFFFF
        data[5] &= mask >> 32
        self._check(self._capset(ctypes.byref(header), ctypes.byref(data)), "capset")

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

    def load_filter(self, program: bytes) -> None:
        """Load the seccomp ``program`` (classic BPF, :mod:`.seccomp`'s) for this process
        and what it execs, with ``no_new_privs`` (which a filter needs without
        ``CAP_SYS_ADMIN``, and which bubblewrap sets too: no set-id program gains rights)."""
        import struct

        code = ctypes.create_string_buffer(program, len(program))
        fprog = ctypes.create_string_buffer(
            struct.pack("=HxxxxxxQ", len(program) // 8, ctypes.addressof(code))
        )
        self.prctl(PR_SET_NO_NEW_PRIVS, 1)
        rc = self._prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(fprog), 0, 0)
        self._check(rc, "prctl(PR_SET_SECCOMP)")

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


def _enter_ns(s: _Sys, userns: bool, pid: bool = False) -> None:
    """A private mount namespace (and with ``pid``, a PID namespace for our next child)."""
    flags = CLONE_NEWNS | (CLONE_NEWPID if pid else 0)
    if userns:
        uid, gid = os.getuid(), os.getgid()
        s.unshare(CLONE_NEWUSER | flags)
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
        s.unshare(flags)
    s.mount(None, "/", None, MS_REC | MS_PRIVATE)


def _probe_child(userns: bool) -> None:
    s = _sys()
    try:
        _enter_ns(s, userns, pid=True)
    except OSError as exc:
        os.write(2, f"{_why(exc)}\n".encode(errors="replace"))
        os._exit(97)


def _why(exc: OSError) -> str:
    what = exc.strerror or str(exc)
    return f"{exc.filename}: {what}" if exc.filename else what


@functools.cache
def _probe() -> str | None:
    """Try private mount and PID namespaces once (in a throwaway child): None when they
    work, else why not."""
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
    return f"cannot make private mount and PID namespaces ({why})"
