"""The system calls a confined command is refused: the kernel's keyrings and audit log.

The kernel keeps a user's keys by user and by session, not by any namespace bubblewrap
makes: a command in the sandbox (the same user; for root, the same user namespace too)
could search the person's user and session keyrings, read their keys (Kerberos tickets
in a ``KEYRING:`` cache, tokens put there with ``keyctl add user ... @u``) and add keys of
its own for the person's later programs to find (the thirty-third round, NAME=attack24).
So bubblewrap loads a seccomp filter (``--seccomp FD``, :func:`.confine.argv`) that answers
``add_key``, ``keyctl`` and ``request_key`` with ``ENOSYS``, as flatpak's does (docker's
default profile refuses them too).

The kernel's audit log is the host's alone too: a root command (``CAP_AUDIT_WRITE``, which
Docker's default set keeps for ``login`` and ``su``) sent user records through a
``NETLINK_AUDIT`` socket, and the host's audit trail (its kernel log, where no ``auditd``
runs) took them, with the host's pid and any text: a forged login line. The filter
answers that socket with ``EPROTONOSUPPORT``, what a kernel without audit answers (PAM and
libaudit then go on without it), and the capability is dropped too (:data:`.confine.KEPT_CAPS`:
the socket a 32-bit x86 program asks for through ``socketcall`` is behind a pointer a filter
cannot read; that call's sockets are refused whole where the host runs no 32-bit program of
its own, :func:`ia32_userland`). Every other call is allowed.

The filter is made by `libseccomp <https://github.com/seccomp/libseccomp>`_ (the library
flatpak and systemd make theirs with; ``libseccomp.so.2``, which apt and systemd need on
the hosts avfs runs on), through ``ctypes``, for the machine's own architecture and its
32-bit ones (a 32-bit call reaches the same keyrings: an x86_64 kernel runs the i386 table
for a 64-bit command's ``int $0x80``, tried in the thirty-fifth round, attack27), each
architecture's rules from libseccomp's table of it; a few checks libseccomp cannot write
(i386's own ``socket``, whose rule it writes for ``socketcall`` too; a call newer than the
library) are avfs's own instructions before its program (:func:`_assemble`). The program is a pure function of
the machine, libseccomp's tables and the rules here: made once, it is kept in the avfs home
(:func:`.sysview.kept_in`, ``seccomp-filter``) with what it was made from, and a later
process reads those bytes instead of loading libseccomp (~5-20 ms of a cold call; the
thirty-fourth round, NAME=first9). Where the library is missing (and no kept program),
:func:`program` is None and no confined command runs (:func:`.confine.unavailable`: fail
closed, as where bubblewrap is missing); docs/security.md says so.

Set-id bits too (the thirty-fourth round, NAME=attack25): a confined command writes some
host directories directly, not through the ``nosuid`` mount (the worktree's git dir, the
caches a policy shares), and as root, or as the person owning its files, ``chmod 4755``
there made a setuid program another local user ran as the person (as root where avfs runs
as root). So the filter answers ``EPERM`` to every call that would set ``S_ISUID`` or
``S_ISGID`` (:data:`SET_ID_CALLS`: the chmod family, and the creating calls whose mode
keeps them: ``open``, ``openat``, ``creat``, ``mknod``, ``mknodat``), ``ENOSYS`` to
``openat2``, whose mode is behind a pointer no filter reads (C libraries fall back to
``openat``), and ``ENOSYS`` to io_uring, whose ``OPENAT`` carries its mode in shared memory
(docker's default profile refuses io_uring too; libuv falls back)."""

from __future__ import annotations

import errno
import functools
import os
from collections.abc import Iterator
from typing import Any

__all__ = [
    "FILTER_FILE",
    "IA32_LOADERS",
    "REFUSED",
    "SET_ID_CALLS",
    "UNREAD",
    "build",
    "ia32_userland",
    "program",
    "recipe",
    "rules_text",
]

