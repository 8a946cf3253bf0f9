"""``path_rules``: what a fork's path policy costs (issue 29, docs/policy.md).

Two vaults made alike, each holding ``FILES`` files of 1 KiB in ``DIRS`` directories plus
the protected paths of ``POLICY`` (``migrations/``, ``.github/workflows/``, ``.env``,
``secrets/``, ``logs/``), checkpointed; one has the policy, the other none. Timed in the
same run, interleaved, each against the other:

- ``path_rules_api``: a seeded sequence of ``OPS`` in-process operations through a held
  workspace: 40 % read, 30 % write (1 KiB), 20 % stat, 10 % list a directory;
- ``path_rules_walk``: in a pure-FUSE mount of each (a fork with ``hidden`` rules is mounted
  with pure FUSE), ``os.walk`` with an ``lstat`` of every entry and a read of every file.

The figure is the ratio rules / no rules: what the matcher adds on each path's way in.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

from .context import Context
from .env import log
from .timing import Result, Side, interleave, median

DIRS = 20
FILES = 2_000
SIZE = 1024
OPS = 5_000
SEED = 29
POLICY = """version = 1
[paths]
read_only   = ["migrations/**", ".github/workflows/**"]
hidden      = [".env", "secrets/**"]
append_only = ["logs/*.log"]
"""
PROTECTED = {
    "migrations/0001.sql": b"create table t;\n",
    ".github/workflows/ci.yml": b"on: push\n",
    ".env": b"TOKEN=x\n",
    "secrets/key.pem": b"key\n",
    "logs/app.log": b"line\n",
}


def _paths(files: int) -> list[str]:
    return [f"src/d{j % DIRS:02d}/f{j:05d}.py" for j in range(files)]


def _make(home: Any, name: str, files: int, rules: bool) -> Any:
    from avfs_git.core.operations import checkpoint

    vault = home.create_vault(name)
    ws = vault.workspace("main")
    body = b"x" * (SIZE - 1) + b"\n"
    for p in _paths(files):
        ws.write(p, body)
    for p, data in PROTECTED.items():
        ws.write(p, data)
    checkpoint.save(vault, "main", name="base")
    if rules:
        Path(vault.path, "avfs", "policy.toml").write_text(POLICY)
    return vault


def _ops(files: int) -> list[tuple[str, str]]:
    rnd = random.Random(SEED)
    paths = _paths(files)
    kinds = ["read"] * 40 + ["write"] * 30 + ["stat"] * 20 + ["list"] * 10
    return [(rnd.choice(kinds), rnd.choice(paths)) for _ in range(OPS)]


def _run_ops(ws: Any, ops: list[tuple[str, str]]) -> None:
    body = b"y" * (SIZE - 1) + b"\n"
    for kind, p in ops:
        if kind == "read":
            ws.read(p)
        elif kind == "write":
            ws.write(p, body)
        elif kind == "stat":
            ws.stat(p)
        else:
            ws.listdir(p.rsplit("/", 1)[0])


def _walk(root: str) -> int:
    n = 0
    for d, dirs, files in os.walk(root):
        for name in dirs:
            os.lstat(os.path.join(d, name))
        for name in files:
            p = os.path.join(d, name)
            os.lstat(p)
            with open(p, "rb") as fh:
                n += len(fh.read())
    return n


def bench_path_rules(ctx: Context, labels: list[str]) -> None:
    """One run whatever the tree sizes (the vaults are small and made here)."""
    del labels
    from avfs_git.mount.side import open_home
    from avfs_git.ops import mounts

    files = FILES // 4 if ctx.quick else FILES
    root = ctx.fx.new_dir("pathrules")
    home = open_home(str(root / "home"))
    vaults = {"rules": _make(home, "ruled", files, True), "none": _make(home, "plain", files, False)}
    log(f"path_rules: 2 vaults of {files} files of {SIZE} bytes")
    ops = _ops(files)
    wss = {k: v.workspace("main") for k, v in vaults.items()}
    s = interleave(
        {k: Side(op=lambda _i, ws=ws: _run_ops(ws, ops), in_process=True) for k, ws in wss.items()},
        ctx.repeats.medium,
        max(ctx.repeats.warmup, 1),
        ctx.profiler,
        "path-rules-api",
    )
    _emit(
        ctx,
        "path_rules_api",
        f"{files} files",
        s,
        f"{OPS:,} mixed in-process ops (40% read, 30% write, 20% stat, 10% list)",
    )
    mps: dict[str, str] = {}
    try:
        for k, v in vaults.items():
            mp = ctx.fx.new_dir(f"pathrules-mnt-{k}")
            mounts.mount(home, v, "main", str(mp), backend="fuse")
            mps[k] = str(mp)
        s = interleave(
            {k: Side(op=lambda _i, mp=mp: _walk(mp)) for k, mp in mps.items()},
            ctx.repeats.medium,
            max(ctx.repeats.warmup, 1),
        )
        _emit(
            ctx,
            "path_rules_walk",
            f"{files} files",
            s,
            "os.walk + lstat + read of every file in a pure-FUSE mount",
        )
    finally:
        for k in mps:
            mounts.unmount(home, vaults[k], "main")


def _emit(ctx: Context, name: str, size: str, s: dict[str, list[float]], what: str) -> None:
    ctx.emit(
        Result(
            name,
            size,
            median(s["rules"]),
            s["rules"],
            what=what + "; the fork has POLICY's read_only, hidden and append_only rules",
            baseline="the same on a fork without a path policy",
            baseline_ms=median(s["none"]),
            baseline_samples_ms=s["none"],
        )
    )


PATH_RULE_BENCHMARKS = {"path_rules": bench_path_rules}
