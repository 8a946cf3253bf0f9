"""Paired A/B of a workspace's reads by path in process (``Workspace.stat`` and ``listdir``
of every file and directory of :func:`.abkit.seed_tree`'s 50 files, three of them changed
in the overlay, 100 times a round): the seventh bad-input round (h-badinput7) made those
reads take names that are not UTF-8 (``wsview.norm_read``) and ask the overlay's database
only text (``overlaydb.sql_text`` on each path of a lookup's chain); this measures what
that costs a read of plain names against another tree's code, the sides interleaved::

    python -m bench.lookupab --baseline /tmp/h-badinput7/base [--rounds 15]

The baseline tree needs a ``.venv`` (a link to this tree's does: the worker puts its own
tree first on ``PYTHONPATH``). Writes ``bench/results/badinput7-<UTC>.json``.
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
for p in ("d0/f0.txt", "d1/f1.txt", "d2/new.txt"):
    ws.write(p, b"changed\n")
files = [e.path for e in ws.walk("") if e.kind.value == "file"]
dirs = sorted({p.rsplit("/", 1)[0] for p in files})
print("ready", flush=True)
for line in sys.stdin:
    t0 = time.process_time()
    for _ in range(100):
        for p in files:
            ws.stat(p)
        for d in dirs:
            ws.listdir(d)
    cpu = (time.process_time() - t0) * 1000
    print(json.dumps({"ok": True, "cpu_ms": cpu, "reads": 100 * (len(files) + len(dirs)),
                      "module": avfs_git.__file__}), flush=True)
"""


def main() -> None:
    args, load_before, answers = api_rounds(CODE, lambda w: w.ask("go", "the reads failed"), 15)
    cpu = {side: [a["cpu_ms"] for a in got] for side, got in answers.items()}
    median = {side: statistics.median(xs) for side, xs in cpu.items()}
    tail = {
        "ratio_this_to_baseline": median_of_ratios(cpu["this"], cpu["baseline"]),
        "reads_a_round": answers["this"][0]["reads"],
        "modules": {side: got[0]["module"] for side, got in answers.items()},
    }
    baseline_result("badinput7", "lookupab", args, load_before, median, cpu, tail=tail)


if __name__ == "__main__":
    main()
