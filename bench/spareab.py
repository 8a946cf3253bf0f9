"""A/B of the CPU a served call costs, to the nanosecond: avfs checkouts (and git, for push
and fetch) in the same rounds, each side's processes in a cgroup of its own.

``python -m bench.spareab [--rounds N] [--files N] [--settle S] [--out FILE] NAME=WORKTREE ...``

Each WORKTREE is an avfs checkout with its own ``make install``; its console script runs as
a user runs it, in a home of its own whose resident server answers (started inside the
side's cgroup, so its spares and the calls' processes, with the git processes they run,
are counted there). A call's CPU is the growth of the cgroup's ``cpuacct.usage`` (ns) from
before the call to ``--settle`` seconds after its answer: the caller, the server's work
for it, the call's process, and what follows it (its report, the next spare's fork and
copy). Where ``/proc/PID/stat``'s 10 ms ticks (bench/pushab.py) need many rounds, this
needs a few. Needs cgroup v1's ``cpuacct`` hierarchy writable (root).

Per round and side (rotating order): ``remote list`` (the served call's machinery and
little else), then an incremental push of one checkpoint to a bare repository on disk
(the write and the checkpoint untimed, and ``--settle`` waited before the push: the
checkpoint's own work after its answer is not the push's), then a fetch of one new
commit made in another bare repository. git's side pushes and fetches the same from a
bare clone (``git push -q``, ``git fetch -q --prune``). For the avfs sides each call is
split as well: the server's own CPU (``/proc/PID/schedstat``), the next spare's, and the
rest (the caller, the call's process and its git processes).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import time
from pathlib import Path

from . import abkit as ab
from .pushab import _bump

# the run's groups are made here ($AVFS_BENCH_CGROUP: a parent of the runner's own, made
# if missing, so that helpers sharing the machine keep theirs apart)
CGROUPS = Path(os.environ.get("AVFS_BENCH_CGROUP") or "/sys/fs/cgroup/cpuacct")


class Group:
    """A cpuacct cgroup of this run's (removed by :meth:`close` once empty)."""

    def __init__(self, name: str) -> None:
        self.path = CGROUPS / f"avfs-spareab-{os.getpid()}-{name}"
        self.path.mkdir(parents=True)

    def usage_ms(self) -> float:
        return int((self.path / "cpuacct.usage").read_text()) / 1e6

    def enter(self) -> None:
        """(as a child's ``preexec_fn``) move the calling process into this group."""
        (self.path / "cgroup.procs").write_text(str(os.getpid()))

    def close(self) -> None:
        for _ in range(50):
            try:
                self.path.rmdir()
                return
            except OSError:
                time.sleep(0.1)


