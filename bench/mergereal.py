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
  commit, the root and two directories' trees (with ``--tree 10k``: two top directories
  of the synthetic tree);
- ``conflict``: each side writes the same file of the tree differently; ``avfs merge
  --write-conflicts`` and ``git merge`` each write the conflict into the target (exit 3
  and 1), then (untimed) ``avfs merge --abort`` and ``git merge --abort``;
- ``wide``: each side changes 500 other files of the tree (the synthetic row's merge,
  ``bench/mergecases.py``, through the CLI); a merge commit.

Each avfs merge is the console script as a person runs it, ``python -m avfs_git --vault mm
merge FORK --into main`` (the same client on every side): ``cold`` with ``AVFS_SERVER=off``
(a process of its own: Python's start, its imports, the merge), ``served`` by the home's
resident server, ``native`` the same with this tree's native console script as the client
(``.venv/bin/avfs``; not for ``--before``, whose server would not serve its stamp) (started in a cgroup of its own, so its fork and child are counted: the call's CPU is the
client's group's plus the server's). A call's
CPU is the growth of its side's cgroup (``cpuacct.usage``) from before the call to
``--settle`` s after it (bench/spareab.py's); git's, ``git merge-tree --write-tree HEAD
BRANCH`` then ``git merge -q --no-edit BRANCH`` (the tree the merge makes, then the merge),
in a cgroup of git's. With ``--mounted`` the target is mounted (``--backend``: overlay or
fuse) while it is merged into, on every avfs side, its daemon in a cgroup of its own whose
growth is counted in each call's CPU (``daemon``); the first merge of each side (the
mount's upper layer folded into the overlay's entries, unless ``--mounted``) is reported
apart.

``--tree 10k``: the synthetic 10k tree (bench/trees.py; no ignored tree) in place of
minimist; its vault made from the tree directly.

``python -m bench.mergereal [--rounds N] [--before DIR] [--modes cold,served,native]
[--kinds ff,root,dirs,conflict,wide] [--mounted [--backend fuse]] [--tree minimist|10k]
[--src DIR] [--name NAME] [--kept-profile N [--spy-rate HZ] [--strace]]`` as root (the mounts, the
cgroups); ``--before DIR``: a directory holding another ``avfs_git`` (``git archive main``),
a side ``before`` run from it through ``PYTHONPATH``. Results in
``bench/results/NAME-<UTC>.json`` (``mergereal2``: h-merge2's runs; ``merge3``: h-merge3's;
the twenty-first round's are ``mergereal-*``). Round 0's merges are each side's first after the mount went
(``first`` in the summary): the one that folded the upper layer on main's code.

``--kept-profile N``: no A/B; N merges of each kind in one process as the resident
server's kept process runs them, their CPU up to the answer and after it, and with
``py-spy`` installed each stage's share (bench/mergekept.py; ``NAME-kept-<UTC>.json``; with
``--before DIR`` that code merges: ``NAME-kept-before-<UTC>.json``); with ``--strace``, under
``strace -f`` instead, each merge's system calls counted (``…-strace-<UTC>.json``).
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

KINDS = ("ff", "root", "dirs", "conflict", "wide")
WIDE = 500  # files each side changes in a ``wide`` merge
CODES = {"conflict": (3, 1)}  # a kind's exit codes: avfs's, git merge's (else 0, 0)

PREP = r"""
import json, sys
import avfs_git
from avfs_git.core.operations import checkpoint
name, writes = sys.argv[1], json.loads(sys.argv[2])
h = avfs_git.open_home()
v = h.vault("mm")
v.create_fork("main", name)
ws = v.workspace(name)
for path, text in writes["fork"].items():
    ws.write(path, text.encode())
checkpoint.save(v, name)
if writes["main"]:
    m = v.workspace("main")
    for path, text in writes["main"].items():
        m.write(path, text.encode())
    checkpoint.save(v, "main")
h.close()
"""


class Layout:
    """Where a kind's writes go in the tree: its two directories (``dirs``), the file
    both sides of a ``conflict`` write, and the files each side of a ``wide`` merge
    changes (the tree's own files: the synthetic ones as bench/mergecases.py picks them)."""

    def __init__(self, tree: str, proj: Path) -> None:
        if tree == "10k":
            from .trees import SIZES, pick_paths

            self.dirs = ("d1/m1", "d2/m2")
            picked = pick_paths(SIZES["10k"], 2 * WIDE + 1, "merge")
            self.conflict = picked[-1]
            self.wide = (picked[:WIDE], picked[WIDE : 2 * WIDE])
        else:
            self.dirs = ("test", "example")
            files = sorted(
                str(p.relative_to(proj)) for p in proj.rglob("*") if p.is_file() and ".git" not in p.parts
            )
            self.conflict = "index.js" if (proj / "index.js").is_file() else files[0]
            # (a small project: the wide merge adds new files where the tree has too few)
            self.wide = ([f"wa/{i}.txt" for i in range(WIDE)], [f"wb/{i}.txt" for i in range(WIDE)])

    def writes(self, kind: str, name: str) -> dict[str, dict[str, str]]:
        """{"fork": {path: text}, "main": {path: text}} of a round's ``kind``."""
        a, b = self.dirs
        if kind == "ff":
            return {"fork": {f"{name}.md": f"{name}\n"}, "main": {}}
        if kind == "root":
            return {"fork": {f"{name}.md": f"{name}\n"}, "main": {f"{name}-main.md": "main\n"}}
        if kind == "dirs":
            return {"fork": {f"{a}/{name}.js": f"{name}\n"}, "main": {f"{b}/{name}-main.js": "main\n"}}
        if kind == "conflict":
            return {"fork": {self.conflict: f"fork {name}\n"}, "main": {self.conflict: f"main {name}\n"}}
        if kind == "wide":
            fork, main = self.wide
            return {
                "fork": {p: f"{name} fork {p}\n" for p in fork},
                "main": {p: f"{name} main {p}\n" for p in main},
            }
        raise ValueError(kind)


def _env(home: Path, root: Path, before: Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "AVFS_", "PYTHONPATH"))}
    env.update(HOME=str(root / "userhome"), AVFS_HOME=str(home), GIT_CONFIG_NOSYSTEM="1", LC_ALL="C.UTF-8")
    env.update(AVFS_PROGRESS="never")
    if before is not None:
        env["PYTHONPATH"] = str(before)
    return env


