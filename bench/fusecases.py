"""The FUSE benchmarks: a fork mounted with ``avfs_git.ops.mounts.mount`` against the native
disk it lives on (a directory beside the avfs home, same file system), in the same run.

- ``fuse_io``: sequential write (``O_WRONLY``, 1 MiB blocks, ``fsync`` at the end, like
  ``dd bs=1M conv=fsync``) of a 1 GiB file (256 MiB with ``--quick``), then reading it back
  cold and warm;
- ``fuse_meta``: create, stat and unlink 10,000 files of 100 B in 100 directories (2,000
  with ``--quick``), each phase timed on its own;
- ``fuse_git_status``: ``git status`` in a mounted fork of the synthetic tree with 10 changes
  vs the stock git checkout with the same 10, plus the two tree walks git needs when nothing
  tells it what changed (``find -type f``, ``os.walk`` + ``lstat``);
- ``fuse_git_status_ignored``: the same with a 50,000-file ignored ``node_modules`` in the
  fork's upper layer (written in an earlier mount) and in the checkout: first and warm;
- ``fuse_changes``: avfs's own ``status``, ``checkpoint save`` and ``proxy exec -- true``
  on an overlay mount whose upper layer holds 25,000 checkpointed files and a 50,000-file
  ignored ``node_modules``, with 10 changes (they cost the changes, not the upper layer);
- ``fuse_git_commit``: ``git commit -qam`` in the mount, then the first ``avfs status``
  after it (which adopts git's commit), a second one, and a checkpoint, on both backends
  vs the same with git in the stock checkout;
- ``fuse_ro_walk``: warm ``find``, ``os.walk`` + ``lstat``, ``grep -r`` and ``git status`` in
  a read-only revision mount of the synthetic tree (the overlay backend's lower layer) vs
  the stock git checkout;
- ``fuse_build``: extract a pure-Python source tree (click, rich and pygments as installed
  in the venv, plus a small test module), ``python -m compileall -q``, ``python -m pytest``.

``fuse_io`` and ``fuse_meta`` also time two references beside the overlay backends, neither
of them avfs: ``kernel_overlay`` (stock overlayfs, an empty lower directory, its upper layer on
the host's disk) and ``kernel_overlay_layers`` (the same with its upper layer on a btrfs image
made and tuned as avfs's layers file system is: loop device with direct I/O, no
copy-on-write). They split a row's cost: the kernel's overlay (``kernel_overlay`` / native),
the layers file system (``kernel_overlay_layers`` / ``kernel_overlay``) and avfs's own daemon
and watcher (``overlay`` / ``kernel_overlay_layers``, ``overlay_plain`` / ``kernel_overlay``).

The two sides of every figure run interleaved (native, mount, mount, native...: the order
flips each round), after one untimed warm-up round, and each benchmark has a time budget:
a slow figure gets fewer repeats (at least one), and a warm-up that alone takes more than
half the budget is counted as the first sample (the figure's note says so).

No mount outlives the harness: every benchmark unmounts in ``finally`` (lazily when busy),
an ``atexit`` hook and SIGTERM / SIGHUP handlers (turned into ``SystemExit``) cover an
interrupted run, and a mount left under ``bench/.work`` by a killed run (``kill -9``) is
lazily unmounted before the next mount.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import gc
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from avfs_git.mount.side import MOUNT_SIDE

from .env import AUTHOR, PROJECT_DIR, WORK_DIR, git, log, run
from .timing import Result, Target, median
from .trees import SIZES, VAULT, pick_paths

if TYPE_CHECKING:
    from avfs_git.core.vaults.home import Home
    from avfs_git.core.vaults.vault import Vault

    from .context import Context

MiB = 1 << 20
NATIVE = "native disk"

# The targets of the live tree (issue 15's benchmark table), as time ratios mount / native;
# the same for both backends, so the pure-FUSE fallback's misses show as misses
IO_TARGET = Target(max_ratio=1.1, label="≤ 1.1x native")
META_TARGET = Target(max_ratio=1.3, label="≤ 1.3x native")
STATUS_TARGET = Target(max_ratio=0.5, label="≤ 0.5x native warm")
STATUS_FIRST_TARGET = Target(max_ratio=2.0, label="≤ 2x native warm")
WALK_TARGET = Target(max_ratio=1.5, label="≤ 1.5x native (warm)")
BUILD_TARGET = Target(max_ratio=1.2, label="≤ 1.2x native")

BACKENDS = ("overlay", "fuse")


def _fig(backend: str, phase: str) -> str:
    """A figure's name: ``overlay_create``, ``fuse_create``..."""
    return f"{backend}_{phase}"


@contextlib.contextmanager
def mounted_each(
    ctx: Context, make: Callable[[str], tuple[Home, Vault, str, Path]], profile: str
) -> Iterator[dict[str, Mount]]:
    """One mount per backend of ``ctx.backends`` (``make(backend)`` gives its home, vault,
    fork and mount point), all live at once so that their rounds interleave with the native
    side's; the daemons are profiled with ``--profile``."""
    with contextlib.ExitStack() as stack:
        out: dict[str, Mount] = {}
        for backend in ctx.backends:
            home, vault, fork, mp = make(backend)
            stack.callback(vault.close)
            m = stack.enter_context(mounted(home, vault, fork, mp, backend))
            stack.enter_context(daemon_profile(ctx, m.pid, f"{profile}-{backend}"))
            out[backend] = m
        yield out


def _tag(i: int) -> str:
    return f"r{i}" if i >= 0 else f"w{-i}"


# -- mounts that cannot outlive the harness --------------------------------------------------
_LIVE: dict[str, tuple[Home, Vault, str, str | None]] = {}  # mount point -> (..., fork, revision)
_GUARDED = False


def _unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def _fuse_mounts() -> list[str]:
    """Mount points of avfs mounts visible to this process: kernel overlays (avfs's overlay
    backend) first, so that a sweep takes an overlay away before its FUSE lower layer, then
    avfs FUSE mounts."""
    overlays, fuses = [], []
    try:
        with open("/proc/self/mounts", encoding="utf-8") as fh:
            for line in fh:
                parts = line.split()
                if len(parts) > 2 and parts[2] == "overlay":
                    overlays.append(_unescape(parts[1]))
                elif len(parts) > 2 and parts[2].startswith("fuse") and "avfs" in parts[2] + parts[0]:
                    fuses.append(_unescape(parts[1]))
    except OSError:
        pass
    return overlays + fuses


def _lazy_unmount(mountpoint: str) -> None:
    from avfs_git.ops.mounts import force_unmount

    force_unmount(mountpoint)


def sweep_stale_mounts() -> list[str]:
    """Lazily unmount avfs mounts under bench/.work that no live benchmark owns (left by a
    harness killed with -9: its daemons run in their own sessions and would stay)."""
    work = str(WORK_DIR.resolve()) + os.sep
    # an overlay mount's lower layer (avfs's read-only FUSE view) lives in its home: not stale
    homes = tuple(os.path.realpath(h.path) + os.sep for h, *_ in _LIVE.values())
    stale = [
        mp for mp in _fuse_mounts() if mp.startswith(work) and mp not in _LIVE and not mp.startswith(homes)
    ]
    for mp in stale:
        log(f"unmounting {mp}, left mounted by an earlier run")
        _lazy_unmount(mp)
    return stale


def _release(mountpoint: str) -> None:
    """Unmount (lazily when busy), whatever it takes; never raises."""
    entry = _LIVE.pop(mountpoint, None)
    if entry is not None:
        from avfs_git.ops import mounts

        home, vault, fork, revision = entry
        for lazy in (False, True):
            try:
                mounts.unmount(home, vault, fork, revision=revision, lazy=lazy)
                break
            except Exception as exc:  # BusyError, MountError...: try lazily, then by hand
                log(f"unmount of {mountpoint}{' (lazy)' if lazy else ''} failed: {exc}")
    if mountpoint in _fuse_mounts():
        _lazy_unmount(mountpoint)


def _release_all() -> None:
    for mp in list(_LIVE):
        _release(mp)


def _on_signal(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds every `finally`: mounts are taken away


def _guard() -> None:
    global _GUARDED
    if _GUARDED:
        return
    _GUARDED = True
    atexit.register(_release_all)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) in (signal.SIG_DFL, None):
            signal.signal(sig, _on_signal)


@dataclasses.dataclass(frozen=True)
class Mount:
    path: Path
    pid: int
    ready_ms: float  # mounts.mount() until it returned (the daemon's readiness gate)
    backend: str = "fuse"  # overlay (kernel overlayfs over avfs's read-only FUSE view) or fuse


def _pyspy_bin() -> str | None:
    candidate = Path(sys.executable).parent / "py-spy"
    return str(candidate) if candidate.exists() else shutil.which("py-spy")


