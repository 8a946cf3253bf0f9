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
- ``fuse_ro_walk``: warm ``find``, ``os.walk`` + ``lstat``, ``grep -r`` and ``git status`` in
  a read-only revision mount of the synthetic tree (the overlay backend's lower layer) vs
  the stock git checkout;
- ``fuse_build``: extract a pure-Python source tree (click, rich and pygments as installed
  in the venv, plus a small test module), ``python -m compileall -q``, ``python -m pytest``.

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

from .env import AUTHOR, WORK_DIR, log, rmtree, run
from .timing import Result, Target, median
from .trees import SIZES, VAULT, pick_paths

if TYPE_CHECKING:
    from avfs_git.core.home import Home
    from avfs_git.core.vault import Vault

    from .cases import Context

MiB = 1 << 20
NATIVE = "native disk"

# DESIGN.md's FUSE targets, as time ratios (mount time / native time)
IO_TARGET = Target(max_ratio=1 / 0.75, label="≥ 0.75x native throughput (time ≤ 1.33x)")
META_TARGET = Target(max_ratio=2.0, label="≥ 0.5x native (time ≤ 2x)")
STATUS_TARGET = Target(min_speedup=1.0, label="faster than native")
BUILD_TARGET = Target(max_ratio=1.5, label="≤ 1.5x native wall time")


def _tag(i: int) -> str:
    return f"r{i}" if i >= 0 else f"w{-i}"


# -- mounts that cannot outlive the harness --------------------------------------------------
_LIVE: dict[str, tuple[Home, Vault, str, str | None]] = {}  # mount point -> (..., fork, revision)
_GUARDED = False


def _unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def _fuse_mounts() -> list[str]:
    """Mount points of avfs FUSE mounts visible to this process."""
    out = []
    try:
        with open("/proc/self/mounts", encoding="utf-8") as fh:
            for line in fh:
                parts = line.split()
                if len(parts) > 2 and parts[2].startswith("fuse") and "avfs" in parts[2] + parts[0]:
                    out.append(_unescape(parts[1]))
    except OSError:
        pass
    return out


def _lazy_unmount(mountpoint: str) -> None:
    from avfs_git.ops.mounts import force_unmount

    force_unmount(mountpoint)


def sweep_stale_mounts() -> list[str]:
    """Lazily unmount avfs mounts under bench/.work that no live benchmark owns (left by a
    harness killed with -9: its daemons run in their own sessions and would stay)."""
    work = str(WORK_DIR.resolve()) + os.sep
    stale = [mp for mp in _fuse_mounts() if mp.startswith(work) and mp not in _LIVE]
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
    home: Home, vault: Vault, fork: str, mountpoint: Path, revision: str | None = None
) -> Iterator[Mount]:
    """Mount ``fork`` (read-only at ``revision`` when given) at ``mountpoint`` with the real
    API; always unmounted afterwards."""
    from avfs_git.core.history import resolve
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
        info = mounts.mount(home, vault, fork, mp, revision=commit)
    except BaseException:
        _release(mp)  # mount() failed or was interrupted half-way: leave nothing behind
        raise
    ready_ms = (time.perf_counter() - t0) * 1000.0
    try:
        yield Mount(Path(info.mountpoint), info.pid, ready_ms)
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


