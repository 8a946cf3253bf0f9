"""Rows 1 and 2 of issue 30 in CPU (docs/benchmarks.md, the thirtieth round, branch
``h-lazyrow7``), A/B: this tree's code and another tree's (``--base DIR``: a worktree of
main with its own ``.venv``), interleaved round by round, the first side alternating.

Each round, for each side: `vault clone --lazy` of the served monorepo, `mount`, `ls`,
then the first `git status` (as ``bench.lazyrow2ab``), every avfs and git process of the
side (the clone, the mount command, its daemon, the status) in a cpuacct cgroup of its
own and the server (`git daemon` and the ``upload-pack`` it forks) in another: the CPU of
each phase is the cgroups' ``cpuacct.usage`` read between phases (the daemon's work in the
background counts in the phase it runs in, as its wall does). The reference is the first
`git status` in a whole vault's mount, its CPU (git's and the daemon's) read the same way,
and `git clone --bare` (wall and CPU: the server's and git's).

Run: ``.venv/bin/python -m bench.lazyrow7cpu --served DIR --base /work/h-lazyrow7-base
[--repeats N]`` (DIR as ``bench.lazycases --monorepo --served DIR`` keeps it; root, with
cgroup v1's cpuacct). The result goes to ``bench/results/lazyrow7-cpu-<time>.json``.
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

from .lazycases import ROOT
from .remotecases import _free_port

CG = Path("/sys/fs/cgroup/cpuacct")
IN_CG = 'echo $$ > "$0/cgroup.procs" && exec "$@"'  # (sh -c IN_CG CGROUP CMD...)


def _cg(name: str) -> Path:
    path = CG / name
    path.mkdir(exist_ok=True)
    return path


def _usage(cg: Path) -> float:
    return int((cg / "cpuacct.usage").read_text()) / 1e9


def _run(cg: Path, cmd: list[str], **kw: object) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["sh", "-c", IN_CG, str(cg), *cmd], capture_output=True, **kw)  # type: ignore[call-overload,no-any-return]


def _server(cg: Path, base: Path) -> tuple[subprocess.Popen[bytes], str]:
    import socket

    port = _free_port()
    proc = subprocess.Popen(
        ["sh", "-c", IN_CG, str(cg), "git", "daemon", "--listen=127.0.0.1", f"--port={port}", "--reuseaddr",
         "--export-all", f"--base-path={base}", str(base)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("git daemon did not start") from None
            time.sleep(0.05)
    return proc, f"git://127.0.0.1:{port}"


def _phases(
    avfs: list[str], env: dict[str, str], url: str, name: str, t: Path, side: Path, srv: Path
) -> dict[str, float]:
    mp = t / f"mnt-{name}"
    mp.mkdir()
    marks: list[tuple[float, float, float]] = []

    def mark() -> None:
        marks.append((time.perf_counter(), _usage(side), _usage(srv)))

    mark()
    _run(side, [*avfs, "vault", "clone", "--lazy", url, name], check=True, env=env)
    mark()
    _run(side, [*avfs, "mount", f"{name}:main", str(mp)], check=True, env=env)
    os.listdir(mp)
    mark()
    _run(side, ["git", "status", "--porcelain"], cwd=mp, check=True)
    mark()
    subprocess.run([*avfs, "unmount", f"{name}:main"], env=env, capture_output=True)
    out: dict[str, float] = {}
    for i, phase in enumerate(("clone", "mount_ls", "status")):
        (w0, a0, s0), (w1, a1, s1) = marks[i], marks[i + 1]
        out[f"{phase}_s"] = w1 - w0
        out[f"{phase}_cpu_s"] = a1 - a0
        out[f"{phase}_server_cpu_s"] = s1 - s0
    out["row1_s"] = out["clone_s"] + out["mount_ls_s"]
    out["row1_cpu_s"] = out["clone_cpu_s"] + out["mount_ls_cpu_s"]
    out["row1_server_cpu_s"] = out["clone_server_cpu_s"] + out["mount_ls_server_cpu_s"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--served", required=True)
    ap.add_argument("--base", required=True)
    args = ap.parse_args()
    pythons = {
        "main": str(Path(args.base).resolve() / ".venv" / "bin" / "python"),
        "branch": str(ROOT / ".venv" / "bin" / "python"),
    }
    avfs = {code: [py, "-m", "avfs_git"] for code, py in pythons.items()}
    tag = f"h-lazyrow7-{os.getpid()}"
    side, srv = _cg(f"{tag}-side"), _cg(f"{tag}-srv")
    runs: dict[str, list[dict[str, float]]] = {"main": [], "branch": []}
    whole: list[dict[str, float]] = []
    bare: list[dict[str, float]] = []
    load = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory(prefix="avfs-bench-lazyrow7-") as tmp:
        t = Path(tmp)
        os.chdir(t)  # (`python -m avfs_git` imports from the working directory first)
        daemon, base = _server(srv, Path(args.served).resolve())
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
            for i in range(args.repeats):
                wmp = t / "whole-mnt"
                wmp.mkdir(exist_ok=True)
                _run(side, [*avfs["branch"], "mount", "whole:main", str(wmp)], check=True, env=env)
                os.listdir(wmp)
                w0, a0 = time.perf_counter(), _usage(side)
                _run(side, ["git", "status", "--porcelain"], cwd=wmp, check=True)
                whole.append({"status_s": time.perf_counter() - w0, "status_cpu_s": _usage(side) - a0})
                subprocess.run([*avfs["branch"], "unmount", "whole:main"], env=env, capture_output=True)
                w0, a0, s0 = time.perf_counter(), _usage(side), _usage(srv)
                _run(side, ["git", "clone", "-q", "--bare", url, str(t / f"bare{i}.git")], check=True)
                bare.append(
                    {
                        "s": time.perf_counter() - w0,
                        "cpu_s": _usage(side) - a0,
                        "server_cpu_s": _usage(srv) - s0,
                    }
                )
                shutil.rmtree(t / f"bare{i}.git")
                order = ["main", "branch"] if i % 2 == 0 else ["branch", "main"]
                for code in order:
                    runs[code].append(_phases(avfs[code], env, url, f"{code}-{i}", t, side, srv))
                load.append(os.getloadavg()[0])
                print(f"round {i} load {load[-1]:.1f}", file=sys.stderr)
        finally:
            daemon.terminate()
            daemon.wait(10)
            try:
                os.killpg(daemon.pid, 15)  # (its upload-packs: the daemon's own group)
            except OSError:
                pass
            for cg in (side, srv):
                for _ in range(50):
                    try:
                        cg.rmdir()
                        break
                    except OSError:
                        time.sleep(0.1)
            os.chdir(ROOT)
    med = {k: statistics.median(r[k] for r in whole) for k in whole[0]}
    bmed = {k: statistics.median(r[k] for r in bare) for k in bare[0]}
    result: dict[str, object] = {
        "case": "rows 1 and 2 of issue 30 in CPU (cgroups): main's code and this branch's, interleaved",
        "repeats": args.repeats,
        "load_average_per_round": load,
        "whole": {"runs": whole, "median": med},
        "git_clone_bare": {"runs": bare, "median": bmed},
    }
    for code, rs in runs.items():
        m = {k: statistics.median(r[k] for r in rs) for k in rs[0]}
        result[code] = {
            "runs": rs,
            "median": m,
            "status_times_whole": m["status_s"] / med["status_s"],
            "status_cpu_times_whole": m["status_cpu_s"] / med["status_cpu_s"],
            "row1_times_git_clone_bare": m["row1_s"] / bmed["s"],
            "row1_cpu_times_git_clone_bare": (m["row1_cpu_s"] + m["row1_server_cpu_s"])
            / (bmed["cpu_s"] + bmed["server_cpu_s"]),
        }
    a, b = runs["main"], runs["branch"]
    pairs = {k: [y[k] / x[k] for x, y in zip(a, b, strict=True) if x[k] > 0] for k in a[0]}
    result["branch_over_main"] = {k: statistics.median(v) for k, v in pairs.items() if v}
    out = ROOT / "bench" / "results" / time.strftime("lazyrow7-cpu-%Y%m%dT%H%M%SZ.json", time.gmtime())
    out.write_text(json.dumps(result, indent=2) + "\n")
    json.dump(result, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
