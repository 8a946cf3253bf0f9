"""A lookup 1,200 levels deep in a fork whose tree is committed (no overlay entry on the
chain), as a pure-FUSE mount's getattr and lookup ask it (``ViewReads.node``): A/B of two
checkouts of avfs, interleaved. ``python bench/deeplookup.py OUT.json ROOT_A ROOT_B``;
each checkout runs in its own process (its ``avfs_git`` first on ``sys.path``)."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys

CHILD = r"""
import os, sys, tempfile, time
sys.path.insert(0, sys.argv[1])
from avfs_git.core.vaults.home import Home
from avfs_git.mount.side import MOUNT_SIDE
from avfs_git.core.operations import checkpoint
depth, n = int(sys.argv[2]), int(sys.argv[3])
with tempfile.TemporaryDirectory(prefix="h-attack23-bench-") as d:
    home = Home(os.path.join(d, "home"), layers="off", mounts=MOUNT_SIDE, author=("B", "b@example.invalid"))
    v = home.create_vault("v")
    ws = v.workspace("main")
    deep = "d/" * depth + "f"
    for i in range(1, depth + 1):  # (a level at a time: main's write recursed a level a call)
        ws.mkdir("/".join(["d"] * i))
    ws.write(deep, b"bottom\n")
    checkpoint.save(v, "main", message="deep")
    assert not [e for e in ws.overlay.all() if e.path], "entries left"
    ws.node(deep)
    t0 = time.process_time()
    for _ in range(n):
        assert ws.node(deep) is not None
    print((time.process_time() - t0) / n)
    home.close()
"""


def main() -> None:
    out, roots = sys.argv[1], sys.argv[2:]
    depth, n, rounds = 1200, 200, 5
    times: dict[str, list[float]] = {r: [] for r in roots}
    for _ in range(rounds):
        for r in roots:  # interleaved
            argv = [sys.executable, "-c", CHILD, r, str(depth), str(n)]
            got = subprocess.run(argv, capture_output=True, text=True, check=False)
            assert got.returncode == 0, got.stderr
            times[r].append(float(got.stdout.strip()))
    med = {r: statistics.median(t) for r, t in times.items()}
    doc = {
        "what": f"ViewReads.node of a committed file {depth} levels deep, CPU per call (median of {rounds} rounds of {n})",
        "load": os.getloadavg(),
        "runs_s": times,
        "median_s": med,
        "ratio_b_over_a": med[roots[1]] / med[roots[0]] if len(roots) > 1 else None,
    }
    with open(out, "w") as fh:
        json.dump(doc, fh, indent=1)
    print(json.dumps(doc, indent=1))


if __name__ == "__main__":
    main()
