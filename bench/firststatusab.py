"""The first `git status` in a fork just mounted, A/B, in CPU: every process of the mount (its
CLI call, the daemon, git) in a cpuacct cgroup of the side's own, so the status's CPU is the
git process's and what the daemon served it, interleaved between avfs checkouts, per backend.

    python -m bench.firststatusab --rounds 5 [--files 10000] [--backends overlay,fuse] main=/work/main new=/work/h-x

Each side has a home of its own (a fork ``p:f1`` of ``--files`` files, one change; no
resident server: ``AVFS_SERVER=off``, as the suite runs). Each round: ``avfs mount`` (its
CPU), then ``git status --porcelain`` in the mount (the group's growth from before it to
0.3 s after it returned: the daemon's share included), then ``avfs unmount`` (untimed).
Written to ``bench/results/firststatusab-<time>.json``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time
from pathlib import Path

from .abkit import avfs_bin, load, order, print_loads, scratch, seed_tree, stamped, worktrees, write_json
from .coldab import _env
from .spareab import Group


def _round(avfs: str, env: dict[str, str], group: Group, backend: str) -> dict[str, float]:
    u0, t0 = group.usage_ms(), time.perf_counter()
    mp = subprocess.run(
        [avfs, "--vault", "p:f1", "mount", "--backend", backend],
        env=env, preexec_fn=group.enter, capture_output=True, text=True, check=True,
    ).stdout.strip().splitlines()[-1]  # fmt: skip
    t1 = time.perf_counter()
    time.sleep(0.3)
    u1 = group.usage_ms()
    st = subprocess.run(["git", "status", "--porcelain"], cwd=mp, preexec_fn=group.enter, capture_output=True)
    t2 = time.perf_counter()
    time.sleep(0.3)
    u2 = group.usage_ms()
    subprocess.run([avfs, "unmount", "p:f1"], env=env, capture_output=True, check=True)
    if st.returncode != 0 or st.stdout != b"?? n.txt\n":
        raise RuntimeError(f"git status: {st.returncode} {st.stdout!r} {st.stderr!r}")
    return {
        "mount_cpu_ms": u1 - u0,
        "mount_ms": (t1 - t0) * 1000,
        "status_cpu_ms": u2 - u1,
        "status_ms": (t2 - t1 - 0.3) * 1000,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--files", type=int, default=10000)
    ap.add_argument("--backends", default="overlay,fuse")
    ap.add_argument("sides", nargs="+", help="NAME=WORKTREE")
    args = ap.parse_args()
    trees = worktrees(args.sides)
    backends = args.backends.split(",")
    got: dict[str, dict[str, list[dict[str, float]]]] = {b: {s: [] for s in trees} for b in backends}
    loads: list[float] = []
    groups = {s: Group(f"status-{s}") for s in trees}
    try:
        with scratch("avfs-firststatusab-") as tmp:
            src = Path(seed_tree(tmp / "src", files=args.files, dirs=100))
            envs = {}
            for side, tree in trees.items():
                env = envs[side] = _env(tmp / f"home-{side}")
                for argv in (
                    ["vault", "create", "p", "--from", str(src)],
                    ["vault", "fork", "p:main", "f1"],
                    ["--vault", "p:f1", "write", "n.txt", "x"],
                ):
                    subprocess.run([avfs_bin(tree), *argv], env=env, check=True, capture_output=True)
            for i in range(args.rounds + 1):  # round 0 warms the caches, untimed
                loads.append(load())
                for b in backends:
                    for side in order(list(trees), i):
                        r = _round(avfs_bin(trees[side]), envs[side], groups[side], b)
                        if i:
                            got[b][side].append(r)
            loads.append(load())
    finally:
        for g in groups.values():
            g.close()
    rows = {
        b: {s: {k: round(statistics.median(x[k] for x in xs), 1) for k in xs[0]} for s, xs in sides.items()}
        for b, sides in got.items()
    }
    for b, sides in rows.items():
        for s, r in sides.items():
            print(
                f"{b:8s} {s:6s} mount cpu {r['mount_cpu_ms']:7.1f} ms; first git status cpu {r['status_cpu_ms']:6.1f} ms, wall {r['status_ms']:6.1f} ms"
            )
    print_loads(loads)
    write_json(stamped("firststatusab"), {"rounds": args.rounds, "files": args.files, "sides": trees, "loads": loads, "rows": rows, "samples": got}, announce=True)  # fmt: skip


if __name__ == "__main__":
    main()
