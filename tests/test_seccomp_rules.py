"""What the sandbox's seccomp program holds, architecture by architecture (``proxy/seccomp.py``;
docs/security.md, "Other system call tables", the thirty-fifth round, attack27).

libseccomp writes a rule in its native numbering and turns it into each other
architecture's by name. The rules were skipped wherever the *host's* table has no such
call: on an aarch64 host (no ``open``, ``chmod``, ``creat``, ``mknod`` there) its 32-bit
ARM table, which has them, was left unfiltered (the thirty-fourth round's review). An
aarch64 machine's program cannot be run here, but libseccomp makes it for any
architecture: its rules are read as libseccomp prints them (``seccomp_export_pfc``), for
every machine avfs knows, against libseccomp's own table of each architecture.

avfs's own instructions before libseccomp's program (i386's direct ``socket``, whose rule
libseccomp also writes for ``socketcall``; a call newer than the libseccomp at hand) are
loaded into a real process's filter here and tried."""

from __future__ import annotations

import errno
import os
import re
import subprocess
import sys
from typing import Any

import pytest

from avfs_git.proxy import seccomp

from .conftest import skip_outside_ci
from .test_adv_ia32 import _need_ia32

_MACHINES = {"x86_64": seccomp._X86_64, "aarch64": seccomp._AARCH64}
_NAMES = {seccomp._X86_64: "x86_64", seccomp._X86: "x86", seccomp._X32: "x32", seccomp._AARCH64: "aarch64", seccomp._ARM: "arm"}  # fmt: skip


def _lib() -> object:
    lib = seccomp._library()
    if lib is None:
        skip_outside_ci("libseccomp is not installed", "CI installs libseccomp2")
    return lib


def _sections(text: str) -> dict[str, dict[int, list[str]]]:
    """libseccomp's pseudo filter code as {architecture: {call number: its lines}}."""
    out: dict[str, dict[int, list[str]]] = {}
    calls: dict[int, list[str]] = {}
    nr = -1
    for line in text.splitlines():
        arch = re.match(r"# filter for arch (\w+) ", line)
        if arch:
            calls = out.setdefault(arch.group(1), {})
            continue
        got = re.match(r"\s*if \(\$syscall == (\d+)\)", line)
        if got:
            nr = int(got.group(1))
            calls.setdefault(nr, [])
        elif nr >= 0 and line.startswith("    "):
            calls[nr].append(line.strip())
    return out


