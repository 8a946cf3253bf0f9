"""h-wildmatch1's A/B: one ``IgnoreRules.ignored`` over 200 new paths (100 ignored), a fresh
rules object each time, so ``git check-ignore`` runs each time (now under a deadline: a
``Popen`` in a session of its own instead of ``subprocess.run``). Prints the seconds of
each, as JSON. Usage: ``python bench/wildmatch_ab.py ROUNDS`` (run it interleaved from two
worktrees' venvs)."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

from avfs_git.core.workspace.ignore import IgnoreRules

DATA = b"*.pyc\nbuild/\n__pycache__/\n!keep.pyc\n"


def source(d: str) -> tuple[str, Callable[[], bytes]] | None:
    return ("k", lambda: DATA) if d == "" else None


def main() -> None:
    gd = tempfile.mkdtemp(prefix="wildmatch-ab-")
    subprocess.run(["git", "init", "-q", "--bare", gd], check=True)
    files = [f"pkg{i}/mod{j}.{'pyc' if j % 2 else 'py'}" for i in range(20) for j in range(10)]
    out = []
    for _ in range(int(sys.argv[1])):
        rules = IgnoreRules(gd, lambda: None)
        t = time.perf_counter()
        got = rules.ignored(files, source)
        out.append(time.perf_counter() - t)
        assert len(got) == 100, len(got)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
