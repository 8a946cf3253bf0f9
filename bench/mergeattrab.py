"""The CPU of a merge that goes to libgit2 (files both sides changed), this tree's code
against another's (``--before DIR``), interleaved: whether reading the ``.gitattributes``
that say how paths merge (the thirty-third round, mergeattr1: :mod:`avfs_git.core.store.mergeattrs`)
costs a merge where no attribute file mentions merging (docs/benchmarks.md, mergeattr1's
section).

Trees: the synthetic 10k tree (bench/trees.py) and minimist 1.2.8's npm tarball. Each made
once as a git repository with branches ``ours`` and ``theirs`` off ``main``:

- ``content``: each side changes 500 files of its own and the same ``BOTH`` files, ours
  at their start and theirs at their end (libgit2's text merge, clean);
- ``conflict``: each side changes 500 files of its own and writes the same ``BOTH`` files
  differently (conflicts, returned as data);
- ``attrs``: ``content`` with a root ``.gitattributes`` that names ``merge`` (``*.bin
  -merge``: no file of the tree matches it): the attribute handle is made (this code's
  cost where attributes matter; main reads no attribute file).

Each side's process is its own tree's ``.venv/bin/python`` running this file, so its
``avfs_git`` is that tree's. Each side's vault is cloned from the repository once (untimed), by its own code; then per
round, in turn (the order turned each round), each side's process times ``--reps`` dry-run
merges of ``theirs`` into ``ours`` (``merge(vault, "theirs", "ours", dry_run=True)``: the
merge base, the trivial merge's try, libgit2's merge, the conflicts' classification, a
preview commit where clean; no ref moves, so every rep merges the same) with
``time.process_time``, each rep's CPU; the median per side, kind and tree, and their ratio.

``python -m bench.mergeattrab --before /work/h-mergeattr1-base [--rounds 7] [--reps 5]
[--trees 10k,minimist]``; results in ``bench/results/mergeattr1-<UTC>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
KINDS = ("content", "conflict", "attrs")
OWN, BOTH = 500, 50
WHO = ["-c", "user.name=b", "-c", "user.email=b@example.org"]


def _git(work: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(work), *WHO, *args], check=True, capture_output=True, timeout=600)


def _files(src: Path) -> list[str]:
    return sorted(str(p.relative_to(src)) for p in src.rglob("*") if p.is_file())


def _make(src: Path, kind: str, work: Path) -> Path:
    """The repository of ``kind`` over the files of ``src`` (see the module's text)."""
    shutil.copytree(src, work)
    if kind == "attrs":
        (work / ".gitattributes").write_bytes(b"*.bin -merge\n")
    _git(work, "init", "-q", "-b", "main")
    _git(work, "add", "-A")
    _git(work, "commit", "-qm", "base")
    files = _files(src)
    both = files[:: max(1, len(files) // BOTH)][:BOTH]
    rest = [f for f in files if f not in set(both)]
    own = {"ours": rest[0::2][:OWN], "theirs": rest[1::2][:OWN]}
    for side in ("ours", "theirs"):
        _git(work, "checkout", "-q", "-B", side, "main")
        for f in own[side]:
            with open(work / f, "ab") as fh:
                fh.write(f"{side}\n".encode())
        for f in both:
            p = work / f
            data = p.read_bytes()
            if kind == "conflict":
                p.write_bytes(data + f"{side} both\n".encode())
            else:
                p.write_bytes(b"ours first\n" + data if side == "ours" else data + b"theirs last\n")
        _git(work, "commit", "-qam", side)
    return work


def _source(tree: str, root: Path) -> Path:
    if tree == "minimist":
        sys.path.insert(0, str(REPO))
        from tests import realdata

        return realdata.extract(realdata.npm_tarball("minimist", "1.2.8"), root / "src-minimist")
    from .trees import ensure_tree

    return ensure_tree(tree)


def worker(home_dir: str, repo: str, name: str, reps: int) -> None:
    """In a side's own code (``PYTHONPATH``): its vault ``name`` cloned from ``repo`` once,
    then ``reps`` timed dry-run merges; prints their CPU (s) as JSON."""
    from avfs_git.core.operations import merge as mergeop
    from avfs_git.core.vaults.home import Home
    from avfs_git.mount.side import MOUNT_SIDE

    home = Home(home_dir, author=("b", "b@example.org"), mounts=MOUNT_SIDE, layers="off")
    vault = home.vault(name) if home.exists(name) else home.clone_vault(repo, name)
    out = []
    status = None
    for _ in range(reps):
        t0 = time.process_time()
        res = mergeop.merge(vault, "theirs", "ours", dry_run=True)
        out.append(time.process_time() - t0)
        status = res.status
    print(json.dumps({"cpu": out, "status": status, "conflicts": len(res.conflicts)}))


def _load() -> float:
    return os.getloadavg()[0]


def run(args: argparse.Namespace) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="h-mergeattr1-bench-"))
    sides = {"after": REPO, "before": Path(args.before)}
    res: dict[str, Any] = {"rounds": args.rounds, "reps": args.reps, "load": [], "cases": {}}
    try:
        repos = {}
        for tree in args.trees:
            src = _source(tree, root)
            for kind in KINDS:
                repos[(tree, kind)] = _make(src, kind, root / f"repo-{tree}-{kind}")
        samples: dict[str, dict[str, list[float]]] = {}
        for r in range(args.rounds + 1):  # round 0: each vault cloned, its first merge: untimed
            order = list(sides) if r % 2 == 0 else list(sides)[::-1]
            res["load"].append(_load())
            for (tree, kind), repo in repos.items():
                for side in order:
                    env = {**os.environ, "PYTHONPATH": str(sides[side]), "AVFS_SERVER": "off"}
                    proc = subprocess.run(
                        [str(sides[side] / ".venv/bin/python"), str(Path(__file__).resolve()), "--worker", str(root / f"home-{side}"),
                         str(repo / ".git"), f"{tree}-{kind}", str(args.reps if r else 1)],
                        env=env, cwd=str(sides[side]), capture_output=True, text=True, check=True,
                    )  # fmt: skip
                    got = json.loads(proc.stdout.strip().splitlines()[-1])
                    case = res["cases"].setdefault(f"{tree}/{kind}", {"status": {}})
                    case["status"][side] = [got["status"], got["conflicts"]]
                    if r:
                        samples.setdefault(f"{tree}/{kind}", {}).setdefault(side, []).extend(got["cpu"])
        for case, by_side in samples.items():
            med = {side: statistics.median(v) for side, v in by_side.items()}
            res["cases"][case] |= {
                "median_ms": {s: round(1000 * m, 2) for s, m in med.items()},
                "ratio_after_before": round(med["after"] / med["before"], 3),
                "n": {s: len(v) for s, v in by_side.items()},
            }
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--worker", nargs=4)
    ap.add_argument("--before")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--trees", type=lambda s: s.split(","), default=["10k", "minimist"])
    args = ap.parse_args()
    if args.worker:
        h, repo, name, reps = args.worker
        worker(h, repo, name, int(reps))
        return
    assert args.before, "--before DIR: the other code's tree"
    res = run(args)
    out = REPO / "bench" / "results" / f"mergeattr1-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    out.write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps(res["cases"], indent=1))
    print(out)


if __name__ == "__main__":
    main()
