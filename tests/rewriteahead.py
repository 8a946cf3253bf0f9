"""The test modules' assertion rewriting done once before pytest-xdist's workers start, not
once in each of them.

pytest rewrites the ``assert`` statements of every test module and conftest it imports, and
caches the result in ``__pycache__`` (``NAME.cpython-311-pytest-X.pyc``, under the source's
hash), unless ``sys.dont_write_bytecode`` (``PYTHONDONTWRITEBYTECODE=1``, set on some
machines, this one included): then every process rewrites every module, every run. Each
xdist worker collects the whole suite, so ``make test``'s four rewrote the ~190 modules
four times at once (on a fresh clone they do even without the variable: all four start
together, before any has written): ~15 s of CPU each out of a collection of ~19 s; read
from the cache, ~4 s (docs/testing.md). The controller, before it starts the workers,
collects the modules whose cache pytest would not take (none, or of other bytes than the
source's) in a few ``pytest --collect-only`` processes at once (the variable unset for
them), which write it; the workers read it. Nothing else changes: the workers still
collect and run every module themselves, and pytest still checks each cache against its
source's hash before it uses it."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

# the longest a collection here may take (~10 s of CPU for half the suite's modules)
_WAIT_S = 600


def pyc_of(source: Path) -> Path:
    """Where pytest keeps ``source``'s rewritten code (``_pytest.assertion.rewrite``'s
    ``get_cache_dir`` and ``PYC_TAIL``)."""
    name = f"{source.stem}.{sys.implementation.cache_tag}-pytest-{pytest.__version__}.pyc"
    if sys.pycache_prefix:
        return Path(sys.pycache_prefix, *source.resolve().parts[1:-1], name)
    return source.parent / "__pycache__" / name


def rewritten_modules(paths: list[Path]) -> list[Path]:
    """The test modules and conftests under ``paths`` (files or directories, as given to
    pytest) and the conftests above them: what pytest rewrites when it collects them."""
    found: set[Path] = set()
    for p in paths:
        p = p.resolve()
        if p.is_dir():
            found.update(f for f in p.rglob("*.py") if _rewritten(f.name) and "__pycache__" not in f.parts)
        elif p.suffix == ".py":
            found.add(p)
        for d in (p if p.is_dir() else p.parent, *(p if p.is_dir() else p.parent).parents):
            if (d / "conftest.py").is_file():
                found.add(d / "conftest.py")
    return sorted(found)


def _rewritten(name: str) -> bool:
    return (
        name == "conftest.py"
        or (name.startswith("test_") and name.endswith(".py"))
        or name.endswith("_test.py")
    )


def stale(modules: list[Path]) -> list[Path]:
    """Those of ``modules`` whose rewritten code pytest would not take from its cache: none
    there, or made from other bytes than the source's now (pytest's own check,
    ``_read_pyc``: the magic number, the flags, and the source's hash in the header; a
    source changed with its time set back is stale too)."""
    out = []
    for m in modules:
        try:
            with open(pyc_of(m), "rb") as fh:
                head = fh.read(16)
            fresh = (
                head[:4] == importlib.util.MAGIC_NUMBER
                and head[4:8] == b"\x03\x00\x00\x00"
                and head[8:16] == importlib.util.source_hash(m.read_bytes())[:8]
            )
        except OSError:
            fresh = False
        if not fresh:
            out.append(m)
    return out


def rewrite_ahead(rootdir: Path, paths: list[Path], procs: int, basetemp: Path) -> list[Path]:
    """Have pytest write the cached rewrite of each module under ``paths`` that needs it, in
    at most ``procs`` ``pytest --collect-only`` processes run at once (each a share of the
    modules, by size), and return those modules. A failure here costs only the time: the
    workers collect (and report) every module anyway."""
    modules = rewritten_modules(paths)
    todo = stale(modules)
    # a conftest is rewritten where a module below it is collected: its first one, when no
    # module below it is stale itself (a conftest given as a path would collect nothing)
    collect = {m for m in todo if m.name != "conftest.py"}
    for c in (m for m in todo if m.name == "conftest.py"):
        below = [m for m in modules if m.name != "conftest.py" and c.parent in m.parents]
        if below and not collect.intersection(below):
            collect.add(below[0])
    if not collect:
        return todo
    shares: list[list[Path]] = [[] for _ in range(max(1, min(procs, len(collect))))]
    sizes = [0] * len(shares)
    for m in sorted(collect, key=lambda m: -m.stat().st_size):
        i = sizes.index(min(sizes))
        shares[i].append(m)
        sizes[i] += m.stat().st_size
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    running = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pytest",
                "--collect-only",
                "-q",
                "-p",
                "no:xdist",
                "-p",
                "no:cacheprovider",
                f"--basetemp={basetemp / f'rewrite-{i}'}",
                *map(str, share),
            ],
            cwd=rootdir,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for i, share in enumerate(shares)
    ]
    for proc in running:
        try:
            proc.wait(timeout=_WAIT_S)
        except subprocess.TimeoutExpired:
            proc.kill()  # a module that hangs on import: its worker reports it
            proc.wait()
    return todo
