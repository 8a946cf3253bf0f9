"""The first ``proxy exec -- true`` on a fork that is not mounted against ``avfs mount`` of
the same fork, in CPU (every process of the call, to the nanosecond) and wall, for one or
more avfs checkouts in the same run (issue 31).

``python -m bench.firstcpuab [--rounds N] [--settle S] [--unconfined] [--unserved] [--files N] [--fuse] [--out FILE] NAME=WORKTREE ...``

Each WORKTREE is an avfs checkout with its own ``make install``; its console script runs in
a home of its own (a 50-file fork ``v:f``) whose resident server is started in a cpuacct
cgroup of the side's own (:class:`bench.spareab.Group`), so the server's work for a call,
the call's process, the mount daemon it forks, bubblewrap's processes, Perl and the
command are all counted there. A call's CPU is the growth of the group's
``cpuacct.usage`` from before the call to ``--settle`` seconds after its answer; it is
split into the server's own (``/proc/PID/schedstat``), the daemon's from its fork until
then (it stays, serving the mount) and the rest (the caller, the call's process,
bubblewrap, Perl, git); and in time: ``by_answer`` up to the moment the caller has its
answer (the client's exit), ``after_answer`` the rest (what a call leaves for after its
answer: the next call's ready sandbox, the daemon's warm-up). Per round and side (sides
rotating, and the calls' order rotating): ``--json mount``, then ``--json proxy exec --
true``, each on the fork unmounted (``unmount`` after each, untimed). ``--unconfined``: a
third call each round, the same first call with ``--host writable`` (no sandbox: what
bubblewrap and Perl cost it). ``--unserved``: no resident server (``AVFS_SERVER=off``),
each call a process of its own. ``--files N``: the fork's files (in 100 directories; 50 in 5
by default). ``--fuse``: the pure-FUSE backend (``AVFS_NO_OVERLAY=1``) for both calls. Needs
cgroup v1's ``cpuacct`` writable (root).
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
from .spareab import Group, _sched_ms

CALLS = {"mount": ["--json", "mount"], "first": ["--json", "proxy", "exec", "--", "true"]}
# --unconfined: the same first call with no sandbox (what bubblewrap and Perl cost it)
UNCONFINED = {"first_host": ["--json", "proxy", "exec", "--host", "writable", "--", "true"]}


def _daemon(env: dict[str, str]) -> int:
    record = Path(env["AVFS_HOME"], "vaults", "v.git", "avfs", "mounts", "f.json")
    return int(json.loads(record.read_text())["pid"])


def _timed(avfs: str, env: dict[str, str], call: str, group: Group, settle: float) -> dict[str, float]:
    pidfile = Path(env["AVFS_HOME"], "run", "cli.pid")
    server = int(pidfile.read_text().split()[0]) if env.get("AVFS_SERVER") != "off" else -1
    s0, u0, t0 = _sched_ms(server), group.usage_ms(), time.perf_counter()
    p = subprocess.run([avfs, *CALLS[call]], env=env, preexec_fn=group.enter, capture_output=True, text=True)
    wall = (time.perf_counter() - t0) * 1000
    answered = group.usage_ms() - u0  # what was spent by the answer (the caller waited for it)
    if p.returncode != 0:
        raise RuntimeError(f"{call}: {p.returncode}\n{p.stdout}{p.stderr}")
    time.sleep(settle)
    cpu, server_ms, daemon_ms = group.usage_ms() - u0, _sched_ms(server) - s0, _sched_ms(_daemon(env))
    ab.run([avfs, "unmount"], env)
    time.sleep(settle)
    return {"wall": wall, "cpu": cpu, "server": server_ms, "daemon": daemon_ms,
            "rest": cpu - server_ms - daemon_ms, "by_answer": answered, "after_answer": cpu - answered}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=11)
    ap.add_argument("--settle", type=float, default=0.3)
    ap.add_argument("--name", default="first")
    ap.add_argument("--unserved", action="store_true", help="no resident server: AVFS_SERVER=off")
    ap.add_argument("--unconfined", action="store_true", help="also a first call with --host writable")
    ap.add_argument("--files", type=int, default=50)
    ap.add_argument("--fuse", action="store_true", help="the pure-FUSE backend: AVFS_NO_OVERLAY=1")
    ap.add_argument("--out", type=Path)
    ap.add_argument("sides", nargs="+", metavar="NAME=WORKTREE")
    args = ap.parse_args()
    if args.unconfined:
        CALLS.update(UNCONFINED)
    bins = {n: ab.avfs_bin(w) for n, w in ab.worktrees(args.sides).items()}
    got: dict[str, list[dict[str, dict[str, float]]]] = {n: [] for n in bins}
    groups = {n: Group(n) for n in bins}
    loads: list[float] = []
    envs: dict[str, dict[str, str]] = {}
    try:
        with ab.scratch("avfs-firstcpuab-") as tmp:
            src = ab.seed_tree(tmp / "src", args.files, 5 if args.files <= 50 else 100)
            for n, avfs in bins.items():
                env = {k: v for k, v in os.environ.items() if k not in ("AVFS_SERVER", "AVFS_VAULT")}
                env.update(AVFS_HOME=str(tmp / f"home-{n}"), AVFS_PROGRESS="never")
                if args.fuse:
                    env["AVFS_NO_OVERLAY"] = "1"
                envs[n] = {**env, "AVFS_VAULT": "v:f"}
                ab.run([avfs, "vault", "create", "v", "--from", src], env)
                ab.run([avfs, "vault", "fork", "v", "f"], env)
                ab.run([avfs, "server", "stop"], env)
                if args.unserved:
                    envs[n]["AVFS_SERVER"] = "off"
                    continue
                subprocess.run([avfs, "server", "start"], env=env, preexec_fn=groups[n].enter,
                               check=True, capture_output=True)  # fmt: skip
            try:
                for i, n in ab.warm_rounds(list(bins), args.rounds, loads):  # round 0 untimed
                    row = {
                        c: _timed(bins[n], envs[n], c, groups[n], args.settle)
                        for c in ab.order(list(CALLS), i)
                    }
                    if i:
                        got[n].append(row)
            finally:
                from avfs_git.core.vaults import layers

                for n, avfs in bins.items():
                    subprocess.run([avfs, "unmount"], env=envs[n], capture_output=True)
                    subprocess.run([avfs, "server", "stop"], env=envs[n], capture_output=True)
                    layers.unmount(envs[n]["AVFS_HOME"])
    finally:
        for grp in groups.values():
            grp.close()
    summary: dict[str, Any] = {}
    for n, rows in got.items():
        med = {c: {k: statistics.median(r[c][k] for r in rows) for k in rows[0][c]} for c in CALLS}
        ratio = {k: ab.median_of_ratios([r["first"][k] for r in rows], [r["mount"][k] for r in rows])
                 for k in ("wall", "cpu", "by_answer")}  # fmt: skip
        if "first_host" in CALLS:
            ratio.update({f"unconfined_{k}": ab.median_of_ratios([r["first_host"][k] for r in rows],
                                                                 [r["mount"][k] for r in rows])
                          for k in ("wall", "cpu", "by_answer")})  # fmt: skip
        summary[n] = {"median": med, "first_over_mount_pairwise": ratio}
        for c in CALLS:
            m = med[c]
            print(f"{n:10} {c:6} wall {m['wall']:7.1f}  cpu {m['cpu']:6.1f}"
                  f" (server {m['server']:5.1f} daemon {m['daemon']:5.1f} rest {m['rest']:5.1f};"
                  f" by the answer {m['by_answer']:6.1f}, after it {m['after_answer']:5.1f}) ms")  # fmt: skip
        print(f"{n:10} first/mount pair by pair: wall {ratio['wall']:.2f}x  cpu {ratio['cpu']:.2f}x"
              f"  cpu by the answer {ratio['by_answer']:.2f}x")  # fmt: skip
        if "first_host" in CALLS:
            print(f"{n:10} unconfined/mount: wall {ratio['unconfined_wall']:.2f}x  cpu {ratio['unconfined_cpu']:.2f}x"
                  f"  cpu by the answer {ratio['unconfined_by_answer']:.2f}x")  # fmt: skip
    ab.print_loads(loads)
    out = args.out or ab.stamped(f"{args.name}-firstcpu-ab")
    doc = {"sides": args.sides, "rounds": args.rounds, "unserved": args.unserved, "settle_s": args.settle,
           "files": args.files, "backend": "fuse" if args.fuse else "auto",
           "calls": got, "summary": summary, "load_1min": loads}  # fmt: skip
    ab.write_json(out, doc, indent=1, announce=True)


if __name__ == "__main__":
    main()
