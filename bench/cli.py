"""``python -m bench [--sizes 10k,100k] [--quick] [--only NAME,...] ...``"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import importlib
import os
import platform
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from .env import DOCS_PAGE, PROJECT_DIR, WORK_DIR, git, log, make_hermetic, utc_stamp
from .report import (
    SCHEMA,
    Section,
    docs_sources,
    load,
    print_header,
    print_row,
    summary,
    update_docs,
    write_latest,
    write_results,
)
from .timing import FULL, QUICK, Profiler, Repeats, Result
from .trees import SIZES, Fixtures


def _csv(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def parse_args(argv: list[str]) -> argparse.Namespace:
    from .cases import BENCHMARKS

    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark avfs against stock git and the native file system on synthetic trees.",
        epilog=f"benchmarks: {', '.join(BENCHMARKS)}. See docs/benchmarks.md.",
    )
    p.add_argument("--sizes", default="10k,100k", help="tree sizes, from: 10k,100k (default both)")
    p.add_argument("--quick", action="store_true", help="10k only and fewer repeats (a smoke run)")
    p.add_argument("--only", default="", metavar="NAME,...", help="run only these benchmarks")
    p.add_argument(
        "--backends",
        default="overlay,fuse",
        help="mount backends the mounted-fork benchmarks time, each against the native disk in the"
        " same rounds (default: overlay,fuse; overlay_plain: the overlay backend with the home's"
        " layers file system off, its upper layer on the host's file system)",
    )
    p.add_argument("--keep", action="store_true", help="keep this run's homes under bench/.work/runs")
    p.add_argument(
        "--profile",
        action="store_true",
        help="also run each in-process avfs op once under cProfile (bench/.work/profiles/*.prof)",
    )
    p.add_argument(
        "--reuse-templates",
        action="store_true",
        help="keep the imported template vaults under bench/.work/templates and reuse them while the"
        " tree and avfs's sources are unchanged (skips the 100k import of later runs)",
    )
    p.add_argument("--no-docs", action="store_true", help="do not update docs/benchmarks.md")
    p.add_argument(
        "--docs",
        action="store_true",
        help="update docs/benchmarks.md even from a partial (--quick / --only) run",
    )
    p.add_argument(
        "--render-docs",
        nargs="?",
        const="",
        default=None,
        metavar="RESULTS.json",
        help="run nothing: regenerate docs/benchmarks.md's results and bench/results/latest.md from a"
        " results file (default: the newest full run)",
    )
    args = p.parse_args(argv)
    sizes = ["10k"] if args.quick else _csv(args.sizes)
    bad = [s for s in sizes if s not in SIZES]
    if bad or not sizes:
        p.error(f"--sizes: unknown size(s) {bad}; choose from {', '.join(SIZES)}")
    args.sizes = [s for s in SIZES if s in sizes]  # smallest first
    only = _csv(args.only)
    unknown = [n for n in only if n not in BENCHMARKS]
    if unknown:
        p.error(f"--only: unknown benchmark(s) {unknown}; choose from {', '.join(BENCHMARKS)}")
    args.only = only
    backends = _csv(args.backends)
    if not backends or any(b not in ("overlay", "overlay_plain", "fuse") for b in backends):
        p.error(f"--backends: choose from overlay,overlay_plain,fuse (got {args.backends!r})")
    args.backends = tuple(dict.fromkeys(backends))
    return args


def _machine() -> dict[str, Any]:
    import pygit2

    return {
        "nproc": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "pygit2": getattr(pygit2, "__version__", "?"),
        "libgit2": pygit2.LIBGIT2_VERSION,
        "git": git("--version").strip(),
        "loadavg_start": _load(),
    }


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _avfs_version() -> dict[str, Any]:
    """The avfs commit, whether its work tree differs, and a hash of the package's sources
    (what was measured, even uncommitted)."""
    try:
        commit = git("rev-parse", "HEAD", cwd=PROJECT_DIR).strip()
        dirty = bool(
            git("status", "--porcelain", "--untracked-files=no", "--", "avfs_git", cwd=PROJECT_DIR).strip()
        )
    except RuntimeError:
        commit, dirty = "unknown", True
    digest = hashlib.sha1()
    for path in sorted((PROJECT_DIR / "avfs_git").rglob("*.py")):
        digest.update(str(path.relative_to(PROJECT_DIR)).encode() + b"\0" + path.read_bytes())
    return {"commit": commit, "dirty": dirty, "sources_sha1": digest.hexdigest()}


# Loaded up front so that every in-process figure measures one version of the code, even
# when someone edits avfs during a (long) run; subprocesses still run what is on disk.
PRELOAD = (
    "avfs_git.core.vaults.home",
    "avfs_git.core.vaults.vault",
    "avfs_git.core.workspace.workspace",
    "avfs_git.core.operations.checkpoint",
    "avfs_git.core.operations.history",
)


def render_docs(spec: str) -> int:
    """Regenerate the docs' results: the main table from ``spec`` (default: the newest
    full run), the FUSE section from ``spec`` when it has FUSE figures, else from the newest
    results file that has (of a run at full size when there is one)."""
    given: Section | None = None
    if spec:
        path = Path(spec)
        if not path.exists():
            print(f"bench: no such results file: {path}", file=sys.stderr)
            return 2
        given = (load(path), path)
    main, fuse = docs_sources(given)
    if main is None and fuse is None:
        print("bench: no results file to render (run `python -m bench` first)", file=sys.stderr)
        return 2
    update_docs(main, fuse)
    first = main or fuse
    assert first is not None
    latest = write_latest(first[0], first[1], fuse=fuse if main is not None else None)
    used = ", ".join(sorted({str(s[1]) for s in (main, fuse) if s is not None}))
    print(f"bench: {DOCS_PAGE} and {latest} updated from {used}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.render_docs is not None:
        return render_docs(args.render_docs)
    # before anything loads pygit2 (libgit2 reads HOME once)
    make_hermetic(WORK_DIR / "home")

    from .cases import BENCHMARKS
    from .context import Context

    repeats: Repeats = QUICK if args.quick else FULL
    stamp = utc_stamp()
    started = datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat()
    run_dir = WORK_DIR / "runs" / stamp
    run_dir.mkdir(parents=True, exist_ok=True)
    machine = _machine()
    avfs_at_start = _avfs_version()
    fx = Fixtures(
        run_dir, keep=args.keep, template_key=avfs_at_start["sources_sha1"] if args.reuse_templates else None
    )
    for module in PRELOAD:
        importlib.import_module(module)
    if os.getloadavg()[0] > 0.5 * (os.cpu_count() or 1):
        log(f"note: load average is {_load()}: other work is running, figures will be noisy")
    selected = [n for n in BENCHMARKS if not args.only or n in args.only]
    log(f"sizes {','.join(args.sizes)}; benchmarks {', '.join(selected)}; work dir {WORK_DIR}")

    results: list[Result] = []
    errors: list[dict[str, str]] = []
    warnings: list[str] = []

    def emit(r: Result) -> None:
        results.append(r)
        print_row(r)

    ctx = Context(
        fx=fx,
        repeats=repeats,
        profiler=Profiler(WORK_DIR / "profiles" if args.profile else None),
        emit=emit,
        results=results,
        quick=args.quick,
        backends=args.backends,
    )
    # trees and checkouts first (cached across runs), so their cost shows up apart
    for label in args.sizes:
        fx.tree(label)
        fx.checkout(label)
    t_all = time.perf_counter()
    print_header()
    try:
        for name in selected:
            log(f"running {name}")
            t0 = time.perf_counter()
            try:
                BENCHMARKS[name](ctx, list(args.sizes))
            except Exception as exc:  # a broken benchmark is reported; the run goes on
                traceback.print_exc()
                errors.append({"benchmark": name, "error": f"{type(exc).__name__}: {exc}"})
            log(f"{name} took {time.perf_counter() - t0:.1f} s")
    finally:
        fx.cleanup()

    machine["loadavg_end"] = _load()
    avfs_at_end = _avfs_version()
    # the sources, not the commit: committing bench/ or docs/ mid-run measures the same avfs
    if avfs_at_end["sources_sha1"] != avfs_at_start["sources_sha1"]:
        msg = "avfs' sources changed during the run: subprocess figures may mix versions"
        log(f"warning: {msg}")
        warnings.append(msg)
    doc: dict[str, Any] = {
        "schema": SCHEMA,
        "started": started,
        "argv": list(sys.argv[1:] if argv is None else argv),
        "sizes": args.sizes,
        "quick": args.quick,
        "repeats": {
            "fast": repeats.fast,
            "medium": repeats.medium,
            "slow": repeats.slow,
            "warmup": repeats.warmup,
        },
        "wall_s": round(time.perf_counter() - t_all, 1),
        "machine": machine,
        "avfs": avfs_at_start,
        "results": [r.to_json() for r in results],
        "importtime": ctx.extras.get("importtime"),
        # -X importtime of each frequent command through the console script (bench/clicases.py)
        "importtime_cli": ctx.extras.get("importtime_cli"),
        "errors": errors,
        "warnings": warnings,
        "summary": summary(results),
    }
    path = write_results(doc, stamp)
    partial = args.quick or bool(args.only)
    if not args.no_docs and (args.docs or not partial):
        update_docs(*docs_sources((doc, path)))
        log(f"updated {DOCS_PAGE}")
    s = doc["summary"]
    print(f"\ntargets met: {s['met']}, missed: {s['missed']}, without a target: {s['informational']}")
    missed = [f"{r.name} {r.size}" for r in results if r.met is False]
    if missed:
        print(f"missed: {', '.join(missed)}")
    if errors:
        print(f"failed to run: {', '.join(e['benchmark'] for e in errors)}")
    it = ctx.extras.get("importtime")
    if it:
        print(f"\n{it['command'].split(' --home')[0]} --json status: {it['total_import_ms']} ms of imports")
        for t in it["top"]:
            print(f"  {t['cumulative_ms']:8.1f} ms  {t['module']}")
    for name, cli in (ctx.extras.get("importtime_cli") or {}).items():
        top = ", ".join(f"{t['module']} {t['cumulative_ms']}" for t in cli["top"])
        print(f"importtime {name}: {cli['total_import_ms']} ms, {cli['modules']} modules ({top})")
    log(f"wrote {path} and {path.parent / 'latest.md'} ({doc['wall_s']} s)")
    return 0