REFUSED = ("add_key", "keyctl", "request_key")
# calls refused with ENOSYS where they exist: what they would do is behind a pointer
UNREAD = ("openat2", "io_uring_setup", "io_uring_enter", "io_uring_register")
# (call, which argument is its mode): refused with EPERM when the mode sets S_ISUID or
# S_ISGID (a mode without O_CREAT is 0 from every C library; one given anyway is refused)
SET_ID_CALLS = (
    ("chmod", 1), ("fchmod", 1), ("fchmodat", 2), ("fchmodat2", 2),
    ("open", 2), ("openat", 3), ("creat", 1), ("mknod", 1), ("mknodat", 2),
)  # fmt: skip
_SET_ID = (0o4000, 0o2000)  # S_ISUID, S_ISGID
# socket(AF_NETLINK, *, NETLINK_AUDIT): refused as a kernel without audit refuses it
_AF_NETLINK, _NETLINK_AUDIT = 16, 9
# SCMP_CMP_MASKED_EQ on the low 32 bits (libseccomp's SCMP_A0_32): the kernel reads only
# the low half of socket()'s int arguments, so a plain SCMP_CMP_EQ of the whole register
# let `syscall(41, 0x1_00000010, SOCK_RAW, 9)` through (the thirty-third round's review)
_CMP_MASKED_EQ, _LOW32 = 7, 0xFFFFFFFF


@functools.cache
def _arg_cmp() -> Any:
    """libseccomp's ``struct scmp_arg_cmp`` (made where a program is built: ``ctypes`` is
    not loaded where the kept one is read)."""
    import ctypes

    class ArgCmp(ctypes.Structure):
        _fields_ = [
            ("arg", ctypes.c_uint),
            ("op", ctypes.c_int),
            ("a", ctypes.c_uint64),
            ("b", ctypes.c_uint64),
        ]

    return ArgCmp


_ALLOW = 0x7FFF0000  # SCMP_ACT_ALLOW
_ERRNO = 0x00050000  # SCMP_ACT_ERRNO(0)
# AUDIT_ARCH_* of the 64-bit machines and the 32-bit ones their kernels also run
_X86_64, _X86, _X32 = 0xC000003E, 0x40000003, 0x4000003E
_AARCH64, _ARM = 0xC00000B7, 0x40000028
_ALSO = {_X86_64: (_X86, _X32), _AARCH64: (_ARM,)}
# where socket() is also socketcall(2)'s first argument, whose own arguments are behind a
# pointer no filter reads: no argument test there (it read a register socket() never set)
_MULTIPLEXED = (_X86,)
# ...but i386's own socket() (359, Linux 4.3+) has its arguments in registers, and an
# `int $0x80` from a 64-bit command made a NETLINK_AUDIT socket past the filter (the
# thirty-fifth round, attack27): libseccomp writes every i386 socket rule for socketcall
# too, so that one is avfs's own (:func:`_assemble`)
_X86_SOCKET = 359
# socketcall(SYS_SOCKET, args): the first argument is a register, the socket's own three
# are behind the pointer. Ruled by the first alone, it is every socket a 32-bit program
# makes (glibc built for kernels before 4.3, Debian's and Fedora's, musl and Go's 386 port
# make theirs only this way): refused (ENOSYS, as the calls of UNREAD) where the host has
# no 32-bit x86 loader (:func:`ia32_userland`), so no 32-bit program of the system's
# runs, and left to the dropped CAP_AUDIT_WRITE where it has one (the thirty-sixth
# round, attack28)
_X86_SOCKETCALL, _SYS_SOCKET = 102, 1
# the program interpreters of 32-bit x86 programs (glibc's, musl's): a host with neither
# runs none of its own; the sandbox shows the host's /lib, never another
IA32_LOADERS = ("/lib/ld-linux.so.2", "/lib/ld-musl-i386.so.1")
# calls added since Linux 5.1 have one number on every architecture (x32: with its bit):
# where libseccomp is older than the call it knows no name for it, and the call is
# refused by avfs's own instructions before libseccomp's program (:func:`_number`)
_COMMON = {
    "io_uring_setup": 425,
    "io_uring_enter": 426,
    "io_uring_register": 427,
    "openat2": 437,
    "fchmodat2": 452,
}
_X32_BIT = 0x40000000
_UNKNOWN = -1  # libseccomp's __NR_SCMP_ERROR: a name its tables do not have


def _names() -> Iterator[str]:
    yield "libseccomp.so.2"
    import ctypes.util  # (~20 ms under load: only where the usual name is not there)

    name = ctypes.util.find_library("seccomp")
    if name:
        yield name


