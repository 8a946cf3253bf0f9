"""A mount's whole life in a long-lived Python process (the API, an agent runtime, the
test suite's in-process mounts), A/B in CPU: the process mounts a fork, waits, unmounts,
and again; its daemons after the first are forked by its zygote. Interleaved between avfs
checkouts, per backend.

    python -m bench.mountlifeinproc --rounds 3 --lives 3 base=/work/base-x new=/work/h-x [--backends overlay,fuse]

Each round runs, for each side in turn, one process of that side's checkout (its own home:
vault ``v`` of 20 files in 4 directories, layers off, no resident server) in a cpuacct
cgroup of its own: one mount and unmount (spawned: it starts the zygote), then ``--lives``
mount, ``--idle`` seconds, unmount, each forked by the zygote; per life the cgroup's CPU
less the process's own (``RUSAGE_SELF``): the daemon, what it starts, the zygote's fork.
Needs cgroup v1's ``cpuacct`` writable (root). Written to
``bench/results/mountlifeinproc-h-mountcost2-<time>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import time
from pathlib import Path

CGROUPS = Path(os.environ.get("AVFS_BENCH_CGROUP") or "/sys/fs/cgroup/cpuacct")
KEYS = ("life", "ready", "idle", "unmount", "caller")


def _one(backend: str, lives: int, idle_s: float) -> None:
    """(in a side's process, run as a script with its checkout on ``PYTHONPATH``) the
    lives, as JSON on stdout."""
    import resource
    import shutil
    import tempfile

    os.environ.update(AVFS_SERVER="off", AVFS_LAYERS="off", AVFS_PROGRESS="never")
    from avfs_git.core.operations import checkpoint
    from avfs_git.core.vaults.home import Home
    from avfs_git.mount.side import MOUNT_SIDE
    from avfs_git.ops import daemonstart, mounts, warmstart
    from avfs_git.policy.pathsource import POLICY_PATHS

    tmp = Path(tempfile.mkdtemp(prefix="avfs-lifeinproc-"))
    cg = CGROUPS / f"avfs-lifeinproc-{os.getpid()}"
    cg.mkdir()
    (cg / "cgroup.procs").write_text(str(os.getpid()))  # (the zygote forks only in its starter's group)
    home = Home(str(tmp / "home"), mounts=MOUNT_SIDE, paths=POLICY_PATHS, layers="off")
    v = home.create_vault("v")
    ws = v.workspace("main")
    for i in range(20):
        ws.write(f"d{i % 4}/f{i}.txt", b"x\n" * 20)
    checkpoint.save(v, name="base")

    def usage() -> float:
        return int((cg / "cpuacct.usage").read_text()) / 1e6

    def own() -> float:
        ru = resource.getrusage(resource.RUSAGE_SELF)
        return (ru.ru_utime + ru.ru_stime) * 1000

    mounts.mount(home, v, "main", backend=backend)
    mounts.unmount(home, v, "main")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not ((z := warmstart.current()) is not None and z.ready()):
        time.sleep(0.05)
    out = []
    try:
        for _ in range(lives):
            u0, s0 = usage(), own()
            mounts.mount(home, v, "main", backend=backend)
            u1, s1 = usage(), own()
            time.sleep(idle_s)
            u2, s2 = usage(), own()
            mounts.unmount(home, v, "main")
            end = time.monotonic() + 10
            while len((cg / "cgroup.procs").read_text().split()) > 2 and time.monotonic() < end:
                time.sleep(0.01)  # (this process and its zygote)
            u3, s3 = usage(), own()
            out.append({
                "life": (u3 - u0) - (s3 - s0),
                "ready": (u1 - u0) - (s1 - s0),
                "idle": (u2 - u1) - (s2 - s1),
                "unmount": (u3 - u2) - (s3 - s2),
                "caller": s3 - s0,
            })  # fmt: skip
    finally:
        home.close()
        (CGROUPS / "cgroup.procs").write_text(str(os.getpid()))
        daemonstart.end_zygote()
        for _ in range(50):
            try:
                cg.rmdir()
                break
            except OSError:
                time.sleep(0.1)
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(out))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--lives", type=int, default=3)
    ap.add_argument("--idle", type=float, default=2.0)
    ap.add_argument("--backends", default="overlay,fuse")
    ap.add_argument("--one", nargs=3, metavar=("BACKEND", "LIVES", "IDLE"), help=argparse.SUPPRESS)
    ap.add_argument("sides", nargs="*", help="NAME=WORKTREE")
    args = ap.parse_args()
    if args.one:
        _one(args.one[0], int(args.one[1]), float(args.one[2]))
        return
    from .abkit import load, order, print_loads, stamped, worktrees, write_json

    trees = worktrees(args.sides)
    backends = args.backends.split(",")
    got: dict[str, dict[str, list[dict[str, float]]]] = {b: {s: [] for s in trees} for b in backends}
    loads: list[float] = []
    here = str(Path(__file__).resolve())
    for i in range(args.rounds):
        loads.append(load())
        for b in backends:
            for side in order(list(trees), i):
                tree = trees[side]
                py = str(Path(tree, ".venv", "bin", "python"))
                proc = subprocess.run(
                    [py, "-P", here, "--one", b, str(args.lives), str(args.idle)],
                    env={**os.environ, "PYTHONPATH": tree},
                    cwd="/",
                    capture_output=True,
                    text=True,
                    check=True,
                )
                got[b][side] += json.loads(proc.stdout.strip().splitlines()[-1])
    loads.append(load())
    rows: dict[str, dict[str, dict[str, float]]] = {}
    first = next(iter(trees))
    for b in backends:
        rows[b] = {}
        for side in trees:
            xs = got[b][side]
            r = rows[b][side] = {k: round(statistics.median(x[k] for x in xs), 1) for k in KEYS}
            r["life_vs_first"] = round(r["life"] / rows[b][first]["life"], 3)
            print(
                f"{b:8s} {side:8s} life {r['life']:6.1f} ms ({r['life_vs_first']:.2f}x): ready {r['ready']:.1f}, "
                f"idle {r['idle']:.1f}, unmount {r['unmount']:.1f}; the caller's own {r['caller']:.1f}"
            )
    print_loads(loads)
    write_json(
        stamped("mountlifeinproc-h-mountcost2"),
        {"rounds": args.rounds, "lives": args.lives, "idle_s": args.idle, "sides": trees, "loads": loads,
         "rows": rows, "samples": got},
        announce=True,
    )  # fmt: skip


if __name__ == "__main__":
    main()
