"""Which git processes avfs's own commands start (branch h-gitspawn1): a ``git`` on PATH
that appends its argv and its parent's command line to a log, then runs git; the frequent
commands run one after another on a fork of a tree (``--files N`` generated files, or a
real project's files: ``--project DIR``, its tracked files as ``git ls-files`` lists them),
and the log cut into the git processes each command started.

    .venv/bin/python -m bench.gitspawns [--files 10000 | --project DIR] [--tree WORKTREE...]
        [--json OUT]

``--tree``: the avfs checkouts to run (default this one); each gets a home of its own, and
the table names the git processes each started for each step (their count and argv, the
repository and paths shortened). Also runs with ``AVFS_SERVER=off`` when ``--no-server``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .abkit import ROOT, scratch, seed_tree

SHIM = """#!/bin/sh
# (h-gitspawn1) log the argv and the parent's command line, then run git
p="$(cat /proc/$PPID/comm 2>/dev/null): $(tr '\\0\\n\\t' '   ' < /proc/$PPID/cmdline 2>/dev/null | cut -c1-160)"
a=$(printf '%s' "$*" | tr '\\n\\t' '  ')
printf '%s\\t%s\\t%s\\n' "$AVFS_GITSPAWN_STEP" "$p" "$a" >> "{log}"
exec {real} "$@"
"""


def shim(where: Path) -> tuple[Path, Path]:
    """A directory holding the logging ``git``; (it, its log)."""
    real = shutil.which("git")
    assert real is not None
    where.mkdir(parents=True, exist_ok=True)
    log = where / "git.log"
    log.touch()
    (where / "git").write_text(SHIM.format(log=log, real=real))
    (where / "git").chmod(0o755)
    return where, log


def steps(mp: Path, remote: Path) -> list[tuple[str, list[str] | str]]:
    """The steps, in order: (name, avfs arguments) or (name, a shell line run in the mount)."""
    return [
        ("vault fork", ["vault", "fork", "p:main", "f1"]),
        ("write", ["--vault", "p:f1", "write", "d0/new.txt", "hello"]),
        ("status", ["--vault", "p:f1", "status"]),
        ("status again", ["--vault", "p:f1", "status"]),
        ("diff", ["--vault", "p:f1", "diff"]),
        ("checkpoint save", ["--vault", "p:f1", "checkpoint", "save", "-m", "one"]),
        ("mount", ["--vault", "p:f1", "mount", str(mp)]),
        ("edit in mount", f"echo changed >> {mp}/d1/edited.txt; echo x > {mp}/d2/made.txt"),
        ("git status in mount", f"cd {mp} && git status --porcelain >/dev/null"),
        ("status (mounted)", ["--vault", "p:f1", "status"]),
        ("diff (mounted)", ["--vault", "p:f1", "diff"]),
        ("proxy exec first", ["--vault", "p:f1", "--json", "proxy", "exec", "--", "true"]),
        ("proxy exec warm", ["--vault", "p:f1", "--json", "proxy", "exec", "--", "true"]),
        (
            "proxy exec warm writes",
            ["--vault", "p:f1", "--json", "proxy", "exec", "--", "sh", "-c", "echo y > w.txt"],
        ),
        ("checkpoint save (mounted)", ["--vault", "p:f1", "checkpoint", "save", "-m", "two"]),
        ("unmount", ["--vault", "p:f1", "unmount"]),
        ("vault fork f2", ["vault", "fork", "p:main", "f2"]),
        ("write f2", ["--vault", "p:f2", "write", "d3/other.txt", "other"]),
        ("checkpoint f2", ["--vault", "p:f2", "checkpoint", "save", "-m", "f2"]),
        ("merge", ["--vault", "p:f1", "merge", "f2"]),
        ("remote add", ["--vault", "p:f1", "remote", "add", "origin", str(remote)]),
        ("push", ["--vault", "p:f1", "push", "origin"]),
        ("push again", ["--vault", "p:f1", "push", "origin"]),
        ("fetch", ["--vault", "p:f1", "fetch", "origin"]),
        ("status after", ["--vault", "p:f1", "status"]),
        ("proxy exec unmounted fork", ["--vault", "p:f2", "--json", "proxy", "exec", "--", "true"]),
        ("proxy exec again", ["--vault", "p:f2", "--json", "proxy", "exec", "--", "true"]),
        ("unmount f2", ["--vault", "p:f2", "unmount"]),
        ("log", ["--vault", "p:f1", "log", "-n", "3"]),
    ]


def run_tree(tree: str, tmp: Path, src: Path, server: str) -> dict[str, Any]:
    """Run the steps with ``tree``'s avfs in a home of its own under ``tmp``; by step, the
    git processes started (each: the parent's command and git's argv) and the step's wall."""
    bindir, log = shim(tmp / "bin")
    avfs = str(Path(tree, ".venv", "bin", "avfs"))
    env = {**os.environ, "AVFS_HOME": str(tmp / "home"), "AVFS_PROGRESS": "never",
           "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}", "AVFS_SERVER": server}  # fmt: skip
    env.pop("PYTHONPATH", None)
    if os.environ.get("GITSPAWN_LOG"):  # who started each: bench/gitspawnsite (its Python stack)
        env["PYTHONPATH"] = str(ROOT / "bench" / "gitspawnsite")
    mp = tmp / "mnt"
    mp.mkdir()
    remote = tmp / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    out: dict[str, Any] = {"steps": []}
    env["AVFS_GITSPAWN_STEP"] = "vault create"
    plan = [("vault create", ["vault", "create", "p", "--from", str(src)]), *steps(mp, remote)]
    try:
        for name, what in plan:
            env["AVFS_GITSPAWN_STEP"] = name
            before = len(log.read_text().splitlines())
            t0 = time.perf_counter()
            cmd = [avfs, *what] if isinstance(what, list) else ["sh", "-c", what]
            p = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=tmp)
            wall = (time.perf_counter() - t0) * 1000
            time.sleep(0.3)  # (a daemon's git started for the step, after its answer)
            lines = log.read_text().splitlines()[before:]
            out["steps"].append({"step": name, "rc": p.returncode, "wall_ms": round(wall, 1),
                                 "git": [_short(x, tmp, tree) for x in lines],
                                 "stderr": p.stderr[-400:] if p.returncode else ""})  # fmt: skip
    finally:
        env["AVFS_GITSPAWN_STEP"] = "cleanup"
        for fork in ("f1", "f2"):
            subprocess.run([avfs, "--vault", f"p:{fork}", "unmount"], env=env, capture_output=True)
        subprocess.run([avfs, "server", "stop"], env=env, capture_output=True)
    return out