def _empty_home(path: Path) -> tuple[Home, Vault]:
    from avfs_git.core.home import Home

    home = Home(str(path), author=AUTHOR)
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
                fh.write("1\n")
            self.global_drop = True
            self.method = "echo 1 > /proc/sys/vm/drop_caches"
        except OSError:
            pass

    def drop(self, paths: list[Path]) -> None:
        os.sync()
        if self.global_drop:
            with open("/proc/sys/vm/drop_caches", "w", encoding="ascii") as fh:
                fh.write("1\n")
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
    """Sequential write then cold and warm read of a big file, mount vs native."""
    size_mib = 256 if ctx.quick else 1024
    size = size_mib * MiB
    label = f"{size_mib} MiB" if size_mib < 1024 else f"{size_mib // 1024} GiB"
    base = ctx.fx.new_dir("fuse-io")
    home, vault = _empty_home(base / "home")
    native_dir = base / "native"
    native_dir.mkdir()
    (base / "mnt").mkdir()
    cold = ColdCache()
    block = os.urandom(MiB)
    try:
        with mounted(home, vault, "main", base / "mnt") as m:

            def side(root: Path, backing: Path | None) -> RoundFn:
                path = root / "big.bin"

                def one(_i: int) -> Phases:
                    path.unlink(missing_ok=True)
                    os.sync()
                    t: Phases = {"write": _write_file(path, block, size_mib)}
                    extra = _files_of_size(backing, size) if backing is not None else []
                    cold.drop([path, *extra])
                    t["read_cold"] = _read_file(path, size)
                    t["read_warm"] = _read_file(path, size)
                    t["read_third"] = _read_file(path, size)
                    return t

                return one

            with daemon_profile(ctx, m.pid, "fuse_io"):
                r = rounds(
                    {"native": side(native_dir, None), "mount": side(m.path, base / "home")},
                    3 if ctx.quick else 5,
                    _budget(ctx, 150.0),
                )
            (m.path / "big.bin").unlink(missing_ok=True)
    finally:
        vault.close()
        (native_dir / "big.bin").unlink(missing_ok=True)
        ctx.fx.done_with(base)
    for phase, what in (
        ("write", f"write {label} in 1 MiB blocks (O_WRONLY, fsync at the end)"),
        ("read_cold", f"read it back in 1 MiB blocks, page cache emptied ({cold.method.split(' on ')[0]})"),
        ("read_warm", "read it again at once (page cache warm)"),
    ):
        f, n = r.get("mount", phase), r.get("native", phase)
        notes = (
            [f"throughput: mount {_mib_s(size, median(f))}, native {_mib_s(size, median(n))}"] if f else []
        )
        if phase == "read_cold":
            notes.append(f"cold: {cold.method}")
        if phase == "read_warm":
            f3, n3 = r.get("mount", "read_third"), r.get("native", "read_third")
            if f3:
                notes.append(f"a third read: mount {median(f3):,.0f} ms, native {median(n3):,.0f} ms")
        _compare(ctx, r, f"fuse_{phase}", label, phase, what, IO_TARGET, notes)


# -- fuse_meta ---------------------------------------------------------------------------------
META_DIRS = 100
META_SIZE = 100


