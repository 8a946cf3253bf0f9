"""Row 3 of issue 30 by CPU as well as wall: the task of :mod:`bench.scalecases` (Django's
``runtests.py utils_tests``) in a cold lazy mount, this tree against other avfs source trees
in the same run, interleaved (the side going first alternating), optionally after the same
task in a full ``git clone`` (``--full``). Each side gets a new home, a new lazy clone and a
new mount (``python -m avfs_git`` with ``PYTHONPATH`` the side's tree).

Per cold task: its wall time, the task's own CPU (``RUSAGE_CHILDREN``), the CPU of the mount's
daemon and of its children (``/proc/<pid>/stat``: its own, what its ended children left it,
its live children's: git's processes, the lower layer's walk) while the task ran, whether
libgit2 was loaded in the daemon and the fork's git index written by the end of the task
(fuse/settle.py: both wait for the mount to be quiet); then the task again in the same
mount (``warm``: every file local). Where wall time drowns in the machine's load, the
daemon's CPU beside the task is the figure that says what a change did.

Run: ``AVFS_TEST_CACHE=... .venv/bin/python -m bench.lazytaskcpu [--pairs N] [--full]
[--sides SRC...]`` (default: this tree alone); one JSON line per run on stdout, the served
repository and the dependencies built once under ``--work`` (default
``/tmp/avfs-lazytaskcpu``) and kept for the next run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .fusecases import _realdata
from .remotecases import _daemon
from .scalecases import DEPS, DJANGO, ROOT, TASK, _build, _task_env, _unpack


def _proc_cpu(pid: int) -> float | None:
    """CPU seconds of ``pid``, of its ended children it waited for, and of its live children."""
    tck = os.sysconf("SC_CLK_TCK")
    try:
        with open(f"/proc/{pid}/stat") as fh:
            f = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    total = sum(int(x) for x in f[11:15])
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as fh:
                    g = fh.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(g[1]) == pid:
                total += int(g[11]) + int(g[12])
    return total / tck


def _daemon_of(mp: Path) -> int:
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/cmdline", "rb") as fh:
                    cmd = fh.read().split(b"\0")
            except OSError:
                continue
            if str(mp).encode() in cmd and b"avfs_git" in b" ".join(cmd):
                return int(d)
    raise RuntimeError(f"no daemon found for {mp}")


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _run_task(tree: Path, deps: list[Path]) -> tuple[float, float, int]:
    c0, start = _cpu(), time.perf_counter()
    p = subprocess.run(
        [sys.executable, *TASK],
        cwd=tree / DJANGO[0] / "tests",
        env=_task_env(tree, deps),
        capture_output=True,
    )
    return time.perf_counter() - start, _cpu() - c0, p.returncode


def _lazy(src: str, url: str, work: Path, deps: list[Path], tag: str) -> dict[str, Any]:
    home = work / f"home-{tag}"
    mp = work / f"mnt-{tag}"
    shutil.rmtree(home, ignore_errors=True)
    mp.mkdir(exist_ok=True)
    env = {**os.environ, "AVFS_HOME": str(home), "AVFS_PROGRESS": "never", "AVFS_SERVER": "off",
           "AVFS_LAYERS": "off", "PYTHONPATH": src}  # fmt: skip
    avfs = [str(ROOT / ".venv" / "bin" / "python"), "-m", "avfs_git"]
    subprocess.run([*avfs, "vault", "clone", "--lazy", url, "big"], check=True, env=env, capture_output=True)
    subprocess.run([*avfs, "mount", "big:main", str(mp)], check=True, env=env, capture_output=True)
    try:
        os.listdir(mp)
        pid = _daemon_of(mp)
        d0 = _proc_cpu(pid)
        wall, cpu, rc = _run_task(mp, deps)
        d1 = _proc_cpu(pid)
        indexed = bool(list(home.glob("vaults/*/worktrees/*/index")))
        try:
            with open(f"/proc/{pid}/maps") as fh:
                libgit2 = "_pygit2" in fh.read()
        except OSError:
            libgit2 = False
        warm, _, _ = _run_task(mp, deps)
    finally:
        subprocess.run([*avfs, "unmount", "big:main"], env=env, capture_output=True)
        shutil.rmtree(home, ignore_errors=True)
    return {"side": src, "task_s": wall, "task_cpu_s": cpu, "rc": rc,
            "daemon_cpu_s": None if d0 is None or d1 is None else d1 - d0,
            "index_in_task": indexed, "libgit2_in_task": libgit2, "warm_task_s": warm}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sides", nargs="+", default=[str(ROOT)])
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--full", action="store_true", help="the task in a full git clone first, each round")
    ap.add_argument("--work", default="/tmp/avfs-lazytaskcpu")
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    rd = _realdata()
    if not (work / "served" / "big.git").exists():
        (work / "served").mkdir(exist_ok=True)
        _build(work / "served", work)
    deps = [Path(_unpack(rd, p, v, work / "deps" / p)) for p, v in DEPS]
    daemon, base = _daemon(work / "served")
    url = f"{base}/big.git"
    os.chdir(work)  # (not the checkout: `python -m avfs_git` would import it first)
    try:
        for i in range(args.pairs):
            if args.full:
                dest = work / "full"
                shutil.rmtree(dest, ignore_errors=True)
                subprocess.run(["git", "clone", "-q", url, str(dest)], check=True)
                wall, cpu, rc = _run_task(dest, deps)
                shutil.rmtree(dest)
                print(json.dumps({"side": "full", "round": i, "task_s": wall, "task_cpu_s": cpu, "rc": rc,
                                  "load": os.getloadavg()[0]}), flush=True)  # fmt: skip
            order = list(enumerate(args.sides))
            for j, src in order[::-1] if i % 2 else order:
                row = _lazy(src, url, work, deps, f"{i}-{j}")
                print(json.dumps({**row, "round": i, "load": os.getloadavg()[0]}), flush=True)
    finally:
        daemon.terminate()
        daemon.wait(10)


if __name__ == "__main__":
    main()
