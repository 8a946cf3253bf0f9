"""The cold CLI, A/B: each frequent command as a process of its own with no resident server
(``AVFS_SERVER=off``: what the test suite runs, and a person's first call), its CPU (user +
system of the process and what it waited for) and modules, interleaved between avfs
checkouts and ``python -S -c pass`` in the same rounds.

    python -m bench.coldab --rounds 15 base=/work/base-x new=/work/h-x [--only status,log]

Each side runs its checkout's console script (``make install``'s) in a home of its own (a
20-file vault ``p``, its fork ``f1`` with one change), from a temporary directory. Printed per
command: each side's median CPU and wall, and the median of per-round CPU ratios against the
first side; the modules a call loads (``-X importtime``'s lines, one run). Written to
``bench/results/coldab-<time>.json``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import time
from pathlib import Path

from .abkit import avfs_bin, load, order, print_loads, scratch, seed_tree, stamped, worktrees, write_json
from .spareab import Group

# name -> arguments (after the console script); {i}: the round's number
COMMANDS: dict[str, list[str]] = {
    "help": ["--help"],
    "status": ["--vault", "p:f1", "status"],
    "status_json": ["--json", "--vault", "p:f1", "status"],
    # a fork whose upper layer outlived its overlay mount (a file left in it, made untimed)
    "status_upper_json": ["--json", "--vault", "p:u", "status"],
    "diff_stat": ["--vault", "p:f1", "diff", "--stat"],
    "log": ["--vault", "p:f1", "log", "-n", "3"],
    "log_json": ["--json", "--vault", "p:f1", "log", "-n", "3"],
    "cat": ["--vault", "p:f1", "cat", "d0/f0.txt"],
    "diff_json": ["--json", "--vault", "p:f1", "diff"],
    "write": ["--vault", "p:f1", "write", "w{i}.txt", "text"],
    "save_json": ["--json", "--vault", "p:f1", "checkpoint", "save", "-m", "round {i}"],
    "fork_json": ["--json", "vault", "fork", "p:f1", "c{i}"],
    "fork": ["vault", "fork", "p:f1", "h{i}"],
    "save": ["--vault", "p:f1", "checkpoint", "save", "-m", "person {i}"],
    "create_json": ["--json", "vault", "create", "v{i}"],
    "merge_json": ["--json", "--vault", "p:main", "merge", "c{i}"],
    "unmount": ["unmount", "p:f1"],  # (not mounted: the answer all the same)
    # the commands the suite's processes call most after those (twenty-second round)
    "ls_json": ["--json", "--vault", "p:f1", "ls"],
    "stat_json": ["--json", "--vault", "p:f1", "stat", "d0/f0.txt"],
    "list_json": ["--json", "--vault", "p:f1", "checkpoint", "list"],
    "restore_json": ["--json", "--vault", "p:f1", "checkpoint", "restore", "main"],
    "undo": ["--vault", "p:f1", "undo"],
    "vault_list_json": ["--json", "vault", "list"],
    "vault_info": ["vault", "info", "p"],
    "create": ["vault", "create", "w{i}"],
}


# a file in fork u's upper layer, as an overlay mount leaves it
UPPER = (
    "import os; from avfs_git.mount.side import open_home; "
    "u = open_home(os.environ['AVFS_HOME']).vault('p').workspace('u').overlay.upper_dir; "
    "os.makedirs(u, exist_ok=True); open(os.path.join(u, 'up.txt'), 'w').write('up')"
)


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AVFS_", "PYTHON"))}
    return {
        **env,
        "AVFS_HOME": str(home),
        "AVFS_SERVER": "off",
        "AVFS_LAYERS": "off",
        "AVFS_PROGRESS": "never",
    }


def _timed(argv: list[str], env: dict[str, str], group: Group | None = None) -> tuple[float, float, int]:
    """CPU ms, wall ms and exit code of ``argv``: with ``group`` (``--cgroup``) the CPU a
    cpuacct cgroup of the run's own counted for the process and everything it started, read
    once they have all ended; else the process's and its reaped children's."""
    before = group.usage_ms() if group is not None else 0.0
    t0 = time.perf_counter()
    p = subprocess.Popen(
        argv,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=group.enter if group is not None else None,
    )
    _, status, ru = os.wait4(p.pid, 0)
    wall = (time.perf_counter() - t0) * 1000
    p.returncode = os.waitstatus_to_exitcode(status)
    if group is None:
        return (ru.ru_utime + ru.ru_stime) * 1000, wall, p.returncode
    for _ in range(100):  # (a process it started and did not wait for: counted once it ends)
        if not (group.path / "cgroup.procs").read_text().split():
            break
        time.sleep(0.05)
    return group.usage_ms() - before, wall, p.returncode


def _modules(argv: list[str], env: dict[str, str]) -> int:
    p = subprocess.run(argv, env={**env, "PYTHONPROFILEIMPORTTIME": "1"}, capture_output=True, text=True)
    return sum(1 for line in p.stderr.splitlines() if line.startswith("import time:")) - 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--only", default="", help="commands, comma-separated (default: all)")
    ap.add_argument("--prefix", default="coldab", help="the results file's name before its time")
    ap.add_argument(
        "--cgroup", action="store_true", help="CPU from a cpuacct cgroup (root): all a call started"
    )
    ap.add_argument("sides", nargs="+", help="NAME=WORKTREE")
    args = ap.parse_args()
    group = Group("coldab") if args.cgroup else None
    trees = worktrees(args.sides)
    names = [c for c in COMMANDS if not args.only or c in args.only.split(",")]
    cpu: dict[str, dict[str, list[float]]] = {c: {s: [] for s in [*trees, "python"]} for c in names}
    wall: dict[str, dict[str, list[float]]] = {c: {s: [] for s in [*trees, "python"]} for c in names}
    mods: dict[str, dict[str, int]] = {c: {} for c in names}
    loads: list[float] = []
    python = str(Path(next(iter(trees.values())), ".venv", "bin", "python"))
    with scratch("avfs-coldab-") as tmp:
        src = Path(seed_tree(tmp / "src", files=20, dirs=4))
        envs = {}
        for side, tree in trees.items():
            env = envs[side] = _env(tmp / f"home-{side}")
            avfs = avfs_bin(tree)
            subprocess.run(
                [avfs, "vault", "create", "p", "--from", str(src)], env=env, check=True, capture_output=True
            )
            subprocess.run([avfs, "vault", "fork", "p:main", "f1"], env=env, check=True, capture_output=True)
            subprocess.run(
                [avfs, "--vault", "p:f1", "write", "n.txt", "x"], env=env, check=True, capture_output=True
            )
            subprocess.run([avfs, "vault", "fork", "p:main", "u"], env=env, check=True, capture_output=True)
            subprocess.run([str(Path(tree, ".venv", "bin", "python")), "-c", UPPER], env=env, check=True)
        for i in range(args.rounds + 1):  # round 0 warms the caches, untimed
            loads.append(load())
            for c in names:
                for side in order([*trees, "python"], i):
                    if side == "python":
                        got = _timed([python, "-S", "-c", "pass"], envs[next(iter(trees))], group)
                    else:
                        if c == "merge_json":  # a fork to merge, made untimed
                            subprocess.run(
                                [avfs_bin(trees[side]), "vault", "fork", "p:f1", f"c{i}"],
                                env=envs[side],
                                capture_output=True,
                            )
                        argv = [avfs_bin(trees[side]), *(a.format(i=i) for a in COMMANDS[c])]
                        if c == "merge_json":
                            argv[-1] = f"c{i}"
                        got = _timed(argv, envs[side], group)
                        if got[2] not in (0, 3) and i == 1:
                            print(f"  {side} {c}: exit {got[2]}")
                    if i:
                        cpu[c][side].append(got[0])
                        wall[c][side].append(got[1])
        loads.append(load())
        for c in names:
            for side, tree in trees.items():
                argv = [avfs_bin(tree), *(a.format(i=99) for a in COMMANDS[c])]
                mods[c][side] = _modules(argv, envs[side])
    first = next(iter(trees))
    rows = {}
    for c in names:
        row = {}
        for side in [*trees, "python"]:
            row[side] = {
                "cpu_ms": round(statistics.median(cpu[c][side]), 2),
                "wall_ms": round(statistics.median(wall[c][side]), 2),
                "cpu_vs_first": round(
                    statistics.median(a / b for a, b in zip(cpu[c][side], cpu[c][first], strict=True)), 3
                ),
                "modules": mods[c].get(side),
            }
        rows[c] = row
        print(
            f"{c:12s} "
            + "  ".join(
                f"{s}: cpu {r['cpu_ms']:.1f} ms ({r['cpu_vs_first']:.2f}x) wall {r['wall_ms']:.1f}"
                + (f" mods {r['modules']}" if r["modules"] is not None else "")
                for s, r in row.items()
            )
        )
    print_loads(loads)
    if group is not None:
        group.close()
    write_json(
        stamped(args.prefix),
        {
            "rounds": args.rounds,
            "sides": trees,
            "cpu": "cgroup" if group is not None else "rusage",
            "loads": loads,
            "commands": rows,
            "cpu_samples": cpu,
        },
        announce=True,
    )


if __name__ == "__main__":
    main()