def pyspy_summary(raw: Path, top: int = 20) -> str:
    """The functions of a ``py-spy record -f raw`` file with the most samples, inclusive
    (anywhere on the stack) and self (on top), as text."""
    incl: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    try:
        lines = raw.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as exc:
        return f"(no profile: {exc})"
    for line in lines:
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        for f in set(frames):
            incl[f] += n
        own[frames[-1]] += n
    if not total:
        return "(no samples: the daemon was idle)"
    out = [f"{total} samples; inclusive:"]
    out += [f"  {100 * n / total:5.1f}%  {f}" for f, n in incl.most_common(top)]
    out.append("self:")
    out += [f"  {100 * n / total:5.1f}%  {f}" for f, n in own.most_common(top)]
    return "\n".join(out)


@contextlib.contextmanager
def daemon_profile(ctx: Context, pid: int, name: str) -> Iterator[None]:
    """With ``--profile``: ``py-spy record`` the mount daemon while the body runs (its
    Python frames when on CPU), then log the top functions; the raw file is kept in
    bench/.work/profiles/<name>-daemon.raw (flamegraph.pl or speedscope read it)."""
    out_dir = ctx.profiler.out_dir
    exe = _pyspy_bin()
    if out_dir is None or exe is None:
        if out_dir is not None:
            log("--profile: py-spy is not installed (pip install py-spy): the daemon is not profiled")
        yield
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    raw = out_dir / f"{name}-daemon.raw"
    raw.unlink(missing_ok=True)
    cmd = [exe, "record", "-p", str(pid), "-r", "100", "-f", "raw", "-o", str(raw), "--nonblocking"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)  # let it attach
    try:
        yield
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log(f"py-spy profile of the mount daemon during {name} -> {raw}\n{pyspy_summary(raw)}")


@contextlib.contextmanager
def mounted(
    home: Home,
    vault: Vault,
    fork: str,
    mountpoint: Path,
    backend: str = "fuse",
    revision: str | None = None,
) -> Iterator[Mount]:
    """Mount ``fork`` at ``mountpoint`` with the real API and the given ``backend``
    (``overlay`` or ``fuse``; a mount that came up with another one is an error, not a
    figure), or read-only at ``revision`` when given; always unmounted afterwards."""
    from avfs_git.core.operations.history import resolve
    from avfs_git.ops import mounts

    why = mounts.fuse_available()
    if why is not None:
        raise RuntimeError(f"FUSE benchmarks need FUSE: {why}")
    _guard()
    sweep_stale_mounts()
    mp = str(mountpoint.resolve())
    t0 = time.perf_counter()
    commit = None if revision is None else resolve(vault, revision, fork)
    _LIVE[mp] = (home, vault, fork, commit)  # from now on: released at exit whatever happens
    try:
        if commit is not None:
            info = mounts.mount(home, vault, fork, mp, revision=commit)
        else:
            want = mount_backend(backend)
            info = mounts.mount(home, vault, fork, mp, backend=want)
            if info.backend != want:
                raise RuntimeError(f"asked for a {backend} mount, got {info.backend}: {info.backend_why}")
    except BaseException:
        _release(mp)  # mount() failed or was interrupted half-way: leave nothing behind
        raise
    ready_ms = (time.perf_counter() - t0) * 1000.0
    try:
        yield Mount(Path(info.mountpoint), info.pid, ready_ms, info.backend)
    except BaseException:
        _log_daemon(vault, fork, info.pid)
        raise
    finally:
        _release(mp)


def _log_daemon(vault: Vault, fork: str, pid: int) -> None:
    """After a failure in a mount: is its daemon alive, and the end of its log."""
    path = Path(vault.state_dir, "mounts", f"{fork}.log")
    try:
        tail = path.read_bytes()[-3000:].decode("utf-8", "replace").strip()
    except OSError as exc:
        tail = f"(cannot read {path}: {exc})"
    alive = Path(f"/proc/{pid}").exists()
    log(
        f"the mount daemon (pid {pid}) is {'alive' if alive else 'gone'}; end of {path}:\n{tail or '(empty)'}"
    )


def mount_backend(backend: str) -> str:
    """The mount backend a bench backend name mounts with: ``overlay_plain`` is the overlay
    backend in a home whose state dirs are plain directories (``layers = off``: the upper
    layer on the host's file system), ``overlay`` the default home (the upper layer in the
    home's btrfs layers file system where root can loop-mount one)."""
    return "overlay" if backend == "overlay_plain" else backend


def _empty_home(path: Path, backend: str = "overlay") -> tuple[Home, Vault]:
    from avfs_git.core.vaults.home import Home

    home = Home(
        str(path), author=AUTHOR, layers="off" if backend == "overlay_plain" else None, mounts=MOUNT_SIDE
    )
    return home, home.create_vault(VAULT)


# -- budgeted, interleaved rounds ------------------------------------------------------------
Phases = dict[str, float]  # phase -> ms
RoundFn = Callable[[int], Phases]


@dataclasses.dataclass
class Rounds:
    samples: dict[str, dict[str, list[float]]]  # side -> phase -> ms
    requested: int
    warmup_counted: bool = False
    budget_hit: bool = False

    def get(self, side: str, phase: str) -> list[float]:
        return self.samples[side].get(phase, [])

    def notes(self) -> list[str]:
        n = min((len(v) for s in self.samples.values() for v in s.values()), default=0)
        out = []
        if self.warmup_counted:
            out.append("no warm-up: the first round alone took over half the time budget and is counted")
        if self.budget_hit and n < self.requested:
            out.append(f"{n} of {self.requested} runs (the benchmark's time budget)")
        return out


def rounds(sides: dict[str, RoundFn], repeats: int, budget_s: float, warmup: int = 1) -> Rounds:
    """``warmup`` untimed rounds, then up to ``repeats`` timed ones, each calling every side
    once (in the other order every other round). Once one timed round is in, no new round
    starts that would end (judging by the longest round so far) after ``budget_s``."""
    out = Rounds({name: {} for name in sides}, repeats)
    order = list(sides)
    start = time.monotonic()
    longest = 0.0  # the longest round so far: the next one is expected to take as long
    timed = 0
    i = -warmup
    while i < repeats:
        if timed and time.monotonic() - start + longest > budget_s:
            out.budget_hit = True
            break
        got: dict[str, Phases] = {}
        t_round = time.monotonic()
        for name in order if i % 2 == 0 else order[::-1]:
            gc.collect()
            got[name] = sides[name](i)
        longest = max(longest, time.monotonic() - t_round)
        keep = i >= 0
        if not keep and time.monotonic() - start > budget_s / 2:
            keep = out.warmup_counted = True
        if keep:
            timed += 1
            for name, phases in got.items():
                for phase, ms in phases.items():
                    out.samples[name].setdefault(phase, []).append(ms)
        i += 1
    return out


def _compare(
    ctx: Context,
    r: Rounds,
    name: str,
    size: str,
    phase: str,
    what: str,
    target: Target | None,
    notes: list[str],
    baseline: str = NATIVE,
    mount: str = "mount",
    native: str = "native",
) -> None:
    fuse_s, native_s = r.get(mount, phase), r.get(native, phase)
    if not fuse_s or not native_s:
        return
    ctx.emit(
        Result(
            name,
            size,
            median(fuse_s),
            fuse_s,
            what=what,
            baseline=baseline,
            baseline_ms=median(native_s),
            baseline_samples_ms=native_s,
            target=target,
            notes=notes + r.notes(),
        )
    )


def _budget(ctx: Context, full_s: float) -> float:
    return full_s / 2 if ctx.quick else full_s


# -- references: the kernel's overlay without avfs --------------------------------------------
REFERENCES = ("kernel_overlay", "kernel_overlay_layers")


@contextlib.contextmanager
def kernel_overlays(ctx: Context, base: Path) -> Iterator[dict[str, Path]]:
    """The reference mounts (module docstring): stock overlayfs with an empty lower layer,
    its upper layer on the host's disk and on a btrfs image tuned as avfs's layers file
    system; none when no overlay backend is benched or they cannot be mounted here."""
    from avfs_git.core.vaults import layers, layertuning
    from avfs_git.ops import mounts

    if not any(b.startswith("overlay") for b in ctx.backends) or mounts.overlay_available() is not None:
        yield {}
        return

    def stack_on(root: Path) -> Path:
        for name in ("lower", "upper", "work", "mnt"):
            (root / name).mkdir(parents=True, exist_ok=True)
        opts = f"lowerdir={root / 'lower'},upperdir={root / 'upper'},workdir={root / 'work'}"
        subprocess.run(["mount", "-t", "overlay", "overlay", "-o", opts, str(root / "mnt")], check=True)
        return root / "mnt"

    def unmount(mp: Path) -> None:
        if subprocess.run(["umount", str(mp)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mp)], capture_output=True)

    with contextlib.ExitStack() as stack:
        out: dict[str, Path] = {}
        try:
            out["kernel_overlay"] = stack_on(base / "kov-host")
            stack.callback(unmount, out["kernel_overlay"])
        except (OSError, subprocess.CalledProcessError) as exc:
            log(f"reference kernel_overlay: cannot mount ({exc}); left out")
        home = str(base / "kov-layers-home")
        try:
            os.makedirs(home, exist_ok=True)
            fs = Path(layers.ensure(home, create=True))
            stack.callback(layers.unmount, home)
            for name in ("upper", "work"):
                (fs / "ref" / name).mkdir(parents=True)
                layertuning.set_nocow(str(fs / "ref" / name))
            layertuning.set_direct_io(str(fs))
            out["kernel_overlay_layers"] = stack_on(fs / "ref")
            stack.callback(unmount, out["kernel_overlay_layers"])
        except (OSError, subprocess.CalledProcessError, layers.LayersUnavailable) as exc:
            log(f"reference kernel_overlay_layers: cannot make or mount it ({exc}); left out")
        yield out