def _library() -> Any:
    import ctypes

    for name in _names():
        try:
            lib = ctypes.CDLL(name, use_errno=True)
        except OSError:
            continue
        lib.seccomp_init.restype = ctypes.c_void_p
        lib.seccomp_init.argtypes = [ctypes.c_uint32]
        lib.seccomp_release.argtypes = [ctypes.c_void_p]
        lib.seccomp_arch_native.restype = ctypes.c_uint32
        lib.seccomp_arch_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
        lib.seccomp_arch_remove.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
        lib.seccomp_merge.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
        lib.seccomp_syscall_resolve_name_arch.argtypes = [ctypes.c_uint32, ctypes.c_char_p]
        lib.seccomp_rule_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint]
        lib.seccomp_rule_add_array.argtypes = [
            ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint, ctypes.POINTER(_arg_cmp()),
        ]  # fmt: skip
        lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
        lib.seccomp_export_pfc.argtypes = [ctypes.c_void_p, ctypes.c_int]
        return lib
    return None


FILTER_FILE = "seccomp-filter"
_FORMAT = 1
# the program's longest (BPF_MAXINSNS instructions of 8 bytes): a kept file past it is not one
_MAX_BYTES = 4096 * 8
_made: list[bytes | None] = []  # this process's (one element once asked)


def recipe() -> str:
    """What the program is made from: the rules here (and this module's file, as it is on
    disk: an edit of how they are made makes another recipe), the loader's cache
    (:func:`_libraries`: libseccomp upgraded), the machine (its own architecture and the
    32-bit ones of :data:`_ALSO`) and the byte order. A kept program
    is used only where this is the same."""
    import sys

    try:
        st = os.stat(__file__)
        code = (st.st_size, st.st_mtime_ns)
    except OSError:
        code = (-1, -1)

    rules = (
        _FORMAT, REFUSED, UNREAD, SET_ID_CALLS, _SET_ID, _AF_NETLINK, _NETLINK_AUDIT, _CMP_MASKED_EQ,
        _LOW32, _ALLOW, _ERRNO, errno.ENOSYS, errno.EPERM, errno.EPROTONOSUPPORT, sorted(_ALSO.items()),
        _MULTIPLEXED, _X86_SOCKET, sorted(_COMMON.items()), _X32_BIT, _X86_SOCKETCALL, _SYS_SOCKET,
        ia32_userland(),
    )  # fmt: skip
    return f"{rules!r} {code} {_libraries()} {os.uname().machine} {sys.byteorder}"


def ia32_userland() -> bool:
    """Whether the host can run a 32-bit x86 program of its own (one of
    :data:`IA32_LOADERS` is there: ``libc6:i386``, a multilib glibc, musl's i386 port).
    Part of the :func:`recipe`: installing one makes the program again."""
    return any(os.path.exists(p) for p in IA32_LOADERS)


def _libraries() -> tuple[int, int]:
    """The dynamic loader's cache as it is (size, mtime): ``ldconfig`` writes it again
    whenever a library is installed or upgraded, libseccomp among them, whose tables say
    which calls it knows (a call an older one did not, as ``fchmodat2``, is left out of
    the rules there: a kept program made by it is made again after the upgrade)."""
    try:
        st = os.stat("/etc/ld.so.cache")
    except OSError:
        return (-1, -1)
    return (st.st_size, st.st_mtime_ns)


def program() -> bytes | None:
    """The filter as bubblewrap's ``--seccomp`` reads it (classic BPF, the host's byte
    order): this process's, else the one kept in the avfs home (:func:`.sysview.kept_in`)
    when it was made from the same :func:`recipe`, else made (:func:`build`: ~2 ms, ~15
    with libseccomp's loading) and kept there; asked once per process (the mount's exec
    server and the resident CLI server ask as they start, so their forks find it). None
    where libseccomp is not there or fails."""
    if not _made:
        data = _read()
        if data is None:
            data = build()
            if data is not None:
                _write(data)
        _made[:] = [data]
    return _made[0]


def _read() -> bytes | None:
    """The kept program (None: none, or not of this :func:`recipe`). The file is in the
    avfs home's ``run/``, which no sandbox shows (written whole, by a rename)."""
    from .sysview import kept_in

    where = kept_in()
    if where is None:
        return None
    import marshal

    try:
        with open(os.path.join(where, FILTER_FILE), "rb") as fh:
            made_from, data = marshal.load(fh)
    except (OSError, EOFError, ValueError, TypeError):
        return None
    if (
        made_from != recipe()
        or not isinstance(data, bytes)
        or not data
        or len(data) % 8
        or len(data) > _MAX_BYTES
    ):
        return None
    return data


