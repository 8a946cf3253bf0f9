"""A/B of a push followed at once by a fetch (an agent's "publish, then look what others
did"): avfs checkouts against git in the same rounds, each side's processes in a cgroup
of its own (bench/spareab.py's).

``python -m bench.pushfetchseq [--rounds N] [--files N] [--settle S] [--out FILE] NAME=WORKTREE ...``

Per round and side (rotating order): a write and a checkpoint (untimed), a new commit
in another bare repository, ``--settle`` seconds, then the push and the fetch one right
after the other: the wall of each, and the CPU of the pair (the side's cgroup from
before the push to ``--settle`` after the fetch). A fetch that comes while the push's
process still cleans up shows here: on main it goes to the spare at once, with the
kept process of pushes and fetches it waits for it (cli/callproc.py). git's side: ``git
push -q`` then ``git fetch -q --prune`` of the same from a bare clone.
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
from .spareab import Group


def _wall(cmd: list[str], env: dict[str, str] | None, group: Group) -> float:
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=env, preexec_fn=group.enter, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{cmd}: {p.returncode}\n{p.stdout}{p.stderr}")
    return (time.perf_counter() - t0) * 1000


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
    got: dict[str, list[dict[str, float]]] = {n: [] for n in names}
    groups = {n: Group(n) for n in names}
    loads: list[float] = []
    envs: dict[str, dict[str, str]] = {}
    try:
        with ab.scratch("avfs-pushfetchseq-") as tmp:
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
            g = str(tmp / "git.git")
            ab.run(["git", "clone", "-q", "--bare", "--origin", "src", vault, g])
            for r in ("origin", "up"):
                ab.run(["git", "clone", "-q", "--bare", vault, str(tmp / f"{r}-git.git")])
                ab.run(["git", "--git-dir", g, "remote", "add", r, str(tmp / f"{r}-git.git")])
            ab.run(["git", "--git-dir", g, "fetch", "-q", "up"])
            for n, avfs in bins.items():  # each server started in its side's group
                ab.run([avfs, "server", "stop"], envs[n])
                subprocess.run([avfs, "server", "start"], env=envs[n], preexec_fn=groups[n].enter,
                               check=True, capture_output=True)  # fmt: skip
                ab.run([avfs, "--vault", "v", "remote", "list"], envs[n])
            for i, n in ab.warm_rounds(names, args.rounds, loads):  # round 0 untimed
                grp = groups[n]
                if n == "git":
                    _bump(g, i, tmp)
                    _bump(str(tmp / "up-git.git"), i, tmp)
                    env = None
                    push = ["git", "--git-dir", g, "push", "-q", "origin", "main"]
                    fetch = ["git", "--git-dir", g, "fetch", "-q", "--prune", "up"]
                else:
                    avfs, env = bins[n], envs[n]
                    v = [avfs, "--vault", "v"]
                    ab.run([*v, "write", f"round-{i}.txt", str(i)], env)
                    ab.run([*v, "checkpoint", "save", "-m", f"round {i}"], env)
                    _bump(str(tmp / f"up-{n}.git"), i, tmp)
                    push, fetch = [*v, "push", "origin", "main"], [*v, "fetch", "up"]
                time.sleep(args.settle)
                u0 = grp.usage_ms()
                row = {"push": _wall(push, env, grp), "fetch": _wall(fetch, env, grp)}
                time.sleep(args.settle)
                row["cpu"] = grp.usage_ms() - u0
                row["wall"] = row["push"] + row["fetch"]
                if i:
                    got[n].append(row)
            for n, avfs in bins.items():
                ab.run([avfs, "server", "stop"], envs[n])
    finally:
        for grp in groups.values():
            grp.close()
    summary = {n: {k: statistics.median(r[k] for r in got[n]) for k in got[n][0]} for n in names}
    for n in names:
        s = summary[n]
        ratio = ab.median_of_ratios([r["wall"] for r in got[n]], [r["wall"] for r in got["git"]])
        cpu = ab.median_of_ratios([r["cpu"] for r in got[n]], [r["cpu"] for r in got["git"]])
        print(f"{n:8} push {s['push']:6.1f}  fetch {s['fetch']:6.1f}  pair wall {s['wall']:6.1f} ({ratio:.2f}x)"
              f"  cpu {s['cpu']:5.1f} ({cpu:.2f}x)")  # fmt: skip
    ab.print_loads(loads)
    out = args.out or ab.stamped("pushfetchseq")
    doc = {"sides": args.sides, "rounds": args.rounds, "files": args.files, "settle_s": args.settle,
           "calls": got, "summary": summary, "load_1min": loads}  # fmt: skip
    ab.write_json(out, doc, indent=1, announce=True)


if __name__ == "__main__":
    main()
