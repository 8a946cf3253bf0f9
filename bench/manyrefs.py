"""Clone, fetch and push with many refs: a remote of ``N`` branches and ``N`` tags (default
20,000 each) served by `git daemon` on 127.0.0.1, avfs against git's own command on the
same server in the same run (docs/benchmarks.md, the thirtieth round, "Clone, fetch and
push with 20,000 branches"; issue 31's push/fetch/clone at most 1.1x git).

Rows, each side's commands interleaved round by round (a cold process each,
``AVFS_SERVER=off``; wall from start to exit, CPU the children's ``getrusage``: avfs with
the git processes it ran):

- ``clone``: `avfs vault clone URL` vs `git clone --bare URL`;
- ``clone_lazy``: `avfs vault clone --lazy` vs `git clone --bare --filter=blob:none`;
- ``fetch``: `avfs fetch origin` of an up-to-date vault (one made by that side's clone) vs
  `git fetch --prune origin '+refs/heads/*:refs/remotes/origin/*'` in git's clone, made with
  that refspec so that origin's tracking refs are packed as in the vault (a plain bare
  clone has none: its first fetch writes 20,000 loose ones, which every later fetch
  reads);
- ``push``: one new commit of ``main`` (made untimed) by `avfs push origin main` vs `git
  push origin main`;
- ``info``: `avfs vault info` (no git command lists a vault's forks: avfs sides only).

Each side pushes to a server repository of its own (the same refs). With ``--base DIR``
another checkout's avfs (``DIR/.venv/bin/avfs``: main's code) is a third side, its clones
``--base-rounds`` times (each wrote 120,000 files before this round: ~40 s).

Run: ``.venv/bin/python -m bench.manyrefs [--branches N] [--rounds R] [--base DIR]``;
the results go to ``bench/results/clone1-<UTC>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .remotecases import _daemon

OLD = {"GIT_AUTHOR_DATE": "1577836800 +0000", "GIT_COMMITTER_DATE": "1577836800 +0000"}


def _git(*args: str, inp: bytes | None = None, env: dict[str, str] | None = None) -> str:
    return (
        subprocess.run(
            ["git", *args], input=inp, capture_output=True, check=True, env={**os.environ, **(env or {})}
        )
        .stdout.decode()
        .strip()
    )


def serve_repo(repo: Path, n: int) -> None:
    """A bare repository of ``n`` branches and ``n`` tags over four commits, one sorted
    packed-refs (as tests/test_clone_manyrefs.py makes it)."""
    _git("init", "-q", "--bare", str(repo))
    blob = _git("--git-dir", str(repo), "hash-object", "-w", "--stdin", inp=b"hello\n")
    tree = _git("--git-dir", str(repo), "mktree", inp=f"100644 blob {blob}\tREADME\n".encode())
    commits = [_git("--git-dir", str(repo), "commit-tree", tree, "-m", "one", env=OLD)]
    for msg in ("two", "three"):
        commits.append(
            _git("--git-dir", str(repo), "commit-tree", tree, "-p", commits[-1], "-m", msg, env=OLD)
        )
    commits.append(
        _git("--git-dir", str(repo), "commit-tree", tree, "-p", commits[0], "-m", "aside", env=OLD)
    )
    lines = [(f"refs/heads/b{i:05d}", commits[i % 4]) for i in range(n)]
    lines += [(f"refs/tags/t{i:05d}", commits[i % 4]) for i in range(n)]
    lines.append(("refs/heads/main", commits[2]))
    with open(repo / "packed-refs", "w", encoding="utf-8") as fh:
        fh.write("# pack-refs with: peeled fully-peeled sorted \n")
        fh.writelines(f"{oid} {name}\n" for name, oid in sorted(lines))
    _git("--git-dir", str(repo), "symbolic-ref", "HEAD", "refs/heads/main")
    _git("--git-dir", str(repo), "config", "uploadpack.allowFilter", "true")


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall ms, CPU ms of the process and what it waited for) of one command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(argv, env=env, capture_output=True, check=False)
    wall = (time.perf_counter() - t0) * 1000
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{argv} failed: {proc.stderr.decode()[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000
    return wall, cpu


class Sides:
    def __init__(self, work: Path, url: str, sides: dict[str, str | None]) -> None:
        self.work, self.url = work, url
        self.sides = sides  # name -> avfs binary (None: git)
        self.trash = work / "trash"
        self.trash.mkdir()

    def env(self, name: str) -> dict[str, str]:
        home = self.work / f"home-{name}"
        return {**os.environ, "AVFS_HOME": str(home), "AVFS_PROGRESS": "never", "AVFS_SERVER": "off"}

    def discard(self, path: Path) -> None:
        """Out of the way now (a rename), removed after the run: a base vault's 120,000
        files take minutes to remove on this disk, which would load the next rounds."""
        if path.exists():
            path.rename(self.trash / f"{path.name}-{time.monotonic_ns()}")

    def remote(self, name: str) -> str:
        return f"{self.url}/{name}.git"

    def clone(self, name: str, lazy: bool, dest: str) -> tuple[float, float]:
        avfs = self.sides[name]
        if avfs is None:
            target = self.work / "git" / dest
            self.discard(target)
            extra = ["--filter=blob:none"] if lazy else []
            if dest == "kept":  # (origin's tracking refs packed as in the vault: fetch alike)
                extra.append("--config=remote.origin.fetch=+refs/heads/*:refs/remotes/origin/*")
            return timed(
                ["git", "clone", "-q", "--bare", *extra, self.remote(name), str(target)], os.environ.copy()
            )
        self.discard(self.work / f"home-{name}" / "vaults" / f"{dest}.git")
        argv = [avfs, "vault", "clone", *(["--lazy"] if lazy else []), self.remote(name), dest]
        return timed(argv, self.env(name))

    def git_dir(self, name: str, dest: str) -> str:
        if self.sides[name] is None:
            return str(self.work / "git" / dest)
        return str(self.work / f"home-{name}" / "vaults" / f"{dest}.git")

    def fetch(self, name: str) -> tuple[float, float]:
        avfs = self.sides[name]
        if avfs is None:
            gd = self.git_dir(name, "kept")
            argv = [
                "git",
                "--git-dir",
                gd,
                "fetch",
                "-q",
                "--prune",
                "origin",
                "+refs/heads/*:refs/remotes/origin/*",
            ]
            return timed(argv, os.environ.copy())
        return timed([avfs, "--vault", "kept", "fetch", "origin"], self.env(name))

    def push(self, name: str, i: int) -> tuple[float, float]:
        avfs = self.sides[name]
        if avfs is None:
            gd = self.git_dir(name, "kept")
            tip = _git("--git-dir", gd, "rev-parse", "main")
            tree = _git("--git-dir", gd, "rev-parse", f"{tip}^{{tree}}")
            new = _git("--git-dir", gd, "commit-tree", tree, "-p", tip, "-m", f"push {i}")
            _git("--git-dir", gd, "update-ref", "refs/heads/main", new, tip)
            return timed(["git", "--git-dir", gd, "push", "-q", "origin", "main"], os.environ.copy())
        env = self.env(name)
        subprocess.run(
            [avfs, "--vault", "kept:main", "write", "f.txt", f"{i}\n"],
            env=env,
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [avfs, "--vault", "kept:main", "checkpoint", "save"], env=env, check=True, capture_output=True
        )
        return timed([avfs, "--vault", "kept:main", "push", "origin", "main"], env)

    def info(self, name: str) -> tuple[float, float]:
        avfs = self.sides[name]
        assert avfs is not None
        return timed([avfs, "--json", "vault", "info", "kept"], self.env(name))


def _unmount_homes(work: Path, names: list[str], avfs: str) -> None:
    py = str(Path(avfs).parent / "python")
    for name in names:
        home = work / f"home-{name}"
        if home.exists():
            code = "import sys; from avfs_git.core.vaults import layers; layers.unmount(sys.argv[1])"
            subprocess.run([py, "-c", code, str(home)], check=False, capture_output=True)


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.manyrefs")
    ap.add_argument("--branches", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--base", help="another checkout: its .venv/bin/avfs is the 'base' side")
    ap.add_argument("--base-rounds", type=int, default=3)
    ap.add_argument("--work", help="where to work (default: a new temporary directory)")
    ap.add_argument("--rows", default="clone,clone_lazy,fetch,push,info", help="which rows (comma-separated)")
    args = ap.parse_args(argv)
    here = Path(__file__).resolve().parent.parent
    sides: dict[str, str | None] = {"avfs": str(here / ".venv" / "bin" / "avfs"), "git": None}
    if args.base:
        sides["base"] = str(Path(args.base) / ".venv" / "bin" / "avfs")
    wanted = set(args.rows.split(","))
    work = Path(args.work or tempfile.mkdtemp(prefix="avfs-manyrefs-"))
    srv = work / "srv"
    srv.mkdir(parents=True)
    serve_repo(srv / "avfs.git", args.branches)
    for name in sides:
        if name != "avfs":
            shutil.copytree(srv / "avfs.git", srv / f"{name}.git")
    daemon, url = _daemon(srv)
    s = Sides(work, url, sides)
    samples: dict[str, dict[str, dict[str, list[float]]]] = {}
    loads = [os.getloadavg()[0]]

    def note(row: str, side: str, got: tuple[float, float]) -> None:
        d = samples.setdefault(row, {}).setdefault(side, {"wall_ms": [], "cpu_ms": []})
        d["wall_ms"].append(got[0])
        d["cpu_ms"].append(got[1])
        print(
            f"{row:10} {side:5} wall {got[0]:9.0f} ms  cpu {got[1]:8.0f} ms  load {os.getloadavg()[0]:.1f}",
            flush=True,
        )

    try:
        for name in sides:  # each side's vault for fetch, push and info (untimed)
            s.clone(name, False, "kept")
        for r in range(args.rounds):
            order = list(sides) if r % 2 == 0 else list(reversed(sides))
            for row, lazy in (("clone", False), ("clone_lazy", True)):
                for name in order if row in wanted else ():
                    if name == "base" and r >= args.base_rounds:
                        continue
                    note(row, name, s.clone(name, lazy, "c"))
            for name in order if "fetch" in wanted else ():
                note("fetch", name, s.fetch(name))
            for name in order if "push" in wanted else ():
                note("push", name, s.push(name, r))
            for name in order if "info" in wanted else ():
                if sides[name] is not None:
                    note("info", name, s.info(name))
            loads.append(os.getloadavg()[0])
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        daemon.wait(10)
        _unmount_homes(work, [n for n in sides if sides[n]], str(sides["avfs"]))
    rows: dict[str, dict[str, Any]] = {}
    for row, by_side in samples.items():
        med = {side: {k: statistics.median(v) for k, v in d.items()} for side, d in by_side.items()}
        out: dict[str, Any] = {"samples": by_side, "median": med}
        for side in med:
            if side != "git" and "git" in med:
                out[f"{side}_over_git"] = {k: med[side][k] / med["git"][k] for k in ("wall_ms", "cpu_ms")}
        rows[row] = out
    result = {
        "bench": "bench/manyrefs.py",
        "branches": args.branches,
        "tags": args.branches,
        "rounds": args.rounds,
        "base_rounds": args.base_rounds if args.base else None,
        "base": args.base,
        "rows_run": sorted(wanted),
        "git": subprocess.run(["git", "--version"], capture_output=True, text=True).stdout.strip(),
        "load": loads,
        "rows": rows,
    }
    stamp = time.strftime("%Y%m%dT%H%MZ", time.gmtime())
    path = here / "bench" / "results" / f"clone1-{stamp}.json"
    path.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    for row, got in rows.items():
        line = "  ".join(f"{side} {m['wall_ms']:.0f}/{m['cpu_ms']:.0f}" for side, m in got["median"].items())
        ratios = "  ".join(
            f"{k} {v['wall_ms']:.2f}x wall {v['cpu_ms']:.2f}x cpu"
            for k, v in got.items()
            if k.endswith("_over_git")
        )
        print(f"{row:10} median ms wall/cpu: {line}   {ratios}")
    print(f"results: {path}; work dir {work} (remove it: its trash holds the discarded vaults)")


if __name__ == "__main__":
    main(sys.argv[1:])