def _write(data: bytes) -> None:
    from .sysview import kept_in

    where = kept_in()
    if where is None:
        return
    import marshal

    path = os.path.join(where, FILTER_FILE)
    tmp = f"{path}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
    try:
        os.makedirs(where, mode=0o700, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            marshal.dump((recipe(), data), fh)
        os.replace(tmp, path)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass  # not kept: the next process makes its own


def build(native: int | None = None) -> bytes | None:
    """The program made now (what :func:`program` keeps): avfs's own instructions
    (:func:`_assemble`) before libseccomp's; None where the library is not there or
    fails. ``native``: another machine's ``AUDIT_ARCH_*`` (what a test reads of an
    aarch64 host's program here)."""
    lib = _library()
    if lib is None:
        return None
    own: list[_Check] = []
    ctx = _context(lib, native, own)
    if not ctx:
        return None
    fd = -1
    try:
        fd = os.memfd_create("avfs-seccomp", os.MFD_CLOEXEC)
        if lib.seccomp_export_bpf(ctx, fd) != 0:
            return None
        size = os.lseek(fd, 0, os.SEEK_CUR)
        data = os.pread(fd, size, 0)
        return _assemble(own) + data if data else None
    except (AttributeError, OSError):  # (no memfd here)
        return None
    finally:
        if fd >= 0:
            os.close(fd)
        lib.seccomp_release(ctx)


def rules_text(native: int | None = None) -> tuple[str, list[_Check]] | None:
    """What :func:`build` makes, readable: libseccomp's pseudo filter code of its rules
    (each architecture's calls and argument tests) and avfs's own checks; None where
    libseccomp is not there or fails."""
    lib = _library()
    if lib is None:
        return None
    own: list[_Check] = []
    ctx = _context(lib, native, own)
    if not ctx:
        return None
    try:
        fd = os.memfd_create("avfs-seccomp-pfc", os.MFD_CLOEXEC)
        try:
            if lib.seccomp_export_pfc(ctx, fd) != 0:
                return None
            return os.pread(fd, os.lseek(fd, 0, os.SEEK_CUR), 0).decode(), own
        finally:
            os.close(fd)
    finally:
        lib.seccomp_release(ctx)


def _context(lib: Any, native: int | None, own: list[_Check]) -> Any:
    """libseccomp's context of every rule for ``native`` (the host's when None) and its
    32-bit architectures (:data:`_ALSO`); :func:`_rules` adds to ``own`` what libseccomp
    cannot write. None where one fails."""
    host = lib.seccomp_arch_native()
    native = host if native is None else native
    ctx = lib.seccomp_init(_ALLOW)
    if not ctx:
        return None
    ok = (
        native == host or (lib.seccomp_arch_add(ctx, native) == 0 and lib.seccomp_arch_remove(ctx, host) == 0)
    ) and _rules(lib, ctx, native, own, audit=True)
    for arch in _ALSO.get(native, ()) if ok else ():
        # each 32-bit architecture its own context, merged in (the socket rule only where
        # socket() is a call of its own)
        other = lib.seccomp_init(_ALLOW)
        if not other:
            ok = False
            break
        if (
            lib.seccomp_arch_add(other, arch) != 0
            or lib.seccomp_arch_remove(other, host) != 0
            or not _rules(lib, other, arch, own, audit=arch not in _MULTIPLEXED)
            or lib.seccomp_merge(ctx, other) != 0  # (merged, ``other`` is released)
        ):
            lib.seccomp_release(other)
            ok = False
            break
    if not ok:
        lib.seccomp_release(ctx)
        return None
    return ctx


# one of avfs's own checks: (AUDIT_ARCH_*, call number, ((argument, BPF jump, k), ...), errno)
_Check = tuple[int, int, tuple[tuple[int, int, int], ...], int]
_LD_ABS, _JEQ, _JSET, _RET = 0x20, 0x15, 0x45, 0x06  # BPF_LD|W|ABS, BPF_JMP|JEQ|K, ...|JSET|K, BPF_RET|K


def _assemble(checks: list[_Check]) -> bytes:
    """Classic BPF for ``checks``, run before libseccomp's program (which starts by
    loading the architecture again: what falls through reaches it as if first): for each,
    the architecture, the call, each argument's low 32 bits equal to ``k`` (``_JEQ``) or
    holding a bit of it (``_JSET``); all of them answer ``errno``, any other goes on."""
    import struct
    import sys

    low = 0 if sys.byteorder == "little" else 4  # (seccomp_data's u64 arguments, host order)
    out = []
    for arch, nr, tests, err in checks:
        body = [(_LD_ABS, 4), (_JEQ, arch), (_LD_ABS, 0), (_JEQ, nr)]
        for arg, op, k in tests:
            body += [(_LD_ABS, 16 + 8 * arg + low), (op, k)]
        body.append((_RET, _ERRNO | err))
        for i, (code, k) in enumerate(body):  # (a failed test jumps past this check's return)
            out.append(struct.pack("=HBBI", code, 0, len(body) - i - 1 if code in (_JEQ, _JSET) else 0, k))
    return b"".join(out)


def _number(
    lib: Any, arch: int, name: str, own: list[_Check], tests: tuple[tuple[int, int, int], ...], err: int
) -> int | None:
    """The number a rule for call ``name`` of ``arch`` is written with (libseccomp's
    native numbering, a pseudo number where the host has no such call: libseccomp turns
    it into ``arch``'s own by name), or None: ``arch`` has no such call (aarch64 has no
    ``open``, ``chmod``, ``creat``, ``mknod``; its 32-bit ARM has: the thirty-fourth
    round's review, review35, found them skipped by the host's numbering), or this
    libseccomp is older than the call (one of :data:`_COMMON`: added to ``own``)."""
    here = lib.seccomp_syscall_resolve_name_arch(arch, name.encode())
    if here == _UNKNOWN and name in _COMMON:
        x32 = arch == _X32  # (x32's calls are x86_64's, the number holding its bit)
        own.append((_X86_64 if x32 else arch, _COMMON[name] | (_X32_BIT if x32 else 0), tests, err))
        return None
    if here < 0:
        return None
    return int(lib.seccomp_syscall_resolve_name(name.encode()))


def _rules(lib: Any, ctx: int, arch: int, own: list[_Check], *, audit: bool) -> bool:
    """The keyring calls refused in ``ctx`` (of architecture ``arch``), the calls that set
    a set-id bit and those whose arguments no filter reads, and (``audit``) ``socket(AF_NETLINK, *,
    NETLINK_AUDIT)``, each argument compared on its low 32 bits; False where one fails.
    (i386's direct socket is in ``own``: :data:`_X86_SOCKET`.)"""
    for name in REFUSED:
        nr = _number(lib, arch, name, own, (), errno.ENOSYS)
        if nr is None or lib.seccomp_rule_add(ctx, _ERRNO | errno.ENOSYS, nr, 0) != 0:
            return False
    for name in UNREAD:
        nr = _number(lib, arch, name, own, (), errno.ENOSYS)
        if nr is not None and lib.seccomp_rule_add(ctx, _ERRNO | errno.ENOSYS, nr, 0) != 0:
            return False
    for name, arg in SET_ID_CALLS:
        nr = _number(lib, arch, name, own, ((arg, _JSET, _SET_ID[0] | _SET_ID[1]),), errno.EPERM)
        if nr is None:
            continue
        for bit in _SET_ID:  # (two rules: either bit refuses the call)
            one = (_arg_cmp() * 1)(_arg_cmp()(arg, _CMP_MASKED_EQ, bit, bit))
            if lib.seccomp_rule_add_array(ctx, _ERRNO | errno.EPERM, nr, 1, one) != 0:
                return False
    socket_in = ((0, _JEQ, _AF_NETLINK), (2, _JEQ, _NETLINK_AUDIT))
    if arch in _MULTIPLEXED:
        own.append((arch, _X86_SOCKET, socket_in, errno.EPROTONOSUPPORT))
        if not ia32_userland():  # (only the command's own code makes this call here)
            own.append((arch, _X86_SOCKETCALL, ((0, _JEQ, _SYS_SOCKET),), errno.ENOSYS))
    if not audit:
        return True
    arg_cmp = _arg_cmp()
    cmp = (arg_cmp * 2)(
        arg_cmp(0, _CMP_MASKED_EQ, _LOW32, _AF_NETLINK), arg_cmp(2, _CMP_MASKED_EQ, _LOW32, _NETLINK_AUDIT)
    )
    nr = _number(lib, arch, "socket", own, socket_in, errno.EPROTONOSUPPORT)
    return bool(
        nr is not None and lib.seccomp_rule_add_array(ctx, _ERRNO | errno.EPROTONOSUPPORT, nr, 2, cmp) == 0
    )
