"""gc benchmark: `avfs gc` (a real process: expiry, keep-refs for undo, then git pack-refs,
repack -d -A and prune) on a vault with 1,000 checkpoints, vs plain `git gc` on a copy of
the same repository, interleaved in the same run.

The vault is the synthetic tree with 1,000 checkpoints on fork main, each changing one
file (each checkpoint writes its own small pack, so there is real work to do). Every
repeat runs on a fresh copy for each side (copies made untimed), so neither side sees a
repository the other, or an earlier repeat, already compacted.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from .env import git, log, rmtree, run
from .timing import Result, Side, interleave, median
from .trees import SIZES, VAULT, pick_paths

if TYPE_CHECKING:
    from .context import Context

CHECKPOINTS = 1000


def bench_gc(ctx: Context, labels: list[str]) -> None:
    for label in labels:
        _gc(ctx, label)


def _gc(ctx: Context, label: str) -> None:
    from avfs_git.core.operations import checkpoint
    from avfs_git.core.store import packwriter

    from .context import _open

    vault, hdir = _open(ctx, "gc", label)
    ws = vault.workspace("main")
    paths = pick_paths(SIZES[label], 50, "gc")
    log(f"gc {label}: making {CHECKPOINTS} checkpoints")
    for i in range(CHECKPOINTS):
        p = paths[i % len(paths)]
        ws.write(p, ctx.fx.content.changed_bytes(p, f"gc{i}"))
        checkpoint.save(vault, "main")
    # checkpoints start pack consolidations in the background: let them finish before copying
    packwriter.maybe_consolidate(vault.path, limit=0, wait=True)
    vault.close()
    src_vault = Path(vault.path)
    packs_before = len(list((src_vault / "objects" / "pack").glob("*.pack")))
    copies: dict[str, Path] = {}

    def setup_avfs(i: int) -> None:
        dest = ctx.fx.new_dir(f"gc-avfs-{i + 10}")
        dest.rmdir()
        run(["cp", "-a", str(hdir), str(dest)])
        copies["avfs"] = dest

    def setup_git(i: int) -> None:
        dest = ctx.fx.new_dir(f"gc-git-{i + 10}")
        dest.rmdir()
        run(["cp", "-a", str(src_vault), str(dest)])
        copies["git"] = dest

    def run_avfs(i: int) -> None:
        proc = subprocess.run(
            [ctx.avfs_bin, "--home", str(copies["avfs"]), "--vault", VAULT, "--json", "gc"],
            capture_output=True,
        )
        if proc.returncode != 0:
            raise RuntimeError(proc.stdout.decode() + proc.stderr.decode())

    def run_git(i: int) -> None:
        git("--git-dir", str(copies["git"]), "gc", "--quiet")

    checked: list[str] = []

    def teardown(name: str) -> None:
        if not checked:  # once: the avfs-compacted vault is whole and git agrees
            vdir = copies["avfs"] / "vaults" / f"{VAULT}.git"
            git("--git-dir", str(vdir), "fsck", "--strict", "--no-dangling", "--no-progress")
            checked.append(str(len(list((vdir / "objects" / "pack").glob("*.pack")))))
        rmtree(copies[name])

    s = interleave(
        {
            "avfs": Side(op=run_avfs, setup=setup_avfs, teardown=lambda i: teardown("avfs")),
            "git": Side(op=run_git, setup=setup_git, teardown=lambda i: teardown("git")),
        },
        ctx.repeats.slow,
        ctx.repeats.warmup,
        ctx.profiler,
        f"gc-{label}",
    )
    ctx.emit(
        Result(
            "gc",
            label,
            median(s["avfs"]),
            s["avfs"],
            what=f"avfs --json gc (subprocess) on a vault with {CHECKPOINTS} checkpoints"
            f" ({packs_before} packs before)",
            baseline="git gc --quiet on a copy of the same repository",
            baseline_ms=median(s["git"]),
            baseline_samples_ms=s["git"],
            notes=[f"git fsck --strict clean after avfs gc; {checked[0] if checked else '?'} pack(s) after"],
        )
    )
    ctx.fx.done_with(hdir)


GC_BENCHMARKS = {"gc": bench_gc}
