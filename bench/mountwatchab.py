"""What unrelated mounts cost an overlay mount's daemon (fuse/stacking.py's watch for a
``umount`` of its overlay by hand): two builds' daemons, each of its own home with one fork
mounted on the overlay backend, both alive at once, so that each round's mounts and
unmounts of a tmpfs elsewhere wake both the same way. Per round and daemon: the CPU time of
all its threads (``/proc/PID/task/*/schedstat``, ns) and its read system calls
(``/proc/PID/io`` ``syscr``) over the mounts, less those over a quiet stretch as long.

    python -m bench.mountwatchab --a /tmp/main-src --b . [--mounts 50] [--rounds 7] [--json]

``--a``/``--b``: a directory holding the ``avfs_git`` package of each build (run as root).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def _cpu_ns(pid: int) -> int:
    total = 0
    for path in glob.glob(f"/proc/{pid}/task/*/schedstat"):
        try:
            with open(path) as fh:
                total += int(fh.read().split()[0])
        except (OSError, ValueError):
            pass
    return total


def _syscr(pid: int) -> int:
    with open(f"/proc/{pid}/io") as fh:
        return next(int(ln.split()[1]) for ln in fh if ln.startswith("syscr:"))


def _avfs(src: str, home: str, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": src, "AVFS_HOME": home, "AVFS_LAYERS": "off"}
    cmd = [sys.executable, "-m", "avfs_git", "--json", *args]
    return subprocess.run(cmd, env=env, cwd="/", check=True, capture_output=True, text=True).stdout


def _start(src: str, top: str, name: str) -> tuple[str, str, int]:
    home, data, mp = (os.path.join(top, f"{name}-{x}") for x in ("home", "data", "mnt"))
    for d in (data, mp):
        os.makedirs(d)
    with open(os.path.join(data, "a.txt"), "w") as fh:
        fh.write("a\n")
    _avfs(src, home, "vault", "create", "v", "--from", data)
    got = json.loads(_avfs(src, home, "--vault", "v", "mount", mp, "--backend", "overlay"))
    return home, mp, int(got["mount"]["pid"])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--a", required=True)
    ap.add_argument("--b", required=True)
    ap.add_argument("--mounts", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    top = tempfile.mkdtemp(prefix="mountwatchab-")
    other = os.path.join(top, "other")
    os.makedirs(other)
    sides = {"a": os.path.abspath(args.a), "b": os.path.abspath(args.b)}
    started = {k: _start(src, top, k) for k, src in sides.items()}
    rows: dict[str, list[tuple[int, int]]] = {k: [] for k in sides}
    try:
        time.sleep(2)  # (the daemons' start-up work done)
        for _ in range(args.rounds):
            for phase in ("quiet", "mounts"):
                before = {k: (_cpu_ns(p), _syscr(p)) for k, (_, _, p) in started.items()}
                t = time.monotonic()
                if phase == "mounts":
                    for _ in range(args.mounts):
                        subprocess.run(["mount", "-t", "tmpfs", "none", other], check=True)
                        subprocess.run(["umount", other], check=True)
                    spent = time.monotonic() - t
                else:
                    time.sleep(spent if rows["a"] else 1.0)
                    spent = time.monotonic() - t
                time.sleep(0.2)
                after = {k: (_cpu_ns(p), _syscr(p)) for k, (_, _, p) in started.items()}
                for k in sides:
                    d = (after[k][0] - before[k][0], after[k][1] - before[k][1])
                    if phase == "quiet":
                        quiet = getattr(main, "_q", {})
                        quiet[k] = d
                        main._q = quiet  # type: ignore[attr-defined]
                    else:
                        q = main._q[k]  # type: ignore[attr-defined]
                        rows[k].append((d[0] - q[0], d[1] - q[1]))
    finally:
        for k, (home, mp, _) in started.items():
            subprocess.run(
                [sys.executable, "-m", "avfs_git", "--vault", "v", "unmount", mp],
                env={**os.environ, "PYTHONPATH": sides[k], "AVFS_HOME": home, "AVFS_LAYERS": "off"},
                cwd="/",
                capture_output=True,
                check=False,
            )
        shutil.rmtree(top, ignore_errors=True)
    out = {
        k: {
            "cpu_ms_median": statistics.median(r[0] for r in v) / 1e6,
            "reads_median": statistics.median(r[1] for r in v),
            "rounds": v,
        }
        for k, v in rows.items()
    }
    out["ratio_cpu_b_over_a"] = out["b"]["cpu_ms_median"] / max(out["a"]["cpu_ms_median"], 1e-9)
    out["load"] = os.getloadavg()
    out["mounts"] = args.mounts
    print(json.dumps(out) if args.json else json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
