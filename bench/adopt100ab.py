"""Another hand's commit of 100 files adopted in a mounted fork, A/B (adopt3, the
thirty-fourth round): on the overlay backend each file the adoption follows is now written
beside itself and swapped in (``renameat2(RENAME_EXCHANGE)``), what came out looked at under
a read lease and unlinked, where adopt2 compared it and wrote it over (unlink, create).

    python -m bench.adopt100ab --rounds 11 [--files 2000] [--changed 100] main=/work/main new=/work/h-x

Each side has a home of its own: vault ``p`` of ``--files`` files, fork ``p:f1`` mounted,
one file changed in the mount (so the commit is adopted under uncheckpointed changes:
:mod:`avfs_git.core.workspace.wsadopt`). Each round another hand commits new bytes of
``--changed`` other files onto ``f1`` (``git hash-object``, ``update-index``,
``commit-tree``, ``update-ref`` on the vault), then one process opens the workspace
(``Vault.workspace("f1")``, what every command does first: the adoption), timed in wall
time (the mount's daemon serves the writes' lower-layer reads meanwhile) and in the CPU of
that process; the sides interleaved. A round whose open did not adopt (the fork lock busy:
the mount's daemon still at the round before's) is timed all the same, counted in
``not_adopted_at_first``, and opened again until adopted before the next. Written to
``bench/results/adopt100ab-h-adopt3-<time>.json``.
"""

from __future__ import annotations

import statistics
import subprocess
from pathlib import Path

from . import abkit
from .abkit import call, load, order, print_loads, scratch, seed_tree, stamped, worktrees, write_json

_INPROC = """
import sys, time
from avfs_git.core.vaults.home import Home
from avfs_git.mount.side import MOUNT_SIDE
home = Home(sys.argv[1], mounts=MOUNT_SIDE)
v = home.vault("p")
t0, c0 = time.perf_counter(), time.process_time()
ws = v.workspace("f1")
t1, c1 = time.perf_counter(), time.process_time()
first = ws.base == ws.tip()
for _ in range(100):  # (the fork lock busy, the mount's daemon still at the last round's: later)
    if ws.base == ws.tip():
        break
    time.sleep(0.1)
    ws = v.workspace("f1")
assert ws.base == ws.tip(), f"not adopted: {ws.unadopted}"
print((t1 - t0) * 1000, (c1 - c0) * 1000, int(first))
"""


def main() -> None:
    a = abkit.changed_files_args()
    trees = worktrees(a.sides)
    loads: list[float] = []
    out: dict[str, object] = {"files": a.files, "changed": a.changed, "rounds": a.rounds, "sides": trees}
    results: dict[str, object] = {}
    with scratch("adopt100ab-") as tmp:
        src = Path(seed_tree(tmp / "src", a.files, 20))
        every = sorted(str(p.relative_to(src)) for p in src.rglob("*") if p.is_file())
        mine = every[0]
        changed = every[1 : 1 + a.changed]
        for backend in a.backends.split(","):
            envs, avfs, mps = abkit.mounted_sides(tmp, trees, backend, src)
            for side in trees:
                (mps[side] / mine).write_text("the person's\n")
            wall: dict[str, list[float]] = {s: [] for s in trees}
            cpu: dict[str, list[float]] = {s: [] for s in trees}
            late = dict.fromkeys(trees, 0)  # rounds whose first open did not adopt (timed all the same)
            try:
                for i in range(a.rounds + 1):
                    loads.append(load())
                    for side in order(list(trees), i):
                        home = tmp / f"home-{backend}-{side}"
                        abkit.other_hand(
                            str(home / "vaults" / "p.git"),
                            "f1",
                            {p: f"round {i} {p}\n" for p in changed},
                            tmp,
                        )
                        got = call(
                            [str(Path(trees[side], ".venv", "bin", "python")), "-c", _INPROC],
                            envs[side],
                            str(home),
                        ).split()
                        assert (mps[side] / changed[0]).read_text() == f"round {i} {changed[0]}\n"
                        if i:  # (round 0 warms the caches)
                            wall[side].append(float(got[0]))
                            cpu[side].append(float(got[1]))
                            late[side] += 1 - int(got[2])
            finally:
                for side in trees:
                    subprocess.run(
                        avfs[side] + ["unmount", str(mps[side])], env=envs[side], capture_output=True
                    )
            res: dict[str, dict[str, object]] = {
                side: {
                    "adopt_wall_ms": statistics.median(wall[side]),
                    "adopt_cpu_ms": statistics.median(cpu[side]),
                    "not_adopted_at_first": late[side],
                    "raw": {"wall": wall[side], "cpu": cpu[side]},
                }
                for side in trees
            }
            first, *rest = list(trees)
            for side in rest:
                res[side]["ratio_wall_vs_" + first] = statistics.median(
                    x / y for x, y in zip(wall[side], wall[first], strict=True)
                )
                res[side]["ratio_cpu_vs_" + first] = statistics.median(
                    x / y for x, y in zip(cpu[side], cpu[first], strict=True)
                )
            results[backend] = res
            print(backend, {s: {k: v for k, v in r.items() if k != "raw"} for s, r in res.items()})
    out["results"] = results
    out["loads"] = loads
    print_loads(loads)
    write_json(stamped("adopt100ab-h-adopt3"), out, announce=True)


if __name__ == "__main__":
    main()
