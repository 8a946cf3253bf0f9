"""A first call's sandbox set up ahead (proxy/ahead.py), let go: the time from the call's
byte to the command's end, this tree against another avfs source tree, interleaved.

Each round, for each side in turn (the order alternating), a worker of that tree's venv
sets a sandbox up ahead for ``true`` on a scratch directory (the fork's stand-in: the
sandbox is the one ``confine.argv`` makes for it, Landlock program included), waits
``--settle`` seconds so that bubblewrap's set-up is over (as it is when the call's record
of the fork takes longer than it), then times :meth:`Blocked.start` to the command's end
(the wait for bubblewrap) on the wall clock; the CPU of the sandbox's processes (all of
them, the set-up's included: reaped children) is read with it.

Run: ``.venv/bin/python -m bench.aheadgoab --baseline SRC [--rounds N] [--name NAME]``; the
result goes to ``bench/results/<name>-ahead-go-ab-<time>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

WORKER = r"""
import json, os, resource, sys, tempfile, time
from avfs_git.proxy import ahead, confine
settle = float(sys.argv[1])
with tempfile.TemporaryDirectory() as d:
    planned = ahead.Planned(
        sandbox=confine.Sandbox(source=d, path="/avfs/v", cwd="/avfs/v", network="none"),
        argv=("true",),
        env=(("PATH", "/usr/bin:/bin"),),
    )
    b = ahead.set_up(planned)
    assert b is not None
    b.spawned.wait()
    time.sleep(settle)
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    b.start(list(planned.argv), "/avfs/v", dict(planned.env))
    code = b.proc.wait()
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    b.discard()
    for p in (b.proc.stdout, b.proc.stderr):
        p.close()
    os.close(b.status_r)
    print(json.dumps({"go_wall": wall, "sandbox_cpu": r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime, "code": code}))
"""


def _one(tree: str, settle: float) -> dict[str, float]:
    py = str(Path(tree) / ".venv" / "bin" / "python")
    env = {**os.environ, "PYTHONPATH": tree}
    out = subprocess.run(
        [py, "-c", WORKER, str(settle)], env=env, cwd="/", check=True, capture_output=True, text=True
    )
    got: dict[str, float] = json.loads(out.stdout)
    if got["code"] != 0:
        raise RuntimeError(f"the command ended {got['code']}")
    return got


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline", required=True, help="another avfs source tree, timed in the same run")
    ap.add_argument("--rounds", type=int, default=21)
    ap.add_argument("--settle", type=float, default=1.0, help="seconds between the set-up and the byte")
    ap.add_argument("--name", default="")
    args = ap.parse_args()
    trees = {"this": str(ROOT), "baseline": str(Path(args.baseline).resolve())}
    rounds: dict[str, list[dict[str, float]]] = {side: [] for side in trees}
    load_before = os.getloadavg()[0]
    for i in range(args.rounds):
        for side in list(trees) if i % 2 == 0 else list(trees)[::-1]:
            rounds[side].append(_one(trees[side], args.settle))
    median = {
        side: {k: statistics.median(r[k] for r in rs) for k in ("go_wall", "sandbox_cpu")}
        for side, rs in rounds.items()
    }
    pairs = [a["go_wall"] / b["go_wall"] for a, b in zip(rounds["this"], rounds["baseline"], strict=True)]
    result = {
        "case": "a first call's sandbox set up ahead: from the call's byte to the command's end",
        "baseline": args.baseline,
        "rounds": args.rounds,
        "settle_s": args.settle,
        "load_average_before_after": [load_before, os.getloadavg()[0]],
        "median": median,
        "pairs_median_this_over_baseline": statistics.median(pairs),
        "per_round": rounds,
    }
    prefix = f"{args.name}-" if args.name else ""
    out = (
        ROOT / "bench" / "results" / time.strftime(f"{prefix}ahead-go-ab-%Y%m%dT%H%M%SZ.json", time.gmtime())
    )
    out.write_text(json.dumps(result, indent=2) + "\n")
    json.dump(
        {k: result[k] for k in ("median", "pairs_median_this_over_baseline", "load_average_before_after")},
        sys.stdout,
        indent=2,
    )
    print()


if __name__ == "__main__":
    main()
