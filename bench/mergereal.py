"""`avfs merge` on a real project against `git merge` and `git merge-tree --write-tree` (issue
31; docs/benchmarks.md, the twenty-first round's "merge on a real project" section).

minimist 1.2.8 with its ``npm install``ed ``node_modules`` (13,963 entries, ignored), written
through an overlay mount of fork ``main`` of vault ``mm`` (bench/realproj7.py's set-up), in
a home of its own per side; git's side a clone holding the same ``node_modules``. Per round,
kind and side, in turn (the order turned each round): a fork made and checkpointed (untimed),
the target written and checkpointed where the kind needs (untimed), then the merge, timed:

- ``ff``: the fork adds one file at the root; a fast-forward;
- ``root``: each side adds one file at the root; a merge commit, one tree merged;
- ``dirs``: the fork adds a file under ``test/``, the target one under ``example/``; a merge
  commit, the root and two directories' trees.

Each avfs merge is the console script as a person runs it, ``python -m avfs_git --vault mm
merge FORK --into main`` (the same client on every side): ``cold`` with ``AVFS_SERVER=off``
(a process of its own: Python's start, its imports, the merge), ``served`` by the home's
resident server, ``native`` the same with this tree's native console script as the client
(``.venv/bin/avfs``; not for ``--before``, whose server would not serve its stamp) (started in a cgroup of its own, so its fork and child are counted: the call's CPU is the
client's group's plus the server's). A call's
CPU is the growth of its side's cgroup (``cpuacct.usage``) from before the call to
``--settle`` s after it (bench/spareab.py's); git's, ``git merge-tree --write-tree HEAD
BRANCH`` then ``git merge -q --no-edit BRANCH`` (the tree the merge makes, then the merge),
in a cgroup of git's. With ``--mounted`` the target is mounted (overlay backend) while it
is merged into, on every avfs side; the first merge of each side (the mount's upper layer
folded into the overlay's entries, unless ``--mounted``) is reported apart.

``python -m bench.mergereal [--rounds N] [--before DIR] [--modes cold,served,native]
[--kinds ff,root,dirs] [--mounted] [--src DIR] [--name NAME]`` as root (the mounts, the
cgroups); ``--before DIR``: a directory holding another ``avfs_git`` (``git archive main``),
a side ``before`` run from it through ``PYTHONPATH``. Results in
``bench/results/NAME-<UTC>.json`` (``mergereal2``: h-merge2's runs; the twenty-first
round's are ``mergereal-*``). Round 0's merges are each side's first after the mount went
(``first`` in the summary): the one that folded the upper layer on main's code.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from . import abkit as ab
from .spareab import Group

KINDS = ("ff", "root", "dirs")

PREP = r"""
import sys
import avfs_git
from avfs_git.core.operations import checkpoint
kind, name = sys.argv[1:3]
h = avfs_git.open_home()
v = h.vault("mm")
v.create_fork("main", name)
ws = v.workspace(name)
ws.write({"ff": f"{name}.md", "root": f"{name}.md", "dirs": f"test/{name}.js"}[kind], f"{name}\n".encode())
checkpoint.save(v, name)
if kind != "ff":
    m = v.workspace("main")
    m.write({"root": f"{name}-main.md", "dirs": f"example/{name}-main.js"}[kind], b"main\n")
    checkpoint.save(v, "main")
