"""A mount's whole life, A/B, in CPU: ``avfs mount``, an idle spell, ``avfs unmount``, every
process of it (the CLI calls, the mount daemon and what it starts: git, the lower layer's
walk, fusermount) in a cpuacct cgroup of the side's own, interleaved between avfs
checkouts, per backend.

    python -m bench.mountlifeab --rounds 6 base=/work/base-x new=/work/h-x [--backends overlay,fuse]
        [--files N | --sdist ARCHIVE] [--idle S] [--first "git status --porcelain"] [--tag NAME]

Each side has a home of its own (a vault ``p`` of ``--files`` N seeded files in 100
directories, or of a release archive's files with ``--sdist``; its fork ``f1`` with one
change; no resident server, ``AVFS_SERVER=off``, as the test suite runs), and each round
runs `avfs mount` of ``p:f1``, waits ``--idle`` seconds (what the daemon does once it
answered: its exec server's warm-up, an overlay's walk of its lower layer where it walks),
then `avfs unmount`, the cgroup's CPU read at each step (with ``--first CMD``, a shell
command run in the mount right after its answer, before the idle spell: its CPU and the
daemon's while it ran are ``first_cpu_ms``) and once its last process has
ended. Printed: per side and backend the median CPU of the life and of each step, the
median walls, and the median of per-round CPU ratios against the first side. Needs cgroup
v1's ``cpuacct`` writable (root). Written to ``bench/results/mountlifeab-<time>.json``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time
from pathlib import Path

from .abkit import avfs_bin, load, order, print_loads, scratch, seed_tree, stamped, worktrees, write_json
from .coldab import _env
from .mountcpuab import _cli_cpu_ms
from .spareab import Group

KEYS = ("cpu_ms", "mount_cpu_ms", "first_cpu_ms", "idle_cpu_ms", "unmount_cpu_ms", "mount_cli_cpu_ms", "unmount_cli_cpu_ms",
        "mount_ms", "unmount_ms")  # fmt: skip


def _life(
    avfs: str, env: dict[str, str], group: Group, backend: str, idle_s: float, first: str | None
) -> dict[str, float]:
    before = group.usage_ms()
    t0 = time.perf_counter()
    mount_cli = _cli_cpu_ms([avfs, "--vault", "p:f1", "mount", "--backend", backend], env, group)
    t1 = time.perf_counter()
    at_mount = group.usage_ms()
    if first:
        mp = Path(env["AVFS_HOME"], "mnt", "p", "f1")
        subprocess.run(
            ["sh", "-c", first], cwd=mp, env=env, check=True, capture_output=True, preexec_fn=group.enter
        )
    at_first = group.usage_ms()
    time.sleep(idle_s)
    at_idle = group.usage_ms()
    t2 = time.perf_counter()
    unmount_cli = _cli_cpu_ms([avfs, "unmount", "p:f1"], env, group)
    t3 = time.perf_counter()
    end = time.monotonic() + 10
    while (group.path / "cgroup.procs").read_text().strip() and time.monotonic() < end:
        time.sleep(0.01)  # the daemon's last steps after unmount returned
    after = group.usage_ms()
    return {
        "cpu_ms": after - before,
        "mount_cpu_ms": at_mount - before,
        "first_cpu_ms": at_first - at_mount,
        "idle_cpu_ms": at_idle - at_first,
        "unmount_cpu_ms": after - at_idle,
        "mount_cli_cpu_ms": mount_cli,
        "unmount_cli_cpu_ms": unmount_cli,
        "mount_ms": (t1 - t0) * 1000,
        "unmount_ms": (t3 - t2) * 1000,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--backends", default="overlay,fuse")
    ap.add_argument("--files", type=int, default=10000, help="the fork's seeded files, in 100 directories")
    ap.add_argument("--sdist", help="a release archive (.tar.gz) whose files are the vault's instead")
    ap.add_argument(
        "--idle", type=float, default=6.0, help="seconds between the mount's answer and the unmount"
    )
    ap.add_argument(
        "--first", help="a shell command run in the mount after its answer, before the idle spell"
    )
    ap.add_argument("--tag", default="h-mountcost2", help="the result file's name: mountlifeab-TAG-TIME.json")
    ap.add_argument("sides", nargs="+", help="NAME=WORKTREE")
    args = ap.parse_args()
    trees = worktrees(args.sides)
    backends = args.backends.split(",")
    got: dict[str, dict[str, list[dict[str, float]]]] = {b: {s: [] for s in trees} for b in backends}
    loads: list[float] = []
    groups = {s: Group(f"life-{s}") for s in trees}
    try:
        with scratch("avfs-mountlifeab-") as tmp:
            if args.sdist:
                (tmp / "src").mkdir()
                subprocess.run(["tar", "xzf", args.sdist, "-C", str(tmp / "src")], check=True)
                tops = list((tmp / "src").iterdir())
                src = str(tops[0] if len(tops) == 1 else tmp / "src")
            else:
                src = seed_tree(tmp / "src", files=args.files, dirs=100)
            envs = {}
            for side, tree in trees.items():
                env = envs[side] = _env(tmp / f"home-{side}")
                for argv in (
                    ["vault", "create", "p", "--from", src],
                    ["vault", "fork", "p:main", "f1"],
                    ["--vault", "p:f1", "write", "n.txt", "x"],
                ):
                    subprocess.run([avfs_bin(tree), *argv], env=env, check=True, capture_output=True)
            for i in range(args.rounds + 1):  # round 0 warms the caches, untimed
                loads.append(load())
                for b in backends:
                    for side in order(list(trees), i):
                        r = _life(avfs_bin(trees[side]), envs[side], groups[side], b, args.idle, args.first)
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
            r = rows[b][side] = {k: round(statistics.median(x[k] for x in xs), 1) for k in KEYS}
            r["cpu_vs_first"] = round(
                statistics.median(x["cpu_ms"] / y["cpu_ms"] for x, y in zip(xs, got[b][first], strict=True)),
                3,
            )
            print(
                f"{b:8s} {side:8s} life {r['cpu_ms']:7.1f} ms ({r['cpu_vs_first']:.2f}x): mount {r['mount_cpu_ms']:.1f} "
                f"first {r['first_cpu_ms']:.1f}, "
                f"(its CLI {r['mount_cli_cpu_ms']:.1f}), idle {r['idle_cpu_ms']:.1f}, unmount {r['unmount_cpu_ms']:.1f} "
                f"(its CLI {r['unmount_cli_cpu_ms']:.1f}); wall mount {r['mount_ms']:.0f} ms, unmount {r['unmount_ms']:.0f} ms"
            )
    print_loads(loads)
    write_json(
        stamped(f"mountlifeab-{args.tag}"),
        {"rounds": args.rounds, "files": args.files, "sdist": args.sdist and Path(args.sdist).name,
         "first": args.first,
         "idle_s": args.idle, "sides": trees, "loads": loads, "rows": rows, "samples": got},
        announce=True,
    )  # fmt: skip


if __name__ == "__main__":
    main()
