"""A/B of an incremental `avfs push` (a fork that moved since its last push, the case a
push checks the fast-forward of) and of `avfs fetch`: avfs checkouts against git, served
by each checkout's warm CLI server, interleaved in the same rounds.

``python -m bench.pushab [--rounds N] [--files N] [--out FILE] NAME=WORKTREE ...``

Each WORKTREE is an avfs checkout with its own ``make install``; its console script
(``WORKTREE/.venv/bin/avfs``) runs as a user runs it, in a home of its own whose server
answers (started before the first round). Per side and round, untimed: one file written
and checkpointed in the vault (git's side: one commit made with ``git commit-tree`` in a
bare copy). Timed: ``avfs --vault v push origin main`` against ``git push -q origin main``
to a bare repository on disk, then ``avfs --vault v fetch origin`` against ``git fetch -q
--prune origin`` of one new commit pushed there by another clone. Medians of wall time and
the median of per-round ratios against git. Results as JSON (``--out``, by default
``bench/results/pushab-<stamp>.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from .env import rmtree


def _run(cmd: list[str], env: dict[str, str] | None = None, cwd: str | None = None) -> str:
    p = subprocess.run(cmd, capture_output=True, env=env, cwd=cwd, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{cmd}: {p.returncode}\n{p.stdout}{p.stderr}")
    return p.stdout


def _timed(cmd: list[str], env: dict[str, str] | None = None) -> float:
    t0 = time.perf_counter()
    _run(cmd, env)
    return (time.perf_counter() - t0) * 1000


def _tree(root: Path, files: int) -> None:
    for i in range(files):
        d = root / f"d{i % 50}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i}.txt").write_text(f"file {i}\n" * 20)


def _bump(bare: str, n: int, work: Path) -> None:
    """One new commit on ``main`` of the bare repository ``bare``, made without a checkout."""
    env = {**os.environ, "GIT_DIR": bare, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@x",
           "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@x", "GIT_INDEX_FILE": str(work / "idx")}  # fmt: skip
    p = subprocess.run(["git", "hash-object", "-w", "--stdin"], input=f"bump {n}\n", capture_output=True,
                       text=True, env=env, check=True)  # fmt: skip
    blob = p.stdout.strip()
    _run(["git", "read-tree", "main"], env)
    _run(["git", "update-index", "--add", "--cacheinfo", f"100644,{blob},bump-{n}.txt"], env)
    tree = _run(["git", "write-tree"], env).strip()
    commit = _run(["git", "commit-tree", tree, "-p", "main", "-m", f"bump {n}"], env).strip()
    _run(["git", "update-ref", "refs/heads/main", commit], env)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=11)
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--out", type=Path)
    ap.add_argument("sides", nargs="+", metavar="NAME=WORKTREE")
    args = ap.parse_args()
    bins = {n: str(Path(w, ".venv", "bin", "avfs")) for n, w in (s.split("=", 1) for s in args.sides)}
    names = ["git", *bins]
    wall: dict[str, dict[str, list[float]]] = {op: {n: [] for n in names} for op in ("push", "fetch")}
    loads: list[float] = []
    tmp = Path(tempfile.mkdtemp(prefix="avfs-pushab-"))
    here = os.getcwd()
    # every call from there: a server started with its working directory in an avfs checkout
    # would import that checkout's package (another stamp: each call would fall back)
    os.chdir(tmp)
    try:
        src = tmp / "src"
        _tree(src, args.files)
        envs: dict[str, dict[str, str]] = {}
        for n, avfs in bins.items():
            env = {k: v for k, v in os.environ.items() if k != "AVFS_SERVER"}
            env.update(AVFS_HOME=str(tmp / f"home-{n}"), AVFS_PROGRESS="never")
            envs[n] = env
            _run([avfs, "vault", "create", "v", "--from", str(src)], env)
            for r in ("origin", "up"):
                _run(["git", "init", "-q", "--bare", str(tmp / f"{r}-{n}.git")])
            _run([avfs, "--vault", "v", "remote", "add", "origin", str(tmp / f"origin-{n}.git")], env)
            _run([avfs, "--vault", "v", "remote", "add", "up", str(tmp / f"up-{n}.git")], env)
            _run([avfs, "--vault", "v", "push", "origin", "main"], env)
            _run([avfs, "--vault", "v", "push", "up", "main"], env)
            _run([avfs, "--vault", "v", "fetch", "up"], env)
            vault = _run([avfs, "vault", "path", "v"], env).strip()
        _run(["git", "clone", "-q", "--bare", "--origin", "src", vault, str(tmp / "git.git")])
        for r in ("origin", "up"):
            _run(["git", "clone", "-q", "--bare", vault, str(tmp / f"{r}-git.git")])
        g = str(tmp / "git.git")
        _run(["git", "--git-dir", g, "remote", "add", "origin", str(tmp / "origin-git.git")])
        _run(["git", "--git-dir", g, "remote", "add", "up", str(tmp / "up-git.git")])
        _run(["git", "--git-dir", g, "fetch", "-q", "up"])
        for n, avfs in bins.items():  # each home's server up and answering before the rounds
            _run([avfs, "server", "start"], envs[n])
            _run([avfs, "--vault", "v", "remote", "list"], envs[n])
        for i in range(args.rounds + 1):  # round 0 warms the caches, untimed
            loads.append(os.getloadavg()[0])
            k = i % len(names)
            for n in names[k:] + names[:k]:
                if n == "git":
                    _bump(g, i, tmp)
                    push = _timed(["git", "--git-dir", g, "push", "-q", "origin", "main"])
                    _bump(str(tmp / "up-git.git"), i, tmp)
                    fetch = _timed(["git", "--git-dir", g, "fetch", "-q", "--prune", "up"])
                else:
                    avfs, env = bins[n], envs[n]
                    _run([avfs, "--vault", "v", "write", f"round-{i}.txt", str(i)], env)
                    _run([avfs, "--vault", "v", "checkpoint", "save", "-m", f"round {i}"], env)
                    push = _timed([avfs, "--vault", "v", "push", "origin", "main"], env)
                    _bump(str(tmp / f"up-{n}.git"), i, tmp)
                    fetch = _timed([avfs, "--vault", "v", "fetch", "up"], env)
                if i:
                    wall["push"][n].append(push)
                    wall["fetch"][n].append(fetch)
        loads.append(os.getloadavg()[0])
        for n, avfs in bins.items():
            _run([avfs, "server", "stop"], envs[n])
    finally:
        os.chdir(here)
        rmtree(tmp)  # (each home's layers file system unmounted first)
    summary: dict[str, dict[str, dict[str, float]]] = {}
    for op, sides in wall.items():
        summary[op] = {}
        for n in names:
            ratios = [a / b for a, b in zip(sides[n], sides["git"], strict=True)]
            summary[op][n] = {
                "wall_ms": statistics.median(sides[n]),
                "median_of_ratios": statistics.median(ratios),
            }
            print(f"{op:6} {n:8} wall {summary[op][n]['wall_ms']:7.1f} ms  / git (median of ratios)"
                  f" {summary[op][n]['median_of_ratios']:.2f}x")  # fmt: skip
    print(f"load (1 min) {min(loads):.1f}-{max(loads):.1f}")
    out = (
        args.out
        or Path(__file__).parent / "results" / f"pushab-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    )
    doc = {
        "sides": args.sides,
        "rounds": args.rounds,
        "files": args.files,
        "wall_ms": wall,
        "load_1min": loads,
    }
    out.write_text(json.dumps({**doc, "summary": summary}, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
