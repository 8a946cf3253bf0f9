"""git's hooks in a mount, A/B: the wall time of `git status` (git writes its index at every
status in a mount: the fsmonitor token, so `post-index-change` runs) and of a `git commit`
(pre-commit, prepare-commit-msg, commit-msg, post-commit, post-index-change and the
reference-transaction guard), the person having no hooks, interleaved between avfs checkouts.

    python -m bench.hookchainab --rounds 30 [--backend overlay] main=/work/main new=/work/h-x

Each side has a home of its own, a fork ``p:f1`` of 50 files mounted once. Each round, per
side: a file changed, `git status --porcelain` timed, then `git commit -q -a` timed. Written
to ``bench/results/hookchainab-<--branch>-<time>.json`` (the gitmodel24 round: the person's hooks
directory looked up when git runs each hook, where the mount's links had named it as the
mount found it; gitmodel25: pre-commit, pre-merge-commit and pre-push a script each, which
asks the daemon where a config file changed). ``--fsmonitor-off``: each mount's worktree
with `git config --worktree core.fsmonitor false` first (plant5: the first hook of each
of git's commands, prepare-commit-msg and post-index-change among them, a gate script
then; gitmodel27 measured the same option), timed once its daemon has made pre-commit a gate.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import time
from pathlib import Path

from .abkit import (
    avfs_bin,
    load,
    median_of_ratios,
    order,
    print_loads,
    scratch,
    seed_tree,
    stamped,
    worktrees,
    write_json,
)
from .coldab import _env


def _timed(cmd: list[str], cwd: str) -> tuple[float, float]:
    """(wall ms, CPU ms) of ``cmd``: the CPU its process and every one it waited for used
    (git waits for its hooks: theirs is in git's, git's in ours), read by ``wait4``."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, ru = os.wait4(p.pid, 0)
    wall = (time.perf_counter() - t0) * 1000
    if status != 0:
        raise subprocess.CalledProcessError(status, cmd)
    return wall, (ru.ru_utime + ru.ru_stime) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--backend", default="overlay")
    ap.add_argument("--branch", default="h-gitmodel25", help="the branch the results file is named by")
    ap.add_argument(
        "--fsmonitor-off", action="store_true", help="git's fsmonitor off for each mount's worktree"
    )
    ap.add_argument("sides", nargs="+", help="NAME=WORKTREE")
    args = ap.parse_args()
    trees = worktrees(args.sides)
    keys = ("status_ms", "commit_ms", "status_cpu_ms", "commit_cpu_ms")
    got: dict[str, dict[str, list[float]]] = {s: {k: [] for k in keys} for s in trees}
    loads: list[float] = []
    with scratch("avfs-hookchainab-") as tmp:
        src = Path(seed_tree(tmp / "src", files=50, dirs=5))
        envs, mps = {}, {}
        for side, tree in trees.items():
            env = envs[side] = _env(tmp / f"home-{side}")
            for argv in (["vault", "create", "p", "--from", str(src)], ["vault", "fork", "p:main", "f1"]):
                subprocess.run([avfs_bin(tree), *argv], env=env, check=True, capture_output=True)
            mps[side] = subprocess.run(
                [avfs_bin(tree), "--vault", "p:f1", "mount", "--backend", args.backend],
                env=env, capture_output=True, text=True, check=True,
            ).stdout.strip().splitlines()[-1]  # fmt: skip
            if args.fsmonitor_off:
                _fsmonitor_off(mps[side])
        try:
            for i in range(args.rounds + 1):  # round 0 warms the caches, untimed
                loads.append(load())
                for side in order(list(trees), i):
                    mp = mps[side]
                    Path(mp, "d0", "f0.txt").write_text(f"round {i}\n")
                    st = _timed(["git", "status", "--porcelain"], mp)
                    co = _timed(
                        [
                            "git",
                            "-c",
                            "user.name=b",
                            "-c",
                            "user.email=b@x",
                            "commit",
                            "-q",
                            "-a",
                            "-m",
                            f"r{i}",
                        ],
                        mp,
                    )
                    if i:
                        for key, value in zip(keys, (*st[:1], *co[:1], *st[1:], *co[1:]), strict=True):
                            got[side][key].append(value)
            loads.append(load())
        finally:
            for side, tree in trees.items():
                subprocess.run([avfs_bin(tree), "unmount", "p:f1"], env=envs[side], capture_output=True)
    rows = {s: {k: round(statistics.median(v), 1) for k, v in xs.items()} for s, xs in got.items()}
    names = list(trees)
    for s, r in rows.items():
        print(
            f"{s:8s} git status {r['status_ms']:6.1f} ms ({r['status_cpu_ms']:5.1f} CPU),"
            f" git commit {r['commit_ms']:6.1f} ms ({r['commit_cpu_ms']:5.1f} CPU) (medians)"
        )
    ratios = {}
    if len(names) == 2:
        a, b = names[1], names[0]
        ratios = {k: round(median_of_ratios(got[a][k], got[b][k]), 3) for k in keys}
        print(f"{a}/{b} median of per-round ratios: {ratios}")
    print_loads(loads)
    write_json(stamped(f"hookchainab-{args.branch}"), {"rounds": args.rounds, "backend": args.backend, "fsmonitor_off": args.fsmonitor_off, "sides": trees, "loads": loads, "rows": rows, "ratios": ratios, "samples": got}, announce=True)  # fmt: skip


def _fsmonitor_off(mp: str) -> None:
    """git's fsmonitor off for the mount's worktree, and its daemon's switch of pre-commit to
    a gate waited for (an inotify watch of its own)."""
    subprocess.run(["git", "config", "--worktree", "core.fsmonitor", "false"], cwd=mp, check=True)
    hooks = subprocess.run(
        ["git", "rev-parse", "--git-path", "hooks"], cwd=mp, capture_output=True, text=True, check=True
    ).stdout.strip()
    deadline = time.monotonic() + 60
    while not os.readlink(os.path.join(mp, hooks, "pre-commit")).startswith(os.path.join("..", "gates")):
        if time.monotonic() > deadline:
            raise SystemExit("the mount's daemon never made pre-commit a gate")
        time.sleep(0.02)


if __name__ == "__main__":
    main()
