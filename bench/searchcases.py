"""Search benchmarks.

- ``grep``: a fixed string over the whole synthetic tree with ``avfs_git.core.operations.search.grep``
  (in process: trees walked, every blob read out of the vault's pack) vs ``git grep -F -l``
  in a checkout of the same tree and ``grep -rF -l`` on the plain tree (both read worktree
  files, no inflating), and ``git grep -F -l main`` on the vault itself (the same objects
  avfs reads). The string occurs in one file's header line, so every side reads everything.
- ``search``: full-text search (SQLite FTS5) of the 10k tree: building the index once, then
  queries (one or two words of the tree's vocabulary; p50 and p99, each including the
  index's catch-up check), then the catch-up after 10 files changed in the workspace.
"""

from __future__ import annotations

import random
import subprocess
import time
from typing import TYPE_CHECKING

from .env import log
from .timing import Result, Side, Target, interleave, median
from .trees import SIZES, file_path, pick_paths

if TYPE_CHECKING:
    from .context import Context

QUERIES = 200
SEARCH_MAX_FILES = 10_000


def bench_grep(ctx: Context, labels: list[str]) -> None:
    for label in labels:
        _grep(ctx, label)


def _grep(ctx: Context, label: str) -> None:
    from avfs_git.core.operations import search

    from .context import _close, _open

    files = SIZES[label]
    needle = file_path(files // 2).rsplit("/", 1)[1]  # "f050000.txt": in that file's header
    vault, hdir = _open(ctx, "grep", label)
    ws = vault.workspace("main")
    co = ctx.fx.checkout(label)
    tree = ctx.fx.tree(label)
    found: list[int] = []

    def run_avfs(i: int) -> None:
        found.append(len(search.grep(ws, needle, fixed=True).files))

    def run_cmd(argv: list[str], cwd: str) -> None:
        proc = subprocess.run(argv, cwd=cwd, capture_output=True)
        if proc.returncode not in (0, 1):
            raise RuntimeError(proc.stderr.decode())

    log(f"grep {label}: -F {needle} over {files:,} files")
    s = interleave(
        {
            "avfs": Side(op=run_avfs, in_process=True),
            "git": Side(op=lambda i: run_cmd(["git", "grep", "-F", "-l", "-e", needle], str(co.path))),
            "git_rev": Side(
                op=lambda i: run_cmd(
                    ["git", "--git-dir", vault.path, "grep", "-F", "-l", "-e", needle, "main"], "/"
                )
            ),
            "grep": Side(op=lambda i: run_cmd(["grep", "-rF", "-l", "-e", needle, "."], str(tree))),
        },
        ctx.repeats.medium,
        ctx.repeats.warmup,
        ctx.profiler,
        f"grep-{label}",
    )
    notes = [f"matched {sorted(set(found))} files (want [1])"] if set(found) != {1} else []
    what = f"grep -F of a string found in 1 of {files:,} files, whole tree, in process"
    ctx.emit(
        Result(
            "grep",
            label,
            median(s["avfs"]),
            s["avfs"],
            what=what,
            baseline="git grep -F in a checkout",
            baseline_ms=median(s["git"]),
            baseline_samples_ms=s["git"],
            notes=notes,
        )
    )
    ctx.emit(
        Result(
            "grep_vs_native",
            label,
            median(s["avfs"]),
            s["avfs"],
            what=what,
            baseline="grep -rF -l on the plain tree",
            baseline_ms=median(s["grep"]),
            baseline_samples_ms=s["grep"],
            notes=notes,
        )
    )
    ctx.emit(
        Result(
            "grep_vs_git_objects",
            label,
            median(s["avfs"]),
            s["avfs"],
            what=what,
            baseline="git grep -F -l main on the vault (inflates the same blobs)",
            baseline_ms=median(s["git_rev"]),
            baseline_samples_ms=s["git_rev"],
            notes=notes,
        )
    )
    _close(ctx, vault, hdir)


def bench_search(ctx: Context, labels: list[str]) -> None:
    for label in labels:
        if SIZES[label] <= SEARCH_MAX_FILES:
            _search(ctx, label)
        else:
            log(f"search {label}: skipped (the target is for {SEARCH_MAX_FILES:,} files)")


def _queries(ctx: Context) -> list[str]:
    words = sorted({w for w in ctx.fx.content.pool[: 1 << 16].decode().split() if len(w) > 3})
    rng = random.Random("search-queries")
    out = []
    for i in range(QUERIES):
        out.append(rng.choice(words) if i % 2 else f"{rng.choice(words)} {rng.choice(words)}")
    return out


def _search(ctx: Context, label: str) -> None:
    from avfs_git.core.operations import fts

    from .context import _close, _open, _write_ws

    vault, hdir = _open(ctx, "search", label)
    ws = vault.workspace("main")
    index = fts.SearchIndex(ws)
    log(f"search {label}: building the index")
    t0 = time.perf_counter()
    built = index.update()
    build_ms = (time.perf_counter() - t0) * 1000.0
    ctx.emit(
        Result(
            "search_index_build",
            label,
            build_ms,
            [build_ms],
            what=f"first full-text index of {SIZES[label]:,} files (FTS5, from git)",
            notes=[f"{built.docs} documents"],
        )
    )
    # queries: each one includes the index's catch-up check (nothing changed)
    queries = _queries(ctx)
    for q in queries[:10]:
        index.search(q)  # warm-up
    samples: list[float] = []
    hits = 0
    for q in queries:
        t0 = time.perf_counter()
        res = index.search(q, limit=20)
        samples.append((time.perf_counter() - t0) * 1000.0)
        hits += bool(res.hits)
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    ctx.emit(
        Result(
            "search_query",
            label,
            median(samples),
            samples,
            what=f"full-text query (1-2 words, top 20, bm25 + snippets) over {SIZES[label]:,} files;"
            " p50, catch-up check included",
            target=Target(max_ms=10.0, strict=True),
            notes=[f"p99 {p99:.2f} ms", f"{hits}/{len(queries)} queries had hits"],
        )
    )
    # catch-up after 10 changed files
    counts: list[int] = []

    def setup(i: int) -> None:
        _write_ws(ctx, ws, pick_paths(SIZES[label], 10, f"search{i}"), f"s{i}")

    def run_update(i: int) -> None:
        counts.append(index.update().indexed)

    s = interleave(
        {"avfs": Side(op=run_update, setup=setup, in_process=True)},
        ctx.repeats.fast,
        ctx.repeats.warmup,
        ctx.profiler,
        f"search-update-{label}",
    )
    bad = [c for c in counts if c != 10]
    ctx.emit(
        Result(
            "search_reindex",
            label,
            median(s["avfs"]),
            s["avfs"],
            what="index catch-up after 10 files changed in the workspace",
            target=Target(max_ms=50.0, strict=True),
            notes=[f"re-indexed counts {sorted(set(counts))} (want [10])"] if bad else [],
        )
    )
    index.close()
    _close(ctx, vault, hdir)


SEARCH_BENCHMARKS = {"grep": bench_grep, "search": bench_search}
