"""Which processes are inside a mount (its working directories, roots, executables and
open files under the mount point): what makes ``avfs unmount`` busy (ops/mounts.py) and
``avfs down`` refuse (ops/quickstart.py)."""

from __future__ import annotations

import os
import time
from typing import Any

from ..core.store import names


def mount_holders(mountpoint: str) -> list[dict[str, Any]]:
    """Processes with their working directory, root, executable or an open file under
    ``mountpoint``."""
    root = os.path.realpath(mountpoint)
    out: list[dict[str, Any]] = []
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return out
    for pid in pids:
        what: list[str] = []
        base = f"/proc/{pid}"
        for link in ("cwd", "root", "exe"):
            try:
                if names.is_within(os.readlink(f"{base}/{link}"), root):
                    what.append(link)
            except OSError:
                pass
        try:
            for fd in os.listdir(f"{base}/fd"):
                try:
                    if names.is_within(os.readlink(f"{base}/fd/{fd}"), root):
                        what.append("open file")
                        break
                except OSError:
                    continue
        except OSError:
            pass
        if what:
            try:
                with open(f"{base}/comm", encoding="utf-8", errors="replace") as fh:
                    comm = fh.read().strip()
            except OSError:
                comm = "?"
            out.append({"pid": int(pid), "command": comm, "holds": sorted(set(what)), **_whence(base)})
    return out


def _whence(base: str) -> dict[str, Any]:
    """A holder's parent, command line and working directory (what names where it came
    from: a detached git's ``gc --auto``, a sandbox's process, a person's shell)."""
    ppid: int | None = None
    argv: list[str] = []
    cwd: str | None = None
    try:
        with open(f"{base}/stat", "rb") as fh:
            ppid = int(fh.read().rsplit(b")", 1)[1].split()[1])
        with open(f"{base}/cmdline", "rb") as fh:
            argv = [a.decode(errors="replace") for a in fh.read().split(b"\0")[:-1]]
        cwd = os.readlink(f"{base}/cwd")
    except (OSError, ValueError, IndexError):
        pass
    return {"ppid": ppid, "cmdline": argv, "cwd": cwd}


YOUNG_S = 10.0  # a daemon this young may still be doing its own work in the mount


def _age_s(pid: int) -> float | None:
    """How long ago process ``pid`` started (None: unknown)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            start = int(fh.read().rsplit(b")", 1)[1].split()[19])
        with open("/proc/uptime", "rb") as fh:
            up = float(fh.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return up - start / os.sysconf("SC_CLK_TCK")


def held(mountpoint: str, daemon: int, wait_s: float = 2.0, quiet_s: float = 0.1) -> bool:
    """Whether a process is inside ``mountpoint`` (:func:`mount_holders`). Its own daemon's
    holds are a moment's: right after the mount answered it lists merged directories one
    after the other and pins ``.git`` through the overlay, so while the daemon is young
    (:data:`YOUNG_S`) they are waited for, at most ``wait_s``, until none has been seen for
    ``quiet_s`` (a look between two of its opens sees none)."""
    age = _age_s(daemon)
    young = age is not None and age < YOUNG_S
    deadline = time.monotonic() + wait_s
    quiet_since = time.monotonic()
    while True:
        now = time.monotonic()
        held = mount_holders(mountpoint)
        if any(h["pid"] != daemon for h in held):
            return True
        if not young:
            return bool(held)
        if held:
            quiet_since = now
        elif now - quiet_since >= quiet_s:
            return False
        if now > deadline:
            return bool(held)
        time.sleep(0.01)
