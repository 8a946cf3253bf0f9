"""Real projects through avfs, seventh round (docs/benchmarks.md, realproj7's section).

- ``merge``: realproj6's slow fast-forward. minimist 1.2.8 with its ``npm install``ed
  ``node_modules`` (13,964 entries, ignored) written through an overlay mount of fork
  ``main``, the mount gone (its upper layer folded into the overlay's database by the first
  merge); then, round after round, a fork with one new file fast-forwarded into ``main``,
  by this tree's code (``after``), by another tree's (``before``: ``--before DIR`` holding
  an ``avfs_git`` package, main's, found first on ``PYTHONPATH``) and by ``git merge`` in a
  clone holding the same ``node_modules``: the three interleaved, the order turned each
  round. Each avfs merge runs in a process of its own; its CPU is measured inside it
  around the call (imports left out), with how many overlay rows it made into entries
  and how many files it probed for a mount holding them open, and (``kids``) the CPU of
  the processes it started (git's). git's CPU is its process'; ``git merge-tree
  --write-tree HEAD BRANCH`` in the clone is timed just before its ``git merge``.

Run: ``.venv/bin/python -m bench.realproj7 --before /tmp/base [--rounds 7] [--src DIR]``
(as root: the overlay mount); results in ``bench/results/realproj7-merge-<UTC>.json``.
``--src``: a project directory holding ``node_modules`` (default: realproj6's minimist
clone, ``/tmp/rp6b/agents/plain``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
ROOT = Path(os.environ.get("RP7_ROOT", "/tmp/rp7b"))

CHILD = r"""
import json, sys, time
import pygit2  # (imported by the merge's first look at the vault: left out of its time)
import avfs_git
from avfs_git.core.operations import merge as merging
from avfs_git.core.workspace import overlay as ovm
from avfs_git.core.workspace import overlaydb
rows = [0]
probes = [0]
real_row = ovm.entry_of_row
def counted_row(r):
    rows[0] += 1
    return real_row(r)
ovm.entry_of_row = counted_row
real_in_use = overlaydb.OverlayDB.in_use
def counted_in_use(self, fileid):
    probes[0] += 1
    return real_in_use(self, fileid)
overlaydb.OverlayDB.in_use = counted_in_use
home = avfs_git.open_home()
vault = home.vault("mm")
import resource
k0 = resource.getrusage(resource.RUSAGE_CHILDREN)
w0, c0 = time.monotonic(), time.process_time()
res = merging.merge(vault, sys.argv[1], "main")
w1, c1 = time.monotonic(), time.process_time()
k1 = resource.getrusage(resource.RUSAGE_CHILDREN)
kids = (k1.ru_utime - k0.ru_utime) + (k1.ru_stime - k0.ru_stime)
print(json.dumps({"status": str(res.status), "wall": round(w1 - w0, 3), "cpu": round(c1 - c0, 3),
                  "kids": round(kids, 3), "rows": rows[0], "probes": probes[0], "code": avfs_git.__file__}))
home.close()
"""


def env_for(home: Path, before: Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "AVFS_", "PYTHONPATH"))}
    env.update(HOME=str(ROOT / "userhome"), AVFS_HOME=str(home), GIT_CONFIG_NOSYSTEM="1", LC_ALL="C.UTF-8")
    if before is not None:
        env["PYTHONPATH"] = str(before)
    return env


def git(cwd: Path, *args: str, env: dict[str, str]) -> str:
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


def project(src: Path) -> Path:
    """The project's files without ``node_modules`` or ``.git``, ``node_modules/`` ignored."""
    proj = ROOT / "project"
    shutil.rmtree(proj, ignore_errors=True)
    shutil.copytree(src, proj, symlinks=True, ignore=shutil.ignore_patterns(".git", "node_modules"))
    (proj / ".gitignore").write_text("node_modules/\n.nyc_output/\ncoverage/\n")
    return proj


def avfs_side(name: str, proj: Path, modules: Path) -> Path:
    """A home whose vault ``mm`` has fork ``main`` with ``modules`` written through an
    overlay mount (the upper layer), then unmounted."""
    import avfs_git
    from avfs_git.core.operations import checkpoint
    from avfs_git.core.vaults import layers
    from avfs_git.ops import mounts

    home_dir = ROOT / name
    if home_dir.exists():
        layers.unmount(home_dir / "home")
    shutil.rmtree(home_dir, ignore_errors=True)
    home_dir.mkdir(parents=True)
    os.environ.update(env_for(home_dir / "home", None))
    home = avfs_git.open_home()
    vault = home.create_vault("mm", from_dir=str(proj))
    mp = home_dir / "mnt"
    mp.mkdir()
    mounts.mount(home, vault, "main", str(mp), backend="overlay")
    try:
        subprocess.run(["cp", "-a", str(modules), str(mp / "node_modules")], check=True)
    finally:
        mounts.unmount(home, vault, "main")
    checkpoint.save(vault, "main", message="after the install")  # (nothing but ignored paths)
    home.close()
    return home_dir / "home"


def prep_fork(home: Path, fork: str) -> None:
    """Fork ``fork`` of ``main`` with one new file, checkpointed (this tree's code)."""
    import avfs_git
    from avfs_git.core.operations import checkpoint

    os.environ["AVFS_HOME"] = str(home)
    h = avfs_git.open_home()
    vault = h.vault("mm")
    vault.create_fork("main", fork)
    vault.workspace(fork).write(f"{fork}.md", f"{fork}\n".encode())
    checkpoint.save(vault, fork)
    h.close()