h.close()
"""


def _env(home: Path, root: Path, before: Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "AVFS_", "PYTHONPATH"))}
    env.update(HOME=str(root / "userhome"), AVFS_HOME=str(home), GIT_CONFIG_NOSYSTEM="1", LC_ALL="C.UTF-8")
    env.update(AVFS_PROGRESS="never")
    if before is not None:
        env["PYTHONPATH"] = str(before)
    return env


def _git(cwd: Path, *args: str, env: dict[str, str]) -> str:
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


def _git_prep(plain: Path, kind: str, name: str, env: dict[str, str]) -> None:
    """Branch ``name`` of HEAD with the fork's file (the work tree untouched), and for a
    merge commit the target's own commit on HEAD (in the work tree, as a person's)."""
    idx = plain.parent / "tmp-index"
    e = {**env, "GIT_INDEX_FILE": str(idx)}
    _git(plain, "read-tree", "HEAD", env=e)
    path = {"ff": f"{name}.md", "root": f"{name}.md", "dirs": f"test/{name}.js"}[kind]
    blob = subprocess.run(
        ["git", "hash-object", "-w", "--stdin"], cwd=plain, env=env, input=f"{name}\n",
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    _git(plain, "update-index", "--add", "--cacheinfo", f"100644,{blob},{path}", env=e)
    tree = _git(plain, "write-tree", env=e).strip()
    commit = _git(plain, "commit-tree", tree, "-p", "HEAD", "-m", name, env=env).strip()
    _git(plain, "branch", name, commit, env=env)
    idx.unlink()
    if kind != "ff":
        mine = {"root": f"{name}-main.md", "dirs": f"example/{name}-main.js"}[kind]
        (plain / mine).write_text("main\n")
        _git(plain, "add", mine, env=env)
        _git(plain, "commit", "-q", "-m", f"main {name}", env=env)


def _timed(cmd: list[str], env: dict[str, str], group: Group, settle: float, cwd: Path) -> dict[str, float]:
    u0 = group.usage_ms()
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=env, cwd=cwd, preexec_fn=group.enter, capture_output=True, text=True)
    wall = (time.perf_counter() - t0) * 1000
    if p.returncode != 0:
        raise RuntimeError(f"{cmd}: {p.returncode}\n{p.stdout}{p.stderr}")
    time.sleep(settle)
    return {"wall": round(wall, 2), "cpu": round(group.usage_ms() - u0, 3)}


def _home(root: Path, name: str, proj: Path, modules: Path) -> Path:
    """realproj7's side: vault ``mm``, fork ``main`` holding ``modules`` written through
    an overlay mount, then unmounted."""
    from . import realproj7

    realproj7.ROOT = root
    return realproj7.avfs_side(name, proj, modules)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from . import realproj7

    root = Path(os.environ.get("MERGEREAL_ROOT", "/tmp/mergereal"))
    realproj7.ROOT = root
    root.mkdir(parents=True, exist_ok=True)
    (root / "userhome").mkdir(exist_ok=True)
    (root / "userhome" / ".gitconfig").write_text("[user]\n\tname = mr\n\temail = mr@example.org\n")
    proj = realproj7.project(args.src)
    modules = args.src / "node_modules"
    sides: dict[str, Path | None] = {"this": None}
    if args.before is not None:
        sides["before"] = args.before
    names = [*(f"{n}/{m}" for n in sides for m in args.modes if n == "this" or m != "native"), "git"]
    homes = {n: _home(root, n.replace("/", "-"), proj, modules) for n in names[:-1]}  # a home each
    envs = {n: _env(homes[n], root, sides[n.split("/")[0]]) for n in names[:-1]}
    plain = root / "plain"
    shutil.rmtree(plain, ignore_errors=True)
    genv = _env(root / "nohome", root, None)
    shutil.copytree(proj, plain, symlinks=True)
    _git(plain, "init", "-q", "-b", "main", env=genv)
    _git(plain, "add", "-A", env=genv)
    _git(plain, "commit", "-q", "-m", "minimist", env=genv)
    subprocess.run(["cp", "-a", str(modules), str(plain / "node_modules")], check=True)
    py = sys.executable
    groups = {n: Group(n.replace("/", "-")) for n in names}
    # each side's resident server and its children
    servers = {n: Group(n.replace("/", "-") + "-server") for n in names if not n.endswith(("/cold", "git"))}
    res: dict[str, Any] = {"load": [], "rounds": [], "kinds": args.kinds, "mounted": args.mounted,
                           "before": str(args.before), "src": str(args.src), "python": py}  # fmt: skip
    mnts: dict[str, Path] = {}
    try:
        for n in names[:-1]:
            env = envs[n]
            if args.mounted:
                mnts[n] = root / ("mnt-" + n.replace("/", "-"))
                mnts[n].mkdir(exist_ok=True)
                ab.run([py, "-m", "avfs_git", "mount", "mm:main", str(mnts[n]),
                        "--backend", "overlay"], {**env, "AVFS_SERVER": "off"})  # fmt: skip
            if n in servers:  # the server started in a group of its own
                subprocess.run([py, "-m", "avfs_git", "server", "start"], env=env, check=True,
                               preexec_fn=servers[n].enter, capture_output=True)  # fmt: skip
        for i in range(args.rounds + 1):
            res["load"].append(ab.load())
            for kind in args.kinds:
                rec: dict[str, Any] = {"round": i, "kind": kind, "load": ab.load()}
                fork = f"{kind}{i}"
                for name in ab.order(names, i):
                    if name == "git":
                        _git_prep(plain, kind, fork, genv)
                        rec["merge_tree"] = _timed(["git", "merge-tree", "--write-tree", "HEAD", fork], genv,
                                                   groups[name], args.settle, plain)  # fmt: skip
                        rec["git"] = _timed(["git", "merge", "-q", "--no-edit", fork], genv, groups[name],
                                            args.settle, plain)  # fmt: skip
                        continue
                    mode = name.split("/")[1]
                    env = {**envs[name], "AVFS_SERVER": "off"} if mode == "cold" else envs[name]
                    ab.run([py, "-c", PREP, kind, fork], {**envs[name], "AVFS_SERVER": "off"})
                    time.sleep(args.settle)
                    cmd = [py, "-m", "avfs_git", "--vault", "mm", "merge", fork, "--into", "main"]
                    if mode == "native":
                        cmd = [str(Path(py).parent / "avfs"), *cmd[3:]]
                    s0 = servers[name].usage_ms() if name in servers else 0.0
                    rec[name] = _timed(cmd, env, groups[name], args.settle, root)
                    if name in servers:  # the client's CPU, and the server's work for the call
                        rec[name]["client"] = rec[name]["cpu"]
                        rec[name]["server"] = round(servers[name].usage_ms() - s0, 3)
                        rec[name]["cpu"] = round(rec[name]["client"] + rec[name]["server"], 3)
                print(json.dumps(rec), flush=True)
                res["rounds"].append(rec)
        res["load"].append(ab.load())
    finally:
        for n in names[:-1]:
            if n in servers:
                subprocess.run([py, "-m", "avfs_git", "server", "stop"], env=envs[n], capture_output=True)
            if n in mnts:
                subprocess.run([py, "-m", "avfs_git", "unmount", "mm:main"],
                               env={**envs[n], "AVFS_SERVER": "off"}, capture_output=True)  # fmt: skip
        for g in [*groups.values(), *servers.values()]:
            g.close()
    res["trees_equal"] = _trees_equal(homes, plain, genv)
    res["summary"] = _summary(res["rounds"], names, args.kinds)
    return res


def _trees_equal(homes: dict[str, Path], plain: Path, env: dict[str, str]) -> bool:
    """Whether every side's ``main`` holds the tree git's merges made (the merge commits
    differ: their authors and times)."""
    trees = {_git(plain, "--git-dir", str(h / "vaults" / "mm.git"), "rev-parse", "main^{tree}", env=env)
             for h in homes.values()}  # fmt: skip
    trees.add(_git(plain, "rev-parse", "HEAD^{tree}", env=env))
    return len(trees) == 1


def _summary(rounds: list[dict[str, Any]], names: list[str], kinds: list[str]) -> dict[str, Any]:
    """Per kind and side (round 0 apart: the first merge), the medians of CPU and wall, and
    the median of the per-round ratios to ``git merge`` and to ``git merge-tree``."""
    out: dict[str, Any] = {}
    for kind in kinds:
        rows = [r for r in rounds if r["kind"] == kind and r["round"] > 0]
        first = next((r for r in rounds if r["kind"] == kind and r["round"] == 0), {})
        s: dict[str, Any] = {}
        for n in [*names, "merge_tree"]:
            cpu = [r[n]["cpu"] for r in rows]
            s[n] = {"cpu": statistics.median(cpu), "wall": statistics.median(r[n]["wall"] for r in rows),
                    "first": first.get(n)}  # fmt: skip
            if n not in ("git", "merge_tree"):
                for base in ("git", "merge_tree"):
                    for m in ("cpu", "wall"):
                        s[n][f"{m}_x_{base}"] = round(
                            statistics.median(r[n][m] / r[base][m] for r in rows if r[base][m]), 2
                        )
        out[kind] = s
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--before", type=Path)
    ap.add_argument("--modes", type=lambda s: s.split(","), default=["cold", "served", "native"])
    ap.add_argument("--kinds", type=lambda s: s.split(","), default=list(KINDS))
    ap.add_argument("--mounted", action="store_true")
    ap.add_argument("--settle", type=float, default=0.3)
    ap.add_argument("--src", type=Path, default=Path("/tmp/rp6b/agents/plain"))
    ap.add_argument("--name", default="mergereal2", help="the results file's name before its stamp")
    args = ap.parse_args()
    res = run(args)
    out = ab.stamped(args.name)
    ab.write_json(out, res, indent=1, announce=True)
    for kind, s in res["summary"].items():
        for n, v in s.items():
            ratios = " ".join(f"{k} {x}" for k, x in v.items() if "_x_" in k)
            first = (v.get("first") or {}).get("cpu")
            print(f"{kind:5} {n:14} cpu {v['cpu']:8.2f} wall {v['wall']:8.2f} first {first}  {ratios}")
    print("load", res["load"][0], "->", res["load"][-1], "trees_equal", res["trees_equal"])


if __name__ == "__main__":
    main()
