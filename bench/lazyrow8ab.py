"""Rows 1 and 2 of issue 30 as row 1 was met (docs/benchmarks.md, the thirty-first round,
branch ``h-lazyrow8``): the native console script (each tree's ``.venv/bin/avfs``) with its
home's resident CLI server running, several sides interleaved round by round (the order
rotating), each side a tree and a setting of ``index_at_clone`` in its home's config.json.

Each side has a home, a resident server started in a cpuacct cgroup of the side's own (the
served clone, the mount's daemon forked from the server, any index maker the clone starts,
and the status's git all count there) and the server (`git daemon` and its
``upload-pack``s) in another. Each round, for each side: `vault clone --lazy` of the served
monorepo, `mount`, `ls` (row 1: the three, against `git clone --bare` in the same round),
then the first `git status` (row 2: against the first `git status` in a whole vault's
mount, in the same round), unmount, the vault deleted (so no delayed maker runs later), and
a wait until the side's cgroup holds only its server (at most 10 s: what a side left
running is then counted nowhere, and ``leftover_s`` says how long the wait was). Each
phase's CPU is the cgroups' ``cpuacct.usage`` read between phases (work in the background
counts in the phase it runs in, as its wall does).

Run: ``.venv/bin/python -m bench.lazyrow8ab --served DIR --side NAME=TREE:SETTING ...
[--repeats N]`` (DIR as ``bench.lazycases --monorepo --served DIR`` keeps it; SETTING
``true``, ``false``, ``after`` or ``-`` for none; root, cgroup v1's cpuacct). The result
goes to ``bench/results/lazyrow8-ab-<time>.json``.
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

from .lazyrow7cpu import IN_CG, _cg, _server, _usage

ROOT = Path(__file__).resolve().parents[1]


def _run(cg: Path, cmd: list[str], **kw: object) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["sh", "-c", IN_CG, str(cg), *cmd], capture_output=True, **kw)  # type: ignore[call-overload,no-any-return]


def _quiet(cg: Path, keep: set[int], limit_s: float = 10.0) -> float:
    """Wait until ``cg`` holds only the pids ``keep`` (its server); how long it took."""
    start = time.monotonic()
    while time.monotonic() - start < limit_s:
        pids = {int(p) for p in (cg / "cgroup.procs").read_text().split()}
        if pids <= keep:
            break
        time.sleep(0.05)
    return time.monotonic() - start


def _round(
    avfs: list[str], env: dict[str, str], url: str, name: str, t: Path, cg: Path, srv: Path, keep: set[int]
) -> dict[str, float]:
    mp = t / f"mnt-{name}"
    mp.mkdir()
    marks: list[tuple[float, float, float]] = []

    def mark() -> None:
        marks.append((time.perf_counter(), _usage(cg), _usage(srv)))

    mark()
    _run(cg, [*avfs, "vault", "clone", "--lazy", url, name], check=True, env=env)
    mark()
    _run(cg, [*avfs, "mount", f"{name}:main", str(mp)], check=True, env=env)
    os.listdir(mp)
    mark()
    _run(cg, ["git", "status", "--porcelain"], cwd=mp, check=True)
    mark()
    subprocess.run([*avfs, "unmount", f"{name}:main"], env=env, capture_output=True)
    subprocess.run([*avfs, "vault", "delete", name, "--force"], env=env, capture_output=True)
    out: dict[str, float] = {}
    for i, phase in enumerate(("clone", "mount_ls", "status")):
        (w0, a0, s0), (w1, a1, s1) = marks[i], marks[i + 1]
        out[f"{phase}_s"] = w1 - w0
        out[f"{phase}_cpu_s"] = a1 - a0
        out[f"{phase}_server_cpu_s"] = s1 - s0
    out["row1_s"] = out["clone_s"] + out["mount_ls_s"]
    out["row1_cpu_s"] = out["clone_cpu_s"] + out["mount_ls_cpu_s"]
    out["row1_server_cpu_s"] = out["clone_server_cpu_s"] + out["mount_ls_server_cpu_s"]
    out["rows12_cpu_s"] = out["row1_cpu_s"] + out["status_cpu_s"]
    out["leftover_s"] = _quiet(cg, keep)
    return out


def _pids(cg: Path) -> set[int]:
    return {int(p) for p in (cg / "cgroup.procs").read_text().split()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--served", required=True)
    ap.add_argument("--side", action="append", required=True, help="NAME=TREE:SETTING")
    ap.add_argument("--prefix", default="lazyrow8-ab")
    ap.add_argument("--tag", default="h-lazyrow8", help="the cgroups' names start with this")
    # a side whose resident server (so its clones and its mounts' daemons) runs without
    # CAP_SYS_NICE, as a user's does: it cannot move a process out of the idle class
    ap.add_argument("--no-nice", action="append", default=[], metavar="NAME")
    args = ap.parse_args()
    sides: dict[str, tuple[list[str], str]] = {}
    for spec in args.side:
        name, rest = spec.split("=", 1)
        tree, setting = rest.rsplit(":", 1)
        sides[name] = ([str(Path(tree).resolve() / ".venv" / "bin" / "avfs")], setting)
    tag = f"{args.tag}-{os.getpid()}"
    cgs = {name: _cg(f"{tag}-{name}") for name in sides}
    ref, srv = _cg(f"{tag}-ref"), _cg(f"{tag}-srv")
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in sides}
    whole: list[dict[str, float]] = []
    bare: list[dict[str, float]] = []
    load = [os.getloadavg()[0]]
    envs: dict[str, dict[str, str]] = {}
    keep: dict[str, set[int]] = {}
    with tempfile.TemporaryDirectory(prefix="avfs-bench-lazyrow8-") as tmp:
        t = Path(tmp)
        os.chdir(t)
        daemon, base = _server(srv, Path(args.served).resolve())
        url = f"{base}/big.git"
        common = {"AVFS_PROGRESS": "never", "AVFS_SERVER": "auto", "AVFS_LAYERS": "off"}
        try:
            for name, (avfs, setting) in sides.items():
                home = t / f"home-{name}"
                home.mkdir()
                if setting != "-":
                    value: object = {"true": True, "false": False}.get(setting, setting)
                    (home / "config.json").write_text(json.dumps({"index_at_clone": value}))
                envs[name] = {**os.environ, **common, "AVFS_HOME": str(home)}
                nice = ["setpriv", "--bounding-set", "-sys_nice"] if name in args.no_nice else []
                _run(cgs[name], [*nice, *avfs, "server", "start"], check=True, env=envs[name])
                keep[name] = _pids(cgs[name])
            wenv = {**os.environ, **common, "AVFS_HOME": str(t / "home-whole"), "AVFS_SERVER": "off"}
            wavfs = [str(ROOT / ".venv" / "bin" / "avfs")]
            subprocess.run(
                [*wavfs, "vault", "clone", url, "whole"], check=True, env=wenv, capture_output=True
            )
            names = list(sides)
            for i in range(args.repeats):
                wmp = t / "whole-mnt"
                wmp.mkdir(exist_ok=True)
                _run(ref, [*wavfs, "mount", "whole:main", str(wmp)], check=True, env=wenv)
                os.listdir(wmp)
                w0, a0 = time.perf_counter(), _usage(ref)
                _run(ref, ["git", "status", "--porcelain"], cwd=wmp, check=True)
                whole.append({"status_s": time.perf_counter() - w0, "status_cpu_s": _usage(ref) - a0})
                subprocess.run([*wavfs, "unmount", "whole:main"], env=wenv, capture_output=True)
                _quiet(ref, set())
                w0, a0, s0 = time.perf_counter(), _usage(ref), _usage(srv)
                _run(ref, ["git", "clone", "-q", "--bare", url, str(t / f"bare{i}.git")], check=True)
                bare.append(
                    {
                        "s": time.perf_counter() - w0,
                        "cpu_s": _usage(ref) - a0,
                        "server_cpu_s": _usage(srv) - s0,
                    }
                )
                shutil.rmtree(t / f"bare{i}.git")
                k = i % len(names)
                for name in names[k:] + names[:k]:
                    avfs, _ = sides[name]
                    runs[name].append(
                        _round(avfs, envs[name], url, f"{name}-{i}", t, cgs[name], srv, keep[name])
                    )
                load.append(os.getloadavg()[0])
                print(f"round {i} load {load[-1]:.1f}", file=sys.stderr)
        finally:
            for name, (avfs, _) in sides.items():
                if name in envs:
                    subprocess.run([*avfs, "server", "stop"], env=envs[name], capture_output=True)
            daemon.terminate()
            daemon.wait(10)
            try:
                os.killpg(daemon.pid, 15)
            except OSError:
                pass
            for cg in (*cgs.values(), ref, srv):
                for _ in range(100):
                    try:
                        cg.rmdir()
                        break
                    except OSError:
                        time.sleep(0.1)
            os.chdir(ROOT)
    med = {k: statistics.median(r[k] for r in whole) for k in whole[0]}
    bmed = {k: statistics.median(r[k] for r in bare) for k in bare[0]}
    result: dict[str, object] = {
        "case": "rows 1 and 2 of issue 30, native console script served, sides interleaved (cgroup CPU)",
        "sides": {
            n: {"avfs": a[0], "index_at_clone": s, "cap_sys_nice": n not in args.no_nice}
            for n, (a, s) in sides.items()
        },
        "repeats": args.repeats,
        "load_average_per_round": load,
        "whole": {"runs": whole, "median": med},
        "git_clone_bare": {"runs": bare, "median": bmed},
    }
    for name, rs in runs.items():
        m = {k: statistics.median(r[k] for r in rs) for k in rs[0]}
        result[name] = {
            "runs": rs,
            "median": m,
            "row1_times_git_clone_bare": m["row1_s"] / bmed["s"],
            "row1_times_git_clone_bare_per_round": [
                r["row1_s"] / b["s"] for r, b in zip(rs, bare, strict=True)
            ],
            "status_times_whole": m["status_s"] / med["status_s"],
            "status_times_whole_per_round": [
                r["status_s"] / w["status_s"] for r, w in zip(rs, whole, strict=True)
            ],
            "status_cpu_times_whole": m["status_cpu_s"] / med["status_cpu_s"],
        }
        if "maker_cpu_s" in rs[0]:  # (bench/lazyrow9ab.py's probe at git's arrival)
            result[name]["maker_at_git_per_round"] = [  # type: ignore[index]
                {k: r[k] for k in ("maker_cpu_s", "maker_idle", "kept_before_git") if k in r} for r in rs
            ]
    out = ROOT / "bench" / "results" / time.strftime(f"{args.prefix}-%Y%m%dT%H%M%SZ.json", time.gmtime())
    out.write_text(json.dumps(result, indent=2) + "\n")
    summary = {
        n: {
            k: round(v, 3)
            for k, v in result[n]["median"].items()  # type: ignore[index]
            if k in ("row1_s", "row1_cpu_s", "clone_cpu_s", "status_s", "status_cpu_s", "rows12_cpu_s")
        }
        | {
            "row1_x_bare": round(result[n]["row1_times_git_clone_bare"], 3),  # type: ignore[index]
            "status_x_whole": round(result[n]["status_times_whole"], 2),  # type: ignore[index]
        }
        for n in sides
    }
    print(json.dumps({"out": str(out), "bare": bmed, "whole": med, "load": load, "sides": summary}, indent=1))


if __name__ == "__main__":
    main()
