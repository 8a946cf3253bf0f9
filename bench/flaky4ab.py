"""What flaky4's two product changes cost, two builds side by side, rounds interleaved:

- ``reads``: the pure object reader (core/store/objects.py, its pack maps now bounded per
  process) reading every object of a repository of 12 packs, three passes, one reader (no
  pack ever let go: the common case); and ``churn``: 24 such repositories read in turn by a
  reader each, 288 packs, past the bound of 128 (maps let go and made again), one pass;
- ``classify``: the overlay mount's change classifier (core/workspace/upperclassify.py, which
  now passes over swaps' side files) fed 20,000 kernel events (a file created, written and
  closed, in 100 directories), in process, its batches handed to a list.

Each figure is one child process of the build's own interpreter, its CPU time (ms).

    python -m bench.flaky4ab --a /work/h-flaky4-base --b /work/h-flaky4 [--rounds 7] [--out FILE]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

from .abkit import ab_report

_READS = r"""
import os, sys, time
from avfs_git.core.store.objreader import ObjectReader
repos, passes = sys.argv[1].split(","), int(sys.argv[2])
ids = [open(os.path.join(r, "ids")).read().split() for r in repos]
readers = [ObjectReader(r) for r in repos]
t = time.process_time()
for _ in range(passes):
    for r, oids in zip(readers, ids):
        for oid in oids:
            assert r.read(oid) is not None
print((time.process_time() - t) * 1000)
"""

_CLASSIFY = r"""
import os, sys, time, tempfile
from avfs_git.core.workspace.upperwatch import UpperWatch, IN_CREATE, IN_MODIFY, IN_CLOSE_WRITE
up = tempfile.mkdtemp(prefix="flaky4-upper-")
got = []
w = UpperWatch(up, lambda p: None, lambda: [], lambda: "b:0")
w.on_events = got.extend
w._wds = {i + 1: f"d{i}" for i in range(100)}
for i in range(100):
    os.mkdir(os.path.join(up, f"d{i}"))
t = time.process_time()
for n in range(2000):
    wd = n % 100 + 1
    name = f"f{n}.txt"
    for mask in (IN_CREATE, IN_MODIFY, IN_CLOSE_WRITE):
        w._classify(wd, mask, name, 0, True)
    if n % 50 == 49:
        w._flush()
w._flush()
print((time.process_time() - t) * 1000)
assert len(got) == 2000, len(got)
"""


def _repo(path: str, packs: int, per: int) -> None:
    """A bare repository of ``packs`` packs of ``per`` blobs each (and their ids in ``ids``)."""
    subprocess.run(["git", "init", "-q", "--bare", path], check=True)
    ids: list[str] = []
    for p in range(packs):
        tmp = os.path.join(path, "in")
        os.makedirs(tmp, exist_ok=True)
        names = []
        for i in range(per):
            name = os.path.join(tmp, f"{i}")
            with open(name, "w") as fh:
                fh.write(f"blob {p} {i}\n" + "x" * (i % 200))
            names.append(name)
        out = subprocess.run(
            ["git", "--git-dir", path, "hash-object", "-w", "--stdin-paths"],
            input="\n".join(names),
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        shutil.rmtree(tmp)
        subprocess.run(
            ["git", "--git-dir", path, "pack-objects", "-q", os.path.join(path, "objects", "pack", "pack")],
            input="\n".join(out) + "\n",
            capture_output=True,
            text=True,
            check=True,
        )
        subprocess.run(["git", "--git-dir", path, "prune-packed"], check=True)
        ids += out
    with open(os.path.join(path, "ids"), "w") as fh:
        fh.write("\n".join(ids))


def _run(build: str, code: str, *args: str) -> float:
    py = os.path.join(build, ".venv", "bin", "python")
    out = subprocess.run([py, "-c", code, *args], cwd=build, capture_output=True, text=True, check=True)
    return float(out.stdout.split()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--a", required=True)
    ap.add_argument("--b", required=True)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--out")
    args = ap.parse_args(argv)
    work = tempfile.mkdtemp(prefix="flaky4ab-")
    try:
        one = os.path.join(work, "one.git")
        _repo(one, 12, 500)
        many = [os.path.join(work, f"r{i}.git") for i in range(24)]
        for r in many:
            _repo(r, 12, 40)
        cases = {
            "reads": (_READS, one, "3"),
            "churn": (_READS, ",".join(many), "1"),
            "classify": (_CLASSIFY,),
        }
        got: dict[str, dict[str, list[float]]] = {c: {"a": [], "b": []} for c in cases}
        for rnd in range(args.rounds):
            for case, (code, *rest) in cases.items():
                order = ("a", "b") if rnd % 2 == 0 else ("b", "a")
                for side in order:
                    got[case][side].append(_run(getattr(args, side), code, *rest))
        load = os.getloadavg()
        ab_report(args, got, load)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
