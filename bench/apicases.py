"""The in-process Python API under many vaults: mixed file operations from one process and
from two, vs the native file system doing the same operations on plain directories.

100 vaults in one home, each holding ``FILES`` files of 1 KiB in ``DIRS`` directories,
checkpointed (so the first reads come from git, later ones from the overlay). A seeded
sequence of ``OPS`` operations spread over the vaults at random — 40 % read, 30 % write
(replace a file with 1 KiB), 20 % stat, 10 % list a directory — runs through workspace
handles held open (an agent, or a server, keeps its workspace); the baseline is the same
sequence on 100 plain directories holding the same files (``open``/``read``/``write``,
``os.lstat``, a sorted ``os.scandir``), interleaved in the same run.

Two processes: each runs its half of the vaults (its own :class:`Home` on the same path;
its half of the same sequence), started together behind a barrier; a round's time is from
the barrier to the last finish. The baseline is two processes on the plain directories.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from avfs_git.mount.side import MOUNT_SIDE

from .env import AUTHOR, flush_disk, log, rmtree
from .timing import Result, Side, Target, interleave, median

if TYPE_CHECKING:
    from multiprocessing.synchronize import Barrier

    from .context import Context

VAULTS = 100
DIRS = 4
FILES = 20  # per vault, FILES // DIRS per directory
SIZE = 1024
OPS = 10_000  # per round
MIX = (("read", 40), ("write", 30), ("stat", 20), ("list", 10))
TARGET_OPS_S = 33_000
SEED = 8

Op = tuple[int, str, str]  # (vault index, kind, path)


def vault_name(i: int) -> str:
    return f"v{i:03d}"


def file_paths() -> list[str]:
    return [f"d{j % DIRS}/f{j:02d}.txt" for j in range(FILES)]


def content(i: int) -> bytes:
    """1 KiB of content number ``i`` (a small pool: writes replace files with new bytes)."""
    line = f"content {i} ".encode()
    return (line * (SIZE // len(line) + 1))[:SIZE]


POOL = [content(i) for i in range(16)]


def op_sequence(n: int = OPS, vaults: int = VAULTS, seed: int = SEED) -> list[Op]:
    rng = random.Random(seed)
    kinds = [k for k, _ in MIX]
    weights = [w for _, w in MIX]
    paths = file_paths()
    dirs = [f"d{j}" for j in range(DIRS)] + [""]
    out: list[Op] = []
    for kind in rng.choices(kinds, weights, k=n):
        v = rng.randrange(vaults)
        out.append((v, kind, rng.choice(dirs) if kind == "list" else rng.choice(paths)))
    return out


# -- set-up --------------------------------------------------------------------------------
def make_vaults(home_dir: str, vaults: int = VAULTS) -> None:
    """``vaults`` vaults, each with the files checkpointed on fork main."""
    from avfs_git.core.operations import checkpoint
    from avfs_git.core.vaults.home import Home

    home = Home(home_dir, author=AUTHOR, mounts=MOUNT_SIDE)
    for i in range(vaults):
        vault = home.create_vault(vault_name(i))
        ws = vault.workspace("main")
        for j, p in enumerate(file_paths()):
            ws.write(p, POOL[j % len(POOL)])
        checkpoint.save(vault, "main", name="seed")
    home.close()


def make_dirs(root: str, vaults: int = VAULTS) -> None:
    for i in range(vaults):
        for j, p in enumerate(file_paths()):
            path = os.path.join(root, vault_name(i), p)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as fh:
                fh.write(POOL[j % len(POOL)])


# -- the two sides ---------------------------------------------------------------------------
def avfs_runner(home_dir: str, mine: list[int]) -> tuple[Callable[[list[Op]], int], Callable[[], None]]:
    """(run(ops) -> ops done, close) on workspaces of vaults ``mine``, opened now."""
    from avfs_git.core.vaults.home import Home

    home = Home(home_dir, author=AUTHOR, mounts=MOUNT_SIDE)
    wss = {i: home.vault(vault_name(i)).workspace("main") for i in mine}

    def run(ops: list[Op]) -> int:
        pool = POOL
        n = 0
        for k, (v, kind, p) in enumerate(ops):
            ws = wss[v]
            if kind == "read":
                ws.read(p)
            elif kind == "write":
                ws.write(p, pool[k & 15])
            elif kind == "stat":
                ws.stat(p)
            else:
                ws.listdir(p)
            n += 1
        return n

    return run, home.close


def native_runner(root: str, mine: list[int]) -> tuple[Callable[[list[Op]], int], Callable[[], None]]:
    bases = {i: os.path.join(root, vault_name(i)) for i in mine}

    def run(ops: list[Op]) -> int:
        pool = POOL
        join = os.path.join
        n = 0
        for k, (v, kind, p) in enumerate(ops):
            path = join(bases[v], p)
            if kind == "read":
                with open(path, "rb") as fh:
                    fh.read()
            elif kind == "write":
                with open(path, "wb") as fh:
                    fh.write(pool[k & 15])
            elif kind == "stat":
                os.lstat(path)
            else:
                sorted((e.name, e.is_dir(follow_symlinks=False)) for e in os.scandir(path))
            n += 1
        return n

    return run, lambda: None


RUNNERS = {"avfs": avfs_runner, "native": native_runner}


def _worker(
    side: str, where: str, mine: list[int], ops: list[Op], conn: Connection, barrier: Barrier
) -> None:
    """One process of the two-process figure: warm up, then one round per "go"."""
    run, close = RUNNERS[side](where, mine)
    run(ops)  # warm-up: handles opened, files materialized
    conn.send("ready")
    while conn.recv() == "go":
        barrier.wait()
        t0 = time.monotonic()
        n = run(ops)
        conn.send((t0, time.monotonic(), n))
    close()


class Pair:
    """Two worker processes (spawned: nothing of this process' SQLite or git state is
    inherited) running ``side`` on their halves of the vaults."""

    def __init__(self, side: str, where: str, ops: list[Op], vaults: int = VAULTS) -> None:
        mp = multiprocessing.get_context("spawn")
        barrier = mp.Barrier(2)
        self.conns: list[Connection] = []
        self.procs: list[Any] = []
        for k in range(2):
            mine = [i for i in range(vaults) if i % 2 == k]
            here, there = mp.Pipe()
            p = mp.Process(
                target=_worker, args=(side, where, mine, [o for o in ops if o[0] % 2 == k], there, barrier)
            )
            p.start()
            self.conns.append(here)
            self.procs.append(p)
        for c in self.conns:
            if c.recv() != "ready":
                raise RuntimeError("worker failed to start")
        self.walls: list[float] = []
        self.done = 0

    def round(self, _i: int) -> None:
        for c in self.conns:
            c.send("go")
        got = [c.recv() for c in self.conns]
        self.walls.append(max(g[1] for g in got) - min(g[0] for g in got))
        self.done = sum(g[2] for g in got)

    def close(self) -> None:
        for c in self.conns:
            c.send("stop")
        for p in self.procs:
            p.join(60)


# -- the benchmark ---------------------------------------------------------------------------
def ops_s(ms: float, n: int = OPS) -> float:
    return n / (ms / 1000.0)


def bench_api(ctx: Context, labels: list[str]) -> None:
    """One run whatever the tree sizes (the vaults are small and made here)."""
    del labels
    root = ctx.fx.new_dir("api")
    home_dir, plain = str(root / "home"), str(root / "plain")
    log(f"api: {VAULTS} vaults of {FILES} files of {SIZE} bytes")
    t0 = time.perf_counter()
    make_vaults(home_dir)
    make_dirs(plain)
    flush_disk()
    log(f"api: made in {time.perf_counter() - t0:.1f} s")
    ops = op_sequence()
    target = Target(
        max_ms=OPS / TARGET_OPS_S * 1000.0,
        label=f"≥ {TARGET_OPS_S:,} ops/s ({OPS:,} ops ≤ {OPS / TARGET_OPS_S * 1000:.0f} ms)",
    )
    what = f"{OPS:,} mixed ops (40% read, 30% write, 20% stat, 10% list; 1 KiB files) over {VAULTS} vaults"

    # one process
    avfs_run, avfs_close = avfs_runner(home_dir, list(range(VAULTS)))
    native_run, _ = native_runner(plain, list(range(VAULTS)))
    s = interleave(
        {
            "avfs": Side(op=lambda _i: avfs_run(ops), in_process=True),
            "native": Side(op=lambda _i: native_run(ops)),
        },
        ctx.repeats.medium,
        max(ctx.repeats.warmup, 1),
        ctx.profiler,
        "api-1proc",
    )
    avfs_close()
    _emit(ctx, "api_mixed_ops", "1 process", s, what, target)

    # two processes
    pairs = {"avfs": Pair("avfs", home_dir, ops), "native": Pair("native", plain, ops)}
    try:
        interleave(
            {name: Side(op=pair.round) for name, pair in pairs.items()},
            ctx.repeats.medium,
            max(ctx.repeats.warmup, 1),
        )
    finally:
        for pair in pairs.values():
            pair.close()
    warm = max(ctx.repeats.warmup, 1)
    walls = {name: [w * 1000.0 for w in pair.walls[warm:]] for name, pair in pairs.items()}
    notes = [] if pairs["avfs"].done == OPS else [f"ran {pairs['avfs'].done} ops, not {OPS}"]
    _emit(ctx, "api_mixed_ops_2proc", "2 processes", walls, what + ", half each", target, notes)
    rmtree(root)


def _emit(
    ctx: Context,
    name: str,
    size: str,
    s: dict[str, list[float]],
    what: str,
    target: Target,
    notes: list[str] | None = None,
) -> None:
    a, n = median(s["avfs"]), median(s["native"])
    ctx.emit(
        Result(
            name,
            size,
            a,
            s["avfs"],
            what=what,
            baseline="the same ops on plain directories",
            baseline_ms=n,
            baseline_samples_ms=s["native"],
            target=target,
            notes=[f"avfs {ops_s(a):,.0f} ops/s; native {ops_s(n):,.0f} ops/s", *(notes or [])],
        )
    )


def standalone(root: Path, rounds: int = 5, procs: tuple[int, ...] = (1, 2)) -> dict[str, float]:
    """ops/s of each side outside the harness (development: ``python -m bench.apicases DIR``)."""
    home_dir, plain = str(root / "home"), str(root / "plain")
    if not os.path.isdir(home_dir):
        make_vaults(home_dir)
        make_dirs(plain)
    ops = op_sequence()
    out: dict[str, float] = {}
    if 1 in procs:
        runs = {
            side: RUNNERS[side](home_dir if side == "avfs" else plain, list(range(VAULTS)))
            for side in RUNNERS
        }
        times: dict[str, list[float]] = {side: [] for side in RUNNERS}
        for _ in range(rounds + 1):
            for side, (run, _close) in runs.items():
                t = time.perf_counter()
                run(ops)
                times[side].append(time.perf_counter() - t)
        for side, (_run, close) in runs.items():
            close()
            out[f"{side} 1 process"] = OPS / median(times[side][1:])
    if 2 in procs:
        pairs = {side: Pair(side, home_dir if side == "avfs" else plain, ops) for side in RUNNERS}
        for _ in range(rounds + 1):
            for pair in pairs.values():
                pair.round(0)
        for side, pair in pairs.items():
            pair.close()
            out[f"{side} 2 processes"] = OPS / median(pair.walls[1:])
    return out


def main() -> None:  # pragma: no cover - a development aid
    import sys

    from .env import WORK_DIR, make_hermetic

    make_hermetic(WORK_DIR / "home")
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else WORK_DIR / "api-standalone"
    for k, v in standalone(root).items():
        print(f"{k:20} {v:10,.0f} ops/s")


API_BENCHMARKS = {"api": bench_api}

if __name__ == "__main__":
    main()
