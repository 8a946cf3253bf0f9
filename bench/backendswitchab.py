"""The first `git status` in a fork remounted on another backend, A/B, in CPU (backend1, the
twenty-fifth round): a fork mounted on backend X, a `git status` there (git's own index and
token kept at the unmount), unmounted, mounted on backend Y; then the first `git status`.

    python -m bench.backendswitchab --rounds 3 [--files 10000] [--switches overlay:fuse,fuse:overlay,overlay:overlay] main=/work/main new=/work/h-x

Each side has a home of its own (a fork ``p:f1`` of ``--files`` files in 100 directories,
one file written; no resident server, no layers file system) and a cpuacct cgroup of its
own that every process of a mount joins (its CLI call, the daemon it starts, git): the
first status's CPU is the group's growth from before it to 0.3 s after it returned (the
daemon's share included; the second mount's, its CLI call to 0.3 s after, the daemon's
restating of the index with it), its wall the git process's; also ``preload/sum_lstat`` and
``refresh/sum_lstat`` (files git lstat-ed) from ``GIT_TRACE2_PERF``. Rounds interleave the
sides (each goes first in every other round). Written to
``bench/results/backend1-<UTC stamp>.json``.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import time
from pathlib import Path

from .abkit import RESULTS, avfs_bin, load, order, print_loads, scratch, seed_tree, worktrees, write_json
from .coldab import _env
from .env import utc_stamp

CGROUPS = Path("/sys/fs/cgroup/cpuacct")


class Group:
    """A cpuacct cgroup of this run's (removed by :meth:`close` once empty)."""

    def __init__(self, name: str) -> None:
        self.path = CGROUPS / f"h-backend1-{os.getpid()}-{name}"
        self.path.mkdir()

    def usage_ms(self) -> float:
        return int((self.path / "cpuacct.usage").read_text()) / 1e6

    def enter(self) -> None:
        (self.path / "cgroup.procs").write_text(str(os.getpid()))

    def close(self) -> None:
        for _ in range(50):
            try:
                self.path.rmdir()
                return
            except OSError:
                time.sleep(0.1)


def _mount(avfs: str, env: dict[str, str], group: Group, backend: str) -> str:
    out = subprocess.run(
        [avfs, "--vault", "p:f1", "mount", "--backend", backend],
        env=env, preexec_fn=group.enter, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return out.strip().splitlines()[-1]


def _status(mp: str, group: Group, trace: Path | None = None) -> tuple[str, float]:
    env = dict(os.environ)
    if trace is not None:
        env["GIT_TRACE2_PERF"] = str(trace)
    t0 = time.perf_counter()
    st = subprocess.run(
        ["git", "status", "--porcelain"],
        cwd=mp,
        env=env,
        preexec_fn=group.enter,
        capture_output=True,
        text=True,
    )
    wall = (time.perf_counter() - t0) * 1000
    if st.returncode != 0 or st.stdout != "?? n.txt\n":
        raise RuntimeError(f"git status: {st.returncode} {st.stdout!r} {st.stderr!r}")
    return st.stdout, wall


def _round(
    avfs: str, env: dict[str, str], group: Group, first: str, then: str, trace: Path
) -> dict[str, float]:
    mp = _mount(avfs, env, group, first)
    _status(mp, group)  # (git's index and token, kept at the unmount)
    subprocess.run([avfs, "unmount", "p:f1"], env=env, capture_output=True, check=True)
    u0 = group.usage_ms()
    mp = _mount(avfs, env, group, then)
    time.sleep(0.3)
    u1 = group.usage_ms()
    trace.unlink(missing_ok=True)
    _, wall = _status(mp, group, trace)
    time.sleep(0.3)
    u2 = group.usage_ms()
    subprocess.run([avfs, "unmount", "p:f1"], env=env, capture_output=True, check=True)
    text = trace.read_text()
    lstat = sum(int(n) for n in re.findall(r"(?:preload|refresh)/sum_lstat:(\d+)", text))
    scan = sum(int(n) for n in re.findall(r"refresh/sum_scan:(\d+)", text))
    return {
        "mount_cpu_ms": u1 - u0,
        "status_cpu_ms": u2 - u1,
        "status_ms": wall,
        "lstat": lstat,
        "scan": scan,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--files", type=int, default=10000)
    ap.add_argument("--switches", default="overlay:fuse,fuse:overlay,overlay:overlay")
    ap.add_argument("sides", nargs="+", help="NAME=WORKTREE")
    args = ap.parse_args()
    trees = worktrees(args.sides)
    switches = [tuple(s.split(":")) for s in args.switches.split(",")]
    got: dict[str, dict[str, list[dict[str, float]]]] = {
        f"{a}->{b}": {s: [] for s in trees} for a, b in switches
    }
    loads: list[float] = []
    groups = {s: Group(s) for s in trees}
    try:
        with scratch("avfs-backendswitchab-") as tmp:
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
            for i in range(args.rounds):
                loads.append(load())
                for a, b in switches:
                    for side in order(list(trees), i):
                        r = _round(avfs_bin(trees[side]), envs[side], groups[side], a, b, tmp / "trace")
                        got[f"{a}->{b}"][side].append(r)
                        print(f"round {i} {a}->{b} {side}: {r}", flush=True)
            loads.append(load())
    finally:
        for g in groups.values():
            g.close()
    rows = {
        k: {s: {m: round(statistics.median(x[m] for x in xs), 1) for m in xs[0]} for s, xs in sides.items()}
        for k, sides in got.items()
    }
    for k, sides in rows.items():
        for s, r in sides.items():
            print(
                f"{k:17s} {s:6s} mount cpu {r['mount_cpu_ms']:7.1f} ms; first git status cpu {r['status_cpu_ms']:8.1f} ms, wall {r['status_ms']:8.1f} ms, "
                f"lstat {r['lstat']:7.0f}, hashed {r['scan']:3.0f}"
            )
    print_loads(loads)
    write_json(
        RESULTS / f"backend1-{utc_stamp()}.json",
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