@pytest.mark.parametrize("machine", sorted(_MACHINES))
def test_every_architecture_s_rules_hold_every_call_it_has(machine: str) -> None:
    """For the host's architecture and each 32-bit one its kernel runs, every refused call
    that architecture has (by libseccomp's own table of it) has its rule there: the set-id
    calls one per bit, the keyring calls and those whose arguments no filter reads
    whole; and ``socket`` where it is a call of its own."""
    lib = _lib()
    native = _MACHINES[machine]
    made = seccomp.rules_text(native)
    assert made is not None
    text, own = made
    sections = _sections(text)
    assert set(sections) == {_NAMES[a] for a in (native, *seccomp._ALSO[native])}, text
    for arch in (native, *seccomp._ALSO[native]):
        calls = sections[_NAMES[arch]]

        def nr(name: str, arch: int = arch) -> int:
            return int(lib.seccomp_syscall_resolve_name_arch(arch, name.encode()))  # type: ignore[attr-defined]

        for name, arg in seccomp.SET_ID_CALLS:
            if nr(name) < 0:
                continue  # (not a call of this architecture)
            lines = calls.get(nr(name))
            assert lines is not None, f"{machine}: {_NAMES[arch]} {name} ({nr(name)}) has no rule"
            for bit in (0o4000, 0o2000):
                assert {
                    f"if ($a{arg} & 0x{bit:08x} == {bit})",
                    f"if ($a{arg}.lo32 & 0x{bit:08x} == {bit})",
                } & set(lines), (
                    name,
                    lines,
                )
            assert lines.count(f"action ERRNO({errno.EPERM});") == 2, (name, lines)
        for name in (*seccomp.REFUSED, *seccomp.UNREAD):
            assert calls.get(nr(name)) == [f"action ERRNO({errno.ENOSYS});"], (
                _NAMES[arch],
                name,
                calls.get(nr(name)),
            )
        if arch not in seccomp._MULTIPLEXED:
            assert f"action ERRNO({errno.EPROTONOSUPPORT});" in calls[nr("socket")], calls[nr("socket")]
    if machine == "aarch64":
        arm = sections["arm"]  # (the calls aarch64 has not, by ARM's own numbers)
        for name, number in (("open", 5), ("creat", 8), ("mknod", 14), ("chmod", 15)):
            assert number in arm, f"32-bit ARM's {name} has no rule: {text}"
    socket = [c for c in own if c[1] == seccomp._X86_SOCKET]
    assert socket == [
        (seccomp._X86, 359, ((0, seccomp._JEQ, 16), (2, seccomp._JEQ, 9)), errno.EPROTONOSUPPORT)
        for _ in range(machine == "x86_64")
    ]
    # the rest: calls this libseccomp has no name for (none where it is as new as the kernel)
    unknown = {n for n in seccomp._COMMON if lib.seccomp_syscall_resolve_name(n.encode()) == seccomp._UNKNOWN}  # type: ignore[attr-defined]
    # socketcall(SYS_SOCKET) whole, where the host runs no 32-bit program (attack28)
    call = [c for c in own if c[1] == seccomp._X86_SOCKETCALL]
    assert call == [
        (seccomp._X86, 102, ((0, seccomp._JEQ, 1),), errno.ENOSYS)
        for _ in range(machine == "x86_64" and not seccomp.ia32_userland())
    ]
    rest = {c[1] & ~seccomp._X32_BIT for c in own if c not in socket and c not in call}
    assert rest == {seccomp._COMMON[n] for n in unknown}


# a process of its own that loads avfs's own instructions (then "allow") and tries calls:
# i386's socket through `int $0x80`, fchmodat2 of x86_64
_TRY = """import ctypes, os, struct, sys, tempfile
from avfs_git.proxy import seccomp
libc = ctypes.CDLL(None, use_errno=True)
checks = [
    (seccomp._X86, 359, ((0, seccomp._JEQ, 16), (2, seccomp._JEQ, 9)), 93),
    (seccomp._X86_64, 452, ((2, seccomp._JSET, 0o6000),), 1),
]
prog = seccomp._assemble(checks) + struct.pack("=HBBI", 0x06, 0, 0, 0x7FFF0000)
buf = ctypes.create_string_buffer(prog)
fprog = struct.pack("=HxxxxxxQ", len(prog) // 8, ctypes.addressof(buf))
fbuf = ctypes.create_string_buffer(fprog)
assert libc.prctl(38, 1, 0, 0, 0) == 0  # PR_SET_NO_NEW_PRIVS
assert libc.syscall(317, 1, 0, fbuf) == 0, os.strerror(ctypes.get_errno())  # seccomp(SET_MODE_FILTER)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
code = libc.mmap(None, 4096, 7, 0x22 | 0x40, -1, 0)
data = libc.mmap(None, 4096, 3, 0x22 | 0x40, -1, 0)
CODE = bytes.fromhex("5355578b078b5f048b4f088b570c8b77108b6f188b7f14cd805f89075d5bc3")
ctypes.memmove(code, CODE, len(CODE))
regs = ctypes.cast(data, ctypes.POINTER(ctypes.c_uint32))
def i386(nr, *a):
    for i, v in enumerate([nr, *a, 0, 0, 0, 0, 0, 0][:7]):
        regs[i] = v & 0xFFFFFFFF
    ctypes.CFUNCTYPE(None, ctypes.c_void_p)(code)(data)
    return ctypes.c_int32(regs[0]).value
print("audit", i386(359, 16, 3, 9))
r = i386(359, 16, 3, 0)  # NETLINK_ROUTE
print("route", min(r, 0))
f = tempfile.mktemp(dir=sys.argv[1]).encode()
open(f, "w").close()
L = ctypes.c_long
for mode in (0o4755, 0o2755, 0o755):
    r = libc.syscall(L(452), L(-100), ctypes.c_char_p(f), L(mode), L(0))
    print("fchmodat2", oct(mode), r if r == 0 else os.strerror(ctypes.get_errno()), oct(os.stat(f).st_mode))
"""