def _git(cwd: Path, *args: str, env: dict[str, str]) -> str:
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


def _git_prep(plain: Path, writes: dict[str, dict[str, str]], name: str, env: dict[str, str]) -> None:
    """Branch ``name`` of HEAD with the fork's files (the work tree untouched), and for a
    merge commit the target's own commit on HEAD (in the work tree, as a person's)."""
    idx = plain.parent / "tmp-index"
    blobs = plain.parent / "tmp-blobs"
    shutil.rmtree(blobs, ignore_errors=True)
    blobs.mkdir()
    e = {**env, "GIT_INDEX_FILE": str(idx)}
    _git(plain, "read-tree", "HEAD", env=e)
    paths = list(writes["fork"])
    for i, path in enumerate(paths):
        (blobs / str(i)).write_text(writes["fork"][path])
    ids = subprocess.run(
        ["git", "hash-object", "-w", "--stdin-paths"], cwd=plain, env=env,
        input="".join(f"{blobs / str(i)}\n" for i in range(len(paths))),
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    subprocess.run(
        ["git", "update-index", "--add", "--index-info"], cwd=plain, env=e, check=True, text=True,
        input="".join(f"100644 {b}\t{p}\n" for b, p in zip(ids, paths, strict=True)),
    )  # fmt: skip
    tree = _git(plain, "write-tree", env=e).strip()
    commit = _git(plain, "commit-tree", tree, "-p", "HEAD", "-m", name, env=env).strip()
    _git(plain, "branch", name, commit, env=env)
    idx.unlink()
    shutil.rmtree(blobs)
    if writes["main"]:
        for path, text in writes["main"].items():
            (plain / path).parent.mkdir(parents=True, exist_ok=True)
            (plain / path).write_text(text)
        subprocess.run(["git", "add", "--pathspec-from-file=-"], cwd=plain, env=env, check=True, text=True,
                       input="".join(f"{p}\n" for p in writes["main"]))  # fmt: skip
        _git(plain, "commit", "-q", "-m", f"main {name}", env=env)


def _timed(
    cmd: list[str], env: dict[str, str], group: Group, settle: float, cwd: Path, codes: tuple[int, ...] = (0,)
) -> dict[str, float]:
    u0 = group.usage_ms()
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=env, cwd=cwd, preexec_fn=group.enter, capture_output=True, text=True)
    wall = (time.perf_counter() - t0) * 1000
    if p.returncode not in codes:
        raise RuntimeError(f"{cmd}: {p.returncode}\n{p.stdout}{p.stderr}")
    time.sleep(settle)
    return {"wall": round(wall, 2), "cpu": round(group.usage_ms() - u0, 3)}


