"""What :meth:`KeptHome.holds` costs a kept call's clean-up (its check of each descriptor
the kept home keeps: here one WAL database's three), before (the commit given, default
862fa77) and after its check that a database's shared lock comes with its ``-shm`` open
here; interleaved, CPU time, medians. Run: ``.venv/bin/python bench/keptholds.py [COMMIT]``."""

from __future__ import annotations

import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import types

from avfs_git.cli import homekeep


def _link(fd: str) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return ""


def main() -> None:
    commit = sys.argv[1] if len(sys.argv) > 1 else "862fa77"
    text = subprocess.run(
        ["git", "show", f"{commit}:avfs_git/cli/homekeep.py"], capture_output=True, text=True, check=True
    ).stdout
    old = types.ModuleType("avfs_git.cli.homekeep_before")
    old.__package__ = "avfs_git.cli"
    exec(compile(text, "homekeep_before", "exec"), old.__dict__)  # (our own file, at a commit)
    d = tempfile.mkdtemp()
    conn = sqlite3.connect(os.path.join(d, "o.db"), isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE t (x)")
        fds = [int(f) for f in os.listdir("/proc/self/fd") if _link(f).startswith(d)]
        sides = {"before": old.KeptHome(), "after": homekeep.KeptHome()}
        for kept in sides.values():
            kept._root = d  # (what open() sets: the home's real path)
        got: dict[str, list[float]] = {name: [] for name in sides}
        for _ in range(40):
            for name, kept in sides.items():
                t = time.process_time_ns()
                for _ in range(200):
                    assert all(kept.holds(fd) for fd in fds)
                got[name].append((time.process_time_ns() - t) / 200 / 1000)
        medians = {k: round(statistics.median(v), 1) for k, v in got.items()}
        print(
            f"{len(fds)} descriptors: {medians} µs of CPU a clean-up's checks; load {os.getloadavg()[0]:.1f}"
        )
    finally:
        conn.close()
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
