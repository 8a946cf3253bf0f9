"""`avfs log` and `show` on a real history, A/B: what the author's date, git's combined
diff of a merge and the packed-refs check cost (the thirty-second round, realdata7).

    python -m bench.realdata7ab --rounds 7 A=/work/h-realdata7 B=/work/h-realdata7-base \
        --fixture PATH/redundant.git

Each side runs ``python -m avfs_git`` (this interpreter) with ``PYTHONPATH`` of its tree,
``AVFS_SERVER=off``, in a home of its own where the fixture was cloned alike; the sides
alternate command by command (A B, B A, ...). CPU is user + system of the process and of
the children it waited for (`git diff-tree --cc` included), from ``wait4``. Written to
``bench/results/realdata7-<time>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _run(tree: str, home: str, args: list[str]) -> tuple[float, float, bytes]:
    env = {**os.environ, "PYTHONPATH": tree, "AVFS_HOME": home, "AVFS_SERVER": "off"}
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "avfs_git", *args],
        env=env,
        cwd=home if os.path.isdir(home) else os.path.dirname(home),  # (-m puts the cwd first on sys.path)
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    out = proc.stdout.read() if proc.stdout else b""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{args} failed in {tree}: {proc.returncode}")
    return usage.ru_utime + usage.ru_stime, time.monotonic() - t0, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("sides", nargs=2, help="NAME=TREE")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--fixture", required=True, help="a git directory with merges (redundant.git)")
    ns = ap.parse_args()
    sides = [tuple(s.split("=", 1)) for s in ns.sides]
    git_dir = ns.fixture
    merges = subprocess.run(
        ["git", "--git-dir", git_dir, "rev-list", "--all", "--merges"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    cc = [
        m
        for m in merges
        if subprocess.run(["git", "--git-dir", git_dir, "show", "--format=", m], capture_output=True).stdout
    ]
    clean = [m for m in merges if m not in cc]
    cases = {
        "log -n 200 (a fork's first parents, the pure reader)": ["--vault", "r", "log", "-n", "200"],
        "log --all -n 200 (libgit2's walk)": ["--vault", "r", "log", "--all", "-n", "200"],
        "show MERGE (git's --cc: a hunk on both sides)": ["--vault", "r", "show", cc[0]],
        "show MERGE (took each file from one side: no diff)": ["--vault", "r", "show", clean[0]],
        "log -p --all -n 50": ["--vault", "r", "log", "-p", "--all", "-n", "50"],
    }
    with tempfile.TemporaryDirectory(prefix="h-realdata7-bench-") as tmp:
        homes = {}
        for name, tree in sides:
            homes[name] = os.path.join(tmp, name)
            _run(tree, homes[name], ["vault", "clone", git_dir, "r"])
        got: dict[str, dict[str, list[tuple[float, float]]]] = {c: {n: [] for n, _ in sides} for c in cases}
        outputs: dict[str, dict[str, int]] = {c: {} for c in cases}
        for r in range(ns.rounds):
            for case, args in cases.items():
                order = sides if r % 2 == 0 else sides[::-1]
                for name, tree in order:
                    cpu, wall, out = _run(tree, homes[name], args)
                    got[case][name].append((cpu, wall))
                    outputs[case][name] = len(out)
    a, b = sides[0][0], sides[1][0]
    result: dict[str, object] = {}
    for case, per in got.items():
        ratios = [x[0] / y[0] for x, y in zip(per[a], per[b], strict=True)]
        row = {
            f"{n}_cpu_s": {
                "min": round(min(c for c, _ in v), 3),
                "median": round(statistics.median(c for c, _ in v), 3),
                "max": round(max(c for c, _ in v), 3),
            }
            for n, v in per.items()
        }
        row |= {f"{n}_wall_s_median": round(statistics.median(w for _, w in v), 3) for n, v in per.items()}
        row[f"{a}_over_{b}_cpu_median"] = round(
            statistics.median(c for c, _ in per[a]) / statistics.median(c for c, _ in per[b]), 3
        )
        row[f"{a}_over_{b}_pairwise_median"] = round(statistics.median(ratios), 3)
        row["stdout_bytes"] = outputs[case]
        result[case] = row
        print(case, json.dumps(row))
    doc = {
        "helper": "realdata7",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "how": f"bench/realdata7ab.py --rounds {ns.rounds}: A/B interleaved (order alternating), AVFS_SERVER=off, "
        f"{sys.executable} -m avfs_git with PYTHONPATH of each tree ({', '.join(f'{n}={t}' for n, t in sides)}), "
        f"a home each with {Path(git_dir).name} cloned; cpu = user+sys of the command and its waited children (wait4)",
        "load": os.getloadavg(),
        "cases": result,
    }
    out_dir = Path(__file__).resolve().parent / "results"
    path = out_dir / f"h-realdata7-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    path.write_text(json.dumps(doc, indent=1) + "\n")
    print(path)


if __name__ == "__main__":
    main()
