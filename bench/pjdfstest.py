"""Run pjdfstest (the POSIX conformance suite) on the local disk and inside avfs mounts.

``PJDFSTEST=/path/to/built/pjdfstest python -m bench.pjdfstest [--backend B ...] [--json]``

``PJDFSTEST`` names a directory where pjdfstest is already built (it holds the
``pjdfstest`` binary and ``tests/``); this script never fetches or builds it (see
docs/testing.md for how). It must run as root (pjdfstest changes owners and makes device
nodes). For each backend it makes a fresh directory, ``cd``s into it and runs
``prove -r -v`` over the test directories issue 15 names, then counts the test points:
``ok`` (``ok N``, and ``not ok N # TODO``, an expected failure, which prove counts as
passed: shown apart as ``todo``), ``not ok`` and ``missing`` (planned by ``1..N`` but never printed, as
when a script dies). Backends:

- ``native``: a temporary directory on the local disk (the reference);
- ``fuse``: a fork mounted by ``avfs mount`` with the pure-FUSE backend;
- ``overlay``: a fork mounted with the overlay backend (kernel overlayfs over avfs's
  read-only view of the fork's base). Until ``mounts.mount`` takes ``backend=``, it is built
  by hand: a read-only revision mount as the lower layer and ``mount -t overlay`` over it.

Prints one line per test directory and a total per backend (``--json``: one JSON document),
and, with ``--failures``, every failing test point. Exit 0 when every backend ran.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from avfs_git.mount.side import MOUNT_SIDE

DIRS = (
    "open",
    "mkdir",
    "rmdir",
    "rename",
    "unlink",
    "symlink",
    "truncate",
    "ftruncate",
    "chmod",
    "utimensat",
)
BACKENDS = ("native", "fuse", "overlay")

_FILE = re.compile(r"^(/\S+\.t) \.+\s*$")
_PLAN = re.compile(r"^1\.\.(\d+)")
_POINT = re.compile(r"^(not ok|ok) (\d+)(.*)$")


def parse_prove(output: str) -> dict[str, dict[str, object]]:
    """Per test script: planned, ok, not_ok (with their lines), from ``prove -v`` output."""
    scripts: dict[str, dict[str, object]] = {}
    cur: dict[str, object] | None = None
    for line in output.splitlines():
        m = _FILE.match(line)
        if m:
            cur = {"planned": 0, "ok": 0, "not_ok": [], "seen": 0}
            scripts[m.group(1)] = cur
            continue
        if cur is None:
            continue
        m = _PLAN.match(line)
        if m:
            cur["planned"] = int(m.group(1))
            continue
        m = _POINT.match(line)
        if m:
            cur["seen"] = int(cur["seen"]) + 1  # type: ignore[call-overload]
            if m.group(1) == "ok":
                cur["ok"] = int(cur["ok"]) + 1  # type: ignore[call-overload]
            elif "# TODO" in m.group(3):  # an expected failure: prove counts it as passed
                cur["ok"] = int(cur["ok"]) + 1  # type: ignore[call-overload]
                cur["todo"] = int(cur.get("todo", 0)) + 1  # type: ignore[call-overload]
            else:
                cur["not_ok"].append(line)  # type: ignore[attr-defined]
    return scripts


def summarize(scripts: dict[str, dict[str, object]], tests_dir: str) -> dict[str, object]:
    per_dir: dict[str, dict[str, int]] = {}
    failures: list[str] = []
    for path, s in sorted(scripts.items()):
        rel = os.path.relpath(path, tests_dir)
        d = rel.split(os.sep)[0]
        planned = int(s["planned"])  # type: ignore[call-overload]
        seen = int(s["seen"])  # type: ignore[call-overload]
        total = max(planned, seen)
        row = per_dir.setdefault(d, {"ok": 0, "total": 0, "todo": 0})
        row["ok"] += int(s["ok"])  # type: ignore[call-overload]
        row["todo"] += int(s.get("todo", 0))  # type: ignore[call-overload]
        row["total"] += total
        failures += [f"{rel}: {line}" for line in s["not_ok"]]  # type: ignore[attr-defined]
        if seen < planned:
            failures.append(f"{rel}: {planned - seen} planned test(s) never ran")
    ok = sum(r["ok"] for r in per_dir.values())
    total = sum(r["total"] for r in per_dir.values())
    todo = sum(r["todo"] for r in per_dir.values())
    return {"ok": ok, "total": total, "todo": todo, "dirs": per_dir, "failures": failures}


def run_prove(pjd: str, cwd: str, dirs: tuple[str, ...]) -> str:
    tests = [os.path.join(pjd, "tests", d) for d in dirs]
    proc = subprocess.run(
        ["prove", "-r", "-v", *tests],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "LC_ALL": "C"},
    )
    return proc.stdout + proc.stderr


@contextlib.contextmanager
def _avfs_fork(work: str) -> Iterator[tuple[object, object]]:
    """A fresh avfs home with vault ``pjd`` whose ``main`` has one checkpoint (a file)."""
    os.environ["AVFS_HOME"] = os.path.join(work, "avfs-home")
    from avfs_git.core.operations import checkpoint
    from avfs_git.core.vaults.home import Home

    home = Home(os.environ["AVFS_HOME"], author=("pjdfstest", "pjdfstest@localhost"), mounts=MOUNT_SIDE)
    vault = home.create_vault("pjd")
    vault.workspace("main").write("README", b"pjdfstest runs here\n")
    checkpoint.save(vault, name="base")
    yield home, vault


@contextlib.contextmanager
def target(backend: str, work: str) -> Iterator[str]:
    """A directory of ``backend`` to run in; everything is unmounted on the way out."""
    if backend == "native":
        d = os.path.join(work, "native")
        os.mkdir(d)
        yield d
        return
    from avfs_git.core.vaults.registry import mounted_at
    from avfs_git.ops import mounts

    # whether mounts.mount chooses the backend; until it does, pure FUSE is its only mount
    has_backends = "backend" in inspect.signature(mounts.mount).parameters
    with _avfs_fork(work) as (home, vault):
        if backend == "fuse":
            mp = os.path.join(work, "fuse")
            os.mkdir(mp)
            kwargs = {"backend": "fuse"} if has_backends else {}
            mounts.mount(home, vault, "main", mp, **kwargs)  # type: ignore[arg-type]
            try:
                yield mp
            finally:
                mounts.unmount(home, vault, "main", lazy=True)  # type: ignore[arg-type]
                if mounted_at(mp):
                    mounts.force_unmount(mp)
            return
        if backend != "overlay":
            raise SystemExit(f"unknown backend {backend!r}")
        mp = os.path.join(work, "overlay")
        os.mkdir(mp)
        if not has_backends:  # the same stack by hand
            with _overlay_prototype(mounts, home, vault, work, mp):
                yield mp
            return
        mounts.mount(home, vault, "main", mp, backend="overlay")  # type: ignore[arg-type,call-arg]
        try:
            yield mp
        finally:
            mounts.unmount(home, vault, "main", lazy=True)  # type: ignore[arg-type]
            if mounted_at(mp):
                mounts.force_unmount(mp)


@contextlib.contextmanager
def _overlay_prototype(mounts: object, home: object, vault: object, work: str, mp: str) -> Iterator[None]:
    from avfs_git.core.operations.history import resolve

    m: object = mounts
    commit = resolve(vault, "main", "main")  # type: ignore[arg-type]
    lower, upper, wk = (os.path.join(work, n) for n in ("lower", "upper", "ovl-work"))
    for d in (lower, upper, wk):
        os.mkdir(d)
    m.mount(home, vault, "main", lower, revision=commit)  # type: ignore[attr-defined]
    try:
        subprocess.run(
            [
                "mount",
                "-t",
                "overlay",
                "overlay",
                "-o",
                f"lowerdir={lower},upperdir={upper},workdir={wk},redirect_dir=on,xino=auto",
                mp,
            ],
            check=True,
        )
        try:
            yield
        finally:
            subprocess.run(["umount", "-l", mp], check=False)
    finally:
        m.unmount(home, vault, "main", revision=commit, lazy=True)  # type: ignore[attr-defined]


def run_backend(pjd: str, backend: str, dirs: tuple[str, ...]) -> dict[str, object]:
    work = tempfile.mkdtemp(prefix=f"avfs-pjd-{backend}-")
    try:
        with target(backend, work) as d:
            out = run_prove(pjd, d, dirs)
        res = summarize(parse_prove(out), os.path.join(pjd, "tests"))
        res["backend"] = backend
        return res
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.pjdfstest", description=__doc__.split("\n\n")[0])
    ap.add_argument("--backend", action="append", choices=BACKENDS, help="default: all three")
    ap.add_argument(
        "--dir", action="append", help=f"a directory of pjdfstest's tests/ (default: {' '.join(DIRS)})"
    )
    ap.add_argument("--json", action="store_true", help="one JSON document on stdout")
    ap.add_argument("--failures", action="store_true", help="list every failing test point")
    args = ap.parse_args(argv)
    pjd = os.environ.get("PJDFSTEST", "")
    if not pjd or not os.access(os.path.join(pjd, "pjdfstest"), os.X_OK) or not Path(pjd, "tests").is_dir():
        print(
            "PJDFSTEST must name a directory where pjdfstest is already built (pjdfstest and tests/);"
            " see docs/testing.md",
            file=sys.stderr,
        )
        return 2
    if os.geteuid() != 0:
        print("pjdfstest must run as root", file=sys.stderr)
        return 2
    if shutil.which("prove") is None:
        print("prove (perl's TAP harness) is not installed", file=sys.stderr)
        return 2
    pjd = os.path.abspath(pjd)
    dirs = tuple(args.dir or DIRS)
    missing = [d for d in dirs if not Path(pjd, "tests", d).is_dir()]
    if missing:
        print(f"no such pjdfstest test directory: {', '.join(missing)}", file=sys.stderr)
        return 2
    results = [run_backend(pjd, b, dirs) for b in (args.backend or BACKENDS)]
    if args.json:
        print(json.dumps({"pjdfstest": pjd, "dirs": list(dirs), "results": results}))
        return 0
    for r in results:
        print(
            f"{r['backend']}: {r['ok']} / {r['total']} passed ({r['todo']} of them TODO: expected failures)"
        )
        for d, row in r["dirs"].items():  # type: ignore[attr-defined]
            print(f"  {d:10} {row['ok']:5} / {row['total']}")
        if args.failures:
            for f in r["failures"]:  # type: ignore[attr-defined]
                print(f"    {f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
