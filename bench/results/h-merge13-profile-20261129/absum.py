"""bench/mergereal.py's JSON files: per kind, the medians (rounds from 1) of each side's
server and daemon CPU, the pairs' ratios, and both against git's in the same run."""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any


def used(r: dict[str, Any], side: str) -> float:
    return float(r[side]["server"] + r[side]["daemon"])


def one(path: str) -> None:
    d = json.loads(Path(path).read_text())
    print("==", Path(path).name)
    rounds = [r for r in d["rounds"] if r["round"] >= 1]
    m = statistics.median
    for k in d["kinds"]:
        rs = [r for r in rounds if r["kind"] == k]
        this = [used(r, "this/served") for r in rs]
        bef = [used(r, "before/served") for r in rs]
        pairs = [a / b for a, b in zip(this, bef, strict=True)]
        mt = m([r["merge_tree"]["cpu"] for r in rs])
        g = m([r["git"]["cpu"] for r in rs])
        part = {
            f"{what} {s}": round(m([r[f"{s}/served"][what] for r in rs]), 1)
            for what in ("server", "daemon", "client")
            for s in ("this", "before")
        }
        print(
            f"{k}: server+daemon this {m(this):.1f} before {m(bef):.1f}, pairs {min(pairs):.2f}-{max(pairs):.2f},"
            f" median {m(pairs):.2f}x; {part}; merge-tree {mt:.2f}, git merge {g:.2f}: this {m(this) / mt:.1f}x /"
            f" {m(this) / g:.1f}x, before {m(bef) / mt:.1f}x / {m(bef) / g:.1f}x; loads"
            f" {[round(r['load'], 1) for r in rs]}"
        )


if __name__ == "__main__":
    for f in sys.argv[1:]:
        one(f)
