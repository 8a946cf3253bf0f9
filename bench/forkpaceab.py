"""A/B of ``avfs --json vault fork NEW`` from the CLI in a default home at the bench's
``cli_vault_fork_layers`` pace: ``python -S -c pass``, then a fork, back to back (the
next fork comes while the previous one's spare snapshot may still be being made).

``python -m bench.forkpaceab NAME=WORKTREE NAME=WORKTREE BLOCKS ROUNDS OUT.json [back]``

``back``: two forks each round with nothing between them, the second timed (it comes while
the first one's spare is being made), then ``python -S`` timed after them.

Both checkouts get a fresh copy of one 10k home of the default setting with its own
resident server (``bench.servedab``'s sides, ``--layers``); they take turns by blocks of
``ROUNDS`` (python, fork) pairs, the order of the two reversed every block. The side
named first was seen to come out ~25 % slower in an A/A run: run both orders.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from typing import Any

from . import servedab as sa
from .abkit import load, order, worktrees
from .env import WORK_DIR, make_hermetic, rmtree, utc_stamp


def main(argv: list[str]) -> int:
    trees = worktrees(argv[0:2])
    blocks, rounds, outp = int(argv[2]), int(argv[3]), argv[4]
    back = argv[5:] == ["back"]
    out = WORK_DIR / "servedab" / ("ab-" + utc_stamp())
    make_hermetic(WORK_DIR / "home")
    template = sa._template(out, True)
    sides = {n: sa.Side(n, t, template, out, True) for n, t in trees.items()}
    py = [sys.executable, "-S", "-c", "pass"]
    res: dict[str, dict[str, list[float]]] = {n: {"fork": [], "py": []} for n in sides}
    loads = []
    try:
        for s in sides.values():
            for i in range(-2, 0):
                sa._spawn(s.argv("fork", i))
        k = 0
        for b in range(blocks):
            for n in order(list(sides), b):
                for _ in range(rounds):
                    if back:
                        sa._spawn(sides[n].argv("fork", k))
                        k += 1
                    else:
                        res[n]["py"].append(sa._spawn(py)[0])
                    res[n]["fork"].append(sa._spawn(sides[n].argv("fork", k))[0])
                    k += 1
                    if back:
                        res[n]["py"].append(sa._spawn(py)[0])
                time.sleep(0.1)
            loads.append(load())
    finally:
        for s in sides.values():
            s.close()
        rmtree(out)
    med = statistics.median
    doc: dict[str, Any] = {"loads": [min(loads), max(loads)], "order": list(sides), "sides": res}
    for n, r in res.items():
        f, p = med(r["fork"]), med(r["py"])
        print(f"{n}: fork {f:.1f} ms, python -S {p:.1f} ms, {f / p:.2f}x  (n={len(r['fork'])})")
    print(f"load {min(loads):.1f}-{max(loads):.1f}")
    with open(outp, "w", encoding="utf-8") as fh:
        json.dump(doc, fh)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