def bench_fuse_meta(ctx: Context, labels: list[str]) -> None:
    """Create, stat, unlink of many small files, mount vs native; each phase on its own."""
    files = 2_000 if ctx.quick else 10_000
    label = f"{files // 1000}k files"
    base = ctx.fx.new_dir("fuse-meta")
    home, vault = _empty_home(base / "home")
    native_dir = base / "native"
    native_dir.mkdir()
    (base / "mnt").mkdir()
    data = b"m" * (META_SIZE - 1) + b"\n"
    wrong: list[str] = []

    def side(root: Path, who: str) -> RoundFn:
        def one(i: int) -> Phases:
            top = root / f"meta-{_tag(i)}"
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
        with mounted(home, vault, "main", base / "mnt") as m, daemon_profile(ctx, m.pid, "fuse_meta"):
            r = rounds(
                {"native": side(native_dir, "native"), "mount": side(m.path, "mount")},
                3,
                _budget(ctx, 150.0),
            )
    finally:
        vault.close()
        ctx.fx.done_with(base)
    for phase, what in (
        (
            "create",
            f"mkdir {META_DIRS} dirs, then create + write {META_SIZE} B + close {files:,} files in them",
        ),
        ("stat", f"stat each of the {files:,} files"),
        ("unlink", f"unlink the {files:,} files, then rmdir the {META_DIRS} dirs"),
    ):
        f, n = r.get("mount", phase), r.get("native", phase)
        notes = [
            f"per file: mount {median(f) * 1000 / files:.0f} µs, native {median(n) * 1000 / files:.0f} µs"
        ]
        _compare(ctx, r, f"fuse_{phase}", label, phase, what, META_TARGET, notes + sorted(set(wrong)))


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
    home, hdir = ctx.fx.home("fuse-status", label)
    vault = home.vault(VAULT)
    co = ctx.fx.checkout(label)
    changed = pick_paths(files, 10, "fuse-status")
    for p in changed:
        (co.path / p).write_bytes(ctx.fx.content.changed_bytes(p, "fuse-status"))
    mp = ctx.fx.new_dir(f"fuse-status-mnt-{label}")
    budget = _budget(ctx, 75.0 if files <= 10_000 else 120.0)
    reps = ctx.repeats.medium
    try:
        with mounted(home, vault, "main", mp) as m, daemon_profile(ctx, m.pid, f"fuse_git_status-{label}"):
            for p in changed:
                (m.path / p).write_bytes(ctx.fx.content.changed_bytes(p, "fuse-status"))
            ready = [f"mount ready in {m.ready_ms:.0f} ms"]
            # notes for the walks: why there is no git status figure, when there is none
            base_notes = _status_rows(ctx, label, m.path, co.path, changed, reps, budget, ready)
            counts: dict[str, set[str]] = {"mount": set(), "native": set()}

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
                    # untimed: (re)fill the kernel's caches, whose entries expire after a
                    # while (60 s in the mount): the timed walk is the cached one
                    _walk_lstat(root)
                    t0 = time.perf_counter()
                    n = _walk_lstat(root)
                    dt = (time.perf_counter() - t0) * 1e3
                    counts[who].add(str(n))
                    return {"walk": dt}

                return one

            for phase, fn, what in (
                ("find", find, f"`{FIND}`"),
                (
                    "walk",
                    walk,
                    "os.walk + lstat of every entry, right after another walk (kernel caches warm)",
                ),
            ):
                counts = {"mount": set(), "native": set()}
                walk_reps = max(ctx.repeats.slow, 5)  # informational: fewer runs than git status
                r = rounds({"native": fn(co.path, "native"), "mount": fn(m.path, "mount")}, walk_reps, budget)
                notes = list(base_notes)
                if counts["mount"] != {str(files)} or counts["native"] != {str(files)}:
                    notes.append(
                        f"counted files: mount {sorted(counts['mount'])}, native {sorted(counts['native'])},"
                        f" expected {files}"
                    )
                _compare(ctx, r, f"fuse_{phase}", label, phase, what, None, notes, baseline="native checkout")
    finally:
        vault.close()
        ctx.fx.done_with(hdir)
        ctx.fx.done_with(mp)


def _porcelain(proc: subprocess.CompletedProcess[str]) -> list[str]:
    return sorted(line for line in proc.stdout.splitlines() if line.strip())


def _status_rows(
    ctx: Context,
    label: str,
    mnt: Path,
    checkout: Path,
    changed: list[str],
    reps: int,
    budget: float,
    base_notes: list[str],
) -> list[str]:
    """git status --porcelain in the mount vs the checkout, when git works in the mount.
    Returns notes for the walk figures (why there is no git status figure, if there is none)."""
    want = sorted(f" M {p}" for p in changed)
    if not (mnt / ".git").exists():
        log(f"fuse_git_status {label}: no .git in the mount: git status there is not supported yet")
        return ["git status in the mount: not supported yet (the mount has no .git)"]
    t0 = time.perf_counter()
    probe = _git_in(mnt, "status", "--porcelain")
    probe_ms = (time.perf_counter() - t0) * 1e3
    if probe.returncode != 0:
        msg = probe.stderr.strip().splitlines()[-1:] or ["?"]
        log(f"fuse_git_status {label}: git status fails in the mount: {msg[0]}")
        return [f"git status in the mount: not supported yet (it failed: {msg[0][:200]})"]
    notes: list[str] = []
    results: dict[str, list[list[str]]] = {"mount": [], "native": []}
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

    # the probe above was the first status after mounting: this is the steady state
    r = rounds({"native": status(checkout, "native"), "mount": status(mnt, "mount")}, reps, budget)
    for who in ("mount", "native"):
        bad = [x for x in results[who] if x != want]
        if bad:
            notes.append(
                f"git status ({who}) listed other than the 10 changes in {len(bad)} of"
                f" {len(results[who])} runs (e.g. {len(bad[0])} entries: {bad[0][:3]})"
            )
    notes += sorted(set(failures))[:3]
    _compare(
        ctx,
        r,
        "fuse_git_status",
        label,
        "status",
        "git status --porcelain in the mounted fork (its .git: a worktree of the vault), 10 changes",
        STATUS_TARGET,
        notes,
        baseline="git status --porcelain, native checkout",
    )
    native = r.get("native", "status")
    if native:
        first_notes = [f"the first git status listed {len(_porcelain(probe))} entries"]
        if _porcelain(probe) != want:
            first_notes.append("the first git status did not list exactly the 10 changes")
        ctx.emit(
            Result(
                "fuse_git_status_first",
                label,
                probe_ms,
                [probe_ms],
                what="the first git status --porcelain after mounting (one run: nothing in the kernel's caches yet)",
                baseline="git status --porcelain, native checkout",
                baseline_ms=median(native),
                baseline_samples_ms=native,
                notes=base_notes + first_notes,
            )
        )
    return []


