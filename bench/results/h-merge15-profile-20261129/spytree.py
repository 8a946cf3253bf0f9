"""A py-spy raw file (``-f raw``) as a call tree under one function: each frame's samples,
the frames below it ``depth`` deep, those with fewer than ``least`` samples left out;
stacks through a frame named ``$SKIP`` (default: an import, a first call's) left out.
``python spytree.py FILE FUNCTION [DEPTH [LEAST]]``."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

SKIP = os.environ.get("SKIP", "_find_and_load")  # stacks through an import left out (a first merge's)


def add(node: dict[str, Any], frames: list[str], n: int) -> None:
    node["#"] = node.get("#", 0) + n
    if frames:
        add(node.setdefault(frames[0], {}), frames[1:], n)


def show(node: dict[str, Any], d: int, depth: int, least: int) -> None:
    kids = sorted(((k, v) for k, v in node.items() if k != "#"), key=lambda kv: -kv[1]["#"])
    for k, v in kids:
        if v["#"] < least:
            continue
        print("  " * d + f"{v['#']:5d} {k}")
        if d < depth:
            show(v, d + 1, depth, least)


def main() -> None:
    path, top = sys.argv[1], sys.argv[2]
    depth = int(sys.argv[3]) if len(sys.argv) > 3 else 6
    least = int(sys.argv[4]) if len(sys.argv) > 4 else 5
    root: dict[str, Any] = {}
    for ln in Path(path).read_text().splitlines():
        stack, _, n = ln.rpartition(" ")
        raw = stack.split(";")
        names = [x.split(" (")[0] for x in raw]
        if top not in names or (SKIP and any(SKIP in x for x in names)):
            continue
        here = raw[names.index(top) :]
        frames = [
            x.split(" (")[0] + " " + x.split(" (")[1].split("/")[-1].rstrip(")") if " (" in x else x
            for x in here
        ]
        add(root, frames, int(n))
    show(root, 0, depth, least)


if __name__ == "__main__":
    main()
