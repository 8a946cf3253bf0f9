"""The demand fetches of the cold lazy task, replayed without the task (docs/scale.md,
"Where the lazy task's time goes"): the files whose reads missed in a
``bench/lazytrace.py`` run (its first run's list, in order) read through the API in a
fresh lazy vault of the same served monorepo (:func:`bench.scalecases._build`), no mount,
no test runner: what the fetch path itself costs, the kept connection
(``keep_connection``, docs/lazy.md "How a read fetches") against one ``git fetch`` per
miss, interleaved, medians.

Run: ``.venv/bin/python -m bench.lazyreplay bench/results/lazytrace-<time>.json [--repeats N]
[--served DIR]``;
the result goes to ``bench/results/lazyreplay-<time>.json`` and is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from .remotecases import _daemon
from .scalecases import ROOT, _build


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("trace", help="a bench/lazytrace.py result")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--served", help="a directory holding big.git as _build made it (else built here)")
    args = ap.parse_args()
    # the homes are the bench's own: no layers volume, no warm server, no progress
    os.environ.update(AVFS_LAYERS="off", AVFS_SERVER="off", AVFS_PROGRESS="never")
    misses = [r["file"] for r in json.loads(Path(args.trace).read_text())["runs"][0]["list"]]
    from avfs_git import open_home

    times: dict[str, list[float]] = {"kept": [], "git_fetch": []}
    blobs: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="avfs-bench-replay-") as tmp:
        t = Path(tmp)
        served = Path(args.served) if args.served else t / "served"
        if not args.served:
            served.mkdir()
            _build(served, t)
        daemon, base = _daemon(served)
        try:
            for i in range(args.repeats):
                for label, keep in (("kept", True), ("git_fetch", False)):
                    home_dir = t / f"home-{i}-{label}"
                    home_dir.mkdir()
                    (home_dir / "config.json").write_text(json.dumps({"keep_connection": keep}))
                    home = open_home(str(home_dir))
                    v = home.clone_vault(f"{base}/big.git", "big", lazy=True)
                    ws = v.workspace("main")
                    before = v.store.promisor.fetched
                    start = time.perf_counter()
                    for path in misses:
                        ws.read(path)
                    times[label].append(time.perf_counter() - start)
                    blobs[label] = v.store.promisor.fetched - before
                    shutil.rmtree(home_dir, ignore_errors=True)
        finally:
            daemon.terminate()
            daemon.wait(10)
    med = {k: statistics.median(v) for k, v in times.items()}
    result = {
        "case": "the cold lazy task's demand misses replayed through the API (bench/lazyreplay.py)",
        "trace": os.path.basename(args.trace),
        "misses": len(misses),
        "blobs_fetched": blobs,
        "repeats": args.repeats,
        "load_average": os.getloadavg(),
        "median_s": med,
        "kept_vs_git_fetch": med["kept"] / med["git_fetch"],
        "runs": times,
    }
    out = ROOT / "bench" / "results" / time.strftime("lazyreplay-%Y%m%dT%H%M%SZ.json", time.gmtime())
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