# -- fuse_build --------------------------------------------------------------------------------
BUILD_PACKAGES = ("click", "rich", "pygments")

TEST_MODULE = '''\
"""A small test suite over the copied sources (run from the project's own src/)."""

import pathlib

import click
import pygments
import pytest
import rich
from click.testing import CliRunner
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_for_filename
from rich.console import Console
from rich.syntax import Syntax
from rich.table import Table

SRC = pathlib.Path(__file__).resolve().parent.parent / "src"
SOURCES = sorted((SRC / "click").glob("*.py"))


def test_sources_come_from_this_tree():
    for mod in (click, rich, pygments):
        assert pathlib.Path(mod.__file__).resolve().is_relative_to(SRC)


@click.command()
@click.option("--count", default=1, type=int)
@click.argument("name")
def hello(count, name):
    for _ in range(count):
        click.echo(f"hello {name}")


@pytest.mark.parametrize("count", range(1, 11))
def test_click_command(count):
    result = CliRunner().invoke(hello, ["--count", str(count), "bench"])
    assert result.exit_code == 0
    assert result.output.count("hello bench") == count


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_pygments_highlights_sources(path):
    code = path.read_text(encoding="utf-8")
    html = highlight(code, get_lexer_for_filename(path.name), HtmlFormatter())
    assert html.startswith('<div class="highlight">')


@pytest.mark.parametrize("path", SOURCES[:8], ids=lambda p: p.name)
def test_rich_renders_syntax(path):
    console = Console(record=True, width=100, color_system="truecolor")
    console.print(Syntax(path.read_text(encoding="utf-8"), "python", line_numbers=True))
    assert console.export_text().count("\\n") > 10


def test_rich_table():
    table = Table("file", "bytes")
    for p in SOURCES:
        table.add_row(p.name, str(p.stat().st_size))
    console = Console(record=True, width=100)
    console.print(table)
    assert "core.py" in console.export_text()
'''

PYTEST_INI = "[pytest]\ntestpaths = tests\n"


def _make_project(dest: Path) -> tuple[Path, int, int]:
    """A tarball of the project (src/<packages> + tests + pytest.ini); returns its path,
    its number of files and of bytes."""
    staging = dest / "staging"
    for name in BUILD_PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            raise RuntimeError(f"fuse_build needs the {name} package installed in the venv")
        shutil.copytree(
            next(iter(spec.submodule_search_locations)),
            staging / "src" / name,
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.so"),
        )
    (staging / "tests").mkdir()
    (staging / "tests" / "test_sources.py").write_text(TEST_MODULE, encoding="utf-8")
    (staging / "pytest.ini").write_text(PYTEST_INI, encoding="utf-8")
    nfiles = nbytes = 0
    for d, _dirs, fs in os.walk(staging):
        for fn in fs:
            nfiles += 1
            nbytes += os.path.getsize(os.path.join(d, fn))
    tarball = dest / "project.tar"
    run(["tar", "cf", str(tarball), "-C", str(staging), "."])
    rmtree(staging)
    return tarball, nfiles, nbytes


