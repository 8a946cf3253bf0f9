"""A/B: the in-process Python API through the package's door (h-polish5's proxy/apidoor.py,
which wraps the documented calls: a wrong keyword named, hints in the API's words, a staged
state name kept shown), base against head, interleaved.

Each round and side, one child process of that worktree's interpreter: `avfs_git.open_home`
on a fresh home, 10 vaults, then OPS mixed file operations spread over them (write, read,
stat, exists, listdir: the API benchmark's mix, `bench/` "in-process API"), timed in the
child around the operations alone; ms per 1,000 operations reported.

Usage: python -m bench.apidoorab BASE_WORKTREE HEAD_WORKTREE OUT.json [ROUNDS] [OPS]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

from .abkit import ab_report, load, order

CHILD = r"""
import json, sys, time
import avfs_git
from avfs_git.core.vaults import layers
home = avfs_git.open_home(sys.argv[1])
ops = int(sys.argv[2])
wss = []
for v in range(10):
    ws = home.create_vault(f"v{v}").workspace("main")
    for f in range(20):
        ws.write(f"d{f % 4}/f{f}.txt", b"x" * 100)
    wss.append(ws)
t = time.perf_counter()
for i in range(ops):
    ws = wss[i % 10]
    p = f"d{i % 4}/f{i % 20}.txt"
    k = i % 5
    if k == 0:
        ws.write(p, b"y" * 100)
    elif k == 1:
        ws.read(p)
    elif k == 2:
        ws.stat(p)
    elif k == 3:
        ws.exists(p)
    else:
        ws.listdir(f"d{i % 4}")
ms = (time.perf_counter() - t) * 1000
home.close()
layers.unmount(home.path)
print(json.dumps({"ms_per_1000": ms * 1000 / ops}))
"""


def _one(tree: str, ops: int) -> float:
    with tempfile.TemporaryDirectory(prefix="h-polish5-ab-") as tmp:
        out = subprocess.run(
            [os.path.join(tree, ".venv/bin/python"), "-c", CHILD, os.path.join(tmp, "home"), str(ops)],
            capture_output=True,
            text=True,
            check=True,
            cwd=tmp,
            env={k: v for k, v in os.environ.items() if not k.startswith("AVFS_")},
        )
        return float(json.loads(out.stdout.strip().splitlines()[-1])["ms_per_1000"])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("out")
    ap.add_argument("rounds", nargs="?", type=int, default=5)
    ap.add_argument("ops", nargs="?", type=int, default=20000)
    args = ap.parse_args()
    got: dict[str, dict[str, list[float]]] = {"mixed_file_ops": {"a": [], "b": []}}
    loads = [load()]
    _one(args.a, 2000)  # (a warm round each: the page cache, bytecode)
    _one(args.b, 2000)
    for i in range(args.rounds):
        for side in order(["a", "b"], i):
            got["mixed_file_ops"][side].append(_one(getattr(args, side), args.ops))
        loads.append(load())
    ab_report(args, got, {"loadavg_1m": loads})
    sys.exit(0)


if __name__ == "__main__":
    main()
