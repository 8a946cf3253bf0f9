"""Kernel interfaces a confined command might reach past its sandbox (the thirty-sixth
round, attack28; docs/security.md, "The hand-made view, the CLI server, socketcall and
kernel interfaces"). Each held, on main too; kept here as the record that they were tried:

- ``ptrace`` (attach) of every process the command sees (bubblewrap's own first process,
  the view's init: not filtered by a filter loaded after them, on main): refused;
- ``userfaultfd`` for kernel faults (to stall a privileged reader mid-copy): refused
  (``vm.unprivileged_userfaultfd`` 0 and no ``CAP_SYS_PTRACE``; user-mode faults, on the
  command's own memory only, are allowed, as everywhere);
- ``perf_event_open`` of a CPU, of PID 1, of itself: refused (``perf_event_paranoid`` 2, no
  ``CAP_PERFMON``);
- a program run from a ``memfd`` by ``execveat``: still filtered, ``no_new_privs``;
- ``open_by_handle_at`` of the file system's root inode (the "shocker" way out of a bind
  mount), with a directory the sandbox binds writable from the host's file system as the
  mount, plain and after ``unshare(CLONE_NEWUSER | CLONE_NEWNS)`` (which the sandbox
  allows): refused (``EPERM``; in the new user namespace the kernel's subtree check:
  ``ESTALE``);
- a process that leaves the command's session and writes the fork after the command has
  ended: killed with its PID namespace before avfs records the run; nothing lands later.

Each from inside a real `proxy exec`: the sandbox of a mounted fork (both backends) and a
hand-made view (``--hide-host``)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from .test_adv_gitseal import _avfs, _script
from .test_adv_gitseal import live as live  # the fixture: both backends
from .test_isolate import _need_namespaces

_PROBE = """import ctypes, os, struct, subprocess, sys
libc = ctypes.CDLL(None, use_errno=True)
L = ctypes.c_long
def sc(nr, *a):
    r = libc.syscall(L(nr), *[L(x) if isinstance(x, int) else x for x in a])
    return r if r >= 0 else -ctypes.get_errno()
def say(name, r):
    print(name, r if r >= 0 else os.strerror(-r))
seen = [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) != os.getpid()]
attached = [p for p in seen if sc(101, 16, p, 0, 0) == 0]  # PTRACE_ATTACH
print("ptrace", len(seen), "attached", attached)
say("userfaultfd", sc(323, 0))
attr = ctypes.create_string_buffer(struct.pack("=IIQ", 1, 128, 0) + bytes(112))  # software, cpu-clock
say("perf-cpu", sc(298, attr, -1, 0, -1, 0))
say("perf-pid1", sc(298, attr, 1, -1, -1, 0))
fd = os.memfd_create("m", 0)
os.write(fd, b"#!/bin/sh\\ngrep -E '^(Seccomp|NoNewPrivs):' /proc/self/status\\n")
if os.fork() == 0:
    sc(322, fd, ctypes.c_char_p(b""), (ctypes.c_char_p * 2)(b"m", None), (ctypes.c_char_p * 1)(None), 0x1000)
    os._exit(1)
os.wait()
g = subprocess.run(["git", "rev-parse", "--absolute-git-dir"], capture_output=True, text=True)
G = g.stdout.strip() or sys.exit("git: " + g.stderr)
def shocker(tag):
    for where in (G, "/usr"):
        mfd = os.open(where, os.O_RDONLY | os.O_DIRECTORY)
        root = ctypes.create_string_buffer(struct.pack("=IiII", 8, 1, 2, 0))  # FILEID_INO32_GEN, inode 2
        r = sc(304, mfd, root, os.O_RDONLY | os.O_DIRECTORY)
        print("handle", tag, "opened" if r >= 0 else os.strerror(-r))
shocker("plain")
say("unshare", sc(272, 0x10000000 | 0x20000))
shocker("userns")
"""

_LATE = """import os, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        for i in range(60):
            time.sleep(0.1)
            with open(f"late-{i}.txt", "w") as fh:
                fh.write("late\\n")
    os._exit(0)
"""


def _run(flag: tuple[str, ...], tmp: Path, *argv: str) -> dict[str, Any]:
    at = tmp / "project"  # (not tmp itself: the home is in it)
    at.mkdir()
    r = _avfs("--json", "proxy", "exec", *flag, *(("--at", str(at)) if flag else ()), "--", *argv)
    doc = json.loads(r.stdout)
    assert doc["confinement"]["kind"] == ("namespace" if flag else "bwrap"), doc["confinement"]
    assert doc["exit_code"] == 0, (doc["result"]["stdout"], doc["result"]["stderr"])
    return dict(doc)


@pytest.mark.parametrize("flag", [(), ("--hide-host",)], ids=["sandbox", "view"])
def test_kernel_interfaces_reach_nothing_past_the_confinement(
    live: Any, tmp_path: Path, flag: tuple[str, ...]
) -> None:
    if flag:
        _need_namespaces()
    _script(live, "probe.py", _PROBE)
    doc = _run(flag, tmp_path, "python3", "probe.py")
    lines = doc["result"]["stdout"].splitlines()
    assert any(x.startswith("ptrace ") and x.endswith(" attached []") for x in lines), lines
    assert "userfaultfd Operation not permitted" in lines, lines
    for what in ("perf-cpu", "perf-pid1"):
        assert f"{what} Permission denied" in lines or f"{what} Operation not permitted" in lines, lines
    assert "Seccomp:\t2" in lines and "NoNewPrivs:\t1" in lines, lines  # (the memfd's program)
    handles = [x for x in lines if x.startswith("handle ")]
    assert len(handles) == 4 and not any(x.endswith("opened") for x in handles), lines
    assert "unshare 0" in lines or "unshare Operation not permitted" in lines, lines


@pytest.mark.parametrize("flag", [(), ("--hide-host",)], ids=["sandbox", "view"])
def test_a_process_that_leaves_the_session_writes_nothing_after_the_run(
    live: Any, tmp_path: Path, flag: tuple[str, ...]
) -> None:
    if flag:
        _need_namespaces()
    _script(live, "late.py", _LATE)
    doc = _run(flag, tmp_path, "python3", "late.py")
    assert doc["changes"] == [] or all(c["path"] == "late.py" for c in doc["changes"]), doc["changes"]
    time.sleep(7)  # (past the 6 s the process would have gone on writing; not a threshold)
    left = sorted(p.name for p in Path(live.mountpoint).glob("late-*"))
    assert left == [], f"written after the run: {left}"
