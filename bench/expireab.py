"""What the pure-FUSE watcher's expiry of names costs (fuse/entries.py): a fork of N files
mounted with ``--backend fuse``, every file stat'd through the mount (so the kernel holds
all their names and the watcher knows them all), then rounds of: an edit, ``checkpoint
save`` (a move that keeps the view), ``checkpoint restore HEAD~1`` (one that changes it)
and ``undo``, each followed by a stat of every file again. Per move: the command's wall
time (a restore and an undo return once the watcher acknowledged the new view), the
daemon's CPU time (user+sys, from /proc) over the command and a quiet 0.3 s after it, and
the walk's wall time and the daemon's CPU time over it after it (and over the first walk,
which looks every name up). One configuration per run: A/B it by running it on two
builds in turn (the figures are in docs/benchmarks.md).

    python -m bench.expireab [--files 10000] [--rounds 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def _cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _walk(mp: str) -> float:
    t = time.perf_counter()
    for d, dirs, files in os.walk(mp):
        dirs[:] = [x for x in dirs if not (d == mp and x == ".git")]
        for name in files:
            os.lstat(os.path.join(d, name))
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=10000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    root = tempfile.mkdtemp(prefix="expireab-")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AVFS_", "GIT_"))}
    env["AVFS_HOME"] = os.path.join(root, "home")
    avfs = [sys.executable, "-m", "avfs_git"]

    def run(*a: str) -> float:
        t = time.perf_counter()
        subprocess.run([*avfs, "--vault", "v:f", *a], env=env, check=True, capture_output=True)
        return time.perf_counter() - t

    src = os.path.join(root, "src")
    for i in range(args.files):
        d = os.path.join(src, f"d{i % 100:02d}")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, f"f{i}.txt"), "w") as fh:
            fh.write(f"{i}\n")
    mp = os.path.join(root, "m")
    os.mkdir(mp)
    subprocess.run([*avfs, "vault", "create", "v", "--from", src], env=env, check=True, capture_output=True)
    subprocess.run([*avfs, "vault", "fork", "v:main", "f"], env=env, check=True, capture_output=True)
    run("mount", "--backend", "fuse", mp)
    out: dict[str, list[float]] = {}
    try:
        rec = json.loads(
            subprocess.run(
                [*avfs, "--json", "mount", "--list"], env=env, check=True, capture_output=True
            ).stdout
        )
        pid = next(int(m["pid"]) for m in rec["mounts"] if m["mountpoint"] == mp)
        c0 = _cpu(pid)
        out["first_walk_s"] = [_walk(mp)]  # every name looked up once
        out["first_walk_daemon_cpu_s"] = [_cpu(pid) - c0]
        for r in range(args.rounds):
            with open(os.path.join(mp, "d00", "f0.txt"), "a") as fh:
                fh.write(f"round {r}\n")
            for move, cmd in (
                ("checkpoint", ("checkpoint", "save", "-m", f"r{r}")),
                ("restore", ("checkpoint", "restore", "HEAD~1")),
                ("undo", ("undo",)),
            ):
                c0 = _cpu(pid)
                wall = run(*cmd)
                time.sleep(0.3)
                out.setdefault(f"{move}_wall_s", []).append(wall)
                out.setdefault(f"{move}_daemon_cpu_s", []).append(_cpu(pid) - c0)
                c0 = _cpu(pid)
                out.setdefault(f"{move}_walk_s", []).append(_walk(mp))
                out.setdefault(f"{move}_walk_daemon_cpu_s", []).append(_cpu(pid) - c0)
    finally:
        subprocess.run([*avfs, "--vault", "v:f", "unmount", mp], env=env, check=False, capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
    med = {k: round(statistics.median(v), 4) for k, v in out.items()}
    load = os.getloadavg()[0]
    if args.json:
        print(
            json.dumps({"files": args.files, "rounds": args.rounds, "load": load, "median": med, "all": out})
        )
    else:
        print(f"files {args.files}, rounds {args.rounds}, load {load:.1f}")
        for k, v in med.items():
            print(f"  {k:28s} {v}")


if __name__ == "__main__":
    main()
