"""Rows 1 and 2 of issue 30 as bench/lazyrow8ab.py measures them (the native console script
served, sides interleaved, CPU in cgroups), with a probe at the moment the first `git status`
starts: whether the kept index of the clone's default fork is there already, and, where a
process is making it (``"index_at_clone": "after"``: mount/keptmake.py), the CPU that
process and its children have used so far and whether it is still in the idle scheduling
class (docs/benchmarks.md, the thirty-second round, branch ``h-lazyrow9``).

Run: ``.venv/bin/python -m bench.lazyrow9ab --served DIR --side NAME=TREE:SETTING ...
[--repeats N]`` (as bench/lazyrow8ab.py; root, cgroup v1's cpuacct). The result goes to
``bench/results/h-lazyrow9-ab-<time>.json``.
"""

from __future__ import annotations

import glob
import os
import sys
from pathlib import Path

from . import lazyrow8ab

_round8 = lazyrow8ab._round


def _tree_cpu(pid: int) -> float:
    """CPU (user + system, s) of ``pid`` and its live descendants, from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    total, todo, seen = 0.0, [pid], 0
    while todo and seen < 64:
        p = todo.pop()
        seen += 1
        try:
            with open(f"/proc/{p}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for tid in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{tid}/children", "rb") as fh:
                    todo.extend(int(c) for c in fh.read().split())
        except (OSError, ValueError, IndexError):
            continue
    return total


def probe(vault_glob: str) -> dict[str, float]:
    """The kept index and its maker as the first `git status` starts."""
    out: dict[str, float] = {}
    kept = [p for p in glob.glob(vault_glob + "/avfs/kept-index/*") if not p.endswith((".lock", ".tmp"))]
    out["kept_before_git"] = float(bool(kept))
    for lock in glob.glob(vault_glob + "/avfs/kept-index/*.lock"):
        try:
            pid = int(Path(lock).read_text().split()[0])
            out["maker_cpu_s"] = _tree_cpu(pid)
            out["maker_idle"] = float(os.sched_getscheduler(pid) == os.SCHED_IDLE)
        except (OSError, ValueError, IndexError):
            pass
    return out


def _round(avfs, env, url, name, t, cg, srv, keep):  # type: ignore[no-untyped-def]
    """bench/lazyrow8ab.py's round, the probe run as its `git status` starts."""
    real = lazyrow8ab._run
    found: dict[str, float] = {}

    def run(cgroup, cmd, **kw):  # type: ignore[no-untyped-def]
        if cmd[:2] == ["git", "status"]:
            found.update(probe(os.path.join(env["AVFS_HOME"], "vaults", f"{name}.git")))
        return real(cgroup, cmd, **kw)

    lazyrow8ab._run = run  # type: ignore[assignment]
    try:
        out = _round8(avfs, env, url, name, t, cg, srv, keep)
    finally:
        lazyrow8ab._run = real  # type: ignore[assignment]
    return {**out, **found}


if __name__ == "__main__":
    lazyrow8ab._round = _round  # type: ignore[assignment]
    if "--prefix" not in sys.argv:
        sys.argv += ["--prefix", "h-lazyrow9-ab"]
    if "--tag" not in sys.argv:
        sys.argv += ["--tag", "h-lazyrow9"]
    lazyrow8ab.main()
