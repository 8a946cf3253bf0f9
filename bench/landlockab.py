"""Warm ``proxy exec -- true`` in a mounted fork, this tree against another avfs source tree
in the same run (docs/benchmarks.md, "Landlock in the sandbox").

Each side has a home of its own (a 50-file fork, mounted, its CLI server started); the
rounds alternate which side goes first. Per round and side: ``true`` alone, then
``avfs --json proxy exec -- true`` after a pause (the daemon's next sandbox made ready: the
warm path a mount's agent takes), then a second one at once (back to back: the next sandbox
may still be in the making). Each call is timed from the caller (wall), with its process's
CPU and the mount daemon's (its own and its reaped children's: the sandboxes and their
commands; ``/proc`` ticks of 10 ms) from the call's start until 0.3 s after it returned.

Run: ``.venv/bin/python -m bench.landlockab --baseline SRC [--rounds N] [--backend B]``;
the result goes to ``bench/results/landlock-ab-<time>.json`` and its medians are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CASES = ("true", "exec_ready", "exec_back_to_back")


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _reaped_cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def _avfs(py: list[str], env: dict[str, str], *args: str) -> str:
    return subprocess.run([*py, *args], env=env, check=True, capture_output=True, text=True).stdout


def _timed(argv: list[str], env: dict[str, str], daemon: int) -> dict[str, float]:
    d0, cpu0, t0 = _reaped_cpu_s(daemon), _children_cpu(), time.perf_counter()
    subprocess.run(argv, env=env, check=True, capture_output=True)
    wall, cpu = time.perf_counter() - t0, _children_cpu() - cpu0
    return {"wall_ms": wall * 1000, "caller_cpu_ms": cpu * 1000, "d0": d0}


def _round(py: list[str], env: dict[str, str], daemon: int) -> dict[str, dict[str, float]]:
    exec_ = [*py, "--json", "proxy", "exec", "--", "true"]
    out = {"true": _timed(["true"], env, daemon)}
    time.sleep(0.3)
    out["exec_ready"] = _timed(exec_, env, daemon)
    out["exec_back_to_back"] = _timed(exec_, env, daemon)
    time.sleep(0.3)
    end = _reaped_cpu_s(daemon)
    out["exec_ready"]["daemon_cpu_ms"] = (out["exec_back_to_back"]["d0"] - out["exec_ready"]["d0"]) * 1000
    out["exec_back_to_back"]["daemon_cpu_ms"] = (end - out["exec_back_to_back"]["d0"]) * 1000
    out["true"]["daemon_cpu_ms"] = 0.0
    for r in out.values():
        del r["d0"]
    return out


def _setup(py: list[str], env: dict[str, str], backend: str) -> int:
    src = Path(env["AVFS_HOME"]).parent / f"src-{Path(env['AVFS_HOME']).name}"
    for i in range(50):
        (src / f"d{i % 5}").mkdir(parents=True, exist_ok=True)
        (src / f"d{i % 5}" / f"f{i}.txt").write_text(f"file {i}\n" * 20)
    _avfs(py, env, "vault", "create", "v", "--from", str(src))
    _avfs(py, env, "vault", "fork", "v", "f")
    _avfs(py, env, "server", "start")
    _avfs(py, env, "--json", "mount", "--backend", backend)
    record = Path(env["AVFS_HOME"]) / "vaults" / "v.git" / "avfs" / "mounts" / "f.json"
    return int(json.loads(record.read_text())["pid"])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline", required=True, help="another avfs source tree, timed in the same run")
    ap.add_argument("--rounds", type=int, default=21)
    ap.add_argument("--backend", default="overlay")
    args = ap.parse_args()
    py = [str(ROOT / ".venv" / "bin" / "python"), "-m", "avfs_git"]
    trees = {"this": str(ROOT), "baseline": str(Path(args.baseline).resolve())}
    rounds: dict[str, list[dict[str, dict[str, float]]]] = {side: [] for side in trees}
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="avfs-bench-landlock-") as tmp:
        t = Path(tmp)
        os.chdir(t)  # (not the checkout: `-m avfs_git` would import it ahead of PYTHONPATH)
        envs = {
            side: {**os.environ, "AVFS_HOME": str(t / f"home-{side}"), "AVFS_PROGRESS": "never",
                   "AVFS_SERVER": "auto", "PYTHONPATH": tree, "AVFS_VAULT": "v:f"}
            for side, tree in trees.items()
        }  # fmt: skip
        daemons: dict[str, int] = {}
        try:
            for side in trees:
                daemons[side] = _setup(py, envs[side], args.backend)
                _round(py, envs[side], daemons[side])  # (warm-up, untimed)
            for i in range(args.rounds):
                for side in list(trees) if i % 2 == 0 else list(trees)[::-1]:
                    rounds[side].append(_round(py, envs[side], daemons[side]))
        finally:
            for side in trees:
                subprocess.run([*py, "unmount"], env=envs[side], capture_output=True)
                subprocess.run([*py, "server", "stop"], env=envs[side], capture_output=True)
                from avfs_git.core.vaults import layers

                layers.unmount(envs[side]["AVFS_HOME"])  # (its image's file system)
            os.chdir(ROOT)
    median: dict[str, Any] = {
        s: {c: {k: round(statistics.median(r[c][k] for r in rs), 2) for k in rs[0][c]} for c in CASES}
        for s, rs in rounds.items()
    }
    mean_daemon = {
        s: {c: round(statistics.mean(r[c]["daemon_cpu_ms"] for r in rs), 2) for c in CASES}
        for s, rs in rounds.items()
    }
    result = {
        "case": f"warm proxy exec -- true in a mounted fork ({args.backend}): Landlock in the sandbox vs baseline",
        "baseline": args.baseline,
        "backend": args.backend,
        "rounds": args.rounds,
        "load_average_before_after": [load_before, os.getloadavg()[0]],
        "median": median,
        "mean_daemon_cpu_ms": mean_daemon,
        "per_round": rounds,
    }
    out = ROOT / "bench" / "results" / time.strftime("landlock-ab-%Y%m%dT%H%M%SZ.json", time.gmtime())
    out.write_text(json.dumps(result, indent=2) + "\n")
    json.dump({"median": median, "mean_daemon_cpu_ms": mean_daemon, "load": result["load_average_before_after"]},
              sys.stdout, indent=2)  # fmt: skip
    print()


if __name__ == "__main__":
    main()
