"""The host's audit log, from inside a confined `proxy exec` (the thirty-third round,
NAME=attack24; docs/security.md, "Kernel state no namespace separates").

The kernel's audit trail is the host's: no namespace bubblewrap makes has one of its own.
A root command kept ``CAP_AUDIT_WRITE`` (Docker's default set keeps it for ``login`` and
``su``), and a ``NETLINK_AUDIT`` socket took its user records, with or without a network
namespace of its own: the host's kernel log (or ``auditd``'s log) then held a line of the
command's text under the host's pid, a forged ``PAM: authentication ... res=success`` as
well as anything. Now the sandbox's seccomp filter refuses the socket as a kernel without
audit does (``EPROTONOSUPPORT``: PAM and libaudit go on without it), and no root command
keeps the capability (bwrap's sandbox; the hand-made namespace view too).

From inside a real confined `proxy exec` (bubblewrap, a mount for the call; then the
hand-made view of ``--isolate --host readonly``)."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

from avfs_git.proxy.envelope import ExecRequest
from avfs_git.proxy.execute import execute

from .test_adv_hostnet import _root
from .test_confine import fork as fork  # a fork to run in (real bwrap, a real mount)
from .test_isolate import forks as forks  # forks for the hand-made view
from .test_isolate import proj as proj

# what the command runs: an AUDIT_USER_MSG record with the marker, and the kernel's answer
FORGE = """import socket, struct, sys
try:
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 9)
except OSError as e:
    print("REFUSED", e.strerror)
    sys.exit(0)
msg = ("op=PAM:authentication acct=root res=success " + sys.argv[1]).encode() + b"\\0"
s.sendto(struct.pack("=IHHII", 16 + len(msg), 1107, 5, 1, 0) + msg, (0, 0))
s.settimeout(10)
data = s.recv(4096)
print("ANSWERED", struct.unpack("=i", data[16:20])[0] if struct.unpack("=H", data[4:6])[0] == 2 else "?")
"""


def _kernel_log() -> str | None:
    """The host's kernel log, where it can be read (``dmesg``: root here)."""
    if shutil.which("dmesg") is None:
        return None
    got = subprocess.run(["dmesg"], capture_output=True, text=True, errors="replace", check=False)
    return got.stdout if got.returncode == 0 else None


def _forged_nothing(out: str, marker: str) -> None:
    assert "ANSWERED 0" not in out, f"the kernel took the command's audit record: {out}"
    log = _kernel_log()
    assert log is None or marker not in log, "the host's kernel log holds the command's record"


def test_a_root_command_writes_nothing_into_the_host_s_audit_log(home: Any, fork: Any) -> None:
    """bubblewrap, its own network namespace (the default): the socket is refused as a
    kernel without audit refuses it."""
    _root()
    marker = f"avfs-attack24-{uuid.uuid4().hex[:12]}"
    fork.workspace("main").write("forge.py", FORGE.encode())
    res = execute(home, fork, "main", ExecRequest(argv=("python3", "forge.py", marker), commit=False))
    assert res.confinement.kind == "bwrap", res.confinement
    assert res.result is not None and res.result.exit_code == 0, res.to_dict()
    out = res.result.stdout
    _forged_nothing(out, marker)
    assert out.startswith("REFUSED Protocol not supported"), out


def test_a_root_command_in_a_hand_made_view_writes_nothing_into_the_audit_log(
    home: Any, forks: Any, proj: Path
) -> None:
    """The hand-made view (no seccomp filter): the record is refused for want of the
    capability."""
    _root()
    marker = f"avfs-attack24-{uuid.uuid4().hex[:12]}"
    forks.workspace("a").write("forge.py", FORGE.encode())
    req = ExecRequest(
        argv=("python3", "forge.py", marker), isolate="readonly", isolate_at=str(proj), commit=False
    )
    res = execute(home, forks, "a", req)
    assert res.result is not None and res.result.exit_code == 0, res.to_dict()
    out = res.result.stdout
    _forged_nothing(out, marker)
    assert out.startswith(("REFUSED", "ANSWERED -1")), out  # EPERM


# the same socket asked with bits set above each int argument's low 32 (the kernel reads
# only those): the filter compares the low halves (the review: a whole-register compare
# let these through, the capability's drop then the only guard)
HIGH_BITS = """import ctypes, os, platform
nr = {"x86_64": 41, "aarch64": 198}[platform.machine()]  # socket(2)
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
for a, c in ((1 << 32 | 16, 9), (16, 1 << 32 | 9), (1 << 40 | 16, 1 << 33 | 9)):
    fd = libc.syscall(nr, ctypes.c_long(a), ctypes.c_long(3), ctypes.c_long(c))
    print("OPENED" if fd >= 0 else "REFUSED " + os.strerror(ctypes.get_errno()))
"""


def test_the_audit_socket_is_refused_whatever_the_arguments_high_bits_hold(home: Any, fork: Any) -> None:
    """``socket(AF_NETLINK, SOCK_RAW, NETLINK_AUDIT)`` with bits above the int arguments'
    low 32: refused as the plain call is (main: three descriptors)."""
    fork.workspace("main").write("high.py", HIGH_BITS.encode())
    res = execute(home, fork, "main", ExecRequest(argv=("python3", "high.py"), commit=False))
    assert res.confinement.kind == "bwrap", res.confinement
    assert res.result is not None and res.result.exit_code == 0, res.to_dict()
    assert res.result.stdout.splitlines() == ["REFUSED Protocol not supported"] * 3, res.result.stdout
