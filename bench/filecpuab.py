"""Test files' CPU, A/B between worktrees: each side runs the same test files (each file in
one pytest process of its own, ``-p no:xdist``, the side's own ``.venv``), every process
it starts in a cpuacct cgroup of the side's own, interleaved round by round with the order
alternating; the cgroup's usage read once its last process has ended.

    python -m bench.filecpuab --rounds 3 --tag NAME base=/work/x-base new=/work/x tests/test_a.py ...

Printed: per file and side the CPU of each round and the median, and the ratio of medians.
Needs cgroup v1's ``cpuacct`` writable (root). Written to
``bench/results/filecpuab-<tag>-<time>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import time
from pathlib import Path

CGROUPS = Path("/sys/fs/cgroup/cpuacct")


def _run(tree: str, name: str, files: list[str], tag: str) -> dict[str, float]:
    group = CGROUPS / f"{tag}-{name}-{os.getpid()}"
    group.mkdir()
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AVFS_", "PYTEST_"))}
        env["CI"] = "true"
        t0 = time.perf_counter()
        proc = subprocess.run(
            [
                f"{tree}/.venv/bin/python",
                "-m",
                "pytest",
                "-p",
                "no:xdist",
                "-p",
                "no:cacheprovider",
                "-q",
                "-x",
                f"--basetemp=/tmp/{tag}-ab-{name}-{os.getpid()}",
                *files,
            ],
            cwd=tree,
            env=env,
            capture_output=True,
            text=True,
            preexec_fn=lambda: (group / "cgroup.procs").write_text(str(os.getpid())),
        )
        wall = time.perf_counter() - t0
        end = time.monotonic() + 30
        while (group / "cgroup.procs").read_text().strip() and time.monotonic() < end:
            time.sleep(0.05)
        cpu = int((group / "cpuacct.usage").read_text()) / 1e9
        tail = proc.stdout.strip().splitlines()[-1:] if proc.stdout.strip() else [proc.stderr[-300:]]
        return {"cpu_s": round(cpu, 2), "wall_s": round(wall, 1), "rc": proc.returncode, "tail": tail[0]}
    finally:
        for _ in range(100):
            try:
                group.rmdir()
                break
            except OSError:
                time.sleep(0.1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tag", default="filecpuab")
    ap.add_argument("args", nargs="+", help="NAME=WORKTREE ... then test files")
    a = ap.parse_args()
    sides = dict(x.split("=", 1) for x in a.args if "=" in x)
    files = [x for x in a.args if "=" not in x]
    got: dict[str, dict[str, list[dict[str, float]]]] = {f: {s: [] for s in sides} for f in files}
    loads = []
    for r in range(a.rounds):
        for f in files:
            names = list(sides) if r % 2 == 0 else list(reversed(sides))
            for s in names:
                loads.append(os.getloadavg()[0])
                res = _run(sides[s], s, [f], a.tag)
                got[f][s].append(res)
                print(f"round {r} {f} {s}: {res}", flush=True)
    summary = {}
    first = next(iter(sides))
    for f in files:
        med = {s: statistics.median(x["cpu_s"] for x in got[f][s]) for s in sides}
        summary[f] = {"median_cpu_s": med, "ratio": {s: round(med[s] / med[first], 3) for s in sides}}
        print(f, summary[f], flush=True)
    out = {
        "sides": sides,
        "rounds": a.rounds,
        "load_1min": {"min": min(loads), "median": statistics.median(loads), "max": max(loads)},
        "runs": got,
        "summary": summary,
    }
    stamp = time.strftime("%Y%m%dT%H%MZ", time.gmtime())
    path = Path(__file__).parent / "results" / f"filecpuab-{a.tag}-{stamp}.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(path)


if __name__ == "__main__":
    main()
