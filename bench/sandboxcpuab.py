"""The CPU of one confined command's sandbox, to the nanosecond: bubblewrap, the Landlock
program and the command, for one or more avfs checkouts in the same run (first6).

``python -m bench.sandboxcpuab [--rounds N] [--out FILE] NAME=WORKTREE ...``

Per side, a worker of the checkout's venv runs in a cpuacct cgroup of its own
(:class:`bench.spareab.Group`); each round (sides rotating) it sets a sandbox up ahead for
``true`` on a scratch directory (:func:`avfs_git.proxy.ahead.set_up`, the sandbox
``confine.argv`` makes for it, the Landlock program and the waiter of a ready sandbox
included), lets it go at once and waits for its end. The sandbox's CPU is the growth of
the group's ``cpuacct.usage`` over that, less the worker's own (``time.process_time``):
bubblewrap's three processes, Perl and ``true``, which ``RUSAGE_CHILDREN`` undercounts (the
command and the sandbox's init are not the worker's children). Needs cgroup v1's
``cpuacct`` writable (root).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
from pathlib import Path
from typing import Any

from . import abkit as ab
from .spareab import Group

WORKER = r"""
import json, sys, tempfile, time
from avfs_git.proxy import ahead, confine
print("ready", flush=True)
with tempfile.TemporaryDirectory() as d:
    for line in sys.stdin:
        c0 = time.process_time()
        planned = ahead.Planned(
            sandbox=confine.Sandbox(source=d, path="/avfs/v", cwd="/avfs/v", network="none"),
            argv=("true",),
            env=(("PATH", "/usr/bin:/bin"),),
        )
        b = ahead.set_up(planned)
        b.spawned.wait()
        b.start(list(planned.argv), "/avfs/v", dict(planned.env))
        code = b.proc.wait()
        b.discard()
        for p in (b.proc.stdout, b.proc.stderr):
            p.close()
        print(json.dumps({"own": (time.process_time() - c0) * 1000, "code": code}), flush=True)
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=21)
    ap.add_argument("--name", default="first6")
    ap.add_argument("--out", type=Path)
    ap.add_argument("sides", nargs="+", metavar="NAME=WORKTREE")
    args = ap.parse_args()
    trees = ab.worktrees(args.sides)
    groups = {n: Group(f"sb-{n}") for n in trees}
    workers: dict[str, subprocess.Popen[str]] = {}
    got: dict[str, list[dict[str, float]]] = {n: [] for n in trees}
    loads: list[float] = []
    try:
        for n, tree in trees.items():
            env = {**os.environ, "PYTHONPATH": tree}
            w = subprocess.Popen([str(Path(tree, ".venv", "bin", "python")), "-c", WORKER], env=env, cwd="/",
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                 preexec_fn=groups[n].enter)  # fmt: skip
            assert w.stdout is not None and w.stdout.readline().strip() == "ready"
            workers[n] = w
        for i, n in ab.warm_rounds(list(trees), args.rounds, loads):  # round 0 untimed
            w = workers[n]
            assert w.stdin is not None and w.stdout is not None
            u0 = groups[n].usage_ms()
            w.stdin.write("go\n")
            w.stdin.flush()
            answer: dict[str, Any] = json.loads(w.stdout.readline())
            used = groups[n].usage_ms() - u0
            if answer["code"] != 0:
                raise RuntimeError(f"{n}: the command ended {answer['code']}")
            if i:
                got[n].append({"group": used, "worker": answer["own"], "sandbox": used - answer["own"]})
    finally:
        for w in workers.values():
            if w.stdin is not None:
                w.stdin.close()
            w.wait()
        for grp in groups.values():
            grp.close()
    summary = {n: {k: statistics.median(r[k] for r in rows) for k in rows[0]} for n, rows in got.items()}
    for n, s in summary.items():
        print(f"{n:10} sandbox {s['sandbox']:6.2f} ms  (worker {s['worker']:5.2f}, group {s['group']:6.2f})")
    ab.print_loads(loads)
    out = args.out or ab.stamped(f"{args.name}-sandboxcpu-ab")
    ab.write_json(out, {"sides": args.sides, "rounds": args.rounds, "calls": got, "summary": summary,
                        "load_1min": loads}, indent=1, announce=True)  # fmt: skip


if __name__ == "__main__":
    main()
