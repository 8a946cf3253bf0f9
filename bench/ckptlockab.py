"""Paired A/B of checkpoints in process (a round: 20 times, 10 small files written and
``checkpoint.save``): the ninth bad-input round (h-badinput9) has a checkpoint take the op
log's write lock (``BEGIN IMMEDIATE``) before its branch moves and commit its record in
that transaction (``OpLog.held``), where it wrote the record as one statement after the
move; this measures what that costs a checkpoint against another tree's code, the sides
interleaved::

    python -m bench.ckptlockab --baseline /tmp/h-badinput9/base [--rounds 15]

The baseline tree needs a ``.venv`` (a link to this tree's does: the worker puts its own
tree first on ``PYTHONPATH``). Writes ``bench/results/badinput9-<UTC>.json``.
"""

from __future__ import annotations

import statistics

from .abkit import api_rounds, baseline_result, median_of_ratios

CODE = r"""
import json, sys, time
import avfs_git
from avfs_git.core.operations.checkpoint import save
from avfs_git.core.vaults.home import Home
from avfs_git.mount.side import MOUNT_SIDE
home = Home(sys.argv[1], mounts=MOUNT_SIDE)
vault = home.vault("v")
ws = vault.workspace("main")
n = 0
print("ready", flush=True)
for line in sys.stdin:
    n += 1
    t0 = time.process_time()
    for k in range(20):
        data = b"round %d checkpoint %d\n" % (n, k)
        for i in range(10):
            ws.write(f"d0/c{i}.txt", data)
        save(vault, "main", None, "bench")
    cpu = (time.process_time() - t0) * 1000
    print(json.dumps({"ok": True, "cpu_ms": cpu, "checkpoints": 20, "module": avfs_git.__file__}), flush=True)
"""


def main() -> None:
    args, load_before, answers = api_rounds(CODE, lambda w: w.ask("go", "the checkpoints failed"), 15)
    cpu = {side: [a["cpu_ms"] for a in got] for side, got in answers.items()}
    median = {side: statistics.median(xs) for side, xs in cpu.items()}
    tail = {
        "ratio_this_to_baseline": median_of_ratios(cpu["this"], cpu["baseline"]),
        "checkpoints_a_round": answers["this"][0]["checkpoints"],
        "modules": {side: got[0]["module"] for side, got in answers.items()},
    }
    baseline_result("badinput9", "ckptlockab", args, load_before, median, cpu, tail=tail)


if __name__ == "__main__":
    main()
