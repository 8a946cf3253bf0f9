"""Repeats, medians, targets and results.

A comparison runs its sides *interleaved* (avfs, baseline, avfs, baseline...) so that load
from other processes on a shared machine falls on both sides alike, and reports medians.
Each side has an untimed ``setup`` (make the changes, pick a new fork name...) and a timed
``op``; only ``op`` is inside :func:`time.perf_counter`.
"""

from __future__ import annotations

import cProfile
import dataclasses
import gc
import io
import pstats
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .env import log


@dataclasses.dataclass(frozen=True)
class Repeats:
    """How many timed runs: fast ops (sub-second), medium (subprocesses), slow (imports)."""

    fast: int
    medium: int
    slow: int
    warmup: int = 1


FULL = Repeats(fast=21, medium=11, slow=3)
QUICK = Repeats(fast=7, medium=5, slow=3)


@dataclasses.dataclass(frozen=True)
class Target:
    """A target from ``DESIGN.md``; every condition given must hold."""

    max_ms: float | None = None  # avfs median at most this
    min_speedup: float | None = None  # baseline median / avfs median at least this
    max_ratio: float | None = None  # avfs median / baseline median at most this
    strict: bool = False  # "<" rather than "<=" for max_ms
    label: str | None = None  # how the report words it (default: from the conditions)

    def text(self) -> str:
        if self.label:
            return self.label
        parts = []
        if self.max_ms is not None:
            parts.append(f"{'<' if self.strict else '≤'} {self.max_ms:g} ms")
        if self.min_speedup is not None:
            parts.append(f"≥ {self.min_speedup:g}x faster")
        if self.max_ratio is not None:
            parts.append(f"≤ {self.max_ratio:g}x baseline")
        return "; ".join(parts)

    def met(self, median_ms: float, baseline_ms: float | None) -> bool:
        ok = True
        if self.max_ms is not None:
            ok &= median_ms < self.max_ms if self.strict else median_ms <= self.max_ms
        if self.min_speedup is not None:
            ok &= baseline_ms is not None and median_ms > 0 and baseline_ms / median_ms >= self.min_speedup
        if self.max_ratio is not None:
            ok &= baseline_ms is not None and baseline_ms > 0 and median_ms / baseline_ms <= self.max_ratio
        return ok


@dataclasses.dataclass
class Result:
    name: str
    size: str
    median_ms: float
    samples_ms: list[float]
    what: str = ""
    baseline: str | None = None
    baseline_ms: float | None = None
    baseline_samples_ms: list[float] | None = None
    target: Target | None = None
    notes: list[str] = dataclasses.field(default_factory=list)
    statistic: str = "median"  # what ``median_ms`` holds: "median" (almost always) or "mean"

    @property
    def ratio(self) -> float | None:
        """avfs / baseline (below 1: avfs is faster)."""
        if self.baseline_ms is None or self.baseline_ms <= 0:
            return None
        return self.median_ms / self.baseline_ms

    @property
    def speedup(self) -> float | None:
        """baseline / avfs (above 1: avfs is faster)."""
        if self.baseline_ms is None or self.median_ms <= 0:
            return None
        return self.baseline_ms / self.median_ms

    @property
    def met(self) -> bool | None:
        if self.target is None:
            return None
        return self.target.met(self.median_ms, self.baseline_ms)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "size": self.size,
            "what": self.what,
            "median_ms": _r(self.median_ms),
            "statistic": self.statistic,
            "mean_ms": _r(statistics.fmean(self.samples_ms)) if self.samples_ms else None,
            "min_ms": _r(min(self.samples_ms)) if self.samples_ms else None,
            "max_ms": _r(max(self.samples_ms)) if self.samples_ms else None,
            "repeats": len(self.samples_ms),
            "samples_ms": [_r(s) for s in self.samples_ms],
            "baseline": self.baseline,
            "baseline_ms": _r(self.baseline_ms),
            "baseline_samples_ms": [_r(s) for s in self.baseline_samples_ms or []],
            "ratio": _r(self.ratio, 4),
            "speedup": _r(self.speedup, 2),
            "target": self.target.text() if self.target else None,
            "target_spec": dataclasses.asdict(self.target) if self.target else None,
            "met": self.met,
            "notes": self.notes,
        }


def _r(x: float | None, digits: int = 3) -> float | None:
    return None if x is None else round(x, digits)


Op = Callable[[int], object]


@dataclasses.dataclass
class Side:
    """One thing to time: ``op(i)`` for repeat ``i`` (negative in warm-up), after ``setup(i)``."""

    op: Op
    setup: Op | None = None
    teardown: Op | None = None
    in_process: bool = False  # an avfs call in this process (profiled with --profile)


class Profiler:
    """With ``--profile``: one extra run of each in-process avfs op under cProfile."""

    def __init__(self, out_dir: Path | None) -> None:
        self.out_dir = out_dir

    def profile(self, key: str, side: Side) -> None:
        if self.out_dir is None or not side.in_process:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if side.setup is not None:
            side.setup(-99)
        prof = cProfile.Profile()
        prof.runcall(side.op, -99)
        if side.teardown is not None:
            side.teardown(-99)
        path = self.out_dir / f"{key}.prof"
        prof.dump_stats(str(path))
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(18)
        log(f"profile of {key} -> {path}\n{buf.getvalue()}")


def interleave(
    sides: dict[str, Side], repeats: int, warmup: int = 1, profiler: Profiler | None = None, key: str = ""
) -> dict[str, list[float]]:
    """Run every side ``warmup`` times untimed, then ``repeats`` timed rounds in turn;
    returns the samples (ms) of each side."""
    samples: dict[str, list[float]] = {name: [] for name in sides}
    for i in range(-warmup, repeats):
        for name, side in sides.items():
            if side.setup is not None:
                side.setup(i)
            gc.collect()
            t0 = time.perf_counter()
            side.op(i)
            dt = (time.perf_counter() - t0) * 1000.0
            if side.teardown is not None:
                side.teardown(i)
            if i >= 0:
                samples[name].append(dt)
    if profiler is not None:
        for name, side in sides.items():
            profiler.profile(f"{key}-{name}" if key else name, side)
    return samples


def median(xs: list[float]) -> float:
    return statistics.median(xs)
