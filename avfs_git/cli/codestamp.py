"""What names the avfs code a CLI call runs: the resident server (:mod:`.resident`) serves
only calls whose stamp is its own. Imports nothing beyond Python's start-up (the console
script computes it before it knows whether a server answers)."""

from __future__ import annotations

import os
import sys


def stamp() -> str:
    """The code a call runs (the resident server compares it with its own): this interpreter, and the
    package's ``.py`` files, as the sum of their mtimes and sizes and their count (a stat
    of each: ~0.3 ms; any edit, addition or removal changes it)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    total = count = 0
    todo = [root]
    while todo:
        d = todo.pop()
        try:
            with os.scandir(d) as it:
                for e in it:
                    if e.name.endswith(".py"):
                        st = e.stat(follow_symlinks=False)
                        total += st.st_mtime_ns + st.st_size
                        count += 1
                    elif e.is_dir(follow_symlinks=False) and e.name != "__pycache__":
                        todo.append(e.path)
        except OSError:
            continue
    return f"{sys.executable} {sys.version_info[:3]} {root} {count} {total}"
