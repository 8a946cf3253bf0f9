"""gc benchmark: `avfs gc` (a real process: expiry, keep-refs for undo, then git pack-refs,
repack -d -A and prune) on a vault with 1,000 checkpoints, vs plain `git gc` on a copy of
the same repository, interleaved in the same run.

The vault is the synthetic tree with 1,000 checkpoints on fork main, each changing one
file (each checkpoint writes its own small pack, so there is real work to do). Every
repeat runs on a fresh copy for each side (copies made untimed), so neither side sees a
repository the other, or an earlier repeat, already compacted.

Two avfs sides, as a user meets them: ``avfs`` runs in a home no warm CLI server serves
(a copy of the whole home each repeat; ``AVFS_SERVER=off``, so no server starts in the
background and takes CPU from the next sample): the cold process, imports included.
``avfs_warm`` runs in one home whose warm server (cli/resident.py) answers, the vault
copied into it under a new name each repeat: what gc costs around git once start-up is
the server's (the ``gc_warm`` row).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from .env import git, log, rmtree, run
from .timing import Result, Side, Target, interleave, median
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
    cold_env = {**os.environ, "AVFS_SERVER": "off"}
    warm = ctx.fx.new_dir(f"gc-warm-{label}")
    warm.rmdir()
    run(["cp", "-a", str(hdir), str(warm)])
    warm_vaults = warm / "vaults"
    template = warm_vaults / f"{VAULT}.git"
    # the warm home's server: started by a first call (the warm-up repeat waits for it too)
    subprocess.run([ctx.avfs_bin, "--home", str(warm), "vault", "list"], capture_output=True, check=True)

    def setup_avfs(i: int) -> None:
        dest = ctx.fx.new_dir(f"gc-avfs-{i + 10}")
        dest.rmdir()
        run(["cp", "-a", str(hdir), str(dest)])
        copies["avfs"] = dest

    def setup_warm(i: int) -> None:
        dest = warm_vaults / f"gc{i + 10}.git"
        run(["cp", "-a", str(template), str(dest)])
        copies["avfs_warm"] = dest

    def setup_git(i: int) -> None:
        dest = ctx.fx.new_dir(f"gc-git-{i + 10}")
        dest.rmdir()
        run(["cp", "-a", str(src_vault), str(dest)])
        copies["git"] = dest

    def _avfs_gc(home: Path, vault_name: str, env: dict[str, str] | None) -> None:
        proc = subprocess.run(
            [ctx.avfs_bin, "--home", str(home), "--vault", vault_name, "--json", "gc"],
            capture_output=True,
            env=env,
        )
        if proc.returncode != 0:
            raise RuntimeError(proc.stdout.decode() + proc.stderr.decode())

    def run_avfs(i: int) -> None:
        _avfs_gc(copies["avfs"], VAULT, cold_env)

    def run_warm(i: int) -> None:
        _avfs_gc(warm, f"gc{i + 10}", None)

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
            "avfs_warm": Side(op=run_warm, setup=setup_warm, teardown=lambda i: teardown("avfs_warm")),
            "git": Side(op=run_git, setup=setup_git, teardown=lambda i: teardown("git")),
        },
        ctx.repeats.medium,
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
            what=f"avfs --json gc (a process, no warm server: imports included) on a vault with"
            f" {CHECKPOINTS} checkpoints ({packs_before} packs before)",
            baseline="git gc --quiet on a copy of the same repository",
            baseline_ms=median(s["git"]),
            baseline_samples_ms=s["git"],
            target=Target(max_ratio=1.1),
            notes=[f"git fsck --strict clean after avfs gc; {checked[0] if checked else '?'} pack(s) after"],
        )
    )
    ctx.emit(
        Result(
            "gc_warm",
            label,
            median(s["avfs_warm"]),
            s["avfs_warm"],
            what=f"avfs --json gc served by the home's warm CLI server, same vault ({CHECKPOINTS}"
            " checkpoints)",
            baseline="git gc --quiet on a copy of the same repository",
            baseline_ms=median(s["git"]),
            baseline_samples_ms=s["git"],
            target=Target(max_ratio=1.1),
        )
    )
    subprocess.run([ctx.avfs_bin, "--home", str(warm), "server", "stop"], capture_output=True)
    ctx.fx.done_with(warm)
    ctx.fx.done_with(hdir)


GC_BENCHMARKS = {"gc": bench_gc}