def test_avfs_s_own_instructions_hold_in_the_kernel(tmp_path: object) -> None:
    """The instructions avfs writes itself (:func:`seccomp._assemble`), loaded into a real
    process: i386's socket of ``NETLINK_AUDIT`` refused, of another protocol made; an
    x86_64 ``fchmodat2`` check as a libseccomp older than the call would need it refuses
    either set-id bit, a plain mode goes through."""
    _need_ia32()  # (x86_64's and i386's numbers, i386's through `int $0x80`)
    done = subprocess.run(
        [sys.executable, "-c", _TRY, str(tmp_path)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"audit {-errno.EPROTONOSUPPORT}", done.stdout
    assert lines[1] == "route 0", done.stdout
    assert lines[2:] == [
        "fchmodat2 0o4755 Operation not permitted 0o100644",
        "fchmodat2 0o2755 Operation not permitted 0o100644",
        "fchmodat2 0o755 0 0o100755",
    ], done.stdout


# newer calls, one of which this libseccomp has no name for (2.5.4 stops before mseal)
_NEWER = {"mseal": 462, "setxattrat": 463, "getxattrat": 464, "listxattrat": 465, "file_getattr": 468}

# a process of its own that loads the whole program, made with one more call of
# ``_COMMON`` refused that libseccomp cannot name, and makes it (with arguments the kernel
# refuses anyway: EINVAL, EFAULT or EBADF unfiltered)
_WHOLE = """import ctypes, os, struct, sys
from avfs_git.proxy import seccomp
name, nr = sys.argv[1], int(sys.argv[2])
seccomp._COMMON[name] = nr
seccomp.UNREAD = (*seccomp.UNREAD, name)
prog = seccomp.build()
libc = ctypes.CDLL(None, use_errno=True)
buf = ctypes.create_string_buffer(prog)
fbuf = ctypes.create_string_buffer(struct.pack("=HxxxxxxQ", len(prog) // 8, ctypes.addressof(buf)))
assert libc.prctl(38, 1, 0, 0, 0) == 0
assert libc.syscall(317, 1, 0, fbuf) == 0, os.strerror(ctypes.get_errno())
L = ctypes.c_long
print(libc.syscall(L(nr), L(-1), L(0), L(0), L(0), L(0)), ctypes.get_errno())
print(libc.syscall(L(seccomp._COMMON["fchmodat2"]), L(-100), ctypes.c_char_p(b"/nonexistent"), L(0o4755), L(0)), ctypes.get_errno())
print(os.getppid() > 0)
"""


def test_a_call_libseccomp_has_no_name_for_is_refused_at_its_number(monkeypatch: pytest.MonkeyPatch) -> None:
    """A call of :data:`seccomp._COMMON` this libseccomp has no name for (as ``fchmodat2``
    was for releases before 2.5.5) goes into avfs's own instructions at its one number,
    for each architecture of the machine's program (x32's with its bit); the whole program
    (those instructions, then libseccomp's) loaded into a real process refuses it and
    still refuses what libseccomp's rules refuse."""
    lib = _lib()
    unknown = [
        (n, nr)
        for n, nr in _NEWER.items()
        if lib.seccomp_syscall_resolve_name(n.encode()) == seccomp._UNKNOWN
    ]  # type: ignore[attr-defined]
    if not unknown:
        skip_outside_ci(
            "this libseccomp names every call of the list", "CI's libseccomp (2.5.4) has no mseal"
        )
    name, nr = unknown[0]
    native = _MACHINES.get(os.uname().machine)
    if native is None:
        skip_outside_ci("no machine avfs builds for", "CI runs on x86_64")
    monkeypatch.setitem(seccomp._COMMON, name, nr)  # (one more call of the table: the child's too)
    own: list[Any] = []
    assert seccomp._number(lib, native, name, own, (), errno.ENOSYS) is None
    assert own == [(native, nr, (), errno.ENOSYS)]
    if native == seccomp._X86_64:
        own.clear()
        seccomp._number(lib, seccomp._X32, name, own, (), errno.ENOSYS)
        assert own == [(seccomp._X86_64, nr | seccomp._X32_BIT, (), errno.ENOSYS)]
    done = subprocess.run(
        [sys.executable, "-c", _WHOLE, name, str(nr)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"-1 {errno.ENOSYS}", f"-1 {errno.EPERM}", "True"], done.stdout


# a process of its own that loads the whole program made as for a host with (argv[1] "1")
# or without a 32-bit x86 loader, and asks i386's socketcall for sockets
_SOCKETCALL = """import ctypes, os, struct, sys
from avfs_git.proxy import seccomp
seccomp.ia32_userland = lambda: sys.argv[1] == "1"
prog = seccomp.build()
libc = ctypes.CDLL(None, use_errno=True)
buf = ctypes.create_string_buffer(prog)
fbuf = ctypes.create_string_buffer(struct.pack("=HxxxxxxQ", len(prog) // 8, ctypes.addressof(buf)))
assert libc.prctl(38, 1, 0, 0, 0) == 0
assert libc.syscall(317, 1, 0, fbuf) == 0, os.strerror(ctypes.get_errno())
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
code = libc.mmap(None, 4096, 7, 0x22 | 0x40, -1, 0)
data = libc.mmap(None, 4096, 3, 0x22 | 0x40, -1, 0)
CODE = bytes.fromhex("5355578b078b5f048b4f088b570c8b77108b6f188b7f14cd805f89075d5bc3")
ctypes.memmove(code, CODE, len(CODE))
regs = ctypes.cast(data, ctypes.POINTER(ctypes.c_uint32))
def i386(nr, *a):
    for i, v in enumerate([nr, *a, 0, 0, 0, 0, 0, 0][:7]):
        regs[i] = v & 0xFFFFFFFF
    ctypes.CFUNCTYPE(None, ctypes.c_void_p)(code)(data)
    return ctypes.c_int32(regs[0]).value
args = data + 256
for name, call, words in (("audit", 1, (16, 3, 9)), ("inet", 1, (2, 1, 0)), ("pair", 8, (1, 1, 0, data + 512))):
    ctypes.memmove(args, struct.pack("=" + "I" * len(words), *words), 4 * len(words))
    r = i386(102, call, args)
    print(name, min(r, 0))
print("direct", min(i386(359, 2, 1, 0), 0))
"""


@pytest.mark.parametrize("userland", [False, True])
def test_socketcall_s_sockets_are_refused_where_no_32_bit_program_runs(userland: bool) -> None:
    """i386's ``socketcall(SYS_SOCKET)`` carries its socket's family behind a pointer: the
    whole program, loaded into a real process, refuses every socket of that call where the
    host has no 32-bit x86 loader (attack28: an audit socket was made), and refuses none
    where it has one (every 32-bit program's sockets go that way); ``socketpair`` through
    the same call, and i386's own ``socket`` of another protocol, are made either way."""
    _lib()
    _need_ia32()
    done = subprocess.run(
        [sys.executable, "-c", _SOCKETCALL, "1" if userland else "0"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    made = "0" if userland else str(-errno.ENOSYS)
    assert done.stdout.splitlines() == [f"audit {made}", f"inet {made}", "pair 0", "direct 0"], done.stdout
