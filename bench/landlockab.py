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
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

from . import abkit as ab

CASES = ("true", "exec_ready", "exec_back_to_back")


def _timed(argv: list[str], env: dict[str, str], daemon: int) -> dict[str, float]:
    d0, cpu0, t0 = ab.proc_cpu_s(daemon), ab.children_cpu_s(), time.perf_counter()
    subprocess.run(argv, env=env, check=True, capture_output=True)
    wall, cpu = time.perf_counter() - t0, ab.children_cpu_s() - cpu0
    return {"wall_ms": wall * 1000, "caller_cpu_ms": cpu * 1000, "d0": d0}


def _round(py: list[str], env: dict[str, str], daemon: int) -> dict[str, dict[str, float]]:
    exec_ = [*py, "--json", "proxy", "exec", "--", "true"]
    out = {"true": _timed(["true"], env, daemon)}
    time.sleep(0.3)
    out["exec_ready"] = _timed(exec_, env, daemon)
    out["exec_back_to_back"] = _timed(exec_, env, daemon)
    time.sleep(0.3)
    end = ab.proc_cpu_s(daemon)
    out["exec_ready"]["daemon_cpu_ms"] = (out["exec_back_to_back"]["d0"] - out["exec_ready"]["d0"]) * 1000
    out["exec_back_to_back"]["daemon_cpu_ms"] = (end - out["exec_back_to_back"]["d0"]) * 1000
    out["true"]["daemon_cpu_ms"] = 0.0
    for r in out.values():
        del r["d0"]
    return out


def _setup(py: list[str], env: dict[str, str], backend: str) -> int:
    src = ab.seed_tree(Path(env["AVFS_HOME"]).parent / f"src-{Path(env['AVFS_HOME']).name}")
    ab.call(py, env, "vault", "create", "v", "--from", src)
    ab.call(py, env, "vault", "fork", "v", "f")
    ab.call(py, env, "server", "start")
    ab.call(py, env, "--json", "mount", "--backend", backend)
    record = Path(env["AVFS_HOME"]) / "vaults" / "v.git" / "avfs" / "mounts" / "f.json"
    return int(json.loads(record.read_text())["pid"])


def main() -> None:
    ap = argparse.ArgumentParser()
    ab.baseline_args(ap, 21)
    ap.add_argument("--backend", default="overlay")
    args = ap.parse_args()
    py = [str(ab.ROOT / ".venv" / "bin" / "python"), "-m", "avfs_git"]
    trees = ab.this_and_baseline(args.baseline)
    rounds: dict[str, list[dict[str, dict[str, float]]]] = {side: [] for side in trees}
    load_before = ab.load()
    with ab.scratch("avfs-bench-landlock-") as t:
        envs = ab.side_envs(t, trees, AVFS_VAULT="v:f")
        daemons: dict[str, int] = {}
        try:
            for side in trees:
                daemons[side] = _setup(py, envs[side], args.backend)
                _round(py, envs[side], daemons[side])  # (warm-up, untimed)
            for i in range(args.rounds):
                for side in ab.order(list(trees), i):
                    rounds[side].append(_round(py, envs[side], daemons[side]))
        finally:
            for side in trees:
                subprocess.run([*py, "unmount"], env=envs[side], capture_output=True)
                subprocess.run([*py, "server", "stop"], env=envs[side], capture_output=True)
                from avfs_git.core.vaults import layers

                layers.unmount(envs[side]["AVFS_HOME"])  # (its image's file system)
    median: dict[str, Any] = {
        s: {c: {k: round(statistics.median(r[c][k] for r in rs), 2) for k in rs[0][c]} for c in CASES}
        for s, rs in rounds.items()
    }
    mean_daemon = {
        s: {c: round(statistics.mean(r[c]["daemon_cpu_ms"] for r in rs), 2) for c in CASES}
        for s, rs in rounds.items()
    }
    ab.baseline_result(
        "landlock-ab",
        f"warm proxy exec -- true in a mounted fork ({args.backend}): Landlock in the sandbox vs baseline",
        args,
        load_before,
        median,
        rounds,
        head={"backend": args.backend},
        tail={"mean_daemon_cpu_ms": mean_daemon},
    )


if __name__ == "__main__":
    main()