REFERENCE_NOTE = "a reference, not avfs: stock overlayfs, upper layer on {where}, no daemon"


def _compare_side(
    ctx: Context, r: Rounds, side: str, size: str, phase: str, what: str, target: Target, notes: list[str]
) -> None:
    """One side's figure for ``phase`` against native: a mount backend's with ``target``, a
    reference's (REFERENCES) without one and saying what it is."""
    if side in REFERENCES:
        where = "the host's disk" if side == "kernel_overlay" else "a btrfs image tuned as avfs's layers"
        notes = [REFERENCE_NOTE.format(where=where), *notes]
    ref = side in REFERENCES
    _compare(ctx, r, _fig(side, phase), size, phase, what, None if ref else target, notes, mount=side)


def settle(path: Path, quiet_s: float = 0.15, limit_s: float = 15.0) -> float:
    """Wait until the disk under ``path`` has had no request in flight for ``quiet_s``
    (``/sys/dev/block/MAJ:MIN/inflight``), at most ``limit_s``; returns the seconds waited.

    What one side leaves behind (the host's ``discard`` of freed blocks, a btrfs commit, the
    layers image's loop device writing back) otherwise lands in the next side's time: in
    one run, native 1 GiB writes took 0.75-0.82 s after the native side's own turn and
    2.4-3.4 s after the layers image's."""
    st = os.stat(path)
    inflight = Path(f"/sys/dev/block/{os.major(st.st_dev)}:{os.minor(st.st_dev)}/inflight")
    t0 = time.monotonic()
    quiet_since = None
    while time.monotonic() - t0 < limit_s:
        try:
            busy = any(int(x) for x in inflight.read_text().split())
        except (OSError, ValueError):
            return 0.0  # not a block device we can watch (tmpfs, a network file system)
        now = time.monotonic()
        if busy:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = now
        elif now - quiet_since >= quiet_s:
            break
        time.sleep(0.01)
    return time.monotonic() - t0


