"""What bounds row 2 of issue 30 (docs/benchmarks.md, the thirteenth round): the first `git
status` typed the moment `ls` answers in the mount of a fresh `vault clone --lazy`, with
what the gate before it waits for taken away one part at a time, in the same run,
interleaved, against the first `git status` in a whole vault's mount:

- ``today``: as ``bench.lazycases`` times it (the gate waits for the server's sizes of the
  whole tree and the index);
- ``sizes_known``: the same, but every size of the tree is in the new vault's size cache
  before it is mounted (copied, untimed, from a vault of the same repository that was
  mounted once: ``avfs/blob-sizes`` and ``avfs/blob-sizes.trees``): the gate waits for the
  index alone. This is the best any way of not waiting for the sizes can do while the
  mount still makes its index when git asks (an index written before its sizes, the
  sizes patched in later, is one);
- ``ignores_known`` (``--sides``; eighteenth round): the sizes and the blobs that vault
  fetched (its ``.gitignore`` files, which the gate fetches before git may run:
  mount/index.py ``sync_index``) copied, not its kept index: the gate waits for the index
  alone, no fetch;
- ``index_kept``: the sizes and the index kept for that tree (``avfs/kept-index``) copied
  too, and the blobs that vault fetched (its ``.gitignore`` files, which a kept index's
  maker fetches as well): the gate waits for the kept index's patch (docs/lazy.md, "The
  index kept per base").

Each round also times the first `git status` in a whole vault's mount (as
``bench.lazycases``) and counts the objects each lazy status fetched.

``--trace2``: each status runs with ``GIT_TRACE2_PERF``, and its time is split at the gate:
from git's ``cmd_ancestry`` event to its ``def_repo`` (git's setup reading the mount's
``.git``, where the gate holds it: fuse/settle.py), and git's own work after it.

Run: ``.venv/bin/python -m bench.lazybound --served DIR [--repeats N] [--trace2]`` (DIR as
``bench.lazycases --monorepo --served DIR`` keeps it); ``--native --warm-server`` as there.
The result goes to ``bench/results/[PREFIX]lazybound-<time>.json`` and is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .lazycases import ROOT, _objects, _whole_status
from .remotecases import _daemon

SIDES = ("today", "sizes_known", "index_kept")
ALL_SIDES = ("today", "sizes_known", "ignores_known", "index_kept")


def _reference(avfs: list[str], env: dict[str, str], url: str, home: Path, mp: Path) -> Path:
    """A lazy vault of ``url`` mounted once, its index written and kept (its ``avfs/``)."""
    subprocess.run([*avfs, "vault", "clone", "--lazy", url, "ref"], check=True, env=env, capture_output=True)
    mp.mkdir()
    subprocess.run([*avfs, "mount", "ref:main", str(mp)], check=True, env=env, capture_output=True)
    (mp / ".git").read_bytes()  # (the gate: the index written)
    own = home / "vaults" / "ref.git" / "avfs"
    for _ in range(600):  # the kept index is written on a thread once git may run
        if any((own / "kept-index").glob("*")) if (own / "kept-index").is_dir() else False:
            break
        time.sleep(0.1)
    subprocess.run([*avfs, "unmount", "ref:main"], env=env, capture_output=True)
    return own


def _blobs_of(ref: Path, vault: Path) -> None:
    """The objects ``ref`` fetched after its clone (its mount's ``.gitignore`` files: a kept
    index's maker fetches them too) copied into ``vault`` (packs it lacks, loose objects)."""
    for d, _, files in os.walk(ref / "objects"):
        rel = Path(d).relative_to(ref)
        if rel.parts[1:2] == ("info",):
            continue
        for f in files:
            dest = vault / rel / f
            if rel.parts[1:2] == ("pack",) and not f.startswith("pack-"):
                continue
            if not dest.exists():
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(Path(d) / f, dest)


def _at(line: str) -> float:
    h, m, sec = line.split()[0].split(":")
    return int(h) * 3600 + int(m) * 60 + float(sec)


def _gate(trace: Path) -> tuple[float, float]:
    """(the gate's seconds, git's own after it) from a status's ``GIT_TRACE2_PERF`` file."""
    at: dict[str, float] = {}
    for line in trace.read_text().splitlines():
        parts = [p.strip() for p in line.split("|")]
        if len(parts) > 3 and parts[2] == "main":
            at.setdefault(parts[3], _at(parts[0]))
            if parts[3] == "atexit":
                at["atexit"] = _at(parts[0])
    trace.unlink()
    return at["def_repo"] - at["cmd_ancestry"], at["atexit"] - at["def_repo"]


def _round(
    avfs: list[str],
    env: dict[str, str],
    url: str,
    name: str,
    mp: Path,
    home: Path,
    ref: Path,
    side: str,
    trace: Path | None = None,
) -> tuple[float, float, int]:
    """clone, (copy what ``side`` takes from ``ref``), mount, `ls`, `git status`: (clone +
    mount + `ls` seconds, the status's seconds, the objects it fetched); unmounted after."""
    mp.mkdir()
    start = time.perf_counter()
    subprocess.run([*avfs, "vault", "clone", "--lazy", url, name], check=True, env=env, capture_output=True)
    cloned = time.perf_counter()
    own = home / "vaults" / f"{name}.git" / "avfs"
    if side != "today":
        own.mkdir(exist_ok=True)
        for f in ("blob-sizes", "blob-sizes.trees"):
            shutil.copyfile(ref / f, own / f)
        if side == "index_kept":
            shutil.copytree(ref / "kept-index", own / "kept-index")
        if side in ("index_kept", "ignores_known"):
            _blobs_of(ref.parent, own.parent)
    copied = time.perf_counter()
    subprocess.run([*avfs, "mount", f"{name}:main", str(mp)], check=True, env=env, capture_output=True)
    os.listdir(mp)
    took = time.perf_counter() - start - (copied - cloned)
    before = _objects(own.parent)
    start = time.perf_counter()
    traced = {**os.environ, "GIT_TRACE2_PERF": str(trace)} if trace else None
    subprocess.run(["git", "status", "--porcelain"], cwd=mp, check=True, capture_output=True, env=traced)
    status = time.perf_counter() - start
    fetched = _objects(own.parent) - before
    subprocess.run([*avfs, "unmount", f"{name}:main"], env=env, capture_output=True)
    return took, status, fetched


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--served", required=True, help="the served repository's directory (big.git in it)")
    ap.add_argument("--warm-server", action="store_true")
    ap.add_argument("--native", action="store_true")
    ap.add_argument("--prefix", default="")
    ap.add_argument("--sides", default=",".join(SIDES), help=f"of {','.join(ALL_SIDES)}")
    ap.add_argument("--trace2", action="store_true", help="split each status at the gate (GIT_TRACE2_PERF)")
    args = ap.parse_args()
    sides = tuple(args.sides.split(","))
    if not sides or any(s not in ALL_SIDES for s in sides):
        ap.error(f"--sides: of {','.join(ALL_SIDES)}")
    avfs = [str(ROOT / ".venv" / "bin" / ("avfs" if args.native else "python"))]
    if not args.native:
        avfs += ["-m", "avfs_git"]
    load = [os.getloadavg()[0]]
    times: dict[str, list[float]] = {s: [] for s in sides}
    row1: dict[str, list[float]] = {s: [] for s in sides}
    fetched: dict[str, list[int]] = {s: [] for s in sides}
    whole: list[float] = []
    gates: dict[str, list[tuple[float, float]]] = {s: [] for s in (*sides, "whole")}
    with tempfile.TemporaryDirectory(prefix="avfs-bench-bound-") as tmp:
        t = Path(tmp)
        os.chdir(t)
        daemon, base = _daemon(Path(args.served).resolve())
        url = f"{base}/big.git"
        home = t / "home"
        home.mkdir()
        env = {
            **os.environ,
            "AVFS_PROGRESS": "never",
            "AVFS_SERVER": "auto" if args.warm_server else "off",
            "AVFS_LAYERS": "off",
            "AVFS_HOME": str(home),
        }
        try:
            if args.warm_server:
                subprocess.run([*avfs, "server", "start"], check=True, env=env, capture_output=True)
            subprocess.run([*avfs, "vault", "clone", url, "whole"], check=True, env=env, capture_output=True)
            ref = _reference(avfs, env, url, home, t / "ref-mnt")
            for i in range(args.repeats):
                trace = t / "status.trace2"
                if args.trace2:  # (the whole vault's status inherits this process's environment)
                    os.environ["GIT_TRACE2_PERF"] = str(trace)
                whole.append(_whole_status(avfs, env, "whole", t / "whole-mnt"))
                if args.trace2:
                    os.environ.pop("GIT_TRACE2_PERF")
                    gates["whole"].append(_gate(trace))
                order = sides if i % 2 == 0 else sides[::-1]
                for side in order:
                    took, status, got = _round(
                        avfs,
                        env,
                        url,
                        f"{side}{i}",
                        t / f"{side}-{i}",
                        home,
                        ref,
                        side,
                        trace if args.trace2 else None,
                    )
                    row1[side].append(took)
                    times[side].append(status)
                    fetched[side].append(got)
                    if args.trace2:
                        gates[side].append(_gate(trace))
                load.append(os.getloadavg()[0])
        finally:
            daemon.terminate()
            daemon.wait(10)
            if args.warm_server:
                subprocess.run([*avfs, "server", "stop"], env=env, capture_output=True)
            os.chdir(ROOT)
    w = statistics.median(whole)
    result: dict[str, object] = {
        "case": "row 2: the first git status after ls in a fresh lazy clone's mount, parts of the gate taken away",
        "repeats": args.repeats,
        "native": args.native,
        "warm_server": args.warm_server,
        "load_average_per_round": load,
        "first_git_status_in_whole_vault_mount_s": whole,
        "first_git_status_in_whole_vault_mount_s_median": w,
    }
    for side in sides:
        m = statistics.median(times[side])
        result[side] = {
            "first_git_status_s": times[side],
            "first_git_status_s_median": m,
            "times_whole": m / w,
            "clone_mount_ls_s_median": statistics.median(row1[side]),
            "objects_fetched_by_first_git_status": max(fetched[side]),
        }
    if args.trace2:
        result["trace2_gate_s_median"] = {k: statistics.median(g for g, _ in v) for k, v in gates.items()}
        result["trace2_after_gate_s_median"] = {
            k: statistics.median(a for _, a in v) for k, v in gates.items()
        }
        result["trace2_gate_and_after_s"] = gates
    out = (
        ROOT
        / "bench"
        / "results"
        / time.strftime(f"{args.prefix}lazybound-%Y%m%dT%H%M%SZ.json", time.gmtime())
    )
    out.write_text(json.dumps(result, indent=2) + "\n")
    json.dump(result, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
