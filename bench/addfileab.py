"""What storing a big file costs the pack writer (core/store/packwriter.py ``add_file``): its
CPU (``time.process_time``) for a file of ``--mib`` MiB (text, a real project's docs repeated)
that the pack does not hold (``new``: a checkpoint's changed file) and for the same file a
second time in the same pack (``dup``: two equal files in one capture), in two builds.

A/B: ``this`` tree against ``--baseline SRC`` (each first on ``sys.path`` through
``PYTHONPATH``), each round a process of each, in turn (:func:`.abkit.order`), after an
untimed round; medians and the per-round ratios this/baseline are printed, and the rounds
written to ``bench/results/raced1-<UTC stamp>.json``::

    python -m bench.addfileab --baseline /tmp/main-tree [--mib 64] [--rounds 9]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from .abkit import (
    baseline_args,
    median_of_ratios,
    print_loads,
    scratch,
    stamped,
    this_and_baseline,
    write_json,
)
from .abkit import load as load_now

INNER = r"""
import json, os, sys, time
from avfs_git.core.store.packwriter import PackWriter
git_dir, path = sys.argv[1], sys.argv[2]
os.makedirs(os.path.join(git_dir, "objects", "pack"), exist_ok=True)
out = {}
pw = PackWriter(git_dir)
c0 = time.process_time()
first = pw.add_file(path)
c1 = time.process_time()
again = pw.add_file(path)
c2 = time.process_time()
assert first == again
pw.abort()
out = {"new": c1 - c0, "dup": c2 - c1, "oid": first}
print(json.dumps(out))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    baseline_args(ap, 9)
    ap.add_argument("--mib", type=int, default=64)
    args = ap.parse_args()
    trees = this_and_baseline(args.baseline)
    names = list(trees)
    got: dict[str, dict[str, list[float]]] = {n: {"new": [], "dup": []} for n in names}
    loads: list[float] = []
    with scratch("addfileab-") as tmp:
        text = (Path(trees["this"]) / "docs" / "fuse.md").read_bytes()
        big = tmp / "big.bin"
        size = args.mib << 20
        big.write_bytes((text * (size // len(text) + 1))[:size])
        oids = set()
        for i in range(args.rounds + 1):
            loads.append(load_now())
            for n in names[i % 2 :] + names[: i % 2]:
                env = dict(os.environ, PYTHONPATH=trees[n])
                p = subprocess.run(
                    [sys.executable, "-c", INNER, str(tmp / f"g-{n}-{i}"), str(big)],
                    env=env,
                    capture_output=True,
                    text=True,
                    check=True,
                    cwd=str(tmp),
                )
                doc = json.loads(p.stdout)
                oids.add(doc["oid"])
                if i:
                    got[n]["new"].append(doc["new"])
                    got[n]["dup"].append(doc["dup"])
        loads.append(load_now())
    assert len(oids) == 1, oids
    summary = {
        case: {
            "median_s": {n: statistics.median(got[n][case]) for n in names},
            "ratio_this_over_baseline": median_of_ratios(got["this"][case], got["baseline"][case]),
        }
        for case in ("new", "dup")
    }
    doc = {"mib": args.mib, "rounds": args.rounds, "cpu_s": got, "summary": summary, "load": loads}
    write_json(stamped("raced1"), doc, announce=True)
    print(json.dumps(summary, indent=2))
    print_loads(loads)


if __name__ == "__main__":
    main()
