"""A/B of realproj4's fix (readers follow the view: ``HandleTable._readers_follow``): on a
pure-FUSE mount of 200 files with 20 of them held open by readers, the fork restored back
and forth between two checkpoints that differ in those 20 files (each restore re-points
every reader) and in 20 others; the readers read their file after each restore. Per
restore: wall time of the in-process ``checkpoint.restore`` (it returns once the mount's
watcher took the new view) and the mount daemon's CPU (``/proc/PID/stat``). This branch
against a baseline tree of main (``git archive``), processes alternated, medians.

usage: python bench/realproj4ab.py BASELINE_DIR OUT.json [ROUNDS]
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, os, subprocess, sys, tempfile, time
import avfs_git
from avfs_git.core.operations import checkpoint
os.environ["AVFS_LAYERS"] = "off"
d = tempfile.mkdtemp(prefix="ab-", dir="/tmp/rp4")
home_dir = os.path.join(d, "home")
os.environ["AVFS_HOME"] = home_dir
home = avfs_git.open_home(home_dir)
v = home.create_vault("v")
ws = v.workspace("main")
for i in range(200):
    ws.write(f"d{i % 10}/f{i}.txt", (f"file {i} " * 200).encode())
checkpoint.save(v, "main", name="c1")
for i in range(40):
    ws.write(f"d{i % 10}/f{i}.txt", (f"changed {i} " * 200).encode())
checkpoint.save(v, "main", name="c2")
mp = os.path.join(d, "mnt")
os.mkdir(mp)
subprocess.run([sys.executable, "-m", "avfs_git", "mount", "--backend", "fuse", "v:main", mp], check=True)
try:
    pid = None
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                cmd = open(f"/proc/{p}/cmdline", "rb").read()
            except OSError:
                continue
            if mp.encode() in cmd and b"avfs_git" in cmd and int(p) != os.getpid():
                pid = int(p)
    def cpu():
        f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    readers = [open(os.path.join(mp, f"d{i % 10}/f{i}.txt"), "rb") for i in range(20)]
    for r in readers:
        r.read()
    wall, dcpu = [], []
    for k in range(int(sys.argv[1])):
        c0, t0 = cpu(), time.perf_counter()
        checkpoint.restore(v, "main", "c1" if k % 2 == 0 else "c2")
        wall.append(time.perf_counter() - t0)
        for r in readers:
            r.seek(0)
            r.read()
        dcpu.append(cpu() - c0)
    for r in readers:
        r.close()
finally:
    subprocess.run([sys.executable, "-m", "avfs_git", "unmount", "--lazy", "v:main"])
print(json.dumps({"wall": wall, "daemon_cpu": dcpu}))
"""


def main() -> None:
    base, out = sys.argv[1], sys.argv[2]
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 6
    here = str(Path(__file__).resolve().parent.parent)
    sides = {"this": here, "baseline": base}
    res: dict[str, dict[str, list[float]]] = {k: {"wall": [], "daemon_cpu": []} for k in sides}
    loads = [os.getloadavg()[0]]
    for rnd in range(rounds):
        for name in list(sides) if rnd % 2 == 0 else list(sides)[::-1]:
            env = {**os.environ, "PYTHONPATH": sides[name]}
            p = subprocess.run(
                [f"{here}/.venv/bin/python", "-c", CHILD, "30"],
                cwd="/tmp",
                capture_output=True,
                text=True,
                env=env,
            )
            if p.returncode:
                print(p.stderr[-3000:])
                sys.exit(1)
            d = json.loads(p.stdout.strip().splitlines()[-1])
            for op in res[name]:
                res[name][op] += d[op][4:]  # (the first restores warm the daemon's caches)
    loads.append(os.getloadavg()[0])
    med = {k: {op: round(statistics.median(v[op]) * 1000, 2) for op in v} for k, v in res.items()}
    for k, v in res.items():  # (CPU in clock ticks of 10 ms: the mean says more than the median)
        med[k]["daemon_cpu_mean"] = round(statistics.mean(v["daemon_cpu"]) * 1000, 2)
    doc = {
        "what": __doc__,
        "load_before_after": loads,
        "script": Path(__file__).read_text(),
        "median_ms": med,
        "raw_s": res,
    }
    Path(out).write_text(json.dumps(doc, indent=1) + "\n")
    print(json.dumps(med), loads)


if __name__ == "__main__":
    main()
