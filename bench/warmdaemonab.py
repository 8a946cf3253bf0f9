"""A mount's daemon forked from the warm CLI server against one spawned cold: `avfs mount`
(with the home's layers image off, and on) and the first `proxy exec -- true` on a fork
that is not mounted, served by the home's server, this tree against another avfs source
tree in the same run (docs/benchmarks.md, "Mount daemons forked warm").

Each side has a home of its own (a 50-file fork), its server started before the rounds;
the rounds alternate which side goes first; each call is timed from the caller (wall), with
the CPU of the caller's process, of the server for the call (its own and its reaped
children's, the call's process among them), and of the daemon from its start until the call returned
(``/proc/PID/stat``; a forked daemon's count starts at its fork). Every mount is unmounted
after, untimed.

Run: ``.venv/bin/python -m bench.warmdaemonab --baseline SRC [--rounds N]``; the result
goes to ``bench/results/warmd-ab-<time>.json`` and its medians are printed.
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

CASES = ("mount_layers_off", "mount_layers_on", "first_exec")


def _cpu_s(pid: int) -> float:
    try:
        return ab.proc_cpu_s(pid, reaped=False)
    except OSError:
        return float("nan")


def _timed(py: list[str], env: dict[str, str], vault: str, args: list[str]) -> dict[str, float]:
    # the server's CPU: its own (a fork of the daemon included) and its reaped children's
    # (its calls' processes, a forked daemon's first, short-lived parent)
    server = int((Path(env["AVFS_HOME"]) / "run" / "cli.pid").read_text())
    served0, cpu0, t0 = ab.proc_cpu_s(server), ab.children_cpu_s(), time.perf_counter()
    ab.call(py, env, *args)
    wall, cpu = time.perf_counter() - t0, ab.children_cpu_s() - cpu0
    time.sleep(0.05)  # (the call's process ends, and is reaped, just after its answer)
    served = ab.proc_cpu_s(server) - served0
    record = Path(env["AVFS_HOME"]) / "vaults" / f"{vault}.git" / "avfs" / "mounts" / "f.json"
    pid = json.loads(record.read_text())["pid"]
    forked = b"avfs_git.fuse.daemon" not in Path(f"/proc/{pid}/cmdline").read_bytes()
    return {
        "wall": wall,
        "caller_cpu": cpu,
        "served_cpu": served,
        "daemon_cpu": _cpu_s(pid),
        "forked": float(forked),
    }


def _setup(py: list[str], env: dict[str, str]) -> None:
    src = ab.seed_tree(Path(env["AVFS_HOME"]).parent / f"src-{Path(env['AVFS_HOME']).name}")
    ab.call(py, env, "vault", "create", "v", "--from", src)
    ab.call(py, env, "vault", "fork", "v", "f")
    ab.call(py, env, "server", "start")


def _round(py: list[str], env: dict[str, str]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for case in CASES:
        e = {**env, "AVFS_VAULT": "v:f"}
        if case == "mount_layers_off":
            e["AVFS_LAYERS"] = "off"
        args = ["--json", "mount"] if case.startswith("mount") else ["--json", "proxy", "exec", "--", "true"]
        out[case] = _timed(py, e, "v", args)
        ab.call(py, e, "unmount")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ab.baseline_args(ap, 9)
    args = ap.parse_args()
    py = [str(ab.ROOT / ".venv" / "bin" / "python"), "-m", "avfs_git"]
    trees = ab.this_and_baseline(args.baseline)
    rounds: dict[str, list[dict[str, dict[str, float]]]] = {side: [] for side in trees}
    load_before = ab.load()
    with ab.scratch("avfs-bench-warmdaemon-") as t:
        envs = ab.side_envs(t, trees)
        try:
            for side in trees:
                _setup(py, envs[side])
                _round(py, envs[side])  # (warm-up, untimed: the server's spare, the caches)
            for i in range(args.rounds):
                for side in ab.order(list(trees), i):
                    rounds[side].append(_round(py, envs[side]))
        finally:
            from avfs_git.core.vaults import layers

            for side in trees:
                subprocess.run([*py, "server", "stop"], env=envs[side], capture_output=True)
                layers.unmount(envs[side]["AVFS_HOME"])  # (its image's file system: the mount test's)
    median: dict[str, Any] = {
        s: {c: {k: statistics.median(r[c][k] for r in rs) for k in rs[0][c]} for c in CASES}
        for s, rs in rounds.items()
    }
    ab.baseline_result(
        "warmd-ab",
        "avfs mount (layers off, on) and the first proxy exec, served; daemon forked warm vs spawned",
        args,
        load_before,
        median,
        rounds,
    )


if __name__ == "__main__":
    main()
