"""A py-spy raw file (``-f raw``) summed under one function: its callees ``depth`` deep,
and every function's inclusive samples. ``python spysum.py FILE [FUNCTION [DEPTH]]``."""

from __future__ import annotations

import collections
import sys
from pathlib import Path


def main() -> None:
    path = sys.argv[1]
    top = sys.argv[2] if len(sys.argv) > 2 else "_merge_once"
    depth = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    below: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    tot = 0
    for ln in Path(path).read_text().splitlines():
        stack, _, n = ln.rpartition(" ")
        frames = [x.split(" (")[0] for x in stack.split(";")]
        if top not in frames:
            continue
        tot += int(n)
        i = frames.index(top)
        below[" > ".join(frames[i + 1 : i + 1 + depth])] += int(n)
        for x in set(frames[i + 1 :]):
            incl[x] += int(n)
    print("total under", top, tot)
    for k, v in below.most_common(25):
        print(f"{v:5d} {100 * v / max(tot, 1):5.1f}% {k}")
    print("-- inclusive")
    for k, v in incl.most_common(40):
        print(f"{v:5d} {100 * v / max(tot, 1):5.1f}% {k}")


if __name__ == "__main__":
    main()
