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

``--trips``: each cold task's FUSE requests to the mount's lower layer as the kernel saw them
(``perf record`` of the ``fuse:fuse_request_send``/``fuse_request_end`` tracepoints, filtered
to the lower layer's connection): per opcode the count and the summed time from send to
answer, the time the task spent waiting on the daemon however loaded the machine.

Run: ``AVFS_TEST_CACHE=... .venv/bin/python -m bench.lazytaskcpu [--pairs N] [--full]
[--trips] [--sides SRC...]`` (default: this tree alone); one JSON line per run on stdout, the served
repository and the dependencies built once under ``--work`` (default
``/tmp/avfs-lazytaskcpu``) and kept for the next run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import signal
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


def _lower_conn(mp: Path) -> int:
    """The FUSE connection of the overlay mounted at ``mp``'s lower layer, as the
    tracepoints name it (the kernel's ``dev_t`` of the lower's super block)."""
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            if line.split()[4] == str(mp) and (m := re.search(r"lowerdir=([^,\s]+)", line)):
                dev = os.stat(m.group(1)).st_dev
                return (os.major(dev) << 20) | os.minor(dev)
    raise RuntimeError(f"no overlay with a lower layer at {mp}")


class _Trips:
    """``perf record`` of one connection's FUSE requests while it lives (:meth:`summary`)."""

    def __init__(self, conn: int, out: Path) -> None:
        self.out = out
        ev = [
            a
            for e in ("send", "end")
            for a in ("-e", f"fuse:fuse_request_{e}", "--filter", f"connection == {conn}")
        ]
        self.proc = subprocess.Popen(["perf", "record", "-q", "-a", "-o", str(out), *ev],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        time.sleep(1.0)  # (perf's tracepoints are armed by then)

    def summary(self) -> dict[str, dict[str, float]]:
        """Per opcode: the count (``n``), the summed send-to-answer time (``s``, seconds)
        and how many were answered each error (``err-61``: ``ENODATA``)."""
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(60)
        text = subprocess.run(["perf", "script", "-i", str(self.out), "-F", "time,event,trace"],
                              capture_output=True, text=True).stdout  # fmt: skip
        sent: dict[str, tuple[float, str]] = {}
        out: dict[str, dict[str, float]] = {}
        for line in text.splitlines():
            if m := re.match(
                r"\s*([\d.]+):\s+fuse:fuse_request_send: .* req (\d+) opcode \d+ \((\w+)\)", line
            ):
                sent[m.group(2)] = (float(m.group(1)), m.group(3).removeprefix("FUSE_"))
            elif (
                m := re.match(r"\s*([\d.]+):\s+fuse:fuse_request_end: .* req (\d+) .*error (-?\d+)", line)
            ) and (m.group(2) in sent):
                t0, op = sent.pop(m.group(2))
                row = out.setdefault(op, {"n": 0, "s": 0.0})
                row["n"] += 1
                row["s"] += float(m.group(1)) - t0
                if m.group(3) != "0":
                    row[f"err{m.group(3)}"] = row.get(f"err{m.group(3)}", 0) + 1
        self.out.unlink(missing_ok=True)
        return out


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


def _lazy(src: str, url: str, work: Path, deps: list[Path], tag: str, trips: bool = False) -> dict[str, Any]:
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
        rec = _Trips(_lower_conn(mp), work / f"trips-{tag}.data") if trips else None
        d0 = _proc_cpu(pid)
        wall, cpu, rc = _run_task(mp, deps)
        d1 = _proc_cpu(pid)
        fuse_trips = rec.summary() if rec is not None else None
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
            "index_in_task": indexed, "libgit2_in_task": libgit2, "warm_task_s": warm,
            **({"trips": fuse_trips} if fuse_trips is not None else {})}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sides", nargs="+", default=[str(ROOT)])
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--full", action="store_true", help="the task in a full git clone first, each round")
    ap.add_argument("--work", default="/tmp/avfs-lazytaskcpu")
    ap.add_argument(
        "--trips", action="store_true", help="each cold task's FUSE requests to the lower layer (perf)"
    )
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
                row = _lazy(src, url, work, deps, f"{i}-{j}", args.trips)
                print(json.dumps({**row, "round": i, "load": os.getloadavg()[0]}), flush=True)
    finally:
        daemon.terminate()
        daemon.wait(10)


if __name__ == "__main__":
    main()
