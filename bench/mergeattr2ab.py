"""A merge that goes to libgit2, this tree's code against others' (``--side NAME=DIR``,
e.g. main and the commit before mergeattr1), interleaved, CPU and wall, beside `git
merge-tree --write-tree` of the same branches: whether knowing per tree that no
``.gitattributes`` names merging (the thirty-fourth round, mergeattr2:
:mod:`avfs_git.core.store.attrtrees`) gives back what mergeattr1's walk cost
(docs/benchmarks.md, mergeattr2's section).

Repositories as :mod:`bench.mergeattrab` makes them (the 10k tree and a real project,
each ``content``, ``conflict``, ``attrs``), plus ``content/cold``: ``content`` with this
tree's kept answers dropped before each rep (the vault's ``avfs/attrtrees`` removed and the
store's answers forgotten: every directory of ours' tree read, the worst case, a tree
no merge asked about before; the other sides' code has none to drop).

Each side's process is its own tree's ``.venv/bin/python`` running this file, its
``avfs_git`` that tree's; its vault cloned once (round 0, untimed, one merge). Per round,
in turn (the order turned each round), each side times ``--reps`` dry-run merges of
``theirs`` into ``ours`` (``time.process_time`` and ``time.perf_counter``), and this
process ``--reps`` runs of ``git merge-tree --write-tree ours theirs`` in the repository
(wall, a process each). Medians per side and case, ratios to this tree's.

``python -m bench.mergeattr2ab --side main=/work/h-mergeattr2-base --side
pre=/work/h-mergeattr2-pre [--rounds 7] [--reps 5] [--trees 10k,minimist]``; results in
``bench/results/mergeattr2-<UTC>.json``.

``--incremental``: this tree's code alone, on the 10k ``content`` repository: the CPU of
the kept answer for ``main``'s tree with nothing kept (every directory read), then, in a
fresh store (another process), for ``ours``' (main's kept: only the directories ours
changed read), then ``ours``' again in a fresh store (the kept file read, nothing walked).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
CASES = ("content", "conflict", "attrs", "content/cold")


def worker(home_dir: str, repo: str, name: str, reps: int, cold: bool) -> None:
    """In a side's own code (``PYTHONPATH``): vault ``name`` cloned from ``repo`` once,
    then ``reps`` timed dry-run merges; prints their CPU and wall (s) as JSON."""
    from avfs_git.core.operations import merge as mergeop
    from avfs_git.core.vaults.home import Home
    from avfs_git.mount.side import MOUNT_SIDE

    home = Home(home_dir, author=("b", "b@example.org"), mounts=MOUNT_SIDE, layers="off")
    vault = home.vault(name) if home.exists(name) else home.clone_vault(repo, name)
    cpu, wall = [], []
    res = None
    for _ in range(reps):
        if cold:
            _drop_answers(vault)
        t0, w0 = time.process_time(), time.perf_counter()
        res = mergeop.merge(vault, "theirs", "ours", dry_run=True)
        cpu.append(time.process_time() - t0)
        wall.append(time.perf_counter() - w0)
    assert res is not None
    print(json.dumps({"cpu": cpu, "wall": wall, "status": res.status, "conflicts": len(res.conflicts)}))


def _drop_answers(vault: Any) -> None:
    try:
        from avfs_git.core.store import attrtrees
    except ImportError:
        return  # (code before mergeattr2: nothing kept)
    Path(vault.path, "avfs", attrtrees.FILE).unlink(missing_ok=True)
    attrtrees._OF_STORE.pop(vault.store, None)


def _git_merge_tree(repo: Path, reps: int) -> list[float]:
    out = []
    for _ in range(reps):
        w0 = time.perf_counter()
        subprocess.run(
            ["git", "-C", str(repo), "merge-tree", "--write-tree", "ours", "theirs"],
            capture_output=True, check=False, timeout=600,
        )  # fmt: skip
        out.append(time.perf_counter() - w0)
    return out


def incremental(reps: int) -> dict[str, Any]:
    """See the module's text (``--incremental``)."""
    from avfs_git.core.store import attrtrees
    from avfs_git.core.store.gitstore import GitStore
    from avfs_git.core.store.mergeattrs import WORDS
    from avfs_git.core.vaults.home import Home
    from avfs_git.mount.side import MOUNT_SIDE

    from .mergeattrab import _make, _source

    root = Path(tempfile.mkdtemp(prefix="h-mergeattr2-inc-"))
    try:
        repo = _make(_source("10k", root), "content", root / "repo")
        home = Home(str(root / "home"), author=("b", "b@example.org"), mounts=MOUNT_SIDE, layers="off")
        vault = home.clone_vault(str(repo / ".git"), "v")
        main_t, ours_t = (vault.store.commit_tree(str(vault.store.rev_parse(b))) for b in ("main", "ours"))
        kept = Path(vault.path, "avfs", attrtrees.FILE)
        times: dict[str, list[float]] = {"main, nothing kept": [], "ours, main kept": [], "ours, kept": []}
        for _ in range(reps):
            kept.unlink(missing_ok=True)
            for what, tree in zip(times, (main_t, ours_t, ours_t), strict=True):
                store = GitStore(vault.path)
                t0 = time.process_time()
                attrtrees.of_store(store).names_merging(store, tree, WORDS)
                times[what].append(time.process_time() - t0)
        out: dict[str, Any] = {k: round(1000 * statistics.median(v), 2) for k, v in times.items()}
        return {
            "cpu_median_ms": out,
            "reps": reps,
            "records": kept.stat().st_size // 21,
            "load": os.getloadavg()[0],
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from .mergeattrab import _make, _source

    root = Path(tempfile.mkdtemp(prefix="h-mergeattr2-bench-"))
    sides = {"after": REPO} | {k: Path(v) for k, v in (s.split("=", 1) for s in args.side)}
    res: dict[str, Any] = {
        "rounds": args.rounds,
        "reps": args.reps,
        "sides": {k: str(v) for k, v in sides.items()},
    }
    res |= {"load": [], "cases": {}}
    try:
        repos = {}
        for tree in args.trees:
            src = _source(tree, root)
            for kind in ("content", "conflict", "attrs"):
                repos[(tree, kind)] = _make(src, kind, root / f"repo-{tree}-{kind}")
        samples: dict[str, dict[str, dict[str, list[float]]]] = {}
        for r in range(args.rounds + 1):  # round 0: each vault cloned, its first merge: untimed
            order = list(sides) if r % 2 == 0 else list(sides)[::-1]
            res["load"].append(os.getloadavg()[0])
            for tree in args.trees:
                for case in CASES:
                    kind, cold = case.split("/")[0], case.endswith("/cold")
                    repo = repos[(tree, kind)]
                    key = f"{tree}/{case}"
                    for side in order:
                        env = {**os.environ, "PYTHONPATH": str(sides[side]), "AVFS_SERVER": "off"}
                        proc = subprocess.run(
                            [str(sides[side] / ".venv/bin/python"), str(Path(__file__).resolve()), "--worker",
                             str(root / f"home-{side}"), str(repo / ".git"), f"{tree}-{kind}",
                             str(args.reps if r else 1), "1" if cold else "0"],
                            env=env, cwd=str(sides[side]), capture_output=True, text=True, check=True,
                        )  # fmt: skip
                        got = json.loads(proc.stdout.strip().splitlines()[-1])
                        res["cases"].setdefault(key, {"status": {}})["status"][side] = [
                            got["status"],
                            got["conflicts"],
                        ]
                        if r:
                            by = samples.setdefault(key, {}).setdefault(side, {"cpu": [], "wall": []})
                            by["cpu"] += got["cpu"]
                            by["wall"] += got["wall"]
                    if r and not cold:
                        git = samples.setdefault(key, {}).setdefault(
                            "git merge-tree", {"cpu": [], "wall": []}
                        )
                        git["wall"] += _git_merge_tree(repo, args.reps)
        for key, by_side in samples.items():
            out: dict[str, Any] = {}
            for what in ("cpu", "wall"):
                med = {s: statistics.median(v[what]) for s, v in by_side.items() if v[what]}
                out[f"{what}_median_ms"] = {s: round(1000 * m, 2) for s, m in med.items()}
                out[f"{what}_ratio_after_to"] = {
                    s: round(med["after"] / m, 3) for s, m in med.items() if s != "after"
                }
            out["n"] = {s: len(v["wall"]) for s, v in by_side.items()}
            res["cases"][key] |= out
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--worker", nargs=5)
    ap.add_argument("--side", action="append", default=[], help="NAME=DIR: another tree's code")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--trees", type=lambda s: s.split(","), default=["10k", "minimist"])
    ap.add_argument("--out", default="")
    ap.add_argument("--incremental", action="store_true")
    args = ap.parse_args()
    if args.worker:
        h, repo, name, reps, cold = args.worker
        worker(h, repo, name, int(reps), cold == "1")
        return
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out = Path(args.out) if args.out else REPO / "bench" / "results" / f"mergeattr2-{stamp}.json"
    if args.incremental:
        got = incremental(max(args.reps, 9))
        out.write_text(json.dumps(got, indent=1) + "\n")
        print(json.dumps(got, indent=1))
        return
    assert args.side, "--side NAME=DIR: another tree's code"
    res = run(args)
    out.write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps(res["cases"], indent=1))
    print(out)


if __name__ == "__main__":
    main()
