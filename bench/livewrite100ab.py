"""A 100-file restore and a 100-file merge written through a live mount, A/B (livewrite1,
the thirty-fourth round): on the overlay backend each regular file such a move rewrites is
now unlinked under a read lease (refused, and the file kept, while a process holds it open
for writing), where before it was unlinked at once; on pure FUSE a restore first asks the
mount's daemon which files it holds open.

    python -m bench.livewrite100ab --rounds 11 [--files 2000] [--changed 100] main=/work/main new=/work/h-x

Each side has a home of its own: vault ``p`` of ``--files`` files, fork ``p:f1`` mounted.
Each round, per side (interleaved): ``--changed`` files written in the mount and
checkpointed, then timed in one process: ``checkpoint.restore(p, f1, HEAD~1)`` (the 100
files written back through the mount); then another hand commits new bytes of the same
files onto fork ``f2`` (not mounted, at f1's tip; git plumbing), and timed:
``merge.merge(p, f2, f1)`` (a fast-forward: the 100 files written through the mount).
Wall time and the CPU of that process. Written to
``bench/results/livewrite100ab-h-livewrite1-<time>.json``.
"""

from __future__ import annotations

import os
import statistics
import subprocess
from pathlib import Path

from . import abkit as ab

_INPROC = (
    ab.VAULT_P
    + """
from avfs_git.core.operations import checkpoint, merge
t0, c0 = time.perf_counter(), time.process_time()
if sys.argv[2] == "restore":
    checkpoint.restore(v, "f1", "HEAD~1")
else:
    r = merge.merge(v, "f2", "f1")
t1, c1 = time.perf_counter(), time.process_time()
print((t1 - t0) * 1000, (c1 - c0) * 1000)
"""
)


def main() -> None:
    a = ab.changed_files_args()
    trees = ab.worktrees(a.sides)
    loads: list[float] = []
    out: dict[str, object] = {"files": a.files, "changed": a.changed, "rounds": a.rounds, "sides": trees}
    results: dict[str, object] = {}
    with ab.scratch("livewrite100ab-") as tmp:
        src = Path(ab.seed_tree(tmp / "src", a.files, 20))
        every = sorted(str(p.relative_to(src)) for p in src.rglob("*") if p.is_file())
        changed = every[1 : 1 + a.changed]
        for backend in a.backends.split(","):
            envs, avfs, mps = ab.mounted_sides(tmp, trees, backend, src)
            t: dict[str, dict[str, list[float]]] = {
                f"{op}_{k}": {s: [] for s in trees} for op in ("restore", "merge") for k in ("wall", "cpu")
            }
            try:
                for i in range(a.rounds + 1):
                    loads.append(ab.load())
                    for side in ab.order(list(trees), i):
                        home = tmp / f"home-{backend}-{side}"
                        py = [str(Path(trees[side], ".venv", "bin", "python")), "-c", _INPROC, str(home)]
                        for p in changed:
                            (mps[side] / p).write_text(f"mine {i} {p}\n")
                        ab.call(
                            avfs[side], envs[side], "--vault", "p:f1", "checkpoint", "save", "-m", f"r{i}"
                        )
                        got = ab.call(py, envs[side], "restore").split()
                        assert (mps[side] / changed[0]).read_text() != f"mine {i} {changed[0]}\n"
                        if i:
                            t["restore_wall"][side].append(float(got[0]))
                            t["restore_cpu"][side].append(float(got[1]))
                        vault = str(home / "vaults" / "p.git")
                        tip = subprocess.run(["git", "--git-dir", vault, "rev-parse", "refs/heads/f1"],
                                             check=True, capture_output=True, text=True).stdout.strip()  # fmt: skip
                        subprocess.run(
                            ["git", "--git-dir", vault, "update-ref", "refs/heads/f2", tip], check=True
                        )
                        _other_hand_on(vault, changed, f"theirs {i}", tmp)
                        got = ab.call(py, envs[side], "merge").split()
                        assert (mps[side] / changed[0]).read_text() == f"theirs {i} {changed[0]}\n"
                        if i:
                            t["merge_wall"][side].append(float(got[0]))
                            t["merge_cpu"][side].append(float(got[1]))
            finally:
                for side in trees:
                    subprocess.run(
                        avfs[side] + ["unmount", str(mps[side])], env=envs[side], capture_output=True
                    )
            res: dict[str, dict[str, object]] = {
                side: {f"{k}_ms": statistics.median(v[side]) for k, v in t.items()} for side in trees
            }
            first, *rest = list(trees)
            for side in rest:
                for k, v in t.items():
                    res[side][f"ratio_{k}_vs_{first}"] = statistics.median(
                        x / y for x, y in zip(v[side], v[first], strict=True)
                    )
            for side in trees:
                res[side]["raw"] = {k: v[side] for k, v in t.items()}
            results[backend] = res
            print(backend, {s: {k: v for k, v in r.items() if k != "raw"} for s, r in res.items()})
    out["results"] = results
    out["loads"] = loads
    ab.print_loads(loads)
    ab.write_json(ab.stamped("livewrite100ab-h-livewrite1"), out, announce=True)


def _other_hand_on(vault: str, paths: list[str], text: str, tmp: Path) -> None:
    """New bytes of ``paths`` committed onto fork ``f2`` with git's plumbing (as
    :func:`.adopt100ab._other_hand` does onto ``f1``)."""
    env = {**os.environ, "GIT_INDEX_FILE": str(tmp / "idx2")}

    def g(*args: str, stdin: str | None = None) -> str:
        return subprocess.run(["git", "--git-dir", vault, *args], env=env, input=stdin, check=True,
                              capture_output=True, text=True).stdout.strip()  # fmt: skip

    old = g("rev-parse", "refs/heads/f2")
    g("read-tree", old)
    blobs = g("hash-object", "-w", "--stdin-paths", stdin="".join(_files(tmp, paths, text))).split()
    g("update-index", "--index-info",
      stdin="".join(f"100644 {o}\t{p}\n" for o, p in zip(blobs, paths, strict=True)))  # fmt: skip
    new = g("commit-tree", g("write-tree"), "-p", old, "-m", "another hand")
    g("update-ref", "refs/heads/f2", new, old)
    os.unlink(tmp / "idx2")


def _files(tmp: Path, paths: list[str], text: str) -> list[str]:
    out = []
    for i, p in enumerate(paths):
        f = tmp / f"new2-{i}"
        f.write_text(f"{text} {p}\n")
        out.append(f"{f}\n")
    return out


if __name__ == "__main__":
    main()
