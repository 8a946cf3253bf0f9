"""Walks over a real project freshly written into a mount (issue 31): ``sdist_walk``.

Django 5.0.6's released sdist (6,772 files in 3,225 directories) is
extracted with ``tar xzf`` into each side, and on avfs's mounts checkpointed
(``checkpoint.save``, in process) as an agent's session would leave it. Then each round
times, warm (after one untimed round), in every side in turn (the order flips each round):

- ``find``: ``find DIR -type f`` (output counted, not printed: mostly directory listings);
- ``grep``: ``grep -r -F -l NEEDLE DIR`` with a needle found nowhere (every file read);
- ``walk``: ``os.walk`` + ``lstat`` of every directory and file, in the harness's process;

each also as ``..._cpu``: the CPU time (user + system) of the walking process alone, which
the load of a shared machine moves less than the wall clock (it leaves out a FUSE daemon's
own work: the pure-FUSE backend's cost is its wall-clock figure).

The sides: the native disk (a directory beside the homes, the host's file system: the
baseline), each mount backend of ``--backends`` (``overlay``: the default home, its upper
layer on the layers btrfs image; ``overlay_plain``: ``layers = off``, the upper layer on
the host's disk; ``fuse``: the pure-FUSE backend) and two references that are not avfs
(bench/fusecases.py's ``kernel_overlays``): stock overlayfs with an empty lower directory and
the project written through it, its upper layer on the host's disk (``kernel_overlay``) or
on a btrfs image made as the layers file system is (``kernel_overlay_layers``). Figures:
``<side>_sdist_<walk>`` against the native disk; the references carry no target.
"""

from __future__ import annotations

import contextlib
import os
import resource
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .env import log, run
from .fusecases import (
    Phases,
    RoundFn,
    _budget,
    _compare_side,
    _count_tar,
    _empty_home,
    _realdata,
    _walk_lstat,
    kernel_overlays,
    mounted_each,
    rounds,
)
from .timing import Target

if TYPE_CHECKING:
    from avfs_git.core.vaults.home import Home
    from avfs_git.core.vaults.vault import Vault

    from .context import Context

SDIST_WALK_TARGET = Target(max_ratio=1.2, label="≤ 1.2x native (warm)")
NEEDLE = "avfs-sdist-walk-needle-found-nowhere"
PROJECT = ("Django", "5.0.6")  # --quick too: a small project's walks take a few ms, noise here
WALKS = (
    ("find", "`find DIR -type f` (the files counted), warm"),
    ("grep", "`grep -r -F -l` of a string found nowhere (every file read), warm"),
    ("walk", "os.walk + lstat of every directory and file, warm"),
)
CPU_NOTE = (
    "CPU time (user + system) of the walking process alone, a steadier figure than the wall"
    " clock on a loaded machine; it leaves out a FUSE daemon's own work (the pure-FUSE"
    " backend's cost is its wall-clock figure)"
)


