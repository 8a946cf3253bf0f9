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
CASES = ("mount_layers_off", "mount_layers_on", "first_exec")


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _cpu_s(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _avfs(py: list[str], env: dict[str, str], *args: str) -> str:
    return subprocess.run([*py, *args], env=env, check=True, capture_output=True, text=True).stdout


def _reaped_cpu_s(pid: int) -> float:
    """The CPU of process ``pid`` and of the children it has reaped (utime + stime + cutime
    + cstime): for the home's server, its own (a fork of the daemon included) and its
    calls' processes' (and a forked daemon's first, short-lived parent's)."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def _timed(py: list[str], env: dict[str, str], vault: str, args: list[str]) -> dict[str, float]:
    server = int((Path(env["AVFS_HOME"]) / "run" / "cli.pid").read_text())
    served0, cpu0, t0 = _reaped_cpu_s(server), _children_cpu(), time.perf_counter()
    _avfs(py, env, *args)
    wall, cpu = time.perf_counter() - t0, _children_cpu() - cpu0
    time.sleep(0.05)  # (the call's process ends, and is reaped, just after its answer)
    served = _reaped_cpu_s(server) - served0
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
    src = Path(env["AVFS_HOME"]).parent / f"src-{Path(env['AVFS_HOME']).name}"
    for i in range(50):
        (src / f"d{i % 5}").mkdir(parents=True, exist_ok=True)
        (src / f"d{i % 5}" / f"f{i}.txt").write_text(f"file {i}\n" * 20)
    _avfs(py, env, "vault", "create", "v", "--from", str(src))
    _avfs(py, env, "vault", "fork", "v", "f")
    _avfs(py, env, "server", "start")


def _round(py: list[str], env: dict[str, str]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for case in CASES:
        e = {**env, "AVFS_VAULT": "v:f"}
        if case == "mount_layers_off":
            e["AVFS_LAYERS"] = "off"
        args = ["--json", "mount"] if case.startswith("mount") else ["--json", "proxy", "exec", "--", "true"]
        out[case] = _timed(py, e, "v", args)
        _avfs(py, e, "unmount")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline", required=True, help="another avfs source tree, timed in the same run")
    ap.add_argument("--rounds", type=int, default=9)
    args = ap.parse_args()
    py = [str(ROOT / ".venv" / "bin" / "python"), "-m", "avfs_git"]
    trees = {"this": str(ROOT), "baseline": str(Path(args.baseline).resolve())}
    rounds: dict[str, list[dict[str, dict[str, float]]]] = {side: [] for side in trees}
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="avfs-bench-warmdaemon-") as tmp:
        t = Path(tmp)
        os.chdir(t)  # (not the checkout: `-m avfs_git` would import it ahead of PYTHONPATH)
        envs = {
            side: {**os.environ, "AVFS_HOME": str(t / f"home-{side}"), "AVFS_PROGRESS": "never",
                   "AVFS_SERVER": "auto", "PYTHONPATH": tree}
            for side, tree in trees.items()
        }  # fmt: skip
        try:
            for side in trees:
                _setup(py, envs[side])
                _round(py, envs[side])  # (warm-up, untimed: the server's spare, the caches)
            for i in range(args.rounds):
                for side in list(trees) if i % 2 == 0 else list(trees)[::-1]:
                    rounds[side].append(_round(py, envs[side]))
        finally:
            from avfs_git.core.vaults import layers

            for side in trees:
                subprocess.run([*py, "server", "stop"], env=envs[side], capture_output=True)
                layers.unmount(envs[side]["AVFS_HOME"])  # (its image's file system: the mount test's)
            os.chdir(ROOT)
    median: dict[str, Any] = {
        s: {c: {k: statistics.median(r[c][k] for r in rs) for k in rs[0][c]} for c in CASES}
        for s, rs in rounds.items()
    }
    result = {
        "case": "avfs mount (layers off, on) and the first proxy exec, served; daemon forked warm vs spawned",
        "baseline": args.baseline,
        "rounds": args.rounds,
        "load_average_before_after": [load_before, os.getloadavg()[0]],
        "median": median,
        "per_round": rounds,
    }
    out = ROOT / "bench" / "results" / time.strftime("warmd-ab-%Y%m%dT%H%M%SZ.json", time.gmtime())
    out.write_text(json.dumps(result, indent=2) + "\n")
    json.dump({"median": median, "load": result["load_average_before_after"]}, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
