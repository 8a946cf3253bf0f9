"""The benchmarks. Each one times avfs and, in the same run, stock git (or the native file
system / a bare interpreter) doing the same job on the same tree; see ``docs/benchmarks.md``.

A benchmark is a function ``(ctx, labels)`` that calls ``ctx.emit`` once per figure.
Sanity checks (did the checkpoint record 10 files?) add a note to the figure, never raise:
a benchmark measures and reports.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from avfs_git.mount.side import MOUNT_SIDE

from .agentcases import AGENT_BENCHMARKS
from .apicases import API_BENCHMARKS
from .clicases import CLI_BENCHMARKS
from .context import Context, _close, _ms, _open, _tag, _write_disk, _write_ws
from .env import AUTHOR, flush_disk, git, log, rmtree, run
from .fusecases import FUSE_BENCHMARKS
from .gccases import GC_BENCHMARKS
from .mergecases import MERGE_BENCHMARKS
from .pathrulecases import PATH_RULE_BENCHMARKS
from .proxycases import PROXY_BENCHMARKS
from .remotecases import REMOTE_BENCHMARKS
from .searchcases import SEARCH_BENCHMARKS
from .sessioncases import SESSION_BENCHMARKS
from .timing import Result, Side, Target, interleave, median
from .trees import SIZES, VAULT, pick_paths
from .walkcases import SDIST_WALK_BENCHMARKS
from .watchcases import WATCH_BENCHMARKS

if TYPE_CHECKING:
    from avfs_git.core.vaults.vault import Vault


# -- fork ---------------------------------------------------------------------------------
def bench_fork(ctx: Context, labels: list[str]) -> None:
    """Vault.create_fork in process vs `git branch` in the checkout; flatness 10k -> 100k."""
    medians = {label: _fork(ctx, label) for label in labels}
    if "10k" in medians and "100k" in medians:
        ctx.emit(
            Result(
                "fork_flat",
                "100k vs 10k",
                medians["100k"],
                [],
                what="fork at 100k / fork at 10k (flat with size)",
                baseline="fork at 10k",
                baseline_ms=medians["10k"],
                target=Target(max_ratio=1.5),
            )
        )


FORKS_MANY = 200


def _fork(ctx: Context, label: str) -> float:
    """Fork at a steady state (each new fork deleted again, untimed, so every repeat sees a
    vault with one fork), then with ``FORKS_MANY`` forks already there."""
    import pygit2

    vault, hdir = _open(ctx, "fork", label)
    co = ctx.fx.checkout(label)
    base = vault.workspace("main").base
    repo = pygit2.Repository(vault.path)  # libgit2 itself: the floor
    commit: Any = repo[base]
    s = interleave(
        {
            "avfs": Side(
                op=lambda i: vault.create_fork("main", f"f-{_tag(i)}"),
                teardown=lambda i: vault.delete_fork(f"f-{_tag(i)}"),
                in_process=True,
            ),
            "git": Side(
                op=lambda i: git("branch", f"bench-{_tag(i)}", cwd=co.path),
                teardown=lambda i: git("branch", "-q", "-D", f"bench-{_tag(i)}", cwd=co.path),
            ),
            # outside refs/heads: avfs counts branches, and these are not forks
            "libgit2": Side(op=lambda i: repo.references.create(f"refs/bench/lg-{_tag(i)}", commit.id)),
        },
        ctx.repeats.fast,
        ctx.repeats.warmup,
        ctx.profiler,
        f"fork-{label}",
    )
    ctx.emit(
        Result(
            "fork",
            label,
            median(s["avfs"]),
            s["avfs"],
            what="Vault.create_fork (in process), vault with one fork",
            baseline="git branch",
            baseline_ms=median(s["git"]),
            baseline_samples_ms=s["git"],
            target=Target(max_ms=1.0),
            notes=[f"floor: pygit2 references.create {_ms(s['libgit2'])}"],
        )
    )
    for k in range(FORKS_MANY):
        vault.create_fork("main", f"many-{k}")
        git("branch", f"many-{k}", cwd=co.path)
    many = interleave(
        {
            "avfs": Side(
                op=lambda i: vault.create_fork("main", f"f-{_tag(i)}"),
                teardown=lambda i: vault.delete_fork(f"f-{_tag(i)}"),
            ),
            "git": Side(
                op=lambda i: git("branch", f"bench-{_tag(i)}", cwd=co.path),
                teardown=lambda i: git("branch", "-q", "-D", f"bench-{_tag(i)}", cwd=co.path),
            ),
        },
        ctx.repeats.fast,
        ctx.repeats.warmup,
    )
    ctx.emit(
        Result(
            f"fork_{FORKS_MANY}",
            label,
            median(many["avfs"]),
            many["avfs"],
            what=f"Vault.create_fork with {FORKS_MANY} forks already in the vault",
            baseline="git branch",
            baseline_ms=median(many["git"]),
            baseline_samples_ms=many["git"],
        )
    )
    _close(ctx, vault, hdir)
    return median(s["avfs"])


def bench_fork_cli(ctx: Context, labels: list[str]) -> None:
    """`avfs vault fork` as a subprocess vs `git branch` (both are a process start + a ref)."""
    for label in labels:
        _fork_cli(ctx, label)


def _fork_cli(ctx: Context, label: str) -> None:
    vault, hdir = _open(ctx, "fork-cli", label)
    vault.close()
    co = ctx.fx.checkout(label)
    cmd = [ctx.avfs_bin, "--home", str(hdir), "--vault", f"{VAULT}:main", "--json", "vault", "fork"]
    s = interleave(
        {
            "avfs": Side(op=lambda i: run([*cmd, f"c-{_tag(i)}"])),
            "git": Side(op=lambda i: git("branch", f"bench-{_tag(i)}", cwd=co.path)),
        },
        ctx.repeats.medium,
        ctx.repeats.warmup,
    )
    ctx.emit(
        Result(
            "fork_cli",
            label,
            median(s["avfs"]),
            s["avfs"],
            what="avfs --json vault fork (subprocess)",
            baseline="git branch",
            baseline_ms=median(s["git"]),
            baseline_samples_ms=s["git"],
        )
    )
    ctx.fx.done_with(hdir)


# -- checkpoint ---------------------------------------------------------------------------
CHECKPOINT_COUNTS = (10, 100, 1000)


def bench_checkpoint(ctx: Context, labels: list[str]) -> None:
    """checkpoint.save of N changed files vs `git add -A && git commit` with the same N."""
    for label in labels:
        for n in CHECKPOINT_COUNTS:
            _checkpoint(ctx, label, n)


def _checkpoint(ctx: Context, label: str, n: int) -> None:
    from avfs_git.core.operations import checkpoint

    vault, hdir = _open(ctx, f"checkpoint{n}", label)
    ws = vault.workspace("main")
    co = ctx.fx.checkout(label)
    recorded: list[int | None] = []

    def paths(i: int) -> list[str]:
        return pick_paths(SIZES[label], n, f"checkpoint{n}-{i}")

    def save(_i: int) -> None:
        recorded.append(checkpoint.save(vault, "main").checkpoint.changes)

    def git_commit(_i: int) -> None:
        git("add", "-A", cwd=co.path)
        git("commit", "-q", "-m", "checkpoint", cwd=co.path)

    reps = {10: ctx.repeats.fast, 100: ctx.repeats.medium}.get(n, max(ctx.repeats.slow, 5))
    s = interleave(
        {
            "avfs": Side(setup=lambda i: _write_ws(ctx, ws, paths(i), f"cp-{i}"), op=save, in_process=True),
            "git": Side(setup=lambda i: _write_disk(ctx, co.path, paths(i), f"cp-{i}"), op=git_commit),
        },
        reps,
        ctx.repeats.warmup,
        ctx.profiler,
        f"checkpoint{n}-{label}",
    )
    notes = []
    if any(r != n for r in recorded):
        notes.append(f"checkpoints recorded {sorted({str(r) for r in recorded})} changes, expected {n}")
    ctx.emit(
        Result(
            f"checkpoint_{n}",
            label,
            median(s["avfs"]),
            s["avfs"],
            what=f"checkpoint.save, {n} changed files",
            baseline="git add -A && git commit",
            baseline_ms=median(s["git"]),
            baseline_samples_ms=s["git"],
            target=Target(max_ms=10.0, min_speedup=40.0) if n == 10 else None,
            notes=notes,
        )
    )
    if n == 10:
        _checkpoint_sustained(ctx, label, vault, paths, save)
    _close(ctx, vault, hdir)


SUSTAINED = 100


def _checkpoint_sustained(
    ctx: Context, label: str, vault: Vault, paths: Callable[[int], list[str]], save: Callable[[int], None]
) -> None:
    """``SUSTAINED`` checkpoints of 10 files in a row: the mean includes work a checkpoint
    does only now and then (merging the small packs it writes), which a median hides."""
    ws = vault.workspace("main")
    s = interleave(
        {"avfs": Side(setup=lambda i: _write_ws(ctx, ws, paths(10_000 + i), f"cps-{i}"), op=save)},
        SUSTAINED,
        warmup=0,
    )["avfs"]
    worst = sorted(s)[-3:]
    ctx.emit(
        Result(
            f"checkpoint_10_x{SUSTAINED}",
            label,
            statistics.fmean(s),
            s,
            what=f"mean of {SUSTAINED} consecutive checkpoints of 10 files",
            statistic="mean",
            notes=[f"median {median(s):.2f} ms; slowest {', '.join(f'{w:.0f}' for w in worst)} ms"],
        )
    )


# -- diff ---------------------------------------------------------------------------------
def bench_diff(ctx: Context, labels: list[str]) -> None:
    """history.diff of two checkpoints 10 files apart vs `git diff --name-status A B`
    (run on the vault itself: same repository, same objects)."""
    for label in labels:
        _diff(ctx, label)


def _diff(ctx: Context, label: str) -> None:
    import pygit2

    from avfs_git.core.operations import checkpoint, history

    vault, hdir = _open(ctx, "diff", label)
    ws = vault.workspace("main")
    a = ws.base
    _write_ws(ctx, ws, pick_paths(SIZES[label], 10, "diff"), "diff")
    b = checkpoint.save(vault, "main", name="b").checkpoint.commit
    found = len(history.diff(vault, "main", a, b).changes)
    repo = pygit2.Repository(vault.path)  # libgit2 itself: the floor
    s = interleave(
        {
            "avfs": Side(op=lambda i: history.diff(vault, "main", a, b), in_process=True),
            "git": Side(op=lambda i: git("--git-dir", vault.path, "diff", "--name-status", a, b)),
            "libgit2": Side(op=lambda i: len(list(repo.diff(a, b).deltas))),
        },
        ctx.repeats.fast,
        ctx.repeats.warmup,
        ctx.profiler,
        f"diff-{label}",
    )
    notes = [f"floor: pygit2 Repository.diff {_ms(s['libgit2'])}"]
    if found != 10:
        notes.append(f"diff found {found} changes, expected 10")
    ctx.emit(
        Result(
            "diff",
            label,
            median(s["avfs"]),
            s["avfs"],
            what="history.diff of two checkpoints 10 files apart",
            baseline="git diff --name-status A B",
            baseline_ms=median(s["git"]),
            baseline_samples_ms=s["git"],
            target=Target(max_ms=3.0),
            notes=notes,
        )
    )
    _close(ctx, vault, hdir)


# -- restore / undo -----------------------------------------------------------------------
def bench_restore(ctx: Context, labels: list[str]) -> None:
    """checkpoint.restore to a checkpoint 10 files back, then checkpoint.undo, vs
    `git reset --hard A` and `git reset --hard HEAD@{1}` in the checkout."""
    for label in labels:
        _restore(ctx, label)


def _restore(ctx: Context, label: str) -> None:
    from avfs_git.core.operations import checkpoint

    vault, hdir = _open(ctx, "restore", label)
    ws = vault.workspace("main")
    a = ws.base
    changed = pick_paths(SIZES[label], 10, "restore")
    _write_ws(ctx, ws, changed, "restore")
    b = checkpoint.save(vault, "main").checkpoint.commit
    co = ctx.fx.checkout(label)
    _write_disk(ctx, co.path, changed, "restore")
    git("commit", "-q", "-a", "-m", "ten changes", cwd=co.path)
    tips: list[str | None] = []
    s = interleave(
        {
            "restore": Side(op=lambda i: checkpoint.restore(vault, "main", a), in_process=True),
            "undo": Side(
                op=lambda i: checkpoint.undo(vault),
                teardown=lambda i: tips.append(ws.tip()),
                in_process=True,
            ),
            "git_restore": Side(op=lambda i: git("reset", "-q", "--hard", co.base, cwd=co.path)),
            "git_undo": Side(op=lambda i: git("reset", "-q", "--hard", "HEAD@{1}", cwd=co.path)),
        },
        ctx.repeats.fast,
        ctx.repeats.warmup,
        ctx.profiler,
        f"restore-{label}",
    )
    notes = [] if all(t == b for t in tips) else ["undo did not always bring the fork back to B"]
    ctx.emit(
        Result(
            "restore",
            label,
            median(s["restore"]),
            s["restore"],
            what="checkpoint.restore to a checkpoint 10 files back (clean workspace)",
            baseline="git reset --hard A",
            baseline_ms=median(s["git_restore"]),
            baseline_samples_ms=s["git_restore"],
            target=Target(max_ms=30.0, strict=True),
            notes=notes,
        )
    )
    ctx.emit(
        Result(
            "undo",
            label,
            median(s["undo"]),
            s["undo"],
            what="checkpoint.undo of that restore",
            baseline="git reset --hard HEAD@{1}",
            baseline_ms=median(s["git_undo"]),
            baseline_samples_ms=s["git_undo"],
            target=Target(max_ms=30.0, strict=True),
        )
    )
    _close(ctx, vault, hdir)


# -- import -------------------------------------------------------------------------------
def _warm(tree: Path) -> None:
    """Read every file once so both sides start from a warm page cache."""
    for root, _dirs, files in os.walk(tree):
        for fn in files:
            with open(os.path.join(root, fn), "rb") as fh:
                fh.read()


def bench_import(ctx: Context, labels: list[str]) -> None:
    """Home.create_vault(from_dir=tree) vs `git init && git add -A && git commit` (a separate
    git dir on the same tree). 10k always; 100k when selected."""
    for label in ["10k"] + (["100k"] if "100k" in labels else []):
        _import(ctx, label)


def _import(ctx: Context, label: str) -> None:
    from avfs_git.core.vaults.home import Home

    tree = ctx.fx.tree(label)
    _warm(tree)
    dirs: dict[str, Path] = {}

    def new_dir(i: int, key: str) -> None:
        dirs[key] = ctx.fx.new_dir(f"import-{key}-{label}-{_tag(i)}")
        flush_disk()

    def avfs_import(_i: int) -> None:
        Home(str(dirs["avfs"]), author=AUTHOR, mounts=MOUNT_SIDE).create_vault(VAULT, from_dir=str(tree))

    def git_import(_i: int) -> None:
        g = ["git", "--git-dir", str(dirs["git"] / ".git"), "--work-tree", str(tree)]
        run([*g, "init", "-q"])
        run([*g, "add", "-A"])
        run([*g, "commit", "-q", "-m", "import"])

    def keep_or_drop(_i: int) -> None:
        # the first import becomes the run's template vault for this size (saves an import)
        if not ctx.fx.adopt_template(label, dirs["avfs"]):
            rmtree(dirs["avfs"])

    s = interleave(
        {
            "git": Side(
                setup=lambda i: new_dir(i, "git"), op=git_import, teardown=lambda i: rmtree(dirs["git"])
            ),
            "avfs": Side(setup=lambda i: new_dir(i, "avfs"), op=avfs_import, teardown=keep_or_drop),
        },
        ctx.repeats.slow,
        warmup=0,
    )
    ctx.emit(
        Result(
            "import",
            label,
            median(s["avfs"]),
            s["avfs"],
            what="Home.create_vault(from_dir=tree)",
            baseline="git init && git add -A && git commit",
            baseline_ms=median(s["git"]),
            baseline_samples_ms=s["git"],
            target=Target(max_ratio=1.0),
        )
    )


# -- status -------------------------------------------------------------------------------
def bench_status(ctx: Context, labels: list[str]) -> None:
    """Workspace.status with 10 changes vs `git status` in the checkout with the same 10."""
    for label in labels:
        _status(ctx, label)


def _status(ctx: Context, label: str) -> None:
    vault, hdir = _open(ctx, "status", label)
    ws = vault.workspace("main")
    changed = pick_paths(SIZES[label], 10, "status")
    _write_ws(ctx, ws, changed, "status")
    co = ctx.fx.checkout(label)
    _write_disk(ctx, co.path, changed, "status")
    found = len(ws.status())
    s = interleave(
        {
            "avfs": Side(op=lambda i: ws.status(), in_process=True),
            "git": Side(op=lambda i: git("status", cwd=co.path)),
        },
        ctx.repeats.fast,
        ctx.repeats.warmup,
        ctx.profiler,
        f"status-{label}",
    )
    ctx.emit(
        Result(
            "status",
            label,
            median(s["avfs"]),
            s["avfs"],
            what="Workspace.status, 10 changed files",
            baseline="git status",
            baseline_ms=median(s["git"]),
            baseline_samples_ms=s["git"],
            target=Target(min_speedup=10.0),
            notes=[] if found == 10 else [f"status found {found} changes, expected 10"],
        )
    )
    _close(ctx, vault, hdir)


# -- CLI start-up -------------------------------------------------------------------------
_IMPORTTIME = re.compile(r"^import time:\s+(\d+)\s+\|\s+(\d+)\s+\|(\s*)(\S.*)$")


def importtime_top(python: str, args: list[str], top: int = 10, runs: int = 3) -> dict[str, Any]:
    """``python -X importtime ARGS``: the run with the median total, its top imports by
    cumulative time (µs; nesting depth kept), and how many modules it imported."""
    parsed: list[tuple[int, list[tuple[str, int, int, int]]]] = []
    for _ in range(runs):
        proc = subprocess.run([python, "-X", "importtime", *args], capture_output=True, check=False)
        rows: list[tuple[str, int, int, int]] = []
        for line in proc.stderr.decode(errors="replace").splitlines():
            m = _IMPORTTIME.match(line)
            if m:
                depth = (len(m.group(3)) - 1) // 2
                rows.append((m.group(4).strip(), int(m.group(1)), int(m.group(2)), depth))
        total = sum(r[2] for r in rows if r[3] == 0)
        parsed.append((total, rows))
    parsed.sort(key=lambda x: x[0])
    total, rows = parsed[len(parsed) // 2]
    best = sorted(rows, key=lambda r: r[2], reverse=True)[:top]
    return {
        "command": f"python -X importtime {' '.join(args)}",
        "total_import_ms": round(total / 1000, 1),
        "modules": len(rows),
        "top": [
            {"module": n, "self_ms": round(s / 1000, 2), "cumulative_ms": round(c / 1000, 2)}
            for n, s, c, _d in best
        ],
        "pygit2_loaded": any(n == "pygit2" for n, *_ in rows),
        "rich_loaded": any(n.startswith("rich") for n, *_ in rows),
    }


def bench_startup(ctx: Context, labels: list[str]) -> None:
    """`avfs --json status` end to end as a subprocess (10 changes) vs `python -c pass`;
    also `python -c 'import pygit2'`, and an importtime summary."""
    py = ctx.python
    base = interleave(
        {
            "pass": Side(op=lambda i: run([py, "-c", "pass"])),
            "pygit2": Side(op=lambda i: run([py, "-c", "import pygit2"])),
        },
        ctx.repeats.fast,
        ctx.repeats.warmup,
    )
    py_pass = median(base["pass"])
    ctx.emit(Result("python_start", "-", py_pass, base["pass"], what="python -c pass (baseline)"))
    ctx.emit(
        Result(
            "python_pygit2",
            "-",
            median(base["pygit2"]),
            base["pygit2"],
            what="python -c 'import pygit2' (baseline)",
            baseline="python -c pass",
            baseline_ms=py_pass,
            baseline_samples_ms=base["pass"],
        )
    )
    for n, label in enumerate(labels):
        _startup(ctx, label, importtime=n == 0)


def _startup(ctx: Context, label: str, importtime: bool) -> None:
    vault, hdir = _open(ctx, "startup", label)
    _write_ws(ctx, vault.workspace("main"), pick_paths(SIZES[label], 10, "startup"), "startup")
    vault.close()
    args = ["--home", str(hdir), "--vault", f"{VAULT}:main", "--json", "status"]
    cmd = [ctx.avfs_bin, *args]
    notes: list[str] = []
    try:
        doc = json.loads(run(cmd))
        changes = len(doc.get("changes", []))
        if doc.get("kind") != "status" or changes != 10:
            notes.append(f"unexpected output: kind={doc.get('kind')} changes={changes}")
    except (RuntimeError, ValueError) as exc:
        notes.append(f"avfs status failed: {exc}")
    s = interleave(
        {
            "avfs": Side(op=lambda i: run(cmd)),
            "python": Side(op=lambda i: run([ctx.python, "-c", "pass"])),
        },
        ctx.repeats.fast,
        ctx.repeats.warmup,
    )
    ctx.emit(
        Result(
            "cli_startup",
            label,
            median(s["avfs"]),
            s["avfs"],
            what="avfs --json status, end to end (subprocess, 10 changes)",
            baseline="python -c pass",
            baseline_ms=median(s["python"]),
            baseline_samples_ms=s["python"],
            target=Target(max_ms=150.0, strict=True),
            notes=notes,
        )
    )
    if importtime:
        log("python -X importtime -m avfs_git --json status")
        ctx.extras["importtime"] = importtime_top(ctx.python, ["-m", "avfs_git", *args])
    ctx.fx.done_with(hdir)


# name -> (function, what it measures) in run order
BENCHMARKS: dict[str, Callable[[Context, list[str]], None]] = {
    "import": bench_import,
    "fork": bench_fork,
    "fork_cli": bench_fork_cli,
    "checkpoint": bench_checkpoint,
    "diff": bench_diff,
    "restore": bench_restore,
    "status": bench_status,
    "startup": bench_startup,
    # every frequent command end to end vs python -S (bench/clicases.py)
    **CLI_BENCHMARKS,
    **MERGE_BENCHMARKS,
    # a mounted fork vs the native disk (bench/fusecases.py)
    **FUSE_BENCHMARKS,
    # warm walks over a real sdist written into a mount and checkpointed (bench/walkcases.py)
    **SDIST_WALK_BENCHMARKS,
    # a long session: status and checkpoints after 1,000 checkpoints in one mount (bench/sessioncases.py)
    **SESSION_BENCHMARKS,
    # a write in the mount to its event in a running watch (bench/watchcases.py)
    **WATCH_BENCHMARKS,
    # proxy exec's overhead (bench/proxycases.py)
    **PROXY_BENCHMARKS,
    # hook latency and MCP round trips (bench/agentcases.py)
    **AGENT_BENCHMARKS,
    # push / clone through a git daemon vs git's (bench/remotecases.py)
    **REMOTE_BENCHMARKS,
    # avfs gc vs git gc (bench/gccases.py)
    **GC_BENCHMARKS,
    # grep vs git grep / grep -r, full-text search (bench/searchcases.py)
    **SEARCH_BENCHMARKS,
    # the Python API: mixed file ops over 100 vaults, 1 and 2 processes (bench/apicases.py)
    **API_BENCHMARKS,
    # what a fork's path policy costs, API and a pure-FUSE walk (bench/pathrulecases.py)
    **PATH_RULE_BENCHMARKS,
}