def _short(line: str, tmp: Path, tree: str) -> dict[str, str]:
    step, parent, argv = [*line.split("\t"), "", ""][:3]
    for long, short in ((str(tmp), "TMP"), (tree, "TREE")):
        parent, argv = parent.replace(long, short), argv.replace(long, short)
    return {"step": step, "parent": parent.strip(), "argv": argv}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=10000)
    ap.add_argument("--project", help="a git checkout whose tracked files are the tree")
    ap.add_argument("--tree", action="append", help="avfs checkouts (default: this one)")
    ap.add_argument("--server", default="auto", help="AVFS_SERVER for the calls")
    ap.add_argument("--json", help="write the result here")
    a = ap.parse_args()
    trees = a.tree or [str(ROOT)]
    result: dict[str, Any] = {"files": a.files, "project": a.project, "server": a.server, "trees": {}}
    with scratch("gitspawns-") as top:
        src = top / "src"
        src.mkdir()
        if a.project:
            subprocess.run(f"git -C {a.project} archive HEAD | tar -x -C {src}", shell=True, check=True)
        else:
            seed_tree(src, a.files, max(1, a.files // 100))
        for tree in trees:
            tmp = top / Path(tree).name
            tmp.mkdir()
            result["trees"][tree] = run_tree(tree, tmp, src, a.server)
    for tree, got in result["trees"].items():
        print(f"== {tree}")
        for s in got["steps"]:
            print(f"{s['step']:28} rc={s['rc']} {s['wall_ms']:8.1f} ms  git x{len(s['git'])}")
            for g in s["git"]:
                print(f"      [{g['parent'][:60]}]  git {g['argv'][:200]}")
            if s["stderr"]:
                print("      stderr:", s["stderr"].strip().replace("\n", " | ")[:300])
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    sys.exit(main())