def _sched_ms(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/schedstat") as fh:
            return int(fh.read().split()[0]) / 1e6
    except OSError:
        return 0.0


def _children(pid: int) -> set[int]:
    out: set[int] = set()
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            out.update(int(x) for x in Path(f"/proc/{pid}/task/{t}/children").read_text().split())
        except OSError:
            pass
    return out


def _timed(
    cmd: list[str], env: dict[str, str] | None, group: Group, settle: float, server: int | None
) -> dict[str, float]:
    """Wall and CPU (ms) of ``cmd`` run in ``group``; with ``server``, the split."""
    old = _children(server) if server else set()
    s0 = _sched_ms(server) if server else 0.0
    u0 = group.usage_ms()
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=env, preexec_fn=group.enter, capture_output=True, text=True)
    wall = (time.perf_counter() - t0) * 1000
    if p.returncode != 0:
        raise RuntimeError(f"{cmd}: {p.returncode}\n{p.stdout}{p.stderr}")
    time.sleep(settle)
    got = {"wall": wall}
    if server:
        got["server"] = _sched_ms(server) - s0
        got["next_spare"] = sum(_sched_ms(k) for k in _children(server) - old)
    got["cpu"] = group.usage_ms() - u0
    if server:
        got["call"] = got["cpu"] - got["server"] - got["next_spare"]
    return got


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=11)
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--settle", type=float, default=0.4)
    ap.add_argument("--out", type=Path)
    ap.add_argument("sides", nargs="+", metavar="NAME=WORKTREE")
    args = ap.parse_args()
    bins = {n: ab.avfs_bin(w) for n, w in ab.worktrees(args.sides).items()}
    names = ["git", *bins]
    ops = ("list", "push", "fetch")
    got: dict[str, dict[str, list[dict[str, float]]]] = {op: {n: [] for n in names} for op in ops}
    groups = {n: Group(n) for n in names}
    loads: list[float] = []
    servers: dict[str, int] = {}
    envs: dict[str, dict[str, str]] = {}
    try:
        with ab.scratch("avfs-spareab-") as tmp:
            src = tmp / "src"
            ab.seed_tree(src, args.files, 50)
            for n, avfs in bins.items():
                env = {k: v for k, v in os.environ.items() if k != "AVFS_SERVER"}
                env.update(AVFS_HOME=str(tmp / f"home-{n}"), AVFS_PROGRESS="never")
                envs[n] = env
                ab.run([avfs, "vault", "create", "v", "--from", str(src)], env)
                for r in ("origin", "up"):
                    ab.run(["git", "init", "-q", "--bare", str(tmp / f"{r}-{n}.git")])
                    ab.run([avfs, "--vault", "v", "remote", "add", r, str(tmp / f"{r}-{n}.git")], env)
                    ab.run([avfs, "--vault", "v", "push", r, "main"], env)
                ab.run([avfs, "--vault", "v", "fetch", "up"], env)
                vault = ab.run([avfs, "vault", "path", "v"], env).strip()
            ab.run(["git", "clone", "-q", "--bare", "--origin", "src", vault, str(tmp / "git.git")])
            g = str(tmp / "git.git")
            for r in ("origin", "up"):
                ab.run(["git", "clone", "-q", "--bare", vault, str(tmp / f"{r}-git.git")])
                ab.run(["git", "--git-dir", g, "remote", "add", r, str(tmp / f"{r}-git.git")])
            ab.run(["git", "--git-dir", g, "fetch", "-q", "up"])
            for n, avfs in bins.items():  # each server started in its side's group
                ab.run([avfs, "server", "stop"], envs[n])
                subprocess.run([avfs, "server", "start"], env=envs[n], preexec_fn=groups[n].enter,
                               check=True, capture_output=True)  # fmt: skip
                ab.run([avfs, "--vault", "v", "remote", "list"], envs[n])
                servers[n] = int(Path(envs[n]["AVFS_HOME"], "run", "cli.pid").read_text().split()[0])
            for i, n in ab.warm_rounds(names, args.rounds, loads):  # round 0 untimed
                grp = groups[n]
                if n == "git":
                    row = {"list": {"wall": 0.0, "cpu": 0.0}}
                    _bump(g, i, tmp)
                    time.sleep(args.settle)
                    row["push"] = _timed(["git", "--git-dir", g, "push", "-q", "origin", "main"], None, grp,
                                         args.settle, None)  # fmt: skip
                    _bump(str(tmp / "up-git.git"), i, tmp)
                    row["fetch"] = _timed(["git", "--git-dir", g, "fetch", "-q", "--prune", "up"], None, grp,
                                          args.settle, None)  # fmt: skip
                else:
                    avfs, env, srv = bins[n], envs[n], servers[n]
                    v = [avfs, "--vault", "v"]
                    row = {"list": _timed([*v, "remote", "list"], env, grp, args.settle, srv)}
                    ab.run([*v, "write", f"round-{i}.txt", str(i)], env)
                    ab.run([*v, "checkpoint", "save", "-m", f"round {i}"], env)
                    time.sleep(args.settle)
                    row["push"] = _timed([*v, "push", "origin", "main"], env, grp, args.settle, srv)
                    _bump(str(tmp / f"up-{n}.git"), i, tmp)
                    row["fetch"] = _timed([*v, "fetch", "up"], env, grp, args.settle, srv)
                if i:
                    for op in ops:
                        got[op][n].append(row[op])
            for n, avfs in bins.items():
                ab.run([avfs, "server", "stop"], envs[n])
    finally:
        for grp in groups.values():
            grp.close()
    summary: dict[str, dict[str, dict[str, float]]] = {}
    for op in ops:
        summary[op] = {}
        for n in names:
            if op == "list" and n == "git":
                continue
            rows = got[op][n]
            summary[op][n] = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
            summary[op][n]["cpu_mean"] = statistics.mean(r["cpu"] for r in rows)
            s = summary[op][n]
            parts = "".join(f" {k} {s[k]:5.1f}" for k in ("server", "next_spare", "call") if k in s)
            print(
                f"{op:5} {n:8} wall {s['wall']:6.1f}  cpu {s['cpu']:5.1f} (mean {s['cpu_mean']:5.1f}){parts}"
            )
    ab.print_loads(loads)
    out = args.out or ab.stamped("spareab")
    doc = {"sides": args.sides, "rounds": args.rounds, "files": args.files, "settle_s": args.settle,
           "calls": got, "summary": summary, "load_1min": loads}  # fmt: skip
    ab.write_json(out, doc, indent=1, announce=True)


if __name__ == "__main__":
    main()
