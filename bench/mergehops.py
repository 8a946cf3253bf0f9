"""A served merge's CPU process by process (issue 31; docs/benchmarks.md, h-merge7's
section): ``python -m bench.mergehops``.

bench/mergereal.py counts a served call's CPU by cgroup: the client's and the whole
server's. This splits the server's part by process, from each one's own count
(``/proc/PID/schedstat``, to the nanosecond): the resident server's process (the call's
hand-off: its accept, the request read, the hand to the kept process, the answers) and
the kept process (cli/callproc.py ``keep``: the merge, then what it does after its answer),
each to ``--settle`` s after the call; and the client's CPU (``python -m avfs_git``, its
rusage as a child of this process). Each side a home of its own made as bench/mergereal.py
makes them (minimist with its ignored ``node_modules`` written through an overlay mount,
then unmounted: bench/realproj7.py), its own resident server; per round and kind the sides
in turn (the order turned each round), a fork made and checkpointed first (untimed; for
``root`` and ``conflict`` the target's own file too, written through the API, which folds
its upper layer).

``python -m bench.mergehops [--rounds N] [--kinds ff,root,conflict] [--before DIR]
[--src DIR] [--name NAME]``; results in ``bench/results/NAME-<UTC>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from . import abkit as ab
from .mergereal import PREP, Layout
from .spareab import _children, _sched_ms


def _call(
    py: str, env: dict[str, str], spid: int, cmd: list[str], code: int, settle: float
) -> dict[str, float]:
    """One served call: its wall time, the client's CPU, the server process's and the
    kept process's (the child of the server that grew most; ``others``: the rest)."""
    kids = _children(spid)
    s0, k0 = _sched_ms(spid), {k: _sched_ms(k) for k in kids}
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.run([py, "-m", "avfs_git", *cmd], env=env, cwd="/", capture_output=True, text=True)
    wall = (time.perf_counter() - t0) * 1000
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != code:
        raise RuntimeError(f"{cmd}: {p.returncode}\n{p.stdout}{p.stderr}")
    time.sleep(settle)
    s1 = _sched_ms(spid)
    grown = [_sched_ms(k) - k0.get(k, 0.0) for k in _children(spid) | set(k0)] or [0.0]
    client = (r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime) * 1000
    return {
        "wall": round(wall, 2),
        "client": round(client, 3),
        "server": round(s1 - s0, 3),
        "kept": round(max(grown), 3),
        "others": round(sum(grown) - max(grown), 3),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    from . import realproj7

    root = Path(os.environ.get("MERGEREAL_ROOT", "/tmp/mergehops"))
    realproj7.ROOT = root
    (root / "userhome").mkdir(parents=True, exist_ok=True)
    (root / "userhome" / ".gitconfig").write_text("[user]\n\tname = mh\n\temail = mh@example.org\n")
    proj = realproj7.project(args.src)
    layout = Layout("minimist", proj)
    sides: dict[str, Path | None] = {"this": None, **({"before": args.before} if args.before else {})}
    py = sys.executable
    envs: dict[str, dict[str, str]] = {}
    spids: dict[str, int] = {}
    for side, before in sides.items():
        home = realproj7.avfs_side(side, proj, args.src / "node_modules")
        envs[side] = {**realproj7.env_for(home, before), "AVFS_PROGRESS": "never"}
        ab.run([py, "-m", "avfs_git", "server", "start"], envs[side])
        spids[side] = int((home / "run" / "cli.pid").read_text())
    rows: list[dict[str, Any]] = []
    try:
        for i in range(args.rounds + 1):
            for kind in args.kinds:
                rec: dict[str, Any] = {"round": i, "kind": kind, "load": ab.load()}
                for side in ab.order(list(sides), i):
                    env = envs[side]
                    fork = f"{kind}{i}"
                    ab.run(
                        [py, "-c", PREP, fork, json.dumps(layout.writes(kind, fork))],
                        {**env, "AVFS_SERVER": "off"},
                    )
                    time.sleep(args.settle)
                    cmd = ["--vault", "mm", "merge", fork, "--into", "main"]
                    conflict = kind == "conflict"
                    rec[side] = _call(py, env, spids[side], cmd + ["--write-conflicts"] * conflict, 3 if conflict else 0,
                                      args.settle)  # fmt: skip
                    if conflict:  # (given up, untimed)
                        ab.run([py, "-m", "avfs_git", "--vault", "mm", "merge", "--abort", "--into", "main"],
                               {**env, "AVFS_SERVER": "off"})  # fmt: skip
                print(json.dumps(rec), flush=True)
                rows.append(rec)
    finally:
        for side in sides:
            subprocess.run([py, "-m", "avfs_git", "server", "stop"], env=envs[side], capture_output=True)
        from avfs_git.core.vaults import layers

        for side in sides:
            layers.unmount(str(root / side / "home"))
    return {"rounds": rows, "summary": _summary(rows, list(sides), args.kinds), "before": str(args.before)}


def _summary(rows: list[dict[str, Any]], sides: list[str], kinds: list[str]) -> dict[str, Any]:
    """Per kind (round 0 apart), each side's medians, and with ``before`` the median and
    range of this side's kept process's CPU over the other's, round by round."""
    out: dict[str, Any] = {}
    for kind in kinds:
        r = [x for x in rows if x["kind"] == kind and x["round"] > 0]
        s: dict[str, Any] = {
            side: {
                k: statistics.median(x[side][k] for x in r)
                for k in ("client", "server", "kept", "others", "wall")
            }
            for side in sides
        }
        if "before" in sides:
            pair = [x["this"]["kept"] / x["before"]["kept"] for x in r if x["before"]["kept"]]
            s["pair_kept"] = [round(statistics.median(pair), 3), round(min(pair), 3), round(max(pair), 3)]
        out[kind] = s
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--before", type=Path)
    ap.add_argument("--kinds", type=lambda s: s.split(","), default=["ff", "root", "conflict"])
    ap.add_argument("--settle", type=float, default=0.3)
    ap.add_argument("--src", type=Path, default=Path("/tmp/rp6b/agents/plain"))
    ap.add_argument("--name", default="mergehops", help="the results file's name before its stamp")
    args = ap.parse_args()
    res = run(args)
    ab.write_json(ab.stamped(args.name), {**res, "load": ab.load()}, indent=1, announce=True)
    for kind, s in res["summary"].items():
        print(kind, json.dumps(s))


if __name__ == "__main__":
    main()