def _home(root: Path, name: str, proj: Path, modules: Path | None) -> Path:
    """realproj7's side: vault ``mm``, fork ``main`` holding ``modules`` written through
    an overlay mount, then unmounted; without ``modules`` (the synthetic tree), the vault
    made from ``proj`` alone."""
    from . import realproj7

    realproj7.ROOT = root
    if modules is not None:
        return realproj7.avfs_side(name, proj, modules)
    import avfs_git
    from avfs_git.core.vaults import layers

    home_dir = root / name
    if home_dir.exists():
        layers.unmount(str(home_dir / "home"))
    shutil.rmtree(home_dir, ignore_errors=True)
    home_dir.mkdir(parents=True)
    os.environ.update(realproj7.env_for(home_dir / "home", None))
    home = avfs_git.open_home()
    home.create_vault("mm", from_dir=str(proj))
    home.close()
    return home_dir / "home"


def run(args: argparse.Namespace) -> dict[str, Any]:
    from . import realproj7

    root = Path(os.environ.get("MERGEREAL_ROOT", "/tmp/mergereal"))
    realproj7.ROOT = root
    root.mkdir(parents=True, exist_ok=True)
    (root / "userhome").mkdir(exist_ok=True)
    (root / "userhome" / ".gitconfig").write_text("[user]\n\tname = mr\n\temail = mr@example.org\n")
    modules: Path | None
    if args.tree == "10k":
        from .trees import ensure_tree

        proj, modules = ensure_tree("10k"), None
    else:
        proj, modules = realproj7.project(args.src), args.src / "node_modules"
    layout = Layout(args.tree, proj)
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
    if modules is not None:
        subprocess.run(["cp", "-a", str(modules), str(plain / "node_modules")], check=True)
    py = sys.executable
    groups = {n: Group(n.replace("/", "-")) for n in names}
    # each side's resident server and its children
    servers = {n: Group(n.replace("/", "-") + "-server") for n in names if not n.endswith(("/cold", "git"))}
    # each side's mount daemon (--mounted): its work for a call is the call's too
    daemons = {n: Group(n.replace("/", "-") + "-daemon") for n in names[:-1] if args.mounted}
    res: dict[str, Any] = {"load": [], "rounds": [], "kinds": args.kinds, "mounted": args.mounted,
                           "backend": args.backend if args.mounted else None, "tree": args.tree,
                           "before": str(args.before), "src": str(args.src), "python": py}  # fmt: skip
    mnts: dict[str, Path] = {}
    try:
        for n in names[:-1]:
            env = envs[n]
            if args.mounted:
                mnts[n] = root / ("mnt-" + n.replace("/", "-"))
                mnts[n].mkdir(exist_ok=True)
                subprocess.run([py, "-m", "avfs_git", "mount", "mm:main", str(mnts[n]), "--backend",
                                args.backend], env={**env, "AVFS_SERVER": "off"}, check=True,
                               preexec_fn=daemons[n].enter, capture_output=True)  # fmt: skip
            if n in servers:  # the server started in a group of its own
                subprocess.run([py, "-m", "avfs_git", "server", "start"], env=env, check=True,
                               preexec_fn=servers[n].enter, capture_output=True)  # fmt: skip
        for i in range(args.rounds + 1):
            res["load"].append(ab.load())
            for kind in args.kinds:
                rec: dict[str, Any] = {"round": i, "kind": kind, "load": ab.load()}
                fork = f"{kind}{i}"
                writes = layout.writes(kind, fork)
                avfs_code, git_code = CODES.get(kind, (0, 0))
                for name in ab.order(names, i):
                    if name == "git":
                        _git_prep(plain, writes, fork, genv)
                        rec["merge_tree"] = _timed(["git", "merge-tree", "--write-tree", "HEAD", fork], genv,
                                                   groups[name], args.settle, plain, (git_code,))  # fmt: skip
                        rec["git"] = _timed(["git", "merge", "-q", "--no-edit", fork], genv, groups[name],
                                            args.settle, plain, (git_code,))  # fmt: skip
                        if git_code:
                            _git(plain, "merge", "--abort", env=genv)
                        continue
                    mode = name.split("/")[1]
                    env = {**envs[name], "AVFS_SERVER": "off"} if mode == "cold" else envs[name]
                    ab.run([py, "-c", PREP, fork, json.dumps(writes)], {**envs[name], "AVFS_SERVER": "off"})
                    time.sleep(args.settle)
                    cmd = [py, "-m", "avfs_git", "--vault", "mm", "merge", fork, "--into", "main"]
                    if avfs_code:
                        cmd.append("--write-conflicts")
                    if mode == "native":
                        cmd = [str(Path(py).parent / "avfs"), *cmd[3:]]
                    s0 = servers[name].usage_ms() if name in servers else 0.0
                    d0 = daemons[name].usage_ms() if name in daemons else 0.0
                    rec[name] = _timed(cmd, env, groups[name], args.settle, root, (avfs_code,))
                    if name in servers:  # the client's CPU, and the server's work for the call
                        rec[name]["client"] = rec[name]["cpu"]
                        rec[name]["server"] = round(servers[name].usage_ms() - s0, 3)
                        rec[name]["cpu"] = round(rec[name]["client"] + rec[name]["server"], 3)
                    if name in daemons:
                        rec[name]["daemon"] = round(daemons[name].usage_ms() - d0, 3)
                        rec[name]["cpu"] = round(rec[name]["cpu"] + rec[name]["daemon"], 3)
                    if avfs_code:  # the conflicts given up, untimed
                        ab.run([py, "-m", "avfs_git", "--vault", "mm", "merge", "--abort", "--into", "main"],
                               {**envs[name], "AVFS_SERVER": "off"})  # fmt: skip
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
        for g in [*groups.values(), *servers.values(), *daemons.values()]:
            g.close()
    res["trees_equal"] = _trees_equal(homes, plain, genv)
    res["summary"] = _summary(res["rounds"], names, args.kinds)
    from avfs_git.core.vaults import layers

    for h in homes.values():
        layers.unmount(str(h))  # (each home's layers file system, where root made one)
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
    ap.add_argument("--backend", choices=("overlay", "fuse"), default="overlay")
    ap.add_argument("--tree", choices=("minimist", "10k"), default="minimist")
    ap.add_argument("--settle", type=float, default=0.3)
    ap.add_argument("--src", type=Path, default=Path("/tmp/rp6b/agents/plain"))
    ap.add_argument("--name", default="mergereal2", help="the results file's name before its stamp")
    ap.add_argument(
        "--kept-profile",
        type=int,
        metavar="N",
        help="N merges per kind in one process as the kept process runs them, profiled (bench/mergekept.py); no A/B",
    )
    ap.add_argument("--spy-rate", type=int, default=1000, help="py-spy's samples a second (--kept-profile)")
    ap.add_argument(
        "--strace", action="store_true", help="--kept-profile under strace -f: the system calls counted"
    )
    args = ap.parse_args()
    if args.kept_profile:
        from . import mergekept

        root = Path(os.environ.get("MERGEREAL_ROOT", "/tmp/mergereal")) / "kept"
        prof = mergekept.run(
            args.kept_profile, args.kinds, args.src, root, args.spy_rate, args.before, args.strace
        )
        name = args.name + ("-kept-before" if args.before else "-kept") + ("-strace" if args.strace else "")
        ab.write_json(ab.stamped(name), {**prof, "load": ab.load()}, indent=1, announce=True)
        return
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
