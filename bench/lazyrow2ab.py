"""Row 2 of issue 30 (docs/benchmarks.md, the fourteenth round, branch ``h-lazyrow2``), A/B:
the first `git status` typed the moment `ls` answers in the mount of a fresh `vault clone
--lazy`, with this tree's code and with another tree's (``--base DIR``: a worktree of main
with its own ``.venv``), interleaved round by round in one run, against the first `git
status` in a whole vault's mount; and row 1 (`vault clone --lazy` + `mount` + `ls`) of
the same rounds, against `git clone --bare` of the same URL timed in each round. Two setups a side, as ``bench.lazybound``: ``today`` (the gate waits for
the server's sizes and the index) and ``sizes_known`` (every size of the tree in the new
vault's size cache before the mount: the gate waits for the index alone).

Beside each status's wall time: its split at the gate (git's ``GIT_TRACE2_PERF``, as
``bench.lazybound --trace2``), its CPU, the status's own processes (git and its hook) and
the mount daemon's (with the processes it started and reaped meanwhile: git's read-tree,
the untracked cache's status), read from ``/proc`` around the status: on two cores shared
with other work the wall time is mostly waiting for a CPU.

Run: ``.venv/bin/python -m bench.lazyrow2ab --served DIR --base /work/h-lazyrow2-base
[--repeats N]`` (DIR as ``bench.lazycases --monorepo --served DIR`` keeps it). The result
goes to ``bench/results/[PREFIX]lazyrow2ab-<time>.json`` and is printed. ``--setups today``
(twenty-ninth round): one setup only.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .lazybound import _gate, _reference
from .lazycases import ROOT, _whole_status
from .remotecases import _daemon

SETUPS = ("today", "sizes_known")
CODES = ("main", "branch")


def _cpu_of(pid: int) -> float:
    """A process's CPU seconds, with its reaped children's."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _round(
    avfs: list[str], env: dict[str, str], url: str, name: str, t: Path, ref: Path, setup: str
) -> dict[str, float]:
    """clone, (sizes copied), mount, `ls`, `git status`; unmounted after."""
    home = Path(env["AVFS_HOME"])
    mp = t / f"mnt-{name}"
    mp.mkdir()
    start = time.perf_counter()
    subprocess.run([*avfs, "vault", "clone", "--lazy", url, name], check=True, env=env, capture_output=True)
    cloned = time.perf_counter()
    own = home / "vaults" / f"{name}.git" / "avfs"
    if setup == "sizes_known":
        own.mkdir(exist_ok=True)
        for f in ("blob-sizes", "blob-sizes.trees"):
            shutil.copyfile(ref / f, own / f)
    copied = time.perf_counter()
    subprocess.run([*avfs, "mount", f"{name}:main", str(mp)], check=True, env=env, capture_output=True)
    mounted = time.perf_counter()
    os.listdir(mp)
    listed = time.perf_counter()
    row1 = listed - start - (copied - cloned)
    with open(glob.glob(str(own / "mounts" / "*.json"))[0], encoding="utf-8") as fh:
        pid = int(json.load(fh)["pid"])
    daemon0, own0 = _cpu_of(pid), _children_cpu()
    trace = t / "status.trace2"
    traced = {**os.environ, "GIT_TRACE2_PERF": str(trace)}
    began = time.perf_counter()
    subprocess.run(["git", "status", "--porcelain"], cwd=mp, check=True, capture_output=True, env=traced)
    status = time.perf_counter() - began
    daemon1, own1 = _cpu_of(pid), _children_cpu()
    subprocess.run([*avfs, "unmount", f"{name}:main"], env=env, capture_output=True)
    gate, after = _gate(trace)
    return {
        "row1_s": row1,
        "clone_s": cloned - start,
        "mount_s": mounted - copied,
        "ls_s": listed - mounted,
        "status_s": status,
        "gate_s": gate,
        "after_gate_s": after,
        "status_cpu_s": own1 - own0,
        "daemon_cpu_s": daemon1 - daemon0,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--served", required=True, help="the served repository's directory (big.git in it)")
    ap.add_argument("--base", required=True, help="a worktree of the code to compare with (its .venv)")
    ap.add_argument("--prefix", default="")
    ap.add_argument("--setups", default=",".join(SETUPS), help=f"of {','.join(SETUPS)} (twenty-ninth round)")
    args = ap.parse_args()
    setups = tuple(x for x in args.setups.split(",") if x in SETUPS)
    pythons = {
        "main": str(Path(args.base).resolve() / ".venv" / "bin" / "python"),
        "branch": str(ROOT / ".venv" / "bin" / "python"),
    }
    avfs = {code: [py, "-m", "avfs_git"] for code, py in pythons.items()}
    load = [os.getloadavg()[0]]
    runs: dict[str, list[dict[str, float]]] = {f"{c}/{s}": [] for c in CODES for s in setups}
    whole: list[float] = []
    bare: list[float] = []
    with tempfile.TemporaryDirectory(prefix="avfs-bench-row2ab-") as tmp:
        t = Path(tmp)
        os.chdir(t)
        daemon, base = _daemon(Path(args.served).resolve())
        url = f"{base}/big.git"
        env = {
            **os.environ,
            "AVFS_PROGRESS": "never",
            "AVFS_SERVER": "off",
            "AVFS_LAYERS": "off",
            "AVFS_HOME": str(t / "home"),
        }
        (t / "home").mkdir()
        try:
            subprocess.run(
                [*avfs["branch"], "vault", "clone", url, "whole"], check=True, env=env, capture_output=True
            )
            ref = _reference(avfs["branch"], env, url, t / "home", t / "ref-mnt")
            for i in range(args.repeats):
                whole.append(_whole_status(avfs["branch"], env, "whole", t / "whole-mnt"))
                start = time.perf_counter()  # row 1's reference: git's own clone, whole
                subprocess.run(["git", "clone", "-q", "--bare", url, str(t / f"bare{i}.git")], check=True)
                bare.append(time.perf_counter() - start)
                shutil.rmtree(t / f"bare{i}.git")
                order = [(c, s) for s in setups for c in CODES]
                for code, setup in order if i % 2 == 0 else order[::-1]:
                    runs[f"{code}/{setup}"].append(
                        _round(avfs[code], env, url, f"{code}-{setup}-{i}", t, ref, setup)
                    )
                load.append(os.getloadavg()[0])
                print(f"round {i} load {load[-1]:.1f}", file=sys.stderr)
        finally:
            daemon.terminate()
            daemon.wait(10)
            os.chdir(ROOT)
    w = statistics.median(whole)
    result: dict[str, object] = {
        "case": "row 2 A/B: the first git status after ls in a fresh lazy clone's mount, main's code and this branch's",
        "repeats": args.repeats,
        "load_average_per_round": load,
        "first_git_status_in_whole_vault_mount_s": whole,
        "first_git_status_in_whole_vault_mount_s_median": w,
        "git_clone_bare_s": bare,
        "git_clone_bare_s_median": statistics.median(bare),
    }
    for key, rs in runs.items():
        med = {k: statistics.median(r[k] for r in rs) for k in rs[0]}
        result[key] = {
            "runs": rs,
            "median": med,
            "status_times_whole": med["status_s"] / w,
            "row1_times_git_clone_bare": med["row1_s"] / statistics.median(bare),
        }
    for setup in setups:
        a, b = runs[f"main/{setup}"], runs[f"branch/{setup}"]
        ratios = {k: [y[k] / x[k] for x, y in zip(a, b, strict=True) if x[k] > 0] for k in a[0]}
        result[f"branch_over_main/{setup}"] = {k: statistics.median(v) for k, v in ratios.items() if v}
    out = (
        ROOT
        / "bench"
        / "results"
        / time.strftime(f"{args.prefix}lazyrow2ab-%Y%m%dT%H%M%SZ.json", time.gmtime())
    )
    out.write_text(json.dumps(result, indent=2) + "\n")
    json.dump(result, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
