"""A/B of a user's first `avfs vault clone` and `avfs fetch` (a home no server answers yet):
avfs checkouts against git, interleaved in the same rounds.

``python -m bench.firstxferab --repo GIT_DIR [--rounds N] [--out FILE] NAME=WORKTREE ...``

Each WORKTREE is an avfs checkout with its own ``make install``; its console script
(``WORKTREE/.venv/bin/avfs``) runs as installed, without ``AVFS_SERVER``: the call finds no
server and runs in its own process, and starts one for the next call (before the call on
main's code at 82c2577, after it since ``LATE_START`` has the transfers). That server is
given two seconds, then stopped, untimed. Per round and side, in a new home: ``avfs vault
clone file://REPO c`` against ``git clone -q --bare file://REPO``, then ``avfs --vault f
fetch origin`` into a new vault (made with ``AVFS_SERVER=off``, untimed) against ``git
fetch -q --prune origin`` into a copy of it. Medians of wall time and of the per-round
ratios against git; JSON to ``--out`` (by default ``bench/results/firstxfer-<stamp>.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from .env import rmtree


def _run(cmd: list[str], env: dict[str, str] | None = None) -> None:
    p = subprocess.run(cmd, capture_output=True, env=env, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{cmd}: {p.returncode}\n{p.stdout}{p.stderr}")


def _timed(cmd: list[str], env: dict[str, str] | None = None) -> float:
    t0 = time.perf_counter()
    _run(cmd, env)
    return (time.perf_counter() - t0) * 1000


def _side(name: str, avfs: str | None, url: str, work: Path, base_env: dict[str, str]) -> tuple[float, float]:
    rmtree(work)
    work.mkdir()
    if avfs is None:
        clone = _timed(["git", "clone", "-q", "--bare", url, str(work / "c.git")])
        _run(["git", "init", "-q", "--bare", str(work / "f.git")])
        _run(["git", "--git-dir", str(work / "f.git"), "remote", "add", "origin", url])
        fetch = _timed(["git", "--git-dir", str(work / "f.git"), "fetch", "-q", "--prune", "origin"])
        return clone, fetch
    env = {**base_env, "AVFS_HOME": str(work / "home")}
    off = {**env, "AVFS_SERVER": "off"}
    clone = _timed([avfs, "vault", "clone", url, "c"], env)
    time.sleep(2.0)  # the server the call started: up, then stopped (untimed)
    _run([avfs, "server", "stop"], off)
    _run([avfs, "vault", "create", "f"], off)
    _run([avfs, "--vault", "f", "remote", "add", "origin", url], off)
    fetch = _timed([avfs, "--vault", "f", "fetch", "origin"], env)
    time.sleep(2.0)
    _run([avfs, "server", "stop"], off)
    return clone, fetch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repo", required=True, type=Path, help="a bare repository to clone and fetch")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--out", type=Path)
    ap.add_argument("sides", nargs="+", metavar="NAME=WORKTREE")
    args = ap.parse_args()
    bins: dict[str, str | None] = {"git": None}
    bins.update({n: str(Path(w, ".venv", "bin", "avfs")) for n, w in (s.split("=", 1) for s in args.sides)})
    names = list(bins)
    url = "file://" + str(args.repo.resolve())
    base_env = {k: v for k, v in os.environ.items() if k != "AVFS_SERVER"}
    base_env["AVFS_PROGRESS"] = "never"
    wall: dict[str, dict[str, list[float]]] = {op: {n: [] for n in names} for op in ("clone", "fetch")}
    loads: list[float] = []
    tmp = Path(tempfile.mkdtemp(prefix="avfs-firstxfer-"))
    here = os.getcwd()
    os.chdir(tmp)  # (a server started in an avfs checkout would import that checkout's package)
    try:
        for i in range(args.rounds + 1):  # round 0 warms the caches, untimed
            loads.append(os.getloadavg()[0])
            k = i % len(names)
            for n in names[k:] + names[:k]:
                clone, fetch = _side(n, bins[n], url, tmp / n, base_env)
                if i:
                    wall["clone"][n].append(clone)
                    wall["fetch"][n].append(fetch)
        loads.append(os.getloadavg()[0])
    finally:
        os.chdir(here)
        rmtree(tmp)
    summary: dict[str, dict[str, dict[str, float]]] = {}
    for op, sides in wall.items():
        summary[op] = {}
        for n in names:
            ratios = [a / b for a, b in zip(sides[n], sides["git"], strict=True)]
            summary[op][n] = {
                "wall_ms": statistics.median(sides[n]),
                "median_of_ratios": statistics.median(ratios),
            }
            print(
                f"{op:6} {n:8} wall {summary[op][n]['wall_ms']:7.1f} ms  / git (median of ratios)"
                f" {summary[op][n]['median_of_ratios']:.2f}x"
            )
    print(f"load (1 min) {min(loads):.1f}-{max(loads):.1f}")
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out = args.out or Path(__file__).parent / "results" / f"firstxfer-{stamp}.json"
    doc = {
        "sides": args.sides,
        "rounds": args.rounds,
        "repo": str(args.repo),
        "wall_ms": wall,
        "load_1min": loads,
    }
    out.write_text(json.dumps({**doc, "summary": summary}, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
