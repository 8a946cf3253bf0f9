"""A small fork's mount and unmount, A/B, in CPU: every process of the pair (the CLI calls,
the mount daemon, the git processes and fusermount they start) in a cpuacct cgroup of the
side's own, interleaved between avfs checkouts, per backend.

    python -m bench.mountcpuab --rounds 15 base=/work/base-x new=/work/h-x [--backends overlay,fuse] [--files N]

Each side has a home of its own (a 20-file vault ``p``, or ``--files`` N in 100 directories, its fork ``f1`` with one change, no
resident server: ``AVFS_SERVER=off``, as the test suite runs), and each round runs `avfs
mount` then `avfs unmount` of ``p:f1`` with its console script, the cgroup's CPU read once
its last process has ended. Printed: per side and backend the median CPU of the pair, the
median wall of each call, and the median of per-round CPU ratios against the first side.
Needs cgroup v1's ``cpuacct`` writable (root). Written to
``bench/results/mountcpuab-<time>.json``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from .abkit import avfs_bin, load, order, print_loads, scratch, seed_tree, stamped, worktrees, write_json
from .coldab import _env
from .spareab import Group


def _pair(avfs: str, env: dict[str, str], group: Group, backend: str) -> dict[str, float]:
    before = group.usage_ms()
    t0 = time.perf_counter()
    mount_cli = _cli_cpu_ms([avfs, "--vault", "p:f1", "mount", "--backend", backend], env, group)
    t1 = time.perf_counter()
    at_mount = group.usage_ms()
    unmount_cli = _cli_cpu_ms([avfs, "unmount", "p:f1"], env, group)
    t2 = time.perf_counter()
    end = time.monotonic() + 10
    while (group.path / "cgroup.procs").read_text().strip() and time.monotonic() < end:
        time.sleep(0.01)  # the daemon's last steps after unmount returned
    after = group.usage_ms()
    return {
        "cpu_ms": after - before,
        # by the time `avfs mount` returned (its process and the daemon's start), and after
        # it (`avfs unmount` and the daemon's stop); and each CLI call's own process
        "mount_cpu_ms": at_mount - before,
        "unmount_cpu_ms": after - at_mount,
        "mount_cli_cpu_ms": mount_cli,
        "unmount_cli_cpu_ms": unmount_cli,
        "mount_ms": (t1 - t0) * 1000,
        "unmount_ms": (t2 - t1) * 1000,
    }


def _cli_cpu_ms(argv: list[str], env: dict[str, str], group: Group) -> float:
    """Run ``argv`` in ``group`` to its end; the CPU (ms) of its process and what it reaped."""
    with tempfile.TemporaryFile() as err:
        p = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=err, preexec_fn=group.enter)
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        if p.returncode != 0:
            err.seek(0)
            raise RuntimeError(f"{argv}: {p.returncode}: {err.read().decode(errors='replace')}")
    return (ru.ru_utime + ru.ru_stime) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--backends", default="overlay,fuse")
    ap.add_argument("--files", type=int, default=20, help="the fork's files (20: 4 directories; more: 100)")
    ap.add_argument("sides", nargs="+", help="NAME=WORKTREE")
    args = ap.parse_args()
    trees = worktrees(args.sides)
    backends = args.backends.split(",")
    got: dict[str, dict[str, list[dict[str, float]]]] = {b: {s: [] for s in trees} for b in backends}
    loads: list[float] = []
    groups = {s: Group(f"mount-{s}") for s in trees}
    try:
        with scratch("avfs-mountcpuab-") as tmp:
            src = Path(seed_tree(tmp / "src", files=args.files, dirs=4 if args.files <= 20 else 100))
            envs = {}
            for side, tree in trees.items():
                env = envs[side] = _env(tmp / f"home-{side}")
                avfs = avfs_bin(tree)
                for argv in (
                    ["vault", "create", "p", "--from", str(src)],
                    ["vault", "fork", "p:main", "f1"],
                    ["--vault", "p:f1", "write", "n.txt", "x"],
                ):
                    subprocess.run([avfs, *argv], env=env, check=True, capture_output=True)
            for i in range(args.rounds + 1):  # round 0 warms the caches, untimed
                loads.append(load())
                for b in backends:
                    for side in order(list(trees), i):
                        r = _pair(avfs_bin(trees[side]), envs[side], groups[side], b)
                        if i:
                            got[b][side].append(r)
            loads.append(load())
    finally:
        for g in groups.values():
            g.close()
    first = next(iter(trees))
    rows: dict[str, dict[str, dict[str, float]]] = {}
    for b in backends:
        rows[b] = {}
        for side in trees:
            xs = got[b][side]
            rows[b][side] = {
                k: round(statistics.median(x[k] for x in xs), 1)
                for k in (
                    "cpu_ms",
                    "mount_cpu_ms",
                    "unmount_cpu_ms",
                    "mount_cli_cpu_ms",
                    "unmount_cli_cpu_ms",
                    "mount_ms",
                    "unmount_ms",
                )
            }
            rows[b][side] |= {
                "cpu_vs_first": round(
                    statistics.median(
                        x["cpu_ms"] / y["cpu_ms"] for x, y in zip(xs, got[b][first], strict=True)
                    ),
                    3,
                ),
            }
            r = rows[b][side]
            print(
                f"{b:8s} {side:8s} cpu {r['cpu_ms']:7.1f} ms ({r['cpu_vs_first']:.2f}x): by mount's return "
                f"{r['mount_cpu_ms']:.1f} (its CLI {r['mount_cli_cpu_ms']:.1f}), after {r['unmount_cpu_ms']:.1f} "
                f"(its CLI {r['unmount_cli_cpu_ms']:.1f}); wall mount {r['mount_ms']:.1f} ms, "
                f"unmount {r['unmount_ms']:.1f} ms"
            )
    print_loads(loads)
    write_json(
        stamped("mountcpuab"),
        {
            "rounds": args.rounds,
            "files": args.files,
            "sides": trees,
            "loads": loads,
            "rows": rows,
            "samples": got,
        },
        announce=True,
    )


if __name__ == "__main__":
    main()