def prep_branch(plain: Path, branch: str, env: dict[str, str]) -> None:
    """Branch ``branch`` one commit ahead of HEAD with one new file (the work tree untouched)."""
    idx = ROOT / "tmp-index"
    e = {**env, "GIT_INDEX_FILE": str(idx)}
    git(plain, "read-tree", "HEAD", env=e)
    blob = subprocess.run(
        ["git", "hash-object", "-w", "--stdin"], cwd=plain, env=env, input=f"{branch}\n",
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    git(plain, "update-index", "--add", "--cacheinfo", f"100644,{blob},{branch}.md", env=e)
    tree = git(plain, "write-tree", env=e).strip()
    commit = git(plain, "commit-tree", tree, "-p", "HEAD", "-m", branch, env=env).strip()
    git(plain, "branch", branch, commit, env=env)
    idx.unlink()


def run_avfs(home: Path, fork: str, before: Path | None) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, fork],
        env=env_for(home, before),
        cwd=str(ROOT),
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode:
        return {"error": out.stderr[-2000:]}
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def run_git(plain: Path, branch: str, env: dict[str, str]) -> dict[str, Any]:
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    w0 = time.monotonic()
    p = subprocess.run(["git", "merge", "-q", branch], cwd=plain, env=env, capture_output=True, text=True)
    w1 = time.monotonic()
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return {"rc": p.returncode, "wall": round(w1 - w0, 3), "cpu": round(cpu, 3)}


def run_merge_tree(plain: Path, branch: str, env: dict[str, str]) -> dict[str, Any]:
    """``git merge-tree --write-tree HEAD BRANCH`` in the clone (the merge's tree written,
    nothing moved), timed as :func:`run_git`: issue 31's baseline for a merge."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    w0 = time.monotonic()
    p = subprocess.run(
        ["git", "merge-tree", "--write-tree", "HEAD", branch],
        cwd=plain,
        env=env,
        capture_output=True,
        text=True,
    )
    w1 = time.monotonic()
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return {"rc": p.returncode, "wall": round(w1 - w0, 3), "cpu": round(cpu, 3)}


def run_merge(src: Path, before: Path, rounds: int) -> dict[str, Any]:
    from avfs_git.core.vaults import layers

    ROOT.mkdir(parents=True, exist_ok=True)
    (ROOT / "userhome").mkdir(exist_ok=True)
    (ROOT / "userhome" / ".gitconfig").write_text("[user]\n\tname = rp7\n\temail = rp7@example.org\n")
    proj = project(src)
    modules = src / "node_modules"
    n_modules = sum(1 for _ in modules.rglob("*"))
    homes = {"after": avfs_side("after", proj, modules), "before": avfs_side("before", proj, modules)}
    plain = ROOT / "plain"
    shutil.rmtree(plain, ignore_errors=True)
    genv = env_for(ROOT / "nohome", None)
    shutil.copytree(proj, plain, symlinks=True)
    git(plain, "init", "-q", "-b", "main", env=genv)
    git(plain, "add", "-A", env=genv)
    git(plain, "commit", "-q", "-m", "minimist", env=genv)
    subprocess.run(["cp", "-a", str(modules), str(plain / "node_modules")], check=True)
    res: dict[str, Any] = {
        "load_start": os.getloadavg(),
        "node_modules_entries": n_modules,
        "before_code": str(before),
        "rounds": [],
    }
    for k in range(rounds):
        fork = f"f{k}"
        for home in homes.values():
            prep_fork(home, fork)
        prep_branch(plain, fork, genv)
        order = ["before", "after", "git"] if k % 2 == 0 else ["git", "after", "before"]
        rec: dict[str, Any] = {"round": k, "order": order, "load": os.getloadavg()[0]}
        for side in order:
            if side == "git":
                rec["merge_tree"] = run_merge_tree(plain, fork, genv)
                rec["git"] = run_git(plain, fork, genv)
            else:
                rec[side] = run_avfs(homes[side], fork, before if side == "before" else None)
        print(json.dumps(rec), flush=True)
        res["rounds"].append(rec)
    # the trees agree with git's
    trees = {}
    for side, home in homes.items():
        trees[side] = git(
            ROOT, "--git-dir", str(home / "vaults" / "mm.git"), "rev-parse", "main^{tree}", env=genv
        )
    trees["git"] = git(plain, "rev-parse", "HEAD^{tree}", env=genv)
    res["trees"] = {k: v.strip() for k, v in trees.items()}
    res["trees_equal"] = len(set(res["trees"].values())) == 1
    steady = res["rounds"][1:]  # the first merge of each side also folds the upper layer
    res["medians_after_first"] = {
        side: {
            m: statistics.median(r[side][m] for r in steady if m in r[side])
            for m in ("wall", "cpu", "kids", "rows", "probes")
            if side not in ("git", "merge_tree") or m in ("wall", "cpu")
        }
        for side in ("before", "after", "git", "merge_tree")
    }
    res["first"] = {side: res["rounds"][0][side] for side in ("before", "after", "git", "merge_tree")}
    res["load_end"] = os.getloadavg()
    for home in homes.values():
        layers.unmount(home)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", type=Path, required=True, help="a directory holding the avfs_git to compare")
    ap.add_argument("--src", type=Path, default=Path("/tmp/rp6b/agents/plain"))
    ap.add_argument("--rounds", type=int, default=7)
    a = ap.parse_args()
    res = run_merge(a.src, a.before, a.rounds)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out = REPO / "bench" / "results" / f"realproj7-merge-{stamp}.json"
    out.write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps({"file": str(out), "medians": res["medians_after_first"], "first": res["first"],
                      "trees_equal": res["trees_equal"]}, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
