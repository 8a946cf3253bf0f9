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
a 32-bit program's ``socketcall`` is past what a filter can read). Every other call is
allowed.

The filter is made by `libseccomp <https://github.com/seccomp/libseccomp>`_ (the library
flatpak and systemd make theirs with; ``libseccomp.so.2``, which apt and systemd need on
the hosts avfs runs on), through ``ctypes``, for the machine's own architecture and its
32-bit ones (a 32-bit call reaches the same keyrings). Where the library is missing the
command runs without the filter (:func:`program` is None), as before; docs/security.md
says so."""

from __future__ import annotations

import ctypes
import errno
import functools
import os
from collections.abc import Iterator

__all__ = ["REFUSED", "program"]

REFUSED = ("add_key", "keyctl", "request_key")
# socket(AF_NETLINK, *, NETLINK_AUDIT): refused as a kernel without audit refuses it
_AF_NETLINK, _NETLINK_AUDIT = 16, 9
_CMP_EQ = 4  # SCMP_CMP_EQ


class _ArgCmp(ctypes.Structure):
    """libseccomp's ``struct scmp_arg_cmp``."""

    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("a", ctypes.c_uint64), ("b", ctypes.c_uint64)]


_ALLOW = 0x7FFF0000  # SCMP_ACT_ALLOW
_ERRNO = 0x00050000  # SCMP_ACT_ERRNO(0)
# AUDIT_ARCH_* of the 64-bit machines and the 32-bit ones their kernels also run
_X86_64, _X86, _X32 = 0xC000003E, 0x40000003, 0x4000003E
_AARCH64, _ARM = 0xC00000B7, 0x40000028
_ALSO = {_X86_64: (_X86, _X32), _AARCH64: (_ARM,)}


def _names() -> Iterator[str]:
    yield "libseccomp.so.2"
    import ctypes.util  # (~20 ms under load: only where the usual name is not there)

    name = ctypes.util.find_library("seccomp")
    if name:
        yield name


def _library() -> ctypes.CDLL | None:
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
        lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
        lib.seccomp_rule_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint]
        lib.seccomp_rule_add_array.argtypes = [
            ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint, ctypes.POINTER(_ArgCmp),
        ]  # fmt: skip
        lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
        return lib
    return None


@functools.cache
def program() -> bytes | None:
    """The filter as bubblewrap's ``--seccomp`` reads it (classic BPF, the host's byte
    order), made once per process (~2 ms, ~15 with libseccomp's loading; made ahead by the
    mount's exec server and the resident CLI server, whose forks find it made); None
    where libseccomp is not there or fails."""
    lib = _library()
    if lib is None:
        return None
    ctx = lib.seccomp_init(_ALLOW)
    if not ctx:
        return None
    fd = -1
    try:
        for arch in _ALSO.get(lib.seccomp_arch_native(), ()):
            lib.seccomp_arch_add(ctx, arch)  # (-EEXIST where it is already the native one)
        for name in REFUSED:
            nr = lib.seccomp_syscall_resolve_name(name.encode())
            if nr < 0 or lib.seccomp_rule_add(ctx, _ERRNO | errno.ENOSYS, nr, 0) != 0:
                return None
        audit = (_ArgCmp * 2)(_ArgCmp(0, _CMP_EQ, _AF_NETLINK, 0), _ArgCmp(2, _CMP_EQ, _NETLINK_AUDIT, 0))
        nr = lib.seccomp_syscall_resolve_name(b"socket")
        if nr < 0 or lib.seccomp_rule_add_array(ctx, _ERRNO | errno.EPROTONOSUPPORT, nr, 2, audit) != 0:
            return None
        fd = os.memfd_create("avfs-seccomp", os.MFD_CLOEXEC)
        if lib.seccomp_export_bpf(ctx, fd) != 0:
            return None
        size = os.lseek(fd, 0, os.SEEK_CUR)
        return os.pread(fd, size, 0) or None
    except (AttributeError, OSError):  # (no memfd here)
        return None
    finally:
        if fd >= 0:
            os.close(fd)
        lib.seccomp_release(ctx)
