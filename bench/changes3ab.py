"""Warm ``proxy exec`` in a mounted fork, this tree against another avfs source tree in the
same run (docs/benchmarks.md, "The change stream's labels" of the thirty-fifth round): what
the span's note of a carried-back move costs a call (changes3).

Each side has a home of its own (a 50-file fork, mounted, its CLI server started); the
rounds alternate which side goes first. Per round and side, after a pause (the daemon's
next sandbox made ready): ``avfs --json proxy exec -- true`` (no ref moves: the warm path
of a mount's agent), then, after another pause, a call whose command commits with git
(``git commit --allow-empty``: avfs carries the move back, and on this tree notes it in the
call's span first). Each call is timed from the caller (wall), with its process's CPU and
the mount daemon's (its own and its reaped children's; ``/proc`` ticks of 10 ms) from the
call's start until 0.3 s after it returned.

Run: ``.venv/bin/python -m bench.changes3ab --baseline SRC [--rounds N] [--backend B]``;
the result goes to ``bench/results/h-changes3-execab-<time>.json``, its medians printed.
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

CASES = ("exec_true", "exec_commit")
COMMIT = "git commit -q --allow-empty -m step"


def _timed(argv: list[str], env: dict[str, str], daemon: int) -> dict[str, float]:
    time.sleep(0.3)  # (the daemon's next sandbox made ready)
    d0, cpu0, t0 = ab.proc_cpu_s(daemon), ab.children_cpu_s(), time.perf_counter()
    subprocess.run(argv, env=env, check=True, capture_output=True)
    wall, cpu = time.perf_counter() - t0, ab.children_cpu_s() - cpu0
    time.sleep(0.3)
    return {
        "wall_ms": wall * 1000,
        "caller_cpu_ms": cpu * 1000,
        "daemon_cpu_ms": (ab.proc_cpu_s(daemon) - d0) * 1000,
    }


def _round(py: list[str], env: dict[str, str], daemon: int) -> dict[str, dict[str, float]]:
    exec_ = [*py, "--json", "proxy", "exec", "--"]
    return {
        "exec_true": _timed([*exec_, "true"], env, daemon),
        "exec_commit": _timed([*exec_, "sh", "-c", COMMIT], env, daemon),
    }


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
    ident = {"GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@example.invalid"}
    ident |= {"GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@example.invalid"}
    load_before = ab.load()
    with ab.scratch("avfs-bench-changes3-") as t:
        envs = ab.side_envs(t, trees, AVFS_VAULT="v:f", **ident)
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
    ratio = {
        c: {
            k: round(
                ab.median_of_ratios([r[c][k] for r in rounds["this"]], [r[c][k] for r in rounds["baseline"]]),
                3,
            )
            for k in ("wall_ms", "caller_cpu_ms")
        }
        for c in CASES
    }
    ab.baseline_result(
        "h-changes3-execab",
        f"warm proxy exec in a mounted fork ({args.backend}): true, and a git commit carried back; vs baseline",
        args,
        load_before,
        median,
        rounds,
        head={"backend": args.backend},
        tail={"median_of_ratios_this_vs_baseline": ratio},
    )


if __name__ == "__main__":
    main()
