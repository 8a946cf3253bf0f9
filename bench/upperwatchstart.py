"""An overlay mount's watch of its upper layer, started over 2,000 directories and then
asked what changed after each of 200 file writes (what git's fsmonitor hook asks): A/B of
two checkouts of avfs, interleaved, CPU of the process. ``python bench/upperwatchstart.py
OUT.json ROOT_A ROOT_B``."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys

CHILD = r"""
import os, sys, tempfile, time
sys.path.insert(0, sys.argv[1])
from avfs_git.core.workspace.upperwatch import UpperWatch
with tempfile.TemporaryDirectory(prefix="h-attack23-bench-") as d:
    for i in range(2000):
        os.makedirs(os.path.join(d, f"a{i % 40}", f"b{i}"))
    import inotify_simple  # (imported where each version takes it: not counted)
    t0 = time.process_time()
    w = UpperWatch(d, lambda p: None, lambda: [], lambda: "base:0")
    w.on_events = lambda batch: None
    w.start()
    t1 = time.process_time()
    seq, _ = w.changed_since(None)
    t2 = time.process_time()
    for i in range(200):
        with open(os.path.join(d, f"a{i % 40}", f"b{i}", "f"), "w") as fh:
            fh.write("x")
        seq, paths = w.changed_since(seq)
        assert paths is not None
    t3 = time.process_time()
    w.close()
    print(t1 - t0, (t3 - t2) / 200)
"""


def main() -> None:
    out, roots = sys.argv[1], sys.argv[2:]
    rounds = 7
    start: dict[str, list[float]] = {r: [] for r in roots}
    ask: dict[str, list[float]] = {r: [] for r in roots}
    for _ in range(rounds):
        for r in roots:  # interleaved
            got = subprocess.run(
                [sys.executable, "-c", CHILD, r], capture_output=True, text=True, check=False
            )
            assert got.returncode == 0, got.stderr
            s, a = map(float, got.stdout.split())
            start[r].append(s)
            ask[r].append(a)
    med = {r: (statistics.median(start[r]), statistics.median(ask[r])) for r in roots}
    doc = {
        "what": "UpperWatch made and started over 2,000 directories, and changed_since after a write (CPU s, medians)",
        "load": os.getloadavg(),
        "start_s": start,
        "ask_s": ask,
        "median_start_s": {r: m[0] for r, m in med.items()},
        "median_ask_s": {r: m[1] for r, m in med.items()},
        "ratio_b_over_a": [med[roots[1]][0] / med[roots[0]][0], med[roots[1]][1] / med[roots[0]][1]]
        if len(roots) > 1
        else None,
    }
    with open(out, "w") as fh:
        json.dump(doc, fh, indent=1)
    print(
        json.dumps(
            {k: doc[k] for k in ("load", "median_start_s", "median_ask_s", "ratio_b_over_a")}, indent=1
        )
    )


if __name__ == "__main__":
    main()
