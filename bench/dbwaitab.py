"""Paired A/B of a workspace's writes in process (``Workspace.write`` of 200 small files a
round, each its own write transaction of the overlay's database): the eighth bad-input
round (h-badinput8) has each write transaction read the caller's lock wait
(``Vault.lock_wait_s``: ``AVFS_LOCK_WAIT``, the served caller's) and make it SQLite's busy
timeout when it changed; this measures what that costs a write against another tree's
code, the sides interleaved::

    python -m bench.dbwaitab --baseline /tmp/h-badinput8/base [--rounds 15]

The baseline tree needs a ``.venv`` (a link to this tree's does: the worker puts its own
tree first on ``PYTHONPATH``). Writes ``bench/results/badinput8-<UTC>.json``.
"""

from __future__ import annotations

import statistics

from .abkit import api_rounds, baseline_result, median_of_ratios

CODE = r"""
import json, sys, time
import avfs_git
from avfs_git.core.vaults.home import Home
from avfs_git.mount.side import MOUNT_SIDE
home = Home(sys.argv[1], mounts=MOUNT_SIDE)
ws = home.vault("v").workspace("main")
n = 0
print("ready", flush=True)
for line in sys.stdin:
    n += 1
    data = b"round %d\n" % n
    t0 = time.process_time()
    for i in range(200):
        ws.write(f"d0/w{i}.txt", data)
    cpu = (time.process_time() - t0) * 1000
    print(json.dumps({"ok": True, "cpu_ms": cpu, "writes": 200, "module": avfs_git.__file__}), flush=True)
"""


def main() -> None:
    args, load_before, answers = api_rounds(CODE, lambda w: w.ask("go", "the writes failed"), 15)
    cpu = {side: [a["cpu_ms"] for a in got] for side, got in answers.items()}
    median = {side: statistics.median(xs) for side, xs in cpu.items()}
    tail = {
        "ratio_this_to_baseline": median_of_ratios(cpu["this"], cpu["baseline"]),
        "writes_a_round": answers["this"][0]["writes"],
        "modules": {side: got[0]["module"] for side, got in answers.items()},
    }
    baseline_result("badinput8", "dbwaitab", args, load_before, median, cpu, tail=tail)


if __name__ == "__main__":
    main()
