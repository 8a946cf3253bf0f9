"""An overlay mount's journal given up (its upper layer past its budget of watches), then
made to fit again: how long an answer (what git's fsmonitor hook asks) waits while the
retry walks the layer. A/B of two checkouts of avfs, interleaved; the layer 200 directories
of 400 files (80,000 entries), three retries a run. ``python bench/retrywalkab.py OUT.json
ROOT_A ROOT_B [RUNS]``."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys

CHILD = r"""
import json, os, sys, tempfile, threading, time
sys.path.insert(0, sys.argv[1])
from avfs_git.core.workspace import upperwatch
upperwatch.RETRY_S = (0.05, 0.1)
out = []
with tempfile.TemporaryDirectory(prefix="h-tidy2-bench-") as d:
    for i in range(200):
        os.mkdir(os.path.join(d, f"d{i}"))
        for j in range(400):
            open(os.path.join(d, f"d{i}", f"f{j}"), "wb").close()
    w = upperwatch.UpperWatch(d, lambda p: None, lambda: [], lambda: "base:0", budget=201)
    w.start()
    token = w.answer("avfs-ovl:x:base:0:0")[0]
    for _ in range(3):
        os.mkdir(os.path.join(d, "past"))
        while w._ino is not None:
            w.answer(token); time.sleep(0.01)
        waits, stop = [], threading.Event()
        def probe():
            while not stop.is_set():
                t = time.monotonic(); w.answer(token); waits.append(time.monotonic() - t)
                time.sleep(0.002)
        th = threading.Thread(target=probe); th.start()
        t0 = time.monotonic()
        os.rmdir(os.path.join(d, "past"))
        while w._ino is None or len(w._wds) < 201:  # (root and its 200: the walk done, either version)
            time.sleep(0.001)
        walk = time.monotonic() - t0
        time.sleep(0.05); stop.set(); th.join()
        out.append({"walk_ms": walk * 1000, "answer_max_ms": max(waits) * 1000, "answers": len(waits)})
    w.close()
print(json.dumps(out))
"""


def main() -> None:
    out_path, roots = sys.argv[1], sys.argv[2:4]
    runs = int(sys.argv[4]) if len(sys.argv) > 4 else 5
    got: dict[str, list[dict[str, float]]] = {r: [] for r in roots}
    for _ in range(runs):
        for root in roots:  # interleaved
            r = subprocess.run(
                [sys.executable, "-c", CHILD, root], capture_output=True, text=True, check=True
            )
            got[root] += json.loads(r.stdout)
    summary = {
        root: {
            "walk_ms_median": statistics.median(x["walk_ms"] for x in rows),
            "answer_max_ms_median": statistics.median(x["answer_max_ms"] for x in rows),
            "retries": len(rows),
        }
        for root, rows in got.items()
    }
    a, b = (summary[r]["answer_max_ms_median"] for r in roots)
    doc = {
        "what": __doc__,
        "load": os.getloadavg(),
        "roots": roots,
        "summary": summary,
        "answer_max_ratio_b_over_a": b / a,
        "rows": got,
    }
    with open(out_path, "w") as fh:
        json.dump(doc, fh, indent=1)
    print(json.dumps({"summary": summary, "ratio": b / a, "load": doc["load"]}, indent=1))


if __name__ == "__main__":
    main()
