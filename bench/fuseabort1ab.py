"""What fuseabort1's change to an overlay mount's start costs, two builds side by side,
rounds interleaved: the daemon's listing of the directories where the upper layer merges
with a lower one (fuse/stacking.py ``_list_merged``), done before the mount answers, now
runs as a child ``ls -f`` instead of in a thread of the daemon (docs/fuse.md "A killed
daemon's connection").

- ``mount``: ``avfs mount --backend overlay`` of a fork whose upper layer holds a change in
  each of 5 directories (of 50 files), wall time until it answers;
- ``first_status``: ``git status --porcelain`` in it right after (what the listing is for:
  the directories it lists are those that status lists).

The fork is unmounted after each round (untimed).

    python -m bench.fuseabort1ab --a /work/h-fuseabort1-base --b /work/h-fuseabort1 [--rounds 11] [--out FILE]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import time
from pathlib import Path

from .abkit import ab_report, call, load, order, scratch, seed_tree


def _side(tmp: Path, tree: str, name: str, src: str) -> tuple[list[str], dict[str, str], Path]:
    env = {**os.environ, "AVFS_HOME": str(tmp / f"home-{name}"), "AVFS_SERVER": "off",
           "AVFS_PROGRESS": "never", "PYTHONPATH": tree}  # fmt: skip
    head = [str(Path(tree, ".venv", "bin", "python")), "-m", "avfs_git"]
    call(head, env, "vault", "create", "p", "--from", src)
    call(head, env, "vault", "fork", "p:main", "f1")
    mp = tmp / f"mp-{name}"
    mp.mkdir()
    call(head, env, "--vault", "p:f1", "mount", "--backend", "overlay", str(mp))
    for d in range(5):  # a change in each directory: in the upper layer, merged with the lower
        (mp / f"d{d}" / f"f{d}.txt").write_text("changed\n")
        (mp / f"d{d}" / "new.txt").write_text("new\n")
    call(head, env, "--vault", "p:f1", "unmount")
    return head, env, mp


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--a", required=True)
    ap.add_argument("--b", required=True)
    ap.add_argument("--rounds", type=int, default=11)
    ap.add_argument("--out")
    args = ap.parse_args(argv)
    loads: list[float] = []
    got: dict[str, dict[str, list[float]]] = {"mount": {"a": [], "b": []}, "first_status": {"a": [], "b": []}}
    with scratch("fuseabort1ab-") as tmp:
        src = seed_tree(tmp / "src")
        sides = {n: _side(tmp, tree, n, src) for n, tree in (("a", args.a), ("b", args.b))}
        try:
            for i in range(args.rounds + 1):  # round 0 warms the caches, untimed
                loads.append(load())
                for n in order(["a", "b"], i):
                    head, env, mp = sides[n]
                    t0 = time.perf_counter()
                    call(head, env, "--vault", "p:f1", "mount", "--backend", "overlay", str(mp))
                    t1 = time.perf_counter()
                    subprocess.run(["git", "status", "--porcelain"], cwd=mp, check=True, capture_output=True)
                    t2 = time.perf_counter()
                    call(head, env, "--vault", "p:f1", "unmount")
                    if i:
                        got["mount"][n].append((t1 - t0) * 1000)
                        got["first_status"][n].append((t2 - t1) * 1000)
        finally:
            for head, env, _mp in sides.values():
                subprocess.run([*head, "--vault", "p:f1", "unmount", "--lazy"], env=env, capture_output=True)
    loads.append(load())
    ab_report(args, got, loads)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
