"""The names close to a path a read did not find: what a "did you mean" offers.

Asked only once a read failed (`avfs cat`, MCP's ``read_file``): one listing of the deepest
directory of the path that exists, its names matched against the missing one as difflib
matches a typo; names the fork's path policy hides are never offered.
"""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING

from ..errors import AvfsError, NotFoundError
from ..store import names
from ..types import NodeKind

if TYPE_CHECKING:
    from .workspace import Workspace


def near(ws: Workspace, path: str, n: int = 3) -> tuple[str, list[str]]:
    """``(directory, close)``: the deepest directory on ``path`` that exists in ``ws``
    (``""``: the root) and up to ``n`` paths in it whose names are close to the missing
    part's. Nothing is raised: a path that cannot be looked at gives ``("", [])``."""
    try:
        parts = names.norm_path(path).split("/")
        d = ""
        while len(parts) > 1 and _is_dir(ws, f"{d}/{parts[0]}" if d else parts[0]):
            d = f"{d}/{parts[0]}" if d else parts[0]
            parts = parts[1:]
        visible = ws.visible_filter()
        if visible is not None and d and not visible(d, NodeKind.DIR):
            return "", []
        known = [e.name for e in ws.listdir(d) if visible is None or visible(e.path, e.kind)]
    except (AvfsError, ValueError):
        return "", []
    by_lower = {k.lower(): k for k in reversed(known)}  # (`readme.md` finds `README.md`)
    close = difflib.get_close_matches(parts[0].lower(), list(by_lower), n=n, cutoff=0.7)
    return d, [f"{d}/{by_lower[c]}" if d else by_lower[c] for c in close]


def _is_dir(ws: Workspace, path: str) -> bool:
    try:
        return ws.stat(path, follow=True).kind is NodeKind.DIR
    except NotFoundError:
        return False
