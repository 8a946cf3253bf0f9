"""A/B of an incremental `avfs push` (a fork that moved since its last push, the case a
push checks the fast-forward of) and of `avfs fetch`: avfs checkouts against git, served
by each checkout's warm CLI server, interleaved in the same rounds.

``python -m bench.pushab [--rounds N] [--files N] [--out FILE] NAME=WORKTREE ...``

Each WORKTREE is an avfs checkout with its own ``make install``; its console script
(``WORKTREE/.venv/bin/avfs``) runs as a user runs it, in a home of its own whose server
answers (started before the first round). Per side and round, untimed: one file written
and checkpointed in the vault (git's side: one commit made with ``git commit-tree`` in a
bare copy), then :data:`SETTLE_S` waited. Timed: ``avfs --vault v push origin main``
against ``git push -q origin main`` to a bare repository on disk, then ``avfs --vault v fetch origin`` against ``git fetch -q
--prune origin`` of one new commit pushed there by another clone. Medians of wall time and
the median of per-round ratios against git. Results as JSON (``--out``, by default
``bench/results/pushab-<stamp>.json``).

CPU as well, where wall time at a load of 10-40 says little: git's side, the processes the
command ran (user + system of the reaped children); an avfs side, the caller's and what
its home's server reaped meanwhile (the served call's process, with the git processes it
ran), from ``/proc/<server>/stat`` after a pause for the reap (10 ms ticks: read the means
over the rounds more than the medians).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import time
from pathlib import Path

from . import abkit as ab

# waited after the untimed set-up of a push: a served checkpoint's process goes on after its
# answer (its report, the next spare's copy: ~15 ms of CPU), which a push timed at once
# counted as its own (the "~15-20 ms more" of the thirteenth round's incremental push)
SETTLE_S = 0.3


def _bump(bare: str, n: int, work: Path) -> None:
    """One new commit on ``main`` of the bare repository ``bare``, made without a checkout."""
    env = {**os.environ, "GIT_DIR": bare, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@x",
           "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@x", "GIT_INDEX_FILE": str(work / "idx")}  # fmt: skip
    p = subprocess.run(["git", "hash-object", "-w", "--stdin"], input=f"bump {n}\n", capture_output=True,
                       text=True, env=env, check=True)  # fmt: skip
    blob = p.stdout.strip()
    ab.run(["git", "read-tree", "main"], env)
    ab.run(["git", "update-index", "--add", "--cacheinfo", f"100644,{blob},bump-{n}.txt"], env)
    tree = ab.run(["git", "write-tree"], env).strip()
    commit = ab.run(["git", "commit-tree", tree, "-p", "main", "-m", f"bump {n}"], env).strip()
    ab.run(["git", "update-ref", "refs/heads/main", commit], env)


def _timed(cmd: list[str], env: dict[str, str] | None, server: int | None) -> tuple[float, float]:
    """(wall ms, CPU ms) of ``cmd``: its own and its children's, and with ``server`` (a
    resident server's pid) what that server reaped by 200 ms after the call (untimed)."""
    c0, s0 = ab.children_cpu_s(), ab.proc_cpu_s(server) if server else 0.0
    wall = ab.timed_ms(cmd, env)
    if server:
        time.sleep(0.2)
    cpu = ab.children_cpu_s() - c0 + ((ab.proc_cpu_s(server) - s0) if server else 0.0)
    return wall, cpu * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=11)
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--out", type=Path)
    ap.add_argument("sides", nargs="+", metavar="NAME=WORKTREE")
    args = ap.parse_args()
    bins = {n: ab.avfs_bin(w) for n, w in ab.worktrees(args.sides).items()}
    names = ["git", *bins]
    wall: dict[str, dict[str, list[float]]] = {op: {n: [] for n in names} for op in ("push", "fetch")}
    cpu: dict[str, dict[str, list[float]]] = {op: {n: [] for n in names} for op in ("push", "fetch")}
    servers: dict[str, int] = {}
    loads: list[float] = []
    # every call from there: a server started with its working directory in an avfs checkout
    # would import that checkout's package (another stamp: each call would fall back); each
    # home's layers file system unmounted at the end, before its removal
    with ab.scratch("avfs-pushab-") as tmp:
        src = tmp / "src"
        ab.seed_tree(src, args.files, 50)
        envs: dict[str, dict[str, str]] = {}
        for n, avfs in bins.items():
            env = {k: v for k, v in os.environ.items() if k != "AVFS_SERVER"}
            env.update(AVFS_HOME=str(tmp / f"home-{n}"), AVFS_PROGRESS="never")
            envs[n] = env
            ab.run([avfs, "vault", "create", "v", "--from", str(src)], env)
            for r in ("origin", "up"):
                ab.run(["git", "init", "-q", "--bare", str(tmp / f"{r}-{n}.git")])
            ab.run([avfs, "--vault", "v", "remote", "add", "origin", str(tmp / f"origin-{n}.git")], env)
            ab.run([avfs, "--vault", "v", "remote", "add", "up", str(tmp / f"up-{n}.git")], env)
            ab.run([avfs, "--vault", "v", "push", "origin", "main"], env)
            ab.run([avfs, "--vault", "v", "push", "up", "main"], env)
            ab.run([avfs, "--vault", "v", "fetch", "up"], env)
            vault = ab.run([avfs, "vault", "path", "v"], env).strip()
        ab.run(["git", "clone", "-q", "--bare", "--origin", "src", vault, str(tmp / "git.git")])
        for r in ("origin", "up"):
            ab.run(["git", "clone", "-q", "--bare", vault, str(tmp / f"{r}-git.git")])
        g = str(tmp / "git.git")
        ab.run(["git", "--git-dir", g, "remote", "add", "origin", str(tmp / "origin-git.git")])
        ab.run(["git", "--git-dir", g, "remote", "add", "up", str(tmp / "up-git.git")])
        ab.run(["git", "--git-dir", g, "fetch", "-q", "up"])
        for n, avfs in bins.items():  # each home's server up and answering before the rounds
            ab.run([avfs, "server", "start"], envs[n])
            ab.run([avfs, "--vault", "v", "remote", "list"], envs[n])
            servers[n] = int(Path(envs[n]["AVFS_HOME"], "run", "cli.pid").read_text().split()[0])
        for i, n in ab.warm_rounds(names, args.rounds, loads):  # round 0 untimed
            if n == "git":
                _bump(g, i, tmp)
                time.sleep(SETTLE_S)  # (as the avfs sides wait after their checkpoint)
                push = _timed(["git", "--git-dir", g, "push", "-q", "origin", "main"], None, None)
                _bump(str(tmp / "up-git.git"), i, tmp)
                fetch = _timed(["git", "--git-dir", g, "fetch", "-q", "--prune", "up"], None, None)
            else:
                avfs, env = bins[n], envs[n]
                ab.run([avfs, "--vault", "v", "write", f"round-{i}.txt", str(i)], env)
                ab.run([avfs, "--vault", "v", "checkpoint", "save", "-m", f"round {i}"], env)
                time.sleep(SETTLE_S)  # the checkpoint's work after its answer is not the push's
                push = _timed([avfs, "--vault", "v", "push", "origin", "main"], env, servers[n])
                _bump(str(tmp / f"up-{n}.git"), i, tmp)
                fetch = _timed([avfs, "--vault", "v", "fetch", "up"], env, servers[n])
            if i:
                for op, (w, c) in (("push", push), ("fetch", fetch)):
                    wall[op][n].append(w)
                    cpu[op][n].append(c)
        for n, avfs in bins.items():
            ab.run([avfs, "server", "stop"], envs[n])
    summary = ab.summary_vs_git(wall, names)
    for op, sides in cpu.items():
        git_mean = statistics.mean(sides["git"])
        for n in names:
            mean = statistics.mean(sides[n])
            summary[op][n].update(cpu_ms_median=statistics.median(sides[n]), cpu_ms_mean=mean)
            print(f"{op:6} {n:8} cpu median {statistics.median(sides[n]):6.1f} ms, mean {mean:6.1f} ms"
                  f" ({mean / git_mean:.2f}x git's mean)")  # fmt: skip
    ab.print_loads(loads)
    out = args.out or ab.stamped("pushab")
    doc = {
        "sides": args.sides,
        "rounds": args.rounds,
        "files": args.files,
        "wall_ms": wall,
        "cpu_ms": cpu,
        "load_1min": loads,
    }
    ab.write_json(out, {**doc, "summary": summary}, indent=1, announce=True)


if __name__ == "__main__":
    main()
