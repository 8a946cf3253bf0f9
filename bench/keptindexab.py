"""What an unmount's reading of git's index for the hold of its kept state costs
(mount/gitkepthold.py ``index_ids``) on a 100,000-entry index (bench/trees.py's shape,
git's own index, its cache tree whole, then 0, 1 or 100 files staged), before (the
base worktree's module, default /work/h-gitmodel23-base) and after (this tree's: the
entries a valid cache-tree node covers stepped over by its entry count, gitmodel23),
interleaved, process CPU, medians; beside them what the other readers cost: `git ls-files
--stage` (a git process, its CPU and its output parsed) and pygit2's ``Index`` (libgit2
reads it, every entry made a Python object). Run: ``.venv/bin/python -m bench.keptindexab
[BASE_DIR] [--out FILE]``."""

from __future__ import annotations

import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

from avfs_git.mount import gitkepthold

from .trees import file_path

FILES = 100_000
ROUNDS = 9


def _git(repo: str, *args: str, stdin: str | None = None) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, input=stdin, capture_output=True, text=True, check=True
    ).stdout.strip()


def _base_module(base: str) -> types.ModuleType:
    path = os.path.join(base, "avfs_git", "mount", "gitkepthold.py")
    mod = types.ModuleType("avfs_git.mount.gitkepthold_base")
    mod.__package__ = "avfs_git.mount"
    with open(path) as fh:
        exec(compile(fh.read(), path, "exec"), mod.__dict__)  # (our own file, the base's)
    return mod


def _index(repo: str, staged: int) -> bytes:
    """The 100,000-entry index with ``staged`` files staged over its whole cache tree."""
    blob = _git(repo, "hash-object", "-w", "--stdin", stdin="same\n")
    rows = "".join(f"100644 {blob}\t{file_path(i)}\n" for i in range(FILES))
    index = os.path.join(repo, ".git", "index")
    if os.path.exists(index):
        os.unlink(index)
    _git(repo, "update-index", "--add", "--index-info", stdin=rows)
    _git(repo, "write-tree")
    if staged:
        new = _git(repo, "hash-object", "-w", "--stdin", stdin="staged\n")
        step = FILES // staged
        info = "".join(f"100644 {new}\t{file_path(i * step + 7)}\n" for i in range(staged))
        _git(repo, "update-index", "--index-info", stdin=info)
    with open(index, "rb") as fh:
        return fh.read()


def _cpu_ms(fn: object) -> float:
    t = time.process_time_ns()
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    fn()  # type: ignore[operator]
    d = resource.getrusage(resource.RUSAGE_CHILDREN)
    kids = (d.ru_utime - c.ru_utime) + (d.ru_stime - c.ru_stime)
    return (time.process_time_ns() - t) / 1e6 + kids * 1000


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    out = sys.argv[sys.argv.index("--out") + 1] if "--out" in sys.argv else None
    if out in args:
        args.remove(out)
    base = args[0] if args else "/work/h-gitmodel23-base"
    before = _base_module(base)
    repo = tempfile.mkdtemp(prefix="keptindexab-")
    results: dict[str, dict[str, float]] = {}
    try:
        _git(repo, "init", "-q")
        git_dir = os.path.join(repo, ".git")
        import pygit2

        for staged in (0, 1, 100):
            data = _index(repo, staged)
            want = before.index_ids(git_dir, data)
            assert gitkepthold.index_ids(git_dir, data) == want  # (the same answer)

            def ls_files() -> None:
                text = _git(repo, "ls-files", "--stage", "-z")
                [r.split("\t", 1) for r in text.split("\0") if r]

            def pygit2_index() -> None:
                idx = pygit2.Index(os.path.join(git_dir, "index"))
                [(e.path, e.id) for e in idx]

            sides = {
                "before": lambda d=data: before.index_ids(git_dir, d),
                "after": lambda d=data: gitkepthold.index_ids(git_dir, d),
                "git_ls_files": ls_files,
                "pygit2_index": pygit2_index,
            }
            got: dict[str, list[float]] = {k: [] for k in sides}
            for _ in range(ROUNDS):  # interleaved
                for name, fn in sides.items():
                    got[name].append(_cpu_ms(fn))
            med = {k: round(statistics.median(v), 1) for k, v in got.items()}
            med["ratio_after_before"] = round(med["after"] / med["before"], 3) if med["before"] else 0.0
            results[f"staged_{staged}"] = med
            print(f"{staged} staged, {len(data) >> 20} MiB index: {med} ms CPU (medians of {ROUNDS})")
    finally:
        shutil.rmtree(repo, ignore_errors=True)
    doc = {"files": FILES, "rounds": ROUNDS, "load": os.getloadavg()[0], "results": results}
    print(f"load {doc['load']:.1f}")
    if out:
        Path(out).write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    main()
