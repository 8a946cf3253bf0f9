"""A merge's written conflicts in a mounted fork's git index: each conflicted path's
unmerged entries (stages 1-3: ancestor, ours, theirs) as index bytes, for the patch that
puts them in place of the path's own entry (mount/indexpatch.py ``conflicts``) where the
index was written whole before (~110 ms of CPU at 10,000 files)."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any


def merge_stages(unmerged: Sequence[Sequence[Any]]) -> dict[bytes, bytes]:
    """By path, its unmerged entries ``(path, stage, oid, mode)`` as index bytes, in
    stage order, without stat data (as mount/index.py ``index_bytes`` writes them)."""
    entry = struct.Struct(">IIIIIIIIII20sH").pack
    out: dict[bytes, bytes] = {}
    for path, stage, oid, mode in sorted(unmerged, key=lambda u: (str(u[0]), int(u[1]))):
        raw = str(path).encode("utf-8", "surrogateescape")
        n = len(raw)
        flags = (int(stage) << 12) | min(n, 0xFFF)
        made = (
            entry(0, 0, 0, 0, 0, 0, int(mode), 0, 0, 0, bytes.fromhex(oid), flags)
            + raw
            + b"\0" * (8 - (62 + n) % 8)
        )
        out[raw] = out.get(raw, b"") + made
    return out


def entries_in(made: bytes) -> int:
    """How many entries of :func:`merge_stages` ``made`` holds (each 62 bytes, its name, padding)."""
    at, n = 0, 0
    while at < len(made):
        nl = int.from_bytes(made[at + 60 : at + 62], "big") & 0xFFF
        if nl == 0xFFF:  # (a name of 4,095 bytes or more: to its NUL)
            nl = made.index(b"\0", at + 62) - at - 62
        at += (62 + 8 + nl) & ~7
        n += 1
    return n
