"""A long session in one mount (issue 31): ``long_session``.

75,000 files (7,500 with ``--quick``) are written into a mounted fork of the synthetic tree
in 1,000 batches of 75 (100 with ``--quick``), each batch checkpointed in process
(``checkpoint.save``), as an agent's session would leave them: new files in the tree's
existing directories, every one of them in the overlay's upper layer or the pure-FUSE
backend's write layer once written. Then each round makes 10 changes (5 files of the tree,
5 files written by earlier batches) and times the CLI, as an agent calls it:

- ``<backend>_session_status``: ``avfs --json status`` vs ``git status --porcelain``;
- ``<backend>_session_checkpoint``: ``avfs checkpoint save`` vs ``git commit -qam``;

the git side in a plain worktree holding the same files (the tree's checkout, the same
75,000 files committed), the same 10 changes, interleaved. Before the batches, the same
two commands after the first checkpoint give ``<backend>_session_flat_status`` and
``_flat_checkpoint``: the figure after all the checkpoints against the one after one
(1.0x: flat). Goal: ≤ 1.0x git each, and flat.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .env import git, log, run
from .fusecases import _budget, mounted_each, rounds
from .timing import Result, Target, median
from .trees import SIZES, VAULT, file_path, pick_paths

if TYPE_CHECKING:
    from avfs_git.core.vaults.home import Home
    from avfs_git.core.vaults.vault import Vault

    from .context import Context

SESSION_TARGET = Target(max_ratio=1.0, label="≤ 1.0x git")
FLAT_TARGET = Target(max_ratio=1.2, label="flat (≤ 1.2x after one checkpoint)")
BATCH = 75


def _batch_path(files: int, k: int, f: int) -> str:
    """File ``f`` of batch ``k``: a new file in one of the tree's existing directories."""
    return os.path.dirname(file_path((k * BATCH + f) % files)) + f"/s{k:04d}-{f:02d}.txt"


def bench_long_session(ctx: Context, labels: list[str]) -> None:
    for label in labels[:1]:  # the smallest tree: the session's files are what grows
        for backend in ctx.backends:
            if backend in ("overlay", "fuse"):
                _long_session(ctx, label, backend)


def _long_session(ctx: Context, label: str, backend: str) -> None:
    from avfs_git.core.operations import checkpoint

    files = SIZES[label]
    batches = 100 if ctx.quick else 1000
    base_changed = pick_paths(files, 5, "long-session")
    session_changed = [
        _batch_path(files, k, 7) for k in (1, batches // 4, batches // 2, batches - 3, batches - 2)
    ]
    co = ctx.fx.checkout(label)
    plain = ctx.fx.new_dir(f"long-session-git-{label}") / "w"
    git("clone", "-q", str(co.path), str(plain))
    home, hdir = ctx.fx.home(f"long-session-{backend}", label)
    mp = ctx.fx.new_dir(f"long-session-mnt-{backend}")
    avfs = [ctx.avfs_bin, "--home", home.path, "--json", "--vault", f"{VAULT}:main"]

    def make(_: str) -> tuple[Home, Vault, str, Path]:
        return home, home.vault(VAULT), "main", mp

    def touch(root: Path, paths: list[str], i: int) -> None:
        for p in paths:
            (root / p).write_bytes(ctx.fx.content.changed_bytes(p, f"long-session-{i}"))

    def timed(argv: list[str], cwd: Path | None = None) -> float:
        t0 = time.perf_counter()
        run(argv, cwd=cwd)
        return (time.perf_counter() - t0) * 1e3

    def write_batch(root: Path, k: int) -> None:
        for f in range(BATCH):
            (root / _batch_path(files, k, f)).write_text(f"batch {k} file {f}\n")

    try:
        with mounted_each(
            dataclasses.replace(ctx, backends=(backend,)), make, f"long_session-{backend}"
        ) as ms:
            m = ms[backend]
            vault = home.vault(VAULT)
            write_batch(m.path, 0)
            checkpoint.save(vault, message="batch 0")
            first: dict[str, list[float]] = {"status": [], "checkpoint": []}
            for i in range(3):  # after one checkpoint
                touch(m.path, base_changed, -1 - i)
                first["status"].append(timed([*avfs, "status"]))
                first["checkpoint"].append(timed([*avfs, "checkpoint", "save", "-m", f"first {i}"]))
            t0 = time.perf_counter()
            for k in range(1, batches):
                write_batch(m.path, k)
                checkpoint.save(vault, message=f"batch {k}")
            took = time.perf_counter() - t0
            log(f"long_session {backend}: {batches - 1} batches written and checkpointed in {took:.0f} s")
            for k in range(batches):
                write_batch(plain, k)
            touch(plain, base_changed, -3)
            git("add", "-A", cwd=plain)
            git("commit", "-qm", "the session's files", cwd=plain)
            run(["git", "status", "--porcelain"], cwd=plain)  # warm, as the mount is
            listed: list[int] = []

            def status(argv: list[str]) -> float:
                t0 = time.perf_counter()
                out = run(argv)
                dt = (time.perf_counter() - t0) * 1e3
                import json

                listed.append(len(json.loads(out)["changes"]))
                return dt

            def native(i: int) -> dict[str, float]:
                touch(plain, base_changed + session_changed, i)
                return {
                    "status": timed(["git", "status", "--porcelain"], plain),
                    "checkpoint": timed(["git", "commit", "-qam", f"round {i}"], plain),
                }

            def mounted_side(i: int) -> dict[str, float]:
                touch(m.path, base_changed + session_changed, i)
                return {
                    "status": status([*avfs, "status"]),
                    "checkpoint": timed([*avfs, "checkpoint", "save", "-m", f"round {i}"]),
                }

            r = rounds({"native": native, backend: mounted_side}, ctx.repeats.medium, _budget(ctx, 120.0))
            total = batches * BATCH
            notes = [
                f"{total:,} files written in the mount in {batches:,} checkpoints of {BATCH}"
                f" ({took:.0f} s), then 10 changes a round (5 of the tree's files, 5 of the session's)",
                f"load average {os.getloadavg()[0]:.1f}",
            ]
            if any(n != 10 for n in listed):
                notes.append(f"avfs status listed {sorted(set(listed))} changes, not 10")
            for phase, doing, base in (
                (
                    "status",
                    "avfs --json status",
                    "git status --porcelain, a plain worktree of the same files",
                ),
                ("checkpoint", "avfs checkpoint save", "git commit -qam of the same, a plain worktree"),
            ):
                mine, theirs = r.get(backend, phase), r.get("native", phase)
                if not mine or not theirs:
                    continue
                what = f"{doing} after {batches:,} checkpoints in one {backend} mount ({total:,} files)"
                ctx.emit(
                    Result(
                        f"{backend}_session_{phase}", label, median(mine), mine, what=what, baseline=base,
                        baseline_ms=median(theirs), baseline_samples_ms=theirs, target=SESSION_TARGET,
                        notes=notes + r.notes(),
                    )
                )  # fmt: skip
                ctx.emit(
                    Result(
                        f"{backend}_session_flat_{phase}", label, median(mine), mine,
                        what=f"{doing} after {batches:,} checkpoints vs after one, same mount",
                        baseline=f"{doing} after one checkpoint", baseline_ms=median(first[phase]),
                        baseline_samples_ms=first[phase], target=FLAT_TARGET, notes=notes,
                    )
                )  # fmt: skip
    finally:
        with contextlib.suppress(Exception):
            home.vault(VAULT).close()
        for path in (hdir, mp, plain.parent):
            ctx.fx.done_with(path)


SESSION_BENCHMARKS = {"long_session": bench_long_session}