def _child(argv: list[str]) -> tuple[int, bytes, float]:
    """Run ``argv``: its exit code, its output, and the CPU time (user + system, ms) it took
    (``wait4``'s resource usage of that one child)."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, out, (usage.ru_utime + usage.ru_stime) * 1e3


def _find(top: Path) -> tuple[int, float]:
    code, out, cpu = _child(["find", str(top), "-type", "f"])
    if code != 0:
        raise RuntimeError(f"find in {top} failed ({code}): {out[-300:]!r}")
    return out.count(b"\n"), cpu


def _grep(top: Path) -> tuple[str, float]:
    code, out, cpu = _child(["grep", "-r", "-F", "-l", NEEDLE, str(top)])
    # 1: nothing found (what is expected); 0 or 2: a match or an error, shown in the notes
    return ("" if code == 1 else f"exit {code}: {out[:200]!r}"), cpu


def _cpu_ms() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return (usage.ru_utime + usage.ru_stime) * 1e3


def bench_sdist_walk(ctx: Context, labels: list[str]) -> None:
    """Warm find, grep -r and os.walk + lstat over a real sdist extracted into each side
    (checkpointed in avfs's mounts) vs the native disk, with stock overlayfs beside them."""
    del labels  # the workload is the project, not the synthetic tree
    project, version = PROJECT
    tarball = Path(_realdata().pypi_sdist(project, version))  # type: ignore[attr-defined]
    nfiles, _ = _count_tar(tarball)
    top_name = f"{project}-{version}"
    base = ctx.fx.new_dir("sdist-walk")
    native = base / "native"
    native.mkdir()
    vaults: dict[str, Vault] = {}
    seen: dict[str, set[str]] = {}
    setup: list[str] = []

    def make(backend: str) -> tuple[Home, Vault, str, Path]:
        home, vault = _empty_home(base / f"home-{backend}", backend)
        vaults[backend] = vault
        (base / f"mnt-{backend}").mkdir()
        return home, vault, "main", base / f"mnt-{backend}"

    def side(top: Path, who: str) -> RoundFn:
        seen[who] = set()

        def one(_i: int) -> Phases:
            out: Phases = {}
            t0 = time.perf_counter()
            found, out["sdist_find_cpu"] = _find(top)
            out["sdist_find"] = (time.perf_counter() - t0) * 1e3
            t0 = time.perf_counter()
            grep, out["sdist_grep_cpu"] = _grep(top)
            out["sdist_grep"] = (time.perf_counter() - t0) * 1e3
            t0, c0 = time.perf_counter(), _cpu_ms()
            walked = _walk_lstat(top)
            out["sdist_walk"] = (time.perf_counter() - t0) * 1e3
            out["sdist_walk_cpu"] = _cpu_ms() - c0
            seen[who].add(f"find {found}, walk {walked}{', grep ' + grep if grep else ''}")
            return out

        return one

    def extract(root: Path, who: str, after: Callable[[], None] | None = None) -> Path:
        t0 = time.perf_counter()
        run(["tar", "xzf", str(tarball), "-C", str(root)])
        t1 = time.perf_counter()
        if after is not None:
            after()
        t2 = time.perf_counter()
        setup.append(
            f"{who}: tar x {(t1 - t0) * 1e3:.0f} ms"
            + (f", checkpoint {(t2 - t1) * 1e3:.0f} ms" if after else "")
        )
        return root / top_name

    def checkpointer(vault: Vault) -> Callable[[], None]:
        from avfs_git.core.operations import checkpoint

        return lambda: log(
            f"sdist_walk: checkpoint {checkpoint.save(vault, message='sdist').checkpoint.commit[:12]}"
        )

    try:
        with mounted_each(ctx, make, "sdist_walk") as ms, kernel_overlays(ctx, base) as refs:
            sides = {"native": side(extract(native, "native"), "native")}
            for b, m in ms.items():
                sides[b] = side(extract(m.path, b, checkpointer(vaults[b])), b)
            for ref, mp in refs.items():
                sides[ref] = side(extract(mp, ref), ref)
            r = rounds(sides, ctx.repeats.medium, _budget(ctx, 60.0 + 40.0 * len(sides)))
    finally:
        for v in vaults.values():
            with contextlib.suppress(Exception):
                v.close()
        ctx.fx.done_with(base)
    notes = [f"{top_name}.tar.gz from PyPI: {nfiles:,} files; {'; '.join(setup)}"]
    want = f"find {nfiles}, walk {nfiles}"
    odd = {who: sorted(v) for who, v in seen.items() if v != {want}}
    if odd:
        notes.append(f"not every side saw {want} and no grep match: {odd}")
    notes.append(f"load average at the end {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    label = f"{project} {version}"
    for name in sides:
        if name == "native":
            continue
        for phase, what in WALKS:
            _compare_side(ctx, r, name, label, f"sdist_{phase}", what, SDIST_WALK_TARGET, notes)
        for phase, what in WALKS if name != "fuse" else ():  # (its daemon's work is not in it)
            _compare_side(
                ctx, r, name, label, f"sdist_{phase}_cpu", f"{what}: CPU", SDIST_WALK_TARGET, [CPU_NOTE]
            )


SDIST_WALK_BENCHMARKS: dict[str, Callable[[Context, list[str]], None]] = {"sdist_walk": bench_sdist_walk}
