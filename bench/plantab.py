"""Warm ``proxy exec -- true``, ``avfs write`` and ``checkpoint save`` of 10 changed files in
a mounted fork, this tree against another avfs source tree in the same run (docs/benchmarks.md,
"Planted git state from every writer, and history": the workspace's check of git's own
state names, the carry-back's look at a command's commits, two more binds in the sandbox).

Each side has a home of its own (a 50-file fork, mounted, its CLI server started; as
:mod:`.landlockab`); the rounds alternate which side goes first. Per round and side: the
warm exec (after a pause: the daemon's next sandbox ready) and one back to back
(:func:`.landlockab._round`), an ``avfs write`` of a file, then 10 files written in the
mount and ``avfs checkpoint save``; each timed from the caller (wall).

With ``--inproc``: instead, each side's Python (its tree first on ``PYTHONPATH``) runs
:data:`INPROC` once a round, sides interleaved: 2,000 ``Workspace.write`` calls and 30
``checkpoint.save`` of 10 changed files in an unmounted fork, timed by the process's CPU
clock (``process_time``: what the load of a shared machine disturbs least).

Run: ``.venv/bin/python -m bench.plantab --baseline SRC [--rounds N] [--backend B] [--inproc]``;
the result goes to ``bench/results/h-plant2-ab-<time>.json`` (``h-plant2-inproc-ab-`` with
``--inproc``) and its medians are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

from . import abkit as ab
from .landlockab import _round, _setup

CASES = ("exec_ready", "exec_back_to_back", "write", "checkpoint_10")


def _wall_ms(argv: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, env=env, check=True, capture_output=True)
    return (time.perf_counter() - t0) * 1000


def _side_round(py: list[str], env: dict[str, str], daemon: int, mp: Path, i: int) -> dict[str, float]:
    ex = _round(py, env, daemon)
    out = {"exec_ready": ex["exec_ready"]["wall_ms"], "exec_back_to_back": ex["exec_back_to_back"]["wall_ms"]}
    out["write"] = _wall_ms([*py, "--json", "write", f"w-{i}.txt", f"round {i}\n"], env)
    for k in range(10):
        (mp / f"c-{k}.txt").write_text(f"round {i} file {k}\n")
    out["checkpoint_10"] = _wall_ms([*py, "--json", "checkpoint", "save", "-m", f"round {i}"], env)
    return out


INPROC = """import json, sys, tempfile, time
from avfs_git.core.vaults.home import Home
from avfs_git.core.vaults import layers
from avfs_git.core.operations import checkpoint
from avfs_git.mount.side import MOUNT_SIDE

with tempfile.TemporaryDirectory() as d:
    h = Home(d + "/home", mounts=MOUNT_SIDE)
    v = h.create_vault("v")
    ws = v.workspace("main")
    for i in range(200):
        ws.write(f"d{i % 10}/f{i}.txt", b"seed\\n")
    checkpoint.save(v, "main", message="seed")
    t = time.process_time()
    for i in range(2000):
        ws.write(f"d{i % 10}/f{i % 200}.txt", b"x%d\\n" % i)
    w = (time.process_time() - t) / 2000 * 1e6
    t = time.process_time()
    for r in range(30):
        for k in range(10):
            ws.write(f"d{k}/f{k}.txt", b"r%d\\n" % r)
        checkpoint.save(v, "main", message=f"r{r}")
    c = (time.process_time() - t) / 30 * 1e3
    h.close()
    layers.unmount(d + "/home")
print(json.dumps({"write_cpu_us": w, "checkpoint_10_cpu_ms": c}))
"""


def _inproc(args: argparse.Namespace) -> None:
    trees = ab.this_and_baseline(args.baseline)
    rounds: dict[str, list[dict[str, float]]] = {side: [] for side in trees}
    load_before = ab.load()
    with ab.scratch("avfs-bench-plant-inproc-"):
        for i in range(args.rounds):
            for side in ab.order(list(trees), i):
                py = str(Path(trees[side], ".venv", "bin", "python"))
                env = {**os.environ, "PYTHONPATH": trees[side]}
                out = subprocess.run([py, "-c", INPROC], env=env, check=True, capture_output=True, text=True)
                rounds[side].append(json.loads(out.stdout.splitlines()[-1]))
    cases = ("write_cpu_us", "checkpoint_10_cpu_ms")
    median = {
        s: {c: round(statistics.median(r[c] for r in rs), 2) for c in cases} for s, rs in rounds.items()
    }
    ratio = {c: round(median["this"][c] / median["baseline"][c], 3) for c in cases}
    ab.baseline_result(
        "h-plant2-inproc-ab",
        "in process, CPU: 2,000 Workspace.write, checkpoint.save of 10 files: plant2 vs baseline",
        args,
        load_before,
        median,
        rounds,
        tail={"ratio_this_over_baseline": ratio},
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ab.baseline_args(ap, 21)
    ap.add_argument("--backend", default="overlay")
    ap.add_argument("--inproc", action="store_true")
    args = ap.parse_args()
    if args.inproc:
        _inproc(args)
        return
    py = [str(ab.ROOT / ".venv" / "bin" / "python"), "-m", "avfs_git"]
    trees = ab.this_and_baseline(args.baseline)
    rounds: dict[str, list[dict[str, float]]] = {side: [] for side in trees}
    load_before = ab.load()
    with ab.scratch("avfs-bench-plant-") as t:
        envs = ab.side_envs(t, trees, AVFS_VAULT="v:f")
        daemons: dict[str, int] = {}
        mps: dict[str, Path] = {}
        try:
            for side in trees:
                daemons[side] = _setup(py, envs[side], args.backend)
                record = Path(envs[side]["AVFS_HOME"]) / "vaults" / "v.git" / "avfs" / "mounts" / "f.json"
                mps[side] = Path(json.loads(record.read_text())["mountpoint"])
                _side_round(py, envs[side], daemons[side], mps[side], -1)  # (warm-up, untimed)
            for i in range(args.rounds):
                for side in ab.order(list(trees), i):
                    rounds[side].append(_side_round(py, envs[side], daemons[side], mps[side], i))
        finally:
            for side in trees:
                subprocess.run([*py, "unmount"], env=envs[side], capture_output=True)
                subprocess.run([*py, "server", "stop"], env=envs[side], capture_output=True)
                from avfs_git.core.vaults import layers

                layers.unmount(envs[side]["AVFS_HOME"])  # (its image's file system)
    median: dict[str, Any] = {
        s: {c: round(statistics.median(r[c] for r in rs), 2) for c in CASES} for s, rs in rounds.items()
    }
    ratio = {c: round(median["this"][c] / median["baseline"][c], 3) for c in CASES}
    ab.baseline_result(
        "h-plant2-ab",
        f"warm exec, avfs write, checkpoint of 10 files in a mounted fork ({args.backend}): plant2 vs baseline",
        args,
        load_before,
        median,
        rounds,
        head={"backend": args.backend},
        tail={"ratio_this_over_baseline": ratio},
    )


if __name__ == "__main__":
    main()