# -- fuse_io -----------------------------------------------------------------------------------
class ColdCache:
    """Empties the page cache of given files: ``echo 1 > /proc/sys/vm/drop_caches`` when
    permitted (it is global), else ``posix_fadvise(DONTNEED)`` on each file, which for a
    file in the mount means both the mount's own page cache and its overlay file's."""

    def __init__(self) -> None:
        self.method = "posix_fadvise(DONTNEED) on the file and, in the mount, its overlay file"
        self.global_drop = False
        try:
            os.sync()
            with open("/proc/sys/vm/drop_caches", "w", encoding="ascii") as fh:
                fh.write("3\n")
            self.global_drop = True
            self.method = "echo 3 > /proc/sys/vm/drop_caches"
        except OSError:
            pass

    def drop(self, paths: list[Path]) -> None:
        os.sync()
        if self.global_drop:
            with open("/proc/sys/vm/drop_caches", "w", encoding="ascii") as fh:
                fh.write("3\n")
            return
        for p in paths:
            fd = os.open(p, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def _write_file(path: Path, block: bytes, blocks: int) -> float:
    t0 = time.perf_counter()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for _ in range(blocks):
            if os.write(fd, block) != len(block):
                raise OSError(f"short write to {path}")
        os.fsync(fd)
    finally:
        os.close(fd)
    return (time.perf_counter() - t0) * 1000.0


def _read_file(path: Path, expect: int) -> float:
    buf = bytearray(MiB)
    got = 0
    t0 = time.perf_counter()
    fd = os.open(path, os.O_RDONLY)
    try:
        while n := os.readv(fd, [buf]):
            got += n
    finally:
        os.close(fd)
    dt = (time.perf_counter() - t0) * 1000.0
    if got != expect:
        raise OSError(f"read {got} bytes of {path}, expected {expect}")
    return dt


def _files_of_size(root: Path, size: int) -> list[Path]:
    """Regular files of exactly ``size`` bytes under ``root`` (the overlay file of the one
    written through the mount; found by size, not through avfs internals)."""
    out = []
    for d, _dirs, files in os.walk(root):
        for fn in files:
            p = Path(d, fn)
            try:
                if p.stat().st_size == size:
                    out.append(p)
            except OSError:
                continue
    return out


def _mib_s(size: int, ms: float) -> str:
    return f"{size / MiB / (ms / 1000.0):,.0f} MiB/s"


def bench_fuse_io(ctx: Context, labels: list[str]) -> None:
    """Sequential write then cold and warm read of a big file, each backend's mount vs native."""
    size_mib = 256 if ctx.quick else 1024
    size = size_mib * MiB
    label = f"{size_mib} MiB" if size_mib < 1024 else f"{size_mib // 1024} GiB"
    base = ctx.fx.new_dir("fuse-io")
    native_dir = base / "native"
    native_dir.mkdir()
    cold = ColdCache()
    block = os.urandom(MiB)

    def make(backend: str) -> tuple[Home, Vault, str, Path]:
        home, vault = _empty_home(base / f"home-{backend}", backend)
        (base / f"mnt-{backend}").mkdir()
        return home, vault, "main", base / f"mnt-{backend}"

    def side(root: Path, backing: Path | None) -> RoundFn:
        path = root / "big.bin"

        def one(_i: int) -> Phases:
            path.unlink(missing_ok=True)
            os.sync()
            settle(native_dir)
            t: Phases = {"write": _write_file(path, block, size_mib)}
            extra = _files_of_size(backing, size) if backing is not None and not cold.global_drop else []
            cold.drop([path, *extra])
            settle(native_dir)
            t["read_cold"] = _read_file(path, size)
            t["read_warm"] = _read_file(path, size)
            t["read_third"] = _read_file(path, size)
            path.unlink()  # the next side writes on an emptier disk cache, as this one did
            os.sync()
            return t

        return one

    try:
        with mounted_each(ctx, make, "fuse_io") as ms, kernel_overlays(ctx, base) as refs:
            sides = {"native": side(native_dir, None)}
            sides.update({b: side(m.path, base / f"home-{b}") for b, m in ms.items()})
            sides.update({k: side(mp, mp.parent / "upper") for k, mp in refs.items()})
            r = rounds(sides, 3 if ctx.quick else 5, _budget(ctx, 150.0 * (len(ms) + len(refs))))
    finally:
        ctx.fx.done_with(base)
    for backend in (*ctx.backends, *refs):
        for phase, what in (
            ("write", f"write {label} in 1 MiB blocks (O_WRONLY, fsync at the end)"),
            (
                "read_cold",
                f"read it back in 1 MiB blocks, page cache emptied ({cold.method.split(' on ')[0]})",
            ),
            ("read_warm", "read it again at once (page cache warm)"),
        ):
            f, n = r.get(backend, phase), r.get("native", phase)
            notes = (
                [f"throughput: mount {_mib_s(size, median(f))}, native {_mib_s(size, median(n))}"]
                if f
                else []
            )
            if phase == "read_cold":
                notes.append(f"cold: {cold.method}")
            if phase == "read_warm":
                f3, n3 = r.get(backend, "read_third"), r.get("native", "read_third")
                if f3:
                    notes.append(f"a third read: mount {median(f3):,.0f} ms, native {median(n3):,.0f} ms")
            _compare_side(ctx, r, backend, label, phase, what, IO_TARGET, notes)


# -- fuse_meta ---------------------------------------------------------------------------------
META_DIRS = 100
META_SIZE = 100


def bench_fuse_meta(ctx: Context, labels: list[str]) -> None:
    """Create, stat, unlink of many small files, mount vs native; each phase on its own."""
    files = 2_000 if ctx.quick else 10_000
    label = f"{files // 1000}k files"
    base = ctx.fx.new_dir("fuse-meta")
    native_dir = base / "native"
    native_dir.mkdir()

    def make(backend: str) -> tuple[Home, Vault, str, Path]:
        home, vault = _empty_home(base / f"home-{backend}", backend)
        (base / f"mnt-{backend}").mkdir()
        return home, vault, "main", base / f"mnt-{backend}"

    data = b"m" * (META_SIZE - 1) + b"\n"
    wrong: list[str] = []

    def side(root: Path, who: str) -> RoundFn:
        def one(i: int) -> Phases:
            top = root / f"meta-{_tag(i)}"
            os.sync()
            settle(native_dir)
            top.mkdir()
            dirs = [str(top / f"d{k:03d}") for k in range(META_DIRS)]
            paths = [os.path.join(dirs[j % META_DIRS], f"f{j:05d}") for j in range(files)]
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
            t0 = time.perf_counter()
            for d in dirs:
                os.mkdir(d)
            for p in paths:
                fd = os.open(p, flags, 0o644)
                os.write(fd, data)
                os.close(fd)
            t1 = time.perf_counter()
            total = 0
            for p in paths:
                total += os.stat(p).st_size
            t2 = time.perf_counter()
            for p in paths:
                os.unlink(p)
            for d in dirs:
                os.rmdir(d)
            t3 = time.perf_counter()
            top.rmdir()
            if total != files * META_SIZE:
                wrong.append(f"{who}: stat saw {total} bytes in all, expected {files * META_SIZE}")
            return {"create": (t1 - t0) * 1e3, "stat": (t2 - t1) * 1e3, "unlink": (t3 - t2) * 1e3}

        return one

    try:
        with mounted_each(ctx, make, "fuse_meta") as ms, kernel_overlays(ctx, base) as refs:
            sides = {"native": side(native_dir, "native")}
            sides.update({b: side(m.path, b) for b, m in ms.items()})
            sides.update({k: side(mp, k) for k, mp in refs.items()})
            r = rounds(sides, 3 if ctx.quick else 5, _budget(ctx, 150.0 * (len(ms) + len(refs))))
    finally:
        ctx.fx.done_with(base)
    for backend in (*ctx.backends, *refs):
        for phase, what in (
            (
                "create",
                f"mkdir {META_DIRS} dirs, then create + write {META_SIZE} B + close {files:,} files in them",
            ),
            ("stat", f"stat each of the {files:,} files"),
            ("unlink", f"unlink the {files:,} files, then rmdir the {META_DIRS} dirs"),
        ):
            f, n = r.get(backend, phase), r.get("native", phase)
            if not f or not n:
                continue
            notes = [
                f"per file: mount {median(f) * 1000 / files:.0f} µs, native {median(n) * 1000 / files:.0f} µs"
            ]
            mine = sorted({w for w in wrong if w.startswith((f"{backend}:", "native:"))})
            _compare_side(ctx, r, backend, label, phase, what, META_TARGET, notes + mine)


# -- fuse_git_status ---------------------------------------------------------------------------
FIND = "find . -path ./.git -prune -o -type f -print | wc -l"


def _walk_lstat(top: Path) -> int:
    """os.walk + lstat of every entry, .git left out; returns the number of files."""
    n = 0
    root_s = str(top)

    def fail(exc: OSError) -> None:
        raise exc  # os.walk skips what it cannot list: a dead mount would "walk" 0 files

    for d, dirs, files in os.walk(root_s, onerror=fail):
        if d == root_s:
            dirs[:] = [x for x in dirs if x != ".git"]
            files = [x for x in files if x != ".git"]
        for name in dirs:
            os.lstat(os.path.join(d, name))
        for name in files:
            os.lstat(os.path.join(d, name))
        n += len(files)
    return n


def bench_fuse_git_status(ctx: Context, labels: list[str]) -> None:
    """git status (and the tree walks behind it) in a mounted fork with 10 changes vs the
    stock git checkout with the same 10 changes."""
    for label in labels:
        _fuse_git_status(ctx, label)


def _git_in(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    # never let git find an enclosing repository (the mount lives inside avfs' own checkout)
    env["GIT_CEILING_DIRECTORIES"] = str(path.parent)
    return subprocess.run(["git", *args], cwd=path, env=env, capture_output=True, text=True, check=False)


def _fuse_git_status(ctx: Context, label: str) -> None:
    files = SIZES[label]
    co = ctx.fx.checkout(label)
    changed = pick_paths(files, 10, "fuse-status")
    for p in changed:
        (co.path / p).write_bytes(ctx.fx.content.changed_bytes(p, "fuse-status"))
    made: list[Path] = []

    def make(backend: str) -> tuple[Home, Vault, str, Path]:
        home, hdir = ctx.fx.home(f"fuse-status-{backend}", label)
        mp = ctx.fx.new_dir(f"fuse-status-mnt-{backend}-{label}")
        made.extend((hdir, mp))
        return home, home.vault(VAULT), "main", mp

    budget = _budget(ctx, 75.0 if files <= 10_000 else 120.0) * len(ctx.backends)
    reps = ctx.repeats.medium
    homes: dict[str, tuple[Home, Path]] = {}

    def make_once(backend: str) -> tuple[Home, Vault, str, Path]:
        # the same home and mount point both times (a Vault object is closed after a mount)
        if backend not in homes:
            home, _vault, _fork, mp = make(backend)
            homes[backend] = (home, mp)
        home, mp = homes[backend]
        return home, home.vault(VAULT), "main", mp

    try:
        # the 10 changes are written through a mount, which then goes: the first status is
        # timed right after mounting again, as fuse_git_status_ignored's is (in the same
        # mount the directories git lists were still in the kernel's cache)
        with mounted_each(ctx, make_once, f"fuse_git_status-fill-{label}") as ms:
            for m in ms.values():
                for p in changed:
                    (m.path / p).write_bytes(ctx.fx.content.changed_bytes(p, "fuse-status"))
        with mounted_each(ctx, make_once, f"fuse_git_status-{label}") as ms:
            paths = {b: m.path for b, m in ms.items()}
            ready = {b: [f"mount ready in {m.ready_ms:.0f} ms"] for b, m in ms.items()}
            # notes for the walks: why there is no git status figure, when there is none
            base_notes = _status_rows(ctx, label, paths, co.path, changed, reps, budget, ready)
            counts: dict[str, set[str]] = {}

            def find(root: Path, who: str) -> RoundFn:
                def one(_i: int) -> Phases:
                    t0 = time.perf_counter()
                    out = run(["sh", "-c", FIND], cwd=root)
                    dt = (time.perf_counter() - t0) * 1e3
                    counts[who].add(out.strip())
                    return {"find": dt}

                return one

            def walk(root: Path, who: str) -> RoundFn:
                def one(_i: int) -> Phases:
                    # untimed: (re)fill the kernel's caches, whose entries may expire after
                    # a while: the timed walk is the cached one
                    _walk_lstat(root)
                    t0 = time.perf_counter()
                    n = _walk_lstat(root)
                    dt = (time.perf_counter() - t0) * 1e3
                    counts[who].add(str(n))
                    return {"walk": dt}

                return one

            for phase, fn, what in (
                ("find", find, f"`{FIND}`, warm (after a warm-up round)"),
                (
                    "walk",
                    walk,
                    "os.walk + lstat of every entry, right after another walk (kernel caches warm)",
                ),
            ):
                counts = {who: set() for who in ("native", *paths)}
                walk_reps = max(ctx.repeats.slow, 5)
                sides = {"native": fn(co.path, "native")}
                sides.update({b: fn(mp, b) for b, mp in paths.items()})
                r = rounds(sides, walk_reps, budget)
                for backend in paths:
                    notes = list(base_notes.get(backend, []))
                    if counts[backend] != {str(files)} or counts["native"] != {str(files)}:
                        notes.append(
                            f"counted files: mount {sorted(counts[backend])}, native {sorted(counts['native'])},"
                            f" expected {files}"
                        )
                    _compare(
                        ctx,
                        r,
                        _fig(backend, phase),
                        label,
                        phase,
                        what,
                        WALK_TARGET,
                        notes,
                        baseline="native checkout",
                        mount=backend,
                    )
    finally:
        for path in made:
            ctx.fx.done_with(path)


def _porcelain(proc: subprocess.CompletedProcess[str]) -> list[str]:
    return sorted(line for line in proc.stdout.splitlines() if line.strip())


def _status_rows(
    ctx: Context,
    label: str,
    mounts_: dict[str, Path],
    checkout: Path,
    changed: list[str],
    reps: int,
    budget: float,
    base_notes: dict[str, list[str]],
) -> dict[str, list[str]]:
    """git status --porcelain in each mount vs the checkout, when git works in the mount.
    Returns notes for each backend's walk figures (why there is no git status figure)."""
    want = sorted(f" M {p}" for p in changed)
    out: dict[str, list[str]] = {}
    probes: dict[str, tuple[float, subprocess.CompletedProcess[str]]] = {}
    for backend, mnt in mounts_.items():
        if not (mnt / ".git").exists():
            log(f"git status {backend} {label}: no .git in the mount: git status there is not supported yet")
            out[backend] = ["git status in the mount: not supported yet (the mount has no .git)"]
            continue
        t0 = time.perf_counter()
        probe = _git_in(mnt, "status", "--porcelain")
        probe_ms = (time.perf_counter() - t0) * 1e3
        if probe.returncode != 0:
            msg = probe.stderr.strip().splitlines()[-1:] or ["?"]
            log(f"git status {backend} {label}: git status fails in the mount: {msg[0]}")
            out[backend] = [f"git status in the mount: not supported yet (it failed: {msg[0][:200]})"]
            continue
        probes[backend] = (probe_ms, probe)
    if not probes:
        return out
    results: dict[str, list[list[str]]] = {who: [] for who in ("native", *probes)}
    failures: list[str] = []

    def status(root: Path, who: str) -> RoundFn:
        def one(_i: int) -> Phases:
            t0 = time.perf_counter()
            proc = _git_in(root, "status", "--porcelain")
            dt = (time.perf_counter() - t0) * 1e3
            if proc.returncode != 0:
                failures.append(f"{who}: git status failed ({proc.returncode}): {proc.stderr.strip()[:200]}")
            results[who].append(_porcelain(proc))
            return {"status": dt}

        return one

    # the probes above were the first status after mounting: this is the steady state
    sides = {"native": status(checkout, "native")}
    sides.update({b: status(mounts_[b], b) for b in probes})
    r = rounds(sides, reps, budget)
    native = r.get("native", "status")
    for backend, (probe_ms, probe) in probes.items():
        notes: list[str] = []
        for who in (backend, "native"):
            bad = [x for x in results[who] if x != want]
            if bad:
                notes.append(
                    f"git status ({who}) listed other than the 10 changes in {len(bad)} of"
                    f" {len(results[who])} runs (e.g. {len(bad[0])} entries: {bad[0][:3]})"
                )
        notes += sorted({f for f in failures if f.startswith((backend, "native"))})[:3]
        _compare(
            ctx,
            r,
            _fig(backend, "git_status"),
            label,
            "status",
            "git status --porcelain in the mounted fork (its .git: a worktree of the vault), 10 changes, warm",
            STATUS_TARGET,
            notes,
            baseline="git status --porcelain, native checkout",
            mount=backend,
        )
        if native:
            first_notes = [f"the first git status listed {len(_porcelain(probe))} entries"]
            if _porcelain(probe) != want:
                first_notes.append("the first git status did not list exactly the 10 changes")
            ctx.emit(
                Result(
                    _fig(backend, "git_status_first"),
                    label,
                    probe_ms,
                    [probe_ms],
                    what="the first git status --porcelain after mounting (one run: nothing in the kernel's caches yet)",
                    baseline="git status --porcelain, native checkout (warm median)",
                    baseline_ms=median(native),
                    baseline_samples_ms=native,
                    target=STATUS_FIRST_TARGET,
                    notes=base_notes.get(backend, []) + first_notes,
                )
            )
        out[backend] = []
    return out


# -- fuse_git_status_ignored -------------------------------------------------------------------
IGNORED_DIRS, IGNORED_PER_DIR = 500, 100  # 50,000 ignored files (--quick: 10,000)


def bench_fuse_git_status_ignored(ctx: Context, labels: list[str]) -> None:
    """git status in a mounted fork whose upper layer holds a 50,000-file ignored
    ``node_modules`` (written in an earlier mount) and 10 changed files, vs the native
    checkout with the same: the first status after mounting, then warm. What it shows: the
    fsmonitor answer costs the changes, not the upper layer."""
    for label in labels:
        _fuse_git_status_ignored(ctx, label)


def _fill_ignored(root: Path, changed: list[str], ctx: Context, dirs: int) -> None:
    (root / ".gitignore").write_text("node_modules/\n")
    for d in range(dirs):
        pkg = root / "node_modules" / f"pkg{d:03d}"
        pkg.mkdir(parents=True, exist_ok=True)
        for f in range(IGNORED_PER_DIR):
            (pkg / f"f{f}.js").write_text(f"module.exports = {f}\n")
    for p in changed:
        (root / p).write_bytes(ctx.fx.content.changed_bytes(p, "fuse-status"))


def _fuse_git_status_ignored(ctx: Context, label: str) -> None:
    files = SIZES[label]
    dirs = IGNORED_DIRS // 5 if ctx.quick else IGNORED_DIRS
    co = ctx.fx.checkout(label)
    changed = pick_paths(files, 10, "fuse-status")
    _fill_ignored(co.path, changed, ctx, dirs)
    made: list[Path] = []
    homes: dict[str, tuple[Home, Path]] = {}

    def make(backend: str) -> tuple[Home, Vault, str, Path]:
        # the same home and mount point both times (a Vault object is closed after a mount)
        if backend not in homes:
            home, hdir = ctx.fx.home(f"fuse-ignored-{backend}", label)
            mp = ctx.fx.new_dir(f"fuse-ignored-mnt-{backend}-{label}")
            made.extend((hdir, mp))
            homes[backend] = (home, mp)
        home, mp = homes[backend]
        return home, home.vault(VAULT), "main", mp

    want = sorted([*(f" M {p}" for p in changed), "?? .gitignore"])
    try:
        with mounted_each(ctx, make, f"fuse_git_status_ignored-fill-{label}") as ms:
            for m in ms.values():  # written through the mount: the upper layer holds them
                _fill_ignored(m.path, changed, ctx, dirs)
        with mounted_each(ctx, make, f"fuse_git_status_ignored-{label}") as ms:
            first: dict[str, tuple[float, list[str]]] = {}
            for backend, m in ms.items():
                t0 = time.perf_counter()
                probe = _git_in(m.path, "status", "--porcelain")
                first[backend] = ((time.perf_counter() - t0) * 1e3, _porcelain(probe))
            results: dict[str, list[list[str]]] = {who: [] for who in ("native", *ms)}

            def status(root: Path, who: str) -> RoundFn:
                def one(_i: int) -> Phases:
                    t0 = time.perf_counter()
                    proc = _git_in(root, "status", "--porcelain")
                    dt = (time.perf_counter() - t0) * 1e3
                    results[who].append(_porcelain(proc))
                    return {"status": dt}

                return one

            sides = {"native": status(co.path, "native")}
            sides.update({b: status(m.path, b) for b, m in ms.items()})
            budget = _budget(ctx, 90.0) * len(ms)
            r = rounds(sides, ctx.repeats.medium, budget)
            native = r.get("native", "status")
            what = f"{dirs * IGNORED_PER_DIR:,} ignored files in node_modules + 10 changed files"
            for backend, m in ms.items():
                notes = [f"mount ready in {m.ready_ms:.0f} ms"]
                for who in (backend, "native"):
                    bad = [x for x in results[who] if x != want]
                    if bad:
                        notes.append(
                            f"git status ({who}) listed other than expected in {len(bad)} runs: {bad[0][:3]}"
                        )
                _compare(
                    ctx,
                    r,
                    _fig(backend, "git_status_ignored"),
                    label,
                    "status",
                    f"git status --porcelain in the mounted fork, {what} (upper layer), warm",
                    STATUS_TARGET,
                    notes,
                    baseline="git status --porcelain, native checkout with the same",
                    mount=backend,
                )
                ms_first, listed = first[backend]
                if native:
                    ctx.emit(
                        Result(
                            _fig(backend, "git_status_ignored_first"),
                            label,
                            ms_first,
                            [ms_first],
                            what=f"the first git status --porcelain after mounting, {what} (one run)",
                            baseline="git status --porcelain, native checkout with the same (warm median)",
                            baseline_ms=median(native),
                            baseline_samples_ms=native,
                            target=STATUS_FIRST_TARGET,
                            notes=[
                                *notes,
                                *([] if listed == want else [f"the first git status listed {listed[:4]}"]),
                            ],
                        )
                    )
    finally:
        for path in made:
            ctx.fx.done_with(path)


# -- fuse_build --------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Project:
    """A real project's released sdist and what to compile and test in it."""

    project: str
    version: str
    compile: tuple[str, ...]  # compileall's arguments (paths in the tree)
    tests: tuple[str, ...] = ()  # pytest's arguments; none: no test phase
    rounds: int = 5
    budget_s: float = 150.0  # per backend (the pure-FUSE round of Django takes 1-2 minutes)


# attrs: small, and its tests run with pytest alone (plus hypothesis, which the venv has);
# the five test modules chosen pass on both sides and take a few seconds. Django: the
# ~10,000-file sdist the first measurement used (tar x 17x, compileall 5.5x).
BUILD_PROJECTS = (
    Project(
        "attrs",
        "24.2.0",
        ("src", "tests"),
        tuple(f"tests/test_{m}.py" for m in ("cmp", "filters", "next_gen", "setattr", "validators")),
    ),
    Project("Django", "5.0.6", ("django",), rounds=3, budget_s=400.0),
)


def _realdata() -> object:
    """tests/realdata.py (fetches and caches release files through the registries)."""
    spec = importlib.util.spec_from_file_location(
        "avfs_bench_realdata", PROJECT_DIR / "tests" / "realdata.py"
    )
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _count_tar(tarball: Path) -> tuple[int, int]:
    import tarfile

    n = size = 0
    with tarfile.open(tarball) as tf:
        for m in tf:
            if m.isfile():
                n += 1
                size += m.size
    return n, size


def bench_fuse_build(ctx: Context, labels: list[str]) -> None:
    """Extract real projects' sdists, compileall them and run a test set, each backend's
    mount vs native."""
    rd = _realdata()
    for proj in BUILD_PROJECTS:
        tarball = Path(rd.pypi_sdist(proj.project, proj.version))  # type: ignore[attr-defined]
        _build(ctx, proj, tarball)


def _build(ctx: Context, proj: Project, tarball: Path) -> None:
    base = ctx.fx.new_dir(f"fuse-build-{proj.project}")
    native_dir = base / "native"
    native_dir.mkdir()
    nfiles, nbytes = _count_tar(tarball)
    label = f"{proj.project} {proj.version}"
    outcomes: dict[str, set[str]] = {}

    def make(backend: str) -> tuple[Home, Vault, str, Path]:
        home, vault = _empty_home(base / f"home-{backend}", backend)
        (base / f"mnt-{backend}").mkdir()
        return home, vault, "main", base / f"mnt-{backend}"

    def side(root: Path, who: str) -> RoundFn:
        outcomes[who] = set()

        def one(i: int) -> Phases:
            dest = root / f"proj-{_tag(i)}"
            dest.mkdir()
            t: Phases = {}
            t0 = time.perf_counter()
            run(["tar", "xzf", str(tarball), "-C", str(dest)])
            t1 = time.perf_counter()
            top = dest / f"{proj.project}-{proj.version}"
            run([ctx.python, "-m", "compileall", "-q", *proj.compile], cwd=top)
            t2 = time.perf_counter()
            t.update(extract=(t1 - t0) * 1e3, compile=(t2 - t1) * 1e3)
            if proj.tests:
                proc = subprocess.run(
                    [ctx.python, "-m", "pytest", "-q", "-p", "no:cacheprovider", *proj.tests],
                    cwd=top,
                    env={**os.environ, "PYTHONPATH": "src"},
                    capture_output=True,
                    text=True,
                    check=False,
                )
                t3 = time.perf_counter()
                tail = proc.stdout.strip().splitlines()[-1:] or [proc.stderr.strip()[-200:]]
                outcomes[who].add(_RESULT_TIME.sub("", tail[0]).strip("= ") if tail else "?")
                t["test"] = (t3 - t2) * 1e3
                t2 = t3
            t["total"] = (t2 - t0) * 1e3
            run(["rm", "-rf", str(dest)])
            return t

        return one

    try:
        with mounted_each(ctx, make, f"fuse_build-{proj.project}") as ms:
            sides = {"native": side(native_dir, "native")}
            sides.update({b: side(m.path, b) for b, m in ms.items()})
            r = rounds(sides, 2 if ctx.quick else proj.rounds, _budget(ctx, proj.budget_s * len(ms)))
    finally:
        ctx.fx.done_with(base)
    common = [f"{proj.project}-{proj.version}.tar.gz from PyPI: {nfiles:,} files, {nbytes / MiB:.1f} MiB"]
    if proj.tests:
        seen = {who: sorted(v) for who, v in outcomes.items()}
        if len({tuple(v) for v in seen.values()}) == 1 and len(seen["native"]) == 1:
            common.append(f"pytest: {seen['native'][0]} on every side, every run")
        else:
            common.append(f"pytest: {seen}")
    phases = [
        ("extract", f"tar xzf of the sdist ({nfiles:,} files)"),
        ("compile", f"python -m compileall -q {' '.join(proj.compile)}"),
    ]
    if proj.tests:
        phases.append(("test", f"python -m pytest -q of {len(proj.tests)} test modules (PYTHONPATH=src)"))
    phases.append(("total", "the phases above end to end"))
    for backend in ctx.backends:
        for phase, what in phases:
            _compare(
                ctx,
                r,
                _fig(backend, f"build_{phase}"),
                label,
                phase,
                what,
                BUILD_TARGET,
                common if phase == "total" else [],
                mount=backend,
            )


_RESULT_TIME = re.compile(r" in [0-9.]+s.*$")


# -- fuse_npm ----------------------------------------------------------------------------------
NPM_PACKAGES = (("lodash", "4.17.21"),)


def bench_fuse_npm(ctx: Context, labels: list[str]) -> None:
    """npm install of local tarballs (offline) into a fresh project, each backend's mount vs
    native."""
    del labels
    rd = _realdata()
    tarballs = [Path(rd.npm_tarball(n, v)) for n, v in NPM_PACKAGES]  # type: ignore[attr-defined]
    base = ctx.fx.new_dir("fuse-npm")
    native_dir = base / "native"
    native_dir.mkdir()
    npm_cache = base / "npm-cache"
    installed: dict[str, set[int]] = {}

    def make(backend: str) -> tuple[Home, Vault, str, Path]:
        home, vault = _empty_home(base / f"home-{backend}", backend)
        (base / f"mnt-{backend}").mkdir()
        return home, vault, "main", base / f"mnt-{backend}"

    def side(root: Path, who: str) -> RoundFn:
        installed[who] = set()

        def one(i: int) -> Phases:
            dest = root / f"app-{_tag(i)}"
            dest.mkdir()
            (dest / "package.json").write_text('{"name": "app", "version": "1.0.0", "private": true}\n')
            t0 = time.perf_counter()
            run(
                ["npm", "install", "--offline", "--no-audit", "--no-fund", "--ignore-scripts", "--silent"]
                + [str(t) for t in tarballs],
                cwd=dest,
                env={**os.environ, "npm_config_cache": str(npm_cache), "npm_config_update_notifier": "false"},
            )
            dt = (time.perf_counter() - t0) * 1e3
            installed[who].add(sum(len(fs) for _d, _s, fs in os.walk(dest / "node_modules")))
            run(["rm", "-rf", str(dest)])
            return {"install": dt}

        return one

    try:
        with mounted_each(ctx, make, "fuse_npm") as ms:
            sides = {"native": side(native_dir, "native")}
            sides.update({b: side(m.path, b) for b, m in ms.items()})
            r = rounds(sides, 5 if ctx.quick else 9, _budget(ctx, 100.0 * len(ms)))
    finally:
        ctx.fx.done_with(base)
    pkgs = ", ".join(f"{n}-{v}.tgz" for n, v in NPM_PACKAGES)
    for backend in ctx.backends:
        notes = [
            f"files in node_modules: mount {sorted(installed[backend])}, native {sorted(installed['native'])}"
        ]
        _compare(
            ctx,
            r,
            _fig(backend, "npm_install"),
            pkgs,
            "install",
            f"npm install --offline of {pkgs} (local tarballs) into an empty project",
            BUILD_TARGET,
            notes,
            mount=backend,
        )


# -- fork_live ---------------------------------------------------------------------------------
NM_DIRS = 500


def _du_kib(path: Path) -> int:
    """KiB the home takes on the host's file system (``du -x``: the layers image's allocated
    blocks count, the btrfs mounted inside it is not walked a second time)."""
    return int(run(["du", "-skx", str(path)]).split()[0])


def _btrfs_du(hdir: Path) -> str | None:
    """``btrfs filesystem du -s`` of the home's layers subvolumes (total, exclusive, shared)."""
    from avfs_git.core.vaults import layers

    ws = Path(layers.mount_path(str(hdir)), layers.WS)
    if not layers.mounted(str(hdir)) or not ws.is_dir():
        return None
    subs = sorted(str(p) for p in ws.iterdir())
    out = subprocess.run(["btrfs", "filesystem", "du", "-s", "--raw", *subs], capture_output=True, text=True)
    tot = exc = 0
    for ln in out.stdout.splitlines()[1:]:
        parts = ln.split()
        if len(parts) >= 3 and parts[0].isdigit():
            tot, exc = tot + int(parts[0]), exc + int(parts[1])
    return f"{len(subs)} subvolumes: {tot >> 20} MiB in total, {exc >> 20} MiB exclusive (the rest shared)"


def _populate(root: Path, files: int) -> float:
    """``files`` files of 1 KiB under ``root/node_modules`` in NM_DIRS packages; ms taken."""
    pad = os.urandom(512).hex().encode()  # 1 KiB of random hex: no two files alike (as in a real
    # node_modules, where git would find few duplicates to share)
    t0 = time.perf_counter()
    nm = root / "node_modules"
    nm.mkdir()
    dirs = [nm / f"pkg{k:03d}" for k in range(NM_DIRS)]
    for d in dirs:
        d.mkdir()
    for j in range(files):
        (dirs[j % NM_DIRS] / f"f{j:06d}.js").write_bytes(b"// %d\n" % j + pad)
    return (time.perf_counter() - t0) * 1e3


def bench_fork_live(ctx: Context, labels: list[str]) -> None:
    """Fork a live (mounted) fork whose upper layer holds a node_modules of 50,000 files
    (10,000 with --quick), ignored by .gitignore: time and disk use, each backend, with the
    home's layers file system (the default where root can loop-mount btrfs: forks are
    snapshots) and, for the overlay backend, without it (``layers = off``: plain state
    dirs, the ignored files captured into git objects)."""
    del labels
    files = 10_000 if ctx.quick else 50_000
    for backend in ctx.backends:
        _fork_live(ctx, backend, files)


FORK_LIVE_FORKS = 5


def _fork_live(ctx: Context, backend: str, files: int) -> None:
    from avfs_git.core.operations import checkpoint

    layers_mode = "off" if backend == "overlay_plain" else "auto"
    base = ctx.fx.new_dir(f"fork-live-{backend}")
    hdir = base / "home"
    home, vault = _empty_home(hdir, backend)
    ws = vault.workspace("main")
    ws.write("package.json", b'{"name": "app", "version": "1.0.0"}\n')
    ws.write(".gitignore", b"node_modules/\n")
    checkpoint.save(vault, name="base")
    (base / "mnt").mkdir()
    label = f"{files // 1000}k files"
    notes: list[str] = []
    env = {**os.environ, "AVFS_LAYERS": layers_mode}
    cli = [ctx.avfs_bin, "--home", str(hdir), "--vault", f"{VAULT}:main", "--json", "vault", "fork"]
    cli_ms: list[float] = []
    api_ms: list[float] = []
    du: list[int] = []
    modes: set[str] = set()
    try:
        with mounted(home, vault, "main", base / "mnt", backend) as m:
            pop_ms = _populate(m.path, files)
            os.sync()
            notes.append(f"node_modules written through the mount in {pop_ms / 1000:.1f} s")
            du.append(_du_kib(hdir))
            for k in range(FORK_LIVE_FORKS):
                t0 = time.perf_counter()
                proc = subprocess.run(
                    [*cli, f"cli-{k}"], capture_output=True, text=True, check=False, env=env
                )
                cli_ms.append((time.perf_counter() - t0) * 1e3)
                if proc.returncode != 0:
                    notes.append(f"avfs vault fork exited {proc.returncode}: {proc.stderr.strip()[-300:]}")
                    break
                modes.add(json.loads(proc.stdout)["ignored"]["mode"])
                os.sync()
                du.append(_du_kib(hdir))
            for k in range(FORK_LIVE_FORKS):
                t0 = time.perf_counter()
                made = vault.fork("main", f"api-{k}")
                api_ms.append((time.perf_counter() - t0) * 1e3)
                modes.add(str(made.ignored.mode))
            os.sync()
            du.append(_du_kib(hdir))
            notes.append(f"ignored.mode of the forks: {', '.join(sorted(modes))}")
            child = vault.workspace("cli-0") if vault.has_fork("cli-0") else None
            if child is not None:
                seen = child.exists("node_modules/pkg000/f000000.js") and child.exists("package.json")
                notes.append(f"the child fork shows node_modules: {'yes' if seen else 'no'}")
            refs = run(["git", "--git-dir", vault.path, "count-objects", "-v"])
            notes.append("vault objects after: " + ", ".join(refs.split("\n")[:4]))
            bt = _btrfs_du(hdir)
            if bt is not None:
                notes.append(f"btrfs filesystem du: {bt}")
    finally:
        vault.close()
        from avfs_git.core.vaults import layers

        layers.unmount(str(hdir))  # before the home is removed (the image with it)
        ctx.fx.done_with(base)
    mib = [f"{k / 1024:,.1f}" for k in du]
    notes.append(
        f"du -skx of the home on the host (MiB): before {mib[0]}, after each CLI fork"
        f" {', '.join(mib[1 : 1 + len(cli_ms)])}, after {FORK_LIVE_FORKS} more (API) {mib[-1]}"
    )
    target = Target(max_ms=5.0, label="≤ 5 ms, disk use flat")
    fig = "fork_live"
    how = " (layers = off: plain state dirs)" if layers_mode == "off" else ""
    if cli_ms:
        ctx.emit(
            Result(
                _fig(backend, fig + "_cli"),
                label,
                median(cli_ms),
                cli_ms,
                what=f"`avfs --json vault fork` of a mounted fork whose node_modules ({files:,} ignored files) is in its upper layer{how}",
                target=target,
                notes=notes,
            )
        )
    if api_ms:
        ctx.emit(
            Result(
                _fig(backend, fig),
                label,
                median(api_ms),
                api_ms,
                what=f"Vault.fork (in process) of the same mounted fork, after the CLI forks{how}",
                target=target,
                notes=notes[-3:],
            )
        )


# -- fuse_ro_walk ------------------------------------------------------------------------------
RO_WALK_TARGET = Target(max_ratio=1.5, label="≤ 1.5x native (warm)")
RO_FIND = ["find", ".", "-path", "./.git", "-prune", "-o", "-printf", ""]
RO_GREP = ["grep", "-r", "-q", "--exclude-dir=.git", "no line holds this string", "."]


def bench_fuse_ro_walk(ctx: Context, labels: list[str]) -> None:
    """Warm walks of a read-only revision mount (``avfs mount VAULT@REV``: what the overlay
    backend stacks under its writable layer) vs the stock git checkout of the same tree:
    ``find``, ``os.walk`` + ``lstat``, ``grep -r`` (reads every file) and ``git status``.
    The view never changes, so the kernel keeps its listings, attributes and pages: once
    warm, these make no call into the daemon."""
    for label in labels:
        _fuse_ro_walk(ctx, label)


def _fuse_ro_walk(ctx: Context, label: str) -> None:
    files = SIZES[label]
    home, hdir = ctx.fx.home("fuse-ro", label)
    vault = home.vault(VAULT)
    co = ctx.fx.checkout(label)
    mp = ctx.fx.new_dir(f"fuse-ro-mnt-{label}")
    budget = _budget(ctx, 60.0 if files <= 10_000 else 150.0)
    counts: dict[str, set[str]] = {"mount": set(), "native": set()}
    dirty: dict[str, set[str]] = {"mount": set(), "native": set()}

    def side(root: Path, who: str) -> RoundFn:
        def one(_i: int) -> Phases:
            out: Phases = {}
            t0 = time.perf_counter()
            run(RO_FIND, cwd=root)
            out["find"] = (time.perf_counter() - t0) * 1e3
            t0 = time.perf_counter()
            counts[who].add(str(_walk_lstat(root)))
            out["walk"] = (time.perf_counter() - t0) * 1e3
            t0 = time.perf_counter()
            subprocess.run(RO_GREP, cwd=root, check=False)
            out["grep"] = (time.perf_counter() - t0) * 1e3
            t0 = time.perf_counter()
            proc = _git_in(root, "status", "--porcelain")
            out["status"] = (time.perf_counter() - t0) * 1e3
            dirty[who].add(
                proc.stdout.strip() if proc.returncode == 0 else f"failed: {proc.stderr.strip()[:200]}"
            )
            return out

        return one

    try:
        with (
            mounted(home, vault, "main", mp, revision="main") as m,
            daemon_profile(ctx, m.pid, f"fuse_ro_walk-{label}"),
        ):
            t0 = time.perf_counter()
            _walk_lstat(m.path)
            cold_ms = (time.perf_counter() - t0) * 1e3
            # the untimed warm-up round of rounds() fills the rest of the kernel's caches
            r = rounds(
                {"native": side(co.path, "native"), "mount": side(m.path, "mount")},
                ctx.repeats.medium,
                budget,
            )
    finally:
        vault.close()
        ctx.fx.done_with(hdir)
        ctx.fx.done_with(mp)
    notes = [f"mount ready in {m.ready_ms:.0f} ms; the first (cold) os.walk + lstat {cold_ms:.0f} ms"]
    if counts["mount"] != {str(files)} or counts["native"] != {str(files)}:
        notes.append(f"counted files: mount {sorted(counts['mount'])}, native {sorted(counts['native'])}")
    if dirty["mount"] != {""} or dirty["native"] != {""}:
        notes.append(
            f"git status not clean: mount {sorted(dirty['mount'])[:2]}, native {sorted(dirty['native'])[:2]}"
        )
    for phase, what in (
        ("find", "`find . -path ./.git -prune -o -printf ''` in a read-only revision mount, warm"),
        ("walk", "os.walk + lstat of every entry in a read-only revision mount, warm"),
        ("grep", "`grep -r` (no match: every file read) in a read-only revision mount, warm"),
        ("status", "git status --porcelain in a read-only revision mount (its .git: a worktree), warm"),
    ):
        _compare(
            ctx, r, f"fuse_ro_{phase}", label, phase, what, RO_WALK_TARGET, notes, baseline="native checkout"
        )


# -- fuse_changes --------------------------------------------------------------------------------
CHECKPOINTED_DIRS = 250  # x IGNORED_PER_DIR files written in the mount and checkpointed


def bench_fuse_changes(ctx: Context, labels: list[str]) -> None:
    """avfs's own commands on an overlay-mounted fork whose upper layer holds 25,000
    checkpointed files and a 50,000-file ignored ``node_modules`` (5,000 and 10,000 with
    ``--quick``), with 10 changes: ``avfs --json status``, ``avfs --json proxy exec --
    true`` and ``avfs checkpoint save``, each round after the same 10 files changed and a
    new one written, vs ``git status`` / ``git commit -a`` in the native checkout. What it shows: they cost what
    changed since the last status (core/workspace/upperjournal.py), not the upper layer."""
    if "overlay" not in ctx.backends:
        return
    for label in labels:
        _fuse_changes(ctx, label)


def _fuse_changes(ctx: Context, label: str) -> None:
    files = SIZES[label]
    dirs = IGNORED_DIRS // 5 if ctx.quick else IGNORED_DIRS
    kept = CHECKPOINTED_DIRS // 5 if ctx.quick else CHECKPOINTED_DIRS
    co = ctx.fx.checkout(label)
    changed = pick_paths(files, 10, "fuse-changes")

    def fill_kept(root: Path) -> None:
        for d in range(kept):
            pkg = root / "vendor" / f"pkg{d:03d}"
            pkg.mkdir(parents=True, exist_ok=True)
            for f in range(IGNORED_PER_DIR):
                (pkg / f"m{f}.py").write_text(f"X = {f}\n")

    _fill_ignored(co.path, [], ctx, dirs)
    fill_kept(co.path)
    (co.path / "round.txt").write_text("-\n")
    git("add", "-A", cwd=co.path)
    git("commit", "-qm", "vendor", cwd=co.path)
    home, hdir = ctx.fx.home("fuse-changes", label)
    mp = ctx.fx.new_dir(f"fuse-changes-mnt-{label}")
    avfs = [ctx.avfs_bin, "--home", home.path, "--json", "--vault", f"{VAULT}:main"]

    def make(backend: str) -> tuple[Home, Vault, str, Path]:
        return home, home.vault(VAULT), "main", mp

    try:
        with mounted_each(
            dataclasses.replace(ctx, backends=("overlay",)), make, f"fuse_changes-{label}"
        ) as ms:
            m = ms["overlay"]
            _fill_ignored(m.path, [], ctx, dirs)
            fill_kept(m.path)
            run([*avfs, "checkpoint", "save", "-m", "vendor"])
            run([*avfs, "status"])  # the first after the checkpoint: reads what it recorded
            listed: list[int] = []

            def timed(argv: list[str], cwd: Path | None = None) -> float:
                t0 = time.perf_counter()
                out = run(argv, cwd=cwd)
                dt = (time.perf_counter() - t0) * 1e3
                if argv[:1] == [ctx.avfs_bin] and "status" in argv:
                    listed.append(len(json.loads(out)["changes"]))
                return dt

            def touch(root: Path, i: int) -> None:  # the 10 changes of this round, and a new file
                for p in changed:
                    (root / p).write_bytes(ctx.fx.content.changed_bytes(p, f"fuse-changes-{i}"))
                (root / "round.txt").write_text(f"{i}\n")

            def native(i: int) -> Phases:
                touch(co.path, i)
                out = {"status": timed(["git", "status", "--porcelain"], co.path)}
                out["checkpoint"] = timed(["git", "commit", "-qam", f"round {i}"], co.path)
                out["exec_true"] = timed(["true"])
                return out

            def mounted_side(i: int) -> Phases:
                touch(m.path, i)
                out = {"status": timed([*avfs, "status"])}
                out["checkpoint"] = timed([*avfs, "checkpoint", "save", "-m", f"round {i}"])
                out["exec_true"] = timed([*avfs, "proxy", "exec", "--", "true"])
                return out

            r = rounds({"native": native, "overlay": mounted_side}, ctx.repeats.medium, _budget(ctx, 90.0))
            what = (
                f"{kept * IGNORED_PER_DIR:,} checkpointed files + {dirs * IGNORED_PER_DIR:,} ignored"
                " (node_modules) in the upper layer, 10 changed files"
            )
            notes = [f"mount ready in {m.ready_ms:.0f} ms"]
            if any(n != 11 for n in listed):
                notes.append(f"avfs status listed {sorted(set(listed))} changes, not 11")
            for phase, doing, base in (
                ("status", "avfs --json status", "git status --porcelain, native checkout with the same"),
                (
                    "checkpoint",
                    "avfs checkpoint save of the 11 changes",
                    "git commit -a of the same, native",
                ),
                ("exec_true", "avfs --json proxy exec -- true (warm)", "true, run directly"),
            ):
                _compare(ctx, r, _fig("overlay", f"changes_{phase}"), label, phase, f"{doing}; {what}", None,
                         notes, baseline=base, mount="overlay")  # fmt: skip
    finally:
        for path in (hdir, mp):
            ctx.fx.done_with(path)


# -- fuse_git_commit -------------------------------------------------------------------------------
def bench_fuse_git_commit(ctx: Context, labels: list[str]) -> None:
    """git as a writer in the mount (issue 27): each round changes 10 files, commits them
    with ``git commit -qam`` in the mount, then runs ``avfs --json status`` twice (the first
    pays the workspace's adoption of git's commit, core/workspace/wsbase.py ``follow_git``) and
    ``avfs checkpoint save`` after one more change; the native checkout does the same with
    ``git commit -qam``, ``git status --porcelain`` twice and ``git add -A && git commit``.
    Both backends, a fork each."""
    for label in labels:
        _fuse_git_commit(ctx, label)


def _fuse_git_commit(ctx: Context, label: str) -> None:
    files = SIZES[label]
    co = ctx.fx.checkout(label)
    changed = pick_paths(files, 10, "fuse-git-commit")
    home, hdir = ctx.fx.home("fuse-git-commit", label)
    mps = {b: ctx.fx.new_dir(f"fuse-git-commit-mnt-{b}-{label}") for b in ctx.backends}

    def make(backend: str) -> tuple[Home, Vault, str, Path]:
        vault = home.vault(VAULT)
        vault.create_fork("main", f"m-{backend}")
        return home, vault, f"m-{backend}", mps[backend]

    def timed(argv: list[str], cwd: Path | None = None) -> float:
        t0 = time.perf_counter()
        run(argv, cwd=cwd)
        return (time.perf_counter() - t0) * 1e3

    def touch(root: Path, i: int, paths: list[str]) -> None:
        for p in paths:
            (root / p).write_bytes(ctx.fx.content.changed_bytes(p, f"fuse-git-commit-{i}"))

    def native(i: int) -> Phases:
        touch(co.path, i, changed)
        out = {"git_commit": timed(["git", "commit", "-qam", f"round {i}"], co.path)}
        out["status_first"] = timed(["git", "status", "--porcelain"], co.path)
        out["status_again"] = timed(["git", "status", "--porcelain"], co.path)
        (co.path / "round.txt").write_text(f"{i}\n")
        out["checkpoint"] = timed(["sh", "-c", f"git add -A && git commit -qm 'one more {i}'"], co.path)
        return out

    try:
        with mounted_each(ctx, make, f"fuse_git_commit-{label}") as ms:

            def side(backend: str) -> Callable[[int], Phases]:
                m = ms[backend]
                avfs = [ctx.avfs_bin, "--home", home.path, "--json", "--vault", f"{VAULT}:m-{backend}"]

                def go(i: int) -> Phases:
                    touch(m.path, i, changed)
                    out = {"git_commit": timed(["git", "commit", "-qam", f"round {i}"], m.path)}
                    out["status_first"] = timed([*avfs, "status"])
                    out["status_again"] = timed([*avfs, "status"])
                    (m.path / "round.txt").write_text(f"{i}\n")
                    out["checkpoint"] = timed([*avfs, "checkpoint", "save", "-m", f"one more {i}"])
                    return out

                return go

            sides: dict[str, Callable[[int], Phases]] = {"native": native}
            sides.update({b: side(b) for b in ms})
            r = rounds(sides, ctx.repeats.medium, _budget(ctx, 90.0))
            for b, m in ms.items():
                notes = [f"mount ready in {m.ready_ms:.0f} ms"]
                for phase, doing, base in (
                    ("git_commit", "git commit -qam of 10 changed files, in the mount", "the same, native"),
                    (
                        "status_first",
                        "the first avfs --json status after that git commit (adopts it)",
                        "git status --porcelain after git commit, native",
                    ),
                    ("status_again", "avfs --json status again", "git status --porcelain again, native"),
                    (
                        "checkpoint",
                        "avfs checkpoint save of one more change after the git commit",
                        "git add -A && git commit, native",
                    ),
                ):
                    _compare(ctx, r, _fig(b, f"git_commit_{phase}"), label, phase,
                             f"{doing}; {files:,} files", None, notes, baseline=base, mount=b)  # fmt: skip
    finally:
        for path in (hdir, *mps.values()):
            ctx.fx.done_with(path)


FUSE_BENCHMARKS: dict[str, Callable[[Context, list[str]], None]] = {
    "fuse_ro_walk": bench_fuse_ro_walk,
    "fuse_io": bench_fuse_io,
    "fuse_meta": bench_fuse_meta,
    "fuse_git_status": bench_fuse_git_status,
    "fuse_git_status_ignored": bench_fuse_git_status_ignored,
    "fuse_changes": bench_fuse_changes,
    "fuse_git_commit": bench_fuse_git_commit,
    "fuse_build": bench_fuse_build,
    "fuse_npm": bench_fuse_npm,
    "fork_live": bench_fork_live,
}
