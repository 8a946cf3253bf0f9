"""What every benchmark case is given (:class:`Context`) and the small helpers the case
modules share: a fixture home opened and closed, files written in a workspace or on disk,
a median printed. The case modules import it; :mod:`.cases` gathers them into one table.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .env import venv_bin
from .timing import Profiler, Repeats, Result, median
from .trees import VAULT, Fixtures

if TYPE_CHECKING:
    from avfs_git.core.vaults.vault import Vault
    from avfs_git.core.workspace.workspace import Workspace


@dataclasses.dataclass
@dataclasses.dataclass
class Context:
    fx: Fixtures
    repeats: Repeats
    profiler: Profiler
    emit: Callable[[Result], None]
    results: list[Result] = dataclasses.field(default_factory=list)
    extras: dict[str, Any] = dataclasses.field(default_factory=dict)
    avfs_bin: str = dataclasses.field(default_factory=lambda: venv_bin("avfs"))
    python: str = sys.executable
    quick: bool = False  # --quick: the FUSE benchmarks scale their sizes down
    backends: tuple[str, ...] = ("overlay", "fuse")  # the mount backends the FUSE benchmarks time


def _tag(i: int) -> str:
    """A name part for repeat ``i`` (warm-up and profiling runs are negative)."""
    return f"r{i}" if i >= 0 else f"w{-i}"


def _write_ws(ctx: Context, ws: Workspace, paths: list[str], tag: str) -> None:
    for p in paths:
        ws.write(p, ctx.fx.content.changed_bytes(p, tag))


def _write_disk(ctx: Context, root: Path, paths: list[str], tag: str) -> None:
    for p in paths:
        (root / p).write_bytes(ctx.fx.content.changed_bytes(p, tag))


def _open(ctx: Context, tag: str, label: str) -> tuple[Vault, Path]:
    home, hdir = ctx.fx.home(tag, label)
    vault = home.vault(VAULT)
    vault.workspace("main")  # open the workspace (and its SQLite) before timing anything
    return vault, hdir


def _close(ctx: Context, vault: Vault, hdir: Path) -> None:
    vault.close()
    ctx.fx.done_with(hdir)


def _ms(xs: list[float]) -> str:
    m = median(xs)
    return f"{m:.3f} ms" if m < 10 else f"{m:.1f} ms"
