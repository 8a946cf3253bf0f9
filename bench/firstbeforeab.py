"""The Python API's first ``exec_in`` on a fork that is not mounted, stage by stage: the
wall and CPU time of the call's record of the fork (``placement.before``, where it asks the
daemon it has just started) and of the whole call, this tree against another avfs source
tree in the same run, interleaved (docs/benchmarks.md, "The first `proxy exec`: after the
`R` the call waits, its own CPU is ~6 ms").

One worker process per tree (its own home, a 50-file fork), each kept between rounds; a
round asks each worker, the side going first alternating, for one timed ``exec_in(ws,
["true"])``, unmounted after, untimed. ``placement.before`` is timed by a wrapper the worker
puts around it (wall, and the CPU of the calling thread).

Run: ``.venv/bin/python -m bench.firstbeforeab --baseline SRC [--rounds N]``; the result
goes to ``bench/results/first-before-ab-<time>.json`` and its medians are printed.
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
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

WORKER = r"""
import json, sys, time
import avfs_git
from avfs_git.ops import mounts
from avfs_git.proxy import placement

home = avfs_git.open_home(sys.argv[1])
stage = {}
inner = placement.before

def before(*args, **kw):
    c0, t0 = time.thread_time(), time.perf_counter()
    try:
        return inner(*args, **kw)
    finally:
        stage["wall"], stage["cpu"] = time.perf_counter() - t0, time.thread_time() - c0

placement.before = before
print("ready", flush=True)
for line in sys.stdin:
    v = home.vault("v")
    ws = v.workspace("main")
    t0 = time.perf_counter()
    res = avfs_git.exec_in(ws, ["true"])
    wall = time.perf_counter() - t0
    ok = res.success and res.mount is not None and not res.mount.reused
    mounts.unmount(home, v, "main")
    print(json.dumps({"wall": wall, "before_wall": stage["wall"], "before_cpu": stage["cpu"], "ok": ok}), flush=True)
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline", required=True, help="another avfs source tree, timed in the same run")
    ap.add_argument("--rounds", type=int, default=11)
    args = ap.parse_args()
    trees = {"this": str(ROOT), "baseline": str(Path(args.baseline).resolve())}
    rounds: dict[str, list[dict[str, Any]]] = {side: [] for side in trees}
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="avfs-bench-firstapi-") as tmp:
        workers = {}
        for side, tree in trees.items():
            home = Path(tmp) / f"home-{side}"
            env = {**os.environ, "PYTHONPATH": tree, "AVFS_HOME": str(home), "AVFS_PROGRESS": "never"}
            subprocess.run(
                [str(Path(tree) / ".venv/bin/python"), "-m", "avfs_git", "vault", "create", "v", "--from",
                 _seed(Path(tmp) / f"src-{side}")],
                env=env, check=True, capture_output=True, cwd=tmp,
            )  # fmt: skip
            workers[side] = subprocess.Popen(
                [str(Path(tree) / ".venv/bin/python"), "-c", WORKER, str(home)],
                env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=tmp,
            )  # fmt: skip
            assert workers[side].stdout is not None and workers[side].stdout.readline().strip() == "ready"
        try:
            for side in trees:  # (warm-up, untimed)
                _ask(workers[side], "exec")
            for i in range(args.rounds):
                for side in list(trees) if i % 2 == 0 else list(trees)[::-1]:
                    rounds[side].append(_ask(workers[side], "exec"))
        finally:
            from avfs_git.core.vaults import layers

            for w in workers.values():
                assert w.stdin is not None
                w.stdin.close()
                w.wait()
            for side in trees:
                layers.unmount(str(Path(tmp) / f"home-{side}"))  # (its image's file system)
    median = {
        s: {k: statistics.median(r[k] for r in rs) * 1000 for k in ("wall", "before_wall", "before_cpu")}
        for s, rs in rounds.items()
    }
    result = {
        "case": "exec_in's first call on a fork not mounted, in process: the whole call and placement.before (ms)",
        "baseline": args.baseline,
        "rounds": args.rounds,
        "load_average_before_after": [load_before, os.getloadavg()[0]],
        "median": median,
        "per_round": rounds,
    }
    out = ROOT / "bench" / "results" / time.strftime("first-before-ab-%Y%m%dT%H%M%SZ.json", time.gmtime())
    out.write_text(json.dumps(result, indent=2) + "\n")
    json.dump({"median": median, "load": result["load_average_before_after"]}, sys.stdout, indent=2)
    print()


def _seed(src: Path) -> str:
    for i in range(50):
        (src / f"d{i % 5}").mkdir(parents=True, exist_ok=True)
        (src / f"d{i % 5}" / f"f{i}.txt").write_text(f"file {i}\n" * 20)
    return str(src)


def _ask(worker: subprocess.Popen[str], what: str) -> dict[str, Any]:
    assert worker.stdin is not None and worker.stdout is not None
    worker.stdin.write(what + "\n")
    worker.stdin.flush()
    got: dict[str, Any] = json.loads(worker.stdout.readline())
    if not got["ok"]:
        raise RuntimeError(f"{what}: not a first call")
    return got


if __name__ == "__main__":
    main()
