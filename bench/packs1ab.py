"""A/B: a long session of committing `proxy exec` calls in one mount (h-packs1): the vault's
packs along the way and after, and what each call costs the caller, base against head,
interleaved.

Each side: vault ``p`` of 50 files, fork ``p:f1`` mounted on the overlay (no server: each
call a real `avfs proxy exec` process, answered by the mount's daemon). Then EXECS rounds,
the sides' order turning each round: one committing call (``sh -c 'echo N > d0/f0.txt'``)
timed end to end, then the vault's packs counted (git's count: those without a ``.keep``);
every 10th round a `proxy exec -- true` and a plain `true` timed too (the warm overhead row
of docs/benchmarks.md). At the end each vault's packs, loose objects and `git fsck`.

``--lazy``: the vault a partial clone (``vault clone --lazy`` of a ``file://`` repository of
the same 50 files): its promisor packs counted too.

Usage: python -m bench.packs1ab BASE=WORKTREE HEAD=WORKTREE [--execs 200] [--lazy]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
from pathlib import Path
from typing import Any

from .abkit import (
    RESULTS,
    call,
    load,
    mounted_sides,
    order,
    scratch,
    seed_tree,
    timed_ms,
    worktrees,
    write_json,
)
from .env import utc_stamp

GIT_PACK_LIMIT = 50


def _packs(vault: str) -> int:
    names = set(os.listdir(os.path.join(vault, "objects", "pack")))
    return sum(
        1 for n in names if n.startswith("pack-") and n.endswith(".idx") and n[:-4] + ".keep" not in names
    )


def _lazy_sides(
    tmp: Path, trees: dict[str, str], src: Path
) -> tuple[dict[str, dict[str, str]], dict[str, list[str]], dict[str, Path]]:
    """:func:`.abkit.mounted_sides` for a lazy vault: ``src`` made a git repository that
    allows filters, each side's vault ``p`` a partial clone of it, fork ``p:f1`` mounted."""
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "src"],
                 ["config", "uploadpack.allowFilter", "true"]):  # fmt: skip
        subprocess.run(["git", "-C", str(src), *args], check=True, capture_output=True)
    envs: dict[str, dict[str, str]] = {}
    avfs: dict[str, list[str]] = {}
    mps: dict[str, Path] = {}
    for side, tree in trees.items():
        env = {**os.environ, "AVFS_HOME": str(tmp / f"home-{side}"), "AVFS_SERVER": "off",
               "AVFS_PROGRESS": "never", "PYTHONPATH": tree}  # fmt: skip
        envs[side] = env
        avfs[side] = [str(Path(tree, ".venv", "bin", "python")), "-m", "avfs_git"]
        call(avfs[side], env, "vault", "clone", "--lazy", f"file://{src}", "p")
        call(avfs[side], env, "vault", "fork", "p:main", "f1")
        mps[side] = tmp / f"mp-{side}"
        mps[side].mkdir()
        call(avfs[side], env, "--vault", "p:f1", "mount", "--backend", "overlay", str(mps[side]))
    return envs, avfs, mps


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("sides", nargs=2, help="NAME=WORKTREE")
    ap.add_argument("--execs", type=int, default=200)
    ap.add_argument(
        "--lazy", action="store_true", help="a lazy vault (a partial clone of a file:// repository)"
    )
    args = ap.parse_args()
    trees = worktrees(args.sides)
    names = list(trees)
    loads = [load()]
    wall: dict[str, dict[str, list[float]]] = {k: {n: [] for n in names} for k in ("commit", "true", "bare")}
    packs: dict[str, list[int]] = {n: [] for n in names}
    with scratch("packs1ab-") as tmp:
        src = tmp / "src"
        seed_tree(src)
        envs, avfs, mps = (
            _lazy_sides(tmp, trees, src) if args.lazy else mounted_sides(tmp, trees, "overlay", src)
        )
        vaults = {n: str(Path(envs[n]["AVFS_HOME"], "vaults", "p.git")) for n in names}
        try:
            for i in range(args.execs):
                for n in order(names, i):
                    head = [*avfs[n], "--json", "--vault", "p:f1", "proxy", "exec", "--"]
                    wall["commit"][n].append(timed_ms([*head, "sh", "-c", f"echo {i} > d0/f0.txt"], envs[n]))
                    packs[n].append(_packs(vaults[n]))
                    if i % 10 == 9:
                        wall["true"][n].append(timed_ms([*head, "true"], envs[n]))
                        wall["bare"][n].append(timed_ms(["true"], envs[n]))
                if i % 50 == 49:
                    loads.append(load())
            end: dict[str, Any] = {}
            for n in names:
                counts = call(["git", "--git-dir", vaults[n], "count-objects", "-v"], envs[n])
                fsck = subprocess.run(
                    ["git", "--git-dir", vaults[n], "fsck", "--no-dangling"], capture_output=True, text=True
                )
                end[n] = {
                    "count_objects": dict(line.split(": ") for line in counts.splitlines()),
                    "fsck_rc": fsck.returncode,
                    "fsck_out": (fsck.stdout + fsck.stderr)[-500:],
                    "commits": int(
                        call(["git", "--git-dir", vaults[n], "rev-list", "--count", "f1"], envs[n])
                    ),
                }
        finally:
            for n in names:
                subprocess.run(
                    [*avfs[n], "--vault", "p:f1", "unmount", str(mps[n])], env=envs[n], capture_output=True
                )
    loads.append(load())
    summary: dict[str, Any] = {}
    for n in names:
        summary[n] = {
            "commit_exec_ms": statistics.median(wall["commit"][n]),
            "true_exec_ms": statistics.median(wall["true"][n]),
            "true_ms": statistics.median(wall["bare"][n]),
            "packs_max": max(packs[n]),
            "packs_end": packs[n][-1],
            "calls_past_git_limit": sum(p > GIT_PACK_LIMIT for p in packs[n]),
            "rolls": sum(b < a for a, b in zip(packs[n], packs[n][1:], strict=False)),
            **end[n],
        }
    base, head = names
    ratios = {
        k: statistics.median(h / b for h, b in zip(wall[k][head], wall[k][base], strict=True))
        for k in ("commit", "true")
    }
    doc = {"case": "packs1ab" + ("-lazy" if args.lazy else ""), "sides": trees, "execs": args.execs, "loads": loads, "summary": summary,
           "median_of_ratios_head_over_base": ratios, "packs": packs, "wall_ms": wall}  # fmt: skip
    kind = "-lazy" if args.lazy else ""
    out = write_json(RESULTS / f"h-packs1-packs1ab{kind}-{utc_stamp()}.json", doc)
    for n in names:
        s = summary[n]
        print(f"{n:5} commit {s['commit_exec_ms']:.1f} ms  true {s['true_exec_ms']:.1f} ms (bare {s['true_ms']:.1f})"
              f"  packs max {s['packs_max']} end {s['packs_end']} past 50: {s['calls_past_git_limit']}"
              f"  rolls {s['rolls']}  loose {s['count_objects']['count']}  fsck {s['fsck_rc']}")  # fmt: skip
    print(f"head/base (median of ratios): {ratios}  load {min(loads):.1f}-{max(loads):.1f}  -> {out}")


if __name__ == "__main__":
    main()
