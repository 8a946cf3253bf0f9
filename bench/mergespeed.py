"""``avfs status`` and ``avfs checkpoint save`` on realproj7's project (minimist with an
installed, ignored ``node_modules`` of 13,963 entries in fork ``main``'s overlay), this
tree's code against another's, interleaved (docs/benchmarks.md, mergespeed's section).

Run after ``bench.realproj7`` (whose homes it uses: ``$RP7_ROOT/after/home`` for this
tree's code, ``$RP7_ROOT/before/home`` for ``--before DIR``'s): each round, on each side,
``avfs write`` of one new file (untimed), ``avfs --json status`` and ``avfs checkpoint
save``, each a process of its own (``python -m avfs_git``, ``AVFS_SERVER=off``: no
warm server answers, so the work is in the process measured); the CPU is the process' and
its children's (``RUSAGE_CHILDREN`` around it), with the ``git`` processes it started
(counted by a ``git`` first on ``PATH`` that logs and runs the real one). The sides take
turns going first. Against them, ``git status`` and ``git commit -a`` of one new file in
realproj7's clone, timed the same way.

Run: ``.venv/bin/python -m bench.mergespeed --before /tmp/base [--rounds 9]``; results in
``bench/results/mergespeed-<UTC>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .realproj7 import ROOT, env_for

REPO = Path(__file__).resolve().parent.parent


def _shim(log: Path) -> Path:
    """A directory holding a ``git`` that appends its arguments to ``log`` and runs git."""
    real = shutil.which("git")
    assert real is not None
    d = ROOT / "gitshim"
    d.mkdir(exist_ok=True)
    (d / "git").write_text(f'#!/bin/sh\necho "$*" >> {log}\nexec {real} "$@"\n')
    (d / "git").chmod(0o755)
    return d


def timed(argv: list[str], env: dict[str, str], cwd: str, log: Path | None = None) -> dict[str, Any]:
    if log is not None:
        log.write_text("")
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    w0 = time.monotonic()
    p = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    w1 = time.monotonic()
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    out: dict[str, Any] = {
        "rc": p.returncode,
        "wall": round(w1 - w0, 4),
        "cpu": round((r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime), 4),
    }
    if log is not None:
        out["gits"] = len([x for x in log.read_text().splitlines() if x.strip()])
    if p.returncode:
        out["err"] = p.stderr[-500:]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", type=Path, required=True)
    ap.add_argument("--rounds", type=int, default=9)
    a = ap.parse_args()
    log = ROOT / "gitshim.log"
    shim = _shim(log)
    sides = {"before": ROOT / "before" / "home", "after": ROOT / "after" / "home"}
    envs = {}
    for side, home in sides.items():
        e = env_for(home, a.before if side == "before" else None)
        e["PATH"] = f"{shim}:{e['PATH']}"
        e["AVFS_SERVER"] = "off"  # a process of its own: its CPU is the call's
        if side == "after":
            e["PYTHONPATH"] = str(REPO)
        envs[side] = e
    plain = ROOT / "plain"
    genv = env_for(ROOT / "nohome", None)
    avfs = [sys.executable, "-m", "avfs_git", "--vault", "mm"]
    res: dict[str, Any] = {"load_start": os.getloadavg(), "before_code": str(a.before), "rounds": []}
    run = time.strftime("%H%M%S", time.gmtime())  # (file names of this run's own)
    for k in range(a.rounds):
        order = ["before", "after", "git"] if k % 2 == 0 else ["git", "after", "before"]
        rec: dict[str, Any] = {"round": k, "load": os.getloadavg()[0]}
        for side in order:
            name = f"ms{run}-{k}-{side}.md"
            if side == "git":
                (plain / name).write_text(f"{name}\n")
                rec["git_status"] = timed(["git", "status", "--porcelain"], genv, str(plain))
                subprocess.run(["git", "add", name], cwd=plain, env=genv, check=True)
                rec["git_commit"] = timed(["git", "commit", "-q", "-m", name], genv, str(plain))
                continue
            env = envs[side]
            subprocess.run([*avfs, "write", name, f"{name}\n"], env=env, cwd=str(ROOT), check=True)
            rec[f"{side}_status"] = timed([*avfs, "--json", "status"], env, str(ROOT), log)
            rec[f"{side}_checkpoint"] = timed([*avfs, "checkpoint", "save"], env, str(ROOT), log)
        print(json.dumps(rec), flush=True)
        res["rounds"].append(rec)
    keys = sorted({k for r in res["rounds"] for k in r if k not in ("round", "load")})
    res["medians"] = {
        k: {m: statistics.median(r[k][m] for r in res["rounds"] if m in r[k]) for m in ("wall", "cpu", "gits")
            if any(m in r[k] for r in res["rounds"])}
        for k in keys
    }  # fmt: skip
    res["load_end"] = os.getloadavg()
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out = REPO / "bench" / "results" / f"mergespeed-{stamp}.json"
    out.write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps({"file": str(out), "medians": res["medians"]}, indent=1))


if __name__ == "__main__":
    main()
