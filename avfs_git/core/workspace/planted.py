"""The fork's list of what ``proxy exec`` set aside of repositories a command planted below
the root (``proxy/plantedgit.py`` writes it; ``avfs status`` shows ``planted_git_dirs``)."""

from __future__ import annotations

import json
import os
from typing import Any

from ..types import PLANTED_FILE as FILE  # (the name the writer uses)

__all__ = ["FILE", "KEPT", "read", "report"]

KEPT = 100  # the last ones set aside, of a fork


def read(state_dir: str) -> list[dict[str, Any]]:
    """The entries recorded (each ``git_dir``, ``found``, ``path``, ``moved_to``); none when
    there is no list or it cannot be read."""
    try:
        with open(os.path.join(state_dir, FILE), encoding="utf-8") as fh:
            items = json.load(fh)
    except (OSError, ValueError):
        return []
    keys = {"git_dir", "found", "path", "moved_to"}
    if not isinstance(items, list):
        return []
    return [
        i
        for i in items
        if isinstance(i, dict) and set(i) == keys and all(isinstance(v, str) for v in i.values())
    ]


def report(state_dir: str) -> dict[str, Any]:
    """``{"planted_git_dirs": [...]}`` for `avfs status` (``{}`` when the fork has no list)."""
    items = read(state_dir)
    return {"planted_git_dirs": items} if items or os.path.exists(os.path.join(state_dir, FILE)) else {}
