"""Paired A/B of what plant3 (the thirty-fifth round) adds on a hot path: ``vault fork``
now takes the source's exec lock (an ``open`` and an ``flock``) so that a fork never takes
in a running command's unlooked-at writes. A round: 30 forks of ``main`` with 10 files
uncheckpointed (the capture a fork of a dirty source makes), each removed after, in
process; CPU and wall per fork, against another tree's code, the sides interleaved::

    python -m bench.plant3ab --baseline /work/h-plant3-base [--rounds 15]

Writes ``bench/results/h-plant3-forkab-<UTC>.json``.
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
vault = home.vault("v")
ws = vault.workspace("main")
for i in range(10):
    ws.write(f"d0/c{i}.txt", b"uncheckpointed %d\n" % i)
n = 0
print("ready", flush=True)
for line in sys.stdin:
    n += 1
    cpu = wall = 0.0
    for k in range(30):
        name = f"f{n}-{k}"
        t0, w0 = time.process_time(), time.perf_counter()
        vault.fork("main", name)
        cpu += time.process_time() - t0
        wall += time.perf_counter() - w0
        vault.delete_fork(name)
    print(json.dumps({"ok": True, "cpu_ms": cpu * 1000 / 30, "wall_ms": wall * 1000 / 30,
                      "module": avfs_git.__file__}), flush=True)
"""


def main() -> None:
    args, load_before, answers = api_rounds(CODE, lambda w: w.ask("go", "the forks failed"), 15)
    cpu = {side: [a["cpu_ms"] for a in got] for side, got in answers.items()}
    wall = {side: [a["wall_ms"] for a in got] for side, got in answers.items()}
    median = {
        "cpu_ms": {side: statistics.median(xs) for side, xs in cpu.items()},
        "wall_ms": {side: statistics.median(xs) for side, xs in wall.items()},
    }
    tail = {
        "ratio_this_to_baseline": {
            "cpu": median_of_ratios(cpu["this"], cpu["baseline"]),
            "wall": median_of_ratios(wall["this"], wall["baseline"]),
        },
        "modules": {side: got[0]["module"] for side, got in answers.items()},
    }
    baseline_result(
        "h-plant3-forkab", "plant3ab", args, load_before, median, {"cpu": cpu, "wall": wall}, tail=tail
    )


if __name__ == "__main__":
    main()