_RESULT_TIME = re.compile(r" in [0-9.]+s.*$")


def bench_fuse_build(ctx: Context, labels: list[str]) -> None:
    """Extract a pure-Python project, compileall it and run its tests, mount vs native."""
    base = ctx.fx.new_dir("fuse-build")
    tarball, nfiles, nbytes = _make_project(base)
    home, vault = _empty_home(base / "home")
    native_dir = base / "native"
    native_dir.mkdir()
    (base / "mnt").mkdir()
    label = f"{nfiles} files"
    outcomes: dict[str, set[str]] = {"mount": set(), "native": set()}

    def side(root: Path, who: str) -> RoundFn:
        def one(i: int) -> Phases:
            proj = root / f"proj-{_tag(i)}"
            proj.mkdir()
            t: Phases = {}
            t0 = time.perf_counter()
            run(["tar", "xf", str(tarball), "-C", str(proj)])
            t1 = time.perf_counter()
            run([ctx.python, "-m", "compileall", "-q", "src", "tests"], cwd=proj)
            t2 = time.perf_counter()
            proc = subprocess.run(
                [ctx.python, "-m", "pytest", "-q"],
                cwd=proj,
                # src/ first from the start: pytest itself imports pygments early
                env={**os.environ, "PYTHONPATH": "src"},
                capture_output=True,
                text=True,
                check=False,
            )
            t3 = time.perf_counter()
            tail = proc.stdout.strip().splitlines()[-1:] or [proc.stderr.strip()[-200:]]
            outcomes[who].add(_RESULT_TIME.sub("", tail[0]).strip("= ") if tail else "?")
            if proc.returncode != 0:
                log(f"fuse_build ({who}): pytest exited {proc.returncode}: {tail[0][:300] if tail else ''}")
            t.update(extract=(t1 - t0) * 1e3, compile=(t2 - t1) * 1e3, test=(t3 - t2) * 1e3)
            t["total"] = (t3 - t0) * 1e3
            run(["rm", "-rf", str(proj)])
            return t

        return one

    try:
        with mounted(home, vault, "main", base / "mnt") as m, daemon_profile(ctx, m.pid, "fuse_build"):
            r = rounds(
                {"native": side(native_dir, "native"), "mount": side(m.path, "mount")},
                3 if ctx.quick else 5,
                _budget(ctx, 150.0),
            )
    finally:
        vault.close()
        ctx.fx.done_with(base)
    pkgs = " + ".join(BUILD_PACKAGES)
    common = [
        f"project: {pkgs} sources from the venv + 1 test module, {nfiles} files, {nbytes / MiB:.1f} MiB"
    ]
    if outcomes["mount"] == outcomes["native"] and len(outcomes["native"]) == 1:
        common.append(f"pytest: {next(iter(outcomes['native']))} on both sides, every run")
    else:
        common.append(f"pytest: mount {sorted(outcomes['mount'])}, native {sorted(outcomes['native'])}")
    for phase, what, target in (
        ("extract", f"tar xf of the project ({nfiles} files)", None),
        ("compile", "python -m compileall -q src tests", BUILD_TARGET),
        ("test", "python -m pytest -q (the suite imports from the tree)", BUILD_TARGET),
        ("total", "extract + compileall + pytest, end to end", BUILD_TARGET),
    ):
        _compare(
            ctx, r, f"fuse_build_{phase}", label, phase, what, target, common if phase == "total" else []
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


FUSE_BENCHMARKS: dict[str, Callable[[Context, list[str]], None]] = {
    "fuse_ro_walk": bench_fuse_ro_walk,
    "fuse_io": bench_fuse_io,
    "fuse_meta": bench_fuse_meta,
    "fuse_git_status": bench_fuse_git_status,
    "fuse_build": bench_fuse_build,
}
