"""Tests' CPU, A/B between worktrees where the two sides run different test ids (a test
moved or folded into another file): each side's ids in one pytest process of its own
(``-p no:xdist``, the side's own ``.venv``), every process it starts in a cpuacct cgroup
of the side's own (bench/filecpuab.py's ``_run``), interleaved round by round with the
order alternating; the machine's speed (tests/cputime.py ``reference_ms``) read before
each run.

    python -m bench.nodecpuab --rounds 2 --tag NAME \\
        --side base=/work/x-base tests/test_a.py::t tests/test_b.py::t \\
        --side new=/work/x tests/test_a.py::t

Printed: each run's CPU, the medians and the ratio of medians (the first side's the
denominator). Needs cgroup v1's ``cpuacct`` writable (root). Written to
``bench/results/nodecpuab-<tag>-<time>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

from bench.filecpuab import _run
from tests.cputime import reference_ms


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--tag", default="nodecpuab")
    ap.add_argument("--side", nargs="+", action="append", required=True, help="NAME=WORKTREE then test ids")
    a = ap.parse_args()
    sides = {s[0].split("=", 1)[0]: (s[0].split("=", 1)[1], s[1:]) for s in a.side}
    got: dict[str, list[dict[str, object]]] = {s: [] for s in sides}
    for r in range(a.rounds):
        names = list(sides) if r % 2 == 0 else list(reversed(sides))
        for s in names:
            tree, ids = sides[s]
            load, ref = os.getloadavg()[0], reference_ms()
            res: dict[str, object] = {**_run(tree, s, ids, a.tag), "load_1min": load, "reference_ms": ref}
            got[s].append(res)
            print(f"round {r} {s}: {res}", flush=True)
    med = {s: statistics.median(float(str(x["cpu_s"])) for x in got[s]) for s in sides}
    first = next(iter(sides))
    summary = {"median_cpu_s": med, "ratio": {s: round(med[s] / med[first], 3) for s in sides}}
    print(summary, flush=True)
    out = {
        "sides": {s: {"tree": t, "ids": i} for s, (t, i) in sides.items()},
        "runs": got,
        "summary": summary,
    }
    stamp = time.strftime("%Y%m%dT%H%MZ", time.gmtime())
    path = Path(__file__).parent / "results" / f"nodecpuab-{a.tag}-{stamp}.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(path)


if __name__ == "__main__":
    main()
