"""A/B of the bench's ``remote_push`` and ``remote_fetch`` cases in CPU as well as wall
time: avfs checkouts against git in the same rounds, each checkout's calls served by its
home's warm server, as an agent's are.

``python -m bench.xfercpuab [--rounds N] [--files N] [--out FILE] NAME=WORKTREE ...``

As bench/remotecases.py: a vault of N small files (the bench's 10k by default) pushed whole
to a new, empty repository on a ``git daemon`` on 127.0.0.1 (``avfs --vault v push d
main`` against ``git push -q URL refs/heads/main:refs/heads/main`` of a bare clone of that
vault), then fetched back into a new vault (``avfs --vault f fetch d`` against ``git fetch
-q --prune URL +refs/heads/*:refs/remotes/d/*`` into a copy of that new vault). Set-up
untimed. Wall time at a load of 10-40 moves by 2x from one round to the next; the CPU of
a call moves much less: git's side, the processes the command ran; an avfs side, the
caller's and what its home's server reaped by 200 ms after the call (the served call's
process with the git processes it ran; ``/proc/<server>/stat``, 10 ms ticks). Per side:
medians of wall and CPU, the mean CPU, and the medians of the per-round ratios against
git. Results as JSON (``--out``, by default ``bench/results/xfercpu-<stamp>.json``).

``--cgroup``: each side's server (its spares, the calls' processes and their git
processes) and each timed call in a cgroup v1 ``cpuacct`` group of the side's (root), the
CPU read from it in ns (bench/spareab.py): from :data:`SETTLE_S` after the untimed calls
before a timed one (a served call's work after its answer, which the ticks above count in
the next call's window) to :data:`SETTLE_S` after its answer. The git daemon's side is in
neither.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import time
from pathlib import Path

from . import abkit as ab
from .remotecases import _daemon
from .spareab import Group

SETTLE_S = 0.4  # with --cgroup: waited before and after a timed call


def _timed(
    cmd: list[str], env: dict[str, str] | None, server: int | None, group: Group | None = None
) -> tuple[float, float]:
    """(wall ms, CPU ms) of ``cmd``, with what ``server`` reaped by 200 ms after it; with
    ``group``, the growth of that cgroup's CPU from :data:`SETTLE_S` after the untimed
    calls before it to :data:`SETTLE_S` after its answer."""
    if group is not None:
        time.sleep(SETTLE_S)  # (the untimed calls' work after their answers is not this one's)
        u0 = group.usage_ms()
        t0 = time.perf_counter()
        subprocess.run(cmd, env=env, preexec_fn=group.enter, check=True, capture_output=True)
        wall = (time.perf_counter() - t0) * 1000
        time.sleep(SETTLE_S)
        return wall, group.usage_ms() - u0
    c0, s0 = ab.children_cpu_s(), ab.proc_cpu_s(server) if server else 0.0
    wall = ab.timed_ms(cmd, env)
    if server:
        time.sleep(0.2)
    cpu = ab.children_cpu_s() - c0 + ((ab.proc_cpu_s(server) - s0) if server else 0.0)
    return wall, cpu * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=11)
    ap.add_argument("--files", type=int, default=10000)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--cgroup", action="store_true", help="CPU from a cgroup per side (ns; root)")
    ap.add_argument("sides", nargs="+", metavar="NAME=WORKTREE")
    args = ap.parse_args()
    bins = {n: ab.avfs_bin(w) for n, w in ab.worktrees(args.sides).items()}
    names = ["git", *bins]
    groups = {n: Group(n) for n in names} if args.cgroup else {}
    try:
        _main(args, bins, names, groups)
    finally:
        for grp in groups.values():
            grp.close()


def _main(args: argparse.Namespace, bins: dict[str, str], names: list[str], groups: dict[str, Group]) -> None:
    ops = ("push", "fetch")
    wall: dict[str, dict[str, list[float]]] = {op: {n: [] for n in names} for op in ops}
    cpu: dict[str, dict[str, list[float]]] = {op: {n: [] for n in names} for op in ops}
    loads: list[float] = []
    with ab.scratch("avfs-xfercpu-") as tmp:
        src, served = tmp / "src", tmp / "served"
        ab.seed_tree(src, args.files, max(1, args.files // 10))
        served.mkdir()
        daemon, url = _daemon(served)
        try:
            envs: dict[str, dict[str, str]] = {}
            servers: dict[str, int] = {}
            vaults: dict[str, str] = {}
            for n, avfs in bins.items():
                env = {k: v for k, v in os.environ.items() if k != "AVFS_SERVER"}
                env.update(AVFS_HOME=str(tmp / f"home-{n}"), AVFS_PROGRESS="never")
                envs[n] = env
                ab.run([avfs, "vault", "create", "v", "--from", str(src)], env)
                ab.run([avfs, "--vault", "v", "remote", "add", "d", f"{url}/{n}.git"], env)
                if n in groups:  # the server, its spares and their git processes in the side's group
                    ab.run([avfs, "server", "stop"], env)  # (the one the direct calls above started)
                    subprocess.run([avfs, "server", "start"], env=env, preexec_fn=groups[n].enter, check=True,
                                   capture_output=True)  # fmt: skip
                else:
                    ab.run([avfs, "server", "start"], env)
                ab.run([avfs, "--vault", "v", "remote", "list"], env)
                servers[n] = int(Path(env["AVFS_HOME"], "run", "cli.pid").read_text().split()[0])
                vaults[n] = ab.run([avfs, "vault", "path", "v"], env).strip()
            first = next(iter(bins))
            g, fresh, copy = str(tmp / "git.git"), tmp / "fresh.git", tmp / "git-fetcher.git"
            ab.run(["git", "clone", "-q", "--bare", vaults[first], g])
            # git fetches into a copy of a new vault (the bench's remote_fetch: its initial
            # commit is a "have" in the negotiation, as in the vault avfs fetches into)
            ab.run([bins[first], "vault", "create", "f"], envs[first])
            ab.run(["cp", "-a", ab.run([bins[first], "vault", "path", "f"], envs[first]).strip(), str(fresh)])
            ab.run([bins[first], "vault", "delete", "f", "--force"], envs[first])
            for i, n in ab.warm_rounds(names, args.rounds, loads):  # round 0 untimed
                target = served / f"{n}.git"
                shutil.rmtree(target, ignore_errors=True)
                ab.run(["git", "init", "-q", "--bare", str(target)])
                if n == "git":
                    push = _timed(["git", "--git-dir", g, "push", "-q", f"{url}/git.git",
                                   "refs/heads/main:refs/heads/main"], None, None, groups.get(n))  # fmt: skip
                    shutil.rmtree(copy, ignore_errors=True)
                    ab.run(["cp", "-a", str(fresh), str(copy)])
                    fetch = _timed(["git", "--git-dir", str(copy), "fetch", "-q", "--prune", f"{url}/git.git",
                                    "+refs/heads/*:refs/remotes/d/*"], None, None, groups.get(n))  # fmt: skip
                else:
                    avfs, env = bins[n], envs[n]
                    # a new, empty repository there: what the vault saw of the last one goes too
                    ab.run(["git", "--git-dir", vaults[n], "update-ref", "-d", "refs/remotes/d/main"])
                    push = _timed([avfs, "--vault", "v", "push", "d", "main"], env, servers[n], groups.get(n))
                    home = tmp / f"home-{n}"
                    if (home / "vaults" / "f.git").exists():
                        ab.run([avfs, "vault", "delete", "f", "--force"], env)
                    shutil.rmtree(home / "trash", ignore_errors=True)
                    ab.run([avfs, "vault", "create", "f"], env)
                    ab.run([avfs, "--vault", "f", "remote", "add", "d", f"{url}/{n}.git"], env)
                    fetch = _timed([avfs, "--vault", "f", "fetch", "d"], env, servers[n], groups.get(n))
                if i:
                    for op, (w, c) in (("push", push), ("fetch", fetch)):
                        wall[op][n].append(w)
                        cpu[op][n].append(c)
            for n, avfs in bins.items():
                ab.run([avfs, "server", "stop"], envs[n])
        finally:
            import signal

            os.killpg(daemon.pid, signal.SIGTERM)
            daemon.wait(10)
    summary = ab.summary_vs_git(wall, names)
    for op in ops:
        for n in names:
            c = cpu[op][n]
            summary[op][n].update(
                cpu_ms_median=statistics.median(c),
                cpu_ms_mean=statistics.mean(c),
                cpu_median_of_ratios=ab.median_of_ratios(c, cpu[op]["git"]),
            )
            print(f"{op:6} {n:8} cpu median {statistics.median(c):6.1f} ms, mean {statistics.mean(c):6.1f} ms,"
                  f" / git (median of ratios) {summary[op][n]['cpu_median_of_ratios']:.2f}x")  # fmt: skip
    ab.print_loads(loads)
    out = args.out or ab.stamped("xfercpu")
    doc = {"sides": args.sides, "rounds": args.rounds, "files": args.files, "wall_ms": wall, "cpu_ms": cpu,
           "load_1min": loads}  # fmt: skip
    ab.write_json(out, {**doc, "summary": summary}, indent=1, announce=True)


if __name__ == "__main__":
    main()
