"""Merge benchmarks: two forks of the synthetic tree, each changing 500 different files,
merged with avfs (lock, merge, merge commit, ref moved, workspace pointed at it) vs
`git merge-tree --write-tree` on the same vault and the same two commits (it writes the
merged tree, no commit, no ref); and the same with 50 more files changed on both sides
(conflicts: avfs reports them as data and moves nothing; git merge-tree lists them).

Each repeat merges a fresh pair of forks (made, written and checkpointed untimed). git
runs first, reading the vault's objects and writing its own into a scratch object
directory (``GIT_OBJECT_DIRECTORY``, the vault as its alternate): it writes the merged
trees as it would in any repository that lacks them, and avfs never sees its loose
objects. (Run after avfs on the vault itself, git finds every merged tree already written
and writes nothing: that figure, ~1/7 of the real one, is kept as a note,
``git_trees_exist``.)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from typing import TYPE_CHECKING

from .env import log
from .timing import Result, Side, Target, interleave, median
from .trees import SIZES, pick_paths

if TYPE_CHECKING:
    from .context import Context

CHANGED = 500
CONFLICTS = 50


def bench_merge(ctx: Context, labels: list[str]) -> None:
    for label in labels:
        _merge(ctx, label, conflicts=0)
        _merge(ctx, label, conflicts=CONFLICTS)


def _merge(ctx: Context, label: str, conflicts: int) -> None:
    from avfs_git.core.operations import checkpoint, merge

    from .context import _close, _open, _write_ws

    vault, hdir = _open(ctx, f"merge{conflicts}", label)
    paths = pick_paths(SIZES[label], 2 * CHANGED + conflicts, "merge")
    a_paths, b_paths, both = paths[:CHANGED], paths[CHANGED : 2 * CHANGED], paths[2 * CHANGED :]
    pairs: dict[int, tuple[str, str]] = {}

    def setup(i: int) -> None:
        if i in pairs:
            return
        a, b = f"ma{i + 10}", f"mb{i + 10}"
        vault.create_fork("main", a)
        vault.create_fork("main", b)
        _write_ws(ctx, vault.workspace(a), a_paths + both, f"a{i}")
        _write_ws(ctx, vault.workspace(b), b_paths + both, f"b{i}")
        pairs[i] = (checkpoint.save(vault, a).checkpoint.commit, checkpoint.save(vault, b).checkpoint.commit)

    results: list[merge.MergeResult] = []

    def run_avfs(i: int) -> None:
        results.append(merge.merge(vault, f"mb{i + 10}", f"ma{i + 10}"))

    scratch: dict[int, str] = {}

    def git_setup(i: int) -> None:
        setup(i)
        scratch[i] = tempfile.mkdtemp(prefix="git-objects-", dir=str(hdir))

    def git_teardown(i: int) -> None:
        shutil.rmtree(scratch.pop(i))

    def merge_tree(i: int, objects: str | None) -> None:
        a, b = pairs[i]
        env = None
        if objects is not None:  # git's new objects there; the vault's read as an alternate
            env = {
                **os.environ,
                "GIT_OBJECT_DIRECTORY": objects,
                "GIT_ALTERNATE_OBJECT_DIRECTORIES": os.path.join(vault.path, "objects"),
            }
        proc = subprocess.run(
            ["git", "--git-dir", vault.path, "merge-tree", "--write-tree", a, b], capture_output=True, env=env
        )
        if proc.returncode not in (0, 1):  # 1: conflicts
            raise RuntimeError(proc.stderr.decode())
        if objects is not None and proc.returncode == 0 and not os.listdir(objects):
            raise RuntimeError("git merge-tree wrote nothing: the merged trees were there already")

    log(f"merge {label}: {CHANGED} + {CHANGED} files" + (f", {conflicts} conflicting" if conflicts else ""))
    sides = {
        "git": Side(op=lambda i: merge_tree(i, scratch[i]), setup=git_setup, teardown=git_teardown),
        "avfs": Side(op=run_avfs, setup=setup, in_process=True),
    }
    if not conflicts:  # (a merge with conflicts writes no tree for git to find)
        sides["git_trees_exist"] = Side(op=lambda i: merge_tree(i, None), setup=setup)
    s = interleave(
        sides,
        ctx.repeats.medium,
        ctx.repeats.warmup,
        ctx.profiler,
        f"merge{conflicts}-{label}",
    )
    notes = []
    want = "conflicts" if conflicts else "merged"
    bad = [r.status for r in results if r.status != want or len(r.conflicts) != conflicts]
    if bad:
        notes.append(f"unexpected results: {bad[:3]}")
    if "git_trees_exist" in s:
        notes.append(
            f"git_trees_exist: git merge-tree after avfs's merge, on the vault (its merged trees"
            f" already written, so git writes none): {median(s['git_trees_exist']):.2f} ms"
        )
    ctx.emit(
        Result(
            "merge" if not conflicts else "merge_conflicts",
            label,
            median(s["avfs"]),
            s["avfs"],
            what=f"merge of two forks changing {CHANGED} files each"
            + (
                f" and {conflicts} files both (conflicts reported, nothing moved)"
                if conflicts
                else ", with the commit"
            ),
            baseline="git merge-tree --write-tree A B",
            baseline_ms=median(s["git"]),
            baseline_samples_ms=s["git"],
            target=Target(max_ms=100.0) if not conflicts else None,
            notes=notes,
        )
    )
    _close(ctx, vault, hdir)


MERGE_BENCHMARKS = {"merge": bench_merge}
