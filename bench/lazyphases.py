"""Where `avfs vault clone --lazy` + `avfs mount` spend their time until `ls` answers, per
phase, wall and CPU, this tree against another avfs source tree in the same run (docs/scale.md,
"A lazy clone's fixed costs"): the clone command (with its git processes), the mount
command (with its own git processes; not the daemon's), and the mount daemon's CPU from its
start until `ls` answered (``/proc/PID/stat``). Each round waits for the mount's settling
(the mount's ``.git`` opens once the index is written) and unmounts before the next, so no
round's background work lands in another's; the side going first alternates.

Run: ``.venv/bin/python -m bench.lazyphases URL --baseline SRC [--rounds N] [--served]`` against a
served repository (``python -m bench.lazycases --monorepo --served DIR`` builds one and
serves it while it runs; or ``git daemon --base-path=DIR``); the result goes to
``bench/results/[PREFIX]lazyphases-<time>.json`` (``--prefix``) and its medians are printed.
``--native``: each tree's own console script (``.venv/bin/avfs``, the native program ``make
install`` writes; SRC a worktree with its own venv) instead of ``python -m avfs_git``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KEYS = ("clone", "mount", "ls", "total", "clone_cpu", "mount_cpu", "daemon_cpu")


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _round(
    avfs: list[str], env: dict[str, str], url: str, name: str, mp: Path, status: bool
) -> dict[str, float]:
    """One round: clone, mount, ``ls``, each timed (``status``: then the first `git status`);
    the settling waited for; unmounted."""
    mp.mkdir()
    cpu0, t0 = _children_cpu(), time.perf_counter()
    subprocess.run([*avfs, "vault", "clone", "--lazy", url, name], env=env, check=True, capture_output=True)
    cpu1, t1 = _children_cpu(), time.perf_counter()
    subprocess.run([*avfs, "mount", f"{name}:main", str(mp)], env=env, check=True, capture_output=True)
    cpu2, t2 = _children_cpu(), time.perf_counter()
    os.listdir(mp)
    t3 = time.perf_counter()
    record = Path(env["AVFS_HOME"]) / "vaults" / f"{name}.git" / "avfs" / "mounts" / "main.json"
    daemon = _cpu_s(json.loads(record.read_text())["pid"])
    got: dict[str, float] = {}
    try:
        if status:  # the first `git status` (row 2 of issue 30), timed from ls's answer and
            # from the mount's (a faster `ls` starts the first clock later in the settling)
            subprocess.run(["git", "status", "--porcelain"], cwd=mp, check=True, capture_output=True)
            t4 = time.perf_counter()
            got = {"status": t4 - t3, "mount_to_status": t4 - t2}
        (mp / ".git").read_bytes()  # the settling done: none of it lands in the next round
    finally:
        # (an older avfs's unmount could find its own daemon still in the mount: busy)
        if subprocess.run([*avfs, "unmount", f"{name}:main"], env=env, capture_output=True).returncode:
            subprocess.run(
                [*avfs, "unmount", "--lazy", f"{name}:main"], env=env, check=True, capture_output=True
            )
    return (
        dict(zip(KEYS, (t1 - t0, t2 - t1, t3 - t2, t3 - t0, cpu1 - cpu0, cpu2 - cpu1, daemon), strict=True))
        | got
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("url", help="the served repository (git://, http://)")
    ap.add_argument("--baseline", required=True, help="another avfs source tree, timed in the same run")
    ap.add_argument("--rounds", type=int, default=8)
    # the home's warm CLI server on (started before the rounds): the commands are served,
    # and the mount's daemon forked from the server where the tree does that
    ap.add_argument("--served", action="store_true")
    # each tree's own console script (`make install`'s native program, as a person types
    # `avfs`), not `python -m avfs_git`: a served call then starts no interpreter of its own
    ap.add_argument("--native", action="store_true")
    ap.add_argument("--prefix", default="", help="put before the result file's name")
    ap.add_argument("--status", action="store_true", help="time the first `git status` after ls too")
    args = ap.parse_args()
    trees = {"this": str(ROOT), "baseline": str(Path(args.baseline).resolve())}
    avfs = {
        side: [str(Path(tree) / ".venv" / "bin" / "avfs")]
        if args.native
        else [str(ROOT / ".venv" / "bin" / "python"), "-m", "avfs_git"]
        for side, tree in trees.items()
    }
    rounds: dict[str, list[dict[str, float]]] = {side: [] for side in trees}
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="avfs-bench-lazyphases-") as tmp:
        t = Path(tmp)
        os.chdir(t)  # (not the checkout: `-m avfs_git` would import it ahead of PYTHONPATH)
        server = "auto" if args.served else "off"
        envs = {
            side: {**os.environ, "AVFS_HOME": str(t / f"home-{side}"), "AVFS_PROGRESS": "never",
                   "AVFS_SERVER": server, "AVFS_LAYERS": "off", "PYTHONPATH": tree}
            for side, tree in trees.items()
        }  # fmt: skip
        if args.native:  # (a PYTHONPATH would make the native program hand every call to Python)
            for env in envs.values():
                env.pop("PYTHONPATH")
        try:
            if args.served:
                for side, env in envs.items():
                    Path(env["AVFS_HOME"]).mkdir()
                    subprocess.run([*avfs[side], "server", "start"], env=env, check=True, capture_output=True)
            for i in range(args.rounds):
                for side in list(trees) if i % 2 == 0 else list(trees)[::-1]:
                    rounds[side].append(
                        _round(avfs[side], envs[side], args.url, f"v{i}", t / f"mnt-{side}-{i}", args.status)
                    )
        finally:
            if args.served:
                for side, env in envs.items():
                    subprocess.run([*avfs[side], "server", "stop"], env=env, capture_output=True)
            os.chdir(ROOT)
    result = {
        "case": "lazy clone + mount until ls answers, per phase: wall and CPU (same run, interleaved)",
        "url": args.url,
        "baseline": args.baseline,
        "served": args.served,
        "native": args.native,
        "rounds": args.rounds,
        "load_average_before_after": [load_before, os.getloadavg()[0]],
        "median": {s: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for s, rs in rounds.items()},
        "per_round": rounds,
    }
    out = (
        ROOT
        / "bench"
        / "results"
        / time.strftime(f"{args.prefix}lazyphases-%Y%m%dT%H%M%SZ.json", time.gmtime())
    )
    out.write_text(json.dumps(result, indent=2) + "\n")
    json.dump({"median": result["median"], "load": result["load_average_before_after"]}, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
